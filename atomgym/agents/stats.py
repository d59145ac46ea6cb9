"""Statistics of an evaluation, as Agarwal et al. (NeurIPS 2021, "Deep RL at the Edge of the
Statistical Precipice") recommend, with their library ``rliable`` (its stratified bootstrap runs on
``arch``; ``rliable`` needs ``pandas<3``, pinned in pyproject.toml).

The unit of a sample is a **run**: a baseline or an oracle is deterministic given the evaluation
seed, so each evaluation seed is one run; a trained model is one run of its training seed (its
score there: the mean over the evaluation seeds), several models under one label are several runs.
A repeated row (the same policy, run, scenario and seed, e.g. from merged CSVs) counts once.

* per scenario: mean and IQM (25 % trimmed mean) of the score, 95 % percentile-bootstrap CIs;
* across scenarios: IQM, mean and optimality gap with **stratified** bootstrap CIs (runs resampled
  within each scenario); the optimality gap is the mean shortfall below the scenario's
  ``oracle-static`` mean score (a per-scenario threshold: scores above it count 0);
* probability of improvement P(X > Y) of every policy over every other (Mann-Whitney per scenario,
  averaged over scenarios; ties count one half), with stratified-bootstrap CIs;
* performance profiles: the fraction of runs x scenarios with score > tau;
* gap closed: (cost(kernel-default) - cost(policy)) / (cost(kernel-default) - cost(oracle)) per
  scenario, on means over the same seeds (1 = as the oracle, 0 = as the default, < 0 worse;
  undefined where the oracle is no better than the default).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

REFERENCE = "kernel-default"
ORACLE = "oracle-static"
KEY = ["policy", "run", "scenario", "seed"]


def dedupe(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop repeated (policy, run, scenario, seed) rows, keeping the first; returns the rows and the
    number dropped."""
    d = df.drop_duplicates(subset=KEY, keep="first")
    return d.reset_index(drop=True), len(df) - len(d)


def units(df: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """One sample per (policy, scenario, run): a baseline's run is an evaluation seed; a model's
    run (its training seed) is the mean of ``value`` over the evaluation seeds."""
    d, _ = dedupe(df)
    unit = np.where(d["run"].astype(str) == "-", "seed" + d["seed"].astype(str), d["run"].astype(str))
    d = d.assign(unit=unit)
    return d.groupby(["policy", "scenario", "unit"], sort=False, as_index=False)[value].mean()


def matrices(u: pd.DataFrame, policies: list[str], scenarios: list[str], value: str = "score") -> dict[str, np.ndarray]:
    """rliable's score matrices: policy -> (runs, scenarios). A policy run on fewer units in some
    scenario keeps the smallest common number (the first units in file order)."""
    out = {}
    for p in policies:
        cols = [u.loc[(u["policy"] == p) & (u["scenario"] == s), value].to_numpy() for s in scenarios]
        n = min(len(c) for c in cols)
        if n:
            out[p] = np.stack([c[:n] for c in cols], axis=1).astype(np.float64)
    return out


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % (25 % trimmed from each end) of all values.
    rliable's ``aggregate_iqm`` (scipy's ``trim_mean(x, 0.25, axis=None)``) step for step, without
    scipy's per-call dispatch (~1 ms, called once per bootstrap resample): the same partition and
    mean, so the same float (tests/test_stats.py checks it against rliable); NaN if any is NaN."""
    a = np.asarray(x, np.float64).ravel()
    n = a.shape[0]
    if n == 0 or np.isnan(a).any():
        return float("nan")
    lo = int(0.25 * n)
    return float(np.mean(np.partition(a, (lo, n - lo - 1))[lo:n - lo]))


def optimality_gap(x: np.ndarray, gamma) -> float:
    """Mean shortfall below gamma (per scenario: broadcast over the last axis); scores above count 0."""
    x = np.asarray(x, np.float64)
    return float(np.mean(np.maximum(np.asarray(gamma, np.float64) - x, 0.0)))


def prob_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) per scenario (column), ties one half, averaged over scenarios."""
    x, y = np.atleast_2d(np.asarray(x, np.float64)), np.atleast_2d(np.asarray(y, np.float64))
    p = []
    for m in range(x.shape[1]):
        a, b = x[:, m][:, None], y[:, m][None, :]
        p.append(float(np.mean((a > b) + 0.5 * (a == b))))
    return float(np.mean(p))


def _interval(score_dict: dict, func, reps: int, seed: int) -> tuple[dict, dict]:
    """rliable's stratified bootstrap (percentile intervals), seeded: the same input gives the same CIs."""
    import warnings

    from rliable import library as rly
    np.random.seed(seed)                     # and anything drawing from numpy's global RNG: same input, same CIs
    with warnings.catch_warnings():          # arch: "random_state is deprecated" (rliable passes it)
        warnings.simplefilter("ignore", FutureWarning)
        return rly.get_interval_estimates(score_dict, func, reps=reps, random_state=np.random.RandomState(seed))


