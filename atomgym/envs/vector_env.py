"""AtomVectorEnv: ``num_envs`` machines in one batched Simulator (no subprocesses)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..sim.scenario import Scenario
from .atom_env import make_action_space, make_observation_space
from .config import EnvConfig, options_signature, positive_int
from .core import TERM_NAMES, Core, score


# machines in one batched simulator (~100 KiB each: 1024 take ~100 MiB); agents.train's n_envs bound too
MAX_NUM_ENVS = 1 << 16


class StartedStep(NamedTuple):
    """A step begun by AtomVectorEnv.step_core_start(), ended by step_core_end(): ``pending`` is the
    helper thread's half of a fused step still running (a Future) or None; ``terms`` the unfused
    step's (terms, rewards, deadlocked)."""
    fused: bool
    active: np.ndarray
    pending: Any
    terms: Any


class AtomVectorEnv(VectorEnv):
    """``num_envs`` independent AtomEnv machines stepped together in one compiled batch.

    Same arguments as ``AtomEnv`` plus ``num_envs`` and ``max_episode_steps`` (truncation; default
    the scenario's duration / decision interval). ``autoreset_mode`` is NEXT_STEP: the step after an
    episode ends returns the reset observation with reward 0 and ``terminated = truncated = False``
    (that env's action is ignored). ``reset(seed=s)`` seeds env i with ``s + i`` (or a list of
    seeds); env i then equals ``AtomEnv`` reset with the same seed, step for step. ``compute_score``
    defaults to False here (the kernel-default reference costs one extra episode per env and seed).
    Info: the same keys as AtomEnv, as arrays of shape (num_envs,).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, scenario: str | Path | Scenario = "incast-pagecache", *,
                 compute_score: bool = False, max_episode_steps: int | None = None, **options: Any) -> None:
        if options.get("render_mode") is not None:
            raise ValueError(f"render_mode: {options['render_mode']!r}: AtomVectorEnv does not render; use AtomEnv")
        n = positive_int("num_envs", num_envs, MAX_NUM_ENVS)   # 2**40 machines: a clear error, not a MemoryError
        if max_episode_steps is not None:
            max_episode_steps = positive_int("max_episode_steps", max_episode_steps)
        self._setup(EnvConfig.from_options(scenario=scenario, compute_score=compute_score, **options), n,
                    max_episode_steps)

    _P = inspect.Parameter
    __init__.__signature__ = options_signature(  # type: ignore[attr-defined]
        __init__, _P("num_envs", _P.POSITIONAL_OR_KEYWORD, default=1),
        _P("scenario", _P.POSITIONAL_OR_KEYWORD, default="incast-pagecache"),
        _P("compute_score", _P.KEYWORD_ONLY, default=False), _P("max_episode_steps", _P.KEYWORD_ONLY, default=None))
    del _P

    def _setup(self, config: EnvConfig, num_envs: int, max_episode_steps: int | None) -> None:
        self.config = config
        self.num_envs = n = num_envs
        self.scenario = config.sim_scenario
        self.core = Core(config, n)
        self.episode_steps = config.episode_steps
        # truncation: the registered limit, and never past the scenario's duration (as AtomEnv)
        self._max_episode_steps_arg = max_episode_steps
        self.max_episode_steps = self.episode_steps if max_episode_steps is None else min(
            max_episode_steps, self.episode_steps)
        self.compute_score = config.compute_score
        self.single_action_space = make_action_space(config.action_type)
        self.single_observation_space = make_observation_space(config.observation)
        self.action_space = batch_space(self.single_action_space, n)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.render_mode = None
        self._rngs = [seeding.np_random(None)[0] for _ in range(n)]
        self._sim_seeds = np.zeros(n, np.int64)
        self._steps = np.zeros(n, np.int64)
        self._cost = np.zeros(n)
        self._autoreset = np.zeros(n, bool)
        self._all = np.ones(n, bool)

    # pickling: rebuild from the config, then copy the batch state
    def __getstate__(self) -> dict:
        return {"config": self.config, "num_envs": self.num_envs, "max_episode_steps": self._max_episode_steps_arg,
                "core": self.core.snapshot(), "rngs": self._rngs,
                "seeds": self._sim_seeds, "steps": self._steps, "cost": self._cost, "autoreset": self._autoreset}

    def __setstate__(self, st: dict) -> None:
        self._setup(st["config"], st["num_envs"], st["max_episode_steps"])
        self.core.restore(st["core"])
        self._rngs = st["rngs"]
        self._sim_seeds[...] = st["seeds"]
        self._steps[...] = st["steps"]
        self._cost[...] = st["cost"]
        self._autoreset[...] = st["autoreset"]

    def _reset_envs(self, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            self._sim_seeds[i] = int(self._rngs[i].integers(0, 2**62))
        self.core.reset(self._sim_seeds, mask=mask)
        self._steps[mask] = 0
        self._cost[mask] = 0.0
        if self.core.shadow is not None:
            # the seed each env's generator will draw next, read from a copy (the generator does not
            # move): the reward shadow of that episode can run ahead (envs/shadow_ahead.py)
            nxt = np.zeros(self.num_envs, np.int64)
            for i in np.flatnonzero(mask):
                bg = self._rngs[i].bit_generator
                peek = type(bg)()
                peek.state = bg.state
                nxt[i] = int(np.random.Generator(peek).integers(0, 2**62))
            self.core.prefetch(nxt, mask)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, (int, np.integer)) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: {len(seeds)} seeds for num_envs={self.num_envs}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._reset_envs(self._all)
        self._autoreset[:] = False
        return self.core.obs(), {"sim_seed": self._sim_seeds.copy()}

    def _check_actions(self, actions) -> np.ndarray:
        n = self.num_envs
        if self.core.discrete:
            a = np.asarray(actions)
            k = self.core.n_actions
            if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= k:
                raise ValueError(f"actions: expected {n} integers 0..{k - 1} (shape ({n},), action space "
                                 f"Discrete({k}), action_type={self.core.action_type!r}), got shape {a.shape} "
                                 f"dtype {a.dtype}")
            return a.astype(np.int64)
        a = np.asarray(actions, np.float32)
        if a.shape != (n, 3) or not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0):
            raise ValueError(f"actions: expected shape ({n}, 3) floats in [-1, 1], got shape {a.shape}")
        return a

    def step_core(self, actions: np.ndarray, active: np.ndarray):
        """Step the machines in ``active``; returns obs, reward, terminated, truncated, info arrays."""
        return self.step_core_end(self.step_core_start(actions, active))

    def step_core_start(self, actions: np.ndarray, active: np.ndarray):
        """step_core() up to its compiled step (Core.step_fused_start()); step_core_end() with what
        this returns completes it. Between the two nothing may touch this env."""
        core = self.core
        fused = bool(active.all()) and not core.sim.goes_parallel(core.ticks)
        if fused:       # the whole step in one compiled call (machine after machine, the same results)
            return StartedStep(True, active, core.step_fused_start(actions), None)
        changes = core.apply(actions, active)
        core.advance(active)
        return StartedStep(False, active, None, core.step_terms(changes, active))

    def step_core_end(self, started: StartedStep):
        """The rest of step_core() (``started``: step_core_start()'s value)."""
        core = self.core
        fused, active = started.fused, started.active
        if fused:
            core.step_fused_end(started.pending)
            t, r, dead = core._t.copy(), core._r.copy(), core._dead.copy()
        else:
            t, r, dead = started.terms
        self._steps += active
        self._cost -= r
        term = core.sim.terminated & active
        trunc = active & ~term & (self._steps >= self.max_episode_steps)
        info: dict[str, Any] = {"t_ms": core.sim.t_ms.copy()}
        for i, name in enumerate(TERM_NAMES):
            info["term_" + name] = t[:, i].copy()
            info["reward_" + name] = -core.weights[i] * t[:, i]
        info["reward_deadlock"] = -core.deadlock_penalty * (dead & active)
        if core.shadow is not None:   # reward_baseline="default": minus the shadow's reward (AtomEnv's docstring)
            info["reward_default"] = core.shadow_reward.copy()
            r = core.baseline_reward(r)
        if self.compute_score:
            end = active & (term | (self._steps == self.episode_steps))
            if end.any():
                sc = np.full(self.num_envs, np.nan)
                dc = np.full(self.num_envs, np.nan)
                idx = np.flatnonzero(end)
                costs = core.default_costs([int(self._sim_seeds[i]) for i in idx], self.episode_steps)
                for i, c in zip(idx, costs):
                    dc[i] = c
                    sc[i] = score(self._cost[i], c)
                info["score"], info["default_cost"], info["episode_cost"] = sc, dc, np.where(end, self._cost, np.nan)
        return (core._obs.copy() if fused else core.obs()), r.astype(np.float64), term, trunc, info

    def step(self, actions):
        a = self._check_actions(actions)
        reset_now = self._autoreset.copy()
        if reset_now.any():
            self._reset_envs(reset_now)
        obs, r, term, trunc, info = self.step_core(a, ~reset_now)
        self._autoreset = term | trunc
        return obs, r, term, trunc, info

    def close_extras(self, **kwargs) -> None:
        self.core.close()
