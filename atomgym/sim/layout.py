"""Memory layout of the batched simulator state, declared once.

:data:`STATE` is the table of the state arrays (name, dtype, shape, doc). Everything else follows
from it: the order of ``Simulator.state`` (the tuple ``engine.make_state()`` wraps),
:data:`STATE_INDEX`, the allocation (:func:`allocate`), the ``Simulator._<name>`` attributes and
the fields of :class:`SimState` (``S.zs``, ``S.mi``, ...), which compiled functions take together
with the machine index ``b``.

Every array has a leading batch axis ``B``. The kernel model's own arrays are kept in the shapes
the kernel functions take (one machine = one row), so the compiled loop passes ``S.wmark[b]``,
``S.boost[b]``, ... straight to kernel/watermarks.py & co.

The fields of the 2-D/3-D records (``zs``, ``mi``, ``mr``, ``nd``, ``ni``, ``nf``, ``tp``, ``wp``)
are named by tuples (``ZF_NAMES``, ``MI_NAMES``, ...); each ``XX_*`` index is looked up in its
tuple, as the counters' ``C_*`` are in :data:`COUNTER_NAMES`, and the record's width is the
tuple's length. Adding a field: see :data:`STATE`.

Conservation (checked by tests): for every zone
``managed == FREE + PCP + CACHE + ANON + KERNEL + NET``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import operator as _operator

import numpy as np
from numba.core import cgutils as _cgutils
from numba.core.imputils import lower_builtin as _lower_builtin
from numba.core.typing import signature as _signature
from numba.np import arrayobj as _arrayobj
from numba.core import types as _types
from numba.core.datamodel import models as _models
from numba.core.datamodel.models import ArrayModel as _ArrayModel
from numba.experimental import structref as _structref
from numba.extending import register_model as _register_model

from ..kernel.jit import CHECK_INDEX as _CHECK_INDEX
from ..kernel.sysctl import SYSCTLS
from ..kernel.watermarks import NR_WMARK
from ..kernel.zones import MAX_NR_ZONES, ZONE_NAMES


def _index(names: tuple[str, ...]) -> dict[str, int]:
    """Field name -> index; a name given twice is an error (two fields would share a slot)."""
    idx = {n: i for i, n in enumerate(names)}
    if len(idx) != len(names):
        raise ValueError(f"duplicate field names in {names}")
    return idx


# ---- zs: dynamic per-zone state (pages) -------------------------------------------------
ZF_NAMES = (
    "free",          # buddy free pages = NR_FREE_PAGES (what every watermark check sees)
    "pcp",           # pages on the zone's per-CPU lists (free, but not in NR_FREE_PAGES)
    "cache",         # page cache (file LRU; reclaimable)
    "anon",          # anonymous memory (reclaimable only with swap)
    "kernel",        # other kernel memory (slab etc.; unreclaimable)
    "net",           # network buffers (posted in RX rings, queued in sockets)
    # (the six above are the page pools: their sum is managed, in this order)
    "boost_snap",    # balance_pgdat()'s zone_boosts[] snapshot
    "boosted_flag",  # ZONE_BOOSTED_WATERMARK bit
    "free_u",        # of free: pages in UNMOVABLE pageblocks (free_r: RECLAIMABLE; the rest are MOVABLE)
    "pcp_u",         # of pcp: pages on the UNMOVABLE pcp list (the rest are on the MOVABLE list)
    "pcp_batch",     # pcp->batch (zone_batchsize())
    "pcp_high",      # pcp->high now (static before 6.7; auto-tuned in [high_min, high_max] from 6.7)
    "pcp_high_min",
    "pcp_high_max",
    "free_blk",      # of free - free_u - free_r: whole free MOVABLE pageblocks (order >= pageblock_order chunks)
    "free_r",        # of free: pages in RECLAIMABLE pageblocks (free_u: UNMOVABLE ones)
    "free_blk_u",    # of free_u: whole free UNMOVABLE pageblocks (memory.reclaim_reforms_pageblocks only)
    "blk_carry",     # pages of whole blocks split for the page cache not yet handed to an LRU bucket (sim/lru.py)
    "blk_merge",     # page-cache pages of such blocks freed by reclaim, short of a whole block yet (sim/lru.py)
    "blk_pend",      # page-cache pages of the block being filled, credited once it is whole (alloc.py _carried)
    "blk_claimed",   # whole free UNMOVABLE pageblocks MOVABLE requests claimed so far (workloads.py _whole_blocks_to)
    "free_seen",     # NR_FREE_PAGES as zone_page_state() reads it: free less the per-CPU diffs not folded (sim/vmstat.py)
    "stat_normal",   # calculate_normal_threshold() of the zone (sim/vmstat.py normal_threshold_of())
    "stat_t",        # the zone's stat threshold in force: stat_normal, or the pressure one while kswapd is awake (sim/vmstat.py)
)
_ZF = _index(ZF_NAMES)
ZF_FREE = _ZF["free"]
ZF_PCP = _ZF["pcp"]
ZF_CACHE = _ZF["cache"]
ZF_ANON = _ZF["anon"]
ZF_KERNEL = _ZF["kernel"]
ZF_NET = _ZF["net"]
ZF_BOOST_SNAP = _ZF["boost_snap"]
ZF_BOOSTED_FLAG = _ZF["boosted_flag"]
ZF_FREE_U = _ZF["free_u"]
ZF_PCP_U = _ZF["pcp_u"]
ZF_PCP_BATCH = _ZF["pcp_batch"]
ZF_PCP_HIGH = _ZF["pcp_high"]
ZF_PCP_HIGH_MIN = _ZF["pcp_high_min"]
ZF_PCP_HIGH_MAX = _ZF["pcp_high_max"]
ZF_FREE_BLK = _ZF["free_blk"]
ZF_FREE_R = _ZF["free_r"]
ZF_FREE_BLK_U = _ZF["free_blk_u"]
ZF_BLK_CARRY = _ZF["blk_carry"]
ZF_BLK_MERGE = _ZF["blk_merge"]
ZF_BLK_PEND = _ZF["blk_pend"]
ZF_BLK_CLAIMED = _ZF["blk_claimed"]
ZF_FREE_SEEN = _ZF["free_seen"]
ZF_STAT_NORMAL = _ZF["stat_normal"]
ZF_STAT_T = _ZF["stat_t"]
ZF_POOLS = (ZF_FREE, ZF_PCP, ZF_CACHE, ZF_ANON, ZF_KERNEL, ZF_NET)   # sum == managed
NZF = len(ZF_NAMES)

# ---- zonelists ---------------------------------------------------------------------------
ZL_NAMES = (
    "kernel",        # gfp_zone(GFP_KERNEL/GFP_ATOMIC) = ZONE_NORMAL: Normal, DMA32, DMA per node
    "user",          # GFP_HIGHUSER_MOVABLE = ZONE_MOVABLE: Movable first
)
ZL_KERNEL = ZL_NAMES.index("kernel")
ZL_USER = ZL_NAMES.index("user")
NZL = len(ZL_NAMES)
HZ_OF_ZL = (2, 3)    # highest_zoneidx of each zonelist (ZONE_NORMAL, ZONE_MOVABLE)

# ---- mi: machine integers -------------------------------------------------------------------
MI_NAMES = (
    *(s.name for s in SYSCTLS),   # each sysctl of kernel/sysctl.py SYSCTLS, by its name (sim/knobs.py KNOB_MI)
    "user_min_free_kbytes",
    "movable_clamped",   # the kernel version clamps ZONE_MOVABLE's min (kernel/watermarks.py)
    "terminated",        # deadlocked: the machine no longer advances
    "tuner",             # sim/tuners.py TUNERS id
    "nzl_kernel",        # populated zones in each zonelist, in ZL_NAMES order: MI_NZL_KERNEL + zl
    "nzl_user",
    "pcp_mode",          # kernel/pcp.py PCP_HIGH_*
    "pcp_cpus",          # CPUs per node (zone_highsize()'s divisor)
    "swap",              # anonymous memory is reclaimable
    "tick",              # ticks since reset
    "ring_n",            # tuner action records written since reset
    "nnodes",
    "nnic",
    "ntraffic",
    "nwork",
    "sum_min",           # sum of unboosted min watermarks (for min_reserve_mib_ms)
    "phase_off",         # phases' sysctl writes: (t_ms, knob, value) triples in trace[] from this offset
    "phase_n",
    "phase_next",        # next write to apply
    "pcp_decay_next",    # tick of the next once-a-second round: vmstat_update(), decay_pcp_high() (6.7+)
    "nofrag",            # alloc_flags_nofragment() applies to the kernel zonelist (Normal preferred, DMA32 exists)
    "dr_call_left",      # pages the machine's try_to_free_pages() call in flight has still to reclaim
    "cache_gfp",         # the page cache's gfp mask (memory.page_cache_gfp): its migratetype and zonelist
    "reform_blk",        # memory.reform_pageblocks: a workload's whole pageblocks come back whole when it frees them
    "reclaim_blk",       # memory.reclaim_reforms_pageblocks: the page cache's whole blocks come back whole when reclaimed
    "reclaim_whole",     # memory.reclaim_whole_share x 512: of each 512 such pages reclaim frees, those that count toward whole blocks
)
_MI = _index(MI_NAMES)
MI_MIN_FREE_KBYTES = _MI["min_free_kbytes"]
MI_USER_MIN_FREE_KBYTES = _MI["user_min_free_kbytes"]
MI_WSF = _MI["watermark_scale_factor"]
MI_WBF = _MI["watermark_boost_factor"]
MI_MOVABLE_CLAMPED = _MI["movable_clamped"]
MI_TERMINATED = _MI["terminated"]
MI_TUNER = _MI["tuner"]
MI_NZL_KERNEL = _MI["nzl_kernel"]
MI_NZL_USER = _MI["nzl_user"]
MI_PCP_MODE = _MI["pcp_mode"]
MI_PCP_CPUS = _MI["pcp_cpus"]
MI_SWAP = _MI["swap"]
MI_TICK = _MI["tick"]
MI_RING_N = _MI["ring_n"]
MI_NNODES = _MI["nnodes"]
MI_NNIC = _MI["nnic"]
MI_NTRAFFIC = _MI["ntraffic"]
MI_NWORK = _MI["nwork"]
MI_SUM_MIN = _MI["sum_min"]
MI_PHASE_OFF = _MI["phase_off"]
MI_PHASE_N = _MI["phase_n"]
MI_PHASE_NEXT = _MI["phase_next"]
MI_PCP_DECAY_NEXT = _MI["pcp_decay_next"]
MI_NOFRAG = _MI["nofrag"]
MI_DR_CALL_LEFT = _MI["dr_call_left"]
MI_CACHE_GFP = _MI["cache_gfp"]
MI_REFORM_BLK = _MI["reform_blk"]
MI_RECLAIM_BLK = _MI["reclaim_blk"]
MI_RECLAIM_WHOLE = _MI["reclaim_whole"]
NMI = len(MI_NAMES)
if (MI_NZL_KERNEL + ZL_KERNEL, MI_NZL_KERNEL + ZL_USER) != (MI_NZL_KERNEL, MI_NZL_USER):
    raise ValueError("MI_NAMES: the zonelist lengths must follow ZL_NAMES (alloc.py indexes MI_NZL_KERNEL + zl)")

# ---- mr: machine reals (float64: the clock and the kswapd / direct reclaim rates) ------------
MR_NAMES = (
    "t_ms",          # simulated time since reset
    "tick_ms",
    "ks_rate",       # kswapd reclaim pages/ms
    "ks_latency",    # kswapd wake latency, ms
    "dr_rate",       # direct reclaim pages/ms
    "ks_irq_share",  # share of a softirq's ticks that interrupt a running kswapd (cpu_share / cpus)
    "ks_irq_acc",    # its accumulator (a softirq burst lands on kswapd when it reaches 1)
)
_MR = _index(MR_NAMES)
MR_T_MS = _MR["t_ms"]
MR_TICK_MS = _MR["tick_ms"]
MR_KS_RATE = _MR["ks_rate"]
MR_KS_LATENCY = _MR["ks_latency"]
MR_DR_RATE = _MR["dr_rate"]
MR_KS_IRQ_SHARE = _MR["ks_irq_share"]
MR_KS_IRQ_ACC = _MR["ks_irq_acc"]
NMR = len(MR_NAMES)

# ---- nd: per-node kswapd state (float64) ----------------------------------------------------
KSWAPD_STATES = ("sleep", "waking", "run", "nap")
KS_SLEEP = KSWAPD_STATES.index("sleep")
KS_WAKING = KSWAPD_STATES.index("waking")
KS_RUN = KSWAPD_STATES.index("run")
KS_NAP = KSWAPD_STATES.index("nap")
ND_NAMES = (
    "state",         # KS_*
    "t",             # WAKING: time of the wakeup; NAP: end of the 100 ms nap
    "failures",      # pgdat->kswapd_failures
    "boost_left",    # nr_boost_reclaim
    "boosted",       # this balance_pgdat() run snapshotted a boost
    "reclaimed",     # sc.nr_reclaimed of this run
    "acc",           # fractional reclaim carried between ticks
    "hz",            # the highest zone index of kswapd's current (or last) balance_pgdat() run
    "hz_pend",       # pgdat->kswapd_highest_zoneidx: raised by wakeups, read at a run (MAX_NR_ZONES: none)
    "prio",          # balance_pgdat()'s sc.priority
    "pass_file",     # pages of the file LRU this pass still reclaims (-1: between passes)
    "pass_anon",     # pages of the anon LRU this pass still reclaims
    "pass_got",      # reclaimed in this pass
    "pass_enough",   # kswapd_shrink_node(): this pass scanned >= nr_to_reclaim
    "pass_boosted",  # the pass started with nr_boost_reclaim > 0
    "run_t0",        # start of this balance_pgdat() run, ms
    "stat_pressure", # the zones' vmstat thresholds are calculate_pressure_threshold()'s (kswapd ran since its last full sleep)
)
_ND = _index(ND_NAMES)
ND_STATE = _ND["state"]
ND_STAT_PRESSURE = _ND["stat_pressure"]
ND_T = _ND["t"]
ND_FAILURES = _ND["failures"]
ND_BOOST_LEFT = _ND["boost_left"]
ND_BOOSTED = _ND["boosted"]
ND_RECLAIMED = _ND["reclaimed"]
ND_ACC = _ND["acc"]
ND_HZ = _ND["hz"]
ND_HZ_PEND = _ND["hz_pend"]
ND_PRIO = _ND["prio"]
ND_PASS_FILE = _ND["pass_file"]
ND_PASS_ANON = _ND["pass_anon"]
ND_PASS_GOT = _ND["pass_got"]
ND_PASS_ENOUGH = _ND["pass_enough"]
ND_PASS_BOOSTED = _ND["pass_boosted"]
ND_RUN_T0 = _ND["run_t0"]
NND = len(ND_NAMES)

# ---- lru / lrp: each node's file LRU in age buckets (sim/lru.py) ---------------------------------
LRU_BUCKETS = 64       # ring of age buckets per node; a bucket holds about LP_QUANTUM pages
LRU_TOTAL = MAX_NR_ZONES   # lru[b, node, bucket, :]: page cache pages per zone type, then the bucket's total,
LRU_BLK = MAX_NR_ZONES + 1   # then per zone type the bucket's pages that filled whole pageblocks (sim/lru.py)
LRU_W = 2 * MAX_NR_ZONES + 1
LP_NAMES = (
    "tail",          # the oldest bucket (isolate_lru_folios() scans from the tail)
    "len",           # buckets in use: tail .. tail + len - 1 (the head, newest), modulo LRU_BUCKETS
    "quantum",       # pages a bucket takes before the next one opens
)
_LP = _index(LP_NAMES)
LP_TAIL = _LP["tail"]
LP_LEN = _LP["len"]
LP_QUANTUM = _LP["quantum"]
NLP = len(LP_NAMES)

# ---- NIC driver models ---------------------------------------------------------------------
DRIVERS = ("page_pool", "dev_alloc_pages", "virtio_net")
DRV_DEV_ALLOC = DRIVERS.index("dev_alloc_pages")
DRV_VIRTIO = DRIVERS.index("virtio_net")

# ---- ni: per-NIC integers (buffers/packets) ----------------------------------------------------
NI_NAMES = (
    "posted",        # buffers posted in the rings (all queues)
    "posted_pfm",    # of which carved from pfmemalloc pages
    "pending",       # packets received, waiting for NAPI
    "pending_pfm",   # of which landed in pfmemalloc buffers
    "sock",          # packets queued in sockets
    "frag",          # buffers left in the current (partly used) page frag
    "pages",         # pages held by the NIC (all zones)
    "bufs",          # buffers held: posted + pending + queued
    "repoll",        # last refill fell short: NAPI keeps polling
    "pool",          # pages idle in the driver's recycle pool (page_pool cache + ring, or reuse), in "pages" too
)
_NI = _index(NI_NAMES)
NI_POSTED = _NI["posted"]
NI_POSTED_PFM = _NI["posted_pfm"]
NI_PENDING = _NI["pending"]
NI_PENDING_PFM = _NI["pending_pfm"]
NI_SOCK = _NI["sock"]
NI_FRAG = _NI["frag"]
NI_PAGES = _NI["pages"]
NI_BUFS = _NI["bufs"]
NI_REPOLL = _NI["repoll"]
NI_POOL = _NI["pool"]
NNI = len(NI_NAMES)

# ---- nf: per-NIC parameters and float state ------------------------------------------------------
NP_NAMES = (
    "driver",          # DRIVERS index
    "ring",            # queues * ring_size buffers
    "bpp",             # buffers per packet (ceil(min(pkt, mtu) / buffer_bytes))
    "buf_per_page",    # 4096 // buffer_bytes (page_pool frags), >= 1
    "pages_per_buf",   # ceil(buffer_bytes / 4096), >= 1
    "napi_per_tick",   # queues * budget * polls per tick
    "sock_cap",        # packets the sockets can queue (queues * rcvbuf / truesize)
    "drain_per_ms",    # app drain, packets/ms
    "drain_acc",
    "napi_acc",
    "virtio_due",      # refill_work due time, ms (-1: not scheduled)
    "sock_memalloc",
    "queues",
    "napi_budget",
    "line_ppms",       # line-rate cap, packets/ms
    "arr_acc",         # packets arriving this tick (all traffic sources of the NIC)
    "pool_cap",        # pages the recycle pool holds at most (0: no recycling)
)
_NP = _index(NP_NAMES)
NP_DRIVER = _NP["driver"]
NP_RING = _NP["ring"]
NP_BPP = _NP["bpp"]
NP_BUF_PER_PAGE = _NP["buf_per_page"]
NP_PAGES_PER_BUF = _NP["pages_per_buf"]
NP_NAPI_PER_TICK = _NP["napi_per_tick"]
NP_SOCK_CAP = _NP["sock_cap"]
NP_DRAIN_PER_MS = _NP["drain_per_ms"]
NP_DRAIN_ACC = _NP["drain_acc"]
NP_NAPI_ACC = _NP["napi_acc"]
NP_VIRTIO_DUE = _NP["virtio_due"]
NP_SOCK_MEMALLOC = _NP["sock_memalloc"]
NP_QUEUES = _NP["queues"]
NP_NAPI_BUDGET = _NP["napi_budget"]
NP_LINE_PPMS = _NP["line_ppms"]
NP_ARR_ACC = _NP["arr_acc"]
NP_POOL_CAP = _NP["pool_cap"]
NNP = len(NP_NAMES)

# ---- tp: traffic generators (params, then state S_*) ------------------------------------------
TK_NONE = -1
TRAFFIC_KINDS = ("poisson", "mmpp", "incast", "diurnal", "replay")
TK_POISSON = TRAFFIC_KINDS.index("poisson")
TK_MMPP = TRAFFIC_KINDS.index("mmpp")
TK_INCAST = TRAFFIC_KINDS.index("incast")
TK_DIURNAL = TRAFFIC_KINDS.index("diurnal")
TK_REPLAY = TRAFFIC_KINDS.index("replay")
TP_NAMES = (
    "kind",            # TRAFFIC_KINDS index (TK_NONE: unused row)
    "nic",
    "rate",            # packets/ms
    "burst",           # packets/ms (mmpp on; incast during burst)
    "mean_on",
    "mean_off",
    "period",
    "burst_ms",
    "jitter",
    "ampl",
    "start",           # ms
    "stop",            # ms (inf if none)
    "trace_off",       # offset in trace[]
    "trace_n",
    "trace_int",       # ms per trace row
    "s_on",            # mmpp: 1.0 while on
    "s_burst_start",   # incast: start of the current burst, ms
    "s_next",          # next state switch / burst start, ms
    "s_end",           # incast: current burst end, ms
    "s_acc",           # fractional packets carried
)
_TP = _index(TP_NAMES)
TP_KIND = _TP["kind"]
TP_NIC = _TP["nic"]
TP_RATE = _TP["rate"]
TP_BURST = _TP["burst"]
TP_MEAN_ON = _TP["mean_on"]
TP_MEAN_OFF = _TP["mean_off"]
TP_PERIOD = _TP["period"]
TP_BURST_MS = _TP["burst_ms"]
TP_JITTER = _TP["jitter"]
TP_AMPL = _TP["ampl"]
TP_START = _TP["start"]
TP_STOP = _TP["stop"]
TP_TRACE_OFF = _TP["trace_off"]
TP_TRACE_N = _TP["trace_n"]
TP_TRACE_INT = _TP["trace_int"]
TP_S_ON = _TP["s_on"]
TP_S_BURST_START = _TP["s_burst_start"]
TP_S_NEXT = _TP["s_next"]
TP_S_END = _TP["s_end"]
TP_S_ACC = _TP["s_acc"]
NTP = len(TP_NAMES)

# ---- wp: memory workloads (params, then state S_*) ------------------------------------------
WK_NONE = -1
WORKLOAD_KINDS = ("stream_read", "anon_hog", "churn", "atomic_alloc")
WK_STREAM = WORKLOAD_KINDS.index("stream_read")
WK_ANON_HOG = WORKLOAD_KINDS.index("anon_hog")
WK_CHURN = WORKLOAD_KINDS.index("churn")
WK_ATOMIC = WORKLOAD_KINDS.index("atomic_alloc")
ATOMIC_SLOTS = 64      # atomic_alloc: bursts held at once, each (release time, pages); a scenario that could
                       # hold more is refused at load (scenario.atomic_bursts_held())
WP_NAMES = (
    "kind",            # WORKLOAD_KINDS index (WK_NONE: unused row)
    "rate",            # pages/ms
    "ws",              # stream_read working set, pages
    "peak",            # anon_hog peak, pages; atomic_alloc: pages per burst
    "hold",            # ms
    "period",          # ms (0 = once)
    "start",           # ms
    "s_resident",      # stream_read: pages of the working set in the page cache
    "s_ever",          # stream_read: pages of the working set read at least once
    "s_held",          # anon pages held (anon_hog, churn)
    "s_phase",         # anon_hog: 0 wait, 1 grow, 2 hold, 3 exited
    "s_t",             # anon_hog: time the phase started / churn: pages allocated last tick
    "s_acc",           # fractional pages carried
    "s_deficit",       # pages a blocked task still wants (direct reclaim carries over)
    "s_run_start",     # anon_hog: start of the current incarnation, ms
    "stop",            # ms (inf: never)
    "volume",          # stream_read: pages to read once (0: loop over the working set)
    "s_read",          # stream_read with a volume: pages read so far
    "s_miss_acc",      # stream_read: remainder of rate * nonresident carried (misses = (r*nonres + acc) // ws)
    "gfp",             # atomic_alloc: gfp mask
    "shot_off",        # atomic_alloc: shots as (at_ms, pages, hold_ms) triples in trace[] from this offset
    "shot_n",
    "s_shot_next",     # next shot to fire
    "s_next",          # atomic_alloc: next periodic burst, ms
    "s_stopped",       # the workload's stop time has passed (its exit was handled)
    "s_next_rel",      # atomic_alloc: the earliest release time of a held burst (slots are scanned from it)
    "s_kmem",          # kernel pages of the workload's own structures: a reader's page-cache xarray, page tables
    "sequential",      # stream_read: 1 = a sequential loop over the working set, 0 = random reads
    "chunk",           # stream_read, anon_hog, churn: pages per allocation chunk (0: each tick's pages)
    "slot_t",          # atomic_alloc: ATOMIC_SLOTS (release time, pages) pairs from here (last)
)
_WP = _index(WP_NAMES)
WP_KIND = _WP["kind"]
WP_RATE = _WP["rate"]
WP_WS = _WP["ws"]
WP_PEAK = _WP["peak"]
WP_HOLD = _WP["hold"]
WP_PERIOD = _WP["period"]
WP_START = _WP["start"]
WP_S_RESIDENT = _WP["s_resident"]
WP_S_EVER = _WP["s_ever"]
WP_S_HELD = _WP["s_held"]
WP_S_PHASE = _WP["s_phase"]
WP_S_T = _WP["s_t"]
WP_S_ACC = _WP["s_acc"]
WP_S_DEFICIT = _WP["s_deficit"]
WP_S_RUN_START = _WP["s_run_start"]
WP_STOP = _WP["stop"]
WP_VOLUME = _WP["volume"]
WP_S_READ = _WP["s_read"]
WP_S_MISS_ACC = _WP["s_miss_acc"]
WP_GFP = _WP["gfp"]
WP_SHOT_OFF = _WP["shot_off"]
WP_SHOT_N = _WP["shot_n"]
WP_S_SHOT_NEXT = _WP["s_shot_next"]
WP_S_NEXT = _WP["s_next"]
WP_S_STOPPED = _WP["s_stopped"]
WP_S_NEXT_REL = _WP["s_next_rel"]
WP_S_KMEM = _WP["s_kmem"]
WP_SEQUENTIAL = _WP["sequential"]
WP_CHUNK = _WP["chunk"]
WP_SLOT_T = _WP["slot_t"]
NWP = WP_SLOT_T + 2 * ATOMIC_SLOTS

# ---- counters ---------------------------------------------------------------------------
_ZT = tuple(n.lower() for n in ZONE_NAMES)   # dma dma32 normal movable device
_FIXED = (
    "pgscan_kswapd", "pgsteal_kswapd", "pgscan_direct", "pgsteal_direct", "pageoutrun",
    "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "kswapd_wakeups", "oom_kill",
    "rx_packets", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "rx_delivered",
    "atomic_fail", "fail_atomic", "fail_kernel", "fail_nowait", "fail_memalloc",
    "atomic_alloc_pages", "pfmemalloc_pages", "refill_deferred", "refill_work_runs",
    "direct_reclaim_stall_us", "throttle_stall_us", "refaults", "reserved_mib_ms", "min_reserve_mib_ms", "min_free_seen",
    "knob_writes", "boost_actions", "tuner_actions", "workload_deficit_pages",
    "kswapd_passes", "kswapd_run_ms", "kswapd_longest_run_ms", "fallbacks", "fallback_boosts",
    "atomic_req_pages", "atomic_got_pages", "atomic_fail_pages", "atomic_fail_bursts",
    "rx_pages_recycled",
)
COUNTER_NAMES: tuple[str, ...] = (
    _FIXED
    + tuple(f"pgalloc_{z}" for z in _ZT)
    + tuple(f"allocstall_{z}" for z in _ZT)
    + tuple(f"atomic_fail_{z}" for z in _ZT)
    + tuple(f"atomic_fail_free_{z}" for z in _ZT)
)
NC = len(COUNTER_NAMES)
_IDX = _index(COUNTER_NAMES)
C_PGSCAN_KSWAPD = _IDX["pgscan_kswapd"]
C_PGSTEAL_KSWAPD = _IDX["pgsteal_kswapd"]
C_PGSCAN_DIRECT = _IDX["pgscan_direct"]
C_PGSTEAL_DIRECT = _IDX["pgsteal_direct"]
C_PAGEOUTRUN = _IDX["pageoutrun"]
C_LOW_HIT = _IDX["kswapd_low_wmark_hit_quickly"]
C_HIGH_HIT = _IDX["kswapd_high_wmark_hit_quickly"]
C_KSWAPD_WAKEUPS = _IDX["kswapd_wakeups"]
C_OOM_KILL = _IDX["oom_kill"]
C_RX_PACKETS = _IDX["rx_packets"]
C_RX_MISSED = _IDX["rx_missed"]
C_RCVBUF_DROP = _IDX["rcvbuf_drop"]
C_PFMEMALLOC_DROP = _IDX["pfmemalloc_drop"]
C_RX_DELIVERED = _IDX["rx_delivered"]
C_ATOMIC_FAIL = _IDX["atomic_fail"]
C_FAIL_ATOMIC = _IDX["fail_atomic"]
C_FAIL_KERNEL = _IDX["fail_kernel"]
C_FAIL_NOWAIT = _IDX["fail_nowait"]
C_FAIL_MEMALLOC = _IDX["fail_memalloc"]
C_ATOMIC_ALLOC = _IDX["atomic_alloc_pages"]
C_PFMEMALLOC_PAGES = _IDX["pfmemalloc_pages"]
C_REFILL_DEFERRED = _IDX["refill_deferred"]
C_REFILL_WORK_RUNS = _IDX["refill_work_runs"]
C_RX_RECYCLED = _IDX["rx_pages_recycled"]   # RX refill pages taken from the driver's recycle pool
C_STALL_US = _IDX["direct_reclaim_stall_us"]
C_THROTTLE_US = _IDX["throttle_stall_us"]
C_REFAULTS = _IDX["refaults"]
C_RESERVED_MIB_MS = _IDX["reserved_mib_ms"]      # sum over zones of (high + boost) x time
C_MIN_RESERVE_MIB_MS = _IDX["min_reserve_mib_ms"]   # sum over zones of min x time
C_MIN_FREE_SEEN = _IDX["min_free_seen"]
C_KNOB_WRITES = _IDX["knob_writes"]
C_BOOST_ACTIONS = _IDX["boost_actions"]   # userspace boost requests (apply_knobs), not the tuners' boosts
C_TUNER_ACTIONS = _IDX["tuner_actions"]
C_DEFICIT = _IDX["workload_deficit_pages"]
C_KSWAPD_PASSES = _IDX["kswapd_passes"]          # balance_pgdat() priority-loop passes
C_KSWAPD_RUN_MS = _IDX["kswapd_run_ms"]          # time spent in balance_pgdat() runs
C_KSWAPD_LONGEST = _IDX["kswapd_longest_run_ms"]
C_FALLBACKS = _IDX["fallbacks"]                  # __rmqueue_fallback() events (another type's pageblock)
C_FALLBACK_BOOSTS = _IDX["fallback_boosts"]      # of which boost_watermark() raised the boost
C_ATOMIC_REQ = _IDX["atomic_req_pages"]          # atomic_alloc workloads: pages requested
C_ATOMIC_GOT = _IDX["atomic_got_pages"]
C_ATOMIC_FAIL_PAGES = _IDX["atomic_fail_pages"]
C_ATOMIC_FAIL_BURSTS = _IDX["atomic_fail_bursts"]
C_ATOMIC_FAIL_FREE0 = _IDX["atomic_fail_free_dma"]   # + zone type: buddy free at the latest burst's first failure
C_PGALLOC0 = _IDX["pgalloc_dma"]           # + zone type
C_ALLOCSTALL0 = _IDX["allocstall_dma"]     # + zone type
C_ATOMIC_FAIL_Z0 = _IDX["atomic_fail_dma"]  # + zone type


# allocation classes (fail_* counters, tuner events)
CLASS_NAMES = ("atomic", "kernel", "nowait", "memalloc")
CLS_ATOMIC = CLASS_NAMES.index("atomic")
CLS_KERNEL = CLASS_NAMES.index("kernel")
CLS_NOWAIT = CLASS_NAMES.index("nowait")
CLS_MEMALLOC = CLASS_NAMES.index("memalloc")

TUNER_RING = 32        # tuner action records kept per machine
RING_FIELDS = ("t_ms", "reason", "zone", "value")
RNG_WORDS = 4          # xoshiro256** state words


# ---- the state arrays ------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One state array: numpy dtype, shape (a dimension name from :data:`DIMS` or an int per
    axis; the first is always ``B``) and what it holds."""
    name: str
    dtype: str
    shape: tuple[str | int, ...]
    doc: str


