"""The one description of every input a user writes: typed field specs, and the checks, parsers and
docs tables derived from them.

The bottom floor of the inputs: config readers (atomgym.agents.config), the commands' argument
parsers (atomgym.agents.usage) and the docs generator (scripts/gen_docs.py) stand on it; it imports
nothing of atomgym.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


class UsageError(ValueError):
    """A command line the parser rejects, or bad input to a command: printed as one line after the
    command's name, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError ``MESSAGE (see `PROG --help`)``) instead of the usage
    and a message on two lines and a SystemExit: every command of the house parses with it."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class ConfigError(ValueError):
    """A config's or an option's bad value: one line naming the file (or option) and the key, and
    what would be valid. The commands print it after their name and exit 2."""


def one_line(msg: str) -> str:
    """A message as one line: control characters (a file name may hold a newline) escaped."""
    return msg if msg.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def short(v: object) -> str:
    """A value as an error shows it: its repr, at most 80 characters."""
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


# ---- typed field specs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One input a user writes (a command's option; a config key): its name, type, unit, valid
    range or choices, default and help. The parser, the help text, the one-line error and the docs
    table row are all derived from it (add_arguments, convert, markdown_table)."""

    name: str                                      # the option's dest / the config key (seed_base)
    type: type | None = str                               # int | float | str | bool (a switch) | Path
    help: str = ""
    default: Any = None
    unit: str = ""                                 # "s": a number of seconds
    range: tuple[float | None, float | None] | None = None   # inclusive, but low_open excludes the low end
    low_open: bool = False
    required: bool = False
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None      # a custom text parser (raises ValueError with the reason)
    valid: str | None = None                       # what is valid, as the docs and errors say it (derived if None)
    choices: tuple[str, ...] | None = None
    positional: bool = False                       # a command's positional argument (FILE), not --NAME
    nargs: str | None = None                       # "+": one or more

    @property
    def flag(self) -> str:
        return self.name if self.positional else "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """What is valid, in words: ``an integer in [1, 100000]``, ``a number of seconds in (0, 86400]``."""
        if self.valid is not None:
            return self.valid
        if self.type is None:
            return "see its meaning"
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: f"a number{' of seconds' if self.unit == 's' else ''}",
                bool: "a switch", Path: "a path"}.get(self.type, "a string")
        if self.range is None:
            return what
        lo, hi = self.range
        if hi is None:
            return f"{what} {'>' if self.low_open else '>='} {_num(lo)}"
        return f"{what} in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}]"

    def convert(self, text: str) -> Any:
        """The value of the option's text; ValueError naming the text and what is valid (argparse
        shows it as ``argument --NAME: ...``)."""
        if self.parse is not None:
            return self.parse(text)
        if self.choices is not None:
            if text not in self.choices:
                raise ValueError(f"{text!r}: expected {self.describe()}")
            return text
        if self.type is int:
            try:
                v: Any = int(text)
            except ValueError:
                raise ValueError(f"{text!r} is not an integer") from None
            if not self._in_range(v):
                raise ValueError(f"{v}: expected {self.describe()}")
            return v
        if self.type is float:
            try:
                v = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not {self.describe().split(' in ')[0]}") from None
            if not (math.isfinite(v) and self._in_range(v)):
                raise ValueError(f"{text!r}: expected {self.describe()}")
            return v
        return self.type(text)

    def check(self, v: Any, where: str) -> Any:
        """A config value (YAML: already typed) against the spec; ConfigError ``WHERE: NAME: ...``
        (one line, what is valid). A spec without type check (type None) takes any value."""
        if self.choices is not None:
            if not isinstance(v, str) or v not in self.choices:
                raise ConfigError(f"{where}: {self.name}: {short(v)}; valid: {', '.join(self.choices)}")
            return v
        if self.type is int:
            if isinstance(v, bool) or not isinstance(v, int) or (self.range is not None and self.range[0] is not None
                                                                 and v < self.range[0]):
                raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
            if not self._in_range(v):       # above the top: the bound is the news, if the words do not say it
                if _num(self.range[1]) in self.describe():
                    raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
                raise ConfigError(f"{where}: {self.name}: {v} is out of range; valid range "
                                  f"{_num(self.range[0])}..{_num(self.range[1])}")
            return v
        if self.type is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not self._in_range(v):
                raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
            return v
        return v

    def _in_range(self, v: float) -> bool:
        if self.range is None:
            return True
        lo, hi = self.range
        return (lo is None or (v > lo if self.low_open else v >= lo)) and (hi is None or v <= hi)


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def add_arguments(parser: argparse.ArgumentParser, fields: Sequence[Field]) -> None:
    """One argparse option per field: its type check is Field.convert, its help the field's help."""
    for f in fields:
        if f.type is bool:
            parser.add_argument(f.flag, action="store_true", help=f.help or None)
            continue

        def conv(text: str, f: Field = f) -> Any:
            try:
                return f.convert(text)
            except ValueError as e:           # argparse prints "argument --NAME: <reason>"
                raise argparse.ArgumentTypeError(str(e)) from None
        conv.__name__ = f.name               # argparse names a failing type by it
        if f.positional:
            parser.add_argument(f.flag, type=conv, nargs=f.nargs, metavar=f.metavar, help=f.help or None)
            continue
        parser.add_argument(f.flag, type=conv, default=f.default, required=f.required, metavar=f.metavar,
                            help=f.help or None)


