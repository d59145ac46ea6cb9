"""The kernel model: static watermark arithmetic of mm/page_alloc.c, pure numpy/numba.

No gymnasium import here or below: the simulator, the environments, the baselines and
the CLIs all call this code.
"""
from .machine import WRITABLE_KEYS, Machine, SysctlError
from .zones import MAX_NR_ZONES, PAGE_KB, PAGEBLOCK_NR_PAGES, ZONE_NAMES, KernelVersion

__all__ = ["Machine", "SysctlError", "WRITABLE_KEYS", "KernelVersion", "MAX_NR_ZONES", "PAGE_KB",
           "PAGEBLOCK_NR_PAGES", "ZONE_NAMES"]
