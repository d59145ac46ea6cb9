"""A trained model with what it was trained with: its algorithm, its config (NAME.yml beside a
shipped policy, or its run folder's config.yml), the env keyword arguments, frame stack and frozen
normalisation statistics it plays with, nothing of its files unpickled (agents/safeload.py,
agents/normstats.py); and its episodes on the one evaluation path (agents/episodes.py)."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import gymnasium
import numpy as np

from atomgym import files
from atomgym.agents import episodes, normstats, pretrained, safeload
from atomgym.agents.algos import algo_of_model
from atomgym.agents.config import check_env_keys, eval_env_kwargs
from atomgym.agents.episodes import Player
from atomgym.envs.atom_env import make_observation_space
from atomgym.envs.spaces import psi_action
from atomgym.schema import ConfigError

MAX_MODEL_CONFIG_BYTES = 1 << 20       # a model's NAME.yml / config.yml: a short YAML file


def model_config_path(path: Path) -> Path | None:
    """The resolved training config of a model .zip: ``NAME.yml`` beside ``NAME.zip`` (a shipped
    policy, atomgym/agents/pretrained/), else the run folder's ``config.yml`` (``RUN/model.zip``, or
    ``RUN/checkpoints/model_<N>_steps.zip``); None for a bare model."""
    for cfg in (path.with_suffix(".yml"), path.parent / "config.yml", path.parent.parent / "config.yml"):
        _not_a_link(cfg, "the model's training config")
        if cfg.is_file():
            return cfg
    return None


def _not_a_link(p: Path, what: str) -> None:
    """A model's files are read where they are: a symbolic link (to anywhere) is refused, never
    followed out of the folder the user named. ValueError naming the link and its target."""
    if p.is_symlink():
        raise ValueError(f"{p}: {what} is a symbolic link (to {os.readlink(p)}); links are not followed "
                         "from a model's folder: put the file itself there")


def check_model_files(path: Path) -> None:
    """The .zip, its config candidates and its ``<stem>.vecnormalize.*`` statistics: none a symbolic
    link (ValueError naming the first)."""
    _not_a_link(path, "the model")
    model_config_path(path)
    for p in sorted(path.parent.glob(f"{glob.escape(path.stem)}.vecnormalize.*")):
        _not_a_link(p, "the model's normalisation statistics")


class LoadedModel:
    """A trained model with what it was trained with, rebuilt from its config: the algorithm
    class (``algo``), the AtomEnv keyword arguments (``env_kw``: agents.config.eval_env_kwargs),
    the frame stack (``n_stack``) and the normalisation statistics (``vecnorm``: SB3 VecNormalize
    frozen, agents.normstats.NormStats; from ``<stem>.vecnormalize.npz`` beside the .zip)."""

    def __init__(self, model, algo: str, env_kw: dict, n_stack: int | None, vecnorm, config: Path | None) -> None:
        self.model, self.algo, self.env_kw, self.n_stack, self.vecnorm, self.config = (
            model, algo, env_kw, n_stack, vecnorm, config)

    def __iter__(self):            # ``model, env_kw = load_model(path)``, as before
        return iter((self.model, dict(self.env_kw)))

    def player(self, deterministic: bool = True, n: int | None = None) -> Player:
        """A Player of this model: one env's observations (``n`` None) or a batch of n."""
        return Player(self.model, self.vecnorm, self.n_stack, deterministic, n)


def action_type_of(model) -> str:
    """The env action_type a model without a config was trained with, from its action space
    (a Discrete space: "discrete"; a Box: "continuous")."""
    return "discrete" if isinstance(model.action_space, gymnasium.spaces.Discrete) else "continuous"


