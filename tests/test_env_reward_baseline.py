"""reward_baseline="default": the reward is the agent's minus a default-settings shadow's (same
machine, same seed, same interval): doing nothing earns exactly 0, the return is minus the episode
cost above the default's, and the single env, the batched env and pickling agree."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from atomgym.envs import AtomEnv, AtomVectorEnv


def test_noop_earns_zero_and_return_is_cost_difference():
    env = AtomEnv(scenario="train-randomized", duration_s=3.0, reward_baseline="default")
    env.reset(seed=7)
    done = False
    while not done:
        _, r, term, trunc, info = env.step(0)
        assert r == 0.0
        assert info["reward_default"] == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward_")
                                                           and k != "reward_default"))
        done = term or trunc
    assert info["score"] == pytest.approx(1.0, abs=1e-12)   # per-step sums vs the default run's totals
    env.reset(seed=7)
    ret, done, k = 0.0, False, 0
    while not done:
        _, r, term, trunc, info = env.step([1, 3, 5, 0, 4][k % 5])
        ret += r
        k += 1
        done = term or trunc
    assert info["episode_cost"] != info["default_cost"]
    assert ret == pytest.approx(-(info["episode_cost"] - info["default_cost"]), rel=1e-9, abs=1e-9)


def test_raw_costs_and_score_unchanged_by_the_baseline():
    """The same actions with and without the shadow: same observations, same raw terms, same score;
    rewards differ by exactly the shadow's."""
    a = AtomEnv(duration_s=2.0, reward_baseline="default")
    b = AtomEnv(duration_s=2.0)
    a.reset(seed=3)
    b.reset(seed=3)
    for k in range(20):
        oa, ra, ta, _, ia = a.step(k % 7)
        ob, rb, tb, _, ib = b.step(k % 7)
        assert np.array_equal(oa, ob) and ta == tb
        assert ra == pytest.approx(rb - ia["reward_default"], abs=1e-12)
        for key, v in ib.items():
            assert ia[key] == v, key
    assert ia["score"] == ib["score"]


def test_bad_reward_baseline_is_a_clear_error():
    with pytest.raises(ValueError, match="reward_baseline: 'kernel' is not valid; choices: none, default, score"):
        AtomEnv(reward_baseline="kernel")


def test_score_baseline_return_is_score_minus_one_on_every_machine():
    """reward_baseline="score": the difference reward divided by the default episode's cost, so the
    return of an episode is its score - 1, on a small machine and a large one alike."""
    for scenario, seed in (("train-wide-virtio", 4), ("train-wide-pagepool", 8)):
        env = AtomEnv(scenario=scenario, duration_s=3.0, reward_baseline="score", action_type="levels")
        env.reset(seed=seed)
        ret, done, k = 0.0, False, 0
        while not done:
            _, r, term, trunc, info = env.step([0, 6, 6, 13, 0][k % 5])
            ret += r
            k += 1
            done = term or trunc
        assert info["episode_cost"] != info["default_cost"]
        assert ret == pytest.approx(info["score"] - 1.0, rel=1e-9, abs=1e-9)
        env.reset(seed=seed)
        while True:                             # doing nothing earns exactly 0 here too
            _, r, term, trunc, _ = env.step(0)
            assert r == 0.0
            if term or trunc:
                break


@pytest.mark.parametrize("baseline,seed,rng_seed,steps,last", [("default", 10, 0, 8, [2, 3, 4]),
                                                                ("score", 20, 1, 6, [1, 1, 1])])
def test_vector_rows_equal_single_envs_and_pickle_keeps_the_baseline(baseline, seed, rng_seed, steps, last):
    """A batch row equals a lone env with the same seed (shadow and, for "score", the C_def scale
    included), and a pickled vector env continues identically."""
    n = 3
    v = AtomVectorEnv(num_envs=n, scenario="train-randomized", duration_s=2.0, reward_baseline=baseline)
    v.reset(seed=seed)
    singles = [AtomEnv(scenario="train-randomized", duration_s=2.0, reward_baseline=baseline, compute_score=False)
               for _ in range(n)]
    for i, e in enumerate(singles):
        e.reset(seed=seed + i)
    rng = np.random.default_rng(rng_seed)
    for k in range(steps):
        acts = rng.integers(0, 7, size=n)
        obs, r, *_ = v.step(acts)
        for i, e in enumerate(singles):
            o1, r1, *_ = e.step(int(acts[i]))
            assert np.array_equal(obs[i], o1) and r[i] == r1, (k, i)
    w = pickle.loads(pickle.dumps(v))
    acts = np.array(last)
    o1, r1, *_ = v.step(acts)
    o2, r2, *_ = w.step(acts)
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2)
    if baseline == "score":
        assert (r1 != 0).any()
