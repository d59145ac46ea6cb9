"""observation="memory": the 28 basic features followed by MEMORY_FEATURES (spaces.py), computed
in compiled code from per-machine state in Core (envs/_compiled.mem_update / obs_memory)."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from atomgym.envs import AtomEnv, AtomVectorEnv
from atomgym.envs.spaces import (
    KNOB_RATIO_SPAN, LOG1P_SCALE, MEMORY_FEATURES, MEMORY_OBS_DIM, MEMORY_OBS_INDEX, MEMORY_OBS_NAMES, OBS_DIM,
    OBS_M_MACHINE_SIZE, OBS_M_MF_VS_BOOT, OBS_M_TIME_SINCE_DROP, OBS_M_TIME_SINCE_FAIL, OBS_M_WSF_VS_BOOT, OBS_NAMES,
    PEAK_TAUS_S, RATE_TAUS_S, SINCE_CAP_S, A_MF_UP, A_WSF_DOWN,
)
from atomgym.kernel.zones import PAGE_KB


def test_layout_names_and_bounds():
    assert MEMORY_OBS_NAMES[:OBS_DIM] == OBS_NAMES
    assert MEMORY_OBS_DIM == OBS_DIM + len(MEMORY_FEATURES) == len(set(MEMORY_OBS_NAMES))
    env = AtomEnv(observation="memory", duration_s=1.0, compute_score=False)
    assert env.observation_space.shape == (MEMORY_OBS_DIM,)
    assert np.all(env.observation_space.low == 0.0) and np.all(env.observation_space.high == 1.0)
    assert AtomEnv(duration_s=1.0, compute_score=False).observation_space.shape == (OBS_DIM,)


@pytest.mark.parametrize("action_type", ["discrete", "continuous", "discrete-noboost", "levels"])
def test_check_env_memory(action_type):
    check_env(AtomEnv(observation="memory", action_type=action_type, duration_s=0.5, compute_score=False),
              skip_render_check=True)


def test_bad_observation_argument():
    for bad in ("memroy", 1, None):
        with pytest.raises(ValueError, match="observation: .* is not valid; choices: basic, memory") as ei:
            AtomEnv(observation=bad)
        assert "\n" not in str(ei.value)
    with pytest.raises(ValueError, match="observation: 'stack' is not valid"):
        AtomVectorEnv(2, observation="stack")


def test_memory_prefix_is_the_basic_observation():
    """The first 28 entries are the basic observation bit for bit, step for step."""
    a = AtomEnv(duration_s=2.0, compute_score=False)
    b = AtomEnv(duration_s=2.0, compute_score=False, observation="memory")
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    assert np.array_equal(oa, ob[:OBS_DIM])
    for act in np.random.default_rng(1).integers(0, 7, 20):
        oa, ra, *_ = a.step(int(act))
        ob, rb, *_ = b.step(int(act))
        assert np.array_equal(oa, ob[:OBS_DIM]) and ra == rb


def _lg(x: float) -> np.float32:
    return np.float32(min(math.log1p(max(x, 0.0)) / LOG1P_SCALE, 1.0))


def _since(s: float) -> np.float32:
    return np.float32(math.log1p(min(s, SINCE_CAP_S)) / math.log1p(SINCE_CAP_S))


@pytest.mark.parametrize("interval_ms", [100.0, 250.0])
def test_rates_time_since_and_peaks_by_hand(interval_ms):
    """Averages, time-since values and peak holds recomputed in plain Python from the counter
    deltas of each interval (no-op policy, a scenario with failures and drops)."""
    env = AtomEnv("incast-pagecache", duration_s=6.0, decision_interval_ms=interval_ms, compute_score=False,
                  observation="memory")
    env.reset(seed=3)
    dt = interval_ms / 1000.0
    ema_f = [0.0] * len(RATE_TAUS_S)
    ema_d = [0.0] * len(RATE_TAUS_S)
    peak = [0.0] * len(PEAK_TAUS_S)
    since_f = since_d = 0.0
    names = ("atomic_fail", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "rx_packets")
    last = {n: float(env.sim.counter(n)[0]) for n in names}
    n_fail_steps = n_quiet_steps = 0
    for _ in range(int(6.0 / dt)):
        obs, *_ = env.step(0)
        now = {n: float(env.sim.counter(n)[0]) for n in names}
        d = {n: now[n] - last[n] for n in names}
        last = now
        fails = d["atomic_fail"]
        drops = d["rx_missed"] + d["rcvbuf_drop"] + d["pfmemalloc_drop"]
        for i, tau in enumerate(RATE_TAUS_S):
            k = math.exp(-dt / tau)
            ema_f[i] = k * ema_f[i] + (1.0 - k) * (fails / dt)
            ema_d[i] = k * ema_d[i] + (1.0 - k) * (drops / dt)
        for i, tau in enumerate(PEAK_TAUS_S):
            peak[i] = max(d["rx_packets"] / dt, math.exp(-dt / tau) * peak[i])
        since_f = 0.0 if fails > 0 else since_f + dt
        since_d = 0.0 if drops > 0 else since_d + dt
        n_fail_steps += fails > 0
        n_quiet_steps += fails == 0
        for i, tau in enumerate(RATE_TAUS_S):
            assert obs[MEMORY_OBS_INDEX[f"atomic_fail_rate_{tau:g}s"]] == pytest.approx(_lg(ema_f[i]), abs=1e-6)
            assert obs[MEMORY_OBS_INDEX[f"drop_rate_{tau:g}s"]] == pytest.approx(_lg(ema_d[i]), abs=1e-6)
        for i, tau in enumerate(PEAK_TAUS_S):
            assert obs[MEMORY_OBS_INDEX[f"rx_peak_{tau:g}s"]] == pytest.approx(_lg(peak[i]), abs=1e-6)
        assert obs[OBS_M_TIME_SINCE_FAIL] == pytest.approx(_since(since_f), abs=1e-6)
        assert obs[OBS_M_TIME_SINCE_DROP] == pytest.approx(_since(since_d), abs=1e-6)
    assert n_fail_steps > 0 and n_quiet_steps > 0   # the scenario exercised both branches


def test_ema_decay_accounts_for_the_interval():
    """One interval of r failures/s from rest: the 1 s average reads (1 - exp(-dt)) * r, for the
    interval's own dt (a 10x longer interval is not a 10x longer-lived sample)."""
    for ms in (100.0, 1000.0):
        env = AtomEnv("incast-pagecache", duration_s=30.0, decision_interval_ms=ms, compute_score=False,
                      observation="memory")
        env.reset(seed=5)
        while True:
            f0 = float(env.sim.counter("atomic_fail")[0])
            mem0 = env.core.mem[0].copy()
            env.step(0)
            fails = float(env.sim.counter("atomic_fail")[0]) - f0
            if fails > 0:
                break
        dt = ms / 1000.0
        want = math.exp(-dt) * mem0[0] + (1.0 - math.exp(-dt)) * fails / dt
        assert env.core.mem[0, 0] == pytest.approx(want, rel=1e-12)


