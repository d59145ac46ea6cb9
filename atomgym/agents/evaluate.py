"""`python -m agents.evaluate --policies P[,P...] --scenarios S[,S...] --seeds N --out DIR
[--duration-s X] [--seed-base K] [--resume | --force] [--no-oracle] [--no-summary] [--cache-dir D]`

Runs every (policy, scenario, seed) episode on one path (agents/episodes.py: one batched Simulator
with N machines per (policy, scenario)); a policy given as the path of a trained model .zip
(agents.train, ``[LABEL=]PATH[:stochastic]``) sees the Gymnasium env's observations and acts
through its actions on the same path and simulator seeds (machines, draws, traffic) as the
baselines, with what it was trained with (its run's config.yml,
or NAME.yml beside a shipped atomgym/agents/pretrained/NAME.zip, given as its path or as NAME.zip: env keyword arguments, frame stacking,
frozen VecNormalize statistics from <stem>.vecnormalize.npz; RecurrentPPO's LSTM state carried).
A model plays deterministically (row LABEL) or, seeded by the episode's seed, stochastically (row
LABEL-stochastic): the ``:stochastic`` suffix or ``--play deterministic,stochastic``.
``[LABEL=]vote:GLOB`` plays the models the pattern matches (2 or more, one env) as one policy,
deterministically, by majority vote: each machine's action is the one more than half of them
choose, else action 0 (episodes.VotePlayer); ``mean:GLOB`` by the highest averaged action
probability; its row is LABEL (default ``vote`` / ``mean``), run ``voteN`` / ``meanN``. The references come first whatever the order given:
``kernel-default`` (every score is relative to it) and ``oracle-static`` (the hindsight-best static
setting of each episode, agents/oracle.py; ``--no-oracle`` skips it); ``oracle-planner`` (the
clairvoyant receding-horizon planner) is run when named. Each finished (policy, scenario) block
is appended to DIR/episodes.csv at once, atomically; an existing episodes.csv is never
overwritten silently: ``--resume`` skips its finished blocks, ``--force`` starts afresh, else exit 2;
each block's identity (scenario content, duration, seeds, policy or model files, simulator, cost:
agents/identity.py) goes to DIR/blocks.json first, and ``--resume`` refuses a block whose identity changed.
The knob changes' one-line reasons go to DIR/actions.log; then DIR/summary.md (IQM and mean with
stratified-bootstrap 95 % CIs, optimality gap, probability of improvement, oracle-gap fraction:
agents/stats.py) and DIR/*.png (agents/plots.py) are written from episodes.csv.

Episode cost = minus the environment's episode return with its default weights: the cost table
(atomgym/envs/cost.py; docs/environment.md "Reward"), each term's weight times its episode total
(drops, atomic failures, reserved MiB.s, stall seconds, knob changes: sysctl writes + boost
requests, a tuner's too), plus the deadlock penalty.
score = 1 - (cost - cost(kernel-default)) / max(cost(kernel-default), 1), same scenario and seed
(the env's normalised score): 1.0 = as the kernel default, 2.0 = zero cost, < 1 worse.
"""
from __future__ import annotations

import fcntl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomgym import interrupts, safefiles
from atomgym.agents import baselines, episodes, oracle, report
from atomgym.agents.models import run_ensemble, run_model
from atomgym.agents.oracle import DEFAULT_CACHE
from atomgym.agents.policies import Spec, parse_policies
from atomgym.agents.results import (BLOCKS_FILE, REFERENCE, append_block, block_identity, block_rows, check_resume,
                                    read_blocks, read_episodes, write_blocks)
from atomgym.agents.usage import Parser, UsageError, run_main
from atomgym import schema
from atomgym.schema import MAX_SEED, ConfigError
from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
from atomgym.suites import scenarios_of



def run_policy(policy: baselines.Baseline, scenario, seeds: np.ndarray, duration_s: float,
               log: list[str] | None = None, sims: list | None = None) -> list[dict[str, float]]:
    """A baseline's episodes on one scenario, every seed in one batched Simulator (episodes.run)."""
    return episodes.run(policy, scenario, seeds, duration_s, log, sims)


