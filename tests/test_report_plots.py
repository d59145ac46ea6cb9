"""agents.plots: the Pareto front by hand, and every figure written as a PNG."""
from __future__ import annotations

import numpy as np

from agents import plots


def test_pareto_front_by_hand():
    x = np.array([1.0, 2.0, 3.0, 2.0, 0.5])
    y = np.array([5.0, 2.0, 1.0, 3.0, 9.0])
    # (2, 3) is dominated by (2, 2); the others trade one axis for the other
    assert list(plots.pareto_front(x, y)) == [4, 0, 1, 2]
    assert list(plots.pareto_front(np.array([1.0, 1.0]), np.array([1.0, 1.0]))) == [0, 1]     # ties: both kept


def test_timeseries_of_an_episode_is_the_evaluated_episode_and_plots(tmp_path):
    from agents import baselines, evaluate
    from atomgym.sim.scenario import load_scenario
    sc = load_scenario("incast-pagecache")
    tr = {p: plots.trace_episode(p, sc, 1000, 2.0) for p in ("v10-acked", "psi")}
    for p in tr:        # traced in 100 ms chunks, the same episode as the evaluator's
        (m,) = evaluate.run_policy(baselines.get(p), sc, np.array([1000]), 2.0)
        assert tr[p]["fail"][-1] == m["atomic_fail"] and tr[p]["t"][-1] == 2.0 and len(tr[p]["t"]) == 21
        assert (tr[p]["min"] <= tr[p]["low"]).all() and (tr[p]["low"] <= tr[p]["high"]).all()
    out = plots.timeseries_plot(tr, sc.name, 1000, tmp_path / "ts.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_learning_curves_png(tmp_path):
    for k in range(3):
        (tmp_path / f"r{k}.csv").write_text("steps,wall_s,score_mean,seed1\n"
                                            + "".join(f"{s},{s / 100},{0.5 + k * 0.1 + s / 1000},0\n" for s in (100, 200, 300)))
    out = plots.learning_curves({f"r{k}": tmp_path / f"r{k}.csv" for k in range(3)},
                                {"scenario": "quiet", "scores": {"psi": 1.2, "oracle-static": 1.5}}, tmp_path / "lc.png",
                                reps=100)
    assert out.stat().st_size > 5000 and not list(tmp_path.glob(".lc.png*"))
