"""AtomEnv: one simulated machine under GFP_ATOMIC network-receive pressure, tuned by an agent."""
from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from ..sim.scenario import Scenario
from .config import EnvConfig, options_signature
from .core import DEFAULT_DECISION_INTERVAL_MS, TERM_NAMES, Core, score  # noqa: F401  (re-exported)
from .cost import DEFAULT_DEADLOCK_PENALTY, TERMS
from .spaces import (  # noqa: F401  (re-exported: the observation/action layout)
    ACTION_NAMES, ACTION_TYPES, CONT_ACTION_NAMES, N_ACTIONS, OBS_DIM, OBS_HIGH, OBS_INDEX, OBS_LOW, OBS_NAMES,
    OBS_UNITS, action_names, obs_layout,
)

RENDER_W, RENDER_H = 400, 200


def make_action_space(action_type: str) -> spaces.Space:
    if action_type == "continuous":
        return spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    if isinstance(action_type, str) and action_type in ACTION_TYPES:
        return spaces.Discrete(len(action_names(action_type)))
    raise ValueError(f"action_type: {action_type!r} is not valid; choices: {', '.join(ACTION_TYPES)}")


def make_observation_space(observation: str = "basic") -> spaces.Box:
    _, _, low, high = obs_layout(observation)
    return spaces.Box(low.copy(), high.copy(), dtype=np.float32)


_IMMUTABLE = frozenset((float, int, bool, str, type(None), np.float64, np.float32, np.int64, np.bool_))


class StepInfo(dict):
    """A step's info dict. ``copy.deepcopy()`` keeps its scalar values as they are (they are
    immutable: a deep copy of one is itself) and deep-copies any other value (a wrapper's
    ``terminal_observation``): the same copy as a plain dict's, without a dispatch per value.
    SB3's DummyVecEnv deep-copies every step's infos."""

    def __deepcopy__(self, memo: dict) -> StepInfo:
        out = StepInfo()
        memo[id(self)] = out
        for k, v in self.items():
            out[k] = v if type(v) in _IMMUTABLE else copy.deepcopy(v, memo)
        return out


