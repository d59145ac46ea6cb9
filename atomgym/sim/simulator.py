"""`Simulator`: the Python facade over the batched, compiled per-tick dynamics.

The facade allocates the state arrays of ``layout.STATE``, encodes scenarios into them (one per
machine, sim/encode.py), resets machines from integer seeds, applies knob writes (sim/knobs.py)
and calls the compiled loop (engine.py). Everything per tick happens in compiled code;
``advance(n)`` and ``step(n, ...)`` are one call each.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..kernel.machine import Machine
from ..kernel.pcp import parse_pagesets
from ..kernel.sysctl import SYSCTL_RANGES
from ..kernel.zones import MAX_NR_ZONES, zone_label
from . import layout as L
from .encode import encode_lru, encode_machine, phase_trace_len, workload_trace_len
from .engine import apply_knobs_state, goes_parallel, run_ticks, step_state
from .knobs import KNOB_MI, KNOBS, NKNOBS
from .machines import scenario_machine
from .scenario import Scenario, TrafficSpec, draw_scenario, load_trace, resolve_path
from .tuners import NTPAR, NTS, TUNERS, render_action


_DRAWS: OrderedDict = OrderedDict()   # (id(scenario), seed) -> (scenario, drawn scenario, its machine)
_DRAWS_KEPT = 512
_DRAWS_LOCK = threading.Lock()


def _draw(s: Scenario, seed: int) -> Scenario:
    """A randomised scenario's draw for a machine seed (draw_scenario() from the seed's own stream)."""
    return draw_scenario(s, np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x5CE4]))


def drawn_machine(s: Scenario, seed: int) -> tuple[Scenario, Machine]:
    """A randomised scenario's draw for a machine seed (draw_scenario()) and the machine it boots
    (scenario_machine(); copy it before use), memoised for the last _DRAWS_KEPT (scenario object,
    seed) pairs: an env's machine and its reward shadow reset with the same seed draw the same
    machine, and each draw costs ~0.4 ms of Python. Both are the same objects on a hit: neither is
    changed after it is made."""
    key = (id(s), seed)
    with _DRAWS_LOCK:
        hit = _DRAWS.get(key)
        if hit is not None and hit[0] is s:
            _DRAWS.move_to_end(key)
            return hit[1], hit[2]
    d = _draw(s, seed)
    m = scenario_machine(d)
    with _DRAWS_LOCK:
        _DRAWS[key] = (s, d, m)    # (s held: its id is not reused while the entry lives)
        while len(_DRAWS) > _DRAWS_KEPT:
            _DRAWS.popitem(last=False)
    return d, m


class Simulator:
    """A batch of ``n_machines`` independent simulated machines (see docs/simulator.md)."""

    def __init__(self, scenario: Scenario | Sequence[Scenario], n_machines: int = 1, tuner: str | Sequence[str] = "none",
                 tuner_params: dict | Sequence[dict] | None = None,
                 machines: Machine | Sequence[Machine] | None = None, parallel: bool | None = None) -> None:
        if isinstance(scenario, Scenario):
            self.scenarios = [scenario] * n_machines
        else:
            self.scenarios = list(scenario)
            if n_machines not in (1, len(self.scenarios)) and len(self.scenarios) != n_machines:
                raise ValueError(f"{len(self.scenarios)} scenarios for n_machines={n_machines}")
            n_machines = len(self.scenarios)
        if n_machines < 1:
            raise ValueError("n_machines must be >= 1")
        from .. import compile_split        # a cold compile of the engine gets a helper process
        compile_split.install()
        self.B = n_machines
        self._tuner_names = [tuner] * self.B if isinstance(tuner, str) else list(tuner)
        for t in self._tuner_names:
            if t not in TUNERS:
                raise ValueError(f"unknown tuner {t!r}; valid: {', '.join(TUNERS)}")
        if tuner_params is None or isinstance(tuner_params, dict):
            self._tuner_params = [dict(tuner_params or {})] * self.B
        else:
            self._tuner_params = list(tuner_params)
        if machines is not None and isinstance(machines, Machine):
            machines = [machines] * self.B
        self._machine_override = list(machines) if machines is not None else None
        self.parallel = parallel
        self._machine_cache: dict[int, Machine] = {}
        self._trace_cache: dict[str, np.ndarray] = {}
        self._pageset_cache: dict[str, dict] = {}
        self._machines: list[Machine | None] = [None] * self.B
        # dimensions: the largest over the batch (and over randomize draws: nodes/NICs/... are not randomizable)
        sc0 = self.scenarios
        maxnodes = 1
        for i, s in enumerate(sc0):
            m = self._base_machine(i, s)
            maxnodes = max(maxnodes, m.nr_nodes)
        self.n_nodes = maxnodes
        self.n_zones = Z = maxnodes * MAX_NR_ZONES
        NN = max(1, max(len(s.nics) for s in sc0))
        NT = max(1, max(len(s.traffic) for s in sc0))
        NW = max(1, max(len(s.workloads) for s in sc0))
        TL = 1
        for s in sc0:
            n = sum(len(self._load_trace(s, t)) for t in s.traffic if t.kind == "replay")
            n += phase_trace_len(s) + workload_trace_len(s)
            TL = max(TL, n)
        B = self.B
        self.tick_ms = float(sc0[0].tick_ms)
        self.zone_names = tuple(zone_label(z) for z in range(Z))
        self.state = L.allocate({"B": B, "Z": Z, "N": maxnodes, "NN": NN, "NT": NT, "NW": NW, "TL": TL,
                                 "NTS": NTS, "NTPAR": NTPAR})
        for name, arr in zip(L.STATE_FIELDS, self.state):
            setattr(self, "_" + name, arr)
        self._arrays = L.Arrays(self.state)
        self._interval_prev = np.zeros((B, L.NC))
        self._no_knobs: tuple[np.ndarray, ...] | None = None   # step()'s arguments without knob writes
        self._advance_args: tuple[np.ndarray, ...] | None = None   # advance()'s (the same + a scratch prev)
        self.counter_names = L.COUNTER_NAMES
        self._cidx = {n: i for i, n in enumerate(L.COUNTER_NAMES)}
        self.reset(np.arange(B, dtype=np.int64))

    # ---- construction helpers ------------------------------------------------------------
    def _base_machine(self, i: int, s: Scenario) -> Machine:
        if self._machine_override is not None:
            return self._machine_override[i]
        key = id(s)
        if key not in self._machine_cache:
            self._machine_cache[key] = scenario_machine(s)
        return self._machine_cache[key]

    def _load_trace(self, s: Scenario, t: TrafficSpec) -> np.ndarray:
        if t.kind != "replay" or t.trace is None:
            return np.zeros(0)
        p = str(resolve_path(s, t.trace))
        if p not in self._trace_cache:
            self._trace_cache[p] = load_trace(p)
        return self._trace_cache[p]

    def _pagesets(self, s: Scenario) -> dict:
        """The per-zone pagesets of the scenario's snapshot, if it has one (kernel/pcp.py)."""
        if s.machine.snapshot is None:
            return {}
        p = str(resolve_path(s, s.machine.snapshot))
        if p not in self._pageset_cache:
            try:
                text = Path(p).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            self._pageset_cache[p] = parse_pagesets(text)
        return self._pageset_cache[p]

    def _init_machine(self, b: int, s: Scenario, seed: int) -> None:
        """Machine b at reset: the scenario (a randomised one drawn from the seed) booted on its
        kernel model, encoded into the state (sim/encode.py)."""
        if s.randomize and self._machine_override is not None:
            s = _draw(s, seed)
            m = self._machine_override[b].copy()
        elif s.randomize:
            s, m = drawn_machine(s, int(seed))
            m = m.copy()
        else:
            m = self._base_machine(b, s).copy()
        self._machines[b] = m
        encode_machine(self._arrays, b, s, m, seed, self._tuner_names[b], self._tuner_params[b],
                       self._load_trace, self._pagesets(s))

    # ---- API ---------------------------------------------------------------------------------
    def reset(self, seeds, mask=None) -> None:
        """Reset machines (all, or where ``mask`` is True) from integer seeds (B,)."""
        seeds = np.broadcast_to(np.asarray(seeds, dtype=np.int64), (self.B,))
        mask = np.ones(self.B, bool) if mask is None else np.asarray(mask, bool)
        for b in np.flatnonzero(mask):
            self._init_machine(int(b), self.scenarios[b], int(seeds[b]))

    def advance(self, n_ticks: int, mask=None) -> None:
        """Run every machine (or those in ``mask``) ``n_ticks`` ticks in the compiled loop."""
        m = np.ones(self.B, np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
        if self._advance_args is None:
            self._advance_args = self._knob_args({}, None, None, None, "advance")[:3] + (np.zeros((self.B, L.NC)),)
        run_ticks(self.state, int(n_ticks), m, self.parallel, self._advance_args)

    def goes_parallel(self, n_ticks: int, n_active: int | None = None) -> bool:
        """Whether advance() of ``n_active`` machines (default: all) for ``n_ticks`` runs them in
        parallel (engine.goes_parallel(); step() never does)."""
        return goes_parallel(self.B, self.B if n_active is None else n_active, n_ticks, self.parallel)

    def _knob_args(self, sysctls: dict, boost_pages, boost_watermark, mask, caller: str) -> tuple[np.ndarray, ...]:
        """The arguments of the compiled knob writes (engine.apply_knobs_state / step_state) from
        set_knobs()/step()'s: (B, NKNOBS) int64 sysctl values in knobs.KNOBS order (-1:
        unchanged), checked against kernel/sysctl.py's SYSCTL_RANGES, (B, Z) boosts and the (B,)
        bool mask (default all). Without any knob write, the "unchanged" arrays are built once
        (read only)."""
        unknown = sorted(set(sysctls) - set(KNOBS))
        if unknown:
            raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}; "
                            f"sysctls: {', '.join(KNOBS)}")
        m = np.ones(self.B, np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
        if boost_pages is None and boost_watermark is None and all(x is None for x in sysctls.values()):
            if self._no_knobs is None:
                B, Z = self.B, self.n_zones
                self._no_knobs = (np.full((B, NKNOBS), -1, np.int64), np.zeros((B, Z), np.int64),
                                  np.zeros((B, Z), np.int64))
            return self._no_knobs + (m,)
        B, Z = self.B, self.n_zones
        knobs = np.full((B, NKNOBS), -1, np.int64)
        for k, name in enumerate(KNOBS):
            x = sysctls.get(name)
            if x is None:
                continue
            lo, hi = SYSCTL_RANGES[name]
            a = np.broadcast_to(np.asarray(x, dtype=np.int64), (B,))
            bad = (a != -1) & ((a < lo) | (a > hi))
            if bad.any():
                raise ValueError(f"{name}: {int(a[bad][0])} is out of range; valid range {lo}..{hi} (or -1: unchanged)")
            knobs[:, k] = a
        boosts = tuple(np.zeros((B, Z), np.int64) if x is None else np.broadcast_to(
            np.asarray(x, np.int64), (B, Z)).copy() for x in (boost_pages, boost_watermark))
        return (knobs,) + boosts + (m,)

    def set_knobs(self, boost_pages=None, boost_watermark=None, mask=None, **sysctls) -> None:
        """Knob writes with sysctl semantics, for every machine or those in ``mask``: each sysctl
        of knobs.KNOBS (kernel/sysctl.py SYSCTLS: ``min_free_kbytes=``,
        ``watermark_scale_factor=``, ``watermark_boost_factor=``) as a keyword argument, (B,) or a
        scalar, -1 entries unchanged, written in knobs.KNOB_WRITE_ORDER (the store-only sysctls such
        as watermark_boost_factor, then watermark_scale_factor, min_free_kbytes), then the boosts
        (sim/knobs.py).
        ``boost_pages`` (B, Z): raise a zone's boost by N pages; ``boost_watermark`` (B, Z): call
        the kernel's boost_watermark() that many times. Values are validated like the sysctl
        handlers (ValueError naming the knob and its range)."""
        apply_knobs_state(self.state, *self._knob_args(sysctls, boost_pages, boost_watermark, mask, "set_knobs"))

    def step(self, n_ticks: int, boost_pages=None, boost_watermark=None, mask=None, prev: np.ndarray | None = None,
             **sysctls) -> np.ndarray:
        """One agent step in one compiled call (engine.step_batch): for every machine in ``mask``
        (default all), the knob writes of :meth:`set_knobs` (same arguments and checks), then the
        start of a measurement interval (``prev`` = the counters now; the ``min_free_seen``
        counter = buddy free pages now, so it ends as the interval's lowest), then ``n_ticks``
        ticks, machine after machine (never in parallel). Bit for bit the same as set_knobs() +
        advance(). ``prev`` (B, NC) float64 receives the interval's starting counters (default:
        a buffer of this Simulator); the interval's increments are ``counters - prev``.
        Returns ``prev``.

        From compiled code (the envs' fused step), call ``engine.step_state(sim.state, ...)``
        with the arrays this method builds."""
        knobs, bp, bw, m = self._knob_args(sysctls, boost_pages, boost_watermark, mask, "step")
        if prev is None:
            prev = self._interval_prev
        elif prev.shape != (self.B, L.NC) or prev.dtype != np.float64:
            raise ValueError(f"step(): prev must be a ({self.B}, {L.NC}) float64 array, not {prev.shape} {prev.dtype}")
        step_state(self.state, knobs, bp, bw, m, int(n_ticks), prev, True)
        return prev

    # ---- views ---------------------------------------------------------------------------------
    @property
    def counters(self) -> np.ndarray:
        return self._ctr

    def counter(self, name: str) -> np.ndarray:
        if name not in self._cidx:
            raise KeyError(f"unknown counter {name!r}; valid: {', '.join(self.counter_names)}")
        return self._ctr[:, self._cidx[name]]

    def counter_dict(self, b: int = 0) -> dict[str, float]:
        return {n: float(self._ctr[b, i]) for i, n in enumerate(self.counter_names)}

    @property
    def free(self) -> np.ndarray:
        """Buddy free pages per zone (NR_FREE_PAGES; per-CPU list pages not included)."""
        return self._zs[:, :, L.ZF_FREE]

    @property
    def pcp(self) -> np.ndarray:
        return self._zs[:, :, L.ZF_PCP]

    def sync_lru(self) -> None:
        """Rebuild every node's LRU (sim/lru.py) from the zones' page cache, as at reset: for
        code that writes ``zone_state``'s page cache directly (tests)."""
        for b in range(self.B):
            encode_lru(self._arrays, b, self.scenarios[b].memory.page_cache_age)

    @property
    def zone_state(self) -> np.ndarray:
        """(B, Z, NZF) dynamic zone state (layout.ZF_*)."""
        return self._zs

    @property
    def wmark(self) -> np.ndarray:
        return self._wmark

    @property
    def boost(self) -> np.ndarray:
        return self._boost

    @property
    def reserve(self) -> np.ndarray:
        return self._reserve

    @property
    def managed(self) -> np.ndarray:
        return self._managed

    def sysctl(self, name: str) -> np.ndarray:
        """(B,) the current value of sysctl ``name`` (knobs.KNOBS) on every machine (a view)."""
        if name not in KNOBS:
            raise KeyError(f"unknown sysctl {name!r}; valid: {', '.join(KNOBS)}")
        return self._mi[:, KNOB_MI[KNOBS.index(name)]]

    @property
    def min_free_kbytes(self) -> np.ndarray:
        return self.sysctl("min_free_kbytes")

    @property
    def watermark_scale_factor(self) -> np.ndarray:
        return self.sysctl("watermark_scale_factor")

    @property
    def watermark_boost_factor(self) -> np.ndarray:
        return self.sysctl("watermark_boost_factor")

    @property
    def reclaimable(self) -> np.ndarray:
        r = self._zs[:, :, L.ZF_CACHE].copy()
        r += self._zs[:, :, L.ZF_ANON] * (self._mi[:, L.MI_SWAP, None] != 0)
        return r

    @property
    def kswapd_awake(self) -> np.ndarray:
        st = self._nd[:, :, L.ND_STATE]
        return (st == L.KS_WAKING) | (st == L.KS_RUN)

    @property
    def kswapd_state(self) -> np.ndarray:
        return self._nd[:, :, L.ND_STATE].astype(np.int64)

    @property
    def terminated(self) -> np.ndarray:
        return self._mi[:, L.MI_TERMINATED] != 0

    @property
    def t_ms(self) -> np.ndarray:
        """(B,) simulated time since reset, ms (a view: writing it moves the clock)."""
        return self._mr[:, L.MR_T_MS]

    @property
    def tuner_state(self) -> np.ndarray:
        """(B, NTS) the in-kernel tuners' state rows (offsets in sim/tuners.py)."""
        return self._ts

    @property
    def nic_pages(self) -> np.ndarray:
        """(B, NICs, Z) pages each NIC holds (rings, pending, socket queues), per zone."""
        return self._nz

    @property
    def workload_anon_pages(self) -> np.ndarray:
        """(B, workloads, Z) anonymous pages each memory workload holds, per zone."""
        return self._wz

    def field(self, name: str) -> np.ndarray:
        """The state array ``name`` of layout.STATE (the array itself, never rebound: compiled
        callers and views may hold it)."""
        if name not in L.STATE_INDEX:
            raise KeyError(f"unknown state field {name!r}; valid: {', '.join(L.STATE_FIELDS)}")
        return self.state[L.STATE_INDEX[name]]

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.state))

    def snapshot(self) -> dict:
        """A copy of the whole batch state (for pickling an env); restore() puts it back."""
        return {"state": [a.copy() for a in self.state], "machines": self._machines}

    def restore(self, snap: dict) -> None:
        """Put back a snapshot() of a Simulator built from the same scenarios (in place: the state
        arrays are never rebound, compiled callers may hold them)."""
        for dst, src in zip(self.state, snap["state"]):
            dst[...] = src
        self._machines = snap["machines"]

    def copy_machines(self, src: "Simulator", mask) -> None:
        """The machines in ``mask`` become copies of ``src``'s (a Simulator built from the same
        scenarios): every state array's row and the booted machine; the rest is untouched."""
        m = np.asarray(mask, bool)
        for dst, s in zip(self.state, src.state):
            dst[m] = s[m]
        for b in np.flatnonzero(m):
            self._machines[b] = src._machines[b]

    def machine(self, i: int) -> Machine:
        """Static view of machine i now (current sysctls, watermarks, boosts)."""
        m = self._machines[i].copy()
        zm = m.managed.size
        for k, name in enumerate(KNOBS):   # Machine's attribute of each sysctl has its name
            setattr(m, name, int(self._mi[i, KNOB_MI[k]]))
        m.user_min_free_kbytes = int(self._mi[i, L.MI_USER_MIN_FREE_KBYTES])
        m.wmark[:] = self._wmark[i, :zm]
        m.boost[:] = self._boost[i, :zm]
        m.reserve[:] = self._reserve[i, :zm]
        return m

    def tuner_actions(self, i: int) -> list[str]:
        """The last (up to 32) tuner actions of machine i as one-line reasons, oldest first."""
        n = int(self._mi[i, L.MI_RING_N])
        k = min(n, L.TUNER_RING)
        out = []
        for j in range(n - k, n):
            out.append(render_action(self._ring[i, j % L.TUNER_RING], self.zone_names))
        return out