def unique_scenarios(scen: list, where: str) -> list:
    """The scenarios, one per name: the same file given twice counts once; two files with one
    ``name:`` would share their rows (episodes.csv names the scenario), so they are refused."""
    by_name: dict[str, object] = {}
    for sc in scen:
        first = by_name.setdefault(sc.name, sc)
        if first is not sc and first.source != sc.source:
            raise UsageError(f"{where}: {first.source or '<built in>'} and {sc.source or '<built in>'} are both "
                             f"named {sc.name!r}; give each its own name: (episodes.csv tells scenarios apart by it)")
    return list(by_name.values())


def _lock(out: Path):
    """An exclusive lock on the output folder: two evaluations never write one episodes.csv at once.
    The lock file is opened without truncating it and never through a symbolic link (safefiles)."""
    f = safefiles.open_write(out / ".evaluate.lock", append=True)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UsageError(f"{out}: another agents.evaluate is writing this folder; wait for it or use another --out") from None
    return f


def run_block(spec: Spec, sc, seeds: np.ndarray, dur: float, ref_cost: np.ndarray, cache_dir: Path,
              log: list[str], planner_kw: dict | None = None) -> list[dict]:
    """The episodes of one policy on one scenario, every seed; rows with scores."""
    t0 = time.perf_counter()
    if spec.kind == "model":
        res, _ = run_model(spec.path, sc, seeds, dur, deterministic=spec.play == "deterministic")
    elif spec.kind == "ensemble":
        res, _ = run_ensemble(list(spec.paths), sc, seeds, dur, how=spec.how)
    elif spec.label == "oracle-static":
        res, why = oracle.hindsight_static(sc, seeds, dur)
        log += [f"oracle-static {sc.name} {w}" for w in why]
    elif spec.label == "oracle-planner":
        res, why, _ = oracle.planner(sc, seeds, dur, **(planner_kw or {}))
        log += [f"oracle-planner {sc.name} {w}" for w in why]
    else:
        pol = baselines.get(spec.label)
        if isinstance(pol, baselines.BestStatic):
            mf, wsf, _ = oracle.best_static(sc, seeds, dur, cache_dir)
            pol.configure(mf, wsf)
            log.append(f"best-static {sc.name}: min_free_kbytes={mf or 'kernel'} watermark_scale_factor={wsf or 'kernel'}")
        elif isinstance(pol, baselines.BestStaticTrain):
            mf, wsf, _ = oracle.fleet_static(cache_dir=cache_dir)
            pol.configure(mf, wsf)
            log.append(f"best-static-train: grid point min_free_kbytes={mf} watermark_scale_factor={wsf if wsf >= 0 else 'kernel'}")
        res = run_policy(pol, sc, seeds, dur, log)
    return block_rows(spec, sc.name, seeds, dur, time.perf_counter() - t0, res, ref_cost)


@dataclass
class Options:
    """An evaluation, as its command line gives it (other commands build one and call ``run``)."""
    policies: str
    scenarios: str
    out: Path
    seeds: int = 3
    seed_base: int = 1000
    duration_s: float | None = None
    play: tuple[str, ...] = ("deterministic",)
    resume: bool = False
    force: bool = False
    no_oracle: bool = False
    no_summary: bool = False
    cache_dir: Path = DEFAULT_CACHE

    def argv(self) -> list[str]:
        """The command line of this evaluation (what the commands that call ``run`` print)."""
        av = ["--policies", self.policies, "--scenarios", self.scenarios, "--seeds", str(self.seeds),
              "--out", str(self.out)]
        if self.no_summary:
            av.append("--no-summary")
        if self.play != ("deterministic",):
            av += ["--play", ",".join(self.play)]
        if self.duration_s is not None:
            av += ["--duration-s", str(self.duration_s)]
        return av


