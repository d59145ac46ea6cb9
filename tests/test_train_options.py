"""agents.train's training options end to end: every algorithm, VecNormalize (saved beside each
model and checkpoint, frozen at evaluation), frame stacking, multi-scenario training, the env:
mapping, deterministic and stochastic play, resume, shipped policies, and one-line errors."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from atomgym import suites
import pytest
import yaml

from agents import evaluate, train
from atomgym.agents.normstats import NormStats
from atomgym.agents import algos, build, checkpoints, config, episodes, models

TINY = {"scenario": "quiet", "seed": 1, "n_envs": 2, "total_timesteps": 64, "checkpoint_every": 32,
        "env": {"duration_s": 1.0}}
ALGO_KW = {
    "ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
    "a2c": {"n_steps": 8},
    "dqn": {"learning_starts": 0, "buffer_size": 500, "batch_size": 16, "train_freq": 4},
    "recurrent_ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1},
    "sac": {"learning_starts": 0, "buffer_size": 500, "batch_size": 16},
    "td3": {"learning_starts": 0, "buffer_size": 500, "batch_size": 16},
}
CONTINUOUS = ("sac", "td3")


def _cfg(algo: str = "ppo", **extra) -> dict:
    return {**TINY, "algo": algo, "action_type": "continuous" if algo in CONTINUOUS else "discrete",
            algo: ALGO_KW[algo], **extra}


def _write(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def _train(tmp_path: Path, cfg: dict, *more: str) -> Path:
    runs = tmp_path / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    assert train.main(["--config", str(_write(tmp_path, cfg)), "--runs-dir", str(runs), "--no-eval", *more]) == 0
    (run,) = set(runs.iterdir()) - before
    return run


def _eval(out: Path, policies: str, *more: str, seeds: int = 2) -> list[dict]:
    assert evaluate.main(["--policies", policies, "--scenarios", "quiet", "--seeds", str(seeds), "--duration-s", "0.5",
                          "--no-oracle", "--no-summary", "--out", str(out), *more]) == 0
    return list(csv.DictReader(open(out / "episodes.csv")))


@pytest.mark.parametrize("patch, needle", [
    ({"env": {"duration_z": 1}}, "env: unknown key 'duration_z'; valid: ["),
    ({"env": {"action_type": "continuous"}}, "env.action_type: 'continuous' contradicts the top-level action_type"),
    ({"algo": "dqn", "action_type": "continuous", "dqn": {}}, "algo: dqn needs a discrete action space"),
    ({"algo": "td3", "td3": {}}, "algo: td3 needs a continuous action space"),
    ({"algo": "sac", "sac": {}}, "algo: sac needs a continuous action space"),
    ({"algo": "trpo"}, "algo: 'trpo'; valid: ppo, a2c, dqn, recurrent_ppo, sac, td3"),
    ({"vec_normalize": {"norm_obz": True}}, "vec_normalize: unknown argument(s) ['norm_obz']"),
    ({"vec_normalize": {"clip_obs": "ten"}}, "vec_normalize.clip_obs: expected a finite number"),
    ({"vec_normalize": 3}, "vec_normalize: expected false or a mapping"),
    ({"frame_stack": 0}, "frame_stack: expected an integer in 1.."),
    ({"scenario": "suite:no-such-suite"}, "scenario: suite:no-such-suite: no file configs/suites/no-such-suite.txt"),
    ({"scenario": ["quiet", "incast-pagecache", "virtio-deferral"]}, "n_envs: 2 machines cannot cover the 3 scenarios"),
    ({"scenario": []}, "scenario: expected a scenario name"),
    ({"env": {"decision_interval_ms": 3}}, "decision_interval_ms: expected a number in [10, 10000]"),
    ({"recurrent_ppo": {"n_stepz": 3}}, "recurrent_ppo: unknown argument(s) ['n_stepz']"),
])
def test_bad_option_is_one_line_exit_2(tmp_path, capsys, patch, needle):
    p = _write(tmp_path, {**_cfg("ppo"), **patch})
    assert train.main(["--config", str(p), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(p) in err and needle in err, err
    assert not (tmp_path / "runs").exists()


def test_env_mapping_flows_through_and_top_level_keys_still_work(tmp_path):
    cfg = config.load_config(_write(tmp_path, {**_cfg("ppo"), "decision_interval_ms": 200,
                                              "env": {"duration_s": 1.0, "w_knob": 0.5}}))
    kw = config.env_kwargs(cfg)
    assert kw == {"duration_s": 1.0, "w_knob": 0.5, "action_type": "discrete", "decision_interval_ms": 200.0}
    # the evaluation env: the same, without the training episode length and reward-only keys
    assert config.eval_env_kwargs({**cfg, "reward_baseline": "default"}) == {
        "w_knob": 0.5, "action_type": "discrete", "decision_interval_ms": 200.0}
    venv = build.base_vec_env(cfg)
    assert venv.venv.core.decision_interval_ms == 200.0 and venv.venv.episode_steps == 5


@pytest.mark.parametrize("algo", list(ALGO_KW))
def test_each_algo_trains_and_evaluates(tmp_path, algo):
    run = _train(tmp_path, _cfg(algo))
    assert (run / "model.zip").is_file() and algos.algo_of_model(run / "model.zip") == algo
    rows = _eval(tmp_path / "ev", str(run / "model.zip"))
    pols = {r["policy"] for r in rows}
    assert pols == {"kernel-default", algo}
    learned = [r for r in rows if r["policy"] == algo]
    assert len(learned) == 2 and all(r["run"] == "seed1" for r in learned)
    assert all(np.isfinite(float(r["cost"])) and np.isfinite(float(r["score"])) for r in learned)


def _manual_episode(model, stats, n_stack: int, seed: int, env_kw: dict) -> dict:
    """What evaluate should do, written out by hand: normalise with the saved statistics, then
    stack n_stack frames (zeros before the first), argmax actions."""
    from atomgym.envs.atom_env import AtomEnv
    env = AtomEnv("quiet", duration_s=0.5, **env_kw)
    obs, _ = env.reset(seed=seed, options={"sim_seed": seed})
    def norm(o):
        return np.clip((o - stats.obs_mean) / np.sqrt(stats.obs_var + stats.epsilon), -stats.clip_obs, stats.clip_obs)
    d = obs.shape[0]
    buf = np.zeros(d * n_stack, np.float32)
    buf[-d:] = norm(obs)
    done = False
    while not done:
        a, _ = model.predict(buf[None], deterministic=True)
        obs, _, term, trunc, _ = env.step(a[0])
        done = bool(term or trunc)
        buf = np.roll(buf, -d)
        buf[-d:] = norm(obs)
    return episodes.episode_metrics(env.unwrapped.core.sim, 0)


def test_vec_normalize_and_frame_stack_saved_loaded_and_frozen(tmp_path):
    run = _train(tmp_path, _cfg("ppo", vec_normalize={"norm_obs": True, "norm_reward": True, "clip_obs": 10.0},
                                frame_stack=3))
    pkl = run / "model.vecnormalize.npz"           # plain arrays: no pickle is written
    assert pkl.is_file() and not (run / "model.vecnormalize.pkl").exists()
    cks = sorted((run / "checkpoints").glob("model_*_steps.zip"))
    assert cks and all(checkpoints.vecnormalize_path(c).is_file() for c in cks)
    with np.load(pkl, allow_pickle=False) as z:
        assert set(z.files) >= {"obs_mean", "obs_var", "obs_count", "ret_mean", "ret_var", "ret_count", "clip_obs",
                                "clip_reward", "epsilon", "gamma", "norm_obs", "norm_reward"}
    stats = NormStats.read(pkl)
    assert stats.obs_count > 1 and np.abs(stats.obs_mean).max() > 0    # learned during training
    lm = models.load_model(run / "model.zip")
    d = stats.obs_mean.shape[0]
    assert lm.model.observation_space.shape == (3 * d,) and lm.n_stack == 3
    assert isinstance(lm.vecnorm, NormStats)       # frozen: it has no update and no reward normalisation
    # the player sees the normalised, stacked observation (zeros before the first frame)
    from atomgym.envs.atom_env import AtomEnv
    obs, _ = AtomEnv("quiet", duration_s=0.5, **lm.env_kw).reset(seed=1000, options={"sim_seed": 1000})
    first = lm.player().reset(obs)
    want0 = np.clip((obs - stats.obs_mean) / np.sqrt(stats.obs_var + stats.epsilon), -10, 10)
    assert first.shape == (1, 3 * d) and not first[0, :2 * d].any()
    assert first[0, 2 * d:] == pytest.approx(want0, rel=1e-5, abs=1e-5) and not np.allclose(want0, obs)
    before = pkl.read_bytes()
    rows = _eval(tmp_path / "ev", str(run / "model.zip"))
    assert pkl.read_bytes() == before                       # evaluation never updates the statistics
    got = [float(r["cost"]) for r in rows if r["policy"] == "ppo"]
    want = [_manual_episode(lm.model, stats, 3, s, lm.env_kw)["cost"] for s in (1000, 1001)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_resume_with_vec_normalize(tmp_path, capsys):
    run = _train(tmp_path, _cfg("ppo", vec_normalize={"norm_obs": True, "norm_reward": False}))
    ck64 = run / "checkpoints" / "model_64_steps.zip"
    (run / "model.zip").unlink()
    ck64.unlink()
    checkpoints.vecnormalize_path(ck64).unlink()
    count32 = NormStats.read(checkpoints.vecnormalize_path(run / "checkpoints" / "model_32_steps.zip")).obs_count
    assert train.main(["--resume", str(run), "--total-timesteps", "96", "--no-eval"]) == 0
    out = capsys.readouterr().out
    assert "model_32_steps.zip" in out and "(96 agent steps" in out
    stats = NormStats.read(run / "model.vecnormalize.npz")
    assert stats.obs_count > count32          # continued from the checkpoint's statistics
    # a checkpoint whose statistics are missing is skipped, as a truncated one is
    (run / "model.zip").unlink()
    checkpoints.vecnormalize_path(run / "checkpoints" / "model_96_steps.zip").unlink()
    assert train.main(["--resume", str(run), "--no-eval"]) == 0
    assert "no normalisation statistics" in capsys.readouterr().err


def test_multi_scenario_split_and_suite(tmp_path, monkeypatch):
    assert config.split_envs(5, 2) == [3, 2] and config.split_envs(3, 3) == [1, 1, 1]
    (tmp_path / "mine.txt").write_text("# a suite\nquiet\n\nincast-pagecache   # the headline\n")
    monkeypatch.setattr(suites, "SUITE_DIR", tmp_path)
    assert suites.read_suite("mine") == ["quiet", "incast-pagecache"]
    cfg = config.load_config(_write(tmp_path, {**_cfg("ppo"), "n_envs": 3, "scenario": "suite:mine"}))
    venv = build.base_vec_env(cfg)
    assert [v.num_envs for v in venv.parts] == [2, 1]
    assert [v.venv.scenario.name for v in venv.parts] == ["quiet", "incast-pagecache"]
    obs = venv.reset()
    assert obs.shape == (3, venv.observation_space.shape[0])
    obs, r, done, infos = venv.step(np.zeros(3, np.int64))
    assert obs.shape[0] == 3 and r.shape == (3,) and len(infos) == 3
    assert venv.get_attr("num_envs") == [2, 2, 1]
    run = _train(tmp_path, {**cfg, "scenario": ["quiet", "incast-pagecache"], "n_envs": 3})
    assert run.name.startswith("quiet+1__ppo__")


def test_deterministic_and_stochastic_rows_and_seeded_reruns(tmp_path):
    run = _train(tmp_path, _cfg("ppo"))
    m = str(run / "model.zip")
    a = _eval(tmp_path / "a", m, "--play", "deterministic,stochastic")
    b = _eval(tmp_path / "b", f"{m}:stochastic")
    assert {r["policy"] for r in a} == {"kernel-default", "ppo", "ppo-stochastic"}
    sa = [(r["seed"], r["cost"], r["knob_changes"]) for r in a if r["policy"] == "ppo-stochastic"]
    sb = [(r["seed"], r["cost"], r["knob_changes"]) for r in b if r["policy"] == "ppo-stochastic"]
    assert sa == sb and len(sa) == 2
    code = evaluate.main(["--policies", f"{m}:sampled", "--scenarios", "quiet", "--out", str(tmp_path / "c")])
    assert code == 2


def test_export_pretrained_and_evaluate_it(tmp_path, capsys):
    from agents.pretrained.__main__ import main as pretrained
    run = _train(tmp_path, _cfg("ppo", vec_normalize={"norm_obs": True}))
    dest = tmp_path / "pretrained"
    assert pretrained(["export", str(run), "tiny", "--dest", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["SHA256SUMS", "tiny.vecnormalize.npz", "tiny.yml", "tiny.zip"]
    before = (dest / "tiny.zip").read_bytes()
    assert pretrained(["export", str(run), "tiny", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "exists; not overwritten" in err
    assert (dest / "tiny.zip").read_bytes() == before
    rows = _eval(tmp_path / "ev", f"{dest / 'tiny.zip'},{run / 'model.zip'}")
    shipped = [r["cost"] for r in rows if r["policy"] == "tiny"]
    assert len(shipped) == 2 and shipped == [r["cost"] for r in rows if r["policy"] == "ppo"]
    # its statistics are required: without them, one line
    (dest / "tiny.vecnormalize.npz").unlink()
    assert evaluate.main(["--policies", str(dest / "tiny.zip"), "--scenarios", "quiet", "--out",
                          str(tmp_path / "ev2")]) == 2
    assert "statistics" in capsys.readouterr().err


def _episodes(scores: dict[str, float], runs: int = 10, seeds: int = 4, scenarios=("a", "b")):
    """Synthetic episodes: each policy's score around a level (learned: runs = training seeds)."""
    import pandas as pd
    rng = np.random.default_rng(0)
    rows = []
    for p, level in scores.items():
        learned = p.startswith("ppo")
        for sc in scenarios:
            for r in range(runs if learned else 1):
                for s in range(seeds):
                    score = level + 0.01 * rng.standard_normal()
                    cost = 100.0 * (2.0 - score) if p != "oracle-static" else 10.0
                    rows.append({"policy": p, "run": f"seed{r}" if learned else "-", "scenario": sc,
                                 "seed": 1000 + s, "cost": 100.0 if p == "kernel-default" else cost,
                                 "score": 1.0 if p == "kernel-default" else score})
    return pd.DataFrame(rows)


