"""Oracle bounds: what was achievable on an episode, so that a score means something.

* ``oracle-static`` — the hindsight-best static setting **per episode**: every point of the
  min_free_kbytes x watermark_scale_factor grid (``GRID_MF`` x ``GRID_WSF``, the grid
  ``best-static`` sweeps per scenario) is run on that very seed, and the cheapest episode is kept.
  The grid contains the kernel's own values, so its cost is never above kernel-default's.
* ``oracle-planner`` — a clairvoyant receding-horizon planner: every ``step_s`` it tries each grid
  setting (and "keep") for the next ``horizon_s`` seconds from the current state (the
  simulator's ``snapshot()``/``restore()``: the future it sees is exactly the one that happens, the
  simulator is deterministic given state and action) and applies the cheapest. It pays the knob
  changes it makes, like any policy.

Both are bounds to measure policies against (``agents.stats.gap_closed``: the fraction of the
default-to-oracle cost gap a policy closes), not policies a machine could run.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from atomgym import files, safefiles
from atomgym.agents.episodes import episode_metrics
from atomgym.agents.identity import scenario_digest
from atomgym.envs.cost import definition as cost_definition
from atomgym.envs.cost import score as env_score
from atomgym.envs.spaces import LEVEL_MF, LEVEL_WSF, grid_mf_kb
from atomgym.kernel.zones import PAGE_KB
from atomgym.paths import RUNS_DIR
import atomgym.sim as engine     # engine.sources_digest read at call time: a cache key of the engine now
from atomgym.sim import Simulator
from atomgym.sim.scenario import load_scenario
from atomgym.suites import load_suite

DEFAULT_CACHE = RUNS_DIR / "best-static-cache"      # the sweeps' cache (agents.evaluate --cache-dir)
MAX_CACHE_BYTES = 16 << 20

# min_free_kbytes: "boot" = the kernel's value, "x2" = twice it, a float = that fraction of RAM, an
# int = kB; watermark_scale_factor: -1 = the kernel's value. (Shared with best-static's sweep.) The
# env's "levels" actions are this grid without 135168 kB; the definition lives with them.
GRID_MF: tuple = LEVEL_MF + (135168,)
GRID_WSF: tuple = LEVEL_WSF


def grid_points() -> list[tuple[object, int]]:
    return [(mf, wsf) for mf in GRID_MF for wsf in GRID_WSF]


def grid_writes(pts, boot_kb: np.ndarray, ram_kb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (min_free_kbytes, watermark_scale_factor) writes of grid points ``pts`` (P) for machines
    with boot values ``boot_kb`` and RAM ``ram_kb`` (both (N,)): two int64 arrays (P, N), -1 =
    unchanged."""
    P, N = len(pts), len(boot_kb)
    mf = np.full((P, N), -1, np.int64)
    wsf = np.full((P, N), -1, np.int64)
    for p, (m, w) in enumerate(pts):
        mf[p] = -1 if m == "boot" else grid_mf_kb(m, boot_kb, ram_kb)
        wsf[p] = w
    return mf, wsf


def sweep(scenario, seeds: np.ndarray, duration_s: float):
    """Run every grid point on every seed in one batched Simulator. Returns (points, metrics) where
    metrics[p][j] is the episode_metrics dict of point p on seeds[j]."""
    pts = grid_points()
    N = len(seeds)
    sim = Simulator(scenario, n_machines=len(pts) * N)
    sim.reset(np.tile(seeds, len(pts)))
    boot = sim.min_free_kbytes[:N].astype(np.int64).copy()
    ram_kb = sim.managed[:N].sum(axis=1).astype(np.int64) * PAGE_KB
    mf, wsf = grid_writes(pts, boot, ram_kb)
    sim.set_knobs(min_free_kbytes=mf.reshape(-1), watermark_scale_factor=wsf.reshape(-1))
    sim.advance(int(round(duration_s * 1000.0 / sim.tick_ms)))
    met = [[episode_metrics(sim, p * N + j) for j in range(N)] for p in range(len(pts))]
    return pts, met


