"""Memory layout of the batched simulator state: field indices as module constants.

Every array has a leading batch axis ``B``. The kernel model's own arrays are kept in the
shapes the kernel functions take (one machine = one row), so the compiled loop passes
``managed[b]``, ``wmark[b]``, ``boost[b]`` straight to kernel/watermarks.py & co.

Compiled functions take ``S``, a :class:`SimState` structref whose fields are these arrays
(``S.zs``, ``S.mi``, ...), and the machine index ``b``.

=================  =============  =====================================================
array              dtype / shape  contents
=================  =============  =====================================================
``managed``        i8 (B, Z)      managed pages per zone (static)
``wmark``          i8 (B, Z, 4)   unboosted _watermark[MIN, LOW, HIGH, PROMO]
``boost``          i8 (B, Z)      watermark_boost
``reserve``        i8 (B, Z, 5)   lowmem_reserve[j] ("protection")
``zs``             i8 (B, Z, NZF) dynamic zone state, ``ZF_*``
``zl``             i8 (B, 2, ZL)  compact zonelists (populated zones only), ``ZL_KERNEL``/``ZL_USER``
``mi``             i8 (B, NMI)    machine integers, ``MI_*``
``mf``             f8 (B, NMF)    machine floats, ``MF_*``
``nd``             f8 (B, N, NNF) per-node kswapd state, ``ND_*``
``ni``             i8 (B, NN, NNI) per-NIC integer state, ``NI_*``
``nf``             f8 (B, NN, NNP) per-NIC parameters and accumulators, ``NP_*``
``nz``             i8 (B, NN, Z)  pages held by each NIC, per zone
``tp``             f8 (B, NT, NTP) traffic generator params + state, ``TP_*``
``wp``             f8 (B, NW, NWP) memory workload params + state, ``WP_*``
``wz``             i8 (B, NW, Z)  anonymous pages held by each workload, per zone
``trace``          f8 (B, TL)     replay traces (packets per interval), concatenated
``rng``            u8 (B, 4)      xoshiro256** state (sim/rng.py)
``ctr``            f8 (B, NC)     counters, ``C_*`` (names in COUNTER_NAMES)
``ts``/``tpar``    f8 (B, TS/TP)  tuner state / params (sim/tuners.py)
``ring``           f8 (B, RING, 4) tuner action records (t_ms, reason, zone, value)
=================  =============  =====================================================

Conservation (checked by tests): for every zone
``managed == FREE + PCP + CACHE + ANON + KERNEL + NET``.
"""
from __future__ import annotations

from ..kernel.zones import MAX_NR_ZONES, ZONE_NAMES

# ---- zs: dynamic per-zone state (pages) -------------------------------------------
ZF_FREE = 0          # buddy free pages = NR_FREE_PAGES (what every watermark check sees)
ZF_PCP = 1           # pages on the zone's per-CPU lists (free, but not in NR_FREE_PAGES)
ZF_CACHE = 2         # page cache (file LRU; reclaimable)
ZF_ANON = 3          # anonymous memory (reclaimable only with swap)
ZF_KERNEL = 4        # other kernel memory (slab etc.; unreclaimable)
ZF_NET = 5           # network buffers (posted in RX rings, queued in sockets)
ZF_BOOST_SNAP = 6    # balance_pgdat()'s zone_boosts[] snapshot
ZF_BOOSTED_FLAG = 7  # ZONE_BOOSTED_WATERMARK bit
ZF_FREE_U = 8        # of ZF_FREE: free pages in UNMOVABLE/RECLAIMABLE pageblocks (the rest are MOVABLE)
ZF_PCP_U = 9         # of ZF_PCP: pages on the UNMOVABLE pcp list (the rest are on the MOVABLE list)
ZF_PCP_BATCH = 10    # pcp->batch (zone_batchsize())
ZF_PCP_HIGH = 11     # pcp->high now (static before 6.7; auto-tuned in [HIGH_MIN, HIGH_MAX] from 6.7)
ZF_PCP_HIGH_MIN = 12
ZF_PCP_HIGH_MAX = 13
NZF = 14

