"""NR_FREE_PAGES as the watermark checks read it (sim/vmstat.py, mm/vmstat.c).

Hand-checked values on a one-node machine with DMA32 (200000 pages) and Normal (100000 pages) at
min_free_kbytes 4000 (Normal: min 333, low 433; DMA32: min 666, low 866: low = min +
max(min / 4, managed * 10 / 10000)):

- calculate_normal_threshold(): 2 * fls(cpus) * (1 + fls(managed >> 15)): Normal 100000 >> 15 = 3,
  fls 2: 2 * 1 * 3 = 6 on one CPU, 2 * 2 * 3 = 12 on two; DMA32 200000 >> 15 = 6, fls 3: 8;
- calculate_pressure_threshold() from kswapd's first run after a full sleep until the next full
  sleep: (low - min) / cpus, at most 125: Normal 100 on one CPU, 50 on two; DMA32 125 (200 capped);
- the counter moves to the buddy count only once the pending diff passes cpus x threshold;
- vmstat_update() folds every zone once a simulated second;
- an allocation's check reads the counter, not the buddy count.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.watermark_ok import ALLOC_WMARK_LOW, GFP_KERNEL
from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.alloc import alloc_pages_bulk
from atomgym.sim.engine import free_state, make_state
from atomgym.sim.scenario import KswapdSpec, MachineSpec, MemorySpec, Scenario
from atomgym.sim.vmstat import free_seen, normal_threshold_of, refresh_thresholds, stat_threshold

DMA32, NORMAL = 1, 2
assert ALLOC_WMARK_LOW is not None


@njit(cache=False)   # no cache: a cached copy would keep stale simulator constants (layout.py)
def _thresholds(T, z):
    S = make_state(T)
    out = (S.zs[0, z, L.ZF_STAT_NORMAL], stat_threshold(S, 0, z))
    free_state(S)
    return out


@njit(cache=False)
def _seen(T, z):
    S = make_state(T)
    g = free_seen(S, 0, z)
    free_state(S)
    return g


@njit(cache=False)
def _alloc(T, n):
    S = make_state(T)
    got, _ = alloc_pages_bulk(S, 0, n, GFP_KERNEL, L.ZL_KERNEL, L.ZF_KERNEL, 0)
    free_state(S)
    return got


def _sim(cpus: int = 1) -> Simulator:
    m = Machine(np.array([0, 200000, 100000, 0, 0]), version=KernelVersion(6, 1), thp="never").boot()
    m.write("vm.min_free_kbytes", 4000)
    scen = Scenario(name="vmstat", tick_ms=1.0, machine=MachineSpec(pcp_batch=1, cpus=cpus),
                    memory=MemorySpec(page_cache_frac=0.0, anon_frac=0.0, kernel_frac=0.0),
                    kswapd=KswapdSpec(reclaim_pages_per_ms=100.0, wake_latency_ms=0.5),
                    nics=[], traffic=[], workloads=[])
    return Simulator(scen, machines=m)


@njit(cache=False)
def _refresh(T):
    S = make_state(T)
    refresh_thresholds(S, 0, 0)
    free_state(S)


def _kswapd(sim: Simulator, state: int, ran: bool | None = None) -> None:
    """kswapd in ``state``; ``ran``: it has run since its last full sleep (default: awake); the
    thresholds in force refreshed as kswapd does when it changes (set_pgdat_percpu_threshold())."""
    nd = sim.state[L.STATE_INDEX["nd"]]
    nd[0, 0, L.ND_STATE] = state
    nd[0, 0, L.ND_STAT_PRESSURE] = float(state != L.KS_SLEEP if ran is None else ran)
    _refresh(sim.state)


def test_thresholds_are_the_kernels_normal_and_pressure_ones():
    # calculate_normal_threshold() itself: fls(0) = 0, fls(1) = 1, fls(3) = 2, fls(8) = 4; the cap
    assert [normal_threshold_of(m, c) for m, c in ((3840, 1), (100000, 1), (200000, 2), (100000, 8),
                                                   (1 << 30, 64))] == [2, 6, 16, 24, 125]
    sim = _sim()
    w = sim.wmark[0]
    assert (w[NORMAL, 0], w[NORMAL, 1], w[DMA32, 0], w[DMA32, 1]) == (333, 433, 666, 866)
    _kswapd(sim, L.KS_SLEEP)
    assert _thresholds(sim.state, NORMAL) == (6, 6) and _thresholds(sim.state, DMA32) == (8, 8)
    _kswapd(sim, L.KS_NAP)          # awake: calculate_pressure_threshold()
    assert _thresholds(sim.state, NORMAL) == (6, 100) and _thresholds(sim.state, DMA32) == (8, 125)
    _kswapd(sim, L.KS_WAKING, ran=False)   # woken from a full sleep, not yet run: still normal
    assert _thresholds(sim.state, NORMAL) == (6, 6)
    # simplified: a watermark write while kswapd is awake moves the pressure threshold with low -
    # min at once (the kernel keeps the one set_pgdat_percpu_threshold() computed at its wake-up)
    _kswapd(sim, L.KS_NAP)
    sim.set_knobs(watermark_scale_factor=np.array([5]))      # low = 333 + max(83, 50): 83 apart
    assert sim.wmark[0, NORMAL, 1] - sim.wmark[0, NORMAL, 0] == 83
    assert _thresholds(sim.state, NORMAL) == (6, 83)
    two = _sim(cpus=2)
    _kswapd(two, L.KS_SLEEP)
    assert _thresholds(two.state, NORMAL) == (12, 12)
    _kswapd(two, L.KS_RUN)
    assert _thresholds(two.state, NORMAL) == (12, 50)


def test_the_counter_folds_only_past_the_threshold_and_every_second():
    sim = _sim()
    _kswapd(sim, L.KS_NAP)          # pressure threshold 100 in Normal, one CPU
    zs = sim.zone_state
    f = int(zs[0, NORMAL, L.ZF_FREE])
    zs[0, NORMAL, L.ZF_FREE_SEEN] = f
    zs[0, NORMAL, L.ZF_FREE] = f - 100          # a diff of 100: not folded
    assert _seen(sim.state, NORMAL) == f
    zs[0, NORMAL, L.ZF_FREE] = f - 101          # 101 > 100: folded to the buddy count
    assert _seen(sim.state, NORMAL) == f - 101 == zs[0, NORMAL, L.ZF_FREE_SEEN]
    zs[0, NORMAL, L.ZF_FREE] = f                # freed again: +101 from the counter, folded
    assert _seen(sim.state, NORMAL) == f
    zs[0, NORMAL, L.ZF_FREE] = f + 50
    zs[0, DMA32, L.ZF_FREE_SEEN] = zs[0, DMA32, L.ZF_FREE] - 100
    sim.advance(1000)                           # ticks 0-999: nothing reads or folds the counter
    assert zs[0, NORMAL, L.ZF_FREE_SEEN] == f and zs[0, NORMAL, L.ZF_FREE] == f + 50
    sim.advance(1)                              # the tick at 1 s: vmstat_update() folds every zone
    assert (zs[0, :, L.ZF_FREE_SEEN] == zs[0, :, L.ZF_FREE]).all()


def test_an_allocation_checks_the_counter_not_the_buddy_count():
    """Normal's buddy count 10 pages below low + 1 (the check needs free > low): the counter, 60
    above it and not folded (a diff of 70 < 100), passes the check, so the page comes from Normal;
    with the counter folded it fails there and the zonelist's DMA32 serves it."""
    for folded in (False, True):
        sim = _sim()
        _kswapd(sim, L.KS_NAP)
        zs = sim.zone_state
        low = int(sim.wmark[0, NORMAL, 1])
        zs[0, NORMAL, L.ZF_KERNEL] += zs[0, NORMAL, L.ZF_FREE] - (low - 9)
        zs[0, NORMAL, L.ZF_FREE] = low - 9
        zs[0, NORMAL, L.ZF_FREE_SEEN] = low - 9 if folded else low + 61
        zs[0, NORMAL, L.ZF_FREE_U] = low - 9
        before = zs[0, :, L.ZF_KERNEL].copy()
        assert _alloc(sim.state, 1) == 1
        took = zs[0, :, L.ZF_KERNEL] - before
        assert took[NORMAL] == (0 if folded else 1) and took[DMA32] == (1 if folded else 0)
