"""Zone types, page geometry and kernel-version features (include/linux/mmzone.h).

atomgym models x86-64 without CONFIG_HIGHMEM: every node has the five zones that
/proc/zoneinfo prints, in this order, empty or not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# enum zone_type (include/linux/mmzone.h), x86-64, CONFIG_ZONE_DMA/DMA32/DEVICE on.
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
ZONE_DEVICE = 4
MAX_NR_ZONES = 5
ZONE_NAMES: tuple[str, ...] = ("DMA", "DMA32", "Normal", "Movable", "Device")

PAGE_SHIFT = 12
PAGE_KB = 1 << (PAGE_SHIFT - 10)  # 4 KiB pages: min_free_kbytes >> (PAGE_SHIFT - 10)
PAGEBLOCK_ORDER = 9
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER  # 512 on x86-64 (HPAGE_PMD_ORDER)
MIGRATE_PCPTYPES = 3
SWAP_CLUSTER_MAX = 32
MAX_RECLAIM_RETRIES = 16  # mm/internal.h

# sysctl defaults (mm/page_alloc.c)
DEFAULT_WATERMARK_SCALE_FACTOR = 10
DEFAULT_WATERMARK_BOOST_FACTOR = 15000
DEFAULT_LOWMEM_RESERVE_RATIO: tuple[int, ...] = (256, 256, 32, 0, 0)


@dataclass(frozen=True, order=True)
class KernelVersion:
    """A kernel release, reduced to what changes the arithmetic we model."""

    major: int
    minor: int
    release: str = ""
    # When a snapshot itself shows which ZONE_MOVABLE rule its kernel applies (an empty
    # Movable zone prints min 32 when clamped, 0 when proportional), that wins over the
    # release threshold below, which is not verified to the exact release.
    movable_override: bool | None = field(default=None, compare=False)

    # The newest behaviour we model; assumed when a snapshot names no release.
    @classmethod
    def newest(cls) -> "KernelVersion":
        return cls(6, 18, "6.18 (assumed: no osrelease given)")

    @classmethod
    def parse(cls, text: str) -> "KernelVersion":
        m = re.match(r"\s*(\d+)\.(\d+)", text)
        if not m:
            raise ValueError(f"cannot read a kernel version from {text.strip()!r} (expected e.g. '6.1.0-56-amd64')")
        return cls(int(m.group(1)), int(m.group(2)), text.strip())

    @property
    def movable_min_clamped(self) -> bool:
        """ZONE_MOVABLE treated like highmem in __setup_per_zone_wmarks().

        Newer kernels leave ZONE_MOVABLE out of lowmem_pages and give it
        min = clamp(managed/1024, SWAP_CLUSTER_MAX, 128) ("mm/min_free_kbytes: modify
        min_free_kbytes calculation rules", liuq, v3 posted 2023-06-21 to linux-mm; an
        earlier identical proposal, Ma Wupeng's "mm: Cap zone movable's min wmark to small
        value" of 2022-08, was not merged). 6.1 (observed) gives a populated ZONE_MOVABLE a
        proportional share; 6.18 (observed) clamps. The merge release is NOT verified: a
        patch posted in late June 2023 lands in 6.5 at the earliest, more likely 6.6, so
        we switch at 6.6. Releases 6.2-6.5 are uncertain; `movable_override` (set from the
        snapshot's own Movable zones) takes precedence.
        """
        if self.movable_override is not None:
            return self.movable_override
        return (self.major, self.minor) >= (6, 6)

    def __str__(self) -> str:
        return self.release or f"{self.major}.{self.minor}"


def zone_label(z: int) -> str:
    """/proc/zoneinfo's name of zone index z (node-major): "Node 0, zone Normal"."""
    return f"Node {z // MAX_NR_ZONES}, zone {ZONE_NAMES[z % MAX_NR_ZONES]}"
