"""`python -m agents.multiseed --seeds 0-9 [--config FILE] [--total-timesteps N] [--runs-dir DIR]
[--ray-address ADDR] [--num-cpus N] [--eval-seeds N] [--no-ray] [--no-eval]` (also `python -m agents.train --seeds 0-9`)

Trains one run of a config per seed, dispatched as Ray tasks (``ray[tune]``): Ray on this machine
by default (one task per CPU), a cluster with ``--ray-address`` (the workers must see the runs
folder, e.g. a shared file system; nothing else changes). Each task is an ordinary
``python -m agents.train --config <the config with that seed> --no-eval`` run folder under
``DIR/multiseed-<scenario>__<algo>__<time>/runs/``. Then every model is evaluated together with
every baseline and both oracles' references (``agents.evaluate``, the models as runs of one
policy: the statistics treat training seeds as the unit), learning curves are drawn from the runs'
periodic held-out evaluations, and the last line printed is the verdict
("PPO vs best baseline on ...: ..."). Without Ray (``--no-ray``, or Ray not installed) the runs go
one after another in this process's machine.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from atomgym import files, interrupts, safefiles, schema
from atomgym.agents import baselines, command, evaluate, plots, report, who
from atomgym.agents.config import DEFAULT_CONFIG, as_dict, load_config, scenario_label
from atomgym.agents.usage import Parser, UsageError, run_main
from atomgym.paths import CHECKOUT, PACKAGE_DIR, RUNS_DIR
from atomgym.schema import ConfigError
from atomgym.suites import scenarios_of


MAX_TRAIN_SEED = 2**32 - 1      # agents.train's seed (SB3 seeds numpy's legacy generator)
MAX_GRID_POINTS = 1000
MAX_SWEEP_BYTES = 1 << 20


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``0,3,7`` or a mix (``0-4,10``): distinct seeds >= 0, in order given."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"--seeds {text!r}: expected e.g. 0-9 or 0,3,7 (integers >= 0)")
        if any(len(g) > 10 for g in m.groups() if g):    # int() of 5000 digits is a ValueError traceback
            raise UsageError(f"--seeds {text[:60]!r}: {part[:40]}: a training seed is 0 .. {MAX_TRAIN_SEED}")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if max(a, b) > MAX_TRAIN_SEED:
            raise UsageError(f"--seeds {text!r}: {part}: a training seed is 0 .. {MAX_TRAIN_SEED}")
        if b < a or b - a > 10000:
            raise UsageError(f"--seeds {text!r}: {part}: expected a range low-high with low <= high")
        out += [s for s in range(a, b + 1) if s not in out]
    if not out:
        raise UsageError(f"--seeds {text!r}: no seed")
    return out


def _train_one(cfg_path: str, runs_dir: str, total: int | None) -> dict:
    """One training run in a subprocess (its own interpreter: torch threads, numba, Ctrl-C)."""
    cmd = [sys.executable, "-m", "atomgym.agents.train", "--config", cfg_path, "--runs-dir", runs_dir, "--no-eval"]
    if total is not None:
        cmd += ["--total-timesteps", str(total)]
    # one thread per task (torch, BLAS, numba): Ray runs one task per CPU; the serial and parallel
    # simulator drivers give the same results (docs/design.md)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    # this atomgym, also in the child (a checkout on PYTHONPATH, or the installed package)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_DIR.parent), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    t0 = time.perf_counter()
    # stopped with us: subprocess.run kills it on Ctrl-C/SIGTERM, the kernel if we are killed (-9)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(CHECKOUT) if CHECKOUT is not None else None,
                       preexec_fn=interrupts.die_with_parent())
    m = re.search(r"run folder: (\S+)", p.stdout)
    return {"cmd": cmd, "rc": p.returncode, "run": m.group(1) if m else None, "wall_s": time.perf_counter() - t0,
            "tail": (p.stderr or p.stdout).strip().splitlines()[-1:] }


def dispatch(jobs: list[tuple[str, str, int | None]], ray_address: str | None, num_cpus: int | None,
             use_ray: bool) -> list[dict]:
    from tqdm import tqdm     # imported here: slow to import, and only a dispatch draws a bar
    bar = tqdm(total=len(jobs), desc="training runs", unit="run", disable=None, file=sys.stderr)
    results: list[dict] = []
    ray = None
    if use_ray:
        try:
            import ray  # noqa: F811
        except ImportError:
            print("Ray is not installed (pip install 'ray[tune]'): the runs go one after another here",
                  file=sys.stderr)
            ray = None
    if ray is None:
        for j in jobs:
            results.append(_train_one(*j))
            bar.update(1)
        bar.close()
        return results
    if ray_address:
        ray.init(address=ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        task = ray.remote(num_cpus=1)(_train_one)
        pending = [task.remote(*j) for j in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results += ray.get(done)
            bar.update(len(done))
    finally:
        bar.close()
        ray.shutdown()
    return results


@dataclass
class Options:
    """A multiseed run, as its command line gives it (agents.train --seeds builds one)."""
    seeds: str
    config: Path = DEFAULT_CONFIG
    total_timesteps: int | None = None
    runs_dir: Path = RUNS_DIR
    ray_address: str | None = None
    num_cpus: int | None = None
    eval_seeds: int = 10
    eval_duration_s: float | None = None
    no_ray: bool = False
    no_eval: bool = False
    label: str | None = None
    sweep: Path | None = None

    def argv(self) -> list[str]:
        """Its command line (the group folder's command.txt)."""
        av = ["--seeds", self.seeds, "--config", str(self.config), "--runs-dir", str(self.runs_dir)]
        if self.total_timesteps is not None:
            av += ["--total-timesteps", str(self.total_timesteps)]
        if self.ray_address:
            av += ["--ray-address", self.ray_address]
        if self.no_eval:
            av += ["--no-eval"]
        return av


def parser() -> Parser:
    """The command line, derived from the option specs (atomgym.schema.MULTISEED)."""
    ap = Parser("multiseed", description=__doc__.split("\n\n")[1])
    schema.add_arguments(ap, schema.MULTISEED)
    return ap


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = vars(parser().parse_args(argv))
        args["config"] = args["config"] or DEFAULT_CONFIG
        args["runs_dir"] = args["runs_dir"] or RUNS_DIR
        return multiseed(Options(**args), argv)
    return run_main("multiseed", body, _interrupted)


def run(opts: Options) -> int:
    """A multiseed run for another command (agents.train --seeds), its errors as multiseed's."""
    return run_main("multiseed", lambda: multiseed(opts, opts.argv()), _interrupted)


def _interrupted(e: KeyboardInterrupt) -> str:
    return (f"interrupted ({interrupts.signal_name(e)}); the training runs were stopped; the group folder is "
            "incomplete (no runs.json)")


def multiseed(args: Options, argv: list[str] | None) -> int:
    """Train args.seeds runs of args.config, evaluate them as one policy (UsageError on bad input)."""
    schema.check_values(args, schema.MULTISEED)   # a caller's Options as the command line's
    seeds = parse_seeds(args.seeds)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.total_timesteps is not None:
        cfg["total_timesteps"] = args.total_timesteps
    label = args.label or cfg["algo"]
    if not safefiles.valid_name(label):            # checked before any training: the policy's name in the tables
        raise UsageError(f"--label {label!r}: allowed: {safefiles.NAME_CHARS}, no '..'")
    points = sweep_points(args.sweep, cfg, label) if args.sweep else [(label, cfg)]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    group = args.runs_dir / f"multiseed-{scenario_label(cfg)}__{cfg['algo']}__{stamp}"
    k = 1
    while group.exists():
        group = group.with_name(f"{group.name.split('.')[0]}.{k}")
        k += 1
    try:
        (group / "configs").mkdir(parents=True)
    except OSError as e:
        raise UsageError(f"--runs-dir {args.runs_dir}: cannot create {group} ({e.strerror})") from None
    # files of a folder made just now: created, never through a link
    cmd = [sys.executable, "-m", "atomgym.agents.multiseed", *(sys.argv[1:] if argv is None else argv)]
    safefiles.write_text(group / "command.txt", " ".join(shlex.quote(a) for a in cmd) + "\n", exclusive=True)
    jobs, labels = [], {}
    for k, (lab, pcfg) in enumerate(points):
        for s in seeds:
            p = group / "configs" / (f"seed{s}.yaml" if len(points) == 1 else f"point{k}-seed{s}.yaml")
            safefiles.write_text(p, yaml.safe_dump({**pcfg, "seed": s}, sort_keys=False), exclusive=True)
            runs = group / "runs" / (f"point{k}" if len(points) > 1 else "")
            jobs.append((str(p), str(runs), None))
            labels[str(runs)] = lab
    print(f"multiseed: {len(jobs)} runs ({len(points)} config(s) x {len(seeds)} seeds) of {args.config.name} "
          f"({cfg['total_timesteps']} agent steps each) -> {group}")
    t0 = time.perf_counter()
    res = dispatch(jobs, args.ray_address, args.num_cpus, not args.no_ray)
    train_wall = time.perf_counter() - t0
    safefiles.write_text(group / "runs.json", json.dumps(res, indent=1), exclusive=True)
    failed = [r for r in res if r["rc"] != 0 or not r["run"]]
    for r in failed:
        print(f"multiseed: run failed (exit {r['rc']}): {' '.join(r['cmd'][3:])}: {' '.join(r['tail'])}", file=sys.stderr)
    ok = [r for r in res if r not in failed]
    if not ok:
        print(f"{who('multiseed')}: error: every training run failed", file=sys.stderr)
        return 1
    print(f"multiseed: {len(ok)} runs trained in {train_wall:.0f} s wall")
    models = [(labels[str(Path(r["run"]).parent)], Path(r["run"]) / "model.zip") for r in ok]
    if args.no_eval:
        print(f"multiseed: --no-eval: not evaluated; the models: {' '.join(str(m) for _, m in models)}")
        return 0
    return evaluate_group(group, cfg, models, args.eval_seeds, args.eval_duration_s)


def sweep_points(path: Path, cfg: dict, label: str) -> list[tuple[str, dict]]:
    """The configs of a sweep file's grid (every combination), each validated as a training config."""
    try:
        d = files.read_yaml(path, MAX_SWEEP_BYTES, "a sweep file (grid: {dotted.key: [values, ...]})")
    except files.FileError as e:
        raise UsageError(str(e)) from None
    grid = d.get("grid") if isinstance(d, dict) else None
    if not isinstance(grid, dict) or not grid or set(d) - {"grid"}:
        raise UsageError(f"{path}: expected a mapping with one key, grid: {{dotted.key: [values, ...]}}")
    for k, v in grid.items():
        if not isinstance(k, str) or not isinstance(v, list) or not v:
            raise UsageError(f"{path}: grid.{str(k)[:40]}: expected a non-empty list of values")
    n = math.prod(len(v) for v in grid.values())    # counted, not built: 40 keys x 10 values is 10**40
    if n > MAX_GRID_POINTS:
        raise UsageError(f"{path}: {n} grid points; at most {MAX_GRID_POINTS}")
    out = []
    for combo in itertools.product(*grid.values()):
        c = yaml.safe_load(yaml.safe_dump(as_dict(cfg)))   # a deep copy
        parts = []
        for k, v in zip(grid, combo):
            keys = k.split(".")
            node = c
            for kk in keys[:-1]:
                node = node.setdefault(kk, {})
                if not isinstance(node, dict):
                    raise UsageError(f"{path}: grid.{k}: {kk} is not a mapping in the config")
            node[keys[-1]] = v
            parts.append(keys[-1] + "".join(ch if ch.isalnum() or ch in "._+" else "_" for ch in str(v)))
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d) / "point.yaml"
            tmp.write_text(yaml.safe_dump(c, sort_keys=False))
            try:
                load_config(tmp)
            except ConfigError as e:
                raise UsageError(f"{path}: grid point {' '.join(parts)}: {str(e).split(': ', 1)[-1]}") from None
        out.append(("-".join([label, *parts]), c))
    return out