DIMS: dict[str, str] = {
    "B": "machines in the batch",
    "Z": "zones: nodes x MAX_NR_ZONES",
    "N": "NUMA nodes",
    "NN": "NICs (at least 1)",
    "NT": "traffic sources (at least 1)",
    "NW": "memory workloads (at least 1)",
    "TL": "length of the concatenated trace (at least 1)",
    "NTS": "tuner state row (sim/tuners.py)",
    "NTPAR": "tuner params row (sim/tuners.py)",
}

STATE: tuple[Field, ...] = (
    Field("managed", "i8", ("B", "Z"), "managed pages per zone (static)"),
    Field("wmark", "i8", ("B", "Z", NR_WMARK), "unboosted _watermark[MIN, LOW, HIGH, PROMO]"),
    Field("boost", "i8", ("B", "Z"), "watermark_boost"),
    Field("reserve", "i8", ("B", "Z", MAX_NR_ZONES), 'lowmem_reserve[j] ("protection")'),
    Field("zs", "i8", ("B", "Z", NZF), "dynamic zone state, ZF_*"),
    Field("zl", "i8", ("B", NZL, "Z"), "compact zonelists (populated zones only), ZL_*"),
    Field("mi", "i8", ("B", NMI), "machine integers, MI_*"),
    Field("mr", "f8", ("B", NMR), "machine reals (clock, rates), MR_*"),
    Field("nd", "f8", ("B", "N", NND), "per-node kswapd state, ND_*"),
    Field("lru", "i8", ("B", "N", LRU_BUCKETS, LRU_W), "each node's file LRU in age buckets: pages per zone type, total, "
          "pages per zone type that filled whole pageblocks"),
    Field("lrp", "i8", ("B", "N", NLP), "each node's LRU ring: LP_*"),
    Field("ni", "i8", ("B", "NN", NNI), "per-NIC integer state, NI_*"),
    Field("nf", "f8", ("B", "NN", NNP), "per-NIC parameters and accumulators, NP_*"),
    Field("nz", "i8", ("B", "NN", "Z"), "pages held by each NIC, per zone"),
    Field("tp", "f8", ("B", "NT", NTP), "traffic generator params + state, TP_*"),
    Field("wp", "f8", ("B", "NW", NWP), "memory workload params + state, WP_*"),
    Field("wz", "i8", ("B", "NW", "Z"), "anonymous pages held by each workload, per zone"),
    Field("wb", "i8", ("B", "NW", "Z"), "whole free MOVABLE pageblocks each workload's anonymous memory split, per zone"),
    Field("wk", "i8", ("B", "NW", "Z"), "kernel pages (page tables, xarray slabs) of each workload, per zone"),
    Field("trace", "f8", ("B", "TL"), "replay traces (packets per interval), phases' writes, atomic shots"),
    Field("rng", "u8", ("B", RNG_WORDS), "xoshiro256** state (sim/rng.py)"),
    Field("ctr", "f8", ("B", NC), "counters, C_* (names in COUNTER_NAMES)"),
    Field("ts", "f8", ("B", "NTS"), "tuner state (sim/tuners.py)"),
    Field("tpar", "f8", ("B", "NTPAR"), "tuner params (sim/tuners.py)"),
    Field("ring", "f8", ("B", TUNER_RING, len(RING_FIELDS)), "tuner action records, RING_FIELDS"),
    Field("ztype", "i8", ("B", "Z"), "zone type of each zone (z % MAX_NR_ZONES; static)"),
    Field("scr", "i8", ("B", "Z"), "scratch: pages obtained per zone by the last bulk allocation"),
)
"""The state, declared once. Adding a state array is one line here: it is allocated
(:func:`allocate`), zeroed at construction, becomes ``Simulator._<name>`` and the field ``S.<name>``
of compiled code (:class:`SimState`, engine.make_state()) and is copied by snapshot()/restore().
Give it a value at reset in the encoder of its concept (sim/encode.py) if zero is not its start.
Adding a field to a record (``zs``, ``mi``, ...): one name in its ``*_NAMES`` tuple (plus an
``XX_*`` constant if code addresses it by name)."""
STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in STATE)
STATE_INDEX: dict[str, int] = _index(STATE_FIELDS)


