"""`python -m atomgym.agents.publish REPORT_DIR [--bench FILE] [--docs DIR] [--readme FILE]`
(the last step of `make report`): publish a finished report as the project's results.

Writes ``docs/results.md`` (the report's verdict, tables and the speed benchmark, with the date,
commit and command they came from), copies the report's headline figure to
``docs/results/profile.png`` and replaces the block between ``<!-- results:begin -->`` and
``<!-- results:end -->`` in the README with the verdict and the headline table. Nothing in them is
pasted by hand: rerunning ``make report`` regenerates all three. Files are written to a temporary
name and renamed, so an interrupted publish leaves the previous results whole.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from atomgym import files, safefiles, schema
from atomgym.agents import deploy, identity
from atomgym.agents.results import BLOCKS_FILE, read_blocks
from atomgym.agents.usage import Parser, UsageError, run_main
from atomgym.envs.cost import DEFAULT_COST
from atomgym.paths import CHECKOUT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
HEADLINE_FIGURE = "profile.png"
BEST_VS = "## Best learned policy against every heuristic"


class PublishError(Exception):
    """A report folder, benchmark file or README that cannot be published: one line."""


def _sections(report: str) -> dict[str, str]:
    """report.md split at its '## ' headings; '' holds the part before the first."""
    out: dict[str, str] = {}
    key, buf = "", []
    for line in report.splitlines():
        if line.startswith("## "):
            out[key] = "\n".join(buf).strip("\n")
            key, buf = line, []
        else:
            buf.append(line)
    out[key] = "\n".join(buf).strip("\n")
    return out


def read_report(folder: Path) -> tuple[str, dict[str, str]]:
    """The report's text and its sections; refused unless it is a finished report folder."""
    p = folder / "report.md"
    try:
        text = files.read_text(p, 4 << 20, "a report folder's report.md (agents.fullreport)")
    except files.FileError as e:
        raise PublishError(f"{e}; run `make report` first") from None
    sec = _sections(text)
    head = sec.get("", "")
    if not head.startswith("# atomgym report") or "**Verdict:**" not in head or BEST_VS not in sec:
        raise PublishError(f"{p}: not a report written by agents.fullreport (no title, verdict or "
                           f"'{BEST_VS[3:]}' section)")
    return text, sec


def _meta(head: str, key: str) -> str:
    m = re.search(rf"^- {key}: (.*)$", head, re.M)
    return m.group(1).strip() if m else "unknown"


def bench_table(bench: dict) -> str:
    """The speed benchmark's JSON (`python -m atomgym.bench --json`) as a markdown table."""
    need = ("single_ticks_per_s", "batch_ticks_per_s", "cartpole_steps_per_s", "env_single_steps_per_s",
            "env_batch_steps_per_s", "batch_machines", "repeat")
    missing = [k for k in need if not isinstance(bench.get(k), (int, float)) or not math.isfinite(bench[k])]
    if missing:
        raise PublishError(f"benchmark file: missing or not a number: {', '.join(missing)} "
                           "(expected the output of `python -m atomgym.bench --json`)")
    s, b, c = bench["single_ticks_per_s"], bench["batch_ticks_per_s"], bench["cartpole_steps_per_s"]
    rows = [("(a) one machine, headline scenario", f"{s / 1e6:.2f} M simulated ticks/s "
             f"(1 simulated hour in {3.6e6 / s:.2f} s)"),
            (f"(b) {bench['batch_machines']} machines", f"{b / 1e6:.2f} M machine-ticks/s: " + (
                f"{bench['batch_vs_single']:.2f}x one machine over the same window and seeds "
                f"({bench['single_window_ticks_per_s'] / 1e6:.2f} M ticks/s)"
                if isinstance(bench.get("batch_vs_single"), (int, float)) else f"{b / s:.2f}x (a)")),
            ("(c) `CartPole-v1`, same run", f"{c / 1e3:.1f} k steps/s"),
            ("(d) AtomEnv, 100 ms decisions", f"{bench['env_single_steps_per_s'] / 1e3:.1f} k agent steps/s "
             f"({bench['env_single_steps_per_s'] / c:.2f}x CartPole)"),
            (f"(e) AtomVectorEnv, {bench['batch_machines']} machines",
             f"{bench['env_batch_steps_per_s'] / 1e3:.1f} k agent steps/s (summed)")]
    if isinstance(bench.get("first_step_cold_s"), (int, float)):
        rows.append(("(f) first `step()`, empty compile cache", f"{bench['first_step_cold_s']:.1f} s"))
        rows.append(("(f) first `step()`, next process", f"{bench['first_step_warm_s']:.2f} s"))
    if isinstance(bench.get("sb3_ppo_vs_cartpole"), (int, float)):
        rows.append(("(g) SB3 PPO on AtomEnv vs on CartPole, same hyperparameters",
                     f"{bench['sb3_ppo_atom_fps']:,.0f} vs {bench['sb3_ppo_cartpole_fps']:,.0f} frames/s: "
                     f"{bench['sb3_ppo_vs_cartpole']:.2f}x"))
    return "\n".join(["| what | measured (median of %d interleaved rounds) |" % bench["repeat"], "|---|---|",
                      *[f"| {a} | {v} |" for a, v in rows]])


