"""A training config: the keys of configs/train/*.yaml (and of a run folder's config.yml), read and
checked in one place (TrainConfig, load_config), every error one line naming the file and the key."""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import field
from pathlib import Path
from typing import Any


from atomgym.agents import baselines
from atomgym.agents.algos import ALGOS, CONTINUOUS_ONLY, DISCRETE_ONLY, algo_class
from atomgym.agents.curriculum import check as check_curriculum, check_return_floor, machines as curriculum_machines
from atomgym.agents.kwargs import check_kwargs, vecnormalize_params
from atomgym.envs.atom_env import AtomEnv
from atomgym.envs.vector_env import AtomVectorEnv
from atomgym.paths import DATA_ROOT, TRAIN_CONFIG_DIR
from atomgym import files, schema
from atomgym.schema import ConfigError, one_line, short
from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
from atomgym.suites import scenarios_of

DEFAULT_CONFIG = TRAIN_CONFIG_DIR / "default.yaml"
KEYS = {f.name for f in schema.TRAIN_CONFIG}
EVAL_KEYS = set(schema.EVAL_KEYS)
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
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; reads stop here (a device never ends)


def env_params() -> dict[str, inspect.Parameter]:
    """Keyword arguments both training env (AtomSB3VecEnv -> AtomVectorEnv) and evaluation env
    (AtomEnv) take, minus the ones agents.train sets itself: the valid keys of ``env:``."""
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


def split_envs(n_envs: int, k: int) -> list[int]:
    """n_envs machines over k scenarios, as evenly as possible (the first ones get one more)."""
    return [n_envs // k + (1 if i < n_envs % k else 0) for i in range(k)]


def load_config(path: Path) -> "TrainConfig":
    """Read and validate a training config (TrainConfig); every error names the file and the key.
    The file is read as every user's file is (atomgym.files.read_yaml: bounded, a regular file only,
    its errors one line)."""
    try:
        cfg = files.read_yaml(path, MAX_CONFIG_BYTES, f"a training config (a short YAML file such as "
                                                      f"{DEFAULT_CONFIG.relative_to(DATA_ROOT)})")
    except files.FileError as e:
        raise ConfigError(str(e)) from None
    return TrainConfig.from_mapping(cfg, path)


class _ConfigMapping:
    """A validated training config: the keys of configs/train/*.yaml (and of a run folder's
    config.yml, which is this, saved), one field each, derived from atomgym.schema.TRAIN_CONFIG
    (its default and what is valid). ``TrainConfig.from_mapping`` builds it from the YAML mapping,
    every error one line naming the file and the key; read it by attribute (``cfg.algo``) or, as
    the YAML mapping it stays, by key (``cfg["algo"]``, ``cfg.get("env")``, ``{**cfg}``: the keys
    given plus the defaulted ones)."""

    keys_given: list[str]

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
        given = {**DEFAULTS, **raw}
        for f in schema.TRAIN_CONFIG:
            if f.required and f.name not in given:
                raise ConfigError(f"{path}: missing key {f.name!r}")
        cfg = cls(**given, keys_given=list(given))
        scenarios = scenarios_of(cfg.scenario, path)
        SPEC["algo"].check(cfg.algo, str(path))
        check_env_keys(path, cfg)
        at = env_kwargs(cfg).get("action_type", "discrete")
        if not isinstance(at, str):
            raise ConfigError(f"{path}: action_type: expected a name such as discrete or continuous, got {short(at)}")
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
                                  f"arguments (e.g. {{norm_obs: true, norm_reward: true, clip_obs: 10}}), got {short(vn)}")
            check_kwargs(path, "vec_normalize", vecnormalize_params(), vn, {"venv", "training"})
        if cfg.frame_stack is not None:
            SPEC["frame_stack"].check(cfg.frame_stack, str(path))
        for k in ("n_envs", "total_timesteps", "checkpoint_every", "seed"):
            SPEC[k].check(getattr(cfg, k), str(path))
        if cfg.n_envs < len(scenarios):
            raise ConfigError(f"{path}: n_envs: {cfg.n_envs} machines cannot cover the {len(scenarios)} scenarios; "
                              f"give at least one machine per scenario")
        ekw = env_kwargs(cfg)
        di = ekw.get("decision_interval_ms")
        if di is not None:
            schema.ENV_DECISION_INTERVAL_MS.check(di, str(path))
        rb = ekw.get("reward_baseline")
        if rb is not None and (not isinstance(rb, str) or rb not in schema.REWARD_BASELINES):
            raise ConfigError(f"{path}: reward_baseline: {short(rb)}; valid: {', '.join(schema.REWARD_BASELINES)}")
        for sc in scenarios:
            _check_scenario(path, "scenario", sc)
        for name in ALGOS:
            kw = getattr(cfg, name)
            if kw is None:
                continue
            if not isinstance(kw, dict):
                raise ConfigError(f"{path}: {name}: expected a mapping of {name.upper()} keyword arguments")
            _check_algo_kwargs(path, name, kw)
        ev_scenarios = _check_evaluate(path, cfg.evaluate)
        _check_start_action(path, cfg.start_action, cfg.algo, at)
        check_return_floor(path, cfg.return_floor, rb)
        if cfg.curriculum is not None:
            cfg.curriculum = check_curriculum(path, cfg.curriculum, cfg.n_envs)
            curriculum_machines(path, scenarios)      # fleet machines with a measured class, else ConfigError
        check_unique_names(f"{path}: {'evaluate.scenarios' if ev_scenarios else 'scenario'}",
                            ev_scenarios or scenarios)
        return cfg


