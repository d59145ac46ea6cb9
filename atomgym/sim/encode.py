"""Scenario -> state arrays: one encoder per concept, run in order at every reset.

Each ``encode_<concept>(A, b, ...)`` fills machine ``b``'s rows of the state arrays ``A`` (a
:class:`~atomgym.sim.layout.Arrays`: the arrays of ``layout.STATE`` by name) from the scenario
``s`` and the booted kernel model ``m`` (atomgym/kernel/machine.py). :func:`encode_machine` zeroes
the machine's rows and runs them in the order below, which matters where one concept starts
from another's result (the NIC rings are carved out of the memory the memory encoder laid out;
the migratetype split sees the rings; the trace offsets chain traffic, phases and workloads).

Python only: the compiled loop never calls these.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..kernel.machine import Machine
from ..kernel.pcp import PCP_HIGH_AUTOTUNE, pcp_high_mode, pcp_high_static, zone_batchsize
from ..kernel.watermark_ok import (
    GFP_ATOMIC, GFP_NOWAIT, GFP_NOWARN, MIGRATE_MOVABLE, PAGE_CACHE_GFPS, gfp_migratetype,
)
from ..kernel.watermarks import WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES, PAGEBLOCK_NR_PAGES, ZONE_DMA32, ZONE_NAMES, ZONE_NORMAL
from . import layout as L
from .alloc import zonelist_of
from .knobs import KNOB_MI, KNOB_WRITE_ORDER, KNOBS, PHASE_RATE
from .rng import seed_state
from .vmstat import normal_threshold_of
from .scenario import Scenario, TrafficSpec, workload_times
from .tuners import init_tuner

PAGES_PER_MIB = 256
ETH_OVERHEAD = 38          # Ethernet header + FCS + preamble + inter-frame gap, bytes on the wire
SKB_OVERHEAD = 256         # skbuff_head_cache object (232 B in a 256 B buffer) per packet
ZONELIST_TYPES = {L.ZL_KERNEL: (2, 1, 0), L.ZL_USER: (3, 2, 1, 0)}   # zone types of each zonelist, in order

TraceLoader = Callable[[Scenario, TrafficSpec], np.ndarray]


def encode_machine(A: L.Arrays, b: int, s: Scenario, m: Machine, seed: int, tuner: str, tuner_params: dict,
                   load_trace: TraceLoader, pagesets: dict) -> None:
    """Machine b's whole state at reset: every row zeroed, then each concept's encoder."""
    for name in L.STATE_FIELDS:
        getattr(A, name)[b] = 0
    encode_zones(A, b, s, m)
    encode_pcp(A, b, s, m, pagesets)
    encode_memory(A, b, s, m)
    encode_kswapd(A, b, s)
    encode_nics(A, b, s)
    encode_migratetypes(A, b, m)
    encode_lru(A, b, s.memory.page_cache_age)
    off = encode_traffic(A, b, s, load_trace, 0)
    off = encode_phases(A, b, s, off)
    encode_workloads(A, b, s, off)
    A.rng[b] = seed_state(int(seed))
    A.ctr[b, L.C_MIN_FREE_SEEN] = float(A.zs[b, :, L.ZF_FREE].sum())
    encode_tuner(A, b, tuner, tuner_params)


def encode_zones(A: L.Arrays, b: int, s: Scenario, m: Machine) -> None:
    """The kernel model's zones, watermarks, boosts and protection, its vm sysctls, the compact
    zonelists (node 0 first, then the others; populated zones only) and the clock."""
    zm = m.managed.size
    A.managed[b, :zm] = m.managed
    A.wmark[b, :zm] = m.wmark
    A.boost[b, :zm] = m.boost
    A.reserve[b, :zm] = m.reserve
    A.ztype[b] = np.arange(A.ztype.shape[1]) % MAX_NR_ZONES
    mi = A.mi
    for k, name in enumerate(KNOBS):   # the sysctls: the Machine's attribute of each has its name
        mi[b, KNOB_MI[k]] = getattr(m, name)
    mi[b, L.MI_USER_MIN_FREE_KBYTES] = m.user_min_free_kbytes
    mi[b, L.MI_MOVABLE_CLAMPED] = int(m.version.movable_min_clamped)
    mi[b, L.MI_NNODES] = m.nr_nodes
    mi[b, L.MI_SUM_MIN] = int(m.wmark[:, WMARK_MIN].sum())
    for k, types in ZONELIST_TYPES.items():
        lst = [n * MAX_NR_ZONES + t for n in range(m.nr_nodes) for t in types if m.managed[n * MAX_NR_ZONES + t] > 0]
        A.zl[b, k, :len(lst)] = lst
        mi[b, L.MI_NZL_KERNEL + k] = len(lst)
    # alloc_flags_nofragment(): GFP_KERNEL's preferred zone is Normal and DMA32 is populated
    mi[b, L.MI_NOFRAG] = int(m.managed[ZONE_NORMAL] > 0 and m.managed[ZONE_DMA32] > 0)
    A.mr[b, L.MR_TICK_MS] = s.tick_ms


def encode_pcp(A: L.Arrays, b: int, s: Scenario, m: Machine, pagesets: dict) -> None:
    """Per-zone pcp batch and high (kernel/pcp.py): from the snapshot's pagesets when it has
    them, else zone_batchsize()/zone_highsize() of the machine's kernel version; a scenario's
    machine.pcp_batch overrides every zone's batch. One list per zone stands for the lists of
    the CPU(s) doing the allocating, with one CPU's high. Auto-tuning kernels (6.7+) run
    decay_pcp_high() once per simulated second."""
    zs, mi = A.zs, A.mi
    mode = pcp_high_mode(m.version)
    cpus = max(1, s.machine.cpus // max(1, m.nr_nodes))
    if pagesets:
        cpus = max(1, next(iter(pagesets.values()))["cpus"] // max(1, m.nr_nodes))
    mi[b, L.MI_PCP_MODE] = mode
    mi[b, L.MI_PCP_CPUS] = cpus
    for z in range(m.managed.size):
        mg = int(m.managed[z])
        if mg == 0:
            continue
        ps = pagesets.get((z // MAX_NR_ZONES, ZONE_NAMES[z % MAX_NR_ZONES]))
        batch = s.machine.pcp_batch or (ps["batch"] if ps else zone_batchsize(mg))
        lo, hi = pcp_high_static(mode, mg, int(m.wmark[z, WMARK_LOW]), batch, cpus)
        if ps and not s.machine.pcp_batch:
            if ps["high_min"] is not None:
                lo, hi = ps["high_min"], ps["high_max"]
            elif mode != PCP_HIGH_AUTOTUNE:
                lo = hi = ps["high"][0]
        zs[b, z, L.ZF_PCP_BATCH] = batch
        # the vmstat counter's threshold while kswapd sleeps, of num_online_cpus() as the engine
        # reads it (vmstat.online_cpus(): MI_PCP_CPUS x MI_NNODES, set above)
        zs[b, z, L.ZF_STAT_NORMAL] = normal_threshold_of(mg, int(mi[b, L.MI_PCP_CPUS]) * int(mi[b, L.MI_NNODES]))
        zs[b, z, L.ZF_STAT_T] = zs[b, z, L.ZF_STAT_NORMAL]   # kswapd asleep at reset
        zs[b, z, L.ZF_PCP_HIGH_MIN] = lo
        zs[b, z, L.ZF_PCP_HIGH_MAX] = hi
        zs[b, z, L.ZF_PCP_HIGH] = lo
    # the once-a-second work: vmstat_update() (every kernel), decay_pcp_high() (6.7+)
    mi[b, L.MI_PCP_DECAY_NEXT] = max(1, int(1000.0 / s.tick_ms + 0.5))


def encode_memory(A: L.Arrays, b: int, s: Scenario, m: Machine) -> None:
    """The scenario's memory: kernel memory in every zone; page cache and anonymous memory in
    the zones above DMA; the rest free. Anonymous memory is reclaimable with swap."""
    mem = s.memory
    zs = A.zs
    for z in range(m.managed.size):
        mg = int(m.managed[z])
        if mg == 0:
            continue
        kern = int(mem.kernel_frac * mg)
        cache = anon = 0
        if z % MAX_NR_ZONES != 0:
            cache = int(mem.page_cache_frac * mg)
            anon = int(mem.anon_frac * mg)
        if kern + cache + anon > mg:
            cache = max(0, mg - kern - anon)
        zs[b, z, L.ZF_KERNEL] = kern
        zs[b, z, L.ZF_CACHE] = cache
        zs[b, z, L.ZF_ANON] = anon
        zs[b, z, L.ZF_FREE] = mg - kern - cache - anon
    A.mi[b, L.MI_SWAP] = int(mem.swap)
    A.mi[b, L.MI_CACHE_GFP] = PAGE_CACHE_GFPS[mem.page_cache_gfp]
    A.mi[b, L.MI_REFORM_BLK] = int(mem.reform_pageblocks)
    A.mi[b, L.MI_RECLAIM_BLK] = int(mem.reclaim_reforms_pageblocks)
    A.mi[b, L.MI_RECLAIM_WHOLE] = int(round(mem.reclaim_whole_share * PAGEBLOCK_NR_PAGES))


def encode_kswapd(A: L.Arrays, b: int, s: Scenario) -> None:
    """kswapd asleep on every node (kswapd_highest_zoneidx = ZONE_NORMAL), its reclaim rate and
    wake latency, and the direct reclaim rate."""
    A.nd[b, :, L.ND_HZ] = ZONE_NORMAL
    A.nd[b, :, L.ND_HZ_PEND] = MAX_NR_ZONES
    A.mr[b, L.MR_KS_RATE] = s.kswapd.reclaim_pages_per_ms
    A.mr[b, L.MR_KS_LATENCY] = s.kswapd.wake_latency_ms
    A.mr[b, L.MR_DR_RATE] = s.kswapd.direct_reclaim_pages_per_ms
    A.mr[b, L.MR_KS_IRQ_SHARE] = s.kswapd.cpu_share / max(1, s.machine.cpus)   # the softirq's CPU is one of cpus


PP_ALLOC_CACHE_SIZE = 128   # include/net/page_pool.h: the per-pool lockless alloc cache (NAPI context)


def pool_capacity(n, per: int, ppb: int) -> int:
    """Pages the driver keeps for reuse, over all queues (0: none).

    page_pool (net/core/page_pool.c, 6.1): a page the stack frees with ``page_ref_count == 1`` and
    not pfmemalloc (``__page_pool_put_page()``) goes to the pool's alloc cache (128 pages, softirq
    on the NAPI CPU: ``page_pool_recycle_in_cache()``) or its ptr_ring (``page_pool_recycle_in_ring()``,
    sized by the driver's ``pool_size``: the RX ring's pages, e.g. mlx5e); a full ring sends it to
    the buddy (``page_pool_return_page()``). ``page_pool_alloc_pages()`` takes from the cache, refills
    it from the ring, and only then allocates (bulk, GFP_ATOMIC).
    dev_alloc_pages drivers (ixgbe/i40e ``*_can_reuse_rx_page()``): a 4 KiB page holds two 2 KiB
    buffers; the driver flips to the other half and puts the page back on the ring unless it is
    pfmemalloc (``dev_page_is_reusable()``) or the stack still holds the other half: at most the
    ring's pages are reused."""
    recycle = n.recycle if n.recycle is not None else n.driver != "virtio_net"
    if not recycle:
        return 0
    ring_pages = -(-n.ring_size // per) * ppb
    if n.driver == "page_pool":
        return n.queues * (PP_ALLOC_CACHE_SIZE + ring_pages)
    return n.queues * ring_pages


def encode_nics(A: L.Arrays, b: int, s: Scenario) -> None:
    """Each NIC's ring, NAPI and socket parameters, with its rings filled at boot from the kernel
    zonelist. A NIC's packet size is that of the first traffic source sent to it (capped at the
    MTU)."""
    ni, nf, nz, zs = A.ni, A.nf, A.nz, A.zs
    A.mi[b, L.MI_NNIC] = len(s.nics)
    first_pkt: dict[int, int] = {}
    for i, t in enumerate(s.traffic):
        first_pkt.setdefault(i % max(1, len(s.nics)), t.packet_bytes)
    for k, n in enumerate(s.nics):
        pkt = min(first_pkt.get(k, n.mtu), n.mtu)
        per = max(1, 4096 // n.buffer_bytes)
        ppb = max(1, -(-n.buffer_bytes // 4096))
        bpp = max(1, -(-pkt // n.buffer_bytes))
        ring_total = n.queues * n.ring_size
        nf[b, k, L.NP_DRIVER] = L.DRIVERS.index(n.driver)
        nf[b, k, L.NP_RING] = ring_total
        nf[b, k, L.NP_BPP] = bpp
        nf[b, k, L.NP_BUF_PER_PAGE] = per
        nf[b, k, L.NP_PAGES_PER_BUF] = ppb
        nf[b, k, L.NP_NAPI_PER_TICK] = n.queues * n.napi_budget * (s.tick_ms * 1000.0 / n.napi_interval_us)
        truesize = bpp * n.buffer_bytes + SKB_OVERHEAD
        nf[b, k, L.NP_SOCK_CAP] = n.queues * (n.rcvbuf_kb * 1024 // truesize)
        nf[b, k, L.NP_DRAIN_PER_MS] = n.app_drain_pps / 1000.0
        nf[b, k, L.NP_VIRTIO_DUE] = -1.0
        nf[b, k, L.NP_SOCK_MEMALLOC] = float(n.sock_memalloc)
        nf[b, k, L.NP_QUEUES] = n.queues
        nf[b, k, L.NP_NAPI_BUDGET] = n.napi_budget
        nf[b, k, L.NP_LINE_PPMS] = n.line_rate_gbps * 1e9 / 8.0 / (pkt + ETH_OVERHEAD) / 1000.0
        # boot: rings full, pages from the kernel zonelist
        pages = -(-ring_total // per) * ppb
        nf[b, k, L.NP_POOL_CAP] = pool_capacity(n, per, ppb)
        ni[b, k, L.NI_POSTED] = ring_total
        ni[b, k, L.NI_BUFS] = ring_total
        ni[b, k, L.NI_PAGES] = pages
        ni[b, k, L.NI_FRAG] = (pages // ppb) * per - ring_total
        # Free memory first. The rings are filled when the interface comes up, before the page
        # cache grows, so what free memory cannot hold comes out of the scenario's initial page
        # cache (a randomised draw of many large rings over a full page cache fits that way).
        left = pages
        for src in (L.ZF_FREE, L.ZF_CACHE):
            for z in A.zl[b, L.ZL_KERNEL, :A.mi[b, L.MI_NZL_KERNEL]]:
                take = min(left, int(zs[b, z, src]))
                zs[b, z, src] -= take
                zs[b, z, L.ZF_NET] += take
                nz[b, k, z] += take
                left -= take
        if left:
            raise ValueError(f"{s.name}: NIC {k}'s rings need {pages} pages ({n.queues} queues x "
                             f"{n.ring_size} descriptors); free memory and page cache hold only {pages - left}")


def encode_migratetypes(A: L.Arrays, b: int, m: Machine) -> None:
    """Kernel memory and ring buffers (and a block device's page cache, GFP_USER) fill UNMOVABLE
    pageblocks; the free rest of their last, partly used block is the zone's unmovable free
    supply at the start. The MOVABLE rest of free
    memory is unfragmented, as after boot (the buddy allocator hands out the smallest chunks
    first, so the page cache and anonymous memory filled blocks one after another): it is whole
    free pageblocks (``ZF_FREE_BLK``) but for one partly used block."""
    zs = A.zs
    for z in range(m.managed.size):
        used = int(zs[b, z, L.ZF_KERNEL] + zs[b, z, L.ZF_NET])
        if gfp_migratetype(A.mi[b, L.MI_CACHE_GFP]) != MIGRATE_MOVABLE:
            used += int(zs[b, z, L.ZF_CACHE])
        slack = (-used) % PAGEBLOCK_NR_PAGES
        zs[b, z, L.ZF_FREE_U] = min(slack, int(zs[b, z, L.ZF_FREE]))
        zs[b, z, L.ZF_FREE_BLK] = (int(zs[b, z, L.ZF_FREE]) - int(zs[b, z, L.ZF_FREE_U])) // PAGEBLOCK_NR_PAGES


def encode_lru(A: L.Arrays, b: int, age: str) -> None:
    """Each node's file LRU (sim/lru.py) with the page cache present at reset (after the rings
    took theirs), in buckets of LP_QUANTUM pages (1/32 of the node's managed pages), in the order
    ``memory.page_cache_age`` gives: ``interleaved``, every bucket holds each zone's share (a
    machine whose cache turned over many times); ``zonelist``, the cache was read into free memory
    along its zonelist (get_page_from_freelist() fills the first zone down to its low watermark
    before the next), so the first zone's pages are the oldest. Simulator.sync_lru() calls it
    again after a test writes the page cache directly."""
    zlk = zonelist_of(int(A.mi[b, L.MI_CACHE_GFP]))   # the zonelist the cache was read along
    A.lru[b] = 0
    A.lrp[b] = 0
    for node in range(A.lrp.shape[1]):
        zones = range(node * MAX_NR_ZONES, (node + 1) * MAX_NR_ZONES)
        q = max(1, -(-int(A.managed[b, zones.start:zones.stop].sum()) // (L.LRU_BUCKETS // 2)))
        A.lrp[b, node, L.LP_QUANTUM] = q
        cache = [int(A.zs[b, z, L.ZF_CACHE]) for z in zones]
        nb = min(L.LRU_BUCKETS, -(-sum(cache) // q))
        if nb == 0:
            continue
        if age == "interleaved":
            for t, c in enumerate(cache):
                A.lru[b, node, :nb, t] = c // nb
                A.lru[b, node, :c % nb, t] += 1
        else:
            order = [int(z) % MAX_NR_ZONES for z in A.zl[b, zlk, :A.mi[b, L.MI_NZL_KERNEL + zlk]] if z in zones]
            k = 0
            for t in order + [t for t in range(MAX_NR_ZONES) if t not in order]:
                left = cache[t]
                while left > 0:
                    if k + 1 < nb and A.lru[b, node, k, :L.LRU_TOTAL].sum() >= q:
                        k += 1
                    take = left if k + 1 == nb else min(left, q - int(A.lru[b, node, k, :L.LRU_TOTAL].sum()))
                    A.lru[b, node, k, t] += take
                    left -= take
        A.lru[b, node, :, L.LRU_TOTAL] = A.lru[b, node, :, :L.LRU_TOTAL].sum(axis=1)
        A.lrp[b, node, L.LP_LEN] = nb
        if A.mi[b, L.MI_RECLAIM_BLK] and age == "zonelist":
            # a cache read into the free memory of a freshly booted machine filled whole blocks
            # (encode_migratetypes(): the buddy allocator splits them one after another)
            A.lru[b, node, :, L.LRU_BLK:L.LRU_BLK + MAX_NR_ZONES] = A.lru[b, node, :, :L.LRU_TOTAL]


def encode_traffic(A: L.Arrays, b: int, s: Scenario, load_trace: TraceLoader, off: int) -> int:
    """Each traffic source (sent to NIC ``source % n_nics``); replay traces are appended to
    ``trace`` from ``off``. Returns the next free offset of ``trace``."""
    tp, nf = A.tp, A.nf
    tp[b, :, L.TP_KIND] = L.TK_NONE
    A.mi[b, L.MI_NTRAFFIC] = len(s.traffic)
    nnic = max(1, len(s.nics))
    for i, t in enumerate(s.traffic):
        k = i % nnic
        tp[b, i, L.TP_KIND] = L.TRAFFIC_KINDS.index(t.kind)
        tp[b, i, L.TP_NIC] = k
        tp[b, i, L.TP_RATE] = t.rate_pps / 1000.0
        burst = t.burst_pps / 1000.0
        if t.kind == "incast" and burst == 0.0 and s.nics:
            burst = nf[b, k, L.NP_LINE_PPMS]
        tp[b, i, L.TP_BURST] = burst
        tp[b, i, L.TP_MEAN_ON] = t.mean_on_ms
        tp[b, i, L.TP_MEAN_OFF] = t.mean_off_ms
        tp[b, i, L.TP_PERIOD] = t.period_ms
        tp[b, i, L.TP_BURST_MS] = t.burst_ms
        tp[b, i, L.TP_JITTER] = t.jitter
        tp[b, i, L.TP_AMPL] = t.amplitude
        tp[b, i, L.TP_START] = t.start_s * 1000.0
        tp[b, i, L.TP_STOP] = math.inf if t.stop_s is None else t.stop_s * 1000.0
        tp[b, i, L.TP_TRACE_INT] = t.trace_interval_ms
        tp[b, i, L.TP_S_NEXT] = t.start_s * 1000.0   # mmpp: first switch (to on); incast: first burst
        tp[b, i, L.TP_S_END] = -math.inf
        if t.kind == "mmpp":
            tp[b, i, L.TP_S_ON] = 1.0   # the switch due at start turns it off: an episode starts off
        if t.kind == "replay":
            arr = load_trace(s, t)
            A.trace[b, off:off + len(arr)] = arr
            tp[b, i, L.TP_TRACE_OFF] = off
            tp[b, i, L.TP_TRACE_N] = len(arr)
            off += len(arr)
    return off


def encode_phases(A: L.Arrays, b: int, s: Scenario, off: int) -> int:
    """The phases' sysctl writes as (t_ms, knob, value) triples in ``trace`` from ``off``, in time
    order and, within a phase, in knobs.KNOB_WRITE_ORDER, then its workload rates as (t_ms,
    PHASE_RATE + workload, pages/ms) (applied by knobs.apply_phases()). Returns the next free offset."""
    mi = A.mi
    mi[b, L.MI_PHASE_OFF] = off
    n_ph = 0
    index = {w.name: i for i, w in enumerate(s.workloads) if w.name is not None}
    for ph in sorted(s.phases, key=lambda p: p.at_s):
        for knob in KNOB_WRITE_ORDER:   # the phase's key of each sysctl has its name
            v = getattr(ph.sysctl, KNOBS[knob])
            if v is not None:
                A.trace[b, off:off + 3] = (ph.at_s * 1000.0, knob, v)
                off += 3
                n_ph += 1
        for name, mib_s in ph.rate.items():
            A.trace[b, off:off + 3] = (ph.at_s * 1000.0, PHASE_RATE + index[name], mib_s * PAGES_PER_MIB / 1000.0)
            off += 3
            n_ph += 1
    mi[b, L.MI_PHASE_N] = n_ph
    mi[b, L.MI_PHASE_NEXT] = 0
    return off


def phase_trace_len(s: Scenario) -> int:
    """Upper bound of the ``trace`` entries encode_phases() writes."""
    return sum(3 * (len(KNOB_WRITE_ORDER) + len(ph.rate)) for ph in s.phases)


def encode_workloads(A: L.Arrays, b: int, s: Scenario, off: int) -> int:
    """Each memory workload's parameters (MiB to pages, s to ms); atomic_alloc shots are appended
    to ``trace`` from ``off`` as (at_ms, pages, hold_ms). Returns the next free offset."""
    wp = A.wp
    wp[b, :, L.WP_KIND] = L.WK_NONE
    A.mi[b, L.MI_NWORK] = len(s.workloads)
    times = workload_times(s)
    for w, wl in enumerate(s.workloads):
        wp[b, w, L.WP_KIND] = L.WORKLOAD_KINDS.index(wl.kind)
        start, stop = times[w]
        wp[b, w, L.WP_START] = start * 1000.0
        wp[b, w, L.WP_STOP] = math.inf if stop is None else stop * 1000.0
        wp[b, w, L.WP_VOLUME] = 0 if wl.volume_mib is None else max(1, int(wl.volume_mib * PAGES_PER_MIB))
        if wl.kind == "atomic_alloc":
            wp[b, w, L.WP_GFP] = (GFP_ATOMIC | GFP_NOWARN) if wl.gfp == "atomic" else GFP_NOWAIT
            wp[b, w, L.WP_PEAK] = wl.pages_per_burst
            wp[b, w, L.WP_PERIOD] = wl.interval_ms
            wp[b, w, L.WP_HOLD] = wl.hold_ms
            wp[b, w, L.WP_S_NEXT] = start * 1000.0
            wp[b, w, L.WP_SHOT_OFF] = off
            wp[b, w, L.WP_SHOT_N] = len(wl.shots)
            for sh in sorted(wl.shots, key=lambda x: x.at_s):
                A.trace[b, off:off + 3] = (sh.at_s * 1000.0, sh.pages, sh.hold_ms)
                off += 3
            continue
        wp[b, w, L.WP_RATE] = wl.rate_mib_s * PAGES_PER_MIB / 1000.0
        wp[b, w, L.WP_WS] = int(wl.working_set_mib * PAGES_PER_MIB)
        wp[b, w, L.WP_SEQUENTIAL] = 1.0 if wl.access == "sequential" else 0.0
        wp[b, w, L.WP_CHUNK] = wl.chunk_pages
        wp[b, w, L.WP_PEAK] = int(wl.peak_mib * PAGES_PER_MIB)
        wp[b, w, L.WP_HOLD] = wl.hold_s * 1000.0
        wp[b, w, L.WP_PERIOD] = wl.period_s * 1000.0
    return off


def workload_trace_len(s: Scenario) -> int:
    """The ``trace`` entries encode_workloads() writes."""
    return 3 * sum(len(w.shots) for w in s.workloads)


def encode_tuner(A: L.Arrays, b: int, tuner: str, params: dict) -> None:
    """The in-kernel tuner's id, params and initial state (sim/tuners.py init_tuner())."""
    A.mi[b, L.MI_TUNER] = init_tuner(tuner, A.ts[b], A.tpar[b], params)
