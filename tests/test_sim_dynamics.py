"""Golden traces of the dynamics added for issue 11: fallback boosts, per-zone pcp sizing,
the atomic_alloc workload, phases, stop_s and stream_read's carried remainder; and for issue 21:
whole-pageblock steals without a boost, kswapd revived by direct reclaim, allocstall per
try_to_free_pages() call, atomic bursts freed each on its own timer; user tasks that wait for a
running kswapd on one CPU.

Set-up as in test_sim_golden.py: one node, Normal of 100000 managed pages, min_free_kbytes
4000: min 1000, low 1250, high 1500; GFP_ATOMIC's floor 375 (min - min/2 - min/8).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.pcp import PCP_HIGH_AUTOTUNE, PCP_HIGH_LOW_STATIC, parse_pagesets, pcp_high_static, zone_batchsize
from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.scenario import (
    MachineSpec, MemorySpec, PhaseSpec, PhaseSysctlSpec, Scenario, ScenarioError, ShotSpec, WorkloadSpec,
    scenario_from_dict,
)

NORMAL = 2
REPO = Path(__file__).resolve().parents[1]
SNAP_618 = REPO / "tests" / "data" / "snapshots" / "vm-6.18-3zones.txt"


def _machine(wbf: int = 15000) -> Machine:
    m = Machine(np.array([0, 0, 100000, 0, 0]), version=KernelVersion(6, 18), thp="never").boot()
    m.write("vm.min_free_kbytes", 4000)
    m.write("vm.watermark_boost_factor", wbf)
    return m


def _scenario(workloads=(), phases=(), nics=False) -> Scenario:
    from atomgym.sim.scenario import KswapdSpec
    return Scenario(name="dyn", tick_ms=1.0, machine=MachineSpec(pcp_batch=1),
                    memory=MemorySpec(page_cache_frac=0.0, anon_frac=0.0, kernel_frac=0.0),
                    kswapd=KswapdSpec(reclaim_pages_per_ms=100.0, wake_latency_ms=0.5),
                    nics=[], traffic=[], workloads=list(workloads), phases=list(phases))


def _set_zone(sim, b, z, free, cache=0, free_u=0, blocks=0, free_r=0):
    """Free pages (``free_u`` of them UNMOVABLE, ``free_r`` RECLAIMABLE; ``blocks`` whole free
    MOVABLE pageblocks, the rest sub-block chunks), page cache; the rest is kernel memory."""
    zs = sim.zone_state
    zs[b, z, L.ZF_FREE] = free
    zs[b, z, L.ZF_FREE_U] = free_u
    zs[b, z, L.ZF_FREE_R] = free_r
    zs[b, z, L.ZF_FREE_BLK] = blocks
    zs[b, z, L.ZF_PCP] = 0
    zs[b, z, L.ZF_PCP_U] = 0
    zs[b, z, L.ZF_CACHE] = cache
    zs[b, z, L.ZF_ANON] = 0
    zs[b, z, L.ZF_KERNEL] = sim.managed[b, z] - free - cache
    sim.sync_lru()


def _c(sim, name, b=0):
    return float(sim.counter(name)[b])


def test_fallback_boosts_and_wakes_kswapd_which_clears_it():
    """One atomic page (an atomic_alloc shot at t=0) with Normal at 5000 free, all of it in
    MOVABLE pageblocks. Fast path: 5000 > low 1250. The unmovable pcp list is empty and there is
    no unmovable buddy page: __rmqueue_fallback() steals a movable block (512 free pages move to
    UNMOVABLE) and calls boost_watermark(): boost = min(0 + 512, max(512, 1500*15000/10000)) =
    512; ZONE_BOOSTED_WATERMARK (GFP_ATOMIC has ALLOC_KSWAPD) makes the same rmqueue wake kswapd
    although the node is balanced (4999 > 1500 + 512). t=1: a boosted run (nr_boost_reclaim 512):
    file only, p12: 20000>>12 = 4, p11: 9, p10 held: 27 passes of 19 -> 526 pages by t=6; the
    boost is cleared by the snapshot. With watermark_boost_factor 0 the steal happens, but no
    boost and no wakeup (machine 1)."""
    wl = [WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.0, pages=1, hold_ms=1e6)])]
    s = _scenario(wl)
    sim = Simulator([s, s], machines=[_machine(), _machine(wbf=0)])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=5000, cache=20000)
    sim.advance(1)
    for b in (0, 1):
        assert _c(sim, "fallbacks", b) == 1 and _c(sim, "atomic_got_pages", b) == 1
        assert sim.zone_state[b, NORMAL, L.ZF_FREE_U] == 511 and sim.free[b, NORMAL] == 4999
    assert _c(sim, "fallback_boosts", 0) == 1 and sim.boost[0, NORMAL] == 512 and _c(sim, "kswapd_wakeups", 0) == 1
    assert _c(sim, "fallback_boosts", 1) == 0 and sim.boost[1, NORMAL] == 0 and _c(sim, "kswapd_wakeups", 1) == 0
    sim.advance(6)                        # t=1..6
    assert sim.boost[0, NORMAL] == 0 and sim.kswapd_state[0, 0] == L.KS_NAP
    assert _c(sim, "pgsteal_kswapd", 0) == 526 and _c(sim, "kswapd_passes", 0) == 29
    assert _c(sim, "pageoutrun", 1) == 0


def test_pcp_batch_and_high_match_the_618_snapshot_pagesets():
    """zone_batchsize()/zone_highsize() reproduce every static pagesets value of the 6.18 VM
    (2 CPUs): batch 1/63/63, high_min 17/3522/7019, high_max 240/48307/96256 (the snapshot's
    low watermarks 35/7045/14038); the simulator reads them from the snapshot."""
    ps = parse_pagesets(SNAP_618.read_text())
    lows = {"DMA": 35, "DMA32": 7045, "Normal": 14038}
    managed = {"DMA": 3840, "DMA32": 772918, "Normal": 1540096}
    for name in ("DMA", "DMA32", "Normal"):
        p = ps[(0, name)]
        assert p["cpus"] == 2
        batch = zone_batchsize(managed[name])
        assert batch == p["batch"]
        assert pcp_high_static(PCP_HIGH_AUTOTUNE, managed[name], lows[name], batch, 2) == (p["high_min"], p["high_max"])
    # 6.1 rule (5.14 .. 6.6): one static high = high_min
    assert pcp_high_static(PCP_HIGH_LOW_STATIC, 1540096, 14038, 63, 2) == (7019, 7019)
    s = scenario_from_dict({"machine": {"snapshot": str(SNAP_618)}, "nics": [], "traffic": []})
    sim = Simulator(s)
    zs = sim.zone_state[0]
    assert list(zs[:3, L.ZF_PCP_BATCH]) == [1, 63, 63]
    assert list(zs[:3, L.ZF_PCP_HIGH_MIN]) == [17, 3522, 7019]
    assert list(zs[:3, L.ZF_PCP_HIGH_MAX]) == [240, 48307, 96256]


def test_atomic_alloc_counts_pages_and_records_free_at_first_failure():
    """Normal at 1000 free (all unmovable), pcp batch 1. A burst of 1000 GFP_ATOMIC pages at t=0:
    the fast path fails (1000 <= 1250), the slow path takes pages while free > 375: 625 obtained,
    375 failed; the zone had 375 free pages at the first failure. Held 5 ms: at t=5 the 625 pages
    go back (free + pcp = 1000 again). A GFP_NOWAIT twin stops at min: 1000 <= 1000, none."""
    for gfp, got in (("atomic", 625), ("nowait", 0)):
        wl = [WorkloadSpec(kind="atomic_alloc", gfp=gfp, shots=[ShotSpec(at_s=0.0, pages=1000, hold_ms=5.0)])]
        sim = Simulator(_scenario(wl), machines=_machine())
        _set_zone(sim, 0, NORMAL, free=1000, free_u=1000)
        sim.advance(1)
        assert _c(sim, "atomic_req_pages") == 1000 and _c(sim, "atomic_got_pages") == got
        assert _c(sim, "atomic_fail_pages") == 1000 - got and _c(sim, "atomic_fail_bursts") == 1
        assert _c(sim, "atomic_fail_free_normal") == 1000 - got
        assert _c(sim, f"fail_{gfp}") == 1000 - got
        sim.advance(5)
        assert sim.free[0, NORMAL] + sim.pcp[0, NORMAL] + sim.zone_state[0, NORMAL, L.ZF_CACHE] >= 1000
        assert sim.zone_state[0, NORMAL, L.ZF_KERNEL] == 100000 - 1000


def test_phases_write_sysctls_and_start_stop_workloads():
    """A phase at 3 ms writes watermark_scale_factor 100 (setup_per_zone_wmarks(): low = min +
    max(min/4, managed*100/10000) = 1000 + 1000) and starts the hog; a phase at 6 ms stops it
    (the hog exits: its anonymous memory is freed)."""
    wl = [WorkloadSpec(kind="anon_hog", name="hog", rate_mib_s=3.90625, peak_mib=100.0, hold_s=100.0,
                       period_s=0.0)]
    ph = [PhaseSpec(at_s=0.003, sysctl=PhaseSysctlSpec(watermark_scale_factor=100), start=["hog"]),
          PhaseSpec(at_s=0.006, stop=["hog"])]
    sim = Simulator(_scenario(wl, ph), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=50000)
    sim.advance(3)                        # t=0..2
    assert sim.wmark[0, NORMAL, 1] == 1250 and sim.zone_state[0, NORMAL, L.ZF_ANON] == 0
    sim.advance(1)                        # t=3
    assert sim.wmark[0, NORMAL, 1] == 2000 and sim.watermark_scale_factor[0] == 100
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 1
    sim.advance(2)                        # t=4..5
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 3
    sim.advance(1)                        # t=6: stopped
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 0


def test_stream_read_carries_the_remainder():
    """10 pages/ms over a 1,000,000-page working set, nothing resident: misses = (r * nonres +
    carry) // ws. Flooring each tick lost one page per tick once anything was cached (9 of 10);
    with the remainder carried, 1000 ticks read floor(sum 10 * (ws - res_t) / ws) pages,
    within one page of 10000 - 10 * (0 + ... + ~9950) / 1e6 ~ 9950."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, working_set_mib=3906.25)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=90000)
    sim.advance(1000)
    got = sim.zone_state[0, NORMAL, L.ZF_CACHE]
    assert 9945 <= got <= 9955


