"""The env ids' registration at ``import atomgym``: every shipped scenario at v0 and v1 with its
episode length, without reading the files a scenario names (every process that imports atomgym
pays for what registration reads)."""
from __future__ import annotations

import pytest
from gymnasium.envs.registration import registry

from atomgym.envs import registration
from atomgym.envs.episode import DEFAULT_DECISION_INTERVAL_MS, episode_steps
from atomgym.sim import scenario


def test_registration_gives_each_id_its_length_without_reading_snapshots_or_traces(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("registration read a scenario's file")

    monkeypatch.setattr(scenario, "load_trace", refuse)
    monkeypatch.setattr(scenario, "_check_snapshot_file", refuse)
    saved = {k: registry.pop(k) for k in list(registry) if k.startswith("atomgym/")}
    try:
        registration.register_envs()
        ids = {k for k in registry if k.startswith("atomgym/")}
        assert ids == set(saved) and len(ids) == 2 * (len(scenario.list_scenarios()) + 1)
        for k in ids:
            assert registry[k].max_episode_steps == saved[k].max_episode_steps, k
    finally:
        for k in [k for k in registry if k.startswith("atomgym/")]:
            registry.pop(k)
        registry.update(saved)
    monkeypatch.undo()
    for env_id, name in registration.env_ids().items():      # the lengths are the checked scenarios'
        want = episode_steps(scenario.load_scenario(name), DEFAULT_DECISION_INTERVAL_MS)
        assert registry[env_id].max_episode_steps == want, env_id


def test_a_scenario_loaded_without_its_files_is_the_same_scenario(tmp_path):
    for name in ("trace-replay", "virtio-deferral"):      # a trace; a snapshot
        assert scenario.load_scenario(name, check_files=False) == scenario.load_scenario(name)
    # one parse gives the lines and the data: two documents, empty files, errors as before
    two = tmp_path / "two.yaml"
    two.write_text("name: two\n---\nname: three\n")
    with pytest.raises(scenario.ScenarioError, match=r"two.yaml:2:1: YAML syntax error: expected a single document"):
        scenario.load_scenario(two)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(scenario.ScenarioError, match="the file is empty"):
        scenario.load_scenario(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration_s: [\n")
    with pytest.raises(scenario.ScenarioError, match=r"bad.yaml:3:1: YAML syntax error"):
        scenario.load_scenario(bad)
