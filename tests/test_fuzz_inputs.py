"""Property-based fuzzing of the files a user hands atomgym: scenario YAML (from the schema's own
keys with nasty values, and shipped scenarios mutated line by line), replay traces, and training
configs (agents.train run in-process, its training stubbed out). Every input is accepted or refused
with one line naming the file (and line/key); never a traceback, never a run folder left for a
config that fails. Profiles: tests/fuzz_helpers.py."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from agents import train
from atomgym.sim import Simulator
from atomgym.sim.scenario import (
    SCENARIO_DIR, Scenario, ScenarioError, _hints, _split_optional, load_scenario, load_trace,
)
from fuzz_helpers import NASTY_FLOAT, NASTY_INT, NASTY_SCALAR, NASTY_TEXT, fuzz_settings, mutate_lines, nasty_value, one_line
from atomgym.agents import checkpoints, config, oracle, results


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="atomgym-fuzz-"))


# ---- scenarios ----------------------------------------------------------------------------------
def _field_value(f: dataclasses.Field, tp) -> st.SearchStrategy:
    """Mostly plausible values of a schema field (its default, its range ends, a choice), often
    a nasty one."""
    tp, _ = _split_optional(tp)
    plausible: list = []
    if f.default is not dataclasses.MISSING and f.default is not None:
        plausible.append(f.default)
    lo, hi = f.metadata.get("range", (None, None))
    plausible += [x for x in (lo, hi) if x is not None]
    plausible += list(f.metadata.get("choices", ()))
    if dataclasses.is_dataclass(tp):
        return st.one_of(_section(tp), nasty_value(1))
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        inner = _section(item) if dataclasses.is_dataclass(item) else NASTY_SCALAR
        return st.one_of(st.lists(inner, max_size=2), nasty_value(1))
    if typing.get_origin(tp) is dict:       # randomize: key path -> [lo, hi]
        keys = st.sampled_from(["machine.ram_mib", "nics.0.ring_size", "traffic[0].rate_pps", "memory.anon_frac",
                                "tick_ms", "machine.kernel", "name", "randomize", "nics.5.mtu", "a..b", ""])
        return st.one_of(st.dictionaries(keys, st.lists(st.one_of(NASTY_INT, NASTY_FLOAT), min_size=2, max_size=2),
                                         max_size=2), nasty_value(1))
    if tp is float:
        extra = NASTY_FLOAT
    elif tp is int:
        extra = NASTY_INT
    else:
        extra = NASTY_TEXT
    base = st.sampled_from(plausible) if plausible else extra
    return st.one_of(base, base, extra, NASTY_SCALAR)


def _section(cls) -> st.SearchStrategy:
    hints = _hints(cls)
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    parts = {f.name: _field_value(f, hints[f.name]) for f in fields}
    keys = st.lists(st.sampled_from([f.name for f in fields] + ["bogus", "Name"]), max_size=4, unique=True)

    @st.composite
    def strat(draw):
        return {k: (draw(parts[k]) if k in parts else draw(NASTY_SCALAR)) for k in draw(keys)}
    return strat()


SHIPPED = sorted(SCENARIO_DIR.glob("*.yaml"))


def _load_and_build(p: Path) -> None:
    """load_scenario, then the simulator of one machine: accepted, or one line naming the file."""
    try:
        s = load_scenario(p)
    except ScenarioError as e:
        one_line(str(e), p.name)
        return
    assert isinstance(s, Scenario)
    try:
        Simulator(s, n_machines=1)
    except (ScenarioError, ValueError) as e:   # e.g. ram_mib that leaves no managed memory
        one_line(str(e))


@fuzz_settings(max_examples=80)         # ~1 in 9 documents is a valid scenario, then simulated
@given(doc=_section(Scenario))
def test_scenarios_from_the_schema(doc) -> None:
    d = _tmpdir()
    try:
        p = d / "fuzz.yaml"
        p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        _load_and_build(p)
    finally:
        shutil.rmtree(d)


@fuzz_settings(max_examples=40)
@given(base=st.sampled_from(SHIPPED), data=st.data())
def test_shipped_scenarios_mutated(base, data) -> None:
    text = data.draw(mutate_lines(base.read_text(), max_ops=2))
    d = _tmpdir()
    try:
        p = d / base.name
        p.write_text(text, encoding="utf-8")
        # relative files (configs/traces/..., snapshots) resolve against the repository root too
        _load_and_build(p)
    finally:
        shutil.rmtree(d)


# ---- replay traces ------------------------------------------------------------------------------
ROW = st.one_of(st.integers(0, 10**6).map(str), NASTY_TEXT, NASTY_INT.map(str), NASTY_FLOAT.map(repr),
                st.text(max_size=12), st.just("# comment"), st.just(""), st.just("5,6"), st.just("packets"))


@fuzz_settings(max_examples=50)
@given(header=st.one_of(st.just("packets"), ROW), rows=st.lists(ROW, max_size=6))
def test_replay_traces(header, rows) -> None:
    d = _tmpdir()
    try:
        p = d / "t.csv"
        p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        try:
            arr = load_trace(p)
        except ScenarioError as e:
            one_line(str(e), "t.csv")
        else:
            assert arr.ndim == 1 and arr.size >= 1 and (arr >= 0).all() and (arr == arr.round()).all()
    finally:
        shutil.rmtree(d)


# ---- training configs ---------------------------------------------------------------------------
CONFIG_VALUES = {
    "scenario": st.one_of(st.sampled_from(["quiet", "incast-pagecache", "no-such", "@ODD", "@BADTRACE", ""]),
                          nasty_value(1)),
    "algo": st.one_of(st.sampled_from(["ppo", "sac", "dqn"]), NASTY_SCALAR),
    "seed": st.one_of(st.integers(0, 5), NASTY_INT, NASTY_SCALAR),
    "n_envs": st.one_of(st.integers(1, 3), NASTY_INT, NASTY_SCALAR),
    "total_timesteps": st.one_of(st.integers(1, 256), NASTY_SCALAR),
    "action_type": st.one_of(st.sampled_from(["discrete", "continuous"]), NASTY_SCALAR),
    "decision_interval_ms": st.one_of(st.sampled_from([10, 100, 15.5, 100.0, 10000]), NASTY_SCALAR),
    "reward_baseline": st.one_of(st.sampled_from(["none", "default"]), NASTY_SCALAR),
    "checkpoint_every": st.one_of(st.integers(1, 100), NASTY_SCALAR),
    "ppo": st.one_of(st.dictionaries(st.sampled_from(["n_steps", "batch_size", "learning_rate", "gamma", "n_epochs",
                                                      "seed", "policy_kwargs", "clip_range", "ent_coef", "bogus"]),
                                     st.one_of(st.integers(-2, 64), NASTY_SCALAR, nasty_value(1)), max_size=3),
                     nasty_value(1)),
    "sac": st.one_of(st.dictionaries(st.sampled_from(["buffer_size", "ent_coef", "train_freq", "learning_starts"]),
                                     st.one_of(st.integers(-2, 64), st.just("auto"), NASTY_SCALAR), max_size=2),
                     nasty_value(1)),
    "evaluate": st.one_of(st.fixed_dictionaries({}, optional={
        "policies": st.one_of(st.lists(st.sampled_from(["kernel-default", "v10-acked", "v99"]), max_size=2),
                              NASTY_SCALAR),
        "scenarios": st.one_of(st.lists(st.sampled_from(["quiet", "nope", "@BADTRACE"]), max_size=2), NASTY_SCALAR),
        "seeds": st.one_of(st.integers(0, 3), NASTY_SCALAR),
        "duration_s": st.one_of(st.sampled_from([1, 0.5]), NASTY_SCALAR)}), nasty_value(1)),
}


@st.composite
def _config(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(sorted(CONFIG_VALUES) + ["bogus"]), max_size=7, unique=True))
    cfg = {"scenario": "quiet", "total_timesteps": 32, "n_envs": 2, "ppo": {"n_steps": 16, "batch_size": 32}}
    for k in keys:
        cfg[k] = draw(CONFIG_VALUES.get(k, NASTY_SCALAR))
    return cfg


@fuzz_settings(max_examples=40)
@given(cfg=_config())
def test_training_configs(cfg) -> None:
    d = _tmpdir()
    try:
        (d / "odd.yaml").write_text("tick_ms: 0.3\nduration_s: 2\n")
        (d / "t.csv").write_text("packets\n5\n1.5\n")
        (d / "badtrace.yaml").write_text("traffic:\n  - {kind: replay, trace: t.csv}\n")
        subst = {"@ODD": str(d / "odd.yaml"), "@BADTRACE": str(d / "badtrace.yaml")}

        def fix(v):
            return subst.get(v, v) if isinstance(v, str) else [fix(x) for x in v] if isinstance(v, list) else (
                {k: fix(x) for k, x in v.items()} if isinstance(v, dict) else v)
        p = d / "cfg.yaml"
        p.write_text(yaml.safe_dump(fix(cfg), allow_unicode=True), encoding="utf-8")
        runs = d / "runs"
        calls = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train, "train", lambda cfg, run, resume: calls.append(run) or run / "model.zip")
            import contextlib
            import io
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"])
        err = err.getvalue().strip()
        assert "Traceback" not in err
        if code == 2:
            assert err.count("\n") == 0 and err.startswith("agents.train: error:") and "cfg.yaml" in err, err
            assert not runs.exists() and not calls
        else:
            assert code == 0 and len(calls) == 1, err
    finally:
        shutil.rmtree(d)


# ---- records, captures, caches: JSON we wrote, damaged (issue 23) -------------------------------
_RECORD: dict = {}


def _record() -> dict:
    """A valid replay record (psi on quiet, 0.2 s), made once."""
    if not _RECORD:
        import json

        from agents import replay
        f = _tmpdir() / "ep.json"
        assert replay.main([str(f), "--save", "--policy", "psi", "--scenario", "quiet", "--seed", "3",
                            "--duration-s", "0.2"]) == 0
        _RECORD.update(json.loads(f.read_text()))
    return _RECORD


@fuzz_settings(max_examples=60)
@given(data=st.data())
def test_replay_records_damaged(data, capsys) -> None:
    from agents import replay
    from fuzz_helpers import mutate_json
    text = data.draw(mutate_json(_record()))
    d = _tmpdir()
    try:
        f = d / "ep.json"
        f.write_text(text)
        capsys.readouterr()
        code = replay.main([str(f)])
        err = capsys.readouterr().err
        assert code in (0, 1, 2) and "Traceback" not in err, err
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("agents.replay: error:") and str(f) in lines[0], err
    finally:
        shutil.rmtree(d, ignore_errors=True)


CAPTURE = Path(__file__).parent / "data" / "realkernel" / "capture-smoke"


@fuzz_settings(max_examples=25)
@given(name=st.sampled_from(["capture.json", "events.json"]), data=st.data())
def test_captures_damaged(name, data) -> None:
    import json

    from atomgym import cli
    from fuzz_helpers import assert_clean_outcome, run_cli
    text = data.draw(__import__("fuzz_helpers").mutate_json(json.loads((CAPTURE / name).read_text())))
    d = _tmpdir()
    try:
        cap = d / "cap"
        shutil.copytree(CAPTURE, cap)
        (cap / name).write_text(text)
        assert_clean_outcome(*run_cli(cli.main, ["fidelity", str(cap), "--json"]), names=(str(cap),))
    finally:
        shutil.rmtree(d, ignore_errors=True)


_CLEAN: dict = {}


@fuzz_settings(max_examples=20)
@given(data=st.data())
def test_best_static_caches_damaged(data, capsys) -> None:
    """A damaged cache entry is a miss: the result of a clean sweep, one warning line, the entry
    replaced by a good one. (An edit that leaves a well-formed entry is read as it is: the cache
    is ours, not checked against its sweep.)"""
    import json

    import numpy as np

    from fuzz_helpers import mutate_json
    scn = load_scenario("quiet")
    if not _CLEAN:
        d0 = _tmpdir()
        _CLEAN["want"] = oracle.best_static(scn, np.array([1]), 0.2, d0)[:2]
        (c0,) = d0.glob("quiet__*.json")
        _CLEAN["name"], _CLEAN["good"] = c0.name, json.loads(c0.read_text())
        shutil.rmtree(d0, ignore_errors=True)
    d = _tmpdir()
    try:
        cache = d / _CLEAN["name"]
        cache.write_text(data.draw(mutate_json(_CLEAN["good"])))
        capsys.readouterr()
        got = oracle.best_static(scn, np.array([1]), 0.2, d)[:2]
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) <= 1 and all(e.startswith("warning: damaged cache") for e in err), err
        if err:
            assert got == _CLEAN["want"] and json.loads(cache.read_text())["mf_kb"] == got[0]
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- resume identities ---------------------------------------------------------------------------
# a block of agents.evaluate as recorded in blocks.json, and what a refusal names for each component
_BLOCK = {"scenario": "5ca1ab1e00000000", "duration_s": 2.0, "seeds": [1000, 3], "policy": "psi",
          "simulator": "0123abcd", "cost": "c0575"}
_NAMED = {"scenario": "the scenario's content", "duration_s": "--duration-s", "seeds": "seeds",
          "policy": "the policy", "simulator": "the simulator's sources", "cost": "the cost's definition"}
_ANY = st.one_of(NASTY_SCALAR, st.lists(st.integers(-2, 2**63), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _plain(v):
    """A value as a recorded identity holds it (JSON: 2 and 2.0 are one number)."""
    import json
    return json.loads(json.dumps(v))


@fuzz_settings(80)
@given(component=st.sampled_from(sorted(_BLOCK)), value=_ANY, asked=st.booleans())
def test_fuzz_a_resume_refuses_any_changed_identity_component(component, value, asked) -> None:
    """agents.evaluate --resume: a recorded block whose identity differs from now in any one
    component (to any value, even a malformed one) is refused with one line naming that component;
    a block not asked for now is held to the same simulator and cost. The same identity passes."""
    from hypothesis import assume

    from agents import evaluate
    assume(_plain(value) != _plain(_BLOCK[component]))
    assume(asked or component in ("simulator", "cost"))
    key, now_key = ("psi", "-", "q"), ("psi", "-", "q") if asked else ("v1-double", "-", "q")
    rows = [{"policy": "psi", "run": "-", "scenario": "q", "seed": "1000"}]
    results.check_resume(Path("ev/episodes.csv"), rows, {key: dict(_BLOCK)}, {now_key: dict(_BLOCK)})
    with pytest.raises(evaluate.UsageError) as e:
        results.check_resume(Path("ev/episodes.csv"), rows, {key: {**_BLOCK, component: value}},
                              {now_key: dict(_BLOCK)})
    one_line(str(e.value))
    for n in ("ev/episodes.csv", "psi on q", _NAMED[component], "--force"):
        assert n in str(e.value), (n, str(e.value))


_RUN_CFG = {"scenario": "quiet", "algo": "ppo", "seed": 3, "n_envs": 2, "total_timesteps": 64,
            "checkpoint_every": 32, "env": {"action_type": "discrete"}, "ppo": {"n_steps": 16},
            "vec_normalize": False, "evaluate": {"seeds": 2}}


@fuzz_settings(40)
@given(key=st.sampled_from(sorted(set(_RUN_CFG) - {"scenario"}) + ["frame_stack", "a2c"]), value=_ANY,
       steps=st.integers(1, 10**6))
def test_fuzz_train_resume_refuses_any_changed_config_key(key, value, steps) -> None:
    """agents.train --resume: a run folder whose config.yml changed in any key since the run
    started is refused with one line naming that key (a new total_timesteps alone resumes)."""
    from hypothesis import assume
    assume(_plain(_RUN_CFG.get(key)) != _plain(value) and (key != "total_timesteps"))
    d = _tmpdir()
    try:
        checkpoints.write_run_identity(d, dict(_RUN_CFG))
        checkpoints.check_resume_identity(d, {**_RUN_CFG, "total_timesteps": steps})
        with pytest.raises(config.ConfigError) as e:
            checkpoints.check_resume_identity(d, {**_RUN_CFG, key: value})
        one_line(str(e.value))
        for n in ("config.yml", f"key(s) {key}", "--config"):
            assert n in str(e.value), (n, str(e.value))
    finally:
        shutil.rmtree(d)