def test_stream_read_volume_reads_once_then_stops():
    """volume_mib 1 = 256 pages at 10 pages/ms: 26 ticks, then nothing more."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, volume_mib=1.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=90000)
    sim.advance(25)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 250
    sim.advance(100)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 256


def test_whole_pageblock_steal_claims_the_block_without_a_boost():
    """steal_suitable_fallback() [6.1] / try_to_claim_block() [6.18]: a fallback that finds a
    whole free pageblock (order >= pageblock_order; __rmqueue_fallback() searches from the
    largest order down, so it finds one first) relabels the block and returns before
    boost_watermark(). One atomic page with Normal at 5000 free MOVABLE pages: machine 0 has
    two whole free blocks among them -> one fallback, the block (512 pages) becomes UNMOVABLE
    (511 left after the page), one whole block left, no boost, no kswapd wakeup; machine 1 has
    sub-block chunks only -> the boosted steal of test_fallback_boosts_and_wakes_kswapd_which_clears_it."""
    wl = [WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.0, pages=1, hold_ms=1e6)])]
    s = _scenario(wl)
    sim = Simulator([s, s], machines=[_machine(), _machine()])
    _set_zone(sim, 0, NORMAL, free=5000, cache=20000, blocks=2)
    _set_zone(sim, 1, NORMAL, free=5000, cache=20000, blocks=0)
    sim.advance(1)
    zs = sim.zone_state
    for b in (0, 1):
        assert _c(sim, "fallbacks", b) == 1 and _c(sim, "atomic_got_pages", b) == 1
        assert zs[b, NORMAL, L.ZF_FREE_U] == 511 and sim.free[b, NORMAL] == 4999
    assert zs[0, NORMAL, L.ZF_FREE_BLK] == 1
    assert _c(sim, "fallback_boosts", 0) == 0 and sim.boost[0, NORMAL] == 0 and _c(sim, "kswapd_wakeups", 0) == 0
    assert _c(sim, "fallback_boosts", 1) == 1 and sim.boost[1, NORMAL] == 512 and _c(sim, "kswapd_wakeups", 1) == 1


def test_movable_refills_split_a_whole_block_only_when_the_chunks_are_gone():
    """__rmqueue_smallest(): a MOVABLE refill takes the smallest free chunk first. 5000 free
    MOVABLE pages, 9 whole blocks (4608) and 392 pages of chunks; a reader takes 10 pages/ms
    (pcp batch 1; 100 RECLAIMABLE free pages serve its xarray slab). After 100 pages the 9 blocks
    are intact; after 500, one block was split (4500 // 512 = 8 left)."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, volume_mib=2.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=5100, free_r=100, blocks=9)
    sim.advance(10)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 100 and sim.zone_state[0, NORMAL, L.ZF_FREE_BLK] == 9
    sim.advance(40)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 500 and sim.zone_state[0, NORMAL, L.ZF_FREE_BLK] == 8


def test_direct_reclaim_progress_revives_a_hopeless_kswapd():
    """shrink_node(): "On reclaim progress, reset the failure counter. A successful direct
    reclaim run will revive a dormant kswapd." kswapd_failures is 16 (hopeless: wakeup_kswapd()
    declines). Normal at 990 free (below min 1000) with 20000 page-cache pages; an anon hog
    allocates 1 page/ms: its slow path cannot wake kswapd, fails at min, and one direct reclaim
    call (allocstall_movable: GFP_HIGHUSER_MOVABLE) reclaims 20000 >> 12 = 4 pages at
    DEF_PRIORITY plus one 32-page chunk at priority 11 (direct_reclaim_call_pages()) ->
    kswapd_failures 0; the retry's slow path (free 1026 < low) wakes kswapd, which runs from t=1
    (wake latency 0.5 ms). Without the reset kswapd stays hopeless and asleep."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=3.90625, peak_mib=100.0, hold_s=100.0, period_s=0.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=990, cache=20000)
    nd = sim.field("nd")
    nd[0, 0, L.ND_FAILURES] = 16
    sim.advance(1)                        # t=0
    assert _c(sim, "allocstall_movable") == 1 and _c(sim, "pgsteal_direct") == 36
    assert nd[0, 0, L.ND_FAILURES] == 0 and _c(sim, "kswapd_wakeups") == 1
    assert sim.kswapd_state[0, 0] == L.KS_WAKING
    sim.advance(1)                        # t=1
    assert _c(sim, "pageoutrun") == 1 and _c(sim, "pgsteal_kswapd") > 0


def test_a_softirq_that_interrupts_kswapd_allocates_without_watermarks():
    """__gfp_pfmemalloc_flags(): in_serving_softirq() && current->flags & PF_MEMALLOC ->
    ALLOC_NO_WATERMARKS; kswapd() runs with PF_MEMALLOC, so an atomic module's timer softirq
    that interrupts it allocates below every watermark (softirq_gfp()). One CPU, Normal at 1000
    free (= min, all UNMOVABLE) and 20000 page-cache pages, kswapd at 1 page/ms. A GFP_NOWAIT
    shot of 300 pages at t=0 finds kswapd asleep: the fast path fails, the slow path wakes it and
    stops at min (1000 <= 1000): none. Shots at t=2, 3 and 4 ms land while it runs: with
    kswapd.cpu_share 1 each gets its 300 pages (free drops to 104, far below min), with 0.5 every
    second one (the share's accumulator: t=3), with 0 (the default) none: the 4 pages kswapd has
    freed above min are in its CPU's unfolded vmstat diff (4 < the stat threshold), so the zone's
    NR_FREE_PAGES counter the check reads still says 1000 (sim/vmstat.py)."""
    from atomgym.sim.scenario import KswapdSpec
    wl = [WorkloadSpec(kind="atomic_alloc", gfp="nowait",
                       shots=[ShotSpec(at_s=t / 1000, pages=300, hold_ms=1e6) for t in (0, 2, 3, 4)])]
    base = dataclasses.replace(_scenario(wl), machine=MachineSpec(pcp_batch=1, cpus=1))
    scens = [dataclasses.replace(base, kswapd=KswapdSpec(reclaim_pages_per_ms=1.0, wake_latency_ms=0.5,
                                                         cpu_share=share)) for share in (1.0, 0.5, 0.0)]
    sim = Simulator(scens, machines=[_machine() for _ in scens])
    for b in range(3):
        _set_zone(sim, b, NORMAL, free=1000, free_u=1000, cache=20000)
    sim.advance(1)                        # t=0: kswapd asleep, woken by the slow path
    for b in range(3):
        assert _c(sim, "atomic_got_pages", b) == 0 and _c(sim, "atomic_fail_pages", b) == 300
        assert sim.kswapd_state[b, 0] == L.KS_WAKING
    got = []
    for t in (1, 2, 3, 4):
        sim.advance(1)
        got.append([_c(sim, "atomic_got_pages", b) for b in range(3)])
        if t >= 2:
            assert all(sim.kswapd_state[b, 0] == L.KS_RUN for b in range(3)), t
    # kswapd's 4 pages (20000 >> 12 at DEF_PRIORITY, at 1 page/ms) are not seen by the checks
    assert got == [[0, 0, 0], [300, 0, 0], [600, 300, 0], [900, 300, 0]]
    assert all(_c(sim, "pgsteal_kswapd", b) == 4 for b in range(3))
    assert list(sim.free[:, NORMAL]) == [104, 704, 1004]           # 1000 + 4 - got: below min on 0 and 1
    assert sim.zone_state[2, NORMAL, L.ZF_FREE_SEEN] == 1000
    assert _c(sim, "fail_nowait", 2) == 1200


def test_on_one_cpu_user_tasks_wait_while_kswapd_runs_its_first_3_ms():
    """One CPU: a woken kswapd preempts the user task (CFS check_preempt_wakeup()) with its vruntime
    placed up to sched_latency / 2 = 3 ms behind (place_entity()), so a reader (10 pages/ms) and a
    hog (1 page/ms) do not allocate in a tick at whose end kswapd is still in a run it started at
    most 3 ms before; their pages wait in the rate's accumulator and come at the next tick they
    run; past the 3 ms CFS shares the CPU and they run. Softirq allocations do not wait. Normal at
    1200 free (< low 1250; 100 RECLAIMABLE and 100 UNMOVABLE of them, so the xarray slab and page
    tables do not fall back) with 20000 page-cache pages: at t=0 both read 10 pages and fault 1,
    and the slow path wakes kswapd (100 pages/ms, latency 0.5 ms), which runs from t=1 until its
    pass ends at t=7 (607-611 pages). On one CPU the reader holds 10 pages and the hog 1 through
    t=3 (the run's first 3 ms), and at t=4 they have 50 and 5, as on two CPUs, where both ran
    every tick; an atomic shot of 20 pages at t=5 gets them on both."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, working_set_mib=3906.25, access="sequential"),
          WorkloadSpec(kind="anon_hog", rate_mib_s=3.90625, peak_mib=100.0, hold_s=100.0, period_s=0.0),
          WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.005, pages=20, hold_ms=1e6)])]
    scens = [dataclasses.replace(_scenario(wl), machine=MachineSpec(pcp_batch=1, cpus=c)) for c in (1, 2)]
    sim = Simulator(scens, machines=[_machine() for _ in scens])
    for b in range(2):
        _set_zone(sim, b, NORMAL, free=1200, cache=20000, free_r=100, free_u=100)
    wp = sim.field("wp")
    read, hog, atomic = [], [], []
    for t in range(8):
        sim.advance(1)
        read.append([int(wp[b, 0, L.WP_S_RESIDENT]) for b in range(2)])
        hog.append([int(wp[b, 1, L.WP_S_HELD]) for b in range(2)])
        atomic.append([_c(sim, "atomic_got_pages", b) for b in range(2)])
        assert [int(s) for s in sim.kswapd_state[:, 0]] == ([L.KS_WAKING] * 2 if t == 0 else
                                                            [L.KS_RUN] * 2 if t < 7 else [L.KS_NAP] * 2), t
    assert read == [[10, 10 * (t + 1)] for t in range(4)] + [[10 * (t + 1)] * 2 for t in range(4, 8)]
    assert hog == [[1, t + 1] for t in range(4)] + [[t + 1] * 2 for t in range(4, 8)]
    assert [a for a, _ in atomic] == [0.0] * 5 + [20.0] * 3 and atomic == [[a, a] for a, _ in atomic]
    assert _c(sim, "allocstall_movable", 0) == 0 and _c(sim, "allocstall_movable", 1) == 0


