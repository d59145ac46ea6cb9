"""Replayable episodes: `python -m agents.replay FILE` re-runs a saved episode and checks every
simulator counter equal (exit 0: equal; 1: differs, the first differing counters named; 2: bad input).

Save one with `python -m agents.replay --save FILE --policy P --scenario S --seed N [--duration-s X]`
(P: a baseline name, ``oracle-planner``, or the path of a trained model .zip). The file (JSON) holds
the scenario itself (every key, so a later edit of the YAML does not change the replay), the seed,
the duration, the package version and the engine's source digest, what acted (a baseline's name,
or the action list: the knob writes of the planner, or the env actions of a trained model, so the
model file is not needed to replay), and every counter at the end. An existing FILE is never
overwritten (exit 2).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from atomgym import files, interrupts, safefiles, schema
from atomgym.agents import baselines, episodes, oracle, who
from atomgym.agents.models import load_model
from atomgym.agents.oracle import GRID_MF
from atomgym.envs.config import EnvConfig
from atomgym.envs.spaces import action_names
from atomgym.agents.usage import Parser, UsageError, fail
from atomgym.sim import sources_digest
from atomgym.sim.scenario import ScenarioError, load_scenario, scenario_from_dict, scenario_to_dict

FORMAT = "atomgym-episode"
VERSION = 1


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("atomgym")
    except Exception:                      # not installed (a source tree on PYTHONPATH)
        return "unknown"


def _scenario(d: dict):
    return scenario_from_dict(d, source="<episode file>")


def run_episode(ep: dict) -> dict[str, float]:
    """Re-run an episode record; returns the final counters (name -> value)."""
    sc = _scenario(ep["scenario"])
    seed, dur = int(ep["seed"]), float(ep["duration_s"])
    kind = ep["kind"]
    if kind == "baseline":
        pol = baselines.get(ep["policy"])
        if isinstance(pol, baselines.BestStatic):
            pol.configure(ep.get("best_static_mf_kb"), ep.get("best_static_wsf"))
        elif isinstance(pol, baselines.BestStaticTrain):
            pol.configure(ep.get("fleet_mf", "boot"), ep.get("fleet_wsf", -1))
        sims: list = []
        episodes.run(pol, sc, np.array([seed], np.int64), dur, sims=sims)
        sim = sims[0]
    elif kind == "knob-actions":
        sim = oracle.replay_actions(sc, seed, dur, ep["actions"])
    elif kind == "env-actions":      # the model's recorded actions on the path it was recorded on
        sims = []
        policy = episodes.ModelPolicy(ep["env_kwargs"], sc, episodes.ActionsPlayer(ep["actions"]))
        episodes.run(policy, sc, np.array([seed], np.int64), dur, sims=sims)
        sim = sims[0]
    else:
        raise ValueError(f"kind: {kind!r}; valid: baseline, knob-actions, env-actions")
    return sim.counter_dict(0)


def record(policy: str, scenario: str, seed: int, duration_s: float | None) -> dict:
    """Run one episode and return its record (see the module docstring)."""
    sc = load_scenario(scenario)
    dur = float(duration_s if duration_s is not None else sc.duration_s)
    ep: dict = {"format": FORMAT, "version": VERSION, "atomgym_version": _package_version(),
                "engine_digest": sources_digest(), "scenario_name": sc.name, "scenario": scenario_to_dict(sc),
                "seed": int(seed), "duration_s": dur, "policy": policy}
    if policy == "oracle-planner":
        acts: list = []
        oracle.planner(sc, np.array([seed], np.int64), dur, actions=acts)
        ep.update(kind="knob-actions", actions=acts[0])
    elif policy.endswith(".zip"):
        lm = load_model(Path(policy))   # its env kwargs, frame stack, frozen normalisation
        kw = dict(lm.env_kw)
        pol = episodes.ModelPolicy(kw, sc, lm.player(deterministic=True, n=1), record=True)
        episodes.run(pol, sc, np.array([seed], np.int64), dur)
        acts = pol.recorded[0]
        ep.update(kind="env-actions", env_kwargs=kw, actions=acts, policy=Path(policy).parent.name or Path(policy).stem)
    else:
        pol = baselines.get(policy)
        ep["kind"] = "baseline"
        if isinstance(pol, baselines.BestStatic):
            with tempfile.TemporaryDirectory() as d:
                mf, wsf, _ = oracle.best_static(sc, np.array([seed]), dur, Path(d))
            ep.update(best_static_mf_kb=mf, best_static_wsf=wsf)
        elif isinstance(pol, baselines.BestStaticTrain):
            mf, wsf, _ = oracle.fleet_static()
            ep.update(fleet_mf=mf, fleet_wsf=wsf)
    ep["counters"] = run_episode(ep)
    return ep


def check(ep: dict, path: Path) -> tuple[bool, str]:
    """Re-run and compare; (equal, one-line message)."""
    got = run_episode(ep)
    want = ep["counters"]
    diff = [k for k in sorted(set(want) | set(got)) if not (k in want and k in got and (
        want[k] == got[k] or (isinstance(want[k], float) and math.isnan(want[k]) and math.isnan(got[k]))))]
    if not diff:
        name = ep.get("scenario_name")   # informational: a record without it replays the same
        on = f" on {name:.60}" if isinstance(name, str) else ""
        return True, f"{path}: replayed {ep['policy']}{on} seed {ep['seed']}: all {len(want)} counters equal"
    why = "" if ep.get("engine_digest") == sources_digest() else " (the engine's sources changed since it was saved)"
    shown = ", ".join(f"{k} {want.get(k)} -> {got.get(k)}" for k in diff[:4])
    return False, f"{path}: {len(diff)} counter(s) differ{why}: {shown}{' ...' if len(diff) > 4 else ''}"


MAX_RECORD_BYTES = 256 << 20     # a day of a model's actions is a few MiB


def _int_in(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _show(v: object) -> str:
    """A value in a message: as Python writes it, at most 40 characters (the digits of an int
    beyond 4300 digits are not written at all: JSON refuses such a number first)."""
    return repr(v)[:40]


def _finite(v: object, lo: float = -math.inf, hi: float = math.inf) -> bool:
    """A real number (not a bool) in [lo, hi]; an int beyond float's range is compared exactly
    (math.isfinite(10**400) raises OverflowError)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return (isinstance(v, int) or math.isfinite(v)) and lo <= v <= hi


