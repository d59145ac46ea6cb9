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
LABEL-stochastic): the ``:stochastic`` suffix or ``--play deterministic,stochastic``. The references come first whatever the order given:
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

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from atomgym.agents import baselines, command, episodes, who
from atomgym.agents.episodes import Player, episode_metrics  # noqa: F401  (re-exported)
# one definition of the cost and the score: the env's cost table (atomgym/envs/cost.py)
from atomgym.envs.cost import definition as cost_definition
from atomgym.envs.cost import score as env_score
from atomgym.paths import PRETRAINED_DIR, RUNS_DIR

DEFAULT_CACHE = RUNS_DIR / "best-static-cache"

METRICS = ("drops_total", "drops_rx_missed", "drops_rcvbuf", "drops_pfmemalloc", "atomic_fail", "fail_atomic",
           "fail_kernel", "fail_nowait", "fail_memalloc", "refill_deferred", "reserved_mib_s", "min_reserve_mib_s", "stall_s",
           "throttle_stall_s", "kswapd_runs", "kswapd_wakeups", "allocstall", "oom_kill", "knob_changes",
           "tuner_actions", "terminated", "final_min_free_kbytes", "final_wsf", "cost", "score")
# best-static grid (shared with the oracles): min_free_kbytes ("boot" = kernel value; "x2" twice it;
# fractions of RAM; kB) x wsf (-1 = kernel value)
from atomgym.agents.oracle import GRID_MF, GRID_WSF  # noqa: E402


def run_policy(policy: baselines.Baseline, scenario, seeds: np.ndarray, duration_s: float,
               log: list[str] | None = None, sims: list | None = None) -> list[dict[str, float]]:
    """A baseline's episodes on one scenario, every seed in one batched Simulator (episodes.run)."""
    return episodes.run(policy, scenario, seeds, duration_s, log, sims)


PLAYS = ("deterministic", "stochastic")
MAX_MODEL_CONFIG_BYTES = 1 << 20       # a model's NAME.yml / config.yml: a short YAML file


def model_config_path(path: Path) -> Path | None:
    """The resolved training config of a model .zip: ``NAME.yml`` beside ``NAME.zip`` (a shipped
    policy, atomgym/agents/pretrained/), else the run folder's ``config.yml`` (``RUN/model.zip``, or
    ``RUN/checkpoints/model_<N>_steps.zip``); None for a bare model."""
    for cfg in (path.with_suffix(".yml"), path.parent / "config.yml", path.parent.parent / "config.yml"):
        if cfg.is_file():
            return cfg
    return None


class LoadedModel:
    """A trained model with what it was trained with, rebuilt from its config: the algorithm
    class (``algo``), the AtomEnv keyword arguments (``env_kw``: agents.train.eval_env_kwargs),
    the frame stack (``n_stack``) and the normalisation statistics (``vecnorm``: SB3 VecNormalize
    frozen, agents.normstats.NormStats; from ``<stem>.vecnormalize.npz`` beside the .zip)."""

    def __init__(self, model, algo: str, env_kw: dict, n_stack: int | None, vecnorm, config: Path | None) -> None:
        self.model, self.algo, self.env_kw, self.n_stack, self.vecnorm, self.config = (
            model, algo, env_kw, n_stack, vecnorm, config)

    def __iter__(self):            # ``model, env_kw = load_model(path)``, as before
        return iter((self.model, dict(self.env_kw)))

    def player(self, deterministic: bool = True, n: int | None = None) -> Player:
        """A Player of this model: one env's observations (``n`` None) or a batch of n."""
        return Player(self.model, self.vecnorm, self.n_stack, deterministic, n)


def action_type_of(model) -> str:
    """The env action_type a model without a config was trained with, from its action space
    (a Discrete space: "discrete"; a Box: "continuous")."""
    import gymnasium
    return "discrete" if isinstance(model.action_space, gymnasium.spaces.Discrete) else "continuous"


