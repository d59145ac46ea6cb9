"""action_type="residual-level": the residual on psi (envs/psi.py) plus the level psi's own
min_free_kbytes target is written at (spaces.RL_POINTS: back-off x level x wsf; the x0.5 level is a
cut); "x1 back-off, x1 level, boot wsf" behind the gate is psi-gated, decision for decision."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml

from atomgym.envs import AtomEnv, AtomVectorEnv
from atomgym.envs.psi import PRESSURE_COUNTERS, cap_kb, psi_step
from atomgym.envs.spaces import (
    ACTION_TYPES, MF_MAX_KB, MF_MIN_KB, REL_WSF, RL_BACKOFF, RL_LEVEL, RL_NAMES, RL_POINTS, level_scale,
)
from test_env_residual import assert_plays_psi_gated

PSI = RL_POINTS.index(((1, 1), (1, 1), -1))       # psi's own action
CUT = RL_POINTS.index(((1, 1), (1, 2), -1))       # psi, written at half its target
X15 = RL_POINTS.index(((1, 1), (3, 2), -1))


def test_the_table_and_its_names():
    assert "residual-level" in ACTION_TYPES
    assert len(RL_POINTS) == len(RL_NAMES) == len(RL_BACKOFF) * len(RL_LEVEL) * len(REL_WSF) == 48
    assert len(set(RL_NAMES)) == 48 and PSI == 16
    assert RL_POINTS[0] == ((0, 1), (1, 1), -1)      # what the gate holds: no raise, psi's target, boot wsf
    assert RL_NAMES[PSI] == "psi back-off x1, min_free_kbytes=psi's target, watermark_scale_factor=boot"
    assert "(cut)" in RL_NAMES[CUT] and all("(cut)" in n for n, (_, lv, _) in zip(RL_NAMES, RL_POINTS) if lv == (1, 2))
    assert any(m[0] < m[1] for m in RL_LEVEL) and any(m[0] > m[1] for m in RL_LEVEL)


def test_level_scale_by_hand():
    t = np.array([67584, 200, 100000, 90000, 2000000])
    cap = np.array([120000, 120000, 120000, 50000, 3000000])
    assert level_scale(t, (1, 1), cap).tolist() == t.tolist()                   # x1: the target, whatever the bounds
    assert level_scale(t, (1, 2), cap).tolist() == [33792, MF_MIN_KB, 50000, 45000, 1000000]   # a cut, >= 128 kB
    assert level_scale(t, (3, 2), cap).tolist() == [101376, 300, 120000, 90000, 2000000]   # <= cap, never below t
    assert level_scale(t, (2, 1), cap).tolist() == [120000, 400, 120000, 90000, 2000000]
    assert level_scale(np.array([600000]), (2, 1), np.array([5000000])).tolist() == [MF_MAX_KB]
    assert level_scale(np.array([100]), (1, 2), np.array([1000])).tolist() == [100]   # below the clamp already


@pytest.mark.parametrize("scenario", ["memalloc-drops", "incast-pagecache"])
def test_psis_own_action_behind_the_gate_is_psi_gated(scenario):
    """Action PSI on every decision, behind gate="drops", writes what psi-gated writes, decision for
    decision, with the same counters; at x1 the value written is psi's own target."""
    def written_is_psis_target(core, written):
        assert core.psi_mf[0] == written
    assert_plays_psi_gated(scenario, "residual-level", PSI, each=written_is_psis_target)


@pytest.mark.parametrize("action", [CUT, X15, RL_POINTS.index(((4, 1), (2, 1), 100))])
def test_the_level_scales_psis_own_target_and_does_not_compound(action):
    """Each decision psi advances its own target (psi_step from the previous target, at the action's
    back-off) and the env writes that target at the action's level: psi never steps from the scaled
    value. The cut goes below the boot value; x1.5 above psi's target."""
    env = AtomEnv("memalloc-drops", action_type="residual-level", gate="drops", decision_interval_ms=1000.0)
    env.reset(options={"sim_seed": 7})
    core = env.unwrapped.core
    sim = core.sim
    boot = int(sim.min_free_kbytes[0])
    cap = cap_kb(sim.managed.sum(axis=1))
    (bn, bd), level, _ = RL_POINTS[action]
    target, quiet = np.array([boot]), np.array([float(sim.t_ms[0])])
    last = float(sum(sim.counter(c)[0] for c in PRESSURE_COUNTERS))
    written = []
    for _ in range(15):
        now = float(sum(sim.counter(c)[0] for c in PRESSURE_COUNTERS))
        opened_before = bool(core.gate_open[0])
        opened = opened_before or core.sim.counter("rx_missed")[0] + core.sim.counter("pfmemalloc_drop")[0] > 0
        mult = bn / bd if opened else 0.0
        target, _, _ = psi_step(target, np.array([now - last]), np.array([float(sim.t_ms[0])]), quiet,
                                np.array([boot]), cap, mult)
        last = now
        env.step(action)
        want = int(level_scale(target, level, cap)[0]) if opened else boot
        assert int(sim.min_free_kbytes[0]) == want and int(core.psi_mf[0]) == int(target[0])
        written.append(want)
    assert core.gate_open[0]
    if level == (1, 2):
        assert min(written) < boot                    # a cut below the boot value
    else:
        assert max(written) > int(core.psi_mf[0]) or max(written) == int(cap[0])


