"""agents.replay: saved episodes re-run with every counter equal (exit 0), 1 on a difference, 2 on bad input."""
from __future__ import annotations

import json

import pytest

from agents import replay


def _one_line(capsys, stream="err"):
    s = getattr(capsys.readouterr(), stream).strip()
    assert len(s.splitlines()) == 1, s
    return s


def test_save_and_replay_a_baseline_and_detect_a_difference(tmp_path, capsys):
    f = tmp_path / "ep.json"
    assert replay.main([str(f), "--save", "--policy", "psi", "--scenario", "incast-pagecache", "--seed", "1001",
                        "--duration-s", "1.5"]) == 0
    ep = json.loads(f.read_text())
    assert ep["scenario_name"] == "incast-pagecache" and ep["atomgym_version"] and ep["counters"]["atomic_fail"] > 0
    capsys.readouterr()
    assert replay.main([str(f)]) == 0
    assert "counters equal" in capsys.readouterr().out
    g = tmp_path / "unnamed.json"             # the scenario's name is informational: it replays without it
    g.write_text(json.dumps({k: v for k, v in ep.items() if k != "scenario_name"}))
    assert replay.main([str(g)]) == 0
    assert "counters equal" in capsys.readouterr().out
    ep["counters"]["atomic_fail"] += 1
    g = tmp_path / "tampered.json"
    g.write_text(json.dumps(ep))
    assert replay.main([str(g)]) == 1
    assert "atomic_fail" in _one_line(capsys)
    ep["counters"]["atomic_fail"] -= 1
    ep["seed"] = 1002                         # another machine: the counters differ
    g.write_text(json.dumps(ep))
    assert replay.main([str(g)]) == 1
    assert "counter(s) differ" in _one_line(capsys)
    before = f.read_text()                    # --save never overwrites
    assert replay.main([str(f), "--save", "--policy", "psi", "--scenario", "quiet"]) == 2
    assert "exists" in _one_line(capsys) and f.read_text() == before


def test_replay_the_planners_and_a_models_action_lists(tmp_path, capsys):
    from stable_baselines3 import PPO

    from atomgym.envs.atom_env import AtomEnv
    f = tmp_path / "planner.json"
    assert replay.main([str(f), "--save", "--policy", "oracle-planner", "--scenario", "incast-pagecache",
                        "--duration-s", "1"]) == 0
    assert json.loads(f.read_text())["kind"] == "knob-actions"
    assert replay.main([str(f)]) == 0
    model = PPO("MlpPolicy", AtomEnv("incast-pagecache", duration_s=1.0), n_steps=16, batch_size=16, device="cpu", seed=0)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "model.zip")
    g = tmp_path / "model.json"
    assert replay.main([str(g), "--save", "--policy", str(tmp_path / "run" / "model.zip"), "--scenario",
                        "incast-pagecache", "--duration-s", "1"]) == 0
    ep = json.loads(g.read_text())
    assert ep["kind"] == "env-actions" and len(ep["actions"]) == 10 and ep["policy"] == "run"
    (tmp_path / "run" / "model.zip").unlink()            # the action list replays without the model
    assert replay.main([str(g)]) == 0
    # a damaged action list or env options: bad input (exit 2, one line naming the key), never run
    for key, value, want in (("actions", ep["actions"][:3] + [99] + ep["actions"][4:], "key 'actions': item 3 is 99"),
                             ("actions", ep["actions"][:1] + [[0.1, 0.2, 0.3]], "key 'actions': item 1"),
                             ("env_kwargs", {**ep["env_kwargs"], "action_type": "joystick"}, "key 'env_kwargs'"),
                             ("env_kwargs", {**ep["env_kwargs"], "no_such_option": 1}, "key 'env_kwargs'")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**ep, key: value}))
        assert replay.main([str(bad)]) == 2
        err = _one_line(capsys)
        assert want in err and str(bad) in err, err


@pytest.mark.parametrize("text, want", [
    ("not json", "not JSON"), ("[]", "format"), ('{"format": "atomgym-episode", "version": 9}', "version 9"),
    ('{"format": "atomgym-episode", "version": 1}', "key 'scenario'"),
    ('{"format": "atomgym-episode", "version": 1, "scenario": {"tick_ms": -1}, "seed": 1, "duration_s": 1, '
     '"kind": "baseline", "counters": {}, "policy": "psi"}', "key 'scenario'"),
    ('{"format": "atomgym-episode", "version": 1, "scenario": {}, "seed": -1, "duration_s": 1, '
     '"kind": "baseline", "counters": {}, "policy": "psi"}', "key 'seed'"),
    ('{"format": "atomgym-episode", "version": 1, "scenario": {}, "seed": 1, "duration_s": 1e999, '
     '"kind": "baseline", "counters": {}, "policy": "psi"}', "duration_s"),
])
def test_bad_episode_files_exit_2(tmp_path, capsys, text, want):
    f = tmp_path / "bad.json"
    f.write_text(text)
    assert replay.main([str(f)]) == 2
    err = _one_line(capsys)
    assert want in err and str(f) in err
    assert replay.main([str(tmp_path / "missing.json")]) == 2
    _one_line(capsys)


# ---- issue 23: unbounded reads, deep nesting, huge or mistyped numbers, short actions, Ctrl-C ----
_BASE = {"format": "atomgym-episode", "version": 1, "scenario": {}, "seed": 1, "duration_s": 1,
         "kind": "baseline", "counters": {"atomic_fail": 0}, "policy": "psi"}