def test_time_since_failure_grows_on_a_machine_that_never_fails():
    env = AtomEnv("quiet", duration_s=20.0, compute_score=False, observation="memory")
    obs, _ = env.reset(seed=0)
    seen = [float(obs[OBS_M_TIME_SINCE_FAIL])]
    for _ in range(200):
        obs, *_ = env.step(0)
        seen.append(float(obs[OBS_M_TIME_SINCE_FAIL]))
    assert env.sim.counter("atomic_fail")[0] == 0       # the premise: no failure at all
    assert seen[0] == 0.0 and all(b > a for a, b in zip(seen, seen[1:]))
    assert seen[-1] == pytest.approx(float(_since(200 * 0.1)), abs=1e-6)
    assert obs[MEMORY_OBS_INDEX["atomic_fail_rate_60s"]] == 0.0


def test_machine_size_and_knobs_relative_to_boot():
    env = AtomEnv("incast-pagecache", duration_s=2.0, compute_score=False, observation="memory")
    obs, _ = env.reset(seed=2)
    mib = float(env.sim.managed[0].sum()) * PAGE_KB / 1024.0
    assert obs[OBS_M_MACHINE_SIZE] == pytest.approx(math.log(mib / 256.0) / math.log(256.0), abs=1e-6)
    assert obs[OBS_M_MF_VS_BOOT] == 0.5 and obs[OBS_M_WSF_VS_BOOT] == 0.5
    mf0, wsf0 = int(env.sim.min_free_kbytes[0]), int(env.sim.watermark_scale_factor[0])
    for _ in range(3):
        obs, *_ = env.step(A_MF_UP)
    obs, *_ = env.step(A_WSF_DOWN)
    mf, wsf = int(env.sim.min_free_kbytes[0]), int(env.sim.watermark_scale_factor[0])
    assert mf > mf0 and wsf < wsf0
    span = 2.0 * math.log(KNOB_RATIO_SPAN)
    assert obs[OBS_M_MF_VS_BOOT] == pytest.approx(0.5 + math.log(mf / mf0) / span, abs=1e-6)
    assert obs[OBS_M_WSF_VS_BOOT] == pytest.approx(0.5 + math.log(wsf / wsf0) / span, abs=1e-6)
    # a reset forgets: rates, time-since and ratios start over
    obs, _ = env.reset(seed=2)
    assert np.all(obs[OBS_DIM:OBS_M_MACHINE_SIZE] == 0.0) and obs[OBS_M_MF_VS_BOOT] == 0.5