def test_vector_env_and_the_episode_path_equal_the_single_env():
    """Random residual-level actions: AtomVectorEnv's env i (the fused step) equals AtomEnv with seed
    s + i; the unfused path (Core.apply + advance, as agents.evaluate plays models) equals both."""
    n, steps = 3, 12
    rng = np.random.default_rng(5)
    acts = rng.integers(0, len(RL_POINTS), (steps, n))
    kw = dict(scenario="memalloc-drops", action_type="residual-level", gate="drops", decision_interval_ms=1000.0,
              duration_s=float(steps))
    venv = AtomVectorEnv(n, **kw)
    venv.reset(seed=20)
    vmf, vr = [], []
    for k in range(steps):
        _, r, _, _, _ = venv.step(acts[k])
        vmf.append(venv.core.sim.min_free_kbytes.astype(np.int64).copy())
        vr.append(r)
    for i in range(n):
        env = AtomEnv(**kw, compute_score=False)
        env.reset(seed=20 + i)
        for k in range(steps):
            _, r, _, _, _ = env.step(int(acts[k, i]))
            assert int(env.unwrapped.core.sim.min_free_kbytes[0]) == vmf[k][i] and r == vr[k][i], (i, k)
    # the unfused path: apply() + advance() over the same machines
    venv2 = AtomVectorEnv(n, **kw)
    venv2.reset(seed=20)
    core = venv2.core
    live = np.ones(n, bool)
    for k in range(steps):
        core.apply(acts[k].astype(np.int64), live)
        core.advance(live)
        assert np.array_equal(core.sim.min_free_kbytes.astype(np.int64), vmf[k]), k


def test_psis_target_is_pickled_with_the_env():
    env = AtomEnv("memalloc-drops", action_type="residual-level", gate="drops", decision_interval_ms=1000.0)
    env.reset(options={"sim_seed": 7})
    for _ in range(8):
        env.step(X15)
    twin = pickle.loads(pickle.dumps(env))
    assert twin.unwrapped.core.psi_mf[0] == env.unwrapped.core.psi_mf[0]
    for a in (CUT, PSI, X15, 0, CUT):
        o1, r1, *_ = env.step(a)
        o2, r2, *_ = twin.step(a)
        assert np.array_equal(o1, o2) and r1 == r2


