"""The node's file LRU (sim/lru.py): reclaim takes the oldest page cache first, whatever its zone.

Hand-checked traces on a one-node machine with DMA32 (200000 pages) and Normal (100000 pages):
the bucket arithmetic through the compiled functions themselves, then the process end to end
(kswapd frees the zone whose pages are oldest; with ``memory.page_cache_age: zonelist`` the cache
present at reset was read along the zonelist, so Normal's is oldest).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from atomgym.kernel import KernelVersion, Machine
from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.engine import free_state, make_state
from atomgym.sim.lru import lru_add, lru_reclaim
from atomgym.sim.scenario import KswapdSpec, MachineSpec, MemorySpec, Scenario

DMA32, NORMAL = 1, 2


@njit(cache=False)   # no cache: a cached copy would keep stale simulator constants (layout.py)
def _add(T, z, n, blkp):
    S = make_state(T)
    lru_add(S, 0, z, n, blkp)
    free_state(S)


@njit(cache=False)
def _reclaim(T, hz, x, unmovable=False):
    S = make_state(T)
    got = lru_reclaim(S, 0, 0, hz, x, unmovable)
    free_state(S)
    return got


def _machine() -> Machine:
    m = Machine(np.array([0, 200000, 100000, 0, 0]), version=KernelVersion(6, 18), thp="never").boot()
    m.write("vm.min_free_kbytes", 4000)
    return m


def _sim(cache_frac: float = 0.0, rate: float = 100.0, age: str = "zonelist") -> Simulator:
    scen = Scenario(name="lru", tick_ms=1.0, machine=MachineSpec(pcp_batch=1),
                    memory=MemorySpec(page_cache_frac=cache_frac, anon_frac=0.0, kernel_frac=0.0, page_cache_age=age),
                    kswapd=KswapdSpec(reclaim_pages_per_ms=rate, wake_latency_ms=0.5),
                    nics=[], traffic=[], workloads=[])
    return Simulator(scen, machines=_machine())


def _empty(sim: Simulator) -> None:
    """Page cache 0 in every zone (the pages become kernel memory), LRU rebuilt."""
    zs = sim.zone_state
    zs[0, :, L.ZF_KERNEL] += zs[0, :, L.ZF_CACHE]
    zs[0, :, L.ZF_CACHE] = 0
    sim.sync_lru()


def _read(sim: Simulator, z: int, n: int, blkp: int = 0) -> None:
    """``n`` pages of page cache read into zone ``z`` (``blkp`` of them filling whole pageblocks):
    from its free pages, onto the LRU."""
    zs = sim.zone_state
    zs[0, z, L.ZF_FREE] -= n
    zs[0, z, L.ZF_CACHE] += n
    _add(sim.state, z, n, blkp)


def _buckets(sim: Simulator) -> list[tuple[int, int]]:
    """The LRU from its tail (oldest): (DMA32, Normal) pages per bucket in use."""
    lru, lrp = sim.field("lru")[0, 0], sim.field("lrp")[0, 0]
    return [(int(lru[(lrp[L.LP_TAIL] + i) % L.LRU_BUCKETS, DMA32]), int(lru[(lrp[L.LP_TAIL] + i) % L.LRU_BUCKETS, NORMAL]))
            for i in range(lrp[L.LP_LEN])]


def test_buckets_fill_to_the_quantum_and_reclaim_takes_the_oldest_first():
    """Quantum = ceil(300000 / 32) = 9375 pages; a bucket of 9375 / 8 pages or more closes for
    another zone's pages (lru.SPLIT_RUN). Reads: Normal 9000 (bucket A); DMA32 1000 (A holds no
    DMA32 and 9000 >= 1172: bucket B); Normal 100 (B holds 1000 < 1172: B takes them, mixed);
    DMA32 3000 and Normal 500 (B holds both zones: B). A reclaim of 9500 at hz = Normal empties
    the oldest bucket A (9000 <= 9500) and takes 500 of B's 4600 in proportion: 500 * 4000 // 4600
    = 434 DMA32, 500 * 600 // 4600 = 65 Normal, the remainder 1 in zone order to DMA32. The next
    2000 come from B alone: 2000 * 3565 // 4100 = 1739 DMA32, 2000 * 535 // 4100 = 260 Normal and
    the remainder 1 to DMA32."""
    sim = _sim()
    _empty(sim)
    assert sim.field("lrp")[0, 0, L.LP_QUANTUM] == 9375
    _read(sim, NORMAL, 9000)
    _read(sim, DMA32, 1000)
    _read(sim, NORMAL, 100)
    _read(sim, DMA32, 3000)
    _read(sim, NORMAL, 500)
    assert _buckets(sim) == [(0, 9000), (4000, 600)]
    free0 = sim.zone_state[0, :, L.ZF_FREE].copy()
    assert _reclaim(sim.state, NORMAL, 9500) == 9500
    assert _buckets(sim) == [(3565, 535)]
    assert _reclaim(sim.state, NORMAL, 2000) == 2000
    assert _buckets(sim) == [(3565 - 1740, 535 - 260)]
    zs = sim.zone_state[0]
    assert zs[DMA32, L.ZF_FREE] - free0[DMA32] == 435 + 1740 and zs[DMA32, L.ZF_CACHE] == 1825
    assert zs[NORMAL, L.ZF_FREE] - free0[NORMAL] == 9000 + 65 + 260 and zs[NORMAL, L.ZF_CACHE] == 275


def test_a_run_of_another_zones_pages_keeps_its_place_in_lru_order():
    """The page cache that spilled into another zone in one run (DMA when DMA32 first ran out) is a
    bucket of its own: reclaim reaches it as one piece, after the older pages and before the newer,
    instead of taking a share of it with every pass over a mixed bucket. Normal 6000, DMA32 2400,
    Normal 6000: three buckets; reclaims of 6000, 1200 and 1200 pages take Normal's, then DMA32's
    run, then Normal's."""
    sim = _sim()
    _empty(sim)
    _read(sim, NORMAL, 6000)
    _read(sim, DMA32, 2400)
    _read(sim, NORMAL, 6000)
    assert _buckets(sim) == [(0, 6000), (2400, 0), (0, 6000)]
    cache0 = sim.zone_state[0, :, L.ZF_CACHE].copy()
    for x in (6000, 1200, 1200):
        assert _reclaim(sim.state, NORMAL, x) == x
    freed = cache0 - sim.zone_state[0, :, L.ZF_CACHE]
    assert freed[DMA32] == 2400 and freed[NORMAL] == 6000
    assert _buckets(sim) == [(0, 6000)]


