"""``atomgym warmup``: compile every entry point of the simulator and the envs ahead of use.

The compiled code is cached per user and CPU (kernel/jit.py, ``cache_root()``), so after a warmup
(or a first use) every later process loads it in about a second. For CI images and clusters: run
``atomgym warmup`` once in the image, with ``ATOMGYM_CACHE_DIR`` pointing at a folder the jobs
share if their home folders differ; a folder only you can write: numba loads the pickles it holds
(docs/cli.md, "Trust and files").

``atomgym warmup --portable`` (run by ``make wheel``) compiles the same entry points for numba's
``generic`` x86-64 CPU into the package's precompiled folder (kernel/jit.py, ``precompiled_root()``),
which the wheel ships: a fresh install then loads that code on its first step instead of compiling
(native code compiled later, by a warmup or any compile, is preferred).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

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
            # with a reward shadow, an action that writes a knob (discrete 1: min_free_kbytes x1.25):
            # the machine's first write runs the shadow's compiled episode (_compiled.shadow_episode)
            e.step(1 if reward_baseline != "none" else e.action_space.sample())
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
    from .kernel.jit import _Cache, cache_root
    err = err or sys.stderr
    _Cache.use_precompiled = False      # native code for this CPU, not the package's portable code
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


MARKER = "ATOMGYM_PRECOMPILED"      # names a folder `warmup --portable` wrote (and may replace)
MARKER_TEXT = ("Portable machine code of the simulator goes here: `atomgym warmup --portable` (run by `make wheel`)\n"
               "compiles it for numba's generic x86-64 CPU, and the wheel ships it (atomgym/kernel/jit.py).\n"
               "Its numba<version>-py<version>/ folders are generated and may be deleted.\n")


def portable(dest: Path | None = None, err: TextIO | None = None,
             child: Sequence[str] = ("-m", "atomgym", "warmup")) -> int:
    """Compile every entry point for the generic x86-64 CPU (a child process with
    ``NUMBA_CPU_NAME=generic`` and an empty cache of its own) and put its cache in ``dest``
    (default: the package's precompiled folder), replacing the previous portable build for this
    numba and Python version. A ``dest`` that holds anything but such builds is refused (exit 2):
    nothing of the user's is replaced. Returns the exit status."""
    from .kernel import jit as _jit
    err = err or sys.stderr
    dest = Path(dest) if dest is not None else _jit.precompiled_base()
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / MARKER).is_file())):
        print(f"atomgym warmup: error: {dest}: exists and is not a folder `atomgym warmup --portable` wrote "
              f"(no {MARKER} file in it); nothing was compiled", file=err)
        return 2
    version_dir = _jit._versioned(dest).name
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / MARKER).is_file():       # (the package's own folder has it in the sources)
        (dest / MARKER).write_text(MARKER_TEXT)
    for left in dest.glob(".portable-*"):     # a build killed before it could clean up after itself
        shutil.rmtree(left, ignore_errors=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".portable-", dir=dest) as tmp:
        env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": "", "ATOMGYM_CACHE_DIR": tmp,
               "ATOMGYM_PRECOMPILED_DIR": str(Path(tmp) / "none"), "ATOMGYM_COMPILE_NOTICE": "0"}
        print(f"atomgym warmup: compiling for the generic x86-64 CPU into {dest} (about 2 min on 2 cores)",
              file=err, flush=True)
        with subprocess.Popen([sys.executable, *child], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) as proc:
            for line in proc.stderr:                 # the child's progress lines, as they come
                print(line.rstrip("\n"), file=err, flush=True)
        rc = proc.returncode
        built = Path(tmp) / version_dir
        if rc != 0 or not built.is_dir():
            print(f"atomgym warmup: error: the generic compile failed (exit {rc}); {dest} unchanged", file=err)
            return 2
        (built / "compile-times.json").unlink(missing_ok=True)      # this machine's, not the package's
        old = dest / version_dir
        if old.exists():
            shutil.rmtree(old)
        os.replace(built, old)
    n = sum(1 for _ in (dest / version_dir).rglob("*.nbc"))
    print(f"atomgym warmup: {n} compiled entries for the generic CPU in {dest / version_dir} "
          f"({time.perf_counter() - t0:.0f} s)", file=err, flush=True)
    return 0
