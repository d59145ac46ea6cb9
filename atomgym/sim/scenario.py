"""Scenario: a typed description of one simulated machine and its load.

The keys, their types, defaults, units, ranges and docs are atomgym/scenario_schema.py's tables (the
schema layer); the dataclasses below are built from them, and every field carries its spec in
``metadata`` so that the loader can name the file, key and valid range in every error. YAML files
live in configs/scenarios/; loading, validation, ``randomize`` draws and the list of shipped
scenarios are implemented below the dataclasses.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atomgym import scenario_schema as S
from atomgym.fields import Field
from atomgym.kernel.zones import KernelVersion
from atomgym.scenario_schema import fmt_num as _fmt_num
from atomgym.scenario_schema import nullable
from atomgym.scenario_schema import schema_markdown  # noqa: F401 - the docs' table, re-exported


def _metadata(spec: Field) -> dict[str, Any]:
    """A dataclass field's metadata: its spec (the loader's checks read it), and the spec's range,
    unit, doc (and choices) for the tools that read a field's metadata (realkernel, tests)."""
    md: dict[str, Any] = {"spec": spec, "range": spec.range or (None, None), "unit": spec.unit, "doc": spec.help}
    if spec.choices is not None:
        md["choices"] = spec.choices
    return md


def _section(name: str, specs: tuple[Field, ...], extra: tuple[tuple[str, Any, Any], ...] = (),
             **sections: type) -> type:
    """The dataclass of one section of the scenario schema (atomgym/scenario_schema.py), one field per
    key in the table's order; ``sections`` gives the dataclass of each nested section key."""
    if set(sections) != {f.name for f in specs if f.keys is not None}:
        raise ValueError(f"scenario: {name}: the nested sections are {sorted(f.name for f in specs if f.keys)}")
    cols: list[tuple[str, Any, Any]] = []
    for f in specs:
        md = _metadata(f)
        if f.keys is not None:
            cls = sections[f.name]
            if cls.__keys__ is not f.keys:
                raise ValueError(f"scenario: {name}.{f.name}: {cls.__name__} is not the section of its keys")
            if f.type is dict:
                cols.append((f.name, cls, field(default_factory=cls, metadata=md)))
            else:
                cols.append((f.name, list[cls], field(default_factory=lambda c=cls, d=f.default: [c(**x) for x in d],
                                                      metadata=md)))
        elif isinstance(f.default, (list, dict)):
            cols.append((f.name, f.type, field(default_factory=lambda d=f.default: type(d)(d), metadata=md)))
        else:
            cols.append((f.name, f.type | None if nullable(f) else f.type, field(default=f.default, metadata=md)))
    cls = dataclasses.make_dataclass(name, [*cols, *extra])
    cls.__module__ = __name__   # (make_dataclass takes module= only from Python 3.12): pickled by name
    cls.__keys__ = specs
    return cls


MachineSpec = _section("MachineSpec", S.MACHINE)
SysctlSpec = _section("SysctlSpec", S.SYSCTL)
MemorySpec = _section("MemorySpec", S.MEMORY)
KswapdSpec = _section("KswapdSpec", S.KSWAPD)
NicSpec = _section("NicSpec", S.NIC)
TrafficSpec = _section("TrafficSpec", S.TRAFFIC)
ShotSpec = _section("ShotSpec", S.SHOT)
WorkloadSpec = _section("WorkloadSpec", S.WORKLOAD, shots=ShotSpec)
PhaseSysctlSpec = _section("PhaseSysctlSpec", S.PHASE_SYSCTL)
PhaseSpec = _section("PhaseSpec", S.PHASE, sysctl=PhaseSysctlSpec)
Scenario = _section(
    "Scenario", S.SCENARIO, machine=MachineSpec, sysctl=SysctlSpec, memory=MemorySpec, kswapd=KswapdSpec,
    nics=NicSpec, traffic=TrafficSpec, workloads=WorkloadSpec, phases=PhaseSpec,
    # Set by the loader, not a YAML key: the file this scenario came from ("" = built in code).
    # Relative paths (machine.snapshot, traffic[].trace) resolve against its directory.
    extra=(("source", str, field(default="", compare=False, metadata={"internal": True,
                                                                      "doc": "file the scenario was loaded from"})),))


# ======================================================================================
# Loading and validation
# ======================================================================================

from ..paths import DATA_ROOT as REPO_ROOT, SCENARIO_DIR  # noqa: E402 - checkout or wheel (paths.py)
from .scenario_files import ScenarioError, resolve_path, search_dirs  # noqa: E402,F401 - re-exported too
from ..scenario_schema import MEMORY_FRAC_MAX  # noqa: E402 - page cache + anon + kernel: the rest starts free
MAX_SCENARIO_BYTES = 16 << 20    # reads stop here: a scenario is a few kB (a device never ends)
MAX_TRACE_BYTES = 512 << 20      # a replay trace: ~7 bytes per row; 60,000 rows is 400 kB
MAX_TRACE_PACKETS = 2**53        # per row: float64 holds every integer up to here exactly


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads ``1e5`` as a float (YAML 1.2; PyYAML's 1.1 needs ``1.0e5``).

    Only a resolver is added: no constructors, nothing is executed.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))

