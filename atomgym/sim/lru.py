"""The node's file LRU in age order (mm/vmscan.c, mm/swap.c), per machine.

Since 4.8 the LRU lists are per node, not per zone: a page-cache folio enters its node's list at
the head (folio_add_lru()), and reclaim isolates folios from the tail, the oldest first, whatever
zone they are in (isolate_lru_folios()); folios of zones above the reclaim's ``reclaim_idx`` are
skipped and spliced back to the head. Which zone's pages a reclaim frees therefore follows the
order in which the cache was read, not each zone's share of it: on a guest whose page cache
filled Normal first, kswapd frees Normal pages and Normal serves the allocations while DMA32's
free pages stand still.

The list is kept as a ring of age buckets per node (``S.lru[b, node, bucket]``: pages per zone
type and the bucket's total; ``S.lrp[b, node]``: the oldest bucket, the buckets in use and the
pages a bucket takes before the next opens, ``LP_*``). Order within a bucket is not kept: a
reclaim that takes part of the oldest bucket takes each eligible zone's pages in proportion.
One list per node (no active/inactive split, no second chance for referenced folios):
docs/simulator.md. Invariant: for each zone, the buckets' pages of its type sum to its page
cache (``ZF_CACHE``).

Whole pageblocks (memory.reclaim_reforms_pageblocks): a bucket also counts, per zone type, its
pages that filled whole free pageblocks the page cache split or claimed (``LRU_BLK + t``; the
buddy allocator hands out a split block's pages in order, so a reader's block holds its pages
in the order it read them). Reclaim frees a bucket's pages together, and __free_one_page()
merges each freed page with its free buddy up to pageblock_order: every ``pageblock_nr_pages``
such pages freed (``ZF_BLK_MERGE`` carries the rest) are a whole free block again, of the
cache's type (``ZF_FREE_BLK`` / ``ZF_FREE_BLK_U``), capped by that type's free pages; with
memory.reclaim_whole_share below 1, only that share of them (the rest keep a page that is not
freed with them: sub-block chunks).
Simplified: which of a bucket's blocks is complete is not known page by page (a pro-rata share);
order within a bucket is kept only between zones' runs of at least LP_QUANTUM / SPLIT_RUN pages
(lru_add()).
"""
from __future__ import annotations

from ..kernel.jit import jit
from ..kernel.zones import MAX_NR_ZONES, PAGEBLOCK_NR_PAGES
from .layout import (
    LP_LEN, LP_QUANTUM, LP_TAIL, LRU_BLK, LRU_BUCKETS, LRU_TOTAL, LRU_W, MI_RECLAIM_WHOLE, ZF_BLK_MERGE, ZF_CACHE,
    ZF_FREE, ZF_FREE_BLK, ZF_FREE_BLK_U, ZF_FREE_R, ZF_FREE_U,
)


SPLIT_RUN = 8      # a bucket of LP_QUANTUM / SPLIT_RUN pages or more closes when another zone's pages come


@jit()
def lru_add(S, b, z, n, blkp):
    """folio_add_lru(): ``n`` page-cache pages of zone ``z`` enter their node's LRU at the head,
    ``blkp`` of them pages of whole pageblocks (module docstring). The head bucket takes them
    while it holds fewer than LP_QUANTUM pages; then a new one opens (if the ring is full the
    head takes them anyway). A new bucket also opens for pages of a zone the head bucket holds
    none of once it holds LP_QUANTUM / SPLIT_RUN pages: a run of one zone's pages (the page cache
    that spilled into DMA when DMA32 first ran out) stays together in LRU order, as the kernel's
    list keeps it, instead of being spread over a bucket's pro-rata reclaim
    (docs/realkernel.md, "Tracepoints")."""
    node = z // MAX_NR_ZONES
    lru = S.lru
    lp = S.lrp
    ln = lp[b, node, LP_LEN]
    h = lp[b, node, LP_TAIL] + ln - 1
    if h >= LRU_BUCKETS:
        h -= LRU_BUCKETS
    t = z - node * MAX_NR_ZONES
    tot = lru[b, node, h, LRU_TOTAL]
    q = lp[b, node, LP_QUANTUM]
    if ln == 0 or ((tot >= q or (lru[b, node, h, t] == 0 and SPLIT_RUN * tot >= q)) and ln < LRU_BUCKETS):
        if ln == 0:
            h = lp[b, node, LP_TAIL]
        else:
            h += 1
            if h == LRU_BUCKETS:
                h = 0
        for w in range(LRU_W):
            lru[b, node, h, w] = 0
        lp[b, node, LP_LEN] = ln + 1
    lru[b, node, h, t] += n
    lru[b, node, h, LRU_TOTAL] += n
    if blkp > 0:
        # a block filled whole is credited to the bucket of its last pages, at most that bucket's
        # pages of the zone (its first pages may be in an older bucket: simplified, not credited)
        room = lru[b, node, h, t] - lru[b, node, h, LRU_BLK + t]
        lru[b, node, h, LRU_BLK + t] += blkp if blkp < room else room


