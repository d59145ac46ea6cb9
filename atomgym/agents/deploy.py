"""What a deployment decision needs from an evaluation: fleet-level, paired, harm-first statistics.

rliable's IQM of normalised scores (agents/stats.py) answers "which policy scores higher on a
typical run"; a kernel reviewer or an SRE rolling a tuner out to a fleet asks other questions, and
these functions answer them from the same ``episodes.csv`` rows (policy, run, scenario, seed, the
cost's terms):

* **fleet cost ratio** ΣC / ΣC_def over every (machine, seed) the policy and ``kernel-default``
  share: what the fleet pays relative to doing nothing (scale-free across a fleet only in the sense
  that big machines weigh more: they cost more);
* **per-machine log ratio** mean log(C / C_def) over machines (each machine's geometric mean over
  seeds; CompilerGym reports ratios to a reference by geometric mean): every machine weighs alike;
* **do-no-harm** on machines without headroom (the negative controls): P(score < 0.99) and the
  worst decile (10th percentile) of scores;
* **gap closed** on machines with headroom: (ΣC_def - ΣC) / (ΣC_def - ΣC_oracle);
* **paired P(X > Y)** over the same (machine, seed): a learned policy's runs (training seeds) each
  compared with Y on the same episodes, ties one half;
* CIs by a **two-level bootstrap** (training runs, then (machine, seed) pairs: the variation a
  retrained policy on these machines would show) or a **task-level bootstrap** (machines, then
  seeds within them: claims about machines not in the fleet).

A deterministic machine (every policy's episodes the same on every seed: a trace replay, a machine
with no random input) is one run, not N, for statistics whose unit is a run (collapse_deterministic);
the fleet statistics keep its seeds, where resampling identical seeds adds no spread and the machine
weighs as much as any other.

Costs can be recomputed under other prices of the cost's terms (``reprice``) from the per-episode
term totals the CSV carries: the sensitivity table shows whether a conclusion holds when reserved
memory is 10x cheaper or dearer, or when atomic failures are charged or not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from atomgym.envs.cost import COSTS, DEFAULT_DEADLOCK_PENALTY, SCORE_COST_FLOOR, TERM_BY_NAME, TERMS

REFERENCE = "kernel-default"
# Chosen with hindsight on the very episodes they are scored on (per episode, per scenario, or by a
# clairvoyant planner): bounds on what a static setting or a planner can reach, never rivals. No
# verdict counts them among the heuristics a policy must beat.
BOUNDS = ("oracle-static", "oracle-planner", "best-static")
# The one decision rule of every verdict (summary.md, train's last line, fullreport, the README).
BEAT_P = 0.75
DECISION_RULE = (f"X beats Y when P(X > Y) >= {BEAT_P} and the 95 % CI of the IQM difference (X - Y) lies "
                 "above 0; oracles and the per-scenario best-static are bounds, not rivals")
# report.md's section of these statistics (agents.fullreport) and the heads of its parts: agents.publish puts
# the section's main table and the blind-raise sentence in the README, the by-class and price tables not
REPORT_SECTION = "## Deployment on the held-out machines"
SENSITIVITY_HEAD = "Fleet cost ratio under other prices"
CLASS_HEAD = "Where the fleet cost ratio comes from"          # the by-class table (docs/results.md only)
BLIND_HEAD = "The best blind static raise"                      # its one-sentence reading (README too)
HARM_SCORE = 0.99            # a score below this on a machine without headroom is harm
# the episodes.csv column of each cost term's episode total (agents.evaluate METRICS)
TERM_COLUMNS: dict[str, str] = {"drops": "drops_total", "atomic_fail": "atomic_fail",
                                "reserved_mib_s": "reserved_mib_s", "stall_s": "stall_s",
                                "knob_changes": "knob_changes"}
assert set(TERM_COLUMNS) == {t.name for t in TERMS}, "deploy.TERM_COLUMNS must name every cost term"


def is_bound(policy: str) -> bool:
    """A hindsight bound (BOUNDS), not a heuristic."""
    return policy in BOUNDS


def beats(p_improvement: float, iqm_diff_lo: float) -> bool:
    """DECISION_RULE."""
    return p_improvement >= BEAT_P and iqm_diff_lo > 0


def reprice(df: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    """The rows with ``cost`` and ``score`` recomputed under ``weights`` (term -> weight; a term not
    given keeps its default). The score's reference is ``kernel-default`` on the same scenario and
    seed, repriced alike."""
    w = {t.name: float(weights.get(t.name, t.weight)) for t in TERMS}
    unknown = set(weights) - set(w)
    if unknown:
        raise ValueError(f"unknown cost terms {sorted(unknown)}; terms: {', '.join(w)}")
    d = df.copy()
    d["cost"] = sum(w[k] * d[c].astype(float) for k, c in TERM_COLUMNS.items()) \
        + DEFAULT_DEADLOCK_PENALTY * d["terminated"].astype(float)
    ref = d[d["policy"] == REFERENCE].drop_duplicates(["scenario", "seed"]).set_index(["scenario", "seed"])["cost"]
    cdef = pd.Series(list(zip(d["scenario"], d["seed"]))).map(ref).to_numpy(float)
    d["score"] = 1.0 - (d["cost"].to_numpy(float) - cdef) / np.maximum(cdef, SCORE_COST_FLOOR)
    return d


def deterministic_machines(df: pd.DataFrame) -> list[str]:
    """Machines whose every policy's episodes are identical on every seed (every cost term and
    outcome column): a trace replay or a machine with no random input, where N seeds are one run."""
    cols = [c for c in (*TERM_COLUMNS.values(), "terminated", "cost") if c in df]
    out = []
    for m, g in df.groupby("scenario", sort=False):
        if g["seed"].nunique() > 1 and all(
                len(h[cols].drop_duplicates()) == 1 for _, h in g.groupby(["policy", "run"], sort=False)):
            out.append(m)
    return out


def collapse_deterministic(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Rows of deterministic machines (deterministic_machines) kept for their first seed only, for
    statistics whose unit is a run (rliable's per-scenario CIs, P(X > Y) over runs); returns the rows
    and the machines collapsed. The fleet statistics below keep every seed instead: a deterministic
    machine weighs as much as any other, and resampling its identical seeds adds no spread."""
    det = deterministic_machines(df)
    if not det:
        return df, []
    first = df[df["scenario"].isin(det)].groupby("scenario")["seed"].min()
    keep = ~df["scenario"].isin(det) | (df["seed"] == df["scenario"].map(first))
    return df[keep].reset_index(drop=True), det


