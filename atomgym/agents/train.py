"""`python -m agents.train [--config FILE] [--resume RUN_DIR] [--total-timesteps N] [--runs-dir DIR]`

Trains a stable-baselines3 / sb3-contrib policy (PPO, A2C, DQN, RecurrentPPO, SAC, TD3) on the batched atomgym
simulator (``AtomSB3VecEnv``: one compiled simulator, no subprocesses), then compares it with the
baselines through ``agents.evaluate`` on held-out seeds.

Each run gets its own folder ``runs/{scenario}__{algo}__{seed}__{time}`` holding the resolved
config (``config.yml``), the command line (``command.txt``), TensorBoard logs (``tb/``),
checkpoints (``checkpoints/``), the final model (``model.zip``; with vec_normalize its statistics
``model.vecnormalize.npz``, plain arrays, and each checkpoint's beside it) and the evaluation (``eval/``).
Nothing existing is overwritten: a new run never reuses a folder. Ctrl-C saves a checkpoint at once
(exit 130); ``--resume RUN_DIR`` continues an interrupted run from its newest checkpoint that loads
(a truncated one is skipped, with a message; the TensorBoard curve continues where it stopped) and
refuses a finished run (``model.zip`` saved) and a run whose config (any key but total_timesteps),
scenario files, simulator or cost changed since it started (``identity.json``, agents/identity.py). Checkpoints, ``model.zip`` and ``config.yml`` are written
to a temporary file and renamed. Before the run folder exists, the config is checked and the env,
the algorithm and every evaluation machine are built once (``validate_build``): a config that would
fail later is one line naming the file and key, exit 2, and no folder.

The config is YAML with these keys (``configs/train/default.yaml`` is the default)::

    scenario: train-randomized   # a shipped scenario name or a YAML path; or a list of them, or
                                 # suite:NAME (configs/suites/NAME.txt): n_envs split over them
    algo: ppo                    # ppo | a2c | dqn (discrete) | recurrent_ppo (sb3-contrib) | sac | td3 (continuous)
    seed: 0
    n_envs: 16                   # machines in the batched simulators
    total_timesteps: 20000       # agent steps summed over the machines
    action_type: discrete        # the env's action_type (also settable under env:)
    decision_interval_ms: 100    # optional; the env's default otherwise
    reward_baseline: score       # optional: none (default) | default (minus a default-settings shadow's) | score (that / C_def)
    env: {duration_s: 60, ...}   # any keyword argument of AtomSB3VecEnv/AtomEnv (checked against their signatures)
    vec_normalize: {norm_obs: true, norm_reward: true, clip_obs: 10}   # or false; stats saved beside each .zip
    frame_stack: 4               # optional: SB3 VecFrameStack of the (normalised) observations
    checkpoint_every: 5000       # agent steps
    ppo: {n_steps: 128, ...}     # keyword arguments of the algorithm's constructor (key = the algo's name)
    evaluate: {policies: [...], scenarios: [...], seeds: 3, duration_s: 60}
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import shlex
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from atomgym.agents import command, who
from atomgym.paths import DATA_ROOT, RUNS_DIR, TRAIN_CONFIG_DIR

DEFAULT_CONFIG = TRAIN_CONFIG_DIR / "default.yaml"
ALGOS = ("ppo", "a2c", "dqn", "recurrent_ppo", "sac", "td3")
DISCRETE_ONLY = ("dqn",)          # SB3's DQN takes a Discrete action space only
CONTINUOUS_ONLY = ("sac", "td3")  # SAC/TD3 take a Box action space only
KEYS = {"scenario", "algo", "seed", "n_envs", "total_timesteps", "action_type", "decision_interval_ms",
        "reward_baseline", "checkpoint_every", "evaluate", "env", "vec_normalize", "frame_stack", *ALGOS}
EVAL_KEYS = {"policies", "scenarios", "seeds", "duration_s"}
DEFAULTS: dict[str, Any] = {"algo": "ppo", "seed": 0, "n_envs": 16, "checkpoint_every": 5000}
# constructor arguments agents.train sets itself (the config's top-level seed; the run folder's tb/)
RESERVED_ALGO_ARGS = {"seed", "verbose", "tensorboard_log", "device", "policy", "env"}
# env: keys agents.train / agents.evaluate set themselves (one batched simulator per scenario)
RESERVED_ENV_ARGS = {"self", "num_envs", "scenario", "render_mode", "render_window", "compute_score",
                     "max_episode_steps"}
# env: keys that only shape the training reward (agents.evaluate's cost never reads them): not
# passed to the evaluation env (reward_baseline's shadow machine would only cost time)
REWARD_ONLY_ENV_ARGS = {"reward_baseline"}
# top-level keys kept for older configs: each is the env: key of the same name
TOP_LEVEL_ENV_KEYS = ("action_type", "decision_interval_ms", "reward_baseline")
MAX_N_ENVS = 1 << 16        # machines in one batched simulator (1024 take ~100 MiB)
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; reads stop here (a device never ends)
MAX_FRAME_STACK = 1024


class ConfigError(ValueError):
    pass


def _algo_class(name: str):
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
    if name == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO
        return RecurrentPPO
    return {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC, "td3": TD3}[name]


def policy_name(algo: str) -> str:
    """The SB3 policy of an algorithm: an LSTM for recurrent_ppo, an MLP otherwise."""
    return "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"


def algo_of_model(path: Path) -> str:
    """The algo key of a saved model .zip, read from its policy class's module (ValueError if not a model)."""
    try:
        data = json.loads(zipfile.ZipFile(path).read("data"))
        module = data["policy_class"]["__module__"]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a stable-baselines3 model .zip ({e})") from None
    if "sb3_contrib" in module and "recurrent" in module:
        return "recurrent_ppo"
    for name in ("dqn", "sac", "td3"):
        if f".{name}." in module:
            return name
    if module == "stable_baselines3.common.policies":     # PPO and A2C share ActorCriticPolicy
        return "ppo" if "clip_range" in data else "a2c"
    raise ValueError(f"{path}: policy class from {module} is not one of {', '.join(ALGOS)}")


