"""Helpers (no tests) shared by test_kernel_*.py and test_cli*.py: where the shared data lives, and a writer that
renders a Machine as a snapshot in the kernel's own zoneinfo format."""
from __future__ import annotations

from pathlib import Path


from atomgym.kernel import Machine

# The real machine snapshots (ground truth) are vendored byte for byte in tests/data/snapshots so
# that the suite runs them wherever the repository is cloned; test_kernel_snapshot.py checks the
# copy against the originals in ../shared/data/snapshots when that folder is beside the repository.
SHARED = Path(__file__).parents[1].parent / "shared"
SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"


def require_snapshots() -> Path:
    assert (SNAPSHOTS / "sequences.json").is_file(), f"vendored snapshots missing from {SNAPSHOTS}"
    return SNAPSHOTS


def zoneinfo_text(m: Machine, promo: bool = True, free: int | None = None) -> str:
    """/proc/zoneinfo as zoneinfo_show_print() (mm/vmstat.c) prints it, watermark block only."""
    out = []
    for r, present, spanned in zip(m.zone_rows(), m.present, m.spanned):
        out.append(f"Node {r['node']}, zone {r['zone']:>8}")
        out.append(f"  pages free     {r['managed'] if free is None else free}")
        out.append(f"        boost    {r['boost']}")
        out.append(f"        min      {r['min']}")
        out.append(f"        low      {r['low']}")
        out.append(f"        high     {r['high']}")
        if promo:
            out.append(f"        promo    {r['promo']}")
        out.append(f"        spanned  {spanned}")
        out.append(f"        present  {present}")
        out.append(f"        managed  {r['managed']}")
        out.append("        cma      0")
        out.append(f"        protection: ({', '.join(map(str, r['protection']))})")
    return "\n".join(out) + "\n"


def snapshot_text(m: Machine, release: str | None = "6.18.0", promo: bool = True) -> str:
    """A full `tail -n +1` snapshot of machine m."""
    files = []
    if release is not None:
        files.append(("/proc/sys/kernel/osrelease", release + "\n"))
    files.append(("/proc/zoneinfo", zoneinfo_text(m, promo=promo)))
    files.append(("/proc/sys/vm/min_free_kbytes", f"{m.min_free_kbytes}\n"))
    files.append(("/proc/sys/vm/watermark_scale_factor", f"{m.watermark_scale_factor}\n"))
    files.append(("/proc/sys/vm/watermark_boost_factor", f"{m.watermark_boost_factor}\n"))
    files.append(("/proc/sys/vm/lowmem_reserve_ratio", "\t".join(map(str, m.lowmem_reserve_ratio)) + "\n"))
    modes = " ".join(f"[{x}]" if x == m.thp else x for x in ("always", "madvise", "never"))
    files.append(("/sys/kernel/mm/transparent_hugepage/enabled", modes + "\n"))
    return "".join(("\n" if i else "") + f"==> {p} <==\n{body}" for i, (p, body) in enumerate(files))
