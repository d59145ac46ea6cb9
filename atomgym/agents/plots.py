"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed).

* ``pareto-<scenario>.png``: every policy's mean dropped packets (and, beside it, atomic allocation
  failures) against its mean reserved memory (MiB·s) on the scenario, with the Pareto front (no
  other policy has fewer drops and less reserve);
* ``profile.png``: performance profiles (fraction of runs x scenarios with score > tau, bootstrap
  95 % bands; agents/stats.py);
* ``timeseries-<scenario>.png`` (``episode_timeseries``): one episode per policy side by side:
  per-zone free pages against min / low / high + boost, the knob values, atomic failures and drops;
* ``learning-curves.png`` (``learning_curves``): IQM ± 95 % CI of the evaluation score over
  training seeds against agent steps and wall time, baselines and the oracle as horizontal lines.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from atomgym import safefiles
from atomgym.agents import baselines, episodes, stats
from atomgym.agents.baselines import DROP_COUNTERS
from atomgym.agents.models import load_model


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    safefiles.replace(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (<= in both, < in one), sorted by x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = [i for i in range(len(x))
            if not any((x[j] <= x[i] and y[j] <= y[i]) and (x[j] < x[i] or y[j] < y[i]) for j in range(len(x)))]
    return np.array(sorted(keep, key=lambda i: (x[i], y[i])), dtype=int)


def pareto_plot(df, scenario: str, path: Path) -> Path:
    """Mean dropped packets (left) and mean atomic allocation failures (right) against mean reserved
    memory per policy on one scenario, each with its Pareto front."""
    plt = _plt()
    g = df[df["scenario"] == scenario].groupby("policy", sort=False)[
        ["reserved_mib_s", "drops_total", "atomic_fail"]].mean()
    x = g["reserved_mib_s"].to_numpy()
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6))
    for ax, col, yl in ((axes[0], "drops_total", "dropped packets"), (axes[1], "atomic_fail", "atomic allocation failures")):
        y = g[col].to_numpy()
        for k, (p, xi, yi) in enumerate(zip(g.index, x, y)):
            mk = "*" if p.startswith("oracle") else "s" if p == "kernel-default" else "o^vD<>ph"[k % 8]
            ax.scatter([xi], [yi], marker=mk, s=90 if mk == "*" else 40, zorder=3, label=p, color=cmap(k % 20))
        front = pareto_front(x, y)
        if len(front):
            ax.step(x[front], y[front], where="post", color="k", lw=1, alpha=0.6, zorder=2, label="Pareto front")
        ax.set_xlabel("reserved memory (high + boost), MiB·s, mean per episode")
        ax.set_ylabel(f"{yl}, mean per episode")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{scenario}: drops and atomic failures vs reserved memory")
    return _save(fig, path)