@dataclass(frozen=True)
class Paired:
    """One policy's episodes beside the reference's: arrays over (run, machine, seed) cells."""
    runs: list[str]
    machines: list[str]
    seeds: list[int]
    cost: np.ndarray         # (runs, machines, seeds), NaN where the policy has no episode
    cdef: np.ndarray         # (machines, seeds), the reference's cost
    score: np.ndarray        # (runs, machines, seeds)


def paired(df: pd.DataFrame, policy: str, reference: str = REFERENCE) -> Paired:
    """The policy's cells on the (machine, seed) pairs the reference also ran."""
    d = df.drop_duplicates(["policy", "run", "scenario", "seed"])
    ref = d[d["policy"] == reference]
    me = d[d["policy"] == policy]
    if me.empty:
        raise ValueError(f"no episodes of {policy!r}")
    machines = [s for s in dict.fromkeys(me["scenario"]) if s in set(ref["scenario"])]
    seeds = sorted(set(me["seed"]) & set(ref["seed"]))
    runs = list(dict.fromkeys(me["run"].astype(str)))
    cost = np.full((len(runs), len(machines), len(seeds)), np.nan)
    score = np.full_like(cost, np.nan)
    cdef = np.full((len(machines), len(seeds)), np.nan)
    mi, si, ri = ({m: i for i, m in enumerate(machines)}, {s: i for i, s in enumerate(seeds)},
                  {r: i for i, r in enumerate(runs)})
    for r in ref.itertuples():
        if r.scenario in mi and r.seed in si:
            cdef[mi[r.scenario], si[r.seed]] = r.cost
    for r in me.itertuples():
        if r.scenario in mi and r.seed in si:
            cost[ri[str(r.run)], mi[r.scenario], si[r.seed]] = r.cost
            score[ri[str(r.run)], mi[r.scenario], si[r.seed]] = r.score
    return Paired(runs, machines, seeds, cost, cdef, score)