def shape_of(field: Field, dims: Mapping[str, int]) -> tuple[int, ...]:
    """The field's shape with its dimension names resolved."""
    return tuple(dims[d] if isinstance(d, str) else int(d) for d in field.shape)


def allocate(dims: Mapping[str, int]) -> tuple[np.ndarray, ...]:
    """Zeroed state arrays, one per :data:`STATE` field in that order, for the sizes ``dims``
    (every name of :data:`DIMS`)."""
    missing = sorted(set(DIMS) - set(dims))
    if missing:
        raise ValueError(f"allocate(): missing dimensions {missing}; need {', '.join(DIMS)}")
    return tuple(np.zeros(shape_of(f, dims), np.dtype(f.dtype)) for f in STATE)


# per STATE field, each axis's size when the layout fixes it (0: a dimension of DIMS, set per batch)
CONST_DIMS: tuple[tuple[int, ...], ...] = tuple(tuple(0 if isinstance(d, str) else int(d) for d in f.shape)
                                                for f in STATE)


class Arrays:
    """The state arrays by name (attributes: STATE_FIELDS), over a tuple in STATE order: the
    Python side's ``A.zs`` for compiled code's ``S.zs``."""
    __slots__ = STATE_FIELDS

    def __init__(self, arrays: tuple[np.ndarray, ...]) -> None:
        if len(arrays) != len(STATE):
            raise ValueError(f"Arrays(): {len(arrays)} arrays for {len(STATE)} state fields")
        for name, arr in zip(STATE_FIELDS, arrays):
            setattr(self, name, arr)


