"""``atomgym warmup``: compile every entry point of the simulator and the envs ahead of use.

The compiled code is cached per user and CPU (kernel/jit.py, ``cache_root()``), so after a warmup
(or a first use) every later process loads it in about a second. For CI images and clusters: run
``atomgym warmup`` once in the image, with ``ATOMGYM_CACHE_DIR`` pointing at a folder the jobs
share if their home folders differ; a folder only you can write: numba loads the pickles it holds
(docs/cli.md, "Trust and files").
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

import numpy as np

# the smallest shipped scenario is enough: the compiled code does not depend on a scenario's sizes
WARMUP_SCENARIO = "quiet"


def _dispatchers() -> list:
    """Every numba dispatcher of atomgym imported so far (kernel/jit.py registers each one)."""
    from .kernel.jit import DISPATCHERS
    return list(DISPATCHERS)


def steps() -> list[tuple[str, Callable[[], None]]]:
    """(what, how): each exercises one group of entry points the way the library calls them."""
    from .envs.atom_env import AtomEnv
    from .envs.spaces import ACTION_TYPES
    from .envs.vector_env import AtomVectorEnv
    from .sim import Simulator
    from .sim.scenario import load_scenario

    sc = load_scenario(WARMUP_SCENARIO)

    def simulator() -> None:
        Simulator(sc, n_machines=4, parallel=True).advance(2)
        sim = Simulator(sc, n_machines=4, parallel=False)
        sim.advance(2)
        sim.set_knobs(min_free_kbytes=np.full(4, 2 * int(sim.sysctl("min_free_kbytes")[0])))
        sim.step(2)

    def env(action_type: str, observation: str, reward_baseline: str) -> Callable[[], None]:
        def run() -> None:
            e = AtomEnv(scenario=sc, action_type=action_type, observation=observation,
                        reward_baseline=reward_baseline, duration_s=1.0)
            e.reset(seed=0)
            e.step(e.action_space.sample())
            e.close()
        return run

    def vector() -> None:
        v = AtomVectorEnv(num_envs=2, scenario=sc, duration_s=1.0)
        v.reset(seed=0)
        v.step(v.action_space.sample())
        v.close()

    out: list[tuple[str, Callable[[], None]]] = [("simulator (advance, knobs, step)", simulator)]
    for at in ACTION_TYPES:
        out.append((f"env: {at} actions", env(at, "basic", "none")))
    out.append(("env: memory observation", env("levels", "memory", "none")))
    out.append(("env: reward_baseline default/score", env("discrete", "basic", "score")))
    out.append(("vector env", vector))
    return out


def warmup(err: TextIO | None = None) -> int:
    """Compile (or load) every entry point; one line per group with its time; returns 0."""
    from .kernel.jit import cache_root
    err = err or sys.stderr
    t_all = time.perf_counter()
    for what, run in steps():
        t = time.perf_counter()
        run()
        print(f"atomgym warmup: {what}: {time.perf_counter() - t:.1f} s", file=err, flush=True)
    ds = _dispatchers()
    compiled = sum(sum(d._cache_misses.values()) for d in ds)
    loaded = sum(sum(d._cache_hits.values()) for d in ds)
    print(f"atomgym warmup: done in {time.perf_counter() - t_all:.1f} s ({compiled} functions compiled, "
          f"{loaded} loaded from {cache_root()})", file=err, flush=True)
    return 0
