"""Golden traces: tiny hand-checked scenarios whose exact counters follow from the kernel rules.

Common set-up (``_machine``): one node, a Normal zone of 100000 managed pages (plus a 3840-page
DMA zone where said), ``vm.min_free_kbytes = 4000`` written, so that in Normal
``min = 4000/4 = 1000``, ``gap = max(1000/4, 100000*10/10000) = 250``: ``low = 1250``,
``high = 1500`` (__setup_per_zone_wmarks()). GFP_ATOMIC's slow-path threshold
(__zone_watermark_ok(): ``min -= min/2; min -= min/4``) is ``1000 - 500 = 500; 500 - 125 = 375``.

Traffic comes from a replay trace (one row per 1 ms tick), one RX queue of 4096-byte buffers
(one page per buffer, one buffer per 1500-byte packet), NAPI with an unlimited budget and one
poll per tick, an application that never reads (pages stay in the socket), and the zone state
set by hand after reset (the rest of the zone is unreclaimable kernel memory). The free pages
set by hand lie in UNMOVABLE pageblocks (``ZF_FREE_U``), so the NIC's atomic (unmovable) refills
never fall back to another migratetype and never boost; tests of movable allocations put them in
MOVABLE pageblocks (``unmovable=False``), as sub-block chunks (no whole free pageblock,
``ZF_FREE_BLK`` 0). Fallback boosts have their own traces in
test_sim_dynamics.py.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from atomgym.kernel import KernelVersion, Machine
from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.scenario import KswapdSpec, MachineSpec, MemorySpec, NicSpec, Scenario, TrafficSpec, WorkloadSpec

NORMAL = 2
DMA = 0


def _machine(dma: bool = False) -> Machine:
    m = Machine(np.array([3840 if dma else 0, 0, 100000, 0, 0]), version=KernelVersion(6, 18), thp="never").boot()
    m.write("vm.min_free_kbytes", 4000)
    return m


def _scenario(tmp_path: Path, rows: dict[int, int], n_rows: int = 1000, driver: str = "page_pool",
              ring: int = 1024, batch: int = 1, latency: float = 0.5, ks_rate: float = 100.0,
              budget: int = 65536, name: str = "golden", workloads: list | None = None) -> Scenario:
    trace = tmp_path / f"{name}.csv"
    vals = [rows.get(i, 0) for i in range(n_rows)]
    trace.write_text("packets\n" + "\n".join(str(v) for v in vals) + "\n")
    return Scenario(
        name=name, tick_ms=1.0, machine=MachineSpec(pcp_batch=batch),
        memory=MemorySpec(page_cache_frac=0.0, anon_frac=0.0, kernel_frac=0.0),
        kswapd=KswapdSpec(reclaim_pages_per_ms=ks_rate, wake_latency_ms=latency, direct_reclaim_pages_per_ms=200.0),
        nics=[NicSpec(driver=driver, queues=1, ring_size=ring, mtu=1500, buffer_bytes=4096, napi_budget=budget,
                      napi_interval_us=1000.0, line_rate_gbps=1000.0, rcvbuf_kb=1 << 20, app_drain_pps=0.0)],
        traffic=[TrafficSpec(kind="replay", trace=str(trace), trace_interval_ms=1.0, packet_bytes=1500)],
        workloads=list(workloads or []))


def _set_zone(sim: Simulator, b: int, z: int, free: int, cache: int = 0, pcp: int = 0,
              unmovable: bool = True) -> None:
    """Set a zone's free/pcp/page cache; the rest (minus NIC pages) is kernel memory."""
    zs = sim.zone_state
    zs[b, z, L.ZF_FREE] = free
    zs[b, z, L.ZF_FREE_U] = free if unmovable else 0
    zs[b, z, L.ZF_FREE_BLK] = 0   # no whole free pageblock: sub-block chunks only
    zs[b, z, L.ZF_PCP_U] = pcp if unmovable else 0
    zs[b, z, L.ZF_PCP] = pcp
    zs[b, z, L.ZF_CACHE] = cache
    zs[b, z, L.ZF_ANON] = 0
    zs[b, z, L.ZF_KERNEL] = sim.managed[b, z] - free - pcp - cache - zs[b, z, L.ZF_NET]
    assert zs[b, z, L.ZF_KERNEL] >= 0
    sim.sync_lru()


