"""The one evaluation path: every policy's episodes run through :func:`run`.

A policy is anything with ``name``, ``tuner`` (the in-kernel tuner the Simulator runs: "none" or a
patch version), ``interval_ms`` (how often it decides; 0 = only at t = 0), ``reset(sim, seeds)``
(after the Simulator's reset: its decision at t = 0) and ``act(sim, last)`` (after each interval):
the baselines (agents.baselines: static settings, userspace controllers, the patch series'
in-kernel versions), a trained model (:class:`ModelPolicy`: the Gymnasium env's observation and
actions, envs.core.Core, over the same Simulator) and recorded env actions (agents.replay).

:func:`run` builds one batched Simulator (machine i runs seed i; machine i of a batch equals
machine i alone), resets it, lets the policy decide at t = 0 and after every ``interval_ms`` of
simulated time (and once after the last, partial or not), runs ``round(duration / tick)`` ticks
and returns each machine's :func:`episode_metrics` (its cost from the env's cost table,
envs/cost.py). So a baseline and a learned policy get the same machines, traffic draws, episode
length and metrics, from the same code.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import numpy as np

from atomgym.envs.config import EnvConfig
from atomgym.envs.core import Core
from atomgym.envs.cost import TERM_BY_NAME, default_cost
from atomgym.sim import Simulator


def episode_metrics(sim, i: int) -> dict[str, float]:
    """The domain metrics of machine i's episode (cumulative counters since reset)."""
    c = sim.counter_dict(i)
    m = {
        "drops_rx_missed": c["rx_missed"], "drops_rcvbuf": c["rcvbuf_drop"], "drops_pfmemalloc": c["pfmemalloc_drop"],
        "atomic_fail": c["atomic_fail"], "fail_atomic": c["fail_atomic"], "fail_kernel": c["fail_kernel"],
        "fail_nowait": c["fail_nowait"], "fail_memalloc": c["fail_memalloc"], "refill_deferred": c["refill_deferred"],
        "reserved_mib_s": c["reserved_mib_ms"] / 1000.0, "min_reserve_mib_s": c["min_reserve_mib_ms"] / 1000.0,
        "stall_s": c["direct_reclaim_stall_us"] / 1e6,
        "throttle_stall_s": c["throttle_stall_us"] / 1e6, "kswapd_runs": c["pageoutrun"],
        "kswapd_wakeups": c["kswapd_wakeups"],
        "allocstall": sum(v for k, v in c.items() if k.startswith("allocstall_")), "oom_kill": c["oom_kill"],
        "knob_changes": c["knob_writes"] + c["boost_actions"], "tuner_actions": c["tuner_actions"],
        "terminated": float(sim.terminated[i]), "final_min_free_kbytes": float(sim.min_free_kbytes[i]),
        "final_wsf": float(sim.watermark_scale_factor[i]),
    }
    m["drops_total"] = sum(c[k] for k in TERM_BY_NAME["drops"].counters)   # the cost's drops
    # the env's cost table with its default weights (every knob write counts, a tuner's too)
    m["cost"] = default_cost(c, m["terminated"])
    return m


class Policy(Protocol):
    name: str
    tuner: str
    interval_ms: float

    def reset(self, sim, seeds: np.ndarray) -> list[str]: ...

    def act(self, sim, last: bool = False) -> list[str]: ...


