"""The kernel's reclaim tracepoints of a capture (`atomgym realkernel run --trace`: trace.txt).

agrun switches the tracepoints of plan.TRACE_EVENTS on at t = 0 and prints the tracefs buffer after
the run; each line is tracefs's text format::

    kswapd0-39  [000] .....  10.475323: mm_vmscan_kswapd_wake: nid=0 order=0

with CLOCK_MONOTONIC seconds (``trace_clock`` mono), so a line's scenario time is its time minus
the begin event's t0 (events.json). What each event is (6.1):

- ``mm_vmscan_wakeup_kswapd`` (wakeup_kswapd()): an allocation woke a sleeping or napping kswapd;
  it is traced only when pgdat_balanced() is false or the node is boosted. ``gfp_flags=none`` is
  rmqueue()'s wake for a set ZONE_BOOSTED_WATERMARK (a fallback's boost_watermark(), gfp 0);
- ``mm_vmscan_kswapd_wake`` (kswapd()): a balance_pgdat() run starts (vmstat's pageoutrun);
- ``mm_vmscan_kswapd_sleep`` (kswapd_try_to_sleep()): kswapd sleeps fully (not a 100 ms nap);
- ``mm_vmscan_direct_reclaim_begin`` / ``_end`` (try_to_free_pages()): one direct-reclaim call,
  what vmstat's allocstall counts, and the pages it reclaimed;
- ``mm_page_alloc_extfrag`` (__rmqueue_fallback()): a fallback into another migratetype's free
  pages; ``fallback_order >= pageblock_order`` takes a whole block without a boost,
  a smaller chunk boosts the zone's watermark (steal_suitable_fallback()).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .capture import begin_t0
from .errors import RealKernelError

TRACE_FILE = "trace.txt"
MAX_TRACE_BYTES = 256 << 20
_LINE = re.compile(r"\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+(?P<ts>\d+\.\d+):\s+"
                   r"(?P<event>\w+):\s?(?P<args>.*)$")
MIGRATETYPES = {0: "UNMOVABLE", 1: "MOVABLE", 2: "RECLAIMABLE"}


@dataclass
class Event:
    t: float          # scenario seconds (the line's time minus the begin event's t0)
    task: str
    pid: int
    name: str         # the tracepoint without its mm_vmscan_ / mm_page_alloc_ prefix
    args: dict[str, str] = field(default_factory=dict)


def _args(text: str) -> dict[str, str]:
    out = {}
    for tok in text.split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out


def waker(gfp: str) -> str:
    """The class of a wakeup_kswapd() or direct-reclaim gfp mask: ``boost`` (rmqueue()'s wake of a
    boosted zone, gfp 0), ``atomic`` (GFP_ATOMIC / GFP_NOWAIT), ``anon`` (GFP_HIGHUSER_MOVABLE: a
    process's anonymous memory), ``cache`` (anything else: page cache, slab)."""
    if gfp == "none":
        return "boost"
    head = gfp.split("|")[0]
    if head in ("GFP_ATOMIC", "GFP_NOWAIT"):
        return "atomic"
    if head == "GFP_HIGHUSER_MOVABLE":
        return "anon"
    return "cache"


def parse(text: str, t0: float, source: str = TRACE_FILE) -> list[Event]:
    """Every tracepoint line of ``text`` as an Event, in time order; a line that is not one is an
    error naming it (the buffer's own comment lines start with '#' and were left out by agrun)."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise RealKernelError(f"{source}:{i}: not a tracefs line ({line.strip()[:60]!r})")
        name = m["event"].removeprefix("mm_vmscan_").removeprefix("mm_page_alloc_")
        out.append(Event(round(float(m["ts"]) - t0, 6), m["task"].strip(), int(m["pid"]), name, _args(m["args"])))
    out.sort(key=lambda e: e.t)
    return out


def load(cap: Path) -> list[Event]:
    """A capture's trace (trace.txt or trace.txt.gz), its times in scenario seconds. One-line
    RealKernelError if the capture was not run with --trace or a file is not what it should be
    (fidelity's bounded readers; a symbolic link is not followed)."""
    from .fidelity import _read_gzip_text, _read_json, _read_text, refuse_link
    plain, packed, events = cap / TRACE_FILE, cap / f"{TRACE_FILE}.gz", cap / "events.json"
    for p in (plain, packed, events):
        refuse_link(p)
    if plain.is_file():
        src, text = plain, _read_text(plain, MAX_TRACE_BYTES)
    elif packed.is_file():
        src, text = packed, _read_gzip_text(packed, MAX_TRACE_BYTES)
    else:
        raise RealKernelError(f"{cap}: no {TRACE_FILE}; capture it with `atomgym realkernel run ... --trace`")
    if not events.is_file():
        raise RealKernelError(f"{cap}: no events.json; not a capture of `atomgym realkernel run`")
    return parse(text, begin_t0(_read_json(events, list)), str(src))


def direct_reclaim_calls(events: list[Event]) -> list[tuple[Event, Event | None]]:
    """Each direct_reclaim_begin with its task's next direct_reclaim_end (None if the trace ends
    first)."""
    open_: dict[int, Event] = {}
    calls: list[list] = []
    index: dict[int, int] = {}
    for e in events:
        if e.name == "direct_reclaim_begin":
            open_[e.pid] = e
            index[e.pid] = len(calls)
            calls.append([e, None])
        elif e.name == "direct_reclaim_end" and e.pid in open_:
            calls[index.pop(e.pid)][1] = e
            del open_[e.pid]
    return [(b, e) for b, e in calls]


def boosting(e: Event, pageblock_order: int = 9) -> bool:
    """An extfrag event that boosts the watermark (a chunk smaller than a pageblock)."""
    return int(e.args.get("fallback_order", 0)) < int(e.args.get("pageblock_order", pageblock_order))


def fallback_types(events: list[Event], pageblock_order: int = 9) -> dict[tuple[str, str, str], int]:
    """The extfrag events counted by (the request's migratetype, the type whose free pages it took,
    ``chunk`` (under a pageblock: the fallback boosts) or ``block`` (a whole pageblock)): which
    type __rmqueue_fallback() found first (the largest order first; at one order, fallbacks[]'s
    order). ValueError on an event whose fields are not numbers, as boosting()."""
    out: dict[tuple[str, str, str], int] = {}
    for e in events:
        if e.name != "extfrag":
            continue
        a = MIGRATETYPES.get(int(e.args.get("alloc_migratetype", -1)), "other")
        f = MIGRATETYPES.get(int(e.args.get("fallback_migratetype", -1)), "other")
        k = (a, f, "chunk" if boosting(e, pageblock_order) else "block")
        out[k] = out.get(k, 0) + 1
    return out
