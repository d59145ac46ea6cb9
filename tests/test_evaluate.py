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
