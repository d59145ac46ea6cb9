"""Property tests: random scenarios and knob writes never give a negative page count or NaN,
and every zone's pages are conserved (free + pcp + cache + anon + kernel + net == managed), with
the migratetype split and pcp high inside their bounds."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomgym.sim import Simulator
from atomgym.kernel.zones import MAX_NR_ZONES, PAGEBLOCK_NR_PAGES
from atomgym.sim import layout as L
from atomgym.sim.scenario import (
    KswapdSpec, MachineSpec, MemorySpec, NicSpec, Scenario, ShotSpec, TrafficSpec, WorkloadSpec,
)

_fr = st.floats(0.0, 0.45)


@st.composite
def scenarios(draw):
    nics = [NicSpec(driver=draw(st.sampled_from(["page_pool", "dev_alloc_pages", "virtio_net"])),
                    queues=draw(st.integers(1, 8)), ring_size=draw(st.sampled_from([64, 512, 1024])),
                    buffer_bytes=draw(st.sampled_from([1024, 2048, 4096, 9000])),
                    napi_budget=draw(st.integers(8, 256)), napi_interval_us=draw(st.floats(20.0, 2000.0)),
                    app_drain_pps=draw(st.floats(0.0, 3e6)), rcvbuf_kb=draw(st.integers(64, 32768)),
                    sock_memalloc=draw(st.booleans()), recycle=draw(st.sampled_from([None, False])))
            for _ in range(draw(st.integers(1, 2)))]
    kinds = st.sampled_from(["poisson", "mmpp", "incast", "diurnal"])
    traffic = [TrafficSpec(kind=draw(kinds), rate_pps=draw(st.floats(0.0, 3e6)), burst_pps=draw(st.floats(0.0, 5e6)),
                           mean_on_ms=draw(st.floats(1.0, 50.0)), mean_off_ms=draw(st.floats(1.0, 100.0)),
                           period_ms=draw(st.floats(5.0, 200.0)), burst_ms=draw(st.floats(0.5, 30.0)),
                           packet_bytes=draw(st.sampled_from([64, 1500, 9000])))
               for _ in range(draw(st.integers(0, 3)))]
    wk = st.sampled_from(["stream_read", "anon_hog", "churn"])
    workloads = [WorkloadSpec(kind=draw(wk), rate_mib_s=draw(st.floats(0.0, 3000.0)),
                              working_set_mib=draw(st.floats(1.0, 4096.0)), peak_mib=draw(st.floats(1.0, 2048.0)),
                              hold_s=draw(st.floats(0.0, 0.2)), period_s=draw(st.floats(0.0, 0.3)),
                              stop_s=draw(st.sampled_from([None, 0.2, 0.4])))
                 for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        workloads.append(WorkloadSpec(
            kind="atomic_alloc", gfp=draw(st.sampled_from(["atomic", "nowait"])),
            pages_per_burst=draw(st.integers(1, 20000)), interval_ms=draw(st.floats(1.0, 50.0)),
            hold_ms=draw(st.floats(0.0, 200.0)),
            shots=[ShotSpec(at_s=draw(st.floats(0.0, 0.5)), pages=draw(st.integers(1, 50000)),
                            hold_ms=draw(st.floats(0.0, 100.0))) for _ in range(draw(st.integers(0, 3)))]))
    return Scenario(
        name="prop", tick_ms=draw(st.sampled_from([0.5, 1.0, 2.0])),
        machine=MachineSpec(ram_mib=draw(st.sampled_from([1024, 2048, 6144])), nodes=draw(st.integers(1, 2)),
                            thp=draw(st.sampled_from(["always", "never"])),
                            pcp_batch=draw(st.sampled_from([None, 1, 63, 128])),
                            kernel=draw(st.sampled_from(["6.1", "6.18"]))),
        memory=MemorySpec(page_cache_frac=draw(_fr), anon_frac=draw(_fr), kernel_frac=draw(st.floats(0.0, 0.08)),
                          swap=draw(st.booleans()),
                          page_cache_gfp=draw(st.sampled_from(["GFP_HIGHUSER_MOVABLE", "GFP_USER"])),
                          page_cache_age=draw(st.sampled_from(["interleaved", "zonelist"])),
                          reform_pageblocks=draw(st.booleans()), reclaim_reforms_pageblocks=draw(st.booleans())),
        kswapd=KswapdSpec(reclaim_pages_per_ms=draw(st.floats(1.0, 2000.0)), wake_latency_ms=draw(st.floats(0.0, 3.0)),
                          direct_reclaim_pages_per_ms=draw(st.floats(1.0, 1000.0))),
        nics=nics, traffic=traffic, workloads=workloads)


def _check(sim: Simulator) -> None:
    zs = sim.zone_state
    pools = zs[:, :, list(L.ZF_POOLS)]
    assert (pools >= 0).all(), "negative page count"
    assert np.array_equal(pools.sum(axis=2), sim.managed), "pages not conserved"
    # migratetype split: the unmovable and reclaimable parts of free, the unmovable part of pcp,
    # and the whole free MOVABLE pageblocks are parts
    fu, fr, f = zs[:, :, L.ZF_FREE_U], zs[:, :, L.ZF_FREE_R], zs[:, :, L.ZF_FREE]
    assert (fu >= 0).all() and (fr >= 0).all() and (fu + fr <= f).all()
    assert (zs[:, :, L.ZF_FREE_BLK] >= 0).all() and (zs[:, :, L.ZF_FREE_BLK] * PAGEBLOCK_NR_PAGES <= f - fu - fr).all()
    assert (zs[:, :, L.ZF_FREE_BLK_U] >= 0).all() and (zs[:, :, L.ZF_FREE_BLK_U] * PAGEBLOCK_NR_PAGES <= fu).all()
    for fld in (L.ZF_BLK_CARRY, L.ZF_BLK_PEND, L.ZF_BLK_MERGE):
        assert (zs[:, :, fld] >= 0).all()
    assert (zs[:, :, L.ZF_BLK_PEND] < PAGEBLOCK_NR_PAGES).all() and (zs[:, :, L.ZF_BLK_MERGE] < PAGEBLOCK_NR_PAGES).all()
    assert (zs[:, :, L.ZF_PCP_U] >= 0).all() and (zs[:, :, L.ZF_PCP_U] <= zs[:, :, L.ZF_PCP]).all()
    # pcp high at least high_min. Not at most high_max: a watermark write recomputes high_min and
    # high_max (zone_pcp_update() -> pageset_update()) and leaves pcp->high as it was; the kernel
    # clamps it at the next free (nr_pcp_high()), the simulator lets decay_pcp_high() bring it down
    # (docs/simulator.md, "Simplifications"); and high_min can exceed high_max (a large
    # min_free_kbytes on a small zone: high_min follows the low watermark, high_max the zone's size)
    assert (zs[:, :, L.ZF_PCP_HIGH] >= zs[:, :, L.ZF_PCP_HIGH_MIN]).all()
    assert np.isfinite(sim.counters).all() and (sim.counters >= 0).all()
    ni = sim.field("ni")
    assert (sim.boost >= 0).all() and (ni >= 0).all() and (sim.nic_pages >= 0).all()
    assert (sim.workload_anon_pages >= 0).all()
    # each workload's kernel pages (page tables, xarray slabs) are counted where they were
    # allocated, are the kernel pages it holds, and lie within each zone's kernel memory
    wk = sim.field("wk")
    assert (wk >= 0).all()
    assert np.array_equal(wk.sum(axis=2), sim.field("wp")[:, :, L.WP_S_KMEM].astype(np.int64))
    assert (wk.sum(axis=1) <= zs[:, :, L.ZF_KERNEL]).all()
    # NIC page accounting: pages held per NIC == pages charged to zones
    assert np.array_equal(sim.nic_pages.sum(axis=2), ni[:, :, L.NI_PAGES])
    assert np.array_equal(sim.nic_pages.sum(axis=1), zs[:, :, L.ZF_NET])
    # the recycle pool: idle pages the NIC holds, within its capacity
    cap = sim.field("nf")[:, :, L.NP_POOL_CAP]
    assert (ni[:, :, L.NI_POOL] <= cap).all() and (ni[:, :, L.NI_POOL] <= ni[:, :, L.NI_PAGES]).all()
    # each node's LRU (sim/lru.py) holds exactly the page cache of its zones, per zone type; the
    # ring's buckets in use are the tail's run, each bucket's total is its zones' sum
    lru, lrp = sim.field("lru"), sim.field("lrp")
    assert (lru >= 0).all() and np.array_equal(lru[..., :L.LRU_TOTAL].sum(axis=3), lru[..., L.LRU_TOTAL])
    # a bucket's pages of whole pageblocks are among its pages of that zone type
    assert (lru[..., L.LRU_BLK:L.LRU_BLK + MAX_NR_ZONES] <= lru[..., :MAX_NR_ZONES]).all()
    for b in range(lru.shape[0]):
        for node in range(lru.shape[1]):
            tail, n = lrp[b, node, L.LP_TAIL], lrp[b, node, L.LP_LEN]
            assert 0 <= n <= L.LRU_BUCKETS and 0 <= tail < L.LRU_BUCKETS
            used = [(tail + i) % L.LRU_BUCKETS for i in range(n)]
            unused = sorted(set(range(L.LRU_BUCKETS)) - set(used))
            assert not lru[b, node, unused].any(), "pages in a bucket outside the ring"
            cache = zs[b, node * MAX_NR_ZONES:(node + 1) * MAX_NR_ZONES, L.ZF_CACHE]
            assert np.array_equal(lru[b, node, used, :L.LRU_TOTAL].sum(axis=0), cache), "LRU != page cache"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scn=scenarios(), seed=st.integers(0, 2**31), writes=st.lists(
    st.tuples(st.integers(-1, 400000), st.integers(-1, 3000), st.integers(-1, 40000), st.integers(0, 3000)),
    min_size=1, max_size=4))
def test_random_scenarios_and_knob_writes_keep_invariants(scn, seed, writes):
    sim = Simulator(scn, n_machines=1)
    sim.reset(np.array([seed]))
    _check(sim)
    for mf, wsf, wbf, bp in writes:
        sim.advance(150)
        _check(sim)
        boost = np.zeros((1, sim.n_zones), np.int64)
        boost[0, 2] = bp
        sim.set_knobs(min_free_kbytes=mf, watermark_scale_factor=max(wsf, 1) if wsf != -1 else -1,
                      watermark_boost_factor=wbf, boost_pages=boost)
        _check(sim)
    sim.advance(150)
    _check(sim)