# ---- zonelists ----------------------------------------------------------------------
ZL_KERNEL = 0        # gfp_zone(GFP_KERNEL/GFP_ATOMIC) = ZONE_NORMAL: Normal, DMA32, DMA per node
ZL_USER = 1          # GFP_HIGHUSER_MOVABLE = ZONE_MOVABLE: Movable first
HZ_OF_ZL = (2, 3)    # highest_zoneidx of each zonelist (ZONE_NORMAL, ZONE_MOVABLE)

# ---- mi: machine integers ------------------------------------------------------------
MI_MIN_FREE_KBYTES = 0
MI_USER_MIN_FREE_KBYTES = 1
MI_WSF = 2
MI_WBF = 3
MI_MOVABLE_CLAMPED = 4
MI_TERMINATED = 5
MI_TUNER = 6
MI_NZL_KERNEL = 7
MI_NZL_USER = 8
MI_PCP_MODE = 9      # kernel/pcp.py PCP_HIGH_*
MI_PCP_CPUS = 10     # CPUs per node (zone_highsize()'s divisor)
MI_SWAP = 11
MI_TICK = 12          # ticks since reset
MI_RING_N = 13        # tuner action records written since reset
MI_NNODES = 14
MI_NNIC = 15
MI_NTRAFFIC = 16
MI_NWORK = 17
MI_SUM_MIN = 18       # sum of unboosted min watermarks (for reserved_mib_ms)
MI_TRACE_LEN = 19
MI_PHASE_OFF = 20     # phases' sysctl writes: (t_ms, knob, value) triples in trace[] from this offset
MI_PHASE_N = 21
MI_PHASE_NEXT = 22    # next write to apply
MI_SPARE = 23
MI_PCP_DECAY_NEXT = 24      # tick of the next decay_pcp_high() round (auto-tuning kernels; huge otherwise)
MI_NOFRAG = 25        # alloc_flags_nofragment() applies to the kernel zonelist (Normal preferred, DMA32 exists)
NMI = 26

# ---- mf: machine floats --------------------------------------------------------------
MF_T_MS = 0
MF_TICK_MS = 1
MF_KS_RATE = 2        # kswapd reclaim pages/ms
MF_KS_LATENCY = 3     # kswapd wake latency, ms
MF_DR_RATE = 4        # direct reclaim pages/ms
MF_CACHE_TOTAL = 5    # unused spare
NMF = 6

# ---- nd: per-node kswapd state (float64) ---------------------------------------------
KS_SLEEP = 0
KS_WAKING = 1
KS_RUN = 2
KS_NAP = 3
ND_STATE = 0
ND_T = 1              # WAKING: time of the wakeup; NAP: end of the 100 ms nap
ND_FAILURES = 2       # pgdat->kswapd_failures
ND_BOOST_LEFT = 3     # nr_boost_reclaim
ND_BOOSTED = 4        # this balance_pgdat() run snapshotted a boost
ND_RECLAIMED = 5      # sc.nr_reclaimed of this run
ND_ACC = 6            # fractional reclaim carried between ticks
ND_HZ = 7             # kswapd_highest_zoneidx requested by wakeups
ND_PRIO = 8           # balance_pgdat()'s sc.priority
ND_PASS_FILE = 9      # pages of the file LRU this pass still reclaims (-1: between passes)
ND_PASS_ANON = 10     # pages of the anon LRU this pass still reclaims
ND_PASS_GOT = 11      # reclaimed in this pass
ND_PASS_ENOUGH = 12   # kswapd_shrink_node(): this pass scanned >= nr_to_reclaim
ND_PASS_BOOSTED = 13  # the pass started with nr_boost_reclaim > 0
ND_RUN_T0 = 14        # start of this balance_pgdat() run, ms
NNF = 15

# ---- NIC driver models ----------------------------------------------------------------
DRV_PAGE_POOL = 0
DRV_DEV_ALLOC = 1
DRV_VIRTIO = 2
DRIVERS = ("page_pool", "dev_alloc_pages", "virtio_net")