def format_path(path: tuple) -> str:
    """('traffic', 0, 'burst_pps') -> 'traffic[0].burst_pps'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class _Ctx:
    """Where we are: the file and the YAML line of every key path (for messages)."""

    def __init__(self, file: str, lines: dict[tuple, int] | None = None) -> None:
        self.file = file
        self.lines = lines or {}

    def fail(self, path: tuple, msg: str) -> typing.NoReturn:
        line = None
        p = tuple(path)
        while p and line is None:
            line = self.lines.get(p)
            p = p[:-1]
        where = f"{self.file}:{line}" if line else self.file
        raise ScenarioError(f"{where}: {format_path(path)}: {msg}")


def _valid_text(f: dataclasses.Field) -> str:
    """'valid range 0..1e+09 packets/s' or 'choices: a, b, c' from a field's spec."""
    return S.valid_text(_spec(f))


def _spec(f: dataclasses.Field) -> Field:
    """The key's spec (atomgym/scenario_schema.py): what the loader checks a value against."""
    return f.metadata["spec"]


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 4, 4, 4, 4


def _short(v: object) -> str:
    """repr() of a value for a message, cut short: a YAML alias tree can hold 9^9 items."""
    r = _REPR.repr(v)
    return r if len(r) <= 100 else r[:97] + "..."


def _type_name(v: object) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(v), type(v).__name__)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _yaml_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for ``T | None``; (tp, False) otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar(val: object, tp: type, f: dataclasses.Field, path: tuple, ctx: _Ctx) -> object:
    """Check one scalar against its type, range and choices; return it converted."""
    valid = _valid_text(f)
    tail = f"; {valid}" if valid else ""
    if tp is bool:
        if not isinstance(val, bool):
            ctx.fail(path, f"expected true or false, got {_type_name(val)} {_short(val)}")
        return val
    if tp is str:
        if not isinstance(val, str):
            ctx.fail(path, f"expected a string, got {_type_name(val)} {_short(val)}{tail}")
        choices = _spec(f).choices
        if choices is not None and val not in choices:
            hint = difflib.get_close_matches(val, choices, n=1)
            dym = f" (did you mean {hint[0]!r}?)" if hint else ""
            ctx.fail(path, f"{_short(val)} is not a valid choice{dym}; {valid}")
        return val
    if tp in (int, float):
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            kind = "an integer" if tp is int else "a number"
            ctx.fail(path, f"expected {kind}, got {_type_name(val)} {_short(val)}{tail}")
        if not math.isfinite(val):
            ctx.fail(path, f"{val} is not a finite number{tail}")
        if tp is int:
            if isinstance(val, float):
                if not val.is_integer():
                    ctx.fail(path, f"expected an integer, got {_short(val)}{tail}")
                val = int(val)
        else:
            val = float(val)
        lo, hi = _spec(f).range or (None, None)
        if (lo is not None and val < lo) or (hi is not None and val > hi):
            ctx.fail(path, f"{_fmt_num(val)} is out of range; {valid}")
        return val
    raise TypeError(f"scenario schema: unsupported field type {tp!r} at {format_path(path)}")


def _build(cls: type, data: object, path: tuple, ctx: _Ctx) -> Any:
    """Build dataclass ``cls`` from a parsed YAML mapping, checking every key and value."""
    if not isinstance(data, dict):
        ctx.fail(path, f"expected a mapping of {cls.__name__} keys, got {_type_name(data)}")
    fields = _yaml_fields(cls)
    hints = _hints(cls)
    kwargs: dict[str, object] = {}
    for key, val in data.items():
        if not isinstance(key, str) or key not in fields:
            names = sorted(fields)
            hint = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            dym = f" (did you mean {hint[0]!r}?)" if hint else ""
            ctx.fail(path + (key,), f"unknown key{dym}; valid keys: {', '.join(names)}")
        kwargs[key] = _value(val, hints[key], fields[key], path + (key,), ctx)
    return cls(**kwargs)


def _value(val: object, tp: Any, f: dataclasses.Field, path: tuple, ctx: _Ctx) -> object:
    tp, optional = _split_optional(tp)
    if val is None:
        if optional:
            return None
        valid = _valid_text(f)
        ctx.fail(path, "must not be null" + (f"; {valid}" if valid else ""))
    if dataclasses.is_dataclass(tp):
        return _build(tp, val, path, ctx)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(val, list):
            what = f"{item_tp.__name__} mappings" if dataclasses.is_dataclass(item_tp) else "values"
            ctx.fail(path, f"expected a list of {what} (YAML '- ...' items), got {_type_name(val)}")
        return [_value(v, item_tp, f, path + (i,), ctx) for i, v in enumerate(val)]
    if origin is dict:
        if typing.get_args(tp) == (str, float):
            return _rate_map(val, f, path, ctx)
        return _randomize_raw(val, path, ctx)
    return _scalar(val, tp, f, path, ctx)