def test_a_lower_zones_boost_wakeup_sets_the_next_runs_zone_index_not_the_current_ones():
    """wakeup_kswapd() writes pgdat->kswapd_highest_zoneidx (if none is pending or it is lower)
    before it checks whether kswapd sleeps; kswapd() reads and resets it for each run
    (kswapd_highest_zoneidx()), so a wakeup during a run leaves that run's index alone and sets
    the next one's. DMA32 (50000 pages: min 333, low 416, high 499, lowmem_reserve for Normal 390)
    and Normal (100000: 666/832/998) with min_free_kbytes 4000; Normal at 700 free with 20000
    page-cache pages, DMA32 at 850 free (no page cache, every free page in sub-block MOVABLE
    chunks). kswapd is woken for Normal (index 2) at t=0 and reclaims 10 pages/ms from t=1. An
    atomic page at t=3: Normal (730 < low) fails the fast path, DMA32 (849 > 416 + 390) serves it
    through a fallback that boosts DMA32 by 512, and its rmqueue() wakes kswapd for index 1:
    kswapd is running, the index is only recorded. The run goes on at index 2 until Normal is
    balanced (1003 >= 998 at t=31); then the sleep check is at index 1: DMA32's 849 < 499 + 512,
    so kswapd_high_wmark_hit_quickly and a second run at index 1, boosted but imbalanced (the
    boost is ignored: normal reclaim), which finds no DMA32 page on the LRU at any priority:
    kswapd_failures 1, the boost snapshot cleared, and a nap (DMA32 balanced at index 1).
    Before, the wakeup raised the running kswapd's own index (to no effect here) and kswapd
    napped at index 2 after one run, DMA32 still boosted."""
    m = Machine(np.array([0, 50000, 100000, 0, 0]), version=KernelVersion(6, 18), thp="never").boot()
    m.write("vm.min_free_kbytes", 4000)
    wl = [WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.003, pages=1, hold_ms=1e6)])]
    s = dataclasses.replace(_scenario(wl), kswapd=dataclasses.replace(_scenario().kswapd, reclaim_pages_per_ms=10.0))
    sim = Simulator(s, machines=m)
    assert list(sim.wmark[0, 1, :3]) == [333, 416, 499] and list(sim.wmark[0, 2, :3]) == [666, 832, 998]
    assert sim.reserve[0, 1, 2] == 390
    _set_zone(sim, 0, 1, free=850)
    _set_zone(sim, 0, NORMAL, free=700, cache=20000)
    nd = sim.field("nd")
    nd[0, 0, L.ND_STATE] = L.KS_WAKING
    nd[0, 0, L.ND_T] = 0.0
    nd[0, 0, L.ND_HZ_PEND] = NORMAL
    sim.advance(4)                        # t=0..3
    assert _c(sim, "fallback_boosts") == 1 and sim.boost[0, 1] == 512 and _c(sim, "atomic_got_pages") == 1
    assert sim.kswapd_state[0, 0] == L.KS_RUN and nd[0, 0, L.ND_HZ] == NORMAL and nd[0, 0, L.ND_HZ_PEND] == 1
    sim.advance(27)                       # t=4..30: still the first run, at index 2
    assert _c(sim, "pageoutrun") == 1 and nd[0, 0, L.ND_HZ] == NORMAL
    sim.advance(2)                        # t=31..32
    assert _c(sim, "pageoutrun") == 2 and _c(sim, "kswapd_high_wmark_hit_quickly") == 1
    assert nd[0, 0, L.ND_HZ] == 1 and nd[0, 0, L.ND_HZ_PEND] == 5   # MAX_NR_ZONES: none pending
    assert sim.free[0, NORMAL] == 1003 and _c(sim, "pgsteal_kswapd") == 303
    assert sim.kswapd_state[0, 0] == L.KS_NAP and nd[0, 0, L.ND_FAILURES] == 1 and sim.boost[0, 1] == 0