def test_features_stay_in_bounds_on_randomized_machines():
    venv = AtomVectorEnv(8, scenario="train-randomized", duration_s=3.0, observation="memory",
                         action_type="levels")
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    ratios = set()
    for _ in range(40):
        assert venv.observation_space.contains(obs)
        ratios.update(np.round(obs[:, OBS_M_MF_VS_BOOT], 4).tolist())
        obs, *_ = venv.step(rng.integers(0, venv.single_action_space.n, 8))
    assert len(ratios) > 3 and min(ratios) == 0.5   # the levels moved min_free_kbytes away from boot


@pytest.mark.parametrize("action_type", ["discrete", "levels", "discrete-noboost"])
def test_batch_row_equals_lone_env(action_type):
    """Env i of AtomVectorEnv (seed s + i) equals AtomEnv reset with s + i, bit for bit, across an
    autoreset (which must also reset that machine's memory)."""
    n, steps, dur = 3, 14, 1.0
    venv = AtomVectorEnv(n, duration_s=dur, observation="memory", action_type=action_type)
    k = venv.single_action_space.n
    acts = np.random.default_rng(4).integers(0, k, (steps, n))
    vo, _ = venv.reset(seed=10)
    vobs = [vo]
    for t in range(steps):
        vo, *_ = venv.step(acts[t])
        vobs.append(vo)
    for i in range(n):
        env = AtomEnv(duration_s=dur, observation="memory", action_type=action_type, compute_score=False)
        o, _ = env.reset(seed=10 + i)
        assert np.array_equal(o, vobs[0][i])
        done = False
        for t in range(steps):
            if done:   # the next episode's seed comes from the vector env's own generator
                break
            o, _, term, trunc, _ = env.step(int(acts[t, i]))
            assert np.array_equal(o, vobs[t + 1][i]), (i, t)
            done = term or trunc
        assert done   # the episode ended inside the window


def test_autoreset_restarts_memory():
    venv = AtomVectorEnv(2, scenario="quiet", duration_s=1.0, observation="memory")
    venv.reset(seed=0)
    for _ in range(10):
        obs, _, term, trunc, _ = venv.step(np.zeros(2, np.int64))
    assert np.all(trunc) and np.all(obs[:, OBS_M_TIME_SINCE_FAIL] == _since(1.0))
    obs, *_ = venv.step(np.zeros(2, np.int64))   # the reset observation
    assert np.all(obs[:, OBS_M_TIME_SINCE_FAIL] == 0.0)
    assert np.all(venv.core.mem[:, :OBS_M_MACHINE_SIZE - OBS_DIM] == 0.0)


@pytest.mark.parametrize("action_type", ["levels", "discrete"])
def test_fused_step_equals_python_path_with_memory(action_type):
    fused = AtomEnv(duration_s=3.0, compute_score=False, observation="memory", action_type=action_type)
    ref = AtomEnv(duration_s=3.0, compute_score=False, observation="memory", action_type=action_type)
    fused.reset(seed=11)
    ref.reset(seed=11)
    k = fused.action_space.n
    acts = np.random.default_rng(6).integers(0, k, 30)
    acts[:k] = np.arange(k)[:30]
    for t, a in enumerate(acts):
        o1, r1, *_ = fused.step(int(a))
        core = ref.core
        changes = core.apply(np.array([a], np.int64), np.ones(1, bool))
        core.advance(np.ones(1, bool))
        _, r2, _ = core.step_terms(changes, np.ones(1, bool))
        o2 = core.obs()[0]
        assert np.array_equal(o1, o2) and r1 == float(r2[0]), t
        assert np.array_equal(fused.core.mem, ref.core.mem), t


def test_snapshot_restore_and_pickle_round_trip():
    env = AtomEnv("incast-pagecache", duration_s=4.0, compute_score=False, observation="memory",
                  action_type="levels")
    env.reset(seed=9)
    for a in (0, 5, 5, 18, 0, 2):
        env.step(a)
    snap = env.core.snapshot()
    clone = pickle.loads(pickle.dumps(env))
    assert np.array_equal(clone.core.mem, env.core.mem) and np.array_equal(clone.core.levels, env.core.levels)
    tail = [3, 3, 0, 19, 7, 0, 0, 11]
    first = [env.step(a)[0] for a in tail]
    assert [np.array_equal(x, clone.step(a)[0]) for x, a in zip(first, tail)] == [True] * len(tail)
    env.core.restore(snap)   # Core.restore() puts the memory back too: the same future again
    again = [env.step(a)[0] for a in tail]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0][OBS_DIM:], first[-1][OBS_DIM:])   # the memory moved


@pytest.mark.parametrize("doc", ["docs/environment.md"])
def test_docs_memory_table_matches_the_code(doc):
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    i = text.index('## Observation with memory (`observation="memory"`)')
    sec = text[i:text.index("## Reward", i)]
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| (.+) \| \[0, 1\] \|$", sec, flags=re.M)
    assert [(int(k), n, u) for k, n, u in rows] == [(OBS_DIM + k, n, u) for k, (n, u, _, _) in
                                                     enumerate(MEMORY_FEATURES)]