def load_model(path: Path) -> LoadedModel:
    """A trained SB3 / sb3-contrib model .zip (its algorithm read from the zip's policy class) and
    what it was trained with, from its config (model_config_path): the env keyword arguments, frame
    stacking and, with vec_normalize, the frozen statistics beside it. Nothing of the files is
    unpickled (agents.safeload, agents.normstats); a shipped policy's files are checked against
    their recorded digests. ValueError names the file."""
    from atomgym import files
    from atomgym.agents import pretrained, train
    algo = train.algo_of_model(path)
    cfg_path = model_config_path(path)
    cfg: dict = {}
    if cfg_path is not None:
        try:
            cfg = files.read_yaml(cfg_path, MAX_MODEL_CONFIG_BYTES, "the model's training config (YAML)") or {}
            if not isinstance(cfg, dict):
                raise AttributeError("not a mapping")
        except (files.FileError, AttributeError) as e:
            raise ValueError(f"{cfg_path}: the model's run config is not readable ({str(e).splitlines()[0]})") from None
    try:
        train._check_env_keys(cfg_path or path, cfg)
        kw = train.eval_env_kwargs(cfg)
    except train.ConfigError as e:
        raise ValueError(str(e)) from None
    n_stack = cfg.get("frame_stack") or None
    from atomgym.agents import normstats, safeload
    pretrained.verify(path, cfg_path)             # a shipped policy: its files are the ones recorded
    try:                           # nothing in the zip is unpickled: its spaces are rebuilt from the config
        data = safeload.read_data(path)
        kw.setdefault("action_type", safeload.action_type_of(data))   # a bare model (no config): its action space says which
        obs_space, act_space = safeload.spaces_of(kw, n_stack)
        model = safeload.load(path, algo, obs_space, act_space, cfg.get(algo) or {}, device="cpu")
    except safeload.UnsafeModelError as e:
        msg = str(e)
        if "does not fit its config" in msg:     # name the config the spaces were built from
            msg += f" ({cfg_path if cfg_path is not None else 'no config beside it: the env defaults'})"
        raise ValueError(msg) from None
    except Exception as e:         # a damaged zip (truncated parameters, ...): whatever SB3/torch raise
        msg = str(e).splitlines()[0] if str(e) else ""
        raise ValueError(f"{path}: cannot load the model ({type(e).__name__}{': ' + msg if msg else ''})") from None
    vecnorm = None
    if cfg.get("vec_normalize") not in (None, False):
        vp = normstats.stats_path(path)
        if not vp.is_file():
            if normstats.legacy_path(path).is_file():
                raise ValueError(normstats.legacy_message(normstats.legacy_path(path)))
            raise ValueError(f"{path}: trained with vec_normalize ({cfg_path}) but its statistics {vp} are missing")
        try:                       # plain arrays (frozen: evaluation never updates them)
            vecnorm = normstats.NormStats.read(vp)
        except normstats.StatsError as e:
            raise ValueError(str(e)) from None
        check_normalisation(path, vecnorm, kw)        # another model's statistics: named as such
        vecnorm.observation_space = safeload.spaces_of(kw)[0]
    return LoadedModel(model, algo, kw, n_stack, vecnorm, cfg_path)


def check_normalisation(path: Path, vecnorm, kw: dict) -> None:
    """The normalisation statistics' observation length against the env's: statistics of another
    model would fail mid-episode (or broadcast into nonsense). ValueError naming the model."""
    mean = getattr(vecnorm, "obs_mean", None)        # normstats.NormStats
    if mean is None:                                 # a VecNormalize
        mean = getattr(getattr(vecnorm, "obs_rms", None), "mean", None)
    if mean is None:
        return
    from atomgym.envs.atom_env import make_observation_space
    want = make_observation_space(kw.get("observation", "basic")).shape
    if tuple(np.shape(mean)) != tuple(want):
        raise ValueError(f"{path}: its normalisation statistics are for observations of shape {tuple(np.shape(mean))}, "
                         f"the env of its config gives {tuple(want)} (observation: {kw.get('observation', 'basic')}); "
                         "they belong to another model")