def evaluate_group(group: Path, cfg: dict, models: list[tuple[str, Path]], n_seeds: int,
                   duration_s: float | None) -> int:
    """Every baseline and the models (one label, runs = training seeds) on the config's evaluation
    scenarios; learning curves; the verdict as the last line."""
    ev = cfg.get("evaluate") or {}
    pols = list(ev.get("policies") or baselines.names())
    opts = evaluate.Options(policies=",".join([*pols, *[f"{lab}={m}" for lab, m in models]]),
                            scenarios=",".join(ev.get("scenarios") or scenarios_of(cfg["scenario"])),
                            seeds=n_seeds, out=group / "eval",
                            duration_s=duration_s if duration_s is not None else ev.get("duration_s"))
    print(f"evaluating: {command('evaluate')} " + " ".join(shlex.quote(a) for a in opts.argv()))
    rc = evaluate.run(opts)
    if rc != 0:
        return rc
    labs = list(dict.fromkeys(lab for lab, _ in models))
    for k, lab in enumerate(labs):
        ms = [m for lb, m in models if lb == lab]
        curves = {m.parent.name: m.parent / "eval_curve.csv" for m in ms if (m.parent / "eval_curve.csv").is_file()}
        if curves:
            refs = next((json.loads((m.parent / "eval_refs.json").read_text()) for m in ms
                         if (m.parent / "eval_refs.json").is_file()), {})
            name = "learning-curves.png" if len(labs) == 1 else f"learning-curves-{k}.png"
            print(f"wrote {plots.learning_curves(curves, refs, group / 'eval' / name)}" + (f" ({lab})" if len(labs) > 1 else ""))
    df = report.load_rows(group / "eval" / "episodes.csv")
    for lab in labs:
        print(report.verdict(df, lab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
