"""`python -m agents.train [--config FILE] [--resume RUN_DIR] [--total-timesteps N] [--runs-dir DIR]`

Trains a stable-baselines3 policy (PPO, or SAC with continuous actions) on the batched atomgym
simulator (``AtomSB3VecEnv``: one compiled simulator, no subprocesses), then compares it with the
baselines through ``agents.evaluate`` on held-out seeds.

Each run gets its own folder ``runs/{scenario}__{algo}__{seed}__{time}`` holding the resolved
config (``config.yml``), the command line (``command.txt``), TensorBoard logs (``tb/``),
checkpoints (``checkpoints/``), the final model (``model.zip``) and the evaluation (``eval/``).
Nothing existing is overwritten: a new run never reuses a folder. Ctrl-C saves a checkpoint at once
(exit 130); ``--resume RUN_DIR`` continues an interrupted run from its newest checkpoint (the
TensorBoard curve continues where it stopped).

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
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "train" / "default.yaml"
ALGOS = ("ppo", "sac")
KEYS = {"scenario", "algo", "seed", "n_envs", "total_timesteps", "action_type", "decision_interval_ms",
        "reward_baseline", "checkpoint_every", "evaluate", *ALGOS}
EVAL_KEYS = {"policies", "scenarios", "seeds", "duration_s"}
DEFAULTS: dict[str, Any] = {"algo": "ppo", "seed": 0, "n_envs": 16, "action_type": "discrete",
                            "checkpoint_every": 5000}


class ConfigError(ValueError):
    pass


def _algo_class(name: str):
    from stable_baselines3 import PPO, SAC
    return {"ppo": PPO, "sac": SAC}[name]


def load_config(path: Path) -> dict:
    """Read and validate a training config; every error names the file and the key."""
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {sorted(KEYS)}")
    unknown = sorted(set(cfg) - KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(KEYS)}")
    cfg = {**DEFAULTS, **cfg}
    for k in ("scenario", "total_timesteps"):
        if k not in cfg:
            raise ConfigError(f"{path}: missing key {k!r}")
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
    if isinstance(cfg["seed"], bool) or not isinstance(cfg["seed"], int) or cfg["seed"] < 0:
        raise ConfigError(f"{path}: seed: expected an integer >= 0, got {cfg['seed']!r}")
    di = cfg.get("decision_interval_ms")
    if di is not None and (isinstance(di, bool) or not isinstance(di, (int, float)) or not 10 <= di <= 10000):
        raise ConfigError(f"{path}: decision_interval_ms: expected a number in [10, 10000], got {di!r}")
    rb = cfg.get("reward_baseline")
    from atomgym.envs.core import REWARD_BASELINES
    if rb is not None and rb not in REWARD_BASELINES:
        raise ConfigError(f"{path}: reward_baseline: {rb!r}; valid: {', '.join(REWARD_BASELINES)}")
    _check_scenario(path, "scenario", cfg["scenario"])
    for name in ALGOS:
        kw = cfg.get(name)
        if kw is None:
            continue
        if not isinstance(kw, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of {name.upper()} keyword arguments")
        params = set(inspect.signature(_algo_class(name).__init__).parameters) - {"self", "policy", "env"}
        bad = sorted(set(kw) - params)
        if bad:
            raise ConfigError(f"{path}: {name}: unknown argument(s) {bad}; valid: {sorted(params)}")
    ev = cfg.get("evaluate") or {}
    if not isinstance(ev, dict) or set(ev) - EVAL_KEYS:
        raise ConfigError(f"{path}: evaluate: expected a mapping with keys {sorted(EVAL_KEYS)}")
    from agents import baselines
    bad = [p for p in ev.get("policies", []) if p not in baselines.names()]
    if bad:
        raise ConfigError(f"{path}: evaluate.policies: unknown {bad}; valid: {', '.join(baselines.names())}")
    # checked now, not after the training they would follow
    for sc in ev.get("scenarios") or []:
        _check_scenario(path, "evaluate.scenarios", sc)
    n = ev.get("seeds", 3)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{path}: evaluate.seeds: expected a positive integer, got {n!r}")
    d = ev.get("duration_s")
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not d > 0):
        raise ConfigError(f"{path}: evaluate.duration_s: expected a number of seconds > 0, got {d!r}")
    return cfg


def _check_scenario(path: Path, key: str, name: object) -> None:
    from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
    try:
        load_scenario(name)
    except (ScenarioError, FileNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {key}: {str(e).splitlines()[0]}; shipped: {', '.join(list_scenarios())}") from None


def _newest_checkpoint(run: Path) -> Path | None:
    """The checkpoint with the most steps (model_<steps>_steps.zip), or None."""
    def steps(p: Path) -> int:
        try:
            return int(p.stem.split("_")[-2])
        except (IndexError, ValueError):
            return -1
    cks = sorted((run / "checkpoints").glob("model_*_steps.zip"), key=steps)
    return cks[-1] if cks else None


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
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

    algo = _algo_class(cfg["algo"])
    venv = make_vec_env(cfg)
    ck = _newest_checkpoint(run) if resume else None
    if resume and ck is None:
        print(f"no checkpoint in {run / 'checkpoints'} yet: starting this run's training from scratch")
    if ck is not None:
        print(f"resuming from {ck}")
        model = algo.load(ck, env=venv, tensorboard_log=str(run / "tb"), device="cpu")
    else:
        model = algo("MlpPolicy", venv, seed=cfg["seed"], verbose=0, tensorboard_log=str(run / "tb"),
                     device="cpu", **(cfg.get(cfg["algo"]) or {}))
    every = max(1, cfg["checkpoint_every"] // cfg["n_envs"])
    from agents.callbacks import training_callbacks   # domain scalars, periodic held-out evaluation, hparams
    cb = CallbackList([CheckpointCallback(save_freq=every, save_path=str(run / "checkpoints"), name_prefix="model"),
                       _reward_terms_callback(), *training_callbacks(cfg, run)])
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
            ck_path.parent.mkdir(parents=True, exist_ok=True)
            model.save(ck_path)
            print(f"\ninterrupted at {model.num_timesteps} agent steps; saved {ck_path}\n"
                  f"continue with: python -m agents.train --resume {run}", file=sys.stderr)
            return None
    wall = time.perf_counter() - t0
    out = run / "model.zip"
    model.save(out)
    print(f"model saved to {out} ({model.num_timesteps} agent steps; this session {wall:.0f} s wall, "
          f"{max(remaining, 0) / max(wall, 1e-9):.0f} steps/s including updates)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.split("\n\n")[1])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config YAML")
    ap.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run folder")
    ap.add_argument("--total-timesteps", type=int, help="override the config's total_timesteps")
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
            cfg = load_config(args.resume / "config.yml")
        else:
            cfg = load_config(args.config)
        if args.total_timesteps is not None:
            if args.total_timesteps < 1:
                raise ConfigError(f"--total-timesteps: expected a positive integer, got {args.total_timesteps}")
            cfg["total_timesteps"] = args.total_timesteps
    except ConfigError as e:
        print(f"agents.train: error: {e}", file=sys.stderr)
        return 2

    if args.resume:
        run = args.resume
        if args.total_timesteps is not None:   # the run folder records what the run now aims at
            (run / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = args.runs_dir / f"{Path(str(cfg['scenario'])).stem}__{cfg['algo']}__{cfg['seed']}__{stamp}"
        run, k = base, 1
        while run.exists():
            run = base.with_name(f"{base.name}-{k}")
            k += 1
        run.mkdir(parents=True)
        (run / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with open(run / "command.txt", "a") as f:
        f.write(" ".join(shlex.quote(a) for a in [sys.executable, "-m", "agents.train",
                                                  *(sys.argv[1:] if argv is None else argv)]) + "\n")
    print(f"run folder: {run}  (tensorboard --logdir {run / 'tb'})")
    model = train(cfg, run, resume=bool(args.resume))
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
