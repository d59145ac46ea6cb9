"""`python -m agents.report EPISODES_CSV [EPISODES_CSV...] [--out DIR] [--reps N]`: the Markdown
summary of an evaluation (the README's tables).

Reads the ``episodes.csv`` that ``agents.evaluate`` wrote (several are merged; a repeated header, as
``cat a.csv b.csv`` leaves, is skipped; a (policy, run, scenario, seed) seen twice counts once) and
prints the summary: per scenario score mean ± std, IQM and mean with bootstrap 95 % CIs, domain
counters; across scenarios IQM / mean / optimality gap with stratified-bootstrap CIs, the
probability of improvement of every policy over every other, the fraction of the
default-to-oracle gap closed (agents/stats.py). With ``--out DIR`` it writes DIR/summary.md and the
plots (agents/plots.py) instead. Bad input: one line naming the file, line and column, exit 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from atomgym import safefiles, schema
from atomgym.agents import baselines, deploy, plots, stats
from atomgym.agents.results import BLOCKS_FILE, load_rows, read_blocks
from atomgym.agents.usage import Parser, UsageError, fail
from atomgym.envs.cost import COSTS, DEFAULT_COST

def load_many(paths: list[Path], cost: str = DEFAULT_COST):
    """The episodes of several CSVs, merged; ValueError (one line) when they cannot be compared:
    one scenario run at two episode lengths (a score is relative to the kernel default's cost over
    the same length), or evaluations recorded with another simulator or cost (agents.evaluate's
    blocks.json beside a CSV)."""
    import pandas as pd
    frames = [load_rows(p) for p in paths]
    check_comparable(paths, frames)
    return priced(pd.concat(frames, ignore_index=True), cost, paths)


def priced(df, cost: str, paths: list[Path]):
    """Every episode's cost and score under the named cost, from its term columns (a CSV written
    under another named cost, e.g. before v1, is then read alike); the score's reference is the
    defaults' episode on the same machine and seed. Rows without the term columns or without that
    reference keep the CSV's cost and score under the default cost, and are refused under another."""
    need = [*deploy.TERM_COLUMNS.values(), "terminated"]
    ref = set(zip(*(df.loc[df["policy"] == deploy.REFERENCE, k] for k in ("scenario", "seed"))))
    whole = all(k in df for k in need) and set(zip(df["scenario"], df["seed"])) <= ref
    if whole:
        return deploy.reprice(df, COSTS[cost])
    if cost != DEFAULT_COST:
        raise ValueError(f"{', '.join(map(str, paths))}: --cost {cost}: needs the columns {', '.join(need)} and "
                         f"the {deploy.REFERENCE} episode of every scenario and seed")
    return df


def check_comparable(paths: list[Path], frames: list) -> None:
    seen: dict[tuple[str, float], Path] = {}
    for p, df in zip(paths, frames):
        if "duration_s" not in df:
            continue
        for sc, d in df.groupby("scenario", sort=False)["duration_s"]:
            for v in dict.fromkeys(d):
                other = next(((q, w) for (s2, w), q in seen.items() if s2 == sc and w != v), None)
                if other is not None:
                    where = str(p) if other[0] == p else f"{other[0]} and {p}"
                    raise ValueError(f"{where}: scenario {sc} was run with episodes of {other[1]:g} s and "
                                     f"{v:g} s; their scores are not comparable: report each length on its own")
                seen.setdefault((sc, v), p)
    digests: dict[tuple[str, str], Path] = {}
    for p in paths:
        for k, v in _recorded_digests(p).items():
            other = next((q for (k2, w), q in digests.items() if k2 == k and w != v), None)
            if other is not None:
                what = "simulator sources" if k == "simulator" else "cost definition"
                where = str(p) if other == p else f"{other} and {p}"
                raise ValueError(f"{where}: evaluated with two {what}s (the blocks.json beside each); their "
                                 f"scores are not comparable: report each on its own")
            digests.setdefault((k, v), p)