def test_direct_reclaim_counts_one_allocstall_per_try_to_free_pages_call():
    """do_try_to_free_pages() counts allocstall once per call; a call reclaims the whole
    ``size >> DEF_PRIORITY`` of the LRU (shrink_lruvec()'s proportional_reclaim), topped up by
    one 32-page chunk when that is short of SWAP_CLUSTER_MAX: 20000 >> 12 = 4 + 32 = 36 pages.
    An anon hog wants 200 pages in one tick with Normal at 990 free (below min 1000): 6 calls
    (216 pages, 216 / 250 pages/ms = 864 us of stall), then the 200 pages come from the 206
    above min, and its page table (pte_alloc()) one more: 1005 left. One round counted one
    allocstall before."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=781.25, peak_mib=0.78125, hold_s=100.0, period_s=0.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=990, cache=20000)
    sim.advance(1)
    assert _c(sim, "allocstall_movable") == 6 and _c(sim, "pgsteal_direct") == 216
    assert _c(sim, "direct_reclaim_stall_us") == pytest.approx(864.0)
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 200 and sim.free[0, NORMAL] + sim.pcp[0, NORMAL] == 1005


def test_page_cache_brings_xarray_slabs_that_fall_back_and_boost():
    """A page-cache page lives in its file's xarray: one xa_node (radix_tree_node slab, RECLAIMABLE)
    per 64 pages, 28 nodes per order-2 slab: 4 kernel pages per 1792 pages read
    (workloads._kmem_to()). A streaming machine with no atomic workload and no RECLAIMABLE free
    page (free memory in sub-block MOVABLE chunks): the first read's slab is a
    GFP_KERNEL | __GFP_RECLAIMABLE allocation that falls back (__rmqueue_fallback()) and boosts
    (boost_watermark(), 512); the 512 stolen pages serve the next slabs: after 1800 pages, 8 slab
    pages and still one fallback."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, volume_mib=100.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=50000)
    k0 = int(sim.zone_state[0, NORMAL, L.ZF_KERNEL])
    sim.advance(1)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 10 and sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0 + 4
    assert _c(sim, "fallbacks") == 1 and _c(sim, "fallback_boosts") == 1 and sim.boost[0, NORMAL] == 512
    sim.advance(179)
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 1800 and sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0 + 8
    assert _c(sim, "fallbacks") == 1


