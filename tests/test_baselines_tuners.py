"""The patch-series tuners (sim/tuners.py) reproduce the behaviour patch-series.md states.

Hook-level tests fire ``tuner_on_event`` directly on a Simulator's state at chosen times (exact
caps and debounces); end-to-end tests run a crafted replay scenario where page_pool refills fail
every tick (Normal at 10 free pages, the rest of the zone anonymous memory without swap, so
nothing is reclaimable and raising min_free_kbytes cannot deadlock the machine).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.watermark_ok import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT
from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.engine import free_state, make_state
from atomgym.sim.scenario import KswapdSpec, MachineSpec, MemorySpec, NicSpec, Scenario, TrafficSpec
from atomgym.sim.tuners import EV_ALLOC_FAIL, EV_KSWAPD_END, EV_SLOWPATH_ENTRY, TS_ZC, tuner_on_event

DMA, DMA32, NORMAL = 0, 1, 2


@njit(cache=False)   # no cache: a cached copy would keep stale simulator constants (layout.py)
def _fire(T, ev, gfp, cls, zone, node, arg):
    S = make_state(T)
    tuner_on_event(S, 0, ev, gfp, cls, zone, node, arg)
    free_state(S)


def _machine(pages=(0, 0, 400000, 0, 0), mf: int | None = 1000, thp: str = "never") -> Machine:
    m = Machine(np.array(pages), version=KernelVersion(6, 18), thp=thp).boot()
    if mf is not None:
        m.write("vm.min_free_kbytes", mf)
    return m


def _scenario(tmp_path, stop_s: float | None = None) -> Scenario:
    trace = tmp_path / "t.csv"
    trace.write_text("packets\n" + "10\n" * 100)
    return Scenario(
        name="tuner", tick_ms=1.0, machine=MachineSpec(pcp_batch=1),
        memory=MemorySpec(page_cache_frac=0.0, anon_frac=0.0, kernel_frac=0.0),
        kswapd=KswapdSpec(reclaim_pages_per_ms=100.0, wake_latency_ms=0.5, direct_reclaim_pages_per_ms=200.0),
        nics=[NicSpec(driver="page_pool", queues=1, ring_size=1024, mtu=1500, buffer_bytes=4096, napi_budget=65536,
                      napi_interval_us=1000.0, line_rate_gbps=1000.0, rcvbuf_kb=1 << 20, app_drain_pps=0.0)],
        traffic=[TrafficSpec(kind="replay", trace=str(trace), trace_interval_ms=1.0, packet_bytes=1500,
                             stop_s=stop_s)])


def _sim(tmp_path, tuner, machine=None, stop_s=None, params=None) -> Simulator:
    sim = Simulator(_scenario(tmp_path, stop_s), machines=machine or _machine(), tuner=tuner, tuner_params=params)
    zs = sim.zone_state
    for z in range(sim.n_zones):
        if sim.managed[0, z] == 0:
            continue
        free = 10 if z == NORMAL else 0
        zs[0, z, L.ZF_FREE] = free
        zs[0, z, L.ZF_PCP] = zs[0, z, L.ZF_CACHE] = 0
        zs[0, z, L.ZF_ANON] = sim.managed[0, z] // 2
        zs[0, z, L.ZF_KERNEL] = sim.managed[0, z] - free - zs[0, z, L.ZF_ANON] - zs[0, z, L.ZF_NET]
    sim.sync_lru()
    return sim


def _relieve(sim) -> None:
    """Move most anonymous memory of Normal to free: refills succeed, failures stop."""
    zs = sim.zone_state
    a = zs[0, NORMAL, L.ZF_ANON] - 1000
    zs[0, NORMAL, L.ZF_ANON] -= a
    zs[0, NORMAL, L.ZF_FREE] += a


def _at(sim, t_ms, ev, gfp=GFP_ATOMIC, cls=L.CLS_ATOMIC, node=0, arg=1):
    sim.t_ms[0] = t_ms
    _fire(sim.state, ev, gfp, cls, NORMAL, node, arg)


def _n(sim) -> int:
    return int(sim.counter("tuner_actions")[0])


# ---- v1 -----------------------------------------------------------------------------------------
def test_v1_doubles_every_failure_and_stops_at_one_percent_of_ram(tmp_path):
    """1 % of 400000 pages = 16000 kB: 1000 -> 2000 -> 4000 -> 8000 -> 16000, then nothing."""
    sim = _sim(tmp_path, "v1-double")
    seen = []
    for _ in range(8):
        sim.advance(1)
        seen.append(int(sim.min_free_kbytes[0]))
    assert seen[:5] == [2000, 4000, 8000, 16000, 16000] and seen[-1] == 16000
    assert _n(sim) == 4
    assert sim.wmark[0, NORMAL, 0] == 16000 // 4           # setup_per_zone_wmarks() re-run
    assert "v1-double" in sim.tuner_actions(0)[0] and "2000 kB" in sim.tuner_actions(0)[0]


def test_v1_recompute_clears_boosts_and_gate_includes_kernel_and_nowait(tmp_path):
    sim = _sim(tmp_path, "v1-double")
    z1 = np.zeros((1, sim.n_zones), np.int64)
    z1[0, NORMAL] = 1
    sim.set_knobs(boost_watermark=z1)
    assert sim.boost[0, NORMAL] == 512
    _at(sim, 0.0, EV_ALLOC_FAIL, gfp=GFP_KERNEL, cls=L.CLS_KERNEL)      # GFP_KERNEL passes v1-v3's gate
    assert sim.min_free_kbytes[0] == 2000 and sim.boost[0, NORMAL] == 0
    _at(sim, 1.0, EV_ALLOC_FAIL, gfp=GFP_NOWAIT, cls=L.CLS_NOWAIT)
    assert sim.min_free_kbytes[0] == 4000
    _at(sim, 2.0, EV_ALLOC_FAIL, gfp=0x2000, cls=L.CLS_NOWAIT)          # __GFP_NOWARN alone: no
    assert sim.min_free_kbytes[0] == 4000


def test_v1_v2_noop_when_thp_already_set_more_than_one_percent(tmp_path):
    m = _machine(mf=None, thp="always")
    cap = 400000 * 4 // 100
    assert m.min_free_kbytes > cap                         # THP's recommendation beats the cap
    for tuner in ("v1-double", "v2-grow-decay"):
        sim = _sim(tmp_path, tuner, machine=m)
        sim.advance(50)
        assert sim.counter("atomic_fail")[0] > 0
        assert _n(sim) == 0 and sim.min_free_kbytes[0] == m.min_free_kbytes


# ---- v2 -----------------------------------------------------------------------------------------
def test_v2_grows_half_with_global_debounce_then_decays_every_300s(tmp_path):
    """Failures for 25 s: +50 % at t=0, 10000, 20000 (1500, 2250, 3375); then a 5 % decay
    300 s after the last increase (3375 - 168 = 3207) and 300 s later again (3207 - 160)."""
    sim = _sim(tmp_path, "v2-grow-decay", stop_s=25.0)
    sim.advance(1)
    assert sim.min_free_kbytes[0] == 1500
    assert sim.machine(0).user_min_free_kbytes == 1500     # v2 raises user_min_free_kbytes too
    sim.advance(9999)                                      # t = 1 .. 9999: debounced
    assert sim.min_free_kbytes[0] == 1500 and _n(sim) == 1
    sim.advance(1)
    assert sim.min_free_kbytes[0] == 2250
    sim.advance(15000)                                     # to t = 25000
    assert sim.min_free_kbytes[0] == 3375 and _n(sim) == 3
    _relieve(sim)
    sim.advance(320000 - 25001)                            # to t = 319999
    assert sim.min_free_kbytes[0] == 3375
    sim.advance(2)
    assert sim.min_free_kbytes[0] == 3207
    sim.advance(300000)
    assert sim.min_free_kbytes[0] == 3207 - 3207 // 20
    assert "300 s decay" in sim.tuner_actions(0)[-1]


def test_v2_decay_stops_at_one_point_two_times_initial(tmp_path):
    sim = _sim(tmp_path, "v2-grow-decay", stop_s=25.0, params={"decay_ms": 1000.0})
    sim.advance(10)
    assert sim.min_free_kbytes[0] == 1500
    _relieve(sim)
    sim.advance(1000)
    assert sim.min_free_kbytes[0] == 1425                   # 1500 - 1500/20
    sim.advance(10000)                                      # 1354, 1287, 1223, then 1200 (floor)
    assert sim.min_free_kbytes[0] == 1200 and _n(sim) == 6
    sim2 = _sim(tmp_path, "v2-grow-decay", stop_s=0.5, params={"decay_ms": 1000.0, "debounce_ms": 100.0})
    sim2.advance(500)
    assert sim2.min_free_kbytes[0] > 1200 * 3
    _relieve(sim2)
    sim2.advance(200000)
    assert sim2.min_free_kbytes[0] == 1200                  # floor = initial + initial/5


# ---- v3 -----------------------------------------------------------------------------------------
def test_v3_boosts_every_zone_once_per_10s_up_to_max_boost(tmp_path):
    m = _machine(pages=(3840, 200000, 400000, 0, 0), mf=4000)
    sim = _sim(tmp_path, "v3-boost", machine=m)
    maxb = [max(512, int(sim.wmark[0, z, 2]) * 15000 // 10000) for z in range(3)]
    _at(sim, 0.0, EV_ALLOC_FAIL)
    assert list(sim.boost[0, :3]) == [512, 512, 512] and _n(sim) == 3
    _at(sim, 9999.0, EV_ALLOC_FAIL, gfp=GFP_KERNEL, cls=L.CLS_KERNEL)   # global debounce
    assert list(sim.boost[0, :3]) == [512, 512, 512]
    for k in range(1, 8):
        _at(sim, 10000.0 * k, EV_ALLOC_FAIL, gfp=GFP_KERNEL, cls=L.CLS_KERNEL)
    assert list(sim.boost[0, :3]) == maxb and maxb[DMA] == 512 and maxb[NORMAL] > 1024


def test_v3_boost_gone_after_kswapds_boosted_run(tmp_path):
    sim = _sim(tmp_path, "v3-boost")
    sim.advance(1)
    assert sim.boost[0, NORMAL] == 512 and sim.kswapd_awake[0, 0]
    sim.advance(50)
    assert sim.boost[0, NORMAL] == 0 and _n(sim) == 1
    sim.advance(9950)                                      # t = 51 .. 10000
    assert _n(sim) == 2 and sim.boost[0, NORMAL] == 512


# ---- v4 -----------------------------------------------------------------------------------------
def test_v4_soft_boost_per_zone_debounce_and_scale_boost(tmp_path):
    m = _machine(pages=(3840, 200000, 400000, 0, 0), mf=4000)
    sim = _sim(tmp_path, "v4-soft-boost", machine=m)
    high0 = sim.wmark[0, :, 2].copy()
    _at(sim, 0.0, EV_SLOWPATH_ENTRY, gfp=GFP_KERNEL, cls=L.CLS_KERNEL)  # strict gate: no
    _at(sim, 0.0, EV_ALLOC_FAIL, gfp=GFP_NOWAIT, cls=L.CLS_NOWAIT)
    assert _n(sim) == 0
    _at(sim, 0.0, EV_SLOWPATH_ENTRY)
    assert sim.boost[0, NORMAL] == 256 and sim.boost[0, DMA32] == 0
    _at(sim, 1.0, EV_SLOWPATH_ENTRY)                       # Normal debounced: next zone
    assert sim.boost[0, NORMAL] == 256 and sim.boost[0, DMA32] == 256
    _at(sim, 2.0, EV_ALLOC_FAIL)                           # failure: boost_watermark, step 512
    assert sim.boost[0, NORMAL] == 256 + 512
    assert sim.wmark[0, NORMAL, 2] > high0[NORMAL]         # wsf + 5 for Normal only
    assert sim.wmark[0, DMA32, 2] == high0[DMA32]
    assert sim.boost[0, DMA32] == 256                      # recomputed without clearing boosts
    _at(sim, 3.0, EV_ALLOC_FAIL)
    assert sim.boost[0, DMA32] == 256 + 512                # Normal debounced: DMA32
    _at(sim, 4.0, EV_KSWAPD_END, arg=0)                    # unboosted run: nothing
    assert sim.wmark[0, NORMAL, 2] > high0[NORMAL]
    _at(sim, 5.0, EV_KSWAPD_END, arg=1)                    # boosted run: -5 -> 0
    assert (sim.wmark[0, :, 2] == high0).all()
    _at(sim, 10002.0, EV_ALLOC_FAIL)                       # Normal's debounce expired
    assert sim.boost[0, NORMAL] == min(256 + 1024, max(512, int(high0[NORMAL]) * 15000 // 10000))
    lines = sim.tuner_actions(0)
    assert any("soft boost in Node 0, zone Normal -> boost 256 pages" in s for s in lines), lines


def test_v4_scale_boost_capped_at_100_and_soft_boost_at_half_high(tmp_path):
    sim = _sim(tmp_path, "v4-soft-boost", machine=_machine(mf=4000))
    for k in range(30):
        _at(sim, 10000.0 * k, EV_ALLOC_FAIL)
    assert sim.tuner_state[0, TS_ZC + NORMAL] == 100.0       # watermark_scale_boost of Normal
    sim2 = _sim(tmp_path, "v4-soft-boost", machine=_machine(mf=4000))
    for k in range(20):
        _at(sim2, 10000.0 * k, EV_SLOWPATH_ENTRY)
    assert sim2.boost[0, NORMAL] == sim2.wmark[0, NORMAL, 2] // 2


# ---- v10 ----------------------------------------------------------------------------------------
def test_v10_tenth_of_a_percent_per_zone_one_second_debounce(tmp_path):
    m = _machine(pages=(3840, 200000, 400000, 0, 0), mf=4000)
    sim = _sim(tmp_path, "v10-acked", machine=m)
    sim.set_knobs(watermark_boost_factor=np.array([0]))   # independent of the boost factor
    _at(sim, 0.0, EV_ALLOC_FAIL, gfp=GFP_KERNEL, cls=L.CLS_KERNEL)
    assert _n(sim) == 0
    _at(sim, 0.0, EV_ALLOC_FAIL)
    assert list(sim.boost[0, :3]) == [3, 200, 400]
    _at(sim, 999.0, EV_ALLOC_FAIL)
    assert list(sim.boost[0, :3]) == [3, 200, 400]
    _at(sim, 1000.0, EV_ALLOC_FAIL)
    assert list(sim.boost[0, :3]) == [6, 400, 800]
    assert "v10-acked" in sim.tuner_actions(0)[-1]
