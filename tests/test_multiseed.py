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
