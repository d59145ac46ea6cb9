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
    ALLOC_KSWAPD, ALLOC_NO_WATERMARKS, ALLOC_WMARK_LOW, GFP_DIRECT_RECLAIM, GFP_KSWAPD_RECLAIM, GFP_MEMALLOC, GFP_NOMEMALLOC,
    MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, gfp_migratetype, gfp_pfmemalloc_allowed, gfp_to_alloc_flags, gfp_zone,
    zone_watermark_fast,
)
from ..kernel.boost import boost_watermark_zone
from ..kernel.pcp import PCP_HIGH_AUTOTUNE
from ..kernel.watermarks import WMARK_HIGH, WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES, MAX_RECLAIM_RETRIES, PAGEBLOCK_NR_PAGES, SWAP_CLUSTER_MAX, ZONE_NORMAL
from .kswapd import DEF_PRIORITY, SHRINK_BOTH, shrink_zones, wakeup_kswapd
from .lru import lru_add
from .layout import (
    C_ALLOCSTALL0, C_FALLBACK_BOOSTS, C_FALLBACKS, C_PGALLOC0, C_PGSCAN_DIRECT, C_PGSTEAL_DIRECT, C_STALL_US,
    C_THROTTLE_US, HZ_OF_ZL, KS_RUN, MR_KS_IRQ_ACC, MR_KS_IRQ_SHARE,
    MR_DR_RATE, MI_DR_CALL_LEFT, MI_NOFRAG, MI_RECLAIM_BLK, MI_CACHE_GFP, MI_NZL_KERNEL, MI_PCP_MODE, MI_WBF,
    MI_SWAP, ND_FAILURES, ND_HZ, ND_STATE, ZF_ANON, ZF_BOOSTED_FLAG, ZF_CACHE, ZF_FREE, ZF_FREE_U, ZF_FREE_BLK, ZF_FREE_BLK_U, ZF_FREE_R, ZF_KERNEL, ZF_BLK_CARRY, ZF_BLK_CLAIMED, ZF_BLK_MERGE, ZF_BLK_PEND, ZF_FREE_SEEN,
    ZF_NET, ZF_PCP, ZF_PCP_BATCH, ZF_PCP_HIGH, ZF_PCP_HIGH_MAX, ZF_PCP_HIGH_MIN, ZF_PCP_U, ZL_KERNEL, ZL_USER,
)
from .tuners import EV_SLOWPATH_ENTRY, tuner_on_event
from .vmstat import fold, stat_threshold


@jit(inline="llvm")
def is_unmovable(dest):
    """Whether pages of a use freed by free_pages_zone() go to the UNMOVABLE pcp list (their
    pageblock's type, get_pfnblock_migratetype()): network buffers and kernel memory (slab pages
    of RECLAIMABLE blocks are counted with them); anonymous memory is MOVABLE. (Page cache is
    freed by reclaim only: shrink_zones().)"""
    return dest == ZF_NET or dest == ZF_KERNEL


@jit()
def fallback_event(S, b, z, alloc_flags):
    """__rmqueue_fallback() -> steal_suitable_fallback() [6.1]: boost_watermark() on every
    fallback from a sub-pageblock chunk; ZONE_BOOSTED_WATERMARK if it returned true and the
    allocation may wake kswapd (ALLOC_KSWAPD). watermark_boost_factor 0 disables it."""
    S.ctr[b, C_FALLBACKS] += 1
    if boost_watermark_zone(S.managed[b], S.wmark[b], S.boost[b], z, S.mi[b, MI_WBF], PAGEBLOCK_NR_PAGES):
        S.ctr[b, C_FALLBACK_BOOSTS] += 1
        if alloc_flags & ALLOC_KSWAPD:
            S.zs[b, z, ZF_BOOSTED_FLAG] = 1


@jit(inline="llvm")
def _took(mov, recl, ft, fm, fr, fu, blk, blku):
    """After a refill took pages of the request's type: that type's free pages are ``ft``; whole
    free blocks beyond them were split (__rmqueue_smallest() splits one only once the sub-block
    chunks are gone). Returns (fm, fr, fu, blk, blku)."""
    if mov:
        fm = ft
        if blk * PAGEBLOCK_NR_PAGES > fm:
            blk = fm // PAGEBLOCK_NR_PAGES
    elif recl:
        fr = ft
    else:
        fu = ft
        if blku > 0 and blku * PAGEBLOCK_NR_PAGES > fu:
            blku = fu // PAGEBLOCK_NR_PAGES
    return fm, fr, fu, blk, blku