def _rate_map(val: object, f: dataclasses.Field, path: tuple, ctx: _Ctx) -> dict[str, float]:
    """A phase's ``rate:`` mapping, workload name -> MiB/s (names are checked once the scenario
    exists: _check_workloads_and_phases())."""
    if not isinstance(val, dict):
        ctx.fail(path, f"expected a mapping 'workload name: MiB/s', got {_type_name(val)}")
    out: dict[str, float] = {}
    for k, v in val.items():
        if not isinstance(k, str):
            ctx.fail(path + (k,), f"a rate key must be a workload name, got {_short(k)}")
        out[k] = _scalar(v, float, f, path + (k,), ctx)    # a number in the field's range
    return out


def _randomize_raw(val: object, path: tuple, ctx: _Ctx) -> dict[str, list[float]]:
    """``randomize:`` entries: key path -> [lo, hi] (paths are checked once the scenario exists)."""
    if not isinstance(val, dict):
        ctx.fail(path, f"expected a mapping 'key.path: [lo, hi]', got {_type_name(val)}")
    out: dict[str, list[float]] = {}
    for k, v in val.items():
        p = path + (k,)
        if not isinstance(k, str):
            ctx.fail(p, f"a randomize key must be a key path string such as 'traffic.0.burst_pps', got {_short(k)}")
        if (not isinstance(v, list) or len(v) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in v)):
            ctx.fail(p, f"expected [lo, hi] (two finite numbers), got {_short(v)}")
        if v[0] > v[1]:
            ctx.fail(p, f"lo {_fmt_num(v[0])} is above hi {_fmt_num(v[1])}; expected [lo, hi] with lo <= hi")
        out[_canonical_key(k)] = [v[0], v[1]]
    return out


_KEY_TOKEN = re.compile(r"\[(\d+)\]|\.?([A-Za-z_][A-Za-z_0-9]*|\d+)")


def _parse_key(key: str) -> tuple | None:
    """'traffic.0.burst_pps' or 'traffic[0].burst_pps' -> ('traffic', 0, 'burst_pps'); None if malformed."""
    parts: list[str | int] = []
    pos = 0
    key = key.strip()
    while pos < len(key):
        m = _KEY_TOKEN.match(key, pos)
        if not m or (pos == 0 and key.startswith(".")):
            return None
        if m.group(1) is not None:
            parts.append(int(m.group(1)))
        else:
            tok = m.group(2)
            parts.append(int(tok) if tok.isdigit() else tok)
        pos = m.end()
    return tuple(parts) or None


def _canonical_key(key: str) -> str:
    """Randomize keys are stored with dots ('traffic.0.burst_pps') whichever syntax was used."""
    parts = _parse_key(key)
    return key if parts is None else ".".join(str(p) for p in parts)


def _resolve_field(s: "Scenario", parts: tuple) -> tuple[object, str, dataclasses.Field, Any] | str:
    """The (parent object, attribute, field, type) a key path names, or why it names nothing."""
    obj: object = s
    for i, p in enumerate(parts):
        here = format_path(parts[:i]) if i else "the top level"
        if isinstance(obj, list):
            if not isinstance(p, int):
                return f"{here} is a list: expected an index, got {p!r}"
            if not 0 <= p < len(obj):
                return f"{here} has {len(obj)} entr{'y' if len(obj) == 1 else 'ies'}: index {p} does not exist"
            obj = obj[p]
            continue
        if not dataclasses.is_dataclass(obj) or not isinstance(p, str):
            return f"{here} has no keys; {format_path(parts[:i])} is a value"
        fields = _yaml_fields(type(obj))
        if p not in fields:
            hint = difflib.get_close_matches(p, sorted(fields), n=1, cutoff=0.5)
            dym = f" (did you mean {hint[0]!r}?)" if hint else ""
            return f"no key {p!r} in {here}{dym}; valid keys: {', '.join(sorted(fields))}"
        if i == len(parts) - 1:
            return obj, p, fields[p], _hints(type(obj))[p]
        obj = getattr(obj, p)
    return "empty key path"


# keys one batched simulator shares between its machines: a draw per machine would not be what runs
NOT_RANDOMIZABLE = {
    "duration_s": "the episode length is one for every episode: the scenario's or the command's --duration-s",
    "tick_ms": "one tick for every machine of a batch: the episode's tick count is the scenario's tick_ms's, "
               "so a drawn tick would simulate another length than the episode's duration",
    "machine.nodes": "the NUMA node count sizes the batch's arrays: it is the scenario's, for every machine",
}
_RANDOMIZE_EXAMPLES = ("traffic.0.rate_pps", "nics.0.ring_size", "memory.page_cache_frac", "machine.ram_mib",
                       "workloads.0.start_s")


