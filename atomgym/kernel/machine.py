"""One machine's static memory-management state: zones, sysctls, watermarks.

Primary inputs are stored (managed pages, sysctls, THP mode, kernel version); the
watermarks and protection are derived by the compiled kernel functions in
watermarks.py / sysctl.py. The simulator starts from a `Machine`.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np

from . import sysctl as _sysctl
from .boost import boost_watermark_zone
from .watermarks import (
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    calculate_min_free_kbytes,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
)
from .zones import (
    DEFAULT_LOWMEM_RESERVE_RATIO,
    DEFAULT_WATERMARK_SCALE_FACTOR,
    MAX_NR_ZONES,
    PAGE_KB,
    PAGEBLOCK_NR_PAGES,
    ZONE_NAMES,
    KernelVersion,
)

THP_BOOT_MIN_BYTES = 512 << 20  # hugepage_init(): THP off by default below 512 MiB of RAM


class SysctlError(ValueError):
    """A sysctl write the kernel would reject (names the key and the valid range)."""


def _store_only_sysctl_fields(cls: type) -> type:
    """Before @dataclass: an ``int`` field per store-only sysctl of kernel/sysctl.py SYSCTLS, of its
    name and boot default, right after ``watermark_scale_factor`` (the attributes with a handler are
    written out in the class)."""
    ann: dict[str, object] = {}
    for k, v in cls.__dict__.get("__annotations__", {}).items():
        ann[k] = v
        if k == "watermark_scale_factor":
            for s in _sysctl.SYSCTLS:
                if s.store_only:
                    ann[s.name] = "int"
                    setattr(cls, s.name, s.default)
    cls.__annotations__ = ann
    return cls


@dataclass
@_store_only_sysctl_fields
class Machine:
    """Zones of every node (node-major, 5 per node) and the sysctls that shape them (one
    attribute per sysctl of kernel/sysctl.py SYSCTLS, of its name; the store-only ones, e.g.
    ``watermark_boost_factor``, are added from that table)."""

    managed: np.ndarray                       # int64[Z]
    version: KernelVersion = field(default_factory=KernelVersion.newest)
    present: np.ndarray | None = None         # int64[Z], informational
    spanned: np.ndarray | None = None         # int64[Z], informational
    min_free_kbytes: int = 0
    user_min_free_kbytes: int = -1            # -1 until vm.min_free_kbytes is written
    watermark_scale_factor: int = DEFAULT_WATERMARK_SCALE_FACTOR
    # (here: an int field per store-only sysctl, its boot default; _store_only_sysctl_fields)
    lowmem_reserve_ratio: np.ndarray = field(
        default_factory=lambda: np.array(DEFAULT_LOWMEM_RESERVE_RATIO, dtype=np.int64))
    thp: str = "always"
    wmark: np.ndarray = field(init=False)     # int64[Z, 4], unboosted
    boost: np.ndarray = field(init=False)     # int64[Z]
    reserve: np.ndarray = field(init=False)   # int64[Z, 5]

    def __post_init__(self) -> None:
        self.managed = np.ascontiguousarray(self.managed, dtype=np.int64)
        if self.managed.ndim != 1 or self.managed.size % MAX_NR_ZONES or self.managed.size == 0:
            raise ValueError(f"managed must list {MAX_NR_ZONES} zones per node, got {self.managed.size} values")
        if (self.managed < 0).any():
            raise ValueError("managed pages cannot be negative")
        if self.managed.sum() == 0:
            raise ValueError("the machine has no managed pages")
        z = self.managed.size
        self.present = self.managed.copy() if self.present is None else np.asarray(self.present, dtype=np.int64)
        self.spanned = self.present.copy() if self.spanned is None else np.asarray(self.spanned, dtype=np.int64)
        self.lowmem_reserve_ratio = np.array(self.lowmem_reserve_ratio, dtype=np.int64)
        self.wmark = np.zeros((z, 4), dtype=np.int64)
        self.boost = np.zeros(z, dtype=np.int64)
        self.reserve = np.zeros((z, MAX_NR_ZONES), dtype=np.int64)
        if self.thp not in _sysctl.THP_MODES:
            raise ValueError(f"thp must be one of {_sysctl.THP_MODES}, got {self.thp!r}")

    # ---- layout -------------------------------------------------------------------
    @property
    def nr_nodes(self) -> int:
        return self.managed.size // MAX_NR_ZONES

    @property
    def ztype(self) -> np.ndarray:
        return np.tile(np.arange(MAX_NR_ZONES, dtype=np.int64), self.nr_nodes)

    @property
    def node(self) -> np.ndarray:
        return np.repeat(np.arange(self.nr_nodes, dtype=np.int64), MAX_NR_ZONES)

    @property
    def total_pages(self) -> int:
        """totalram_pages(): every zone's managed pages."""
        return int(self.managed.sum())

    @property
    def thp_enabled(self) -> bool:
        """hugepage_flags_enabled(): `always` or `madvise`."""
        return self.thp != "never"

    # ---- derived state ------------------------------------------------------------
    def setup_per_zone_wmarks(self) -> None:
        setup_per_zone_wmarks(self.managed, self.ztype, self.min_free_kbytes, self.watermark_scale_factor,
                              self.version.movable_min_clamped, self.wmark, self.boost)

    def setup_per_zone_lowmem_reserve(self) -> None:
        setup_per_zone_lowmem_reserve(self.managed, self.lowmem_reserve_ratio, self.reserve)

    def boot(self) -> "Machine":
        """The boot sequence: init_per_zone_wmark_min() (watermarks still 0, so
        nr_free_buffer_pages() is all managed lowmem), then hugepage_init()'s
        set_recommended_min_free_kbytes() if THP is on and RAM >= 512 MiB."""
        self.wmark[:] = 0
        self.boost[:] = 0
        self.min_free_kbytes = int(calculate_min_free_kbytes(
            self.managed, self.ztype, self.wmark, self.boost, 0, self.user_min_free_kbytes))
        self.setup_per_zone_wmarks()
        self.setup_per_zone_lowmem_reserve()
        if self.total_pages * PAGE_KB * 1024 < THP_BOOT_MIN_BYTES:
            self.thp = "never"
        elif self.thp_enabled:
            self._thp_recommend()
        return self

    def recompute(self) -> "Machine":
        """Recompute watermarks and protection from the stored inputs (clears boosts)."""
        self.setup_per_zone_wmarks()
        self.setup_per_zone_lowmem_reserve()
        return self

    def _thp_recommend(self) -> None:
        self.min_free_kbytes = int(_sysctl.set_recommended_min_free_kbytes(
            self.thp_enabled, self.managed, self.ztype, self.watermark_scale_factor,
            self.version.movable_min_clamped, self.wmark, self.boost,
            self.min_free_kbytes, self.user_min_free_kbytes))

    # ---- sysctl writes ------------------------------------------------------------
    def write(self, key: str, value: str | int | list[int]) -> None:
        """Apply one write as the kernel's proc handler would. Raises SysctlError."""
        if key == "vm.min_free_kbytes":
            v = _parse_int(key, value, *_sysctl.SYSCTL_RANGES["min_free_kbytes"])
            self.user_min_free_kbytes = v
            self.min_free_kbytes = int(_sysctl.write_min_free_kbytes(
                v, self.managed, self.ztype, self.watermark_scale_factor,
                self.version.movable_min_clamped, self.wmark, self.boost))
        elif key == "vm.watermark_scale_factor":
            v = _parse_int(key, value, *_sysctl.SYSCTL_RANGES["watermark_scale_factor"])
            self.watermark_scale_factor = v
            _sysctl.write_watermark_scale_factor(v, self.managed, self.ztype, self.min_free_kbytes,
                                                 self.version.movable_min_clamped, self.wmark, self.boost)
        elif key[3:] in _sysctl.STORE_ONLY_SYSCTLS and key.startswith("vm."):
            # a store-only sysctl (e.g. watermark_boost_factor): proc_dointvec_minmax with its
            # extra1/extra2 (kernel/sysctl.py SYSCTLS); stored, nothing recomputed.
            setattr(self, key[3:], _parse_int(key, value, *_sysctl.SYSCTL_RANGES[key[3:]]))
        elif key == "vm.lowmem_reserve_ratio":
            vals = _parse_int_list(key, value, MAX_NR_ZONES)
            ratio = self.lowmem_reserve_ratio.copy()
            ratio[: len(vals)] = vals  # proc_dointvec writes the values given, in order
            _sysctl.write_lowmem_reserve_ratio(ratio, self.managed, self.reserve)
            self.lowmem_reserve_ratio = ratio
        elif key == "transparent_hugepage":
            mode = str(value).strip()
            if mode not in _sysctl.THP_MODES:
                raise SysctlError(f"{key}: {mode!r} is not valid; valid: {', '.join(_sysctl.THP_MODES)}")
            self.thp = mode
            self._thp_recommend()  # any write re-runs it (start_stop_khugepaged)
        else:
            raise SysctlError(f"unknown key {key!r}; valid: {', '.join(WRITABLE_KEYS)}")

    def boost_zone(self, z: int, step: int = PAGEBLOCK_NR_PAGES) -> bool:
        """boost_watermark() on zone z (kernel semantics, `step` pages per call)."""
        return bool(boost_watermark_zone(self.managed, self.wmark, self.boost, z,
                                         self.watermark_boost_factor, step))

    # ---- views --------------------------------------------------------------------
    def zone_rows(self) -> list[dict]:
        """Every zone as /proc/zoneinfo prints it: min/low/high/promo include the boost."""
        rows = []
        for z in range(self.managed.size):
            b = int(self.boost[z])
            rows.append({
                "node": z // MAX_NR_ZONES,
                "zone": ZONE_NAMES[z % MAX_NR_ZONES],
                "managed": int(self.managed[z]),
                "min": int(self.wmark[z, WMARK_MIN]) + b,
                "low": int(self.wmark[z, WMARK_LOW]) + b,
                "high": int(self.wmark[z, WMARK_HIGH]) + b,
                "promo": int(self.wmark[z, WMARK_PROMO]) + b,
                "boost": b,
                "protection": [int(x) for x in self.reserve[z]],
            })
        return rows

    def copy(self) -> "Machine":
        return copy.deepcopy(self)