def parser() -> Parser:
    """The command line, derived from the option specs (atomgym.schema.EVALUATE)."""
    ap = Parser("evaluate", description=__doc__.split("\n\n")[1])
    schema.add_arguments(ap, schema.EVALUATE)
    return ap


def parse(argv: list[str] | None) -> Options:
    args = vars(parser().parse_args(argv))
    args["cache_dir"] = args["cache_dir"] or DEFAULT_CACHE
    return Options(**args)


def main(argv: list[str] | None = None) -> int:
    return run_main("evaluate", lambda: evaluate(parse(argv)), _interrupted)


def run(opts: Options) -> int:
    """An evaluation for another command (agents.train, multiseed, fullreport): ``evaluate`` with
    its errors and interrupts reported as ``agents.evaluate``'s, and its exit status."""
    return run_main("evaluate", lambda: evaluate(opts), _interrupted)


def _interrupted(e: KeyboardInterrupt) -> str:
    return (f"interrupted ({interrupts.signal_name(e)}); the finished blocks are in episodes.csv (continue with "
            "--resume)")


def check(opts: Options) -> None:
    """The options' values, checked and converted as the command line does (a caller's too: 5 is
    the duration 5.0, as ``--duration-s 5`` gives it)."""
    schema.check_values(opts, schema.EVALUATE)