# ---- ni: per-NIC integers (buffers/packets) --------------------------------------------
NI_POSTED = 0         # buffers posted in the rings (all queues)
NI_POSTED_PFM = 1     # of which carved from pfmemalloc pages
NI_PENDING = 2        # packets received, waiting for NAPI
NI_PENDING_PFM = 3    # of which landed in pfmemalloc buffers
NI_SOCK = 4           # packets queued in sockets
NI_FRAG = 5           # buffers left in the current (partly used) page frag
NI_PAGES = 6          # pages held by the NIC (all zones)
NI_BUFS = 7           # buffers held: posted + pending + queued
NI_REPOLL = 8         # last refill fell short: NAPI keeps polling
NI_ENABLED = 9
NNI = 10

# ---- nf: per-NIC parameters and float state ----------------------------------------------
NP_DRIVER = 0
NP_RING = 1           # queues * ring_size buffers
NP_BPP = 2            # buffers per packet (ceil(min(pkt, mtu) / buffer_bytes))
NP_BUF_PER_PAGE = 3   # 4096 // buffer_bytes (page_pool frags), >= 1
NP_PAGES_PER_BUF = 4  # ceil(buffer_bytes / 4096), >= 1
NP_NAPI_PER_TICK = 5  # queues * budget * polls per tick
NP_SOCK_CAP = 6       # packets the sockets can queue (queues * rcvbuf / truesize)
NP_DRAIN_PER_MS = 7   # app drain, packets/ms
NP_DRAIN_ACC = 8
NP_NAPI_ACC = 9
NP_VIRTIO_DUE = 10    # refill_work due time, ms (-1: not scheduled)
NP_SOCK_MEMALLOC = 11
NP_QUEUES = 12
NP_NAPI_BUDGET = 13
NP_LINE_PPMS = 14     # line-rate cap, packets/ms
NP_ARR_ACC = 15
NNP = 16

# ---- tp: traffic generators ---------------------------------------------------------------
TK_NONE = -1
TK_POISSON = 0
TK_MMPP = 1
TK_INCAST = 2
TK_DIURNAL = 3
TK_REPLAY = 4
TRAFFIC_KINDS = ("poisson", "mmpp", "incast", "diurnal", "replay")
TP_KIND = 0
TP_NIC = 1
TP_RATE = 2           # packets/ms
TP_BURST = 3          # packets/ms (mmpp on; incast during burst)
TP_MEAN_ON = 4
TP_MEAN_OFF = 5
TP_PERIOD = 6
TP_BURST_MS = 7
TP_JITTER = 8
TP_AMPL = 9
TP_START = 10         # ms
TP_STOP = 11          # ms (inf if none)
TP_TRACE_OFF = 12     # offset in trace[]
TP_TRACE_N = 13
TP_TRACE_INT = 14     # ms per trace row
TP_S_ON = 15          # mmpp: on? incast: in burst?
TP_S_NEXT = 16        # next state switch / burst start, ms
TP_S_END = 17         # incast: current burst end, ms
TP_S_ACC = 18         # fractional packets carried
NTP = 19