def _recorded_digests(csv_path: Path) -> dict[str, str]:
    """The simulator and cost digests recorded beside an agents.evaluate CSV (its blocks.json),
    one each; {} when there is none or it is not readable (nothing recorded, nothing to check)."""
    f = csv_path.parent / BLOCKS_FILE
    try:
        if not f.is_file():
            return {}
        out: dict[str, str] = {}
        for ident in read_blocks(f, csv_path).values():
            for k in ("simulator", "cost"):
                v = str(ident[k])
                if out.setdefault(k, v) != v:
                    what = "simulator sources" if k == "simulator" else "cost definition"
                    raise ValueError(f"{csv_path}: its blocks were evaluated with two {what}s ({f}); their "
                                     "scores are not comparable")
        return out
    except (UsageError, KeyError, TypeError):
        return {}


def fmt_ci(m: float, lo: float, hi: float) -> str:
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def _cell(text: str) -> str:
    """A table cell: a `|` in a name (a policy label, a scenario) escaped, a line break a space,
    so the row keeps its columns."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(_cell, r)) + " |" for r in rows])


def tables(df) -> str:
    """The two README tables: score mean ± std (over runs) per policy x scenario, and the means of
    atomic failures / drops / reserved MiB·s / stall s."""
    d, _ = stats.dedupe(df)
    u = stats.units(d)
    pols = list(dict.fromkeys(d["policy"]))
    scs = list(dict.fromkeys(d["scenario"]))
    score, other = [], []
    for p in pols:
        a, b = [], []
        for s in scs:
            x = u.loc[(u["policy"] == p) & (u["scenario"] == s), "score"].to_numpy()
            if not len(x):
                a.append("")
                b.append("")
                continue
            sd = x.std(ddof=1) if len(x) > 1 else 0.0
            a.append(f"{x.mean():.3f} ± {sd:.3f}")
            g = d[(d["policy"] == p) & (d["scenario"] == s)]
            f, dr, r, st = (g[k].mean() for k in ("atomic_fail", "drops_total", "reserved_mib_s", "stall_s"))
            b.append(f"{f:.0f} / {dr:.0f} / {r:.0f} / {st:.1f}")
        score.append([f"`{p}`", *a])
        other.append([f"`{p}`", *b])
    head = ["policy", *scs]
    return ("Score (the env's normalised score: 1 = kernel default, 2 = zero cost; mean ± std over runs):\n\n"
            + _md(head, score) + "\n\nAtomic allocation failures / dropped packets / reserved MiB·s / "
            "direct-reclaim stall s (means over episodes):\n\n" + _md(head, other))


def summary(df, reps: int = 2000, best_heuristic: str | None = None, with_deployment: bool = True) -> str:
    """The whole Markdown summary (agents/stats.py for what each number is); ``with_deployment=False``
    leaves out the deployment statistics (agents.fullreport gives them their own section)."""
    d, dropped = stats.dedupe(df)
    u = stats.units(d)
    pols = list(dict.fromkeys(d["policy"]))
    scs = list(dict.fromkeys(d["scenario"]))
    out = [tables(d)]
    if dropped:
        out.append(f"({dropped} repeated (policy, run, scenario, seed) rows counted once.)")
    # a machine with no random input (every policy's episodes identical on every seed) is one run, not N
    one, det = deploy.collapse_deterministic(d)
    ps = stats.per_scenario(stats.units(one), reps=reps)
    rows = [[f"`{r.policy}`", r.scenario, str(r.n), fmt_ci(r.mean, r.mean_lo, r.mean_hi), fmt_ci(r.iqm, r.iqm_lo, r.iqm_hi)]
            for r in ps.itertuples()]
    out.append("Per scenario, score with 95 % percentile-bootstrap CIs (n = runs):\n\n"
               + _md(["policy", "scenario", "n", "mean [95 % CI]", "IQM [95 % CI]"], rows))
    if det:
        out.append(f"Deterministic machines (every policy's episodes identical on every seed): {', '.join(det)}: one "
                   "run each above; in the across-scenario statistics below their column repeats that one run, so "
                   "they add no spread to a confidence interval and are no evidence of one.")
    gc = stats.gap_closed(d) if "cost" in d else None
    if gc is not None and len(gc):
        tab = gc.pivot(index="policy", columns="scenario", values="gap_closed").reindex(index=pols, columns=scs)
        rows = [[f"`{p}`", *("—" if not np.isfinite(v) else f"{v:.2f}" for v in tab.loc[p])] for p in tab.index]
        out.append("Fraction of the kernel-default-to-`oracle-static` cost gap closed (1 = as the per-episode "
                   "hindsight-best static setting, 0 = as the default, < 0 worse; — where the oracle is no "
                   "better than the default):\n\n" + _md(["policy", *scs], rows))
    common = [s for s in scs if all(((u["policy"] == p) & (u["scenario"] == s)).any() for p in pols)]
    if common:
        mats = stats.matrices(u, pols, common)
        gamma = None
        if stats.ORACLE in mats:
            gamma = mats[stats.ORACLE].mean(axis=0)
        ag = stats.aggregate(mats, gamma, reps=reps)
        rows = [[f"`{r.policy}`", str(r.runs), fmt_ci(r.iqm, r.iqm_lo, r.iqm_hi), fmt_ci(r.mean, r.mean_lo, r.mean_hi),
                 "—" if not np.isfinite(r.opt_gap) else fmt_ci(r.opt_gap, r.opt_gap_lo, r.opt_gap_hi)]
                for r in ag.itertuples()]
        og = ("optimality gap below the scenario's `oracle-static` mean score" if gamma is not None
              else "optimality gap (needs `oracle-static` rows)")
        out.append(f"Across {len(common)} scenario(s) ({', '.join(common)}): IQM, mean and {og}, "
                   "stratified-bootstrap 95 % CIs (runs per scenario):\n\n"
                   + _md(["policy", "runs", "IQM [95 % CI]", "mean [95 % CI]", "optimality gap [95 % CI]"], rows))
        names = list(mats)
        heur = [p for p in names if not deploy.is_bound(p)]
        best = best_heuristic or (max(heur, key=lambda p: float(ag.loc[ag.policy == p, "iqm"].iloc[0])) if heur else None)
        pairs = [(a, best) for a in names if best is not None and a != best]
        tab, cis = stats.improvement_table(mats, reps=min(reps, 1000), with_ci=pairs)
        rows = [[f"`{a}`", *("" if a == b else f"{tab.loc[a, b]:.2f}" for b in names)] for a in names]
        out.append("Probability of improvement P(row > column), Mann-Whitney per scenario averaged over "
                   "scenarios:\n\n" + _md(["P(row > col)", *[f"`{b}`" for b in names]], rows))
        if pairs:
            rows = [[f"`{a}`", fmt_ci(tab.loc[a, best], *cis[(a, best)])] for a, _ in pairs]
            out.append(f"Probability of improvement over the best heuristic by IQM (`{best}`; bounds excluded), "
                       "stratified-bootstrap 95 % CIs:\n\n" + _md(["policy", f"P(policy > {best}) [95 % CI]"], rows))
    if with_deployment:
        out.append(deployment(d, reps=min(reps, 500)))
    out.append(f"Decision rule: {deploy.DECISION_RULE}.")
    return "\n\n".join(x for x in out if x) + "\n"


def _f(v: float, fmt: str = ".3f") -> str:
    return "—" if not np.isfinite(v) else format(v, fmt)


def deployment(d, reps: int = 500) -> str:
    """The deployment statistics (agents/deploy.py) and the cost's price sensitivity, as Markdown;
    empty without kernel-default rows or the cost's term columns."""
    if not (d["policy"] == deploy.REFERENCE).any() or not set(deploy.TERM_COLUMNS.values()) <= set(d.columns):
        return ""
    classes = deploy.classify(d)
    pols = [p for p in dict.fromkeys(d["policy"]) if p != deploy.REFERENCE]
    vs = "psi" if (d["policy"] == "psi").any() else None
    tab = deploy.deployment_table(d, pols, classes, versus=vs, reps=reps)
    n = {c: sum(v == c for v in classes.values()) for c in (deploy.HEADROOM, deploy.CONTROL, deploy.UNCONTROLLABLE)}
    rows = []
    for r in tab.to_dict("records"):
        p_vs = ("" if vs is None or r["policy"] == vs else
                f"{_f(r[f'p_vs_{vs}'], '.2f')} [{_f(r.get('p_lo', np.nan), '.2f')}, {_f(r.get('p_hi', np.nan), '.2f')}] / "
                f"[{_f(r.get('p_task_lo', np.nan), '.2f')}, {_f(r.get('p_task_hi', np.nan), '.2f')}]")
        rows.append([f"`{r['policy']}`" + (" (bound)" if deploy.is_bound(r["policy"]) else ""), str(r["runs"]),
                     f"{_f(r['cost_ratio'])} [{_f(r['cost_ratio_lo'])}, {_f(r['cost_ratio_hi'])}]",
                     _f(r["log_ratio"], "+.3f"), _f(r["p_harm"], ".2f"), _f(r["worst_decile"]),
                     _f(r["gap_closed"], ".2f"), p_vs])
    head = ["policy", "runs", "fleet cost ratio ΣC/ΣC_def [95 % CI]", "mean log(C/C_def)",
            "P(score < 0.99), no headroom", "worst decile, no headroom", "gap closed, headroom",
            f"P(policy > {vs}) [two-level] / [task-level]" if vs else "paired P"]
    sens, flips = deploy.sensitivity(d, pols)
    srows = [[f"`{p}`", *(_f(float(v)) for v in sens.loc[p])] for p in sens.index]
    by_class = deploy.class_cost_ratios(d, pols, classes)
    crows = [[f"`{p}`" + (" (bound)" if deploy.is_bound(p) else ""), *(_f(float(v)) for v in by_class.loc[p])]
             for p in by_class.index]
    return ("Deployment statistics (agents/deploy.py): machines by measured class: "
            f"{n[deploy.HEADROOM]} with headroom, {n[deploy.CONTROL]} negative controls, "
            f"{n[deploy.UNCONTROLLABLE]} with uncontrollable loss (headroom: `oracle-static` scores above "
            f"1 + {deploy.HEADROOM_MARGIN}). Paired over the same (machine, seed); CIs by bootstrap over "
            "training runs and seeds (two-level) or over machines (task-level).\n\n" + _md(head, rows)
            + f"\n\n{deploy.CLASS_HEAD}: ΣC/ΣC_def within each measured class of machine "
            "(a reserve held everywhere pays on the negative controls what it saves where there is headroom):\n\n"
            + _md(["policy", f"headroom ({n[deploy.HEADROOM]})", f"negative controls ({n[deploy.CONTROL]})",
                   f"uncontrollable ({n[deploy.UNCONTROLLABLE]})", "all"], crows)
            + _blind_vs_adaptive(tab, by_class)
            + f"\n\n{deploy.SENSITIVITY_HEAD} of the cost's terms (reserved memory 10x cheaper or dearer; "
            "atomic failures charged like dropped packets, the cost `atomic-charged`: the default cost does not "
            "charge them, a failed refill the next NAPI poll retries loses nothing):\n\n"
            + _md(["policy", *sens.columns], srows)
            + ("\n\nConclusions that flip with the price: " + "; ".join(flips) + "." if flips else
               "\n\nNo conclusion flips with the price."))


