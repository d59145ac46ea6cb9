"""A cold engine compile on two cores (atomgym/compile_split.py) and the lock that keeps two
processes' saves of one function apart (kernel/jit.py, _Cache._save_overload)."""
from __future__ import annotations

import os
import subprocess
import sys

from atomgym import compile_helper as CH
from atomgym import compile_split as CS


class _FakePopen:
    started: list = []

    def __init__(self, args, **kw):
        _FakePopen.started.append((args, kw["env"]))

    def poll(self):
        return 0


def test_the_helper_starts_once_for_an_engine_entry_and_never_from_a_helper(monkeypatch):
    monkeypatch.setattr(CS, "_started", None)
    monkeypatch.setattr(CS.subprocess, "Popen", _FakePopen)
    monkeypatch.setattr(CS.os, "cpu_count", lambda: 2)
    monkeypatch.setenv(CS.ENV_OFF, "1")
    _FakePopen.started = []
    assert not CS.start("lru_add")                  # not an entry point: its compile is small
    assert CS.start("step_fused")
    assert not CS.start("step_state")               # once per process
    (args, env), = _FakePopen.started
    assert args[1:] == ["-m", "atomgym.compile_helper"]
    assert env[CS.ENV_OFF] == "0" and env["ATOMGYM_COMPILE_NOTICE"] == "0"   # the helper starts none
    monkeypatch.setattr(CS, "_started", None)
    monkeypatch.setenv(CS.ENV_OFF, "0")
    assert not CS.start("step_fused")               # turned off
    monkeypatch.setenv(CS.ENV_OFF, "1")
    monkeypatch.setattr(CS.os, "cpu_count", lambda: 1)
    assert not CS.start("step_fused")               # one CPU: nothing to gain


def test_the_helper_compiles_its_half():
    """What the helper runs (with this suite's warm cache the entries load)."""
    assert CH.compile_helper_half() == [name for _, name in CH.HELPER_ORDER]


def test_a_save_takes_the_functions_lock(tmp_path):
    """Each function's cache entries are saved under an exclusive lock on <entry>.lock beside its
    index, so that two processes saving two signatures at once cannot share a data file."""
    code = ("import numpy as np; from atomgym.sim import rng; rng.uniform(np.ones(4, np.uint64));"
            "print(sum(rng.uniform._cache_misses.values()))")
    env = dict(os.environ, ATOMGYM_CACHE_DIR=str(tmp_path / "cache"), **{CS.ENV_OFF: "0"})
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.stdout.split() == ["1"], r.stderr
    locks = list((tmp_path / "cache").glob("numba*/sim.rng/*/rng.uniform-*.lock"))
    index = list((tmp_path / "cache").glob("numba*/sim.rng/*/rng.uniform-*.nbi"))
    assert len(locks) == 1 and len(index) == 1 and locks[0].with_suffix(".nbi") == index[0]


def test_no_helper_when_the_engine_loads_from_the_cache(tmp_path):
    """The helper is for compiles: a process whose engine loads from the cache starts none (the first
    run here warms the cache, or finds it warm)."""
    code = ("import numpy as np; from atomgym import compile_split as CS; from atomgym.sim import Simulator;"
            "from atomgym.sim.scenario import load_scenario; s = Simulator(load_scenario('quiet'));"
            "s.reset(np.array([1])); s.advance(3); print(CS._TRIGGER is not None, CS._started is not None)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600) for _ in range(2)]
    assert runs[1].stdout.split() == ["True", "False"], [r.stderr[-500:] for r in runs]


def test_a_stopped_helper_leaves_no_partial_cache_file(tmp_path):
    """SIGTERM (its process exited) mid-compile: the helper exits 0 and numba's writer, given an
    Exception, removes its temporary file: no *.tmp.* file in the cache."""
    import signal
    import time
    env = dict(os.environ, ATOMGYM_CACHE_DIR=str(tmp_path / "cache"), **{CS.ENV_OFF: "0"})
    p = subprocess.Popen([sys.executable, "-m", "atomgym.compile_helper"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(8)                                 # into the compile of nic_poll's call tree
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0, p.stderr.read()[-1000:]
    assert not list((tmp_path / "cache").rglob("*.tmp.*"))
