"""Baseline policies for atomgym, selected by name: ``get(name)``, ``names()``.

Three kinds (docs/baselines.md lists each with its source and constants):

* **in-kernel** (``v1-double`` ... ``v10-acked``): the linux-mm series' tuners run inside the
  simulator's compiled loop (atomgym/sim/tuners.py); the policy only names the simulator tuner.
* **static**: one knob write at reset (``kernel-default``, ``tuned-hpc``, ``three-percent``,
  ``best-static``).
* **userspace controllers** (``proactive``, ``wsf-raise``, ``psi``): act every ``interval_ms`` on
  what a userspace daemon can read (/proc/zoneinfo, vmstat counters).

Every policy has the interface of the one evaluation path (agents/episodes.py: ``tuner``,
``interval_ms``, ``reset(sim, seeds)``, ``act(sim, last) -> list of one-line reasons``) and SB3's
``predict(observation, state=None, episode_start=None, deterministic=True) -> (action, state)``,
where ``observation`` is the dict ``observe(sim)`` returns (batched arrays, keys ``OBS_KEYS``)
and ``action`` an int64 array (B, 2) of [min_free_kbytes, watermark_scale_factor] writes, -1 =
unchanged. (agents/baselines/env.py runs them on the Gymnasium env's observations and actions.)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from atomgym.envs.cost import TERM_BY_NAME
from atomgym.envs.psi import cap_kb, psi_step
from atomgym.envs.spaces import GATE_COUNTERS
from atomgym.kernel.zones import PAGE_KB

OBS_KEYS = ("t_ms", "min_free_kbytes", "watermark_scale_factor", "total_pages", "free_pages", "min_pages",
            "low_pages", "high_pages", "atomic_fail", "fail_kernel", "drops", "gate_drops", "default_min_free_kbytes")
ACTION_KNOBS = ("min_free_kbytes", "watermark_scale_factor")
DROP_COUNTERS = TERM_BY_NAME["drops"].counters   # what the cost counts as a dropped packet
GATE_DROPS = GATE_COUNTERS["drops"]              # what opens the env's gate="drops" (and psi-gated)


def observe(sim, default_mf: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """What a userspace daemon reads, batched over the simulator's machines (cumulative counters)."""
    w = sim.wmark
    ctr = sim.counter
    return {
        "t_ms": sim.t_ms.astype(np.float64),
        "min_free_kbytes": sim.min_free_kbytes.astype(np.int64),
        "watermark_scale_factor": sim.watermark_scale_factor.astype(np.int64),
        "total_pages": sim.managed.sum(axis=1).astype(np.int64),
        "free_pages": sim.free.sum(axis=1).astype(np.int64),
        "min_pages": w[:, :, 0].sum(axis=1).astype(np.int64),
        "low_pages": (w[:, :, 1] + sim.boost).sum(axis=1).astype(np.int64),
        "high_pages": (w[:, :, 2] + sim.boost).sum(axis=1).astype(np.int64),
        "atomic_fail": ctr("atomic_fail").copy(),
        "fail_kernel": ctr("fail_kernel").copy(),
        "drops": sum(ctr(c) for c in DROP_COUNTERS),
        "gate_drops": sum(ctr(c) for c in GATE_DROPS),
        "default_min_free_kbytes": (sim.min_free_kbytes.astype(np.int64) if default_mf is None else default_mf),
    }