def _blind_vs_adaptive(tab, by_class) -> str:
    """One sentence: the best adaptive heuristic (a controller or an in-kernel tuner) against the best
    blind static raise (one write at boot, the same rule on every machine), by fleet cost ratio."""
    kinds = {n: baselines.get(n).kind for n in baselines.names()}
    ratio = dict(zip(tab["policy"], tab["cost_ratio"]))
    adaptive = [p for p in ratio if kinds.get(p) in ("userspace", "in-kernel")]
    blind = [p for p in ratio if kinds.get(p) == "static" and p != deploy.REFERENCE and not deploy.is_bound(p)]
    if not adaptive or not blind:
        return ""
    a, b = min(adaptive, key=ratio.get), min(blind, key=ratio.get)
    word = "does not reach" if ratio[b] > ratio[a] else "reaches"
    return (f"\n\n{deploy.BLIND_HEAD}, `{b}` ({_f(ratio[b])}), {word} the best adaptive heuristic, "
            f"`{a}` ({_f(ratio[a])}); on the negative controls it costs {_f(float(by_class.loc[b, deploy.CONTROL]))}x "
            f"the defaults' ΣC (`{a}`: {_f(float(by_class.loc[a, deploy.CONTROL]))}x), on the machines with headroom "
            f"{_f(float(by_class.loc[b, deploy.HEADROOM]))}x (`{a}`: {_f(float(by_class.loc[a, deploy.HEADROOM]))}x).")


