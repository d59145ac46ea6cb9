"""Per-step wall time of AtomEnv / AtomVectorEnv by observation mode and action type.

`python scripts/bench_env_modes.py [--steps N] [--repeat R] [--batch B]`: for each interval
(10 ms, where the per-step overhead dominates, and the default 100 ms) and each combination of
observation ("basic", "memory") and action type ("discrete", "levels"), the microseconds per
AtomEnv.step (uniformly random actions, compute_score=False, created directly) and per
AtomVectorEnv.step of ``--batch`` machines. Rounds are interleaved so that a busy neighbour
affects every line alike; medians are printed. Numbers are for this machine only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from atomgym.envs import AtomEnv, AtomVectorEnv  # noqa: E402

COMBOS = [(o, a) for o in ("basic", "memory") for a in ("discrete", "levels")]


def _single(obs: str, act: str, ms: float, steps: int) -> float:
    env = AtomEnv("incast-pagecache", decision_interval_ms=ms, action_type=act, observation=obs,
                  compute_score=False, duration_s=1e6)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, env.action_space.n, steps).tolist()
    env.step(0)   # warm up (compilation, the entry point)
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    return (time.perf_counter() - t0) / steps * 1e6


def _batch(obs: str, act: str, ms: float, n: int, steps: int) -> float:
    venv = AtomVectorEnv(n, "incast-pagecache", decision_interval_ms=ms, action_type=act, observation=obs,
                         duration_s=1e6)
    venv.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, venv.single_action_space.n, (steps, n))
    venv.step(acts[0])
    t0 = time.perf_counter()
    for a in acts:
        venv.step(a)
    return (time.perf_counter() - t0) / steps * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    res: dict[tuple, list[float]] = {}
    for _ in range(args.repeat):
        for ms in (10.0, 100.0):
            for o, a in COMBOS:
                res.setdefault(("AtomEnv", ms, o, a), []).append(_single(o, a, ms, args.steps))
                res.setdefault((f"AtomVectorEnv({args.batch})", ms, o, a), []).append(
                    _batch(o, a, ms, args.batch, max(1, args.steps // 10)))
    print(f"{'env':<18}{'interval':>9}  {'observation':<12}{'action_type':<12}{'us/step (median)':>18}")
    for (e, ms, o, a), v in res.items():
        print(f"{e:<18}{ms:>7g}ms  {o:<12}{a:<12}{statistics.median(v):>18.1f}")


if __name__ == "__main__":
    main()
