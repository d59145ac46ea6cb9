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
(a truncated one is skipped, with a message; the TensorBoard curve continues where it stopped); a finished
run (``model.zip`` saved) only with ``--total-timesteps`` above its steps, which trains it further from
its model.zip (kept first as a checkpoint); it refuses a run whose config (any key but total_timesteps),
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

import math
import shlex
import shutil
import sys
import time
from pathlib import Path

import yaml

from atomgym import interrupts, safefiles, schema
from atomgym.agents import baselines, command, evaluate, multiseed, safeload, who
from atomgym.agents.algos import algo_class, policy_name
from atomgym.agents.build import make_vec_env, validate_build
from atomgym.agents.checkpoints import (atomic_checkpoint_callback, check_resume_identity, keep_as_checkpoint,
                                        load_newest_valid, model_steps, run_is_complete, save_model,
                                        write_run_identity)
from atomgym.agents.config import DEFAULT_CONFIG, as_dict, env_kwargs, load_config, scenario_label
from atomgym.agents.usage import Parser, UsageError, fail, run_main
from atomgym.paths import RUNS_DIR
from atomgym.schema import ConfigError, one_line
from atomgym.suites import scenarios_of


def start_action(model, action: int, prob: float) -> None:
    """Warm start (config ``start_action``): raise the new policy's logit of ``action`` so that, with
    the other logits as initialised, it is chosen with probability ``prob`` on a typical observation:
    the categorical head's bias gets log(prob / (1 - prob) x (n - 1)) on that action (SB3 initialises
    the head's weights with gain 0.01, so the logits start near 0). Only at a run's start: a resumed
    run continues from its checkpoint."""
    import torch
    head = model.policy.action_net
    n = head.out_features
    with torch.no_grad():
        head.bias[action] += math.log(prob / (1.0 - prob) * (n - 1))


