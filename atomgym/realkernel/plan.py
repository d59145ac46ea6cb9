"""A scenario's memory workloads compiled into the guest's plan.

The scenario is read and validated by the simulator's loader (atomgym/sim/scenario.py
`load_scenario`): its schema, defaults, ranges and one-line errors are the only ones. This
module adds what is specific to a guest: it refuses, in one line naming each item and its
line, what a guest cannot run (NICs, traffic, churn, swap, randomize, a machine snapshot,
nodes > 1, more than one atomic_alloc, more RAM/CPUs/time than the guest has); it turns
`memory` fractions into a prefill before t = 0; and it writes the plan text agrun reads.

Timing rule (the schema's, `workload_times`): a workload runs once, in [start_s, stop_s); a
phase's ``start:`` sets its start to the phase's time, its ``stop:`` its stop. A workload
starting at or after duration_s is left out. ``shots[].at_s`` are scenario times.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..sim import scenario as S
from .errors import RealKernelError

SYSCTL_KEYS = tuple(f.name for f in fields(S.SysctlSpec))    # written in this order
GFP = {"atomic": 0, "nowait": 1}           # agrun's `atomic` line: gfp class
KIND = {"stream_read": "stream", "anon_hog": "hog", "atomic_alloc": "atomic"}   # what agrun runs
MAX_CPUS = 4
MAX_RAM_MIB = 16384
MAX_DURATION_S = 3600.0
MAX_PREFILL_FRAC = 0.9                     # page_cache_frac + anon_frac: the rest is the guest's own
MAX_SHOTS = 64                             # guest/atomgym_atomic.c AG_MAX_SHOTS
# `realkernel run --trace`: the tracepoints of reclaim (mm/vmscan.c) and of the allocator's fallbacks
# (mm/page_alloc.c, __rmqueue_fallback() -> steal_suitable_fallback(): mm_page_alloc_extfrag)
TRACE_EVENTS = ("vmscan/mm_vmscan_wakeup_kswapd", "vmscan/mm_vmscan_kswapd_wake", "vmscan/mm_vmscan_kswapd_sleep",
                "vmscan/mm_vmscan_direct_reclaim_begin", "vmscan/mm_vmscan_direct_reclaim_end",
                "kmem/mm_page_alloc_extfrag")
TRACE_BUFFER_KB = 2048                     # per CPU: the guest loses these pages before t = 0


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
    phases: list[dict[str, Any]] = field(default_factory=list)            # at_s, sysctl written, start, stop
    spec: S.Scenario | None = None     # the validated scenario (atomgym/sim/scenario.py)
    trace: tuple[str, ...] = ()        # tracepoints agrun records from t = 0 (TRACE_EVENTS)

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
        if self.trace:
            out.append(f"tracebuf {TRACE_BUFFER_KB}")
            out.extend(f"trace {ev}" for ev in self.trace)
        return "\n".join(out) + "\n"


def _key_lines(path: Path, disp: str) -> dict[tuple, int]:
    """The line of every key path the file writes (the simulator's line map; the file has just
    been loaded by it, so this cannot fail)."""
    lines: dict[tuple, int] = {}
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=S._Loader)
    S._line_map(node, (), lines, S._Ctx(disp))
    return lines


def _refusals(s: S.Scenario, lines: dict[tuple, int]) -> list[tuple[tuple, str]]:
    """Everything in a valid scenario that a guest cannot run: (key path, what and why)."""
    bad: list[tuple[tuple, str]] = []
    if ("nics",) not in lines:
        bad.append(((), "nics absent (one default NIC in the simulator; write `nics: []`)"))
    elif s.nics:
        bad.append((("nics",), f"nics ({len(s.nics)})"))
    if s.traffic:
        bad.append((("traffic",), f"traffic ({len(s.traffic)})"))
    if s.randomize:
        bad.append((("randomize",), "randomize (a guest runs one fixed scenario)"))
    m = s.machine
    if m.snapshot is not None:
        bad.append((("machine", "snapshot"), "machine.snapshot (a guest boots its own machine from ram_mib)"))
    if m.nodes != 1:
        bad.append((("machine", "nodes"), f"machine.nodes {m.nodes} (the guest has one NUMA node)"))
    if m.ram_mib > MAX_RAM_MIB:
        bad.append((("machine", "ram_mib"), f"machine.ram_mib {m.ram_mib} (at most {MAX_RAM_MIB})"))
    if m.cpus > MAX_CPUS:
        dflt = "" if ("machine", "cpus") in lines else ", the default"
        bad.append((("machine", "cpus"), f"machine.cpus {m.cpus}{dflt} (at most {MAX_CPUS})"))
    if s.duration_s > MAX_DURATION_S:
        bad.append((("duration_s",), f"duration_s {s.duration_s:g} (at most {MAX_DURATION_S:g})"))
    if s.memory.swap:
        bad.append((("memory", "swap"), "memory.swap (the guest has no swap)"))
    fr = s.memory.page_cache_frac + s.memory.anon_frac
    if fr > MAX_PREFILL_FRAC + 1e-12:
        bad.append((("memory",), f"memory page_cache_frac + anon_frac = {fr:g} (at most {MAX_PREFILL_FRAC:g}: "
                                 f"the guest needs the rest)"))
    atomic = [i for i, w in enumerate(s.workloads) if w.kind == "atomic_alloc"]
    for i, w in enumerate(s.workloads):
        p = ("workloads", i)
        if w.kind not in KIND:
            bad.append((p + ("kind",), f"workloads[{i}] kind {w.kind}"))
        elif w.kind == "anon_hog" and w.peak_mib > m.ram_mib:
            bad.append((p + ("peak_mib",), f"workloads[{i}].peak_mib {w.peak_mib:g} (more than the guest's "
                                           f"{m.ram_mib} MiB)"))
        elif w.kind == "atomic_alloc":
            if i in atomic[1:]:
                bad.append((p, f"workloads[{i}], a second atomic_alloc (the module has one configuration)"))
            if 0 < w.interval_ms < 1:
                bad.append((p + ("interval_ms",), f"workloads[{i}].interval_ms {w.interval_ms:g} (the module's "
                                                  "timer ticks every 1 ms: 0 or at least 1)"))
            if len(w.shots) > MAX_SHOTS:
                bad.append((p + ("shots",), f"workloads[{i}].shots ({len(w.shots)}; the module takes at most "
                                            f"{MAX_SHOTS})"))
    return bad


def _line(lines: dict[tuple, int], path: tuple) -> int | None:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path) if path else None


def load_plan(path: str | Path) -> Plan:
    """Read a scenario file (or a shipped scenario's name) into a Plan; one-line RealKernelError
    on anything the scenario loader refuses or a guest cannot run."""
    try:
        s = S.load_scenario(path)
    except S.ScenarioError as e:
        raise RealKernelError(str(e)) from None
    p = Path(s.source)
    disp = S._display(s.source)
    lines = _key_lines(p, disp)
    bad = _refusals(s, lines)
    if bad:
        where = ", ".join(what + (f" at line {n}" if (n := _line(lines, kp)) else "") for kp, what in bad)
        raise RealKernelError(f"{disp}: a guest cannot run {where}; the real-kernel harness runs "
                              f"{', '.join(KIND)} and phases on one NUMA node, without NICs, traffic or swap")

    m = s.machine
    plan = Plan(scenario=p.stem, source=str(p), duration_s=float(s.duration_s), ram_mib=m.ram_mib, cpus=m.cpus,
                thp=m.thp, spec=s)
    for k in SYSCTL_KEYS:            # the values the file writes (the rest: the guest kernel's own)
        v = getattr(s.sysctl, k)
        if ("sysctl", k) in lines and v is not None:
            plan.sysctls.append((0.0, k, int(v)))
    plan.prefill_cache_mib = int(m.ram_mib * s.memory.page_cache_frac)
    plan.prefill_anon_mib = int(m.ram_mib * s.memory.anon_frac)

    disk = plan.prefill_cache_mib
    for i, (w, (t0, t1)) in enumerate(zip(s.workloads, S.workload_times(s))):
        if w.kind == "stream_read":
            vol = w.volume_mib
            region = int(vol if vol is not None else w.working_set_mib) + 1
            params = [w.rate_mib_s, disk, int(w.working_set_mib) if vol is None else region,
                      -1 if vol is None else vol]
            disk += region
        elif w.kind == "anon_hog":
            params = [w.rate_mib_s, w.peak_mib, w.hold_s, w.period_s]
        else:   # atomic_alloc: gfp class, pages, interval us, hold us
            params = [GFP[w.gfp], w.pages_per_burst, round(w.interval_ms * 1000), round(w.hold_ms * 1000)]
            plan.shots.extend((sh.at_s, sh.pages, sh.hold_ms) for sh in w.shots)
        if t0 < plan.duration_s:
            plan.works.append(Work(KIND[w.kind], w.name or f"{w.kind}#{i}", t0, t1, params))
    for ph in s.phases:
        sy = {k: getattr(ph.sysctl, k) for k in SYSCTL_KEYS if getattr(ph.sysctl, k) is not None}
        plan.sysctls.extend((ph.at_s, k, int(v)) for k, v in sy.items())
        plan.phases.append({"at_s": ph.at_s, "sysctl": sy, "start": list(ph.start), "stop": list(ph.stop)})
    plan.disk_mib = disk + 64
    return plan