def evaluate(args: Options) -> int:
    """Run the evaluation ``args`` describes into args.out (UsageError on bad input)."""
    check(args)
    if args.cache_dir.exists() and not args.cache_dir.is_dir():
        raise UsageError(f"--cache-dir {args.cache_dir}: is a file, not a folder (the best-static sweep cache)")
    if args.seed_base + args.seeds - 1 > MAX_SEED:
        raise UsageError(f"--seed-base {args.seed_base} + --seeds {args.seeds}: seeds must stay below 2**63")
    if args.resume and args.force:
        raise UsageError("--resume and --force: choose one")
    specs = parse_policies(args.policies, args.play)
    # the references every score and gap is measured against, run first whatever the order given
    refs = [Spec(REFERENCE, "baseline")] + ([] if args.no_oracle else [Spec("oracle-static", "oracle")])
    specs = [s for s in refs if all(s.label != t.label for t in specs)] + specs
    specs.sort(key=lambda s: 0 if s.label == REFERENCE else 1)
    scen = []
    parts = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    try:
        names = scenarios_of(parts, None, "--scenarios") if parts else []
    except ConfigError as e:
        raise UsageError(f"{e}; valid: {', '.join(list_scenarios())}") from None
    for s in names:
        try:
            scen.append(load_scenario(s))
        except (ScenarioError, FileNotFoundError, ValueError, TypeError, OSError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(f"scenario {s!r}: {msg}; valid: {', '.join(list_scenarios())}") from None
    if not scen:
        raise UsageError(f"--scenarios: empty; valid: {', '.join(list_scenarios())}")
    scen = unique_scenarios(scen, "--scenarios")
    for sc in scen:       # run_policy runs round(duration / tick) ticks: none is not an episode
        dur = args.duration_s if args.duration_s is not None else float(sc.duration_s)
        if int(round(dur * 1000.0 / sc.tick_ms)) < 1:
            raise UsageError(f"--duration-s {dur:g}: shorter than one tick of {sc.name} ({sc.tick_ms:g} ms); "
                             f"valid: at least {sc.tick_ms / 1000.0:g} s")
    seeds = np.arange(args.seed_base, args.seed_base + args.seeds, dtype=np.int64)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock(out)
    except safefiles.UnsafePathError as e:      # a link planted as the lock file: one line naming it
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write there ({e.strerror})") from None
    csv_path, log_path = out / "episodes.csv", out / "actions.log"
    for f in (csv_path, log_path, out / "summary.md", out / BLOCKS_FILE):
        if f.is_symlink() or (f.exists() and not f.is_file()):
            raise UsageError(f"{f}: not a regular file; not replaced (choose another --out)")
    done: set[tuple] = set()
    ids_path = out / BLOCKS_FILE
    memo: dict = {}
    idents = {(s.label, s.run, sc.name): block_identity(s, sc, seeds, _duration(args, sc), memo)
              for sc in scen for s in specs}
    recorded: dict[tuple, dict] = {}
    if csv_path.exists():
        if args.force:
            csv_path.unlink()
            log_path.unlink(missing_ok=True)
            ids_path.unlink(missing_ok=True)
        elif not args.resume:
            raise UsageError(f"{csv_path} exists: --resume continues it, --force starts it afresh, "
                             "or choose another --out")
        else:
            rows = read_episodes(csv_path)
            recorded = read_blocks(ids_path, csv_path)
            check_resume(csv_path, rows, recorded, idents)
            done = {(r["policy"], r["run"], r["scenario"], str(r["seed"])) for r in rows}
    try:
        with lock:
            _run_all(specs, scen, seeds, args, done, csv_path, log_path, idents, recorded, ids_path)
    except safefiles.UnsafePathError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{out}: cannot write ({e.strerror})") from None
    rows = read_episodes(csv_path)
    print(f"wrote {csv_path} ({len(rows)} episodes) and {log_path}")
    if not args.no_summary:
        try:
            files = report.write_summary(csv_path, out)
        except (ValueError, OSError) as e:
            raise UsageError(f"{out}: summary: {e}") from None
        print("wrote " + ", ".join(str(f) for f in files))
    learned = [s.label for s in specs if s.kind in ("model", "ensemble")]
    if learned:                                  # the last line: the learned policy against the best baseline
        print(report.verdict(report.load_rows(csv_path), learned[0]))
    return 0


def _duration(args, sc) -> float:
    return args.duration_s if args.duration_s is not None else float(sc.duration_s)


def _run_all(specs: list[Spec], scen: list, seeds: np.ndarray, args, done: set, csv_path: Path,
             log_path: Path, idents: dict, recorded: dict, ids_path: Path) -> None:
    from tqdm import tqdm     # imported here: tqdm's import is slow, and only a run draws a bar

    bar = tqdm(total=len(specs) * len(scen), desc="evaluate", unit="block", disable=None, file=sys.stderr)
    for sc in scen:
        dur = _duration(args, sc)
        ref_cost: np.ndarray | None = None
        for spec in specs:
            bar.set_postfix_str(f"{spec.label} on {sc.name}")
            keys = [(spec.label, spec.run, sc.name, str(int(s))) for s in seeds]
            have = [k in done for k in keys]
            if all(have):
                bar.update(1)
                continue
            if ref_cost is None:                     # the reference (kernel-default's episodes), once
                ref_log: list[str] = []
                t0 = time.perf_counter()
                ref = run_policy(baselines.get(REFERENCE), sc, seeds, dur, ref_log)
                ref_wall = time.perf_counter() - t0
                ref_cost = np.array([r["cost"] for r in ref])
            if spec.label == REFERENCE:
                log = ref_log
                rows = block_rows(spec, sc.name, seeds, dur, ref_wall, ref, ref_cost)
            else:
                log = []
                rows = run_block(spec, sc, seeds, dur, ref_cost, args.cache_dir, log)
            new = [r for r, h in zip(rows, have) if not h]
            # the block's identity first: rows on disk always have theirs (a crash between the two
            # leaves an identity without rows, which the next --resume recomputes)
            recorded[(spec.label, spec.run, sc.name)] = idents[(spec.label, spec.run, sc.name)]
            write_blocks(ids_path, recorded)
            append_block(csv_path, new)
            for r in new:
                done.add((r["policy"], r["run"], r["scenario"], str(r["seed"])))
            with safefiles.open_write(log_path, append=True) as f:   # never through a link planted there
                f.write("".join(line + "\n" for line in log))
            bar.update(1)
    bar.close()


if __name__ == "__main__":
    sys.exit(main())
