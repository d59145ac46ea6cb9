"""Gymnasium environments: API conformance, determinism, batched == single, pickling, SB3."""
from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import atomgym  # noqa: F401  (registers the ids)
from atomgym.envs import AtomEnv, AtomVectorEnv, OBS_DIM, OBS_NAMES, env_ids
from atomgym.envs.spaces import A_MF_UP, N_ACTIONS, OBS_MIN_FREE_KBYTES

SHORT = 0.5   # seconds of simulated time per episode in the API tests

# Warnings check_env may emit that are not defects of the env (justified allow-list). Empty: with
# gymnasium 1.4, check_env (render check included, ansi and rgb_array) emits no warning for any id.
ALLOWED_WARNINGS: tuple[str, ...] = ()


def _check_quietly(env) -> None:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=False)
    bad = [str(w.message) for w in rec if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not bad, bad


@pytest.mark.parametrize("env_id", sorted(env_ids()))
def test_check_env_every_registered_id(env_id):
    env = gym.make(env_id, duration_s=SHORT, render_mode="ansi")
    assert env.spec.max_episode_steps >= 1
    _check_quietly(env.unwrapped)


def test_check_env_continuous_and_rgb():
    env = gym.make("atomgym/Atom-v1", action_type="continuous", duration_s=SHORT, render_mode="rgb_array")
    _check_quietly(env.unwrapped)   # made through gym.make: with a spec, check_env tests the other render modes


def test_make_with_module_prefix_and_passive_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("atomgym:atomgym/Quiet-v1", duration_s=SHORT)
        env.reset(seed=0)
        for _ in range(3):
            env.step(0)
    assert isinstance(env.unwrapped, AtomEnv)
    assert gym.spec("atomgym/IncastPagecache-v1").max_episode_steps == 600   # 60 s / 100 ms
    v = gym.make_vec("atomgym/Atom-v1", num_envs=2, vectorization_mode="vector_entry_point",
                     scenario="memalloc-drops", duration_s=SHORT)
    assert isinstance(v.unwrapped, AtomVectorEnv) and v.num_envs == 2


def test_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env as sb3_check

    for at in ("discrete", "continuous"):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            sb3_check(AtomEnv(action_type=at, duration_s=SHORT), warn=True)
        assert not [str(w.message) for w in rec], at


def test_spaces_and_layout():
    env = AtomEnv(duration_s=SHORT)
    assert env.observation_space.shape == (OBS_DIM,) == (len(OBS_NAMES),)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    # defaults: min_free_kbytes 67584 -> log(67584/128)/log(8192)
    assert obs[OBS_MIN_FREE_KBYTES] == pytest.approx(np.log(67584 / 128) / np.log(8192), rel=1e-6)
    obs2, *_ = env.step(A_MF_UP)
    assert env.sim.min_free_kbytes[0] == 84480 and obs2[OBS_MIN_FREE_KBYTES] > obs[OBS_MIN_FREE_KBYTES]


@pytest.mark.parametrize("bad", [7, -1, 1.5, "x", [0, 1]])
def test_discrete_out_of_space_raises(bad):
    env = AtomEnv(duration_s=SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(bad)


@pytest.mark.parametrize("bad", [[0, 0, 1.5], [0, 0], [np.nan, 0, 0]])
def test_continuous_out_of_space_raises(bad):
    env = AtomEnv(action_type="continuous", duration_s=SHORT)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(np.array(bad, np.float32))


def _rollout(env, seed, actions):
    out = [env.reset(seed=seed)]
    for a in actions:
        out.append(env.step(a))
        if out[-1][2] or out[-1][3]:      # stepping on without a reset is an error
            break
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def test_determinism_side_by_side():
    acts = np.random.default_rng(3).integers(0, N_ACTIONS, 25)
    e1, e2 = AtomEnv(duration_s=2.0), AtomEnv(duration_s=2.0)
    r1, r2 = _rollout(e1, 7, acts), _rollout(e2, 7, acts)
    assert _same(r1, r2)
    r3 = _rollout(AtomEnv(duration_s=2.0), 8, acts)
    assert not _same(r1, r3)   # another seed differs (the comparison can fail)


def test_reward_is_sum_of_terms_and_score_one_for_defaults():
    env = AtomEnv(duration_s=1.0)
    env.reset(seed=1)
    total = 0.0
    for _ in range(10):
        obs, r, term, trunc, info = env.step(0)
        parts = sum(v for k, v in info.items() if k.startswith("reward_"))
        assert r == pytest.approx(parts, abs=1e-12)
        assert {f"term_{n}" for n in ("drops", "atomic_fail", "reserved_mib_s", "stall_s", "knob_changes")} <= info.keys()
        total -= r
    assert trunc and not term
    assert info["episode_cost"] == pytest.approx(total)
    assert info["score"] == pytest.approx(1.0, abs=1e-12)   # no-op policy == the kernel defaults
    env.reset(seed=1)
    for _ in range(10):
        *_, info = env.step(A_MF_UP)   # more reserved memory and knob writes: worse than defaults here
    assert info["score"] < 1.0


def test_deadlock_terminates_with_penalty():
    env = AtomEnv(duration_s=1.0)
    env.reset(seed=0)
    env.sim.set_knobs(min_free_kbytes=np.array([2**31 - 1]))   # every zone's min above what is allocatable
    _, r, term, trunc, info = env.step(0)
    assert term and not trunc and info["reward_deadlock"] == -100.0 and r <= -100.0
    assert "score" in info


def test_batched_equals_single_with_autoreset():
    n, seed, steps = 3, 10, 14     # 1 s episodes = 10 steps: crosses an episode end and the autoreset
    rng = np.random.default_rng(0)
    acts = rng.integers(0, N_ACTIONS, (steps, n))
    venv = AtomVectorEnv(num_envs=n, duration_s=1.0)
    vobs, _ = venv.reset(seed=seed)
    singles = [AtomEnv(duration_s=1.0) for _ in range(n)]
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    assert np.array_equal(vobs, np.stack(sobs))
    done = [False] * n
    truncs = []
    for t in range(steps):
        vo, vr, vt, vtr, vinfo = venv.step(acts[t])
        for i, e in enumerate(singles):
            if done[i]:
                o, _ = e.reset()
                r, te, tr = 0.0, False, False
                done[i] = False
            else:
                o, r, te, tr, info = e.step(int(acts[t, i]))
                assert vinfo["term_atomic_fail"][i] == info["term_atomic_fail"]
                done[i] = te or tr
            assert np.array_equal(vo[i], o), (t, i)
            assert vr[i] == r and vt[i] == te and vtr[i] == tr, (t, i)
        truncs.append(bool(vtr.all()))
    assert truncs.index(True) == 9   # the 10th step ends the 1 s episode; step 11 is the autoreset


def test_pickle_round_trip():
    env = AtomEnv(duration_s=2.0, render_mode="ansi")
    env.reset(seed=5)
    for a in (1, 3, 0, 5):
        env.step(a)
    clone = pickle.loads(pickle.dumps(env))
    for a in (2, 4, 6, 0, 0):
        assert _same(env.step(a), clone.step(a))
    assert env.render() == clone.render()


def test_render_modes():
    env = AtomEnv(duration_s=1.0, render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    txt = env.render()
    assert "Node 0, zone Normal" in txt and "min_free_kbytes=67584" in txt
    env = AtomEnv(duration_s=1.0, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(5):
        env.step(0)
    img = env.render()
    assert img.shape == (200, 400, 3) and img.dtype == np.uint8
    assert (img[:, :, 0] == 220).any() and (img == 0).any()   # the min line (red) and free (black)


@pytest.mark.slow   # long training: run after the rest (make test), not in make test-fast
def test_sb3_vecenv_autoreset_and_ppo_smoke():
    from stable_baselines3 import PPO, SAC
    from atomgym.envs.sb3 import AtomSB3VecEnv, quiet_logger

    v = AtomSB3VecEnv(4, duration_s=0.5)
    v.seed(0)
    obs = v.reset()
    single = AtomEnv(duration_s=0.5)
    assert np.array_equal(obs[0], single.reset(seed=0)[0])
    for _ in range(5):
        obs, r, done, infos = v.step(np.zeros(4, np.int64))
    assert done.all() and all(i["TimeLimit.truncated"] for i in infos)
    assert np.array_equal(infos[0]["terminal_observation"], _last_obs(single))
    assert not np.array_equal(obs[0], infos[0]["terminal_observation"])   # same-step autoreset
    model = PPO("MlpPolicy", AtomSB3VecEnv(16, duration_s=2.0), n_steps=128, batch_size=256, n_epochs=2,
                device="cpu", seed=0)
    model.set_logger(quiet_logger())
    model.learn(4096)
    sac = SAC("MlpPolicy", AtomSB3VecEnv(4, action_type="continuous", duration_s=2.0), learning_starts=100,
              batch_size=64, device="cpu", seed=0)
    sac.set_logger(quiet_logger())
    sac.learn(400)


def _last_obs(env):
    # advance the single env to its episode end with no-ops; return the final observation
    o = None
    while True:
        o, _, te, tr, _ = env.step(0)
        if te or tr:
            return o


def test_continuous_mapping_and_boost_level():
    env = AtomEnv(action_type="continuous", duration_s=1.0)
    env.reset(seed=0)
    sim = env.sim
    mf0, wsf0 = int(sim.min_free_kbytes[0]), int(sim.watermark_scale_factor[0])
    a_mf = 2 * np.log(mf0 / 128) / np.log(1048576 / 128) - 1     # the current values: no sysctl write
    a_wsf = 2 * np.log(wsf0) / np.log(3000) - 1
    changes = env.core.apply(np.array([[a_mf, a_wsf, 1.0]]), np.ones(1, bool))
    assert changes[0] == 1 and sim.min_free_kbytes[0] == mf0 and sim.watermark_scale_factor[0] == wsf0
    high = sim.wmark[0, :, 2]
    maxb = np.maximum(512, high * sim.watermark_boost_factor[0] // 10000)
    pop = (sim.managed[0] > 0) & (sim.managed[0] >= 4 * 512)
    assert np.array_equal(sim.boost[0][pop], maxb[pop])   # boost level 1 = boost_watermark()'s cap
    env.core.apply(np.array([[1.0, -1.0, -1.0]]), np.ones(1, bool))
    assert sim.min_free_kbytes[0] == 1048576 and sim.watermark_scale_factor[0] == 1
    assert (sim.boost[0] == 0).all()   # a sysctl write clears the boosts (setup_per_zone_wmarks)


def test_import_registers_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import gymnasium as gym; e = gym.make('atomgym:atomgym/Quiet-v1', duration_s=0.2); "
            "o, _ = e.reset(seed=0); print(type(e.unwrapped).__name__, o.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "AtomEnv (28,)"
    # import atomgym registers every id (the documented way) without loading the compiled simulator
    code = ("import sys, atomgym; import gymnasium as gym; "
            "print('atomgym/Quiet-v1' in gym.registry, 'atomgym.sim.engine' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True False", out.stderr[-2000:]


def test_vector_score_batched_reference_equals_single():
    from atomgym.envs import core

    core._DEFAULT_COST_CACHE.clear()
    venv = AtomVectorEnv(num_envs=3, duration_s=1.0, compute_score=True)
    venv.reset(seed=20)
    acts = np.array([0, 0, A_MF_UP])
    for _ in range(10):
        _, _, _, trunc, info = venv.step(acts)
    assert trunc.all()
    assert info["score"][0] == pytest.approx(1.0, abs=1e-12) and info["score"][1] == pytest.approx(1.0, abs=1e-12)
    assert info["score"][2] < 1.0
    batched = info["default_cost"].copy()
    core._DEFAULT_COST_CACHE.clear()
    for i in range(3):   # the reference computed alone equals the batched one
        env = AtomEnv(duration_s=1.0)
        env.reset(seed=20 + i)
        for _ in range(10):
            *_, sinfo = env.step(int(acts[i]))
        assert sinfo["default_cost"] == batched[i]
        assert sinfo["score"] == info["score"][i]


@pytest.mark.parametrize("kwargs, match", [
    ({"decision_interval_ms": 5}, "decision_interval_ms: 5 is out of range; valid range 10..10000 ms"),
    ({"decision_interval_ms": 10.5}, "not a multiple of the scenario's tick"),
    ({"action_type": "box"}, "action_type: 'box' is not valid; choices: discrete, continuous"),
    ({"duration_s": -1}, "duration_s: -1 is out of range"),
    ({"render_mode": "human"}, "render_mode: 'human' is not valid"),
    ({"cost": "v0"}, "cost: 'v0' is not valid; choices: harm, atomic-charged"),
    ({"scenario": "no-such-scenario"}, "no shipped scenario 'no-such-scenario'"),
])
def test_bad_arguments_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as ei:
        AtomEnv(**kwargs)
    assert "\n" not in str(ei.value)


def test_vector_pickle_round_trip():
    venv = AtomVectorEnv(num_envs=2, duration_s=0.5)
    venv.reset(seed=3)
    for _ in range(4):
        venv.step(np.array([1, 3]))
    clone = pickle.loads(pickle.dumps(venv))
    for a in ([0, 2], [5, 6], [4, 0], [0, 0]):   # crosses the episode end and the autoreset
        assert _same(venv.step(np.array(a)), clone.step(np.array(a)))


def test_two_node_machine_sums_zone_types_over_nodes():
    import dataclasses

    from atomgym.envs.spaces import OBS_INDEX
    from atomgym.sim.scenario import load_scenario

    s = load_scenario("quiet")
    s = dataclasses.replace(s, machine=dataclasses.replace(s.machine, nodes=2))
    env = AtomEnv(s, duration_s=0.5)
    obs, _ = env.reset(seed=0)
    sim = env.sim
    assert sim.n_nodes == 2 and env.observation_space.contains(obs)
    normal = [z for z in range(sim.n_zones) if z % 5 == 2 and sim.managed[0, z] > 0]
    assert len(normal) == 2
    frac = sim.free[0, normal].sum() / sim.managed[0, normal].sum()
    assert obs[OBS_INDEX["Normal.free_frac"]] == pytest.approx(frac, rel=1e-6)


def test_named_costs_and_the_v0_ids_keep_their_rewards():
    """v1's default cost leaves atomic failures uncharged (a diagnostic); ``cost="atomic-charged"``
    and the -v0 ids charge them 1e-3 each, as before v1; a w_* argument overrides one term."""
    from atomgym.envs.cost import COSTS

    def run(**kw):
        env = AtomEnv(scenario="incast-pagecache", duration_s=3.0, **kw)
        env.reset(seed=4)
        fails = rewards = 0.0
        for _ in range(30):
            *_, info = env.step(0)
            fails += info["term_atomic_fail"]
            rewards += info["reward_atomic_fail"]
        return fails, rewards, info
    fails, r_harm, info = run()
    assert fails > 0 and r_harm == 0.0               # failures counted, not charged
    f2, r_old, info_old = run(cost="atomic-charged")
    assert f2 == fails and r_old == pytest.approx(-COSTS["atomic-charged"]["atomic_fail"] * fails)
    assert info_old["episode_cost"] == pytest.approx(info["episode_cost"] + 1e-3 * fails)
    assert run(w_atomic_fail=2e-3)[1] == pytest.approx(-2e-3 * fails)
    assert AtomEnv(cost="atomic-charged", w_drops=5.0).config.weights["atomic_fail"] == 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # gymnasium: "-v0 is out of date"
        old = gym.make("atomgym/IncastPagecache-v0")
    assert old.unwrapped.config.cost == "atomic-charged"
    assert gym.make("atomgym/IncastPagecache-v1").unwrapped.config.cost == "harm"
    assert set(env_ids(0)) == {i.replace("-v1", "-v0") for i in env_ids()}


def test_a_step_info_deep_copies_as_a_dict_does():
    """SB3's DummyVecEnv deep-copies every step's infos: a step's info (StepInfo, a dict) copies to
    an equal dict, its scalars as they are and any other value (a wrapper's terminal_observation)
    deep-copied, through one __deepcopy__ instead of a dispatch per value; it pickles as itself."""
    import copy
    from atomgym.envs.atom_env import StepInfo
    env = gym.make("atomgym/IncastPagecache-v1", duration_s=SHORT)
    env.reset(seed=0)
    info = env.step(0)[4]
    assert isinstance(info, StepInfo) and isinstance(info, dict) and len(info) > 5
    info["terminal_observation"] = np.arange(3.0)
    (c,) = copy.deepcopy([info])
    assert type(c) is StepInfo and c.keys() == info.keys()
    assert c["terminal_observation"] is not info["terminal_observation"]
    assert (c["terminal_observation"] == info["terminal_observation"]).all()
    assert all(c[k] == info[k] for k in info if k != "terminal_observation")
    assert pickle.loads(pickle.dumps(info)).keys() == info.keys()
