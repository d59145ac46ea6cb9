"""agents.evaluate end to end on a short episode."""
from __future__ import annotations

import csv

from agents import evaluate


def test_evaluate_writes_rows_scores_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["--policies", "kernel-default,v1-double,psi,best-static", "--scenarios", "incast-pagecache",
            "--seeds", "2", "--duration-s", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert evaluate.main(argv) == 0
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    assert len(rows) == 8 and {r["policy"] for r in rows} == {"kernel-default", "v1-double", "psi", "best-static"}
    for k in ("drops_total", "fail_kernel", "reserved_mib_s", "stall_s", "kswapd_runs", "knob_changes", "score"):
        assert k in rows[0]
    kd = [r for r in rows if r["policy"] == "kernel-default"]
    assert all(float(r["score"]) == 1.0 for r in kd) and float(kd[0]["atomic_fail"]) > 0
    v1 = [r for r in rows if r["policy"] == "v1-double"]
    assert float(v1[0]["final_min_free_kbytes"]) > float(kd[0]["final_min_free_kbytes"])   # THP 67584 -> 1 % cap
    assert list((tmp_path / "cache").glob("incast-pagecache__*.json"))
    assert "best-static" in capsys.readouterr().out
    assert evaluate.main(argv) == 0
    assert (out / "episodes-1.csv").is_file() and (out / "actions-1.log").is_file()


def test_best_static_sweep_is_not_reused_by_another_engine(tmp_path, monkeypatch):
    """The sweep's cache key includes the engine's sources: after an engine change (which moves
    every counter) the best static setting is chosen again, not read from the old sweep."""
    from atomgym.sim import engine
    from atomgym.sim.scenario import load_scenario
    import numpy as np

    scn = load_scenario("quiet")
    seeds = np.array([1])
    evaluate.best_static(scn, seeds, 0.2, tmp_path)
    evaluate.best_static(scn, seeds, 0.2, tmp_path)
    assert len(list(tmp_path.glob("quiet__*.json"))) == 1           # same engine: reused
    monkeypatch.setattr(engine, "sources_digest", lambda: "another engine")
    evaluate.best_static(scn, seeds, 0.2, tmp_path)
    assert len(list(tmp_path.glob("quiet__*.json"))) == 2


def test_evaluate_unknown_names_exit_2(tmp_path, capsys):
    assert evaluate.main(["--policies", "nope", "--scenarios", "quiet", "--seeds", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "valid: kernel-default" in err
    assert evaluate.main(["--policies", "psi", "--scenarios", "nope", "--seeds", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "incast-pagecache" in err


def test_evaluate_runs_a_trained_model_zip(tmp_path, capsys):
    from stable_baselines3 import PPO

    from atomgym.envs.atom_env import AtomEnv
    env = AtomEnv("incast-pagecache", duration_s=1.0)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", seed=0)
    path = tmp_path / "model.zip"
    model.save(path)
    out = tmp_path / "ev"
    assert evaluate.main(["--policies", f"kernel-default,{path}", "--scenarios", "incast-pagecache", "--seeds", "2",
                          "--duration-s", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    m = [r for r in rows if r["policy"] == str(path)]
    assert len(m) == 2 and all(float(r["cost"]) > 0 and r["score"] != "" for r in m)


def test_a_model_meets_the_baselines_machines(tmp_path):
    """A model's episode runs on the simulator seed the baselines get: on the randomised scenario,
    an env that never acts reproduces kernel-default's episode counter for counter."""
    import numpy as np
    import pytest

    from agents import baselines
    from atomgym.envs.atom_env import AtomEnv
    from atomgym.sim.scenario import load_scenario
    sc = load_scenario("train-randomized")
    (ref,) = evaluate.run_policy(baselines.get("kernel-default"), sc, np.array([1001]), 2.0)
    env = AtomEnv(sc, duration_s=2.0, compute_score=False)
    env.reset(seed=5, options={"sim_seed": 1001})
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(0)
        done = term or trunc
    got = evaluate.episode_metrics(env.core.sim, 0)
    assert got == ref
    with pytest.raises(ValueError, match="unknown key"):
        env.reset(options={"seed": 1})
    with pytest.raises(ValueError, match="sim_seed: expected an integer"):
        env.reset(options={"sim_seed": -1})


def test_report_prints_the_readme_tables(tmp_path, capsys):
    from agents import report
    p = tmp_path / "episodes.csv"
    cols = ["policy", "scenario", "seed", "score", "atomic_fail", "drops_total", "reserved_mib_s", "stall_s"]
    rows = [("kernel-default", "quiet", 1, 1.0, 10, 0, 100, 0.5), ("kernel-default", "quiet", 2, 1.0, 30, 2, 100, 1.5),
            ("psi", "quiet", 1, 1.5, 0, 0, 120, 0.0), ("psi", "quiet", 2, 1.25, 4, 0, 140, 0.1)]
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    assert report.main([str(p)]) == 0
    out = capsys.readouterr().out
    assert "| `kernel-default` | 1.000 ± 0.000 |" in out
    assert "| `psi` | 1.375 ± 0.177 |" in out                 # std(ddof=1) of 1.5, 1.25
    assert "| `kernel-default` | 20 / 1 / 100 / 1.0 |" in out
    assert "| `psi` | 2 / 0 / 130 / 0.1 |" in out
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert report.main([str(tmp_path / "bad.csv")]) == 2
    assert "not an agents.evaluate episodes.csv" in capsys.readouterr().err


def test_evaluation_cost_is_the_envs_episode_cost_for_an_agent_that_boosts():
    """evaluate's cost of an agent's episode equals the env's own episode cost (minus its return),
    for discrete and continuous actions that write sysctls and boost: a boost request is one knob
    change in both (counter boost_actions), however many zones it boosts."""
    import pytest

    from atomgym.envs.atom_env import AtomEnv
    from atomgym.envs.spaces import A_BOOST_ALL, A_BOOST_NORMAL, A_MF_UP, A_WSF_UP

    for action_type, acts in (("discrete", [A_BOOST_ALL, 0, A_MF_UP, A_BOOST_NORMAL, A_WSF_UP, A_BOOST_ALL]),
                              ("continuous", [[0.2, -0.5, 0.9], [0.2, -0.5, 0.95], [-1.0, 1.0, 1.0], [0.0, 0.0, -1.0]])):
        env = AtomEnv("incast-pagecache", duration_s=1.0, action_type=action_type)
        env.reset(seed=3)
        ret, k, done, changes = 0.0, 0, False, 0.0
        while not done:
            _, r, term, trunc, info = env.step(acts[k % len(acts)])
            ret += r
            changes += info["term_knob_changes"]
            k += 1
            done = term or trunc
        m = evaluate.episode_metrics(env.core.sim, 0)
        assert m["knob_changes"] == changes > 0
        assert env.core.sim.counter("boost_actions")[0] > 0
        assert m["cost"] == pytest.approx(-ret, rel=1e-12)
        assert m["cost"] == pytest.approx(info["episode_cost"], rel=1e-12)


def test_t_quantiles_of_the_confidence_intervals():
    """The 95 % intervals use Student's t for every sample size (11-30 seeds used a flat 2.1 and
    more than 30 the normal 1.96 before: intervals up to 6 % too narrow)."""
    import pytest

    for df, t in ((1, 12.706), (2, 4.303), (10, 2.228), (15, 2.131), (30, 2.042), (31, 2.0395), (40, 2.0211),
                  (60, 2.0003), (100, 1.9840), (1000, 1.9623)):
        assert evaluate.t975(df) == pytest.approx(t, abs=2e-4), df
