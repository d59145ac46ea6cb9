"""Whether a capture's DMA zone sat above its balance mark, and where its direct-reclaim stalls were.

    python scripts/dma_balance.py CAPTURE_DIR... [--from-s 5] [--json]

pgdat_balanced() calls a node balanced as soon as one eligible zone passes its high watermark
(zone_watermark_ok_safe(): free > high + boost + lowmem_reserve[highest_zoneidx]). The DMA zone's
protection against the user zones (its `protection:` in the capture's /proc/zoneinfo snapshot,
lowmem_reserve[ZONE_NORMAL]: 934 pages in the 1 GiB guests, 431 at 512 MiB) makes that mark high,
and once memory is full DMA's free pages sit a few pages from it. Above it, wakeup_kswapd() returns
without waking kswapd and a run ends at its next check, whatever DMA32's free pages.

Per capture, for the samples from ``--from-s`` on (memory full): DMA's mark (high + boost +
protection, the sample's own watermarks), the samples with DMA above it ("balanced") and below,
and the direct-reclaim stalls (vmstat allocstall_*) of the intervals that end at those samples.
docs/realkernel.md, "DMA's balance: part of it, not all", reads the corpus with it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from atomgym.kernel.snapshot import parse_snapshot
from atomgym.realkernel.fidelity import RealKernelError, checked_samples, per_capture, start_snapshot

NORMAL = 2   # lowmem_reserve[] index of ZONE_NORMAL (GFP_KERNEL, GFP_USER; ZONE_MOVABLE's is the same here)


def _stalls(v: dict) -> int:
    return sum(int(x) for k, x in v.items() if k.startswith("allocstall_"))


def dma_balance(cap: Path, from_s: float) -> dict:
    samples = checked_samples(cap)
    snap_file = start_snapshot(cap)
    try:
        snap = parse_snapshot(snap_file)
    except Exception as e:   # noqa: BLE001 - the snapshot parser's own message, one line
        raise RealKernelError(f"{snap_file}: {e}") from None
    dma = [z for z in snap.zones if z.zone == "DMA" and z.managed > 0]
    if not dma:
        return {"dma": False}
    prot = int(dma[0].protection[NORMAL])
    rows = []
    for a, b in zip(samples, samples[1:]):
        if b["t"] < from_s:
            continue
        z = next(z for z in b["zones"] if z["zone"] == "DMA")
        mark = int(z["high"]) + prot          # the sample's high includes its boost
        rows.append({"t": round(b["t"], 2), "free": int(z["free"]), "mark": mark, "balanced": z["free"] > mark,
                     "stalls": _stalls(b["vmstat"]) - _stalls(a["vmstat"])})
    bal = [r for r in rows if r["balanced"]]
    unb = [r for r in rows if not r["balanced"]]
    return {"dma": True, "protection": prot, "samples": len(rows),
            "balanced_samples": len(bal), "stalls_balanced": sum(r["stalls"] for r in bal),
            "unbalanced_samples": len(unb), "stalls_unbalanced": sum(r["stalls"] for r in unb),
            "free_median": sorted(r["free"] for r in rows)[len(rows) // 2] if rows else None,
            "mark_median": sorted(r["mark"] for r in rows)[len(rows) // 2] if rows else None,
            "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="+", metavar="CAPTURE_DIR")
    ap.add_argument("--from-s", type=float, default=5.0, help="first sample read, in s (default 5: memory full)")
    ap.add_argument("--json", action="store_true", help="one JSON object: capture -> figures and samples")
    a = ap.parse_args()
    out = per_capture(a.captures, lambda c: dma_balance(c, a.from_s), "dma_balance.py", sys.stderr)
    if out is None:
        return 2
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'capture':34} {'protection':>10} {'DMA free':>8} {'mark':>6} {'balanced':>16} {'below the mark':>16}")
    tot = [0, 0, 0, 0]
    for c, r in out.items():
        if not r["dma"]:
            print(f"{c:34} (no DMA zone)")
            continue
        print(f"{c:34} {r['protection']:>10} {r['free_median']:>8} {r['mark_median']:>6} "
              f"{r['balanced_samples']:>4} s, {r['stalls_balanced']:>5} st {r['unbalanced_samples']:>4} s, "
              f"{r['stalls_unbalanced']:>5} st")
        tot = [tot[0] + r["balanced_samples"], tot[1] + r["stalls_balanced"],
               tot[2] + r["unbalanced_samples"], tot[3] + r["stalls_unbalanced"]]
    if tot[0] and tot[2]:
        print(f"over {len(out)} captures: {tot[1] / tot[0]:.2f} stalls per sample with DMA above its mark "
              f"({tot[0]} samples), {tot[3] / tot[2]:.2f} below it ({tot[2]} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
