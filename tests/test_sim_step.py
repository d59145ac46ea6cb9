"""Simulator.step(): knob writes + interval start + ticks in one compiled call equals the separate
facade calls bit for bit, and carries the envs' fused discrete step (envs/_compiled.step_discrete)
with only the facade's engine.step_state between the env's own bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.scenario import load_scenario


def _pair(name: str = "incast-pagecache", n: int = 3) -> tuple[Simulator, Simulator]:
    s = load_scenario(name)
    a, b = Simulator(s, n_machines=n), Simulator(s, n_machines=n)
    seeds = np.arange(7, 7 + n)
    a.reset(seeds)
    b.reset(seeds)
    return a, b


def test_step_equals_set_knobs_then_advance():
    fused, ref = _pair()
    Z = fused.n_zones
    bk = np.zeros((3, Z), np.int64)
    bk[2, 2] = 2
    bp = np.zeros((3, Z), np.int64)
    bp[0, 1] = 300
    plan = [  # (min_free, wsf, wbf, boost_pages, boost_watermark, mask)
        (None, None, None, None, None, None),
        ([20000, -1, 70000], [-1, 200, -1], None, None, bk, None),
        (None, None, [0, -1, -1], bp, None, np.array([True, False, True])),
        ([-1, 9000, -1], None, None, None, None, np.array([False, True, True])),
    ]
    prev = np.zeros((3, L.NC))
    for k, (mf, wsf, wbf, p, w, mask) in enumerate(plan):
        run = np.ones(3, bool) if mask is None else mask
        out = fused.step(40, min_free_kbytes=mf, watermark_scale_factor=wsf, watermark_boost_factor=wbf,
                         boost_pages=p, boost_watermark=w, mask=mask, prev=prev)
        assert out is prev
        ref.set_knobs(min_free_kbytes=mf, watermark_scale_factor=wsf, watermark_boost_factor=wbf,
                      boost_pages=p, boost_watermark=w, mask=run)
        start = ref.counters.copy()
        start[:, L.C_MIN_FREE_SEEN] = ref.free.sum(axis=1)
        ref.counters[run, L.C_MIN_FREE_SEEN] = start[run, L.C_MIN_FREE_SEEN]
        ref.advance(40, mask=run)
        assert np.array_equal(prev[run], start[run]), k
        for name, x, y in zip(L.STATE_FIELDS, fused.state, ref.state):
            assert np.array_equal(x, y), (k, name)
    assert fused.counter("knob_writes").sum() > 0 and fused.counter("boost_actions").sum() == 2


def test_step_checks_its_arguments_like_set_knobs():
    sim = Simulator(load_scenario("quiet"), n_machines=2)
    with pytest.raises(ValueError, match=r"watermark_scale_factor: 3001 is out of range; valid range 1\.\.3000"):
        sim.step(1, watermark_scale_factor=3001)
    with pytest.raises(ValueError, match=r"prev must be a \(2, \d+\) float64 array"):
        sim.step(1, prev=np.zeros((2, 3)))
    assert sim.t_ms.tolist() == [0.0, 0.0]          # nothing ran
    sim.step(5)
    assert sim.t_ms.tolist() == [5.0, 5.0]


def test_envs_fused_step_through_the_facade():
    """The envs' fused discrete step, with its knob writes, interval start and ticks replaced by
    engine.step_state (what Simulator.step() calls), gives the same observation, reward and state."""
    from atomgym.envs import AtomEnv
    from atomgym.envs._compiled import discrete_knobs, obs_batch, terms_batch
    from atomgym.envs.spaces import N_ACTIONS
    from atomgym.sim.engine import step_state

    fused, ref = AtomEnv(duration_s=3.0, compute_score=False), AtomEnv(duration_s=3.0, compute_score=False)
    fused.reset(seed=3)
    ref.reset(seed=3)
    core, sim = ref.core, ref.core.sim
    B, Z = 1, sim.n_zones
    mask = np.ones(B, np.bool_)
    mf, wsf, bk, changes = np.zeros(B, np.int64), np.zeros(B, np.int64), np.zeros((B, Z), np.int64), np.zeros(B)
    acts = np.random.default_rng(2).integers(0, N_ACTIONS, size=25)
    acts[:N_ACTIONS] = np.arange(N_ACTIONS)
    for k, a in enumerate(acts):
        o1, r1, *_ = fused.step(int(a))
        discrete_knobs(np.array([a], np.int64), sim.field("mi"), sim.managed, mask, mf, wsf, bk, changes)
        step_state(sim.state, mf, wsf, np.full(B, -1, np.int64), np.zeros((B, Z), np.int64), bk, mask,
                   core.ticks, core.prev)
        terms_batch(sim.counters, core.prev, changes, core.weights, core.deadlock_penalty, sim.field("mi"),
                    core.was_terminated, mask, core._t, core._r, core._dead)
        obs = np.zeros_like(core._obs)
        obs_batch(sim.managed, sim.wmark, sim.boost, sim.zone_state, sim.field("mi"), sim.field("nd"),
                  sim.counters, core.prev, sim.n_nodes, obs)
        assert np.array_equal(o1, obs[0]) and r1 == float(core._r[0]), k
        for name, x, y in zip(L.STATE_FIELDS, fused.sim.state, sim.state):
            assert np.array_equal(x, y), (k, name)
    assert sim.counter("knob_writes")[0] > 0
