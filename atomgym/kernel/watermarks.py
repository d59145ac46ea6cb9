"""Static watermark arithmetic, exactly as mm/page_alloc.c and mm/khugepaged.c do it.

Every function here is compiled with numba and works on plain int64 arrays, so the
static kernel model (`Machine`), the simulator's compiled loop and the in-kernel tuners
all call the *same* code: there is no second copy of any rule.

Array conventions (one machine): zones are flattened node-major, ``z = node * 5 + type``;
``ztype[z]`` is the zone type (zones.py), ``managed[z]`` the managed pages,
``wmark[z, 0..3]`` the *unboosted* ``_watermark[WMARK_MIN/LOW/HIGH/PROMO]``,
``boost[z]`` ``watermark_boost``, ``reserve[z, j]`` ``lowmem_reserve[j]``.
"""
from __future__ import annotations

import numpy as np
from .jit import jit

from .zones import (
    MAX_NR_ZONES,
    MIGRATE_PCPTYPES,
    PAGE_KB,
    PAGEBLOCK_NR_PAGES,
    SWAP_CLUSTER_MAX,
    ZONE_MOVABLE,
    ZONE_NORMAL,
)

WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3
NR_WMARK = 4

# calculate_min_free_kbytes(): clamp(new, 128, 262144). The ceiling was 65536 in 4.x/5.x kernels
# and raised to 262144 before 6.1 (release of the change not verified; every kernel atomgym
# models, 6.1+, uses 262144, and it bounds only the computed default, never a user write).
MIN_FREE_KBYTES_FLOOR = 128
MIN_FREE_KBYTES_CEIL = 262144


@jit(inline="llvm")
def mult_frac(x, n, d):
    """include/linux/math.h mult_frac(): x * n / d without overflowing x * n."""
    q = x // d
    r = x % d
    return q * n + (r * n) // d


@jit()
def int_sqrt(x):
    """lib/math/int_sqrt.c: floor(sqrt(x)) for x >= 0, exact in integers."""
    if x <= 1:
        return x
    r = np.int64(np.sqrt(np.float64(x)))
    while r * r > x:
        r -= 1
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


@jit()
def setup_per_zone_wmarks(managed, ztype, min_free_kbytes, watermark_scale_factor,
                          movable_min_clamped, wmark, boost):
    """__setup_per_zone_wmarks(): recompute min/low/high/promo of every zone.

    Clears every zone's watermark_boost (``zone->watermark_boost = 0``).
    ``movable_min_clamped``: newer kernels treat ZONE_MOVABLE like highmem (left out
    of lowmem_pages, min = clamp(managed/1024, SWAP_CLUSTER_MAX, 128)); 6.1 does not.
    """
    pages_min = min_free_kbytes // PAGE_KB  # min_free_kbytes >> (PAGE_SHIFT - 10)
    nz = managed.shape[0]
    lowmem_pages = 0
    for z in range(nz):
        # "!is_highmem(zone) && zone_idx(zone) != ZONE_MOVABLE" (no highmem on x86-64)
        if not (movable_min_clamped and ztype[z] == ZONE_MOVABLE):
            lowmem_pages += managed[z]
    for z in range(nz):
        m = managed[z]
        # tmp = (u64)pages_min * managed; do_div(tmp, lowmem_pages)
        tmp = (pages_min * m) // lowmem_pages if lowmem_pages > 0 else 0
        if movable_min_clamped and ztype[z] == ZONE_MOVABLE:
            mp = m // 1024
            if mp < SWAP_CLUSTER_MAX:
                mp = SWAP_CLUSTER_MAX
            if mp > 128:
                mp = 128
            wmark[z, WMARK_MIN] = mp
        else:
            wmark[z, WMARK_MIN] = tmp
        # tmp = max_t(u64, tmp >> 2, mult_frac(managed, watermark_scale_factor, 10000))
        gap = tmp >> 2
        g2 = mult_frac(m, watermark_scale_factor, 10000)
        if g2 > gap:
            gap = g2
        boost[z] = 0
        wmark[z, WMARK_LOW] = wmark[z, WMARK_MIN] + gap
        wmark[z, WMARK_HIGH] = wmark[z, WMARK_LOW] + gap
        wmark[z, WMARK_PROMO] = wmark[z, WMARK_HIGH] + gap