def fleet_cost_ratio(p: Paired) -> float:
    """ΣC / ΣC_def over the cells both have (runs averaged: each run is a rollout of the fleet)."""
    ok = ~np.isnan(p.cost) & ~np.isnan(p.cdef)[None]
    return float(np.nansum(np.where(ok, p.cost, 0.0)) / max(np.sum(np.where(ok, p.cdef[None], 0.0)), 1e-12))


def log_ratio(p: Paired) -> float:
    """Mean over machines of log(C / C_def), each machine's ratio the geometric mean over its seeds
    and runs (costs floored at the score's floor, so a zero-cost episode stays finite)."""
    r = np.log(np.maximum(p.cost, SCORE_COST_FLOOR) / np.maximum(p.cdef, SCORE_COST_FLOOR)[None])
    per_machine = np.nanmean(np.moveaxis(r, 1, 0).reshape(len(p.machines), -1), axis=1)
    return float(np.nanmean(per_machine))


def on_machines(p: Paired, machines: Sequence[str]) -> Paired:
    """``p`` restricted to the given machines (its order kept; runs and seeds as they are)."""
    keep = set(machines)
    idx = [i for i, m in enumerate(p.machines) if m in keep]
    return Paired(p.runs, [p.machines[i] for i in idx], p.seeds, p.cost[:, idx], p.cdef[idx], p.score[:, idx])


def harm(p: Paired, machines: Sequence[str]) -> tuple[float, float]:
    """On the given machines (those without headroom): P(score < 0.99) and the 10th percentile."""
    s = on_machines(p, machines).score.ravel()
    s = s[~np.isnan(s)]
    if not len(s):
        return float("nan"), float("nan")
    return float(np.mean(s < HARM_SCORE)), float(np.percentile(s, 10))


def gap_closed(p: Paired, oracle: Paired, machines: Sequence[str]) -> float:
    """(ΣC_def - ΣC) / (ΣC_def - ΣC_oracle) over the given machines' cells (``p`` and ``oracle``
    aligned: align_all)."""
    _same_cells(p, oracle)
    p, oracle = on_machines(p, machines), on_machines(oracle, machines)
    c = np.nanmean(p.cost, axis=0)
    co = np.nanmean(oracle.cost, axis=0)
    cd = p.cdef
    ok = ~np.isnan(c) & ~np.isnan(co) & ~np.isnan(cd)
    den = float(np.sum((cd - co)[ok]))
    return float(np.sum((cd - c)[ok]) / den) if den > 1e-12 else float("nan")


def prob_better(x: Paired, y: Paired) -> float:
    """Paired P(X > Y) by score over the same (machine, seed), ties one half; each of X's runs is
    compared with Y's mean over its runs on that cell (``x`` and ``y`` aligned: align_all)."""
    _same_cells(x, y)
    sy = np.full(y.score.shape[1:], np.nan)
    has = ~np.all(np.isnan(y.score), axis=0)
    sy[has] = np.nanmean(y.score[:, has], axis=0)
    sx = x.score
    ok = ~np.isnan(sx) & ~np.isnan(sy)[None]
    return float(np.sum(np.where(ok, (sx > sy[None]) + 0.5 * (sx == sy[None]), 0.0)) / max(ok.sum(), 1))


def _same_cells(a: Paired, b: Paired) -> None:
    if a.machines != b.machines or a.seeds != b.seeds:
        raise ValueError("the policies must share machines and seeds, in order (use align_all)")


