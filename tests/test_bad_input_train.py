"""agents.train, bad input: every config that would fail after the run folder exists is refused
before it (exit 2, one line, no folder); --resume of a finished run refuses; a truncated newest
checkpoint falls back to the one before; a full disk is one line and leaves nothing partial."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

from agents import train
from atomgym import safefiles
from atomgym.agents import checkpoints

SMALL = {"scenario": "quiet", "algo": "ppo", "seed": 3, "n_envs": 2, "total_timesteps": 64,
         "action_type": "discrete", "checkpoint_every": 32,
         "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1}}


def _write(tmp_path: Path, cfg: dict | str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return p


def _refused(tmp_path: Path, capsys, cfg: Path, *needles: str, extra: tuple[str, ...] = ()) -> str:
    runs = tmp_path / "runs"
    code = train.main(["--config", str(cfg), "--runs-dir", str(runs), "--no-eval", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and "Traceback" not in err and err.startswith("agents.train: error:"), err
    for n in needles:
        assert n in err, (n, err)
    assert not runs.exists(), "a run folder was created for a bad config"
    return err


@pytest.mark.parametrize("patch, needles", [
    ({"ppo": {"n_steps": "64"}}, ["ppo.n_steps: expected an integer (like its default 2048), got str '64'"]),
    ({"ppo": {"n_steps": 0}}, ["ppo.n_steps: 0 is out of range; valid: >= 1"]),
    ({"ppo": {"learning_rate": "fast"}}, ["ppo.learning_rate: expected a finite number", "'fast'"]),
    ({"ppo": {"learning_rate": -1.0}}, ["ppo.learning_rate: -1.0 is out of range; valid: > 0"]),
    ({"ppo": {"gamma": float("nan")}}, ["ppo.gamma: expected a finite number"]),
    ({"ppo": {"normalize_advantage": "yes"}}, ["ppo.normalize_advantage: expected true or false"]),
    ({"ppo": {"seed": 1}}, ["ppo.seed: set by the top-level `seed` key"]),
    ({"ppo": {"tensorboard_log": "/tmp/x"}}, ["ppo.tensorboard_log: set by agents.train itself"]),
    ({"ppo": {"_init_setup_model": False}}, ["ppo: unknown argument(s) ['_init_setup_model']"]),
    ({"ppo": {"policy_kwargs": {"net_arch": [-1]}}}, ["ppo: PPO(...) rejects these arguments"]),
    ({"ppo": {1: 2, "n_stepz": 3}}, ["ppo: unknown argument(s)"]),
    ({"decision_interval_ms": 15.5}, ["decision_interval_ms: 15.5 is not a multiple of the scenario's tick"]),
    ({"seed": 2**40}, ["seed: expected an integer in 0..4294967295"]),
    ({"n_envs": 10**9}, ["n_envs: 1000000000 is out of range"]),
    ({"scenario": ["quiet", 1]}, ["scenario: expected a scenario name, a YAML path, a non-empty list"]),
    ({"reward_baseline": ["default"]}, ["reward_baseline: ['default']"]),
    ({"evaluate": {"policies": "kernel-default"}}, ["evaluate.policies: expected a list of names"]),
    ({"evaluate": {"scenarios": "quiet"}}, ["evaluate.scenarios: expected a list of names"]),
    ({"start_action": 3}, ["start_action: expected a mapping {action: N, prob: P}"]),
    ({"start_action": {"action": 7}}, ["start_action: expected a mapping {action: N, prob: P}"]),
    ({"start_action": {"action": 7, "prob": 0.9}}, ["start_action.action: 7; expected an action of action_type "
                                                     "discrete: an integer in 0..6"]),
    ({"start_action": {"action": True, "prob": 0.9}}, ["start_action.action: True"]),
    ({"start_action": {"action": 1, "prob": 1.0}}, ["start_action.prob: 1.0; expected a probability in (0, 1)"]),
    ({"start_action": {"action": 1, "prob": "high"}}, ["start_action.prob: "]),
    ({"algo": "dqn", "dqn": None, "start_action": {"action": 1, "prob": 0.5}},
     ["start_action: dqn has no categorical policy head; valid with: ppo, a2c, recurrent_ppo"]),
])
def test_configs_that_used_to_fail_after_the_run_folder_existed(tmp_path, capsys, patch, needles) -> None:
    p = _write(tmp_path, {**SMALL, **patch})
    _refused(tmp_path, capsys, p, str(p), *needles)


def test_scenario_whose_tick_does_not_divide_the_interval(tmp_path, capsys) -> None:
    sc = _write(tmp_path, "tick_ms: 0.3\nduration_s: 2\n", "odd.yaml")
    p = _write(tmp_path, {**SMALL, "scenario": str(sc)})
    _refused(tmp_path, capsys, p, "decision_interval_ms: 100", "tick (0.3 ms)")


def test_scenario_with_a_malformed_trace(tmp_path, capsys) -> None:
    (tmp_path / "t.csv").write_text("packets\n5\n1.5\n")
    sc = _write(tmp_path, "traffic:\n  - {kind: replay, trace: t.csv}\n", "replay.yaml")
    p = _write(tmp_path, {**SMALL, "scenario": str(sc)})
    _refused(tmp_path, capsys, p, "scenario:", "t.csv:3: trace: '1.5' is not a whole number")
    # the same trace in an evaluation scenario, which used to fail only after the training
    p = _write(tmp_path, {**SMALL, "evaluate": {"scenarios": [str(sc)]}})
    _refused(tmp_path, capsys, p, "evaluate.scenarios:", "t.csv:3")


@pytest.mark.parametrize("text, needle", [
    ("", "the file is empty"),
    ("# only comments\n", "the file is empty"),
    ("- a\n- b\n", "got list"),
    ("scenario: " + "[" * 5000 + "]" * 5000 + "\n", "YAML nested too deeply; expected a training config"),
    ("total_timesteps: " + "9" * 5000 + "\n", "not valid YAML"),
])
def test_unusable_config_files(tmp_path, capsys, text, needle) -> None:
    _refused(tmp_path, capsys, _write(tmp_path, text), needle)


def test_binary_directory_and_device_configs(tmp_path, capsys) -> None:
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00scenario")
    _refused(tmp_path, capsys, p, f"{p}: not UTF-8 text (byte 0); expected a training config (a short YAML file "
                                  f"such as configs/train/default.yaml)")
    _refused(tmp_path, capsys, tmp_path, f"{tmp_path}: cannot read: a folder, not a regular file; expected a "
                                         f"training config")
    if Path("/dev/zero").exists():
        _refused(tmp_path, capsys, Path("/dev/zero"), "/dev/zero")


def test_bad_command_line_is_one_line(tmp_path, capsys) -> None:
    p = _write(tmp_path, SMALL)
    for extra in (("--total-timesteps", "0"), ("--total-timesteps", "1.5"), ("--frobnicate",)):
        rc = train.main(["--config", str(p), "--runs-dir", str(tmp_path / "runs"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0 and "agents.train: error:" in err, err


# ---- resume -------------------------------------------------------------------------------------
@pytest.fixture
def finished_run(tmp_path, capsys) -> Path:
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, SMALL)), "--runs-dir", str(runs), "--no-eval"]) == 0
    capsys.readouterr()
    (run,) = list(runs.iterdir())
    return run


def test_resume_of_a_finished_run_refuses_and_keeps_model_zip(finished_run, capsys) -> None:
    model = finished_run / "model.zip"
    before = (model.read_bytes(), model.stat().st_mtime_ns)
    tb_before = sorted(p.name for p in (finished_run / "tb").rglob("*"))
    for extra in ([], ["--total-timesteps", "64"], ["--total-timesteps", "32"]):
        assert train.main(["--resume", str(finished_run), "--no-eval", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "the run is complete" in err and "64 agent steps" in err and "--total-timesteps N" in err, err
        assert err.count("\n") == 0, err
    assert (model.read_bytes(), model.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (finished_run / "tb").rglob("*")) == tb_before
    assert yaml.safe_load((finished_run / "config.yml").read_text())["total_timesteps"] == 64


def test_resume_trains_a_finished_run_further_and_loses_nothing_on_the_way(tmp_path, capsys, monkeypatch) -> None:
    runs = tmp_path / "runs"
    cfg = _write(tmp_path, {**SMALL, "vec_normalize": {"norm_obs": True, "norm_reward": True}})
    assert train.main(["--config", str(cfg), "--runs-dir", str(runs), "--no-eval"]) == 0
    (finished_run,) = list(runs.iterdir())
    model = finished_run / "model.zip"
    first, stats = model.read_bytes(), checkpoints.vecnormalize_path(model).read_bytes()
    assert checkpoints.model_steps(model) == 64
    capsys.readouterr()
    # interrupted on its way: the finished model stays, kept as the checkpoint the extension starts from
    with monkeypatch.context() as m:
        m.setattr(train, "load_newest_valid", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        assert train.main(["--resume", str(finished_run), "--no-eval", "--total-timesteps", "128"]) == 130
    assert "kept as" in capsys.readouterr().out
    assert model.read_bytes() == first and checkpoints.vecnormalize_path(model).read_bytes() == stats
    kept = finished_run / "checkpoints" / "model_64_steps.zip"
    assert kept.read_bytes() == first and checkpoints.vecnormalize_path(kept).read_bytes() == stats
    assert yaml.safe_load((finished_run / "config.yml").read_text())["total_timesteps"] == 128
    # --resume alone now continues toward config.yml's 128, from the kept model
    assert train.main(["--resume", str(finished_run), "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "model_64_steps.zip" in out and "training PPO for 64 agent steps" in out, out
    assert checkpoints.model_steps(model) == 128
    assert [c.name for c in checkpoints.checkpoints(finished_run)][:2] == ["model_128_steps.zip", "model_96_steps.zip"]
    assert not [p.name for p in finished_run.rglob("*") if p.name.endswith(".tmp")]


def test_resume_falls_back_from_a_truncated_newest_checkpoint(finished_run, capsys) -> None:
    cks = checkpoints.checkpoints(finished_run)
    assert [c.name for c in cks] == ["model_64_steps.zip", "model_32_steps.zip"]
    (finished_run / "model.zip").unlink()              # as a kill during training leaves it
    data = cks[0].read_bytes()
    cks[0].write_bytes(data[: len(data) // 2])           # as a kill during its save leaves it
    assert train.main(["--resume", str(finished_run), "--no-eval"]) == 0
    cap = capsys.readouterr()
    assert "model_64_steps.zip cannot be loaded" in cap.err and "falling back" in cap.err
    assert "resuming from" in cap.out and "model_32_steps.zip" in cap.out
    assert "model saved" in cap.out and (finished_run / "model.zip").is_file()


def test_no_temporary_files_are_left_in_a_run(finished_run) -> None:
    left = [p.name for p in finished_run.rglob("*") if p.name.endswith(".tmp")]
    assert left == []


# ---- full disk ----------------------------------------------------------------------------------
def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_before_the_run_starts_leaves_no_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(safefiles, "replace_text", _enospc)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, SMALL)), "--runs-dir", str(runs), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "no run folder was left" in err and err.count("\n") == 0, err
    assert list(runs.iterdir()) == []


def test_full_disk_during_training_is_one_line_and_no_partial_model(tmp_path, capsys, monkeypatch) -> None:
    real = checkpoints.save_atomically

    def full_after_first(model, path):
        if path.name == "model.zip":
            # a torn write: part of the file, then the disk is full
            return real(type("Torn", (), {"save": lambda self, fh: (fh.write(b"PK\x03\x04"), _enospc())})(), path)
        return real(model, path)
    monkeypatch.setattr(checkpoints, "save_atomically", full_after_first)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, SMALL)), "--runs-dir", str(runs), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "--resume" in err and err.count("\n") == 0, err
    (run,) = list(runs.iterdir())
    assert not (run / "model.zip").exists()
    assert [p.name for p in run.rglob("*") if p.name.endswith(".tmp")] == []


def test_a_newline_in_the_config_name_stays_on_one_line(tmp_path, capsys) -> None:
    p = _write(tmp_path, "", "a\nb.yaml")
    _refused(tmp_path, capsys, p, "a\\nb.yaml", "the file is empty")


def test_evaluation_env_is_built_before_training(tmp_path, capsys) -> None:
    """A scenario the training runs (tick 2 ms, interval 20 ms) but the evaluation's env cannot
    (the evaluation's duration 0.0005 s is below the env's 0.001 s): refused before training."""
    p = _write(tmp_path, {**SMALL, "evaluate": {"duration_s": 0.0005}})
    _refused(tmp_path, capsys, p, "evaluate.duration_s", "0.001..1e7")
    sc = _write(tmp_path, "tick_ms: 0.3\nduration_s: 2\n", "odd.yaml")
    p = _write(tmp_path, {**SMALL, "evaluate": {"scenarios": ["quiet", str(sc)]}})
    _refused(tmp_path, capsys, p, "evaluate.scenarios:", "odd.yaml", "not a multiple of the scenario's tick")


def test_training_that_fails_midway_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    """A failure only learn() can show (a policy diverging to NaN): one line, exit 2."""
    import stable_baselines3

    def diverge(self, *a, **k):
        raise ValueError("Expected parameter logits (Tensor of shape (2, 7)) to satisfy the constraint "
                         "IndependentConstraint(Real(), 1), but found invalid values:\ntensor([[nan, nan]])")
    monkeypatch.setattr(stable_baselines3.PPO, "learn", diverge)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, SMALL)), "--runs-dir", str(runs), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training failed: Expected parameter logits" in err and "learning rate" in err, err


@pytest.mark.parametrize("patch, needle", [
    # a negative clip_obs clipped every observation to one constant: the run trained on nothing, exit 0
    ({"vec_normalize": {"clip_obs": -1.0}}, "vec_normalize.clip_obs: -1.0 is out of range; valid: > 0"),
    ({"vec_normalize": {"clip_reward": 0.0}}, "vec_normalize.clip_reward: 0.0 is out of range; valid: > 0"),
    ({"vec_normalize": {"gamma": 1.5}}, "vec_normalize.gamma: 1.5 is out of range; valid: 0..1"),
    ({"vec_normalize": {"epsilon": -1e-8}}, "vec_normalize.epsilon: -1e-08 is out of range; valid: > 0"),
    ({"ppo": {"gamma": 1.01}}, "ppo.gamma: 1.01 is out of range; valid: 0..1"),
    ({"ppo": {"batch_size": 0}}, "ppo.batch_size: 0 is out of range; valid: >= 1"),
    ({"ppo": {"n_epochs": -2}}, "ppo.n_epochs: -2 is out of range; valid: >= 1"),
    ({"ppo": {"clip_range": 0.0}}, "ppo.clip_range: 0.0 is out of range; valid: > 0"),
    ({"ppo": {"ent_coef": -0.1}}, "ppo.ent_coef: -0.1 is out of range; valid: >= 0"),
    ({"ppo": {"vf_coef": -1.0}}, "ppo.vf_coef: -1.0 is out of range; valid: >= 0"),
    ({"ppo": {"max_grad_norm": -0.5}}, "ppo.max_grad_norm: -0.5 is out of range; valid: > 0"),
    ({"ppo": {"target_kl": -0.01}}, "ppo.target_kl: -0.01 is out of range; valid: > 0"),
    ({"algo": "a2c", "a2c": {"n_steps": 0}}, "a2c.n_steps: 0 is out of range; valid: >= 1"),
    ({"algo": "dqn", "dqn": {"exploration_final_eps": 2.0}}, "dqn.exploration_final_eps: 2.0 is out of range"),
    ({"algo": "dqn", "dqn": {"buffer_size": 0}}, "dqn.buffer_size: 0 is out of range; valid: >= 1"),
    ({"algo": "dqn", "dqn": {"gradient_steps": 0}}, "dqn.gradient_steps: 0 is out of range; valid: >= -1 (not 0)"),
    ({"algo": "dqn", "dqn": {"learning_starts": -5}}, "dqn.learning_starts: -5 is out of range; valid: >= 0"),
])
def test_numeric_arguments_out_of_range_are_refused(tmp_path, capsys, patch, needle) -> None:
    """Each of these used to be taken by SB3 or VecNormalize and train on nonsense (or not at all)
    with exit 0, or fail in SB3's own words."""
    p = _write(tmp_path, {**SMALL, **patch})
    _refused(tmp_path, capsys, p, str(p), needle)


