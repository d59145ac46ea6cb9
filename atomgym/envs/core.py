"""Batched machinery shared by AtomEnv (B = 1) and AtomVectorEnv (B = num_envs).

One code path computes observations, applies actions and counts reward terms for a whole batch,
so that env i of the vector env equals the single env with the same simulator seed.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from ..sim import Simulator
from ..sim.scenario import Scenario, scenario_to_dict
from ..kernel.zones import PAGE_KB
from ._compiled import (
    K_CONTINUOUS, K_DISCRETE, K_LEVELS, M_BOOT_MF, M_BOOT_WSF, M_DYNAMIC, M_MANAGED_MIB, M_N,
    action_knobs, continuous_knobs, mem_update, obs_batch, obs_memory, step_fused, terms_batch,
)
from .cost import (  # noqa: F401  (re-exported: the cost table's names)
    DEFAULT_DEADLOCK_PENALTY, DEFAULT_WEIGHTS, SCORE_COST_FLOOR, TERM_NAMES, TERMS, WEIGHT_ARGS, cost, episode_terms,
    score,
)
from .config import (  # noqa: F401  (re-exported)
    REWARD_BASELINES, EnvConfig, interval_ticks, positive_int, real_number, resolve_scenario,
)
from .episode import DEFAULT_DECISION_INTERVAL_MS, episode_steps  # noqa: F401 (re-exported)
from .psi import PRESSURE_COUNTERS, cap_kb, psi_step
from .shadow_ahead import DEFAULT_COST_CACHE as _DEFAULT_COST_CACHE, ShadowAhead, record_default_totals, shadow_intervals
from .spaces import (
    CUT_GATES, GATE_COUNTERS, N_ACTIONS, N_LEVELS, NOBOOST_ACTIONS, PEAK_TAUS_S, RATE_TAUS_S, REL_WSF, RES_MULT, RL_BACKOFF,
    RL_LEVEL, RL_POINTS, action_names, cut_through, level_scale, level_table, obs_layout, table_wsf,
)

TABLE_TYPES = ("levels", "relative", "residual", "residual-level")   # the action types that index a level table
SPLIT_MIN_TICKS = 2000   # machine-ticks of a step below which step_fused() stays in one thread


def cost_table(counter_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cost.TERMS as the arrays _compiled.terms_batch() reads: (term_of, counter_of) pairs of the
    counters each term sums (from_actions terms sum none), divisor and from_actions per term."""
    pairs = [(k, counter_names.index(c)) for k, t in enumerate(TERMS) if not t.from_actions for c in t.counters]
    return (np.array([k for k, _ in pairs], np.int64), np.array([c for _, c in pairs], np.int64),
            np.array([t.divisor for t in TERMS], np.float64), np.array([t.from_actions for t in TERMS], np.bool_))


def _written(mf: np.ndarray, wsf: np.ndarray, bk: np.ndarray, changes: np.ndarray) -> np.ndarray:
    """Per machine, whether the knob outputs of action_knobs() / continuous_knobs() write anything:
    a sysctl target (-1 = unchanged), a boost_watermark() call or a counted change."""
    return (mf >= 0) | (wsf >= 0) | (bk != 0).any(axis=1) | (changes != 0)


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _spare_cpu() -> bool:
    """Whether this process may use a second CPU for helper threads: it has one, and it was not told to
    run on one thread (NUMBA_NUM_THREADS=1, as agents.multiseed's parallel training tasks are)."""
    return _cpus() >= 2 and numba.config.NUMBA_NUM_THREADS >= 2


def scenario_key(s: Scenario) -> str:
    return hashlib.sha1(repr(scenario_to_dict(s)).encode()).hexdigest()