def _env_params() -> dict[str, inspect.Parameter]:
    """Keyword arguments both training env (AtomSB3VecEnv -> AtomVectorEnv) and evaluation env
    (AtomEnv) take, minus the ones agents.train sets itself: the valid keys of ``env:``."""
    from atomgym.envs.atom_env import AtomEnv
    from atomgym.envs.vector_env import AtomVectorEnv
    a = inspect.signature(AtomVectorEnv.__init__).parameters
    b = inspect.signature(AtomEnv.__init__).parameters
    return {k: v for k, v in a.items() if k in b and k not in RESERVED_ENV_ARGS
            and v.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def env_kwargs(cfg: dict) -> dict[str, Any]:
    """The env constructor keyword arguments of a (validated) config: ``env:`` plus the top-level
    action_type / decision_interval_ms / reward_baseline."""
    kw = dict(cfg.get("env") or {})
    for k in TOP_LEVEL_ENV_KEYS:
        if cfg.get(k) is not None and k not in kw:
            kw[k] = float(cfg[k]) if k == "decision_interval_ms" else cfg[k]
    return kw


def eval_env_kwargs(cfg: dict) -> dict[str, Any]:
    """The AtomEnv keyword arguments agents.evaluate rebuilds: the training env's, without its
    episode length (the evaluation's own) and the reward-only keys."""
    return {k: v for k, v in env_kwargs(cfg).items() if k not in REWARD_ONLY_ENV_ARGS and k != "duration_s"}


def scenarios_of(cfg_scenario: object, path: Path | None = None, key: str = "scenario") -> list[str]:
    """A config's scenario value as a list of names/paths: one name, a list, or ``suite:NAME``
    (configs/suites/NAME.txt: one scenario a line, ``#`` comments)."""
    where = f"{path}: {key}" if path is not None else key
    if isinstance(cfg_scenario, str) and cfg_scenario.startswith("suite:"):
        return read_suite(cfg_scenario[len("suite:"):], where)
    if isinstance(cfg_scenario, str):
        return [cfg_scenario]
    if isinstance(cfg_scenario, list) and cfg_scenario and all(isinstance(x, str) and x for x in cfg_scenario):
        out: list[str] = []
        for x in cfg_scenario:
            for y in (read_suite(x[len("suite:"):], where) if x.startswith("suite:") else [x]):
                if y not in out:
                    out.append(y)
        return out
    raise ConfigError(f"{where}: expected a scenario name, a YAML path, a non-empty list of them or "
                      f"suite:NAME, got {_short(cfg_scenario)}")


def read_suite(name: str, where: str = "suite") -> list[str]:
    """configs/suites/NAME.txt through atomgym.suites (the one reader), errors as ConfigError."""
    from atomgym.sim.scenario import ScenarioError
    from atomgym.suites import SUITE_DIR, list_suites, load_suite
    p = SUITE_DIR / f"{name}.txt"
    shown = p.relative_to(DATA_ROOT) if p.is_relative_to(DATA_ROOT) else p   # the repo's path, as the docs name it
    if not name or "/" in name or not p.is_file():
        raise ConfigError(f"{where}: suite:{name}: no file {shown}; "
                          f"suites: {', '.join(list_suites()) or 'none shipped'}")
    try:
        return load_suite(name)
    except ScenarioError as e:
        raise ConfigError(f"{where}: suite:{name}: {str(e).replace(str(p), str(shown))}") from None


def split_envs(n_envs: int, k: int) -> list[int]:
    """n_envs machines over k scenarios, as evenly as possible (the first ones get one more)."""
    return [n_envs // k + (1 if i < n_envs % k else 0) for i in range(k)]


def load_config(path: Path) -> "TrainConfig":
    """Read and validate a training config (TrainConfig); every error names the file and the key."""
    try:
        if not path.is_file():
            what = "a directory" if path.is_dir() else ("not a regular file" if path.exists() else "No such file")
            raise ConfigError(f"{path}: cannot read ({what}); "
                              f"expected a YAML file such as {DEFAULT_CONFIG.relative_to(DATA_ROOT)}")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB; a training config is a short "
                              f"YAML file")
        cfg = yaml.safe_load(raw.decode("utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file (byte {e.start} is not UTF-8); expected YAML") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    except ValueError as e:       # PyYAML's int() of a > 4300-digit number
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    return TrainConfig.from_mapping(cfg, path)


def _opt(default: Any = None, doc: str = "", **md: Any) -> Any:
    """A TrainConfig field: its default and metadata (doc; for a checked scalar: kind int or
    choice, range or choices, and what is expected, as the one-line error says it)."""
    return field(default=default, metadata={"doc": doc, **md})


@dataclass(eq=False)
class TrainConfig:
    """A validated training config: the keys of configs/train/*.yaml (and of a run folder's
    config.yml, which is this, saved), one field each with its default and what is valid.
    ``TrainConfig.from_mapping`` builds it from the YAML mapping, every error one line naming the
    file and the key; read it by attribute (``cfg.algo``) or, as the YAML mapping it stays, by key
    (``cfg["algo"]``, ``cfg.get("env")``, ``{**cfg}``: the keys given plus the defaulted ones)."""

    scenario: Any = _opt(doc="a shipped scenario name or YAML path, a non-empty list of them, or suite:NAME "
                             "(n_envs split over them)", required=True)
    total_timesteps: int | None = _opt(doc="agent steps summed over the machines", kind="int", range=(1, None),
                                       expect="a positive integer", required=True)
    algo: str = _opt("ppo", "the algorithm", kind="choice", choices=ALGOS)
    seed: int = _opt(0, "the training seed (SB3 seeds numpy's legacy generator: 0..2**32 - 1)", kind="int",
                     range=(0, 2**32 - 1), expect=f"an integer in 0..{2**32 - 1}")
    n_envs: int = _opt(16, "machines in the batched simulators", kind="int", range=(1, MAX_N_ENVS),
                       expect="a positive integer")
    checkpoint_every: int = _opt(5000, "agent steps between checkpoints", kind="int", range=(1, None),
                                 expect="a positive integer")
    action_type: Any = _opt(doc="the env's action_type (also settable under env:)")
    decision_interval_ms: Any = _opt(doc="the env's decision interval (also settable under env:)")
    reward_baseline: Any = _opt(doc="the env's reward_baseline (also settable under env:)")
    env: dict | None = _opt(doc="keyword arguments of AtomSB3VecEnv / AtomEnv (checked against their signatures)")
    vec_normalize: Any = _opt(doc="false, or SB3 VecNormalize keyword arguments (true: its defaults)")
    frame_stack: int | None = _opt(doc="SB3 VecFrameStack of the (normalised) observations", kind="int",
                                   range=(1, MAX_FRAME_STACK), expect=f"an integer in 1..{MAX_FRAME_STACK} "
                                   "(observations stacked, SB3 VecFrameStack)")
    evaluate: dict | None = _opt(doc=f"the comparison after training: keys {', '.join(sorted(EVAL_KEYS))}")
    ppo: dict | None = _opt(doc="PPO constructor keyword arguments")
    a2c: dict | None = _opt(doc="A2C constructor keyword arguments")
    dqn: dict | None = _opt(doc="DQN constructor keyword arguments")
    recurrent_ppo: dict | None = _opt(doc="RecurrentPPO (sb3-contrib) constructor keyword arguments")
    sac: dict | None = _opt(doc="SAC constructor keyword arguments")
    td3: dict | None = _opt(doc="TD3 constructor keyword arguments")
    # the keys present, in order (the defaulted ones first, as the saved config.yml lists them)
    keys_given: list[str] = field(default_factory=list, repr=False, metadata={"internal": True})

    # ---- the YAML mapping it was (helpers such as env_kwargs read configs and raw dicts alike) ----
    def keys(self) -> list[str]:
        return list(self.keys_given)

    def __contains__(self, key: object) -> bool:
        return key in self.keys_given

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys_given:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in KEYS:
            raise KeyError(f"{key}: not a training config key; valid: {sorted(KEYS)}")
        setattr(self, key, value)
        if key not in self.keys_given:
            self.keys_given.append(key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys_given else default

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys_given]

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping (what config.yml saves)."""
        return {k: getattr(self, k) for k in self.keys_given}

    @classmethod
    def from_mapping(cls, raw: object, path: Path) -> "TrainConfig":
        """Validate a config's YAML mapping (a ConfigError names ``path`` and the key)."""
        if not isinstance(raw, dict):
            what = "the file is empty (or holds only comments)" if raw is None else f"got {type(raw).__name__}"
            raise ConfigError(f"{path}: {what}; expected a mapping with keys {sorted(KEYS)}")
        unknown = sorted(str(k) for k in raw if k not in KEYS)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(KEYS)}")
        fields_ = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        given = {**DEFAULTS, **raw}
        for k, f in fields_.items():
            if f.metadata.get("required") and k not in given:
                raise ConfigError(f"{path}: missing key {k!r}")
        cfg = cls(**given, keys_given=list(given))
        scenarios = scenarios_of(cfg.scenario, path)
        _check_field(path, fields_["algo"], cfg.algo)
        _check_env_keys(path, cfg)
        at = env_kwargs(cfg).get("action_type", "discrete")
        if not isinstance(at, str):
            raise ConfigError(f"{path}: action_type: expected a name such as discrete or continuous, got {_short(at)}")
        # the pairing by name here; validate_build checks the built action space for any other action_type
        if cfg.algo in CONTINUOUS_ONLY and at.startswith("discrete"):
            raise ConfigError(f"{path}: algo: {cfg.algo} needs a continuous action space (action_type: continuous), "
                              f"not action_type: {at}")
        if cfg.algo in DISCRETE_ONLY and at == "continuous":
            raise ConfigError(f"{path}: algo: {cfg.algo} needs a discrete action space, not action_type: continuous")
        vn = cfg.vec_normalize
        if vn is not None and vn is not False:
            if vn is True:
                cfg.vec_normalize = vn = {}
            if not isinstance(vn, dict):
                raise ConfigError(f"{path}: vec_normalize: expected false or a mapping of VecNormalize keyword "
                                  f"arguments (e.g. {{norm_obs: true, norm_reward: true, clip_obs: 10}}), got {_short(vn)}")
            _check_kwargs(path, "vec_normalize", _vecnormalize_params(), vn, {"venv", "training"})
        if cfg.frame_stack is not None:
            _check_field(path, fields_["frame_stack"], cfg.frame_stack)
        for k in ("n_envs", "total_timesteps", "checkpoint_every", "seed"):
            _check_field(path, fields_[k], getattr(cfg, k))
        if cfg.n_envs < len(scenarios):
            raise ConfigError(f"{path}: n_envs: {cfg.n_envs} machines cannot cover the {len(scenarios)} scenarios; "
                              f"give at least one machine per scenario")
        ekw = env_kwargs(cfg)
        di = ekw.get("decision_interval_ms")
        if di is not None and (isinstance(di, bool) or not isinstance(di, (int, float)) or not 10 <= di <= 10000):
            raise ConfigError(f"{path}: decision_interval_ms: expected a number in [10, 10000], got {_short(di)}")
        rb = ekw.get("reward_baseline")
        from atomgym.envs.core import REWARD_BASELINES
        if rb is not None and (not isinstance(rb, str) or rb not in REWARD_BASELINES):
            raise ConfigError(f"{path}: reward_baseline: {_short(rb)}; valid: {', '.join(REWARD_BASELINES)}")
        for sc in scenarios:
            _check_scenario(path, "scenario", sc)
        for name in ALGOS:
            kw = getattr(cfg, name)
            if kw is None:
                continue
            if not isinstance(kw, dict):
                raise ConfigError(f"{path}: {name}: expected a mapping of {name.upper()} keyword arguments")
            _check_algo_kwargs(path, name, kw)
        _check_evaluate(path, cfg.evaluate)
        ev = cfg.evaluate or {}
        _check_unique_names(f"{path}: {'evaluate.scenarios' if ev.get('scenarios') else 'scenario'}",
                            ev.get("scenarios") or scenarios)
        return cfg


def _check_field(path: Path, f: dataclasses.Field, v: Any) -> None:
    """A scalar field against its metadata: one line naming the file and the key, and what is valid."""
    md = f.metadata
    if md.get("kind") == "choice":
        if not isinstance(v, str) or v not in md["choices"]:
            raise ConfigError(f"{path}: {f.name}: {_short(v)}; valid: {', '.join(md['choices'])}")
        return
    lo, hi = md["range"]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{path}: {f.name}: expected {md['expect']}, got {_short(v)}")
    if hi is not None and v > hi:
        if lo == 1 and md["expect"] == "a positive integer":      # n_envs: the upper bound is the news
            raise ConfigError(f"{path}: {f.name}: {v} is out of range; valid range {lo}..{hi}")
        raise ConfigError(f"{path}: {f.name}: expected {md['expect']}, got {_short(v)}")


def _check_evaluate(path: Path, ev: Any) -> None:
    """``evaluate:``: baseline names, scenarios (a suite expanded in place: checked now, not after the
    training they would follow), seeds and duration."""
    ev = ev or {}
    if not isinstance(ev, dict) or any(k not in EVAL_KEYS for k in ev):
        raise ConfigError(f"{path}: evaluate: expected a mapping with keys {sorted(EVAL_KEYS)}")
    from atomgym.agents import baselines
    for k in ("policies", "scenarios"):
        v = ev.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{path}: evaluate.{k}: expected a list of names, got {_short(v)}")
    bad = [p for p in ev.get("policies") or [] if p not in baselines.names()]
    if bad:
        raise ConfigError(f"{path}: evaluate.policies: unknown {bad}; valid: {', '.join(baselines.names())}")
    if ev.get("scenarios"):
        ev["scenarios"] = scenarios_of(ev["scenarios"], path, "evaluate.scenarios")
    for sc in ev.get("scenarios") or []:
        _check_scenario(path, "evaluate.scenarios", sc)
    n = ev.get("seeds", 3)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{path}: evaluate.seeds: expected a positive integer, got {n!r}")
    d = ev.get("duration_s")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.001 <= d <= 1e7):
        raise ConfigError(f"{path}: evaluate.duration_s: expected a number of seconds > 0 (0.001..1e7, as the "
                          f"env takes), got {_short(d)}")


