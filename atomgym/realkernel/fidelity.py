"""`atomgym fidelity DIR`: a real-kernel capture beside the simulator's run of the same scenario.

The simulator's machine is built from the capture's own snapshot (``snapshot-start.txt``: the
guest's zones, managed pages and sysctls right before t = 0) and its starting memory from
that snapshot's vmstat (page cache, anonymous, the rest kernel), so both start from the same
state. The scenario is the capture's copy. Workload rates: a TCG guest may read or fault
slower than asked; where the guest reached less than 90 % of a rate, the simulator runs the
rate the guest reached (a note says so). Both sides are compared in guest time.

What the simulator in this tree cannot run yet (atomic_alloc, phases' workload starts/stops,
stop_s, volume_mib) is detected from its schema, left out of its run, and listed; phases'
sysctl writes are applied through `Simulator.set_knobs` (sysctl semantics) at their times.
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..kernel.zones import PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, ZONE_NAMES
from .capture import KSWAPD_FIELDS, read_jsonl
from .errors import RealKernelError
from .plan import Plan, load_plan

WMARK_MIN, WMARK_LOW, WMARK_HIGH = 0, 1, 2   # kernel/watermarks.py order (enum zone_watermarks)
PAGE_KIB = 4
COUNT_TOL = 0.25     # counts (and times, ratios): |sim - real| <= 25 % of real
POS_TOL = 0.25       # positions: within 0.25 of the zone's high - min gap
# agrun's reader reads 256 KiB a pread() (CHUNK) and its hog touches 64 pages between two checks of
# its pace: both allocate in 64-page chunks, which the twin's workloads do too (chunk_pages)
AGRUN_CHUNK_PAGES = 64
SMALL_COUNT = 10     # counts this small on both sides agree (a handful of stalls is noise)


# ---- the simulator's capabilities -------------------------------------------------------------
def sim_features() -> dict[str, bool]:
    from ..sim import scenario as S
    wf = {f.name: f for f in dataclasses.fields(S.WorkloadSpec)}
    kinds = wf["kind"].metadata.get("choices", ()) if "kind" in wf else ()
    return {"atomic_alloc": "atomic_alloc" in kinds, "stop_s": "stop_s" in wf, "volume_mib": "volume_mib" in wf,
            "name": "name" in wf, "phases": "phases" in {f.name for f in dataclasses.fields(S.Scenario)},
            "phase_rate": "rate" in {f.name for f in dataclasses.fields(S.PhaseSpec)}}


# ---- real side ---------------------------------------------------------------------------------
def _main_zone(samples: list[dict]) -> str:
    z = max(samples[0]["zones"], key=lambda z: z["managed"])
    return z["zone"]


def _zone(s: dict, name: str) -> dict:
    return next(z for z in s["zones"] if z["zone"] == name)


def phase_bounds(plan: Plan, horizon: float | None = None) -> list[tuple[float, float]]:
    """[from, to) of each phase (the first from 0), cut at the horizon."""
    end = plan.duration_s if horizon is None else min(horizon, plan.duration_s)
    cuts = sorted({p["at_s"] for p in plan.phases if 0 < p["at_s"] < end})
    edges = [0.0, *cuts, end]
    return list(zip(edges[:-1], edges[1:]))


def _median_pos(ts: np.ndarray, pos: np.ndarray, lo: float, hi: float) -> float | None:
    m = (ts >= lo) & (ts < hi)
    return float(np.median(pos[m])) if m.any() else None


def achieved_rates(plan: Plan, samples: list[dict], events: list[dict]) -> dict[int, float]:
    """Work index -> the rate (MiB/s) the guest reached, for streams (pgpgin) and hogs (anon growth)."""
    ts = np.array([s["t"] for s in samples])
    out: dict[int, float] = {}
    streams = [i for i, w in enumerate(plan.works) if w.kind == "stream"]
    for i, w in enumerate(plan.works):
        t1 = plan.duration_s if w.stop is None else w.stop
        if w.kind == "stream" and len(streams) == 1:
            m = (ts >= w.start) & (ts <= t1)
            if m.sum() >= 2:
                pin = np.array([s["vmstat"].get("pgpgin", 0) for s in samples])[m]
                tt = ts[m]
                out[i] = float((pin[-1] - pin[0]) / 1024.0 / max(tt[-1] - tt[0], 1e-9))
                if w.params[3] > 0:   # volume: the rate while it read, not after it finished
                    done = np.searchsorted(pin - pin[0], w.params[3] * 1024 * 0.99)
                    if done < len(tt):
                        out[i] = float(w.params[3] / max(tt[done] - tt[0], 1e-9))
        elif w.kind == "hog":
            anon = np.array([s["vmstat"].get("nr_anon_pages", 0) for s in samples])
            m = ts >= w.start
            if m.sum() >= 2:
                base = anon[m][0]
                need = w.params[1] * 256 * 0.95
                hit = np.flatnonzero(anon[m] - base >= need)
                if hit.size:
                    out[i] = float(w.params[1] * 0.95 / max(ts[m][hit[0]] - w.start, 1e-9))
    return out


# Of the blocks the guest's page cache filled, the share reclaim frees whole (memory.reclaim_whole_share):
# chosen on the calibration half from 0.5, 0.6, 0.65, 0.7, 0.8 with the claimed blocks and the
# reader's take-back modelled (docs/realkernel.md, "Blocks the hog claimed come back whole; blocks
# the reader takes back do not"); not a kernel constant
RECLAIM_WHOLE_SHARE = 0.6
STEP_SAMPLES = 5     # a replayed reader rate spans this many sampling intervals (~1.5 s)


def reader_steps(plan: Plan, samples: list[dict]) -> dict[int, list[tuple[float, float]]]:
    """Work index -> [(t, MiB/s), ...]: the single stream's rate over each window of STEP_SAMPLES
    sampling intervals while it runs (pgpgin between the window's samples), for the simulator's
    reader to replay from each window's first sample on: the guest's reader falls behind and
    catches up with the host (TCG) for seconds at a time, which the simulator cannot know. (One
    interval is too short: the sampler's timing moves its rate by +-8 %.)"""
    streams = [i for i, w in enumerate(plan.works) if w.kind == "stream"]
    if len(streams) != 1:
        return {}
    i = streams[0]
    w = plan.works[i]
    t1 = plan.duration_s if w.stop is None else w.stop
    pts = [(s["t"], s["vmstat"].get("pgpgin", 0)) for s in samples if w.start <= s["t"] <= t1]
    pts = pts[::STEP_SAMPLES] + ([pts[-1]] if (len(pts) - 1) % STEP_SAMPLES else [])
    steps = [(round(ta, 4), round(max(0.0, (pb - pa) / 1024.0 / (tb - ta)), 3))
             for (ta, pa), (tb, pb) in zip(pts, pts[1:]) if tb > ta]
    return {i: steps} if steps else {}


def real_metrics(plan: Plan, samples: list[dict], meta: dict, horizon: float | None = None) -> dict[str, Any]:
    """The real run's metrics over [0, horizon] (default: all of it)."""
    if horizon is not None:
        samples = [s for s in samples if s["t"] <= horizon + 1e-6]
    zname = _main_zone(samples)
    first, last = samples[0], samples[-1]
    vm0, vm1 = first["vmstat"], last["vmstat"]

    def d(k: str) -> int:
        return int(vm1.get(k, 0) - vm0.get(k, 0))
    runs = d("pageoutrun")
    ts = np.array([s["t"] for s in samples])
    free, mn, hi, boost = (np.array([_zone(s, zname)[k] for s in samples], dtype=float)
                           for k in ("free", "min", "high", "boost"))
    # zoneinfo prints min/low/high with the boost added; the position uses the base watermarks
    pos = (free - (mn - boost)) / np.maximum((hi - boost) - (mn - boost), 1)
    a = dict(meta.get("atomic", {}))
    a.update({k: last["atomic"][k] for k in ("req", "fail", "fail_bursts") if k in last["atomic"]})
    ff_t = meta.get("first_failure_t")
    if ff_t is not None and horizon is not None and ff_t > horizon:
        a["first_fail_free"], ff_t = [], None
    zidx = ZONE_NAMES.index(zname) if zname in ZONE_NAMES else None   # enum zone_type
    ff = [z["free"] for z in (a.get("first_fail_free") or []) if z["zone_idx"] == zidx]
    out: dict[str, Any] = {
        "zone": zname,
        "atomic_req_pages": a.get("req"),
        "atomic_fail_pages": a.get("fail"),
        "atomic_fail_bursts": a.get("fail_bursts"),
        "free_at_first_failure": ff[0] if ff else None,
        # the latest failing burst's first failure, as sampled (within the horizon)
        "free_at_latest_failure": last["atomic"].get(f"last_fail_free_{zidx}") if a.get("fail") else None,
        "first_failure_t": ff_t,
        "kswapd_runs": runs,
        "kswapd_pages_per_run": round(d("pgsteal_kswapd") / runs, 1) if runs else None,
        "largest_boost": int(max(max(z["boost"] for z in s["zones"]) for s in samples)),
        "direct_reclaim_stalls": sum(d(k) for k in ("allocstall_dma", "allocstall_dma32", "allocstall_normal",
                                                     "allocstall_movable")),
        "pgsteal_direct": d("pgsteal_direct"),
        "min_free": int(free.min()),
        "phases": [],
    }
    # kswapd0's /proc/PID/schedstat (captures since 2026-12-07): the CPU time it ran, and the time
    # it waited on the runqueue (woken, not yet on the CPU) per balance_pgdat() run
    k = kswapd_schedstat(samples)
    out["kswapd_cpu_ms"] = round(k["cpu_ms"], 1) if k else None
    out["kswapd_wait_per_run_ms"] = round(k["wait_ms"] / runs, 3) if k and runs else None
    for lo, hi_ in phase_bounds(plan, horizon):
        out["phases"].append({"from_s": lo, "to_s": hi_, "median_pos": _median_pos(ts, pos, lo, hi_)})
    pt_rows = _pagetype_rows(samples, zname)
    out["unmovable_share_full"] = unmovable_share_full([(s["free_u"], s["free_total"], s["hi"]) for s in pt_rows])
    out["whole_share_full"] = whole_share_full([(s["whole_u"], s["free_u"], s["free_total"], s["hi"])
                                                for s in pt_rows])
    out["whole_after_exit"] = whole_after_exit([(s["t"], s["whole_m"]) for s in pt_rows], hog_peak_s(plan))
    # what the guest read at every sample: a capture that also read /proc/pagetypeinfo is another
    # condition (its read walks the free lists under the zone lock on the guest's CPUs), so
    # repeats are only those of the same sampling (corpus.kernel_spread())
    out["sampled_pagetypeinfo"] = bool(pt_rows)
    out["gap"] = float(hi[0] - mn[0])      # the unboosted high - min of the first sample (boost included in both)
    return out


FULL_HIGHS = 2.0     # "memory full": free pages at most this many times the zone's (boosted) high mark


def unmovable_share_full(rows: list[tuple[float, float, float]]) -> float | None:
    """The median, over samples where the zone's free pages are at most FULL_HIGHS x its high
    mark, of the share of its buddy free pages on the UNMOVABLE free lists: (free on UNMOVABLE
    lists, buddy free pages, high) per sample. None without such samples (or without
    /proc/pagetypeinfo samples: captures before 2026-12-06)."""
    return _median_share_full([(u, f, f, h) for u, f, h in rows])


def _median_share_full(rows: list[tuple[float, float, float, float]]) -> float | None:
    """The median of ``part / of`` over the rows (part, of, buddy free pages, high) whose ``of`` is
    positive and whose zone has memory full (0 < free <= FULL_HIGHS x high); None without any."""
    vals = [p / o for p, o, f, h in rows if o > 0 and 0 < f <= FULL_HIGHS * h]
    return round(float(np.median(vals)), 3) if vals else None


def whole_share_full(rows: list[tuple[float, float, float, float]]) -> float | None:
    """The median, over samples where the zone's free pages are at most FULL_HIGHS x its high mark
    and some are on its UNMOVABLE lists, of the share of those UNMOVABLE free pages that are whole
    free pageblocks (chunks of order >= pageblock_order): (whole UNMOVABLE, free UNMOVABLE, buddy
    free, high) per sample. The process behind memory.reclaim_reforms_pageblocks: whether a
    fallback finds a whole block to claim without a boost. None without such samples."""
    return _median_share_full(rows)


def hog_peak_s(plan: Plan) -> float | None:
    """When the plan's first anonymous hog (one that exits: no period) reaches its peak, at its
    planned rate; None without one."""
    for w in plan.works:
        if w.kind == "hog" and w.params[0] > 0 and not w.params[3]:
            return w.start + w.params[1] / w.params[0]
    return None


def whole_after_exit(rows: list[tuple[float, float]], peak_s: float | None) -> float | None:
    """Of (time, whole free MOVABLE pageblocks) per sample: the most whole free MOVABLE blocks from
    the hog's peak on, i.e. those its exit gives back (a block every page of which the hog held is
    whole again once it frees them: __free_one_page()). The process behind memory.reform_pageblocks
    and the blocks a MOVABLE fallback claims whole. None without a hog or such samples."""
    if peak_s is None:
        return None
    vals = [w for t, w in rows if t >= peak_s]
    return float(max(vals)) if vals else None


def pagetype_pages(pt: dict, t: str, min_order: int = 0) -> int:
    """Free pages of migratetype ``t`` in one zone's /proc/pagetypeinfo counts (chunks of order o
    hold 2**o pages); from ``min_order`` up (PAGEBLOCK_ORDER: the whole free pageblocks)."""
    return sum(int(c) << o for o, c in enumerate(pt.get(t, [])) if o >= min_order)


def _pagetype_rows(samples: list[dict], zname: str) -> list[dict]:
    """Per sample with /proc/pagetypeinfo lines for the zone: the free pages on its UNMOVABLE
    lists (and in whole free pageblocks there), on all its lists (chunks of order o hold 2**o
    pages) and its high mark (boost included, as zoneinfo prints it)."""
    out = []
    for s in samples:
        pt = (s.get("pagetypes") or {}).get(f"0:{zname}")
        if not pt:
            continue
        out.append({"t": s["t"], "free_u": float(pagetype_pages(pt, "Unmovable")),
                    "whole_u": float(pagetype_pages(pt, "Unmovable", PAGEBLOCK_ORDER)),
                    "whole_m": float(pagetype_pages(pt, "Movable", PAGEBLOCK_ORDER) // PAGEBLOCK_NR_PAGES),
                    "free_total": float(sum(pagetype_pages(pt, t) for t in pt)),
                    "hi": float(_zone(s, zname)["high"])})
    return out


STALLS = ("allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable")


def real_series(samples: list[dict], zname: str, horizon: float | None = None) -> dict[str, list[float]]:
    """The real run's time series for the plots: the largest zone's free pages, its unboosted
    min/low/high and boost, and the cumulative kswapd, direct-reclaim and failure counters."""
    if horizon is not None:
        samples = [s for s in samples if s["t"] <= horizon + 1e-6]
    z = [_zone(s, zname) for s in samples]
    vm0 = samples[0]["vmstat"]

    def cum(k: str) -> list[float]:
        return [s["vmstat"].get(k, 0) - vm0.get(k, 0) for s in samples]
    return {"t": [s["t"] for s in samples], "free": [x["free"] for x in z],
            # zoneinfo prints each watermark with the boost added: the series carry the base ones
            "min": [x["min"] - x["boost"] for x in z], "low": [x["low"] - x["boost"] for x in z],
            "high": [x["high"] - x["boost"] for x in z], "boost": [x["boost"] for x in z],
            "kswapd_runs": cum("pageoutrun"), "pgsteal_kswapd": cum("pgsteal_kswapd"),
            "direct_reclaim_stalls": [sum(s["vmstat"].get(k, 0) - vm0.get(k, 0) for k in STALLS) for s in samples],
            "atomic_fail_pages": [s["atomic"].get("fail", 0) for s in samples]}


# ---- simulator side --------------------------------------------------------------------------
def start_times(plan: Plan, events: list[dict]) -> dict[str, float]:
    """Workload name -> when the guest started it (its ``start`` event), for the workloads that
    start at their own start time (not a phase's). The module's bursts repeat every interval from
    its start and the guest samples every 0.3 s: whether a sample sees a burst held depends on
    that start to the millisecond (a 512-page burst is about one high-min gap of a 1 GiB zone)."""
    out: dict[str, float] = {}
    for e in events:
        if e.get("what") != "start" or not e.get("args"):
            continue
        try:
            w = plan.works[int(e["args"][0])]
        except (ValueError, IndexError, TypeError):
            continue
        if abs(float(e["t"]) - w.start) < 0.5 and not any(w.name in p["start"] for p in plan.phases):
            out[w.name] = round(float(e["t"]), 4)
    return out


def shot_times(plan: Plan, events: list[dict]) -> list[float] | None:
    """When the guest wrote each of the plan's shots (``shot`` events), in the plan's order; None
    unless there is one per shot, each within 0.5 s of its plan time (whether a shot comes before
    or after a burst of the same millisecond decides which of them fails)."""
    at = sorted(float(e["t"]) for e in events if e.get("what") == "shot")
    plan_at = sorted(a for a, n, _ in plan.shots if n > 0)
    if len(at) != len(plan_at) or any(abs(a - b) >= 0.5 for a, b in zip(at, plan_at)):
        return None
    return [round(a, 4) for a in at]


def _replay_shots(shots: list[dict], times: list[float] | None) -> list[dict]:
    """The workload's shots (dicts with at_s) at the guest's own times (shot_times())."""
    if not times or len(times) != len(shots):
        return shots
    order = sorted(range(len(shots)), key=lambda j: shots[j]["at_s"])
    out = [dict(sh) for sh in shots]
    for j, t in zip(order, times):
        out[j]["at_s"] = t
    return out


def sim_scenario(plan: Plan, cap: Path, rates: dict[int, float], feats: dict[str, bool],
                 steps: dict[int, list[tuple[float, float]]] | None = None,
                 starts: dict[str, float] | None = None, shots: list[float] | None = None) -> tuple[Any, list[str]]:
    """The scenario the simulator runs (the current schema's keys) and what had to be left out;
    ``steps`` (reader_steps()): a workload's measured rate per sampling interval, replayed through
    phases' ``rate`` where the simulator has it; ``starts`` (start_times()): when the guest started
    each workload, replayed as its start_s; ``shots`` (shot_times()): when it wrote each shot."""
    starts = starts or {}
    from ..kernel.snapshot import parse_snapshot
    from ..sim.scenario import scenario_from_dict
    snap_file = start_snapshot(cap)
    snap = parse_snapshot(snap_file)
    managed = int(sum(z.managed for z in snap.zones))
    vm = snap.vmstat
    free = int(sum(z.free for z in snap.zones))
    cache = vm.get("nr_file_pages", 0) / managed
    anon = vm.get("nr_anon_pages", 0) / managed
    kern = max(0.0, 1.0 - free / managed - cache - anon)
    from ..sim.scenario import scenario_to_dict
    given = scenario_to_dict(plan.spec)    # the validated scenario, every key (defaults included)
    missing: list[str] = []
    stops: list[float] = []
    shots_given = False
    d: dict[str, Any] = {
        "description": f"simulator twin of the capture {cap.name}",
        "duration_s": plan.duration_s, "tick_ms": given["tick_ms"],
        "machine": {"snapshot": snap_file.name, "cpus": plan.cpus},
        "sysctl": {k: v for k, v in given["sysctl"].items() if v is not None},
        # the guest's page cache (the prefill and every reader) is the disk's own: `agrun` reads
        # /dev/vda, a block device, whose mapping is GFP_USER (bdev_alloc()): UNMOVABLE pages; the
        # prefill read it into the free memory of a freshly booted guest, along the zonelist
        "memory": {"page_cache_frac": round(cache, 4), "anon_frac": round(anon, 4), "kernel_frac": round(kern, 4),
                   "swap": False, "page_cache_gfp": "GFP_USER", "page_cache_age": "zonelist",
                   "reform_pageblocks": True, "reclaim_reforms_pageblocks": True,
                   "reclaim_whole_share": RECLAIM_WHOLE_SHARE},
        "kswapd": given["kswapd"],
        "nics": [], "traffic": [], "workloads": [],
    }
    if feats["phases"]:
        d["phases"] = given["phases"]
        if steps and feats["phase_rate"]:
            d["phases"] = d["phases"] + [{"at_s": t, "rate": {plan.works[i].name: r}}
                                         for i, st in steps.items() for t, r in st]
        by_name = {plan.works[i].name: r for i, r in rates.items()}
        for i, w in enumerate(given["workloads"]):
            name = w["name"] or f"{w['kind']}#{i}"
            if name in by_name:   # the rate the guest reached
                w["rate_mib_s"] = by_name[name]
            w["name"] = name       # (phases' rates name it)
            if name in starts:     # the guest's own start, to the millisecond
                w["start_s"] = starts[name]
            if w["kind"] == "atomic_alloc" and w.get("shots"):
                w["shots"] = _replay_shots(w["shots"], shots)
            if w["kind"] == "stream_read":   # agrun's reader loops over its range with pread()
                w["access"] = "sequential"
            if w["kind"] in ("stream_read", "anon_hog"):
                w["chunk_pages"] = AGRUN_CHUNK_PAGES
            d["workloads"].append(w)
    else:
        for i, w in enumerate(plan.works):
            if w.kind == "atomic":
                if not feats["atomic_alloc"]:
                    missing.append("atomic_alloc (the module's bursts and shots)")
                    continue
            spec: dict[str, Any] = {"start_s": starts.get(w.name, w.start)}
            if w.kind == "stream":
                spec.update(kind="stream_read", rate_mib_s=rates.get(i, w.params[0]),
                            working_set_mib=w.params[2], access="sequential", chunk_pages=AGRUN_CHUNK_PAGES)
                if w.params[3] > 0:
                    if feats["volume_mib"]:
                        spec["volume_mib"] = w.params[3]
                    else:
                        missing.append(f"volume_mib of {w.name}")
            elif w.kind == "hog":
                spec.update(kind="anon_hog", rate_mib_s=rates.get(i, w.params[0]), peak_mib=w.params[1],
                            hold_s=w.params[2], period_s=w.params[3], chunk_pages=AGRUN_CHUNK_PAGES)
            else:   # atomic_alloc: params are (gfp class, pages, interval us, hold us)
                spec.update(kind="atomic_alloc", gfp=("atomic", "nowait")[int(w.params[0])],
                            pages_per_burst=int(w.params[1]), interval_ms=w.params[2] / 1000,
                            hold_ms=w.params[3] / 1000,
                            shots=[] if shots_given else
                            _replay_shots([{"at_s": at, "pages": n, "hold_ms": h}
                                           for at, n, h in plan.shots if n > 0], shots))
                shots_given = True   # one workload's intervals: its shots once
            if w.stop is not None:
                if feats["stop_s"]:
                    spec["stop_s"] = w.stop
                else:
                    missing.append(f"stop of {w.name} at {w.stop:g} s (stop_s/phases)")
                    stops.append(w.stop)
            d["workloads"].append(spec)
    try:
        s = scenario_from_dict(d, source=cap / "scenario-sim.yaml")
    except Exception as e:   # noqa: BLE001 - the simulator's loader: one line
        raise RealKernelError(f"the simulator cannot load the capture's scenario: {e}") from None
    return s, sorted(set(missing)), (min(stops) if stops else None)


def sim_metrics(plan: Plan, scen: Any, feats: dict[str, bool], sample_s: float, seed: int,
                horizon: float | None = None, sample_times: list[float] | None = None) -> dict[str, Any]:
    """The simulator's run of the scenario, sampled every ``sample_s`` like the guest, or at the
    guest's own sample times (``sample_times``, seconds from the plan's start: the state after the
    ticks that end by then), so that both sides are read at the same instants: its metrics (the
    real side's keys) and, under ``"series"``, the time series real_series() gives.

    The simulator keeps the free pages of its latest failing burst (the ``atomic_fail_free_<zone>``
    counters, overwritten at every failing burst). The first failure is found the way the module
    records it: the sampling interval in which the failing bursts counter first moves is run
    again from a snapshot one tick at a time, and the tick where it moves gives the time and
    those counters the free pages (the same dynamics, tick for tick: engine.run_ticks)."""
    from ..sim.layout import ZF_FREE, ZF_FREE_BLK, ZF_FREE_BLK_U, ZF_FREE_U
    from ..sim.simulator import Simulator
    sim = Simulator(scen, n_machines=1)
    sim.reset([seed])
    Z = int(np.argmax(sim.managed[0]))
    zname = sim.zone_names[Z].split("zone ")[-1]
    ci = {n: i for i, n in enumerate(sim.counter_names)}
    stall_i = [ci[f"allocstall_{z}"] for z in ("dma", "dma32", "normal", "movable") if f"allocstall_{z}" in ci]
    fb_i = ci.get("atomic_fail_bursts")
    free_i = ci.get(f"atomic_fail_free_{zname.lower()}")
    tick = float(scen.tick_ms)
    n = max(1, int(round(sample_s * 1000 / tick)))
    knob_events = [] if feats["phases"] else sorted(
        (p["at_s"], p["sysctl"]) for p in plan.phases if p["sysctl"])
    ser: dict[str, list[float]] = {k: [] for k in ("t", "free", "min", "low", "high", "boost", "kswapd_runs",
                                                  "pgsteal_kswapd", "direct_reclaim_stalls", "atomic_fail_pages")}
    pos: list[float] = []
    boosts: list[int] = []
    shares: list[tuple[float, float, float, float]] = []   # (whole UNMOVABLE, free UNMOVABLE, free, high)
    whole_m: list[tuple[float, float]] = []                  # (time s, whole free MOVABLE blocks)
    total = int(round((plan.duration_s if horizon is None else horizon) * 1000 / tick))
    if sample_times is None:
        marks = list(range(n, total, n)) + ([total] if total > 0 else [])
    else:    # the guest's first sample is the simulator's start; a mark per later sample, in ticks
        marks = sorted({min(total, max(1, int(t * 1000 / tick + 1e-9))) for t in sample_times[1:]}) if total > 0 else []
    done = 0
    first: tuple[float, float | None] | None = None     # (time s, free pages) of the first failing burst

    def record() -> None:
        w = sim.wmark[0, Z]
        c = sim.counters[0]
        ser["t"].append(done * tick / 1000)
        ser["free"].append(float(sim.free[0, Z]))
        for k, j in (("min", WMARK_MIN), ("low", WMARK_LOW), ("high", WMARK_HIGH)):
            ser[k].append(float(w[j]))
        ser["boost"].append(float(sim.boost[0, Z]))
        ser["kswapd_runs"].append(float(c[ci["pageoutrun"]]))
        ser["pgsteal_kswapd"].append(float(c[ci["pgsteal_kswapd"]]))
        ser["direct_reclaim_stalls"].append(float(sum(c[j] for j in stall_i)))
        ser["atomic_fail_pages"].append(float(c[ci["atomic_fail_pages"]]) if "atomic_fail_pages" in ci else 0.0)
        pos.append((sim.free[0, Z] - w[WMARK_MIN]) / max(w[WMARK_HIGH] - w[WMARK_MIN], 1))
        boosts.append(int(sim.boost[0].max()))
        zst = sim.zone_state[0, Z]
        shares.append((float(zst[ZF_FREE_BLK_U] * PAGEBLOCK_NR_PAGES), float(zst[ZF_FREE_U]), float(zst[ZF_FREE]),
                       float(w[WMARK_HIGH] + sim.boost[0, Z])))
        whole_m.append((done * tick / 1000, float(zst[ZF_FREE_BLK])))

    def failed_bursts() -> float:
        return float(sim.counters[0, fb_i]) if fb_i is not None else 0.0
    record()
    for mark in marks:
        while done < mark:
            step = mark - done
            if knob_events:
                nxt = knob_events[0][0] * 1000 / tick - done
                if 0 < nxt < step:
                    step = int(math.ceil(nxt))
            snap = sim.snapshot() if first is None and fb_i is not None else None
            sim.advance(step)
            if snap is not None and failed_bursts() > 0:
                sim.restore(snap)      # again, one tick at a time, to the tick of the first failing burst
                for k in range(step):
                    sim.advance(1)
                    if first is None and failed_bursts() > 0:
                        first = (round((done + k) * tick / 1000, 3),
                                 float(sim.counters[0, free_i]) if free_i is not None else None)
            done += step
            while knob_events and knob_events[0][0] * 1000 / tick <= done:
                kv = knob_events.pop(0)[1]
                sim.set_knobs(min_free_kbytes=kv.get("min_free_kbytes"),
                              watermark_scale_factor=kv.get("watermark_scale_factor"),
                              watermark_boost_factor=kv.get("watermark_boost_factor"))
        record()
    c = sim.counter_dict(0)
    runs = int(c.get("pageoutrun", 0))
    names = sim.counter_names
    tsa, posa = np.array(ser["t"]), np.array(pos)

    def cnt(*keys: str) -> float | None:
        for k in keys:
            if k in names:
                return c[k]
        return None
    atomic = feats["atomic_alloc"]
    failed = atomic and c.get("atomic_fail_pages", 0) > 0
    out: dict[str, Any] = {
        "zone": zname,
        "atomic_req_pages": cnt("atomic_req_pages") if atomic else None,
        "atomic_fail_pages": cnt("atomic_fail_pages") if atomic else None,
        "atomic_fail_bursts": cnt("atomic_fail_bursts") if atomic else None,
        "free_at_first_failure": first[1] if failed and first else None,
        "first_failure_t": first[0] if failed and first else None,
        "free_at_latest_failure": cnt(f"atomic_fail_free_{zname.lower()}") if failed else None,
        "kswapd_runs": runs,
        "kswapd_pages_per_run": round(c["pgsteal_kswapd"] / runs, 1) if runs else None,
        "largest_boost": max(boosts),
        # balance_pgdat()'s runs, start to end (kswapd's CPU time on the kernel's side), and the
        # wake latency each woken run waited (it starts at the first tick's kswapd step at least
        # the latency after the wake-up, which comes mid-tick: the latency, not its whole ticks)
        "kswapd_cpu_ms": round(float(c.get("kswapd_run_ms", 0.0)), 1),
        "kswapd_wait_per_run_ms": (round(scen.kswapd.wake_latency_ms * c.get("kswapd_wakeups", 0) / runs, 3)
                                   if runs else None),
        "direct_reclaim_stalls": sum(c.get(f"allocstall_{z}", 0) for z in ("dma", "dma32", "normal", "movable")),
        "pgsteal_direct": c.get("pgsteal_direct"),
        "min_free": None,
        "phases": [{"from_s": lo, "to_s": hi, "median_pos": _median_pos(tsa, posa, lo, hi)}
                   for lo, hi in phase_bounds(plan, horizon)],
        "unmovable_share_full": unmovable_share_full([(u, f, h) for _, u, f, h in shares]),
        "whole_share_full": whole_share_full(shares),
        "whole_after_exit": whole_after_exit(whole_m, hog_peak_s(plan)),
        "series": ser,
    }
    return out


# ---- comparison ------------------------------------------------------------------------------
METRICS = (("atomic_fail_pages", "failed atomic pages"), ("atomic_req_pages", "requested atomic pages"),
           ("free_at_first_failure", "free pages at the first failure"),
           ("free_at_latest_failure", "free pages at the latest burst's first failure"),
           ("first_failure_t", "time of the first failure (s)"), ("kswapd_runs", "kswapd runs"),
           ("kswapd_pages_per_run", "kswapd pages per run"), ("largest_boost", "largest boost (pages)"),
           ("direct_reclaim_stalls", "direct-reclaim stalls"),
           ("unmovable_share_full", "UNMOVABLE share of free pages, memory full"),
           ("whole_share_full", "whole blocks' share of free UNMOVABLE, memory full"),
           ("whole_after_exit", "whole free MOVABLE blocks after the hog exits"),
           ("kswapd_cpu_ms", "kswapd's time in balance_pgdat() (ms)"),
           ("kswapd_wait_per_run_ms", "kswapd's wait from wake-up to CPU, per run (ms)"))
# compared only where the capture has the kernel's side (/proc/pagetypeinfo, since 2026-12-06):
# a row the kernel cannot show is n/a, not a difference
REAL_SIDE_ONLY = ("unmovable_share_full", "whole_share_full", "whole_after_exit",
                  # and where it has kswapd0's schedstat (since 2026-12-07)
                  "kswapd_cpu_ms", "kswapd_wait_per_run_ms")
# how a metric is compared: a count (and a ratio: relative to the real value), a time (relative
# too, but a small one is not noise), free pages (in high - min gaps of the zone), a position
# (already in gaps)
KIND_COUNT, KIND_TIME, KIND_PAGES, KIND_POS = "count", "time", "pages", "position"
KIND_SHARE = "share"   # a fraction of 0..1, compared as a position (absolute difference, POS_TOL)
RELATIVE = (KIND_COUNT, KIND_TIME)
METRIC_KIND = {"free_at_first_failure": KIND_PAGES, "free_at_latest_failure": KIND_PAGES,
               "first_failure_t": KIND_TIME, "kswapd_cpu_ms": KIND_TIME, "kswapd_wait_per_run_ms": KIND_TIME,
               "unmovable_share_full": KIND_SHARE,
               "whole_share_full": KIND_SHARE}


def metric_family(key: str) -> str:
    """The metric a row belongs to: median_pos[0-24s] -> median_pos (every phase one metric)."""
    return key.split("[", 1)[0]


def metric_kind(key: str) -> str:
    fam = metric_family(key)
    return KIND_POS if fam == "median_pos" else METRIC_KIND.get(fam, KIND_COUNT)


def tolerance(key: str, spread: float | None = None) -> float:
    """The tolerance of a metric: 25 % (counts) or 0.25 gap (positions, free pages), or the
    kernel's own run-to-run spread of that metric when it is larger."""
    base = COUNT_TOL if metric_kind(key) in RELATIVE else POS_TOL
    return max(base, spread or 0.0)


def deviation(r: float, s: float, key: str, gap: float | None = None) -> float | None:
    """How far sim is from real, in the metric's unit of tolerance: relative to real for counts
    (None when real is 0 and they differ: no ratio), in gaps for free pages and positions."""
    kind = metric_kind(key)
    if kind in (KIND_POS, KIND_SHARE):
        return abs(s - r)
    if kind == KIND_PAGES:
        return abs(s - r) / max(gap or 1.0, 1.0)
    if r == s:
        return 0.0
    return abs(s - r) / abs(r) if r else None


def _agree(r: float, s: float, key: str, spread: float | None = None, gap: float | None = None,
           floor: float = 0.0) -> bool:
    """A row agrees when sim is within the metric's tolerance of real (tolerance()); counts this
    small on both sides (SMALL_COUNT) agree; ``floor``: an absolute slack (a time: one sample)."""
    kind = metric_kind(key)
    if kind == KIND_COUNT and (r == s or max(abs(r), abs(s)) <= SMALL_COUNT):
        return True
    if kind == KIND_TIME and abs(s - r) <= floor:
        return True
    d = deviation(r, s, key, gap)
    return d is not None and d <= tolerance(key, spread) + 1e-9


def compare(real: dict, sim: dict, spread: dict[str, float] | None = None,
            sample_s: float = 0.0) -> list[dict[str, Any]]:
    """One row per metric: real, sim, verdict (agree | differs | n/a). A row with a value on one
    side only differs (say, a failure the kernel never had); n/a when neither side has one.
    ``spread``: the kernel's own run-to-run spread per metric family (corpus.kernel_spread)."""
    spread = spread or {}
    rows = []
    for key, label in METRICS:
        rows.append({"metric": key, "label": label, "real": real.get(key), "sim": sim.get(key)})
    for pr, ps in zip(real["phases"], sim["phases"]):
        rows.append({"metric": f"median_pos[{pr['from_s']:g}-{pr['to_s']:g}s]",
                     "label": f"median (free-min)/(high-min), {pr['from_s']:g}-{pr['to_s']:g} s",
                     "real": None if pr["median_pos"] is None else round(pr["median_pos"], 2),
                     "sim": None if ps["median_pos"] is None else round(ps["median_pos"], 2)})
    for r in rows:
        fam = metric_family(r["metric"])
        r["tolerance"] = round(tolerance(r["metric"], spread.get(fam)), 3)
        if r["real"] is None and (r["sim"] is None or r["metric"] in REAL_SIDE_ONLY):
            r["verdict"] = "n/a"
        elif r["real"] is None or r["sim"] is None:
            r["verdict"] = "differs"
        else:
            ok = _agree(float(r["real"]), float(r["sim"]), r["metric"], spread.get(fam), real.get("gap"),
                        floor=sample_s if fam == "first_failure_t" else 0.0)
            r["verdict"] = "agree" if ok else "differs"
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return f"{int(v)}"


def _fmt_time(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.2f}"


MAX_CAPTURE_FILE = 512 << 20     # timeseries.jsonl of an hour sampled every 0.05 s is ~150 MiB


def refuse_link(path: Path) -> None:
    """One-line RealKernelError if a capture's file is a symbolic link (never followed)."""
    if path.is_symlink():
        raise RealKernelError(f"{path}: a symbolic link; a capture's files are the regular files "
                              f"`atomgym realkernel run` writes (not followed)")


def _read_text(path: Path, limit: int = MAX_CAPTURE_FILE) -> str:
    """A capture's file: bounded, a regular file (not a link to /dev/zero), one line otherwise."""
    from .. import files
    try:
        return files.read_text(path, limit, "a file written by `atomgym realkernel run`")
    except files.FileError as e:
        raise RealKernelError(str(e)) from None


def _read_gzip_text(path: Path, limit: int = MAX_CAPTURE_FILE) -> str:
    """A gzipped capture file (the corpus ships timeseries.jsonl.gz, trace.txt.gz): bounded before
    and after decompression; a truncated or corrupt file is one line."""
    import gzip
    import io
    import zlib
    from .. import files
    what = "a gzip file written by scripts/capture_corpus.py"
    try:
        raw = files.read_bytes(path, limit, what)
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            data = gz.read(limit + 1)
    except files.FileError as e:
        raise RealKernelError(str(e)) from None
    except (OSError, EOFError, zlib.error) as e:
        raise RealKernelError(f"{path}: not a complete gzip file ({e}); truncated? expected {what}") from None
    if len(data) > limit:
        raise RealKernelError(f"{path}: more than {limit >> 20} MiB once decompressed; expected {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RealKernelError(f"{path}: not UTF-8 text once decompressed (byte {e.start}); expected {what}") from None


def timeseries_file(cap: Path) -> Path | None:
    """timeseries.jsonl, else timeseries.jsonl.gz (a corpus run), else None."""
    for name in ("timeseries.jsonl", "timeseries.jsonl.gz"):
        if (cap / name).is_file() or (cap / name).is_symlink():
            return cap / name
    return None


def load_samples_of(cap: Path) -> list[dict[str, Any]]:
    """A capture's samples as written (timeseries.jsonl or .gz), every key the guest sampled
    (load() and scripts/pagetypes.py, which reads the /proc/pagetypeinfo ones). One-line
    RealKernelError; a symbolic link is not followed."""
    ts = timeseries_file(cap)
    if ts is None:
        raise RealKernelError(f"{cap}: no timeseries.jsonl; not a capture written by `atomgym realkernel run`")
    refuse_link(ts)
    text = _read_gzip_text(ts) if ts.suffix == ".gz" else _read_text(ts)
    return read_jsonl(text, str(ts))


def start_snapshot(cap: Path) -> Path:
    """The capture's snapshot at t = 0 (``snapshot-start.txt``; older captures: ``snapshot.txt``),
    the machine the twin is built from. One-line RealKernelError on a symbolic link (not followed)."""
    f = cap / "snapshot-start.txt"
    if not f.exists() and not f.is_symlink():
        f = cap / "snapshot.txt"
    refuse_link(f)
    return f


def checked_samples(cap: Path) -> list[dict[str, Any]]:
    """load_samples_of() with the checks fidelity makes of them (check_samples()) and at least two
    samples: what a script that reads a capture's series needs (scripts/kswapd_rates.py,
    scripts/dma_balance.py). One-line RealKernelError."""
    samples = load_samples_of(cap)
    ts = timeseries_file(cap)
    if len(samples) < 2:
        raise RealKernelError(f"{ts}: {len(samples)} sample(s); a capture has one every ~0.3 s")
    check_samples(samples, ts)
    return samples


def per_capture(captures: list[str], measure_one, prog: str, err: TextIO) -> dict[str, Any] | None:
    """``{capture: measure_one(Path(capture))}`` for a script over capture folders; on the first
    RealKernelError its one line, prefixed with ``prog``, on ``err`` and None (the script exits 2)."""
    out: dict[str, Any] = {}
    for c in captures:
        try:
            out[c] = measure_one(Path(c))
        except RealKernelError as e:
            print(f"{prog}: {e}", file=err)
            return None
    return out


def _read_json(path: Path, kind: type) -> Any:
    from .. import files
    try:
        v = files.parse_json(_read_text(path), str(path), "a file written by `atomgym realkernel run`")
    except files.FileError as e:
        raise RealKernelError(str(e)) from None
    if not isinstance(v, kind):
        raise RealKernelError(f"{path}: a JSON {type(v).__name__}; a capture's is a JSON "
                              f"{'object' if kind is dict else 'array'}")
    return v


def _show(v: Any) -> str:
    """A value in a message: a string quoted, a number as written; at most 40 characters."""
    return (repr(v) if isinstance(v, str) else str(v))[:40]


def _num(v: Any) -> bool:
    """A finite real number (an int beyond float's range is not: the arithmetic would overflow)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) <= 1e300 if isinstance(v, int) else math.isfinite(v)


def check_samples(samples: list[dict], ts: Path) -> None:
    """The samples' fields fidelity (and the scripts reading captures) use, as `realkernel run`
    writes them (capture.py): a non-decreasing time, zones with a name and their numbers, vmstat
    and atomic objects of numbers, the same zones in every sample. One-line RealKernelError
    naming ``ts`` and the sample otherwise."""
    prev = -math.inf
    for i, s in enumerate(samples, 1):
        where = f"{ts}: sample {i}"
        if not _num(s["t"]) or s["t"] < prev:
            raise RealKernelError(f"{where}: t = {_show(s['t'])}; valid: a finite number of guest seconds, "
                                  f"not decreasing")
        prev = s["t"]
        if not isinstance(s["zones"], list) or not s["zones"]:
            raise RealKernelError(f"{where}: zones must be a non-empty list of zones")
        for z in s["zones"]:
            if not isinstance(z, dict) or not isinstance(z.get("zone"), str) or not all(
                    _num(z.get(k)) for k in ("free", "boost", "min", "low", "high", "managed")):
                raise RealKernelError(f"{where}: a zone needs zone (a name) and numbers free, boost, min, "
                                      f"low, high, managed; got {json.dumps(z)[:80]}")
        for k in ("vmstat", "atomic"):
            if not isinstance(s.get(k), dict) or not all(_num(v) for v in s[k].values()):
                raise RealKernelError(f"{where}: {k} must be an object of numbers")
        k = s.get("kswapd")     # kswapd0's schedstat (captures since 2026-12-07)
        if k is not None and (not isinstance(k, dict) or not all(_num(k.get(f)) and k[f] >= 0 for f in KSWAPD_FIELDS)):
            raise RealKernelError(f"{where}: kswapd must be an object of numbers >= 0 "
                                  f"{', '.join(KSWAPD_FIELDS)}; got {json.dumps(k)[:80]}")
    names = [z["zone"] for z in samples[0]["zones"]]
    for i, s in enumerate(samples, 1):
        if [z["zone"] for z in s["zones"]] != names:
            raise RealKernelError(f"{ts}: sample {i}: zones {[z['zone'] for z in s['zones']]}; "
                                  f"every sample lists the first one's zones {names}")


def _check_capture(meta: dict, samples: list[dict], src: Path, ts: Path | None = None) -> None:
    """The fields fidelity reads, as `realkernel run` writes them (capture.py); one line otherwise."""
    check_samples(samples, ts or src / "timeseries.jsonl")
    cj = src / "capture.json"
    if "sample_s" in meta and (not _num(meta["sample_s"]) or meta["sample_s"] <= 0):
        raise RealKernelError(f"{cj}: sample_s = {_show(meta['sample_s'])}; valid: a number of seconds > 0")
    if meta.get("first_failure_t") is not None and not _num(meta["first_failure_t"]):
        raise RealKernelError(f"{cj}: first_failure_t = {_show(meta['first_failure_t'])}; valid: a number or null")
    a = meta.get("atomic", {})
    ff = a.get("first_fail_free", []) if isinstance(a, dict) else None
    if not isinstance(a, dict) or not isinstance(ff or [], list) or not all(
            isinstance(z, dict) and _num(z.get("zone_idx")) and _num(z.get("free")) for z in ff or []):
        raise RealKernelError(f"{cj}: atomic must be an object (first_fail_free a list of "
                              f"{{zone_idx, free}})")


def kswapd_ranges() -> dict[str, tuple[float, float]]:
    """The schema's range of each `kswapd:` key (the simulator's free parameters)."""
    from ..sim.scenario import KswapdSpec
    return {f.name: f.metadata["range"] for f in dataclasses.fields(KswapdSpec)}


def kswapd_schedstat(samples: list[dict]) -> dict[str, float] | None:
    """kswapd0's schedstat between the first and the last sample (captures since 2026-12-07):
    ``cpu_ms`` it ran, ``wait_ms`` it waited on the runqueue, its ``slices``, and from /proc/vmstat
    its ``runs`` (pageoutrun) and ``stolen`` pages (pgsteal_kswapd); None without schedstat."""
    k0, k1 = samples[0].get("kswapd"), samples[-1].get("kswapd")
    if not k0 or not k1:
        return None
    v0, v1 = samples[0]["vmstat"], samples[-1]["vmstat"]
    return {"cpu_ms": (k1["run_ns"] - k0["run_ns"]) / 1e6, "wait_ms": (k1["wait_ns"] - k0["wait_ns"]) / 1e6,
            "slices": k1["slices"] - k0["slices"], "runs": v1.get("pageoutrun", 0) - v0.get("pageoutrun", 0),
            "stolen": v1.get("pgsteal_kswapd", 0) - v0.get("pgsteal_kswapd", 0)}


def kswapd_measured(samples: list[dict]) -> dict[str, float] | None:
    """kswapd's speed as the capture measured it (kswapd_schedstat()): ``reclaim_pages_per_ms`` =
    pgsteal_kswapd per ms of kswapd's CPU time, ``wake_latency_ms`` = its runqueue wait per
    balance_pgdat() run (pageoutrun); None without schedstat or with too little reclaim to say
    (under 1,000 pages or 10 runs). ``direct_reclaim_pages_per_ms`` is the same reclaim rate: a
    direct reclaimer runs the same shrink_node() on the same CPUs (the traced captures' calls
    reclaim 138-151 pages per ms of call time with kswapd's preemption, ~530-560 without:
    docs/realkernel.md, "Tracepoints")."""
    k = kswapd_schedstat(samples)
    if k is None or k["cpu_ms"] <= 0 or k["stolen"] < 1000 or k["runs"] < 10:
        return None
    rate = round(k["stolen"] / k["cpu_ms"], 1)
    return {"reclaim_pages_per_ms": rate, "wake_latency_ms": round(k["wait_ms"] / k["runs"], 3),
            "direct_reclaim_pages_per_ms": rate}


def load(cap_dir: str | Path) -> dict[str, Any]:
    """Read a capture and measure its real side; the simulator's scenario of it is built but not
    run (simulate() runs it; a calibration runs it many times from one load). One-line
    RealKernelError on a folder that is not a complete capture."""
    cap = Path(cap_dir)
    ts_file = timeseries_file(cap)
    for f in ("capture.json", "timeseries.jsonl", "scenario.yaml"):
        if not ((cap / f).is_file() or (f == "timeseries.jsonl" and ts_file is not None)):
            hint = " (an unfinished run: DIR.partial)" if cap.name.endswith(".partial") else ""
            raise RealKernelError(f"{cap}: no {f}; not a capture written by `atomgym realkernel run`{hint}")
    from .run import CAPTURE_FILES       # a capture's files are the regular files a run wrote: no link followed
    for f in sorted((*CAPTURE_FILES, "timeseries.jsonl.gz")):
        refuse_link(cap / f)
    meta = _read_json(cap / "capture.json", dict)
    assert ts_file is not None
    samples = load_samples_of(cap)
    if len(samples) < 2:
        raise RealKernelError(f"{ts_file}: {len(samples)} samples; need at least 2")
    _check_capture(meta, samples, cap, ts_file)
    events = _read_json(cap / "events.json", list) if (cap / "events.json").exists() else []
    for i, e in enumerate(events, 1):     # what start_times() and shot_times() read
        if not (isinstance(e, dict) and _num(e.get("t")) and e["t"] >= 0 and isinstance(e.get("what"), str)
                and isinstance(e.get("args", []), list)):
            raise RealKernelError(f"{cap / 'events.json'}: event {i}: needs t (guest seconds >= 0), what (a "
                                  f"string) and args (a list); got {json.dumps(e)[:80]}")
    plan = load_plan(cap / "scenario.yaml")
    sample_s = float(meta.get("sample_s", 0.3))
    if samples[-1]["t"] < plan.duration_s - max(1.0, 2 * sample_s):
        raise RealKernelError(f"{ts_file}: the last sample is at {samples[-1]['t']:g} s of the scenario's "
                              f"{plan.duration_s:g} s; a truncated capture (re-run `atomgym realkernel run`)")
    feats = sim_features()
    rates = achieved_rates(plan, samples, events)
    steps = reader_steps(plan, samples)
    notes = []
    used: dict[int, float] = {}
    for i, r in rates.items():
        w = plan.works[i]
        if w.params[0] > 0 and r < 0.9 * w.params[0]:
            used[i] = round(r, 1)
            notes.append(f"{w.name}: the guest reached {r:.1f} of {w.params[0]:g} MiB/s; the simulator runs {r:.1f}")
    for i, st in steps.items():
        lo, hi = min(r for _, r in st), max(r for _, r in st)
        if feats["phase_rate"] and (lo < 0.9 * rates.get(i, lo) or hi > 1.1 * rates.get(i, hi)):
            notes.append(f"{plan.works[i].name}: the guest read at {lo:.1f}-{hi:.1f} MiB/s over ~1.5 s windows; "
                         f"the simulator replays each window's rate")
    scen, missing, horizon = sim_scenario(plan, cap, used, feats, steps, start_times(plan, events),
                                          shot_times(plan, events))
    if horizon is not None:
        notes.append(f"compared over 0-{horizon:g} s of {plan.duration_s:g} s: after that the simulator in this "
                     f"tree would keep running a workload the guest stopped")
    measured = kswapd_measured(samples)
    if measured is not None:      # the guest's own kswapd speed, not the scenario's (fitted) values
        for k, (lo, hi) in kswapd_ranges().items():
            if k in measured:
                measured[k] = min(max(measured[k], lo), hi)
        scen = dataclasses.replace(scen, kswapd=dataclasses.replace(scen.kswapd, **measured))
        notes.append(f"kswapd's speed measured by the guest (schedstat): {measured['reclaim_pages_per_ms']:g} pages "
                     f"per ms of its CPU time, {measured['wake_latency_ms']:g} ms on the runqueue per run; the twin "
                     f"runs those (and direct reclaim at the same rate) instead of the scenario's kswapd: values")
    real = real_metrics(plan, samples, meta, horizon)
    return {"capture": str(cap), "run": cap.name, "scenario": meta.get("scenario", plan.scenario),
            "scenario_sha": _sha(_read_text(cap / "scenario.yaml")), "kernel": meta.get("kernel"),
            "zone": real["zone"], "sample_s": sample_s,
            "horizon_s": horizon if horizon is not None else plan.duration_s,
            "simulator_features": feats, "missing_in_simulator": missing, "notes": notes,
            "real": real, "real_series": real_series(samples, real["zone"], horizon),
            "kswapd_measured": measured, "_plan": plan, "_scen": scen, "_horizon": horizon}


# The simulator's twin of a capture is an ensemble: its runs with the guest's workload rates
# scaled by each factor, its metrics the members' medians. The twin is deterministic but not
# smooth: a 1 % faster reader moves the time memory fills against the module's shots and kswapd's
# runs, and one capture's failed pages by 750 of 0 (mfk4x-3) or 15 % (ram2g-3); the corpus score
# of single runs moved by 0.677-0.698 with the rates x 0.99-1.01, of this ensemble by 0.702-0.706
# with all its factors x 0.997-1.003 (docs/realkernel.md, "One run of the twin is one draw").
ENSEMBLE = (0.98, 0.985, 0.99, 0.995, 1.0, 1.005, 1.01, 1.015, 1.02)


def _scaled(scen: Any, f: float) -> Any:
    """``scen`` with every workload's rate (and the phases' rates) times ``f``."""
    if f == 1.0:
        return scen
    from ..sim.scenario import RATE_KINDS
    ws = [dataclasses.replace(w, rate_mib_s=w.rate_mib_s * f) if w.kind in RATE_KINDS else w for w in scen.workloads]
    ph = [dataclasses.replace(p, rate={k: v * f for k, v in p.rate.items()}) if p.rate else p for p in scen.phases]
    return dataclasses.replace(scen, workloads=ws, phases=ph)


def _median_of(vals: list[Any]) -> Any:
    """The members' median, or None where most members have none (no failure, no sample)."""
    have = [float(v) for v in vals if v is not None]
    return statistics.median(have) if 2 * len(have) > len(vals) else None


def ensemble_metrics(members: list[dict[str, Any]], center: int) -> dict[str, Any]:
    """The ensemble's metrics: each numeric metric the members' median (a phase's position too);
    the time series and the rest those of member ``center`` (the guest's own rates)."""
    out: dict[str, Any] = {}
    for k, v in members[center].items():
        if k == "phases":
            out[k] = [dict(p, median_pos=_median_of([m[k][j]["median_pos"] for m in members]))
                      for j, p in enumerate(v)]
        elif v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            out[k] = _median_of([m[k] for m in members])
        else:
            out[k] = v
    return out


def simulate(loaded: dict[str, Any], seed: int = 1, kswapd: dict[str, float] | None = None) -> dict[str, Any]:
    """The simulator's twin of a load()ed capture: measure()'s record. ``kswapd``: values that
    replace those of the scenario's `kswapd:` section (the simulator's free parameters; a
    calibration's grid point), already validated against the schema's ranges; a capture that
    measured kswapd's speed keeps its own reclaim rates and wake latency (kswapd_measured()). The
    twin is ENSEMBLE's runs (ensemble_metrics())."""
    scen = loaded["_scen"]
    if kswapd:
        kv = {**kswapd, **(loaded.get("kswapd_measured") or {})}
        scen = dataclasses.replace(scen, kswapd=dataclasses.replace(scen.kswapd, **kv))
    members = [sim_metrics(loaded["_plan"], _scaled(scen, f), loaded["simulator_features"], loaded["sample_s"],
                           seed, loaded["_horizon"], loaded["real_series"]["t"]) for f in ENSEMBLE]
    sim = ensemble_metrics(members, ENSEMBLE.index(1.0))
    m = {k: v for k, v in loaded.items() if not k.startswith("_") and k != "real_series"}
    m.update(seed=seed, sim=sim, series={"real": loaded["real_series"], "sim": sim.pop("series")},
             kswapd=dataclasses.asdict(scen.kswapd), ensemble=list(ENSEMBLE))
    return m


def measure(cap_dir: str | Path, seed: int = 1) -> dict[str, Any]:
    """Read a capture, run the simulator on its scenario and measure both sides (no verdicts:
    judge() adds them, with the kernel's spread a corpus knows). One-line RealKernelError on a
    folder that is not a complete capture."""
    return simulate(load(cap_dir), seed)


def _sha(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def judge(m: dict[str, Any], spread: dict[str, float] | None = None) -> dict[str, Any]:
    """A measure() with its rows and verdict (the series left out: plots.py draws them)."""
    rows = compare(m["real"], m["sim"], spread, m["sample_s"])
    agree = [r["metric"] for r in rows if r["verdict"] == "agree"]
    differ = [r["metric"] for r in rows if r["verdict"] == "differs"]
    na = [r["metric"] for r in rows if r["verdict"] == "n/a"]
    rule = (f"counts within {COUNT_TOL:.0%}, positions and free pages within {POS_TOL:g} of the high-min gap"
            + (", or the kernel's own spread" if spread else ""))
    verdict = (f"{len(agree)} of {len(agree) + len(differ)} comparable metrics agree ({rule})"
               + (f"; differ: {', '.join(differ)}" if differ else "")
               + (f"; not comparable: {', '.join(na)}" if na else ""))
    rep = {k: v for k, v in m.items() if k != "series"}
    rep.update(rows=rows, verdict=verdict, agree=len(agree), differ=len(differ), not_comparable=len(na))
    return rep


def fidelity(cap_dir: str, seed: int = 1) -> dict[str, Any]:
    """`atomgym fidelity DIR` of one capture: its report (rows with verdicts)."""
    return judge(measure(cap_dir, seed))


def format_table(rep: dict[str, Any], header: bool = True) -> str:
    out = [f"capture:  {rep['capture']} (scenario {rep['scenario']}, kernel {rep['kernel']}, zone {rep['zone']}; "
           f"simulator seed {rep['seed']})"]
    for n in rep["notes"]:
        out.append(f"note:     {n}")
    for m in rep["missing_in_simulator"]:
        out.append(f"missing:  the simulator in this tree cannot run {m}: left out of its run")
    out.append("")
    w = max(len(r["label"]) for r in rep["rows"])
    out.append(f"{'metric':<{w}}  {'real':>10} | {'sim':<10}  verdict")
    for r in rep["rows"]:
        fmt = _fmt_time if r["metric"] == "first_failure_t" else _fmt
        out.append(f"{r['label']:<{w}}  {fmt(r['real']):>10} | {fmt(r['sim']):<10}  {r['verdict']}")
    out.append("")
    out.append(f"verdict: {rep['verdict']}")
    return "\n".join(out)


def _json(v: Any) -> str:
    return json.dumps(v, default=lambda o: o.item() if hasattr(o, "item") else str(o))