def test_anonymous_memory_brings_page_tables_freed_at_exit():
    """pte_alloc(): one PTE page (UNMOVABLE) per 512 anonymous pages (PTRS_PER_PTE), freed with
    the task (free_pgtables()). A hog of 513 pages at 10 pages/ms: 1 page table at t=0, 2 once it
    holds 513 (t=51), none after its exit 10 ms later."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=39.0625, peak_mib=513 / 256, hold_s=0.01, period_s=0.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=50000, free_u=50000)
    k0 = int(sim.zone_state[0, NORMAL, L.ZF_KERNEL])
    sim.advance(1)
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 10 and sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0 + 1
    sim.advance(51)                       # t=1..51
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 513 and sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0 + 2
    sim.advance(20)
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 0 and sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0


def test_atomic_bursts_are_freed_each_on_its_own_timer():
    """atomic_alloc (workloads._atomic_burst): six 10-page shots at t = 0..5 ms, each held
    10 ms, are freed at t = 10..15, one burst per tick (the module's per-burst timer). Four
    merged slots freed the fifth and sixth bursts together with the fourth, at t = 15."""
    shots = [ShotSpec(at_s=i / 1000.0, pages=10, hold_ms=10.0) for i in range(6)]
    wl = [WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=shots)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=50000, free_u=50000)
    k0 = int(sim.zone_state[0, NORMAL, L.ZF_KERNEL])
    held = []
    for _ in range(17):                   # t=0..16
        sim.advance(1)
        held.append(int(sim.zone_state[0, NORMAL, L.ZF_KERNEL]) - k0)
    assert held == [10, 20, 30, 40, 50, 60, 60, 60, 60, 60, 50, 40, 30, 20, 10, 0, 0]


def test_atomic_bursts_held_bound_and_refusal():
    """scenario.atomic_bursts_held(): periodic bursts hold at most floor((hold + tick) /
    interval) + 1 at once, plus the shots' largest overlap; a scenario beyond the simulator's
    ATOMIC_SLOTS is refused at load with one line (it was merged silently before)."""
    from atomgym.sim.scenario import atomic_bursts_held
    w = WorkloadSpec(kind="atomic_alloc", pages_per_burst=512, interval_ms=100.0, hold_ms=50.0,
                     shots=[ShotSpec(at_s=17.0, pages=4096, hold_ms=200.0), ShotSpec(at_s=32.0, pages=4096,
                                                                                     hold_ms=200.0)])
    assert atomic_bursts_held(w, 1.0) == 1 + 1
    w2 = WorkloadSpec(kind="atomic_alloc", pages_per_burst=1, interval_ms=1.0, hold_ms=100.0)
    assert atomic_bursts_held(w2, 1.0) == 102 > L.ATOMIC_SLOTS
    y = {"nics": [], "traffic": [], "workloads": [{"kind": "atomic_alloc", "pages_per_burst": 1,
                                                   "interval_ms": 1, "hold_ms": 100}]}
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(y)
    assert "workloads[0]: holds up to 102 bursts at once" in str(e.value) and "\n" not in str(e.value)
    y["randomize"] = {"workloads.0.hold_ms": [10, 100]}
    y["workloads"][0]["hold_ms"] = 10
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(y)
    assert "randomize" in str(e.value) and "holds up to 102 bursts" in str(e.value)


@pytest.mark.parametrize("yaml_obj, msg", [
    ({"workloads": [{"kind": "anon_hog", "volume_mib": 5}]}, "workloads[0].volume_mib: only for kind stream_read"),
    ({"workloads": [{"kind": "atomic_alloc"}]}, "atomic_alloc needs interval_ms > 0"),
    ({"workloads": [{"name": "a"}, {"name": "a"}]}, "already the name of workloads[0]"),
    ({"phases": [{"at_s": 1, "start": ["x"]}]}, "phases[0].start[0]: no workload named 'x'"),
    ({"workloads": [{"name": "a", "start_s": 5}], "phases": [{"at_s": 2, "stop": ["a"]}]},
     "workloads[0].stop_s: stop at 2 s is not after the start at 5 s"),
    ({"phases": [{"at_s": 1, "sysctl": {"watermark_scale_factor": 0}}]},
     "phases[0].sysctl.watermark_scale_factor: 0 is out of range"),
])
def test_schema_errors_are_one_line(yaml_obj, msg):
    yaml_obj = {"nics": [], "traffic": [], **yaml_obj}
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(yaml_obj)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_xarray_slabs_are_reclaimable_and_page_tables_unmovable():
    """gfp_migratetype(): the xarray's radix_tree_node slab is SLAB_RECLAIM_ACCOUNT
    (__GFP_RECLAIMABLE) and takes RECLAIMABLE pages; a page table (GFP_PGTABLE_USER) takes
    UNMOVABLE ones. Normal at 50000 free: 1000 UNMOVABLE, the rest in sub-block MOVABLE chunks. A
    reader's first slab (4 pages) finds no RECLAIMABLE page and falls back in the order of
    fallbacks[MIGRATE_RECLAIMABLE] = {UNMOVABLE, MOVABLE}: one fallback, one boost, 512 of the
    UNMOVABLE pages become RECLAIMABLE (508 left after the slab, 488 UNMOVABLE); with no UNMOVABLE
    page, 512 MOVABLE ones do. A hog's page table takes one UNMOVABLE page, no fallback."""
    for kind, spec, free_u, left_u in (
            ("stream_read", {"rate_mib_s": 39.0625, "volume_mib": 100.0}, 1000, 488),
            ("stream_read", {"rate_mib_s": 39.0625, "volume_mib": 100.0}, 0, 0),
            ("anon_hog", {"rate_mib_s": 39.0625, "peak_mib": 100.0, "hold_s": 100.0, "period_s": 0.0}, 1000, 999)):
        sim = Simulator(_scenario([WorkloadSpec(kind=kind, **spec)]), machines=_machine())
        _set_zone(sim, 0, NORMAL, free=50000, free_u=free_u)
        k0 = int(sim.zone_state[0, NORMAL, L.ZF_KERNEL])
        sim.advance(1)
        zs = sim.zone_state[0, NORMAL]
        assert zs[L.ZF_FREE_U] == left_u
        if kind == "stream_read":
            assert zs[L.ZF_KERNEL] == k0 + 4 and zs[L.ZF_FREE_R] == 508 and zs[L.ZF_FREE] == 50000 - 4 - 10
            assert _c(sim, "fallbacks") == 1 and _c(sim, "fallback_boosts") == 1
        else:
            assert zs[L.ZF_KERNEL] == k0 + 1 and _c(sim, "fallbacks") == 0


def test_a_movable_fallback_takes_reclaimable_pages_first():
    """fallbacks[MIGRATE_MOVABLE] = {RECLAIMABLE, UNMOVABLE}: a hog's page (pcp batch 1) with no
    MOVABLE free page, 600 RECLAIMABLE and 4400 UNMOVABLE: one fallback and one boost, 512
    RECLAIMABLE pages move (88 stay RECLAIMABLE); the 10 pages of the tick come from them and the
    page table from the UNMOVABLE ones (4399 left)."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=39.0625, peak_mib=100.0, hold_s=100.0, period_s=0.0)]
    sim = Simulator(_scenario(wl), machines=_machine())
    _set_zone(sim, 0, NORMAL, free=5000, free_u=4400, free_r=600)
    sim.advance(1)
    zs = sim.zone_state[0, NORMAL]
    assert zs[L.ZF_ANON] == 10 and zs[L.ZF_FREE_R] == 88 and zs[L.ZF_FREE_U] == 4399
    assert _c(sim, "fallbacks") == 1 and _c(sim, "fallback_boosts") == 1


def _bdev(scen: Scenario) -> Scenario:
    """The scenario with a block device's page cache (memory.page_cache_gfp: GFP_USER)."""
    import dataclasses
    return dataclasses.replace(scen, memory=dataclasses.replace(scen.memory, page_cache_gfp="GFP_USER"))


def test_a_block_devices_page_cache_is_unmovable():
    """bdev_alloc(): a block device's mapping is GFP_USER, so gfp_migratetype() makes its page
    cache UNMOVABLE (a file's, GFP_HIGHUSER_MOVABLE, is MOVABLE). Normal at 50000 free, 1000 of
    them UNMOVABLE: a reader of the device takes its 10 pages of the tick (pcp batch 1) from the
    UNMOVABLE pages (990 left), a file's reader from the MOVABLE ones (1000 left). Its xarray slab
    then falls back to the UNMOVABLE pages either way (fallbacks[MIGRATE_RECLAIMABLE]: one fallback,
    one boost, 512 of them become RECLAIMABLE: 478 and 488 left)."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, volume_mib=100.0)]
    for scen, free_u in ((_scenario(wl), 488), (_bdev(_scenario(wl)), 478)):
        sim = Simulator(scen, machines=_machine())
        _set_zone(sim, 0, NORMAL, free=50000, free_u=1000)
        sim.advance(1)
        zs = sim.zone_state[0, NORMAL]
        assert zs[L.ZF_CACHE] == 10 and zs[L.ZF_FREE_U] == free_u and zs[L.ZF_FREE_R] == 508
        assert _c(sim, "fallbacks") == 1 and _c(sim, "fallback_boosts") == 1


def test_reclaimed_block_device_cache_returns_to_unmovable_free_pages():
    """Reclaim frees a page to the free list of its pageblock's type (free_unref_page_list() ->
    get_pfnblock_migratetype()): kswapd woken on a zone below its watermarks with 20000 pages of
    page cache and nothing allocating. Every page it reclaims of a block device's cache (UNMOVABLE
    blocks) adds to the UNMOVABLE free pages; of a file's cache, to the MOVABLE ones."""
    for scen, unmov in ((_scenario(), False), (_bdev(_scenario()), True)):
        sim = Simulator(scen, machines=_machine())
        _set_zone(sim, 0, NORMAL, free=500, cache=20000, free_u=100)
        nd = sim.state[L.STATE_INDEX["nd"]]
        nd[0, 0, L.ND_STATE] = L.KS_WAKING
        nd[0, 0, L.ND_T] = 0.0
        nd[0, 0, L.ND_HZ] = NORMAL
        sim.advance(50)
        stolen = _c(sim, "pgsteal_kswapd")
        zs = sim.zone_state[0, NORMAL]
        assert stolen > 0 and zs[L.ZF_CACHE] == 20000 - stolen
        assert zs[L.ZF_FREE_U] == (100 + stolen if unmov else 100)


