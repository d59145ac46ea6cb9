"""Bad inputs found by an independent re-try of issue 16: a capture folder `fidelity` cannot use,
scenario keys a workload kind cannot take, an atomic_alloc period the tick cannot represent.
Each one line (exit 2 for the CLI), never a traceback."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from atomgym import cli
from atomgym.sim.scenario import ScenarioError, load_scenario

CAPTURE = Path(__file__).parent / "data" / "realkernel" / "capture-smoke"
SMOKE_TS = (CAPTURE / "timeseries.jsonl").read_text().splitlines()


def _fidelity(cap: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["fidelity", str(cap)], out, err)
    return code, err.getvalue()


def _edit(tmp_path: Path, name: str, content: str | None) -> Path:
    cap = tmp_path / "cap"
    shutil.copytree(CAPTURE, cap)
    p = cap / name
    p.unlink()
    if content is None:
        p.mkdir()
    else:
        p.write_text(content)
    return cap


@pytest.mark.parametrize("name, content, needle", [
    ("capture.json", "[]\n", "capture.json: a JSON list"),
    ("capture.json", '{"sample_s": 0}\n', "capture.json: sample_s = 0"),
    ("capture.json", '{"atomic": 5}\n', "capture.json: atomic must be an object"),
    ("timeseries.jsonl", '{"t": 0, "zones": []}\n{"t": 1, "zones": []}\n', "sample 1: zones"),
    ("timeseries.jsonl", "\n".join(SMOKE_TS[:3]).replace('"t":0.0059', '"t":"x"'), "sample 1: t = 'x'"),
    ("timeseries.jsonl", "\n".join(SMOKE_TS[1::-1]), "sample 2: t = "),
    ("timeseries.jsonl", "\n".join(s.replace('"vmstat":', '"vmstat_":') for s in SMOKE_TS[:3]),
     "sample 1: vmstat must be an object"),
    ("timeseries.jsonl", "\n".join(SMOKE_TS[:2]).replace('"free":3808,', '', 1), "sample 1: a zone needs"),
    ("events.json", "{\n", "events.json: not JSON"),
    ("events.json", "{}\n", "events.json: a JSON dict"),
    ("events.json", None, "events.json: cannot read"),
])
def test_fidelity_refuses_a_broken_capture_in_one_line(tmp_path, name, content, needle) -> None:
    code, err = _fidelity(_edit(tmp_path, name, content))
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert needle in err, err


def test_fidelity_capture_json_not_utf8(tmp_path) -> None:
    cap = _edit(tmp_path, "capture.json", "")
    (cap / "capture.json").write_bytes(b"\xff\xfe\x00")
    code, err = _fidelity(cap)
    assert code == 2 and "capture.json: not UTF-8" in err and err.count("\n") == 1


def _scen(tmp_path: Path, workload: str, tick: str = "") -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(f"duration_s: 2\n{tick}nics: []\ntraffic: []\nworkloads:\n  - {workload}\n")
    return p


@pytest.mark.parametrize("interval, tick", [("1e-9", ""), ("0.5", ""), ("2", "tick_ms: 5\n")])
def test_atomic_alloc_interval_below_the_tick_is_refused(tmp_path, interval, tick) -> None:
    # before: 1e-9 ms passed validation and the simulator spun for minutes catching up bursts
    p = _scen(tmp_path, f"{{kind: atomic_alloc, pages_per_burst: 1, interval_ms: {interval}}}", tick)
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert "s.yaml:" in str(e.value) and "interval_ms" in str(e.value) and ">= tick_ms" in str(e.value)


def test_atomic_alloc_interval_of_one_tick_loads(tmp_path) -> None:
    s = load_scenario(_scen(tmp_path, "{kind: atomic_alloc, pages_per_burst: 1, interval_ms: 1}"))
    assert s.workloads[0].interval_ms == 1.0


@pytest.mark.parametrize("kind", ["anon_hog", "stream_read", "churn"])
def test_gfp_on_a_workload_that_is_not_atomic_alloc_is_refused(tmp_path, kind) -> None:
    with pytest.raises(ScenarioError) as e:
        load_scenario(_scen(tmp_path, f"{{kind: {kind}, gfp: nowait}}"))
    assert "workloads[0].gfp: only for kind atomic_alloc" in str(e.value)


def test_evaluate_out_empty_is_refused_and_nothing_lands_in_the_current_folder(tmp_path, monkeypatch, capsys) -> None:
    from agents import evaluate
    monkeypatch.chdir(tmp_path)
    for out in ("", "  "):
        assert evaluate.main(["--policies", "psi", "--scenarios", "quiet", "--seeds", "1",
                              "--duration-s", "1", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("argument --out: empty") == 2 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []     # before: episodes.csv, actions.log and the lock in "."


@pytest.mark.parametrize("dur", ["1e-9", "0.0004"])
def test_evaluate_duration_below_one_tick_is_refused_before_any_file(tmp_path, capsys, dur) -> None:
    from agents import evaluate
    out = tmp_path / "o"
    assert evaluate.main(["--policies", "psi", "--scenarios", "quiet", "--seeds", "1",
                          "--duration-s", dur, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "shorter than one tick of quiet (1 ms)" in err and err.count("\n") == 1
    assert not out.exists()                   # before: an episodes.csv of 0-tick "episodes"


def test_evaluate_resume_refuses_a_torn_episodes_csv(tmp_path, capsys) -> None:
    from agents import evaluate
    out = tmp_path / "o"
    argv = ["--policies", "psi", "--scenarios", "quiet", "--seeds", "1", "--duration-s", "0.05",
            "--no-oracle", "--no-summary", "--out", str(out)]
    assert evaluate.main(argv) == 0
    csv_path = out / "episodes.csv"
    whole = csv_path.read_text()
    csv_path.write_text(whole[: whole.rindex(",", 0, whole.rindex(",") - 1)])   # the last row torn: 2 fields short
    capsys.readouterr()
    assert evaluate.main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    # the one reader's message (agents.report gives the same): the file, the line, what was expected
    from atomgym.agents.results import COLUMNS
    assert f"{csv_path}: line 3: {len(COLUMNS) - 2} fields, expected {len(COLUMNS)} (policy, run," in err, err
    assert err.count("\n") == 1
    # before: the torn row counted as finished and the next block appended onto its line
    assert csv_path.read_text() == whole[: whole.rindex(",", 0, whole.rindex(",") - 1)]
    bad = whole.splitlines()
    bad[2] = bad[2].replace(",0.05,", ",abc,", 1)
    csv_path.write_text("\n".join(bad) + "\n")
    assert evaluate.main([*argv, "--resume"]) == 2
    assert f"{csv_path}: line 3, column duration_s: 'abc' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize("counters, needle", [
    ({}, "key 'counters': empty"),                           # before: "all 0 counters equal", exit 0
    ({"pageoutrun": "x"}, "key 'counters': 'pageoutrun' is 'x'"),   # before: exit 1, "differs"
    ({"pageoutrun": True}, "key 'counters': 'pageoutrun' is True"),
])
def test_replay_refuses_a_record_with_broken_counters(tmp_path, capsys, counters, needle) -> None:
    import json

    from agents import replay
    f = tmp_path / "ep.json"
    assert replay.main([str(f), "--save", "--policy", "psi", "--scenario", "quiet", "--seed", "1",
                        "--duration-s", "0.05"]) == 0
    ep = json.loads(f.read_text())
    ep["counters"] = counters
    g = tmp_path / "bad.json"
    g.write_text(json.dumps(ep))
    capsys.readouterr()
    assert replay.main([str(g)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "bad.json" in err and err.count("\n") == 1


_TRAIN = "scenario: quiet\nalgo: ppo\nseed: 0\nn_envs: 2\ntotal_timesteps: 64\naction_type: discrete\n"


@pytest.mark.parametrize("ppo, needle", [
    ("  n_steps: 32\n  batch_size: 32\n  gamma: 2\n", "ppo.gamma: 2 is out of range; valid: 0..1"),
    ("  n_steps: 32\n  batch_size: 32\n  gae_lambda: -0.5\n", "ppo.gae_lambda: -0.5 is out of range"),
    # before: SB3's multi-line UserWarning above the error (5 lines on stderr)
    ("  n_steps: 99999999999999\n  batch_size: 32\n", "ppo: PPO(...) rejects these arguments"),
])
def test_train_config_ppo_values_one_line_and_no_run_folder(tmp_path, capfd, ppo, needle) -> None:
    from agents import train
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_TRAIN + "ppo:\n" + ppo)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(cfg), "--runs-dir", str(runs), "--no-eval"]) == 2
    err = capfd.readouterr().err
    assert needle in err and "cfg.yaml" in err and err.count("\n") == 1, err
    assert not runs.exists() or not any(runs.iterdir())


def test_report_reps_too_large_and_out_empty_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    from agents import report
    csv_path = tmp_path / "episodes.csv"
    csv_path.write_text("policy,scenario,seed,score,atomic_fail,drops_total,reserved_mib_s,stall_s\n")
    monkeypatch.chdir(tmp_path)
    # before: a numpy MemoryError traceback (exit 1)
    assert report.main([str(csv_path), "--reps", "100000000000"]) == 2
    assert "argument --reps: 100000000000: expected an integer in [100, 100000]" in capsys.readouterr().err
    # before: summary.md and the plots written into the current folder
    assert report.main([str(csv_path), "--out", ""]) == 2
    err = capsys.readouterr().err
    assert "--out: empty" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episodes.csv"]


def test_randomized_atomic_alloc_interval_below_the_tick_is_refused_at_load(tmp_path) -> None:
    # before: it loaded, and the first reset that drew it failed (after a training run folder existed)
    p = tmp_path / "s.yaml"
    p.write_text("duration_s: 2\nnics: []\ntraffic: []\nworkloads:\n"
                 "  - {kind: atomic_alloc, pages_per_burst: 1, interval_ms: 10}\n"
                 "randomize:\n  workloads.0.interval_ms: [0.5, 20]\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert "s.yaml:" in str(e.value) and "randomize" in str(e.value) and "bounds >= tick_ms" in str(e.value)
    p.write_text(p.read_text().replace("[0.5, 20]", "[1, 20]"))
    assert load_scenario(p).randomize


# ---- issue 23: unbounded reads, deep nesting, huge numbers in a capture --------------------------
@pytest.mark.parametrize("name, content, needle", [
    ("capture.json", "[" * 100000, "capture.json: JSON nested too deeply"),
    ("capture.json", '{"sample_s": 1e400}\n', "capture.json: sample_s = inf"),
    ("capture.json", '{"sample_s": ' + "9" * 400 + '}\n', "capture.json: sample_s = 999"),
    ("capture.json", '{"first_failure_t": ' + "9" * 400 + '}\n', "capture.json: first_failure_t = 999"),
    ("capture.json", '{"atomic": {"first_fail_free": [{"zone_idx": 1, "free": "x"}]}}\n', "atomic must be"),
    ("events.json", "[" * 100000, "events.json: JSON nested too deeply"),
    ("timeseries.jsonl", "[" * 100000, "timeseries.jsonl:1: JSON nested too deeply"),
    ("timeseries.jsonl", "\n".join(SMOKE_TS[:3]).replace('"t":0.0059', '"t":' + "9" * 400), "sample 1: t = 999"),
    ("timeseries.jsonl", "\n".join(SMOKE_TS[:3]).replace('"free":3808', '"free":' + "9" * 400, 1),
     "sample 1: a zone needs"),
])
def test_fidelity_refuses_deep_or_huge_values_in_one_line(tmp_path, name, content, needle) -> None:
    code, err = _fidelity(_edit(tmp_path, name, content))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


@pytest.mark.parametrize("name", ["events.json", "capture.json", "timeseries.jsonl"])
def test_a_capture_file_linked_to_a_device_is_refused_unread(tmp_path, name) -> None:
    cap = _edit(tmp_path, name, "")
    (cap / name).unlink()
    (cap / name).symlink_to("/dev/zero")
    code, err = _fidelity(cap)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    # refused before it is read: as a link (never followed) or, behind one, as a device
    assert (f"{name}: a symbolic link" in err or f"{name}: cannot read: a character device" in err
            or f"no {name}" in err), err


@pytest.mark.parametrize("seed", ["-1", str(2**63), "1" * 40, "x"])
def test_fidelity_seed_out_of_range_is_one_line(seed) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["fidelity", str(CAPTURE), "--seed", seed], out, err)
    assert code == 2 and err.getvalue().count("\n") == 1 and "--seed" in err.getvalue(), err.getvalue()
