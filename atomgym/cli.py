"""`python -m atomgym` (also installed as `atomgym`): snapshot | check | whatif, and the agents'
commands train | evaluate | report | replay | fullreport | multiseed | pretrained.

- ``atomgym snapshot [-o FILE] [--force]``: read the live host's files (read only) and
  write a snapshot in the ``tail -n +1`` format.
- ``atomgym check SNAPSHOT [--json] [--strict]``: rebuild the machine from its managed
  pages and sysctls, recompute every watermark and protection, compare with the snapshot.
  Exit 0: all equal (or the boot-time pattern, unless --strict); 1: differs; 2: unreadable.
- ``atomgym whatif SNAPSHOT --set KEY=VALUE ... [--json]``: apply sysctl writes in order,
  as the kernel would, from the state the snapshot shows. Exit 2 on a write the kernel
  rejects (the message names the key and the valid range).

- ``atomgym train|evaluate|report|replay|fullreport|multiseed|pretrained ARGS...``: the same as
  ``python -m agents.NAME ARGS...`` in a checkout (atomgym/agents/NAME.py; ``--help`` for each).

Bad input is one line on stderr (``atomgym: error: ...``) and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import tempfile
from typing import Any, Sequence, TextIO

from .kernel.machine import WRITABLE_KEYS, Machine, SysctlError
from .kernel.snapshot import (
    SNAPSHOT_FILES,
    BootPattern,
    Snapshot,
    MAX_SNAPSHOT_BYTES,
    SnapshotError,
    find_boot_pattern,
    parse_snapshot,
    read_bounded,
)
from .schema import ATOMGYM_COMMANDS, Parser, UsageError, add_arguments

EXIT_OK, EXIT_DIFFERS, EXIT_BAD_INPUT = 0, 1, 2
WM_FIELDS = ("min", "low", "high", "promo")


class CliError(Exception):
    """Bad input: printed as one line, exit 2."""


# ---- check --------------------------------------------------------------------------------
def check_snapshot(snap: Snapshot) -> dict[str, Any]:
    """Compare the snapshot with the model. Returns the report (the --json output)."""
    machine = snap.machine()
    rows = machine.zone_rows()
    zones: list[dict[str, Any]] = []
    n_diff = 0
    for z, row in zip(snap.zones, rows):
        fields: dict[str, Any] = {}
        for f in WM_FIELDS:
            obs = getattr(z, f)
            if obs is None:
                continue  # the kernel does not print it (6.1): nothing to compare
            # zoneinfo prints watermarks with the boost added; the boost itself is runtime
            # state (boost_watermark()), so the model adds the observed boost.
            model = row[f] + z.boost
            fields[f] = {"observed": obs, "model": model, "diff": obs - model}
            n_diff += obs != model
        eq = z.protection == row["protection"]
        fields["protection"] = {"observed": z.protection, "model": row["protection"], "equal": eq}
        n_diff += not eq
        zones.append({"node": z.node, "zone": z.zone, "managed": z.managed, "boost": z.boost, "fields": fields})
    boot: BootPattern | None = find_boot_pattern(snap) if n_diff else None
    status = "equal" if n_diff == 0 else ("boot-time pattern" if boot else "differs")
    movable = machine.version.movable_min_clamped
    return {
        "snapshot": snap.source,
        "kernel": str(snap.version),
        "kernel_assumed": snap.version_assumed,
        "movable_rule": "clamp(managed/1024, 32, 128)" if movable else "proportional share",
        "movable_rule_from": ("snapshot's empty Movable zones" if snap.version.movable_override is None
                              and snap.movable_rule_from_zones() is not None else "kernel release"),
        "inputs": {"min_free_kbytes": snap.min_free_kbytes, "watermark_scale_factor": snap.watermark_scale_factor,
                   "watermark_boost_factor": snap.watermark_boost_factor,
                   "lowmem_reserve_ratio": snap.lowmem_reserve_ratio, "thp": snap.thp},
        "zones": zones,
        "differences": n_diff,
        "status": status,
        "boot_pattern": None if boot is None else {
            "node": boot.node, "zone": boot.zone, "fewer_managed_pages": boot.delta,
            "fewer_managed_pages_range": [boot.deltas[0], boot.deltas[-1]], "protection": boot.protection,
            "also_fits": [{"node": n, "zone": zn, "fewer_managed_pages_range": [lo, hi]}
                          for n, zn, lo, hi in boot.alternatives],
            "message": boot_message(boot)},
        "warnings": snap.warnings,
    }


def boot_message(b: BootPattern) -> str:
    rng = f" (any of {b.deltas[0]}-{b.deltas[-1]} fits)" if len(b.deltas) > 1 else ""
    alt = "".join(f"; also fits: {lo}{'' if lo == hi else f'-{hi}'} fewer in Node {n} {zn}"
                  for n, zn, lo, hi in b.alternatives)
    prot = (" (the boot counts; a min_free_kbytes or watermark_scale_factor write keeps it, only a "
            "lowmem_reserve_ratio write recomputes it)" if b.protection == "stale" else "")
    return (f"boot-time pattern: matches with {b.delta} fewer managed pages in Node {b.node} {b.zone}{rng}{alt}; "
            f"protection is {b.protection}{prot}; watermarks were computed before the kernel freed its init memory, "
            f"and the first recompute removes it")


def _fmt_check(rep: dict[str, Any], strict: bool) -> str:
    out = [f"snapshot: {rep['snapshot']}",
           f"kernel:   {rep['kernel']}"
           + f"; ZONE_MOVABLE min: {rep['movable_rule']} (from the {rep['movable_rule_from']})"]
    i = rep["inputs"]
    out.append(f"inputs:   min_free_kbytes {i['min_free_kbytes']}, watermark_scale_factor {i['watermark_scale_factor']}, "
               f"lowmem_reserve_ratio {' '.join(map(str, i['lowmem_reserve_ratio']))}, THP {i['thp']} "
               f"(user min_free_kbytes unknown: taken as shown)")
    out.append("")
    rows = []
    for z in rep["zones"]:
        for f, v in z["fields"].items():
            if f == "protection":
                o, m = _tup(v["observed"]), _tup(v["model"])
                d = "0" if v["equal"] else "!="
            else:
                o, m, d = str(v["observed"]), str(v["model"]), f"{v['diff']:+d}" if v["diff"] else "0"
            rows.append([str(z["node"]), z["zone"], str(z["managed"]), f, o, m, d])
    out += _table([("node", ">", 4, ""), ("zone", "<", 8, "  "), ("managed", ">", 9, ""), ("field", "<", 12, "  "),
                   ("observed", ">", 28, ""), ("model", ">", 28, "  "), ("diff", ">", 5, "  ")], rows)
    out.append("")
    if rep["status"] == "equal":
        out.append(f"result: every zone equal ({len(rep['zones'])} zones: "
                   f"{'/'.join(k for k in rep['zones'][0]['fields'])})")
    elif rep["status"] == "boot-time pattern":
        out.append(f"result: {rep['differences']} values differ from the formula on the current managed counts")
        out.append(rep["boot_pattern"]["message"])
        if strict:
            out.append("--strict: the boot-time pattern counts as a difference")
    else:
        out.append(f"result: {rep['differences']} values differ (no boot-time pattern fits)")
    return "\n".join(out)


def _tup(v: list[int]) -> str:
    return "(" + ", ".join(map(str, v)) + ")"


def _table(cols: list[tuple[str, str, int, str]], rows: list[list[str]]) -> list[str]:
    """The lines of a text table. ``cols``: (header, "<" or ">", minimum width, separator written
    before the column). A column widens to its longest entry, so that 8+ digit values never run
    together: a right-aligned column without a separator keeps 2 spaces before its longest value,
    a left-aligned one followed by no separator 1 space after it."""
    widths = []
    for i, (head, align, width, sep) in enumerate(cols):
        longest = max([len(head)] + [len(r[i]) for r in rows])
        if align == ">" and not sep and i > 0:
            longest += 2
        elif align == "<" and i + 1 < len(cols) and not cols[i + 1][3]:
            longest += 1
        widths.append(max(width, longest))
    lines = []
    for r in [[c[0] for c in cols], *rows]:
        lines.append("".join(f"{sep}{v:{align}{w}}" for v, (_, align, _, sep), w in zip(r, cols, widths)).rstrip())
    return lines


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    snap = parse_snapshot(args.snapshot)
    rep = check_snapshot(snap)
    code = {"equal": EXIT_OK, "differs": EXIT_DIFFERS,
            "boot-time pattern": EXIT_DIFFERS if args.strict else EXIT_OK}[rep["status"]]
    rep["exit"] = code
    for w in snap.warnings:
        print(f"atomgym: warning: {w}", file=err)
    if args.json:
        print(json.dumps(rep), file=out)
    else:
        print(_fmt_check(rep, args.strict), file=out)
    return code


# ---- whatif -------------------------------------------------------------------------------
def can_be_free(snap: Snapshot) -> tuple[int, str]:
    """Pages that can be free on the snapshot's machine, and where the number comes from:
    MemAvailable (meminfo) if present, else free + file pages (vmstat), else free pages."""
    if "MemAvailable" in snap.meminfo:
        return snap.meminfo["MemAvailable"] // 4, "MemAvailable"
    free = sum(z.free for z in snap.zones)
    if "nr_inactive_file" in snap.vmstat and "nr_active_file" in snap.vmstat:
        return free + snap.vmstat["nr_inactive_file"] + snap.vmstat["nr_active_file"], "free + file pages"
    return free, "free pages in the snapshot"


def hazards(m: Machine, snap: Snapshot) -> list[str]:
    """Writes the kernel accepts but that leave the machine unable to work."""
    h: list[str] = []
    rows = m.zone_rows()
    for r, z in zip(rows, snap.zones):
        r["node"] = z.node          # the snapshot's node ids (they need not be 0..N-1)
    pop = [r for r in rows if r["managed"] > 0]
    total_min = sum(r["min"] for r in pop)
    total = sum(r["managed"] for r in pop)
    avail, avail_src = can_be_free(snap)
    if total_min >= total:
        h.append(f"min watermarks sum to {total_min} pages, >= all managed memory ({total} pages): no allocation "
                 f"without reserve access can succeed, kswapd can never balance: the machine deadlocks")
    elif total_min >= avail:
        h.append(f"min watermarks sum to {total_min} pages, >= what can be free ({avail} pages, {avail_src}): "
                 f"free memory can never get back above min; expect reclaim stalls, OOM kills or a deadlock")
    for r in pop:
        if r["min"] >= r["managed"]:
            h.append(f"Node {r['node']} {r['zone']}: min {r['min']} >= managed {r['managed']}: the zone can never "
                     f"be above its min watermark")
        elif r["high"] >= r["managed"]:
            h.append(f"Node {r['node']} {r['zone']}: high {r['high']} >= managed {r['managed']}: kswapd can never "
                     f"balance this zone")
    return h


def _state_json(setting: str, m: Machine, snap: Snapshot, hz: list[str]) -> dict[str, Any]:
    zones = []
    for r, z in zip(m.zone_rows(), snap.zones):
        zones.append({"node": z.node, "zone": r["zone"], "managed": r["managed"], "min": r["min"], "low": r["low"],
                      "high": r["high"], "promo": r["promo"], "boost": r["boost"], "protection": r["protection"]})
    d: dict[str, Any] = {"set": setting, "min_free_kbytes": m.min_free_kbytes, "zones": zones}
    if hz:
        d["hazard"] = hz
    return d


def _fmt_state(d: dict[str, Any], m: Machine) -> str:
    out = [f"after {d['set']}: min_free_kbytes {m.min_free_kbytes}"
           + (f" (user {m.user_min_free_kbytes})" if m.user_min_free_kbytes >= 0 else "")
           + f", watermark_scale_factor {m.watermark_scale_factor}, watermark_boost_factor {m.watermark_boost_factor}, "
           f"lowmem_reserve_ratio {' '.join(map(str, m.lowmem_reserve_ratio))}, THP {m.thp}"]
    rows = [[str(z["node"]), z["zone"], *(str(z[k]) for k in ("managed", "min", "low", "high", "promo", "boost")),
             _tup(z["protection"])] for z in d["zones"]]
    out += _table([("node", ">", 4, ""), ("zone", "<", 8, "  "), ("managed", ">", 9, ""), ("min", ">", 8, ""),
                   ("low", ">", 8, ""), ("high", ">", 8, ""), ("promo", ">", 8, ""), ("boost", ">", 7, ""),
                   ("protection", "<", 0, "  ")], rows)
    for h in d.get("hazard", []):
        out.append(f"HAZARD: {h}")
    return "\n".join(out)


def _clip(s: str) -> str:
    """repr() of a command-line value for a message, cut short."""
    return repr(s) if len(s) <= 80 else repr(s[:60]) + f"... ({len(s)} characters)"


def parse_set(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"--set {_clip(text)}: expected KEY=VALUE with KEY one of {', '.join(WRITABLE_KEYS)}")
    if key not in WRITABLE_KEYS:
        raise CliError(f"--set {_clip(text)}: unknown key {key!r}; valid keys: {', '.join(WRITABLE_KEYS)}")
    return key, value.strip()


def cmd_whatif(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.set:
        raise CliError("whatif: give at least one --set KEY=VALUE")
    writes = [parse_set(s) for s in args.set]     # all keys checked before anything is printed
    snap = parse_snapshot(args.snapshot)
    for w in snap.warnings:
        print(f"atomgym: warning: {w}", file=err)
    m = snap.observed_machine()                   # user_min_free_kbytes = -1: no user write yet
    dry = m.copy()                                # reject a bad write before printing anything
    for raw, (key, value) in zip(args.set, writes):
        try:
            dry.write(key, value)
        except SysctlError as e:
            raise CliError(f"--set {_clip(raw)}: {e}") from None
    blocks = []
    for raw, (key, value) in zip(args.set, writes):
        try:
            m.write(key, value)
        except SysctlError as e:
            raise CliError(f"--set {_clip(raw)}: {e}") from None
        hz = hazards(m, snap)
        for h in hz:
            print(f"atomgym: WARNING: after {raw.strip()}: {h} (the kernel accepts this write)", file=err)
        d = _state_json(f"{key}={value}", m, snap, hz)
        if args.json:
            print(json.dumps(d), file=out)
        else:
            blocks.append(_fmt_state(d, m))
    if not args.json:
        print(f"snapshot: {snap.source} (kernel {snap.version}); writes applied in order from the state it shows\n",
              file=out)
        print("\n\n".join(blocks), file=out)
    return EXIT_OK


# ---- snapshot -----------------------------------------------------------------------------
def take_snapshot(root: str = "/", files: Sequence[str] = SNAPSHOT_FILES) -> tuple[str, list[str]]:
    """The `tail -n +1` text of the host's files (read only). Returns (text, notes)."""
    parts: list[str] = []
    notes: list[str] = []
    for path in files:
        real = os.path.join(root, path.lstrip("/"))
        try:
            raw = read_bounded(real, MAX_SNAPSHOT_BYTES)   # /proc files are small; a device never ends
        except OSError as e:
            notes.append(f"skipped {path}: {e.strerror or e}")
            continue
        if len(raw) > MAX_SNAPSHOT_BYTES:
            notes.append(f"skipped {path}: larger than {MAX_SNAPSHOT_BYTES >> 20} MiB (not a /proc or /sys file)")
            continue
        body = raw.decode("utf-8", errors="replace")
        parts.append(("\n" if parts else "") + f"==> {path} <==\n" + body)
    return "".join(parts), notes


