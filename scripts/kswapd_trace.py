"""Who wakes kswapd, who stalls in direct reclaim and after what: a traced capture, second by second.

    python scripts/kswapd_trace.py CAPTURE_DIR [--bin 1.0] [--twin] [--json]

CAPTURE_DIR is an `atomgym realkernel run ... --trace` folder (its trace.txt; e.g. corpus/traced/*).
Per bin of scenario time, from the kernel's tracepoints (atomgym/realkernel/tracepoints.py):

- ``runs``: balance_pgdat() runs (mm_vmscan_kswapd_wake), ``sleeps``: full sleeps;
- ``wake:boost/atomic/anon/cache``: the allocations that woke kswapd, by class (``boost`` is
  rmqueue()'s wake of a zone a fallback boosted);
- ``dr:anon/cache/atomic``: direct-reclaim calls (allocstall) by the class of the stalling request;
- ``fb:boost`` / ``fb:whole``: fallbacks into another migratetype's free pages that boost the
  watermark (a chunk under a pageblock) / that take a whole block without a boost.

Then the direct-reclaim calls: pages per call, time per call (begin to end, preemption included),
pages per ms of call time, and how many start within 5 ms after a boosting fallback of the same
task (the boost raises min + boost above free: wmark_pages() includes the boost, so the task's next
page fails at min and reclaims itself); and the fallbacks by the request's migratetype and the type
whose free pages it took (a chunk, which boosts, or a whole block). ``--twin`` adds the simulator's twin of the capture
(atomgym fidelity's, one run at the guest's rates) with the same columns from its counters.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from atomgym.realkernel.errors import RealKernelError
from atomgym.realkernel.fidelity import _read_json, refuse_link
from atomgym.realkernel.tracepoints import boosting, direct_reclaim_calls, fallback_types, load, waker

COLS = ("runs", "sleeps", "wake:boost", "wake:atomic", "wake:anon", "wake:cache", "dr:anon", "dr:cache", "dr:atomic",
        "fb:boost", "fb:whole")
TWIN_COLS = ("runs", "wakes", "dr", "fb:boost", "fb:whole")
AFTER_BOOST_S = 0.005


def kernel_bins(events, bin_s: float, n: int) -> list[dict[str, int]]:
    rows = [dict.fromkeys(COLS, 0) for _ in range(n)]
    for e in events:
        i = int(e.t // bin_s)
        if not 0 <= i < n:
            continue
        r = rows[i]
        if e.name == "kswapd_wake":
            r["runs"] += 1
        elif e.name == "kswapd_sleep":
            r["sleeps"] += 1
        elif e.name == "wakeup_kswapd":
            r[f"wake:{waker(e.args.get('gfp_flags', ''))}"] += 1
        elif e.name == "direct_reclaim_begin":
            c = waker(e.args.get("gfp_flags", ""))
            r[f"dr:{c if c != 'boost' else 'cache'}"] += 1
        elif e.name == "extfrag":
            r["fb:boost" if boosting(e) else "fb:whole"] += 1
    return rows


def call_summary(events) -> dict:
    calls = direct_reclaim_calls(events)
    done = [(b, e) for b, e in calls if e is not None]
    pages = [int(e.args.get("nr_reclaimed", 0)) for _, e in done]
    ms = [(e.t - b.t) * 1000.0 for b, e in done]
    boosts: dict[int, list[float]] = {}
    for e in events:
        if e.name == "extfrag" and boosting(e):
            boosts.setdefault(e.pid, []).append(e.t)
    after = sum(1 for b, _ in calls if any(0 <= b.t - t <= AFTER_BOOST_S for t in boosts.get(b.pid, ())))
    return {"calls": len(calls), "pages_per_call": statistics.median(pages) if pages else None,
            "ms_per_call": round(statistics.median(ms), 3) if ms else None,
            "pages_per_ms": round(sum(pages) / sum(ms), 1) if ms and sum(ms) > 0 else None,
            "after_own_boost": after}


def twin_bins(cap: Path, bin_s: float, n: int) -> list[dict[str, float] | None]:
    """The twin's counters per bin; None for a bin that starts after the scenario's end (the
    guest's last sample and trace lines come a little after it)."""
    from atomgym.realkernel import fidelity
    from atomgym.sim.simulator import Simulator
    loaded = fidelity.load(cap)
    scen = loaded["_scen"]
    sim = Simulator(scen, n_machines=1)
    sim.reset([1])
    ci = {k: i for i, k in enumerate(sim.counter_names)}
    stall = [ci[k] for k in ci if k.startswith("allocstall_")]
    ticks = max(1, int(round(bin_s * 1000.0 / scen.tick_ms)))
    rows: list[dict[str, float] | None] = []
    prev = sim.counters[0].copy()
    for i in range(n):
        if i * bin_s >= scen.duration_s:
            rows.append(None)
            continue
        sim.advance(ticks)
        c = sim.counters[0]
        d = c - prev
        prev = c.copy()
        rows.append({"runs": d[ci["pageoutrun"]], "wakes": d[ci["kswapd_wakeups"]], "dr": sum(d[j] for j in stall),
                     "fb:boost": d[ci["fallback_boosts"]], "fb:whole": d[ci["fallbacks"]] - d[ci["fallback_boosts"]]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", metavar="CAPTURE_DIR")
    ap.add_argument("--bin", type=float, default=1.0, help="seconds per row (default 1)")
    ap.add_argument("--twin", action="store_true", help="add the simulator's twin of the capture")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.bin > 0 or args.bin > 3600:
        print(f"{ap.prog}: error: --bin must be in (0, 3600] seconds, got {args.bin:g}", file=sys.stderr)
        return 2
    cap = Path(args.capture)
    try:
        if not cap.is_dir():
            raise RealKernelError(f"{cap}: no such capture folder")
        events = load(cap)
        refuse_link(cap / "capture.json")
        meta = _read_json(cap / "capture.json", dict) if (cap / "capture.json").is_file() else {}
        dur = float(meta.get("duration_s") or (events[-1].t if events else 0.0))
        n = max(1, int(-(-dur // args.bin)), int(events[-1].t // args.bin) + 1 if events else 1)   # the last line
        rows = kernel_bins(events, args.bin, n)
        twin = twin_bins(cap, args.bin, n) if args.twin else None
        summary = call_summary(events)
        fb = fallback_types(events)
    except (RealKernelError, TypeError, ValueError) as e:     # (a field of a trace line that is not a number)
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"capture": str(cap), "bin_s": args.bin, "kernel": rows, "direct_reclaim": summary,
                          "fallbacks": [{"request": a, "took": f, "size": k, "count": c}
                                        for (a, f, k), c in sorted(fb.items())],
                          "twin": twin}, default=float))
        return 0
    head = f"{'t (s)':>7} " + " ".join(f"{c:>11}" for c in COLS)
    if twin:
        head += " | twin " + " ".join(f"{c:>8}" for c in TWIN_COLS)
    print(head)
    for i, r in enumerate(rows):
        line = f"{i * args.bin:7.1f} " + " ".join(f"{r[c]:11d}" for c in COLS)
        if twin and twin[i] is not None:
            line += " |      " + " ".join(f"{twin[i][c]:8.0f}" for c in TWIN_COLS)
        print(line)
    tot = {c: sum(r[c] for r in rows) for c in COLS}
    print(f"{'total':>7} " + " ".join(f"{tot[c]:11d}" for c in COLS) +
          (" |      " + " ".join(f"{sum(r[c] for r in twin if r):8.0f}" for c in TWIN_COLS) if twin else ""))
    s = summary
    if s["calls"]:
        print(f"direct reclaim: {s['calls']} calls, {s['pages_per_call']:g} pages a call (median), "
              f"{s['ms_per_call']:g} ms a call (median, preemption included), {s['pages_per_ms']:g} pages per ms of "
              f"call time; {s['after_own_boost']} of them within {AFTER_BOOST_S * 1000:g} ms after a boosting "
              f"fallback of the same task")
    else:
        print("direct reclaim: no calls")
    print("fallbacks (request <- the type it took): " + (", ".join(
        f"{a} <- {f} {k} {c}" for (a, f, k), c in sorted(fb.items())) if fb else "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
