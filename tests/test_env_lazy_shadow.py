"""The reward shadow runs lazily (envs/core.py, Core.lazy_shadow): a machine that has written no
knob since its reset is its own shadow, and the shadow machine runs only from its first write.
The rewards, the shadow's reward in the infos and the "score" scale are those of the whole shadow
episode run at reset, bit for bit, for every kind of action, with and without the gate, through
autoresets and a pickle."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from atomgym.envs import AtomEnv, AtomVectorEnv

CASES = [("levels", "none", "score"), ("relative", "drops", "score"), ("residual-level", "drops", "score"),
         ("discrete", "none", "default"), ("continuous", "none", "default"), ("relative", "drops", "default")]


@pytest.mark.parametrize("action_type,gate,baseline", CASES)
def test_lazy_shadow_equals_the_shadow_run_at_reset(action_type, gate, baseline):
    n, steps = 4, 45                       # 2 s episodes of 20 decisions: two autoresets
    kw = dict(num_envs=n, scenario="stream-read-bursts", duration_s=2.0, reward_baseline=baseline,
              action_type=action_type, gate=gate)
    lazy, eager = AtomVectorEnv(**kw), AtomVectorEnv(**kw)
    eager.core.lazy_shadow = False
    lazy.reset(seed=31)
    eager.reset(seed=31)
    rng = np.random.default_rng(5)
    twin_steps = diverged = 0
    for k in range(steps):
        was_twin = lazy.core.twin.copy()
        if action_type == "continuous":
            a = rng.uniform(-1.0, 1.0, size=(n, 3)).astype(np.float32)
            keep = rng.random(n) < 0.8
            a[keep] = _hold_continuous(lazy.core)[keep]
        else:
            a = rng.integers(0, lazy.single_action_space.n, size=n)
            a[rng.random(n) < 0.8] = 0
        o1, r1, t1, u1, i1 = lazy.step(a)
        o2, r2, t2, u2, i2 = eager.step(a)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2), (k, r1, r2)
        assert np.array_equal(t1, t2) and np.array_equal(u1, u2)
        assert np.array_equal(i1["reward_default"], i2["reward_default"]), k
        twin_steps += int((was_twin & lazy.core.twin).sum())
        diverged += int((was_twin & ~lazy.core.twin).sum())
        if k == 25:                          # a pickled lazy env continues identically
            lazy = pickle.loads(pickle.dumps(lazy))
    assert twin_steps > 0 and diverged > 0   # both paths ran


def _hold_continuous(core) -> np.ndarray:
    """Per machine, the continuous action that writes nothing now: targets at its current
    min_free_kbytes and watermark_scale_factor (within the 2 % dead band) and no boost."""
    from atomgym.envs import _compiled as C
    from atomgym.sim import layout as L
    mi = core.sim.field("mi")
    u0 = (np.log(mi[:, L.MI_MIN_FREE_KBYTES].astype(float)) - C._LOG_MF_MIN) / C._LOG_MF
    u1 = (np.log(mi[:, L.MI_WSF].astype(float)) - C._LOG_WSF_MIN) / C._LOG_WSF_SPAN
    return np.stack([2 * u0 - 1, 2 * u1 - 1, -np.ones(len(u0))], axis=1).clip(-1, 1).astype(np.float32)


def test_a_machine_that_never_writes_runs_no_shadow():
    """The mechanism behind the speed: with the drops gate and no drop, the shadow machine never
    runs (its clock stays at 0), and the reward is 0 every step."""
    v = AtomVectorEnv(num_envs=2, scenario="quiet", duration_s=2.0, reward_baseline="score",
                      action_type="relative", gate="drops")
    v.reset(seed=3)
    for _ in range(20):
        _, r, *_ = v.step(np.array([5, 7]))
        assert np.array_equal(r, np.zeros(2))
    assert v.core.twin.all() and np.array_equal(v.core.shadow.t_ms, np.zeros(2))


def test_single_env_lazy_shadow_equals_the_shadow_run_at_reset():
    """AtomEnv (B = 1, the fused step): the same rewards, shadow rewards and score as the shadow
    episode run at reset, over two episodes on a machine whose gate opens mid-episode."""
    kw = dict(scenario="stream-read-bursts", duration_s=2.0, reward_baseline="score", action_type="relative",
              gate="drops")
    lazy, eager = AtomEnv(**kw), AtomEnv(**kw)
    eager.core.lazy_shadow = False
    opened = False
    for seed in (31, 32):
        lazy.reset(seed=seed)
        eager.reset(seed=seed)
        done = False
        while not done:
            _, r1, t1, u1, i1 = lazy.step(5)
            _, r2, t2, u2, i2 = eager.step(5)
            assert r1 == r2 and i1["reward_default"] == i2["reward_default"] and (t1, u1) == (t2, u2)
            assert i1.get("score") == i2.get("score")
            opened |= bool(lazy.core.gate_open[0])
            done = t1 or u1
    assert opened
