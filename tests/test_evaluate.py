"""agents.evaluate end to end on a short episode."""
from __future__ import annotations

import csv
import math

from agents import evaluate
from atomgym.agents import episodes, models, oracle, policies


def test_evaluate_writes_rows_scores_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["--policies", "kernel-default,v1-double,psi,best-static", "--scenarios", "incast-pagecache",
            "--seeds", "2", "--duration-s", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--no-summary"]
    assert evaluate.main(argv) == 0
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    # the references come first: kernel-default, then oracle-static (the per-episode hindsight best)
    assert [r["policy"] for r in rows[::2]] == ["kernel-default", "oracle-static", "v1-double", "psi", "best-static"]
    assert len(rows) == 10
    for k in ("drops_total", "fail_kernel", "reserved_mib_s", "stall_s", "kswapd_runs", "knob_changes", "score"):
        assert k in rows[0]
    kd = [r for r in rows if r["policy"] == "kernel-default"]
    assert all(float(r["score"]) == 1.0 for r in kd) and float(kd[0]["atomic_fail"]) > 0
    v1 = [r for r in rows if r["policy"] == "v1-double"]
    assert float(v1[0]["final_min_free_kbytes"]) > float(kd[0]["final_min_free_kbytes"])   # THP 67584 -> 1 % cap
    ora = [r for r in rows if r["policy"] == "oracle-static"]
    for o, k in zip(ora, kd):      # the grid holds the kernel's own setting: never worse than the default
        assert float(o["cost"]) <= float(k["cost"])
    bs = [r for r in rows if r["policy"] == "best-static"]
    assert sum(float(o["cost"]) for o in ora) <= sum(float(b["cost"]) for b in bs)   # per-seed best <= per-scenario best
    assert list((tmp_path / "cache").glob("incast-pagecache__*.json"))
    before = (out / "episodes.csv").read_bytes()
    capsys.readouterr()
    assert evaluate.main(argv) == 2                       # a second evaluation into the folder: refused
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err
    assert (out / "episodes.csv").read_bytes() == before


def test_best_static_sweep_is_not_reused_by_another_engine(tmp_path, monkeypatch):
    """The sweep's cache key includes the engine's sources: after an engine change (which moves
    every counter) the best static setting is chosen again, not read from the old sweep."""
    from atomgym.sim import engine
    from atomgym.sim.scenario import load_scenario
    import numpy as np

    scn = load_scenario("quiet")
    seeds = np.array([1])
    oracle.best_static(scn, seeds, 0.2, tmp_path)
    oracle.best_static(scn, seeds, 0.2, tmp_path)
    assert len(list(tmp_path.glob("quiet__*.json"))) == 1           # same engine: reused
    monkeypatch.setattr(engine, "sources_digest", lambda: "another engine")
    oracle.best_static(scn, seeds, 0.2, tmp_path)
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
    assert evaluate.main(["--policies", f"kernel-default,ppo={path},{path}", "--scenarios", "incast-pagecache",
                          "--seeds", "2", "--duration-s", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    m = [r for r in rows if r["policy"] == "ppo"]
    assert len(m) == 2 and all(float(r["cost"]) > 0 and r["score"] != "" for r in m)
    assert len(rows) == 2 * 3            # the bare path is the same model: named ppo (its algorithm), counted once
    assert "PPO vs best baseline on incast-pagecache" in capsys.readouterr().out.strip().splitlines()[-1]
    # the summary and the plots; tables name policies briefly, never by an absolute path
    md = (out / "summary.md").read_text()
    for k in ("IQM", "Probability of improvement", "gap closed", "`ppo`", "`oracle-static`"):
        assert k in md, k
    assert str(tmp_path) not in md
    assert (out / "pareto-incast-pagecache.png").stat().st_size > 1000 and (out / "profile.png").is_file()


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
    got = episodes.episode_metrics(env.core.sim, 0)
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
        m = episodes.episode_metrics(env.core.sim, 0)
        assert m["knob_changes"] == changes > 0
        assert env.core.sim.counter("boost_actions")[0] > 0
        assert m["cost"] == pytest.approx(-ret, rel=1e-12)
        assert m["cost"] == pytest.approx(info["episode_cost"], rel=1e-12)


def _argv(out, pols="v1-double,kernel-default", seeds="2", extra=()):
    return ["--policies", pols, "--scenarios", "incast-pagecache,quiet", "--seeds", seeds, "--duration-s", "1",
            "--out", str(out), "--no-summary", *extra]


def test_any_policy_order_works(tmp_path):
    """kernel-default after another policy crashed on a None reference cost (issue 13)."""
    assert evaluate.main(_argv(tmp_path / "a", "v1-double,kernel-default", extra=["--no-oracle"])) == 0
    assert evaluate.main(_argv(tmp_path / "b", "kernel-default,v1-double", extra=["--no-oracle"])) == 0
    a = list(csv.DictReader(open(tmp_path / "a" / "episodes.csv")))
    b = list(csv.DictReader(open(tmp_path / "b" / "episodes.csv")))
    key = lambda r: (r["policy"], r["scenario"], r["seed"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_s"}  # noqa: E731
    assert sorted(map(strip, a), key=key) == sorted(map(strip, b), key=key)
    # every score is against the same seed's kernel-default cost, whichever policy ran first
    ref = [r for r in a if r["policy"] == "kernel-default"]
    v1 = [r for r in a if r["policy"] == "v1-double"]
    assert len(ref) == len(v1) == 4 and all(float(r["score"]) == 1.0 for r in ref)
    assert all(math.isfinite(float(r["score"])) for r in v1)


def test_a_repeated_policy_counts_once(tmp_path):
    assert evaluate.main(_argv(tmp_path, "psi,psi,kernel-default,psi", extra=["--no-oracle"])) == 0
    rows = list(csv.DictReader(open(tmp_path / "episodes.csv")))
    assert len(rows) == 2 * 2 * 2


def test_interrupted_evaluation_keeps_finished_blocks_and_resumes(tmp_path, monkeypatch, capsys):
    """Each finished block is in episodes.csv at once; --resume runs only the missing ones and the
    result equals an uninterrupted evaluation."""
    full = tmp_path / "full"
    assert evaluate.main(_argv(full, "kernel-default,psi,v1-double")) == 0
    out = tmp_path / "cut"
    real = evaluate.run_block
    calls = []

    def flaky(spec, sc, *a, **k):
        calls.append((spec.label, sc.name))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec, sc, *a, **k)

    monkeypatch.setattr(evaluate, "run_block", flaky)
    assert evaluate.main(_argv(out, "kernel-default,psi,v1-double")) == 130
    assert "--resume" in capsys.readouterr().err
    part = list(csv.DictReader(open(out / "episodes.csv")))
    # kernel-default, oracle-static, psi finished on the first scenario; v1-double was interrupted
    assert [(r["policy"], r["scenario"]) for r in part[::2]] == [
        ("kernel-default", "incast-pagecache"), ("oracle-static", "incast-pagecache"), ("psi", "incast-pagecache")]
    assert not list(out.glob(".episodes.csv.*"))          # no temporary file left behind
    calls.clear()
    monkeypatch.setattr(evaluate, "run_block", real)
    seen = []
    monkeypatch.setattr(evaluate, "run_block", lambda spec, sc, *a, **k: seen.append(spec.label) or real(spec, sc, *a, **k))
    assert evaluate.main(_argv(out, "kernel-default,psi,v1-double", extra=["--resume"])) == 0
    assert seen.count("psi") == 1 and seen.count("v1-double") == 2 and seen.count("oracle-static") == 1
    key = lambda r: (r["policy"], r["scenario"], r["seed"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_s"}  # noqa: E731
    got = sorted(map(strip, csv.DictReader(open(out / "episodes.csv"))), key=key)
    want = sorted(map(strip, csv.DictReader(open(full / "episodes.csv"))), key=key)
    assert got == want
    # a resume with another episode length would mix two experiments: refused
    assert evaluate.main(["--policies", "psi", "--scenarios", "quiet", "--seeds", "2", "--duration-s", "2",
                          "--out", str(out), "--resume", "--no-summary"]) == 2
    assert "--duration-s" in capsys.readouterr().err


def test_a_concurrent_evaluation_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "ev"
    out.mkdir()
    held = evaluate._lock(out)
    try:
        assert evaluate.main(_argv(out)) == 2
        assert "another agents.evaluate" in capsys.readouterr().err
    finally:
        held.close()


import pytest  # noqa: E402


@pytest.mark.parametrize("bad", [
    ["--duration-s", "0"], ["--duration-s", "-1"], ["--duration-s", "nan"], ["--duration-s", "inf"],
    ["--duration-s", "1e300"], ["--duration-s", "abc"], ["--seed-base", str(2**70)], ["--seed-base", "-1"],
    ["--seed-base", str(2**63 - 1), "--seeds", "2"], ["--seeds", "0"], ["--seeds", "x"], ["--policies", ","], ["--policies", ""],
    ["--policies", "nope"], ["--policies", "x=psi"], ["--scenarios", ","], ["--resume", "--force"],
    ["--policies", "missing.zip"], ["--bogus"],
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, bad):
    argv = {"--policies": "psi", "--scenarios": "quiet", "--seeds": "1", "--duration-s": "1", "--out": str(tmp_path / "o")}
    extra = []
    for k, v in zip(bad[::2], bad[1::2]):
        if k in argv:
            argv[k] = v
        else:
            extra += [k, v]
    if len(bad) % 2:
        extra.append(bad[-1])
    if bad == ["--resume", "--force"]:
        extra = bad
    flat = [x for kv in argv.items() for x in kv] + extra
    assert evaluate.main(flat) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("agents.evaluate: error:"), err
    assert not (tmp_path / "o" / "episodes.csv").exists()


def test_out_naming_a_file_and_a_corrupt_model_exit_2(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("mine\n")
    assert evaluate.main(_argv(f)) == 2
    assert "is a file" in capsys.readouterr().err and f.read_text() == "mine\n"
    z = tmp_path / "model.zip"
    z.write_bytes(b"PK\x03\x04 not really a zip")
    assert evaluate.main(_argv(tmp_path / "o", f"kernel-default,{z}")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a stable-baselines3 model" in err
    assert not (tmp_path / "o").exists()


def test_outputs_that_are_not_regular_files_are_refused(tmp_path, capsys):
    out = tmp_path / "ev"
    out.mkdir()
    target = tmp_path / "precious"
    target.write_text("mine\n")
    (out / "episodes.csv").symlink_to(target)
    for extra in ([], ["--force"], ["--resume"]):
        assert evaluate.main(_argv(out, "psi", extra=extra)) == 2
        assert "not a regular file" in capsys.readouterr().err
    assert target.read_text() == "mine\n"
    (out / "episodes.csv").unlink()
    (out / "episodes.csv").mkdir()
    assert evaluate.main(_argv(out, "psi", extra=["--force"])) == 2
    assert (out / "episodes.csv").is_dir()


# ---- issue 23: a damaged cache is a miss; --cache-dir that is a file --------------------------
def test_a_damaged_best_static_cache_is_recomputed_and_replaced(tmp_path, capsys):
    import json

    import numpy as np

    from atomgym.sim.scenario import load_scenario
    scn = load_scenario("quiet")
    seeds = np.array([1])
    want = oracle.best_static(scn, seeds, 0.2, tmp_path)[:2]
    (cache,) = tmp_path.glob("quiet__*.json")
    good = cache.read_text()
    for damaged in (good[: len(good) // 2], "[" * 100000, json.dumps({**json.loads(good), "mf_kb": "lots"}), ""):
        cache.write_text(damaged)
        capsys.readouterr()
        assert oracle.best_static(scn, seeds, 0.2, tmp_path)[:2] == want
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("warning: damaged cache") and str(cache) in err[0], err
        assert cache.read_text() == good                      # replaced: the next run reads it silently
        oracle.best_static(scn, seeds, 0.2, tmp_path)
        assert capsys.readouterr().err == ""
    cache.unlink()
    cache.symlink_to("/dev/zero")                            # never read: a miss, and the link replaced
    assert oracle.best_static(scn, seeds, 0.2, tmp_path)[:2] == want
    assert "damaged cache" in capsys.readouterr().err and not cache.is_symlink()


def test_a_damaged_fleet_cache_is_recomputed_and_replaced(tmp_path, capsys):
    from atomgym.agents import oracle
    want = oracle.fleet_static(seeds=(5000,), duration_s=0.05, cache_dir=tmp_path)[:2]
    (cache,) = tmp_path.glob("fleet-*.json")
    good = cache.read_text()
    cache.write_text(good[:10])
    capsys.readouterr()
    assert oracle.fleet_static(seeds=(5000,), duration_s=0.05, cache_dir=tmp_path)[:2] == want
    assert capsys.readouterr().err.startswith("warning: damaged cache") and cache.read_text() == good


def test_cache_dir_that_is_a_file_names_cache_dir(tmp_path, capsys):
    f = tmp_path / "cachefile"
    f.write_text("mine")
    rc = evaluate.main(["--policies", "best-static", "--scenarios", "quiet", "--seeds", "1", "--duration-s", "0.2",
                        "--out", str(tmp_path / "ev"), "--cache-dir", str(f)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--cache-dir" in err and "--out" not in err, err
    assert f.read_text() == "mine" and not (tmp_path / "ev").exists()


def test_sigterm_keeps_only_finished_blocks_and_exits_143(tmp_path):
    """SIGTERM during an evaluation: one line, exit 143, episodes.csv holds whole blocks only (no
    summary.md: nothing looks finished), and --resume continues it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    root = Path(__file__).parents[1]
    out = tmp_path / "ev"
    p = subprocess.Popen([sys.executable, "-m", "agents.evaluate", "--policies", "kernel-default,psi,v1-double",
                          "--scenarios", "incast-pagecache", "--seeds", "2", "--duration-s", "3000", "--no-oracle",
                          "--out", str(out)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    t0 = time.monotonic()
    while not (out / "episodes.csv").exists():     # the first block is written: the second one runs
        assert p.poll() is None and time.monotonic() - t0 < 300, p.communicate()
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("agents.evaluate: interrupted (SIGTERM); the finished blocks"), err
    assert "Traceback" not in err and not (out / "summary.md").exists()
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    assert len(rows) % 2 == 0 and rows and {r["policy"] for r in rows} < {"kernel-default", "psi", "v1-double"}


def test_a_model_config_linked_to_a_device_or_nested_too_deep_is_one_line(tmp_path):
    import pytest
    from stable_baselines3 import PPO

    from atomgym.envs.atom_env import AtomEnv
    model = PPO("MlpPolicy", AtomEnv("quiet", duration_s=1.0), n_steps=16, batch_size=16, device="cpu", seed=0)
    model.save(tmp_path / "m.zip")
    yml = tmp_path / "m.yml"
    yml.symlink_to("/dev/zero")               # a link: refused before anything is read (never a bare model)
    with pytest.raises(evaluate.UsageError) as e:
        policies.parse_policies(str(tmp_path / "m.zip"))
    assert "symbolic link (to /dev/zero)" in str(e.value) and "\n" not in str(e.value), str(e.value)
    yml.unlink()
    assert policies.parse_policies(str(tmp_path / "m.zip"))[0].label == "ppo"      # bare: no config
    yml.write_text("a: " + "[" * 100000)
    with pytest.raises(evaluate.UsageError) as e:
        policies.parse_policies(str(tmp_path / "m.zip"))
    assert "nested too deeply" in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_model_or_its_files_behind_a_symbolic_link_are_refused(tmp_path):
    """A model's files are read where they are: the .zip, its config or its statistics linked from
    elsewhere (a single model or an ensemble's member) is one line naming the link, nothing loaded."""
    import shutil

    import pytest
    from stable_baselines3 import PPO

    from atomgym.envs.atom_env import AtomEnv
    elsewhere, run = tmp_path / "elsewhere", tmp_path / "run"
    elsewhere.mkdir()
    run.mkdir()
    PPO("MlpPolicy", AtomEnv("quiet", duration_s=1.0), n_steps=16, batch_size=16, device="cpu",
        seed=0).save(elsewhere / "m.zip")
    shutil.copy(elsewhere / "m.zip", run / "a.zip")
    (run / "b.zip").symlink_to(elsewhere / "m.zip")
    for item in (str(run / "b.zip"), f"mean:{run}/*.zip", f"vote:{run}/*.zip"):
        with pytest.raises(evaluate.UsageError) as e:
            policies.parse_policies(item)
        msg = str(e.value)
        assert f"{run / 'b.zip'}: the model is a symbolic link (to {elsewhere / 'm.zip'})" in msg and "\n" not in msg, msg
    (run / "b.zip").unlink()
    (elsewhere / "config.yml").write_text("algo: ppo\n")
    (run / "config.yml").symlink_to(elsewhere / "config.yml")
    with pytest.raises(evaluate.UsageError) as e:
        policies.parse_policies(str(run / "a.zip"))
    assert "config.yml: the model's training config is a symbolic link" in str(e.value), str(e.value)
    (run / "config.yml").unlink()
    (run / "a.vecnormalize.npz").symlink_to(elsewhere / "m.zip")
    with pytest.raises(evaluate.UsageError) as e:
        policies.parse_policies(str(run / "a.zip"))
    assert "a.vecnormalize.npz: the model's normalisation statistics is a symbolic link" in str(e.value), str(e.value)
    (run / "a.vecnormalize.npz").unlink()
    assert policies.parse_policies(str(run / "a.zip"))[0].label == "ppo"


# ---- --resume continues only what would give the same rows (issue 23) ---------------------------
def _quiet_copy(tmp_path, name="q", rate=None):
    """A copy of the shipped quiet scenario under tmp_path (optionally another traffic rate)."""
    import yaml

    from atomgym.paths import SCENARIO_DIR
    d = yaml.safe_load((SCENARIO_DIR / "quiet.yaml").read_text())
    d["name"] = name
    if rate is not None:
        d["traffic"][0]["rate_pps"] = rate
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _small(out, scen, extra=()):
    return ["--policies", "kernel-default", "--scenarios", str(scen), "--seeds", "1", "--duration-s", "0.2",
            "--out", str(out), "--no-summary", "--no-oracle", *extra]


def test_resume_refuses_an_edited_scenario_another_seed_range_or_simulator(tmp_path, capsys, monkeypatch):
    """Each change of what a block's rows depend on is refused, one line naming it; the CSV is
    left as it was. Before, an edited scenario file or another --seed-base resumed with exit 0
    and mixed the old rows with the new ones."""
    import yaml

    from atomgym.agents import identity
    scen = _quiet_copy(tmp_path)
    out = tmp_path / "ev"
    assert evaluate.main(_small(out, scen)) == 0
    assert (out / "blocks.json").is_file()
    before = (out / "episodes.csv").read_bytes()
    capsys.readouterr()
    assert evaluate.main(_small(out, scen, ["--resume"])) == 0          # unchanged: nothing to run
    assert (out / "episodes.csv").read_bytes() == before

    def refused(argv, needle):
        capsys.readouterr()
        assert evaluate.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and needle in err and "--force" in err, err
        assert (out / "episodes.csv").read_bytes() == before

    d = yaml.safe_load(scen.read_text())
    first = scen.read_text()
    d["traffic"][0]["rate_pps"] = float(d["traffic"][0]["rate_pps"]) * 2 + 1
    scen.write_text(yaml.safe_dump(d))
    refused(_small(out, scen, ["--resume"]), "the scenario's content")
    scen.write_text(first)
    refused(_small(out, scen, ["--resume", "--seed-base", "2000"]), "seeds 1000..1000, not 2000..2000")
    refused(_small(out, scen, ["--resume", "--duration-s", "0.3"]), "--duration-s 0.2, not 0.3")
    monkeypatch.setattr(identity, "simulator_digest", lambda: "another simulator")
    refused(_small(out, scen, ["--resume"]), "the simulator's sources")
    # a recorded block not asked for now is checked too: one file, one simulator
    other = _quiet_copy(tmp_path, "q2")
    refused(_small(out, other, ["--resume"]), "kernel-default on q:")
    monkeypatch.undo()
    assert evaluate.main(_small(out, scen, ["--resume"])) == 0
    # no recorded identity (an older evaluate, or the file removed): cannot be checked, refused
    (out / "blocks.json").unlink()
    refused(_small(out, scen, ["--resume"]), "no recorded identity")
    capsys.readouterr()
    assert evaluate.main(_small(out, scen, ["--force"])) == 0             # --force starts afresh
    assert (out / "blocks.json").is_file()


def test_resume_refuses_another_model_under_the_same_label(tmp_path, capsys):
    """A model's files (zip, yml, normalisation statistics) are part of its blocks' identity."""
    import shutil

    from atomgym.paths import PRETRAINED_DIR
    for f in PRETRAINED_DIR.glob("benchmark-ppo.*"):
        shutil.copy(f, tmp_path / f.name.replace("benchmark-ppo", "m"))
    out = tmp_path / "ev"
    argv = ["--policies", f"mine={tmp_path / 'm.zip'}", "--scenarios", "quiet", "--seeds", "1",
            "--duration-s", "1", "--out", str(out), "--no-summary", "--no-oracle"]
    assert evaluate.main(argv) == 0
    before = (out / "episodes.csv").read_bytes()
    with open(tmp_path / "m.yml", "a") as f:
        f.write("# another model's config\n")
    capsys.readouterr()
    assert evaluate.main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mine on quiet" in err and "the policy" in err, err
    assert (out / "episodes.csv").read_bytes() == before


def test_two_scenario_files_with_one_name_are_refused(tmp_path, capsys):
    """One of them used to be dropped silently (episodes.csv tells scenarios apart by name)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _quiet_copy(tmp_path / "a", "same")
    b = _quiet_copy(tmp_path / "b", "same", rate=1.0)
    assert evaluate.main(_small(tmp_path / "ev", f"{a},{b}")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(a) in err and str(b) in err and "'same'" in err, err
    assert not (tmp_path / "ev" / "episodes.csv").exists()
    # the same file twice is one scenario
    assert evaluate.main(_small(tmp_path / "ev2", f"{a},{a}")) == 0
    assert len(list(csv.DictReader(open(tmp_path / "ev2" / "episodes.csv")))) == 1


def test_a_model_whose_config_disagrees_with_it_is_refused_before_any_episode(tmp_path):
    """A yml giving another action or observation space used to play out-of-range actions or
    fail mid-run (and replay --save wrote a record replay rejects)."""
    import shutil

    import pytest
    import yaml

    from atomgym.paths import PRETRAINED_DIR
    for f in PRETRAINED_DIR.glob("benchmark-ppo.*"):
        shutil.copy(f, tmp_path / f.name.replace("benchmark-ppo", "m"))
    cfg = yaml.safe_load((tmp_path / "m.yml").read_text())
    good = models.load_model(tmp_path / "m.zip")
    assert good.env_kw["action_type"] == "levels"
    for key, value, needle in (("action_type", "discrete", "action[ _]space"),
                               ("observation", "basic", "observation[ _]space")):
        bad = {**cfg, "env": {**cfg["env"], key: value}}
        (tmp_path / "m.yml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match=needle) as e:
            models.load_model(tmp_path / "m.zip")
        assert "m.yml" in str(e.value) and "\n" not in str(e.value)


def test_best_static_sweep_is_not_reused_after_its_trace_changed(tmp_path):
    """The cache key held the scenario file's text only: an edited replay trace reused the sweep
    of the old one."""
    import numpy as np

    from atomgym.sim.scenario import load_scenario
    (tmp_path / "t.csv").write_text("packets\n" + "100\n" * 50)
    (tmp_path / "s.yaml").write_text("duration_s: 1\ntraffic:\n  - {kind: replay, trace: t.csv}\n")
    oracle.best_static(load_scenario(tmp_path / "s.yaml"), np.array([1]), 0.1, tmp_path / "c")
    oracle.best_static(load_scenario(tmp_path / "s.yaml"), np.array([1]), 0.1, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("s__*.json"))) == 1
    (tmp_path / "t.csv").write_text("packets\n" + "5000\n" * 50)
    oracle.best_static(load_scenario(tmp_path / "s.yaml"), np.array([1]), 0.1, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("s__*.json"))) == 2


def test_normalisation_statistics_of_another_observation_length_are_refused(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import pytest

    from atomgym.envs.atom_env import make_observation_space
    n = make_observation_space("memory").shape[0]
    models.check_normalisation(tmp_path / "m.zip", SimpleNamespace(obs_rms=SimpleNamespace(mean=np.zeros(n))),
                                 {"observation": "memory"})
    with pytest.raises(ValueError, match=r"m\.zip: its normalisation statistics are for observations of shape"):
        models.check_normalisation(tmp_path / "m.zip", SimpleNamespace(obs_rms=SimpleNamespace(mean=np.zeros(n))),
                                     {"observation": "basic"})
