"""Which allocation may take which page: mm/page_alloc.c __zone_watermark_ok(),
zone_watermark_fast() and gfp_to_alloc_flags(), for order-0 requests.

GFP bits are the >= 6.8 values (include/linux/gfp_types.h): GFP_ATOMIC = 0x820,
GFP_KERNEL = 0xcc0, GFP_NOWAIT = 0x2800. ALLOC_* bits are mm/internal.h's (6.3+ names:
ALLOC_MIN_RESERVE was ALLOC_HIGH, ALLOC_NON_BLOCK replaced ALLOC_HARDER; the arithmetic
for GFP_ATOMIC is the same on 6.1: min - min/2, then - min/4 of that).
"""
from __future__ import annotations

from .jit import jit
from .zones import ZONE_MOVABLE, ZONE_NORMAL

# include/linux/gfp_types.h (>= 6.8 bit layout)
GFP_HIGHMEM = 0x02       # with __GFP_MOVABLE, gfp_zone() == ZONE_MOVABLE
GFP_MOVABLE = 0x08       # gfp_migratetype() == MIGRATE_MOVABLE (page cache of files, anonymous memory)
GFP_RECLAIMABLE = 0x10   # gfp_migratetype() == MIGRATE_RECLAIMABLE (slab caches with SLAB_RECLAIM_ACCOUNT)
GFP_HIGH = 0x20
GFP_IO = 0x40
GFP_FS = 0x80
GFP_DIRECT_RECLAIM = 0x400
GFP_KSWAPD_RECLAIM = 0x800
GFP_NOWARN = 0x2000
GFP_MEMALLOC = 0x20000
GFP_NOMEMALLOC = 0x80000
GFP_RECLAIM = GFP_DIRECT_RECLAIM | GFP_KSWAPD_RECLAIM
GFP_ATOMIC = GFP_HIGH | GFP_KSWAPD_RECLAIM                # 0x820
GFP_KERNEL = GFP_RECLAIM | GFP_IO | GFP_FS                # 0xcc0
GFP_NOWAIT = GFP_KSWAPD_RECLAIM | GFP_NOWARN              # 0x2800
GFP_USER = GFP_KERNEL          # __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL (cpusets: not modelled)
GFP_HIGHUSER_MOVABLE = GFP_USER | GFP_HIGHMEM | GFP_MOVABLE   # anonymous memory, a file's page cache
# a page cache's mapping mask by name (scenario key memory.page_cache_gfp): a file's; a block
# device's own (bdev_alloc(): mapping_set_gfp_mask(&inode->i_data, GFP_USER))
PAGE_CACHE_GFPS = {"GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE, "GFP_USER": GFP_USER}

# include/linux/mmzone.h enum migratetype (the pcp types)
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2

# mm/internal.h
ALLOC_WMARK_MIN = 0x00
ALLOC_WMARK_LOW = 0x01
ALLOC_WMARK_HIGH = 0x02
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20   # == __GFP_HIGH
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800       # == __GFP_KSWAPD_RECLAIM
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM


@jit(inline="llvm")
def gfp_zone(gfp_mask):
    """gfp_zone() (GFP_ZONE_TABLE) for the masks modelled (no __GFP_DMA/__GFP_DMA32 requests):
    __GFP_MOVABLE with __GFP_HIGHMEM is ZONE_MOVABLE; __GFP_MOVABLE alone, or neither, ZONE_NORMAL
    (x86-64 has no highmem: __GFP_HIGHMEM alone is ZONE_NORMAL too). The zonelist an allocation
    walks starts at this zone."""
    if gfp_mask & (GFP_MOVABLE | GFP_HIGHMEM) == GFP_MOVABLE | GFP_HIGHMEM:
        return ZONE_MOVABLE
    return ZONE_NORMAL


@jit(inline="llvm")
def gfp_migratetype(gfp_mask):
    """gfp_migratetype(): the __GFP_MOVABLE / __GFP_RECLAIMABLE bits (GFP_MOVABLE_MASK) give the
    request's migratetype; neither is MIGRATE_UNMOVABLE."""
    if gfp_mask & GFP_MOVABLE:
        return MIGRATE_MOVABLE
    if gfp_mask & GFP_RECLAIMABLE:
        return MIGRATE_RECLAIMABLE
    return MIGRATE_UNMOVABLE


@jit(inline="llvm")
def gfp_to_alloc_flags(gfp_mask):
    """gfp_to_alloc_flags() for order 0 (slow path): ALLOC_WMARK_MIN plus reserve access."""
    flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    flags |= gfp_mask & (GFP_HIGH | GFP_KSWAPD_RECLAIM)
    if not (gfp_mask & GFP_DIRECT_RECLAIM):
        if not (gfp_mask & GFP_NOMEMALLOC):
            flags |= ALLOC_NON_BLOCK
        if flags & ALLOC_MIN_RESERVE:
            flags &= ~ALLOC_CPUSET
    return flags


@jit(inline="llvm")
def gfp_pfmemalloc_allowed(gfp_mask):
    """__gfp_pfmemalloc_flags() != 0 for a softirq caller: __GFP_MEMALLOC without __GFP_NOMEMALLOC."""
    return (gfp_mask & GFP_MEMALLOC) != 0 and (gfp_mask & GFP_NOMEMALLOC) == 0


@jit(inline="llvm")
def zone_watermark_unusable_free(alloc_flags, nr_reserved_highatomic, free_cma):
    """__zone_watermark_unusable_free() for order 0: (1 << 0) - 1 = 0, plus the highatomic
    reserve when no reserve flag is set, plus free CMA pages (non-movable requests)."""
    unusable = 0
    if not (alloc_flags & ALLOC_RESERVES):
        unusable += nr_reserved_highatomic
    if not (alloc_flags & ALLOC_CMA):
        unusable += free_cma
    return unusable


@jit(inline="llvm")
def reserve_adjusted_min(mark, alloc_flags):
    """The mark as __zone_watermark_ok() lowers it by reserve access.

    __GFP_HIGH (ALLOC_MIN_RESERVE): ``min -= min / 2``; non-blocking on top
    (GFP_ATOMIC, ALLOC_NON_BLOCK): ``min -= min / 4`` -> about 3/8 of min;
    OOM victims: ``min -= min / 2`` again.
    """
    m = mark
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            m -= m // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                m -= m // 4
        if alloc_flags & ALLOC_OOM:
            m -= m // 2
    return m


@jit(inline="llvm")
def zone_watermark_ok(free_pages, mark, lowmem_reserve_hz, alloc_flags,
                      nr_reserved_highatomic=0, free_cma=0):
    """__zone_watermark_ok() for order 0: fails when
    ``free - unusable <= reserve_adjusted_min(mark) + lowmem_reserve[highest_zoneidx]``."""
    free = free_pages - zone_watermark_unusable_free(alloc_flags, nr_reserved_highatomic, free_cma)
    m = reserve_adjusted_min(mark, alloc_flags)
    return free > m + lowmem_reserve_hz


@jit(inline="llvm")
def zone_watermark_fast(free_pages, wmark_unboosted, boost, lowmem_reserve_hz, alloc_flags,
                        nr_reserved_highatomic=0, free_cma=0):
    """zone_watermark_fast() for order 0.

    ``wmark_unboosted`` is ``_watermark[alloc_flags & ALLOC_WMARK_MASK]``; the mark the
    kernel passes in is that plus the boost (wmark_pages()). After the full check fails,
    an order-0 ALLOC_MIN_RESERVE request at the min mark is re-checked against the
    *unboosted* min: boost never tightens GFP_ATOMIC's threshold.
    """
    mark = wmark_unboosted + boost
    reserved = zone_watermark_unusable_free(alloc_flags, nr_reserved_highatomic, free_cma)
    usable = free_pages - (reserved if reserved < free_pages else free_pages)
    if usable > mark + lowmem_reserve_hz:
        return True
    if zone_watermark_ok(free_pages, mark, lowmem_reserve_hz, alloc_flags,
                         nr_reserved_highatomic, free_cma):
        return True
    if (alloc_flags & ALLOC_MIN_RESERVE) and boost > 0 and (alloc_flags & ALLOC_WMARK_MASK) == ALLOC_WMARK_MIN:
        return zone_watermark_ok(free_pages, wmark_unboosted, lowmem_reserve_hz, alloc_flags,
                                 nr_reserved_highatomic, free_cma)
    return False