# ---- the state as one numba structref: passing it to a compiled function costs one pointer
# (a tuple of the state arrays is flattened into ~10 scalar arguments per array per non-inlined call)


class UArray(_types.Array):
    """The type of SimState's fields: a numpy array whose buffer compiled code does not own
    (engine.make_state() wraps Simulator.state's arrays without their NRT meminfo). Its data
    model reports no meminfo, so reading ``S.zs`` emits no NRT_incref/NRT_decref calls (they
    were ~11 % of a tick). Indexing and attributes are those of types.Array; a sub-array view
    (``S.wmark[b]``) is a plain Array. No implicit conversion to or from Array: a function given
    ``S.zs`` is compiled for UArray. Never return one to Python (it owns nothing). ``fixed``: each
    axis's size where the layout fixes it (CONST_DIMS; 0 where it is a dimension of the batch), so
    that an element's address is computed with those sizes as constants (_full_ptr())."""

    def __init__(self, dtype, ndim: int, layout: str, fixed: tuple = ()) -> None:
        self.fixed = tuple(fixed) if fixed else (0,) * ndim
        super().__init__(dtype, ndim, layout)
        self.name = f"uarray({dtype}, {ndim}d, {layout}, {self.fixed})"

    @property
    def key(self):
        return ("unmanaged", self.fixed) + super().key

    def can_convert_to(self, typingctx, other):
        return None

    def unify(self, typingctx, other):
        return self if other == self else None