def hindsight_static(scenario, seeds: np.ndarray, duration_s: float) -> tuple[list[dict], list[str]]:
    """Per seed, the metrics of the grid point with the lowest cost on that seed, and one-line
    reasons naming the point chosen."""
    pts, met = sweep(scenario, seeds, duration_s)
    out, why = [], []
    for j, s in enumerate(seeds):
        costs = [met[p][j]["cost"] for p in range(len(pts))]
        p = int(np.argmin(costs))
        out.append(met[p][j])
        why.append(f"seed {int(s)}: best of {len(pts)} static settings: min_free_kbytes={pts[p][0]} "
                   f"watermark_scale_factor={'kernel' if pts[p][1] < 0 else pts[p][1]} (cost {costs[p]:.3f})")
    return out, why


def _costs(sim) -> np.ndarray:
    return np.array([episode_metrics(sim, b)["cost"] for b in range(sim.B)])


def planner(scenario, seeds: np.ndarray, duration_s: float, step_s: float = 1.0, horizon_s: float = 5.0,
            actions: list | None = None) -> tuple[list[dict], list[str], float]:
    """The clairvoyant receding-horizon planner on every seed (batched: K candidate copies of each
    seed's machine run the look-ahead side by side). Returns per-seed metrics, one-line reasons of
    its changes and its wall time in seconds; ``actions`` (a list), if given, receives per seed the
    writes made as [tick, min_free_kbytes, watermark_scale_factor] (-1 = unchanged), which
    ``replay_actions`` re-executes."""
    t0 = time.perf_counter()
    cands: list = [None] + grid_points()            # None = keep the current setting
    K, N = len(cands), len(seeds)
    sim = Simulator(scenario, n_machines=K * N)      # machine k * N + j: candidate k of seed j
    sim.reset(np.tile(seeds, K))
    boot = sim.min_free_kbytes[:N].astype(np.int64).copy()
    ram_kb = sim.managed[:N].sum(axis=1).astype(np.int64) * PAGE_KB
    boot_wsf = sim.watermark_scale_factor[:N].astype(np.int64).copy()
    mf, wsf = grid_writes(cands[1:], boot, ram_kb)
    mf = np.where(mf < 0, boot, mf)                  # explicit values: "boot" must undo an earlier raise
    wsf = np.where(wsf < 0, boot_wsf, wsf)
    n_total = int(round(duration_s * 1000.0 / sim.tick_ms))
    n_step = max(1, int(round(step_s * 1000.0 / sim.tick_ms)))
    n_look = max(n_step, int(round(horizon_s * 1000.0 / sim.tick_ms)))
    cur_mf, cur_wsf = boot.copy(), boot_wsf.copy()   # the setting in force per seed
    why: list[str] = []
    acts: list[list[list[int]]] = [[] for _ in range(N)]
    done = 0
    while done < n_total:
        snap = sim.snapshot()                         # all K copies of a seed hold the same state
        c0 = _costs(sim)
        # candidate 0 keeps; a grid point equal to the setting in force is a keep too (no write)
        same = (mf == cur_mf) & (wsf == cur_wsf)
        wm = np.vstack([np.full((1, N), -1, np.int64), np.where(same, -1, np.where(mf == cur_mf, -1, mf))])
        ww = np.vstack([np.full((1, N), -1, np.int64), np.where(same, -1, np.where(wsf == cur_wsf, -1, wsf))])
        sim.set_knobs(min_free_kbytes=wm.reshape(-1), watermark_scale_factor=ww.reshape(-1))
        sim.advance(min(n_look, n_total - done))
        gain = (_costs(sim) - c0).reshape(K, N)
        best = np.argmin(gain, axis=0)                # ties: the lowest k, i.e. "keep" first
        sim.restore(snap)
        # every copy of seed j takes candidate best[j], then all advance one step together
        am = np.array([wm[best[j], j] for j in range(N)])
        aw = np.array([ww[best[j], j] for j in range(N)])
        sim.set_knobs(min_free_kbytes=np.tile(am, K), watermark_scale_factor=np.tile(aw, K))
        for j in range(N):
            if am[j] >= 0 or aw[j] >= 0:
                acts[j].append([done, int(am[j]), int(aw[j])])
                m, w = cands[best[j]]
                cur_mf[j] = am[j] if am[j] >= 0 else cur_mf[j]
                cur_wsf[j] = aw[j] if aw[j] >= 0 else cur_wsf[j]
                why.append(f"seed {int(seeds[j])} t={done * sim.tick_ms / 1000:.0f} s: min_free_kbytes -> {cur_mf[j]} kB "
                           f"({m}), watermark_scale_factor -> {cur_wsf[j]}")
        n = min(n_step, n_total - done)
        sim.advance(n)
        done += n
    out = [episode_metrics(sim, j) for j in range(N)]   # candidate 0's copies: identical to the others
    if actions is not None:
        actions.extend(acts)
    return out, why, time.perf_counter() - t0


