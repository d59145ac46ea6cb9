"""The training environment a config describes, and the dry build that checks a config before a run
folder exists: the batched simulators (one AtomSB3VecEnv per scenario, concatenated), VecMonitor,
VecNormalize, VecFrameStack, the algorithm, and the evaluation's env on every scenario it runs."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium

from atomgym.agents.algos import CONTINUOUS_ONLY, DISCRETE_ONLY, algo_class, policy_name
from atomgym.agents.curriculum import bounded_return
from atomgym.agents.config import KEYS, env_kwargs, env_params, eval_env_kwargs, eval_scenarios, split_envs
from atomgym.agents.normstats import NormStats
from atomgym.envs.atom_env import AtomEnv
from atomgym.schema import ConfigError, one_line
from atomgym.sim.scenario import ScenarioError, load_scenario
from atomgym.suites import scenarios_of


def validate_build(cfg: dict, path: Path) -> None:
    """Build what training builds, once, before a run folder exists: the training env (its
    scenarios' snapshots, replay traces, tick against decision_interval_ms, the same spaces on every
    scenario, normalisation and frame stacking), the algorithm with the config's arguments (SB3's
    own checks: n_steps * n_envs > 1, a learning rate it can use, policy kwargs, the action space
    it takes), and the machine of every evaluation scenario. Anything that fails is a ConfigError
    naming the config and the key."""
    algo = cfg["algo"]
    try:
        venv = make_vec_env(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (ScenarioError, ValueError, TypeError) as e:
        msg = one_line(str(e)) if str(e) else repr(e)
        # the env names its argument (decision_interval_ms: ...); the scenario's machine or trace names its file
        head = msg.split(":")[0]
        if head in env_params() and head not in KEYS:
            msg = f"env.{msg}"
        raise ConfigError(f"{path}: {msg}" if head in KEYS or head in env_params() else f"{path}: scenario: {msg}") from None
    except MemoryError:
        raise ConfigError(f"{path}: n_envs: not enough memory for {cfg['n_envs']} machines") from None
    try:
        space = venv.action_space
        at = env_kwargs(cfg).get("action_type", "discrete")
        if algo in DISCRETE_ONLY and not isinstance(space, gymnasium.spaces.Discrete):
            raise ConfigError(f"{path}: algo: {algo} needs a discrete action space; action_type: {at} gives {space}")
        if algo in CONTINUOUS_ONLY and not isinstance(space, gymnasium.spaces.Box):
            raise ConfigError(f"{path}: algo: {algo} needs a continuous action space (action_type: continuous); "
                              f"action_type: {at} gives {space}")
        try:
            with warnings.catch_warnings():   # SB3's multi-line UserWarnings: this trial build prints nothing
                warnings.simplefilter("ignore")
                algo_class(algo)(policy_name(algo), venv, seed=cfg["seed"], verbose=0, device="cpu",
                                  **(cfg.get(algo) or {}))
        except Exception as e:   # noqa: BLE001 - SB3 and torch raise assertions, TypeErrors, ValueErrors...
            msg = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{path}: {algo}: {algo.upper()}(...) rejects these arguments: {msg}") from None
    finally:
        venv.close()
    # the evaluation's env on every scenario it runs (agents.evaluate: AtomEnv with the training
    # env's keyword arguments, the evaluation's duration)
    ev = cfg.get("evaluate") or {}
    kw: dict[str, Any] = {**eval_env_kwargs(cfg), "compute_score": False}
    if ev.get("duration_s") is not None:
        kw["duration_s"] = float(ev["duration_s"])
    for sc in eval_scenarios(cfg):
        try:
            AtomEnv(load_scenario(sc), **kw)
        except (ScenarioError, ValueError) as e:
            key = "evaluate.scenarios" if ev.get("scenarios") else "evaluate"
            raise ConfigError(f"{path}: {key}: {sc}: {one_line(str(e))}") from None


def base_vec_env(cfg: dict, stage: tuple[list[str], list[int], int] | None = None):
    """The batched simulators of the config, unwrapped: one AtomSB3VecEnv per scenario (n_envs
    split over them, split_envs), seeded so that no two machines share a seed, concatenated
    (ConcatVecEnv) when there are several. ``stage``: (scenario files, machines of each, seed) of
    a curriculum's stage (agents.curriculum) instead."""
    # imported here: envs.sb3 is stable-baselines3's (torch: seconds), which only training needs
    from atomgym.envs.sb3 import AtomSB3VecEnv, ConcatVecEnv
    if stage is None:
        scs = scenarios_of(cfg["scenario"])
        stage = (scs, split_envs(cfg["n_envs"], len(scs)), cfg["seed"])
    scs, counts, seed = stage
    kw = env_kwargs(cfg)
    parts = [AtomSB3VecEnv(num_envs=n, scenario=sc, **kw) for sc, n in zip(scs, counts)]
    venv = parts[0] if len(parts) == 1 else ConcatVecEnv(parts)
    venv.seed(seed)
    return venv


def make_vec_env(cfg: dict, vecnormalize_path: Path | None = None,
                 stage: tuple[list[str], list[int], int] | None = None):
    """The training environment the config describes: the batched simulators (base_vec_env, of a
    curriculum's ``stage`` if given) with SB3's VecMonitor (episode return and length:
    rollout/ep_rew_mean in TensorBoard), the bounded return (``return_floor:``,
    agents.curriculum.bounded_return), then VecNormalize (``vec_normalize:``; its statistics read from ``vecnormalize_path``, a .npz of
    plain arrays, when resuming) and VecFrameStack (``frame_stack:``), in that order (the normalised
    frames are stacked)."""
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor, VecNormalize   # torch: see base_vec_env
    venv = VecMonitor(base_vec_env(cfg, stage))
    if cfg.get("return_floor") is not None:
        venv = bounded_return(venv, cfg["return_floor"])
    vn = cfg.get("vec_normalize")
    if vn is not None and vn is not False:
        if vecnormalize_path is not None:
            venv = NormStats.read(vecnormalize_path, venv.observation_space).vec_normalize(venv)
        else:
            venv = VecNormalize(venv, **(vn if isinstance(vn, dict) else {}))
    if cfg.get("frame_stack"):
        venv = VecFrameStack(venv, int(cfg["frame_stack"]))
    return venv