def _c(sim: Simulator, name: str, b: int = 0) -> float:
    return float(sim.counter(name)[b])


def test_k_atomic_requests_at_a_free_count(tmp_path):
    """1000 atomic refills (1000 packets in tick 0) with Normal at 1000 free pages, pcp batch 1.

    Fast path: 1000 <= low 1250 fails. Slow path: kswapd woken (1 wakeup), then GFP_ATOMIC at
    375: a request succeeds while free > 375, i.e. 1000 - 375 = 625 pages; free ends at 375.
    The queue's refill stops at its first failure: atomic_fail = fail_atomic = 1, charged to
    the preferred zone (Normal)."""
    s = _scenario(tmp_path, {0: 1000})
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1000)
    sim.advance(1)
    assert _c(sim, "rx_packets") == 1000 and _c(sim, "rx_missed") == 0
    assert _c(sim, "atomic_alloc_pages") == 625
    assert _c(sim, "pgalloc_normal") == 625
    assert sim.free[0, NORMAL] == 375
    assert _c(sim, "atomic_fail") == 1 and _c(sim, "fail_atomic") == 1 and _c(sim, "atomic_fail_normal") == 1
    assert _c(sim, "kswapd_wakeups") == 1
    assert sim.kswapd_awake[0, 0]


def test_fail_point_is_one_pcp_batch_below_three_eighths_min(tmp_path):
    """The same burst with per-CPU lists of batch 63 and 1006 free pages (= 376 + 10*63).

    A request passes the check while buddy free > 375 and takes a page from the pcp list; an
    empty list takes 63 pages from the buddy count (rmqueue_bulk(), no check). Refills k = 0..10
    see free = 1006 - 63k > 375 (k = 10: 376); after the 11th, free = 313 and the *next*
    request fails. Served: 10 full batches (630) + 1 = 631 pages (vs 631 - 0 with batch 1:
    1006 - 375 = 631 too, but the fail point differs): buddy free at the first failure is
    313 = 375 - 62, one batch below 3/8·min, with 62 pages left on the pcp list."""
    s = _scenario(tmp_path, {0: 1000}, batch=63)
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1006)
    sim.advance(1)
    assert _c(sim, "atomic_alloc_pages") == 631
    assert sim.free[0, NORMAL] == 313
    assert sim.pcp[0, NORMAL] == 62
    assert _c(sim, "atomic_fail") == 1
    # the fail point: below 3/8 min (375) by less than one batch
    assert 375 - 63 < sim.free[0, NORMAL] <= 375


def test_dma_fallback_stops_at_its_three_eighths_min_plus_lowmem_reserve(tmp_path):
    """Normal + DMA (3840 pages). min_free_kbytes 4000: DMA min = 1000*3840/103840 = 36,
    low = 36 + max(9, 3) = 45; lowmem_reserve[Normal] of DMA = 100000/256 = 390. Normal:
    min 963, atomic threshold 963 - 481 = 482; 482 - 120 = 362.
    Normal at 362 free (at its threshold), DMA at 3000, 3000 atomic requests (batch 1):
    fast path: Normal fails (362 <= 1203), DMA passes while free > 45 + 390 = 435: 2565 pages.
    Slow path: Normal fails (362 <= 362); DMA at 36 - 18 = 18, 18 - 4 = 14, + 390 = 404.
    The checks read the zone's NR_FREE_PAGES counter (sim/vmstat.py): with kswapd asleep its
    per-CPU threshold is calculate_normal_threshold() = 2·fls(8 CPUs)·(1 + fls(3840 >> 15)) = 8,
    so the counter follows the buddy count in steps of 9 pages (3000, 2991, ...): the fast path
    stops at a counter of 435 (= 3000 - 9·285, exact), the slow path passes at 408 and takes the
    pages down to 399, where the counter folds to 399 <= 404: 36 more. DMA ends at 399, 5 pages
    (less than one threshold) below 3/8·min + lowmem_reserve; 2601 pages in all."""
    s = _scenario(tmp_path, {0: 3000}, ring=4096)
    sim = Simulator(s, machines=_machine(dma=True))
    assert sim.wmark[0, DMA, 0] == 36 and sim.reserve[0, DMA, NORMAL] == 390 and sim.wmark[0, NORMAL, 0] == 963
    _set_zone(sim, 0, NORMAL, free=362)
    _set_zone(sim, 0, DMA, free=3000)
    sim.advance(1)
    assert _c(sim, "pgalloc_dma") == 2601 and _c(sim, "pgalloc_normal") == 0
    assert sim.free[0, DMA] == 399 and sim.zone_state[0, DMA, L.ZF_FREE_SEEN] == 399
    assert sim.free[0, NORMAL] == 362
    assert _c(sim, "atomic_fail") == 1