def _one_line(msg: str) -> str:
    """A message as one line: control characters (a file name may hold a newline) escaped."""
    return msg if msg.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _check_algo_kwargs(path: Path, name: str, kw: dict) -> None:
    """The algorithm's keyword arguments: known names, not ones agents.train sets, and a value of
    the type of the constructor's default (YAML "64" is a string; SB3 would fail mid-setup)."""
    _check_kwargs(path, name, inspect.signature(_algo_class(name).__init__).parameters, kw, RESERVED_ALGO_ARGS)


def _vecnormalize_params() -> dict:
    from stable_baselines3.common.vec_env import VecNormalize
    return dict(inspect.signature(VecNormalize.__init__).parameters)


def _check_env_keys(path: Path, cfg: dict) -> None:
    """``env:``: a mapping of the env constructor's keyword arguments (AtomSB3VecEnv / AtomEnv,
    read from their signatures: whatever they take flows through), not contradicting the
    top-level action_type / decision_interval_ms / reward_baseline."""
    env = cfg.get("env")
    if env is None:
        return
    params = _env_params()
    valid = sorted(params)
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: env: expected a mapping of env keyword arguments; valid keys: {valid}")
    for k in env:
        if not isinstance(k, str) or k not in params:
            raise ConfigError(f"{path}: env: unknown key {str(k)!r}; valid: {valid}")
    for k in TOP_LEVEL_ENV_KEYS:
        if k in env and k in cfg and cfg[k] is not None and cfg[k] != env[k]:
            raise ConfigError(f"{path}: env.{k}: {_short(env[k])} contradicts the top-level {k}: {_short(cfg[k])}; "
                              f"give it once")