def test_resume_of_a_run_whose_config_changed_is_refused(finished_run, capsys) -> None:
    """After config.yml was edited, no checkpoint loaded and --resume restarted from step 0 in the
    same folder, exit 0. Now: one line naming the changed keys; nothing in the folder changes."""
    (finished_run / "model.zip").unlink()               # as an interrupted run leaves it
    cfg_path = finished_run / "config.yml"
    first = cfg_path.read_text()
    cfg = yaml.safe_load(first)
    cks = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    for patch, needle in (({"n_envs": 4}, "key(s) n_envs"), ({"ppo": {**cfg["ppo"], "n_epochs": 2}}, "key(s) ppo"),
                          ({"seed": 4, "frame_stack": 2}, "key(s) frame_stack, seed")):
        cfg_path.write_text(yaml.safe_dump({**cfg, **patch}))
        assert train.main(["--resume", str(finished_run), "--no-eval"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and needle in err and "--config" in err, err
        assert sorted(p.name for p in (finished_run / "checkpoints").iterdir()) == cks
    # a new total_timesteps is what --resume is for: it continues
    cfg_path.write_text(first)
    assert train.main(["--resume", str(finished_run), "--no-eval", "--total-timesteps", "96"]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_resume_of_a_run_whose_scenario_or_simulator_changed_is_refused(tmp_path, capsys, monkeypatch) -> None:
    from atomgym.agents import identity
    from atomgym.paths import SCENARIO_DIR
    scen = tmp_path / "mine.yaml"
    scen.write_text((SCENARIO_DIR / "quiet.yaml").read_text())
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, {**SMALL, "scenario": str(scen)})), "--runs-dir", str(runs),
                       "--no-eval"]) == 0
    (run,) = list(runs.iterdir())
    (run / "model.zip").unlink()
    capsys.readouterr()
    scen.write_text(scen.read_text().replace("rate_pps: 1.0e5", "rate_pps: 2.0e5"))
    assert train.main(["--resume", str(run), "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "the content of its scenario" in err, err
    scen.write_text((SCENARIO_DIR / "quiet.yaml").read_text())
    monkeypatch.setattr(identity, "simulator_digest", lambda: "another simulator")
    assert train.main(["--resume", str(run), "--no-eval"]) == 2
    assert "the simulator's sources" in capsys.readouterr().err
    monkeypatch.undo()
    (run / "identity.json").unlink()                   # a run of an older version: cannot be checked
    assert train.main(["--resume", str(run), "--no-eval"]) == 2
    assert "no identity.json" in capsys.readouterr().err


def test_two_evaluation_scenarios_of_one_name_are_refused_before_training(tmp_path, capsys) -> None:
    """agents.evaluate refuses them (one would be dropped): train, multiseed and fullreport
    refuse them before training, not after."""
    from agents import fullreport
    from atomgym.paths import SCENARIO_DIR
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "same.yaml").write_text((SCENARIO_DIR / "quiet.yaml").read_text())
    a, b = str(tmp_path / "a" / "same.yaml"), str(tmp_path / "b" / "same.yaml")
    p = _write(tmp_path, {**SMALL, "evaluate": {"scenarios": [a, b]}})
    _refused(tmp_path, capsys, p, "evaluate.scenarios:", a, b, "'same'")
    ok = _write(tmp_path, SMALL, "ok.yaml")
    assert fullreport.main(["--config", str(ok), "--scenarios", f"{a},{b}", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and a in err and b in err and not (tmp_path / "rep").exists(), err


def test_start_action_warm_starts_the_policy(tmp_path) -> None:
    """start_action: the new policy chooses the action with the given probability on an observation
    (the categorical head's bias raised); the rest share what is left."""
    cfg = {**SMALL, "start_action": {"action": 5, "prob": 0.8}}
    runs = tmp_path / "runs"
    assert train.main(["--config", str(_write(tmp_path, cfg)), "--runs-dir", str(runs), "--no-eval",
                       "--total-timesteps", "1"]) == 0
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import obs_as_tensor
    model = PPO.load(str(next(runs.glob("*/model.zip"))), device="cpu")
    obs = obs_as_tensor(np.zeros((4, *model.observation_space.shape), np.float32), "cpu")
    with torch.no_grad():
        probs = model.policy.get_distribution(obs).distribution.probs.numpy()
    assert probs.argmax(axis=1).tolist() == [5] * 4
    assert np.allclose(probs[:, 5], 0.8, atol=0.03)


def test_evaluate_scenarios_stay_as_written_in_the_run_and_shipped_configs(tmp_path, capsys) -> None:
    """A suite in evaluate.scenarios is checked machine by machine but kept by name: a run's
    config.yml (and a policy exported from it) names no path of this machine's fleet cache."""
    from atomgym.agents.config import eval_scenarios, load_config
    from atomgym.paths import PRETRAINED_DIR
    from atomgym.suites import scenarios_of
    cfg = load_config(_write(tmp_path, {**SMALL, "evaluate": {"scenarios": ["suite:fleet-test"], "seeds": 1}}))
    assert cfg["evaluate"]["scenarios"] == ["suite:fleet-test"]
    assert eval_scenarios(cfg) == scenarios_of("suite:fleet-test") and len(eval_scenarios(cfg)) == 29
    for yml in PRETRAINED_DIR.glob("*.yml"):
        ev = (yaml.safe_load(yml.read_text()).get("evaluate") or {}).get("scenarios") or []
        assert not any(os.path.isabs(s) for s in ev), (yml.name, ev[:2])
