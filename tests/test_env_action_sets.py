"""The action types besides "discrete" and "continuous": "discrete-noboost" (the discrete actions
without the two boost actions), "levels" (a grid of target settings, spaces.LEVEL_POINTS) and
"relative" (target settings relative to the boot values, spaces.REL_POINTS)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from atomgym.envs import AtomEnv, AtomVectorEnv
from atomgym.envs.spaces import (
    ACTION_NAMES, LEVEL_MF, LEVEL_NAMES, LEVEL_POINTS, LEVEL_WSF, MF_MAX_KB, N_LEVELS, NOBOOST_ACTION_NAMES,
    NOBOOST_ACTIONS, REL_MF, REL_NAMES, REL_POINTS, REL_WSF, RES_MULT, RES_NAMES, RES_POINTS, RL_BACKOFF, RL_LEVEL,
    RL_NAMES, RL_POINTS, level_table,
)
from atomgym.kernel.zones import PAGE_KB


@pytest.mark.parametrize("action_type, n", [("discrete-noboost", 5), ("levels", 20), ("relative", 20),
                                            ("residual", 20), ("residual-level", 48)])
def test_spaces_and_check_env(action_type, n):
    env = AtomEnv(action_type=action_type, duration_s=0.5, compute_score=False)
    assert env.action_space.n == n
    check_env(env, skip_render_check=True)
    venv = AtomVectorEnv(3, action_type=action_type, duration_s=0.5)
    assert venv.single_action_space.n == n and venv.action_space.shape == (3,)


def test_names():
    assert NOBOOST_ACTION_NAMES == ("noop", "min_free_kbytes x1.25", "min_free_kbytes /1.25",
                                    "watermark_scale_factor x1.25", "watermark_scale_factor /1.25")
    assert not any("boost_watermark" in n for n in NOBOOST_ACTION_NAMES)
    assert N_LEVELS == len(LEVEL_MF) * len(LEVEL_WSF) == 20 == len(set(LEVEL_NAMES))
    assert LEVEL_POINTS[0] == ("boot", -1)
    assert LEVEL_NAMES[0] == "min_free_kbytes=boot, watermark_scale_factor=boot"


def test_the_grid_is_best_statics_minus_the_absolute_value():
    from agents.oracle import GRID_MF, GRID_WSF, grid_points, grid_writes
    assert [m for m in GRID_MF if m not in LEVEL_MF] == [135168]
    assert tuple(GRID_WSF) == LEVEL_WSF
    boot, wsf_boot, ram = np.array([67584, 5000]), np.array([10, 10]), np.array([8 * 2**20, 2**20])
    tab = level_table(boot, wsf_boot, ram)
    pts = grid_points()
    mf, wsf = grid_writes(pts, boot, ram)
    for a, (m, w) in enumerate(LEVEL_POINTS):   # the same numbers as the sweep writes ("boot" explicit here)
        p = pts.index((m, w))
        assert np.array_equal(tab[:, a, 0], np.where(mf[p] < 0, boot, mf[p]))
        assert np.array_equal(tab[:, a, 1], np.where(wsf[p] < 0, wsf_boot, wsf[p]))
    # 3 % of 64 GiB is above the knob's range: clamped as the discrete actions clamp
    big = level_table(np.array([67584]), np.array([10]), np.array([64 * 2**20]))
    assert big[0, LEVEL_POINTS.index((0.03, 100)), 0] == MF_MAX_KB


def test_noboost_actions_are_the_discrete_ones():
    a = AtomEnv(duration_s=2.0, compute_score=False, action_type="discrete-noboost")
    b = AtomEnv(duration_s=2.0, compute_score=False)
    a.reset(seed=4)
    b.reset(seed=4)
    acts = np.random.default_rng(2).integers(0, 5, 20)
    for k in acts:
        oa, ra, *_ = a.step(int(k))
        ob, rb, *_ = b.step(NOBOOST_ACTIONS[int(k)])
        assert np.array_equal(oa, ob) and ra == rb
    assert [ACTION_NAMES[i] for i in NOBOOST_ACTIONS] == list(NOBOOST_ACTION_NAMES)


def test_levels_write_exactly_the_grid_value_and_repeating_costs_nothing():
    env = AtomEnv("incast-pagecache", duration_s=5.0, compute_score=False, action_type="levels")
    env.reset(seed=1)
    sim = env.sim
    boot, wsf_boot = int(sim.min_free_kbytes[0]), int(sim.watermark_scale_factor[0])
    ram_kb = int(sim.managed[0].sum()) * PAGE_KB
    _, _, _, _, info = env.step(0)                  # "boot setting" at boot: nothing written
    assert info["term_knob_changes"] == 0.0 and sim.counter("knob_writes")[0] == 0
    for (m, w) in [(0.02, 300), ("x2", -1), ("boot", 1000), (0.01, 100), ("boot", -1)]:
        a = LEVEL_POINTS.index((m, w))
        want_mf = {"boot": boot, "x2": 2 * boot}.get(m) if isinstance(m, str) else int(ram_kb * m)
        want_wsf = wsf_boot if w == -1 else w
        changed = (want_mf != int(sim.min_free_kbytes[0])) + (want_wsf != int(sim.watermark_scale_factor[0]))
        writes = sim.counter("knob_writes")[0]
        _, _, _, _, info = env.step(a)
        assert (int(sim.min_free_kbytes[0]), int(sim.watermark_scale_factor[0])) == (want_mf, want_wsf), (m, w)
        assert info["term_knob_changes"] == changed > 0
        assert sim.counter("knob_writes")[0] > writes
        # the same level again: no sysctl written, no cost
        writes = sim.counter("knob_writes")[0]
        _, _, _, _, info = env.step(a)
        assert info["term_knob_changes"] == 0.0 and sim.counter("knob_writes")[0] == writes


def test_levels_in_a_batch_use_each_machines_own_grid():
    venv = AtomVectorEnv(4, scenario="train-randomized", duration_s=1.0, action_type="levels")
    venv.reset(seed=3)
    sim = venv.core.sim
    a = LEVEL_POINTS.index((0.01, 300))
    ram_kb = sim.managed.sum(axis=1).astype(np.int64) * PAGE_KB
    venv.step(np.full(4, a))
    assert np.array_equal(sim.min_free_kbytes, (ram_kb * 0.01).astype(np.int64))
    assert np.all(sim.watermark_scale_factor == 300)


@pytest.mark.parametrize("action_type, bad, space", [
    ("levels", 20, "Discrete(20)"), ("levels", -1, "Discrete(20)"), ("levels", 1.5, "Discrete(20)"),
    ("levels", "3", "Discrete(20)"), ("discrete-noboost", 5, "Discrete(5)"), ("discrete-noboost", [1, 2], "Discrete(5)"),
])
def test_bad_actions_name_the_space(action_type, bad, space):
    env = AtomEnv(action_type=action_type, duration_s=0.5, compute_score=False)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"outside the action space {space.replace('(', '[(]').replace(')', '[)]')}") as ei:
        env.step(bad)
    assert "\n" not in str(ei.value) and action_type in str(ei.value)


def test_bad_vector_actions_and_action_type():
    venv = AtomVectorEnv(2, action_type="levels", duration_s=0.5)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"integers 0\.\.19 .*Discrete\(20\)"):
        venv.step(np.array([0, 20]))
    with pytest.raises(ValueError, match="choices: discrete, continuous, discrete-noboost, levels, relative"):
        AtomEnv(action_type="level")


def test_sb3_ppo_with_memory_and_levels():
    """The training combination of issue 14 runs under stable-baselines3 PPO end to end."""
    from stable_baselines3 import PPO

    from atomgym.envs.sb3 import AtomSB3VecEnv, quiet_logger
    venv = AtomSB3VecEnv(16, scenario="train-randomized", observation="memory", action_type="levels",
                         duration_s=6.0)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=256, n_epochs=1, seed=0, device="cpu")
    model.set_logger(quiet_logger())
    model.learn(total_timesteps=3072)
    assert model.num_timesteps >= 3072
    obs = venv.reset()
    assert obs.shape == (16, 41) and model.predict(obs)[0].shape == (16,)


@pytest.mark.parametrize("doc", ["docs/environment.md"])
def test_docs_tables_match_the_code(doc):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    i = text.index("## Action types `discrete-noboost`, `levels`, `relative`, `residual` and `residual-level`")
    sec = text[i:text.index("\n## ", i + 3)]
    rows = re.findall(r"^\| (\d) \| (\d) \((.+)\) \|$", sec, flags=re.M)
    assert [(int(a), int(d), n) for a, d, n in rows] == [(i, a, ACTION_NAMES[a]) for i, a in enumerate(NOBOOST_ACTIONS)]
    levels, relative = sec.split('`action_type="relative"`')
    relative, residual = relative.split('`action_type="residual"`')
    residual, residual_level = residual.split('`action_type="residual-level"`')
    rl = re.findall(r"^\| x([\d.]+)(?: \([\w ]+\))? \| x([\d.]+)(?: \([\w' ]+\))? \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                    residual_level, flags=re.M)
    assert len(rl) == len(RL_BACKOFF) * len(RL_LEVEL)
    for b, lv, *acts in rl:
        for c, a in enumerate(acts):
            (bn, bd), (ln, ld), w = RL_POINTS[int(a)]
            assert (bn / bd, ln / ld, w) == (float(b), float(lv), REL_WSF[c])
            assert RL_NAMES[int(a)].startswith(f"psi back-off x{b},")
    grid = re.findall(r"^\| x([\d.]+)(?: \([\w ]+\))? \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", residual, flags=re.M)
    assert len(grid) == len(RES_MULT)
    for r, (label, *acts) in enumerate(grid):
        assert float(label) == RES_MULT[r][0] / RES_MULT[r][1]
        for c, a in enumerate(acts):
            assert RES_POINTS[int(a)] == (RES_MULT[r], REL_WSF[c])
            assert RES_NAMES[int(a)].startswith(f"psi back-off x{label},")
    grid = re.findall(r"^\| ([\w %]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", levels, flags=re.M)
    _grid_is_the_table(grid, LEVEL_MF, LEVEL_WSF, LEVEL_POINTS, LEVEL_NAMES, lambda label: label)
    head = re.search(r"^\| min_free_kbytes \(row\).* \| boot \| (.+) \|$", relative, flags=re.M).group(1).split(" | ")
    assert head == [f"max({w}, boot)" for w in REL_WSF[1:]]
    grid = re.findall(r"^\| ([\w.]+)(?: boot)? \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", relative, flags=re.M)
    _grid_is_the_table(grid, REL_MF, REL_WSF, REL_POINTS, REL_NAMES,
                       lambda label: label if label == "boot" else label + " boot")


def _grid_is_the_table(grid, mfs, wsfs, points, names, name_of) -> None:
    """The documented grid (rows: label and the actions per column) is the action table: action
    ``a`` in row r, column c is the point (mfs[r], wsfs[c]) and its name names the row's label."""
    assert len(grid) == len(mfs)
    for r, (label, *acts) in enumerate(grid):
        for c, a in enumerate(acts):
            assert points[int(a)] == (mfs[r], wsfs[c])
            assert names[int(a)].startswith(f"min_free_kbytes={name_of(label)},")