def check_values(values: Any, fields: Sequence[Field]) -> None:
    """The fields of ``values`` (an object with one attribute per field) checked and converted as
    their options' text would be (a caller's Options too); ConfigError ``argument --NAME: ...``."""
    for f in fields:
        v = getattr(values, f.name)
        if v is None or f.type in (bool, str, Path) or f.parse is not None:
            continue
        try:
            setattr(values, f.name, f.convert(str(v)))
        except ValueError as e:
            raise ConfigError(f"argument {f.flag}: {e}") from None


def markdown_table(fields: Sequence[Field]) -> str:
    """The docs' table of the fields: option, valid values, default, meaning."""
    rows = ["| option | valid | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        d = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        default = "required" if f.required else ("off" if f.type is bool else "" if d is None else f"`{d}`")
        rows.append(f"| `{f.flag}` | {f.describe()} | {default} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


# ---- the commands' options -----------------------------------------------------------------------
PLAYS = ("deterministic", "stochastic")     # how a trained model acts in an evaluation
MAX_SEED = 2**63 - 1                        # the simulator's seed range (AtomEnv's sim_seed: [0, 2**63))
MAX_DURATION_S = 86400.0                    # an evaluation episode: at most a simulated day


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
               "a trained model .zip[:PLAY] (one LABEL over several models: their runs)"),
    Field("scenarios", required=True,
          help="comma-separated shipped scenario names or YAML paths, or suite:NAME (configs/suites/NAME.txt)"),
    Field("play", default=("deterministic",), parse=parse_plays, valid=f"a comma-separated list of {', '.join(PLAYS)}",
          help="how models act when their path has no :PLAY suffix (deterministic,stochastic: separate rows LABEL "
               "and LABEL-stochastic; stochastic play is seeded by the episode's seed)"),
    Field("seeds", int, default=3, range=(1, 100000), help="episodes per (policy, scenario)"),
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

TRAIN = (
    Field("config", Path, metavar="FILE", help="training config YAML (default configs/train/default.yaml)"),
    Field("resume", Path, metavar="RUN_DIR", help="continue an interrupted run folder"),
    Field("total_timesteps", int, range=(1, None), help="override the config's total_timesteps"),
    Field("runs_dir", Path, metavar="DIR", help="where new run folders go (default runs/)"),
    Field("no_eval", bool, help="train only; skip the comparison with the baselines"),
    Field("seeds", metavar="LIST", valid="e.g. 0-9 or 0,3,7",
          help="train one run per seed (e.g. 0-9) through Ray: agents/multiseed.py"),
    Field("ray_address", help="with --seeds: a Ray cluster's address (default: Ray on this machine)"),
)

# the options multiseed and fullreport share (their evaluation and training overrides)
MAX_TIMESTEPS = 10**12
TOTAL_TIMESTEPS = Field("total_timesteps", int, range=(1, MAX_TIMESTEPS), help="override the config's total_timesteps")
EVAL_SEEDS = Field("eval_seeds", int, default=10, range=(1, 100000), help="evaluation seeds per scenario")
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
    Field("label", help="the policy's name in tables (default: the algorithm, e.g. ppo)"),
    Field("sweep", Path, metavar="FILE", help="YAML with a grid of config values (grid: {dotted.key: [values]})"),
)

