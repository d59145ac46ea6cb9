"""`python -m agents.train [--config FILE] [--resume RUN_DIR] [--total-timesteps N]`

Trains a stable-baselines3 policy on the batched atomgym simulator and compares it with the
baselines. Each run gets its own folder `runs/{scenario}__{algo}__{seed}__{time}` holding the
resolved config (`config.yml`), the command line (`command.txt`), TensorBoard logs, checkpoints and
the final model; nothing existing is overwritten. `--resume RUN_DIR` continues an interrupted run
from its newest checkpoint.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "train" / "default.yaml"
KEYS = {"scenario", "algo", "seed", "n_envs", "total_timesteps", "action_type", "checkpoint_every",
        "ppo", "evaluate"}


class ConfigError(ValueError):
    pass


def load_config(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of keys {sorted(KEYS)}")
    unknown = set(cfg) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; valid: {sorted(KEYS)}")
    if cfg.get("algo", "ppo") != "ppo":
        raise ConfigError(f"{path}: algo: only 'ppo' is wired into make train so far")
    for k in ("n_envs", "total_timesteps", "checkpoint_every"):
        v = cfg.get(k)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise ConfigError(f"{path}: {k}: expected a positive integer, got {v!r}")
    return cfg


def _envs_available() -> bool:
    try:
        from atomgym.envs import AtomSB3VecEnv  # noqa: F401
    except ImportError:
        return False
    return True


def _newest_checkpoint(run: Path) -> Path | None:
    cks = sorted((run / "checkpoints").glob("*.zip"), key=lambda p: p.stat().st_mtime)
    return cks[-1] if cks else None


def train(cfg: dict, run: Path, resume: bool) -> Path:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback

    from atomgym.envs import AtomSB3VecEnv

    venv = AtomSB3VecEnv(scenario=cfg["scenario"], num_envs=cfg["n_envs"], seed=cfg["seed"],
                         action_type=cfg.get("action_type", "discrete"))
    ck = _newest_checkpoint(run) if resume else None
    if ck is not None:
        print(f"resuming from {ck}")
        model = PPO.load(ck, env=venv, tensorboard_log=str(run / "tb"))
    else:
        model = PPO("MlpPolicy", venv, seed=cfg["seed"], verbose=0, tensorboard_log=str(run / "tb"),
                    device="cpu", **cfg.get("ppo", {}))
    every = max(1, cfg.get("checkpoint_every", 5000) // cfg["n_envs"])
    cb = CheckpointCallback(save_freq=every, save_path=str(run / "checkpoints"), name_prefix="model")
    remaining = cfg["total_timesteps"] - (model.num_timesteps if ck is not None else 0)
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=ck is None,
                    tb_log_name="ppo", progress_bar=False)
    out = run / "model.zip"
    model.save(out)
    print(f"model saved to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--resume", type=Path, help="continue an interrupted run folder")
    ap.add_argument("--total-timesteps", type=int)
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    args = ap.parse_args(argv)
    try:
        if args.resume:
            if not (args.resume / "config.yml").is_file():
                raise ConfigError(f"{args.resume}: not a run folder (no config.yml)")
            cfg = load_config(args.resume / "config.yml")
        else:
            cfg = load_config(args.config)
    except ConfigError as e:
        print(f"agents.train: error: {e}", file=sys.stderr)
        return 2
    if args.total_timesteps:
        cfg["total_timesteps"] = args.total_timesteps

    if not _envs_available():
        print("agents.train: the Gymnasium environments (atomgym.envs) are not implemented yet, so "
              "nothing can be trained. Running what exists instead: the simulator on the default "
              f"scenario ({cfg['scenario']}) with the kernel's default settings.")
        from atomgym.sim import Simulator
        from atomgym.sim.scenario import load_scenario
        s = load_scenario(cfg["scenario"])
        sim = Simulator(s, n_machines=4)
        sim.reset(seeds=[0, 1, 2, 3])
        t = time.time()
        ticks = int(round(s.duration_s * 1000 / s.tick_ms))
        sim.advance(ticks)
        print(f"simulated 4 machines x {s.duration_s:g} s in {time.time() - t:.1f} s wall")
        for name in ("atomic_fail", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "pageoutrun"):
            print(f"  {name:18s} {[int(v) for v in sim.counter(name)]}")
        return 0

    if args.resume:
        run = args.resume
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = args.runs_dir / f"{cfg['scenario']}__{cfg.get('algo', 'ppo')}__{cfg['seed']}__{stamp}"
        run.mkdir(parents=True, exist_ok=False)
        (run / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        (run / "command.txt").write_text(" ".join(shlex.quote(a) for a in [sys.executable, "-m", "agents.train",
                                                                          *(argv or sys.argv[1:])]) + "\n")
    print(f"run folder: {run}  (tensorboard --logdir {run / 'tb'})")
    train(cfg, run, resume=bool(args.resume))
    try:
        from agents import evaluate
    except ImportError:
        print("agents.evaluate is not available yet: no comparison with the baselines.")
        return 0
    ev = cfg.get("evaluate", {})
    return evaluate.main(["--policies", f"kernel-default,v10-acked,{run / 'model.zip'}",
                          "--scenarios", ",".join(ev.get("scenarios", [cfg["scenario"]])),
                          "--seeds", str(ev.get("seeds", 3)), "--out", str(run / "eval")])


if __name__ == "__main__":
    sys.exit(main())