def run(policy: Policy, scenario, seeds: np.ndarray, duration_s: float, log: list[str] | None = None,
        sims: list | None = None, every_ms: float | None = None,
        on_sample: Callable[[Any], None] | None = None) -> list[dict[str, float]]:
    """The episodes of ``policy`` on ``scenario``, one per seed, in one batched Simulator; each
    machine's metrics. ``log``: the policy's one-line reasons and the in-kernel tuner's actions
    are appended; ``sims``: the Simulator is appended (for a caller that needs more than the
    metrics); ``on_sample(sim)``: called at t = 0 and every ``every_ms`` of simulated time (and at
    the end), after the policy's decision there."""
    seeds = np.asarray(seeds, np.int64)
    B = len(seeds)
    sim = Simulator(scenario, n_machines=B, tuner=policy.tuner)
    sim.reset(seeds)
    if sims is not None:
        sims.append(sim)
    reasons = policy.reset(sim, seeds)
    tick = sim.tick_ms
    n_total = int(round(duration_s * 1000.0 / tick))
    act_every = max(1, int(round(policy.interval_ms / tick))) if policy.interval_ms > 0 else 0
    rec_every = max(1, int(round(every_ms / tick))) if on_sample is not None and every_ms else 0
    chunk = math.gcd(act_every, rec_every) or 10000    # a static policy: long strides
    if on_sample is not None:
        on_sample(sim)
    done = 0
    while done < n_total:
        n = min(chunk, n_total - done)
        sim.advance(n)
        done += n
        if act_every and (done % act_every == 0 or done == n_total):
            reasons += [f"t={done * tick:.0f} ms {r}" for r in policy.act(sim, last=done == n_total)]
        if on_sample is not None and ((rec_every and done % rec_every == 0) or done == n_total):
            on_sample(sim)
    out = []
    for i in range(B):
        out.append(episode_metrics(sim, i))
        if log is not None:
            log += [f"{policy.name} {scenario.name} seed {int(seeds[i])}: {r}" for r in sim.tuner_actions(i)]
    if log is not None:
        log += [f"{policy.name} {scenario.name}: {r}" for r in reasons]
    return out


