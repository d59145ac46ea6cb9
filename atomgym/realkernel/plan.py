"""A scenario's memory workloads compiled into the guest's plan (the keys of the agreed schema).

This is the harness's own small reader of the scenario keys a guest can run, so it does not
depend on the simulator's loader knowing them: `duration_s`, `machine` (ram_mib, cpus, thp,
nodes = 1), `sysctl`, `memory` (page_cache_frac / anon_frac become a prefill before t = 0),
`workloads` of kind stream_read, anon_hog, atomic_alloc (with name, start_s, stop_s,
volume_mib, shots), and `phases`. NICs, traffic, churn, swap and randomize are refused with
one line naming them. Unknown keys are refused too (a typo would silently change the run).

Timing rule (the agreed schema): a workload runs in [start_s, stop_s); a phase's ``start:``
starts a named workload at the phase's time, its ``stop:`` stops it then. Each start opens
an interval that the next stop (or stop_s, or the end) closes, so a workload can run more
than once. ``shots[].at_s`` are scenario times. One atomic_alloc workload per scenario (the
module has one configuration).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import RealKernelError

SYSCTL_KEYS = {"min_free_kbytes": (0, 2**31 - 1), "watermark_scale_factor": (1, 3000),
               "watermark_boost_factor": (0, 2**31 - 1)}
GFP = {"atomic": 0, "nowait": 1}
MAX_CPUS = 4
MAX_RAM_MIB = 16384
TOP_KEYS = {"name", "description", "duration_s", "tick_ms", "machine", "sysctl", "memory", "kswapd", "nics",
            "traffic", "workloads", "phases", "randomize"}
COMMON_W = {"kind", "name", "start_s", "stop_s"}
W_KEYS = {"stream_read": COMMON_W | {"rate_mib_s", "working_set_mib", "volume_mib"},
          "anon_hog": COMMON_W | {"rate_mib_s", "peak_mib", "hold_s", "period_s"},
          "atomic_alloc": COMMON_W | {"gfp", "pages_per_burst", "interval_ms", "hold_ms", "shots"}}
# The simulator's defaults for keys a workload leaves out (atomgym/sim/scenario.py WorkloadSpec).
W_DEFAULTS = {"rate_mib_s": 500.0, "working_set_mib": 4096.0, "peak_mib": 1024.0, "hold_s": 10.0,
              "period_s": 60.0, "start_s": 0.0, "stop_s": None, "volume_mib": None,
              "gfp": "atomic", "pages_per_burst": 0, "interval_ms": 0.0, "hold_ms": 0.0, "shots": []}


@dataclass
class Work:
    kind: str                  # stream | hog | atomic
    name: str
    start: float
    stop: float | None
    params: list[float]


@dataclass
class Plan:
    scenario: str              # file stem
    source: str
    duration_s: float
    ram_mib: int
    cpus: int
    thp: str | None
    sysctls: list[tuple[float, str, int]] = field(default_factory=list)   # (at_s, key, value)
    works: list[Work] = field(default_factory=list)
    shots: list[tuple[float, int, float]] = field(default_factory=list)   # (at_s, pages, hold_ms)
    prefill_cache_mib: int = 0
    prefill_anon_mib: int = 0
    disk_mib: int = 64
    phases: list[dict[str, Any]] = field(default_factory=list)            # as written (for fidelity)
    raw: dict[str, Any] = field(default_factory=dict)

    def text(self, sample_s: float = 0.3) -> str:
        """The plan file agrun reads (guest/agrun.c)."""
        out = [f"# atomgym plan for {self.scenario}", f"duration {self.duration_s:g}", f"sample {sample_s:g}",
               "disk /dev/vda"]
        if self.thp:
            out.append(f"thp {self.thp}")
        out.append(f"prefill {self.prefill_cache_mib} {self.prefill_anon_mib} 0")
        for at, k, v in sorted(self.sysctls, key=lambda x: x[0]):
            out.append(f"sysctl {at:g} {k} {v}")
        for i, w in enumerate(self.works):
            stop = -1 if w.stop is None else w.stop
            out.append(f"{w.kind} {i} {w.start:g} {stop:g} " + " ".join(f"{p:g}" for p in w.params))
        for at, pages, hold in self.shots:
            out.append(f"shot {at:g} {pages} {round(hold * 1000)}")
        return "\n".join(out) + "\n"


class _Lines(yaml.SafeLoader):
    pass


def _line_map(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            _line_map(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)


class _Ctx:
    def __init__(self, src: str, lines: dict[tuple, int]) -> None:
        self.src, self.lines = src, lines

    def fail(self, path: tuple, msg: str) -> RealKernelError:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p, 0)
        key = "".join(f"[{x}]" if isinstance(x, int) else (("." if i else "") + str(x)) for i, x in enumerate(path))
        return RealKernelError(f"{self.src}:{line}: {key or '(top)'}: {msg}")

    def num(self, d: dict, key: str, path: tuple, default: Any, lo: float = 0.0, hi: float = 1e9,
            integer: bool = False, allow_none: bool = False) -> Any:
        v = d.get(key, default)
        if v is None and allow_none:
            return None
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok:
            raise self.fail(path + (key,), f"expected {'an integer' if integer else 'a number'}"
                                           f"{' or null' if allow_none else ''}, got {v!r}")
        if not lo <= v <= hi:
            raise self.fail(path + (key,), f"{v} out of range [{lo:g}, {hi:g}]")
        return v


def _mapping(ctx: _Ctx, v: Any, path: tuple, allowed: set[str], what: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ctx.fail(path, f"expected a mapping ({what})")
    bad = sorted(set(map(str, v)) - allowed)
    if bad:
        raise ctx.fail(path + (bad[0],), f"unknown key for {what}; valid: {', '.join(sorted(allowed))}")
    return v


def _refuse_unrunnable(ctx: _Ctx, d: dict) -> None:
    """One line naming everything a guest cannot run (NICs, traffic, churn and unknown kinds)."""
    bad: list[tuple[tuple, str]] = []
    for key in ("nics", "traffic"):
        if d.get(key):
            bad.append(((key,), f"{key} ({len(d[key]) if isinstance(d[key], list) else 1})"))
    ws = d.get("workloads")
    for i, w in enumerate(ws if isinstance(ws, list) else []):
        kind = w.get("kind", "stream_read") if isinstance(w, dict) else None
        if isinstance(w, dict) and kind not in W_KEYS:
            bad.append((("workloads", i, "kind"), f"workloads[{i}] kind {kind}"))
    if bad:
        where = ", ".join(f"{what} at line {ctx.lines.get(path, 0)}" for path, what in bad)
        raise RealKernelError(f"{ctx.src}: a guest cannot run {where}; the real-kernel harness runs "
                              f"{', '.join(W_KEYS)} and phases (NICs and traffic: `nics: []`, `traffic: []`)")


def load_plan(path: str | Path) -> Plan:
    """Read a scenario file (or a shipped scenario's name) into a Plan; one-line RealKernelError
    on anything a guest cannot run."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and "/" not in str(path):
        from ..paths import SCENARIO_DIR
        if (SCENARIO_DIR / f"{path}.yaml").is_file():      # a shipped scenario by name
            p = SCENARIO_DIR / f"{path}.yaml"
    src = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RealKernelError(f"{src}: cannot read: {e.strerror or e}") from None
    try:
        node = yaml.compose(text, Loader=_Lines)
        data = yaml.load(text, Loader=_Lines)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RealKernelError(f"{src}:{mark.line + 1 if mark else 0}: not valid YAML: "
                              f"{getattr(e, 'problem', None) or e}") from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    ctx = _Ctx(src, lines)
    d = _mapping(ctx, data, (), TOP_KEYS, "a scenario")
    _refuse_unrunnable(ctx, d)
    dur = ctx.num(d, "duration_s", (), 60.0, 0.0, 3600.0)

    m = _mapping(ctx, d.get("machine"), ("machine",),
                 {"ram_mib", "kernel", "thp", "cpus", "nodes", "snapshot", "pcp_batch"}, "machine")
    ram = ctx.num(m, "ram_mib", ("machine",), 16384, 128, MAX_RAM_MIB, integer=True)
    cpus = ctx.num(m, "cpus", ("machine",), 1, 1, MAX_CPUS, integer=True)
    if ctx.num(m, "nodes", ("machine",), 1, 1, 8, integer=True) != 1:
        raise ctx.fail(("machine", "nodes"), "the guest has one NUMA node; valid: 1")
    if m.get("snapshot") is not None:
        raise ctx.fail(("machine", "snapshot"), "a guest boots its own machine from ram_mib; remove the snapshot")
    thp = m.get("thp", "madvise")
    if thp not in ("always", "madvise", "never"):
        raise ctx.fail(("machine", "thp"), f"{thp!r}; valid: always, madvise, never")

    plan = Plan(scenario=p.stem, source=src, duration_s=float(dur), ram_mib=ram, cpus=cpus, thp=thp, raw=d)

    s = _mapping(ctx, d.get("sysctl"), ("sysctl",), set(SYSCTL_KEYS), "sysctl")
    for k, (lo, hi) in SYSCTL_KEYS.items():
        if k in s:
            v = ctx.num(s, k, ("sysctl",), None, lo, hi, integer=True, allow_none=(k == "min_free_kbytes"))
            if v is not None:
                plan.sysctls.append((0.0, k, int(v)))

    mem = _mapping(ctx, d.get("memory"), ("memory",), {"page_cache_frac", "anon_frac", "kernel_frac", "swap"},
                   "memory")
    if mem.get("swap"):
        raise ctx.fail(("memory", "swap"), "the guest has no swap; valid: false")
    cache_frac = ctx.num(mem, "page_cache_frac", ("memory",), 0.0, 0.0, 0.9)
    anon_frac = ctx.num(mem, "anon_frac", ("memory",), 0.0, 0.0, 0.9)
    if cache_frac + anon_frac > 0.9:
        raise ctx.fail(("memory",), f"page_cache_frac + anon_frac = {cache_frac + anon_frac:g} leaves the guest "
                                    f"no room; valid: at most 0.9")
    plan.prefill_cache_mib = int(ram * cache_frac)
    plan.prefill_anon_mib = int(ram * anon_frac)

    if "nics" not in d:
        raise ctx.fail((), "nics: absent means one default NIC in the simulator, and a guest has none; "
                           "write `nics: []`")
    if d.get("randomize"):
        raise ctx.fail(("randomize",), "a guest runs one fixed scenario; remove randomize")

    ws = d.get("workloads") or []
    if not isinstance(ws, list):
        raise ctx.fail(("workloads",), "expected a list")
    names: dict[str, int] = {}
    specs: list[dict] = []
    disk = plan.prefill_cache_mib
    n_atomic = 0
    for i, w in enumerate(ws):
        path = ("workloads", i)
        if not isinstance(w, dict):
            raise ctx.fail(path, "expected a mapping")
        kind = w.get("kind", "stream_read")
        if kind not in W_KEYS:
            raise ctx.fail(path + ("kind",), f"{kind!r}: a guest cannot run it; the real-kernel harness runs "
                                             f"{', '.join(W_KEYS)}")
        _mapping(ctx, w, path, W_KEYS[kind], kind)
        name = w.get("name") or f"{kind}#{i}"
        if not isinstance(name, str) or name in names:
            raise ctx.fail(path + ("name",), f"{name!r}: names must be unique strings")
        names[name] = i
        g = {k: W_DEFAULTS[k] for k in W_KEYS[kind] if k in W_DEFAULTS}
        g.update(w)
        g["start_s"] = ctx.num(g, "start_s", path, 0.0, 0.0, 1e7)
        g["stop_s"] = ctx.num(g, "stop_s", path, None, 0.0, 1e7, allow_none=True)
        if kind == "stream_read":
            rate = ctx.num(g, "rate_mib_s", path, None, 0.0, 1e6)
            wss = ctx.num(g, "working_set_mib", path, None, 1.0, 65536.0)
            vol = ctx.num(g, "volume_mib", path, None, 1.0, 65536.0, allow_none=True)
            region = int(vol if vol is not None else wss) + 1
            params = [rate, disk, int(wss) if vol is None else region, -1 if vol is None else vol]
            disk += region
            specs.append({"kind": "stream", "params": params})
        elif kind == "anon_hog":
            params = [ctx.num(g, "rate_mib_s", path, None, 0.0, 1e6), ctx.num(g, "peak_mib", path, None, 1, ram),
                      ctx.num(g, "hold_s", path, None, 0.0, 1e7), ctx.num(g, "period_s", path, None, 0.0, 1e7)]
            specs.append({"kind": "hog", "params": params})
        else:
            n_atomic += 1
            if n_atomic > 1:
                raise ctx.fail(path, "one atomic_alloc workload per scenario (the module has one configuration)")
            gfp = g.get("gfp")
            if gfp not in GFP:
                raise ctx.fail(path + ("gfp",), f"{gfp!r}; valid: {', '.join(GFP)}")
            ppb = ctx.num(g, "pages_per_burst", path, None, 0, 1 << 20, integer=True)
            ival = ctx.num(g, "interval_ms", path, None, 0.0, 1e7)
            if 0 < ival < 1:
                raise ctx.fail(path + ("interval_ms",), f"{ival}: the module's timer ticks every 1 ms; "
                                                        f"valid: 0 or at least 1")
            hold = ctx.num(g, "hold_ms", path, None, 0.0, 1e7)
            params = [GFP[gfp], ppb, round(ival * 1000), round(hold * 1000)]
            specs.append({"kind": "atomic", "params": params})
            shots = g.get("shots") or []
            if not isinstance(shots, list):
                raise ctx.fail(path + ("shots",), "expected a list of {at_s, pages, hold_ms}")
            for j, sh in enumerate(shots):
                sp = path + ("shots", j)
                sh = _mapping(ctx, sh, sp, {"at_s", "pages", "hold_ms"}, "a shot")
                plan.shots.append((float(ctx.num(sh, "at_s", sp, None, 0.0, 1e7)),
                                   int(ctx.num(sh, "pages", sp, None, 0, 1 << 20, integer=True)),
                                   float(ctx.num(sh, "hold_ms", sp, 0.0, 0.0, 1e7))))
        specs[-1].update(name=name, start=float(g["start_s"]), stop=g["stop_s"], explicit_start="start_s" in w)

    phases = d.get("phases") or []
    if not isinstance(phases, list):
        raise ctx.fail(("phases",), "expected a list of {at_s, sysctl, start, stop}")
    starts: dict[int, list[float]] = {}
    stops: dict[int, list[float]] = {}
    for j, ph in enumerate(phases):
        pp = ("phases", j)
        ph = _mapping(ctx, ph, pp, {"at_s", "sysctl", "start", "stop"}, "a phase")
        at = float(ctx.num(ph, "at_s", pp, None, 0.0, 1e7))
        sy = _mapping(ctx, ph.get("sysctl"), pp + ("sysctl",), set(SYSCTL_KEYS), "a phase's sysctl")
        for k, (lo, hi) in SYSCTL_KEYS.items():
            if k in sy:
                plan.sysctls.append((at, k, int(ctx.num(sy, k, pp + ("sysctl",), None, lo, hi, integer=True))))
        for key, acc in (("start", starts), ("stop", stops)):
            lst = ph.get(key) or []
            if not isinstance(lst, list):
                raise ctx.fail(pp + (key,), "expected a list of workload names")
            for n in lst:
                if n not in names:
                    raise ctx.fail(pp + (key,), f"no workload named {n!r}; named: {', '.join(names) or 'none'}")
                acc.setdefault(names[n], []).append(at)
        plan.phases.append({"at_s": at, "sysctl": dict(sy), "start": list(ph.get("start") or []),
                            "stop": list(ph.get("stop") or [])})

    for i, sp in enumerate(specs):
        st = sorted(starts.get(i, [])) or [sp["start"]]
        if starts.get(i) and sp["explicit_start"]:
            st = sorted(set(st) | {sp["start"]})
        ends = sorted(stops.get(i, []) + ([sp["stop"]] if sp["stop"] is not None else []))
        for k, t0 in enumerate(st):
            t1 = next((e for e in ends if e > t0), None)
            nxt = st[k + 1] if k + 1 < len(st) else None
            if nxt is not None and (t1 is None or t1 > nxt):
                t1 = nxt
            if t0 >= dur or (t1 is not None and t1 <= t0):
                continue
            plan.works.append(Work(sp["kind"], sp["name"], t0, t1, list(sp["params"])))
    plan.disk_mib = disk + 64
    return plan
