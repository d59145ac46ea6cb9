"""Files a user hands us run no code, are not followed where we did not put them, and are not echoed:
pickle payloads in a model .zip and in an old statistics .pkl (through the real CLIs), shipped
policies checked against their digests, symbolic links planted in output folders, names that would
become paths, and files a scenario or an episode record names outside its folder."""
from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from atomgym import paths, safefiles
from atomgym.agents import evaluate, normstats, pretrained, safeload
from atomgym.agents import checkpoints, config, models, oracle

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = paths.PRETRAINED_DIR / "benchmark-ppo.zip"


class _Payload:
    """Unpickled, it creates the marker file (as a payload running a shell command would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(_Payload(marker))).decode()


def _evil_zip(src: Path, dst: Path, payloads: dict[str, Path]) -> None:
    """``src`` with data[key] replaced by a pickle payload that creates ``payloads[key]`` (its
    plain description kept), for each key."""
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    data = json.loads(entries["data"])
    for key, marker in payloads.items():
        desc = dict(data.get(key) or {":type:": "<class 'object'>"})
        desc[":serialized:"] = _payload(marker)
        data[key] = desc
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)


def _model_dir(tmp_path: Path, name: str = "evil") -> Path:
    """A copy of the shipped policy under another name (not in the shipped folder: no digest check)."""
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    (d / f"{name}.yml").write_bytes(SHIPPED.with_suffix(".yml").read_bytes())
    (d / f"{name}.vecnormalize.npz").write_bytes(normstats.stats_path(SHIPPED).read_bytes())
    return d


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd or ROOT,
                          timeout=600)


EVAL = ("--scenarios", "quiet", "--seeds", "1", "--duration-s", "0.2", "--no-oracle", "--no-summary")


# ---- model .zip: nothing in it is unpickled ----------------------------------------------------------
# The keys SB3 would unpickle and atomgym rebuilds from the model's config, poisoned together (one
# evaluate and one replay for all: each payload has its own marker), and a key nothing rebuilds.
REBUILT = ("observation_space", "lr_schedule", "policy_class")


@pytest.mark.parametrize("keys", [REBUILT, ("some_new_key",)], ids=["rebuilt-keys", "some_new_key"])
def test_a_pickle_payload_in_a_model_zip_never_runs(tmp_path, keys):
    markers = {k: tmp_path / f"PWNED-{k}" for k in keys}
    d = _model_dir(tmp_path)
    _evil_zip(SHIPPED, d / "evil.zip", markers)
    refused = keys == ("some_new_key",)
    r = _cli("-m", "agents.evaluate", "--policies", str(d / "evil.zip"), *EVAL, "--out", str(tmp_path / "ev"))
    assert not any(m.exists() for m in markers.values()), r.stderr
    if refused:                          # a serialized key nothing rebuilds: refused, one line
        assert r.returncode == 2 and "data.some_new_key is a pickled object" in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    else:                                # rebuilt from the config: the model loads safely and plays
        assert r.returncode == 0, r.stderr
    # replay --save records with the same loader
    r = _cli("-m", "agents.replay", str(tmp_path / "rec.json"), "--save", "--policy", str(d / "evil.zip"),
             "--scenario", "quiet", "--duration-s", "0.2")
    assert not any(m.exists() for m in markers.values()) and r.returncode == (2 if refused else 0), r.stderr


def test_every_serialized_key_is_supplied_and_spaces_must_fit(tmp_path):
    data = safeload.read_data(SHIPPED)
    obs, act = safeload.spaces_of(models.load_model(SHIPPED).env_kw)
    objs = safeload.custom_objects(SHIPPED, data, "ppo", obs, act)
    assert set(objs) == set(safeload.serialized_keys(data))      # SB3 unpickles nothing
    assert objs["clip_range"] == 0.2 and objs["observation_space"] == obs
    # a model whose spaces are not what its config builds is refused before anything is loaded
    other_obs, _ = safeload.spaces_of({"observation": "basic"})
    with pytest.raises(safeload.UnsafeModelError, match="observation_space is shape"):
        safeload.custom_objects(SHIPPED, data, "ppo", other_obs, act)
    # a non-constant schedule and a class policy_kwargs cannot name are refused
    bad = {**data, "lr_schedule": {":type:": "x", ":serialized:": "", "value_schedule": "LinearSchedule(...)"}}
    with pytest.raises(safeload.UnsafeModelError, match="not a constant schedule"):
        safeload.custom_objects(SHIPPED, bad, "ppo", obs, act)
    bad = {**data, "policy_kwargs": {":type:": "<class 'dict'>", ":serialized:": "", "x": "<class 'os.system'>"}}
    with pytest.raises(safeload.UnsafeModelError, match="policy_kwargs.x"):
        safeload.custom_objects(SHIPPED, bad, "ppo", obs, act)


def _write_identity(run):
    """The identity.json agents.train writes into a new run folder (--resume checks it first)."""
    checkpoints.write_run_identity(run, config.load_config(run / "config.yml"))


def test_train_resume_refuses_a_checkpoint_with_a_payload(tmp_path):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = yaml.safe_load(SHIPPED.with_suffix(".yml").read_text())
    cfg.update(scenario="quiet", n_envs=2, total_timesteps=20000, vec_normalize=False, env={**cfg["env"], "duration_s": 1})
    cfg["ppo"].update(n_steps=16, batch_size=16)
    cfg.pop("evaluate")
    (run / "config.yml").write_text(yaml.safe_dump(cfg))
    _write_identity(run)                     # a run agents.train made: its identity is recorded
    _evil_zip(SHIPPED, run / "checkpoints" / "model_16_steps.zip", {"env": marker})
    r = _cli("-m", "agents.train", "--resume", str(run), "--no-eval")
    assert not marker.exists() and r.returncode == 2, r.stderr
    assert "data.env is a pickled object" in r.stderr and "Traceback" not in r.stderr


# ---- statistics: plain arrays; an old pickle is refused, converted without running ------------------
def test_a_legacy_statistics_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    d = tmp_path / "models"
    d.mkdir()
    (d / "m.zip").write_bytes(SHIPPED.read_bytes())
    (d / "m.yml").write_bytes(SHIPPED.with_suffix(".yml").read_bytes())
    (d / "m.vecnormalize.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    r = _cli("-m", "agents.evaluate", "--policies", str(d / "m.zip"), *EVAL, "--out", str(tmp_path / "ev"))
    assert not marker.exists() and r.returncode == 2, r.stderr
    assert "old pickle format are not read" in r.stderr and "convert-stats" in r.stderr
    assert r.stderr.count("\n") == 1
    # the converter reads it with an unpickler that builds data only: the payload is refused
    r = _cli("-m", "agents.pretrained", "convert-stats", str(d / "m.vecnormalize.pkl"))
    assert not marker.exists() and r.returncode == 2 and "refused" in r.stderr, r.stderr
    assert not (d / "m.vecnormalize.npz").exists()


def test_convert_stats_reads_a_genuine_vecnormalize_pickle(tmp_path):
    import gymnasium
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    vn = VecNormalize(DummyVecEnv([lambda: gymnasium.make("CartPole-v1")]), clip_obs=7.0, gamma=0.9)
    vn.reset()
    for _ in range(20):
        vn.step(np.array([1]))
    pkl = tmp_path / "m.vecnormalize.pkl"
    vn.save(str(pkl))
    from atomgym.agents.pretrained.__main__ import main as pre
    assert pre(["convert-stats", str(pkl)]) == 0
    st = normstats.NormStats.read(tmp_path / "m.vecnormalize.npz")
    assert st.clip_obs == 7.0 and st.gamma == 0.9 and st.obs_count == vn.obs_rms.count
    o = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    assert np.array_equal(st.normalize_obs(o), vn.normalize_obs(o))
    assert pre(["convert-stats", str(pkl)]) == 2              # never overwrites


def test_statistics_file_is_checked(tmp_path):
    st = normstats.NormStats.read(normstats.stats_path(SHIPPED))
    arrays = st.arrays()
    for key, value, needle in [("obs_var", -np.ones(41), "negative variance"), ("clip_obs", np.array(np.nan), "finite"),
                               ("format", np.array("x"), "format"), ("obs_mean", np.zeros(3), "shape")]:
        p = tmp_path / f"{key}.npz"
        np.savez(p, **{**arrays, key: value})
        with pytest.raises(normstats.StatsError, match=needle):
            normstats.NormStats.read(p, st.observation_space or safeload.spaces_of({"observation": "memory"})[0])
    p = tmp_path / "obj.npz"                       # an object array (a pickle inside the npz) is not loaded
    np.savez(p, **{**arrays, "obs_mean": np.array([_Payload(tmp_path / "PWNED")], dtype=object)})
    with pytest.raises(normstats.StatsError, match="not a statistics file"):
        normstats.NormStats.read(p)
    assert not (tmp_path / "PWNED").exists()


# ---- shipped policies: digests -----------------------------------------------------------------------
def test_shipped_policy_is_checked_against_its_digests(tmp_path, monkeypatch):
    # every shipped file is recorded, and every recorded file is one of a shipped policy's
    shipped = {f.name for z in paths.PRETRAINED_DIR.glob("*.zip") for f in pretrained.shipped_files(z)}
    assert set(pretrained.read_manifest(paths.PRETRAINED_DIR)) == shipped
    assert {f.name for f in pretrained.shipped_files(SHIPPED)} <= shipped
    models.load_model(SHIPPED)                              # the files as shipped load
    fake = tmp_path / "pretrained"
    fake.mkdir()
    for f in pretrained.shipped_files(SHIPPED):
        (fake / f.name).write_bytes(f.read_bytes())
    (fake / pretrained.MANIFEST).write_bytes((paths.PRETRAINED_DIR / pretrained.MANIFEST).read_bytes())
    monkeypatch.setattr(paths, "PRETRAINED_DIR", fake)
    models.load_model(fake / "benchmark-ppo.zip")
    yml = fake / "benchmark-ppo.yml"
    yml.write_text(yml.read_text() + "# edited\n")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        models.load_model(fake / "benchmark-ppo.zip")
    (fake / "other.zip").write_bytes(SHIPPED.read_bytes())
    (fake / "other.yml").write_bytes(SHIPPED.with_suffix(".yml").read_bytes())
    with pytest.raises(ValueError, match="does not record"):
        models.load_model(fake / "other.zip")


# ---- links we did not make ---------------------------------------------------------------------------
def test_open_write_never_follows_a_link_or_opens_a_fifo(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link"
    link.symlink_to(victim)
    for kw in ({}, {"append": True}, {"exclusive": True}):
        with pytest.raises(safefiles.UnsafePathError, match="symbolic link"):
            safefiles.open_write(link, **kw)
    assert victim.read_text() == "precious"
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(safefiles.UnsafePathError, match="not a regular file"):
        safefiles.open_write(tmp_path / "fifo")
    safefiles.write_text(tmp_path / "f", "a")
    with safefiles.open_write(tmp_path / "f", append=True) as fh:
        fh.write("b")
    assert (tmp_path / "f").read_text() == "ab"
    with pytest.raises(FileExistsError):
        safefiles.write_text(tmp_path / "f", "c", exclusive=True)


@pytest.mark.parametrize("name", [".evaluate.lock", "actions.log"])
def test_evaluate_never_writes_through_a_planted_link(tmp_path, capsys, name):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    code = evaluate.main(["--policies", "kernel-default", *EVAL, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and victim.read_text() == "precious"
    assert err.count("\n") == 1 and name in err


def test_train_resume_never_appends_through_a_planted_link(tmp_path, capsys):
    from agents import train
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yml").write_text(yaml.safe_dump({"scenario": "quiet", "n_envs": 2, "total_timesteps": 16,
                                                    "env": {"duration_s": 1.0}, "ppo": {"n_steps": 8, "batch_size": 16}}))
    _write_identity(run)
    (run / "command.txt").symlink_to(victim)
    assert train.main(["--resume", str(run), "--no-eval"]) == 2
    assert victim.read_text() == "precious" and "symbolic link" in capsys.readouterr().err


# ---- names that would be paths; files named outside the folder ------------------------------------------
@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "x|y", ""])
def test_a_scenario_name_is_a_name(tmp_path, capsys, name):
    sc = tmp_path / "s.yaml"
    sc.write_text(yaml.safe_dump({"name": name, "duration_s": 0.2}))
    cache = tmp_path / "deep" / "cache"
    code = evaluate.main(["--policies", "best-static", "--scenarios", str(sc), "--seeds", "1", "--no-oracle",
                          "--no-summary", "--out", str(tmp_path / "o"), "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert code == 2 and "name:" in err and "allowed: letters, digits" in err and err.count("\n") == 1
    assert not list(tmp_path.rglob("*__*.json"))              # no cache file anywhere


def test_cache_paths_stay_in_their_folder(tmp_path):
    assert safefiles.inside(tmp_path, "a__1.json") == tmp_path / "a__1.json"
    for bad in ("../x", "a/../../x", "..", "/etc/x"):
        with pytest.raises(safefiles.UnsafePathError, match="outside"):
            safefiles.inside(tmp_path, bad)


def test_pretrained_export_name_is_a_name(tmp_path, capsys):
    from atomgym.agents.pretrained.__main__ import main as pre
    assert pre(["export", str(tmp_path), "../x"]) == 2
    assert "allowed: letters" in capsys.readouterr().err


SECRET = "root:x:0:0:SECRET-FIRST-LINE"


@pytest.mark.parametrize("key", ["snapshot", "trace"])
def test_a_scenario_cannot_name_a_file_outside_its_folder(tmp_path, key):
    from atomgym.sim.scenario import ScenarioError, load_scenario
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    d = tmp_path / "mine"
    d.mkdir()
    body = ({"machine": {"snapshot": "../secret.txt"}} if key == "snapshot" else
            {"traffic": [{"kind": "replay", "trace": str(secret)}]})
    (d / "s.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError, match="outside .*refused, not read") as e:
        load_scenario(d / "s.yaml")
    assert "SECRET" not in str(e.value)
    # inside its folder but not that kind of file: named by line, its content not shown
    (d / "notes.txt").write_text(SECRET + "\n")
    body = ({"machine": {"snapshot": "notes.txt"}} if key == "snapshot" else
            {"traffic": [{"kind": "replay", "trace": "notes.txt"}]})
    (d / "s.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError) as e:
        from atomgym.sim.simulator import Simulator
        Simulator(load_scenario(d / "s.yaml"), 1)
    assert "notes.txt:1" in str(e.value) and "SECRET" not in str(e.value)


def test_a_replay_record_cannot_read_a_file_outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    rec = tmp_path / "rec.json"
    r = _cli("-m", "agents.replay", str(rec), "--save", "--policy", "kernel-default", "--scenario", "quiet",
             "--duration-s", "0.2")
    assert r.returncode == 0, r.stderr
    ep = json.loads(rec.read_text())
    ep["scenario"]["machine"]["snapshot"] = str(secret)
    rec.write_text(json.dumps(ep))
    r = _cli("-m", "agents.replay", str(rec))
    assert r.returncode == 2 and "SECRET" not in r.stderr and "machine.snapshot" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_sb3_reads_tensors_with_weights_only():
    """The .pth entries of a model (policy, optimizers, pytorch_variables) are read by SB3's
    load_from_zip_file with torch.load(weights_only=True): tensors and plain containers only. An
    SB3 upgrade that changed this would make a model file able to run code again."""
    import inspect

    from stable_baselines3.common import save_util
    src = inspect.getsource(save_util.load_from_zip_file)
    loads = [ln.strip() for ln in src.splitlines() if "th.load(" in ln or "torch.load(" in ln]
    assert loads and all("weights_only=True" in ln for ln in loads), loads


def test_a_link_planted_in_the_cache_is_not_followed(tmp_path):
    from atomgym.sim.scenario import load_scenario
    sc, seeds = load_scenario("quiet"), np.array([5], np.int64)
    want = oracle.best_static(sc, seeds, 0.2, tmp_path)[:2]
    (cache,) = tmp_path.glob("quiet__*.json")
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"mf_kb": 1, "wsf": 1}))
    cache.unlink()
    cache.symlink_to(victim)
    assert oracle.best_static(sc, seeds, 0.2, tmp_path)[:2] == want      # recomputed, not read through the link
    assert json.loads(victim.read_text()) == {"mf_kb": 1, "wsf": 1} and not cache.is_symlink()
