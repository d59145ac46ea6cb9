"""What a real-kernel capture says about kswapd's speed and its wasted scans, per run.

    python scripts/kswapd_rates.py CAPTURE_DIR... [--json]

Per capture (an `atomgym realkernel run` folder, e.g. each run of corpus/), from the guest's
/proc/vmstat between consecutive samples (about 0.3 s apart):

- ``steal_max``: the most pages kswapd reclaimed in one sampling interval, per millisecond
  (pgsteal_kswapd / interval): a lower bound of what the guest's kswapd can reclaim when it runs
  throughout; ``steal_p90``: the 90th percentile over the intervals in which it reclaimed anything.
  The simulator's counterpart is the scenario's ``kswapd.reclaim_pages_per_ms``.
- ``scanned_not_stolen``: pgscan_kswapd - pgsteal_kswapd over the run, and ``walks``: the intervals
  in which kswapd scanned 10,000 pages more than it reclaimed. isolate_lru_folios() counts the
  folios it skips (of zones above the run's reclaim_idx) as scanned (``total_scan``): a run for a
  low zone walks the LRU past every page of the zones above it.
- ``dma_boosted``: samples at which the DMA zone carries a watermark boost (a fallback in DMA; its
  rmqueue() wakeup asks kswapd for ZONE_DMA's index).

Captures whose guest also read kswapd0's /proc/PID/schedstat (since 2026-12-07: CPU time, runqueue
wait, timeslices, in ns; CONFIG_SCHED_INFO) give kswapd's speed exactly instead of a bound:

- ``cpu_ms``: kswapd's CPU time over the run; ``per_cpu_ms``: pgsteal_kswapd per ms of it, the
  reclaim rate while it runs (the simulator's ``kswapd.reclaim_pages_per_ms``);
- ``cpu_per_run_ms``: CPU time per balance_pgdat() run (pageoutrun);
- ``wait_per_run_ms``: the time it waited on the runqueue (woken, another task on the CPU) per run,
  and ``wait_per_slice_ms`` per timeslice: what the simulator's ``kswapd.wake_latency_ms`` stands
  for. Older captures print "-".
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from atomgym.realkernel.fidelity import checked_samples, kswapd_schedstat, per_capture

WALK = 10_000   # pages scanned and not reclaimed in one interval that count as a walk past other zones


def rates(samples: list[dict]) -> dict:
    steal, walks = [], 0
    for a, b in zip(samples, samples[1:]):
        dt_ms = (b["t"] - a["t"]) * 1000.0
        if dt_ms <= 0:
            continue
        va, vb = a["vmstat"], b["vmstat"]
        st = vb.get("pgsteal_kswapd", 0) - va.get("pgsteal_kswapd", 0)
        sc = vb.get("pgscan_kswapd", 0) - va.get("pgscan_kswapd", 0)
        if st > 0:
            steal.append(st / dt_ms)
        if sc - st > WALK:
            walks += 1
    v0, v1 = samples[0]["vmstat"], samples[-1]["vmstat"]
    dma = sum(1 for s in samples for z in s["zones"] if z["zone"] == "DMA" and z["boost"] > 0)
    k = kswapd_schedstat(samples)
    sched: dict = {n: None for n in ("cpu_ms", "per_cpu_ms", "cpu_per_run_ms", "wait_per_run_ms", "wait_per_slice_ms")}
    if k:
        cpu, wait, runs, slices = k["cpu_ms"], k["wait_ms"], k["runs"], k["slices"]
        sched = {"cpu_ms": round(cpu, 1), "per_cpu_ms": round(k["stolen"] / cpu, 1) if cpu > 0 else None,
                 "cpu_per_run_ms": round(cpu / runs, 3) if runs else None,
                 "wait_per_run_ms": round(wait / runs, 3) if runs else None,
                 "wait_per_slice_ms": round(wait / slices, 3) if slices else None}
    return {
        **sched,
        "steal_max": round(max(steal), 1) if steal else 0.0,
        "steal_p90": round(float(np.percentile(steal, 90)), 1) if steal else 0.0,
        "scanned_not_stolen": int((v1.get("pgscan_kswapd", 0) - v0.get("pgscan_kswapd", 0))
                                  - (v1.get("pgsteal_kswapd", 0) - v0.get("pgsteal_kswapd", 0))),
        "walks": walks,
        "dma_boosted": dma,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="+", metavar="CAPTURE_DIR")
    ap.add_argument("--json", action="store_true", help="one JSON object: capture -> figures")
    a = ap.parse_args()
    out = per_capture(a.captures, lambda c: rates(checked_samples(c)), "kswapd_rates.py", sys.stderr)
    if out is None:     # the fields fidelity checks, one line (exit 2)
        return 2
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    def f(v) -> str:
        return "-" if v is None else f"{v:g}"
    print(f"{'capture':34} {'steal max':>10} {'p90':>6} {'scanned-stolen':>15} {'walks':>6} {'DMA boosted':>12}"
          f" {'cpu ms':>7} {'pages/cpu ms':>12} {'cpu/run':>8} {'wait/run':>8} {'wait/slice':>10}")
    for c, r in out.items():
        print(f"{c:34} {r['steal_max']:>10} {r['steal_p90']:>6} {r['scanned_not_stolen']:>15} {r['walks']:>6} "
              f"{r['dma_boosted']:>12} {f(r['cpu_ms']):>7} {f(r['per_cpu_ms']):>12} {f(r['cpu_per_run_ms']):>8} "
              f"{f(r['wait_per_run_ms']):>8} {f(r['wait_per_slice_ms']):>10}")
    mx = [r["steal_max"] for r in out.values()]
    print(f"kswapd's busiest interval over {len(out)} captures: median {np.median(mx):.1f}, "
          f"largest {max(mx):.1f} pages/ms")
    timed = [r for r in out.values() if r["per_cpu_ms"] is not None]
    if timed:
        def med(k: str) -> str:
            return f"{np.median([r[k] for r in timed if r[k] is not None]):.3g}"
        print(f"kswapd's schedstat over {len(timed)} captures (medians): {med('per_cpu_ms')} pages per ms of its "
              f"CPU time, {med('cpu_per_run_ms')} ms of CPU per run, {med('wait_per_run_ms')} ms on the runqueue "
              f"per run ({med('wait_per_slice_ms')} ms per timeslice)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