class Baseline:
    """A policy: a simulator tuner name plus optional userspace actions every ``interval_ms``."""

    name = "base"
    kind = "static"
    source = ""
    mechanism = ""
    tuner = "none"
    interval_ms = 1000.0

    def __init__(self) -> None:
        self._default_mf: np.ndarray | None = None

    # -- internal interface (evaluator) --------------------------------------------------------
    def reset(self, sim, seeds: np.ndarray | None = None) -> list[str]:
        """Called after ``sim.reset`` (the decision at t = 0); may write knobs. Returns one-line
        reasons."""
        self._default_mf = sim.min_free_kbytes.astype(np.int64).copy()
        self._state = self.initial_state(observe(sim, self._default_mf))
        return self.act(sim, first=True)

    def act(self, sim, first: bool = False, last: bool = False) -> list[str]:
        """Decide on the current state and apply the knob writes; returns one-line reasons. A
        baseline also decides after the last interval (``last``): its writes there count among
        the episode's knob changes, as they always have."""
        obs = observe(sim, self._default_mf)
        action, reasons = self.decide(obs, self._state, first)
        mf, wsf = action[:, 0], action[:, 1]
        if (mf >= 0).any() or (wsf >= 0).any():
            sim.set_knobs(min_free_kbytes=mf if (mf >= 0).any() else None,
                          watermark_scale_factor=wsf if (wsf >= 0).any() else None)
        return [f"machine {i}: {r}" for i, r in enumerate(reasons) if r]

    # -- SB3 interface ---------------------------------------------------------------------------
    def predict(self, observation: dict[str, Any], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        obs = {k: np.atleast_1d(np.asarray(v)) for k, v in observation.items()}
        B = obs["min_free_kbytes"].shape[0]
        es = (np.zeros(B, bool) if episode_start is None
              else np.broadcast_to(np.asarray(episode_start, bool), (B,)).copy())
        first = state is None or bool(es.all())
        if state is None:
            state = self.initial_state(obs)
        elif es.any():
            fresh = self.initial_state(obs)
            for k in state:
                state[k][es] = fresh[k][es]
        action, _ = self.decide(obs, state, first=first)
        return action, state

    # -- policy logic ----------------------------------------------------------------------------
    def initial_state(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def decide(self, obs, state, first: bool) -> tuple[np.ndarray, list[str]]:
        B = obs["min_free_kbytes"].shape[0]
        return np.full((B, 2), -1, np.int64), [""] * B


class KernelTuner(Baseline):
    """A patch-series version running inside the simulator (atomgym/sim/tuners.py)."""

    kind = "in-kernel"
    interval_ms = 0.0

    def __init__(self, name: str, source: str, mechanism: str) -> None:
        super().__init__()
        self.name = self.tuner = name
        self.source, self.mechanism = source, mechanism


class Static(Baseline):
    """Write min_free_kbytes (and watermark_scale_factor) once at reset."""

    interval_ms = 0.0

    def __init__(self, name: str, source: str, mechanism: str, mf_kb=None, ram_frac=None, wsf=None,
                 boot_mult=None) -> None:
        super().__init__()
        self.name, self.source, self.mechanism = name, source, mechanism
        self.mf_kb, self.ram_frac, self.wsf, self.boot_mult = mf_kb, ram_frac, wsf, boot_mult

    def decide(self, obs, state, first):
        B = obs["min_free_kbytes"].shape[0]
        a = np.full((B, 2), -1, np.int64)
        if not first:
            return a, [""] * B
        if self.mf_kb is not None:
            a[:, 0] = self.mf_kb
        elif self.ram_frac is not None:
            a[:, 0] = (obs["total_pages"] * PAGE_KB * self.ram_frac).astype(np.int64)
        elif self.boot_mult is not None:    # the value at reset is the boot value (no write before)
            a[:, 0] = (obs["min_free_kbytes"] * self.boot_mult).astype(np.int64)
        if self.wsf is not None:
            a[:, 1] = self.wsf
        if (a < 0).all():
            return a, [""] * B
        return a, [f"{self._what()}min_free_kbytes -> {a[i, 0] if a[i, 0] >= 0 else 'unchanged'}"
                   f", watermark_scale_factor -> {a[i, 1] if a[i, 1] >= 0 else 'unchanged'}" for i in range(B)]

    def _what(self) -> str:
        """The head of an action's reason."""
        return f"{self.name}: "


class Proactive(Baseline):
    """Matthew Wilcox's review of v1: raise min_free_kbytes by 15 % (the middle of his 10-20 %)
    whenever free memory comes within 10 % of the current limit (free <= 1.1 x sum of min
    watermarks), before any failure; capped at 3 % of RAM; no undo."""

    kind = "userspace"
    name = "proactive"
    source = "M. Wilcox, review of v1 (linux-mm, Jan 2026)"
    mechanism = "free <= 1.1 x min: min_free_kbytes += 15 % (cap 3 % RAM), checked every 100 ms"
    interval_ms = 100.0
    NEAR, STEP, CAP = 0.10, 0.15, 0.03

    def decide(self, obs, state, first):
        B = obs["min_free_kbytes"].shape[0]
        a = np.full((B, 2), -1, np.int64)
        reasons = [""] * B
        cap = (obs["total_pages"] * PAGE_KB * self.CAP).astype(np.int64)
        near = obs["free_pages"] <= (1.0 + self.NEAR) * obs["min_pages"]
        for i in np.nonzero(near)[0]:
            mf = int(obs["min_free_kbytes"][i])
            new = min(int(mf * (1.0 + self.STEP)), int(cap[i]))
            if new > mf:
                a[i, 0] = new
                reasons[i] = (f"proactive: free {obs['free_pages'][i]} pages within 10 % of min "
                              f"{obs['min_pages'][i]}; min_free_kbytes {mf} -> {new} kB")
        return a, reasons


class WsfRaise(Baseline):
    """Lance Yang's / Michal Hocko's alternative: raise watermark_scale_factor (the low-high gap,
    i.e. how early kswapd starts) instead of min: on atomic failures in the last second
    wsf = min(2 x wsf, 1000); after 60 s without failures, wsf -= wsf/10 down to the boot value."""

    kind = "userspace"
    name = "wsf-raise"
    source = "L. Yang / M. Hocko, review of v2-v3 (linux-mm, Jan-Feb 2026)"
    mechanism = "failures in the last 1 s: wsf x2 (cap 1000); 60 s quiet: wsf -10 % (floor boot value)"
    interval_ms = 1000.0
    CAP, QUIET_MS = 1000, 60000.0

    def initial_state(self, obs):
        return {"last_fail": obs["atomic_fail"].copy(), "quiet_since": obs["t_ms"].copy(),
                "boot_wsf": obs["watermark_scale_factor"].copy()}

    def decide(self, obs, state, first):
        B = obs["min_free_kbytes"].shape[0]
        a = np.full((B, 2), -1, np.int64)
        reasons = [""] * B
        d = obs["atomic_fail"] - state["last_fail"]
        state["last_fail"] = obs["atomic_fail"].copy()
        for i in range(B):
            w = int(obs["watermark_scale_factor"][i])
            if d[i] > 0:
                state["quiet_since"][i] = obs["t_ms"][i]
                new = min(2 * w, self.CAP)
                if new > w:
                    a[i, 1] = new
                    reasons[i] = f"wsf-raise: {int(d[i])} atomic failures in 1 s; watermark_scale_factor {w} -> {new}"
            elif obs["t_ms"][i] - state["quiet_since"][i] >= self.QUIET_MS and w > state["boot_wsf"][i]:
                new = max(w - w // 10, int(state["boot_wsf"][i]))
                a[i, 1] = new
                state["quiet_since"][i] = obs["t_ms"][i]
                reasons[i] = f"wsf-raise: 60 s without atomic failures; watermark_scale_factor {w} -> {new}"
        return a, reasons


class Psi(Baseline):
    """A senpai-like feedback controller: pressure p = atomic failures + dropped packets per
    second. p above the target (0): back off, min_free_kbytes x (1 + min(0.5, 0.05 log2(1+p)))
    (bounded multiplicative increase); p at target for 10 s: probe down by 2 % (x 0.98);
    bounded to [boot value, 3 % of RAM]."""

    kind = "userspace"
    name = "psi"
    source = "Facebook senpai (2019) shape: bounded multiplicative probe/back-off"
    mechanism = "pressure > 0: mf x (1 + min(0.5, 0.05 log2(1+p))); 10 s at 0: mf x 0.98; [boot, 3 % RAM]"
    interval_ms = 1000.0   # the rule and its constants: envs/psi.py

    def _pressure(self, obs) -> np.ndarray:
        """The cumulative count whose per-second increase is the pressure."""
        return obs["atomic_fail"] + obs["drops"]

    def initial_state(self, obs):
        return {"last": self._pressure(obs), "quiet_since": obs["t_ms"].copy()}

    def decide(self, obs, state, first):
        B = obs["min_free_kbytes"].shape[0]
        a = np.full((B, 2), -1, np.int64)
        reasons = [""] * B
        cur = self._pressure(obs)
        p = cur - state["last"]
        state["last"] = cur.copy()
        cap = cap_kb(obs["total_pages"])
        mf = obs["min_free_kbytes"].astype(np.int64)
        floor = obs["default_min_free_kbytes"].astype(np.int64)
        new, write, up = psi_step(mf, p, np.asarray(obs["t_ms"], np.float64), state["quiet_since"], floor, cap)
        a[write, 0] = new[write]
        for i in np.flatnonzero(write):
            reasons[i] = (f"{self.name}: pressure {int(p[i])}/s above target; min_free_kbytes {mf[i]} -> {new[i]} kB"
                          if up[i] else f"{self.name}: no pressure for 10 s; probe min_free_kbytes {mf[i]} -> {new[i]} kB")
        return a, reasons


class PsiDrops(Psi):
    """psi with the harm as its pressure: p = dropped packets per second only (ring, socket,
    pfmemalloc: what the cost charges). A failed atomic refill that the next NAPI poll retries
    loses nothing and moves nothing; the same bounded back-off, probe and bounds as psi."""

    name = "psi-drops"
    source = "senpai shape, pressure = the harm the cost charges (this repository)"
    mechanism = "drops > 0: mf x (1 + min(0.5, 0.05 log2(1+p))); 10 s at 0: mf x 0.98; [boot, 3 % RAM]"

    def _pressure(self, obs) -> np.ndarray:
        return obs["drops"].copy()


class PsiGated(Psi):
    """psi behind the env's gate (``gate="drops"``, envs/spaces.GATE_COUNTERS): the boot setting,
    untouched, until the machine's first dropped packet a reserve could have saved (``rx_missed``,
    ``pfmemalloc_drop``; not ``rcvbuf_drop``, a slow application); from the decision after it, psi
    (its pressure counted all along). The do-no-harm structure of the gated agents without learning."""

    name = "psi-gated"
    source = "senpai shape behind the gate (this repository)"
    mechanism = "nothing until the first rx_missed/pfmemalloc drop; then psi"

    def initial_state(self, obs):
        return {**super().initial_state(obs), "open": obs["gate_drops"] > 0}

    def decide(self, obs, state, first):
        a, reasons = super().decide(obs, state, first)
        state["open"] = state["open"] | (obs["gate_drops"] > 0)   # as Core.hold: this decision acts
        a[~state["open"]] = -1
        return a, [r if o else "" for r, o in zip(reasons, state["open"])]


class BestStatic(Static):
    """The best constant (min_free_kbytes, watermark_scale_factor) for a scenario, found by the
    evaluator's sweep (agents.oracle.best_static) on the evaluation seeds; set per scenario
    with ``configure(mf_kb, wsf)`` before use."""

    def __init__(self) -> None:
        super().__init__("best-static", "sweep (this repository)", "grid sweep of min_free_kbytes x "
                         "watermark_scale_factor per scenario, same seeds and score; the best written at boot")
        self.needs_sweep = True

    def configure(self, mf_kb: int | None, wsf: int | None) -> "BestStatic":
        self.mf_kb, self.wsf = mf_kb, wsf
        return self


class BestStaticTrain(Static):
    """The one grid setting (agents.oracle.GRID_MF x GRID_WSF, machine-relative) with the best mean
    score over the training suite (agents.oracle.fleet_static), applied unchanged to every machine:
    what an operator could roll out knowing only the training machines. ``configure(mf, wsf)``
    with the grid point before use."""

    def __init__(self) -> None:
        super().__init__("best-static-train", "sweep on the training fleet, suite:fleet-train (this repository)",
                         "the grid setting with the best mean score on the training split, written at boot")
        self.point: tuple[object, int] = ("boot", -1)

    def configure(self, mf, wsf: int) -> "BestStaticTrain":
        # a grid point as Static's fields: "x2" the boot value doubled, a float a fraction of RAM,
        # an integer kB, "boot" and wsf -1 the kernel's own (no write)
        self.point = (mf, int(wsf))
        self.mf_kb = self.ram_frac = self.boot_mult = None
        if mf == "x2":
            self.boot_mult = 2
        elif isinstance(mf, float):
            self.ram_frac = mf
        elif mf != "boot":
            self.mf_kb = int(mf)
        self.wsf = int(wsf) if int(wsf) >= 0 else None
        return self

    def _what(self) -> str:
        mf, wsf = self.point
        return f"{self.name}: grid point ({mf}, wsf {'kernel' if wsf < 0 else wsf}): "


def _registry() -> dict[str, Any]:
    k = KernelTuner
    return {
        "kernel-default": lambda: Static("kernel-default", "kernel (4 sqrt(lowmem kB), or THP's recommendation)",
                                         "no write: the kernel's computed value"),
        "tuned-hpc": lambda: Static("tuned-hpc", "TuneD hpc-compute profile", "vm.min_free_kbytes = 135168",
                                    mf_kb=135168),
        "three-percent": lambda: Static("three-percent", "vendor advice for database hosts",
                                        "vm.min_free_kbytes = 3 % of RAM", ram_frac=0.03),
        "double-boot": lambda: Static("double-boot", "blind raise (operators' rule of thumb)",
                                      "vm.min_free_kbytes = 2 x the boot value", boot_mult=2),
        "one-percent": lambda: Static("one-percent", "blind raise (series v1's cap as a static setting)",
                                      "vm.min_free_kbytes = 1 % of RAM", ram_frac=0.01),
        "best-static": BestStatic,
        "best-static-train": BestStaticTrain,
        "v1-double": lambda: k("v1-double", "series v1 (linux-mm, Jan 2026)",
                               "order-0 failure (gfp & GFP_ATOMIC): min_free_kbytes x2, cap 1 % RAM; no undo"),
        "v2-grow-decay": lambda: k("v2-grow-decay", "series v2 (linux-mm, Jan 2026)",
                                   "failure: mf + mf/2 (cap 1 % RAM), 10 s global debounce; -5 % every 300 s "
                                   "down to 1.2 x boot"),
        "v3-boost": lambda: k("v3-boost", "series v3 (linux-mm, Jan-Feb 2026)",
                              "failure: boost_watermark() on every zonelist zone, 10 s global debounce, wake kswapd"),
        "v4-soft-boost": lambda: k("v4-soft-boost", "series v4 (linux-mm, Feb 2026)",
                                   "strict GFP_ATOMIC: slow-path soft boost +256 (<= high/2); failure boost "
                                   "max(512, managed>>10) and wsf +5 per zone; 10 s per-zone debounce"),
        "v10-acked": lambda: k("v10-acked", "series v10, acked (linux-mm, Feb 2026)",
                               "GFP_ATOMIC failure: every eligible zone boost += managed/1000, 1 s per-zone "
                               "debounce, wake kswapd"),
        "proactive": Proactive,
        "wsf-raise": WsfRaise,
        "psi": Psi,
        "psi-drops": PsiDrops,
        "psi-gated": PsiGated,
    }


def names() -> list[str]:
    """Every baseline name, in the order of docs/baselines.md."""
    return list(_registry())


def get(name: str) -> Baseline:
    """A fresh baseline policy by name; ValueError listing the valid names otherwise."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(reg)}")
    return reg[name]()
