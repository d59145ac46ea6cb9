"""AtomEnv's fused discrete step (one compiled call, envs/_compiled.step_discrete) equals the
batched Python path it replaces (Core.apply + Core.advance + Core.step_terms + Core.obs) bit for
bit: observation, reward, info terms and every state array, for every discrete action."""
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