def verdict(df, learned: str, reps: int = 2000) -> str:
    """One line: the learned policy against the best baseline by IQM over the scenarios both ran
    ("PPO vs best baseline on ...: IQM ... vs ...; P(PPO > best) = ... [CI]: better/worse/no clear
    difference", decided by whether the probability-of-improvement CI excludes 0.5)."""
    d, _ = stats.dedupe(df)
    u = stats.units(d)
    base = [p for p in dict.fromkeys(d["policy"]) if p in baselines.names() and not deploy.is_bound(p)]
    scs = [s for s in dict.fromkeys(d["scenario"])
           if all(((u["policy"] == p) & (u["scenario"] == s)).any() for p in [learned, *base])]
    if learned not in set(d["policy"]) or not base or not scs:
        return f"{learned.upper()} vs best baseline: no common scenario to compare on"
    mats = stats.matrices(u, [learned, *base], scs)
    ag = stats.aggregate(mats, None, reps=reps).set_index("policy")
    best = max(base, key=lambda p: ag.loc[p, "iqm"])
    _, cis = stats.improvement_table({learned: mats[learned], best: mats[best]}, reps=min(reps, 1000),
                                     with_ci=[(learned, best)])
    pi = stats.prob_improvement(mats[learned], mats[best])
    lo, hi = cis[(learned, best)]
    word = "better" if lo > 0.5 else "worse" if hi < 0.5 else "no clear difference"
    a, b = ag.loc[learned], ag.loc[best]
    return (f"{learned.upper()} vs best baseline on {', '.join(scs)}: IQM {fmt_ci(a.iqm, a.iqm_lo, a.iqm_hi)} "
            f"({int(a.runs)} run{'s' if a.runs != 1 else ''}) vs {best} {fmt_ci(b.iqm, b.iqm_lo, b.iqm_hi)}; "
            f"P({learned} > {best}) = {fmt_ci(pi, lo, hi)}: {word}"
            + (f" (only {int(a.runs)} training run{'s' if a.runs > 1 else ''}: the CIs do not cover training-seed "
               "variation; make report trains 10)" if a.runs < 3 else ""))