def profile_plot(mats: dict[str, np.ndarray], path: Path, reps: int = 500) -> Path:
    plt = _plt()
    allv = np.concatenate([m.ravel() for m in mats.values()])
    # the axis from the 5th percentile of all scores (a few outliers would squeeze the rest) to the top
    lo = min(float(np.quantile(allv, 0.05)), 0.9)
    taus = np.linspace(lo - 1e-9, float(allv.max()), 101)
    prof, cis = stats.performance_profile(mats, taus, reps=reps)
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(7.4, 4.8))
    for k, p in enumerate(mats):
        ax.plot(taus, prof[p], label=p, color=cmap(k % 20), lw=1.4, ls="-" if k < 10 else "--")
        ax.fill_between(taus, cis[p][0], cis[p][1], color=cmap(k % 20), alpha=0.12)
    ax.set_xlabel("score τ (1 = kernel default, 2 = zero cost)")
    ax.set_ylabel("fraction of runs × scenarios with score > τ")
    ax.set_title("performance profiles (95 % stratified-bootstrap bands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def evaluation_plots(df, out: Path, reps: int = 500) -> list[Path]:
    """The plots of one evaluation (an episodes DataFrame) into ``out``; returns the files."""
    d, _ = stats.dedupe(df)
    files = []
    for s in dict.fromkeys(d["scenario"]):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
        files.append(pareto_plot(d, s, out / f"pareto-{safe}.png"))
    u = stats.units(d)
    pols = list(dict.fromkeys(d["policy"]))
    scs = [s for s in dict.fromkeys(d["scenario"])
           if all(((u["policy"] == p) & (u["scenario"] == s)).any() for p in pols)]
    if scs:
        mats = stats.matrices(u, pols, scs)
        if mats and max(m.shape[0] for m in mats.values()) > 1:
            files.append(profile_plot(mats, out / "profile.png", reps=reps))
    return files


def learning_curves(curves: dict[str, Path], refs: dict, path: Path, reps: int = 1000) -> Path:
    """IQM of the periodic held-out evaluation score over runs (training seeds) with a 95 %
    bootstrap band, against agent steps and against wall time; ``refs["scores"]`` (policy ->
    score on the same seeds) drawn as horizontal lines."""
    import pandas as pd

    plt = _plt()
    dfs = {k: pd.read_csv(v) for k, v in curves.items()}
    dfs = {k: d for k, d in dfs.items() if len(d)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    if dfs:
        n = min(len(d) for d in dfs.values())                      # evaluations every run reached
        steps = np.array([np.median([d["steps"].iloc[i] for d in dfs.values()]) for i in range(n)])
        wall = np.array([np.median([d["wall_s"].iloc[i] for d in dfs.values()]) for i in range(n)])
        iq, lo, hi = [], [], []
        for i in range(n):
            x = np.array([[d["score_mean"].iloc[i]] for d in dfs.values()])
            iq.append(stats.iqm(x))
            if len(x) > 1 and np.ptp(x) > 0:
                _, ci = stats._interval({"x": x}, stats.iqm, reps, 0)
                lo.append(float(np.ravel(ci["x"])[0]))
                hi.append(float(np.ravel(ci["x"])[1]))
            else:
                lo.append(iq[-1])
                hi.append(iq[-1])
        for ax, xs, xl in ((axes[0], steps, "agent steps"), (axes[1], wall, "wall time of training, s (median over runs)")):
            ax.plot(xs, iq, color="C0", lw=1.8, label=f"learned: IQM over {len(dfs)} runs")
            ax.fill_between(xs, lo, hi, color="C0", alpha=0.2, label="95 % bootstrap CI")
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
    for k, (name, v) in enumerate(sorted((refs.get("scores") or {}).items())):
        for ax in axes:
            ax.axhline(v, color=f"C{(k + 1) % 10}", ls="--" if not name.startswith("oracle") else ":", lw=1,
                       label=name if ax is axes[0] else None)
    axes[0].set_ylabel("held-out score (1 = kernel default)")
    sc = refs.get("scenario", "")
    fig.suptitle(f"learning curves{' on ' + sc if sc else ''} (periodic evaluation on held-out seeds)")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def _record(sim, out: dict) -> None:
    z = np.flatnonzero(sim.managed[0] > 0)
    out.setdefault("zones", [sim.zone_names[i] for i in z])
    out.setdefault("t", []).append(float(sim.t_ms[0]) / 1000.0)
    out.setdefault("free", []).append(sim.free[0, z].astype(float))
    w, b = sim.wmark[0, z].astype(float), sim.boost[0, z].astype(float)
    out.setdefault("min", []).append(w[:, 0])
    out.setdefault("low", []).append(w[:, 1] + b)
    out.setdefault("high", []).append(w[:, 2] + b)
    out.setdefault("mf", []).append(float(sim.min_free_kbytes[0]))
    out.setdefault("wsf", []).append(float(sim.watermark_scale_factor[0]))
    out.setdefault("fail", []).append(float(sim.counter("atomic_fail")[0]))
    out.setdefault("drops", []).append(float(sum(sim.counter(c)[0] for c in DROP_COUNTERS)))


def trace_episode(policy: str, scenario, seed: int, duration_s: float, every_ms: float = 100.0) -> dict:
    """One episode's time series (every ``every_ms`` of simulated time) of a baseline (by name) or a
    trained model (path of a .zip, ``PATH:stochastic`` for seeded stochastic play), on the one
    evaluation path (agents/episodes.py)."""
    rec: dict = {}
    if policy.endswith(".zip") or ".zip:" in policy:
        path, _, play = policy.rpartition(":") if ".zip:" in policy else (policy, "", "deterministic")
        lm = load_model(Path(path))   # with its env kwargs, frame stack, frozen normalisation
        pol = episodes.ModelPolicy(lm.env_kw, scenario, lm.player(deterministic=play == "deterministic", n=1))
    else:
        pol = baselines.get(policy)
        if isinstance(pol, baselines.BestStatic):
            raise ValueError("best-static needs its sweep: trace it through agents.evaluate")
    episodes.run(pol, scenario, np.array([seed], np.int64), duration_s, every_ms=every_ms,
                 on_sample=lambda sim: _record(sim, rec))
    return {k: np.array(v) if k != "zones" else v for k, v in rec.items()}


def timeseries_plot(traces: dict[str, dict], scenario_name: str, seed: int, path: Path) -> Path:
    """Side by side, one column per policy: per-zone free pages against min / low / high (+ boost);
    min_free_kbytes and watermark_scale_factor; atomic failures/s and drops/s."""
    plt = _plt()
    n = len(traces)
    fig, axes = plt.subplots(3, n, figsize=(4.6 * n, 8.2), sharex=True, squeeze=False)
    for c, (name, tr) in enumerate(traces.items()):
        t = tr["t"]
        ax = axes[0, c]
        for k, zn in enumerate(tr["zones"]):
            col = f"C{k % 10}"
            ax.plot(t, tr["free"][:, k], color=col, lw=1.2, label=f"{zn.split(', zone ')[-1]} free")
            ax.plot(t, tr["min"][:, k], color=col, lw=0.8, ls=":", label="min" if k == 0 else None)
            ax.plot(t, tr["low"][:, k], color=col, lw=0.8, ls="-.", label="low + boost" if k == 0 else None)
            ax.plot(t, tr["high"][:, k], color=col, lw=0.8, ls="--", label="high + boost" if k == 0 else None)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_ylabel("pages" if c == 0 else "")
        ax.legend(fontsize=6, loc="lower left")
        ax = axes[1, c]
        ax.plot(t, tr["mf"] / 1024.0, color="C0", lw=1.2, label="min_free_kbytes (MiB)")
        ax.set_ylabel("min_free_kbytes, MiB" if c == 0 else "")
        ax2 = ax.twinx()
        ax2.plot(t, tr["wsf"], color="C3", lw=1.0, ls="--", label="watermark_scale_factor")
        if c == n - 1:
            ax2.set_ylabel("watermark_scale_factor")
        ax.legend(fontsize=6, loc="upper left")
        ax2.legend(fontsize=6, loc="upper right")
        ax = axes[2, c]
        dt = np.diff(t)
        dt[dt <= 0] = np.nan
        ax.plot(t[1:], np.diff(tr["fail"]) / dt, color="C1", lw=1.0, label="atomic failures/s")
        ax.plot(t[1:], np.diff(tr["drops"]) / dt, color="C2", lw=1.0, label="drops/s")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel("simulated time, s")
        ax.legend(fontsize=6)
        for a in axes[:, c]:
            a.grid(alpha=0.3)
    fig.suptitle(f"{scenario_name}, seed {seed}: one episode per policy")
    return _save(fig, path)
