"""Machine snapshots: the plain ``tail -n +1`` text of a host's /proc and /sys files.

Format (what ``tail -n +1 FILE...`` prints for several files)::

    ==> /proc/sys/kernel/osrelease <==
    6.1.0-56-amd64

    ==> /proc/zoneinfo <==
    Node 0, zone      DMA
      pages free     3712
    ...

A bare ``/proc/zoneinfo`` (no headers: ``tail`` of one file prints none) is also accepted;
every value it lacks then takes the kernel default, and a warning names each of them.

`parse_snapshot` returns a `Snapshot`; anything it cannot read raises `SnapshotError`,
whose message names the file, the line and what was expected. `Snapshot.machine()`
rebuilds the static `Machine` from the primary inputs (managed pages, sysctls, THP mode,
kernel version); `Snapshot.observed_machine()` is the machine in the exact state the
snapshot shows (its watermarks, boosts and protection), the starting point of `whatif`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from .jit import jit

from .machine import Machine
from .sysctl import INT_MAX, SYSCTL_RANGES, THP_MODES
from .watermarks import (
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
)
from .zones import (
    DEFAULT_LOWMEM_RESERVE_RATIO,
    DEFAULT_WATERMARK_BOOST_FACTOR,
    DEFAULT_WATERMARK_SCALE_FACTOR,
    MAX_NR_ZONES,
    ZONE_MOVABLE,
    ZONE_NAMES,
    KernelVersion,
)

P_OSRELEASE = "/proc/sys/kernel/osrelease"
P_ZONEINFO = "/proc/zoneinfo"
P_MIN_FREE = "/proc/sys/vm/min_free_kbytes"
P_WSF = "/proc/sys/vm/watermark_scale_factor"
P_WBF = "/proc/sys/vm/watermark_boost_factor"
P_RATIO = "/proc/sys/vm/lowmem_reserve_ratio"
P_THP = "/sys/kernel/mm/transparent_hugepage/enabled"
P_VMSTAT = "/proc/vmstat"
P_MEMINFO = "/proc/meminfo"

# The files a snapshot holds, in the order `atomgym snapshot` writes them (snapshots README).
SNAPSHOT_FILES: tuple[str, ...] = (P_OSRELEASE, P_ZONEINFO, P_MIN_FREE, P_WSF, P_WBF, P_RATIO, P_THP,
                                   P_VMSTAT, P_MEMINFO)

_HEADER = re.compile(r"^==> (.*) <==\s*$")
_ZONE_HEAD = re.compile(r"^Node\s+([0-9]{1,9}),\s*zone\s+(\S+)\s*$")
# The per-zone watermark block of zoneinfo_show_print() (mm/vmstat.c): "pages free N" and
# "        min      N" lines. Keys with a ':' (pagesets "high:", "start_pfn:") are other things.
_ZONE_KEYS = ("free", "boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma")
_REQUIRED = ("free", "min", "low", "high", "spanned", "present", "managed", "protection")
OLDEST_MODELLED = (6, 1)
# A snapshot is ~10-500 kB (zoneinfo grows with CPUs x zones); reading stops here, so that
# `check /dev/zero` or a wrong huge file is refused instead of filling memory.
MAX_SNAPSHOT_BYTES = 64 << 20
# Page counts the model accepts. __setup_per_zone_wmarks() multiplies pages_min (at most
# INT_MAX / 4, min_free_kbytes >> 2) by a zone's managed pages in 64 bits; int64 holds that for
# up to 2^34 pages (64 TiB) per zone. Every other page count of a zone is bounded by 2^40
# (4 PiB, x86-64's 52-bit physical address space), so sums over zones stay far from overflow.
MAX_MANAGED_PAGES = 1 << 34
MAX_ZONE_PAGES = 1 << 40


class SnapshotError(ValueError):
    """A snapshot that cannot be read; the message names file, line and what was expected."""


@dataclass
class ZoneInfo:
    """One zone as /proc/zoneinfo prints it (min/low/high/promo include the boost)."""

    node: int
    zone: str
    line: int                      # line of the "Node N, zone NAME" header in the snapshot
    free: int
    boost: int
    min: int
    low: int
    high: int
    promo: int | None              # None where the kernel does not print it (6.1)
    spanned: int
    present: int
    managed: int
    protection: list[int]


@dataclass
class Snapshot:
    """Everything read from one snapshot file."""

    source: str
    zones: list[ZoneInfo]
    version: KernelVersion
    version_assumed: bool
    min_free_kbytes: int
    watermark_scale_factor: int
    watermark_boost_factor: int
    lowmem_reserve_ratio: list[int]
    thp: str
    vmstat: dict[str, int] = field(default_factory=dict)
    meminfo: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)      # headers present, in order

    @property
    def nodes(self) -> list[int]:
        """Node ids in the order the snapshot lists them."""
        out: list[int] = []
        for z in self.zones:
            if z.node not in out:
                out.append(z.node)
        return out

    def managed(self) -> np.ndarray:
        return np.array([z.managed for z in self.zones], dtype=np.int64)

    def movable_rule_from_zones(self) -> bool | None:
        """What the empty ZONE_MOVABLE zones show of __setup_per_zone_wmarks()'s rule.

        An empty Movable zone prints min 32 on kernels that clamp ZONE_MOVABLE's min
        (clamp(0 / 1024, SWAP_CLUSTER_MAX, 128)) and min 0 on kernels that give it a
        proportional share (0 * pages_min / lowmem). Returns True / False, or None when
        there is no empty Movable zone or they disagree.
        """
        seen = {z.min - z.boost for z in self.zones
                if ZONE_NAMES.index(z.zone) == ZONE_MOVABLE and z.managed == 0}
        if seen == {32}:
            return True
        if seen == {0}:
            return False
        return None

    def model_version(self) -> KernelVersion:
        """The snapshot's kernel version, with the ZONE_MOVABLE rule its zones show (if any)."""
        shown = self.movable_rule_from_zones()
        if shown is None:
            return self.version
        return dataclasses.replace(self.version, movable_override=shown)

    def machine(self, version: KernelVersion | None = None) -> Machine:
        """The machine rebuilt from primary inputs, watermarks recomputed (boosts 0).

        min_free_kbytes is the value the snapshot shows; the user's value is unknown
        (user_min_free_kbytes = -1, as if never written).
        """
        m = Machine(managed=self.managed(), version=version or self.model_version(),
                    present=np.array([z.present for z in self.zones], dtype=np.int64),
                    spanned=np.array([z.spanned for z in self.zones], dtype=np.int64),
                    min_free_kbytes=self.min_free_kbytes, user_min_free_kbytes=-1,
                    watermark_scale_factor=self.watermark_scale_factor,
                    watermark_boost_factor=self.watermark_boost_factor,
                    lowmem_reserve_ratio=np.array(self.lowmem_reserve_ratio, dtype=np.int64),
                    thp=self.thp)
        return m.recompute()

    def observed_machine(self, version: KernelVersion | None = None) -> Machine:
        """The machine in exactly the state the snapshot shows: its (unboosted) watermarks,
        boosts and protection. Where the kernel prints no promo, promo = high + (high - low),
        which is what __setup_per_zone_wmarks() stores (low, high, promo are equally spaced)."""
        m = self.machine(version)
        for i, z in enumerate(self.zones):
            promo = z.promo if z.promo is not None else z.high + (z.high - z.low)
            m.wmark[i, WMARK_MIN] = z.min - z.boost
            m.wmark[i, WMARK_LOW] = z.low - z.boost
            m.wmark[i, WMARK_HIGH] = z.high - z.boost
            m.wmark[i, WMARK_PROMO] = promo - z.boost
            m.boost[i] = z.boost
            m.reserve[i, :] = z.protection
        return m