def _check_randomize(s: "Scenario", ctx: _Ctx) -> None:
    """Every randomize path names an existing numeric field and stays inside its valid range."""
    for key, (lo, hi) in s.randomize.items():
        path = ("randomize", key)
        parts = _parse_key(key)
        if parts is None:
            ctx.fail(path, "malformed key path; expected e.g. 'traffic.0.burst_pps' or 'nics[0].ring_size'")
        if parts[0] == "randomize" or parts[0] in ("name", "description"):
            ctx.fail(path, f"{parts[0]!r} cannot be randomized; randomize numeric parameters only")
        r = _resolve_field(s, parts)
        if isinstance(r, str):
            ctx.fail(path, r)
        fixed = NOT_RANDOMIZABLE.get(format_path(parts))
        if fixed is not None:
            ctx.fail(path, f"{format_path(parts)} cannot be randomized ({fixed}); every other numeric key can, "
                           f"e.g. {', '.join(_RANDOMIZE_EXAMPLES)}")
        _, _, f, tp = r
        tp, _ = _split_optional(tp)
        if tp not in (int, float):
            ctx.fail(path, f"{format_path(parts)} is not numeric (it is a {getattr(tp, '__name__', tp)}); "
                           "only integer and number parameters can be randomized")
        valid = _valid_text(f)
        if tp is int and not (float(lo).is_integer() and float(hi).is_integer()):
            ctx.fail(path, f"{format_path(parts)} is an integer: give integer bounds; {valid}")
        flo, fhi = _spec(f).range or (None, None)
        if (flo is not None and lo < flo) or (fhi is not None and hi > fhi):
            ctx.fail(path, f"[{_fmt_num(lo)}, {_fmt_num(hi)}] leaves the valid range of "
                           f"{format_path(parts)}; {valid}")
        if len(parts) == 3 and parts[0] == "workloads" and parts[2] == "interval_ms" and lo < s.tick_ms:
            # the draw is checked again at reset: refuse now, before a run has started
            ctx.fail(path, f"[{_fmt_num(lo)}, {_fmt_num(hi)}]: an interval_ms shorter than tick_ms "
                           f"({_fmt_num(s.tick_ms)} ms) can be drawn; valid: bounds >= tick_ms")


def _check_cross(s: "Scenario", ctx: _Ctx, check_files: bool = True) -> None:
    """Rules that involve more than one field."""
    # Memory fractions: the worst case over the randomize ranges must leave free memory.
    fr = {}
    for name in ("page_cache_frac", "anon_frac", "kernel_frac"):
        fr[name] = getattr(s.memory, name)
        rng = s.randomize.get(f"memory.{name}")
        if rng is not None:
            fr[name] = max(fr[name], rng[1])
    if sum(fr.values()) > MEMORY_FRAC_MAX + 1e-12:
        ctx.fail(("memory",), f"page_cache_frac + anon_frac + kernel_frac = {sum(fr.values()):.3f} "
                              f"(upper ends of randomize ranges included) exceeds {MEMORY_FRAC_MAX}; "
                              "the rest is the initial free memory")
    if s.tick_ms > s.duration_s * 1000.0:
        ctx.fail(("tick_ms",), f"{_fmt_num(s.tick_ms)} ms is longer than the episode "
                               f"(duration_s = {_fmt_num(s.duration_s)} s)")
    if s.traffic and not s.nics:
        ctx.fail(("nics",), "traffic is given but there is no NIC to receive it; add one NIC entry")
    try:
        KernelVersion.parse(s.machine.kernel)
    except ValueError:
        ctx.fail(("machine", "kernel"), f"{s.machine.kernel!r} is not a kernel release; expected e.g. '6.1' or '6.18'")
    if check_files and s.machine.snapshot is not None:
        p = resolve_path(s, s.machine.snapshot)
        _check_contained(s, ctx, ("machine", "snapshot"), s.machine.snapshot, p)
        if not p.is_file():
            ctx.fail(("machine", "snapshot"), f"no such file {s.machine.snapshot!r} (looked in "
                                              f"{search_dirs(s)[0]} and {REPO_ROOT})")
        _check_snapshot_file(s, ctx)
    for i, n in enumerate(s.nics):
        if n.driver == "virtio_net" and n.recycle:
            ctx.fail(("nics", i, "recycle"), "virtio_net (6.1) has no page recycling: its mergeable buffers "
                                             "come from the page-frag allocator; give false or null")
    for i, t in enumerate(s.traffic):
        if t.stop_s is not None and t.stop_s <= t.start_s:
            ctx.fail(("traffic", i, "stop_s"), f"{_fmt_num(t.stop_s)} s is not after start_s "
                                               f"{_fmt_num(t.start_s)} s")
        if t.kind == "replay":
            if t.trace is None:
                ctx.fail(("traffic", i, "trace"), "kind 'replay' needs a trace: a CSV made by scripts/make_trace.py")
            if check_files:
                _check_contained(s, ctx, ("traffic", i, "trace"), t.trace, resolve_path(s, t.trace))
            if check_files and not resolve_path(s, t.trace).is_file():
                ctx.fail(("traffic", i, "trace"), f"no such file {t.trace!r} (looked in "
                                                  f"{search_dirs(s)[0]} and {REPO_ROOT})")
            if check_files:   # read now, not lazily inside a run after the command's checks
                try:
                    load_trace(resolve_path(s, t.trace))
                except ScenarioError as e:
                    ctx.fail(("traffic", i, "trace"), str(e))
    _check_workloads_and_phases(s, ctx)


def _check_contained(s: "Scenario", ctx: _Ctx, key: tuple, rel: str, p: Path) -> None:
    """A file a scenario file (or an episode record) names stays inside that file's folder or the
    shipped configs: a scenario someone hands us cannot make us read any other file on the machine.
    Scenarios built in code (no source) are not restricted."""
    if not s.source:
        return
    from ..paths import CONFIG_DIR
    allowed = [CONFIG_DIR.resolve()]
    src = Path(s.source)
    if src.suffix in (".yaml", ".yml", ".json") or src.is_file():
        allowed.insert(0, src.resolve().parent)
    try:
        real = p.resolve()
    except (OSError, RuntimeError):
        real = None
    if real is None or not any(real.is_relative_to(d) for d in allowed):
        ctx.fail(key, f"{rel!r} is outside {' and '.join(str(_display(str(d))) for d in allowed)}; a scenario's "
                      f"files must be in its own folder or the shipped configs (refused, not read)")


