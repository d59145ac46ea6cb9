"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed).

* ``pareto-<scenario>.png``: every policy's mean dropped packets against its mean reserved memory
  (MiB·s) on the scenario, with the Pareto front (no other policy has fewer drops and less reserve);
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


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    from agents.evaluate import write_atomic  # noqa: F401  (same folder-local temporary + rename)
    import os
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _plt().close(fig)
    return path


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (<= in both, < in one), sorted by x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = [i for i in range(len(x))
            if not any((x[j] <= x[i] and y[j] <= y[i]) and (x[j] < x[i] or y[j] < y[i]) for j in range(len(x)))]
    return np.array(sorted(keep, key=lambda i: (x[i], y[i])), dtype=int)


def pareto_plot(df, scenario: str, path: Path) -> Path:
    plt = _plt()
    g = df[df["scenario"] == scenario].groupby("policy", sort=False)[["reserved_mib_s", "drops_total"]].mean()
    x, y = g["reserved_mib_s"].to_numpy(), g["drops_total"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, (p, xi, yi) in enumerate(zip(g.index, x, y)):
        mk = "*" if p.startswith("oracle") else "s" if p == "kernel-default" else "o"
        ax.scatter([xi], [yi], marker=mk, s=70 if mk == "*" else 36, zorder=3, label=p, color=f"C{k % 10}")
    front = pareto_front(x, y)
    if len(front):
        ax.step(x[front], y[front], where="post", color="k", lw=1, alpha=0.6, zorder=2, label="Pareto front")
    ax.set_xlabel("reserved memory (high + boost), MiB·s, mean per episode")
    ax.set_ylabel("dropped packets, mean per episode")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(f"{scenario}: drops vs reserved memory")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return _save(fig, path)


def profile_plot(mats: dict[str, np.ndarray], path: Path, reps: int = 500) -> Path:
    from agents import stats
    plt = _plt()
    allv = np.concatenate([m.ravel() for m in mats.values()])
    taus = np.linspace(float(allv.min()) - 1e-9, float(allv.max()), 101)
    prof, cis = stats.performance_profile(mats, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, p in enumerate(mats):
        ax.plot(taus, prof[p], label=p, color=f"C{k % 10}", lw=1.4)
        ax.fill_between(taus, cis[p][0], cis[p][1], color=f"C{k % 10}", alpha=0.15)
    ax.set_xlabel("score τ (1 = kernel default, 2 = zero cost)")
    ax.set_ylabel("fraction of runs × scenarios with score > τ")
    ax.set_title("performance profiles (95 % stratified-bootstrap bands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def evaluation_plots(df, out: Path, reps: int = 500) -> list[Path]:
    """The plots of one evaluation (an episodes DataFrame) into ``out``; returns the files."""
    from agents import stats
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