def per_scenario(u: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (policy, scenario): n runs, mean, std, IQM and their 95 % bootstrap CIs."""
    rows = []
    for (p, s), g in u.groupby(["policy", "scenario"], sort=False):
        x = g["score"].to_numpy(np.float64)[:, None]
        r = {"policy": p, "scenario": s, "n": len(x), "mean": float(x.mean()),
             "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "iqm": iqm(x)}
        if len(x) > 1 and np.ptp(x) > 0:
            pt, ci = _interval({p: x}, lambda a: np.array([a.mean(), iqm(a)]), reps, seed)
            r.update(mean_lo=ci[p][0, 0], mean_hi=ci[p][1, 0], iqm_lo=ci[p][0, 1], iqm_hi=ci[p][1, 1])
        else:                                          # one run, or all equal: the interval is the point
            r.update(mean_lo=r["mean"], mean_hi=r["mean"], iqm_lo=r["iqm"], iqm_hi=r["iqm"])
        rows.append(r)
    return pd.DataFrame(rows)


def aggregate(mats: dict[str, np.ndarray], gamma: np.ndarray | None, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Across scenarios: IQM, mean and optimality gap (threshold ``gamma`` per scenario, or NaN
    without it) with stratified-bootstrap 95 % CIs."""
    g = None if gamma is None else np.asarray(gamma, np.float64)

    def f(a):
        return np.array([iqm(a), a.mean(), optimality_gap(a, g) if g is not None else np.nan])

    pt, ci = _interval(mats, f, reps, seed)
    rows = []
    for p in mats:
        rows.append({"policy": p, "runs": mats[p].shape[0], "iqm": pt[p][0], "iqm_lo": ci[p][0, 0], "iqm_hi": ci[p][1, 0],
                     "mean": pt[p][1], "mean_lo": ci[p][0, 1], "mean_hi": ci[p][1, 1],
                     "opt_gap": pt[p][2], "opt_gap_lo": ci[p][0, 2], "opt_gap_hi": ci[p][1, 2]})
    return pd.DataFrame(rows)


def improvement_table(mats: dict[str, np.ndarray], reps: int = 1000, seed: int = 0,
                      with_ci: list[tuple[str, str]] | None = None) -> tuple[pd.DataFrame, dict]:
    """P(row > column) for every ordered pair of policies (point estimates), and stratified-
    bootstrap 95 % CIs for the pairs in ``with_ci`` (default: every pair)."""
    names = list(mats)
    tab = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            if a != b:
                tab.loc[a, b] = prob_improvement(mats[a], mats[b])
    pairs = with_ci if with_ci is not None else [(a, b) for a in names for b in names if a != b]
    cis: dict = {}
    if pairs:
        sd = {f"{a}\x00{b}": (mats[a], mats[b]) for a, b in pairs}
        _, ci = _interval(sd, prob_improvement, reps, seed)
        cis = {tuple(k.split("\x00")): (float(np.ravel(v)[0]), float(np.ravel(v)[1])) for k, v in ci.items()}
    return tab, cis


def performance_profile(mats: dict[str, np.ndarray], taus: np.ndarray, reps: int = 1000) -> tuple[dict, dict]:
    """Fraction of runs x scenarios with score > tau (rliable's score distribution), with
    stratified-bootstrap 95 % CIs: (profiles, cis) keyed by policy."""
    from rliable import library as rly
    np.random.seed(0)                                   # rliable's profile bootstrap draws from numpy's global RNG
    return rly.create_performance_profile(mats, taus, reps=reps, custom_profile_func=score_distribution)


def score_distribution(scores: np.ndarray, taus) -> np.ndarray:
    """rliable's ``score_distributions`` (per tau: np.mean(scores > tau)) as one comparison instead of
    a Python call per tau and bootstrap resample: counts of booleans, so the same floats
    (tests/test_stats.py checks it against rliable)."""
    t = np.asarray(taus, np.float64)
    return (np.asarray(scores).reshape(-1, 1) > t.reshape(1, -1)).mean(axis=0)


def gap_closed(df: pd.DataFrame, oracle: str = ORACLE) -> pd.DataFrame:
    """Per (policy, scenario): the fraction of the default-to-oracle cost gap closed, on the mean
    costs over the seeds all three share. NaN where the oracle is no better than the default."""
    d, _ = dedupe(df)
    rows = []
    for s, ds in d.groupby("scenario", sort=False):
        ref = ds[ds["policy"] == REFERENCE].groupby("seed")["cost"].mean()
        ora = ds[ds["policy"] == oracle].groupby("seed")["cost"].mean()
        for p, dp in ds.groupby("policy", sort=False):
            c = dp.groupby("seed")["cost"].mean()
            common = ref.index.intersection(ora.index).intersection(c.index)
            if not len(common):
                continue
            den = float(ref[common].mean() - ora[common].mean())
            num = float(ref[common].mean() - c[common].mean())
            rows.append({"policy": p, "scenario": s, "gap_closed": num / den if den > 1e-9 * max(1.0, abs(float(ref[common].mean()))) else np.nan})
    return pd.DataFrame(rows, columns=["policy", "scenario", "gap_closed"])
