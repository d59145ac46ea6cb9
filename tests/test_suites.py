"""Benchmark suites (configs/suites/*.txt) and the best-static-train baseline."""
from __future__ import annotations

import numpy as np
import pytest

from agents import baselines, oracle
from atomgym.sim.scenario import ScenarioError, load_scenario
from atomgym.suites import expand, list_suites, load_suite


def test_the_split_is_disjoint_and_test_has_six_or_more_fixed_machines():
    train, test = load_suite("train"), load_suite("suite:test")
    assert {"train", "test"} <= set(list_suites())
    assert not set(train) & set(test)
    assert len(test) >= 6
    for name in test:                       # fixed machines: nothing drawn per episode
        assert not load_scenario(name).randomize, name
    for name in train:
        assert load_scenario(name).randomize, name
    drivers = {n.driver for name in test for n in load_scenario(name).nics}
    assert drivers == {"page_pool", "dev_alloc_pages", "virtio_net"}


@pytest.mark.parametrize("text,needle", [
    ("", "lists no scenario"),
    ("# only a comment\n", "lists no scenario"),
    ("quiet\nquiet\n", ":2: 'quiet' is listed twice"),
    ("quiet\nno-such-scenario  # typo\n", ":2: 'no-such-scenario' is neither"),
])
def test_bad_suite_files_name_the_line(tmp_path, text, needle):
    p = tmp_path / "mine.txt"
    p.write_text(text)
    with pytest.raises(ScenarioError, match=needle.replace("(", r"\(")) as e:
        load_suite(str(p))
    assert str(p) in str(e.value)


def test_missing_suite_lists_the_shipped_ones():
    with pytest.raises(ScenarioError, match="shipped suites: fleet-test, fleet-train, fleet-train-bursts, test, train"):
        expand("quiet,suite:nope")


def test_expand_keeps_order_and_plain_names():
    assert expand("quiet, suite:train")[:2] == ["quiet", "train-randomized"]


def test_best_static_train_picks_the_grid_point_with_the_best_mean_score(tmp_path):
    # a one-scenario suite on a machine that fails a lot: some raised setting must beat the default
    suite = tmp_path / "one.txt"
    suite.write_text("incast-pagecache\n")
    mf, wsf, d = oracle.fleet_static(str(suite), seeds=(7, 8), duration_s=3.0, cache_dir=tmp_path)
    scores = {(g["mf"], g["wsf"]): g["mean_score"] for g in d["grid"]}
    assert scores[("boot", -1)] == pytest.approx(1.0)
    assert scores[(str(mf), wsf)] == max(scores.values())
    assert (str(mf), wsf) != ("boot", -1)
    # cached: the same answer without a sweep
    assert oracle.fleet_static(str(suite), seeds=(7, 8), duration_s=3.0, cache_dir=tmp_path)[:2] == (mf, wsf)
    # the policy writes that point machine-relatively at the first decision only
    pol = baselines.get("best-static-train").configure(0.02, 300)
    obs = {"min_free_kbytes": np.array([1000, 2000]), "total_pages": np.array([262144, 524288])}
    a, why = pol.decide(obs, None, True)
    assert a.tolist() == [[20971, 300], [41943, 300]] and "0.02" in why[0]
    assert (pol.decide(obs, None, False)[0] == -1).all()
    a, _ = baselines.get("best-static-train").configure("x2", -1).decide(obs, None, True)
    assert a.tolist() == [[2000, -1], [4000, -1]]