def _check_kwargs(path: Path, name: str, params, kw: dict, reserved: set) -> None:
    valid = sorted(k for k in params if k not in reserved | {"self"} and not k.startswith("_"))
    for k, v in kw.items():
        if not isinstance(k, str) or k not in params or k == "self" or k.startswith("_"):
            raise ConfigError(f"{path}: {name}: unknown argument(s) {[str(k)]}; valid: {valid}")
        if k in reserved:
            where = "the top-level `seed` key" if k == "seed" else "agents.train itself"
            raise ConfigError(f"{path}: {name}.{k}: set by {where}; remove it from {name}")
        default = params[k].default
        if isinstance(default, bool):
            ok, kind = isinstance(v, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(v, int) and not isinstance(v, bool), "an integer"
        elif isinstance(default, float):
            ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"
        elif isinstance(default, str):       # e.g. SAC's ent_coef: "auto", "auto_0.1" or a number
            ok = isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            kind = "a string or a finite number"
        else:                                 # None default: checked by building the model (validate_build)
            _check_range(path, name, k, v)
            continue
        if not ok:
            raise ConfigError(f"{path}: {name}.{k}: expected {kind} (like its default {default!r}), "
                              f"got {type(v).__name__} {_short(v)}")
        _check_range(path, name, k, v)


# SB3 and VecNormalize take any number for these and then train on nonsense, exit 0 (a negative
# clip_obs clips every observation to one constant, a discount > 1 diverges, n_steps 0 never
# collects): key -> (low, high, low excluded); checked wherever the key is given as a number
NUMERIC_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "gamma": (0, 1, False), "gae_lambda": (0, 1, False), "tau": (0, 1, False),
    "exploration_fraction": (0, 1, False), "exploration_initial_eps": (0, 1, False),
    "exploration_final_eps": (0, 1, False),
    "learning_rate": (0, None, True), "clip_range": (0, None, True), "clip_range_vf": (0, None, True),
    "max_grad_norm": (0, None, True), "target_kl": (0, None, True), "rms_prop_eps": (0, None, True),
    "clip_obs": (0, None, True), "clip_reward": (0, None, True), "epsilon": (0, None, True),
    "ent_coef": (0, None, False), "vf_coef": (0, None, False), "target_policy_noise": (0, None, False),
    "target_noise_clip": (0, None, False), "learning_starts": (0, None, False),
    "n_steps": (1, None, False), "batch_size": (1, None, False), "n_epochs": (1, None, False),
    "buffer_size": (1, None, False), "train_freq": (1, None, False), "target_update_interval": (1, None, False),
    "stats_window_size": (1, None, False), "policy_delay": (1, None, False), "n_critics": (1, None, False),
    "gradient_steps": (-1, None, False), "sde_sample_freq": (-1, None, False),
}