def test_train_warm_started_at_psi_and_evaluate_the_model(tmp_path):
    """agents.train with residual-level actions and start_action at psi's action, then the model
    played by agents.evaluate's path (models.run_model) behind the gate."""
    from agents import train
    from atomgym.agents import models
    from atomgym.sim.scenario import load_scenario
    cfg = {"scenario": "memalloc-drops", "algo": "ppo", "seed": 1, "n_envs": 2, "total_timesteps": 64,
           "checkpoint_every": 64, "start_action": {"action": PSI, "prob": 0.9},
           "env": {"action_type": "residual-level", "gate": "drops", "decision_interval_ms": 1000,
                   "observation": "memory", "duration_s": 8.0},
           "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1}}
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    runs = tmp_path / "runs"
    assert train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"]) == 0
    path = next(runs.glob("*/model.zip"))
    lm = models.load_model(path)
    assert lm.env_kw["action_type"] == "residual-level" and lm.model.action_space.n == 48
    got, _ = models.run_model(path, load_scenario("memalloc-drops"), np.array([3], np.int64), 8.0)
    assert len(got) == 1


@pytest.mark.parametrize("patch, needle", [
    ({"env": {"action_type": "residual-levels"}}, "action_type"),
    ({"start_action": {"action": 48, "prob": 0.9}},
     "start_action.action: 48; expected an action of action_type residual-level: an integer in 0..47"),
])
def test_bad_config_is_one_line(tmp_path, capsys, patch, needle):
    from agents import train
    cfg = {"scenario": "quiet", "algo": "ppo", "seed": 1, "n_envs": 2, "total_timesteps": 64,
           "env": {"action_type": "residual-level", "gate": "drops"}, "ppo": {"n_steps": 16, "batch_size": 32}}
    cfg.update(patch)
    if "env" in patch:
        cfg["env"] = {**cfg["env"], "gate": "drops"}
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    runs = tmp_path / "runs"
    code = train.main(["--config", str(p), "--runs-dir", str(runs), "--no-eval"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err and needle in err, err
    assert not runs.exists()


@pytest.mark.parametrize("args, needle", [
    (["no/such/*.zip", "--scenarios", "quiet"], "no/such/*.zip: no model file"),
    (["atomgym/agents/pretrained/benchmark-residual-ppo.zip", "--scenarios", "quiet", "--seeds", "0"],
     "--seeds 0: expected 1 or more"),
    (["atomgym/agents/pretrained/benchmark-residual-ppo.zip", "--scenarios", "no-such-scenario"],
     "no-such-scenario"),
])
def test_gate_open_actions_bad_input_is_one_line(args, needle):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "scripts" / "gate_open_actions.py"), *args], cwd=root,
                       capture_output=True, text=True)
    err = p.stderr.strip()
    assert p.returncode == 2 and err.count("\n") == 0 and "Traceback" not in err and needle in err, err


def test_gate_open_actions_counts_only_open_gate_decisions():
    """The shipped residual policy on quiet (nothing drops): the gate never opens, nothing is counted."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "scripts" / "gate_open_actions.py"),
                        "atomgym/agents/pretrained/benchmark-residual-ppo.zip", "--scenarios", "quiet,memalloc-drops",
                        "--per-machine"], cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert not p.stdout.startswith("quiet") and p.stdout.startswith("memalloc-drops: "), p.stdout
    assert "all 2 machines, 1 model(s), seeds 1000-1000:" in p.stdout


def test_the_drops_cut_gate_lets_a_cut_through_and_holds_the_rest():
    """gate="drops-cut" (spaces.cut_through): on a machine that has not dropped a packet a cut acts
    at once, alone (no raise, the boot wsf), any other action is held at the boot setting; "drops"
    holds the cut too. The fused step (AtomVectorEnv) applies the same gate."""
    from atomgym.envs.spaces import cut_through
    cut_wsf = RL_POINTS.index(((4, 1), (1, 2), 100))
    through = cut_through("residual-level")
    assert through[CUT] == through[cut_wsf] == RL_POINTS.index(((0, 1), (1, 2), -1))
    assert through[PSI] == through[X15] == 0 and sum(t != 0 for t in through) == 12
    for gate, cut_acts in (("drops-cut", True), ("drops", False)):
        env = AtomEnv("quiet", action_type="residual-level", gate=gate, decision_interval_ms=1000.0)
        env.reset(options={"sim_seed": 3})
        sim, core = env.unwrapped.core.sim, env.unwrapped.core
        boot, boot_wsf = int(sim.min_free_kbytes[0]), int(sim.watermark_scale_factor[0])
        half = int(level_scale(np.array([boot]), (1, 2), cap_kb(sim.managed.sum(axis=1)))[0])
        env.step(X15)
        assert int(sim.min_free_kbytes[0]) == boot and not core.gate_open[0]
        env.step(cut_wsf)
        assert not core.gate_open[0]
        assert int(sim.min_free_kbytes[0]) == (half if cut_acts else boot) and half < boot
        assert int(sim.watermark_scale_factor[0]) == boot_wsf
        env.step(X15)                                    # held again: back to the boot value
        assert int(sim.min_free_kbytes[0]) == boot
    venv = AtomVectorEnv(2, "quiet", action_type="residual-level", gate="drops-cut", decision_interval_ms=1000.0)
    venv.reset(seed=[3, 4])
    venv.step(np.array([cut_wsf, X15]))
    mf = venv.core.sim.min_free_kbytes
    assert int(mf[0]) < int(mf[1]) and int(venv.core.sim.watermark_scale_factor[0]) == boot_wsf
    with pytest.raises(ValueError, match="gate: 'drops-cut' lets a named cut through; it needs action_type 'residual-level'"):
        AtomEnv("quiet", action_type="relative", gate="drops-cut")