@jit(inline="llvm")
def _evict(S, b, z, row, t, n, unmovable):
    """Free ``n`` pages of zone ``z`` (type ``t``) from the bucket ``row``: page cache -> buddy
    free pages of their pageblocks' type (UNMOVABLE for a block device's cache, MOVABLE
    otherwise)."""
    bp = row[LRU_BLK + t]
    if bp > 0:
        bp = bp if n >= row[t] else (bp * n) // row[t]
        row[LRU_BLK + t] -= bp
    row[t] -= n
    row[LRU_TOTAL] -= n
    zs = S.zs
    zs[b, z, ZF_CACHE] -= n
    zs[b, z, ZF_FREE] += n
    if unmovable:
        zs[b, z, ZF_FREE_U] += n
    if bp > 0:
        _merge_blocks(S, b, z, bp, unmovable)


@jit()
def _merge_blocks(S, b, z, bp, unmovable):
    """__free_one_page()'s merging of ``bp`` freed pages of whole pageblocks (module docstring):
    of each pageblock_nr_pages of them, memory.reclaim_whole_share's count (MI_RECLAIM_WHOLE:
    all by default); each pageblock_nr_pages counted (with ZF_BLK_MERGE's rest) are a whole free
    block of the cache's type, capped by that type's free pages. Simplified: a block that keeps a
    page is sub-block chunks, whatever their orders."""
    zs = S.zs
    m = zs[b, z, ZF_BLK_MERGE] + bp * S.mi[b, MI_RECLAIM_WHOLE] // PAGEBLOCK_NR_PAGES
    k = m // PAGEBLOCK_NR_PAGES
    zs[b, z, ZF_BLK_MERGE] = m - k * PAGEBLOCK_NR_PAGES
    if k == 0:
        return
    f = zs[b, z, ZF_FREE]
    fu = zs[b, z, ZF_FREE_U]
    if unmovable:
        fld = ZF_FREE_BLK_U
        cap = fu // PAGEBLOCK_NR_PAGES
    else:
        fld = ZF_FREE_BLK
        cap = (f - fu - zs[b, z, ZF_FREE_R]) // PAGEBLOCK_NR_PAGES
    x = zs[b, z, fld] + k
    zs[b, z, fld] = x if x < cap else cap


@jit()
def lru_reclaim(S, b, node, hz, x, unmovable):
    """shrink_inactive_list() for the page cache: reclaim up to ``x`` pages of zones 0..hz from
    the tail of the node's LRU (isolate_lru_folios(): the oldest first; folios of zones above
    ``hz`` (sc->reclaim_idx) are skipped and spliced to the head, "this disrupts the LRU order
    when reclaiming for lower zones"). Every isolated page is taken as reclaimed (clean,
    unreferenced). Returns pages reclaimed."""
    if x <= 0:
        return 0
    lru = S.lru
    lp = S.lrp
    base = node * MAX_NR_ZONES
    done = 0
    # each visit takes a bucket whole (its skipped pages go to the head) or ends the reclaim;
    # the buckets in use at the start are visited at most once
    for _ in range(lp[b, node, LP_LEN]):
        ln = lp[b, node, LP_LEN]
        bk = lp[b, node, LP_TAIL]
        row = lru[b, node, bk]
        elig = 0
        for t in range(hz + 1):
            elig += row[t]
        want = x - done
        if elig > want:
            # part of the oldest bucket: each eligible zone in proportion (floor), the rest (fewer
            # pages than zones) in zone order
            left = want
            for t in range(hz + 1):
                k = (want * row[t]) // elig
                if k > 0:
                    _evict(S, b, base + t, row, t, k, unmovable)
                    left -= k
            t = 0
            while left > 0:
                c = row[t]
                if c > 0:
                    k = c if c < left else left
                    _evict(S, b, base + t, row, t, k, unmovable)
                    left -= k
                t += 1
            return x
        for t in range(hz + 1):
            c = row[t]
            if c > 0:
                _evict(S, b, base + t, row, t, c, unmovable)
        done += elig
        if row[LRU_TOTAL] > 0:
            if ln == 1:
                break   # only skipped pages are left, in the only bucket: nothing to splice past
            # splice the skipped pages to the head while this bucket is still in use, so that the
            # head never reopens it (the ring full: the head takes them)
            for t in range(hz + 1, MAX_NR_ZONES):
                c = row[t]
                if c > 0:
                    bp = row[LRU_BLK + t]
                    row[t] = 0
                    row[LRU_BLK + t] = 0
                    row[LRU_TOTAL] -= c
                    lru_add(S, b, base + t, c, bp)
        nxt = bk + 1
        lp[b, node, LP_TAIL] = nxt if nxt < LRU_BUCKETS else 0
        lp[b, node, LP_LEN] -= 1   # (the splice may have opened a head bucket)
        if done >= x:
            break
    return done
