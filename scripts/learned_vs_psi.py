"""The learned policy's done-when table against psi (docs/training.md): one row per policy of the
merged ``episodes.csv`` files (later files win on a (policy, run, scenario, seed) they share).

    python scripts/learned_vs_psi.py runs/report-X/eval/episodes.csv runs/residual-eval/episodes.csv \
        --policies psi,psi-gated,ppo,residual [--planner oracle-planner] [--margin 0.05] [--final]

Machines "without headroom" are agents/deploy.classify()'s (oracle-static within its margin of the
defaults); "psi trails" the machines where ``--planner``'s mean score is at least ``--margin``
above psi's. Per policy: the fleet cost ratio with its two-level CI, P(score < 0.99) and the worst
score on machines without headroom, the paired difference of its fleet cost ratio to psi's (CIs
over seeds and over machines), P(policy > psi) on all machines and where psi trails (with CIs),
and the largest mean-score loss to psi on the other machines. Every statistic is agents/deploy.py's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from atomgym.agents import deploy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="learned_vs_psi.py", description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="episodes.csv files (agents.evaluate), merged")
    ap.add_argument("--policies", required=True, help="comma-separated policies (psi is the reference)")
    ap.add_argument("--planner", default="oracle-planner", help="the bound psi is measured against")
    ap.add_argument("--margin", type=float, default=0.05, help="psi trails when planner - psi >= this")
    ap.add_argument("--final", action="store_true",
                    help="also the mean final min_free_kbytes and watermark_scale_factor where psi trails")
    a = ap.parse_args(argv)
    frames = []
    for f in a.csv:
        if not Path(f).is_file():
            print(f"learned_vs_psi.py: {f}: no such file", file=sys.stderr)
            return 2
        frames.append(pd.read_csv(f))
    key = ["policy", "run", "scenario", "seed"]
    ep = pd.concat(frames[::-1], ignore_index=True).drop_duplicates(key, keep="first")
    pols = [p.strip() for p in a.policies.split(",") if p.strip()]
    missing = sorted({*pols, "psi", "kernel-default", a.planner, "oracle-static"} - set(ep.policy))
    if missing:
        print(f"learned_vs_psi.py: no episodes of {', '.join(missing)} in {', '.join(a.csv)}", file=sys.stderr)
        return 2
    pols = ["psi", *[p for p in pols if p != "psi"]]
    cls = deploy.classify(ep)
    nohead = [m for m, c in cls.items() if c != "headroom"]
    orc = ep[ep.policy == a.planner].groupby("scenario").score.mean()
    ps = ep[ep.policy == "psi"].groupby("scenario").score.mean()
    trail = [m for m in ps.index if orc[m] - ps[m] >= a.margin]
    rest = [m for m in ps.index if m not in trail]
    print(f"{len(ps)} machines: {len(nohead)} without headroom, {len(trail)} where psi trails {a.planner} "
          f"by >= {a.margin:g} ({', '.join(trail)})")
    P = dict(zip(pols, deploy.align_all([deploy.paired(ep, p) for p in pols])))
    ref = P["psi"]
    sc = ep[ep.scenario.isin(rest)].groupby(["policy", "scenario"]).score.mean()
    print("| policy | runs | fleet cost ratio [CI] | P(score<0.99) no headroom; worst | diff to psi [seeds] / [machines] "
          "| P(>psi) all | P(>psi) where psi trails | largest loss to psi elsewhere |")
    print("|---|---|---|---|---|---|---|---|")
    for p in pols:
        x = P[p]
        r = deploy.fleet_cost_ratio(x)
        ci = deploy.bootstrap(deploy.fleet_cost_ratio, [x])
        h, _ = deploy.harm(x, nohead)
        worst = float(np.nanmin(deploy.on_machines(x, nohead).score))
        row = [p, str(ep[ep.policy == p].run.nunique()), f"{r:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]", f"{h:.2f}; {worst:.3f}"]
        if p == "psi":
            row += ["", "", "", ""]
        else:
            def diff(u, v):
                return deploy.fleet_cost_ratio(u) - deploy.fleet_cost_ratio(v)
            d2 = deploy.bootstrap(diff, [x, ref])
            dt = deploy.bootstrap(diff, [x, ref], level="task")
            pa, pac = deploy.prob_better(x, ref), deploy.bootstrap(deploy.prob_better, [x, ref])
            xt, yt = deploy.on_machines(x, trail), deploy.on_machines(ref, trail)
            pt, ptc = deploy.prob_better(xt, yt), deploy.bootstrap(deploy.prob_better, [xt, yt])
            loss = sc["psi"] - sc[p]
            row += [f"{r - deploy.fleet_cost_ratio(ref):+.3f} [{d2[0]:+.3f}, {d2[1]:+.3f}] / [{dt[0]:+.3f}, {dt[1]:+.3f}]",
                    f"{pa:.2f} [{pac[0]:.2f}, {pac[1]:.2f}]", f"{pt:.2f} [{ptc[0]:.2f}, {ptc[1]:.2f}]",
                    f"{loss.max():.3f} (`{loss.idxmax()}`)"]
        print("| " + " | ".join(row) + " |")
    t = (ep[ep.scenario.isin(trail) & ep.policy.isin(pols + [a.planner])]
         .groupby(["scenario", "policy"]).score.mean().unstack())
    print()
    print("mean score where psi trails:")
    print(t.round(3).to_string())
    if a.final:
        for col, what in (("final_min_free_kbytes", "min_free_kbytes (kB)"), ("final_wsf", "watermark_scale_factor")):
            f = (ep[ep.scenario.isin(trail) & ep.policy.isin(pols + [a.planner])]
                 .groupby(["scenario", "policy"])[col].mean().unstack())
            print()
            print(f"mean final {what} where psi trails:")
            print(f.round(0).astype("Int64").to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
