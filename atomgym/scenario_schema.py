"""A scenario's keys (configs/scenarios/*.yaml): one typed field spec (atomgym/fields.py ``Field``)
per key, with its type, default, unit, valid range or choices and one-line doc.

The schema layer's table of the scenario, beside atomgym/schema.py (the commands' and the env's
inputs). atomgym/sim/scenario.py builds its dataclasses from these tables and its loader checks every
value against them; the docs' key table (docs/scenarios.md) is generated from them (`make docs`); the
env's ``duration_s`` (atomgym/schema.py) takes the scenario's range. Rules of the tables:

- a key whose default is null (None) takes null;
- a section is a Field of type dict (a mapping of its ``keys``) or list (a list of such mappings,
  its default a list of the mappings it starts with);
- the ``sysctl:`` section is one key per row of kernel/sysctl.py ``SYSCTLS`` (its range, boot
  default, unit and doc; a row without a boot default is ``int or null``, null = the boot value).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

from .fields import Field
from .kernel.sysctl import SYSCTLS, THP_MODES
from .kernel.watermark_ok import PAGE_CACHE_GFPS


def _k(name: str, type: Any, default: Any, lo: float | None = None, hi: float | None = None, unit: str = "",
       doc: str = "", choices: tuple[str, ...] | None = None) -> Field:
    """A scenario key: its valid range [lo, hi] (both ends included) or choices, unit and doc."""
    return Field(name, type, help=doc, default=default, unit=unit,
                 range=None if lo is None and hi is None else (lo, hi),
                 choices=None if choices is None else tuple(choices))


MACHINE = (
    _k("snapshot", str, None, doc="machine snapshot file (relative to the scenario file or the repo); "
                                  "overrides ram_mib/nodes/kernel/thp"),
    _k("ram_mib", int, 16384, 512, 4 << 20, "MiB", "RAM when no snapshot is given (x86-64 zone layout)"),
    _k("nodes", int, 1, 1, 8, "", "NUMA nodes (RAM split evenly)"),
    _k("kernel", str, "6.18", doc="kernel release whose arithmetic to use (e.g. 6.1, 6.18)"),
    _k("thp", str, "madvise", doc="transparent_hugepage/enabled at boot", choices=THP_MODES),
    _k("cpus", int, 8, 1, 1024, "", "CPUs (one per-CPU page list per zone each)"),
    _k("pcp_batch", int, None, 1, 4096, "pages", "per-CPU list batch of every zone (zoneinfo 'batch'); "
                                                 "null = the snapshot's pagesets, else zone_batchsize()"),
)

SYSCTL = tuple(_k(x.name, int, x.default, x.lo, x.hi, x.unit, x.doc) for x in SYSCTLS)

MEMORY_FRAC_MAX = 0.99  # each fraction, and page cache + anon + kernel (sim/scenario.py): the rest starts free
MEMORY = (
    _k("page_cache_frac", float, 0.5, 0.0, MEMORY_FRAC_MAX, "", "initial page cache, fraction of managed pages"),
    _k("anon_frac", float, 0.1, 0.0, MEMORY_FRAC_MAX, "", "initial anonymous memory, fraction of managed pages"),
    _k("kernel_frac", float, 0.03, 0.0, MEMORY_FRAC_MAX, "", "initial unreclaimable kernel memory (slab etc.)"),
    _k("swap", bool, False, doc="anonymous memory is reclaimable (swap configured)"),
    _k("page_cache_gfp", str, "GFP_HIGHUSER_MOVABLE", doc="the page cache's allocation mask (the mapping's "
       "gfp mask): a file's, GFP_HIGHUSER_MOVABLE (MOVABLE pageblocks); a block device's own page cache "
       "(reading /dev/...), GFP_USER (bdev_alloc(): UNMOVABLE, kernel zonelist)",
       choices=tuple(PAGE_CACHE_GFPS)),
    _k("page_cache_age", str, "interleaved", doc="the initial page cache's order on each node's LRU, which "
       "reclaim takes oldest first: interleaved (every age holds each zone's share, as after a long uptime) "
       "or zonelist (the first zone of the cache's zonelist is oldest: a cache read into free memory after "
       "boot, the real-kernel guest's case)", choices=("interleaved", "zonelist")),
    _k("reform_pageblocks", bool, True, doc="whole free pageblocks re-form when a workload frees its anonymous "
       "memory (__free_one_page() merges buddies: the blocks it split whole come back whole); false keeps every "
       "freed page in sub-block chunks (the simulator before 2026-12-06)"),
    _k("reclaim_reforms_pageblocks", bool, False, doc="whole free pageblocks re-form when reclaim frees the "
       "page cache that filled them (__free_one_page() merges buddies; the page cache read into whole blocks "
       "is freed in LRU order, a block's pages together): whole free blocks of the cache's type, which a "
       "fallback of another type claims with no boost; the real-kernel twin's (docs/realkernel.md)"),
    _k("reclaim_whole_share", float, 1.0, 0.0, 1.0, "", doc="with reclaim_reforms_pageblocks: the share of the "
       "filled blocks reclaim frees that come back whole; the rest keep a page not freed with them and come "
       "back as sub-block chunks (the kernel's order-8 UNMOVABLE chunks); a free parameter, fitted on the "
       "real-kernel corpus (docs/realkernel.md)"),
)

KSWAPD = (
    _k("reclaim_pages_per_ms", float, 1000.0, 1.0, 1e6, "pages/ms", "kswapd reclaim rate (1000 = ~4 GB/s)"),
    _k("wake_latency_ms", float, 0.1, 0.0, 100.0, "ms", "from wakeup_kswapd() to reclaim starting"),
    _k("direct_reclaim_pages_per_ms", float, 250.0, 1.0, 1e6, "pages/ms", "direct reclaim rate of a stalled task"),
    _k("cpu_share", float, 0.0, 0.0, 1.0, "", "while kswapd runs, the share of its CPU's time it holds: a "
       "softirq allocation that interrupts it runs with kswapd's PF_MEMALLOC (__gfp_pfmemalloc_flags(): no "
       "watermarks); 0 leaves this out"),
)

NIC = (
    _k("driver", str, "page_pool", doc="RX refill model", choices=("page_pool", "dev_alloc_pages", "virtio_net")),
    _k("queues", int, 8, 1, 256, "", "RX queues"),
    _k("ring_size", int, 1024, 16, 65536, "descriptors", "RX ring size per queue (ixgbe default 512, max 4096)"),
    _k("mtu", int, 1500, 68, 65535, "bytes", "MTU"),
    _k("buffer_bytes", int, 2048, 256, 65536, "bytes", "RX buffer size (page_pool frags: 2 per 4 KiB page)"),
    _k("napi_budget", int, 64, 1, 65536, "packets", "NAPI poll budget per queue"),
    _k("napi_interval_us", float, 50.0, 1.0, 100000.0, "us", "time between NAPI polls of a queue under load"),
    _k("line_rate_gbps", float, 25.0, 0.01, 1000.0, "Gbit/s", "link speed (caps arrivals)"),
    _k("rcvbuf_kb", int, 6144, 4, 1 << 24, "kB", "socket receive buffer (tcp_rmem max) per queue's socket"),
    _k("app_drain_pps", float, 2e6, 0.0, 1e9, "packets/s", "rate at which the application reads the sockets"),
    _k("sock_memalloc", bool, False, doc="sockets are SOCK_MEMALLOC (pfmemalloc packets not dropped)"),
    _k("recycle", bool, None, doc="RX pages freed by the stack are reused by the driver (page_pool: "
                                  "its alloc cache + ptr_ring; dev_alloc_pages: half-page reuse) "
                                  "instead of going back to the buddy allocator; null = the driver's "
                                  "way (on for page_pool and dev_alloc_pages, off for virtio_net, "
                                  "whose 6.1 driver has none)"),
)

TRAFFIC = (
    _k("kind", str, "poisson", doc="arrival process", choices=("poisson", "mmpp", "incast", "diurnal", "replay")),
    _k("rate_pps", float, 1e5, 0.0, 1e9, "packets/s", "mean rate (poisson, diurnal mean, mmpp off state)"),
    _k("burst_pps", float, 0.0, 0.0, 1e9, "packets/s", "mmpp on-state rate; incast: 0 = line rate"),
    _k("mean_on_ms", float, 10.0, 0.01, 1e7, "ms", "mmpp mean on duration"),
    _k("mean_off_ms", float, 1000.0, 0.01, 1e7, "ms", "mmpp mean off duration"),
    _k("period_ms", float, 1000.0, 0.1, 1e9, "ms", "incast burst period / diurnal period"),
    _k("burst_ms", float, 5.0, 0.01, 1e7, "ms", "incast burst length"),
    _k("jitter", float, 0.2, 0.0, 1.0, "", "incast period jitter (fraction)"),
    _k("amplitude", float, 0.5, 0.0, 1.0, "", "diurnal amplitude (fraction of the mean)"),
    _k("trace", str, None, doc="replay: CSV of packets per interval (relative to the scenario file)"),
    _k("trace_interval_ms", float, 1.0, 0.1, 1e6, "ms", "replay: length of one CSV row"),
    _k("packet_bytes", int, 1500, 64, 65535, "bytes", "packet size"),
    _k("start_s", float, 0.0, 0.0, 1e7, "s", "start time"),
    _k("stop_s", float, None, 0.0, 1e7, "s", "stop time (null = end of episode)"),
)

SHOT = (
    _k("at_s", float, 0.0, 0.0, 1e7, "s", "time of the one-off burst"),
    _k("pages", int, 1, 1, 1 << 30, "pages", "order-0 pages requested, one by one"),
    _k("hold_ms", float, 0.0, 0.0, 1e9, "ms", "how long the pages obtained are held before being freed"),
)

WORKLOAD = (
    _k("kind", str, "stream_read", doc="userspace memory or a kernel module's atomic allocations",
       choices=("stream_read", "anon_hog", "churn", "atomic_alloc")),
    _k("name", str, None, doc="label referenced by phases[].start/stop/rate (unique within the scenario)"),
    _k("rate_mib_s", float, 500.0, 0.0, 1e6, "MiB/s", "read rate / hog growth rate / churn rate"),
    _k("working_set_mib", float, 4096.0, 0.0, 4e6, "MiB", "stream_read: size of the files read in a loop"),
    _k("volume_mib", float, None, 0.0, 4e6, "MiB", "stream_read: read this much once (new pages, no "
                                                   "re-read), then stop; null = loop over working_set_mib"),
    _k("access", str, "random", doc="stream_read over a working set: random (a read hits with the "
       "working set's resident share) or sequential (a loop: reclaim takes the oldest pages, the ones it "
       "reads next, so a working set the cache does not hold misses on every read)",
       choices=("random", "sequential")),
    _k("chunk_pages", int, 0, 0, 1 << 20, "pages", "stream_read, anon_hog, churn: allocate the rate's pages "
       "in chunks of this many (the pages due accumulate until a chunk is; a reader's read() of 256 KiB, "
       "a loop touching 64 pages between pauses); 0 = each tick's pages"),
    _k("peak_mib", float, 1024.0, 0.0, 4e6, "MiB", "anon_hog: size at which it stops growing"),
    _k("hold_s", float, 10.0, 0.0, 1e7, "s", "anon_hog: time held at peak before exiting"),
    _k("period_s", float, 60.0, 0.0, 1e7, "s", "anon_hog: restart period (0 = once)"),
    _k("start_s", float, 0.0, 0.0, 1e7, "s", "start time"),
    _k("stop_s", float, None, 0.0, 1e7, "s", "stop time (null = end of episode); an anon_hog/churn "
                                            "stopping frees its memory, a stream_read stops reading"),
    _k("gfp", str, "atomic", doc="atomic_alloc: GFP_ATOMIC|__GFP_NOWARN or GFP_NOWAIT|__GFP_NOWARN",
       choices=("atomic", "nowait")),
    _k("pages_per_burst", int, 0, 0, 1 << 30, "pages", "atomic_alloc: order-0 pages requested per burst"),
    _k("interval_ms", float, 0.0, 0.0, 1e9, "ms", "atomic_alloc: time between bursts (0 = shots only)"),
    _k("hold_ms", float, 0.0, 0.0, 1e9, "ms", "atomic_alloc: how long a burst's pages are held"),
    Field("shots", list, keys=SHOT, default=[], help="atomic_alloc: one-off bursts {at_s, pages, hold_ms}"),
)

# A phase's sysctl writes: every key of the sysctl section (its range and unit), null = not written.
PHASE_SYSCTL = tuple(dataclasses.replace(f, default=None, help=f"vm.{f.name} written at at_s") for f in SYSCTL)

PHASE = (
    _k("at_s", float, 0.0, 0.0, 1e7, "s", "time the phase applies"),
    Field("sysctl", dict, keys=PHASE_SYSCTL, default={}),
    Field("start", list[str], default=[], help="workload names whose start_s becomes at_s"),
    Field("stop", list[str], default=[], help="workload names whose stop_s becomes at_s"),
    Field("rate", dict[str, float], default={}, unit="MiB/s", range=(0.0, 1e6),
          help="workload name -> its rate_mib_s from at_s on (stream_read, anon_hog, churn): a rate "
               "that changes, e.g. a reader's measured progress replayed"),
)

SCENARIO = (
    _k("name", str, "unnamed", doc="scenario name (file stem)"),
    _k("description", str, "", doc="what it represents and why its parameters are plausible"),
    _k("duration_s", float, 60.0, 0.001, 1e7, "s", "episode length in simulated time"),
    _k("tick_ms", float, 1.0, 0.1, 10.0, "ms", "simulation tick"),
    Field("machine", dict, keys=MACHINE, default={}),
    Field("sysctl", dict, keys=SYSCTL, default={}),
    Field("memory", dict, keys=MEMORY, default={}),
    Field("kswapd", dict, keys=KSWAPD, default={}),
    Field("nics", list, keys=NIC, default=[{}]),
    Field("traffic", list, keys=TRAFFIC, default=[]),
    Field("workloads", list, keys=WORKLOAD, default=[]),
    Field("phases", list, keys=PHASE, default=[], help="timed events: sysctl writes, workloads started/stopped"),
    Field("randomize", dict[str, list[float]], default={}, help="key path -> [lo, hi], drawn per episode"),
)
SCENARIO_KEYS: dict[str, Field] = {f.name: f for f in SCENARIO}


def nullable(f: Field) -> bool:
    """A key that takes null: its default is null (the tables' rule)."""
    return f.default is None


def fmt_num(x: float | int | None) -> str:
    """A number as the scenario's messages and docs show it: 1e7, 0.001, 65536; None is inf."""
    if x is None:
        return "inf"
    if isinstance(x, (bool, int)):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e7:
        return str(int(x))
    return f"{x:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def valid_text(f: Field | None) -> str:
    """'valid range 0..1e9 packets/s' or 'choices: a, b, c' ("" for a key without either)."""
    if f is None:
        return ""
    if f.choices is not None:
        return "choices: " + ", ".join(f.choices)
    if f.range is None:
        return ""
    lo, hi = f.range
    lo_s = "-inf" if lo is None else fmt_num(lo)
    unit = f" {f.unit}" if f.unit else ""
    return f"valid range {lo_s}..{fmt_num(hi)}{unit}"


def _check(fields: tuple[Field, ...], where: str) -> None:
    """At import: every key once, a section has keys, a default inside its range and choices."""
    if len({f.name for f in fields}) != len(fields):
        raise ValueError(f"scenario_schema: {where}: a key twice")
    for f in fields:
        if f.keys is not None:
            if f.type not in (dict, list):
                raise ValueError(f"scenario_schema: {where}.{f.name}: a section is of type dict or list")
            _check(f.keys, f"{where}.{f.name}")
        elif f.default is not None and f.type in (int, float):
            if isinstance(f.default, bool) or not isinstance(f.default, f.type) or not f._in_range(f.default):
                raise ValueError(f"scenario_schema: {where}.{f.name}: default {f.default!r} is not {valid_text(f)}")
        elif f.default is not None and f.choices is not None and f.default not in f.choices:
            raise ValueError(f"scenario_schema: {where}.{f.name}: default {f.default!r} is not one of its choices")


_check(SCENARIO, "scenario")


def _type_name(f: Field) -> str:
    if typing.get_origin(f.type) is list:
        base = f"list of {typing.get_args(f.type)[0].__name__}"
    elif typing.get_origin(f.type) is dict:
        base = "mapping"
    else:
        base = {int: "int", float: "float", str: "str", bool: "bool"}.get(f.type, getattr(f.type, "__name__", ""))
    return base + (" or null" if nullable(f) else "")


def _default_text(f: Field) -> str:
    d = f.default
    if d is None:
        return "null"
    if isinstance(d, bool):
        return str(d).lower()
    if isinstance(d, str):
        return f'"{d}"'
    if isinstance(d, (list, dict)):
        return "[]" if isinstance(d, list) else "{}"
    return fmt_num(d)


def schema_markdown(fields: tuple[Field, ...] = SCENARIO, prefix: str = "") -> str:
    """Markdown table of every YAML key: path, type, default, unit, valid range/choices, doc (the
    docs' table, docs/scenarios.md; `make docs`)."""
    rows = ["| key | type | default | unit | valid | description |", "|---|---|---|---|---|---|"] if not prefix else []
    for f in fields:
        key = prefix + f.name
        if f.keys is not None:
            rows.append(schema_markdown(f.keys, key + ("." if f.type is dict else "[i].")).rstrip("\n"))
            continue
        valid = valid_text(f).replace("valid range ", "").replace("choices: ", "")
        if f.unit:
            valid = valid.replace(f" {f.unit}", "")
        doc = f.help.replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(f)} | {_default_text(f)} | {f.unit} | {valid} | {doc} |")
    return "\n".join(r for r in rows if r) + "\n"