def test_report_compares_the_best_learned_play_with_every_heuristic():
    from agents.fullreport import learned_vs_heuristics
    df = _episodes({"kernel-default": 1.0, "oracle-static": 1.9, "psi": 1.2, "v10-acked": 1.0,
                    "ppo": 1.1, "ppo-stochastic": 1.5})
    table, verdict = learned_vs_heuristics(df, ["ppo", "ppo-stochastic"], reps=200)
    assert "`ppo-stochastic` (stochastic play; 10 training runs)" in table
    assert "| psi |" in table and "| v10-acked |" in table and "| kernel-default |" not in table
    assert verdict.startswith("ppo-stochastic (stochastic play) vs every heuristic on 2 scenarios: beats 2 of 2")
    # the learned policy loses to psi: named in the verdict
    df = _episodes({"kernel-default": 1.0, "oracle-static": 1.9, "psi": 1.6, "v10-acked": 1.0, "ppo": 1.3})
    table, verdict = learned_vs_heuristics(df, ["ppo", "ppo-stochastic"], reps=200)
    assert "beats 1 of 2" in verdict and verdict.endswith("not every heuristic is beaten: psi")
    assert "(deterministic play" in table


def test_fullreport_reads_a_suite_and_names_a_missing_one(tmp_path, capsys, monkeypatch):
    from agents import fullreport
    monkeypatch.setattr(suites, "SUITE_DIR", tmp_path)
    assert fullreport.main(["--config", str(config.DEFAULT_CONFIG), "--scenarios", "suite:test",
                            "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "suite:test: no file" in err and not (tmp_path / "rep").exists()