def load_model(path: Path) -> LoadedModel:
    """A trained SB3 / sb3-contrib model .zip (its algorithm read from the zip's policy class) and
    what it was trained with, from its config (model_config_path): the env keyword arguments, frame
    stacking and, with vec_normalize, the frozen statistics beside it. Nothing of the files is
    unpickled (agents.safeload, agents.normstats); a shipped policy's files are checked against
    their recorded digests. ValueError names the file."""
    check_model_files(path)        # before a byte of them is read
    algo = algo_of_model(path)
    cfg_path = model_config_path(path)
    cfg: dict = {}
    if cfg_path is not None:
        try:
            cfg = files.read_yaml(cfg_path, MAX_MODEL_CONFIG_BYTES, "the model's training config (YAML)") or {}
            if not isinstance(cfg, dict):
                raise AttributeError("not a mapping")
        except (files.FileError, AttributeError) as e:
            raise ValueError(f"{cfg_path}: the model's run config is not readable ({str(e).splitlines()[0]})") from None
    try:
        check_env_keys(cfg_path or path, cfg)
        kw = eval_env_kwargs(cfg)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    n_stack = cfg.get("frame_stack") or None
    pretrained.verify(path, cfg_path)             # a shipped policy: its files are the ones recorded
    try:                           # nothing in the zip is unpickled: its spaces are rebuilt from the config
        data = safeload.read_data(path)
        kw.setdefault("action_type", safeload.action_type_of(data))   # a bare model (no config): its action space says which
        obs_space, act_space = safeload.spaces_of(kw, n_stack)
        model = safeload.load(path, algo, obs_space, act_space, cfg.get(algo) or {}, device="cpu")
    except safeload.UnsafeModelError as e:
        msg = str(e)
        if "does not fit its config" in msg:     # name the config the spaces were built from
            msg += f" ({cfg_path if cfg_path is not None else 'no config beside it: the env defaults'})"
        raise ValueError(msg) from None
    except Exception as e:         # a damaged zip (truncated parameters, ...): whatever SB3/torch raise
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: cannot load the model ({type(e).__name__}{': ' + msg if msg else ''})") from None
    vecnorm = None
    if cfg.get("vec_normalize") not in (None, False):
        vp = normstats.stats_path(path)
        if not vp.is_file():
            if normstats.legacy_path(path).is_file():
                raise ValueError(normstats.legacy_message(normstats.legacy_path(path)))
            raise ValueError(f"{path}: trained with vec_normalize ({cfg_path}) but its statistics {vp} are missing")
        try:                       # plain arrays (frozen: evaluation never updates them)
            vecnorm = normstats.NormStats.read(vp)
        except normstats.StatsError as e:
            raise ValueError(str(e)) from None
        check_normalisation(path, vecnorm, kw)        # another model's statistics: named as such
        vecnorm.observation_space = safeload.spaces_of(kw)[0]
    return LoadedModel(model, algo, kw, n_stack, vecnorm, cfg_path)


def check_normalisation(path: Path, vecnorm, kw: dict) -> None:
    """The normalisation statistics' observation length against the env's: statistics of another
    model would fail mid-episode (or broadcast into nonsense). ValueError naming the model."""
    mean = getattr(vecnorm, "obs_mean", None)        # normstats.NormStats
    if mean is None:                                 # a VecNormalize
        mean = getattr(getattr(vecnorm, "obs_rms", None), "mean", None)
    if mean is None:
        return
    want = make_observation_space(kw.get("observation", "basic")).shape
    if tuple(np.shape(mean)) != tuple(want):
        raise ValueError(f"{path}: its normalisation statistics are for observations of shape {tuple(np.shape(mean))}, "
                         f"the env of its config gives {tuple(want)} (observation: {kw.get('observation', 'basic')}); "
                         "they belong to another model")


def run_model(path: Path, scenario, seeds: np.ndarray, duration_s: float,
              deterministic: bool = True) -> tuple[list[dict], np.ndarray]:
    """A trained SB3 model (a .zip from atomgym.agents.train) on the path every policy takes
    (episodes.run: the env's observations and actions over the batched Simulator; deterministic or
    seeded stochastic actions), each episode on the simulator seed the baselines get (the same
    machine, randomised draws and traffic). Returns the metrics and the simulator seeds."""
    lm = load_model(path)
    return run_loaded(lm.model, lm.env_kw, scenario, seeds, duration_s, lm.vecnorm, lm.n_stack, deterministic)