def test_a_block_devices_page_cache_fills_unmovable_pageblocks_at_the_start():
    """encode_migratetypes(): a block device's page cache, like kernel memory, fills UNMOVABLE
    pageblocks, so the free rest of the last one is UNMOVABLE; a file's page cache does not count."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=1.0, volume_mib=1.0)]
    for scen in (_scenario(wl), _bdev(_scenario(wl))):
        scen = dataclasses_replace_memory(scen, page_cache_frac=0.3001, kernel_frac=0.01)
        sim = Simulator(scen, machines=_machine())
        zs = sim.zone_state[0, NORMAL]
        used = zs[L.ZF_KERNEL] + zs[L.ZF_NET] + (zs[L.ZF_CACHE] if scen.memory.page_cache_gfp == "GFP_USER" else 0)
        assert zs[L.ZF_FREE_U] == min((-used) % 512, zs[L.ZF_FREE])


def dataclasses_replace_memory(scen: Scenario, **kw) -> Scenario:
    import dataclasses
    return dataclasses.replace(scen, memory=dataclasses.replace(scen.memory, **kw))


def test_page_cache_gfp_is_checked():
    with pytest.raises(ScenarioError, match="page_cache_gfp"):
        scenario_from_dict({"duration_s": 1, "memory": {"page_cache_gfp": "GFP_KERNEL"}})


def test_gfp_zone_picks_the_zonelist():
    """gfp_zone() (GFP_ZONE_TABLE): __GFP_MOVABLE with __GFP_HIGHMEM is ZONE_MOVABLE, so anonymous
    memory and a file's page cache walk the zonelist from Movable; a block device's GFP_USER cache,
    the kernel's own allocations and __GFP_MOVABLE without __GFP_HIGHMEM start at ZONE_NORMAL."""
    from atomgym.kernel.watermark_ok import (
        GFP_ATOMIC, GFP_HIGHMEM, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_MOVABLE, GFP_USER, gfp_zone,
    )
    from atomgym.kernel.zones import ZONE_MOVABLE, ZONE_NORMAL
    from atomgym.sim.alloc import zonelist_of
    assert gfp_zone(GFP_HIGHUSER_MOVABLE) == ZONE_MOVABLE and zonelist_of(GFP_HIGHUSER_MOVABLE) == L.ZL_USER
    for gfp in (GFP_USER, GFP_KERNEL, GFP_ATOMIC, GFP_USER | GFP_MOVABLE, GFP_USER | GFP_HIGHMEM):
        assert gfp_zone(gfp) == ZONE_NORMAL and zonelist_of(gfp) == L.ZL_KERNEL, hex(gfp)