def run_model(path: Path, scenario, seeds: np.ndarray, duration_s: float,
              deterministic: bool = True) -> tuple[list[dict], np.ndarray]:
    """A trained SB3 model (a .zip from atomgym.agents.train) on the path every policy takes
    (episodes.run: the env's observations and actions over the batched Simulator; deterministic or
    seeded stochastic actions), each episode on the simulator seed the baselines get (the same
    machine, randomised draws and traffic). Returns the metrics and the simulator seeds."""
    lm = load_model(path)
    return run_loaded(lm.model, lm.env_kw, scenario, seeds, duration_s, lm.vecnorm, lm.n_stack, deterministic)


def run_loaded(model, env_kw: dict, scenario, seeds: np.ndarray, duration_s: float, vecnorm=None,
               n_stack: int | None = None, deterministic: bool = True) -> tuple[list[dict], np.ndarray]:
    """run_model for a model already in memory (``env_kw``: the AtomEnv keyword arguments it
    was trained with; ``vecnorm``: its VecNormalize, only its observation statistics are read;
    ``n_stack``: its frame stack): episodes.run with an episodes.ModelPolicy, the seeds in one
    batched Simulator (stochastic play: one seed at a time, each seeded by its own seed)."""
    env_kw = {"action_type": action_type_of(model), **env_kw}
    seeds = np.asarray(seeds, np.int64)
    groups = [seeds] if deterministic else [seeds[i:i + 1] for i in range(len(seeds))]
    out: list[dict] = []
    for g in groups:
        player = episodes.Player(model, vecnorm, n_stack, deterministic, n=len(g))
        out += episodes.run(episodes.ModelPolicy(env_kw, scenario, player), scenario, g, duration_s)
    return out, seeds.copy()


def best_static(scenario, seeds: np.ndarray, duration_s: float, cache_dir: Path) -> tuple[int | None, int | None, dict]:
    """Sweep GRID_MF x GRID_WSF on the given seeds (all points in one batched Simulator); the
    point with the lowest mean cost wins. Cached per (scenario content with its trace and snapshot
    files, seeds, duration, grid, the cost's definition, engine sources): a sweep run by another
    simulator, or on an edited trace, is never reused."""
    from atomgym.agents.identity import scenario_digest
    from atomgym.sim import sources_digest
    key_src = json.dumps([scenario.name, scenario_digest(scenario),
                          [int(s) for s in seeds], duration_s, GRID_MF, GRID_WSF, cost_definition(),
                          sources_digest()])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    from atomgym import safefiles                # the name is the scenario's: never a path out of cache_dir
    cache = safefiles.inside(cache_dir, f"{scenario.name}__{key}.json")
    d = read_cache(cache, {"mf_kb": _knob_or_none, "wsf": _knob_or_none})
    if d is not None:
        return d["mf_kb"], d["wsf"], d
    from atomgym.agents import oracle
    pts, met = oracle.sweep(scenario, seeds, duration_s)
    costs = np.array([[m["cost"] for m in row] for row in met]).mean(axis=1)
    best = int(np.argmin(costs))
    # the absolute value written (machines of a scenario share their RAM and boot value unless randomised)
    mf_kb = None if pts[best][0] == "boot" else int(np.median([m["final_min_free_kbytes"] for m in met[best]]))
    wsf = None if pts[best][1] < 0 else int(pts[best][1])
    d = {"scenario": scenario.name, "seeds": [int(s) for s in seeds], "duration_s": duration_s, "mf_kb": mf_kb,
         "wsf": wsf, "grid": [{"mf": str(mf), "wsf": w, "mean_cost": float(c)} for (mf, w), c in zip(pts, costs)]}
    write_cache(cache, d)
    return mf_kb, wsf, d


MAX_CACHE_BYTES = 16 << 20