def bootstrap(stat: Callable[..., float], ps: Sequence[Paired], level: str = "two-level", reps: int = 1000,
              seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of ``stat(*ps)`` under resampling shared by every Paired in ``ps``
    (aligned: align_all), e.g. X and Y of a paired comparison:

    * ``two-level``: each Paired's runs (training seeds) resampled on its own, then the seeds of
      every machine (the same draw for all): the spread of a retrained policy on these machines;
    * ``task``: machines resampled, then seeds within each machine: claims about unseen machines.
    """
    if level not in ("two-level", "task"):
        raise ValueError(f"level {level!r}: expected 'two-level' or 'task'")
    for q in ps[1:]:
        _same_cells(ps[0], q)
    rng = np.random.default_rng(seed)
    n_m, n_s = len(ps[0].machines), len(ps[0].seeds)
    vals = []
    for _ in range(reps):
        m = rng.integers(0, n_m, n_m) if level == "task" else np.arange(n_m)
        s = rng.integers(0, n_s, (n_m, n_s))
        draws = [_subset(q, rng.integers(0, len(q.runs), len(q.runs)), m, s) for q in ps]
        v = stat(*draws)
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _subset(p: Paired, runs: np.ndarray, machines: np.ndarray, seeds: np.ndarray) -> Paired:
    """A bootstrap draw: runs, machines and per-machine seeds, with repeats (names kept, so a
    machine class still selects its draws)."""
    cost = np.take_along_axis(p.cost[runs][:, machines], seeds[None], axis=2)
    score = np.take_along_axis(p.score[runs][:, machines], seeds[None], axis=2)
    cdef = np.take_along_axis(p.cdef[machines], seeds, axis=1)
    return Paired([p.runs[r] for r in runs], [p.machines[m] for m in machines], list(range(seeds.shape[1])),
                  cost, cdef, score)


def align_all(ps: Sequence[Paired]) -> list[Paired]:
    """Every Paired restricted to the machines and seeds they all have (same order)."""
    machines = [m for m in ps[0].machines if all(m in q.machines for q in ps)]
    seeds = [s for s in ps[0].seeds if all(s in q.seeds for q in ps)]
    out = []
    for q in ps:
        mi = [q.machines.index(m) for m in machines]
        si = [q.seeds.index(s) for s in seeds]
        out.append(Paired(q.runs, machines, seeds, q.cost[:, mi][:, :, si], q.cdef[mi][:, si], q.score[:, mi][:, :, si]))
    return out


# ---- machine classes, the deployment table, the price sensitivity -----------------------------

HEADROOM, CONTROL, UNCONTROLLABLE = "headroom", "control", "uncontrollable"
HEADROOM_MARGIN = 0.02       # the oracle beats the defaults by more than this score: the machine has headroom


def classify(df: pd.DataFrame, oracle: str = "oracle-static", margin: float = HEADROOM_MARGIN) -> dict[str, str]:
    """Each machine's class, measured: ``headroom`` if the oracle's mean score exceeds 1 + margin;
    otherwise ``uncontrollable`` if the defaults lose packets or stall there (a loss no setting of
    the grid removes), else ``control`` (a negative control: the defaults are right)."""
    d = df.drop_duplicates(["policy", "run", "scenario", "seed"])
    out = {}
    for m, g in d.groupby("scenario", sort=False):
        o = g.loc[g["policy"] == oracle, "score"]
        ref = g[g["policy"] == REFERENCE]
        if len(o) and float(o.mean()) > 1.0 + margin:
            out[m] = HEADROOM
        elif len(ref) and float((ref["drops_total"] + ref["stall_s"]).mean()) > 0:
            out[m] = UNCONTROLLABLE
        else:
            out[m] = CONTROL
    return out


def class_cost_ratios(df: pd.DataFrame, policies: Sequence[str], classes: Mapping[str, str]) -> pd.DataFrame:
    """Per policy (rows) and measured machine class (columns, then ``all``): ΣC / ΣC_def over that
    class's machines, paired cells only. Where a fleet cost ratio comes from: a reserve held on
    every machine pays on the negative controls what it saves on the machines with headroom."""
    cols = [HEADROOM, CONTROL, UNCONTROLLABLE]
    tab = pd.DataFrame(index=list(policies), columns=[*cols, "all"], dtype=float)
    for pol in policies:
        p = paired(df, pol)
        for c in cols:
            q = on_machines(p, [m for m in p.machines if classes.get(m) == c])
            tab.loc[pol, c] = fleet_cost_ratio(q) if q.machines else float("nan")
        tab.loc[pol, "all"] = fleet_cost_ratio(p)
    return tab


def deployment_table(df: pd.DataFrame, policies: Sequence[str], classes: Mapping[str, str],
                     oracle: str | None = "oracle-static", versus: str | None = "psi", reps: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Per policy: fleet cost ratio and mean log(C/C_def) with two-level CIs, P(score < 0.99) and the
    worst decile on machines without headroom, the gap closed on machines with headroom, and paired
    P(policy > versus) with two-level and task-level CIs."""
    no_head = [m for m, c in classes.items() if c != HEADROOM]
    head = [m for m, c in classes.items() if c == HEADROOM]
    orc = paired(df, oracle) if oracle and (df["policy"] == oracle).any() else None
    vs = paired(df, versus) if versus and (df["policy"] == versus).any() else None
    rows = []
    for pol in policies:
        p = paired(df, pol)
        ratio = fleet_cost_ratio(p)
        r_lo, r_hi = bootstrap(fleet_cost_ratio, [p], reps=reps, seed=seed)
        lr = log_ratio(p)
        p_harm, worst = harm(p, no_head)
        row = {"policy": pol, "runs": len(p.runs), "machines": len(p.machines), "cost_ratio": ratio,
               "cost_ratio_lo": r_lo, "cost_ratio_hi": r_hi, "log_ratio": lr, "p_harm": p_harm,
               "worst_decile": worst, "gap_closed": float("nan"), f"p_vs_{versus}": float("nan")}
        if orc is not None and head:
            a, o = align_all([p, orc])
            row["gap_closed"] = gap_closed(a, o, head)
        if vs is not None and pol != versus:
            a, b = align_all([p, vs])
            row[f"p_vs_{versus}"] = prob_better(a, b)
            row["p_lo"], row["p_hi"] = bootstrap(prob_better, [a, b], "two-level", reps, seed)
            row["p_task_lo"], row["p_task_hi"] = bootstrap(prob_better, [a, b], "task", reps, seed)
        rows.append(row)
    return pd.DataFrame(rows)


# The prices of the sensitivity table: the reserve 10x cheaper and dearer (envs/cost.py's weight
# 1e-3 per MiB.s), and the named cost that charges atomic failures like dropped packets (the default
# cost, "harm", does not: a failed refill that the next NAPI poll retries loses nothing).
_RESERVE = TERM_BY_NAME["reserved_mib_s"].weight
PRICES: tuple[tuple[str, dict[str, float]], ...] = (
    ("reserve x0.1", {"reserved_mib_s": _RESERVE / 10}),
    ("as defined", {}),
    ("reserve x10", {"reserved_mib_s": _RESERVE * 10}),
    ("atomic failures charged", dict(COSTS["atomic-charged"])),
)


FLIP_TOL = 0.005    # a fleet cost ratio within 0.5 % of 1 is "as the defaults", neither side


def sensitivity(df: pd.DataFrame, policies: Sequence[str],
                prices: Sequence[tuple[str, Mapping[str, float]]] = PRICES) -> tuple[pd.DataFrame, list[str]]:
    """Fleet cost ratio of every policy under every price (columns), and the conclusions that flip:
    a policy better than the defaults (ratio < 1) under one price and worse under another, or the
    best policy changing with the price."""
    tab = pd.DataFrame(index=list(policies), columns=[n for n, _ in prices], dtype=float)
    for name, w in prices:
        d = reprice(df, w)
        for pol in policies:
            tab.loc[pol, name] = fleet_cost_ratio(paired(d, pol))
    flips = []
    rivals = [p for p in policies if not is_bound(p)]
    for pol in rivals:
        r = tab.loc[pol].astype(float)
        better, worse = r.index[r < 1 - FLIP_TOL], r.index[r > 1 + FLIP_TOL]
        if len(better) and len(worse):
            flips.append(f"`{pol}` beats the defaults under {', '.join(better)} but loses under {', '.join(worse)}")
    if rivals:
        best = tab.loc[rivals].astype(float).idxmin(axis=0)
        if best.nunique() > 1:
            flips.append("the best policy (bounds aside) depends on the price: "
                         + "; ".join(f"{c}: `{b}`" for c, b in best.items()))
    return tab, flips