def test_kswapd_wake_priority_passes_and_nap(tmp_path):
    """kswapd scans 100 pages/ms, 0.5 ms wake latency; Normal at 1200 free, 20000 pages of cache.

    t=0: 1 packet: fast path fails (1200 <= 1250), slow path wakes kswapd, atomic takes 1 -> 1199.
    t=1: balance_pgdat() (pageoutrun 1) at priority 12. Each pass asks for nr_to_reclaim =
    max(high 1500, 32) and scans the file LRU up to cache >> priority; no pass scans 1500, so
    priority drops after each: p12: 20000>>12 = 4, p11: 19996>>11 = 9, p10: 19987>>10 = 19,
    p9: 19968>>9 = 39 (free 1270, 29 pages of the tick's budget left), p8: 19929>>8 = 77, of
    which 29 at t=1 (free 1299) and 48 at t=2 (1347); unbalanced, p7: 19852>>7 = 155: 52 at t=2
    (1399), 100 at t=3 (1499), 3 at t=4 (1502). Only now is the node checked again: 1502 > 1500,
    balanced: the run ends (6 passes, 303 pages, 4 ms: t=1..4) and kswapd naps 100 ms, to
    t=104, where it is still balanced: full sleep."""
    s = _scenario(tmp_path, {0: 1})
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1200, cache=20000)
    sim.advance(2)                        # t=0..1
    assert _c(sim, "pageoutrun") == 1 and sim.free[0, NORMAL] == 1299 and _c(sim, "kswapd_passes") == 5
    sim.advance(2)                        # t=2..3
    assert sim.free[0, NORMAL] == 1499 and sim.kswapd_awake[0, 0]
    sim.advance(1)                        # t=4
    assert sim.kswapd_state[0, 0] == L.KS_NAP
    assert sim.free[0, NORMAL] == 1502 and _c(sim, "kswapd_passes") == 6
    assert _c(sim, "pgscan_kswapd") == 303 and _c(sim, "pgsteal_kswapd") == 303
    assert _c(sim, "kswapd_run_ms") == 4.0 and _c(sim, "kswapd_longest_run_ms") == 4.0
    sim.advance(99)                       # t=5..103
    assert sim.kswapd_state[0, 0] == L.KS_NAP
    sim.advance(1)                        # t=104
    assert sim.kswapd_state[0, 0] == L.KS_SLEEP
    assert _c(sim, "kswapd_wakeups") == 1 and _c(sim, "pageoutrun") == 1
    assert _c(sim, "kswapd_low_wmark_hit_quickly") == 0 and _c(sim, "kswapd_high_wmark_hit_quickly") == 0


