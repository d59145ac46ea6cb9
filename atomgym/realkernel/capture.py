"""The guest's serial log parsed into a time series, events and snapshots.

The guest helper (guest/agrun.c) tags every line it prints; kernel messages on the same
console are skipped (a line they break is counted in ``Capture.skipped``, never guessed at):

    @BOOT UPTIME RELEASE              init started (guest uptime, s)
    @READY UPTIME CPUS MEMTOTAL_KB    drivers and module loaded
    @SNAP NAME T ... @ENDSNAP         a snapshot (``tail -n +1`` format) taken at guest time T
    @S T                              a sample at guest time T (s since the scenario began)
    @Z NID ZONE FREE BOOST MIN LOW HIGH MANAGED    one zone (min/low/high include the boost)
    @V KEY VAL ...                    selected /proc/vmstat counters
    @M KEY VAL ...                    the module's counters (/proc/atomgym_atomic)
    @P NID ZONE TYPE N0 .. N10        free chunks of one migratetype per order (/proc/pagetypeinfo)
    @PH TYPE ...                      the pageblock table's types (the kernel's config decides them)
    @PB NID ZONE COUNT ...            the zone's pageblocks per type of @PH (/proc/pagetypeinfo)
    @K RUN_NS WAIT_NS SLICES          kswapd0's /proc/PID/schedstat: CPU time, runqueue wait, timeslices
    @E T WHAT ...                     an event: begin, start/stop/exit ID KIND, sysctl KEY VAL, shot PAGES HOLD_US
    @A KEY VAL...                     the module's final report (incl. zones' free pages at failures)
    @DONE T | @ERR MESSAGE
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import RealKernelError

ZONE_FIELDS = ("free", "boost", "min", "low", "high", "managed")
KSWAPD_FIELDS = ("run_ns", "wait_ns", "slices")   # /proc/PID/schedstat
PAGE_ORDERS = 11          # /proc/pagetypeinfo's orders 0..10 (MAX_ORDER 11 on x86-64, 6.1)


@dataclass
class Capture:
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)
    snapshot_t: dict[str, float] = field(default_factory=dict)
    atomic: dict[str, Any] = field(default_factory=dict)
    boot_uptime_s: float | None = None
    ready_uptime_s: float | None = None
    release: str = ""
    cpus: int | None = None
    memtotal_kb: int | None = None
    done_t: float | None = None
    errors: list[str] = field(default_factory=list)
    skipped: int = 0
    trace: list[str] = field(default_factory=list)     # @T lines: the trace buffer (run --trace)

    @property
    def complete(self) -> bool:
        return self.done_t is not None and not self.errors and "final" in self.snapshots


def _num(s: str) -> int | float:
    try:
        return int(s)
    except ValueError:
        return float(s)


def _pairs(toks: list[str]) -> dict[str, int | float]:
    if len(toks) % 2:
        raise ValueError("odd key/value list")
    return {toks[i]: _num(toks[i + 1]) for i in range(0, len(toks), 2)}


def _zones_free(toks: list[str]) -> list[dict[str, int]]:
    out = []
    for t in toks:
        nid, zid, free = (int(x) for x in t.split(":"))
        out.append({"node": nid, "zone_idx": zid, "free": free})
    return out


def parse_serial(text: str) -> Capture:
    """Parse a whole serial log. Malformed tagged lines are counted, not fatal."""
    cap = Capture()
    cur: dict[str, Any] | None = None
    snap_name: str | None = None
    snap_lines: list[str] = []
    block_types: list[str] = []

    def close() -> None:
        nonlocal cur
        if cur is not None and cur["zones"]:
            cap.samples.append(cur)
        cur = None

    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if snap_name is not None:
            if line.startswith("@ENDSNAP"):
                cap.snapshots[snap_name] = "\n".join(snap_lines) + "\n"
                snap_name = None
            else:
                snap_lines.append(line)
            continue
        at = line.find("@")
        if at < 0:
            continue
        line = line[at:]
        toks = line.split()
        tag = toks[0]
        try:
            if tag == "@S":
                close()
                cur = {"t": float(toks[1]), "zones": [], "vmstat": {}, "atomic": {}}
            elif tag == "@Z" and cur is not None:
                if len(toks) != 9:
                    raise ValueError("zone line")
                z = {"node": int(toks[1]), "zone": toks[2]}
                z.update({f: int(v) for f, v in zip(ZONE_FIELDS, toks[3:9])})
                cur["zones"].append(z)
            elif tag == "@V" and cur is not None:
                cur["vmstat"] = _pairs(toks[1:])
            elif tag == "@M" and cur is not None:
                cur["atomic"] = _pairs(toks[1:])
            elif tag == "@P" and cur is not None:
                if len(toks) != 4 + PAGE_ORDERS:
                    raise ValueError("pagetype line")
                zone = f"{int(toks[1])}:{toks[2]}"
                cur.setdefault("pagetypes", {}).setdefault(zone, {})[toks[3]] = [int(v) for v in toks[4:]]
            elif tag == "@PH" and cur is not None:
                block_types = toks[1:]
            elif tag == "@PB" and cur is not None:
                if not block_types or len(toks) != 3 + len(block_types):
                    raise ValueError("pageblock line")
                cur.setdefault("pageblocks", {})[f"{int(toks[1])}:{toks[2]}"] = dict(
                    zip(block_types, (int(v) for v in toks[3:])))
            elif tag == "@K" and cur is not None:
                if len(toks) != 4:
                    raise ValueError("kswapd line")
                cur["kswapd"] = dict(zip(KSWAPD_FIELDS, (int(v) for v in toks[1:])))
            elif tag == "@E":
                close()
                cap.events.append({"t": float(toks[1]), "what": toks[2], "args": toks[3:]})
            elif tag == "@SNAP":
                close()
                snap_name, snap_lines = toks[1], []
                cap.snapshot_t[toks[1]] = float(toks[2])
            elif tag == "@A":
                close()
                if toks[1] in ("first_fail_free", "last_fail_free"):
                    cap.atomic[toks[1]] = _zones_free(toks[2:])
                else:
                    cap.atomic[toks[1]] = _num(toks[2])
            elif tag == "@BOOT":
                cap.boot_uptime_s, cap.release = float(toks[1]), toks[2]
            elif tag == "@READY":
                cap.ready_uptime_s, cap.cpus, cap.memtotal_kb = float(toks[1]), int(toks[2]), int(toks[3])
            elif tag == "@T":
                close()
                cap.trace.append(line[3:])
            elif tag == "@DONE":
                close()
                cap.done_t = float(toks[1])
            elif tag == "@ERR":
                cap.errors.append(line[5:].strip())
            elif tag in ("@Z", "@V", "@M", "@P", "@PH", "@PB", "@K"):
                cap.skipped += 1
        except (ValueError, IndexError):
            cap.skipped += 1
    close()
    if snap_name is not None:
        cap.errors.append(f"the log ends inside snapshot {snap_name!r}")
    return cap


def flat_row(s: dict[str, Any]) -> dict[str, Any]:
    """One sample as a flat row: t, ZONE.FIELD per populated zone, vmstat keys, atomic_* keys."""
    row: dict[str, Any] = {"t": s["t"]}
    for z in s["zones"]:
        if z["managed"] == 0:
            continue
        for f in ZONE_FIELDS:
            row[f"{z['zone']}.{f}"] = z[f]
    row.update(s["vmstat"])
    row.update({f"atomic_{k}": v for k, v in s["atomic"].items()})
    return row


def timeseries_jsonl(cap: Capture) -> str:
    return "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in cap.samples)


def timeseries_csv(cap: Capture) -> str:
    rows = [flat_row(s) for s in cap.samples]
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_jsonl(text: str, source: str = "timeseries.jsonl") -> list[dict[str, Any]]:
    out = []
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip():
            continue
        try:
            s = json.loads(ln)
            if not isinstance(s, dict) or "t" not in s or "zones" not in s:
                raise ValueError("not a sample")
        except RecursionError:
            from .errors import RealKernelError
            raise RealKernelError(f"{source}:{i}: JSON nested too deeply; not a time-series sample") from None
        except ValueError as e:
            from .errors import RealKernelError
            raise RealKernelError(f"{source}:{i}: not a time-series sample ({e})") from None
        out.append(s)
    return out


def begin_t0(events: list[dict]) -> float:
    """The begin event's CLOCK_MONOTONIC t0 (agrun's ``@E 0 begin DURATION T0``)."""
    for e in events:
        args = e.get("args") if isinstance(e, dict) and e.get("what") == "begin" else None
        if isinstance(args, list) and len(args) >= 2:
            try:
                return float(args[1])
            except (TypeError, ValueError):
                break
    raise RealKernelError("events.json: no begin event with its t0; not a capture of `atomgym realkernel run`")