class Core:
    """Observation, action and reward bookkeeping over one batched Simulator."""

    def __init__(self, config: EnvConfig, n: int, sim: Simulator | None = None) -> None:
        """``sim``: a Simulator of ``n`` machines of the config's scenario to observe and act on
        (agents.episodes runs a trained model this way, on the Simulator every policy runs on);
        None builds one."""
        self.config = config
        self.scenario = scenario = config.sim_scenario
        self.ticks = config.ticks
        self.decision_interval_ms = config.decision_interval_ms
        self.action_type = action_type = config.action_type
        self.discrete = action_type != "continuous"   # a Discrete action space (every type but continuous)
        self.action_names = action_names(action_type)
        self.n_actions = len(self.action_names)
        # action_knobs(): the table types index the level table; the others map to the discrete actions
        self._kind = (K_LEVELS if action_type in TABLE_TYPES
                      else K_CONTINUOUS if action_type == "continuous" else K_DISCRETE)
        self._amap = np.array(NOBOOST_ACTIONS if action_type == "discrete-noboost" else range(N_ACTIONS), np.int64)
        self.observation = config.observation
        self.memory = config.observation == "memory"
        self.obs_dim = len(obs_layout(config.observation)[0])
        self.weights = np.array([config.weights[k] for k in TERM_NAMES])   # cost.TERMS order
        self.deadlock_penalty = config.deadlock_penalty
        reward_baseline = config.reward_baseline
        if sim is not None and sim.B != n:
            raise ValueError(f"Core: the Simulator has {sim.B} machines, not {n}")
        self.sim = Simulator(scenario, n_machines=n) if sim is None else sim
        self.cost_table = cost_table(self.sim.counter_names)
        # gate="drops" (spaces.GATES): action 0 on a machine until its counters in GATE_COUNTERS pass
        # their values at the episode's start; gate_open says which machines the agent acts on
        self._gate_idx = (np.array([self.sim.counter_names.index(c) for c in GATE_COUNTERS[config.gate]], np.int64)
                          if config.gate != "none" else None)
        self.gate_base = np.zeros(n)
        self.gate_open = np.zeros(n, np.bool_) if self._gate_idx is not None else np.ones(n, np.bool_)
        # gate="drops-cut": what a closed gate applies per action (a cut alone, else action 0)
        self._through = cut_through(action_type) if config.gate in CUT_GATES else None
        self.B = n
        # action_type="residual" (spaces.RES_POINTS): psi's state per machine (its pressure counters'
        # sum at the last decision, the time of its latest pressure); the level table is rewritten
        # from it before every decision (residual_table())
        # "residual-level" (spaces.RL_POINTS) also keeps psi's own min_free_kbytes target (psi_mf: the
        # value written is the target times the chosen level), its candidates at each back-off of
        # RL_BACKOFF this decision (psi_cand), and each action's back-off row (_rl_row)
        self.residual = action_type in ("residual", "residual-level")
        self.residual_level = action_type == "residual-level"
        self._psi_idx = np.array([self.sim.counter_names.index(c) for c in PRESSURE_COUNTERS], np.int64)
        self.psi_last = np.zeros(n)
        self.psi_quiet = np.zeros(n)
        self.psi_mf = np.zeros(n, np.int64)
        self.psi_cand = np.zeros((n, len(RL_BACKOFF)), np.int64)
        self._rl_row = np.array([RL_BACKOFF.index(b) for b, _, _ in RL_POINTS], np.int64)
        self.n_nodes = self.sim.n_nodes
        self.prev = np.zeros_like(self.sim.counters)
        self.was_terminated = np.zeros(n, bool)
        self._obs = np.zeros((n, self.obs_dim), np.float32)
        # per machine: the memory features' state and the boot values (_compiled.M_*); the levels table
        self.mem = np.zeros((n, M_N))
        self.levels = np.zeros((n, self.n_actions if self.residual_level else N_LEVELS, 2), np.int64)
        self.dt_s = self.ticks * scenario.tick_ms / 1000.0   # simulated seconds per interval
        self.decay = np.exp(-self.dt_s / np.array(RATE_TAUS_S + PEAK_TAUS_S, np.float64))
        self._t = np.zeros((n, len(TERMS)))
        self._r = np.zeros(n)
        self._dead = np.zeros(n, np.bool_)
        self._mf = np.zeros(n, np.int64)
        self._wsf = np.zeros(n, np.int64)
        self._bk = np.zeros((n, self.sim.n_zones), np.int64)
        self._changes = np.zeros(n)
        self._skey: str | None = None   # scenario_key(), computed on first need
        self.actions = np.zeros(n, np.int64)   # step_fused()'s input buffers: Discrete kinds
        self.factions = np.zeros((n, 3))       # and continuous actions
        # reward_baseline="default": the reward is the agent's minus that of a shadow of the same machine
        # and seed that never writes a knob, over the same interval. Traffic draws from each machine's own
        # generator whatever its memory state, so the shadow sees the same packets: costs no knob can
        # change (e.g. a slow application's socket drops) cancel, and a policy that does nothing earns
        # exactly 0. The shadow depends on nothing the agent does, so its whole episode runs at reset
        # (run_shadow(): interval by interval, as it would in lockstep) and its per-interval rewards are
        # replayed step by step: one simulation per step instead of two.
        self.reward_baseline = reward_baseline
        # reward_baseline="score": the same difference, divided by the default-settings episode's cost
        # C_def of the same machine and seed (the shadow's episode), so an episode's return is then
        # score - 1 exactly and machines of every size weigh alike.
        self.shadow = Simulator(scenario, n_machines=n) if reward_baseline in ("default", "score") else None
        self.episode_steps = config.episode_steps
        self.reward_scale = np.ones(n)     # 1 / max(C_def, SCORE_COST_FLOOR) per machine with "score"
        self.shadow_rewards = np.zeros((n, self.episode_steps if self.shadow is not None else 0))
        self.shadow_step = np.zeros(n, np.int64)   # the next interval's index in shadow_rewards
        self.shadow_reward = np.zeros(n)   # the shadow's reward over the last interval (0 without one)
        # The shadow runs lazily: a machine that has written no knob since its reset *is* its shadow
        # (the same scenario, seed and settings, and the simulator is deterministic), so its shadow's
        # reward is its own raw reward and no shadow machine runs for it (twin). At its first write the
        # shadow takes a copy of its state and runs the rest of the episode at once (_diverge()); a twin
        # that ends its episode gives C_def from its own counters. The rewards are those of the whole
        # shadow episode run at reset, bit for bit (lazy_shadow = False runs it so: tests compare).
        self.lazy_shadow = True
        self.twin = np.zeros(n, np.bool_)
        self._seeds = np.zeros(n, np.int64)
        self._pending = np.zeros(n, np.bool_)   # twins whose shadow reward of this interval is their own
        self._ending = np.zeros(n, np.bool_)    # twins whose episode's last interval this is
        self._all = np.ones(n, np.bool_)
        self._step_args: tuple | None = None    # step_fused()'s arguments, on first need
        # Shadows run ahead (envs/shadow_ahead.py): the owner that knows each machine's next seed
        # asks for it (prefetch()); only with a second CPU to run on, and only for machines that
        # wrote a knob in their last episode (wrote_last)
        self.ahead: ShadowAhead | None = None
        self.wrote_last = np.ones(n, np.bool_)
        # step_fused() in two halves at once (a helper thread; compiled code releases the GIL) when a
        # second CPU is there and each half has enough ticks to pay for the hand-over (~0.1 ms)
        self._split: tuple[ThreadPoolExecutor, int] | None = None
        if n >= 2 and n * self.ticks >= SPLIT_MIN_TICKS and _spare_cpu():
            self._split = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="atomgym-step"), (n + 1) // 2)

    # ---- reset ---------------------------------------------------------------------------------
    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> None:
        m = np.ones(self.B, bool) if mask is None else mask
        self.sim.reset(seeds, mask=m)
        self.start_episode(m)
        if self.shadow is not None:
            self._seeds[m] = np.broadcast_to(np.asarray(seeds, np.int64), (self.B,))[m]
            if self.lazy_shadow:
                self.wrote_last[m] = ~self.twin[m]
                if self.ahead is not None:
                    for i in np.flatnonzero(m):
                        self.ahead.forget(int(i), (int(self._seeds[i]),))
                self.twin[m] = True
                self.shadow_step[m] = 0
                self.shadow_reward[m] = 0.0
                self.reward_scale[m] = 1.0
            else:
                self.twin[m] = False
                self.run_shadow(seeds, m)

    def _diverge(self, m: np.ndarray) -> None:
        """The twins in ``m`` are about to write a knob: the shadow takes a copy of each one's state
        (the default machine's at this interval's start) and runs the rest of its episode; or, if
        that episode was run ahead (prefetch()), takes its rewards."""
        self.twin[m] = False
        if self.ahead is not None:
            got = np.zeros(self.B, np.bool_)
            for i in np.flatnonzero(m):
                rw = self.ahead.take(int(i), int(self._seeds[i]))
                if rw is not None:
                    self.shadow_rewards[i] = rw
                    got[i] = True
            if got.any():
                if self.reward_baseline == "score":
                    self._score_scale(got, None)
                m = m & ~got
                if not m.any():
                    return
        self.shadow.copy_machines(self.sim, m)
        for k in np.unique(self.shadow_step[m]):
            g = m & (self.shadow_step == k)
            self._shadow_intervals(g, int(k), self.was_terminated.copy())
            if self.reward_baseline == "score":
                self._score_scale(g, self.shadow)

    def _shadow_intervals(self, m: np.ndarray, k0: int, was: np.ndarray) -> None:
        """The shadow's intervals k0.. of the episode for the machines in ``m`` (shadow_intervals()),
        the rewards kept in ``shadow_rewards``; ``was``: each machine's terminated flag before
        interval k0 (updated in place)."""
        shadow_intervals(self.shadow, m, k0, self.episode_steps, self.ticks, was, self.cost_table, self.weights,
                         self.deadlock_penalty, self.shadow_rewards)

    def prefetch(self, seeds: np.ndarray, mask: np.ndarray) -> None:
        """``seeds[i]`` is the simulator seed of machine i's next episode, for the machines in
        ``mask`` (just reset): run their shadow episodes ahead in the background (shadow_ahead.py) if
        they will likely need one (they wrote a knob in the last episode) and a second CPU is there."""
        if self.shadow is None or not self.lazy_shadow:
            return
        want = mask & self.wrote_last
        if not want.any():
            return
        if self.ahead is None:
            if not _spare_cpu():
                return
            if self._skey is None:
                self._skey = scenario_key(self.scenario)
            self.ahead = ShadowAhead(self.scenario, self.B, int(self.episode_steps), self.ticks, self.cost_table,
                                     self.weights, self.deadlock_penalty, self._skey)
        for i in np.flatnonzero(want):
            self.ahead.request(int(i), int(seeds[i]))

    def close(self) -> None:
        """Stop the background shadow runs and the step's helper thread, if any."""
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None
        if self._split is not None:
            self._split[0].shutdown()
            self._split = None

    def _score_scale(self, m: np.ndarray, src: Simulator | None) -> None:
        """reward_scale = 1 / C_def for the machines in ``m``, C_def from ``src``'s counters at the
        end of a default-settings episode (cached per machine and seed like default_totals(); None:
        cached already, by a shadow run ahead)."""
        if self._skey is None:
            self._skey = scenario_key(self.scenario)
        idx = np.flatnonzero(m)
        if src is not None:
            record_default_totals(src, idx, [(self._skey, int(self._seeds[b]), self.ticks, int(self.episode_steps))
                                             for b in idx])
        costs = self.default_costs([int(self._seeds[b]) for b in idx], self.episode_steps)
        self.reward_scale[idx] = [1.0 / max(c, SCORE_COST_FLOOR) for c in costs]

    def _writes(self, mask: np.ndarray) -> np.ndarray:
        """The machines in ``mask`` whose action this decision writes a sysctl or boosts (the
        outputs of action_knobs() / continuous_knobs() into apply()'s scratch arrays, which the
        fused step does not use; the state untouched)."""
        mf, wsf, bk, ch = self._mf, self._wsf, self._bk, self._changes
        sim = self.sim
        if self.discrete:
            action_knobs(self._kind, self.actions, self._amap, self.levels, sim.field("mi"), sim.managed, mask,
                         mf, wsf, bk, ch)
        else:
            continuous_knobs(self.factions, sim.field("mi"), sim.managed, sim.wmark, sim.boost, mask, mf, wsf, bk, ch)
        return mask & _written(mf, wsf, bk, ch)

    def _fill_twins(self) -> None:
        """After an interval's raw rewards (self._r): a twin's shadow reward is its own; a twin at its
        episode's end gives C_def from its own counters (they are the default episode's)."""
        p = self._pending
        if p.any():
            self.shadow_reward[p] = self._r[p]
            p[:] = False
        e = self._ending
        if e.any():
            if self.reward_baseline == "score":
                self._score_scale(e, self.sim)
            e[:] = False

    def run_shadow(self, seeds: np.ndarray, m: np.ndarray) -> None:
        """The shadow's whole episode for the machines in ``m`` (default settings, the same seeds):
        interval by interval as in lockstep (Simulator.step(0) starts an interval, advance() runs it,
        terms_batch() its reward), the rewards kept in ``shadow_rewards``; with "score" also C_def
        from the episode's counters (cached per machine and seed like default_totals())."""
        sh = self.shadow
        sh.reset(seeds, mask=m)
        self._shadow_intervals(m, 0, sh.terminated.copy())
        self.shadow_step[m] = 0
        self.shadow_reward[m] = 0.0
        if self.reward_baseline == "score":
            self._score_scale(m, sh)

    def start_episode(self, m: np.ndarray) -> None:
        """The episode bookkeeping of the machines in ``m``, just reset (by reset(), or by the
        owner of a Simulator given to the constructor): the interval's start counters, the
        memory features and the boot values the level actions are relative to."""
        sim = self.sim
        self.prev[m] = sim.counters[m]
        self.was_terminated[m] = sim.terminated[m]
        boot_mf = sim.min_free_kbytes[m].astype(np.int64)
        boot_wsf = sim.watermark_scale_factor[m].astype(np.int64)
        ram_kb = sim.managed[m].sum(axis=1).astype(np.int64) * PAGE_KB
        mem = self.mem[m]
        mem[:, :M_DYNAMIC] = 0.0
        mem[:, M_BOOT_MF] = boot_mf
        mem[:, M_BOOT_WSF] = boot_wsf
        mem[:, M_MANAGED_MIB] = ram_kb / 1024.0
        self.mem[m] = mem
        if self.residual_level:
            lv = self.levels[m]
            for a, (_, _, w) in enumerate(RL_POINTS):
                lv[:, a, 1] = table_wsf(boot_wsf, w)
            self.levels[m] = lv
        else:
            self.levels[m] = level_table(boot_mf, boot_wsf, ram_kb, relative=self.action_type in ("relative", "residual"))
        if self.residual:
            self.psi_last[m] = sim.counters[m][:, self._psi_idx].sum(axis=1)
            self.psi_quiet[m] = sim.t_ms[m]
            self.psi_mf[m] = boot_mf
            self.residual_table(m)
        if self._gate_idx is not None:
            self.gate_base[m] = sim.counters[m][:, self._gate_idx].sum(axis=1)
            self.gate_open[m] = False

    def residual_table(self, mask: np.ndarray) -> None:
        """action_type="residual": psi's decision now (envs/psi.psi_step, pressure = its counters'
        increase since the last decision) at each back-off multiplier of spaces.RES_MULT, written as
        the min_free_kbytes column of each machine's level table (its wsf column is "relative"'s);
        psi's state advances for the machines in ``mask`` (the ones deciding now).
        "residual-level": psi's decision from its own target (psi_mf) at each back-off of
        spaces.RL_BACKOFF (kept in psi_cand until commit() knows the action), scaled by each level
        (spaces.level_scale) into the min_free_kbytes column."""
        sim = self.sim
        now = sim.counters[:, self._psi_idx].sum(axis=1)
        p = np.where(mask, now - self.psi_last, 0.0)
        floor = self.mem[:, M_BOOT_MF].astype(np.int64)
        cap = cap_kb(sim.managed.sum(axis=1))
        t = sim.t_ms.astype(np.float64)
        if self.residual_level:
            nw = len(REL_WSF)    # RL_POINTS is back-off x level x wsf, in that order: a wsf run shares its value
            for i, (num, den) in enumerate(RL_BACKOFF):
                q = self.psi_quiet.copy()
                self.psi_cand[:, i], _, _ = psi_step(self.psi_mf, p, t, q, floor, cap, num / den)
                for j, lv in enumerate(RL_LEVEL):
                    a = (i * len(RL_LEVEL) + j) * nw
                    self.levels[mask, a:a + nw, 0] = level_scale(self.psi_cand[:, i], lv, cap)[mask, None]
            self.psi_quiet[mask] = q[mask]
            self.psi_last[mask] = now[mask]
            return
        mf = sim.min_free_kbytes.astype(np.int64)
        nw = len(REL_WSF)
        for i, (num, den) in enumerate(RES_MULT):
            q = self.psi_quiet.copy()          # its update depends on the pressure only, not the multiplier
            new, _, _ = psi_step(mf, p, t, q, floor, cap, num / den)
            self.levels[mask, i * nw:(i + 1) * nw, 0] = new[mask, None]
        self.psi_quiet[mask] = q[mask]
        self.psi_last[mask] = now[mask]

    def commit(self, actions: np.ndarray, mask: np.ndarray) -> None:
        """"residual-level": psi's target after this decision is its candidate at the back-off of
        the action applied (after the gate's hold) on the machines in ``mask``; other types: nothing."""
        if self.residual_level:
            rows = self._rl_row[actions]
            self.psi_mf[mask] = self.psi_cand[mask, rows[mask]]

    def hold(self, actions: np.ndarray) -> np.ndarray:
        """The gate (config.gate, spaces.GATES): ``actions`` (B,) with action 0 on the machines whose
        gate is still closed (in place; "drops-cut": a cut alone where the action's level is a cut,
        spaces.cut_through); gate_open updated from the counters now. No gate: as given."""
        idx = self._gate_idx
        if idx is None:
            return actions
        self.gate_open |= self.sim.counters[:, idx].sum(axis=1) > self.gate_base
        closed = ~self.gate_open
        actions[closed] = 0 if self._through is None else self._through[actions[closed]]
        return actions

    def baseline_reward(self, r: np.ndarray) -> np.ndarray:
        """The reward the agent gets from the raw one (minus the cost): as is with reward_baseline
        "none", minus the shadow's with "default", and that divided by C_def with "score"."""
        if self.shadow is None:
            return r
        d = r - self.shadow_reward
        return d * self.reward_scale if self.reward_baseline == "score" else d

    # ---- actions ------------------------------------------------------------------------------
    def apply(self, actions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Write the knobs for the machines in mask and start their interval (one Simulator.step
        of 0 ticks: the knob writes, then prev = the counters now); returns knob changes per
        machine (B,)."""
        sim, B = self.sim, self.B
        if self.discrete:
            mf, wsf, bk, changes = self._mf, self._wsf, self._bk, self._changes
            if self.residual:
                self.residual_table(mask)
            actions = self.hold(np.array(actions, np.int64))
            self.commit(actions, mask)
            action_knobs(self._kind, actions, self._amap, self.levels, sim.field("mi"),
                         sim.managed, mask, mf, wsf, bk, changes)
        else:
            mf, wsf, bk, changes = self._mf, self._wsf, self._bk, self._changes
            a = np.asarray(actions, np.float64).reshape(B, 3)
            continuous_knobs(a, sim.field("mi"), sim.managed, sim.wmark, sim.boost, mask, mf, wsf, bk, changes)
        if self.shadow is not None:
            div = mask & self.twin & _written(mf, wsf, bk, changes)
            if div.any():
                self._diverge(div)
        sim.step(0, min_free_kbytes=mf, watermark_scale_factor=wsf, boost_watermark=bk, mask=mask, prev=self.prev)
        return changes.copy()

    # ---- stepping -------------------------------------------------------------------------------
    def advance(self, mask: np.ndarray) -> None:
        """The interval's ticks for the machines in mask (after apply(); in parallel over machines
        for a large batch); the reward shadow's interval is replayed (end_interval())."""
        self.sim.advance(self.ticks, mask=mask)
        self.end_interval(mask)

    def end_interval(self, mask: np.ndarray) -> None:
        """After the interval's ticks (advance(), or the owner of the Simulator): the memory
        observation's features over the interval, and the shadow's reward over it (run_shadow())."""
        if self.memory:
            mem_update(self.sim.counters, self.prev, mask, self.dt_s, self.decay, self.mem)
        self.replay_shadow(mask)

    def replay_shadow(self, mask: np.ndarray) -> None:
        """shadow_reward = the shadow's reward over this interval, for the machines in mask (0 elsewhere,
        and past the episode's steps, where the shadow did not run)."""
        if self.shadow is None:
            return
        k = self.shadow_step
        ok = mask & (k < self.episode_steps)
        self.shadow_reward[:] = 0.0
        ran = ok & ~self.twin
        self.shadow_reward[ran] = self.shadow_rewards[ran, k[ran]]
        self._pending[:] = ok & self.twin          # their own reward, once known (_fill_twins())
        k[mask] += 1
        self._ending[:] = mask & self.twin & (k == self.episode_steps)

    def step_terms(self, changes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, len(cost.TERMS)) raw reward terms over the last interval, (B,) rewards, (B,) newly deadlocked;
        machines outside mask read 0 / False."""
        terms_batch(self.sim.counters, self.prev, np.asarray(changes, np.float64), self.cost_table, self.weights,
                    self.deadlock_penalty, self.sim.field("mi"), self.was_terminated, mask, self._t, self._r, self._dead,
                    0, self.B)
        if self.shadow is not None:
            self._fill_twins()
        return self._t.copy(), self._r.copy(), self._dead.copy()

    def snapshot(self) -> dict:
        """The simulated state for pickling an env: the batch, the interval bookkeeping and the
        reward shadow's (if any); restore() puts it back into a Core built with the same arguments."""
        snap = {"sim": self.sim.snapshot(), "prev": self.prev.copy(), "was": self.was_terminated.copy(),
                "mem": self.mem.copy(), "levels": self.levels.copy(),
                "gate": (self.gate_base.copy(), self.gate_open.copy()),
                "psi": (self.psi_last.copy(), self.psi_quiet.copy()),
                "psi_mf": (self.psi_mf.copy(), self.psi_cand.copy())}
        if self.shadow is not None:
            snap["shadow"] = {"rewards": self.shadow_rewards.copy(), "step": self.shadow_step.copy(),
                              "reward": self.shadow_reward.copy(), "scale": self.reward_scale.copy(),
                              "twin": self.twin.copy(), "seeds": self._seeds.copy()}
        return snap

    def restore(self, snap: dict) -> None:
        self.sim.restore(snap["sim"])
        self.prev[...] = snap["prev"]
        self.was_terminated[...] = snap["was"]
        if "mem" in snap:   # snapshots from before the memory observation have none
            self.mem[...] = snap["mem"]
            self.levels[...] = snap["levels"]
        if "gate" in snap:
            self.gate_base[...], self.gate_open[...] = snap["gate"]
        if "psi" in snap:
            self.psi_last[...], self.psi_quiet[...] = snap["psi"]
        if "psi_mf" in snap:
            self.psi_mf[...], self.psi_cand[...] = snap["psi_mf"]
        if self.shadow is not None:
            sh = snap["shadow"]
            self.shadow_rewards[...] = sh["rewards"]
            self.shadow_step[...] = sh["step"]
            self.shadow_reward[...] = sh["reward"]
            self.reward_scale[...] = sh["scale"]
            self.twin[...] = sh.get("twin", False)   # (snapshots before the lazy shadow: it ran at reset)
            if "seeds" in sh:
                self._seeds[...] = sh["seeds"]

    def step_fused(self, actions: np.ndarray | None = None) -> None:
        """apply() + advance() + step_terms() + obs() of every machine in one compiled call (serial
        over machines; the same results), for every action type. The actions are ``self.actions``
        (B,) int64 (Discrete types) or ``self.factions`` (B, 3) (continuous), copied from ``actions``
        if given. The outputs stay in ``self._obs``, ``self._t``, ``self._r`` and ``self._dead``
        (overwritten by the next call)."""
        self.step_fused_end(self.step_fused_start(actions))

    def step_fused_start(self, actions: np.ndarray | None = None):
        """step_fused() up to the compiled step of the caller's part: the helper thread's part may
        still run; step_fused_end() with what this returns completes the step. Between the two,
        another Core may start its own step (ConcatVecEnv), but nothing may touch this Core."""
        if actions is not None:
            if self.discrete:
                self.actions[:] = actions
            else:
                self.factions[...] = np.asarray(actions, np.float64).reshape(self.B, 3)
        if self.residual:
            self.residual_table(self._all)
        if self._gate_idx is not None:
            self.hold(self.actions)
        self.commit(self.actions, self._all)
        if self.shadow is not None and self.twin.any():
            div = self._writes(self.twin)
            if div.any():
                self._diverge(div)
        args = self._step_args
        if args is None:   # every argument is held for the Core's lifetime (updated in place, never rebound)
            args = self._step_args = (
                self.sim.state, self.actions, self.factions, self._kind, self._amap, self.levels, self.ticks,
                self.cost_table, self.weights, self.deadlock_penalty, self.prev, self.was_terminated, self.n_nodes,
                self.mem, self.dt_s, self.decay, self.memory, self._obs, self._t, self._r, self._dead)
        if self._split is None:
            step_fused(*args, 0, self.B)
            return None
        # two halves of the batch at once, the second in the helper thread (their rows are disjoint)
        h = self._split[1]
        fut = self._split[0].submit(step_fused, *args, h, self.B)
        try:
            step_fused(*args, 0, h)
        except BaseException:   # (also on an interrupt: the other half writes the same arrays until it ends)
            wait([fut])
            raise
        return fut

    def step_fused_end(self, pending) -> None:
        """The rest of step_fused() after step_fused_start() (``pending``: what it returned)."""
        if pending is not None:
            wait([pending])
            pending.result()
        self.replay_shadow(self._all)
        if self.shadow is not None:
            self._fill_twins()

    def obs(self) -> np.ndarray:
        sim = self.sim
        mi = sim.field("mi")
        obs_batch(sim.managed, sim.wmark, sim.boost, sim.zone_state, mi, sim.field("nd"), sim.counters, self.prev,
                  self.n_nodes, self._obs, 0, self.B)
        if self.memory:
            obs_memory(mi, self.mem, self._obs, 0, self.B)
        return self._obs.copy()

    # ---- the kernel-default reference for the normalised score ---------------------------------
    def default_totals(self, seeds, n_steps: int) -> list[np.ndarray]:
        """Raw term totals (+ deadlocked flag) of default-settings episodes (no knob writes) with
        these simulator seeds, n_steps decision intervals long; the missing ones run together in
        one batched Simulator (machine i of a batch == machine i alone); cached per
        (scenario, seed, interval, steps)."""
        if self._skey is None:
            self._skey = scenario_key(self.scenario)
        skey = self._skey
        keys = [(skey, int(sd), self.ticks, int(n_steps)) for sd in seeds]
        missing = sorted({k for k in keys if k not in _DEFAULT_COST_CACHE}, key=lambda k: k[1])
        if missing:
            sim = Simulator(self.scenario, n_machines=len(missing))
            sim.reset(np.array([k[1] for k in missing], np.int64))
            sim.advance(self.ticks * int(n_steps))
            record_default_totals(sim, range(len(missing)), missing)   # the default settings: no knob written
        return [_DEFAULT_COST_CACHE[k] for k in keys]

    def default_costs(self, seeds, n_steps: int) -> list[float]:
        K = len(TERMS)
        return [cost(tot[:K], self.weights, self.deadlock_penalty, tot[K]) for tot in self.default_totals(seeds, n_steps)]

    def default_cost(self, seed: int, n_steps: int) -> float:
        return self.default_costs([seed], n_steps)[0]

