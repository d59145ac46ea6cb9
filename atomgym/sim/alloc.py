"""Order-0 allocation paths (mm/page_alloc.c), in bulk but exactly as page-at-a-time.

A bulk request for ``n`` pages is served as ``n`` consecutive single-page requests with no
frees in between would be:

1. fast path (get_page_from_freelist() from __alloc_pages()): every zone of the zonelist
   in order, checked by zone_watermark_fast() at ``low + boost + lowmem_reserve`` with
   ALLOC_WMARK_LOW;
2. slow path (__alloc_pages_slowpath()): the tuner's EV_SLOWPATH_ENTRY hook, then
   wake_all_kswapds(), then the zonelist again at ``min`` with gfp_to_alloc_flags()'s
   reserve access (zone_watermark_fast() does the __GFP_HIGH / non-blocking reductions and
   the unboosted re-check for order-0 __GFP_HIGH);
3. __GFP_MEMALLOC (__gfp_pfmemalloc_flags()): ALLOC_NO_WATERMARKS, no check at all; such
   pages are pfmemalloc.

Per-CPU lists (rmqueue_pcplist()): a request that passed the watermark check takes a page
from the zone's pcp list; an empty list is refilled with ``pcp_batch`` pages from the buddy
free count (rmqueue_bulk(), no check). Watermark checks see only the buddy count, so an
atomic burst fails once buddy free <= 3/8·min after the last refill pushed it up to one
batch below the threshold. Frees go to the pcp list; above ``pcp_high`` a batch drains
back to the buddy allocator (free_unref_page_commit()).

One pcp list per zone stands for the lists of the CPUs doing the allocating.
"""
from __future__ import annotations

from ..kernel.jit import jit

from ..kernel.watermark_ok import (
    ALLOC_KSWAPD, ALLOC_NO_WATERMARKS, ALLOC_WMARK_LOW, GFP_DIRECT_RECLAIM, GFP_KSWAPD_RECLAIM,
    gfp_pfmemalloc_allowed, gfp_to_alloc_flags, zone_watermark_fast,
)
from ..kernel.watermarks import WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES, MAX_RECLAIM_RETRIES, SWAP_CLUSTER_MAX, ZONE_NORMAL
from .kswapd import shrink_zones, wakeup_kswapd
from .layout import (
    C_ALLOCSTALL0, C_PGALLOC0, C_PGSCAN_DIRECT, C_PGSTEAL_DIRECT, C_STALL_US, C_THROTTLE_US,
    HZ_OF_ZL,
    MF_DR_RATE, MI_NZL_KERNEL, MI_PCP_BATCH, MI_PCP_HIGH,
    MI_SWAP, ND_FAILURES, ZF_ANON, ZF_BOOSTED_FLAG, ZF_CACHE, ZF_FREE, ZF_PCP,
)
from .tuners import EV_SLOWPATH_ENTRY, tuner_on_event