# ---- parsing ----------------------------------------------------------------------------
@dataclass
class _Section:
    path: str
    header_line: int                      # 0 for a bare zoneinfo (no header)
    lines: list[tuple[int, str]]          # (1-based line number in the snapshot, text)


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The file's bytes, at most ``limit + 1`` of them (more means "too large"). Read in 64 kB
    chunks: one huge read() fails with ENOMEM on /proc/sys files (proc_sys_call_handler()
    allocates a buffer of the requested size)."""
    chunks: list[bytes] = []
    n = 0
    with open(path, "rb") as fh:
        while n <= limit:
            b = fh.read(min(1 << 16, limit + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
    return b"".join(chunks)


def parse_snapshot(path: str | Path) -> Snapshot:
    """Read a snapshot file. Raises SnapshotError (file, line, expectation)."""
    p = Path(path)
    try:
        raw = read_bounded(p, MAX_SNAPSHOT_BYTES)   # bounded: a device or FIFO may never end
    except OSError as e:
        raise SnapshotError(f"{p}: cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"{p}: larger than {MAX_SNAPSHOT_BYTES >> 20} MiB; a snapshot (the output of "
                            f"`tail -n +1 /proc/zoneinfo ...`) is a few MiB at most")
    if b"\0" in raw:
        raise SnapshotError(f"{p}: not a text file (NUL byte at offset {raw.find(0)}); expected the output "
                            f"of `tail -n +1 /proc/zoneinfo ...`")
    try:
        text = raw.decode("utf-8-sig")         # a byte-order mark (a Windows editor's) is dropped
    except UnicodeDecodeError as e:
        raise SnapshotError(f"{p}: not a text file (byte {e.start} is not UTF-8); expected the output "
                            f"of `tail -n +1 /proc/zoneinfo ...`") from None
    return parse_text(text, str(p))


def parse_text(text: str, source: str = "<snapshot>") -> Snapshot:
    """Parse snapshot text; `source` names it in messages."""
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise SnapshotError(f"{source}: the file is empty; expected `==> PATH <==` sections "
                            f"(tail -n +1 format) or a bare /proc/zoneinfo")
    sections = _split(lines, source)
    warnings: list[str] = []
    by_path = {s.path: s for s in sections}
    bare = len(sections) == 1 and sections[0].header_line == 0

    if P_ZONEINFO not in by_path:
        raise SnapshotError(f"{source}: no `==> {P_ZONEINFO} <==` section; a snapshot needs the zoneinfo "
                            f"(found: {', '.join(by_path) or 'none'})")
    zones, no_boost = _parse_zoneinfo(by_path[P_ZONEINFO], source)
    if no_boost:
        warnings.append(f"{P_ZONEINFO} has no `boost` lines (kernels before 5.0 had no watermark boost): "
                        f"taken as 0")

    if P_OSRELEASE in by_path:
        ln, val = _single_line(by_path[P_OSRELEASE], source, "a kernel release such as 6.1.0-56-amd64")
        try:
            version = KernelVersion.parse(val)
        except ValueError:
            raise SnapshotError(f"{source}:{ln}: {P_OSRELEASE}: cannot read a kernel version from {val!r}; "
                                f"expected e.g. 6.1.0-56-amd64") from None
        version_assumed = False
        if (version.major, version.minor) < OLDEST_MODELLED:
            warnings.append(f"kernel {version} is older than the oldest modelled release "
                            f"({OLDEST_MODELLED[0]}.{OLDEST_MODELLED[1]}): its arithmetic may differ")
    else:
        version = KernelVersion.newest()
        version_assumed = True
        warnings.append(f"no {P_OSRELEASE}: assuming the newest modelled kernel behaviour ({version.major}."
                        f"{version.minor})")

    def int_file(path: str, default: int, lo: int, hi: int) -> int:
        if path not in by_path:
            warnings.append(f"no {path}: assuming the kernel default {default}")
            return default
        ln, val = _single_line(by_path[path], source, f"one integer in {lo}..{hi}")
        v = _int(val, source, ln, f"{path}: an integer in {lo}..{hi}")
        if not lo <= v <= hi:
            raise SnapshotError(f"{source}:{ln}: {path}: {v} is outside {lo}..{hi}")
        return v

    wsf = int_file(P_WSF, DEFAULT_WATERMARK_SCALE_FACTOR, *SYSCTL_RANGES["watermark_scale_factor"])
    wbf = int_file(P_WBF, DEFAULT_WATERMARK_BOOST_FACTOR, *SYSCTL_RANGES["watermark_boost_factor"])

    if P_RATIO in by_path:
        ln, val = _single_line(by_path[P_RATIO], source, f"{MAX_NR_ZONES} tab-separated integers")
        parts = val.split()
        if len(parts) != MAX_NR_ZONES:
            raise SnapshotError(f"{source}:{ln}: {P_RATIO}: expected {MAX_NR_ZONES} tab-separated integers "
                                f"(one per zone type), got {len(parts)}: {val!r}")
        ratio = [_int(x, source, ln, f"{P_RATIO}: integers in 0..{INT_MAX}") for x in parts]
        for x in ratio:
            # lowmem_reserve_ratio_sysctl_handler() stores every value < 1 as 0: the file never shows one
            if not 0 <= x <= INT_MAX:
                raise SnapshotError(f"{source}:{ln}: {P_RATIO}: {x} is outside 0..{INT_MAX} (the kernel stores "
                                    f"values below 1 as 0)")
    else:
        ratio = list(DEFAULT_LOWMEM_RESERVE_RATIO)
        warnings.append(f"no {P_RATIO}: assuming the kernel default {' '.join(map(str, ratio))}")

    if P_THP in by_path:
        ln, val = _single_line(by_path[P_THP], source, "e.g. `[always] madvise never`")
        m = re.fullmatch(r"\s*(?:\S+\s+)*?\[(\w+)\](?:\s+\S+)*\s*", val)
        if not m or m.group(1) not in THP_MODES or val.count("[") != 1:
            raise SnapshotError(f"{source}:{ln}: {P_THP}: expected one bracketed mode out of "
                                f"{'|'.join(THP_MODES)}, e.g. `[always] madvise never`; got {val!r}")
        thp = m.group(1)
    else:
        thp = "always"
        warnings.append(f"no {P_THP}: assuming THP `always` (x86-64 defconfig; matters only for "
                        f"whatif writes of transparent_hugepage)")

    if P_MIN_FREE in by_path:
        mf = int_file(P_MIN_FREE, 0, *SYSCTL_RANGES["min_free_kbytes"])
    else:
        mf = _infer_min_free_kbytes(zones, wsf, version)
        warnings.append(f"no {P_MIN_FREE}: using {mf}, a value whose min watermarks reproduce the "
                        f"zoneinfo's (the boot default if it fits; the real value is unknown)")

    vmstat = _parse_kv(by_path[P_VMSTAT], source, meminfo=False) if P_VMSTAT in by_path else {}
    meminfo = _parse_kv(by_path[P_MEMINFO], source, meminfo=True) if P_MEMINFO in by_path else {}
    known = set(SNAPSHOT_FILES)
    for s in sections:
        if s.path not in known:
            warnings.append(f"{source}:{s.header_line}: ignored section {s.path} (not used by the model)")
    if bare:
        warnings.insert(0, f"{source}: a bare /proc/zoneinfo (no `==> PATH <==` headers): every other value "
                           f"is assumed, as listed")
    return Snapshot(source=source, zones=zones, version=version, version_assumed=version_assumed,
                    min_free_kbytes=mf, watermark_scale_factor=wsf, watermark_boost_factor=wbf,
                    lowmem_reserve_ratio=ratio, thp=thp, vmstat=vmstat, meminfo=meminfo,
                    warnings=warnings, files=[s.path for s in sections])


def _split(lines: list[str], source: str) -> list[_Section]:
    first = next(i for i, ln in enumerate(lines) if ln.strip())
    if not _HEADER.match(lines[first]):
        if _ZONE_HEAD.match(lines[first]):
            return [_Section(P_ZONEINFO, 0, [(i + 1, ln) for i, ln in enumerate(lines)])]
        # the line itself is not shown: a path given as a snapshot may be any file
        raise SnapshotError(f"{source}:{first + 1}: not a snapshot: expected a `==> PATH <==` header (tail -n +1 "
                            f"format) or `Node 0, zone DMA` (a bare /proc/zoneinfo) as the first line")
    sections: list[_Section] = []
    seen: dict[str, int] = {}
    for i, ln in enumerate(lines):
        m = _HEADER.match(ln)
        if m:
            path = m.group(1).strip()
            if path in seen:
                raise SnapshotError(f"{source}:{i + 1}: duplicated header `==> {path} <==` (first at line "
                                    f"{seen[path]}); expected each file once")
            seen[path] = i + 1
            sections.append(_Section(path, i + 1, []))
        elif i >= first:
            sections[-1].lines.append((i + 1, ln))
    return sections


def _single_line(sec: _Section, source: str, expected: str) -> tuple[int, str]:
    body = [(n, ln) for n, ln in sec.lines if ln.strip()]
    if len(body) != 1:
        where = sec.header_line
        raise SnapshotError(f"{source}:{where}: {sec.path}: expected one line ({expected}), "
                            f"got {len(body)} non-empty lines")
    return body[0][0], body[0][1].strip()


def _int(text: str, source: str, line: int, expected: str) -> int:
    # The kernel prints plain ASCII decimals; int() alone would also take "1_000" or "+5".
    if not re.fullmatch(r"-?[0-9]+", text):
        raise SnapshotError(f"{source}:{line}: {text[:40]!r} is not a number; expected {expected}")
    if len(text) > 21:   # int64 has 19 digits; int() would also refuse beyond 4300
        raise SnapshotError(f"{source}:{line}: {text[:24]}... ({len(text)} digits) is too large; expected {expected}")
    return int(text)


def _pages(text: str, source: str, line: int, key: str) -> int:
    """A page count of a zone: an integer in 0..MAX_ZONE_PAGES (managed: 0..MAX_MANAGED_PAGES)."""
    hi = MAX_MANAGED_PAGES if key == "managed" else MAX_ZONE_PAGES
    what = "`protection: (...)`" if key == "protection" else f"`{key}`"
    v = _int(text, source, line, f"a page count 0..{hi} for {what}")
    if not 0 <= v <= hi:
        raise SnapshotError(f"{source}:{line}: {what}: {v} is outside 0..{hi} pages ({hi >> 28} TiB of "
                            f"4 KiB pages; the model's 64-bit arithmetic holds no more)")
    return v


def _parse_zoneinfo(sec: _Section, source: str) -> tuple[list[ZoneInfo], bool]:
    """The zones, and whether the zoneinfo lacks `boost` lines altogether (pre-5.0)."""
    blocks: list[tuple[int, int, str, dict[str, int | list[int]]]] = []
    for n, ln in sec.lines:
        m = _ZONE_HEAD.match(ln)
        if m:
            name = m.group(2)
            if name not in ZONE_NAMES:
                raise SnapshotError(f"{source}:{n}: unknown zone {name!r}; expected one of {', '.join(ZONE_NAMES)}")
            blocks.append((n, int(m.group(1)), name, {}))
            continue
        if not ln.strip():
            continue
        if not blocks:
            raise SnapshotError(f"{source}:{n}: expected `Node N, zone NAME` to start /proc/zoneinfo, "
                                f"got {ln.strip()[:60]!r}")
        fields = blocks[-1][3]
        tok = ln.split()
        if tok[:2] == ["pages", "free"]:
            key, vals = "free", tok[2:]
        elif tok[0] == "protection:":
            inner = ln.split(":", 1)[1].strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise SnapshotError(f"{source}:{n}: expected `protection: (a, b, c, d, e)`, got {ln.strip()!r}")
            parts = [p.strip() for p in inner[1:-1].split(",")]
            if len(parts) != MAX_NR_ZONES:
                raise SnapshotError(f"{source}:{n}: protection lists {len(parts)} values; expected "
                                    f"{MAX_NR_ZONES} (one per zone of the node)")
            if "protection" not in fields:
                fields["protection"] = [_pages(p, source, n, "protection") for p in parts]
            continue
        elif tok[0] in _ZONE_KEYS and tok[0] != "free":
            key, vals = tok[0], tok[1:]
        else:
            continue  # per-node stats, pagesets, vm stats...: not part of the watermark block
        if len(vals) != 1:
            raise SnapshotError(f"{source}:{n}: expected `{key} N` with one integer, got {ln.strip()!r}")
        if key in fields:
            continue  # only the watermark block's first occurrence counts
        fields[key] = _pages(vals[0], source, n, key)
    if not blocks:
        raise SnapshotError(f"{source}:{sec.header_line}: {P_ZONEINFO} lists no zone; expected "
                            f"`Node N, zone NAME` blocks")
    no_boost = all("boost" not in f for _, _, _, f in blocks)
    zones: list[ZoneInfo] = []
    for idx, (n, node, name, f) in enumerate(blocks):
        if no_boost:
            f["boost"] = 0
        missing = [k for k in _REQUIRED + ("boost",) if k not in f]
        if missing:
            end = blocks[idx + 1][0] - 1 if idx + 1 < len(blocks) else sec.lines[-1][0]
            raise SnapshotError(f"{source}:{n}: zone block `Node {node}, zone {name}` (lines {n}-{end}) is "
                                f"truncated: missing {', '.join('pages free' if k == 'free' else k for k in missing)}")
        # spanned >= present >= managed (zone->spanned_pages counts holes, present_pages does not,
        # managed_pages leaves out memblock reservations); a watermark includes its boost
        if not f["spanned"] >= f["present"] >= f["managed"]:
            raise SnapshotError(f"{source}:{n}: zone `Node {node}, zone {name}`: spanned {f['spanned']}, present "
                                f"{f['present']}, managed {f['managed']}; expected spanned >= present >= managed")
        if f["free"] > f["managed"]:    # free pages are buddy pages, all of them managed
            raise SnapshotError(f"{source}:{n}: zone `Node {node}, zone {name}`: pages free {f['free']} is above "
                                f"managed {f['managed']}; expected free <= managed")
        if f["boost"] > min(f["min"], f["low"], f["high"]):
            raise SnapshotError(f"{source}:{n}: zone `Node {node}, zone {name}`: boost {f['boost']} is larger than "
                                f"its watermarks (min {f['min']}); zoneinfo prints each watermark with the boost "
                                f"added, so boost <= min <= low <= high")
        zones.append(ZoneInfo(node=node, zone=name, line=n, free=f["free"], boost=f["boost"], min=f["min"],
                              low=f["low"], high=f["high"], promo=f.get("promo"), spanned=f["spanned"],
                              present=f["present"], managed=f["managed"], protection=list(f["protection"])))
    # Every node lists its 5 zones, in enum zone_type order (walk_zones_in_node, populated or not).
    i = 0
    while i < len(zones):
        node = zones[i].node
        group = []
        while i < len(zones) and zones[i].node == node and len(group) < MAX_NR_ZONES:
            group.append(zones[i])
            i += 1
        names = [z.zone for z in group]
        if names != list(ZONE_NAMES):
            missing = [z for z in ZONE_NAMES if z not in names]
            raise SnapshotError(f"{source}:{group[0].line}: Node {node} lists zones {', '.join(names)}; expected "
                                f"all {MAX_NR_ZONES} in order ({', '.join(ZONE_NAMES)})"
                                + (f"; missing {', '.join(missing)}" if missing else ""))
    nodes = [z.node for z in zones[::MAX_NR_ZONES]]
    if len(set(nodes)) != len(nodes):
        raise SnapshotError(f"{source}: node {[n for n in nodes if nodes.count(n) > 1][0]} is listed twice in "
                            f"{P_ZONEINFO}; expected each node once")
    if sum(z.managed for z in zones) == 0:
        raise SnapshotError(f"{source}: every zone has managed 0; expected at least one populated zone")
    return zones, no_boost


def _parse_kv(sec: _Section, source: str, meminfo: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for n, ln in sec.lines:
        if not ln.strip():
            continue
        if meminfo:
            m = re.fullmatch(r"([^:\s]+):\s+(\S+)(?:\s+kB)?\s*", ln)
            what = "`Name:  N kB`"
        else:
            m = re.fullmatch(r"(\S+)\s+(\S+)\s*", ln)
            what = "`name N`"
        if not m:
            raise SnapshotError(f"{source}:{n}: {sec.path}: expected {what}, got {ln.strip()[:60]!r}")
        out[m.group(1)] = _int(m.group(2), source, n, f"an integer in {sec.path}")
    return out


def _infer_min_free_kbytes(zones: list[ZoneInfo], wsf: int, version: KernelVersion) -> int:
    """For a bare zoneinfo: a min_free_kbytes whose recomputed min watermarks match the
    zoneinfo's: the boot default if it fits, else the smallest fitting value near 4 × Σ min
    (in kB). Falls back to 4 × Σ min of the non-movable zones."""
    managed = np.array([z.managed for z in zones], dtype=np.int64)
    ztype = np.array([ZONE_NAMES.index(z.zone) for z in zones], dtype=np.int64)
    observed = np.array([z.min - z.boost for z in zones], dtype=np.int64)
    wm = np.zeros((managed.size, 4), dtype=np.int64)
    bst = np.zeros(managed.size, dtype=np.int64)
    guess = 4 * int(sum(observed[i] for i in range(len(zones)) if ztype[i] != ZONE_MOVABLE))
    # First the boot default (init_per_zone_wmark_min + THP's recommendation), if it fits.
    booted = Machine(managed=managed.copy(), version=version).boot()
    candidates = [booted.min_free_kbytes]
    for clamped in (version.movable_min_clamped, not version.movable_min_clamped):
        for mf in candidates + list(range(max(0, guess - 4 * 64), guess + 4 * 64 + 1)):
            setup_per_zone_wmarks(managed, ztype, mf, wsf, clamped, wm, bst)
            if np.array_equal(wm[:, WMARK_MIN], observed):
                return mf
    return guess


# ---- the boot-time pattern ----------------------------------------------------------------
@dataclass
class BootPattern:
    """Watermarks computed at boot, before free_initmem() returned the init memory:
    the observed values are exactly __setup_per_zone_wmarks() with `delta` fewer managed
    pages in zone `z` (every delta in `deltas` fits)."""

    z: int
    node: int
    zone: str
    deltas: list[int]
    protection: str        # "fresh" (current managed counts), "stale" (the boot counts) or "other"
    # other zones where some page count also fits: (node, zone, smallest, largest delta)
    alternatives: list[tuple[int, str, int, int]] = field(default_factory=list)

    @property
    def delta(self) -> int:
        return self.deltas[0]


@jit()
def _boot_deltas(managed, ztype, min_free_kbytes, wsf, movable_clamped, observed, compare_promo, max_delta):
    """For each zone z and d in 1..max_delta: 1 where __setup_per_zone_wmarks() with
    managed[z] - d reproduces every observed (unboosted) min/low/high[/promo]."""
    nz = managed.shape[0]
    out = np.zeros((nz, max_delta + 1), dtype=np.int8)
    wm = np.zeros((nz, 4), dtype=np.int64)
    bst = np.zeros(nz, dtype=np.int64)
    m = managed.copy()
    nf = 4 if compare_promo else 3
    for z in range(nz):
        for d in range(1, min(max_delta, managed[z]) + 1):
            m[z] = managed[z] - d
            setup_per_zone_wmarks(m, ztype, min_free_kbytes, wsf, movable_clamped, wm, bst)
            ok = True
            for i in range(nz):
                for f in range(nf):
                    if wm[i, f] != observed[i, f]:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                out[z, d] = 1
        m[z] = managed[z]
    return out


BOOT_MAX_DELTA = 16384  # pages (64 MiB): init memory freed after the boot-time computation
# The search recomputes every zone's watermarks for each (zone, delta): populated zones x deltas x
# zones steps. 8 nodes (40 zones) take ~1.6e7; a snapshot listing hundreds of nodes would take hours,
# so the deltas searched shrink to keep it under this many steps.
BOOT_SEARCH_BUDGET = 50_000_000


def find_boot_pattern(snap: Snapshot, max_delta: int = BOOT_MAX_DELTA) -> BootPattern | None:
    """The boot-time pattern, if the snapshot's watermarks fit it (one zone, one delta range)."""
    m = snap.machine()
    managed = m.managed
    observed = np.zeros((managed.size, 4), dtype=np.int64)
    have_promo = all(z.promo is not None for z in snap.zones)
    for i, z in enumerate(snap.zones):
        observed[i] = (z.min - z.boost, z.low - z.boost, z.high - z.boost,
                       (z.promo if z.promo is not None else 0) - z.boost)
    populated = int((managed > 0).sum())
    max_delta = min(max_delta, BOOT_SEARCH_BUDGET // max(1, populated * managed.size))
    if max_delta < 1:
        return None
    hits = _boot_deltas(managed, m.ztype, m.min_free_kbytes, m.watermark_scale_factor,
                        m.version.movable_min_clamped, observed, have_promo, max_delta)
    found = [(z, [int(d) for d in np.nonzero(hits[z])[0]]) for z in range(managed.size) if hits[z].any()]
    if not found:
        return None
    # Several zones can fit (a tiny zone whose removal shifts lowmem_pages alike): the init
    # memory is returned to a lowmem zone, so report the largest lowmem zone that fits and
    # name the others.
    found.sort(key=lambda t: (ZONE_NAMES.index(snap.zones[t[0]].zone) >= ZONE_MOVABLE, -int(managed[t[0]])))
    z, deltas = found[0]
    alts = [(snap.zones[a].node, snap.zones[a].zone, d[0], d[-1]) for a, d in found[1:]]
    obs_prot = np.array([zi.protection for zi in snap.zones], dtype=np.int64)
    if np.array_equal(obs_prot, m.reserve):
        prot = "fresh"
    else:
        prot = "other"
        stale = np.zeros_like(m.reserve)
        mm = managed.copy()
        for d in deltas:
            mm[z] = managed[z] - d
            setup_per_zone_lowmem_reserve(mm, m.lowmem_reserve_ratio, stale)
            if np.array_equal(obs_prot, stale):
                prot = "stale"
                break
    if prot == "other":
        return None
    return BootPattern(z=z, node=snap.zones[z].node, zone=snap.zones[z].zone, deltas=deltas, protection=prot,
                       alternatives=alts)