@_register_model(UArray)
class _UArrayModel(_ArrayModel):
    """ArrayModel minus reference counting: NRT finds meminfos by traversing a model's members
    (an array's first member is its meminfo), so the traversal is empty."""

    def has_nrt_meminfo(self) -> bool:
        return False

    def traverse(self, builder):
        return []


# Indexing a state array (``S.zs[b, z, ZF_FREE]``): numba normalises every signed integer index
# for Python's negative indexing (arrayobj.fix_integer_index() -> slicing.fix_index(): a compare
# and an add per index of every access, 16 % of a headline tick's instructions). No index into the
# state is negative (machines, zones, nodes, fields, slots), so UArray takes its variable signed
# indices as unsigned, numba's own path for unsigned indices (no normalisation); a literal index
# is left as it is. ATOMGYM_CHECK_INDEX=1 (kernel/jit.py) compiles a check instead that raises
# IndexError on a negative one, and on a full index (one per axis) out of its axis's bounds
# (tests/test_sim_index.py; docs/simulator.md, "Speed").


def _unsigned(context, builder, tys, vals):
    """The index types and values with every variable signed integer as uintp."""
    out_t, out_v = [], []
    for t, v in zip(tys, vals):
        if isinstance(t, _types.Integer) and t.signed and not isinstance(t, _types.Literal):
            if _CHECK_INDEX:
                with builder.if_then(builder.icmp_signed("<", v, v.type(0)), likely=False):
                    context.call_conv.return_user_exc(builder, IndexError,
                                                      ("negative index into a simulator state array",))
            out_v.append(context.cast(builder, v, t, _types.uintp))
            out_t.append(_types.uintp)
        else:
            out_v.append(v)
            out_t.append(t)
    return out_t, out_v