def _knob_or_none(v) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31)


def read_cache(path: Path, need: dict) -> dict | None:
    """A cached sweep (ours: best_static, oracle.fleet_static), or None when there is none. A
    damaged one (not JSON, truncated, a key missing or of the wrong type: ``need`` maps each key
    to its check) is a miss: one warning line, then the caller recomputes and replaces it."""
    if path.is_symlink():       # a link planted in the cache is not followed: a miss, replaced
        print(f"warning: damaged cache ({path}: a symbolic link, not followed); recomputing it", file=sys.stderr)
        return None
    if not path.exists():
        return None
    from atomgym import files
    try:
        d = files.read_json(path, MAX_CACHE_BYTES, "a sweep cached by agents.evaluate")
        bad = [k for k, ok in need.items() if not isinstance(d, dict) or k not in d or not ok(d[k])]
        if bad:
            raise files.FileError(f"{path}: key {bad[0]!r} missing or invalid")
    except files.FileError as e:
        print(f"warning: damaged cache ({e}); recomputing it", file=sys.stderr)
        return None
    return d


def write_cache(path: Path, d: dict) -> None:
    """Store a sweep in the cache (replacing a damaged entry); a cache that cannot be written is
    a warning: the result is still used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(d, indent=1))
    except OSError as e:
        print(f"warning: cannot write the cache {path} ({e.strerror or e}); continuing without it", file=sys.stderr)


# Student's t, two-sided 95 % (0.975 quantile), degrees of freedom 1..30 (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom: the table up to 30, then
    the Cornish-Fisher expansion around z = 1.95996 (error < 1e-4 from df 31 on)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def _ci95(x: np.ndarray) -> float:
    """Half-width of the 95 % t confidence interval of the mean."""
    n = len(x)
    if n < 2:
        return float("nan")
    return float(t975(n - 1) * x.std(ddof=1) / math.sqrt(n))


# ---- the command line -----------------------------------------------------------------------------
REFERENCE = "kernel-default"                 # every score is relative to it (same scenario and seed)
ORACLES = ("oracle-static", "oracle-planner")
COLUMNS = ["policy", "run", "scenario", "seed", "duration_s", "wall_s", *METRICS]
MAX_SEED = 2**63 - 1                         # the simulator's seed range (AtomEnv's sim_seed: [0, 2**63))
MAX_DURATION_S = 86400.0


class UsageError(ValueError):
    """Bad input: main() prints it as one line and exits 2."""


class Spec:
    """One policy of --policies: a baseline, an oracle, or a trained model (``[LABEL=]PATH.zip``)."""

    def __init__(self, label: str, kind: str, path: Path | None = None, run: str = "-",
                 play: str = "deterministic") -> None:
        self.label, self.kind, self.path, self.run, self.play = label, kind, path, run, play

    def __repr__(self) -> str:
        return f"Spec({self.label!r}, {self.kind!r}, {self.path}, run={self.run!r}, play={self.play!r})"


def model_run_id(path: Path) -> str:
    """A trained model's run id: the training seed of its run folder's config.yml, else the folder name."""
    from atomgym import files
    cfg = model_config_path(path)
    if cfg is not None:
        try:
            seed = (files.read_yaml(cfg, MAX_MODEL_CONFIG_BYTES, "a training config") or {}).get("seed")
        except (files.FileError, AttributeError):
            seed = None
        if isinstance(seed, int) and not isinstance(seed, bool):
            return f"seed{seed}"
    return path.parent.name or path.stem


def play_label(label: str, play: str) -> str:
    """A learned policy's name in episodes.csv: LABEL for deterministic play (argmax / mean
    action), LABEL-stochastic for sampled actions."""
    return label if play == "deterministic" else f"{label}-{play}"


def default_label(path: Path, lm: "LoadedModel") -> str:
    """A bare model path's label: a shipped policy's NAME (NAME.zip with NAME.yml beside it), else
    its algorithm (ppo, a2c, dqn, recurrent_ppo, sac, td3)."""
    if lm.config is not None and lm.config == path.with_suffix(".yml"):
        return path.stem
    return lm.algo


def parse_policies(text: str, plays: tuple[str, ...] = ("deterministic",)) -> list[Spec]:
    """--policies: comma-separated baseline names, oracle names and model paths
    (``[LABEL=]PATH.zip[:PLAY]``, PLAY deterministic or stochastic; without one, each of ``plays``:
    --play). ``LABEL=PATH`` names a model; a bare PATH is labelled by its shipped name or its
    algorithm; stochastic play adds ``-stochastic`` to the label; models under one label are runs
    of one policy, told apart by their training seed. A repeated entry counts once."""
    specs: list[Spec] = []
    seen: set[tuple[str, str]] = set()
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        label, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        item_plays = plays
        if ".zip:" in path:
            path, _, play = path.rpartition(":")
            if play not in PLAYS:
                raise UsageError(f"--policies: {item!r}: play {play!r}; valid: {', '.join(PLAYS)}")
            item_plays = (play,)
        if path in baselines.names() or path in ORACLES:
            if label:
                raise UsageError(f"--policies: {item!r}: a label (LABEL=) is for model paths only")
            new = [Spec(path, "oracle" if path in ORACLES else "baseline")]
        elif path.endswith(".zip"):
            p = Path(path)
            if not p.is_file() and p.parent == Path(".") and (PRETRAINED_DIR / p.name).is_file():
                p = PRETRAINED_DIR / p.name      # a bare NAME.zip: the shipped policy (installed too)
            if not p.is_file():
                raise UsageError(f"--policies: {path}: no such model file")
            try:
                lm = load_model(p)
            except ValueError as e:
                raise UsageError(f"--policies: {e}") from None
            if label and not all(c.isalnum() or c in "-_.+" for c in label):
                raise UsageError(f"--policies: label {label!r}: use letters, digits and -_.+")
            label = label or default_label(p, lm)
            new = [Spec(play_label(label, pl), "model", p, model_run_id(p), pl) for pl in item_plays]
        else:
            raise UsageError(f"--policies: unknown policy {item!r}; valid: {', '.join(baselines.names())}, "
                             f"{', '.join(ORACLES)}, or [LABEL=]PATH of a trained model .zip[:stochastic]")
        for spec in new:
            key = (spec.label, spec.run)
            if key in seen:
                continue
            seen.add(key)
            specs.append(spec)
    if not specs:
        raise UsageError(f"--policies: empty; valid: {', '.join(baselines.names())}, {', '.join(ORACLES)}, "
                         "or [LABEL=]PATH of a trained model .zip")
    return specs


def _plays(text: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [p for p in out if p not in PLAYS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {', '.join(PLAYS)}")
    return out


def _finite_duration(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(v) and 0 < v <= MAX_DURATION_S):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds in (0, {MAX_DURATION_S:.0f}]")
    return v


def _out_dir(text: str) -> Path:
    if not text.strip():      # Path("") is "." : the files would land in the current folder
        raise argparse.ArgumentTypeError("empty; give the folder to write episodes.csv and summary.md in")
    return Path(text)


def _int_arg(lo: int, hi: int):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v}: expected an integer in [{lo}, {hi}]")
        return v
    return conv


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):            # one line, exit 2 (argparse prints the usage too)
        raise UsageError(message)


def read_episodes(path: Path) -> list[dict[str, str]]:
    """The rows of an episodes.csv this command wrote (UsageError if it is not one)."""
    try:
        with open(path, newline="") as f:
            r = csv.DictReader(f)
            rows = list(r)
            header = r.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if header != COLUMNS:
        raise UsageError(f"{path}: not an episodes.csv of this version of agents.evaluate (its columns differ); "
                         "use another --out or --force")
    for i, row in enumerate(rows, 2):   # a torn or edited row would be counted as finished and appended to
        bad = None in row or any(v is None for v in row.values())
        if not bad:
            try:
                bad = not all(math.isfinite(float(row[k])) or k in METRICS for k in ("duration_s", *METRICS))
            except ValueError:
                bad = True
        if bad:
            raise UsageError(f"{path}:{i}: not a complete episode row ({len(COLUMNS)} fields, numbers after "
                             "seed); use --force or another --out")
    return rows


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, flushed and renamed."""
    import os
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_block(path: Path, rows: list[dict]) -> None:
    """Append one finished block of rows to ``path`` atomically (the old content plus the new rows
    are written to a temporary file that replaces it): a crash leaves the file with or without the
    whole block, never half of it."""
    import io
    buf = io.StringIO()
    if path.is_file():
        buf.write(path.read_text())
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if buf.tell() == 0:
        w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())