def load(path: Path) -> dict:
    ep = files.read_json(path, MAX_RECORD_BYTES, "an episode file (save one with --save)")
    if not isinstance(ep, dict) or ep.get("format") != FORMAT:
        raise ValueError(f"{path}: not an episode file (format is not {FORMAT!r}); save one with --save")
    if ep.get("version") != VERSION:
        raise ValueError(f"{path}: episode file version {ep.get('version')!r:.40}; this replay reads version {VERSION}")
    need = {"scenario": dict, "seed": int, "duration_s": (int, float), "kind": str, "counters": dict, "policy": str}
    for k, t in need.items():
        if not isinstance(ep.get(k), t) or isinstance(ep.get(k), bool):
            raise ValueError(f"{path}: key {k!r}: missing or of the wrong type")
    if not _int_in(ep["seed"], 0, 2**63 - 1):
        raise ValueError(f"{path}: key 'seed': {_show(ep['seed'])}; valid: 0 .. 2**63-1")
    if not (_finite(ep["duration_s"], 0, 86400) and ep["duration_s"] > 0):
        raise ValueError(f"{path}: key 'duration_s': {_show(ep['duration_s'])}; valid: (0, 86400]")
    kinds = ("baseline", "knob-actions", "env-actions")
    if ep["kind"] not in kinds:
        raise ValueError(f"{path}: key 'kind': {ep['kind']!r:.40}; valid: {', '.join(kinds)}")
    if ep["kind"] in ("knob-actions", "env-actions") and not isinstance(ep.get("actions"), list):
        raise ValueError(f"{path}: key 'actions': missing or not a list")
    if ep["kind"] == "env-actions" and not isinstance(ep.get("env_kwargs"), dict):
        raise ValueError(f"{path}: key 'env_kwargs': missing or not a mapping")
    try:
        _scenario(ep["scenario"])
    except Exception as e:                       # the scenario loader's own one-line message
        raise ValueError(f"{path}: key 'scenario': {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if ep["kind"] == "baseline":
        _check_baseline(ep, path)
    elif ep["kind"] == "knob-actions":
        _check_knob_actions(ep, path)
    else:
        _check_env_actions(ep, path)
    bad = [k for k, v in ep["counters"].items() if not _finite(v, -1e300, 1e300)]
    if bad or not ep["counters"]:    # a corrupted record is bad input (2), not a differing replay (1)
        raise ValueError(f"{path}: key 'counters': " + (f"{bad[0]!r:.60} is {_show(ep['counters'][bad[0]])}; "
                                                         "valid: finite numbers" if bad else "empty; valid: the "
                                                         "simulator's counters by name"))
    return ep


MAX_KNOB = 2**31 - 1      # a sysctl's int; the simulator refuses what the kernel would (ValueError)


def _check_baseline(ep: dict, path: Path) -> None:
    """A baseline's record: a known name, and the settings best-static / best-static-train used."""
    if ep["policy"] not in baselines.names():
        raise ValueError(f"{path}: key 'policy': {ep['policy']!r:.60}; valid for kind baseline: "
                         f"{', '.join(baselines.names())}")
    for k in ("best_static_mf_kb", "best_static_wsf"):
        if ep.get(k) is not None and not _int_in(ep[k], 0, MAX_KNOB):
            raise ValueError(f"{path}: key {k!r}: {_show(ep[k])}; valid: null or an integer 0..{MAX_KNOB}")
    if "fleet_mf" in ep:
        if isinstance(ep["fleet_mf"], bool) or ep["fleet_mf"] not in GRID_MF:
            raise ValueError(f"{path}: key 'fleet_mf': {_show(ep['fleet_mf'])}; valid: one of "
                             f"{', '.join(map(str, GRID_MF))}")
    if "fleet_wsf" in ep and not _int_in(ep["fleet_wsf"], -1, MAX_KNOB):
        raise ValueError(f"{path}: key 'fleet_wsf': {_show(ep['fleet_wsf'])}; valid: an integer -1..{MAX_KNOB}")


def _check_knob_actions(ep: dict, path: Path) -> None:
    """The planner's knob writes: [tick, min_free_kbytes, watermark_scale_factor] (-1 unchanged)."""
    for i, a in enumerate(ep["actions"]):
        if not (isinstance(a, list) and len(a) == 3 and _int_in(a[0], 0, 2**62)
                and all(_int_in(x, -1, MAX_KNOB) for x in a[1:])):
            raise ValueError(f"{path}: key 'actions': item {i} is {json.dumps(a)[:60]}; valid: [tick, "
                             f"min_free_kbytes, watermark_scale_factor], integers (tick >= 0, -1 = unchanged)")


def _check_env_actions(ep: dict, path: Path) -> None:
    """A model's record: its env options valid (EnvConfig) and every action in its action space."""
    kw = {k: v for k, v in ep["env_kwargs"].items() if k != "duration_s"}
    try:
        cfg = EnvConfig.from_options(scenario=_scenario(ep["scenario"]), **kw)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{path}: key 'env_kwargs': {str(e).splitlines()[0]}") from None
    if cfg.action_type == "continuous":
        def ok(a) -> bool:
            return isinstance(a, list) and len(a) == 3 and all(
                _finite(x, -1.0, 1.0) for x in a)
        valid = "a list of 3 numbers in [-1, 1]"
    else:
        n = len(action_names(cfg.action_type))

        def ok(a) -> bool:
            return isinstance(a, int) and not isinstance(a, bool) and 0 <= a < n
        valid = f"an integer 0..{n - 1} (action_type {cfg.action_type})"
    for i, a in enumerate(ep["actions"]):
        if not ok(a):
            raise ValueError(f"{path}: key 'actions': item {i} is {json.dumps(a)[:60]}; valid: {valid}")


def main(argv: list[str] | None = None) -> int:
    ap = Parser("replay", description=__doc__.split("\n\n")[0])
    schema.add_arguments(ap, schema.REPLAY)
    try:
        args = ap.parse_args(argv)
    except UsageError as e:
        return fail("replay", e)
    try:
        with interrupts.interruptible():     # SIGTERM/SIGHUP as Ctrl-C: one line, no partial FILE
            return _run(args)
    except KeyboardInterrupt as e:
        what = f"; {args.file} was not written" if args.save else ""
        print(f"{who('replay')}: interrupted ({interrupts.signal_name(e)}){what}", file=sys.stderr)
        return interrupts.exit_code(e)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.save:
            if not args.policy or not args.scenario:
                raise ValueError("--save needs --policy and --scenario")
            if args.file.exists() or args.file.is_symlink():
                raise ValueError(f"{args.file}: exists; not overwritten (choose another FILE)")
            if args.policy not in baselines.names() and args.policy != "oracle-planner" and not (
                    args.policy.endswith(".zip") and Path(args.policy).is_file()):
                raise ValueError(f"--policy {args.policy!r}; valid: {', '.join(baselines.names())}, oracle-planner, "
                                 "or the path of a trained model .zip")
            try:
                ep = record(args.policy, args.scenario, args.seed, args.duration_s)
            except (ScenarioError, FileNotFoundError) as e:
                raise ValueError(f"--scenario {args.scenario!r}: {str(e).splitlines()[0]}") from None
            safefiles.replace_text(args.file, json.dumps(ep, indent=1) + "\n")   # a temporary file renamed: all or nothing
            print(f"saved {args.file} ({ep['policy']} on {ep['scenario_name']}, seed {ep['seed']}, {ep['duration_s']:g} s)")
            return 0
        ep = load(args.file)
        ok, msg = check(ep, args.file)
    except ValueError as e:
        print(f"{who('replay')}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{who('replay')}: error: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    print(msg, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
