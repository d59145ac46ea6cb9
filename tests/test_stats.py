"""agents.stats against hand-computed values on tiny inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents import stats


def test_iqm_is_rliables_to_the_last_bit():
    """stats.iqm replaces rliable's aggregate_iqm (scipy's trim_mean) for speed: the same float for
    every shape, size (odd, even, below 4), ties and NaN, so published CIs do not move."""
    from rliable import metrics
    rng = np.random.default_rng(0)
    for shape in [(1,), (2,), (3,), (4, 1), (5, 3), (7, 11), (10, 20), (33, 2), (1000,)]:
        for x in (rng.random(shape), rng.integers(0, 4, shape).astype(float), rng.lognormal(0, 3, shape)):
            want = float(metrics.aggregate_iqm(x))
            assert stats.iqm(x) == want or (np.isnan(want) and np.isnan(stats.iqm(x))), (shape, x)
    x = rng.random((6, 3))
    x[2, 1] = np.nan
    assert np.isnan(stats.iqm(x)) and np.isnan(metrics.aggregate_iqm(x))


def test_performance_profile_is_rliables_to_the_last_bit():
    """stats.score_distribution replaces rliable's np.vectorize'd score_distributions for speed: the
    same profiles and the same bootstrap CIs (same seed)."""
    from rliable import library as rly
    rng = np.random.default_rng(1)
    mats = {"a": rng.random((5, 3)) * 2, "b": rng.integers(0, 3, (4, 3)).astype(float)}
    taus = np.linspace(0.0, 2.0, 21)
    mine = stats.performance_profile(mats, taus, reps=200)
    np.random.seed(0)
    theirs = rly.create_performance_profile(mats, taus, reps=200)
    for k in mats:
        assert np.array_equal(mine[0][k], theirs[0][k]) and np.array_equal(mine[1][k], theirs[1][k]), k
        assert np.array_equal(stats.score_distribution(mats[k], taus), rly.score_distributions(mats[k], taus))


def test_iqm_is_the_mean_of_the_middle_half():
    assert stats.iqm(np.array([[1.0], [2.0], [3.0], [4.0]])) == pytest.approx(2.5)          # mean(2, 3)
    # 8 values over 2 scenarios: trim 2 each end of the pooled sorted values 0,1,2,3,4,5,6,100
    x = np.array([[0.0, 4.0], [1.0, 5.0], [2.0, 6.0], [3.0, 100.0]])
    assert stats.iqm(x) == pytest.approx((2 + 3 + 4 + 5) / 4)


def test_optimality_gap_with_a_per_scenario_threshold():
    x = np.array([[0.5, 2.0], [1.5, 1.0]])
    # thresholds 1.0 (scenario 0) and 1.5 (scenario 1): shortfalls 0.5, 0, 0, 0.5 -> mean 0.25
    assert stats.optimality_gap(x, np.array([1.0, 1.5])) == pytest.approx(0.25)


def test_probability_of_improvement_counts_ties_half():
    x, y = np.array([[1.0], [2.0]]), np.array([[0.0], [3.0]])
    assert stats.prob_improvement(x, y) == pytest.approx(0.5)                # 1>0, 2>0 of 4 pairs
    assert stats.prob_improvement(np.array([[1.0], [1.0]]), np.array([[1.0], [0.0]])) == pytest.approx(0.75)
    # averaged over scenarios: 1.0 on the first, 0.0 on the second
    assert stats.prob_improvement(np.array([[2.0, 0.0]]), np.array([[1.0, 1.0]])) == pytest.approx(0.5)
    # rliable's own estimator agrees (Mann-Whitney U / (n m))
    from rliable import metrics
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    assert stats.prob_improvement(a, b) == pytest.approx(metrics.probability_of_improvement(a, b))


def _df(rows):
    return pd.DataFrame(rows, columns=["policy", "run", "scenario", "seed", "score", "cost"])


def test_seeds_are_the_unit_a_repeated_row_counts_once():
    d = _df([("a", "-", "s", 1, 1.0, 5.0), ("a", "-", "s", 2, 3.0, 1.0), ("a", "-", "s", 1, 1.0, 5.0)])
    u = stats.units(d)
    assert sorted(u["score"]) == [1.0, 3.0]
    assert stats.dedupe(d)[1] == 1
    # a model's run is one unit: the mean over its evaluation seeds
    m = _df([("ppo", "seed0", "s", 1, 1.0, 0), ("ppo", "seed0", "s", 2, 2.0, 0), ("ppo", "seed1", "s", 1, 4.0, 0)])
    assert sorted(stats.units(m)["score"]) == [1.5, 4.0]


def test_per_scenario_and_aggregate_intervals():
    d = _df([("a", "-", "s", k, float(k), 0.0) for k in range(1, 9)] + [("c", "-", "s", k, 2.0, 0.0) for k in range(1, 9)])
    ps = stats.per_scenario(stats.units(d), reps=500)
    a = ps[ps.policy == "a"].iloc[0]
    assert a["mean"] == pytest.approx(4.5) and a["iqm"] == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert a["std"] == pytest.approx(np.std(np.arange(1, 9), ddof=1))
    assert a["mean_lo"] < 4.5 < a["mean_hi"] and 1 <= a["mean_lo"] and a["mean_hi"] <= 8
    c = ps[ps.policy == "c"].iloc[0]
    assert c["mean_lo"] == c["mean_hi"] == 2.0                     # a constant: the interval is the point
    mats = stats.matrices(stats.units(d), ["a", "c"], ["s"])
    ag = stats.aggregate(mats, np.array([5.0]), reps=500)
    ra = ag[ag.policy == "a"].iloc[0]
    assert ra["opt_gap"] == pytest.approx(np.mean(np.maximum(5.0 - np.arange(1, 9), 0)))   # (4+3+2+1)/8
    assert ra["iqm_lo"] <= ra["iqm"] <= ra["iqm_hi"]
    assert ag[ag.policy == "c"].iloc[0]["opt_gap"] == pytest.approx(3.0)


def test_gap_closed_on_mean_costs():
    d = _df([("kernel-default", "-", "s", 1, 1, 10.0), ("kernel-default", "-", "s", 2, 1, 20.0),
             ("oracle-static", "-", "s", 1, 1, 2.0), ("oracle-static", "-", "s", 2, 1, 8.0),
             ("p", "-", "s", 1, 1, 6.0), ("p", "-", "s", 2, 1, 14.0),
             ("kernel-default", "-", "q", 1, 1, 3.0), ("oracle-static", "-", "q", 1, 1, 3.0), ("p", "-", "q", 1, 1, 4.0)])
    g = stats.gap_closed(d).set_index(["policy", "scenario"])["gap_closed"]
    assert g[("p", "s")] == pytest.approx((15 - 10) / (15 - 5))         # means: default 15, oracle 5, p 10
    assert g[("oracle-static", "s")] == pytest.approx(1.0) and g[("kernel-default", "s")] == 0.0
    assert np.isnan(g[("p", "q")])                                      # the oracle is no better: undefined


def test_improvement_table_and_profile():
    mats = {"a": np.array([[1.0], [2.0]]), "b": np.array([[0.0], [3.0]])}
    tab, cis = stats.improvement_table(mats, reps=200, with_ci=[("a", "b")])
    assert tab.loc["a", "b"] == pytest.approx(0.5) and tab.loc["b", "a"] == pytest.approx(0.5)
    lo, hi = cis[("a", "b")]
    assert 0.0 <= lo <= hi <= 1.0
    prof, _ = stats.performance_profile(mats, np.array([0.5, 1.5, 2.5]), reps=100)
    assert list(prof["a"]) == pytest.approx([1.0, 0.5, 0.0]) and list(prof["b"]) == pytest.approx([0.5, 0.5, 0.5])
