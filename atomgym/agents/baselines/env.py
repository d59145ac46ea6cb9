"""Run a userspace/static baseline against the Gymnasium env's observation and continuous action
spaces (docs/environment.md), so a baseline is used exactly where a trained agent is.

``EnvPolicy(name, total_pages, boot_min_free_kbytes, decision_interval_ms)`` wraps a baseline;
``predict(obs)`` takes the env's (28,) or (B, 28) observation and returns a continuous action
(B, 3) in [-1, 1] (``action_type="continuous"``): min_free_kbytes and watermark_scale_factor targets
on the env's log scales (the current value = unchanged: within the env's 2 % deadband, not
written), boost level -1 (none). What the env's observation does not carry (total RAM, the boot
value of min_free_kbytes) is given at construction: ``EnvPolicy.for_env(name, env)`` reads it from
the env's simulator. In-kernel tuners (v1...v10) act inside the allocator, not through the env's
actions: they cannot be wrapped (ValueError).
"""
from __future__ import annotations

import math

import numpy as np

from . import DROP_COUNTERS, GATE_DROPS, get

from atomgym.envs.spaces import (  # noqa: E402  (the env's scales: one definition)
    LOG1P_SCALE, MF_MAX_KB, MF_MIN_KB, OBS_ATOMIC_FAIL, OBS_INDEX, OBS_MIN_FREE_KBYTES, OBS_WSF, WSF_MAX, WSF_MIN,
)

_LMF = math.log(MF_MAX_KB / MF_MIN_KB)
_LWSF = math.log(WSF_MAX / WSF_MIN)


class EnvPolicy:
    def __init__(self, name: str, total_pages: int, boot_min_free_kbytes: int, decision_interval_ms: float = 100.0):
        self.policy = get(name)
        if self.policy.kind == "in-kernel":
            raise ValueError(f"{name!r} is an in-kernel tuner (Simulator(tuner={name!r})); it has no env actions")
        self.total_pages, self.boot = int(total_pages), int(boot_min_free_kbytes)
        self.dt = float(decision_interval_ms)

    @classmethod
    def for_env(cls, name: str, env) -> "EnvPolicy":
        core = env.unwrapped.core
        sim = core.sim
        return cls(name, int(sim.managed[0].sum()), int(sim.min_free_kbytes[0]), float(core.decision_interval_ms))

    def _obs(self, o: np.ndarray, st: dict) -> dict[str, np.ndarray]:
        B = o.shape[0]
        per = lambda i: np.expm1(o[:, i].astype(np.float64) * LOG1P_SCALE)  # noqa: E731  (last interval)
        st["t"] += self.dt
        st["fail"] += per(OBS_ATOMIC_FAIL)
        st["drops"] += sum(per(OBS_INDEX[c]) for c in DROP_COUNTERS)    # the counters observe() sums
        st["gate"] += sum(per(OBS_INDEX[c]) for c in GATE_DROPS)
        ratio = o[:, OBS_INDEX["Normal.free_over_min"]].astype(np.float64) * 4.0   # free / min of Normal
        return {"t_ms": st["t"].copy(),
                "min_free_kbytes": np.rint(MF_MIN_KB * np.exp(o[:, OBS_MIN_FREE_KBYTES] * _LMF)).astype(np.int64),
                "watermark_scale_factor": np.rint(WSF_MIN * np.exp(o[:, OBS_WSF] * _LWSF)).astype(np.int64),
                "total_pages": np.full(B, self.total_pages, np.int64),
                "free_pages": np.rint(ratio * 1000).astype(np.int64), "min_pages": np.full(B, 1000, np.int64),
                "low_pages": np.full(B, 1250, np.int64), "high_pages": np.full(B, 1500, np.int64),
                "atomic_fail": st["fail"].copy(), "fail_kernel": np.zeros(B), "drops": st["drops"].copy(),
                "gate_drops": st["gate"].copy(), "default_min_free_kbytes": np.full(B, self.boot, np.int64)}

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        o = np.atleast_2d(np.asarray(observation, dtype=np.float64))
        B = o.shape[0]
        first = state is None or (episode_start is not None and bool(np.all(episode_start)))
        if first:
            state = {"t": np.zeros(B), "fail": np.zeros(B), "drops": np.zeros(B), "gate": np.zeros(B), "since": 0.0,
                     "p": None}
        obs = self._obs(o, state)
        if first:
            state["p"] = self.policy.initial_state(obs)
            state["since"] = 0.0
        state["since"] += self.dt
        mf, wsf = obs["min_free_kbytes"], obs["watermark_scale_factor"]
        act = np.stack([mf, wsf], axis=1)
        if first or state["since"] >= self.policy.interval_ms > 0:
            state["since"] = 0.0
            a, _ = self.policy.decide(obs, state["p"], first)
            act = np.where(a >= 0, a, act)
        out = np.empty((B, 3), np.float32)
        out[:, 0] = 2.0 * np.log(np.clip(act[:, 0], MF_MIN_KB, MF_MAX_KB) / MF_MIN_KB) / _LMF - 1.0
        out[:, 1] = 2.0 * np.log(np.clip(act[:, 1], WSF_MIN, WSF_MAX) / WSF_MIN) / _LWSF - 1.0
        out[:, 2] = -1.0
        return np.clip(out, -1.0, 1.0), state
