"""How far the zone's NR_FREE_PAGES counter is from the buddy free pages at a capture's samples.

    python scripts/counter_drift.py CAPTURE_DIR... [--twin] [--json]

The watermark checks read NR_FREE_PAGES (sim/vmstat.py), which lags the buddy allocator's free
pages by the per-CPU diffs not yet folded. A guest that sampled /proc/pagetypeinfo gives both at
each sample: /proc/zoneinfo's "pages free" is the counter, the sum of pagetypeinfo's free blocks
(count x 2^order over every migratetype) the buddy pages. Per capture, for the zone with the most
managed pages: the samples where the two agree exactly, within 8 pages, and the rest (the two
files are read one after the other, so a burst between the reads also shows as a difference).

``--twin`` also runs the capture's simulator twin (the scenario and kswapd values `atomgym
fidelity` replays) and reads its counter (``free_seen``) against its buddy count at the same
instants. The kernel folds the diffs when a CPU stops its tick to idle (quiet_vmstat() from
tick_nohz_stop_tick()), which the twin does not model: its counter may lag longer than the
kernel's. docs/realkernel.md, "The counter at the samples".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from atomgym.realkernel.fidelity import RealKernelError, checked_samples, per_capture

NEAR = 8   # pages: a difference this small counts as "within a few pages"


def _buddy(pt: dict) -> int:
    return sum(c << o for counts in pt.values() for o, c in enumerate(counts))


def _summary(diffs: list[int]) -> dict:
    n = len(diffs)
    exact = sum(1 for d in diffs if d == 0)
    near = sum(1 for d in diffs if 0 < abs(d) <= NEAR)
    return {"samples": n, "exact": exact, "within_8": near, "beyond_8": n - exact - near}


def real_drift(cap: Path) -> dict:
    samples = checked_samples(cap)
    managed = {z["zone"]: z["managed"] for z in samples[0]["zones"] if z["node"] == 0}
    zone = max(managed, key=managed.get)
    diffs, times = [], []
    for s in samples:
        pt = (s.get("pagetypes") or {}).get(f"0:{zone}")
        if pt is None:
            continue
        z = next(z for z in s["zones"] if z["node"] == 0 and z["zone"] == zone)
        diffs.append(int(z["free"]) - _buddy(pt))
        times.append(s["t"])
    if not diffs:
        raise RealKernelError(f"{cap}: no /proc/pagetypeinfo in its samples (captures since 2026-12-06 have it)")
    return {"zone": zone, **_summary(diffs), "times": times, "diffs": diffs}


def twin_drift(cap: Path, zone: str, times: list[float]) -> dict:
    """The twin's counter (free_seen) less its buddy free pages in ``zone`` at ``times`` (s)."""
    from atomgym.realkernel.fidelity import load
    from atomgym.sim.layout import ZF_FREE, ZF_FREE_SEEN
    from atomgym.sim.simulator import Simulator
    scen = load(cap)["_scen"]      # (with the capture's measured kswapd speed, where it has one)
    sim = Simulator(scen, n_machines=1)
    sim.reset([1])
    z = next(i for i, n in enumerate(sim.zone_names) if n.split("zone ")[-1] == zone)
    done, diffs = 0, []
    for t in times:
        k = int(t * 1000 / scen.tick_ms)
        if k > done:
            sim.advance(k - done)
            done = k
        diffs.append(int(sim.zone_state[0, z, ZF_FREE_SEEN] - sim.zone_state[0, z, ZF_FREE]))
    return _summary(diffs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="+", metavar="CAPTURE_DIR")
    ap.add_argument("--twin", action="store_true", help="also the simulator twin's counter at the same instants")
    ap.add_argument("--json", action="store_true", help="one JSON object: capture -> figures")
    a = ap.parse_args()

    def one(c: Path) -> dict:
        r = real_drift(c)
        if a.twin:
            r["twin"] = twin_drift(c, r["zone"], r["times"])
        return r
    out = per_capture(a.captures, one, "counter_drift.py", sys.stderr)
    if out is None:
        return 2
    if a.json:
        print(json.dumps({c: {k: v for k, v in r.items() if k not in ("times", "diffs")} for c, r in out.items()},
                         indent=1))
        return 0
    print(f"{'capture':34} {'zone':>6} {'samples':>7}  {'kernel: exact / <=8 / more':>27}"
          + (f"  {'twin: exact / <=8 / more':>25}" if a.twin else ""))
    for c, r in out.items():
        line = f"{c:34} {r['zone']:>6} {r['samples']:>7}  {r['exact']:>13} / {r['within_8']:>4} / {r['beyond_8']:>4}"
        if a.twin:
            t = r["twin"]
            line += f"  {t['exact']:>11} / {t['within_8']:>4} / {t['beyond_8']:>4}"
        print(line)
    n = sum(r["samples"] for r in out.values())
    print(f"over {len(out)} captures: the kernel's counter equals its buddy pages at "
          f"{sum(r['exact'] for r in out.values())} of {n} samples"
          + (f", the twin's at {sum(r['twin']['exact'] for r in out.values())}" if a.twin else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