def test_a_workloads_whole_pageblocks_reform_when_it_frees_them():
    """__free_one_page() merges a freed page with its free buddy up to pageblock_order and beyond:
    the whole free pageblocks an anonymous workload split come back whole when it frees its
    memory (memory.reform_pageblocks; the simulator counts whole blocks per zone, not pages per
    block). Normal: 5000 free MOVABLE pages, 9 whole blocks (4608) and 392 pages of chunks, 100
    UNMOVABLE (its page tables). A hog takes 2048 pages at 512 pages/ms (t = 0..3): the chunks
    first (__rmqueue_smallest()), then 4 blocks split (2952 // 512 = 5 whole left); it exits at
    t = 14. With the rule the 9 blocks are whole again; without it 5 stay whole. A 2900-page
    atomic shot at t = 50 ms then claims whole blocks, relabelled without a boost while they
    last (steal_suitable_fallback() [6.1]): 6 fallbacks of a whole block with the rule, 5 and a
    boosted sub-block steal without it."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=2000.0, peak_mib=8.0, hold_s=0.01, period_s=0.0),
          WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.05, pages=2900, hold_ms=1e6)])]
    on = _scenario(wl)
    assert on.memory.reform_pageblocks                     # the default
    off = dataclasses.replace(on, memory=dataclasses.replace(on.memory, reform_pageblocks=False))
    sim = Simulator([on, off], machines=[_machine(), _machine()])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=5100, free_u=100, blocks=9)
    zs = sim.zone_state
    sim.advance(5)
    assert list(zs[:, NORMAL, L.ZF_ANON]) == [2048, 2048]
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK]) == [5, 5]
    assert list(sim.field("wb")[:, 0, NORMAL]) == [4, 0]     # recorded only under the rule
    sim.advance(20)
    assert list(zs[:, NORMAL, L.ZF_ANON]) == [0, 0]
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK]) == [9, 5] and sim.field("wb")[0, 0, NORMAL] == 0
    sim.advance(30)
    assert _c(sim, "atomic_got_pages", 0) == _c(sim, "atomic_got_pages", 1) == 2900
    assert _c(sim, "fallback_boosts", 0) == 0 and _c(sim, "fallback_boosts", 1) == 1


def test_reform_pageblocks_is_checked():
    with pytest.raises(ScenarioError, match="reform_pageblocks"):
        scenario_from_dict({"duration_s": 1, "memory": {"reform_pageblocks": "sometimes"}})


def _guest(wl, rule=True) -> Scenario:
    """A block device's page cache (GFP_USER: UNMOVABLE), with or without
    memory.reclaim_reforms_pageblocks."""
    s = _scenario(wl)
    return dataclasses.replace(s, memory=dataclasses.replace(
        s.memory, page_cache_gfp="GFP_USER", reclaim_reforms_pageblocks=rule))


def test_a_movable_fallback_claims_a_whole_unmovable_block_without_a_boost():
    """__rmqueue_fallback() searches from the largest order down, fallbacks[MIGRATE_MOVABLE] =
    RECLAIMABLE, UNMOVABLE: a whole free UNMOVABLE pageblock (order >= pageblock_order) comes first
    and steal_suitable_fallback() [6.1] / try_to_claim_block() [6.18] relabels it and returns
    before boost_watermark(). Normal: 5000 free pages, all UNMOVABLE; machine 0 holds 9 whole
    UNMOVABLE blocks of them (ZF_FREE_BLK_U, what reclaim of a block device's cache re-forms),
    machine 1 none. A hog takes 600 pages (pcp batch 1): two fallbacks each; on machine 0 two whole
    blocks claimed, no boost (7 whole left); on machine 1 two sub-block steals, each boosting."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=2000.0, peak_mib=600 / 256, hold_s=10.0, period_s=0.0)]
    sim = Simulator([_guest(wl), _guest(wl)], machines=[_machine(), _machine()])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=5000, free_u=5000)
    sim.zone_state[0, NORMAL, L.ZF_FREE_BLK_U] = 9
    sim.advance(3)
    zs = sim.zone_state
    assert list(zs[:, NORMAL, L.ZF_ANON]) == [600, 600]
    assert _c(sim, "fallbacks", 0) == _c(sim, "fallbacks", 1) == 2
    assert _c(sim, "fallback_boosts", 0) == 0 and _c(sim, "fallback_boosts", 1) == 2
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK_U]) == [7, 0]


