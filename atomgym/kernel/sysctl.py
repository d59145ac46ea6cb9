"""What a sysctl write does to the watermarks (the proc handlers in mm/page_alloc.c and
mm/huge_memory.c / mm/khugepaged.c), as compiled functions over one machine's arrays.

The static model (`Machine.write`) and the simulator's knob writers (sim/knobs.py) both call
these. The sysctls the model writes are defined here once, one row each of ``SYSCTLS`` (name,
valid range, boot default, unit, doc, store-only or not); everything else is derived from it: the
ranges (``SYSCTL_RANGES``, checked by every writer's Python side: Machine.write, snapshots,
scenario files, Simulator.set_knobs), the simulator's knobs and their machine integers
(sim/knobs.py ``KNOBS``, sim/layout.py ``MI_NAMES``), the ``Machine`` attributes and the scenario
keys (sim/scenario.py ``SysctlSpec``). Adding one: docs/simulator.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from .jit import jit

from .watermarks import (
    MIN_FREE_KBYTES_CEIL,
    MIN_FREE_KBYTES_FLOOR,
    calculate_min_free_kbytes,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    thp_recommended_min_free_kbytes,
)
from .zones import DEFAULT_WATERMARK_BOOST_FACTOR, DEFAULT_WATERMARK_SCALE_FACTOR

INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Sysctl:
    """One vm sysctl of the model: its entry in the kernel's proc table (page_alloc_sysctl_table in
    mm/page_alloc.c for the watermark sysctls; cite the table and its extra1/extra2 in a comment)."""

    name: str            # /proc/sys/vm/<name>: the Machine attribute, machine integer, knob and scenario key
    lo: int              # valid range: the entry's extra1/extra2 (a write outside fails with EINVAL)
    hi: int
    default: int | None  # boot value (None: computed at boot, the scenario key defaults to null)
    unit: str
    doc: str             # the scenario key's one-line doc
    store_only: bool     # True: proc_dointvec_minmax only stores the value (generic writers);
    #                      False: a proc handler recomputes something (its rule function below, and its
    #                      own writer in sim/knobs.py and branch in Machine.write())


# The sysctls the model writes, in knob-id order (sim/knobs.py KNOBS); the watermark ones are entries of
# page_alloc_sysctl_table (mm/page_alloc.c).
SYSCTLS: tuple[Sysctl, ...] = (
    # extra1 SYSCTL_ZERO; min_free_kbytes_sysctl_handler(); boot: calculate_min_free_kbytes()
    Sysctl("min_free_kbytes", 0, INT_MAX, None, "kB", "vm.min_free_kbytes; null = the kernel's boot value",
           store_only=False),
    # extra1 SYSCTL_ONE, extra2 SYSCTL_THREE_THOUSAND; watermark_scale_factor_sysctl_handler()
    Sysctl("watermark_scale_factor", 1, 3000, DEFAULT_WATERMARK_SCALE_FACTOR, "1/10000",
           "vm.watermark_scale_factor", store_only=False),
    # extra1 SYSCTL_ZERO; proc_dointvec_minmax (read by boost_watermark())
    Sysctl("watermark_boost_factor", 0, INT_MAX, DEFAULT_WATERMARK_BOOST_FACTOR, "1/10000",
           "vm.watermark_boost_factor", store_only=True),
)
SYSCTL_BY_NAME: dict[str, Sysctl] = {s.name: s for s in SYSCTLS}
SYSCTL_RANGES: dict[str, tuple[int, int]] = {s.name: (s.lo, s.hi) for s in SYSCTLS}
STORE_ONLY_SYSCTLS: tuple[str, ...] = tuple(s.name for s in SYSCTLS if s.store_only)
for _s in SYSCTLS:
    if not (_s.lo <= _s.hi and (_s.default is None or _s.lo <= _s.default <= _s.hi)):
        raise ValueError(f"kernel/sysctl.py: sysctl {_s.name!r}: boot default {_s.default} outside its range "
                         f"{_s.lo}..{_s.hi}")
    if _s.store_only and _s.default is None:
        raise ValueError(f"kernel/sysctl.py: store-only sysctl {_s.name!r} needs a boot default")
if len(SYSCTL_BY_NAME) != len(SYSCTLS):
    raise ValueError("kernel/sysctl.py: SYSCTLS names a sysctl twice")
MIN_FREE_KBYTES_MIN, MIN_FREE_KBYTES_MAX = SYSCTL_RANGES["min_free_kbytes"]
WSF_MIN, WSF_MAX = SYSCTL_RANGES["watermark_scale_factor"]
WBF_MIN, WBF_MAX = SYSCTL_RANGES["watermark_boost_factor"]
THP_MODES = ("always", "madvise", "never")

# (MIN_FREE_KBYTES_FLOOR/CEIL, from kernel/watermarks.py: calculate_min_free_kbytes()'s clamp of the
# computed default, 128..262144 kB; not the sysctl's range, which any write may leave)
__all__ = [
    "INT_MAX", "MIN_FREE_KBYTES_MIN", "MIN_FREE_KBYTES_MAX", "WSF_MIN", "WSF_MAX", "WBF_MIN", "WBF_MAX",
    "Sysctl", "SYSCTLS", "SYSCTL_BY_NAME", "SYSCTL_RANGES", "STORE_ONLY_SYSCTLS", "THP_MODES",
    "MIN_FREE_KBYTES_FLOOR", "MIN_FREE_KBYTES_CEIL",
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