@jit(inline="llvm")
def zone_take(S, b, z, n, alloc_flags, widx, hz, dest, nofrag, mt, rb):
    """Serve up to ``n`` single-page requests from zone ``z`` at watermark ``widx`` with
    ``alloc_flags``; the pages move from free to field ``dest`` of the zone. Returns the
    number served: requests stop at the first failed check, which happens only after a
    pcp refill moved buddy pages (every request re-checks the unchanged count otherwise).

    ``rb``: memory.reclaim_reforms_pageblocks (whole UNMOVABLE blocks and the page cache's
    credit, below). ``mt`` is the request's migratetype (gfp_migratetype()): MOVABLE for
    anonymous memory and a file's page cache (__GFP_MOVABLE), RECLAIMABLE for slab caches such as the xarray's nodes
    (__GFP_RECLAIMABLE), UNMOVABLE otherwise (network buffers, page tables, a block device's
    page cache). Pages come from the pcp list of the request's migratetype; an empty list
    is refilled with ``batch`` pages (rmqueue_bulk()) from the buddy free pages of that type,
    smallest chunks first (__rmqueue_smallest(): a MOVABLE refill splits a whole free pageblock
    only when the sub-block chunks are gone), and when those run out, page by page (__rmqueue()),
    from another type's pageblock (__rmqueue_fallback(), which searches from the largest order
    down):
    - a whole free MOVABLE pageblock (order >= pageblock_order) is claimed outright, with no
      boost (steal_suitable_fallback() [6.1] / try_to_claim_block() [6.18]: "current_order >=
      pageblock_order" relabels the block and returns before boost_watermark()); allowed
      under ALLOC_NOFRAGMENT too (min_order = pageblock_order);
    - otherwise a sub-block chunk: the fallback boosts the watermark and moves the free pages of
      the chunk's block to the requested type (move_freepages_block()), up to a pageblock: a
      RECLAIMABLE request takes UNMOVABLE, then MOVABLE free pages (fallbacks[MIGRATE_RECLAIMABLE]);
      a MOVABLE request RECLAIMABLE, then UNMOVABLE ones (fallbacks[MIGRATE_MOVABLE]); an
      UNMOVABLE request MOVABLE, then RECLAIMABLE ones (fallbacks[] has RECLAIMABLE first, but the
      search is largest order first and MOVABLE's chunks are the larger: docs/simulator.md); the next requests are checked against the raised boost
      (zone_watermark_fast() reads wmark_pages(), boost included, for each page). With ``nofrag``
      (ALLOC_NOFRAGMENT) a zone whose own type and whole blocks are exhausted is skipped.
    - with memory.reclaim_reforms_pageblocks, whole free UNMOVABLE pageblocks (``ZF_FREE_BLK_U``:
      a block device's page cache reclaimed block by block, sim/lru.py) are split last by an
      UNMOVABLE request (__rmqueue_smallest()) and claimed outright, with no boost, by a MOVABLE or
      RECLAIMABLE fallback before any sub-block chunk (fallbacks[] at order >= pageblock_order);
      the whole blocks a page-cache request splits or claims are credited to ``ZF_BLK_CARRY``
      (the LRU bucket that takes the pages records them: alloc_pages_bulk()), and a request of
      the cache's type for another use mixes the block being filled (drops ZF_BLK_PEND).
    Simplified: RECLAIMABLE requests have no pcp list (each page is taken from the buddy free
    pages and checked on its own: a slab as order-0 pages); whole free RECLAIMABLE pageblocks are
    not tracked, nor whole UNMOVABLE ones without memory.reclaim_reforms_pageblocks (a MOVABLE
    fallback then always boosts); 6.1's steal_suitable_fallback() for every version
    (docs/simulator.md, "Simplifications")."""
    zs = S.zs
    f = zs[b, z, ZF_FREE]
    t_st = stat_threshold(S, b, z)           # what the checks read: zone_page_state(), sim/vmstat.py
    g = fold(f, zs[b, z, ZF_FREE_SEEN], t_st)
    zs[b, z, ZF_FREE_SEEN] = g
    nowm = (alloc_flags & ALLOC_NO_WATERMARKS) != 0
    wm = S.wmark[b, z, widx]
    bo = S.boost[b, z]
    res = S.reserve[b, z, hz]
    if not nowm and not zone_watermark_fast(g, wm, bo, res, alloc_flags):
        return 0
    recl = mt == MIGRATE_RECLAIMABLE
    mov = mt == MIGRATE_MOVABLE
    unmov = not mov and not recl
    p_all = zs[b, z, ZF_PCP]
    pu = zs[b, z, ZF_PCP_U]
    if recl:
        p = 0
    else:
        p = pu if unmov else p_all - pu      # pages on this type's pcp list
    fu = zs[b, z, ZF_FREE_U]
    fr = zs[b, z, ZF_FREE_R]
    if fu + fr > f:                          # (zone state written from outside: keep it consistent)
        fu = f if fu > f else fu
        fr = f - fu if fr > f - fu else fr
    fm = f - fu - fr                         # buddy free pages in MOVABLE pageblocks
    blk = zs[b, z, ZF_FREE_BLK]              # whole free MOVABLE pageblocks (within fm)
    if blk * PAGEBLOCK_NR_PAGES > fm:
        blk = fm // PAGEBLOCK_NR_PAGES
    blku = 0                                 # whole free UNMOVABLE pageblocks (within fu; ``rb``:
    whole0 = 0                               # memory.reclaim_reforms_pageblocks, else none)
    took0 = 0                                # (``rb``: the free pages of the cache's type outside
    if rb:                                   # whole blocks, at the start)
        blku = zs[b, z, ZF_FREE_BLK_U]
        if blku * PAGEBLOCK_NR_PAGES > fu:
            blku = fu // PAGEBLOCK_NR_PAGES
        whole0 = blk + blku
        if gfp_migratetype(S.mi[b, MI_CACHE_GFP]) == MIGRATE_MOVABLE:
            took0 = fm - blk * PAGEBLOCK_NR_PAGES
        else:
            took0 = fu - blku * PAGEBLOCK_NR_PAGES
    batch = 1 if recl else zs[b, z, ZF_PCP_BATCH]
    served = n if n < p else p
    p -= served
    if served < n and batch > 0:
        # the loop below in closed form when its K = ceil(rest / batch) refills all take a full
        # batch of the type's own pages (no fallback) and every watermark check between them
        # passes (zone_watermark_fast() is monotone in the free count: the last check decides):
        # the same pages, counts and pcp list, without K iterations
        rest = n - served
        k = (rest + batch - 1) // batch
        kb = k * batch
        ft = fm if mov else (fr if recl else fu)
        if f >= kb and ft >= kb:
            last = k if rest - (k - 1) * batch > 1 else k - 1
            gl = fold(f - last * batch, g, t_st)
            if nowm or last == 0 or zone_watermark_fast(gl, wm, bo, res, alloc_flags):
                g = fold(f - kb, gl, t_st)
                f -= kb
                fm, fr, fu, blk, blku = _took(mov, recl, ft - kb, fm, fr, fu, blk, blku)
                p = kb - rest
                served = n
    while served < n:
        # this request passed the check (f unchanged since); pcp empty -> rmqueue_bulk()
        take = batch if batch < f else f
        if take == 0:
            break
        ft = fm if mov else (fr if recl else fu)
        while ft < take:
            whole_u = not unmov and blku > 0
            if whole_u or (not mov and blk > 0):
                # __rmqueue_fallback() finds a whole free pageblock of another type first (largest
                # order first): a whole UNMOVABLE one for a MOVABLE or RECLAIMABLE request, else a
                # whole MOVABLE one; steal_suitable_fallback() [6.1] / try_to_claim_block() [6.18]:
                # order >= pageblock_order -> relabel and take the block, no boost_watermark()
                S.ctr[b, C_FALLBACKS] += 1
                if whole_u:
                    blku -= 1
                    fu -= PAGEBLOCK_NR_PAGES
                    if mov:              # a block every page of which the request's owner gets
                        zs[b, z, ZF_BLK_CLAIMED] += 1
                else:
                    blk -= 1
                    fm -= PAGEBLOCK_NR_PAGES
                ft += PAGEBLOCK_NR_PAGES
                continue
            if nofrag:
                break
            # __rmqueue_fallback() from a sub-block chunk: boost, move the block's free pages
            if mov:                      # fallbacks[MIGRATE_MOVABLE]: RECLAIMABLE, then UNMOVABLE
                mv = min(fr, PAGEBLOCK_NR_PAGES)
                fr -= mv
                if mv == 0:
                    mv = min(fu, PAGEBLOCK_NR_PAGES)
                    fu -= mv
            elif recl:                   # fallbacks[MIGRATE_RECLAIMABLE]: UNMOVABLE, then MOVABLE
                mv = min(fu, PAGEBLOCK_NR_PAGES)
                fu -= mv
                if mv == 0:
                    mv = min(fm, PAGEBLOCK_NR_PAGES)
                    fm -= mv
            else:                        # sub-block MOVABLE chunks (no whole block is left), then
                mv = min(fm, PAGEBLOCK_NR_PAGES)   # RECLAIMABLE ones
                fm -= mv
                if mv == 0:
                    mv = min(fr, PAGEBLOCK_NR_PAGES)
                    fr -= mv
            if mv == 0:
                break
            fallback_event(S, b, z, alloc_flags)
            bo = S.boost[b, z]           # the next request's check reads the raised boost
            ft += mv
        if ft < take:
            if ft == 0:
                break
            take = ft
        f -= take
        fm, fr, fu, blk, blku = _took(mov, recl, ft - take, fm, fr, fu, blk, blku)
        p += take - 1
        served += 1
        if served == n:
            break
        g = fold(f, g, t_st)
        if not nowm and not zone_watermark_fast(g, wm, bo, res, alloc_flags):
            break
        s = n - served
        if s > p:
            s = p
        p -= s
        served += s
    zs[b, z, ZF_FREE] = f
    zs[b, z, ZF_FREE_SEEN] = fold(f, g, t_st)
    zs[b, z, ZF_FREE_BLK] = blk
    zs[b, z, ZF_FREE_U] = fu
    if rb:
        zs[b, z, ZF_FREE_BLK_U] = blku
        if zs[b, z, ZF_BLK_MERGE] > 0:
            # __free_one_page() makes a block whole only once all its pages are free; the pages of
            # the block reclaim is freeing are the most recently freed of their type (the pcp
            # list's head): pages taken from that type's sub-block chunks (a refill, or a
            # fallback moving them) are those first, and the block keeps them (sim/lru.py)
            if gfp_migratetype(S.mi[b, MI_CACHE_GFP]) == MIGRATE_MOVABLE:
                used = took0 - (fm - blk * PAGEBLOCK_NR_PAGES)
            else:
                used = took0 - (fu - blku * PAGEBLOCK_NR_PAGES)
            if used > 0:
                m = zs[b, z, ZF_BLK_MERGE] - used
                zs[b, z, ZF_BLK_MERGE] = m if m > 0 else 0
        if dest == ZF_CACHE:
            if blk + blku < whole0:
                zs[b, z, ZF_BLK_CARRY] += (whole0 - blk - blku) * PAGEBLOCK_NR_PAGES
        elif served > 0 and zs[b, z, ZF_BLK_CARRY] > 0 and mt == gfp_migratetype(S.mi[b, MI_CACHE_GFP]):
            # pages of the cache's type for another use come from the same chunks (__rmqueue_smallest()):
            # the block being filled is mixed, never a whole free block again by reclaim alone
            c = zs[b, z, ZF_BLK_CARRY]
            zs[b, z, ZF_BLK_CARRY] = c - served if c > served else 0
            zs[b, z, ZF_BLK_PEND] = 0
    zs[b, z, ZF_FREE_R] = fr
    if unmov and not recl:
        zs[b, z, ZF_PCP] = p_all - pu + p
        zs[b, z, ZF_PCP_U] = p
    elif mov:
        zs[b, z, ZF_PCP] = p + pu
    if served > 0:
        zs[b, z, dest] += served
        S.ctr[b, C_PGALLOC0 + z % MAX_NR_ZONES] += served
    # rmqueue() [6.1]: a set ZONE_BOOSTED_WATERMARK is cleared and kswapd woken, page or not
    if zs[b, z, ZF_BOOSTED_FLAG] != 0:
        zs[b, z, ZF_BOOSTED_FLAG] = 0
        wakeup_kswapd(S, b, z // MAX_NR_ZONES, z % MAX_NR_ZONES)
    return served


@jit(inline="llvm")
def pcp_drain(S, b, z, k, first_u):
    """free_pcppages_bulk(): ``k`` pages from the zone's pcp lists back to the buddy free
    pages of their pageblocks' type, round-robin starting after the list just freed to
    (``first_u``: the UNMOVABLE list first)."""
    zs = S.zs
    pu = zs[b, z, ZF_PCP_U]
    pm = zs[b, z, ZF_PCP] - pu
    if first_u:
        ku = k if k < pu else pu
    else:
        km = k if k < pm else pm
        ku = k - km
        if ku > pu:
            ku = pu
    zs[b, z, ZF_PCP] -= k
    zs[b, z, ZF_PCP_U] = pu - ku
    zs[b, z, ZF_FREE] += k
    zs[b, z, ZF_FREE_U] += ku


@jit(inline="llvm")
def free_pages_zone(S, b, z, n, src):
    """Free ``n`` pages of field ``src`` of zone z to the pcp list of their type; once the
    list count reaches the limit, batches drain to the buddy free count
    (free_unref_page_commit() -> nr_pcp_high() -> free_pcppages_bulk()). The limit is
    pcp->high, or min(4 * batch, high) while kswapd reclaims the zone (ZONE_RECLAIM_ACTIVE).
    Auto-tuning kernels (6.7+, free_frozen_page_commit()) also lower pcp->high under
    ZONE_RECLAIM_ACTIVE / below the high watermark (draining from high_min) and raise it by a
    batch when the list overflows."""
    if n <= 0:
        return
    zs = S.zs
    zs[b, z, src] -= n
    unmov = is_unmovable(src)
    p = zs[b, z, ZF_PCP] + n
    zs[b, z, ZF_PCP] = p
    if unmov:
        zs[b, z, ZF_PCP_U] += n
    high = zs[b, z, ZF_PCP_HIGH]
    batch = zs[b, z, ZF_PCP_BATCH]
    node = z // MAX_NR_ZONES
    nd = S.nd
    ra = nd[b, node, ND_STATE] == KS_RUN and z % MAX_NR_ZONES <= nd[b, node, ND_HZ]
    limit = high
    if S.mi[b, MI_PCP_MODE] == PCP_HIGH_AUTOTUNE:
        hmin = zs[b, z, ZF_PCP_HIGH_MIN]
        if ra or zs[b, z, ZF_FREE] < S.wmark[b, z, WMARK_HIGH] + S.boost[b, z]:
            high -= batch
            if high < hmin:
                high = hmin
            limit = high if not ra else (4 * batch if 4 * batch < high else high)
            if not ra:
                limit = hmin
        elif p >= high:
            high += batch
            if high > zs[b, z, ZF_PCP_HIGH_MAX]:
                high = zs[b, z, ZF_PCP_HIGH_MAX]
            limit = high
        zs[b, z, ZF_PCP_HIGH] = high
    elif ra and 4 * batch < high:
        limit = 4 * batch
    if p >= limit:
        if limit < batch:
            k = p - limit + 1
        else:
            k = ((p - limit) // batch + 1) * batch
        if k > p:
            k = p
        pcp_drain(S, b, z, k, not unmov)


@jit()
def decay_pcp_high(S, b):
    """decay_pcp_high() [6.7+], every second from refresh_cpu_vm_stats(): a pcp->high above
    high_min drops to max(count - 32 * batch, high - high / 8, high_min), and the list drains
    to it."""
    zs = S.zs
    for z in range(zs.shape[1]):
        high = zs[b, z, ZF_PCP_HIGH]
        hmin = zs[b, z, ZF_PCP_HIGH_MIN]
        if high <= hmin:
            continue
        p = zs[b, z, ZF_PCP]
        nh = high - high // 8
        x = p - 32 * zs[b, z, ZF_PCP_BATCH]
        if x > nh:
            nh = x
        if hmin > nh:
            nh = hmin
        zs[b, z, ZF_PCP_HIGH] = nh
        if p > nh:
            pcp_drain(S, b, z, p - nh, False)


@jit(inline="llvm")
def zonelist_of(gfp):
    """The compact zonelist (ZL_*) an allocation with mask ``gfp`` walks: the one that starts
    at gfp_zone(gfp) (HZ_OF_ZL): ZONE_MOVABLE's for GFP_HIGHUSER_MOVABLE, ZONE_NORMAL's (the
    kernel zonelist) otherwise."""
    return ZL_USER if gfp_zone(gfp) == HZ_OF_ZL[ZL_USER] else ZL_KERNEL


@jit(inline="llvm")
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
        zs[b, z, ZF_FREE_U] += zs[b, z, ZF_PCP_U]
        zs[b, z, ZF_PCP] = 0
        zs[b, z, ZF_PCP_U] = 0


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


@jit(inline="llvm")
def _carried(S, b, z, s):
    """Of ``s`` page-cache pages just allocated in zone z, those that fill whole pageblocks split
    or claimed for the page cache (ZF_BLK_CARRY, zone_take()): the LRU bucket records them."""
    zs = S.zs
    c = zs[b, z, ZF_BLK_CARRY]
    if c <= 0:
        return 0
    k = c if c < s else s
    zs[b, z, ZF_BLK_CARRY] = c - k
    p = zs[b, z, ZF_BLK_PEND] + k
    whole = p - p % PAGEBLOCK_NR_PAGES
    zs[b, z, ZF_BLK_PEND] = p - whole
    return whole


@jit(inline="llvm")
def softirq_gfp(S, b, gfp):
    """The mask a softirq allocation (an atomic module's timer, a NAPI refill) runs with:
    __gfp_pfmemalloc_flags() gives ALLOC_NO_WATERMARKS to ``in_serving_softirq() &&
    current->flags & PF_MEMALLOC``, i.e. a softirq that interrupted kswapd (PF_MEMALLOC for its
    whole life, kswapd()). While the kernel zonelist's node's kswapd runs, a share
    ``MR_KS_IRQ_SHARE`` (the scenario's kswapd.cpu_share / cpus: kswapd holds that share of one
    CPU's time, and the softirq is on one of the CPUs) of the softirq calls land on it, counted by
    an accumulator (no random draw); those get __GFP_MEMALLOC (none under __GFP_NOMEMALLOC).
    Direct reclaimers' PF_MEMALLOC is not modelled. cpu_share 0 (the default): never."""
    mr = S.mr
    share = mr[b, MR_KS_IRQ_SHARE]
    if share <= 0.0 or S.nd[b, S.zl[b, ZL_KERNEL, 0] // MAX_NR_ZONES, ND_STATE] != KS_RUN:
        return gfp
    acc = mr[b, MR_KS_IRQ_ACC] + share
    if acc < 1.0:
        mr[b, MR_KS_IRQ_ACC] = acc
        return gfp
    mr[b, MR_KS_IRQ_ACC] = acc - 1.0
    if gfp & GFP_NOMEMALLOC:
        return gfp
    return gfp | GFP_MEMALLOC


@jit(literal_args=("zlk", "dest"))   # the zonelist and the field: a version per caller's constants
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
    # The walks of the zonelist, in order, through two zone_take() call sites (it is inlined:
    # each copy costs seconds of compile; the fast walks keep their watermark constant):
    #   fast path (get_page_from_freelist() with ALLOC_WMARK_LOW (+ ALLOC_KSWAPD)):
    #     0. with ALLOC_NOFRAGMENT (Normal preferred, DMA32 present), which never falls back
    #        (alloc_flags_nofragment()); only on the kernel zonelist with MI_NOFRAG
    #     1. without it: the rescan when every zone failed (or the only walk)
    #   slow path (__alloc_pages_slowpath()): the tuner hook, wake_all_kswapds(), then
    #     2. the min watermark with gfp_to_alloc_flags()
    #     3. ALLOC_NO_WATERMARKS when gfp_pfmemalloc_allowed(): those pages are pfmemalloc
    fast = ALLOC_WMARK_LOW | (gfp & GFP_KSWAPD_RECLAIM)
    mt = gfp_migratetype(gfp)
    rb = S.mi[b, MI_RECLAIM_BLK] != 0
    walk = 0 if zlk == ZL_KERNEL and S.mi[b, MI_NOFRAG] != 0 else 1
    while walk < 2:
        for i in range(nzl):
            z = zl[b, zlk, i]
            s = zone_take(S, b, z, n - got, fast, WMARK_LOW, hz, dest, walk == 0, mt, rb)
            scr[b, z] += s
            got += s
            if dest == ZF_CACHE and s > 0:
                lru_add(S, b, z, s, _carried(S, b, z, s) if rb else 0)   # filemap_add_folio() -> folio_add_lru()
            if got == n:
                return got, 0
        walk += 1
    tuner_on_event(S, b, EV_SLOWPATH_ENTRY, gfp, cls, zl[b, zlk, 0], zl[b, zlk, 0] // MAX_NR_ZONES, n - got)
    if gfp & GFP_KSWAPD_RECLAIM:
        wake_all_kswapds(S, b, zlk)
    flags = gfp_to_alloc_flags(gfp)
    pfm = 0
    while walk < 4:
        if walk == 3:
            if not gfp_pfmemalloc_allowed(gfp):
                break
            flags = ALLOC_NO_WATERMARKS | (flags & ALLOC_KSWAPD)
        for i in range(nzl):
            z = zl[b, zlk, i]
            s = zone_take(S, b, z, n - got, flags, WMARK_MIN, hz, dest, False, mt, rb)
            scr[b, z] += s
            got += s
            if dest == ZF_CACHE and s > 0:
                lru_add(S, b, z, s, _carried(S, b, z, s) if rb else 0)
            if walk == 3:
                pfm += s
            if got == n:
                return got, pfm
        walk += 1
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
def direct_reclaim_call_pages(S, b, hz):
    """Pages one try_to_free_pages() call reclaims: do_try_to_free_pages() asks for
    nr_to_reclaim = SWAP_CLUSTER_MAX from priority DEF_PRIORITY down, but shrink_lruvec() does
    not stop at the target at DEF_PRIORITY in direct reclaim ("proportional_reclaim": "it is best
    to do a batch of work at once"), so the first priority scans each list's ``size >> 12``
    whole; if that is short of 32, the next priority stops after one 32-page chunk. The LRU is
    the reclaimable pages of the zones <= hz (page cache, plus anonymous memory with swap) on
    every node: one list each (no active/inactive split)."""
    zs = S.zs
    managed = S.managed
    swap = S.mi[b, MI_SWAP] != 0
    lru = 0
    for z in range(managed.shape[1]):
        if managed[b, z] == 0 or z % MAX_NR_ZONES > hz:
            continue
        lru += zs[b, z, ZF_CACHE]
        if swap:
            lru += zs[b, z, ZF_ANON]
    first = lru >> DEF_PRIORITY
    return first if first >= SWAP_CLUSTER_MAX else first + SWAP_CLUSTER_MAX


@jit(inline="llvm")
def direct_reclaim_calls(S, b, r, per_call):
    """try_to_free_pages() calls that start while ``r`` pages are direct-reclaimed: allocstall
    is counted once when a call starts (do_try_to_free_pages()), and a call reclaims
    ``per_call`` pages at the direct-reclaim rate, so at a rate below ``per_call`` pages a tick
    one call spans ticks. The pages the call in flight has still to reclaim carry over
    (MI_DR_CALL_LEFT, one per machine: the next direct reclaim continues it). A call that
    reclaims nothing is one call and ends the one in flight."""
    left = S.mi[b, MI_DR_CALL_LEFT]
    if r <= 0:
        S.mi[b, MI_DR_CALL_LEFT] = 0
        return 0 if left > 0 else 1
    if r <= left:
        S.mi[b, MI_DR_CALL_LEFT] = left - r
        return 0
    extra = r - left
    calls = -(-extra // per_call)
    S.mi[b, MI_DR_CALL_LEFT] = calls * per_call - extra
    return calls


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
    rate = S.mr[b, MR_DR_RATE]
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
        # the deficit takes ceil(want / per_call) calls of try_to_free_pages(), each reclaiming
        # per_call pages (direct_reclaim_call_pages()) and counting one allocstall
        # (do_try_to_free_pages()): the single-page requests between them take the pages back
        # down to min
        per_call = direct_reclaim_call_pages(S, b, hz)
        want = -(-(n - got) // per_call) * per_call
        cap = int((budget_ms - stalled) * rate)
        if cap < 1:
            cap = 1
        if want > cap:
            want = cap
        r = shrink_zones(S, b, -1, hz, want, SHRINK_BOTH)
        ctr[b, C_ALLOCSTALL0 + hz] += direct_reclaim_calls(S, b, r, per_call)
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