# the dataclass: one field per key of the schema's table, its default there
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(f.name, Any, field(default=f.default, metadata={"spec": f})) for f in schema.TRAIN_CONFIG]
    + [("keys_given", list, field(default_factory=list, repr=False, metadata={"internal": True}))],
    bases=(_ConfigMapping,), eq=False)
TrainConfig.__module__ = __name__     # (make_dataclass takes module= only from Python 3.12)
TrainConfig.__doc__ = _ConfigMapping.__doc__
SPEC = {f.name: f for f in schema.TRAIN_CONFIG}


START_ACTION_ALGOS = ("ppo", "a2c", "recurrent_ppo")   # a categorical policy head (action_net)


def _check_start_action(path: Path, sa: Any, algo: str, action_type: str) -> None:
    """``start_action: {action: A, prob: P}``: A an action of the env's Discrete action space, P in (0, 1)."""
    if sa is None:
        return
    from atomgym.envs.spaces import ACTION_TYPES, action_names
    if not isinstance(sa, dict) or set(sa) != {"action", "prob"}:
        raise ConfigError(f"{path}: start_action: expected a mapping {{action: N, prob: P}}, got {short(sa)}")
    if algo not in START_ACTION_ALGOS:
        raise ConfigError(f"{path}: start_action: {algo} has no categorical policy head; "
                          f"valid with: {', '.join(START_ACTION_ALGOS)}")
    if action_type not in ACTION_TYPES or action_type == "continuous":
        raise ConfigError(f"{path}: start_action: needs a Discrete action_type, not {short(action_type)}")
    n = len(action_names(action_type))
    a, p = sa["action"], sa["prob"]
    if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < n:
        raise ConfigError(f"{path}: start_action.action: {short(a)}; expected an action of action_type "
                          f"{action_type}: an integer in 0..{n - 1}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) < 1.0:
        raise ConfigError(f"{path}: start_action.prob: {short(p)}; expected a probability in (0, 1)")


def eval_scenarios(cfg) -> list[str]:
    """The scenarios the evaluation after training runs: ``evaluate.scenarios`` (a suite expanded),
    else the training scenarios. The config keeps them as written (a suite's name, not the paths of
    this machine's fleet cache), so a run's config.yml and a shipped policy's .yml stay portable."""
    ev = cfg.get("evaluate") or {}
    return scenarios_of(ev["scenarios"], None, "evaluate.scenarios") if ev.get("scenarios") else scenarios_of(cfg["scenario"])


def _check_evaluate(path: Path, ev: Any) -> list[str] | None:
    """``evaluate:``: baseline names, scenarios (a suite expanded to check its machines now, not after
    the training they would follow; the config keeps the suite's name), seeds and duration. Returns the
    expanded ``evaluate.scenarios`` (None when not given)."""
    ev = ev or {}
    if not isinstance(ev, dict) or any(k not in EVAL_KEYS for k in ev):
        raise ConfigError(f"{path}: evaluate: expected a mapping with keys {sorted(EVAL_KEYS)}")
    for k in ("policies", "scenarios"):
        v = ev.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{path}: evaluate.{k}: expected a list of names, got {short(v)}")
    bad = [p for p in ev.get("policies") or [] if p not in baselines.names()]
    if bad:
        raise ConfigError(f"{path}: evaluate.policies: unknown {bad}; valid: {', '.join(baselines.names())}")
    scenarios = scenarios_of(ev["scenarios"], path, "evaluate.scenarios") if ev.get("scenarios") else None
    for sc in scenarios or []:
        _check_scenario(path, "evaluate.scenarios", sc)
    # the same Field as evaluate's --seeds and multiseed's --eval-seeds: checked before training starts
    dataclasses.replace(schema.EVAL_SEEDS, name="seeds").check(ev.get("seeds", 3), f"{path}: evaluate")
    d = ev.get("duration_s")
    lo, hi = schema.ENV_DURATION_S.range         # the env's episode length
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not lo <= d <= hi):
        rng = f"{lo:g}..{hi:.0e}".replace("e+0", "e")      # 0.001..1e7
        raise ConfigError(f"{path}: evaluate.duration_s: expected a number of seconds > 0 ({rng}, as the "
                          f"env takes), got {short(d)}")
    return scenarios