def recorded_cost(blocks: Path) -> str:
    """The named cost an evaluation's blocks.json records, if it is this version's default one."""
    try:
        ids = {str(i.get("cost")) for i in read_blocks(blocks, blocks.with_name("episodes.csv")).values()}
    except UsageError:
        return "unknown"
    if not ids:
        return "unknown"
    return f"`{DEFAULT_COST}`" if ids == {identity.cost_digest()} else "unknown (not this version's default)"


def render(folder: Path, sec: dict[str, str], bench: dict | None, figure: str | None) -> tuple[str, str]:
    """(docs/results.md, the README block) from a report's sections."""
    head = sec[""]
    title = head.splitlines()[0][2:].strip()
    date = title[title.find("(") + 1:title.rfind(")")] if "(" in title else "unknown"
    commit, cmd = _meta(head, "commit"), _meta(head, "command")
    verdict = next(line for line in head.splitlines() if line.startswith("**Verdict:**"))
    cost = _meta(head, "cost").split(" (")[0]
    if cost == "unknown":               # a report written before its header named the cost
        cost = recorded_cost(folder / "eval" / BLOCKS_FILE)
    src = (f"Generated by `make report` on {date} from commit {commit} (`{folder.name}`: {cmd.split(' (')[0]}); "
           f"cost: {cost}; machine: {_meta(head, 'machine')}. Do not edit: `make report` writes it again.")
    doc = ["# Results", "", src, "",
           "## The benchmark", "",
           "\n".join(head.splitlines()[1:]).strip("\n"), ""]
    if figure:
        doc += [f"![performance profiles](results/{figure})", ""]
    for key, body in sec.items():
        if key and key != "## Figures":           # one level down: they sit under "The benchmark"
            doc += ["#" + key, "", re.sub(r"^(#+ )", r"#\1", body, flags=re.M), ""]
    if bench is not None:
        at = f" at commit {bench['commit']}" if isinstance(bench.get("commit"), str) else ""
        doc += ["## Speed", "", f"`python -m atomgym.bench --json`{at}, run after the benchmark on the same machine "
                "(`make report` runs it; docs/simulator.md, \"Speed\", says what each line measures):", "",
                bench_table(bench), ""]
    dep = sec.get(deploy.REPORT_SECTION, "")
    if dep:     # the fleet statistics and where they come from; the IQM table stays in docs/results.md
        paras = dep.split(deploy.SENSITIVITY_HEAD)[0].split(deploy.CLASS_HEAD)[0].strip("\n")
        blind = [p for p in dep.split("\n\n") if p.startswith(deploy.BLIND_HEAD)]
        block = [BEGIN, f"*{src}*", "", verdict, "", paras, "", *[x for p in blind for x in (p, "")],
                 "By class of machine, under other prices, and the learned policy against every heuristic by IQM: "
                 "[docs/results.md](docs/results.md).", ""]
    else:       # a report from before the deployment section
        block = [BEGIN, f"*{src}*", "", verdict, "", sec[BEST_VS].strip("\n"), ""]
    if figure:
        block += [f"![performance profiles](docs/results/{figure})", ""]
    block += ["Every table, the speed benchmark and the figures: [docs/results.md](docs/results.md).", END]
    return "\n".join(doc).rstrip("\n") + "\n", "\n".join(block)