FULLREPORT = (
    Field("seeds", default="0-9", metavar="LIST", valid="e.g. 0-9, 0,3,7 or 0-4,10", help="training seeds"),
    Field("config", Path, metavar="FILE",
          help="training config (default configs/train/benchmark.yaml: the benchmark's learned policy)"),
    TOTAL_TIMESTEPS,
    Field("scenarios", default="suite:test", help="comma-separated scenario names or YAML paths, or suite:NAME "
          "(configs/suites/NAME.txt; suite:test: the held-out test suite)"),
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
REPORT = (
    Field("episodes_csv", Path, positional=True, nargs="+", metavar="EPISODES_CSV",
          help="episodes.csv files of evaluate (several: merged)"),
    Field("cost", str, default=COST_NAMES[0], choices=COST_NAMES,
          help="the named cost every episode's cost and score are computed under, from its term columns "
               "(atomgym/envs/cost.py COSTS; atomic-charged: before v1)"),
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
    _count("batch_ticks", 2000, "ticks for the batch run"),
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


# ---- the env's ranges (EnvConfig checks them; a training config's keys are checked against them) ----
ENV_DURATION_S = Field("duration_s", float, unit="s", range=(0.001, 1e7),
                       help="episode length (default: the scenario's)")
ENV_DECISION_INTERVAL_MS = Field("decision_interval_ms", float, unit="ms", range=(10, 10000),
                                 valid="a number in [10, 10000]", help="simulated ms between two agent decisions "
                                 "(a multiple of the scenario's tick)")
REWARD_BASELINES = ("none", "default", "score")   # the env's reward_baseline
ENV_WEIGHT_MAX = 1e12                        # a reward weight or the deadlock penalty: a finite number >= 0

# ---- the training config (configs/train/*.yaml) ---------------------------------------------------
ALGOS = ("ppo", "a2c", "dqn", "recurrent_ppo", "sac", "td3")
MAX_N_ENVS = 1 << 16        # machines in one batched simulator (1024 take ~100 MiB)
MAX_FRAME_STACK = 1024
MAX_TRAIN_SEED = 2**32 - 1  # SB3 seeds numpy's legacy generator
EVAL_KEYS = ("duration_s", "policies", "scenarios", "seeds")

TRAIN_CONFIG = (
    Field("scenario", None, required=True, valid="a scenario name or YAML path, a list of them, or suite:NAME",
          help="the training scenario(s): n_envs split over them"),
    Field("total_timesteps", int, required=True, range=(1, None), valid="a positive integer",
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
    *(Field(a, None, valid="a mapping", help=f"{a} constructor keyword arguments (key = the algo's name)")
      for a in ALGOS),
)


def config_table(fields: Sequence[Field]) -> str:
    """The docs' table of a config's keys: key, valid values, default, meaning."""
    rows = ["| key | valid | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        default = "required" if f.required else "" if f.default is None else f"`{f.default}`"
        rows.append(f"| `{f.name}` | {f.describe()} | {default} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