def _check_range(path: Path, name: str, k: str, v: Any) -> None:
    """A numeric keyword argument against NUMERIC_RANGES (one line naming the key and the range)."""
    r = NUMERIC_RANGES.get(k)
    if r is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    lo, hi, open_lo = r
    bad = not math.isfinite(v) or (lo is not None and (v <= lo if open_lo else v < lo)) or (hi is not None and v > hi)
    if k == "gradient_steps" and v == 0:   # -1: as many as environment steps; 0 would never train
        bad = True
    if bad:
        valid = (f"{_fmt(lo)}..{_fmt(hi)}" if hi is not None else
                 f"> {_fmt(lo)}" if open_lo else f">= {_fmt(lo)}") + (" (not 0)" if k == "gradient_steps" else "")
        raise ConfigError(f"{path}: {name}.{k}: {_short(v)} is out of range; valid: {valid}")


def _fmt(x: float | None) -> str:
    return f"{x:g}"


def _check_unique_names(where: str, names: list[str]) -> None:
    """The evaluation's scenarios have one ``name:`` each (agents.evaluate refuses two files of
    one name, and would do so only after the training); ConfigError starting with ``where``. A
    scenario that does not load is left to the checks that name its error."""
    from atomgym.sim.scenario import ScenarioError, load_scenario
    seen: dict[str, str] = {}
    for n in names:
        try:
            sc = load_scenario(n)
        except (ScenarioError, OSError, ValueError, TypeError):
            continue
        first = seen.setdefault(sc.name, sc.source)
        if first != sc.source:
            raise ConfigError(f"{where}: {first} and {sc.source} are both named {sc.name!r}; give each its "
                              f"own name: (episodes.csv tells scenarios apart by it)")


