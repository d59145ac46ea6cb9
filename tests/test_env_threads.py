"""The envs' helper threads. The reward shadow run ahead (envs/shadow_ahead.py): a vector env's next
episodes' default-settings shadows run in a background thread from the seeds its generators will
draw; the rewards are those of the shadow run when needed, bit for bit, and the thread's failures and
the interpreter's exit are handled. The fused step in two halves at once (Core.step_fused()): the
same observations and rewards. Neither with one CPU or NUMBA_NUM_THREADS=1. Also: starting numba's
thread pool keeps torch's thread count (sim/engine.py)."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from atomgym.envs import AtomVectorEnv, core as core_mod, shadow_ahead


def _run(prefetch: bool, n: int = 3, steps: int = 50, baseline: str = "score"):
    env = AtomVectorEnv(num_envs=n, scenario="stream-read-bursts", duration_s=2.0, reward_baseline=baseline,
                        action_type="levels")
    if not prefetch:
        env.core.prefetch = lambda seeds, mask: None
    taken = []
    if prefetch:
        orig = shadow_ahead.ShadowAhead.take

        def take(self, i, seed):
            r = orig(self, i, seed)
            taken.append(r is not None)
            return r
        shadow_ahead.ShadowAhead.take = take
    try:
        env.reset(seed=11)
        rng = np.random.default_rng(3)
        out = []
        for _ in range(steps):
            a = rng.integers(0, env.single_action_space.n, size=n)
            a[rng.random(n) < 0.3] = 0
            o, r, t, u, info = env.step(a)
            out.append((o.copy(), r.copy(), info["reward_default"].copy()))
            if prefetch:
                _started(env)
    finally:
        if prefetch:
            shadow_ahead.ShadowAhead.take = orig
        env.close()
    return out, taken


def _started(env, timeout: float = 60.0, idle: bool = False) -> None:
    """Wait until the background thread has picked up every queued run (a queued run that a take()
    finds not started is dropped and run in the caller's thread: the same rewards, but the test
    would not see the run-ahead path on a busy host); with ``idle``, until it has finished them."""
    ahead = env.core.ahead
    end = time.monotonic() + timeout
    while ahead is not None and (ahead._queued or (idle and ahead._running)) and time.monotonic() < end:
        time.sleep(0.005)


@pytest.mark.parametrize("baseline", ["score", "default"])
def test_shadows_run_ahead_give_the_same_rewards(baseline):
    ref, _ = _run(False, baseline=baseline)
    got, taken = _run(True, baseline=baseline)
    assert sum(taken) >= 3, taken             # episodes 2 and 3 of every machine took a shadow run ahead
    for k, ((o1, r1, d1), (o2, r2, d2)) in enumerate(zip(ref, got)):
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2), k


def test_only_machines_that_wrote_are_run_ahead():
    env = AtomVectorEnv(num_envs=2, scenario="stream-read-bursts", duration_s=2.0, reward_baseline="score",
                        action_type="levels")
    env.reset(seed=5)
    for _ in range(43):                       # machine 0 writes, machine 1 stays at the defaults: from
        env.step(np.array([3, 0]))            # its second episode on, nothing of machine 1's runs ahead
        _started(env, idle=True)              # (a run still under way at a reset is not asked again)
    assert env.core.wrote_last.tolist() == [True, False]
    ahead = env.core.ahead
    assert ahead is not None
    asked = set(ahead._queued) | set(ahead._running) | {i for i, _ in ahead._done}
    assert 0 in asked and 1 not in asked
    env.close()


def test_a_failed_background_run_is_raised_where_the_rewards_are_needed(monkeypatch):
    env = AtomVectorEnv(num_envs=2, scenario="stream-read-bursts", duration_s=2.0, reward_baseline="score",
                        action_type="levels")

    def boom(self, group):
        raise ValueError("simulated failure")
    monkeypatch.setattr(shadow_ahead.ShadowAhead, "_episodes", boom)
    env.reset(seed=5)
    with pytest.raises(RuntimeError, match="background run failed"):
        for _ in range(45):
            env.step(np.array([3, 3]))
            _started(env)                     # (a run not yet started at its take() is run by the caller)


def test_the_interpreter_exits_while_a_shadow_runs_ahead():
    code = ("import numpy as np\nfrom atomgym.envs import AtomVectorEnv\n"
            "v = AtomVectorEnv(4, 'stream-read-bursts', duration_s=30.0, reward_baseline='score', action_type='levels')\n"
            "v.reset(seed=1)\n"
            "for _ in range(31): v.step(np.ones(4, np.int64))\n"
            "assert v.core.ahead is not None and (v.core.ahead._running or v.core.ahead._queued or v.core.ahead._done)\n"
            "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "Exception" not in p.stderr, p.stderr[-2000:]


@pytest.mark.parametrize("how", ["cpus", "numba"])
def test_one_cpu_runs_no_helper_thread(monkeypatch, how):
    if how == "cpus":
        monkeypatch.setattr(core_mod, "_cpus", lambda: 1)
    else:
        monkeypatch.setattr(core_mod.numba.config, "NUMBA_NUM_THREADS", 1)
    env = AtomVectorEnv(num_envs=4, scenario="stream-read-bursts", duration_s=2.0, reward_baseline="score",
                        action_type="levels", decision_interval_ms=1000)
    env.reset(seed=5)
    for _ in range(5):
        env.step(np.array([3, 3, 3, 3]))
    assert env.core.ahead is None and env.core._split is None


@pytest.mark.parametrize("action_type", ["levels", "continuous"])
def test_the_step_in_two_halves_gives_the_same_results(action_type):
    kw = dict(num_envs=5, scenario="train-randomized", duration_s=4.0, decision_interval_ms=1000, action_type=action_type,
              observation="memory")
    split, serial = AtomVectorEnv(**kw), AtomVectorEnv(**kw)
    assert split.core._split is not None and split.core._split[1] == 3
    serial.core._split[0].shutdown()
    serial.core._split = None
    split.reset(seed=8)
    serial.reset(seed=8)
    rng = np.random.default_rng(1)
    for k in range(10):                       # two episodes: an autoreset step (not fused) between
        if action_type == "continuous":
            a = rng.uniform(-1, 1, (5, 3))
        else:
            a = rng.integers(0, split.single_action_space.n, 5)
        o1, r1, t1, u1, i1 = split.step(a)
        o2, r2, t2, u2, i2 = serial.step(a)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(t1, t2), k
        assert np.array_equal(i1["term_atomic_fail"], i2["term_atomic_fail"]), k
    split.close()
    serial.close()


def test_concatenated_parts_overlapped_give_the_same_results():
    """ConcatVecEnv starts every part's compiled step before it ends any (a part's helper half runs
    while the next part's first half does): the same observations, rewards, dones and infos as the
    parts stepped one after the other with no helper thread, over episode ends (autoreset) and with
    the score reward's shadow run ahead."""
    from atomgym.envs.sb3 import AtomSB3VecEnv, ConcatVecEnv

    kw = dict(duration_s=3.0, decision_interval_ms=1000, action_type="levels", observation="memory",
              reward_baseline="score")

    def make(helpers: bool) -> ConcatVecEnv:
        parts = [AtomSB3VecEnv(4, scenario=s, **kw) for s in ("train-randomized", "stream-read-bursts")]
        for p in parts:
            if helpers:
                assert p.venv.core._split is not None
            elif p.venv.core._split is not None:
                p.venv.core._split[0].shutdown()
                p.venv.core._split = None
        env = ConcatVecEnv(parts)
        env.seed(5)
        return env

    over, serial = make(True), make(False)
    serial.step_wait = lambda: (lambda res: (np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res]),
                                             np.concatenate([r[2] for r in res]), [i for r in res for i in r[3]]))(
        [v.step_wait() for v in serial.parts])
    o1, o2 = over.reset(), serial.reset()
    assert np.array_equal(o1, o2)
    rng = np.random.default_rng(2)
    for k in range(8):                        # two episodes and more
        a = rng.integers(0, over.action_space.n, over.num_envs)
        over.step_async(a)
        serial.step_async(a)
        r1, r2 = over.step_wait(), serial.step_wait()
        for x, y in zip(r1[:3], r2[:3]):
            assert np.array_equal(x, y), k
        for d1, d2 in zip(r1[3], r2[3]):
            assert d1.keys() == d2.keys(), k
            for key in d1:
                assert np.array_equal(np.asarray(d1[key]), np.asarray(d2[key]), equal_nan=True), (k, key)
    # an action out of the space in the last part: ValueError before any part steps
    t0 = [p.venv.core.sim.t_ms.copy() for p in over.parts]
    bad = np.zeros(over.num_envs, np.int64)
    bad[-1] = over.action_space.n
    over.step_async(bad)
    with pytest.raises(ValueError, match="actions"):
        over.step_wait()
    assert all(np.array_equal(p.venv.core.sim.t_ms, t) for p, t in zip(over.parts, t0))
    over.close()
    serial.close()


def test_numba_thread_pool_keeps_torchs_thread_count():
    torch = pytest.importorskip("torch")
    code = ("import torch\ntorch.set_num_threads(1)\nimport numpy as np\n"
            "from atomgym.sim import Simulator\nfrom atomgym.sim.scenario import load_scenario\n"
            "s = Simulator(load_scenario('quiet'), n_machines=4, parallel=True)\ns.advance(5)\n"
            "print(torch.get_num_threads())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "NUMBA_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "1"
    del torch