def test_pages_above_the_reclaim_index_are_skipped_to_the_head():
    """isolate_lru_folios() for reclaim_idx = DMA32: Normal's folios are skipped and spliced to
    the head ("this disrupts the LRU order when reclaiming for lower zones"). Reads Normal 500,
    DMA32 2000, DMA32 9400 share one bucket (Normal's 500 < 9375 / 8 when DMA32's first pages came,
    2500 < 9375 when the last came). Again with Normal 500, DMA32 8875 (the bucket is full), DMA32
    9400 (a second bucket). A 5000-page reclaim at hz = DMA32 takes 5000 of the first bucket's 8875
    DMA32 pages (part of a bucket: its eligible pages only). A 9000-page reclaim takes the other
    3875, moves the bucket's 500 Normal pages to the head (a third bucket: the second holds 9400 >=
    9375), then 5125 DMA32 pages of the second. A 5000-page reclaim at hz = Normal finds DMA32's
    4275 oldest, then Normal's 500: 4775 pages, all there are."""
    sim = _sim()
    _empty(sim)
    _read(sim, NORMAL, 500)
    _read(sim, DMA32, 2000)
    _read(sim, DMA32, 9400)
    assert _buckets(sim) == [(11400, 500)]
    _empty(sim)
    _read(sim, NORMAL, 500)
    _read(sim, DMA32, 8875)
    _read(sim, DMA32, 9400)
    assert _buckets(sim) == [(8875, 500), (9400, 0)]
    assert _reclaim(sim.state, DMA32, 5000) == 5000
    assert _buckets(sim) == [(3875, 500), (9400, 0)]
    assert _reclaim(sim.state, DMA32, 9000) == 9000
    assert _buckets(sim) == [(4275, 0), (0, 500)]
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 500
    assert _reclaim(sim.state, NORMAL, 5000) == 4775
    assert _buckets(sim) == []


def test_a_reclaim_with_nothing_eligible_takes_nothing_and_keeps_the_pages():
    sim = _sim()
    _empty(sim)
    _read(sim, NORMAL, 700)
    assert _reclaim(sim.state, DMA32, 500) == 0
    assert _buckets(sim) == [(0, 700)] and sim.zone_state[0, NORMAL, L.ZF_CACHE] == 700


