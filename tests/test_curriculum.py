"""agents.curriculum: the designed mix of the training fleet, the curriculum over it, the bounded
return; the config keys refused with one line; agents.train with a curriculum, and --resume of one."""
from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3.common.vec_env import VecEnv

from agents import train
from atomgym.agents import checkpoints
from atomgym.agents.curriculum import (STAGE_SEED_STRIDE, STATE_FILE, Machines, allocate, bounded_return,
                                       machines, weights)
from atomgym.suites import scenarios_of


# ---- dealing the slots ----------------------------------------------------------------------------
def test_allocate_gives_each_class_its_share_and_within_a_class_follows_the_weights() -> None:
    cls = ["headroom"] * 19 + ["control"] * 21 + ["uncontrollable"] * 16
    mix = {"headroom": 0.5, "control": 0.25, "uncontrollable": 0.25}
    s = allocate(cls, np.ones(56), mix, 56)
    c = np.array(cls)
    assert s.sum() == 56 and s[c == "headroom"].sum() == 28 and s[c == "control"].sum() == 14
    assert s[c == "uncontrollable"].sum() == 14
    assert set(s[c == "headroom"]) == {1, 2}          # 28 slots over 19 equal machines: 9 get two
    assert (s[c == "control"] == 0).sum() == 7       # 14 over 21: 7 machines without a slot
    # within a class: proportional to the weights, by largest remainder (ties to the earlier)
    w = np.array([1.0, 2.0, 5.0, 1.0, 1.0, 1.0])
    s = allocate(["headroom"] * 3 + ["control"] * 2 + ["uncontrollable"], w,
                 {"headroom": 0.5, "control": 0.5}, 10)
    assert s.tolist() == [1, 1, 3, 3, 2, 0]           # 5 x (1, 2, 5)/8 = 0.625, 1.25, 3.125; share 0: none
    # a class in the mix with no machine: the shares of the present ones renormalised
    s = allocate(["control", "control"], np.ones(2), {"headroom": 0.9, "control": 0.1}, 4)
    assert s.tolist() == [2, 2]
    with pytest.raises(ValueError, match="no share > 0"):
        allocate(["control"], np.ones(1), {"headroom": 1.0}, 2)


def test_weights_count_the_gap_where_the_gate_can_open_and_fill_the_unmeasured() -> None:
    m = Machines(["a", "b", "c", "d"], ["a", "b", "c", "d"], ["headroom", "headroom", "headroom", "control"],
                 np.ones(4), np.array([True, False, True, False]))
    ref = np.array([1.8, 1.6, 1.5, 1.0])
    got = np.array([1.2, 1.0, np.nan, 1.1])
    w = weights(m, ref, got, 0.05, gated=False)
    assert np.allclose(w, [0.65, 0.65, 0.65, 0.05])   # c never measured: its class's mean
    w = weights(m, ref, got, 0.05, gated=True)
    # behind the drops gate, b's defaults drop nothing: its gap never counts
    assert np.allclose(w, [0.65, 0.05, 0.35, 0.05])


# ---- the bounded return ----------------------------------------------------------------------------
class _Scripted(VecEnv):
    """Two envs whose rewards and episode ends are given step by step."""

    def __init__(self, rewards, dones) -> None:
        self.rewards, self.dones, self.k = rewards, dones, 0
        super().__init__(2, gym.spaces.Box(0, 1, (1,)), gym.spaces.Discrete(2))

    def reset(self):
        return np.zeros((2, 1), np.float32)

    def step_async(self, actions) -> None:
        pass

    def step_wait(self):
        r, d = self.rewards[self.k], self.dones[self.k]
        self.k += 1
        return np.zeros((2, 1), np.float32), np.array(r, np.float32), np.array(d, bool), [{}, {}]

    def close(self) -> None:
        pass

    def get_attr(self, name, indices=None):
        return [None, None]

    def set_attr(self, name, value, indices=None) -> None:
        pass

    def env_method(self, *args, **kwargs):
        return [None, None]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False, False]


def test_bounded_return_sums_to_the_clipped_return_and_restarts_per_episode() -> None:
    rewards = [[-0.5, 0.3], [-0.8, -2.0], [0.4, 0.5], [0.2, 0.1], [-3.0, 0.25]]
    dones = [[0, 0], [0, 0], [1, 0], [0, 1], [0, 0]]
    v = bounded_return(_Scripted(rewards, dones), -1.0)
    v.reset()
    out = np.array([v.step(np.zeros(2, np.int64))[1] for _ in rewards])
    # env 0: returns so far -0.5, -1.3, -0.9 -> clipped -0.5, -1, -0.9; then a new episode 0.2, -2.8
    assert np.allclose(out[:, 0], [-0.5, -0.5, 0.1, 0.2, -1.2])
    # env 1: 0.3, -1.7 (clipped -1), -1.2 (still -1), -1.1 at its end; a new episode 0.25
    assert np.allclose(out[:, 1], [0.3, -1.3, 0.0, 0.0, 0.25])
    assert np.isclose(out[:3, 0].sum(), max(-0.9, -1.0)) and np.isclose(out[:4, 1].sum(), -1.0)


