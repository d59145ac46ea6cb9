"""Oracle bounds (agents/oracle.py)."""
from __future__ import annotations

import numpy as np

from agents import baselines, evaluate, oracle
from atomgym.sim.scenario import load_scenario
from atomgym.agents import episodes


def test_hindsight_static_is_the_per_seed_minimum_of_the_grid_and_never_worse_than_default():
    sc = load_scenario("incast-pagecache")
    seeds = np.array([1000, 1001])
    best, why = oracle.hindsight_static(sc, seeds, 1.0)
    pts, met = oracle.sweep(sc, seeds, 1.0)
    kd = evaluate.run_policy(baselines.get("kernel-default"), sc, seeds, 1.0)
    for j in range(2):
        costs = [met[p][j]["cost"] for p in range(len(pts))]
        assert best[j]["cost"] == min(costs)
        assert best[j]["cost"] <= kd[j]["cost"]
        assert ("boot", -1) in pts and met[pts.index(("boot", -1))][j]["cost"] == kd[j]["cost"]
    assert len(why) == 2 and "best of 24 static settings" in why[0]


def test_planner_is_deterministic_and_its_action_list_replays_exactly():
    """The planner looks ahead with snapshot()/restore(): what it leaves behind must be exactly the
    episode its chosen writes give on a fresh simulator (no look-ahead leaks into the real run)."""
    sc = load_scenario("incast-pagecache")
    seeds = np.array([1000, 1003])
    acts: list = []
    res, why, wall = oracle.planner(sc, seeds, 2.0, step_s=0.5, horizon_s=1.0, actions=acts)
    res2, _, _ = oracle.planner(sc, seeds, 2.0, step_s=0.5, horizon_s=1.0)
    assert res == res2 and wall > 0
    assert any(acts) and len(why) == sum(len(a) for a in acts)
    for j, s in enumerate(seeds):
        sim = oracle.replay_actions(sc, int(s), 2.0, acts[j])
        assert episodes.episode_metrics(sim, 0) == res[j]
    kd = evaluate.run_policy(baselines.get("kernel-default"), sc, seeds, 2.0)
    assert sum(r["cost"] for r in res) < sum(r["cost"] for r in kd)     # on the incast it acts, and gains
