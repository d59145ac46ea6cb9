"""SB3 training speed with a training config: frames per second of ``learn()``, and where the time goes.

    python scripts/train_fps.py [--config configs/train/benchmark.yaml] [--steps 8192] [--profile]

Builds the config's training env (agents.train.make_vec_env) and its algorithm with the config's
hyperparameters (one torch thread), runs a first ``learn()`` of one rollout as warm-up (the compile),
then times ``learn(--steps)``. ``--profile`` runs the timed part under cProfile and prints the share
of the wall time spent in the agent's simulated machines (the compiled env step), the reward
shadow (run from a machine's first knob write), environment resets, and SB3's policy update. To compare two commits,
run it in a checkout (or git worktree) of each, alternately: rates on a shared machine drift.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from atomgym.agents import config

REPO = Path(__file__).resolve().parents[1]
# (label, function) of the profile lines reported with --profile: cumulative time of each
PARTS = (("the agent's machines (compiled env step)", ("_compiled.py", "step_fused")),
         ("the reward shadow (from a machine's first knob write)", ("core.py", "_diverge")),
         ("environment resets in all", ("vector_env.py", "_reset_envs")),
         ("SB3's policy update", ("ppo.py", "train")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/train_fps.py", description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "train" / "benchmark.yaml")
    ap.add_argument("--steps", type=int, default=8192, help="agent steps timed (default 8192)")
    ap.add_argument("--profile", action="store_true", help="also print where the time goes (cProfile)")
    args = ap.parse_args(argv)
    if not 1 <= args.steps <= 10**8:
        ap.error(f"--steps must be in 1..{10**8}, got {args.steps}")
    import torch

    from atomgym.agents import train
    from atomgym.agents.algos import algo_class
    from atomgym.envs.sb3 import quiet_logger
    torch.set_num_threads(1)
    try:
        cfg = config.load_config(args.config)
    except config.ConfigError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    algo = cfg["algo"]
    model = algo_class(algo)("MlpPolicy", train.make_vec_env(cfg), device="cpu", seed=int(cfg["seed"]),
                                    verbose=0, **dict(cfg.get(algo) or {}))
    model.set_logger(quiet_logger())
    model.learn(2048)                       # warm-up: the compile and the first rollout
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    model.learn(args.steps, reset_num_timesteps=False)
    if prof is not None:
        prof.disable()
    wall = time.perf_counter() - t0
    print(f"{args.config.name}: {args.steps / wall:,.0f} frames/s ({args.steps} agent steps in {wall:.1f} s, {algo})")
    if prof is not None:
        stats = pstats.Stats(prof).stats           # {(file, line, name): (cc, nc, tt, ct, callers)}
        for label, (file, name) in PARTS:
            ct = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name)
            print(f"  {ct / wall:6.1%}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