def _lock(out: Path):
    """An exclusive lock on the output folder: two evaluations never write one episodes.csv at once.
    The lock file is opened without truncating it and never through a symbolic link (safefiles)."""
    import fcntl

    from atomgym import safefiles
    f = safefiles.open_write(out / ".evaluate.lock", append=True)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UsageError(f"{out}: another agents.evaluate is writing this folder; wait for it or use another --out") from None
    return f


def _rows(spec: Spec, sc_name: str, seeds: np.ndarray, dur: float, wall: float, res: list[dict],
          ref_cost: np.ndarray) -> list[dict]:
    out = []
    for i, r in enumerate(res):
        r = dict(r)
        r["score"] = env_score(r["cost"], float(ref_cost[i]))
        out.append({"policy": spec.label, "run": spec.run, "scenario": sc_name, "seed": int(seeds[i]),
                    "duration_s": dur, "wall_s": round(wall / len(seeds), 4), **{k: r[k] for k in METRICS}})
    return out


def run_block(spec: Spec, sc, seeds: np.ndarray, dur: float, ref_cost: np.ndarray, cache_dir: Path,
              log: list[str], planner_kw: dict | None = None) -> list[dict]:
    """The episodes of one policy on one scenario, every seed; rows with scores."""
    from atomgym.agents import oracle
    t0 = time.perf_counter()
    if spec.kind == "model":
        res, _ = run_model(spec.path, sc, seeds, dur, deterministic=spec.play == "deterministic")
    elif spec.label == "oracle-static":
        res, why = oracle.hindsight_static(sc, seeds, dur)
        log += [f"oracle-static {sc.name} {w}" for w in why]
    elif spec.label == "oracle-planner":
        res, why, _ = oracle.planner(sc, seeds, dur, **(planner_kw or {}))
        log += [f"oracle-planner {sc.name} {w}" for w in why]
    else:
        pol = baselines.get(spec.label)
        if isinstance(pol, baselines.BestStatic):
            mf, wsf, _ = best_static(sc, seeds, dur, cache_dir)
            pol.configure(mf, wsf)
            log.append(f"best-static {sc.name}: min_free_kbytes={mf or 'kernel'} watermark_scale_factor={wsf or 'kernel'}")
        elif isinstance(pol, baselines.BestStaticTrain):
            mf, wsf, _ = oracle.fleet_static(cache_dir=cache_dir)
            pol.configure(mf, wsf)
            log.append(f"best-static-train: grid point min_free_kbytes={mf} watermark_scale_factor={wsf if wsf >= 0 else 'kernel'}")
        res = run_policy(pol, sc, seeds, dur, log)
    return _rows(spec, sc.name, seeds, dur, time.perf_counter() - t0, res, ref_cost)


