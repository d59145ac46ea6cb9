"""Build the static kernel `Machine` a scenario starts from.

Two sources:

* a **snapshot** file (``tail -n +1 /proc/zoneinfo ...``, docs in
  the shared real snapshots, tests/data/snapshots): the zones' managed/present/spanned pages, the kernel
  release, THP mode, ``lowmem_reserve_ratio`` and the sysctls are taken from it;
* **RAM size + nodes + kernel + THP**: zones from the x86-64 layout rule below.

Then the boot sequence (``Machine.boot()``) and the scenario's sysctls as writes
(``Machine.write``, the kernel's proc handlers).

x86-64 layout rule (``x86_layout``), calibrated on the QEMU ``pc`` guests in
tests/data/snapshots (vendored real snapshots) and the kernel's boot allocations:

* Physical RAM: QEMU ``pc`` puts all of RAM below 4 GiB when it is under 3.5 GiB, else 3 GiB
  below 4 GiB (``pc_init1()``: ``lowmem = 0xc0000000`` with gigabyte alignment) and the rest from
  4 GiB up. The top 32 pages of low RAM are firmware-reserved (e820) on every guest.
* ZONE_DMA = pfn 1..4095 (``MAX_DMA_PFN``): spanned 4095, present 3998 (BIOS holes below 1 MiB),
  managed 3840 (first MiB reserved, ``reserve_bios_regions()``/``trim_low_memory_range()``).
* ZONE_DMA32 = pfn 4096 .. 4 GiB (``MAX_DMA32_PFN``), ZONE_NORMAL = above 4 GiB.
* NUMA nodes take equal consecutive shares of RAM (as ``-numa node,mem=`` does), so DMA is on
  node 0 only, and DMA32 is on node 0 only unless a node's share is under 3 GiB.
* Not managed (memblock-reserved at boot, never freed to the buddy allocator):
  - ``struct page`` arrays: 64 bytes per page for every 128 MiB memory section with any present
    page (``sparse_init()``, SECTION_SIZE_BITS 27) = 512 pages per section, on the section's node;
  - node 0: the kernel image and early boot data, 11330 pages (~44 MiB, Debian 6.1 kernel), in
    DMA32 (loaded at 16 MiB); 70 further pages top-down; every other node: 120 pages (pgdat etc.);
  - a single-node machine: the large system hashes (dentry, inode; ``alloc_large_system_hash()``),
    ~0.17 % of RAM, top-down (NUMA machines allocate them with vmalloc after boot: hashdist);
  - SWIOTLB's 64 MiB bounce buffer in the highest DMA32 pages when RAM extends above 4 GiB
    (``pci_swiotlb_detect()``).
  Top-down allocations come from the node's highest populated zone (memblock allocates top-down).

Against the real guests (6.1, QEMU pc): present pages are exact; managed pages are within 30
pages per zone (4 GiB: DMA32 -12, Normal +1; 1 GiB: DMA32 -22; 2 GiB/2 nodes: +27 and -1).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from atomgym.kernel import Machine
from atomgym.kernel import snapshot as _snapshot
from atomgym.kernel.sysctl import SYSCTL_RANGES
from atomgym.kernel.zones import (
    MAX_NR_ZONES,
    PAGE_KB,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NORMAL,
    KernelVersion,
)

from .scenario_files import ScenarioError, resolve_path

# ---- x86-64 layout constants (see the module docstring) -----------------------------
PAGES_PER_MIB = 1024 // PAGE_KB                  # 256
DMA_PFN_END = 4096                               # MAX_DMA_PFN: 16 MiB
DMA32_PFN_END = 1 << 20                          # MAX_DMA32_PFN: 4 GiB
DMA_SPANNED, DMA_PRESENT, DMA_MANAGED = 4095, 3998, 3840
QEMU_LOWMEM_SPLIT = 3584 * PAGES_PER_MIB         # RAM >= 3.5 GiB: only 3 GiB below 4 GiB
QEMU_LOWMEM = 3072 * PAGES_PER_MIB
FIRMWARE_TOP_RESERVED = 32                       # e820-reserved top of low RAM on the guests
SECTION_PAGES = 1 << (27 - 12)                   # SECTION_SIZE_BITS 27: 128 MiB
MEMMAP_PAGES_PER_SECTION = SECTION_PAGES * 64 // 4096   # sizeof(struct page) = 64
KERNEL_IMAGE_PAGES = 11330                       # node 0, DMA32
NODE0_TOPDOWN_PAGES = 70
NODE_TOPDOWN_PAGES = 120                         # nodes other than 0
HASH_FRACTION = 0.0017                           # single node: dentry+inode hashes
SWIOTLB_PAGES = 16384                            # 64 MiB IO_TLB default


def x86_layout(ram_mib: int, nodes: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spanned, present, managed) int64[nodes * 5] for ``ram_mib`` MiB of RAM on ``nodes`` nodes."""
    if ram_mib < 64:
        raise ValueError(f"ram_mib {ram_mib} is too small for the x86-64 layout (need >= 64 MiB)")
    if not 1 <= nodes <= 64:
        raise ValueError(f"nodes must be in 1..64, got {nodes}")
    ram = ram_mib * PAGES_PER_MIB
    low = ram if ram < QEMU_LOWMEM_SPLIT else QEMU_LOWMEM
    # RAM as pfn ranges (start, end): [0, low - 32) and [4 GiB, 4 GiB + ram - low).
    # Node i owns RAM offsets [i*ram/n, (i+1)*ram/n); offset o maps to pfn o below `low`,
    # to o - low + 4 GiB above.
    def pfn_ranges(o0: int, o1: int) -> list[tuple[int, int]]:
        out = []
        a, b = o0, min(o1, low - FIRMWARE_TOP_RESERVED)
        if a < b:
            out.append((a, b))
        a, b = max(o0, low), o1
        if a < b:
            out.append((a - low + DMA32_PFN_END, b - low + DMA32_PFN_END))
        return out

    z = nodes * MAX_NR_ZONES
    spanned = np.zeros(z, dtype=np.int64)
    present = np.zeros(z, dtype=np.int64)
    managed = np.zeros(z, dtype=np.int64)
    zone_pfns = ((ZONE_DMA, 1, DMA_PFN_END), (ZONE_DMA32, DMA_PFN_END, DMA32_PFN_END),
                 (ZONE_NORMAL, DMA32_PFN_END, 1 << 62))
    swiotlb_node = -1
    if ram > low:  # RAM above 4 GiB: SWIOTLB in the top DMA32 pages (below low RAM's end)
        swiotlb_node = min((low - FIRMWARE_TOP_RESERVED - 1) * nodes // ram, nodes - 1)
    for n in range(nodes):
        o0, o1 = n * ram // nodes, (n + 1) * ram // nodes
        ranges = pfn_ranges(o0, o1)
        if not ranges:
            continue
        node_start, node_end = ranges[0][0], ranges[-1][1]
        sections: set[int] = set()
        for a, b in ranges:
            sections.update(range(a // SECTION_PAGES, (b - 1) // SECTION_PAGES + 1))
        for zt, zs, ze in zone_pfns:
            i = n * MAX_NR_ZONES + zt
            pres = sum(max(0, min(b, ze) - max(a, zs)) for a, b in ranges)
            if pres == 0:
                continue
            spanned[i] = min(ze, node_end) - max(zs, node_start)
            present[i] = pres
            managed[i] = pres
            if zt == ZONE_DMA:
                spanned[i] = min(DMA_SPANNED, spanned[i])
                present[i] = min(DMA_PRESENT, pres)
                managed[i] = min(DMA_MANAGED, pres)
        base = n * MAX_NR_ZONES
        if n == 0:
            _take(managed, base + ZONE_DMA32, KERNEL_IMAGE_PAGES, base)
        if n == swiotlb_node:
            _take(managed, base + ZONE_DMA32, SWIOTLB_PAGES, base)
        topdown = len(sections) * MEMMAP_PAGES_PER_SECTION
        topdown += NODE0_TOPDOWN_PAGES if n == 0 else NODE_TOPDOWN_PAGES
        if nodes == 1:
            topdown += int(HASH_FRACTION * ram)
        highest = max(t for t in (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL) if present[base + t] > 0)
        _take(managed, base + highest, topdown, base)
    if managed.sum() <= 0:
        raise ValueError(f"ram_mib {ram_mib} on {nodes} nodes leaves no managed memory")
    return spanned, present, managed


def _take(managed: np.ndarray, i: int, pages: int, base: int) -> None:
    """Reserve `pages` from zone i, spilling into the node's lower zones (memblock top-down)."""
    while pages > 0 and i >= base:
        t = max(0, min(pages, int(managed[i])))
        managed[i] -= t
        pages -= t
        i -= 1


# ---- snapshots (parsed by atomgym.kernel.snapshot) ------------------------------------
def _parse(path: str | Path) -> _snapshot.Snapshot:
    try:
        return _snapshot.parse_snapshot(path)
    except _snapshot.SnapshotError as e:     # names the file, line and what was expected
        raise ScenarioError(str(e)) from None


def read_snapshot(path: str | Path) -> dict:
    """The parts of a machine snapshot that define a machine, as plain data.

    Returns {'file', 'release' (str or None), 'spanned'/'present'/'managed' (int64[N*5]),
    'min_free_kbytes', 'watermark_scale_factor', 'watermark_boost_factor',
    'lowmem_reserve_ratio', 'thp'}. Raises ScenarioError naming the file and line.
    """
    snap = _parse(path)
    return {
        "file": str(path),
        "release": None if snap.version_assumed else str(snap.version),
        "spanned": np.array([z.spanned for z in snap.zones], dtype=np.int64),
        "present": np.array([z.present for z in snap.zones], dtype=np.int64),
        "managed": snap.managed(),
        "min_free_kbytes": snap.min_free_kbytes,
        "watermark_scale_factor": snap.watermark_scale_factor,
        "watermark_boost_factor": snap.watermark_boost_factor,
        "lowmem_reserve_ratio": list(snap.lowmem_reserve_ratio),
        "thp": snap.thp,
    }


def machine_from_snapshot(path: str | Path, kernel: str | None = None) -> Machine:
    """The machine a snapshot shows, rebuilt from its primary inputs (managed pages,
    min_free_kbytes, watermark_scale_factor/boost_factor, lowmem_reserve_ratio, THP, kernel
    release; ``kernel`` is used only when the snapshot names no release): watermarks
    recomputed, boosts 0 (``Snapshot.machine()``), the protection the snapshot shows."""
    snap = _parse(path)
    version = None
    if snap.version_assumed and kernel:
        version = KernelVersion.parse(kernel)
    m = snap.machine(version)
    # The protection the snapshot shows, not the formula's on today's managed counts: the kernel
    # computes it at boot (init_per_zone_wmark_min() -> setup_per_zone_lowmem_reserve()) before
    # free_initmem() and the initrd's pages join managed, and only a lowmem_reserve_ratio write
    # (or memory hotplug) computes it again; min_free_kbytes / watermark_scale_factor writes do not.
    for i, z in enumerate(snap.zones):
        m.reserve[i, :] = z.protection
    return m


def build_machine(spec, sysctl, base_dir: str | Path | None = None) -> Machine:
    """The booted Machine of a scenario (``spec``: its ``machine:`` section, a scenario.MachineSpec;
    ``sysctl``: its ``sysctl:`` section, a scenario.SysctlSpec), with its sysctls applied as writes.

    ``base_dir``: where relative snapshot paths are looked up (the scenario file's directory, or
    the scenario's ``source``); the repository root is tried next. The sysctl section is applied
    as writes after boot (or after the snapshot's own values): ``min_free_kbytes: null`` keeps
    the machine's value; the others (``watermark_scale_factor``, ``watermark_boost_factor``, every
    sysctl of kernel/sysctl.py SYSCTLS with a boot default) are written when they differ from the
    machine's, except that on a snapshot machine the schema defaults (the kernel's boot values,
    e.g. 10 / 15000) keep the snapshot's values.
    """
    if spec.snapshot is not None:
        path = resolve_path(base_dir if base_dir is not None else "", spec.snapshot)
        if not path.is_file():
            raise ScenarioError(f"machine.snapshot: no such file {spec.snapshot!r} (looked for {path})")
        m = machine_from_snapshot(path, spec.kernel)
    else:
        spanned, present, managed = x86_layout(spec.ram_mib, spec.nodes)
        m = Machine(managed=managed, present=present, spanned=spanned,
                    version=KernelVersion.parse(spec.kernel), thp=spec.thp)
        m.boot()
    # Each sysctl of kernel/sysctl.py SYSCTLS (SYSCTL_RANGES), in that order, by its name (the SysctlSpec key
    # and the Machine attribute): null keeps the machine's value; a key whose schema default is null
    # (min_free_kbytes) is written whenever given (the write also sets user_min_free_kbytes), the
    # others when they differ from the machine's; on a snapshot machine a schema default (the
    # kernel's) keeps the snapshot's value.
    defaults = {f.name: f.default for f in dataclasses.fields(sysctl)}
    for name in SYSCTL_RANGES:
        v = getattr(sysctl, name)
        if v is None or (spec.snapshot is not None and v == defaults[name]):
            continue
        if defaults[name] is None or v != getattr(m, name):
            m.write("vm." + name, v)
    return m


def scenario_machine(s) -> Machine:  # s: a scenario.Scenario (machines.py sits below scenario.py)
    """build_machine() for a loaded Scenario (relative paths resolve against its file)."""
    return build_machine(s.machine, s.sysctl, s.source or None)
