"""The zone's fragmentation in a real-kernel capture: per sample, free pages by migratetype, whole
free pageblocks (order >= 9 chunks) by type, and pageblocks by type, from the /proc/pagetypeinfo
lines the guest helper samples (`atomgym realkernel run` captures taken since 2026-12-06).

    python scripts/pagetypes.py CAPTURE_DIR [--zone DMA32] [--every 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from atomgym.realkernel.fidelity import RealKernelError, check_samples, load_samples_of, timeseries_file
from atomgym.realkernel.fidelity import pagetype_pages as pages

PAGEBLOCK_ORDER = 9


def whole(pt: dict, t: str) -> int:
    """Whole free pageblocks of type t (an order-10 chunk is two)."""
    return sum(c << (o - PAGEBLOCK_ORDER) for o, c in enumerate(pt.get(t, [])) if o >= PAGEBLOCK_ORDER)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--zone", default="DMA32")
    ap.add_argument("--every", type=int, default=4, help="print every Nth sample")
    a = ap.parse_args()
    try:
        samples = load_samples_of(Path(a.capture))
        check_samples(samples, timeseries_file(Path(a.capture)))   # fidelity's checks, one line each
    except RealKernelError as e:
        print(f"pagetypes.py: {e}", file=sys.stderr)
        return 2
    key = f"0:{a.zone}"
    rows = [s for s in samples if key in s.get("pagetypes", {})]
    if not rows:
        print(f"pagetypes.py: {a.capture}: no /proc/pagetypeinfo samples of zone {a.zone} (a capture from before "
              f"2026-12-06, or another zone)", file=sys.stderr)
        return 2
    print("| t (s) | free | boost | free U / M / R | whole free blocks U / M | pageblocks U / M / R |")
    print("|---:|---:|---:|---|---|---|")
    for i, s in enumerate(rows):
        if i % max(1, a.every) and i != len(rows) - 1:
            continue
        pt, pb = s["pagetypes"][key], s.get("pageblocks", {}).get(key, {})
        z = next(z for z in s["zones"] if z["zone"] == a.zone)
        print(f"| {s['t']:.1f} | {z['free']} | {z['boost']} | {pages(pt, 'Unmovable')} / {pages(pt, 'Movable')} / "
              f"{pages(pt, 'Reclaimable')} | {whole(pt, 'Unmovable')} / {whole(pt, 'Movable')} | {pb.get('Unmovable', '-')} / "
              f"{pb.get('Movable', '-')} / {pb.get('Reclaimable', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
