"""agents.train: config validation (one clear line, exit 2), a run folder that holds everything,
resuming an interrupted run, and the comparison with the baselines at the end."""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
import yaml

from agents import train
from atomgym.agents import callbacks, config

SMALL = {"scenario": "quiet", "algo": "ppo", "seed": 3, "n_envs": 2, "total_timesteps": 128,
         "action_type": "discrete", "checkpoint_every": 64,
         "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
         "evaluate": {"policies": ["kernel-default", "v10-acked"], "scenarios": ["quiet"], "seeds": 2,
                      "duration_s": 1.0}}


def _write(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("patch, needle", [
    ({"n_env": 4}, "unknown key(s) ['n_env']"),
    ({"n_envs": 0}, "n_envs: expected a positive integer"),
    ({"total_timesteps": "lots"}, "total_timesteps: expected an integer in [1, 1000000000000]"),
    ({"algo": "trpo"}, "algo: 'trpo'; valid: ppo, a2c, dqn, recurrent_ppo, sac, td3"),
    ({"action_type": "binary"}, "action_type: 'binary' is not valid"),
    ({"algo": "sac"}, "algo: sac needs a continuous action space"),
    ({"decision_interval_ms": 5}, "decision_interval_ms: expected a number in [10, 10000]"),
    ({"reward_baseline": "kernel"}, "reward_baseline: 'kernel'; valid: none, default"),
    ({"scenario": "no-such-scenario"}, "scenario:"),
    ({"ppo": {"n_stepz": 64}}, "ppo: unknown argument(s) ['n_stepz']"),
    ({"evaluate": {"policies": ["v99"]}}, "evaluate.policies: unknown ['v99']"),
    ({"evaluate": {"seed": 3}}, "evaluate: expected a mapping with keys"),
    ({"evaluate": {"scenarios": ["no-such-scenario"]}}, "evaluate.scenarios:"),
    ({"evaluate": {"seeds": 0}}, "evaluate: seeds: expected an integer in [1, 100000], got 0"),
    ({"evaluate": {"seeds": 200000}}, "evaluate: seeds: expected an integer in [1, 100000], got 200000"),
    ({"evaluate": {"duration_s": -1}}, "evaluate.duration_s: expected a number of seconds > 0"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, patch, needle):
    p = _write(tmp_path, {**SMALL, **patch})
    assert train.main(["--config", str(p), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(p) in err and needle in err, err
    assert not (tmp_path / "runs").exists()      # nothing created for a bad config


def test_unreadable_config_and_bad_resume(tmp_path, capsys):
    assert train.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read" in capsys.readouterr().err
    (tmp_path / "x.yaml").write_text("scenario: [unclosed\n")
    assert train.main(["--config", str(tmp_path / "x.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path)]) == 2
    assert "not a run folder (no config.yml)" in capsys.readouterr().err


def test_shipped_configs_are_valid():
    cfg = config.load_config(config.DEFAULT_CONFIG)
    assert cfg["algo"] == "ppo" and cfg["n_envs"] >= 1
    shipped = sorted(config.DEFAULT_CONFIG.parent.glob("*.yaml"))
    assert len(shipped) >= 3
    def scen(c):   # a scenario, a suite or a list of them (the benchmark trains on two fleets)
        return tuple(c["scenario"]) if isinstance(c["scenario"], list) else c["scenario"]
    kinds = {(scen(c), config.env_kwargs(c).get("action_type")) for c in map(config.load_config, shipped)}
    assert ("incast-pagecache", "continuous") in kinds and ("train-randomized", "discrete") in kinds
    assert (("suite:fleet-train", "suite:fleet-train-bursts"), "relative") in kinds


@pytest.mark.slow   # long training: run after the rest (make test), not in make test-fast
def test_train_resume_and_compare(tmp_path, capsys):
    runs = tmp_path / "runs"
    p = _write(tmp_path, SMALL)
    assert train.main(["--config", str(p), "--runs-dir", str(runs)]) == 0
    (run,) = list(runs.iterdir())
    assert run.name.startswith("quiet__ppo__3__")
    assert yaml.safe_load((run / "config.yml").read_text())["total_timesteps"] == 128
    assert "agents.train" in (run / "command.txt").read_text()
    events = list((run / "tb").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard events"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(events[0].parent))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"reward/atomic_fail", "reward/reserved_mib_s", "reward/drops", "train/loss"} <= tags, tags
    cks = sorted((run / "checkpoints").glob("model_*_steps.zip"))
    assert [c.name for c in cks] == ["model_128_steps.zip", "model_64_steps.zip"]
    assert zipfile.is_zipfile(run / "model.zip")
    rows = list(csv.DictReader(open(run / "eval" / "episodes.csv")))
    pols = {r["policy"] for r in rows}
    # the model is named by its algorithm (tables name policies briefly); oracle-static: the reference bound
    assert pols == {"kernel-default", "oracle-static", "v10-acked", "ppo"}
    assert len(rows) == 8 and all(r["scenario"] == "quiet" for r in rows)
    out = capsys.readouterr().out
    assert "comparing with the baselines" in out and "kernel-default" in out

    # an interrupted run continues from its newest checkpoint; nothing it wrote is lost
    (run / "model.zip").unlink()
    (run / "checkpoints" / "model_128_steps.zip").unlink()
    first_cmd = (run / "command.txt").read_text()
    assert train.main(["--resume", str(run), "--total-timesteps", "192", "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "model_64_steps.zip" in out
    assert "model saved" in out and "(192 agent steps" in out
    assert (run / "command.txt").read_text().startswith(first_cmd)
    assert yaml.safe_load((run / "config.yml").read_text())["total_timesteps"] == 192
    assert (run / "eval" / "episodes.csv").is_file()      # the first comparison is kept

    # a second run never reuses a folder
    assert train.main(["--config", str(p), "--runs-dir", str(runs), "--total-timesteps", "64", "--no-eval"]) == 0
    assert len(list(runs.iterdir())) == 2


def test_ctrl_c_saves_a_checkpoint_that_resume_continues(tmp_path, capsys, monkeypatch):
    """An interrupted run (KeyboardInterrupt inside learn()) saves model_<steps>_steps.zip at once,
    exits 130 and tells how to resume; --resume continues from exactly there."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Interrupt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 40:
                raise KeyboardInterrupt
            return True

    monkeypatch.setattr(callbacks, "reward_terms_callback", lambda: Interrupt())
    cfg = {**SMALL, "checkpoint_every": 10_000}        # no periodic checkpoint before the interrupt
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, cfg)), "--runs-dir", str(runs), "--no-eval"]) == 130
    (run,) = list(runs.iterdir())
    err = capsys.readouterr().err
    assert "interrupted at 40 agent steps" in err and f"--resume {run}" in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["model_40_steps.zip"]
    assert not (run / "model.zip").exists()
    monkeypatch.undo()
    assert train.main(["--resume", str(run), "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "model_40_steps.zip" in out
    assert "(168 agent steps" in out        # 40 + PPO's whole rollouts of 2 x 32 steps up to >= 128


def test_reward_baseline_reaches_the_training_env():
    """reward_baseline: default in a config gives SB3 the difference reward: no-ops earn exactly 0."""
    import numpy as np

    venv = train.make_vec_env({**SMALL, "scenario": "train-randomized", "reward_baseline": "default"})
    venv.reset()
    for _ in range(5):
        _, r, _, infos = venv.step(np.zeros(SMALL["n_envs"], np.int64))
        assert (r == 0.0).all() and all("reward_default" in i for i in infos)
    venv.close()


def test_train_config_fields_are_the_config_keys():
    """TrainConfig declares each YAML key once: its fields are the keys load_config accepts."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(config.TrainConfig) if not f.metadata.get("internal")}
    assert names == config.KEYS
    cfg = config.load_config(config.DEFAULT_CONFIG)
    assert cfg.algo == cfg["algo"] and dict(cfg) == cfg.to_dict() and "frame_stack" not in cfg


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path, capsys, monkeypatch):
    """SIGTERM (interrupts.interruptible raises Interrupted, a KeyboardInterrupt) takes Ctrl-C's
    path: a checkpoint that --resume continues, one message, exit 128 + 15."""
    import signal

    from stable_baselines3.common.callbacks import BaseCallback

    from atomgym import interrupts

    class Term(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 40:
                raise interrupts.Interrupted(signal.SIGTERM)
            return True

    monkeypatch.setattr(callbacks, "reward_terms_callback", lambda: Term())
    runs = tmp_path / "runs"
    cfg = {**SMALL, "checkpoint_every": 10_000}
    assert train.main(["--config", str(_write(tmp_path, cfg)), "--runs-dir", str(runs), "--no-eval"]) == 143
    (run,) = list(runs.iterdir())
    err = capsys.readouterr().err
    assert "interrupted at 40 agent steps" in err and "Traceback" not in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["model_40_steps.zip"]


def test_interrupt_before_training_is_one_line(tmp_path, capsys, monkeypatch):
    def stop(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "make_vec_env", stop)
    rc = train.main(["--config", str(_write(tmp_path, SMALL)), "--runs-dir", str(tmp_path / "runs"), "--no-eval"])
    err = capsys.readouterr().err.strip()
    assert rc == 130 and err.splitlines()[-1] == ("agents.train: interrupted (Ctrl-C) before training started; "
                                                   "no model was saved"), err
    assert "Traceback" not in err