BLOCKS_FILE = "blocks.json"      # beside episodes.csv: each finished block's identity
BLOCKS_FORMAT = "atomgym-evaluate-blocks"
MAX_BLOCKS_BYTES = 64 << 20


def block_identity(spec: Spec, sc, seeds: np.ndarray, dur: float, memo: dict | None = None) -> dict:
    """What a block's rows depend on (agents/identity.py): the scenario's content, the episode
    length, the seeds, the policy (a model: its files' bytes), the simulator and the cost.
    ``memo``: digests already computed in this evaluation (a model under several plays is hashed once)."""
    from atomgym.agents import identity
    memo = {} if memo is None else memo

    def once(key: tuple, f) -> str:
        if key not in memo:
            memo[key] = f()
        return memo[key]

    return {"scenario": once(("scenario", sc.name), lambda: identity.scenario_digest(sc)),
            "duration_s": float(dur), "seeds": [int(seeds[0]), len(seeds)],
            "policy": (f"{spec.play}:" + once(("model", str(spec.path)), lambda: identity.model_digest(spec.path))
                       if spec.kind == "model" else spec.label),
            "simulator": once(("simulator",), identity.simulator_digest),
            "cost": once(("cost",), identity.cost_digest)}


def read_blocks(path: Path, csv_path: Path) -> dict[tuple, dict]:
    """The recorded identities of DIR/blocks.json ({} if there is none); UsageError if damaged."""
    if not path.exists():
        return {}
    from atomgym import files
    try:
        d = files.read_json(path, MAX_BLOCKS_BYTES, f"the block identities of {csv_path.name}")
        if not isinstance(d, dict) or d.get("format") != BLOCKS_FORMAT or not isinstance(d.get("blocks"), list):
            raise ValueError("not a blocks file")
        out = {}
        for b in d["blocks"]:
            key = (b["policy"], b["run"], b["scenario"])
            if not all(isinstance(x, str) for x in key) or not isinstance(b["identity"], dict):
                raise ValueError("malformed entry")
            out[key] = b["identity"]
        return out
    except (ValueError, KeyError, TypeError):       # files.FileError is a ValueError
        raise UsageError(f"{path}: not the block identities of {csv_path.name}; --force starts afresh, "
                         "or choose another --out") from None