def _output_target(path: str, force: bool) -> os.stat_result | None:
    """Check that ``path`` may be written: nothing there, or a regular file and --force. Returns
    its lstat (None if absent). Symlinks, directories and device nodes are refused, never replaced."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CliError(f"{path}: cannot write the snapshot there: {e.strerror or e}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise CliError(f"{path} is a symbolic link; refusing to replace it or write through it "
                           f"(give the path of a regular file)")
        if stat.S_ISDIR(st.st_mode):
            raise CliError(f"{path} is a directory; give a file name (e.g. {os.path.join(path, 'snapshot.txt')})")
        if not stat.S_ISREG(st.st_mode):
            raise CliError(f"{path} is not a regular file (a device, FIFO or socket); refusing to replace it "
                           f"(use `-o FILE` with a regular file, or no -o for stdout)")
        if not force:
            raise CliError(f"{path} exists; refusing to overwrite it (use --force)")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise CliError(f"{path}: no such directory {parent!r}; create it first")
    return st


def write_atomically(path: str, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` all or nothing: a temporary file created exclusively (O_EXCL, a
    fresh name) in the target's directory, flushed and fsynced, then renamed onto ``path``, which
    must be absent or (with ``force``) a regular file. Without ``force`` the final step is a hard
    link, which fails if ``path`` appeared meanwhile. The temporary file never outlives a failure.
    Raises CliError (one line) for a refused target or a failed write (full disk, read-only dir)."""
    st = _output_target(path, force)
    parent = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise CliError(f"{path}: cannot create a file in {parent!r}: {e.strerror or e}") from None
    try:
        try:
            # the permissions a plain open() would give (mkstemp's are 0600), or the replaced file's
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~umask)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fd = -1
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            if force:
                _output_target(path, force)        # still absent or a regular file
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)             # atomic, and never onto an existing file
                except FileExistsError:
                    raise CliError(f"{path} exists; refusing to overwrite it (use --force)") from None
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                        raise
                    _output_target(path, force)    # a file system without hard links
                    os.replace(tmp, path)
        except OSError as e:
            raise CliError(f"{path}: cannot write the snapshot: {e.strerror or e}; nothing was written") from None
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def cmd_snapshot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.output is not None and not args.output.strip():
        raise CliError("-o: empty file name; give a file to write, or no -o for stdout")
    if args.output:
        _output_target(args.output, args.force)   # refuse before reading anything
    text, notes = take_snapshot(args.root)
    for n in notes:
        print(f"atomgym: note: {n}", file=err)
    if "==> /proc/zoneinfo <==" not in text:
        raise CliError(f"cannot read {os.path.join(args.root, 'proc/zoneinfo')}: a snapshot without "
                       f"zoneinfo is of no use (is this a Linux host?)")
    if args.output:
        write_atomically(args.output, text, args.force)
        print(f"atomgym: wrote {args.output} ({len(text.splitlines())} lines)", file=err)
    else:
        out.write(text)
    return EXIT_OK