@pytest.mark.parametrize("patch, want", [
    ({"seed": 10**30}, "key 'seed'"), ({"seed": 1.5}, "key 'seed'"), ({"seed": "1"}, "key 'seed'"),
    ({"duration_s": 10**400}, "key 'duration_s'"), ({"duration_s": True}, "key 'duration_s'"),
    ({"counters": {"atomic_fail": 10**400}}, "key 'counters'"),
    ({"counters": {"atomic_fail": [1]}}, "key 'counters'"),
    ({"kind": "teleport"}, "key 'kind'"),
    ({"policy": "no-such-policy"}, "key 'policy'"),
    ({"policy": "best-static", "best_static_mf_kb": 10**30}, "best_static_mf_kb"),
    ({"policy": "best-static", "best_static_wsf": "ten"}, "best_static_wsf"),
    ({"policy": "best-static-train", "fleet_mf": [1], "fleet_wsf": 1}, "fleet_mf"),
    ({"policy": "best-static-train", "fleet_mf": "boot", "fleet_wsf": 10**30}, "fleet_wsf"),
    ({"kind": "knob-actions", "actions": [[0, 1024]]}, "item 0"),                 # a short action
    ({"kind": "knob-actions", "actions": [[0, 10**30, -1]]}, "item 0"),
    ({"kind": "knob-actions", "actions": [[0.5, 1024, -1]]}, "item 0"),
    ({"kind": "knob-actions", "actions": [5]}, "item 0"),
    ({"kind": "env-actions", "actions": [], "env_kwargs": {"weights": [1, 2, 3]}}, "weights"),
    ({"kind": "env-actions", "actions": [], "env_kwargs": {"deadlock_penalty": 10**400}}, "deadlock_penalty"),
    ({"kind": "env-actions", "actions": [[10**400, 0, 0]], "env_kwargs": {"action_type": "continuous"}}, "item 0"),
])
def test_huge_or_mistyped_values_in_a_record_are_one_line(tmp_path, capsys, patch, want):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({**_BASE, **patch}))
    assert replay.main([str(f)]) == 2
    err = _one_line(capsys)
    assert want in err and str(f) in err and "Traceback" not in err, err


@pytest.mark.parametrize("content", ["[" * 100000, '{"a":' * 100000, "1" * 5000])
def test_deeply_nested_or_huge_json_is_one_line(tmp_path, capsys, content):
    f = tmp_path / "deep.json"
    f.write_text(content)
    assert replay.main([str(f)]) == 2
    err = _one_line(capsys)
    assert str(f) in err and "Traceback" not in err


def test_a_device_or_a_fifo_is_refused_before_reading(tmp_path, capsys):
    import os
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    assert replay.main(["/dev/zero"]) == 2
    assert "not a regular file" in _one_line(capsys)
    assert replay.main([str(link)]) == 2
    assert "character device" in _one_line(capsys)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert replay.main([str(fifo)]) == 2         # returns at once: a FIFO without a writer is not waited on
    assert "FIFO" in _one_line(capsys)


def test_a_record_larger_than_the_limit_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(replay, "MAX_RECORD_BYTES", 1000)
    f = tmp_path / "big.json"
    f.write_text(json.dumps({**_BASE, "pad": "x" * 2000}))
    assert replay.main([str(f)]) == 2
    assert "larger than 1000 bytes" in _one_line(capsys)


def test_ctrl_c_during_save_is_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(replay, "record", interrupted)
    f = tmp_path / "ep.json"
    assert replay.main([str(f), "--save", "--policy", "psi", "--scenario", "quiet"]) == 130
    err = _one_line(capsys)
    assert "interrupted (Ctrl-C)" in err and "not written" in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_save_leaves_no_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from cli_helpers import wait_until_caught
    root = Path(__file__).parents[1]
    f = tmp_path / "ep.json"
    # a long episode: the signal arrives while it runs
    p = subprocess.Popen([sys.executable, "-m", "agents.replay", str(f), "--save", "--policy", "psi", "--scenario",
                          "incast-pagecache", "--duration-s", "86400"], cwd=root, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    wait_until_caught(p.pid, signal.SIGTERM)       # not a fixed sleep: imports take longer on a loaded machine
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip().splitlines() == [f"agents.replay: interrupted (SIGTERM); {f} was not written"], err
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_model_whose_config_disagrees_with_it(tmp_path, capsys):
    """A yml giving another action space used to record actions outside it: a record replay
    then rejected. Refused before the episode, one line, no file."""
    import shutil

    import yaml

    from atomgym.paths import PRETRAINED_DIR
    for f in PRETRAINED_DIR.glob("benchmark-ppo.*"):
        shutil.copy(f, tmp_path / f.name.replace("benchmark-ppo", "m"))
    cfg = yaml.safe_load((tmp_path / "m.yml").read_text())
    (tmp_path / "m.yml").write_text(yaml.safe_dump({**cfg, "env": {**cfg["env"], "action_type": "discrete"}}))
    rec = tmp_path / "rec.json"
    assert replay.main([str(rec), "--save", "--policy", str(tmp_path / "m.zip"), "--scenario", "quiet",
                        "--duration-s", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and ("action space" in err or "action_space" in err) and "m.yml" in err, err
    assert not rec.exists()
