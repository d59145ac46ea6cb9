"""watermark_boost: boost_watermark() in mm/page_alloc.c."""
from __future__ import annotations

from .jit import jit

from .watermarks import WMARK_HIGH, mult_frac
from .zones import PAGEBLOCK_NR_PAGES


@jit()
def boost_watermark(managed_z, high_z, boost_z, watermark_boost_factor, step):
    """boost_watermark(zone): returns (new_boost, boosted).

    No-op when the factor is 0, when the zone is smaller than 4 pageblocks, or when
    ``high * factor / 10000`` is 0; otherwise ``boost = min(boost + step, max_boost)``
    with ``max_boost = max(pageblock_nr_pages, high * factor / 10000)``.
    ``step`` is pageblock_nr_pages in the kernel; the patch series reuse the rule with
    other steps (v4: max(512, managed >> 10)). ``high_z`` is the *unboosted*
    ``_watermark[WMARK_HIGH]``.
    """
    if watermark_boost_factor == 0:
        return boost_z, False
    if PAGEBLOCK_NR_PAGES * 4 > managed_z:
        return boost_z, False
    max_boost = mult_frac(high_z, watermark_boost_factor, 10000)
    if max_boost == 0:
        return boost_z, False
    if max_boost < PAGEBLOCK_NR_PAGES:
        max_boost = PAGEBLOCK_NR_PAGES
    nb = boost_z + step
    if nb > max_boost:
        nb = max_boost
    return nb, True


@jit()
def boost_watermark_zone(managed, wmark, boost, z, watermark_boost_factor, step):
    """boost_watermark() applied in place to zone ``z`` of one machine's arrays."""
    nb, ok = boost_watermark(managed[z], wmark[z, WMARK_HIGH], boost[z], watermark_boost_factor, step)
    boost[z] = nb
    return ok