def _check_snapshot_file(s: "Scenario", ctx: _Ctx) -> None:
    """Boot the snapshot's machine once at load time, so a snapshot the machine model refuses
    (unparsable, a negative count, a sysctl the kernel would reject) fails here in one line, not
    inside a run after the command's argument checks."""
    from ..kernel.machine import SysctlError
    from ..kernel.snapshot import SnapshotError
    from .machines import scenario_machine
    try:
        scenario_machine(s)
    except (ScenarioError, SnapshotError, SysctlError, ValueError, TypeError, OverflowError,
            ZeroDivisionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        ctx.fail(("machine", "snapshot"), f"{s.machine.snapshot!r}: {msg}")


RATE_KINDS = ("stream_read", "anon_hog", "churn")   # the kinds whose rate_mib_s a phase's rate replaces

_WORKLOAD_ONLY = {"volume_mib": ("stream_read",), "chunk_pages": RATE_KINDS, "pages_per_burst": ("atomic_alloc",),
                  "interval_ms": ("atomic_alloc",), "hold_ms": ("atomic_alloc",), "shots": ("atomic_alloc",),
                  "gfp": ("atomic_alloc",)}


def _check_workloads_and_phases(s: "Scenario", ctx: _Ctx) -> None:
    """Workload names, kind-specific keys, start/stop times and phases (see workload_times())."""
    names: dict[str, int] = {}
    defaults = WorkloadSpec()
    for i, w in enumerate(s.workloads):
        if w.name is not None:
            if not w.name.strip():
                ctx.fail(("workloads", i, "name"), "empty name; give a label such as 'hog' or leave it out")
            if w.name in names:
                ctx.fail(("workloads", i, "name"), f"{w.name!r} is already the name of workloads[{names[w.name]}]; "
                                                   "names must be unique")
            names[w.name] = i
        for key, kinds in _WORKLOAD_ONLY.items():
            if w.kind not in kinds and getattr(w, key) != getattr(defaults, key):
                ctx.fail(("workloads", i, key), f"only for kind {' or '.join(kinds)} (this workload is {w.kind!r})")
        if w.kind == "atomic_alloc":
            if w.interval_ms > 0 and w.pages_per_burst == 0:
                ctx.fail(("workloads", i, "pages_per_burst"), "interval_ms > 0 needs pages_per_burst >= 1")
            if w.interval_ms == 0 and not w.shots:
                ctx.fail(("workloads", i), "atomic_alloc needs interval_ms > 0 with pages_per_burst, or shots")
            if 0 < w.interval_ms < s.tick_ms:
                # workload_tick runs once a tick: at most one burst per tick (and a period far below
                # the tick would spin catching up)
                ctx.fail(("workloads", i, "interval_ms"), f"{_fmt_num(w.interval_ms)} ms is shorter than tick_ms "
                                                          f"({_fmt_num(s.tick_ms)} ms); valid: 0 (shots only) "
                                                          f"or >= tick_ms")
            elif w.interval_ms == 0 or w.interval_ms >= s.tick_ms:
                _check_bursts_held(w, s.tick_ms, ctx, ("workloads", i))
    def named(n: str, path: tuple) -> "WorkloadSpec":
        if n not in names:
            known = ", ".join(sorted(names)) or "none (give workloads a name)"
            ctx.fail(path, f"no workload named {n!r}; named workloads: {known}")
        return s.workloads[names[n]]
    used: dict[tuple[str, str], int] = {}
    for j, ph in enumerate(s.phases):
        for what in ("start", "stop"):
            for k, n in enumerate(getattr(ph, what)):
                named(n, ("phases", j, what, k))
                if (n, what) in used:
                    ctx.fail(("phases", j, what, k), f"workload {n!r} is already {what}ed by phases[{used[(n, what)]}]; "
                                                     "a workload runs once, in [start_s, stop_s): add a second "
                                                     "workload entry to run it again")
                used[(n, what)] = j
        for n in ph.rate:
            kind = named(n, ("phases", j, "rate", n)).kind
            if kind not in RATE_KINDS:
                ctx.fail(("phases", j, "rate", n), f"workload {n!r} is an {kind}, which has no rate; a rate is "
                                                   f"for {', '.join(RATE_KINDS)}")
    for i, (a, z) in enumerate(workload_times(s)):
        if z is not None and z <= a:
            ctx.fail(("workloads", i, "stop_s"), f"stop at {_fmt_num(z)} s is not after the start at {_fmt_num(a)} s "
                                                 "(phases included)")


def atomic_bursts_held(w: "WorkloadSpec", tick_ms: float) -> int:
    """An upper bound of the bursts an atomic_alloc workload holds at once (each is freed on its
    own timer, in its own slot of the simulator: layout.ATOMIC_SLOTS). A periodic burst fires at
    the first tick at or after k * interval_ms and is freed at the first tick at or after its
    time + hold_ms, so at most floor((hold_ms + tick_ms) / interval_ms) + 1 are held at once; the
    shots add their largest overlap (each held over [at, at + hold_ms + tick_ms))."""
    n = 0
    if w.interval_ms > 0 and w.hold_ms > 0:
        n = int((w.hold_ms + tick_ms) // w.interval_ms) + 1
    ev = sorted([(sh.at_s * 1000.0, 1) for sh in w.shots if sh.hold_ms > 0]
                + [(sh.at_s * 1000.0 + sh.hold_ms + tick_ms, -1) for sh in w.shots if sh.hold_ms > 0],
                key=lambda e: (e[0], e[1]))
    cur = most = 0
    for _, d in ev:
        cur += d
        most = max(most, cur)
    return n + most


def _check_bursts_held(w: "WorkloadSpec", tick_ms: float, ctx: "_Ctx", path: tuple) -> None:
    from .layout import ATOMIC_SLOTS   # (the compiled layout: imported only for an atomic_alloc workload)
    held = atomic_bursts_held(w, tick_ms)
    if held > ATOMIC_SLOTS:
        ctx.fail(path, f"holds up to {held} bursts at once (hold_ms {_fmt_num(w.hold_ms)} / interval_ms "
                       f"{_fmt_num(w.interval_ms)}, plus overlapping shots); the simulator frees each burst on "
                       f"its own timer and holds at most {ATOMIC_SLOTS}: shorten hold_ms or lengthen interval_ms")


def workload_times(s: "Scenario") -> list[tuple[float, float | None]]:
    """Each workload's [start_s, stop_s): its own keys, then overridden by the phases that name it
    (a phase's ``start`` sets start_s = at_s, its ``stop`` sets stop_s = at_s)."""
    out = [(w.start_s, w.stop_s) for w in s.workloads]
    idx = {w.name: i for i, w in enumerate(s.workloads) if w.name is not None}
    for ph in s.phases:
        for n in ph.start:
            if n in idx:
                out[idx[n]] = (ph.at_s, out[idx[n]][1])
        for n in ph.stop:
            if n in idx:
                out[idx[n]] = (out[idx[n]][0], ph.at_s)
    return out


def _line_map(node: yaml.Node | None, path: tuple, out: dict[tuple, int], ctx: _Ctx,
              _seen: set[int] | None = None) -> None:
    """Record the line of every key path and reject duplicate keys (PyYAML keeps the last silently).
    An aliased node (``*anchor``) is walked once: a self-referencing or exponentially nested alias
    would otherwise recurse forever."""
    seen_nodes = set() if _seen is None else _seen
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else repr(k.value)
            p = path + (key,)
            out[p] = k.start_mark.line + 1
            if key in seen:
                ctx.lines = out
                ctx.fail(p, "duplicate key (a YAML mapping may give each key once)")
            seen.add(key)
            _line_map(v, p, out, ctx, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _line_map(v, path + (i,), out, ctx, seen_nodes)


def scenario_from_dict(d: object, source: str | Path = "<dict>", *, _lines: dict | None = None,
                       check_files: bool = True) -> "Scenario":
    """Build and validate a Scenario from plain data (e.g. parsed YAML). Raises ScenarioError."""
    src = str(source)
    ctx = _Ctx(_display(src), _lines)
    if d is None:
        d = {}
    s = _build(Scenario, d, (), ctx)
    if src not in ("<dict>", "") and Path(src).suffix in (".yaml", ".yml") and (
            not isinstance(d, dict) or "name" not in d):
        s.name = Path(src).stem
    s.source = src if src != "<dict>" else ""
    if isinstance(d, dict) and "name" in d:      # a name goes into file names (the best-static cache, plots)
        from ..safefiles import NAME_CHARS, valid_name
        if not valid_name(s.name):
            ctx.fail(("name",), f"{_short(s.name)} is not a valid scenario name; allowed: {NAME_CHARS}, no '..'")
    _check_randomize(s, ctx)
    _check_cross(s, ctx, check_files)
    _check_draw_bounds(s, ctx)
    return s


def _at_bound(s: "Scenario", end: int) -> "Scenario":
    """A copy of ``s`` with every randomize key at the low (``end`` 0) or high (1) end of its range."""
    out = copy.deepcopy(s)
    for key, rng in out.randomize.items():
        parent, attr, _, tp = _resolve_field(out, _parse_key(key))  # type: ignore[misc]
        v = rng[end]
        setattr(parent, attr, int(v) if _split_optional(tp)[0] is int else float(v))
    return out


def _check_draw_bounds(s: "Scenario", ctx: _Ctx) -> None:
    """The cross rules every draw must pass, at the ends of the randomize ranges, at load (not at
    the reset of the machine that draws a bad combination): a start never after its stop (traffic,
    workloads with their phases), an atomic_alloc interval with pages to allocate, and no
    kind-specific workload key randomized on a workload of another kind."""
    if not s.randomize:
        return
    keys = set(s.randomize)
    for i, w in enumerate(s.workloads):
        for key, kinds in _WORKLOAD_ONLY.items():
            if f"workloads.{i}.{key}" in keys and w.kind not in kinds:
                ctx.fail(("randomize", f"workloads.{i}.{key}"),
                         f"{key} is only for kind {' or '.join(kinds)} (workloads[{i}] is {w.kind!r})")
    lo, hi = _at_bound(s, 0), _at_bound(s, 1)
    names = {w.name: i for i, w in enumerate(s.workloads) if w.name is not None}

    def ranged(*cands: str) -> str:
        return ", ".join(k for k in cands if k in keys) or "its keys"

    for i, (a, b) in enumerate(zip(lo.traffic, hi.traffic)):
        # the latest start against the earliest stop (each comes from one key)
        if a.stop_s is not None and a.stop_s <= b.start_s:
            ctx.fail(("randomize", ranged(f"traffic.{i}.start_s", f"traffic.{i}.stop_s")),
                     f"the ranges can draw traffic[{i}]'s stop at {_fmt_num(a.stop_s)} s, not after its start at "
                     f"{_fmt_num(b.start_s)} s; keep every start below every stop")
    t_lo, t_hi = workload_times(lo), workload_times(hi)
    for i, w in enumerate(s.workloads):
        stop, start = t_lo[i][1], t_hi[i][0]
        if stop is not None and stop <= start:
            phases = [f"phases.{j}.at_s" for j, ph in enumerate(s.phases) if w.name in names and w.name in
                      (*ph.start, *ph.stop)]
            ctx.fail(("randomize", ranged(f"workloads.{i}.start_s", f"workloads.{i}.stop_s", *phases)),
                     f"the ranges can draw workloads[{i}]'s stop at {_fmt_num(stop)} s, not after its start at "
                     f"{_fmt_num(start)} s (phases included); keep every start below every stop")
        if w.kind == "atomic_alloc" and hi.workloads[i].interval_ms > 0 and lo.workloads[i].pages_per_burst == 0:
            ctx.fail(("randomize", ranged(f"workloads.{i}.pages_per_burst", f"workloads.{i}.interval_ms")),
                     f"the ranges can draw workloads[{i}] with interval_ms > 0 and pages_per_burst 0; "
                     "valid: pages_per_burst >= 1 whenever interval_ms > 0")
        if w.kind == "atomic_alloc" and lo.workloads[i].interval_ms >= s.tick_ms:
            # the most bursts held at once: the shortest interval with the longest hold
            worst = dataclasses.replace(hi.workloads[i], interval_ms=lo.workloads[i].interval_ms)
            _check_bursts_held(worst, s.tick_ms,
                               ctx, ("randomize", ranged(f"workloads.{i}.hold_ms", f"workloads.{i}.interval_ms")))


def _display(src: str) -> str:
    """A file name for messages: relative to the repo when inside it."""
    try:
        return str(Path(src).resolve().relative_to(REPO_ROOT))
    except (ValueError, OSError):
        return src


def _scenario_file(name_or_path: str | Path) -> Path:
    s = str(name_or_path)
    if not s.strip():
        raise ScenarioError(f"empty scenario name; shipped: {', '.join(list_scenarios())}; "
                            "or give a path to a .yaml file")
    p = Path(s).expanduser()
    if p.suffix in (".yaml", ".yml") or "/" in s or p.exists():
        if not p.is_file():
            what = " (it is a directory)" if p.is_dir() else (" (it is not a regular file)" if p.exists() else "")
            raise ScenarioError(f"{s}: no such scenario file{what}; expected a .yaml file or a shipped name "
                                f"({', '.join(list_scenarios())})")
        return p
    cand = SCENARIO_DIR / f"{s}.yaml"
    if not cand.is_file():
        names = list_scenarios()
        hint = difflib.get_close_matches(s, names, n=1, cutoff=0.4)
        dym = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ScenarioError(f"{_display(str(cand))}: no shipped scenario {s!r}{dym}; "
                            f"shipped: {', '.join(names)}; or give a path to a .yaml file")
    return cand


def load_scenario(name_or_path: str | Path, check_files: bool = True) -> "Scenario":
    """A shipped scenario by name ('incast-pagecache') or a YAML file path, validated; with
    ``check_files=False`` the files it names (snapshot, trace) are not read (the env ids' registration
    at import needs only the duration: an env made from the scenario reads and checks them)."""
    path = _scenario_file(name_or_path)
    disp = _display(str(path))
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SCENARIO_BYTES + 1)
        if len(raw) > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{disp}: larger than {MAX_SCENARIO_BYTES >> 20} MiB; a scenario is a short YAML file")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{disp}: cannot read: {e}") from None
    try:
        loader = _Loader(text)       # a SafeLoader subclass; parsed once: its node tree gives the line
        try:                         # numbers and the data (what yaml.compose and yaml.load each do)
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{disp}:{mark.line + 1}:{mark.column + 1}" if mark else disp
        problem = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise ScenarioError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{disp}: YAML error: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ScenarioError(f"{disp}: YAML nested too deeply; expected a mapping of scenario keys") from None
    except ValueError as e:   # PyYAML's int() of a > 4300-digit number
        raise ScenarioError(f"{disp}: YAML error: {str(e).splitlines()[0]}") from None
    lines: dict[tuple, int] = {}
    _line_map(node, (), lines, _Ctx(disp))
    if data is None:
        raise ScenarioError(f"{disp}: the file is empty (or holds only comments); expected a mapping of scenario "
                            f"keys ({', '.join(_yaml_fields(Scenario))}); write `{{}}` for every default")
    if not isinstance(data, dict):
        raise ScenarioError(f"{disp}:1: (top level): expected a mapping of scenario keys, got {_type_name(data)}")
    return scenario_from_dict(data, source=path.resolve(), _lines=lines, check_files=check_files)


def list_scenarios() -> list[str]:
    """Names of the shipped scenarios (configs/scenarios/*.yaml), sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_to_dict(s: "Scenario") -> dict:
    """Plain data (YAML-ready) for a scenario: loading it back gives an equal Scenario.
    ``source`` is not included (it is not a YAML key)."""
    def conv(o: object) -> object:
        if dataclasses.is_dataclass(o):
            return {f.name: conv(getattr(o, f.name)) for f in dataclasses.fields(o)
                    if not f.metadata.get("internal")}
        if isinstance(o, (list, tuple)):
            return [conv(x) for x in o]
        if isinstance(o, dict):
            return {str(k): conv(v) for k, v in o.items()}
        if isinstance(o, np.generic):
            return o.item()
        return o
    return conv(s)


def validate_scenario(s: "Scenario") -> "Scenario":
    """Validate a Scenario built in code (same checks as a file); returns a validated copy."""
    return scenario_from_dict(scenario_to_dict(s), source=s.source or "<dict>")


def draw_scenario(s: "Scenario", rng: np.random.Generator | int) -> "Scenario":
    """A copy of ``s`` with every ``randomize`` parameter drawn uniformly from its [lo, hi].

    Integer parameters are drawn as integers (both ends included), numbers as floats.
    Keys are drawn in sorted order, so a seed always gives the same scenario. The copy
    keeps ``randomize`` (drawing again from it draws from the same ranges).
    """
    if isinstance(rng, np.random.Generator):
        g = rng
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        g = np.random.default_rng(int(rng))
    else:
        raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")
    out = copy.deepcopy(s)
    ctx = _Ctx(_display(s.source) if s.source else "<scenario>")
    _check_randomize(out, ctx)
    for key in sorted(out.randomize):
        lo, hi = out.randomize[key]
        parent, attr, _, tp = _resolve_field(out, _parse_key(key))  # type: ignore[misc]
        tp, _ = _split_optional(tp)
        if tp is int:
            v: int | float = int(g.integers(int(lo), int(hi), endpoint=True))
        else:
            v = float(g.uniform(lo, hi))
        setattr(parent, attr, v)
    _check_cross(out, ctx, check_files=False)
    return out


def load_trace(path: str | Path) -> np.ndarray:
    """A replay trace (scripts/make_trace.py format): '#' comment lines, a header line
    'packets', then one non-negative integer per interval, one column. Returns float64 packets
    per row. Anything else raises ScenarioError naming the file and line."""
    p = Path(path)
    disp = _display(str(p))
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_TRACE_BYTES + 1)
        if len(raw) > MAX_TRACE_BYTES:
            raise ScenarioError(f"{disp}: trace larger than {MAX_TRACE_BYTES >> 20} MiB; expected a CSV of "
                                f"packets per interval (scripts/make_trace.py)")
        lines = raw.decode("utf-8-sig").splitlines()   # a byte-order mark is dropped
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{disp}: cannot read trace: {e}") from None
    vals: list[int] = []
    header = False
    for n, line in enumerate(lines, 1):
        t = line.split("#", 1)[0].strip()
        if not t:
            continue
        cols = t.split(",")
        if not header:
            if [c.strip() for c in cols] != ["packets"]:
                # the line itself is not shown: a path given as a trace may be any file
                raise ScenarioError(f"{disp}:{n}: trace: not a trace: expected the header line 'packets' "
                                    f"(one column) first")
            header = True
            continue
        if len(cols) != 1:
            raise ScenarioError(f"{disp}:{n}: trace: {t[:60]!r} has {len(cols)} columns; expected one "
                                f"(packets in the interval)")
        if not re.fullmatch(r"[0-9]+", t):
            try:
                v = float(t)
            except ValueError:
                raise ScenarioError(f"{disp}:{n}: trace: {t[:60]!r} is not a number of packets") from None
            if not math.isfinite(v) or v < 0:
                raise ScenarioError(f"{disp}:{n}: trace: {t[:60]!r} is out of range; valid range "
                                    f"0..{MAX_TRACE_PACKETS} packets (an integer)")
            what = "is not written as plain digits" if v.is_integer() else "is not a whole number of packets"
            raise ScenarioError(f"{disp}:{n}: trace: {t[:60]!r} {what}; expected a non-negative integer "
                                f"written in digits (e.g. 1200)")
        if len(t) > 16 or int(t) > MAX_TRACE_PACKETS:
            raise ScenarioError(f"{disp}:{n}: trace: {t[:24]!r} is out of range; valid range "
                                f"0..{MAX_TRACE_PACKETS} packets")
        vals.append(int(t))
    if not vals:
        raise ScenarioError(f"{disp}: trace: no rows (expected 'packets' then one count per interval)")
    return np.asarray(vals, dtype=np.float64)