def write_blocks(path: Path, recorded: dict[tuple, dict]) -> None:
    blocks = [{"policy": p, "run": r, "scenario": s, "identity": i} for (p, r, s), i in recorded.items()]
    write_atomic(path, json.dumps({"format": BLOCKS_FORMAT, "blocks": blocks}, indent=1) + "\n")


def _describe(k: str, old, new) -> str:
    from atomgym.agents.identity import WHAT
    if k == "duration_s" and isinstance(old, (int, float)):
        return f"it was run with --duration-s {old:g}, not {new:g}"
    if k == "seeds" and isinstance(old, list) and len(old) == 2 and all(isinstance(x, int) for x in old):
        return f"it was run on seeds {old[0]}..{old[0] + old[1] - 1}, not {new[0]}..{new[0] + new[1] - 1}"
    return f"{WHAT[k]} changed since it was run"


def check_resume(csv_path: Path, rows: list[dict], recorded: dict[tuple, dict], idents: dict[tuple, dict]) -> None:
    """--resume continues only blocks that would give the same rows: a block with rows whose
    recorded identity differs from now (another duration, seeds, scenario file, model, simulator
    or cost) or that has none is refused, one line naming what changed; so is any recorded block
    of another simulator or cost (the file would mix two)."""
    have = dict.fromkeys((r["policy"], r["run"], r["scenario"]) for r in rows)
    tail = "--force starts afresh (the old rows are lost), or choose another --out"
    for key in have:
        if key not in recorded:
            raise UsageError(f"{csv_path}: {key[0]} on {key[2]} has no recorded identity in {BLOCKS_FILE} "
                             f"(written by an older agents.evaluate, or the file was removed): what it was run "
                             f"with cannot be checked; {tail}")
    from atomgym.agents.identity import changed
    now = next(iter(idents.values()))
    checks = [(k, idents[k]) for k in idents if k in have]
    # every recorded block, asked for now or not: one simulator and one cost per file
    checks += [(k, {c: now[c] for c in ("simulator", "cost")}) for k in recorded if k in have]
    for key, new in checks:
        old = recorded[key]
        diff = changed(old, new)
        if diff:
            k = diff[0]
            raise UsageError(f"{csv_path}: {key[0]} on {key[2]}: {_describe(k, old.get(k), new[k])}; "
                             f"--resume would mix two experiments; {tail}")