def replay_actions(scenario, seed: int, duration_s: float, actions: list, tuner: str = "none"):
    """Re-run one episode from its knob writes ([tick, min_free_kbytes, watermark_scale_factor],
    -1 = unchanged) on a fresh Simulator; returns the Simulator at the end."""
    sim = Simulator(scenario, n_machines=1, tuner=tuner)
    sim.reset(np.array([seed], np.int64))
    n_total = int(round(duration_s * 1000.0 / sim.tick_ms))
    done = 0
    for tick, mf, wsf in sorted(actions, key=lambda a: a[0]):
        if tick > done:
            sim.advance(min(tick, n_total) - done)
            done = min(tick, n_total)
        sim.set_knobs(min_free_kbytes=np.array([mf]), watermark_scale_factor=np.array([wsf]))
    if n_total > done:
        sim.advance(n_total - done)
    return sim


# The seeds best-static-train is chosen on: disjoint from atomgym.agents.evaluate's (1000 + i) and from
# training draws (the training seed's own generator).
FLEET_SEEDS = tuple(range(5000, 5016))


def fleet_static(suite: str = "fleet-train", seeds: tuple = FLEET_SEEDS, duration_s: float | None = None,
                 cache_dir=None) -> tuple[object, int, dict]:
    """``best-static-train``: the one grid point (GRID_MF x GRID_WSF, machine-relative: "x2" of the
    boot value, a fraction of RAM) with the highest mean score over every scenario of ``suite`` x
    ``seeds``: the static setting an operator would roll out to a fleet knowing only the training
    machines. The score of an episode is against the grid's ("boot", kernel) point on the same
    seed (= kernel-default). Cached per (suite contents with each scenario's trace and snapshot
    files, seeds, duration, grid, the cost's definition, engine sources), as best_static."""
    names = load_suite(suite)
    scs = [load_scenario(n) for n in names]
    src = [scenario_digest(s) for s in scs]        # an edited trace is another sweep
    key = hashlib.sha256(json.dumps([names, src, list(seeds), duration_s, GRID_MF, GRID_WSF, cost_definition(),
                                     engine.sources_digest()]).encode()).hexdigest()[:16]
    cache = safefiles.inside(Path(cache_dir or DEFAULT_CACHE), f"fleet-{Path(str(suite)).stem}__{key}.json")
    d = read_cache(cache, {"mf": lambda v: v in GRID_MF and not isinstance(v, bool),
                           "wsf": lambda v: isinstance(v, int) and not isinstance(v, bool) and v in GRID_WSF})
    if d is not None:
        return d["mf"], d["wsf"], d
    pts = grid_points()
    ref = pts.index(("boot", -1))
    sd = np.asarray(seeds, dtype=np.int64)
    scores = np.zeros((len(pts), 0))
    per = {}
    for sc in scs:
        _, met = sweep(sc, sd, duration_s or sc.duration_s)
        s = np.array([[env_score(met[p][j]["cost"], met[ref][j]["cost"]) for j in range(len(sd))]
                      for p in range(len(pts))])
        per[sc.name] = s.mean(axis=1).tolist()
        scores = np.hstack([scores, s])
    mean = scores.mean(axis=1)
    best = int(np.argmax(mean))
    mf, wsf = pts[best]
    d = {"suite": str(suite), "scenarios": names, "seeds": list(map(int, seeds)), "mf": mf, "wsf": int(wsf),
         "grid": [{"mf": str(m), "wsf": w, "mean_score": float(v), "per_scenario": {k: per[k][i] for k in per}}
                  for i, ((m, w), v) in enumerate(zip(pts, mean))]}
    write_cache(cache, d)
    return mf, int(wsf), d