# ---- wp: memory workloads -------------------------------------------------------------
WK_NONE = -1
WK_STREAM = 0
WK_ANON_HOG = 1
WK_CHURN = 2
WK_ATOMIC = 3
WORKLOAD_KINDS = ("stream_read", "anon_hog", "churn", "atomic_alloc")
ATOMIC_SLOTS = 4      # atomic_alloc: bursts held at once (release time, pages)
WP_KIND = 0
WP_RATE = 1           # pages/ms
WP_WS = 2             # stream_read working set, pages
WP_PEAK = 3           # anon_hog peak, pages
WP_HOLD = 4           # ms
WP_PERIOD = 5         # ms (0 = once)
WP_START = 6          # ms
WP_S_RESIDENT = 7     # stream_read: pages of the working set in the page cache
WP_S_EVER = 8         # stream_read: pages of the working set read at least once
WP_S_HELD = 9         # anon pages held (anon_hog, churn)
WP_S_PHASE = 10       # anon_hog: 0 wait, 1 grow, 2 hold, 3 exited
WP_S_T = 11           # anon_hog: time the phase started / churn: pages allocated last tick
WP_S_ACC = 12         # fractional pages carried
WP_S_DEFICIT = 13     # pages a blocked task still wants (direct reclaim carries over)
WP_S_RUN_START = 14   # anon_hog: start of the current incarnation, ms
WP_STOP = 15          # ms (inf: never)
WP_VOLUME = 16        # stream_read: pages to read once (0: loop over the working set)
WP_S_READ = 17        # stream_read with a volume: pages read so far
WP_S_MISS_ACC = 18    # stream_read: remainder of rate * nonresident carried (misses = (r*nonres + acc) // ws)
WP_GFP = 19           # atomic_alloc: gfp mask
WP_SHOT_OFF = 20      # atomic_alloc: shots as (at_ms, pages, hold_ms) triples in trace[] from this offset
WP_SHOT_N = 21
WP_S_SHOT_NEXT = 22   # next shot to fire
WP_S_NEXT = 23        # atomic_alloc: next periodic burst, ms
WP_S_STOPPED = 24     # the workload's stop time has passed (its exit was handled)
WP_SLOT_T = 25        # atomic_alloc: ATOMIC_SLOTS (release time, pages) pairs from here
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
)
COUNTER_NAMES: tuple[str, ...] = (
    _FIXED
    + tuple(f"pgalloc_{z}" for z in _ZT)
    + tuple(f"allocstall_{z}" for z in _ZT)
    + tuple(f"atomic_fail_{z}" for z in _ZT)
    + tuple(f"atomic_fail_free_{z}" for z in _ZT)
)
NC = len(COUNTER_NAMES)
_IDX = {n: i for i, n in enumerate(COUNTER_NAMES)}
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
CLS_ATOMIC = 0
CLS_KERNEL = 1
CLS_NOWAIT = 2
CLS_MEMALLOC = 3
CLASS_NAMES = ("atomic", "kernel", "nowait", "memalloc")

TUNER_RING = 32
ZONES_PER_NODE = MAX_NR_ZONES

# ---- order of the state arrays in Simulator.state (the tuple engine.make_state() wraps into a
# SimState; compiled code reads the fields by name: S.zs, S.mi, ...) ----------------------
I_MANAGED = 0
I_WMARK = 1
I_BOOST = 2
I_RESERVE = 3
I_ZS = 4
I_ZL = 5
I_MI = 6
I_MF = 7
I_ND = 8
I_NI = 9
I_NF = 10
I_NZ = 11
I_TP = 12
I_WP = 13
I_WZ = 14
I_TRACE = 15
I_RNG = 16
I_CTR = 17
I_TS = 18
I_TPAR = 19
I_RING = 20
I_ZTYPE = 21
I_SCR = 22            # i8 (B, Z) scratch: pages obtained per zone by the last bulk allocation
STATE_FIELDS = ("managed", "wmark", "boost", "reserve", "zs", "zl", "mi", "mf", "nd", "ni", "nf", "nz",
                "tp", "wp", "wz", "trace", "rng", "ctr", "ts", "tpar", "ring", "ztype", "scr")


# ---- the state as one numba structref: passing it to a compiled function costs one pointer
# (a tuple of 23 arrays is flattened into ~230 scalar arguments per non-inlined call) -------
from numba.core import types as _types  # noqa: E402
from numba.core.datamodel import models as _models  # noqa: E402
from numba.core.datamodel.models import ArrayModel as _ArrayModel  # noqa: E402
from numba.experimental import structref as _structref  # noqa: E402
from numba.extending import register_model as _register_model  # noqa: E402


class UArray(_types.Array):
    """The type of SimState's fields: a numpy array whose buffer compiled code does not own
    (engine.make_state() wraps Simulator.state's arrays without their NRT meminfo). Its data
    model reports no meminfo, so reading ``S.zs`` emits no NRT_incref/NRT_decref calls (they
    were ~11 % of a tick). Indexing and attributes are those of types.Array; a sub-array view
    (``S.wmark[b]``) is a plain Array. No implicit conversion to or from Array: a function given
    ``S.zs`` is compiled for UArray. Never return one to Python (it owns nothing)."""

    def __init__(self, dtype, ndim: int, layout: str) -> None:
        super().__init__(dtype, ndim, layout)
        self.name = f"uarray({dtype}, {ndim}d, {layout})"

    @property
    def key(self):
        return ("unmanaged",) + super().key

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