def cmd_warmup(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Compile every entry point ahead (atomgym/warmup.py)."""
    from .warmup import portable, warmup
    if args.portable:
        return portable(err=err)
    return warmup(err)


# ---- the agents' commands: each is its module's own command line ------------------------------
AGENT_COMMANDS = {
    "train": ("train", "train a policy (atomgym.agents.train; `python -m agents.train` in a checkout)"),
    "evaluate": ("evaluate", "evaluate baselines and trained models (atomgym.agents.evaluate)"),
    "report": ("report", "summary.md and figures of an episodes.csv (atomgym.agents.report)"),
    "replay": ("replay", "re-run saved episodes and compare every counter (atomgym.agents.replay)"),
    "fullreport": ("fullreport", "train per seed, evaluate, report (atomgym.agents.fullreport)"),
    "multiseed": ("multiseed", "train one config over many seeds (atomgym.agents.multiseed)"),
    "pretrained": ("pretrained.__main__", "export a finished run as a shipped policy (atomgym.agents.pretrained)"),
}


def run_agent_command(name: str, argv: Sequence[str]) -> int:
    """``atomgym NAME ARGS...``: atomgym.agents.NAME's main with ARGS (imported only when used:
    torch, SB3 and pandas load with it)."""
    import importlib

    from . import agents
    # messages and usage name the command the user typed (a wheel has no `python -m agents.NAME`)
    before = agents.invoked_as
    agents.invoked_as = "python -m atomgym" if os.path.basename(sys.argv[0] or "") == "__main__.py" else "atomgym"
    try:
        return importlib.import_module(f"atomgym.agents.{AGENT_COMMANDS[name][0]}").main(list(argv))
    finally:
        agents.invoked_as = before


# ---- entry point --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """atomgym's parser: each subcommand's options are its fields in atomgym/schema.py
    (ATOMGYM_COMMANDS: parser, help, one-line errors and the docs' tables from one place)."""
    p = Parser(prog="atomgym", description="Linux watermark model: read, check and modify machine snapshots.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, text in (("snapshot", "write a snapshot of this host (read only)"),
                       ("check", "recompute watermarks and protection and compare with a snapshot"),
                       ("whatif", "apply sysctl writes to a snapshot as the kernel would"),
                       ("warmup", "compile the simulator and the envs ahead of use (cached per user and CPU)")):
        add_arguments(sub.add_parser(name, help=text), ATOMGYM_COMMANDS[name])
    from .realkernel.cli import add_subcommands as _add_realkernel
    _add_realkernel(sub, Parser)
    f = sub.add_parser("fleet", help="generate a fleet of scenarios by family, write or classify it "
                                     "(docs/scenarios.md \"Fleets\")")
    add_arguments(f, ATOMGYM_COMMANDS["fleet"])
    f.set_defaults(handler=_fleet_command)
    for name, (_, text) in AGENT_COMMANDS.items():   # parsed by their own modules (main() hands them over)
        sub.add_parser(name, help=text, add_help=False)
    return p


def _fleet_command(args, out, err) -> int:
    # imported when run: it loads pandas and the agents (seconds), which `atomgym check` never needs
    from .agents.fleetclass import cmd_fleet
    return cmd_fleet(args, out, err)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    av = list(sys.argv[1:] if argv is None else argv)
    if av and av[0] in AGENT_COMMANDS:
        return run_agent_command(av[0], av[1:])
    try:
        if av[:2] == ["fidelity", "fit"]:      # its own parser: fidelity's DIR... would take "fit" for a folder
            from .realkernel.cli import build_fit_parser
            args = build_fit_parser(Parser).parse_args(av[2:])
        else:
            args, extra = build_parser().parse_known_args(av)
            if extra:                  # named by the subcommand typed, as its other errors are
                typed = " ".join(x for x in ("atomgym", args.command, getattr(args, "rk_command", None)) if x)
                raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see `{typed} --help`)")
    except UsageError as e:    # prog is "atomgym" or "atomgym SUBCOMMAND": the line that shows its help
        print(f"atomgym: error: {one_line(str(e))}", file=err)
        return EXIT_BAD_INPUT
    except SystemExit as e:    # --help (printed to stdout): argparse exits 0
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_BAD_INPUT
    handler = getattr(args, "handler", None) or {"snapshot": cmd_snapshot, "check": cmd_check,
                                                 "whatif": cmd_whatif, "warmup": cmd_warmup}[args.command]
    try:
        code = handler(args, out, err)
        out.flush()                    # a full disk or a closed pipe on stdout shows here, not at exit
        return code
    except (SnapshotError, CliError) as e:
        print(f"atomgym: error: {one_line(str(e))}", file=err)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        _silence_stdout(out)
        return EXIT_OK
    except OSError as e:               # stdout on a full disk (`> /dev/full`), an I/O error
        _silence_stdout(out)
        print(f"atomgym: error: cannot write the output: {e.strerror or e}", file=err)
        return EXIT_BAD_INPUT


def one_line(msg: str) -> str:
    """A message as one line: a newline or other control character (a file name may hold one)
    is shown escaped, as repr() would."""
    if msg.isprintable():
        return msg
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def _silence_stdout(out: TextIO) -> None:
    """After a failed write to stdout, Python would flush it again at exit and print a second
    error: point the real stdout at /dev/null (nothing more can reach the reader anyway)."""
    if out is sys.stdout:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