@jit()
def setup_per_zone_lowmem_reserve(managed, lowmem_reserve_ratio, reserve):
    """setup_per_zone_lowmem_reserve(): the "protection" array of every zone.

    For zone i of a node and each higher zone j of the same node:
    ``lowmem_reserve[j] = sum(managed[i+1..j]) / ratio[i]``; all 0 when the ratio is 0
    or zone i has no managed pages.
    """
    nz = managed.shape[0]
    for base in range(0, nz, MAX_NR_ZONES):
        for i in range(MAX_NR_ZONES):
            for j in range(MAX_NR_ZONES):
                reserve[base + i, j] = 0
        for i in range(MAX_NR_ZONES - 1):
            ratio = lowmem_reserve_ratio[i]
            clear = ratio == 0 or managed[base + i] == 0
            acc = 0
            for j in range(i + 1, MAX_NR_ZONES):
                acc += managed[base + j]
                reserve[base + i, j] = 0 if clear else acc // ratio


@jit()
def nr_free_buffer_pages(managed, ztype, wmark, boost):
    """nr_free_buffer_pages() = nr_free_zone_pages(gfp_zone(GFP_USER)).

    Sum over the local node's fallback zonelist (which lists every node's populated
    zones) of zones up to ZONE_NORMAL of ``managed - high_wmark_pages(zone)`` where
    managed > high; high_wmark_pages() includes the boost.
    """
    s = 0
    for z in range(managed.shape[0]):
        if ztype[z] <= ZONE_NORMAL:
            high = wmark[z, WMARK_HIGH] + boost[z]
            if managed[z] > high:
                s += managed[z] - high
    return s


@jit()
def calculate_min_free_kbytes(managed, ztype, wmark, boost, min_free_kbytes, user_min_free_kbytes):
    """calculate_min_free_kbytes(): returns the new min_free_kbytes.

    ``new = int_sqrt(lowmem_kbytes * 16)``; applied, clamped to [128, 262144], only if
    ``new > user_min_free_kbytes`` (-1 until the sysctl is written); otherwise the
    current value stays.
    """
    lowmem_kbytes = nr_free_buffer_pages(managed, ztype, wmark, boost) * PAGE_KB
    new = int_sqrt(lowmem_kbytes * 16)
    if new > user_min_free_kbytes:
        if new < MIN_FREE_KBYTES_FLOOR:
            new = MIN_FREE_KBYTES_FLOOR
        if new > MIN_FREE_KBYTES_CEIL:
            new = MIN_FREE_KBYTES_CEIL
        return new
    return min_free_kbytes


@jit()
def thp_recommended_min_free_kbytes(managed, ztype, wmark, boost):
    """The value set_recommended_min_free_kbytes() (mm/khugepaged.c) recommends, in kB.

    ``pageblock_nr_pages * nr_zones * (2 + MIGRATE_PCPTYPES^2)`` pages over populated
    zones with index <= ZONE_NORMAL on all nodes, capped at 5 % of
    nr_free_buffer_pages(). The caller applies it only if it is larger than the
    current min_free_kbytes.
    """
    nr_zones = 0
    for z in range(managed.shape[0]):
        # for_each_populated_zone; "zone_idx(zone) > gfp_zone(GFP_USER)" skipped
        if managed[z] > 0 and ztype[z] <= ZONE_NORMAL:
            nr_zones += 1
    rec = PAGEBLOCK_NR_PAGES * nr_zones * 2
    rec += PAGEBLOCK_NR_PAGES * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    cap = nr_free_buffer_pages(managed, ztype, wmark, boost) // 20
    if cap < rec:
        rec = cap
    return rec * PAGE_KB