def run_loaded(model, env_kw: dict, scenario, seeds: np.ndarray, duration_s: float, vecnorm=None,
               n_stack: int | None = None, deterministic: bool = True) -> tuple[list[dict], np.ndarray]:
    """run_model for a model already in memory (``env_kw``: the AtomEnv keyword arguments it
    was trained with; ``vecnorm``: its VecNormalize, only its observation statistics are read;
    ``n_stack``: its frame stack): episodes.run with an episodes.ModelPolicy, the seeds in one
    batched Simulator (stochastic play: one seed at a time, each seeded by its own seed)."""
    env_kw = {"action_type": action_type_of(model), **env_kw}
    seeds = np.asarray(seeds, np.int64)
    groups = [seeds] if deterministic else [seeds[i:i + 1] for i in range(len(seeds))]
    out: list[dict] = []
    for g in groups:
        player = episodes.Player(model, vecnorm, n_stack, deterministic, n=len(g))
        out += episodes.run(episodes.ModelPolicy(env_kw, scenario, player), scenario, g, duration_s)
    return out, seeds.copy()


# what members of a vote must share: they act on one env, through one action mapping
ENSEMBLE_KEYS = ("action_type", "observation", "decision_interval_ms", "gate")


def check_ensemble(paths: list[Path], lms: list[LoadedModel], how: str = "vote") -> dict:
    """The env keyword arguments the members of a vote share (ENSEMBLE_KEYS, frame stack; Discrete
    actions; ``how`` "mean": action probabilities, PPO or A2C); ValueError naming the first member
    that differs from the first, or that has no probabilities."""
    def env_of(lm: LoadedModel) -> dict:
        kw = {"action_type": action_type_of(lm.model), **lm.env_kw}
        return {**{k: kw.get(k) for k in ENSEMBLE_KEYS}, "frame_stack": lm.n_stack}
    first = env_of(lms[0])
    if first["action_type"] == "continuous":
        raise ValueError(f"{paths[0]}: a vote needs Discrete actions; action_type is continuous")
    for p, lm in zip(paths[1:], lms[1:]):
        e = env_of(lm)
        for k, v in first.items():
            if e[k] != v:
                raise ValueError(f"{p}: {k} {e[k]!r}, but {paths[0]} has {v!r}: the members of a vote must act "
                                 f"on the same env ({', '.join(first)})")
    for p, lm in zip(paths, lms):
        if how == "mean" and (not hasattr(lm.model.policy, "get_distribution") or lm.algo == "recurrent_ppo"):
            raise ValueError(f"{p}: mean: needs action probabilities (PPO, A2C); {lm.algo} has none")
    return {"action_type": first["action_type"], **lms[0].env_kw}


def run_ensemble(paths: list[Path], scenario, seeds: np.ndarray, duration_s: float,
                 how: str = "vote") -> tuple[list[dict], np.ndarray]:
    """Trained models as one policy (episodes.VotePlayer: ``how`` "vote", more than half agree, else
    action 0, or psi's own action for the residual action types; "mean", the highest mean action
    probability) on the path every policy takes, deterministic play, the seeds in one batched Simulator."""
    lms = [load_model(p) for p in paths]
    env_kw = check_ensemble(list(paths), lms, how)
    seeds = np.asarray(seeds, np.int64)
    players = [episodes.Player(lm.model, lm.vecnorm, lm.n_stack, True, n=len(seeds)) for lm in lms]
    fallback = psi_action(env_kw["action_type"])
    vote = episodes.VotePlayer(players, how, 0 if fallback is None else fallback)
    out = episodes.run(episodes.ModelPolicy(env_kw, scenario, vote), scenario, seeds, duration_s)
    return out, seeds.copy()


def model_run_id(path: Path) -> str:
    """A trained model's run id: the training seed of its run folder's config.yml, else the folder name."""
    cfg = model_config_path(path)
    if cfg is not None:
        try:
            seed = (files.read_yaml(cfg, MAX_MODEL_CONFIG_BYTES, "a training config") or {}).get("seed")
        except (files.FileError, AttributeError):
            seed = None
        if isinstance(seed, int) and not isinstance(seed, bool):
            return f"seed{seed}"
    return path.parent.name or path.stem
