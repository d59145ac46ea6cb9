"""The shipped real-atomic-stream scenarios (issue 11's real-kernel experiment): boosts appear by
themselves under streaming, DMA's atomic floor is 3/8·min + lowmem_reserve, and
watermark_scale_factor 100 fails fewer atomic pages than 10."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim.scenario import load_scenario

DMA, DMA32, NORMAL = 0, 1, 2


@pytest.fixture(scope="module")
def runs():
    out = {}
    for name in ("real-atomic-stream", "real-atomic-stream-wsf100"):
        s = load_scenario(name)
        sim = Simulator(s)
        sim.reset(np.array([1]))
        maxboost = np.zeros(sim.n_zones, np.int64)
        for _ in range(int(s.duration_s * 1000 / s.tick_ms)):   # boosts last a few ms: sample every tick
            sim.advance(1)
            np.maximum(maxboost, sim.boost[0], out=maxboost)
        out[name] = (s, sim, maxboost)
    return out


def test_shape_debian_61_512mib_no_nic(runs):
    s, sim, _ = runs["real-atomic-stream"]
    assert s.nics == [] and s.traffic == [] and s.machine.kernel == "6.1"
    assert sim.managed[0, DMA] == 3840 and sim.managed[0, NORMAL] == 0 and sim.managed[0, DMA32] > 100000
    assert runs["real-atomic-stream-wsf100"][1].watermark_scale_factor[0] == 100


def test_boosts_rise_by_themselves_under_streaming(runs):
    """No tuner and no action: every boost comes from a migratetype fallback."""
    _, sim, maxboost = runs["real-atomic-stream"]
    assert sim.counter("fallback_boosts")[0] >= 5
    assert maxboost[DMA32] >= 512
    assert sim.counter("boost_actions")[0] == 0 and sim.counter("tuner_actions")[0] == 0


def test_dma_floor_is_three_eighths_min_plus_lowmem_reserve(runs):
    """GFP_ATOMIC's check: m = min - min/2; m -= m/4; + lowmem_reserve[ZONE_NORMAL]. DMA's batch
    is 1, so the last page taken leaves exactly that many."""
    for name in runs:
        _, sim, _ = runs[name]
        mn = int(sim.wmark[0, DMA, 0])
        m = mn - mn // 2
        m -= m // 4
        floor = m + int(sim.reserve[0, DMA, NORMAL])
        assert sim.counter("atomic_fail_bursts")[0] > 0
        assert sim.counter("atomic_fail_free_dma")[0] == floor, name


def test_wsf_100_fails_fewer_atomic_pages(runs):
    f10 = runs["real-atomic-stream"][1].counter("atomic_fail_pages")[0]
    f100 = runs["real-atomic-stream-wsf100"][1].counter("atomic_fail_pages")[0]
    assert f10 > 0 and f100 < f10
