"""`python -m agents.train [--config FILE] [--resume RUN_DIR] [--total-timesteps N] [--runs-dir DIR]`

Trains a stable-baselines3 policy (PPO, or SAC with continuous actions) on the batched atomgym
simulator (``AtomSB3VecEnv``: one compiled simulator, no subprocesses), then compares it with the
baselines through ``agents.evaluate`` on held-out seeds.

Each run gets its own folder ``runs/{scenario}__{algo}__{seed}__{time}`` holding the resolved
config (``config.yml``), the command line (``command.txt``), TensorBoard logs (``tb/``),
checkpoints (``checkpoints/``), the final model (``model.zip``) and the evaluation (``eval/``).
Nothing existing is overwritten: a new run never reuses a folder. Ctrl-C saves a checkpoint at once
(exit 130); ``--resume RUN_DIR`` continues an interrupted run from its newest checkpoint that loads
(a truncated one is skipped, with a message; the TensorBoard curve continues where it stopped) and
refuses a finished run (``model.zip`` saved). Checkpoints, ``model.zip`` and ``config.yml`` are written
to a temporary file and renamed. Before the run folder exists, the config is checked and the env,
the algorithm and every evaluation machine are built once (``validate_build``): a config that would
fail later is one line naming the file and key, exit 2, and no folder.

The config is YAML with these keys (``configs/train/default.yaml`` is the default)::

    scenario: train-randomized   # a shipped scenario name or a YAML path
    algo: ppo                    # ppo | sac (sac needs action_type: continuous)
    seed: 0
    n_envs: 16                   # machines in the one batched simulator
    total_timesteps: 20000       # agent steps summed over the machines
    action_type: discrete        # discrete | continuous
    decision_interval_ms: 100    # optional; the env's default otherwise
    reward_baseline: default     # optional: none (default) | default (reward minus a default-settings shadow's)
    checkpoint_every: 5000       # agent steps
    ppo: {n_steps: 128, ...}     # keyword arguments of the algorithm's constructor
    evaluate: {policies: [...], scenarios: [...], seeds: 3, duration_s: 60}
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import shlex
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import yaml

from atomgym.paths import TRAIN_CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = TRAIN_CONFIG_DIR / "default.yaml"
ALGOS = ("ppo", "sac")
KEYS = {"scenario", "algo", "seed", "n_envs", "total_timesteps", "action_type", "decision_interval_ms",
        "reward_baseline", "checkpoint_every", "evaluate", *ALGOS}
EVAL_KEYS = {"policies", "scenarios", "seeds", "duration_s"}
DEFAULTS: dict[str, Any] = {"algo": "ppo", "seed": 0, "n_envs": 16, "action_type": "discrete",
                            "checkpoint_every": 5000}
# constructor arguments agents.train sets itself (the config's top-level seed; the run folder's tb/)
RESERVED_ALGO_ARGS = {"seed", "verbose", "tensorboard_log", "device", "policy", "env"}
MAX_N_ENVS = 1 << 16        # machines in one batched simulator (1024 take ~100 MiB)
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; reads stop here (a device never ends)


class ConfigError(ValueError):
    pass


def _algo_class(name: str):
    from stable_baselines3 import PPO, SAC
    return {"ppo": PPO, "sac": SAC}[name]


def load_config(path: Path) -> dict:
    """Read and validate a training config; every error names the file and the key."""
    try:
        if not path.is_file():
            what = "a directory" if path.is_dir() else ("not a regular file" if path.exists() else "No such file")
            raise ConfigError(f"{path}: cannot read ({what}); "
                              f"expected a YAML file such as {DEFAULT_CONFIG.relative_to(ROOT)}")
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
    if not isinstance(cfg, dict):
        what = "the file is empty (or holds only comments)" if cfg is None else f"got {type(cfg).__name__}"
        raise ConfigError(f"{path}: {what}; expected a mapping with keys {sorted(KEYS)}")
    unknown = sorted(str(k) for k in cfg if k not in KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(KEYS)}")
    cfg = {**DEFAULTS, **cfg}
    for k in ("scenario", "total_timesteps"):
        if k not in cfg:
            raise ConfigError(f"{path}: missing key {k!r}")
    if not isinstance(cfg["scenario"], str):
        raise ConfigError(f"{path}: scenario: expected a shipped scenario name or a YAML path, got "
                          f"{_short(cfg['scenario'])}")
    if cfg["algo"] not in ALGOS:
        raise ConfigError(f"{path}: algo: {cfg['algo']!r}; valid: {', '.join(ALGOS)}")
    if cfg["action_type"] not in ("discrete", "continuous"):
        raise ConfigError(f"{path}: action_type: {cfg['action_type']!r}; valid: discrete, continuous")
    if cfg["algo"] == "sac" and cfg["action_type"] != "continuous":
        raise ConfigError(f"{path}: algo: sac needs action_type: continuous")
    for k in ("n_envs", "total_timesteps", "checkpoint_every"):
        v = cfg[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{path}: {k}: expected a positive integer, got {v!r}")
    if cfg["n_envs"] > MAX_N_ENVS:
        raise ConfigError(f"{path}: n_envs: {cfg['n_envs']} is out of range; valid range 1..{MAX_N_ENVS}")
    # SB3's set_random_seed() seeds numpy's legacy generator, which takes 0..2**32 - 1
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], int) or not 0 <= cfg["seed"] < 2**32:
        raise ConfigError(f"{path}: seed: expected an integer in 0..{2**32 - 1}, got {_short(cfg['seed'])}")
    di = cfg.get("decision_interval_ms")
    if di is not None and (isinstance(di, bool) or not isinstance(di, (int, float)) or not 10 <= di <= 10000):
        raise ConfigError(f"{path}: decision_interval_ms: expected a number in [10, 10000], got {_short(di)}")
    rb = cfg.get("reward_baseline")
    from atomgym.envs.core import REWARD_BASELINES
    if rb is not None and (not isinstance(rb, str) or rb not in REWARD_BASELINES):
        raise ConfigError(f"{path}: reward_baseline: {_short(rb)}; valid: {', '.join(REWARD_BASELINES)}")
    _check_scenario(path, "scenario", cfg["scenario"])
    for name in ALGOS:
        kw = cfg.get(name)
        if kw is None:
            continue
        if not isinstance(kw, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of {name.upper()} keyword arguments")
        _check_algo_kwargs(path, name, kw)
    ev = cfg.get("evaluate") or {}
    if not isinstance(ev, dict) or any(k not in EVAL_KEYS for k in ev):
        raise ConfigError(f"{path}: evaluate: expected a mapping with keys {sorted(EVAL_KEYS)}")
    from agents import baselines
    for k in ("policies", "scenarios"):
        v = ev.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise ConfigError(f"{path}: evaluate.{k}: expected a list of names, got {_short(v)}")
    bad = [p for p in ev.get("policies") or [] if p not in baselines.names()]
    if bad:
        raise ConfigError(f"{path}: evaluate.policies: unknown {bad}; valid: {', '.join(baselines.names())}")
    # checked now, not after the training they would follow
    for sc in ev.get("scenarios") or []:
        _check_scenario(path, "evaluate.scenarios", sc)
    n = ev.get("seeds", 3)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{path}: evaluate.seeds: expected a positive integer, got {n!r}")
    d = ev.get("duration_s")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.001 <= d <= 1e7):
        raise ConfigError(f"{path}: evaluate.duration_s: expected a number of seconds > 0 (0.001..1e7, as the "
                          f"env takes), got {_short(d)}")
    return cfg


def _one_line(msg: str) -> str:
    """A message as one line: control characters (a file name may hold a newline) escaped."""
    return msg if msg.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _check_algo_kwargs(path: Path, name: str, kw: dict) -> None:
    """The algorithm's keyword arguments: known names, not ones agents.train sets, and a value of
    the type of the constructor's default (YAML "64" is a string; SB3 would fail mid-setup)."""
    params = inspect.signature(_algo_class(name).__init__).parameters
    valid = sorted(k for k in params if k not in RESERVED_ALGO_ARGS | {"self"} and not k.startswith("_"))
    for k, v in kw.items():
        if not isinstance(k, str) or k not in params or k == "self" or k.startswith("_"):
            raise ConfigError(f"{path}: {name}: unknown argument(s) {[str(k)]}; valid: {valid}")
        if k in RESERVED_ALGO_ARGS:
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
        else:
            continue                          # None default: checked by building the model (validate_build)
        if not ok:
            raise ConfigError(f"{path}: {name}.{k}: expected {kind} (like its default {default!r}), "
                              f"got {type(v).__name__} {_short(v)}")
        if k in ("gamma", "gae_lambda", "tau") and not 0 <= v <= 1:   # SB3 takes any float: a discount > 1 diverges
            raise ConfigError(f"{path}: {name}.{k}: {_short(v)} is out of range; valid range 0..1")


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
    scenario's snapshot, replay trace, tick against decision_interval_ms), the algorithm with the
    config's arguments (SB3's own checks: n_steps * n_envs > 1, a learning rate it can use, policy
    kwargs), and the machine of every evaluation scenario. Anything that fails is a ConfigError
    naming the config and the key."""
    from atomgym.sim.scenario import ScenarioError, load_scenario

    algo = cfg["algo"]
    try:
        venv = make_vec_env(cfg)
    except (ScenarioError, ValueError) as e:
        msg = _one_line(str(e)) if str(e) else repr(e)
        # the env names its argument (decision_interval_ms: ...); the scenario's machine or trace names its file
        raise ConfigError(f"{path}: {msg}" if msg.split(":")[0] in KEYS else f"{path}: scenario: {msg}") from None
    except MemoryError:
        raise ConfigError(f"{path}: n_envs: not enough memory for {cfg['n_envs']} machines") from None
    try:
        with warnings.catch_warnings():   # SB3's multi-line UserWarnings: this trial build prints nothing
            warnings.simplefilter("ignore")
            _algo_class(algo)("MlpPolicy", venv, seed=cfg["seed"], verbose=0, device="cpu", **(cfg.get(algo) or {}))
    except Exception as e:   # noqa: BLE001 - SB3 and torch raise assertions, TypeErrors, ValueErrors...
        msg = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: {algo}: {algo.upper()}(...) rejects these arguments: {msg}") from None
    finally:
        venv.close()
    # the evaluation's env on every scenario it runs (agents.evaluate: AtomEnv with the config's
    # decision_interval_ms and action type, the evaluation's duration)
    from atomgym.envs.atom_env import AtomEnv
    ev = cfg.get("evaluate") or {}
    kw: dict[str, Any] = {"action_type": cfg["action_type"], "compute_score": False}
    if cfg.get("decision_interval_ms") is not None:
        kw["decision_interval_ms"] = float(cfg["decision_interval_ms"])
    if ev.get("duration_s") is not None:
        kw["duration_s"] = float(ev["duration_s"])
    for sc in ev.get("scenarios") or [cfg["scenario"]]:
        try:
            AtomEnv(load_scenario(sc), **kw)
        except (ScenarioError, ValueError) as e:
            key = "evaluate.scenarios" if ev.get("scenarios") else "evaluate"
            raise ConfigError(f"{path}: {key}: {sc}: {_one_line(str(e))}") from None


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


def _load_newest_valid(algo, run: Path, venv) -> tuple[Any, Path | None]:
    """The model of the newest checkpoint that loads, and its path; (None, None) if none does.
    A checkpoint that does not load (a kill during its save left it truncated) is skipped, and
    the message says so."""
    for ck in _checkpoints(run):
        try:
            if not zipfile.is_zipfile(ck):
                raise ValueError("not a complete zip file")
            model = algo.load(ck, env=venv, tensorboard_log=str(run / "tb"), device="cpu")
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
                save_atomically(self.model, Path(self._checkpoint_path(extension="zip")))
            return True

    return AtomicCheckpoint(save_freq=save_freq, save_path=str(save_path), name_prefix="model")


def make_vec_env(cfg: dict):
    """The batched training environment the config describes, with SB3's VecMonitor (episode
    return and length: rollout/ep_rew_mean in TensorBoard)."""
    from stable_baselines3.common.vec_env import VecMonitor

    from atomgym.envs.sb3 import AtomSB3VecEnv
    kw: dict[str, Any] = {"scenario": cfg["scenario"], "action_type": cfg["action_type"]}
    if cfg.get("decision_interval_ms") is not None:
        kw["decision_interval_ms"] = float(cfg["decision_interval_ms"])
    if cfg.get("reward_baseline") is not None:
        kw["reward_baseline"] = cfg["reward_baseline"]
    venv = AtomSB3VecEnv(num_envs=cfg["n_envs"], **kw)
    venv.seed(cfg["seed"])
    return VecMonitor(venv)


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
    venv = make_vec_env(cfg)
    model, ck = _load_newest_valid(algo, run, venv) if resume else (None, None)
    if resume and ck is None:
        print(f"no loadable checkpoint in {run / 'checkpoints'}: starting this run's training from scratch")
    if ck is not None:
        print(f"resuming from {ck}")
    else:
        model = algo("MlpPolicy", venv, seed=cfg["seed"], verbose=0, tensorboard_log=str(run / "tb"),
                     device="cpu", **(cfg.get(cfg["algo"]) or {}))
    every = max(1, cfg["checkpoint_every"] // cfg["n_envs"])
    from agents.callbacks import training_callbacks   # domain scalars, periodic held-out evaluation, hparams
    cb = CallbackList([_atomic_checkpoint_callback(every, run / "checkpoints"), _reward_terms_callback(),
                       *training_callbacks(cfg, run)])
    done = model.num_timesteps if ck is not None else 0
    remaining = cfg["total_timesteps"] - done
    t0 = time.perf_counter()
    if remaining > 0:
        print(f"training {cfg['algo'].upper()} for {remaining} agent steps on {cfg['n_envs']} machines "
              f"({cfg['scenario']}, {cfg['action_type']} actions)")
        try:
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=ck is None,
                        tb_log_name=cfg["algo"], progress_bar=sys.stderr.isatty())
        except KeyboardInterrupt:
            ck_path = run / "checkpoints" / f"model_{model.num_timesteps}_steps.zip"
            save_atomically(model, ck_path)
            print(f"\ninterrupted at {model.num_timesteps} agent steps; saved {ck_path}\n"
                  f"continue with: python -m agents.train --resume {run}", file=sys.stderr)
            return None
    wall = time.perf_counter() - t0
    out = run / "model.zip"
    save_atomically(model, out)
    print(f"model saved to {out} ({model.num_timesteps} agent steps; this session {wall:.0f} s wall, "
          f"{max(remaining, 0) / max(wall, 1e-9):.0f} steps/s including updates)")
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # one line, exit 2
        self.exit(2, f"agents.train: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _run_is_complete(run: Path) -> bool:
    """model.zip is written last, atomically: a loadable zip there means training finished."""
    return (run / "model.zip").is_file() and zipfile.is_zipfile(run / "model.zip")


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m agents.train", description=__doc__.split("\n\n")[1])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config YAML")
    ap.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run folder")
    ap.add_argument("--total-timesteps", type=_positive_int, help="override the config's total_timesteps")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs", help="where new run folders go")
    ap.add_argument("--no-eval", action="store_true", help="train only; skip the comparison with the baselines")
    ap.add_argument("--seeds", metavar="LIST", help="train one run per seed (e.g. 0-9) through Ray: agents/multiseed.py")
    ap.add_argument("--ray-address", help="with --seeds: a Ray cluster's address (default: Ray on this machine)")
    args = ap.parse_args(argv)
    if args.seeds is not None:                           # many seeds: agents/multiseed.py dispatches the runs
        from agents import multiseed
        return multiseed.main(multiseed.argv_from_train(args))
    try:
        if args.resume:
            if not (args.resume / "config.yml").is_file():
                raise ConfigError(f"{args.resume}: not a run folder (no config.yml)")
            if _run_is_complete(args.resume):
                raise ConfigError(f"{args.resume}: the run is complete (model.zip is saved); nothing to resume. "
                                  f"Train further in a new run: --config {args.resume / 'config.yml'}")
            cfg = load_config(args.resume / "config.yml")
        else:
            cfg = load_config(args.config)
        if args.total_timesteps is not None:
            cfg["total_timesteps"] = args.total_timesteps
        # everything that could fail once the run folder exists, tried before it does
        validate_build(cfg, args.resume / "config.yml" if args.resume else args.config)
    except ConfigError as e:
        print(f"agents.train: error: {_one_line(str(e))}", file=sys.stderr)
        return 2

    created: Path | None = None     # a folder this call made that holds no resumable run yet
    run: Path | None = None
    try:
        if args.resume:
            run = args.resume
            if args.total_timesteps is not None:   # the run folder records what the run now aims at
                _write_text_atomically(run / "config.yml", yaml.safe_dump(cfg, sort_keys=False))
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base = args.runs_dir / f"{Path(str(cfg['scenario'])).stem}__{cfg['algo']}__{cfg['seed']}__{stamp}"
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
            _write_text_atomically(run / "config.yml", yaml.safe_dump(cfg, sort_keys=False))
        with open(run / "command.txt", "a") as f:
            f.write(" ".join(shlex.quote(a) for a in [sys.executable, "-m", "agents.train",
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
            print(_one_line(f"agents.train: error: {where}: cannot write: {e.strerror or e}; no run folder was "
                            f"left"), file=sys.stderr)
        else:
            print(_one_line(f"agents.train: error: {where}: cannot write: {e.strerror or e}; the run is "
                            f"incomplete: continue it with --resume {run} once the problem is fixed"), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, FloatingPointError) as e:
        # what no dry build can show: e.g. a learning rate that makes the policy diverge to NaN
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(_one_line(f"agents.train: error: {run}: training failed: {why}; check the {cfg['algo']}: arguments "
                        f"of {args.resume / 'config.yml' if args.resume else args.config} (a learning rate too "
                        f"high makes the policy NaN); the checkpoints so far stay in {run / 'checkpoints'}"),
              file=sys.stderr)
        return 2
    if model is None:
        return 130
    if args.no_eval:
        return 0
    from agents import baselines, evaluate
    ev = cfg.get("evaluate") or {}
    pols = list(ev.get("policies") or baselines.names())
    eargs = ["--policies", ",".join([*pols, str(model)]),
             "--scenarios", ",".join(ev.get("scenarios") or [str(cfg["scenario"])]),
             "--seeds", str(ev.get("seeds", 3)), "--out", str(run / "eval")]
    if ev.get("duration_s") is not None:
        eargs += ["--duration-s", str(ev["duration_s"])]
    print("comparing with the baselines: python -m agents.evaluate " + " ".join(shlex.quote(a) for a in eargs))
    return evaluate.main(eargs)


if __name__ == "__main__":
    sys.exit(main())
