"""agents.multiseed (and agents.train --seeds): runs per seed, TensorBoard domain scalars, periodic
held-out evaluation, one evaluation with the runs as the unit, learning curves, the verdict line."""
from __future__ import annotations

import csv

import pytest

from agents import multiseed

TINY = """scenario: incast-pagecache
algo: ppo
seed: 0
n_envs: 4
total_timesteps: 512
action_type: discrete
checkpoint_every: 256
ppo: {n_steps: 64, batch_size: 128}
evaluate: {scenarios: [incast-pagecache], policies: [kernel-default, psi], seeds: 2, duration_s: 2}
"""


def test_parse_seeds():
    assert multiseed.parse_seeds("0-3") == [0, 1, 2, 3]
    assert multiseed.parse_seeds("5,0-1,5") == [5, 0, 1]
    for bad in ("", "a", "3-1", "-1", "1.5", "0-99999"):
        with pytest.raises(multiseed.UsageError):
            multiseed.parse_seeds(bad)


@pytest.mark.slow   # long training: run after the rest (make test), not in make test-fast
def test_two_seeds_without_ray(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    rc = multiseed.main(["--seeds", "0-1", "--config", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--no-ray",
                         "--eval-seeds", "2", "--eval-duration-s", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, out
    assert out[-1].startswith("PPO vs best baseline on incast-pagecache: IQM")
    (group,) = (tmp_path / "runs").glob("multiseed-*")
    runs = sorted((group / "runs").iterdir())
    assert len(runs) == 2
    for r in runs:
        rows = list(csv.DictReader(open(r / "eval_curve.csv")))
        assert [int(x["steps"]) for x in rows] == [256, 512]
        assert (r / "eval_refs.json").is_file()
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        (tb,) = [p.parent for p in (r / "tb").rglob("events.out.tfevents.*")][:1]
        acc = EventAccumulator(str(tb))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        for t in ("env/atomic_fail_per_s", "env/drops_rx_missed_per_s", "env/reserved_mib", "env/min_free_kbytes",
                  "eval/score", "eval/ref/psi", "eval/ref/oracle-static"):
            assert t in tags, (t, sorted(tags))
    eps = list(csv.DictReader(open(group / "eval" / "episodes.csv")))
    assert {r["run"] for r in eps if r["policy"] == "ppo"} == {"seed0", "seed1"}
    assert (group / "eval" / "learning-curves.png").is_file() and (group / "eval" / "summary.md").is_file()


def test_bad_multiseed_arguments_exit_2(tmp_path, capsys):
    assert multiseed.main(["--seeds", "x"]) == 2
    assert multiseed.main(["--seeds", "0-1", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("agents.multiseed: error:") for e in err)
    # a label is a name (checked before any training: no run folder is made)
    from atomgym.paths import TRAIN_CONFIG_DIR
    cfg = TRAIN_CONFIG_DIR / "default.yaml"
    assert multiseed.main(["--seeds", "0", "--config", str(cfg), "--label", "../x", "--runs-dir",
                           str(tmp_path / "runs"), "--no-ray"]) == 2
    assert "--label '../x': allowed: letters" in capsys.readouterr().err and not (tmp_path / "runs").exists()


@pytest.mark.slow   # long training: run after the rest (make test), not in make test-fast
def test_a_sweep_runs_every_grid_point_as_a_policy(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.replace("total_timesteps: 512", "total_timesteps: 256"))
    sw = tmp_path / "sweep.yaml"
    sw.write_text("grid:\n  ppo.learning_rate: [0.0003, 0.001]\n")
    rc = multiseed.main(["--seeds", "0", "--config", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--no-ray",
                         "--sweep", str(sw), "--eval-seeds", "2", "--eval-duration-s", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert out[-2].startswith("PPO-LEARNING_RATE0.0003 vs best baseline") and out[-1].startswith("PPO-LEARNING_RATE0.001 vs")
    (group,) = (tmp_path / "runs").glob("multiseed-*")
    eps = list(csv.DictReader(open(group / "eval" / "episodes.csv")))
    assert {r["policy"] for r in eps if r["policy"].startswith("ppo")} == {"ppo-learning_rate0.0003",
                                                                           "ppo-learning_rate0.001"}
    bad = tmp_path / "bad.yaml"
    for text, want in (("grid: {algo: [trpo]}", "grid point algotrpo: algo: 'trpo'"), ("grid: {}", "expected a mapping"),
                       ("nope: 1", "expected a mapping"), ("grid: {ppo.n_steps: 3}", "non-empty list")):
        bad.write_text(text)
        assert multiseed.main(["--seeds", "0", "--config", str(cfg), "--runs-dir", str(tmp_path / "r2"),
                               "--sweep", str(bad), "--no-ray"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and want in err, err
        assert not (tmp_path / "r2").exists()                # nothing created for a bad sweep


# ---- issue 23: everything checked before any training run; bounded sweep; stopping the runs -----
def _tiny(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    return cfg


def test_huge_or_out_of_range_seeds_are_one_line():
    for bad in ("9" * 5000, str(2**32), f"0-{2**40}"):
        with pytest.raises(multiseed.UsageError, match="a training seed is 0 .. 4294967295"):
            multiseed.parse_seeds(bad)


@pytest.mark.parametrize("opt, value, needle", [
    ("--eval-duration-s", "nan", "argument --eval-duration-s: 'nan'"),
    ("--eval-duration-s", "-1", "argument --eval-duration-s: '-1'"),
    ("--eval-duration-s", "inf", "argument --eval-duration-s: 'inf'"), ("--eval-seeds", "0", "argument --eval-seeds: 0"),
    ("--eval-seeds", "1000001", "argument --eval-seeds: 1000001"),
    ("--total-timesteps", "0", "argument --total-timesteps: 0"),
])
def test_evaluation_options_are_checked_before_training(tmp_path, capsys, opt, value, needle):
    runs = tmp_path / "runs"
    rc = multiseed.main(["--seeds", "0", "--config", str(_tiny(tmp_path)), "--runs-dir", str(runs), "--no-ray",
                         opt, value])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not runs.exists()                     # no group folder: nothing trained


@pytest.mark.parametrize("opt, value, needle", [
    ("--eval-duration-s", "nan", "argument --eval-duration-s: 'nan'"), ("--eval-seeds", "0", "argument --eval-seeds: 0"),
    ("--total-timesteps", "-5", "argument --total-timesteps: -5"), ("--eval-every", "0", "argument --eval-every: 0"),
    ("--play", "sideways", "--play"),
])
def test_fullreport_checks_its_options_before_training(tmp_path, capsys, opt, value, needle):
    from atomgym.agents import fullreport
    out = tmp_path / "rep"
    rc = fullreport.main(["--seeds", "0", "--config", str(_tiny(tmp_path)), "--scenarios", "quiet", "--out", str(out),
                          opt, value])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_a_huge_sweep_is_refused_without_building_it(tmp_path, capsys):
    import time
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid:\n" + "".join(f"  ppo.k{i}: [{', '.join(map(str, range(10)))}]\n" for i in range(40)))
    t0 = time.perf_counter()
    rc = multiseed.main(["--seeds", "0", "--config", str(_tiny(tmp_path)), "--runs-dir", str(tmp_path / "runs"),
                         "--no-ray", "--sweep", str(sweep)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "10000000000000000000000000000000000000000 grid points; at most 1000" in err, err
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("content, needle", [(None, "character device"), ("grid: " + "[" * 100000, "nested too deeply")])
def test_a_sweep_linked_to_a_device_or_nested_too_deep_is_one_line(tmp_path, capsys, content, needle):
    sweep = tmp_path / "sweep.yaml"
    if content is None:
        sweep.symlink_to("/dev/zero")
    else:
        sweep.write_text(content)
    rc = multiseed.main(["--seeds", "0", "--config", str(_tiny(tmp_path)), "--runs-dir", str(tmp_path / "runs"),
                         "--no-ray", "--sweep", str(sweep)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err


def test_sigterm_stops_the_training_processes(tmp_path):
    """SIGTERM to multiseed: its training subprocess is stopped with it (none keeps training),
    one line, exit 143, and the group folder has no runs.json (it does not look finished)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    root = Path(__file__).parents[1]
    cfg = tmp_path / "long.yaml"
    cfg.write_text(TINY.replace("total_timesteps: 512", "total_timesteps: 100000000"))
    p = subprocess.Popen([sys.executable, "-m", "agents.multiseed", "--seeds", "0", "--config", str(cfg), "--runs-dir",
                          str(tmp_path / "runs"), "--no-ray"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, PYTHONPATH=str(root)))

    def children() -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]
    t0 = time.monotonic()
    while not list((tmp_path / "runs").glob("multiseed-*/runs/*/config.yml")):   # the child is training
        assert p.poll() is None and time.monotonic() - t0 < 240, p.communicate()
        time.sleep(0.5)
    kids = children()
    assert kids
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert [ln for ln in err.splitlines() if "interrupted" in ln] == [
        "agents.multiseed: interrupted (SIGTERM); the training runs were stopped; the group folder is incomplete "
        "(no runs.json)"], err
    for k in kids:
        assert not Path(f"/proc/{k}").exists() or Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not list((tmp_path / "runs").glob("multiseed-*/runs.json"))


def test_fullreport_interrupted_during_training_is_one_line(tmp_path, capsys, monkeypatch):
    import signal

    from atomgym import interrupts
    from atomgym.agents import fullreport

    def term(*a, **k):
        raise interrupts.Interrupted(signal.SIGTERM)
    monkeypatch.setattr(multiseed, "dispatch", term)
    out = tmp_path / "rep"
    assert fullreport.main(["--seeds", "0", "--config", str(_tiny(tmp_path)), "--scenarios", "quiet",
                            "--out", str(out)]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["agents.fullreport: interrupted (SIGTERM); the training runs were stopped; the report folder is "
                   "incomplete (no report.md)"], err
    assert not (out / "report.md").exists()


def test_train_seeds_no_eval_reaches_multiseed(tmp_path, monkeypatch):
    # `agents.train --seeds 0-1 --no-eval` trains only: the option reaches the multiseed run (which
    # then returns before agents.evaluate) and its command line
    from agents import train
    got = []
    monkeypatch.setattr(multiseed, "run", lambda opts: got.append(opts) or 0)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    assert train.main(["--seeds", "0-1", "--no-eval", "--config", str(cfg)]) == 0
    (opts,) = got
    assert opts.no_eval and "--no-eval" in opts.argv()
    assert not multiseed.Options(seeds="0").no_eval and "--no-eval" not in multiseed.Options(seeds="0").argv()


def test_run_folder_names_carry_no_colon():
    from atomgym.agents.config import scenario_label
    assert scenario_label({"scenario": "suite:fleet-train"}) == "suite-fleet-train"
    assert scenario_label({"scenario": ["suite:fleet-train", "suite:fleet-train-bursts"]}) == "suite-fleet-train+1"
    assert scenario_label({"scenario": ["configs/scenarios/quiet.yaml"]}) == "quiet"


def test_the_report_evaluates_the_mean_of_its_runs(tmp_path):
    # make report adds LABEL-mean (averaged action probabilities of the runs) for 2+ Discrete PPO/A2C models
    from atomgym.agents import fullreport
    runs = tmp_path / "a[1]"          # a folder name with glob characters stays literal
    models = [runs / f"r{k}" / "model.zip" for k in range(3)]
    pols = fullreport.eval_policies({"algo": "ppo", "env": {"action_type": "relative"}}, "ppo", models, runs)
    assert pols[-1] == f"ppo-mean=mean:{tmp_path}/a[[]1]/*/model.zip" and "oracle-planner" in pols
    assert pols[-4:-1] == [f"ppo={m}" for m in models]
    for cfg, ms in (({"algo": "ppo", "env": {"action_type": "continuous"}}, models),
                    ({"algo": "dqn", "env": {"action_type": "relative"}}, models),
                    ({"algo": "ppo", "env": {"action_type": "relative"}}, models[:1])):
        assert not any(p.startswith("ppo-mean=") for p in fullreport.eval_policies(cfg, "ppo", ms, runs, planner=False))