def best_static(scenario, seeds: np.ndarray, duration_s: float, cache_dir: Path) -> tuple[int | None, int | None, dict]:
    """Sweep GRID_MF x GRID_WSF on the given seeds (all points in one batched Simulator); the
    point with the lowest mean cost wins. Cached per (scenario content with its trace and snapshot
    files, seeds, duration, grid, the cost's definition, engine sources): a sweep run by another
    simulator, or on an edited trace, is never reused."""
    key_src = json.dumps([scenario.name, scenario_digest(scenario),
                          [int(s) for s in seeds], duration_s, GRID_MF, GRID_WSF, cost_definition(),
                          engine.sources_digest()])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    # the name is the scenario's: never a path out of cache_dir
    cache = safefiles.inside(cache_dir, f"{scenario.name}__{key}.json")
    d = read_cache(cache, {"mf_kb": _knob_or_none, "wsf": _knob_or_none})
    if d is not None:
        return d["mf_kb"], d["wsf"], d
    pts, met = sweep(scenario, seeds, duration_s)
    costs = np.array([[m["cost"] for m in row] for row in met]).mean(axis=1)
    best = int(np.argmin(costs))
    # the absolute value written (machines of a scenario share their RAM and boot value unless randomised)
    mf_kb = None if pts[best][0] == "boot" else int(np.median([m["final_min_free_kbytes"] for m in met[best]]))
    wsf = None if pts[best][1] < 0 else int(pts[best][1])
    d = {"scenario": scenario.name, "seeds": [int(s) for s in seeds], "duration_s": duration_s, "mf_kb": mf_kb,
         "wsf": wsf, "grid": [{"mf": str(mf), "wsf": w, "mean_cost": float(c)} for (mf, w), c in zip(pts, costs)]}
    write_cache(cache, d)
    return mf_kb, wsf, d


def _knob_or_none(v) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31)


def read_cache(path: Path, need: dict) -> dict | None:
    """A cached sweep (ours: best_static, oracle.fleet_static), or None when there is none. A
    damaged one (not JSON, truncated, a key missing or of the wrong type: ``need`` maps each key
    to its check) is a miss: one warning line, then the caller recomputes and replaces it."""
    if path.is_symlink():       # a link planted in the cache is not followed: a miss, replaced
        print(f"warning: damaged cache ({path}: a symbolic link, not followed); recomputing it", file=sys.stderr)
        return None
    if not path.exists():
        return None
    try:
        d = files.read_json(path, MAX_CACHE_BYTES, "a sweep cached by agents.evaluate")
        bad = [k for k, ok in need.items() if not isinstance(d, dict) or k not in d or not ok(d[k])]
        if bad:
            raise files.FileError(f"{path}: key {bad[0]!r} missing or invalid")
    except files.FileError as e:
        print(f"warning: damaged cache ({e}); recomputing it", file=sys.stderr)
        return None
    return d


def write_cache(path: Path, d: dict) -> None:
    """Store a sweep in the cache (replacing a damaged entry); a cache that cannot be written is
    a warning: the result is still used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        safefiles.replace_text(path, json.dumps(d, indent=1))
    except OSError as e:
        print(f"warning: cannot write the cache {path} ({e.strerror or e}); continuing without it", file=sys.stderr)