def _write_small_png(src: Path, fh) -> None:
    """The figure with a 256-colour palette (a third of matplotlib's RGBA bytes, committed small);
    its bytes as they are where Pillow is missing. ``src`` is a regular file of the report folder."""
    data = files.read_bytes(src, 16 << 20, "a report's PNG figure")
    try:
        from PIL import Image
    except ImportError:
        fh.write(data)
        return
    import io
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").quantize(256).save(fh, format="PNG", optimize=True)


RESULTS_HEAD = "# Results\n\nGenerated by `make report`"


def check_ours(docs: Path) -> None:
    """Publishing replaces docs/results.md and docs/results/profile.png: only files this command
    wrote (results.md starts with its header; the figure only beside such a results.md), never a
    link or a user's file of the same name."""
    md, figdir = docs / "results.md", docs / "results"
    if figdir.is_symlink() or (figdir.exists() and not figdir.is_dir()):
        raise PublishError(f"{figdir}: not a folder of ours (a link or a file); not written")
    if md.is_symlink() or md.exists():
        try:
            text = files.read_text(md, 4 << 20, "a results.md written by agents.publish")
        except files.FileError as e:
            raise PublishError(f"{e}; not replaced") from None
        if not text.startswith(RESULTS_HEAD):
            raise PublishError(f"{md}: not written by agents.publish (it does not start with its header); "
                               "not replaced: give another --docs folder")
    elif (figdir / HEADLINE_FIGURE).exists() or (figdir / HEADLINE_FIGURE).is_symlink():
        raise PublishError(f"{figdir / HEADLINE_FIGURE}: exists without a results.md of ours; not replaced")


def replace_block(readme: str, block: str, where: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise PublishError(f"{where}: expected one '{BEGIN}' ... '{END}' block")
    a, b = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:a] + block + readme[b:]


def publish(folder: Path, bench_file: Path | None, docs: Path, readme: Path | None) -> list[Path]:
    """Everything checked first, then written (each file renamed into place)."""
    _, sec = read_report(folder)
    bench = None
    if bench_file is not None:
        try:
            bench = files.read_json(bench_file, 1 << 20, "the output of `python -m atomgym.bench --json`")
        except files.FileError as e:
            raise PublishError(str(e)) from None
        if not isinstance(bench, dict):
            raise PublishError(f"{bench_file}: not a JSON object (expected `python -m atomgym.bench --json`)")
        bench_table(bench)                       # refuses a partial file before anything is written
    fig = folder / HEADLINE_FIGURE
    figure = HEADLINE_FIGURE if fig.is_file() and not fig.is_symlink() else None
    doc, block = render(folder, sec, bench, figure)
    check_ours(docs)
    new_readme = None
    if readme is not None:
        try:
            new_readme = replace_block(files.read_text(readme, 1 << 20, "the project's README.md"), block,
                                       str(readme))
        except files.FileError as e:
            raise PublishError(str(e)) from None
    written = []
    if figure:
        (docs / "results").mkdir(exist_ok=True)
        safefiles.replace(docs / "results" / figure, lambda fh: _write_small_png(fig, fh))
        written.append(docs / "results" / figure)
    safefiles.replace_text(docs / "results.md", doc)
    written.append(docs / "results.md")
    if new_readme is not None and readme is not None:
        safefiles.replace_text(readme, new_readme)
        written.append(readme)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = Parser("publish", description=__doc__.split("\n\n")[1])
    schema.add_arguments(ap, schema.PUBLISH)     # the options: atomgym/schema.py (docs/cli.md is made from it)

    def body() -> int:
        args = ap.parse_args(argv)
        args.docs = args.docs or ((CHECKOUT / "docs") if CHECKOUT else None)
        args.readme = args.readme or ((CHECKOUT / "README.md") if CHECKOUT else None)
        if args.docs is None or not args.docs.is_dir():
            raise UsageError(f"--docs {args.docs}: not a folder (an installed atomgym has no docs/; give --docs DIR)")
        try:
            out = publish(args.report, args.bench, args.docs, args.readme)
        except PublishError as e:
            raise UsageError(str(e)) from None
        print("wrote " + ", ".join(str(p) for p in out))
        return 0
    return run_main("publish", body, lambda e: "interrupted; the previous results are whole (each file renamed "
                                               "into place)")


if __name__ == "__main__":
    raise SystemExit(main())
