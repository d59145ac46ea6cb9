"""AtomSB3VecEnv: stable-baselines3 VecEnv over AtomVectorEnv's batched simulator (no subprocesses).

SB3 semantics: same-step autoreset (the returned observation of a finished env is already the
next episode's first), ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``.
"""
from __future__ import annotations

from concurrent.futures import wait
from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from .vector_env import AtomVectorEnv


def quiet_logger() -> Any:
    """An SB3 logger that writes nothing. A model without a logger of its own makes one at every
    ``learn()`` (``utils.configure_logger()`` -> ``logger.configure()``), and with neither
    ``tensorboard_log`` nor SB3_LOGDIR that one creates an empty ``SB3-<date>`` folder in the system's
    temporary directory: a benchmark's rounds of ``learn()`` left hundreds. ``model.set_logger(quiet_logger())``."""
    from stable_baselines3.common.logger import Logger
    return Logger(folder=None, output_formats=[])


class AtomSB3VecEnv(VecEnv):
    """``AtomSB3VecEnv(num_envs, **AtomVectorEnv kwargs)``; ``seed(s)`` then ``reset()`` seeds env i
    with s + i, as AtomVectorEnv and AtomEnv do."""

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        self.venv = AtomVectorEnv(num_envs=num_envs, **kwargs)
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._all = np.ones(num_envs, bool)

    def reset(self):
        seeds = self._seeds
        if any(s is not None for s in seeds):
            obs, _ = self.venv.reset(seed=[None if s is None else int(s) for s in seeds])
        else:
            obs, _ = self.venv.reset()
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        return self.step_end(self.step_start())

    def checked_actions(self) -> np.ndarray:
        """The actions of step_async(), checked (AtomVectorEnv's rule; ValueError names the space)."""
        v = self.venv
        a = self._actions
        if v.core.discrete and a.size == self.num_envs:   # SB3's (n, 1): reshaped only; the dtype and
            a = a.reshape(self.num_envs)                  # values are AtomVectorEnv's rule (no float truncated)
        return v._check_actions(a)

    def step_start(self, actions: np.ndarray | None = None):
        """step_wait() up to the compiled step (AtomVectorEnv.step_core_start()), with ``actions``
        from checked_actions() (checked here if not given): ConcatVecEnv starts every part's step
        before it ends any, so that one part's helper thread overlaps the next."""
        a = self.checked_actions() if actions is None else actions
        return self.venv.step_core_start(a, self._all)

    def step_end(self, started):
        """The rest of step_wait() (``started``: step_start()'s value)."""
        v = self.venv
        obs, r, term, trunc, info = v.step_core_end(started)
        done = term | trunc
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        keys = list(info)
        for i in range(self.num_envs):
            d = infos[i]
            for k in keys:
                d[k] = info[k][i]
            d["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = obs[i].copy()
            v._reset_envs(done)
            obs = v.core.obs()
        return obs, r.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        val = getattr(self.venv, attr_name)
        return [val for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        res = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [res for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]


class ConcatVecEnv(VecEnv):
    """Several SB3 VecEnvs (one batched AtomSB3VecEnv per scenario) as one: env indices in order,
    actions split, observations/rewards/dones/infos concatenated. Every part has the same spaces."""

    def __init__(self, parts: list[VecEnv]) -> None:
        first = parts[0]
        for v in parts[1:]:
            if v.observation_space != first.observation_space or v.action_space != first.action_space:
                raise ValueError(f"scenario: every scenario must give the same observation and action "
                                 f"spaces; {first.observation_space}/{first.action_space} vs "
                                 f"{v.observation_space}/{v.action_space}")
        self.parts = parts
        self.bounds = np.cumsum([0, *[v.num_envs for v in parts]])
        super().__init__(int(self.bounds[-1]), first.observation_space, first.action_space)

    def _each(self):
        return zip(self.parts, self.bounds[:-1], self.bounds[1:])

    def seed(self, seed=None):
        return [x for v, lo, _ in self._each() for x in v.seed(None if seed is None else seed + int(lo))]

    def reset(self):
        return np.concatenate([v.reset() for v in self.parts])

    def step_async(self, actions) -> None:
        a = np.asarray(actions)
        for v, lo, hi in self._each():
            v.step_async(a[lo:hi])

    def step_wait(self):
        if all(isinstance(v, AtomSB3VecEnv) for v in self.parts):
            # every part's compiled step started before any ends: a part's helper thread (the second
            # half of its machines) runs while the next part's first half does
            acts = [v.checked_actions() for v in self.parts]   # every part's, before any part steps
            started = []
            try:
                for v, a in zip(self.parts, acts):
                    started.append(v.step_start(a))
            finally:    # every helper ends before anything else happens (also on an error or an interrupt)
                wait([st.pending for st in started if st.pending is not None])
            res = [v.step_end(st) for v, st in zip(self.parts, started)]
        else:
            res = [v.step_wait() for v in self.parts]
        return (np.concatenate([r[0] for r in res]), np.concatenate([r[1] for r in res]),
                np.concatenate([r[2] for r in res]), [i for r in res for i in r[3]])

    def close(self) -> None:
        for v in self.parts:
            v.close()

    def _split(self, indices):
        idx = range(self.num_envs) if indices is None else [indices] if isinstance(indices, int) else indices
        for v, lo, hi in self._each():
            sub = [int(i) - int(lo) for i in idx if lo <= i < hi]
            if sub:
                yield v, sub

    def get_attr(self, attr_name, indices=None):
        return [x for v, sub in self._split(indices) for x in v.get_attr(attr_name, sub)]

    def set_attr(self, attr_name, value, indices=None) -> None:
        for v, sub in self._split(indices):
            v.set_attr(attr_name, value, sub)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        return [x for v, sub in self._split(indices)
                for x in v.env_method(method_name, *method_args, indices=sub, **method_kwargs)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [x for v, sub in self._split(indices) for x in v.env_is_wrapped(wrapper_class, sub)]