def test_boost_cleared_in_full_after_a_boosted_run(tmp_path):
    """boost_watermark() on Normal: max_boost = high*15000/10000 = 2250, boost = 0 + 512.
    Free 3000 > high + boost = 2012: balanced, but boosted. t=0: one packet; the allocation
    passes the fast path (3000 > 1250 + 512) and, ZONE_BOOSTED_WATERMARK being set, wakes kswapd.
    t=1: balance_pgdat snapshots boost 512 = nr_boost_reclaim. Boosted passes scan the file LRU
    only: p12: 20000>>12 = 4, p11: 19996>>11 = 9, then priority is held at 10 (DEF_PRIORITY - 2):
    passes of cache >> 10 = 19 (cache stays above 19456) until the 499 left are reclaimed: 27
    passes, 513 pages; 526 in all at 100 pages/ms: t=1..5 and 26 at t=6, where the boost is
    reclaimed, the node balanced, the run ends and the boost is reduced by the snapshot.
    Machine 0 also gets a second boost_watermark() after tick t=2 (boost 1024): it survives
    the end of the run as 1024 - 512 = 512 (only the snapshot is subtracted).
    Machine 1 has only 150 pages of page cache: its first pass scans 150 >> 12 = 0 pages; a
    boosted pass that reclaims nothing ends the run at t=1, and the whole snapshot is cleared
    anyway (the real kernel's abort: "IO cannot be queued")."""
    s = _scenario(tmp_path, {0: 1})
    sim = Simulator([s, s], machines=_machine())
    _set_zone(sim, 0, NORMAL, free=3000, cache=20000)
    _set_zone(sim, 1, NORMAL, free=3000, cache=150)
    z1 = np.zeros((2, sim.n_zones), np.int64)
    z1[:, NORMAL] = 1
    sim.set_knobs(boost_watermark=z1)
    assert (sim.boost[:, NORMAL] == 512).all()
    sim.advance(3)                        # t=0..2
    assert _c(sim, "kswapd_wakeups") == 1 and _c(sim, "pageoutrun") == 1
    sim.set_knobs(boost_watermark=z1, mask=np.array([True, False]))
    assert sim.boost[0, NORMAL] == 1024
    sim.advance(2)                        # t=3..4
    assert sim.boost[1, NORMAL] == 0      # machine 1: run ended at t=1 (nothing reclaimed)
    assert _c(sim, "pgsteal_kswapd", 1) == 0 and _c(sim, "kswapd_passes", 1) == 1
    sim.advance(3)                        # t=5..7
    assert sim.boost[0, NORMAL] == 512
    assert _c(sim, "pgsteal_kswapd", 0) == 526 and _c(sim, "kswapd_passes", 0) == 29
    assert sim.free[0, NORMAL] == 3000 - 1 + 526
    assert sim.kswapd_state[0, 0] == L.KS_NAP and sim.kswapd_state[1, 0] == L.KS_NAP


def test_dev_alloc_pages_takes_the_last_page(tmp_path):
    """Normal at 100 free (below the atomic 375). t=0: 150 packets.
    Machine 0, dev_alloc_pages (__GFP_MEMALLOC): fast and atomic-min checks fail, then
    ALLOC_NO_WATERMARKS takes all 100 free pages (pfmemalloc) -> free 0; 50 short:
    fail_memalloc 1. Machine 1, page_pool: gets nothing, fail_atomic 1, free stays 100.
    t=1: 30 packets on machine 0 land in pfmemalloc buffers (consumed first) and are
    dropped at the socket: pfmemalloc_drop 30; their 30 pages go to the unmovable pcp list
    (6.18 auto-tuning: the zone is below high, so the list drains only from high_min =
    max(low 1250 / 8 CPUs, 4 * batch) = 156 pages: all 30 stay); the repoll takes those 30
    from the pcp list without watermarks: pfmemalloc_pages 130, free 0, pcp empty."""
    s0 = _scenario(tmp_path, {0: 150, 1: 30}, driver="dev_alloc_pages", name="a")
    s1 = _scenario(tmp_path, {0: 150, 1: 30}, driver="page_pool", name="b")
    sim = Simulator([s0, s1], machines=_machine())
    for b in (0, 1):
        _set_zone(sim, b, NORMAL, free=100)
    sim.advance(1)
    assert sim.free[0, NORMAL] == 0 and _c(sim, "pfmemalloc_pages", 0) == 100
    assert _c(sim, "fail_memalloc", 0) == 1 and _c(sim, "fail_atomic", 0) == 0
    assert sim.free[1, NORMAL] == 100 and _c(sim, "fail_atomic", 1) == 1 and _c(sim, "pfmemalloc_pages", 1) == 0
    sim.advance(1)
    assert _c(sim, "pfmemalloc_drop", 0) == 30
    assert _c(sim, "pfmemalloc_pages", 0) == 130
    assert sim.free[0, NORMAL] == 0 and sim.pcp[0, NORMAL] == 0
    assert _c(sim, "pfmemalloc_drop", 1) == 0