WRITABLE_KEYS = (*("vm." + s.name for s in _sysctl.SYSCTLS), "vm.lowmem_reserve_ratio", "transparent_hugepage")


def _parse_int(key: str, value: object, lo: int, hi: int) -> int:
    text = str(value).strip()
    # proc_dointvec: optional '-' and ASCII decimal digits (Python's int() would also take
    # "1_000", "+5" and non-ASCII digits, which the kernel rejects with EINVAL).
    if not re.fullmatch(r"-?[0-9]+", text):
        raise SysctlError(f"{key}: {value!r} is not an integer; valid range {lo}..{hi}")
    if len(text.lstrip("-")) > 20:   # int() refuses > 4300 digits; anything this long is out of range
        raise SysctlError(f"{key}: {text[:24]}... ({len(text)} digits) is out of range; valid range {lo}..{hi}")
    v = int(text)
    if not lo <= v <= hi:
        raise SysctlError(f"{key}: {v} is out of range; valid range {lo}..{hi}")
    return v


def _parse_int_list(key: str, value: object, maxlen: int) -> list[int]:
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    if not 1 <= len(parts) <= maxlen:
        raise SysctlError(f"{key}: expected 1 to {maxlen} space-separated integers, got {len(parts)}")
    return [_parse_int(key, p, -_sysctl.INT_MAX - 1, _sysctl.INT_MAX) for p in parts]