def _index_tuple(context, builder, idxty, idx):
    """An index (an integer or a tuple of them) with its signed integers unsigned (_unsigned())."""
    if isinstance(idxty, _types.BaseTuple):
        tys, vals = _unsigned(context, builder, idxty.types, _cgutils.unpack_tuple(builder, idx, len(idxty)))
        newty = _types.BaseTuple.from_types(tys)
        return newty, context.make_tuple(builder, newty, vals)
    if isinstance(idxty, _types.Integer):
        (newty,), (new,) = _unsigned(context, builder, [idxty], [idx])
        return newty, new
    return idxty, idx


@_lower_builtin(_operator.getitem, UArray, _types.Integer)
def _uarray_getitem_int(context, builder, sig, args):
    ty, idx = _index_tuple(context, builder, sig.args[1], args[1])
    return _arrayobj.getitem_arraynd_intp(context, builder, _signature(sig.return_type, sig.args[0], ty),
                                          (args[0], idx))


def _full_ptr(context, builder, aryty, ary, idxty, idx):
    """The element pointer of a full integer index (one per axis) of a C-contiguous UArray, in row-major
    order with the axes' sizes as constants where the layout fixes them (UArray.fixed: no load of
    the shape, a multiply by a constant), else read from the array; None for any other index (numba's
    own indexing serves it). With ATOMGYM_CHECK_INDEX=1 every index is checked against its axis and
    every fixed size against the array's own: IndexError."""
    if not isinstance(idxty, _types.BaseTuple) or len(idxty) != aryty.ndim or aryty.layout != "C":
        return None
    if not all(isinstance(t, _types.Integer) for t in idxty.types):
        return None
    vals = _cgutils.unpack_tuple(builder, idx, len(idxty))
    a = context.make_array(aryty)(context, builder, ary)
    shapes = _cgutils.unpack_tuple(builder, a.shape, aryty.ndim)
    intp = context.get_value_type(_types.intp)
    off = None
    for d, (t, v) in enumerate(zip(idxty.types, vals)):
        v = context.cast(builder, v, t, _types.uintp)
        if _CHECK_INDEX:      # each index within its axis, each constant axis the array's own size
            bad = builder.icmp_unsigned(">=", v, shapes[d])
            if aryty.fixed[d]:
                bad = builder.or_(bad, builder.icmp_unsigned("!=", shapes[d], intp(aryty.fixed[d])))
            with builder.if_then(bad, likely=False):
                context.call_conv.return_user_exc(builder, IndexError,
                                                  ("index out of bounds of a simulator state array",))
        if off is None:
            off = v
        else:
            n = intp(aryty.fixed[d]) if aryty.fixed[d] else shapes[d]
            off = builder.add(builder.mul(off, n), v)
    return _cgutils.gep(builder, a.data, off, inbounds=True)