# ---- the config --------------------------------------------------------------------------------------
def _fleet_paths() -> list[str]:
    """Training-fleet machines of every class (fleet-train: 000 control, 004 headroom, 019 uncontrollable)."""
    scs = scenarios_of("suite:fleet-train")
    return [scs[i] for i in (0, 1, 4, 5, 19, 20)]


def _small(tmp_path: Path, **patch) -> Path:
    cfg = {"scenario": _fleet_paths(), "algo": "ppo", "seed": 1, "n_envs": 8, "total_timesteps": 1200,
           "checkpoint_every": 512, "return_floor": -1.0,
           "curriculum": {"mix": {"headroom": 0.5, "control": 0.25, "uncontrollable": 0.25}, "every": 512,
                          "floor": 0.05},
           "env": {"observation": "memory", "action_type": "residual-level", "decision_interval_ms": 1000,
                   "reward_baseline": "score", "gate": "drops"},
           "ppo": {"n_steps": 64, "batch_size": 128, "n_epochs": 1}}
    cfg.update(patch)
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("patch, needle", [
    ({"curriculum": {"mix": {"headroom": 1.0}}}, "curriculum: expected a mapping with keys mix, every"),
    ({"curriculum": {"mix": {"headroom": 1.0}, "every": 512, "pace": 3}}, "curriculum: expected a mapping"),
    ({"curriculum": {"mix": {"easy": 1.0}, "every": 512}}, "curriculum.mix: expected a mapping of the classes "
                                                          "headroom, control, uncontrollable"),
    ({"curriculum": {"mix": {"headroom": -1}, "every": 512}}, "curriculum.mix.headroom: -1; expected a share >= 0"),
    ({"curriculum": {"mix": {"headroom": 0}, "every": 512}}, "curriculum.mix: every share is 0"),
    ({"curriculum": {"mix": {"headroom": 1}, "every": 4}}, "curriculum.every: 4; expected agent steps per stage, "
                                                           "an integer >= n_envs (8)"),
    ({"curriculum": {"mix": {"headroom": 1}, "every": 512, "floor": 0}}, "curriculum.floor: 0; expected a weight > 0"),
    ({"scenario": "quiet", "n_envs": 2}, "curriculum: scenario quiet is not a fleet machine with a measured class"),
    ({"return_floor": 0.5}, "return_floor: 0.5; expected a number below 0"),
    ({"return_floor": "low"}, "return_floor: 'low'; expected a number below 0"),
    ({"env": {"action_type": "residual-level", "reward_baseline": "default"}},
     "return_floor: needs reward_baseline: score"),
])
def test_bad_curriculum_and_return_floor_are_one_line_before_any_run_folder(tmp_path, capsys, patch, needle) -> None:
    p = _small(tmp_path, **patch)
    runs = tmp_path / "runs"
    code = train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert str(p) in err and needle in err, err
    assert not runs.exists()


def test_machines_read_the_fleet_manifests() -> None:
    m = machines(Path("cfg.yaml"), _fleet_paths())
    assert m.names == ["fleet-train-000", "fleet-train-001", "fleet-train-004", "fleet-train-005",
                       "fleet-train-019", "fleet-train-020"]
    man = {e["name"]: e for e in json.loads(Path("configs/fleets/train.manifest.json").read_text())["machines"]}
    assert m.classes == [man[n]["class"] for n in m.names]
    assert m.oracle.tolist() == [man[n]["oracle_score"] for n in m.names]
    assert m.drops.tolist() == [man[n]["default_loss"]["drops_total"] > 0 for n in m.names]