def main(argv: list[str] | None = None) -> int:
    from atomgym import interrupts
    try:
        with interrupts.interruptible():    # SIGTERM/SIGHUP as Ctrl-C
            return _main(argv)
    except UsageError as e:
        print(f"{who('evaluate')}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"{who('evaluate')}: interrupted ({interrupts.signal_name(e)}); the finished blocks are in "
              "episodes.csv (continue with --resume)", file=sys.stderr)
        return interrupts.exit_code(e)


def _main(argv: list[str] | None) -> int:
    from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
    ap = _Parser(prog=command("evaluate"), description=__doc__.split("\n\n")[1])
    ap.add_argument("--policies", required=True,
                    help=f"comma-separated, of: {', '.join(baselines.names())}, {', '.join(ORACLES)}, "
                         "or [LABEL=]PATH of a trained model .zip (one LABEL over several models: their runs)")
    ap.add_argument("--scenarios", required=True, help="comma-separated shipped scenario names or YAML paths, "
                    "or suite:NAME (configs/suites/NAME.txt)")
    ap.add_argument("--play", type=_plays, default=("deterministic",),
                    help="how models act when their path has no :PLAY suffix: deterministic, stochastic or both "
                         "(deterministic,stochastic: separate rows LABEL and LABEL-stochastic; stochastic play is "
                         "seeded by the episode's seed)")
    ap.add_argument("--seeds", type=_int_arg(1, 100000), default=3, help="episodes per (policy, scenario)")
    ap.add_argument("--seed-base", type=_int_arg(0, MAX_SEED), default=1000,
                    help="evaluation seeds are seed-base .. seed-base+N-1")
    ap.add_argument("--out", required=True, type=_out_dir)
    ap.add_argument("--duration-s", type=_finite_duration, default=None, help="episode length (default: the scenario's)")
    ap.add_argument("--resume", action="store_true", help="continue DIR/episodes.csv: skip the finished blocks")
    ap.add_argument("--force", action="store_true", help="start DIR/episodes.csv afresh (the old rows are lost)")
    ap.add_argument("--no-oracle", action="store_true", help="skip the oracle-static reference rows")
    ap.add_argument("--no-summary", action="store_true", help="episodes.csv only: no summary.md, no plots")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="best-static sweep cache")
    args = ap.parse_args(argv)
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
    from atomgym.agents import train
    parts = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    try:
        names = train.scenarios_of(parts, None, "--scenarios") if parts else []
    except train.ConfigError as e:
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
    from atomgym import safefiles
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
            done = {(r["policy"], r["run"], r["scenario"], r["seed"]) for r in rows}
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
        from atomgym.agents import report
        try:
            files = report.write_summary(csv_path, out)
        except (ValueError, OSError) as e:
            raise UsageError(f"{out}: summary: {e}") from None
        print("wrote " + ", ".join(str(f) for f in files))
    learned = [s.label for s in specs if s.kind == "model"]
    if learned:                                  # the last line: the learned policy against the best baseline
        from atomgym.agents import report
        print(report.verdict(report.load_rows(csv_path), learned[0]))
    return 0


def _duration(args, sc) -> float:
    return args.duration_s if args.duration_s is not None else float(sc.duration_s)


def _run_all(specs: list[Spec], scen: list, seeds: np.ndarray, args, done: set, csv_path: Path,
             log_path: Path, idents: dict, recorded: dict, ids_path: Path) -> None:
    from tqdm import tqdm

    from atomgym import safefiles
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
                rows = _rows(spec, sc.name, seeds, dur, ref_wall, ref, ref_cost)
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
