"""Simulator.step(): knob writes + interval start + ticks in one compiled call equals the separate
facade calls bit for bit, and its compiled form engine.step_state (for the envs' fused step) equals
the facade."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.engine import step_state
from atomgym.sim.knobs import KNOBS, NKNOBS
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
    with pytest.raises(TypeError, match="unexpected keyword argument 'min_free'; sysctls: min_free_kbytes, "):
        sim.step(1, min_free=100)
    with pytest.raises(TypeError, match="set_knobs.. got an unexpected keyword argument 'wsf'"):
        sim.set_knobs(wsf=100)
    assert sim.t_ms.tolist() == [0.0, 0.0]          # nothing ran
    sim.step(5)
    assert sim.t_ms.tolist() == [5.0, 5.0]


_CTR = L.STATE_INDEX["ctr"]   # a global int: a compile-time index into the state tuple


@njit(cache=False)
def _compiled_caller(T, knobs, boost_pages, boost_calls, mask, n_ticks, prev):
    """What a compiled env step does: engine.step_state on the state tuple, then reads a counter."""
    step_state(T, knobs, boost_pages, boost_calls, mask, n_ticks, prev, True)
    return T[_CTR][0, L.C_KNOB_WRITES]


def test_step_state_from_compiled_code_equals_the_facade():
    """engine.step_state, called from compiled code (as the envs' fused step does), with the
    arrays Simulator.step() builds, gives the same state as Simulator.step()."""
    a, b = _pair("virtio-deferral", n=2)
    Z = a.n_zones
    none = np.full(2, -1, np.int64)
    zeros = np.zeros((2, Z), np.int64)
    bk = zeros.copy()
    bk[1, 2] = 1
    prev_a, prev_b = np.zeros((2, L.NC)), np.zeros((2, L.NC))
    for k, (mf, wsf) in enumerate([(np.array([30000, -1]), none), (none, np.array([-1, 150])), (none, none)]):
        knobs = np.full((2, NKNOBS), -1, np.int64)
        knobs[:, KNOBS.index("min_free_kbytes")] = mf
        knobs[:, KNOBS.index("watermark_scale_factor")] = wsf
        writes = _compiled_caller(a.state, knobs, zeros, bk, np.ones(2, np.bool_), 25, prev_a)
        b.step(25, min_free_kbytes=mf, watermark_scale_factor=wsf, boost_watermark=bk, prev=prev_b)
        assert writes == a.counter("knob_writes")[0]
        assert np.array_equal(prev_a, prev_b), k
        for name, x, y in zip(L.STATE_FIELDS, a.state, b.state):
            assert np.array_equal(x, y), (k, name)
    assert a.counter("knob_writes").tolist() == [1, 1]