def write_summary(csv_paths, out: Path, reps: int = 2000, header: str = "", cost: str = DEFAULT_COST) -> list[Path]:
    """DIR/summary.md and DIR/*.png from one or more episodes.csv files; returns the files written."""
    paths = [csv_paths] if isinstance(csv_paths, Path) else list(csv_paths)
    df = load_many(paths, cost)
    md = out / "summary.md"
    safefiles.replace_text(md, (header + "\n\n" if header else "") + summary(df, reps=reps))
    return [md, *plots.evaluation_plots(df, out)]




def main(argv: list[str] | None = None) -> int:
    ap = Parser("report", description=__doc__.split("\n\n")[0])
    schema.add_arguments(ap, schema.REPORT)
    try:
        args = ap.parse_args(argv)
    except UsageError as e:
        return fail("report", e)
    try:
        if args.out is not None:
            if not args.out.strip():             # Path("") is ".": the files would land in the current folder
                raise ValueError("--out: empty; give the folder to write summary.md and the plots in")
            args.out = Path(args.out)
            if args.out.exists() and not args.out.is_dir():
                raise ValueError(f"--out {args.out}: is a file, not a folder")
            args.out.mkdir(parents=True, exist_ok=True)
            for f in write_summary(args.episodes_csv, args.out, reps=args.reps, cost=args.cost):
                print(f"wrote {f}")
            return 0
        df = load_many(args.episodes_csv, args.cost)
        print(summary(df, reps=args.reps))
    except ValueError as e:
        return fail("report", e)
    except OSError as e:
        return fail("report", f"{getattr(e, 'filename', '') or ''}: {e.strerror}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