def test_the_cache_at_reset_in_zonelist_order_or_interleaved():
    """encode_lru(), memory.page_cache_age. ``zonelist``: GFP_HIGHUSER_MOVABLE's zonelist visits
    Normal before DMA32, so Normal's cache is the oldest. 40 % of each zone is cache: Normal 40000
    (4 buckets of 9375 and 2500), then DMA32's 80000 (6875 to fill that bucket, 7 more of 9375 and
    7500): ceil(120000 / 9375) = 13 buckets. ``interleaved`` (the default): each of the 13 buckets
    holds each zone's share, 80000 // 13 = 6153 DMA32 pages (the first 80000 % 13 = 11 one more)
    and 40000 // 13 = 3076 Normal pages (the first 12 one more)."""
    b = _buckets(_sim(cache_frac=0.4))
    assert b[:5] == [(0, 9375)] * 4 + [(6875, 2500)]
    assert b[5:] == [(9375, 0)] * 7 + [(7500, 0)]
    b = _buckets(_sim(cache_frac=0.4, age="interleaved"))
    assert b == [(6154, 3077)] * 11 + [(6153, 3077), (6153, 3076)]
    assert MemorySpec().page_cache_age == "interleaved"


def test_kswapd_frees_the_oldest_zone_and_the_other_stands_still():
    """The process the real kernel shows on a 4 GiB guest (docs/realkernel.md): kswapd woken on a
    node whose LRU holds Normal's cache oldest. It reclaims Normal pages only while they last:
    DMA32's free pages do not move, although DMA32 holds twice Normal's page cache (a
    proportional split would have freed two DMA32 pages for each Normal one)."""
    sim = _sim(cache_frac=0.4, rate=100.0)
    zs = sim.zone_state
    free0 = zs[0, :, L.ZF_FREE].copy()
    nd = sim.state[L.STATE_INDEX["nd"]]
    nd[0, 0, L.ND_STATE] = L.KS_WAKING
    nd[0, 0, L.ND_T] = 0.0
    nd[0, 0, L.ND_HZ] = NORMAL
    # hold both zones below high so the run goes on: boost them for the test's length
    sim.set_knobs(boost_pages=np.array([[0, 150000, 150000, 0, 0]]))
    sim.advance(200)
    stolen = float(sim.counter("pgsteal_kswapd")[0])
    assert 10000 < stolen <= 40000
    assert zs[0, DMA32, L.ZF_FREE] == free0[DMA32]
    assert zs[0, NORMAL, L.ZF_FREE] - free0[NORMAL] == stolen


def test_a_sequential_reader_misses_every_page_its_cache_does_not_hold():
    """stream_read's ``access``: a reader of 10 pages a tick over a 1000-page working set, 500 of
    them resident. Random reads hit with the resident share: 10 * 500 / 1000 = 5 misses (new
    page-cache pages) a tick. A sequential loop reads next the pages it read longest ago, which
    reclaim takes first: all 10 miss."""
    from atomgym.sim.scenario import WorkloadSpec
    for access, misses in (("random", 5), ("sequential", 10)):
        scen = Scenario(name="lru", tick_ms=1.0, machine=MachineSpec(pcp_batch=1),
                        memory=MemorySpec(page_cache_frac=0.0, anon_frac=0.0, kernel_frac=0.0),
                        kswapd=KswapdSpec(reclaim_pages_per_ms=100.0, wake_latency_ms=0.5),
                        nics=[], traffic=[],
                        workloads=[WorkloadSpec(kind="stream_read", rate_mib_s=39.0625, working_set_mib=3.90625,
                                                access=access)])
        sim = Simulator(scen, machines=_machine())
        zs = sim.zone_state
        zs[0, NORMAL, L.ZF_FREE] -= 500
        zs[0, NORMAL, L.ZF_CACHE] += 500
        sim.sync_lru()
        wp = sim.field("wp")
        wp[0, 0, L.WP_S_RESIDENT] = wp[0, 0, L.WP_S_EVER] = 500
        sim.advance(1)
        assert zs[0, :, L.ZF_CACHE].sum() == 500 + misses, access
        assert wp[0, 0, L.WP_S_RESIDENT] == 500 + misses


def test_a_splice_into_a_full_ring_keeps_every_page():
    """The ring full (64 buckets of 1 page: a quantum of 1 written for the test): the oldest
    bucket holds a Normal page, the 63 others a DMA32 page each. A 1-page reclaim at hz = DMA32
    splices the Normal page to the head, which takes it (the ring is full), then pops the emptied
    bucket and takes the next one's DMA32 page: 62 buckets, the newest holding both the last
    DMA32 page read and the spliced Normal page; every page still counted, totals consistent."""
    sim = _sim()
    _empty(sim)
    sim.field("lrp")[0, 0, L.LP_QUANTUM] = 1
    _read(sim, NORMAL, 1)
    for _ in range(L.LRU_BUCKETS - 1):
        _read(sim, DMA32, 1)
    assert len(_buckets(sim)) == L.LRU_BUCKETS
    assert _reclaim(sim.state, DMA32, 1) == 1
    assert _buckets(sim) == [(1, 0)] * 61 + [(1, 1)]
    lru = sim.field("lru")[0, 0]
    assert (lru[:, L.LRU_TOTAL] == lru[:, :L.LRU_TOTAL].sum(axis=1)).all()
    assert sim.zone_state[0, NORMAL, L.ZF_CACHE] == 1 and sim.zone_state[0, DMA32, L.ZF_CACHE] == 62