@jit(inline="always")
def zone_take(S, b, z, n, alloc_flags, widx, hz, dest):
    """Serve up to ``n`` single-page requests from zone ``z`` at watermark ``widx`` with
    ``alloc_flags``; the pages move from free to field ``dest`` of the zone. Returns the
    number served: requests stop at the first failed check, which happens only after a
    pcp refill moved buddy pages (every request re-checks the unchanged count otherwise)."""
    zs = S.zs
    f = zs[b, z, ZF_FREE]
    p = zs[b, z, ZF_PCP]
    nowm = (alloc_flags & ALLOC_NO_WATERMARKS) != 0
    wm = S.wmark[b, z, widx]
    bo = S.boost[b, z]
    res = S.reserve[b, z, hz]
    if not nowm and not zone_watermark_fast(f, wm, bo, res, alloc_flags):
        return 0
    batch = S.mi[b, MI_PCP_BATCH]
    served = n if n < p else p
    p -= served
    while served < n:
        # this request passed the check (f unchanged since); pcp empty -> rmqueue_bulk()
        take = batch if batch < f else f
        if take == 0:
            break
        f -= take
        p += take - 1
        served += 1
        if served == n:
            break
        if not nowm and not zone_watermark_fast(f, wm, bo, res, alloc_flags):
            break
        s = n - served
        if s > p:
            s = p
        p -= s
        served += s
    if served > 0:
        zs[b, z, ZF_FREE] = f
        zs[b, z, ZF_PCP] = p
        zs[b, z, dest] += served
        S.ctr[b, C_PGALLOC0 + z % MAX_NR_ZONES] += served
        # rmqueue(): ZONE_BOOSTED_WATERMARK -> clear, wakeup_kswapd()
        if (alloc_flags & ALLOC_KSWAPD) and zs[b, z, ZF_BOOSTED_FLAG] != 0:
            zs[b, z, ZF_BOOSTED_FLAG] = 0
            wakeup_kswapd(S, b, z // MAX_NR_ZONES, z % MAX_NR_ZONES)
    return served


@jit(inline="always")
def free_pages_zone(S, b, z, n, src):
    """Free ``n`` pages of field ``src`` of zone z: to the pcp list; above pcp high, batches
    drain to the buddy free count (free_unref_page_commit() -> free_pcppages_bulk())."""
    if n <= 0:
        return
    zs = S.zs
    zs[b, z, src] -= n
    p = zs[b, z, ZF_PCP] + n
    high = S.mi[b, MI_PCP_HIGH]
    if p >= high:
        batch = S.mi[b, MI_PCP_BATCH]
        k = ((p - high) // batch + 1) * batch
        if k > p:
            k = p
        p -= k
        zs[b, z, ZF_FREE] += k
    zs[b, z, ZF_PCP] = p


@jit(inline="always")
def clear_scratch(S, b, zlk):
    zl = S.zl
    scr = S.scr
    for i in range(S.mi[b, MI_NZL_KERNEL + zlk]):
        scr[b, zl[b, zlk, i]] = 0


@jit()
def drain_all_pages(S, b):
    """drain_all_pages(): every pcp list back to the buddy allocator."""
    zs = S.zs
    for z in range(zs.shape[1]):
        zs[b, z, ZF_FREE] += zs[b, z, ZF_PCP]
        zs[b, z, ZF_PCP] = 0


@jit()
def wake_all_kswapds(S, b, zlk):
    """wake_all_kswapds(): wakeup_kswapd() once per node of the zonelist."""
    zl = S.zl
    nzl = S.mi[b, MI_NZL_KERNEL + zlk]
    hz = HZ_OF_ZL[zlk]
    last = -1
    for i in range(nzl):
        node = zl[b, zlk, i] // MAX_NR_ZONES
        if node != last:
            wakeup_kswapd(S, b, node, hz)
            last = node


@jit()
def alloc_pages_bulk(S, b, n, gfp, zlk, dest, cls):
    """``n`` order-0 allocations with mask ``gfp`` over zonelist ``zlk`` (no direct
    reclaim here). Returns (pages obtained, of which pfmemalloc). Per-zone pages obtained
    are added to the scratch row ``S.scr[b]`` (callers clear it with clear_scratch())."""
    zl = S.zl
    scr = S.scr
    nzl = S.mi[b, MI_NZL_KERNEL + zlk]
    hz = HZ_OF_ZL[zlk]
    got = 0
    if n <= 0:
        return 0, 0
    # fast path: ALLOC_WMARK_LOW (+ ALLOC_KSWAPD from alloc_flags_nofragment())
    fast = ALLOC_WMARK_LOW | (gfp & GFP_KSWAPD_RECLAIM)
    for i in range(nzl):
        z = zl[b, zlk, i]
        s = zone_take(S, b, z, n - got, fast, WMARK_LOW, hz, dest)
        scr[b, z] += s
        got += s
        if got == n:
            return got, 0
    # slow path
    tuner_on_event(S, b, EV_SLOWPATH_ENTRY, gfp, cls, zl[b, zlk, 0], zl[b, zlk, 0] // MAX_NR_ZONES, n - got)
    if gfp & GFP_KSWAPD_RECLAIM:
        wake_all_kswapds(S, b, zlk)
    flags = gfp_to_alloc_flags(gfp)
    for i in range(nzl):
        z = zl[b, zlk, i]
        s = zone_take(S, b, z, n - got, flags, WMARK_MIN, hz, dest)
        scr[b, z] += s
        got += s
        if got == n:
            return got, 0
    pfm = 0
    if gfp_pfmemalloc_allowed(gfp):
        nw = ALLOC_NO_WATERMARKS | (flags & ALLOC_KSWAPD)
        for i in range(nzl):
            z = zl[b, zlk, i]
            s = zone_take(S, b, z, n - got, nw, WMARK_MIN, hz, dest)
            scr[b, z] += s
            got += s
            pfm += s
            if got == n:
                break
    return got, pfm


@jit()
def allow_direct_reclaim(S, b, node):
    """allow_direct_reclaim(): a hopeless node never throttles; otherwise throttle when
    the free pages of its zones <= Normal that have reclaimable pages are at most half the
    sum of their min watermarks (pfmemalloc_reserve / 2); kswapd is woken."""
    if S.nd[b, node, ND_FAILURES] >= MAX_RECLAIM_RETRIES:
        return True
    zs = S.zs
    managed = S.managed
    wmark = S.wmark
    reserve_sum = 0
    free = 0
    base = node * MAX_NR_ZONES
    for t in range(ZONE_NORMAL + 1):
        z = base + t
        if managed[b, z] == 0:
            continue
        if zs[b, z, ZF_CACHE] == 0 and (S.mi[b, MI_SWAP] == 0 or zs[b, z, ZF_ANON] == 0):
            continue  # !zone_reclaimable_pages(zone)
        reserve_sum += wmark[b, z, WMARK_MIN]
        free += zs[b, z, ZF_FREE]
    if reserve_sum == 0:
        return True
    if free > reserve_sum // 2:
        return True
    wakeup_kswapd(S, b, node, ZONE_NORMAL)
    return False


@jit()
def alloc_pages_reclaim(S, b, n, gfp, zlk, dest, cls, budget_ms):
    """A blocking allocation (__GFP_DIRECT_RECLAIM): the bulk paths, then direct reclaim
    (__alloc_pages_direct_reclaim(): drain_all_pages(), reclaim at least SWAP_CLUSTER_MAX
    pages per round at the direct-reclaim rate, retry at min) within ``budget_ms`` of the
    task's time this tick. Returns (pages obtained, reclaimable pages left when it failed
    (-1 if it did not fail), ms stalled). Per-zone pages obtained are added to
    S.scr[b]."""
    zl = S.zl
    ctr = S.ctr
    hz = HZ_OF_ZL[zlk]
    got, _ = alloc_pages_bulk(S, b, n, gfp, zlk, dest, cls)
    if got == n or not (gfp & GFP_DIRECT_RECLAIM):
        return got, -1, 0.0
    node = zl[b, zlk, 0] // MAX_NR_ZONES
    rate = S.mf[b, MF_DR_RATE]
    stalled = 0.0
    drained = False
    left = -1
    while got < n:
        if stalled >= budget_ms:
            break
        if not allow_direct_reclaim(S, b, node):
            ctr[b, C_THROTTLE_US] += (budget_ms - stalled) * 1000.0
            stalled = budget_ms
            break
        if not drained:
            drain_all_pages(S, b)
            drained = True
        want = n - got
        if want < SWAP_CLUSTER_MAX:
            want = SWAP_CLUSTER_MAX
        cap = int((budget_ms - stalled) * rate)
        if cap < 1:
            cap = 1
        if want > cap:
            want = cap
        ctr[b, C_ALLOCSTALL0 + hz] += 1
        r = shrink_zones(S, b, -1, hz, want, False)
        ctr[b, C_PGSCAN_DIRECT] += r
        ctr[b, C_PGSTEAL_DIRECT] += r
        dt = r / rate
        stalled += dt
        ctr[b, C_STALL_US] += dt * 1000.0
        g, _ = alloc_pages_bulk(S, b, n - got, gfp, zlk, dest, cls)
        got += g
        if r == 0 and g == 0:
            left = 0
            break
    return got, left, stalled
