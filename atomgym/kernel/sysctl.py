"""What a sysctl write does to the watermarks (the proc handlers in mm/page_alloc.c and
mm/huge_memory.c / mm/khugepaged.c), as compiled functions over one machine's arrays.

The static model (`Machine.write`) and the simulator's knob writers (sim/knobs.py) both call
these. The sysctls' valid ranges are defined here once (``SYSCTL_RANGES``) and checked by every
writer's Python side (Machine.write, snapshots, scenario files, Simulator.set_knobs). Its keys are
the simulator's sysctls (sim/knobs.py ``KNOBS``; adding one: docs/simulator.md).
"""
from __future__ import annotations

from .jit import jit

from .watermarks import (
    MIN_FREE_KBYTES_CEIL,
    MIN_FREE_KBYTES_FLOOR,
    calculate_min_free_kbytes,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    thp_recommended_min_free_kbytes,
)

INT_MAX = 2**31 - 1
# The valid values of the vm sysctls the model writes: extra1/extra2 of their entries in
# page_alloc_sysctl_table (mm/page_alloc.c); a write outside them fails with EINVAL.
MIN_FREE_KBYTES_MIN, MIN_FREE_KBYTES_MAX = 0, INT_MAX   # min_free_kbytes: extra1 SYSCTL_ZERO
WSF_MIN, WSF_MAX = 1, 3000          # watermark_scale_factor: extra1 SYSCTL_ONE, extra2 SYSCTL_THREE_THOUSAND
WBF_MIN, WBF_MAX = 0, INT_MAX       # watermark_boost_factor: extra1 SYSCTL_ZERO
SYSCTL_RANGES: dict[str, tuple[int, int]] = {
    "min_free_kbytes": (MIN_FREE_KBYTES_MIN, MIN_FREE_KBYTES_MAX),
    "watermark_scale_factor": (WSF_MIN, WSF_MAX),
    "watermark_boost_factor": (WBF_MIN, WBF_MAX),
}
THP_MODES = ("always", "madvise", "never")

# (MIN_FREE_KBYTES_FLOOR/CEIL, from kernel/watermarks.py: calculate_min_free_kbytes()'s clamp of the
# computed default, 128..262144 kB; not the sysctl's range, which any write may leave)
__all__ = [
    "INT_MAX", "MIN_FREE_KBYTES_MIN", "MIN_FREE_KBYTES_MAX", "WSF_MIN", "WSF_MAX", "WBF_MIN", "WBF_MAX",
    "SYSCTL_RANGES", "THP_MODES", "MIN_FREE_KBYTES_FLOOR", "MIN_FREE_KBYTES_CEIL",
    "write_min_free_kbytes", "write_watermark_scale_factor", "set_recommended_min_free_kbytes",
    "write_lowmem_reserve_ratio",
]


@jit()
def write_min_free_kbytes(value, managed, ztype, wsf, movable_clamped, wmark, boost):
    """min_free_kbytes_sysctl_handler(): min_free_kbytes = user_min_free_kbytes = value,
    then setup_per_zone_wmarks() (clears every boost). Returns the new value."""
    setup_per_zone_wmarks(managed, ztype, value, wsf, movable_clamped, wmark, boost)
    return value


@jit()
def write_watermark_scale_factor(value, managed, ztype, min_free_kbytes, movable_clamped, wmark, boost):
    """watermark_scale_factor_sysctl_handler(): setup_per_zone_wmarks() (clears boosts)."""
    setup_per_zone_wmarks(managed, ztype, min_free_kbytes, value, movable_clamped, wmark, boost)


@jit()
def set_recommended_min_free_kbytes(thp_enabled, managed, ztype, wsf, movable_clamped, wmark, boost,
                                    min_free_kbytes, user_min_free_kbytes):
    """set_recommended_min_free_kbytes() (mm/khugepaged.c), run on every write to THP
    ``enabled``. THP off: calculate_min_free_kbytes(). THP on: raise to the
    recommendation if larger (never lowers). Always followed by setup_per_zone_wmarks().
    Returns the new min_free_kbytes (user_min_free_kbytes is not changed)."""
    if not thp_enabled:
        min_free = calculate_min_free_kbytes(managed, ztype, wmark, boost, min_free_kbytes, user_min_free_kbytes)
    else:
        min_free = min_free_kbytes
        rec = thp_recommended_min_free_kbytes(managed, ztype, wmark, boost)
        if rec > min_free:
            min_free = rec
    setup_per_zone_wmarks(managed, ztype, min_free, wsf, movable_clamped, wmark, boost)
    return min_free


@jit()
def write_lowmem_reserve_ratio(ratio, managed, reserve):
    """lowmem_reserve_ratio_sysctl_handler(): values < 1 become 0, then
    setup_per_zone_lowmem_reserve(). ``ratio`` is modified in place."""
    for i in range(ratio.shape[0]):
        if ratio[i] < 1:
            ratio[i] = 0
    setup_per_zone_lowmem_reserve(managed, ratio, reserve)