def test_whole_unmovable_blocks_a_workload_claimed_reform_when_it_frees_them():
    """The whole free UNMOVABLE blocks a hog's MOVABLE fallback claimed (__rmqueue_fallback() ->
    steal_suitable_fallback() [6.1] relabels the block MOVABLE) hold only the hog's pages: when it
    exits, __free_one_page() merges them into whole free MOVABLE blocks (memory.reform_pageblocks).
    Normal: 5000 free pages, all UNMOVABLE; machine 0 holds 9 whole UNMOVABLE blocks of them,
    machine 1 none. The hog takes 600 pages (two fallbacks) and exits at t = 14: machine 0 has
    recorded its 2 claimed blocks (S.wb); its 600 pages go back through the pcp list, which keeps
    155 of them (pcp->high 158), so 1024 - 155 = 869 MOVABLE pages reach the buddy allocator: one
    whole MOVABLE block (a page on a pcp list merges with nothing). Machine 1's two sub-block
    steals come back as chunks."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=2000.0, peak_mib=600 / 256, hold_s=0.01, period_s=0.0)]
    sim = Simulator([_guest(wl), _guest(wl)], machines=[_machine(), _machine()])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=5000, free_u=5000)
    zs = sim.zone_state
    zs[0, NORMAL, L.ZF_FREE_BLK_U] = 9
    sim.advance(3)
    assert list(zs[:, NORMAL, L.ZF_ANON]) == [600, 600]
    assert list(sim.field("wb")[:, 0, NORMAL]) == [2, 0]
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK]) == [0, 0]
    sim.advance(20)
    assert list(zs[:, NORMAL, L.ZF_ANON]) == [0, 0]
    assert list(zs[:, NORMAL, L.ZF_PCP] - zs[:, NORMAL, L.ZF_PCP_U]) == [155, 155]
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK]) == [1, 0] and list(zs[:, NORMAL, L.ZF_FREE_BLK_U]) == [7, 0]


def test_pages_taken_from_the_chunks_keep_the_block_reclaim_is_freeing():
    """__free_one_page() makes a block whole only once every page of it is free. The pages of the
    block reclaim is freeing (ZF_BLK_MERGE) are the most recently freed of their type, at the head
    of the pcp list: an allocation of that type from the sub-block chunks takes them first and the
    block is not whole. A block device's cache (UNMOVABLE), 300 such pages pending; a 100-page
    atomic shot (UNMOVABLE) takes its pages from UNMOVABLE chunks (pcp batch 1): 200 pending
    (machine 0). On machine 1 the UNMOVABLE free pages are 9 whole blocks: the shot splits one
    (__rmqueue_smallest(): the chunks first, none here), which is not the block being freed: 300
    pending. A MOVABLE request (a hog) stealing UNMOVABLE chunks moves them too (machine 2: 300
    -> 0)."""
    shot = [WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.0, pages=100, hold_ms=1e6)])]
    hog = [WorkloadSpec(kind="anon_hog", rate_mib_s=2000.0, peak_mib=100 / 256, hold_s=10.0, period_s=0.0)]
    sim = Simulator([_guest(shot), _guest(shot), _guest(hog)], machines=[_machine(), _machine(), _machine()])
    for b in (0, 1, 2):
        _set_zone(sim, b, NORMAL, free=4608, free_u=4608)
    zs = sim.zone_state
    zs[1, NORMAL, L.ZF_FREE_BLK_U] = 9
    zs[:, NORMAL, L.ZF_BLK_MERGE] = 300
    sim.advance(2)
    assert _c(sim, "atomic_got_pages", 0) == _c(sim, "atomic_got_pages", 1) == 100
    assert zs[2, NORMAL, L.ZF_ANON] == 100
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK_U]) == [0, 8, 0]
    assert list(zs[:, NORMAL, L.ZF_BLK_MERGE]) == [200, 300, 0]


def test_page_cache_that_fills_whole_blocks_records_them_on_its_lru_bucket():
    """A reader of a block device (UNMOVABLE requests, 100 pages a tick) with no UNMOVABLE free
    page: each fallback claims a whole free MOVABLE block (no boost; the xarray's RECLAIMABLE
    slab claims one more). Under memory.reclaim_reforms_pageblocks a claimed block's pages are the
    page cache's to fill (ZF_BLK_CARRY) and counted as they are (ZF_BLK_PEND); a block filled
    whole is credited to the LRU bucket that takes its last pages (LRU_BLK): at tick 6 the second
    claim's pages arrive, 600 pages filled -> 512 credited, 88 pending, 424 to fill. Tick 7: the
    reader's 100 (188 pending, 324 to fill), then a 50-page atomic shot of the same type, which
    takes from the same chunks (__rmqueue_smallest()): the block being filled is mixed, its 188
    pending pages never a whole block again (0 pending, 274 to fill). Without the rule nothing is
    recorded."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=100 * 1000 / 256, working_set_mib=1024.0,
                       access="sequential"),
          WorkloadSpec(kind="atomic_alloc", gfp="atomic", shots=[ShotSpec(at_s=0.006, pages=50, hold_ms=1e6)])]
    sim = Simulator([_guest(wl), _guest(wl, rule=False)], machines=[_machine(), _machine()])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=5000, blocks=9)
    zs = sim.zone_state
    blk = sim.field("lru")[:, 0, :, L.LRU_BLK + NORMAL]
    sim.advance(6)
    assert list(zs[:, NORMAL, L.ZF_CACHE]) == [600, 600]
    assert _c(sim, "fallbacks", 0) == _c(sim, "fallbacks", 1) == 3
    assert _c(sim, "fallback_boosts", 0) == _c(sim, "fallback_boosts", 1) == 0
    assert list(zs[:, NORMAL, L.ZF_FREE_BLK]) == [6, 6]
    assert list(blk.sum(axis=1)) == [512, 0]
    assert list(zs[:, NORMAL, L.ZF_BLK_PEND]) == [88, 0] and list(zs[:, NORMAL, L.ZF_BLK_CARRY]) == [424, 0]
    sim.advance(1)
    assert _c(sim, "atomic_got_pages", 0) == 50
    assert list(blk.sum(axis=1)) == [512, 0]
    assert list(zs[:, NORMAL, L.ZF_BLK_PEND]) == [0, 0] and list(zs[:, NORMAL, L.ZF_BLK_CARRY]) == [274, 0]


def test_reclaim_reforms_pageblocks_is_checked():
    with pytest.raises(ScenarioError, match="reclaim_reforms_pageblocks"):
        scenario_from_dict({"duration_s": 1, "memory": {"reclaim_reforms_pageblocks": 1.5}})


def test_a_bulk_refill_stops_at_the_first_failed_check_between_batches():
    """rmqueue_bulk() refills an empty pcp list with `batch` buddy pages and the next request
    checks the watermark again, so a bulk request of n pages takes ceil(n / batch) refills, with a
    check after each but the one that completes it (alloc.py zone_take(), also in closed form).
    Normal only, batch 63, free F = low + 283 (all UNMOVABLE, as the request), pcp empty: after 4 refills F - 252 = low + 31 passes,
    after 5, F - 315 = low - 32 fails. 253 pages = 4 x 63 + 1: the 5th refill completes the request
    with no check: all 253 on the fast path, 62 pages left on the pcp list, kswapd asleep. 254
    pages: the check after the 5th refill fails with 253 served; the slow path (wake_all_kswapds(),
    then the min watermark) serves the last page from the pcp list (61 left) and kswapd wakes."""
    from numba import njit
    from atomgym.kernel.watermark_ok import GFP_ATOMIC
    from atomgym.kernel.watermarks import WMARK_LOW
    from atomgym.sim.alloc import alloc_pages_bulk
    from atomgym.sim.engine import free_state, make_state

    @njit(cache=False)
    def bulk(T, b, n):
        S = make_state(T)
        got, _ = alloc_pages_bulk(S, b, n, GFP_ATOMIC, L.ZL_KERNEL, L.ZF_NET, 0)
        free_state(S)
        return got

    s = dataclasses.replace(_scenario(), machine=dataclasses.replace(_scenario().machine, pcp_batch=63))
    sim = Simulator([s, s], machines=[_machine(), _machine()])
    low = int(sim.wmark[0, NORMAL, WMARK_LOW])
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=low + 283, free_u=low + 283)   # UNMOVABLE: no fallback, no boost
    zs = sim.zone_state
    assert list(zs[:, NORMAL, L.ZF_PCP_BATCH]) == [63, 63]
    assert bulk(sim.state, 0, 253) == 253 and bulk(sim.state, 1, 254) == 254
    assert list(zs[:, NORMAL, L.ZF_FREE]) == [low - 32, low - 32]
    assert list(zs[:, NORMAL, L.ZF_PCP]) == [62, 61]
    nd = sim.field("nd")
    assert nd[0, 0, L.ND_STATE] == L.KS_SLEEP and nd[1, 0, L.ND_STATE] == L.KS_WAKING
    assert _c(sim, "fallbacks", 0) == _c(sim, "fallbacks", 1) == 0
