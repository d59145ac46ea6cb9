"""The one description of every input a user writes: the commands' options, the env's ranges and the
training config's keys, as typed field specs (atomgym/fields.py ``Field``), from which the parsers,
help, one-line errors and docs tables are derived. A scenario's keys: atomgym/scenario_schema.py.

The bottom floor of the inputs: config readers (atomgym.agents.config), the commands' argument
parsers (atomgym.agents.usage, atomgym.cli, atomgym.realkernel.cli) and the docs generator
(scripts/gen_docs.py) stand on it; it imports the other two modules of the schema layer and the
tables its help texts name (kernel.machine's writable keys, fleets' names), none of which imports it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from . import scenario_schema
from .fleets import FLEETS
from .kernel.machine import WRITABLE_KEYS
from .fields import (  # noqa: F401 - the schema layer's API, re-exported
    ConfigError,
    Field,
    Parser,
    UsageError,
    add_arguments,
    check_values,
    config_table,
    markdown_table,
    one_line,
    short,
)


# ---- the commands' options -----------------------------------------------------------------------
PLAYS = ("deterministic", "stochastic")     # how a trained model acts in an evaluation
from .fleets import MAX_SEED  # noqa: E402 - the simulator's and a fleet's seed range (AtomEnv's sim_seed: [0, 2**63))
MAX_DURATION_S = 86400.0                    # an evaluation episode: at most a simulated day
MAX_EVAL_SEEDS = 100000                     # episodes per (policy, scenario) of an evaluation


def parse_plays(text: str) -> tuple[str, ...]:
    """``--play``: a comma-separated list of PLAYS, each once."""
    out = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not out or any(p not in PLAYS for p in out):
        raise ValueError(f"{text!r}: expected a comma-separated list of {', '.join(PLAYS)}")
    return out


def parse_out_dir(text: str) -> Path:
    """An output folder: not empty (Path("") is ".": the files would land in the current folder)."""
    if not text.strip():
        raise ValueError("empty; give the folder to write episodes.csv and summary.md in")
    return Path(text)


EVALUATE = (
    Field("policies", required=True,
          help="comma-separated baselines (docs/baselines.md), oracle-static, oracle-planner, or [LABEL=]PATH of "
               "a trained model .zip[:PLAY] (one LABEL over several models: their runs), or [LABEL=]vote:GLOB (the "
               "models the pattern matches voting as one policy: more than half agree, else action 0) or "
               "[LABEL=]mean:GLOB (their averaged action probabilities)"),
    Field("scenarios", required=True,
          help="comma-separated shipped scenario names or YAML paths, or suite:NAME (configs/suites/NAME.txt)"),
    Field("play", default=("deterministic",), parse=parse_plays, valid=f"a comma-separated list of {', '.join(PLAYS)}",
          help="how models act when their path has no :PLAY suffix (deterministic,stochastic: separate rows LABEL "
               "and LABEL-stochastic; stochastic play is seeded by the episode's seed)"),
    Field("seeds", int, default=3, range=(1, MAX_EVAL_SEEDS), help="episodes per (policy, scenario)"),
    Field("seed_base", int, default=1000, range=(0, MAX_SEED), help="evaluation seeds are seed-base .. seed-base+N-1"),
    Field("out", required=True, parse=parse_out_dir, metavar="DIR", valid="a folder",
          help="where episodes.csv, blocks.json, actions.log, summary.md and the plots go"),
    Field("duration_s", float, unit="s", range=(0, MAX_DURATION_S), low_open=True,
          help="episode length (default: the scenario's)"),
    Field("resume", bool, help="continue DIR/episodes.csv: skip the finished blocks"),
    Field("force", bool, help="start DIR/episodes.csv afresh (the old rows are lost)"),
    Field("no_oracle", bool, help="skip the oracle-static reference rows"),
    Field("no_summary", bool, help="episodes.csv only: no summary.md, no plots"),
    Field("cache_dir", Path, metavar="DIR", help="best-static sweep cache (default runs/best-static-cache)"),
)

# agent steps of one training: more would run for centuries (one definition: train's option, the
# config key, multiseed's and fullreport's overrides)
MAX_TIMESTEPS = 10**12
TOTAL_TIMESTEPS = Field("total_timesteps", int, range=(1, MAX_TIMESTEPS), help="override the config's total_timesteps")

TRAIN = (
    Field("config", Path, metavar="FILE", help="training config YAML (default configs/train/default.yaml)"),
    Field("resume", Path, metavar="RUN_DIR", help="continue an interrupted run folder"),
    TOTAL_TIMESTEPS,
    Field("runs_dir", Path, metavar="DIR", help="where new run folders go (default runs/)"),
    Field("no_eval", bool, help="train only; skip the comparison with the baselines"),
    Field("seeds", metavar="LIST", valid="e.g. 0-9 or 0,3,7",
          help="train one run per seed (e.g. 0-9) through Ray: agents/multiseed.py"),
    Field("ray_address", help="with --seeds: a Ray cluster's address (default: Ray on this machine)"),
)

# the options multiseed and fullreport share (their evaluation and training overrides)
EVAL_SEEDS = Field("eval_seeds", int, default=10, range=(1, MAX_EVAL_SEEDS), help="evaluation seeds per scenario")
EVAL_DURATION_S = Field("eval_duration_s", float, unit="s", range=(0, MAX_DURATION_S), low_open=True,
                        help="evaluation episode length (default: the scenario's)")
RAY_ADDRESS = Field("ray_address", help="a Ray cluster's address (default: Ray on this machine)")

MULTISEED = (
    Field("seeds", required=True, metavar="LIST", valid="e.g. 0-9, 0,3,7 or 0-4,10", help="training seeds"),
    Field("config", Path, metavar="FILE", help="training config YAML (default configs/train/default.yaml)"),
    TOTAL_TIMESTEPS,
    Field("runs_dir", Path, metavar="DIR", help="where the group folder goes (default runs/)"),
    RAY_ADDRESS,
    Field("num_cpus", int, range=(1, None), help="Ray on this machine: CPUs (tasks at once); default all"),
    EVAL_SEEDS, EVAL_DURATION_S,
    Field("no_ray", bool, help="the runs one after another in this process's machine"),
    Field("no_eval", bool, help="train only: no evaluation of the runs (runs.json lists them)"),
    Field("label", help="the policy's name in tables (default: the algorithm, e.g. ppo)"),
    Field("sweep", Path, metavar="FILE", help="YAML with a grid of config values (grid: {dotted.key: [values]})"),
)

FULLREPORT = (
    Field("seeds", default="0-9", metavar="LIST", valid="e.g. 0-9, 0,3,7 or 0-4,10", help="training seeds"),
    Field("config", Path, metavar="FILE",
          help="training config (default configs/train/benchmark.yaml: the benchmark's learned policy)"),
    TOTAL_TIMESTEPS,
    Field("scenarios", default="suite:fleet-test", help="comma-separated scenario names or YAML paths, or suite:NAME "
          "(configs/suites/NAME.txt; suite:fleet-test: the held-out test fleet; suite:test: the hand-made test machines)"),
    Field("play", default="deterministic,stochastic", valid=f"a comma-separated list of {', '.join(PLAYS)}",
          help="how the learned models are evaluated (evaluate --play)"),
    EVAL_SEEDS, EVAL_DURATION_S,
    Field("no_planner", bool, help="skip the oracle-planner rows"),
    Field("eval_every", int, range=(1, MAX_TIMESTEPS),
          help="agent steps between held-out evaluations (and checkpoints) during training; default the config's "
               "checkpoint_every"),
    Field("out", Path, metavar="DIR", help="the report folder (default runs/report-<time>); must not exist"),
    RAY_ADDRESS,
)

MAX_REPS = 100_000
COST_NAMES = ("harm", "atomic-charged")      # atomgym/envs/cost.py COSTS (checked there at import)
# the named cost: the env's ``cost=`` (EnvConfig takes its choices) and agents.report's --cost
COST = Field("cost", str, default=COST_NAMES[0], choices=COST_NAMES,
             help="the named cost every episode's cost and score are computed under, from its term columns "
                  "(atomgym/envs/cost.py COSTS; atomic-charged: before v1)")
REPORT = (
    Field("episodes_csv", Path, positional=True, nargs="+", metavar="EPISODES_CSV",
          help="episodes.csv files of evaluate (several: merged)"),
    COST,
    Field("out", help="write DIR/summary.md and the plots instead of printing", metavar="DIR"),
    Field("reps", int, default=2000, range=(100, MAX_REPS), help="bootstrap resamples"),
)

REPLAY = (
    Field("file", Path, positional=True, metavar="FILE", help="an episode record (JSON)"),
    Field("save", bool, help="record a new episode into FILE (never overwrites)"),
    Field("policy", help="with --save: a baseline, oracle-planner, or the path of a trained model .zip"),
    Field("scenario", help="with --save: a shipped scenario name or YAML path"),
    Field("seed", int, default=1000, range=(0, MAX_SEED), help="with --save: the episode's seed"),
    Field("duration_s", float, unit="s", range=(0, MAX_DURATION_S), low_open=True,
          help="with --save: the episode length (default: the scenario's)"),
)

# every command whose options are described here: its name -> its fields (docs/cli.md's tables)
PUBLISH = (
    Field("report", Path, positional=True, metavar="REPORT_DIR", help="a finished report folder (runs/report-<time>)"),
    Field("bench", Path, metavar="FILE", help="`python -m atomgym.bench --json` output to add as the speed table"),
    Field("docs", Path, metavar="DIR", help="the docs folder to write results.md into (default: the checkout's docs/)"),
    Field("readme", Path, metavar="FILE", help="the README whose results block is replaced (default: the checkout's)"),
)

MAX_COUNT = 10**9   # ticks, machines or steps of a benchmark: more would run for days or exhaust memory


def _count(name: str, default: int, help: str) -> Field:
    return Field(name, int, default=default, range=(1, MAX_COUNT), help=help)


BENCH = (
    Field("json", bool, help="print one JSON object"),
    Field("scenario", default="incast-pagecache", help="scenario name or path (default: the headline)"),
    _count("ticks", 600_000, "ticks for the single-machine run"),
    _count("batch", 1024, "machines in the batch run"),
    _count("batch_ticks", 5000, "ticks for the batch run"),
    _count("env_steps", 3000, "AtomEnv agent steps (default interval)"),
    _count("env_batch_steps", 20, "AtomVectorEnv steps of the whole batch"),
    _count("cartpole_steps", 200_000, "CartPole-v1 steps"),
    _count("ppo_steps", 4096, "SB3 PPO frames per env per round (g)"),
    Field("skip_cold", bool, help="leave out the cold first step (f): minutes"),
    Field("skip_sb3", bool, help="leave out SB3 PPO (g)"),
    _count("repeat", 3, "rounds of all measurements, interleaved; medians are reported"),
)

COMMANDS: dict[str, tuple[Field, ...]] = {"train": TRAIN, "evaluate": EVALUATE, "multiseed": MULTISEED,
                                          "fullreport": FULLREPORT, "report": REPORT, "replay": REPLAY,
                                          "publish": PUBLISH, "bench": BENCH}


# ---- atomgym's own commands (atomgym/cli.py: `atomgym NAME`; `realkernel run`: a subcommand's subcommand) ----
SNAPSHOT_CMD = (
    Field("output", short="-o", metavar="FILE",
          help="file to write (default: stdout); never overwritten without --force"),
    Field("force", bool, help="overwrite an existing --output file"),
    Field("root", default="/", hidden=True, help="tests: read ROOT/proc/... instead of the host's"),
)
_SNAPSHOT_ARG = Field("snapshot", positional=True, metavar="SNAPSHOT",
                      help="a snapshot file (`atomgym snapshot`, or `tail -n +1` of the files it reads)")
CHECK_CMD = (
    _SNAPSHOT_ARG,
    Field("json", bool, help="one JSON object instead of the table"),
    Field("strict", bool, help="exit 1 on the boot-time pattern too"),
)
WHATIF_CMD = (
    _SNAPSHOT_ARG,
    Field("set", repeat=True, metavar="KEY=VALUE",
          valid="KEY=VALUE",
          help="a write, applied in order; KEY one of " + ", ".join(WRITABLE_KEYS)),
    Field("json", bool, help="JSON Lines: one object per --set"),
)
_CACHE_DIR = Field("cache_dir", metavar="DIR", help="where the builds go (default: $ATOMGYM_CACHE, "
                                                    "$XDG_CACHE_HOME/atomgym, ~/.cache/atomgym)")
REALKERNEL_SETUP_CMD = (
    _CACHE_DIR,
    Field("no_install", bool, help="only print the missing packages"),
    Field("no_boot", bool, help="skip the boot check"),
)
REALKERNEL_RUN_CMD = (
    Field("scenario", positional=True, metavar="SCENARIO", help="scenario name (configs/scenarios) or .yaml path"),
    Field("out", required=True, metavar="DIR", help="capture directory (written as DIR.partial, then renamed)"),
    Field("force", bool, help="replace an existing capture in DIR"),
    _CACHE_DIR,
    # their ranges are also realkernel/run.py's check_seconds (a caller of run() gets the same)
    Field("sample", float, default=0.3, unit="s", range=(0.05, 10.0),
          help="sampling interval, guest seconds (default 0.3)"),
    Field("stall", float, default=90.0, unit="s", range=(1.0, 86400.0),
          help="kill the guest after this many host seconds without serial output (default 90)"),
    Field("timeout", float, unit="s", range=(1.0, 7 * 86400.0),
          help="kill the guest after this many host seconds (default 240 + 2 x duration)"),
    Field("trace", bool, help="also record the kernel's reclaim tracepoints (kswapd's wake-ups and sleeps, direct "
                              "reclaim, fallbacks) into trace.txt (docs/realkernel.md, \"Tracepoints\")"),
)
SIM_SEED = Field("seed", int, default=1, range=(0, MAX_SEED), help="the simulator's seed")
FIDELITY_CMD = (
    Field("capture", positional=True, nargs="+", metavar="DIR",
          help="a capture folder (`atomgym realkernel run --out`) or a corpus folder (with MANIFEST.json)"),
    Field("json", bool, help="one JSON object instead of the tables"),
    Field("plots", metavar="DIR", help="write DIR/<run>.png: real and simulated time series overlaid"),
    Field("write_score", metavar="FILE", help="write the fidelity score (JSON) to FILE"),
    SIM_SEED,
)
FIDELITY_FIT_CMD = (
    Field("corpus", positional=True, metavar="CORPUS", help="a corpus folder whose MANIFEST.json gives each run a half"),
    Field("grid", repeat=True, metavar="KEY=V1,V2,...",
          help="the values of one parameter (KEY one of " + ", ".join(f.name for f in scenario_schema.KSWAPD)
               + ", the scenario's kswapd: keys); a parameter not named keeps the default grid's values"),
    Field("out", metavar="FILE", help="write the fit (JSON) to FILE; an existing FILE only with --force"),
    Field("force", bool, help="replace an existing --out FILE"),
    Field("jobs", int, default=1, range=(1, 64), metavar="N",
          help="replay the grid's points in N processes (default 1; the same result, in about 1/N the time on N "
               "free cores)"),
    SIM_SEED,
)
FLEET_CMD = (
    Field("name", positional=True, nargs="?", metavar="NAME", valid="one of " + ", ".join(FLEETS),
          help="the fleet: " + ", ".join(FLEETS)),
    Field("seed", int, range=(0, MAX_SEED), metavar="SEED", help="the fleet's seed (default: the shipped suite's)"),
    Field("out", metavar="DIR", help="write the fleet's scenario YAML files into this folder (never overwritten)"),
    Field("manifest", metavar="FILE", help="measure every machine's class (oracle grid, short episodes; cached) "
                                           "and write the manifest JSON here"),
    Field("force", bool, help="replace an existing --manifest file"),
    Field("families", bool, help="list the families and fleets, then exit"),
)
WARMUP_CMD = (
    Field("portable", bool, help="compile for numba's generic x86-64 CPU into the package's precompiled folder "
                                 "(atomgym/kernel/precompiled, shipped by `make wheel`) instead of this user's cache"),
)
# atomgym's subcommands with options -> their fields (docs/cli.md's tables; atomgym/cli.py's parsers)
ATOMGYM_COMMANDS: dict[str, tuple[Field, ...]] = {
    "snapshot": SNAPSHOT_CMD, "check": CHECK_CMD, "whatif": WHATIF_CMD, "warmup": WARMUP_CMD,
    "realkernel setup": REALKERNEL_SETUP_CMD, "realkernel run": REALKERNEL_RUN_CMD,
    "fidelity": FIDELITY_CMD, "fidelity fit": FIDELITY_FIT_CMD, "fleet": FLEET_CMD}

# ---- the env's ranges (EnvConfig checks them; a training config's keys are checked against them) ----
# the episode length: the scenario's duration_s (its range), given as an env option
ENV_DURATION_S = dataclasses.replace(scenario_schema.SCENARIO_KEYS["duration_s"], default=None,
                                     help="episode length (default: the scenario's)")
ENV_DECISION_INTERVAL_MS = Field("decision_interval_ms", float, unit="ms", range=(10, 10000),
                                 help="simulated ms between two agent decisions (a multiple of the scenario's tick)")
REWARD_BASELINES = ("none", "default", "score")   # the env's reward_baseline
ENV_WEIGHT_MAX = 1e12                        # a reward weight or the deadlock penalty: a finite number >= 0
ENV_WEIGHT = Field("weights", float, range=(0.0, ENV_WEIGHT_MAX),
                   help="a reward term's weight (w_drops=, ...: one term of the mapping weights)")
ENV_DEADLOCK_PENALTY = Field("deadlock_penalty", float, range=(0.0, ENV_WEIGHT_MAX),
                             help="the cost of a deadlocked episode's remaining steps")
ENV_RENDER_WINDOW = Field("render_window", int, range=(1, None), help="steps the rendered plot shows")

# ---- the training config (configs/train/*.yaml) ---------------------------------------------------
ALGOS = ("ppo", "a2c", "dqn", "recurrent_ppo", "sac", "td3")
MAX_N_ENVS = 1 << 16        # machines in one batched simulator (1024 take ~100 MiB)
MAX_FRAME_STACK = 1024
MAX_TRAIN_SEED = 2**32 - 1  # SB3 seeds numpy's legacy generator
EVAL_KEYS = ("duration_s", "policies", "scenarios", "seeds")

TRAIN_CONFIG = (
    Field("scenario", None, required=True, valid="a scenario name or YAML path, a list of them, or suite:NAME",
          help="the training scenario(s): n_envs split over them"),
    Field("total_timesteps", int, required=True, range=(1, MAX_TIMESTEPS),
          help="agent steps summed over the machines"),
    Field("algo", str, default="ppo", choices=ALGOS, help="the algorithm"),
    Field("seed", int, default=0, range=(0, MAX_TRAIN_SEED), valid=f"an integer in 0..{MAX_TRAIN_SEED}",
          help="the training seed"),
    Field("n_envs", int, default=16, range=(1, MAX_N_ENVS), valid="a positive integer",
          help="machines in the batched simulators"),
    Field("checkpoint_every", int, default=5000, range=(1, None), valid="a positive integer",
          help="agent steps between checkpoints"),
    Field("action_type", None, valid="an env action_type", help="the env's action_type (also settable under env:)"),
    Field("decision_interval_ms", None, valid=ENV_DECISION_INTERVAL_MS.describe(), help="the env's decision interval (also settable under env:)"),
    Field("reward_baseline", None, valid="one of " + ", ".join(REWARD_BASELINES), help="the env's reward_baseline (also settable under env:)"),
    Field("env", None, valid="a mapping", help="keyword arguments of AtomSB3VecEnv / AtomEnv (their signatures)"),
    Field("vec_normalize", None, valid="false, true or a mapping",
          help="SB3 VecNormalize keyword arguments (true: its defaults; stats saved beside each .zip)"),
    Field("frame_stack", int, range=(1, MAX_FRAME_STACK),
          valid=f"an integer in 1..{MAX_FRAME_STACK} (observations stacked, SB3 VecFrameStack)",
          help="SB3 VecFrameStack of the (normalised) observations"),
    Field("evaluate", None, valid=f"a mapping with keys {', '.join(EVAL_KEYS)}",
          help="the comparison with the baselines after training"),
    Field("start_action", None, valid="a mapping {action: an action of the env's Discrete action space, "
          "prob: a probability in (0, 1)} (ppo, a2c, recurrent_ppo)",
          help="warm start: the new policy chooses this action with this probability (its logit raised)"),
    Field("return_floor", None, valid="a number below 0 (with reward_baseline: score)",
          help="an episode's return (score - 1) clipped below at it: a catastrophe weighs at most this much"),
    Field("curriculum", None, valid="a mapping {mix: {class: share}, every: agent steps >= n_envs, floor: weight > 0} "
          "(fleet machines only)",
          help="machines dealt by class in the mix's shares, within a class toward the largest gap to "
               "max(psi, the oracle bound), again every `every` steps"),
    *(Field(a, None, valid="a mapping", help=f"{a} constructor keyword arguments (key = the algo's name)")
      for a in ALGOS),
)
