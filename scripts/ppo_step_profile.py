"""Where SB3 PPO's frames go on AtomEnv against CartPole (the bench's ``sb3_ppo_vs_cartpole``).

    python scripts/ppo_step_profile.py [--env atomgym/IncastPagecache-v1] [--frames 4096] [--rounds 6]

PPO with the bench's hyperparameters (atomgym.bench._PPO_KW, one torch thread) on CartPole-v1, on
an env with AtomEnv's observation and action spaces that does no work, and on the AtomEnv, their
learn() rounds interleaved; then, inside AtomEnv's PPO run and in a tight loop of env.step(), the
compiled step's time (Core.step_fused(): the engine's ticks, the reward terms, the observation)
and the whole env step's. What the PPO ratio's gap is made of: the spaces (the no-work env against
CartPole), the env's Python, and the compiled step in PPO's loop (its code and data cold after the
policy's forward pass) against the same step in a tight loop. docs/simulator.md, "Speed".
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class NoWork(gym.Env):
    """An env with the given spaces whose step returns at once (200-step episodes)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self._obs = np.zeros(observation_space.shape, observation_space.dtype)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs.copy(), {}

    def step(self, action):
        self._t += 1
        return self._obs.copy(), 0.0, False, self._t >= 200, {}


def _positive(v: str) -> int:
    n = int(v) if v.strip().lstrip("-").isdigit() else 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{v!r}: give a whole number >= 1")
    return n


def _timed(obj, name: str, acc: list[float]) -> None:
    """Wrap obj.name so that its calls' time and count add up in acc."""
    f = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        r = f(*a, **k)
        acc[0] += time.perf_counter() - t
        acc[1] += 1
        return r
    setattr(obj, name, wrapper)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="atomgym/IncastPagecache-v1")
    ap.add_argument("--frames", type=_positive, default=4096, help="frames per learn() round and env")
    ap.add_argument("--rounds", type=_positive, default=6)
    a = ap.parse_args()
    import atomgym  # noqa: F401  (registers the envs)
    ids = sorted(k for k in gym.registry if k.startswith("atomgym/"))
    if a.env not in ids:
        ap.error(f"--env {a.env}: not a registered atomgym env; one of {', '.join(ids[:6])}, ...")
    import torch
    from stable_baselines3 import PPO

    from atomgym.bench import _PPO_KW
    from atomgym.envs.sb3 import quiet_logger
    torch.set_num_threads(1)
    atom = gym.make(a.env, compute_score=False)
    envs = {"CartPole-v1": gym.make("CartPole-v1"),
            "no-work env, AtomEnv's spaces": NoWork(atom.observation_space, atom.action_space), a.env: atom}
    core = atom.unwrapped.core
    fused, step = [0.0, 0], [0.0, 0]
    _timed(core, "step_fused", fused)
    _timed(atom.unwrapped, "step", step)
    models = {k: PPO("MlpPolicy", e, **_PPO_KW) for k, e in envs.items()}
    for m in models.values():
        m.set_logger(quiet_logger())
        m.learn(_PPO_KW["n_steps"])
    fused[:], step[:] = [0.0, 0], [0.0, 0]
    spent = {k: 0.0 for k in models}
    for r in range(a.rounds):
        for k, m in (list(models.items()) if r % 2 == 0 else list(models.items())[::-1]):
            t = time.perf_counter()
            m.learn(a.frames, reset_num_timesteps=False)
            spent[k] += time.perf_counter() - t
    n = a.rounds * a.frames
    for k, v in spent.items():
        print(f"{k:34} {n / v:8.0f} frames/s  {v / n * 1e6:6.0f} us a frame")
    print(f"PPO on {a.env} / CartPole: {spent['CartPole-v1'] / spent[a.env]:.3f}x")
    in_ppo = (fused[0] / fused[1] * 1e6, step[0] / step[1] * 1e6)
    fused[:], step[:] = [0.0, 0], [0.0, 0]
    atom.reset(seed=0)
    for i in range(3000):
        _, _, te, tr, _ = atom.step(i % atom.action_space.n if hasattr(atom.action_space, "n") else
                                    atom.action_space.sample())
        if te or tr:
            atom.reset()
    print(f"compiled step (Core.step_fused): {in_ppo[0]:.1f} us inside PPO, {fused[0] / fused[1] * 1e6:.1f} us "
          f"in a tight loop; the whole env step {in_ppo[1]:.1f} / {step[0] / step[1] * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