def test_virtio_deferred_refill_succeeds_500ms_later(tmp_path):
    """virtio_net, ring 256, NAPI budget 256, Normal at 100 free and nothing reclaimable.
    t=0: 256 packets empty the ring; NAPI delivers them, and as 256 free slots > min(256, 256)/2
    it refills with GFP_ATOMIC, which fails (100 <= 375): fail_atomic 1,
    refill_work scheduled at once (refill_deferred 1).
    t=1: refill_work (GFP_KERNEL): below min, direct reclaim (allocstall_normal 1) finds
    nothing: still empty -> re-armed for t = 1 + 500 = 501 (fail_kernel 1).
    10 packets/ms arrive from t=1 on and find no buffer: rx_missed.
    kswapd (woken at t=0) reclaims nothing: t=1..15 each run fails and restarts
    (high_wmark_hit_quickly 15, pageoutrun 16); at t=16 kswapd_failures = 16: it naps, then sleeps.
    t=300: a process exits and frees 5000 pages (free 5100).
    t=501: the tick's arrivals still miss (arrivals precede NAPI), then refill_work fills all
    256 slots through the fast path: refill_work_runs 2. rx_missed = 10 * 501 (t=1..501);
    t=502..599 deliver 98 * 10: rx_packets = 256 + 980."""
    rows = {0: 256}
    rows.update({i: 10 for i in range(1, 1000)})
    s = _scenario(tmp_path, rows, driver="virtio_net", ring=256, budget=256)
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=100)
    sim.advance(2)
    assert _c(sim, "fail_atomic") == 1 and _c(sim, "refill_deferred") == 1
    assert _c(sim, "refill_work_runs") == 1 and _c(sim, "fail_kernel") == 1
    assert _c(sim, "allocstall_normal") == 1
    sim.advance(298)                      # t=2..299
    assert _c(sim, "pageoutrun") == 16 and _c(sim, "kswapd_high_wmark_hit_quickly") == 15
    assert sim.kswapd_state[0, 0] == L.KS_SLEEP
    zs = sim.zone_state
    zs[0, NORMAL, L.ZF_KERNEL] -= 5000
    zs[0, NORMAL, L.ZF_FREE] += 5000
    sim.advance(201)                      # t=300..500
    assert _c(sim, "refill_work_runs") == 1
    sim.advance(1)                        # t=501
    assert _c(sim, "refill_work_runs") == 2
    assert _c(sim, "fail_kernel") == 1
    sim.advance(98)                       # t=502..599
    assert _c(sim, "rx_missed") == 5010
    assert _c(sim, "rx_packets") == 256 + 980


def test_boost_on_fail_tuner_debounce(tmp_path):
    """The test tuner: at every atomic failure, boost_watermark() on each zone of the zonelist,
    at most once per second. Normal at 100 free; 10 packets every ms; page_pool refills fail
    each tick. Failures at t=0 (boost 512, action 1), t=1..999 debounced, t=1000 (action 2).
    kswapd, woken by the t=0 slow path, starts at t=1 with the boost in its snapshot: unbalanced,
    it drops boosting, reclaims nothing, and the end of the run clears the snapshot: boost 0 by
    t=1000; the second action boosts again to 512."""
    rows = {i: 10 for i in range(0, 2000)}
    s = _scenario(tmp_path, rows, n_rows=2000)
    sim = Simulator(s, machines=_machine(), tuner="boost-on-fail")
    _set_zone(sim, 0, NORMAL, free=100)
    sim.advance(1)
    assert _c(sim, "tuner_actions") == 1 and sim.boost[0, NORMAL] == 512
    sim.advance(999)
    assert _c(sim, "tuner_actions") == 1 and sim.boost[0, NORMAL] == 0
    sim.advance(1)
    assert _c(sim, "tuner_actions") == 2 and sim.boost[0, NORMAL] == 512
    lines = sim.tuner_actions(0)
    assert len(lines) == 2 and "boost-on-fail" in lines[0] and "Normal" in lines[0]
    assert lines[1].startswith("t=1000.0 ms")