class AtomEnv(gym.Env):
    """Tune Linux page-allocator watermarks on one simulated machine under GFP_ATOMIC RX pressure.

    ## Description
    A simulated Linux machine (atomgym.sim, 1 ms ticks) receives network traffic whose RX rings are
    refilled with GFP_ATOMIC (or __GFP_MEMALLOC / GFP_KERNEL for virtio) page allocations while
    userspace workloads (page-cache streaming, anonymous hogs) push free memory down to the
    watermarks. The agent is a **userspace controller**: every ``decision_interval_ms`` of simulated
    time it may write ``vm.min_free_kbytes`` / ``vm.watermark_scale_factor`` (sysctl semantics:
    the watermarks are recomputed and every boost is cleared, ``setup_per_zone_wmarks()``) or
    boost zones with the kernel's ``boost_watermark()``; the simulator runs the ticks in between
    in its compiled loop. This differs from the in-kernel tuners of the patch series
    (``Simulator(tuner=...)``), which react inside the allocator at the exact tick of a failure;
    a userspace daemon only sees counters after the fact, as here.

    The default interval is **100 ms**: kswapd naps 100 ms (``HZ/10`` in ``kswapd_try_to_sleep()``)
    after a balanced run, so a faster controller mostly observes kswapd's own schedule; and a
    userspace daemon polling /proc/vmstat and writing sysctls is realistically a 10-1000 ms loop
    (a write costs a ``setup_per_zone_wmarks()`` over all zones). Valid range 10 ms to 10 s
    (multiples of the scenario's tick).

    ## Action Space
    ``action_type="discrete"``: ``Discrete(7)``

    | action | effect |
    |---|---|
    | 0 | no-op |
    | 1 | ``min_free_kbytes`` x1.25 (at least +1, at most 1048576 kB) |
    | 2 | ``min_free_kbytes`` /1.25 (at least -1, at least 128 kB) |
    | 3 | ``boost_watermark()`` once (one pageblock, 512 pages, capped at high x boost_factor / 10000) on every Normal zone |
    | 4 | ``boost_watermark()`` once on every populated zone |
    | 5 | ``watermark_scale_factor`` x1.25 (at least +1, at most 3000) |
    | 6 | ``watermark_scale_factor`` /1.25 (at least -1, at least 1) |

    ``action_type="continuous"``: ``Box(-1, 1, (3,), float32)``, ``u = (a + 1) / 2``

    | index | name | mapping |
    |---|---|---|
    | 0 | min_free_kbytes_target | ``128 * (1048576 / 128) ** u`` kB (log scale) |
    | 1 | watermark_scale_factor_target | ``3000 ** u`` (log scale, 1..3000, the sysctl's range) |
    | 2 | boost_level | target boost per populated zone = ``u * max_boost`` (kernel ``boost_watermark()``'s cap), reached by ``ceil(gap/512)`` ``boost_watermark()`` calls; never lowered (kswapd clears boosts) |

    A sysctl target within 2 % of the current value is not written (every write clears the boosts,
    as in the kernel). An action outside the space raises ``ValueError``.

    ``action_type="discrete-noboost"``: ``Discrete(5)``, the discrete actions 0, 1, 2, 5, 6 (no-op,
    min_free_kbytes up/down, watermark_scale_factor up/down) without the boosts
    (``NOBOOST_ACTIONS``, ``NOBOOST_ACTION_NAMES``).

    ``action_type="levels"``: ``Discrete(20)``, target settings: action = 4 x i + j sets
    min_free_kbytes to ``LEVEL_MF[i]`` of (boot value, 2x boot, 1 %, 2 %, 3 % of RAM) and
    watermark_scale_factor to ``LEVEL_WSF[j]`` of (boot value, 100, 300, 1000) -- the grid
    ``best-static`` sweeps, without its absolute 135168 kB; "boot" = the value at reset, RAM =
    managed memory, clamped into the knob ranges (``LEVEL_NAMES``, ``spaces.level_table()``).
    ``action_type="relative"``: ``Discrete(20)``, the same kind of table relative to the machine:
    action = 4 x i + j sets min_free_kbytes to the boot value times ``REL_MF[i]`` (1, 1.5, 2, 3, 4)
    and watermark_scale_factor to ``REL_WSF[j]`` (the boot value, or max(30 | 100 | 300, boot
    value)): no action goes below the boot values (``REL_NAMES``).
    ``action_type="residual"``: ``Discrete(20)``, a residual on the psi controller (envs/psi.py),
    which keeps running: action = 4 x i + j scales psi's back-off this decision by ``RES_MULT[i]``
    (0, 0.5, 1, 2, 4; 1 is psi) and sets watermark_scale_factor as "relative" does (``RES_NAMES``).
    ``action_type="residual-level"``: ``Discrete(48)``, the residual on psi with levels: psi keeps
    its own target, advanced each decision with its back-off scaled by ``RL_BACKOFF`` (0, 1, 4),
    and the env writes it times ``RL_LEVEL`` (1; 0.5, a cut, also below the boot value; 1.5; 2: at
    most psi's cap) with watermark_scale_factor as "relative" does: action = (4 x i + j) x 4 + k
    (``RL_NAMES``, ``RL_POINTS``; action 16 is psi itself).
    Action 0 is the boot setting (for "residual" and "residual-level": no raise, the boot wsf). A sysctl already at its target is not written, so choosing the
    current level costs nothing and leaves boosts alone; the others are written as every action
    writes (``Simulator.set_knobs``), one knob change each.

    ## Observation Space
    ``Box(low, high, (28,), float32)``, every entry in [0, 1]; names in ``atomgym.envs.OBS_NAMES``.
    Per-zone entries are for the zone types DMA (0-5), DMA32 (6-11), Normal (12-17), each summed
    over NUMA nodes; an unpopulated zone type reads 0.

    | index | name | unit / scaling |
    |---|---|---|
    | 0,6,12 | <zone>.free_over_min | free / min, clipped to 4, / 4 |
    | 1,7,13 | <zone>.free_over_low | free / (low + boost), clipped to 4, / 4 |
    | 2,8,14 | <zone>.free_over_high | free / (high + boost), clipped to 4, / 4 |
    | 3,9,15 | <zone>.boost_over_high | boost / high, clipped to 2, / 2 |
    | 4,10,16 | <zone>.reclaimable_frac | (page cache + anon if swap) / managed |
    | 5,11,17 | <zone>.free_frac | free / managed |
    | 18 | min_free_kbytes | log(mf/128) / log(1048576/128), clipped |
    | 19 | watermark_scale_factor | log(wsf) / log(3000) |
    | 20 | kswapd_awake | fraction of nodes with kswapd waking or running |
    | 21 | atomic_fail | log1p(atomic allocation failures in the last interval) / 20, clipped to 1 |
    | 22 | rx_missed | log1p(NIC drops, no posted buffer, last interval) / 20 |
    | 23 | rcvbuf_drop | log1p(socket receive-buffer drops, last interval) / 20 |
    | 24 | pfmemalloc_drop | log1p(TcpExtPFMemallocDrop, last interval) / 20 |
    | 25 | rx_packets | log1p(packets arrived, last interval) / 20 |
    | 26 | lowest_free_over_min | lowest Σ free over the last interval / Σ min, clipped to 4, / 4 |
    | 27 | direct_reclaim_stall | log1p(direct-reclaim stall in µs, last interval) / 20 |

    ``observation="memory"``: ``Box(low, high, (41,), float32)``, the 28 entries above followed by
    13 kept per machine since its reset (names in ``atomgym.envs.MEMORY_OBS_NAMES``; averages
    ``a <- e*a + (1-e)*rate`` with ``e = exp(-interval / tau)``, so tau holds whatever the
    decision interval; no elapsed-time feature):

    | index | name | unit / scaling |
    |---|---|---|
    | 28-30 | atomic_fail_rate_{1,10,60}s | log1p(EMA of atomic failures / s, tau 1, 10, 60 s) / 20, clipped |
    | 31-33 | drop_rate_{1,10,60}s | log1p(EMA of (rx_missed + rcvbuf_drop + pfmemalloc_drop) / s) / 20 |
    | 34 | time_since_atomic_fail | log1p(s since the last interval with a failure, or reset; <= 3600) / log1p(3600) |
    | 35 | time_since_drop | the same for drops |
    | 36-37 | rx_peak_{1,10}s | log1p(peak rx_packets / s, held and decayed by exp(-interval / tau), tau 1, 10 s) / 20 |
    | 38 | machine_size | log(managed / 256 MiB) / log(64 GiB / 256 MiB), clipped |
    | 39 | min_free_kbytes_vs_boot | 0.5 + log(mf / mf at reset) / (2 log 1024), clipped |
    | 40 | watermark_scale_factor_vs_boot | 0.5 + log(wsf / wsf at reset) / (2 log 1024), clipped |

    ## Rewards
    ``reward = -sum(weight * term) - deadlock_penalty*[deadlocked this step]``, the terms over the
    last interval, one per row of ``atomgym.envs.cost.TERMS`` (term (weight argument, default):
    what it counts):

@REWARD_TERMS@

    The default cost ``"harm"`` charges what is lost; atomic failures are a diagnostic there
    (``cost="atomic-charged"``, the ``-v0`` ids: charged 1e-3 each, as before v1).
    ``deadlock_penalty``: @PENALTY@. ``reserved_mib_s``: kswapd reclaims until every zone is above
    high + boost, so a policy pays for raising ``watermark_scale_factor`` or boosting as it pays
    for raising ``min_free_kbytes`` (Σ min alone is ``min_reserve_mib_ms`` in the counters).
    ``info`` has ``term_<name>`` (raw) and ``reward_<name>`` (weighted, negative) every step.

    ``reward_baseline="default"`` (for training across randomised machines): a shadow copy of the
    machine with the same simulator seed and the kernel's defaults runs its episode at reset (its
    per-interval rewards are replayed step by step, as if it ran in lockstep), and the reward is the expression above minus the shadow's over the same
    interval, ``info["reward_default"]``. Traffic is drawn from the machine's own generator whatever
    its memory state, so both see the same packets: costs no knob changes cancel (a draw of
    ``train-randomized`` can drop millions of packets at a slow socket), doing nothing earns exactly
    0, and the return is minus (episode cost - default cost). The score and ``episode_cost`` are
    unchanged (raw costs). ``reward_baseline="score"``: the same difference divided by the default
    episode's cost C_def (computed at reset), so the return is exactly score - 1.

    Worked example (8 GiB machine, defaults, 100 ms step): min_free_kbytes 67584 -> Σ min = 66.1 MiB,
    Σ high = 99.1 MiB (no boost), so reserved = 99.1 x 0.1 = 9.91 MiB·s; 40 atomic failures, 0 drops,
    2 ms stall, action 1 (one write): reward = -(0 + 0 + 0.00991 + 0.002 + 0.01) = -0.02191 (v0's
    cost "atomic-charged" adds 0.040 for the failures: -0.06191).

    **Normalised score**: at the end of an episode (``episode_steps`` = duration / interval steps,
    or a deadlock) ``info["score"] = 1 - (C - C_def) / max(C_def, 1)``, where C is the episode's cost
    (minus the sum of rewards) and C_def the cost of the same scenario and simulator seed with the
    kernel's defaults untouched (computed on first need, cached per (scenario, seed, interval,
    steps)). 1.0 = as good as the defaults, 2.0 = zero cost, < 1 worse. ``info["default_cost"]``
    and ``info["episode_cost"]`` are given with it. Example: C_def = 40, C = 30 -> score 1.25.

    ## Starting State
    The scenario's machine booted with its sysctls (kernel defaults unless the scenario sets them),
    RX rings full, memory use as in the scenario; ``randomize:`` ranges are drawn per episode. The
    simulator seed is drawn from ``self.np_random`` after ``super().reset(seed=seed)``, unless
    ``reset(options={"sim_seed": n})`` gives it (the machine a ``Simulator`` seeded with n runs,
    as ``agents.evaluate`` runs the baselines).

    ## Episode End
    Termination only when the machine deadlocks ("System is deadlocked on memory": the watermarks
    leave nothing allocatable, or the OOM killer has nothing to kill), with ``deadlock_penalty``.
    Truncation by the registered ``max_episode_steps`` = scenario duration / decision interval
    (``gymnasium.wrappers.TimeLimit``); the env itself also truncates at the end of the scenario's
    duration, so a ``duration_s`` / ``decision_interval_ms`` override ends episodes at the right
    time without passing ``max_episode_steps`` too. ``step()`` after termination or truncation,
    without a ``reset()``, raises ``gymnasium.error.ResetNeeded``.

    ## Arguments
    ``scenario`` (name, YAML path or Scenario; default "incast-pagecache"), ``decision_interval_ms``
    (100), ``action_type`` ("discrete" | "continuous" | "discrete-noboost" | "levels" | "relative" | "residual"
    | "residual-level"),
    ``observation`` ("basic" | "memory"), ``cost`` ("harm" | "atomic-charged": the weights a
    ``w_*`` argument does not set, see Rewards), @WEIGHT_ARGS@,
    ``deadlock_penalty``, ``duration_s`` (override the
    scenario's length), ``compute_score`` (True), ``render_mode`` (None | "ansi" | "rgb_array"),
    ``render_window`` (steps shown by rgb_array, 200), ``reward_baseline`` ("none" | "default" | "score",
    see Rewards), ``gate`` ("none" | "drops": action 0 until the machine's first rx_missed or
    pfmemalloc drop | "drops-cut": the same, but a cut of ``residual-level`` acts at once, alone;
    docs/environment.md), ``weights`` (a mapping term -> weight; the ``w_*`` arguments set one term each).
    Weights and the penalty are finite numbers in 0..1e12; a bad argument raises ``ValueError``
    naming it and what is valid, an unknown one ``TypeError``. The arguments are the fields of
    ``atomgym.envs.config.EnvConfig``, validated once into ``self.config`` (pickled with the env;
    ``AtomEnv.from_config(config)``); the reward terms and their weight arguments are the rows of
    ``atomgym.envs.cost.TERMS``.

    ## Version History
    * v1: the default cost ``"harm"`` (atomic failures uncharged); ``-v0`` ids keep
      ``cost="atomic-charged"`` and their rewards.
    * v0: initial version (``reward_baseline`` added later with the default "none": the same rewards;
      ``observation`` and the action types "discrete-noboost", "levels" added later, the defaults
      unchanged).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(self, scenario: str | Path | Scenario = "incast-pagecache", **options: Any) -> None:
        self._setup(EnvConfig.from_options(scenario=scenario, **options))

    __init__.__signature__ = options_signature(  # type: ignore[attr-defined]
        __init__, inspect.Parameter("scenario", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="incast-pagecache"))

    @classmethod
    def from_config(cls, config: EnvConfig) -> "AtomEnv":
        env = cls.__new__(cls)
        env._setup(config)
        return env

    def _setup(self, config: EnvConfig) -> None:
        self.config = config
        self.scenario = config.sim_scenario
        self.action_space = make_action_space(config.action_type)
        self.observation_space = make_observation_space(config.observation)
        self.core = Core(config, 1)
        self.episode_steps = config.episode_steps
        # info["term_<name>"] = term, info["reward_<name>"] = -weight * term, per cost.TERMS
        self._info_terms = [("term_" + n, "reward_" + n, float(-w)) for n, w in zip(TERM_NAMES, self.core.weights)]
        self.compute_score = config.compute_score
        self.render_mode = config.render_mode
        self.render_window = config.render_window
        self._mask = np.ones(1, bool)
        self._sim_seed = 0
        self._steps = 0
        self._cost = 0.0
        self._ended = False                # the last step terminated or truncated: reset() is needed
        self._hist: list[tuple[float, float, float, float]] = []

    # pickling: rebuild from the config and copy the simulator state
    def __getstate__(self) -> dict:
        return {"config": self.config, "core": self.core.snapshot(),
                "np_random": self._np_random, "seed": self._sim_seed, "steps": self._steps, "cost": self._cost,
                "hist": self._hist, "ended": self._ended}

    def __setstate__(self, st: dict) -> None:
        self._setup(st["config"])
        self.core.restore(st["core"])
        self._np_random = st["np_random"]
        self._sim_seed, self._steps, self._cost, self._hist = st["seed"], st["steps"], st["cost"], st["hist"]
        self._ended = st.get("ended", False)

    @property
    def sim(self):
        return self.core.sim

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and set(options) - {"sim_seed"}:
            raise ValueError(f"reset options: unknown key(s) {sorted(set(options) - {'sim_seed'})}; valid: sim_seed")
        if options and options.get("sim_seed") is not None:
            # the simulator's own seed, as agents.evaluate runs the baselines: same machines, same traffic
            ss = options["sim_seed"]
            if isinstance(ss, bool) or not isinstance(ss, (int, np.integer)) or not 0 <= ss < 2**63:
                raise ValueError(f"reset options: sim_seed: expected an integer in [0, 2**63), got {ss!r}")
            self._sim_seed = int(ss)
        else:
            self._sim_seed = int(self.np_random.integers(0, 2**62))
        self.core.reset(np.array([self._sim_seed], np.int64))
        self._steps = 0
        self._cost = 0.0
        self._ended = False
        self._hist = []
        self._record()
        return self.core.obs()[0], {"sim_seed": self._sim_seed, "t_ms": float(self.sim.t_ms[0])}

    def _check_action(self, action) -> np.ndarray | int:
        """A valid Discrete action as an int, a continuous one as a (1, 3) float32 array; anything
        else raises ValueError naming the action space."""
        core = self.core
        if core.discrete:
            n = core.n_actions
            if isinstance(action, (int, np.integer)) and not isinstance(action, bool) and 0 <= action < n:
                return int(action)        # fast path: a plain integer in range
            a = np.asarray(action)
            if a.shape not in ((), (1,)) or not np.issubdtype(a.dtype, np.integer) or not self.action_space.contains(int(a.reshape(-1)[0])):
                raise ValueError(f"action {action!r} is outside the action space Discrete({n}) "
                                 f"(action_type={core.action_type!r}): give an integer 0..{n - 1} "
                                 f"({'; '.join(core.action_names)})")
            return int(a.reshape(-1)[0])
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (3,) or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0):
            raise ValueError(f"action {action!r} is outside the action space Box(-1, 1, (3,)): give 3 floats in "
                             f"[-1, 1] ({', '.join(CONT_ACTION_NAMES)})")
        return a.reshape(1, 3)

    def step(self, action):
        if self._ended:
            # past the scenario's end (or a deadlock) the machine has nothing left to simulate
            raise ResetNeeded("step() after the episode ended (terminated or truncated): call reset() first")
        a = self._check_action(action)
        core = self.core
        if core.discrete:
            core.actions[0] = a
        else:
            core.factions[0] = a
        core.step_fused()                  # the whole step in one compiled call
        t, rr, dead = core._t, core._r, core._dead
        r = rr.item(0)
        self._steps += 1
        self._cost -= r                    # the raw cost (the score's C), whatever the reward's baseline
        terminated = core.was_terminated.item(0)   # the machine's state after this step (step_terms)
        info: dict[str, Any] = StepInfo(t_ms=core.sim.t_ms.item(0))
        for (kt, kr, nw), x in zip(self._info_terms, t[0].tolist()):
            info[kt] = x
            info[kr] = nw * x
        info["reward_deadlock"] = -core.deadlock_penalty * dead.item(0)
        if core.shadow is not None:
            info["reward_default"] = core.shadow_reward.item(0)
            r = core.baseline_reward(rr).item(0)
        if self.compute_score and (terminated or self._steps == self.episode_steps):
            c_def = core.default_cost(self._sim_seed, self.episode_steps)
            info["episode_cost"] = self._cost
            info["default_cost"] = c_def
            info["score"] = score(self._cost, c_def)
        if self.render_mode == "rgb_array":
            self._record()
        truncated = not terminated and self._steps >= self.episode_steps   # the scenario's duration
        self._ended = terminated or truncated
        if core.discrete:
            return core._obs[0].copy(), r, terminated, truncated, info
        return core.obs()[0], r, terminated, truncated, info

    # ---- rendering ----------------------------------------------------------------------------
    def _record(self) -> None:
        if self.render_mode != "rgb_array":   # the history is only drawn by rgb_array
            return
        s = self.sim
        self._hist.append((float(s.free[0].sum()), float(s.wmark[0, :, 0].sum()), float(s.wmark[0, :, 1].sum()),
                           float((s.wmark[0, :, 2] + s.boost[0]).sum())))
        if len(self._hist) > self.render_window:
            del self._hist[0]

    def render(self):
        if self.render_mode == "ansi":
            return self._render_ansi()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return None

    def _render_ansi(self) -> str:
        s = self.sim
        lines = [f"t={s.t_ms[0] / 1000:.1f} s  min_free_kbytes={int(s.min_free_kbytes[0])}  "
                 f"watermark_scale_factor={int(s.watermark_scale_factor[0])}  "
                 f"kswapd={'awake' if s.kswapd_awake[0].any() else 'asleep'}",
                 f"{'zone':<22}{'managed':>10}{'free':>10}{'min':>9}{'low':>9}{'high':>9}{'boost':>8}"]
        for z in range(s.n_zones):
            if s.managed[0, z] == 0:
                continue
            w = s.wmark[0, z]
            lines.append(f"{s.zone_names[z]:<22}{s.managed[0, z]:>10}{s.free[0, z]:>10}{w[0]:>9}{w[1]:>9}"
                         f"{w[2]:>9}{s.boost[0, z]:>8}")
        c = s.counter_dict(0)
        lines.append(f"atomic_fail={c['atomic_fail']:.0f} rx_missed={c['rx_missed']:.0f} "
                     f"rcvbuf_drop={c['rcvbuf_drop']:.0f} pfmemalloc_drop={c['pfmemalloc_drop']:.0f}")
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        """Σ free pages (black) against Σ min (red), Σ low (orange), Σ high + boost (green), last
        ``render_window`` steps, y from 0 to 1.2 x the window's maximum."""
        img = np.full((RENDER_H, RENDER_W, 3), 255, np.uint8)
        h = np.array(self._hist, np.float64)
        if h.size == 0:
            return img
        top = max(1.0, 1.2 * h.max())
        n = len(h)
        xs = np.linspace(0, RENDER_W - 1, max(n, 2))[:n].astype(int) if n > 1 else np.array([0])
        colours = [(0, 0, 0), (220, 0, 0), (255, 140, 0), (0, 160, 0)]
        for k in (1, 2, 3, 0):
            ys = (RENDER_H - 1 - np.round(h[:, k] / top * (RENDER_H - 1))).astype(int)
            for i in range(n):   # a connected line: each step's column spans from the previous value
                x0 = xs[i]
                x1 = xs[i + 1] if i + 1 < n else min(RENDER_W, x0 + 2)
                yp = ys[i - 1] if i > 0 else ys[i]
                y0, y1 = min(yp, ys[i]), max(yp, ys[i])
                pad = 0 if k == 0 else 1   # free: a thin line drawn last, over 3-pixel watermark lines
                img[max(0, y0 - pad):y1 + 1 + pad, x0:max(x1, x0 + 1)] = colours[k]
        return img


def _cost_table_doc(doc: str) -> str:
    """AtomEnv's docstring with cost.TERMS filled in (the reward terms and their weight arguments
    are listed from the table, never by hand)."""
    rows = "\n".join(f"    * ``{t.name}`` (``{t.arg}``, {t.weight:g}): {t.doc}" for t in TERMS)
    return (doc.replace("@REWARD_TERMS@", rows).replace("@WEIGHT_ARGS@", ", ".join(f"``{t.arg}``" for t in TERMS))
            .replace("@PENALTY@", f"{DEFAULT_DEADLOCK_PENALTY:g}"))


AtomEnv.__doc__ = _cost_table_doc(AtomEnv.__doc__ or "")
