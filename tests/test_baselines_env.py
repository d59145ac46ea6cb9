"""Baselines driven through the Gymnasium env's observation/continuous action spaces."""
from __future__ import annotations

import pytest

from agents.baselines.env import EnvPolicy
from atomgym.envs.atom_env import AtomEnv


def test_static_and_controller_baselines_act_through_the_env():
    env = AtomEnv("incast-pagecache", action_type="continuous", duration_s=3.0)
    obs, info = env.reset(seed=1)
    pol = EnvPolicy.for_env("tuned-hpc", env)
    a, st = pol.predict(obs)
    assert a.shape == (1, 3) and env.action_space.contains(a[0])
    obs, r, term, trunc, info = env.step(a[0])
    assert abs(int(env.unwrapped.core.sim.min_free_kbytes[0]) - 135168) <= 135168 * 0.001
    a, st = pol.predict(obs, st)                         # the same target: inside the 2 % deadband
    writes = env.unwrapped.core.sim.counter("knob_writes")[0]
    env.step(a[0])
    assert env.unwrapped.core.sim.counter("knob_writes")[0] == writes
    env2 = AtomEnv("incast-pagecache", action_type="continuous", duration_s=3.0)
    obs, _ = env2.reset(seed=1)
    psi = EnvPolicy.for_env("psi", env2)
    st = None
    for _ in range(30):
        a, st = psi.predict(obs, st)
        obs, *_ = env2.step(a[0])
    assert env2.unwrapped.core.sim.min_free_kbytes[0] > 67584   # pressure in 3 s of the headline
    with pytest.raises(ValueError, match="in-kernel"):
        EnvPolicy.for_env("v10-acked", env2)


def test_psi_gated_through_the_env_holds_where_only_sockets_drop():
    """In the first 3 s of incast-pagecache psi raises on atomic failures (above); psi-gated, fed the
    env's observation (its gate counters summed from it), sees no ring or pfmemalloc drop and writes
    nothing."""
    env = AtomEnv("incast-pagecache", action_type="continuous", duration_s=3.0)
    obs, _ = env.reset(seed=1)
    pol, st = EnvPolicy.for_env("psi-gated", env), None
    for _ in range(30):
        a, st = pol.predict(obs, st)
        obs, *_ = env.step(a[0])
    assert env.unwrapped.core.sim.min_free_kbytes[0] == 67584 and not st["p"]["open"].any()
    assert st["gate"][0] == 0 and st["fail"][0] > 0
    assert env.unwrapped.core.sim.counter("knob_writes")[0] == 0