# ---- agents.train with a curriculum -------------------------------------------------------------------
def test_train_with_a_curriculum_deals_stages_and_resume_rebuilds_the_stage(tmp_path, capsys) -> None:
    p = _small(tmp_path)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"]) == 0
    out = capsys.readouterr().out
    (run,) = list(runs.iterdir())
    st = json.loads((run / STATE_FILE).read_text())
    cls = np.array(st["classes"])
    assert len(st["stages"]) == 3 and [s["start"] for s in st["stages"]] == [0, 512, 1024]
    for k, s in enumerate(st["stages"]):
        slots = np.array(s["slots"])
        assert s["seed"] == 1 + k * STAGE_SEED_STRIDE and slots.sum() == 8
        assert slots[cls == "headroom"].sum() == 4 and slots[cls == "control"].sum() == 2
        assert slots[cls == "uncontrollable"].sum() == 2
    assert "curriculum stage 2 from step 1024: slots by class headroom 4, control 2, uncontrollable 2" in out
    assert "curriculum stage 0 scored (training episodes, mean by class): headroom " in out
    # every slot of the first stage played one 60 s episode (64 steps): its scores, one per slot
    s0 = st["stages"][0]
    assert s0["episodes"] == s0["slots"]
    # the reference is max(psi, the oracle bound); a measured machine's weight is floor + its gap
    ref = np.array(st["reference"])
    assert np.all(ref >= machines(p, _fleet_paths()).oracle - 1e-6)
    drops = machines(p, _fleet_paths()).drops
    w1 = np.array(st["stages"][1]["weights"])
    for i, k in enumerate(s0["episodes"]):
        if k:
            gap = max(ref[i] - s0["score_sum"][i] / k, 0.0) if drops[i] else 0.0
            assert w1[i] == pytest.approx(0.05 + gap, abs=1e-5)
    # resume from the first checkpoint: the stages after it dropped, its own rebuilt, then dealt again
    for f in (run / "model.zip", *[c for c in checkpoints.checkpoints(run) if "512" not in c.name]):
        f.unlink()
    for f in list((run / "checkpoints").glob("*.npz")):
        if "512" not in f.name:
            f.unlink()
    assert train.main(["--resume", str(run), "--total-timesteps", "1200", "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "curriculum stage 1 from step 512" in out
    st2 = json.loads((run / STATE_FILE).read_text())
    assert st2["stages"][:1] == st["stages"][:1] and st2["stages"][1]["slots"] == st["stages"][1]["slots"]
    assert (run / "model.zip").is_file()
    # a finished run trained further: its last stage ends where it ended, the next is dealt from there
    assert train.main(["--resume", str(run), "--total-timesteps", "2400", "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "curriculum stage 2 scored (training episodes, mean by class): headroom" in out, out
    assert "curriculum stage 3 from step 1536" in out and "(2560 agent steps;" in out, out
    st3 = json.loads((run / STATE_FILE).read_text())
    assert [s["start"] for s in st3["stages"]] == [0, 512, 1024, 1536, 2048]
    assert st3["stages"][2]["episodes"] == st2["stages"][2]["episodes"] and sum(st3["stages"][2]["episodes"]) > 0
    st2 = st3
    # a damaged curriculum.json: one line naming it, nothing trained
    for text in ("{", json.dumps({**st2, "stages": [{"start": 0}]}), json.dumps({**st2, "machines": ["x"]})):
        (run / STATE_FILE).write_text(text)
        assert train.main(["--resume", str(run), "--total-timesteps", "4000", "--no-eval"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(run / STATE_FILE) in err and "Traceback" not in err, err


def test_the_shipped_curriculum_ensemble_loads_as_one_policy_and_cuts_where_the_headroom_is_a_cut() -> None:
    """The ten shipped members of configs/train/residual-level-curriculum-cut.yaml share one env
    (residual-level behind gate drops-cut) and, as the mean of ten, cut min_free_kbytes below the
    boot value on fleet-test-011, a test machine whose headroom is a cut and whose defaults drop
    nothing (docs/training.md, "The curriculum")."""
    from atomgym import paths
    from atomgym.agents import baselines, episodes
    from atomgym.agents.models import check_ensemble, load_model, run_ensemble
    from atomgym.sim.scenario import load_scenario
    members = sorted(paths.PRETRAINED_DIR.glob("benchmark-curriculum-cut-*.zip"))
    assert [p.stem for p in members] == [f"benchmark-curriculum-cut-{s}" for s in range(10)]
    kw = check_ensemble(members, [load_model(p) for p in members], "mean")
    assert kw["action_type"] == "residual-level" and kw["gate"] == "drops-cut"
    (sc,) = [s for s in scenarios_of("suite:fleet-test") if s.endswith("fleet-test-011.yaml")]
    sc = load_scenario(sc)
    (default,) = episodes.run(baselines.get("kernel-default"), sc, np.array([1000]), 20.0)
    (ep,), _ = run_ensemble(members, sc, np.array([1000]), 20.0, how="mean")
    assert default["drops_total"] == 0 and ep["drops_total"] == 0
    assert ep["final_min_free_kbytes"] < default["final_min_free_kbytes"] and ep["cost"] < default["cost"]


def test_resume_without_a_loadable_checkpoint_starts_the_curriculum_again(tmp_path, capsys) -> None:
    """--resume of a run whose checkpoints are all gone trains from scratch: its curriculum starts
    again at stage 0 too (not at the stage the lost training had reached)."""
    p = _small(tmp_path)
    runs = tmp_path / "runs"
    assert train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"]) == 0
    (run,) = list(runs.iterdir())
    first = json.loads((run / STATE_FILE).read_text())["stages"][0]
    for f in list((run / "checkpoints").iterdir()) + [run / "model.zip"]:
        f.unlink()
    capsys.readouterr()
    assert train.main(["--resume", str(run), "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "starting this run's training from scratch" in out
    assert "curriculum stage 0 from step 0" in out and "curriculum stage 1 from step 512" in out, out
    st = json.loads((run / STATE_FILE).read_text())
    assert [s["start"] for s in st["stages"]] == [0, 512, 1024] and st["stages"][0]["slots"] == first["slots"]