def _check_scenario(path: Path, key: str, name: object) -> None:
    from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
    if not isinstance(name, str):
        raise ConfigError(f"{path}: {key}: expected a scenario name or YAML path, got {_short(name)}")
    try:
        load_scenario(name)
    except (ScenarioError, FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {key}: {_one_line(str(e))}; shipped: {', '.join(list_scenarios())}") from None


def validate_build(cfg: dict, path: Path) -> None:
    """Build what training builds, once, before a run folder exists: the training env (its
    scenarios' snapshots, replay traces, tick against decision_interval_ms, the same spaces on every
    scenario, normalisation and frame stacking), the algorithm with the config's arguments (SB3's
    own checks: n_steps * n_envs > 1, a learning rate it can use, policy kwargs, the action space
    it takes), and the machine of every evaluation scenario. Anything that fails is a ConfigError
    naming the config and the key."""
    import gymnasium

    from atomgym.sim.scenario import ScenarioError, load_scenario

    algo = cfg["algo"]
    try:
        venv = make_vec_env(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (ScenarioError, ValueError, TypeError) as e:
        msg = _one_line(str(e)) if str(e) else repr(e)
        # the env names its argument (decision_interval_ms: ...); the scenario's machine or trace names its file
        head = msg.split(":")[0]
        if head in _env_params() and head not in KEYS:
            msg = f"env.{msg}"
        raise ConfigError(f"{path}: {msg}" if head in KEYS or head in _env_params() else f"{path}: scenario: {msg}") from None
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
                _algo_class(algo)(policy_name(algo), venv, seed=cfg["seed"], verbose=0, device="cpu",
                                  **(cfg.get(algo) or {}))
        except Exception as e:   # noqa: BLE001 - SB3 and torch raise assertions, TypeErrors, ValueErrors...
            msg = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{path}: {algo}: {algo.upper()}(...) rejects these arguments: {msg}") from None
    finally:
        venv.close()
    # the evaluation's env on every scenario it runs (agents.evaluate: AtomEnv with the training
    # env's keyword arguments, the evaluation's duration)
    from atomgym.envs.atom_env import AtomEnv
    ev = cfg.get("evaluate") or {}
    kw: dict[str, Any] = {**eval_env_kwargs(cfg), "compute_score": False}
    if ev.get("duration_s") is not None:
        kw["duration_s"] = float(ev["duration_s"])
    for sc in ev.get("scenarios") or scenarios_of(cfg["scenario"]):
        try:
            AtomEnv(load_scenario(sc), **kw)
        except (ScenarioError, ValueError) as e:
            key = "evaluate.scenarios" if ev.get("scenarios") else "evaluate"
            raise ConfigError(f"{path}: {key}: {sc}: {_one_line(str(e))}") from None


def as_dict(cfg) -> dict:
    """A config as the plain mapping YAML saves."""
    return cfg.to_dict() if isinstance(cfg, TrainConfig) else dict(cfg)


def scenario_label(cfg: dict) -> str:
    """The run folder's scenario part: the scenario's name, the suite's, or the first of a list and how many."""
    sc = cfg["scenario"]
    if isinstance(sc, str):
        return sc.replace(":", "-") if sc.startswith("suite:") else Path(sc).stem
    return f"{Path(str(sc[0])).stem}+{len(sc) - 1}" if len(sc) > 1 else Path(str(sc[0])).stem


def _checkpoints(run: Path) -> list[Path]:
    """The run's checkpoints (model_<steps>_steps.zip), newest (most steps) first."""
    def steps(p: Path) -> int:
        try:
            return int(p.stem.split("_")[-2])
        except (IndexError, ValueError):
            return -1
    return sorted((run / "checkpoints").glob("model_*_steps.zip"), key=steps, reverse=True)


def _newest_checkpoint(run: Path) -> Path | None:
    """The checkpoint with the most steps (model_<steps>_steps.zip), or None."""
    cks = _checkpoints(run)
    return cks[0] if cks else None


def _load_newest_valid(algo, run: Path, cfg: dict) -> tuple[Any, Path | None]:
    """The model of the newest checkpoint that loads (with its env: normalisation statistics
    from the checkpoint's .vecnormalize.npz), and its path; (None, None) if none does. A checkpoint
    that does not load (a kill during its save left it truncated) is skipped, and the message says so.
    Nothing in a checkpoint is unpickled (agents/safeload.py: the spaces are the env's); a checkpoint
    holding a pickled object this loader does not rebuild, or statistics left in the old pickle
    format, is refused (ConfigError), not skipped."""
    from atomgym.agents import normstats, safeload
    vn = cfg.get("vec_normalize") not in (None, False)
    for ck in _checkpoints(run):
        try:
            if not zipfile.is_zipfile(ck):
                raise ValueError("not a complete zip file")
            if vn and not vecnormalize_path(ck).is_file():
                if normstats.legacy_path(ck).is_file():
                    raise ConfigError(normstats.legacy_message(normstats.legacy_path(ck)))
                raise ValueError(f"no normalisation statistics {vecnormalize_path(ck).name}")
            venv = make_vec_env(cfg, vecnormalize_path(ck) if vn else None)
            model = safeload.load(ck, cfg["algo"], venv.observation_space, venv.action_space, cfg.get(cfg["algo"]),
                                  env=venv, tensorboard_log=str(run / "tb"), device="cpu")
        except (ConfigError, safeload.UnsafeModelError) as e:
            if isinstance(e, safeload.UnsafeModelError) and "not a stable-baselines3 model" in str(e):
                why = str(e)
            else:
                raise ConfigError(str(e)) from None
            print(f"checkpoint {ck} cannot be loaded ({why}; a kill during its save leaves it truncated): "
                  f"falling back to the one before", file=sys.stderr)
            continue
        except Exception as e:   # noqa: BLE001 - whatever a damaged file makes SB3/torch raise
            why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"checkpoint {ck} cannot be loaded ({why}; a kill during its save leaves it truncated): "
                  f"falling back to the one before", file=sys.stderr)
            continue
        return model, ck
    return None, None


def _replace_atomically(path: Path, suffix: str, write) -> None:
    """``write(binary file)`` into a temporary file created exclusively in ``path``'s directory,
    fsynced, then renamed onto ``path``: a kill or a full disk never leaves a truncated file under a
    name that looks complete. The temporary file never outlives a failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_atomically(model, path: Path) -> None:
    """``model.save()`` onto ``path`` atomically (_replace_atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(path, ".zip.tmp", model.save)


def _write_text_atomically(path: Path, text: str) -> None:
    _replace_atomically(path, ".tmp", lambda fh: fh.write(text.encode("utf-8")))


def _atomic_checkpoint_callback(save_freq: int, save_path: Path):
    """SB3's CheckpointCallback (model_<steps>_steps.zip every save_freq calls), saving atomically."""
    from stable_baselines3.common.callbacks import CheckpointCallback

    class AtomicCheckpoint(CheckpointCallback):
        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                save_model(self.model, Path(self._checkpoint_path(extension="zip")))
            return True

    return AtomicCheckpoint(save_freq=save_freq, save_path=str(save_path), name_prefix="model")


class ConcatVecEnv:
    """Several SB3 VecEnvs (one batched AtomSB3VecEnv per scenario) as one: env indices in order,
    actions split, observations/rewards/dones/infos concatenated. Every part has the same spaces."""

    def __new__(cls, venvs: list):
        from stable_baselines3.common.vec_env.base_vec_env import VecEnv

        class _Concat(VecEnv):
            def __init__(self, parts: list) -> None:
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

        return _Concat(venvs)


def base_vec_env(cfg: dict):
    """The batched simulators of the config, unwrapped: one AtomSB3VecEnv per scenario (n_envs
    split over them, split_envs), seeded so that no two machines share a seed, concatenated
    (ConcatVecEnv) when there are several."""
    from atomgym.envs.sb3 import AtomSB3VecEnv
    scs = scenarios_of(cfg["scenario"])
    kw = env_kwargs(cfg)
    parts = [AtomSB3VecEnv(num_envs=n, scenario=sc, **kw) for sc, n in zip(scs, split_envs(cfg["n_envs"], len(scs)))]
    venv = parts[0] if len(parts) == 1 else ConcatVecEnv(parts)
    venv.seed(cfg["seed"])
    return venv


def make_vec_env(cfg: dict, vecnormalize_path: Path | None = None):
    """The training environment the config describes: the batched simulators (base_vec_env) with
    SB3's VecMonitor (episode return and length: rollout/ep_rew_mean in TensorBoard), then
    VecNormalize (``vec_normalize:``; its statistics read from ``vecnormalize_path``, a .npz of
    plain arrays, when resuming) and VecFrameStack (``frame_stack:``), in that order (the normalised
    frames are stacked)."""
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor, VecNormalize
    venv = VecMonitor(base_vec_env(cfg))
    vn = cfg.get("vec_normalize")
    if vn is not None and vn is not False:
        if vecnormalize_path is not None:
            from atomgym.agents.normstats import NormStats
            venv = NormStats.read(vecnormalize_path, venv.observation_space).vec_normalize(venv)
        else:
            venv = VecNormalize(venv, **(vn if isinstance(vn, dict) else {}))
    if cfg.get("frame_stack"):
        venv = VecFrameStack(venv, int(cfg["frame_stack"]))
    return venv


def vecnormalize_path(model_zip: Path) -> Path:
    """Where a model's normalisation statistics live: ``<stem>.vecnormalize.npz`` beside the .zip
    (agents/normstats.py: plain arrays, never a pickle)."""
    from atomgym.agents.normstats import stats_path
    return stats_path(model_zip)


def save_model(model, path: Path) -> None:
    """The model and, with VecNormalize, its statistics (saved first: a .zip means both are complete),
    both atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vn = model.get_vec_normalize_env()
    if vn is not None:
        from atomgym.agents.normstats import NormStats
        _replace_atomically(vecnormalize_path(path), ".npz.tmp", NormStats.of(vn).write)
    save_atomically(model, path)


def _reward_terms_callback():
    """Logs, per rollout, each reward term's mean per agent step (``reward/<term>``: drops,
    atomic_fail, reserved_mib_s, stall_s, knob_changes, deadlock) so TensorBoard shows which cost
    the policy trades for which."""
    from stable_baselines3.common.callbacks import BaseCallback

    class RewardTerms(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.sums: dict[str, float] = {}
            self.n = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                for k, v in info.items():
                    if k.startswith("reward_"):
                        self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.n += len(self.locals["infos"])
            return True

        def _on_rollout_end(self) -> None:
            for k, v in self.sums.items():
                self.logger.record(f"reward/{k[len('reward_'):]}", v / max(self.n, 1))

    return RewardTerms()


def train(cfg: dict, run: Path, resume: bool) -> Path | None:
    """Train (or continue training) in ``run``; returns the saved model's path, or None when
    interrupted (Ctrl-C), after saving a checkpoint that ``--resume`` continues from."""
    from stable_baselines3.common.callbacks import CallbackList

    algo = _algo_class(cfg["algo"])
    model, ck = _load_newest_valid(algo, run, cfg) if resume else (None, None)
    if resume and ck is None:
        print(f"no loadable checkpoint in {run / 'checkpoints'}: starting this run's training from scratch")
    if ck is not None:
        print(f"resuming from {ck}")
    else:
        model = algo(policy_name(cfg["algo"]), make_vec_env(cfg), seed=cfg["seed"], verbose=0,
                     tensorboard_log=str(run / "tb"), device="cpu", **(cfg.get(cfg["algo"]) or {}))
    every = max(1, cfg["checkpoint_every"] // cfg["n_envs"])
    from atomgym.agents.callbacks import training_callbacks   # domain scalars, periodic held-out evaluation, hparams
    cb = CallbackList([_atomic_checkpoint_callback(every, run / "checkpoints"), _reward_terms_callback(),
                       *training_callbacks(cfg, run)])
    done = model.num_timesteps if ck is not None else 0
    remaining = cfg["total_timesteps"] - done
    t0 = time.perf_counter()
    if remaining > 0:
        scs = scenarios_of(cfg["scenario"])
        print(f"training {cfg['algo'].upper()} for {remaining} agent steps on {cfg['n_envs']} machines "
              f"({', '.join(scs)}, {env_kwargs(cfg).get('action_type', 'discrete')} actions"
              f"{', vec_normalize' if cfg.get('vec_normalize') not in (None, False) else ''}"
              f"{', frame_stack ' + str(cfg['frame_stack']) if cfg.get('frame_stack') else ''})")
        try:
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=ck is None,
                        tb_log_name=cfg["algo"], progress_bar=sys.stderr.isatty())
        except KeyboardInterrupt as e:      # Ctrl-C, or SIGTERM/SIGHUP (interrupts.interruptible)
            ck_path = run / "checkpoints" / f"model_{model.num_timesteps}_steps.zip"
            save_model(model, ck_path)
            print(f"\ninterrupted at {model.num_timesteps} agent steps; saved {ck_path}\n"
                  f"continue with: {command('train')} --resume {run}", file=sys.stderr)
            e.reported = True                # main() exits with the signal's status, printing nothing more
            raise
    wall = time.perf_counter() - t0
    out = run / "model.zip"
    save_model(model, out)
    print(f"model saved to {out} ({model.num_timesteps} agent steps; this session {wall:.0f} s wall, "
          f"{max(remaining, 0) / max(wall, 1e-9):.0f} steps/s including updates)")
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # one line, exit 2
        self.exit(2, f"{who('train')}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


IDENTITY_FILE = "identity.json"     # in a run folder: what the run's result depends on
IDENTITY_FORMAT = "atomgym-train-identity"


def run_identity(cfg: dict) -> dict:
    """What a training run's result depends on (agents/identity.py): its config (every key but
    total_timesteps, which --resume --total-timesteps may raise), the content of its scenarios, the
    simulator's sources and the cost's definition."""
    from atomgym.agents import identity
    from atomgym.sim.scenario import load_scenario
    conf = json.loads(json.dumps({k: v for k, v in as_dict(cfg).items() if k != "total_timesteps"}, default=str))
    scs = scenarios_of(cfg["scenario"])
    return {"config": conf, "scenario": {sc: identity.scenario_digest(load_scenario(sc)) for sc in scs},
            "simulator": identity.simulator_digest(), "cost": identity.cost_digest()}


def check_resume_identity(run: Path, cfg: dict) -> None:
    """--resume continues a run only as it started: the run folder's config.yml (but
    total_timesteps), its scenarios' content, the simulator and the cost unchanged since; else
    ConfigError naming what changed (a checkpoint of another config would not load, and training
    would silently restart from step 0 in this folder)."""
    f = run / IDENTITY_FILE
    fresh = f"start a new run instead: --config {run / 'config.yml'}"
    if not f.exists():
        raise ConfigError(f"{run}: no {IDENTITY_FILE} (a run started by an older agents.train): what it was "
                          f"trained with cannot be checked, so it is not resumed; {fresh}")
    from atomgym import files
    try:
        old = files.read_json(f, MAX_CONFIG_BYTES, "the run's identity")
        if not isinstance(old, dict) or old.get("format") != IDENTITY_FORMAT:
            raise ValueError("format")
    except ValueError:                               # files.FileError is a ValueError
        raise ConfigError(f"{f}: not readable as this run's identity; {fresh}") from None
    from atomgym.agents.identity import WHAT, changed
    new = run_identity(cfg)
    for k in changed(old, new):
        if k == "config":
            o = old.get("config") if isinstance(old.get("config"), dict) else {}
            keys = sorted(set(o) | set(new["config"]), key=str)
            diff = [str(x) for x in keys if changed({"v": o.get(x)}, {"v": new["config"].get(x)})]
            raise ConfigError(f"{run / 'config.yml'}: changed since the run started (key(s) {', '.join(diff)}); "
                              f"--resume continues an unchanged run only; {fresh}")
        what = {"scenario": "the content of its scenario(s) (YAML, trace or snapshot files)"}.get(k, WHAT.get(k, k))
        raise ConfigError(f"{run}: {what} changed since the run started; --resume would continue it on another "
                          f"experiment; {fresh}")


def write_run_identity(run: Path, cfg: dict) -> None:
    _write_text_atomically(run / IDENTITY_FILE, json.dumps({"format": IDENTITY_FORMAT, **run_identity(cfg)},
                                                           indent=1) + "\n")


def _run_is_complete(run: Path) -> bool:
    """model.zip is written last, atomically: a loadable zip there means training finished."""
    return (run / "model.zip").is_file() and zipfile.is_zipfile(run / "model.zip")


def main(argv: list[str] | None = None) -> int:
    from atomgym import interrupts
    try:
        with interrupts.interruptible():    # SIGTERM/SIGHUP as Ctrl-C: a checkpoint is saved
            return _main(argv)
    except KeyboardInterrupt as e:
        if not getattr(e, "reported", False):
            print(f"{who('train')}: interrupted ({interrupts.signal_name(e)}) before training started; "
                  f"no model was saved", file=sys.stderr)
        return interrupts.exit_code(e)


def _main(argv: list[str] | None) -> int:
    ap = _Parser(prog=command("train"), description=__doc__.split("\n\n")[1])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config YAML")
    ap.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run folder")
    ap.add_argument("--total-timesteps", type=_positive_int, help="override the config's total_timesteps")
    ap.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where new run folders go")
    ap.add_argument("--no-eval", action="store_true", help="train only; skip the comparison with the baselines")
    ap.add_argument("--seeds", metavar="LIST", help="train one run per seed (e.g. 0-9) through Ray: agents/multiseed.py")
    ap.add_argument("--ray-address", help="with --seeds: a Ray cluster's address (default: Ray on this machine)")
    args = ap.parse_args(argv)
    if args.seeds is not None:                           # many seeds: agents/multiseed.py dispatches the runs
        from atomgym.agents import multiseed
        return multiseed.main(multiseed.argv_from_train(args))
    try:
        if args.resume:
            if not (args.resume / "config.yml").is_file():
                raise ConfigError(f"{args.resume}: not a run folder (no config.yml)")
            if _run_is_complete(args.resume):
                raise ConfigError(f"{args.resume}: the run is complete (model.zip is saved); nothing to resume. "
                                  f"Train further in a new run: --config {args.resume / 'config.yml'}")
            cfg = load_config(args.resume / "config.yml")
            check_resume_identity(args.resume, cfg)
        else:
            cfg = load_config(args.config)
        if args.total_timesteps is not None:
            cfg["total_timesteps"] = args.total_timesteps
        # everything that could fail once the run folder exists, tried before it does
        validate_build(cfg, args.resume / "config.yml" if args.resume else args.config)
    except ConfigError as e:
        print(f"{who('train')}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2

    created: Path | None = None     # a folder this call made that holds no resumable run yet
    run: Path | None = None
    try:
        if args.resume:
            run = args.resume
            if args.total_timesteps is not None:   # the run folder records what the run now aims at
                _write_text_atomically(run / "config.yml", yaml.safe_dump(as_dict(cfg), sort_keys=False))
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base = args.runs_dir / f"{scenario_label(cfg)}__{cfg['algo']}__{cfg['seed']}__{stamp}"
            cand, k = base, 1
            while True:
                try:
                    cand.mkdir(parents=True)       # never an existing folder (exist_ok=False)
                    break
                except FileExistsError:
                    if not args.runs_dir.is_dir():
                        raise
                    cand = base.with_name(f"{base.name}-{k}")
                    k += 1
            run = created = cand
            _write_text_atomically(run / "config.yml", yaml.safe_dump(as_dict(cfg), sort_keys=False))
            write_run_identity(run, cfg)
        from atomgym import safefiles    # a --resume folder is the user's: no link in it is written through
        with safefiles.open_write(run / "command.txt", append=True) as f:
            f.write(" ".join(shlex.quote(a) for a in [sys.executable, "-m", "atomgym.agents.train",
                                                      *(sys.argv[1:] if argv is None else argv)]) + "\n")
        print(f"run folder: {run}  (tensorboard --logdir {run / 'tb'})")
        created = None                              # from here on the folder holds a resumable run
        model = train(cfg, run, resume=bool(args.resume))
    except OSError as e:
        where = e.filename or run or args.runs_dir
        if run is None or created is not None:     # nothing of a run was written: leave no orphan folder
            if created is not None:
                import shutil
                shutil.rmtree(created, ignore_errors=True)
            print(_one_line(f"{who('train')}: error: {where}: cannot write: {e.strerror or e}; no run folder was "
                            f"left"), file=sys.stderr)
        else:
            print(_one_line(f"{who('train')}: error: {where}: cannot write: {e.strerror or e}; the run is "
                            f"incomplete: continue it with --resume {run} once the problem is fixed"), file=sys.stderr)
        return 2
    except ConfigError as e:      # a checkpoint refused (a pickled object, old-format statistics)
        print(_one_line(f"{who('train')}: error: {e}"), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, FloatingPointError) as e:
        # what no dry build can show: e.g. a learning rate that makes the policy diverge to NaN
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(_one_line(f"{who('train')}: error: {run}: training failed: {why}; check the {cfg['algo']}: arguments "
                        f"of {args.resume / 'config.yml' if args.resume else args.config} (a learning rate too "
                        f"high makes the policy NaN); the checkpoints so far stay in {run / 'checkpoints'}"),
              file=sys.stderr)
        return 2
    if model is None:
        return 130
    if args.no_eval:
        return 0
    from atomgym.agents import baselines, evaluate
    ev = cfg.get("evaluate") or {}
    pols = list(ev.get("policies") or baselines.names())
    eargs = ["--policies", ",".join([*pols, str(model)]),
             "--scenarios", ",".join(ev.get("scenarios") or scenarios_of(cfg["scenario"])),
             "--seeds", str(ev.get("seeds", 3)), "--out", str(run / "eval")]
    if ev.get("duration_s") is not None:
        eargs += ["--duration-s", str(ev["duration_s"])]
    print(f"comparing with the baselines: {command('evaluate')} " + " ".join(shlex.quote(a) for a in eargs))
    return evaluate.main(eargs)


if __name__ == "__main__":
    sys.exit(main())