def test_direct_reclaim_stall(tmp_path):
    """A streaming reader wants 100 new page-cache pages per ms (390.625 MiB/s = 100 pages/ms,
    nothing resident yet: every read misses). Normal at 1000 free = min, 10000 pages of cache.
    t=0: fast path fails (1000 <= 1250), the GFP_KERNEL retry at min fails (1000 <= 1000);
    allow_direct_reclaim: free 1000 > (sum of min)/2 = 500, so no throttle; direct reclaim
    (allocstall_movable: page cache is GFP_HIGHUSER_MOVABLE): one try_to_free_pages() call
    reclaims 10000 >> 12 = 2 pages at DEF_PRIORITY (no stop at the target there) plus one
    32-page chunk at priority 11 = 34 (direct_reclaim_call_pages()); 100 pages take 3 calls
    (3 allocstalls), 102 pages at 200 pages/ms: 0.51 ms = 510 us of stall; the retry at min
    then takes 100 of them (free > 1000 for each): free 1002, cache 10000 - 102 + 100. The
    reader's xarray slab (4 kernel pages per 1792 pages read, workloads._kmem_to(), no direct
    reclaim) asks for 4 RECLAIMABLE pages; its checks read the zone's counter (sim/vmstat.py),
    last folded at 1003 (the reclaimed pages moved the buddy count past the threshold, 24 with
    kswapd asleep: 2·fls(8 CPUs)·(1 + fls(100000 >> 15))). The zone has no RECLAIMABLE free page:
    the first request falls back (__rmqueue_fallback()) and boosts the zone by a pageblock (512);
    each later request is checked against the raised watermark (wmark_pages() includes
    watermark_boost: 1003 <= 1000 + 512) and fails: one page, free 1001, boost 512."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=390.625, working_set_mib=1000.0)]
    s = _scenario(tmp_path, {}, workloads=wl)
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1000, cache=10000, unmovable=False)
    k0 = int(sim.zone_state[0, NORMAL, L.ZF_KERNEL])
    sim.advance(1)
    assert _c(sim, "allocstall_movable") == 3 and _c(sim, "allocstall_normal") == 0
    assert _c(sim, "pgscan_direct") == 102 and _c(sim, "pgsteal_direct") == 102
    assert _c(sim, "direct_reclaim_stall_us") == 510.0
    assert _c(sim, "workload_deficit_pages") == 0
    assert sim.free[0, NORMAL] == 1001 and sim.zone_state[0, NORMAL, L.ZF_CACHE] == 9998
    assert sim.zone_state[0, NORMAL, L.ZF_FREE_SEEN] == 1003
    assert sim.zone_state[0, NORMAL, L.ZF_KERNEL] == k0 + 1 and sim.boost[0, NORMAL] == 512
    assert _c(sim, "fallbacks") == 1 and _c(sim, "fallback_boosts") == 1


def test_allocstall_counts_a_call_that_spans_ticks_once(tmp_path):
    """allocstall is counted when a try_to_free_pages() call starts (do_try_to_free_pages()),
    not per tick of reclaim. The reader of test_direct_reclaim_stall wants 40 pages a ms
    (156.25 MiB/s), Normal at min (1000 free, 10000 of cache), a direct-reclaim rate of 10
    pages/ms and kswapd out of the way (a 50 ms wake latency). A call reclaims 10000 >> 12 = 2
    + 32 = 34 pages (direct_reclaim_call_pages()), 10 a tick: ticks 1-3 reclaim 30 pages of the
    first call (1 allocstall; 4 pages left), tick 4's 10 pages end it and start the second
    (2 allocstalls; 28 left), ticks 5-6 continue it (2), tick 7 ends it and starts the third
    (3): 70 pages of direct reclaim, 3 calls, where a count per tick of reclaim gave 7."""
    wl = [WorkloadSpec(kind="stream_read", rate_mib_s=156.25, working_set_mib=1000.0)]
    s = _scenario(tmp_path, {}, workloads=wl, latency=50.0)
    s = dataclasses.replace(s, kswapd=dataclasses.replace(s.kswapd, direct_reclaim_pages_per_ms=10.0))
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1000, cache=10000, unmovable=False)
    calls = []
    for _ in range(7):
        sim.advance(1)
        calls.append(_c(sim, "allocstall_movable"))
    assert _c(sim, "pgsteal_direct") == 70 and _c(sim, "direct_reclaim_stall_us") == 7000.0
    assert calls == [1, 1, 1, 2, 2, 2, 3]
    assert _c(sim, "pageoutrun") == 0


def test_oom_kill_of_the_anonymous_hog(tmp_path):
    """An anonymous hog grows 500 pages/ms (1953.125 MiB/s); Normal at 1100 free, nothing
    reclaimable (no page cache, no swap). t=0: fast path fails (1100 <= 1250); at min the hog
    gets 100 pages (free > 1000 for each); direct reclaim finds nothing (allocstall_movable 1),
    so the OOM killer ends the largest anonymous workload, the hog (100 pages): its pages go to
    the pcp list (6.18, zone below high: drained only from high_min = max(1250 / 8 CPUs, 4) =
    156 pages, so all 100 stay): free 1000.
    Deficit 400; oom_kill 1; the machine is not deadlocked (there was a victim)."""
    wl = [WorkloadSpec(kind="anon_hog", rate_mib_s=1953.125, peak_mib=1000.0, hold_s=10.0, period_s=0.0)]
    s = _scenario(tmp_path, {}, workloads=wl)
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=1100, unmovable=False)
    sim.advance(1)
    assert _c(sim, "oom_kill") == 1 and not sim.terminated[0]
    assert _c(sim, "allocstall_movable") == 1 and _c(sim, "workload_deficit_pages") == 400
    assert sim.free[0, NORMAL] == 1000 and sim.pcp[0, NORMAL] == 100
    assert sim.zone_state[0, NORMAL, L.ZF_ANON] == 0
    sim.advance(10)                       # the hog has exited for good (period 0)
    assert _c(sim, "oom_kill") == 1 and sim.zone_state[0, NORMAL, L.ZF_ANON] == 0


def test_deadlock_when_watermarks_exceed_what_can_be_free(tmp_path):
    """Normal has 100000 managed pages, 10000 of them unreclaimable kernel memory (and the NIC's
    1024 ring pages, which can be freed). min_free_kbytes = 300000: min = 75000 < 90000, fine.
    min_free_kbytes = 400000: min = 100000 >= 90000 = what can ever be free: no GFP_KERNEL
    request can ever pass the min check; the kernel would panic "System is deadlocked on
    memory". The machine is terminated and no longer advances."""
    s = _scenario(tmp_path, {})
    sim = Simulator(s, machines=_machine())
    _set_zone(sim, 0, NORMAL, free=100000 - 10000 - 1024)
    assert sim.zone_state[0, NORMAL, L.ZF_KERNEL] == 10000
    sim.set_knobs(min_free_kbytes=300000)
    assert sim.wmark[0, NORMAL, 0] == 75000 and not sim.terminated[0]
    sim.advance(5)
    sim.set_knobs(min_free_kbytes=400000)
    assert sim.wmark[0, NORMAL, 0] == 100000 and sim.terminated[0]
    t = sim.t_ms[0]
    sim.advance(5)
    assert sim.t_ms[0] == t == 5.0
    assert _c(sim, "knob_writes") == 2
