"""AtomEnv's fused step (one compiled call, envs/_compiled.step_fused) equals the
batched Python path it replaces (Core.apply + Core.advance + Core.step_terms + Core.obs) bit for
bit: observation, reward, info terms and every state array, for every discrete and continuous action."""
from __future__ import annotations

import numpy as np

from atomgym.envs import AtomEnv
from atomgym.envs.cost import TERM_NAMES
from atomgym.envs.spaces import N_ACTIONS


def _python_path_step(env: AtomEnv, action: int):
    core = env.core
    a = np.array([action], np.int64)
    mask = np.ones(1, bool)
    changes = core.apply(a, mask)
    core.advance(mask)
    t, r, dead = core.step_terms(changes, mask)
    return core.obs()[0], float(r[0]), t[0], bool(dead[0])


def test_fused_step_equals_python_path():
    fused, ref = AtomEnv(duration_s=3.0, compute_score=False), AtomEnv(duration_s=3.0, compute_score=False)
    fused.reset(seed=11)
    ref.reset(seed=11)
    acts = np.random.default_rng(5).integers(0, N_ACTIONS, size=30)
    acts[:N_ACTIONS] = np.arange(N_ACTIONS)   # every action at least once
    for k, a in enumerate(acts):
        o1, r1, term, _, info = fused.step(int(a))
        o2, r2, t2, dead2 = _python_path_step(ref, int(a))
        assert np.array_equal(o1, o2), k
        assert r1 == r2, k
        for i, name in enumerate(TERM_NAMES):
            assert info["term_" + name] == float(t2[i]), (k, name)
            assert info["reward_" + name] == float(-ref.core.weights[i] * t2[i]), (k, name)
        assert info["reward_deadlock"] == (-100.0 if dead2 else -0.0)
        assert term == bool(ref.sim.terminated[0])
        for x, y in zip(fused.sim.state, ref.sim.state):
            assert np.array_equal(x, y), k
        assert np.array_equal(fused.core.prev, ref.core.prev)
    assert fused.sim.counter("knob_writes")[0] > 0   # the actions did write sysctls


def test_fused_step_survives_reset_and_pickle():
    """Core keeps the fused step's arguments after the first step; a reset (in-place state) and a
    pickle round trip (a new Core) keep the results equal to a fresh env's."""
    import pickle

    a, b = AtomEnv(duration_s=2.0, compute_score=False), AtomEnv(duration_s=2.0, compute_score=False)
    for env in (a, b):
        env.reset(seed=3)
    a.step(1)
    b.step(1)
    a.reset(seed=4)
    b = pickle.loads(pickle.dumps(b))
    b.reset(seed=4)
    for k, act in enumerate([0, 1, 3, 5, 2, 0, 4, 6]):
        o1, r1, *_ = a.step(act)
        o2, r2, *_ = b.step(act)
        assert np.array_equal(o1, o2) and r1 == r2, k


def _python_path_step_cont(env: AtomEnv, action: np.ndarray):
    core = env.core
    mask = np.ones(1, bool)
    changes = core.apply(action.reshape(1, 3), mask)
    core.advance(mask)
    t, r, dead = core.step_terms(changes, mask)
    return core.obs()[0], float(r[0]), t[0], bool(dead[0])


def test_fused_continuous_step_equals_python_path():
    """Continuous actions take the same fused compiled step (envs/_compiled.step_fused)."""
    kw = dict(duration_s=3.0, compute_score=False, action_type="continuous")
    fused, ref = AtomEnv(**kw), AtomEnv(**kw)
    fused.reset(seed=7)
    ref.reset(seed=7)
    acts = np.random.default_rng(9).uniform(-1, 1, size=(30, 3)).astype(np.float32)
    acts[0] = (1, 1, 1)
    acts[1] = (-1, -1, -1)
    for k, a in enumerate(acts):
        o1, r1, term, _, info = fused.step(a)
        o2, r2, t2, dead2 = _python_path_step_cont(ref, a.astype(np.float64))
        assert np.array_equal(o1, o2) and r1 == r2, k
        for i, name in enumerate(TERM_NAMES):
            assert info["term_" + name] == float(t2[i]), (k, name)
        for x, y in zip(fused.sim.state, ref.sim.state):
            assert np.array_equal(x, y), k
    assert fused.sim.counter("knob_writes")[0] > 0 and fused.sim.counter("boost_actions")[0] > 0


def test_continuous_knobs_are_the_documented_mapping():
    """continuous_knobs() against the mapping written out in numpy (docs/environment.md, "Action
    space"): log-scale targets, the 2 % deadband, the boost level's boost_watermark() calls."""
    import math

    from atomgym.envs._compiled import continuous_knobs
    from atomgym.envs.spaces import MF_MAX_KB, MF_MIN_KB, WSF_MAX, WSF_MIN
    from atomgym.sim import layout as L

    env = AtomEnv(duration_s=2.0, compute_score=False, action_type="continuous")
    env.reset(seed=1)
    sim = env.sim
    rng = np.random.default_rng(3)
    for a in rng.uniform(-1, 1, size=(200, 3)):
        mf, wsf = np.zeros(1, np.int64), np.zeros(1, np.int64)
        bk, ch = np.zeros((1, sim.n_zones), np.int64), np.zeros(1)
        continuous_knobs(a.reshape(1, 3), sim.field("mi"), sim.managed, sim.wmark, sim.boost, np.ones(1, bool),
                         mf, wsf, bk, ch)
        u = (a + 1) / 2
        m0, w0 = int(sim.min_free_kbytes[0]), int(sim.watermark_scale_factor[0])
        mft = int(np.clip(round(math.exp(math.log(MF_MIN_KB) + u[0] * math.log(MF_MAX_KB / MF_MIN_KB))),
                          MF_MIN_KB, MF_MAX_KB))
        wst = int(np.clip(round(math.exp(math.log(WSF_MIN) + u[1] * math.log(WSF_MAX / WSF_MIN))), WSF_MIN, WSF_MAX))
        want_mf = mft if abs(mft - m0) > 0.02 * m0 else -1
        want_wsf = wst if wst != w0 and abs(wst - w0) > 0.02 * w0 else -1
        assert (mf[0], wsf[0]) == (want_mf, want_wsf), a
        high = sim.wmark[0, :, 2]
        maxb = np.maximum(512, high * int(sim.field("mi")[0, L.MI_WBF]) // 10000)
        cur = 0 if (want_mf >= 0 or want_wsf >= 0) else sim.boost[0]
        target = np.floor(u[2] * maxb).astype(np.int64)
        want_bk = np.where((sim.managed[0] > 0) & (target > cur), -(-(target - cur) // 512), 0)
        assert np.array_equal(bk[0], want_bk), a
        assert ch[0] == (want_mf >= 0) + (want_wsf >= 0) + bool(want_bk.sum())