@_lower_builtin(_operator.getitem, UArray, _types.BaseTuple)
def _uarray_getitem_tuple(context, builder, sig, args):
    ty, idx = _index_tuple(context, builder, sig.args[1], args[1])
    ptr = _full_ptr(context, builder, sig.args[0], args[0], ty, idx)
    if ptr is not None:
        return _arrayobj.load_item(context, builder, sig.args[0], ptr)
    return _arrayobj.getitem_array_tuple(context, builder, _signature(sig.return_type, sig.args[0], ty),
                                         (args[0], idx))


@_lower_builtin(_operator.setitem, UArray, _types.Any, _types.Any)
def _uarray_setitem(context, builder, sig, args):
    aryty, idxty, valty = sig.args
    ty, idx = _index_tuple(context, builder, idxty, args[1])
    if not isinstance(valty, _types.Array):
        ptr = _full_ptr(context, builder, aryty, args[0], ty, idx)
        if ptr is not None:
            _arrayobj.store_item(context, builder, aryty, context.cast(builder, args[2], valty, aryty.dtype), ptr)
            return context.get_dummy_value()
    return _arrayobj.setitem_array(context, builder, _signature(sig.return_type, aryty, ty, valty),
                                   (args[0], idx, args[2]))


@_structref.register
class SimStateType(_types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((n, _types.unliteral(t)) for n, t in fields)


class _SimStateModel(_models.StructRefModel):
    """SimState's data model without reference counting: passing ``S`` to a compiled function
    or reading a field emits no NRT_incref/NRT_decref (they were ~10 % of a tick: every call
    increfs and decrefs the structref's meminfo). The owner frees it explicitly:
    engine.make_state() is paired with engine.free_state(). Build and use it in compiled code
    only: a SimState returned to Python would never be freed."""

    def has_nrt_meminfo(self) -> bool:
        return False

    def traverse(self, builder):
        return []


_register_model(SimStateType)(_SimStateModel)


class SimState(_structref.StructRefProxy):
    """The state arrays of a batch (fields: STATE_FIELDS), usable inside compiled code."""


_structref.define_proxy(SimState, SimStateType, list(STATE_FIELDS))


# Reading a field of SimState (``S.zs``) loads the array's descriptor (data pointer, shape) from the
# structref's payload. Numba's own getattr emits ordinary loads, and since any store into a state
# array may alias the payload as far as LLVM knows, each read after a store loads the descriptor
# again. The payload is written once, by the constructor in engine.make_state() (which LLVM never
# inlines: kernel/jit.py marks it noinline), and never after, so its loads carry
# ``!invariant.load``: LLVM keeps a descriptor in registers across the stores.
from numba.core.imputils import lower_getattr_generic as _lower_getattr_generic  # noqa: E402
from numba.core.runtime.nrtdynmod import _meminfo_struct_type  # noqa: E402


def _invariant(builder, instr):
    instr.set_metadata("invariant.load", builder.module.add_metadata([]))
    return instr


@_lower_getattr_generic(SimStateType)     # registered after structref's own: this one is used
def _simstate_getattr(context, builder, typ, val, attr):
    ref = _cgutils.create_struct_proxy(typ)(context, builder, value=val)
    mi = builder.bitcast(ref.meminfo, _meminfo_struct_type.as_pointer())
    data = _invariant(builder, builder.load(_cgutils.gep(builder, mi, 0, 3, inbounds=True)))
    valtype = typ.get_data_type()       # the payload, kept in its value representation (structref)
    ptr = builder.bitcast(data, context.data_model_manager[valtype].get_value_type().as_pointer())
    idx = context.data_model_manager[valtype].get_field_position(attr)
    return _invariant(builder, builder.load(_cgutils.gep(builder, ptr, 0, idx, inbounds=True)))