def train(cfg: dict, run: Path, resume: bool) -> Path | None:
    """Train (or continue training) in ``run``; returns the saved model's path, or None when
    interrupted (Ctrl-C), after saving a checkpoint that ``--resume`` continues from."""
    # imported here: SB3 and the callbacks on it import torch (seconds); --help and bad configs need none of it
    from stable_baselines3.common.callbacks import CallbackList

    from atomgym.agents import callbacks

    algo = algo_class(cfg["algo"])
    model, ck = load_newest_valid(algo, run, cfg) if resume else (None, None)
    if resume and ck is None:
        print(f"no loadable checkpoint in {run / 'checkpoints'}: starting this run's training from scratch")
    if ck is not None:
        print(f"resuming from {ck}")
    cur = None
    if cfg.get("curriculum"):
        from atomgym.agents.curriculum import Curriculum, recorder
        cur = Curriculum.open(cfg, run)
        # the checkpoint's stage (no loadable checkpoint: the training starts again, so does the curriculum)
        cur.resume_at(model.num_timesteps if ck is not None else 0)
        if ck is not None:
            _stage_env(model, cfg, cur)
    if ck is None:
        venv = make_vec_env(cfg, stage=cur.stage()) if cur is not None else make_vec_env(cfg)
        model = algo(policy_name(cfg["algo"]), venv, seed=cfg["seed"], verbose=0,
                     tensorboard_log=str(run / "tb"), device="cpu", **(cfg.get(cfg["algo"]) or {}))
        if cfg.get("start_action"):
            start_action(model, int(cfg["start_action"]["action"]), float(cfg["start_action"]["prob"]))
    if cur is not None:
        print(cur.describe())
    every = max(1, cfg["checkpoint_every"] // cfg["n_envs"])
    # checkpoints, reward terms, domain scalars, periodic held-out evaluation, hparams (a curriculum's episodes)
    cb = CallbackList([atomic_checkpoint_callback(every, run / "checkpoints"), callbacks.reward_terms_callback(),
                       *callbacks.training_callbacks(cfg, run), *([recorder(cur)] if cur is not None else [])])
    done = model.num_timesteps if ck is not None else 0
    remaining = cfg["total_timesteps"] - done
    t0 = time.perf_counter()
    if remaining > 0:
        scs = scenarios_of(cfg["scenario"])
        where = ", ".join(scs) if len(scs) <= 4 else f"{len(scs)} scenarios of {cfg['scenario']}"
        print(f"training {cfg['algo'].upper()} for {remaining} agent steps on {cfg['n_envs']} machines "
              f"({where}, {env_kwargs(cfg).get('action_type', 'discrete')} actions"
              f"{', vec_normalize' if cfg.get('vec_normalize') not in (None, False) else ''}"
              f"{', frame_stack ' + str(cfg['frame_stack']) if cfg.get('frame_stack') else ''})")
        try:
            fresh = ck is None
            while True:
                # a curriculum learns stage by stage (the slots dealt again between them); else in one go.
                # A stage ends at its start + every (or later: a rollout is not cut), also when a finished
                # run is trained further (--resume with a larger --total-timesteps)
                if cur is not None and not fresh and model.num_timesteps >= cur.stage_end():
                    _next_stage(model, cfg, cur)
                end = cfg["total_timesteps"] if cur is None else min(cfg["total_timesteps"], cur.stage_end())
                before = 0 if fresh else model.num_timesteps
                model.learn(total_timesteps=end - before, callback=cb, reset_num_timesteps=fresh,
                            tb_log_name=cfg["algo"], progress_bar=sys.stderr.isatty())
                fresh = False
                if cur is None or model.num_timesteps >= cfg["total_timesteps"] or model.num_timesteps <= before:
                    break
            if cur is not None:
                cur.save()
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


def _next_stage(model, cfg: dict, cur) -> None:
    """The curriculum's next stage from now: the ended stage's mean training score by class printed
    and logged to TensorBoard (curriculum/score_<class>), the slots dealt again, the env rebuilt."""
    cur.next_stage(model.num_timesteps)
    done_k = len(cur.stages) - 2
    by_class = cur.scores_by_class(done_k)
    lg = getattr(model, "_logger", None)      # None before the session's first learn() (a resumed run)
    if lg is not None:
        for c, v in by_class.items():
            lg.record(f"curriculum/score_{c}", v)
        lg.dump(model.num_timesteps)
    print(f"curriculum stage {done_k} scored (training episodes, mean by class): "
          + ", ".join(f"{c} {v:.3f}" for c, v in by_class.items()))
    _stage_env(model, cfg, cur)
    print(cur.describe())


def _stage_env(model, cfg: dict, cur) -> None:
    """The model's env replaced by the curriculum's current stage (agents.curriculum): the batched
    simulators rebuilt with its slots, the observation/return normalisation statistics carried over."""
    import copy

    from stable_baselines3.common.vec_env import unwrap_vec_normalize
    old = model.get_env()
    new = make_vec_env(cfg, stage=cur.stage())
    a, b = unwrap_vec_normalize(old), unwrap_vec_normalize(new)
    if a is not None and b is not None:
        b.obs_rms, b.ret_rms = copy.deepcopy(a.obs_rms), copy.deepcopy(a.ret_rms)
    old.close()
    model.set_env(new)


def main(argv: list[str] | None = None) -> int:
    return run_main("train", lambda: _main(argv), _interrupted)


def _finished_steps(run: Path, target: int) -> int:
    """A finished run (model.zip saved) is continued only to a larger total: ``--resume RUN
    --total-timesteps N`` with N above the steps its model.zip was trained for (or an extension
    interrupted on its way to config.yml's total). Returns those steps; ConfigError otherwise."""
    try:
        done = model_steps(run / "model.zip")
    except safeload.UnsafeModelError as e:
        raise ConfigError(str(e)) from None
    if target <= done:
        raise ConfigError(f"{run}: the run is complete (model.zip is saved, {done} agent steps); nothing to "
                          f"resume. Train it further with --resume {run} --total-timesteps N (N > {done}), or "
                          f"start a new run: --config {run / 'config.yml'}")
    return done


def _interrupted(e: KeyboardInterrupt) -> str | None:
    if getattr(e, "reported", False):         # train() said where the checkpoint is
        return None
    return f"interrupted ({interrupts.signal_name(e)}) before training started; no model was saved"


def parser() -> Parser:
    """The command line, derived from the option specs (atomgym.schema.TRAIN)."""
    ap = Parser("train", description=__doc__.split("\n\n")[1])
    schema.add_arguments(ap, schema.TRAIN)
    return ap


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    args.config = args.config or DEFAULT_CONFIG
    args.runs_dir = args.runs_dir or RUNS_DIR
    extend = 0                                           # a finished run's steps, when --resume trains it further
    if args.seeds is not None:                           # many seeds: agents/multiseed.py dispatches the runs
        if args.resume:
            raise UsageError("--seeds and --resume: resume each run folder on its own")
        return multiseed.run(multiseed.Options(seeds=args.seeds, config=args.config, runs_dir=args.runs_dir,
                                               total_timesteps=args.total_timesteps, ray_address=args.ray_address,
                                               no_eval=args.no_eval))
    try:
        if args.resume:
            if not (args.resume / "config.yml").is_file():
                raise ConfigError(f"{args.resume}: not a run folder (no config.yml)")
            cfg = load_config(args.resume / "config.yml")
            check_resume_identity(args.resume, cfg)
            if run_is_complete(args.resume):
                extend = _finished_steps(args.resume, args.total_timesteps or cfg["total_timesteps"])
        else:
            cfg = load_config(args.config)
        if args.total_timesteps is not None:
            cfg["total_timesteps"] = args.total_timesteps
        # everything that could fail once the run folder exists, tried before it does
        validate_build(cfg, args.resume / "config.yml" if args.resume else args.config)
    except ConfigError as e:
        return fail("train", e)

    created: Path | None = None     # a folder this call made that holds no resumable run yet
    run: Path | None = None
    try:
        if args.resume:
            run = args.resume
            if extend:                              # a finished run trained further: its model kept first
                print(f"{run / 'model.zip'} ({extend} agent steps) kept as {keep_as_checkpoint(run)}; "
                      f"training on to {cfg['total_timesteps']}")
            if args.total_timesteps is not None:   # the run folder records what the run now aims at
                safefiles.replace_text(run / "config.yml", yaml.safe_dump(as_dict(cfg), sort_keys=False))
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
            safefiles.replace_text(run / "config.yml", yaml.safe_dump(as_dict(cfg), sort_keys=False))
            write_run_identity(run, cfg)
        # a --resume folder is the user's: no link in it is written through
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
                shutil.rmtree(created, ignore_errors=True)
            print(one_line(f"{who('train')}: error: {where}: cannot write: {e.strerror or e}; no run folder was "
                            f"left"), file=sys.stderr)
        else:
            print(one_line(f"{who('train')}: error: {where}: cannot write: {e.strerror or e}; the run is "
                            f"incomplete: continue it with --resume {run} once the problem is fixed"), file=sys.stderr)
        return 2
    except ConfigError as e:      # a checkpoint refused (a pickled object, old-format statistics)
        print(one_line(f"{who('train')}: error: {e}"), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, FloatingPointError) as e:
        # what no dry build can show: e.g. a learning rate that makes the policy diverge to NaN
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(one_line(f"{who('train')}: error: {run}: training failed: {why}; check the {cfg['algo']}: arguments "
                        f"of {args.resume / 'config.yml' if args.resume else args.config} (a learning rate too "
                        f"high makes the policy NaN); the checkpoints so far stay in {run / 'checkpoints'}"),
              file=sys.stderr)
        return 2
    if model is None:
        return 130
    if args.no_eval:
        return 0
    ev = cfg.get("evaluate") or {}
    pols = list(ev.get("policies") or baselines.names())
    opts = evaluate.Options(policies=",".join([*pols, str(model)]),
                            scenarios=",".join(ev.get("scenarios") or scenarios_of(cfg["scenario"])),
                            seeds=int(ev.get("seeds", 3)), out=run / "eval",
                            duration_s=ev.get("duration_s"))
    print(f"comparing with the baselines: {command('evaluate')} " + " ".join(shlex.quote(a) for a in opts.argv()))
    return evaluate.run(opts)


if __name__ == "__main__":
    sys.exit(main())