def test_reclaimed_pages_of_whole_blocks_merge_into_whole_free_blocks():
    """memory.reclaim_reforms_pageblocks: __free_one_page() merges freed pages with their free
    buddies up to pageblock_order, so the page cache that filled whole blocks comes back as whole
    free blocks of its type. Reads into Normal: 9375 pages of whole blocks (a full bucket), then
    1000 with 500 (a second bucket). Reclaim 700: 700 block pages -> one whole block (700 // 512),
    188 carried (ZF_BLK_MERGE). Reclaim 400 more: 588 -> a second block, 76 carried. Reclaim 8675:
    the first bucket's other 8275 (8351 -> 16 more blocks, 159 carried), then 400 of the second
    bucket's 1000, in proportion 500 * 400 // 1000 = 200 block pages: 18 blocks, 359 carried, 300
    block pages left on the LRU. A block device's (UNMOVABLE) cache: the same into
    ZF_FREE_BLK_U, capped by the UNMOVABLE free pages // 512."""
    for unmovable in (False, True):
        sim = _sim()
        _empty(sim)
        zs = sim.zone_state[0]
        zs[NORMAL, L.ZF_FREE_BLK] = 0
        zs[NORMAL, L.ZF_FREE_U] = 0
        fld = L.ZF_FREE_BLK_U if unmovable else L.ZF_FREE_BLK
        _read(sim, NORMAL, 9375, 9375)
        _read(sim, NORMAL, 1000, 500)
        assert _buckets(sim) == [(0, 9375), (0, 1000)]
        assert _reclaim(sim.state, NORMAL, 700, unmovable) == 700
        assert (zs[NORMAL, fld], zs[NORMAL, L.ZF_BLK_MERGE]) == (1, 188)
        assert _reclaim(sim.state, NORMAL, 400, unmovable) == 400
        assert (zs[NORMAL, fld], zs[NORMAL, L.ZF_BLK_MERGE]) == (2, 76)
        assert _reclaim(sim.state, NORMAL, 8675, unmovable) == 8675
        assert (zs[NORMAL, fld], zs[NORMAL, L.ZF_BLK_MERGE]) == (18, 359)
        assert sim.field("lru")[0, 0, :, L.LRU_BLK + NORMAL].sum() == 300
        if unmovable:
            assert zs[NORMAL, L.ZF_FREE_U] == 9775 and zs[NORMAL, L.ZF_FREE_BLK] == 0


def test_only_the_whole_share_of_reclaimed_blocks_comes_back_whole():
    """memory.reclaim_whole_share 0.5 (MI_RECLAIM_WHOLE 256 of 512): of the block pages reclaim
    frees, half count toward whole blocks (the rest keep a page not freed with them: sub-block
    chunks, free pages of the type all the same). Reclaim 700 of a full bucket's block pages:
    350 counted, no block, 350 carried; 400 more: 200 -> 550, one block, 38 carried; every page
    reclaimed is free. The scenario key encodes to that integer."""
    from atomgym.sim.scenario import load_scenario
    sim = _sim()
    _empty(sim)
    zs = sim.zone_state[0]
    zs[NORMAL, L.ZF_FREE_BLK] = 0
    assert sim.field("mi")[0, L.MI_RECLAIM_WHOLE] == 512            # the default: every block whole
    sim.field("mi")[0, L.MI_RECLAIM_WHOLE] = 256
    _read(sim, NORMAL, 9375, 9375)
    assert _reclaim(sim.state, NORMAL, 700, False) == 700
    assert (zs[NORMAL, L.ZF_FREE_BLK], zs[NORMAL, L.ZF_BLK_MERGE]) == (0, 350)
    assert _reclaim(sim.state, NORMAL, 400, False) == 400
    assert (zs[NORMAL, L.ZF_FREE_BLK], zs[NORMAL, L.ZF_BLK_MERGE]) == (1, 38)
    s = load_scenario("real-atomic-stream")
    half = dataclasses.replace(s, memory=dataclasses.replace(s.memory, reclaim_whole_share=0.5))
    sim = Simulator(half, n_machines=1)
    sim.reset([1])
    assert sim.field("mi")[0, L.MI_RECLAIM_WHOLE] == 256