class Player:
    """Plays a model on a batch of n observations (or, ``n=None``, one env's single observation)
    as it was trained: the observation normalised with the frozen statistics, then stacked (SB3's
    VecNormalize then VecFrameStack order), an LSTM's state and episode_start carried
    (RecurrentPPO). Stochastic play is seeded at every reset (``seed``: the episode's simulator
    seed), so a rerun is identical."""

    def __init__(self, model, vecnorm=None, n_stack: int | None = None, deterministic: bool = True,
                 n: int | None = None) -> None:
        self.model, self.vecnorm, self.deterministic = model, vecnorm, deterministic
        self.single = n is None
        self.n = 1 if n is None else int(n)
        self.stack = None
        if n_stack:
            from stable_baselines3.common.vec_env.stacked_observations import StackedObservations
            space = vecnorm.observation_space if vecnorm is not None else None
            if space is None:
                import gymnasium
                shape = model.observation_space.shape
                space = gymnasium.spaces.Box(-np.inf, np.inf, (shape[0] // n_stack, *shape[1:]), np.float32)
            self.stack = StackedObservations(self.n, int(n_stack), space)
        self.state = None
        self.start = True

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        o = np.asarray(obs, np.float32).reshape(self.n, -1)
        if self.vecnorm is not None:
            o = self.vecnorm.normalize_obs(o)
        return o

    def reset(self, obs: np.ndarray, seed: int | None = None) -> np.ndarray:
        self.state, self.start = None, True
        if not self.deterministic and seed is not None:
            from stable_baselines3.common.utils import set_random_seed
            set_random_seed(int(seed) % 2**32)
        o = self._obs(obs)
        self.cur = self.stack.reset(o) if self.stack is not None else o
        return self.cur

    def act(self):
        """The action (one env: the action; a batch: (n,) or (n, 3) actions)."""
        if self.state is not None or type(self.model).__name__ == "RecurrentPPO":
            a, self.state = self.model.predict(self.cur, state=self.state, episode_start=np.full(self.n, self.start),
                                               deterministic=self.deterministic)
        else:
            a, _ = self.model.predict(self.cur, deterministic=self.deterministic)
        self.start = False
        return a[0] if self.single else a

    def probs(self) -> np.ndarray:
        """(n, actions): the policy's action probabilities for the current observations (a Discrete
        action policy with a distribution: PPO, A2C)."""
        import torch as th
        obs, _ = self.model.policy.obs_to_tensor(self.cur)
        with th.no_grad():
            return self.model.policy.get_distribution(obs).distribution.probs.cpu().numpy()

    def observe(self, obs: np.ndarray) -> None:
        o = self._obs(obs)
        if self.stack is not None:
            o, _ = self.stack.update(o, np.zeros(self.n, bool), [{} for _ in range(self.n)])
        self.cur = o


class VotePlayer:
    """Plays an ensemble of models (deterministic play): each member is a Player of the same batch.
    ``how="vote"``: each machine's action is the one more than half of the members choose; when no
    action has that majority, ``fallback``: action 0 (noop, or the boot setting of the table action
    types; behind the env's gate, the defaults), or for the residual action types psi's own action
    (spaces.psi_action: psi keeps running as it would alone): members that disagree do not act.
    ``how="mean"``: the action with the highest action probability averaged over the members (PPO, A2C)."""

    deterministic = True

    def __init__(self, players: list, how: str = "vote", fallback: int = 0) -> None:
        if len(players) < 2:
            raise ValueError(f"a vote needs at least 2 members, got {len(players)}")
        if how not in ("vote", "mean"):
            raise ValueError(f"how: {how!r}; valid: vote, mean")
        self.players, self.how, self.fallback = players, how, int(fallback)

    def reset(self, obs: np.ndarray, seed: int | None = None) -> None:
        for p in self.players:
            p.reset(obs, seed)

    def act(self):
        if self.how == "mean":
            return np.argmax(np.mean([p.probs() for p in self.players], axis=0), axis=1).astype(np.int64)
        a = np.stack([np.asarray(p.act(), np.int64).reshape(-1) for p in self.players])   # (members, machines)
        return majority(a, self.fallback)

    def observe(self, obs: np.ndarray) -> None:
        for p in self.players:
            p.observe(obs)


def majority(a: np.ndarray, fallback: int = 0) -> np.ndarray:
    """Per column of ``a`` (members, machines) of Discrete actions: the action more than half the
    members chose, else ``fallback``."""
    out = np.full(a.shape[1], fallback, np.int64)
    for i in range(a.shape[1]):
        counts = np.bincount(a[:, i])
        best = int(np.argmax(counts))
        if 2 * counts[best] > a.shape[0]:
            out[i] = best
    return out


class ActionsPlayer:
    """Plays recorded env actions (one episode's list, machine 0; agents.replay's records)."""

    deterministic = True

    def __init__(self, actions: list) -> None:
        self.actions, self.k = list(actions), 0

    def reset(self, obs: np.ndarray, seed: int | None = None) -> None:
        self.k = 0

    def act(self):
        if self.k >= len(self.actions):
            raise ValueError(f"the record holds {len(self.actions)} actions; the episode needs more")
        a = self.actions[self.k]
        self.k += 1
        return np.asarray([a], np.float32) if isinstance(a, list) else np.asarray([int(a)], np.int64)

    def observe(self, obs: np.ndarray) -> None:
        pass


class ModelPolicy:
    """A trained model (or recorded actions) as a policy of :func:`run`: every ``interval_ms`` (its
    env's decision interval) the env's observation of each live machine (envs.core.Core over the
    run's Simulator: the same code as AtomEnv's), the player's action written by the env's action
    mapping (Core.apply). It decides at t = 0 and at the start of every later interval, as in the
    env; the decision after the last interval would act on no interval and is not taken. A
    machine that deadlocked stops (the env's episode ends there). ``record``: keep each machine's
    actions (``self.recorded``)."""

    kind = "model"
    tuner = "none"

    def __init__(self, env_kw: dict, scenario, player, name: str = "model", record: bool = False) -> None:
        # the env the model was trained with, without the reward's machinery (no reward is read here)
        kw = {**env_kw, "reward_baseline": "none", "compute_score": False}
        kw.pop("duration_s", None)
        self.config = EnvConfig.from_options(scenario=scenario, **kw)
        self.interval_ms = self.config.ticks * self.config.sim_scenario.tick_ms
        self.player, self.name, self.record = player, name, record
        self.discrete = self.config.action_type != "continuous"
        self.recorded: list[list] = []

    def reset(self, sim, seeds: np.ndarray) -> list[str]:
        self.core = Core(self.config, sim.B, sim=sim)
        live = np.ones(sim.B, bool)
        self.core.start_episode(live)
        self.recorded = [[] for _ in range(sim.B)]
        self.player.reset(self.core.obs(), seed=int(seeds[0]) if len(seeds) == 1 else None)
        self._apply(live)
        return []

    def act(self, sim, last: bool = False) -> list[str]:
        live = ~sim.terminated
        if last or not live.any():
            return []
        self.core.end_interval(live)
        self.player.observe(self.core.obs())
        self._apply(live)
        return []

    def _apply(self, live: np.ndarray) -> None:
        a = self.player.act()
        a = np.asarray(a, np.int64 if self.discrete else np.float32).reshape(self.core.B, -1)
        if self.record:
            for i in np.flatnonzero(live):
                self.recorded[i].append(int(a[i, 0]) if self.discrete else a[i].tolist())
        self.core.apply(a[:, 0] if self.discrete else a, live)