def test_relative_levels_by_hand_and_never_below_boot():
    # a 4 GiB THP host (boot 67584 kB, where "1 % of RAM" is a cut) and a host whose boot wsf is 200
    tab = level_table(np.array([67584, 11585]), np.array([10, 200]), np.array([4 * 2**20, 2**20]), relative=True)
    assert REL_POINTS[0] == ((1, 1), -1) and REL_NAMES[0] == "min_free_kbytes=boot, watermark_scale_factor=boot"
    assert len(set(REL_NAMES)) == N_LEVELS
    a = REL_POINTS.index(((3, 2), 30))
    assert tab[0, a].tolist() == [101376, 30] and tab[1, a].tolist() == [17377, 200]   # 11585 * 3 // 2; max(30, 200)
    assert tab[:, REL_POINTS.index(((4, 1), 300)), 0].tolist() == [270336, 46340]
    assert (tab[:, :, 0] >= np.array([67584, 11585])[:, None]).all()
    assert (tab[:, :, 1] >= np.array([10, 200])[:, None]).all()


def test_relative_actions_write_the_table_on_each_machine():
    venv = AtomVectorEnv(4, scenario="train-randomized", duration_s=1.0, action_type="relative")
    venv.reset(seed=3)
    sim = venv.core.sim
    boot = sim.min_free_kbytes.astype(np.int64).copy()
    venv.step(np.full(4, REL_POINTS.index(((2, 1), 100))))
    assert np.array_equal(sim.min_free_kbytes, 2 * boot) and np.all(sim.watermark_scale_factor == 100)
    assert venv.core.action_names == REL_NAMES