def _check_algo_kwargs(path: Path, name: str, kw: dict) -> None:
    """The algorithm's keyword arguments: known names, not ones agents.train sets, and a value of
    the type of the constructor's default (YAML "64" is a string; SB3 would fail mid-setup)."""
    check_kwargs(path, name, inspect.signature(algo_class(name).__init__).parameters, kw, RESERVED_ALGO_ARGS)


def check_env_keys(path: Path, cfg: dict) -> None:
    """``env:``: a mapping of the env constructor's keyword arguments (AtomSB3VecEnv / AtomEnv,
    read from their signatures: whatever they take flows through), not contradicting the
    top-level action_type / decision_interval_ms / reward_baseline."""
    env = cfg.get("env")
    if env is None:
        return
    params = env_params()
    valid = sorted(params)
    if not isinstance(env, dict):
        raise ConfigError(f"{path}: env: expected a mapping of env keyword arguments; valid keys: {valid}")
    for k in env:
        if not isinstance(k, str) or k not in params:
            raise ConfigError(f"{path}: env: unknown key {str(k)!r}; valid: {valid}")
    for k in TOP_LEVEL_ENV_KEYS:
        if k in env and k in cfg and cfg[k] is not None and cfg[k] != env[k]:
            raise ConfigError(f"{path}: env.{k}: {short(env[k])} contradicts the top-level {k}: {short(cfg[k])}; "
                              f"give it once")


def check_unique_names(where: str, names: list[str]) -> None:
    """The evaluation's scenarios have one ``name:`` each (agents.evaluate refuses two files of
    one name, and would do so only after the training); ConfigError starting with ``where``. A
    scenario that does not load is left to the checks that name its error."""
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
    if not isinstance(name, str):
        raise ConfigError(f"{path}: {key}: expected a scenario name or YAML path, got {short(name)}")
    try:
        load_scenario(name)
    except (ScenarioError, FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {key}: {one_line(str(e))}; shipped: {', '.join(list_scenarios())}") from None


def as_dict(cfg) -> dict:
    """A config as the plain mapping YAML saves."""
    return cfg.to_dict() if isinstance(cfg, TrainConfig) else dict(cfg)


def scenario_label(cfg: dict) -> str:
    """The run folder's scenario part: the scenario's name, the suite's, or the first of a list and how many."""
    sc = cfg["scenario"]
    one = lambda x: str(x).replace(":", "-") if str(x).startswith("suite:") else Path(str(x)).stem  # noqa: E731
    if isinstance(sc, str):
        return one(sc)
    return f"{one(sc[0])}+{len(sc) - 1}" if len(sc) > 1 else one(sc[0])
