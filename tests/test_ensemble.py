"""Trained models voting as one policy (``--policies LABEL=vote:GLOB``, episodes.VotePlayer)."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from agents import evaluate
from atomgym.agents import episodes
from atomgym.sim.scenario import load_scenario


def test_majority_or_action_zero():
    a = np.array([[1, 1, 2, 5], [1, 2, 2, 6], [3, 2, 2, 7]])   # (members, machines)
    assert episodes.majority(a).tolist() == [1, 2, 2, 0]
    assert episodes.majority(np.array([[1, 4], [2, 4]])).tolist() == [0, 4]     # 1 of 2 is no majority
    assert episodes.majority(np.array([[3], [3], [9], [9]])).tolist() == [0]    # a tie neither wins


class Fixed:
    """A player that always chooses one action on every machine."""

    def __init__(self, a: int, n: int) -> None:
        self.a, self.n = a, n

    def reset(self, obs, seed=None):
        pass

    def act(self):
        return np.full(self.n, self.a, np.int64)

    def probs(self):                       # all its mass on its action, of 20
        p = np.zeros((self.n, 20))
        p[:, self.a] = 1.0
        return p

    def observe(self, obs):
        pass


def _episodes(players, seeds=(3, 4)):
    sc = load_scenario("incast-pagecache")
    seeds = np.array(seeds, np.int64)
    player = episodes.VotePlayer(players) if isinstance(players, list) else players
    pol = episodes.ModelPolicy({"action_type": "relative", "decision_interval_ms": 1000}, sc, player)
    return episodes.run(pol, sc, seeds, 3.0)


def test_members_that_disagree_do_not_act_and_a_majority_acts_alone():
    n = 2
    nobody = _episodes(Fixed(0, n))                        # the boot setting throughout: the defaults
    raise8 = _episodes(Fixed(8, n))                        # 2x boot
    assert nobody != raise8
    assert _episodes([Fixed(4, n), Fixed(8, n), Fixed(12, n)]) == nobody
    assert _episodes([Fixed(8, n), Fixed(12, n), Fixed(8, n)]) == raise8
    with pytest.raises(ValueError, match="at least 2 members"):
        episodes.VotePlayer([Fixed(8, n)])
    # the mean of the members' probabilities: 8 has 2/3 of the mass, 12 a third
    assert _episodes(episodes.VotePlayer([Fixed(8, n), Fixed(12, n), Fixed(8, n)], "mean")) == raise8
    with pytest.raises(ValueError, match="valid: vote, mean"):
        episodes.VotePlayer([Fixed(8, n), Fixed(8, n)], "median")


def test_members_of_a_residual_vote_that_disagree_leave_psi_running():
    """For the residual action types the fallback is psi's own action (spaces.psi_action), so a
    vote without a majority plays psi (behind the gate: psi-gated), not the boot settings."""
    from atomgym.envs.spaces import RL_NAMES, psi_action
    assert psi_action("residual-level") == 16 and RL_NAMES[16].startswith("psi back-off x1, min_free_kbytes=psi's target,")
    assert psi_action("residual") == 8 and psi_action("relative") is None
    assert episodes.majority(np.array([[1, 4], [2, 4]]), 16).tolist() == [16, 4]
    sc = load_scenario("incast-pagecache")
    seeds = np.array([3, 4], np.int64)

    def play(player):
        pol = episodes.ModelPolicy({"action_type": "residual-level", "decision_interval_ms": 1000}, sc, player)
        return episodes.run(pol, sc, seeds, 3.0)
    n = 2
    psi = play(Fixed(16, n))
    assert psi != play(Fixed(0, n))
    assert play(episodes.VotePlayer([Fixed(4, n), Fixed(20, n), Fixed(40, n)], "vote", 16)) == psi
    assert play(episodes.VotePlayer([Fixed(4, n), Fixed(20, n), Fixed(40, n)])) == play(Fixed(0, n))


def _model(path, action_type="relative"):
    from stable_baselines3 import PPO

    from atomgym.envs.atom_env import AtomEnv
    env = AtomEnv("incast-pagecache", duration_s=1.0, action_type=action_type, decision_interval_ms=1000)
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", seed=0).save(path)
    path.with_suffix(".yml").write_text(f"algo: ppo\nenv: {{action_type: {action_type}, decision_interval_ms: 1000}}\n")


def test_a_vote_of_copies_plays_as_the_model_alone(tmp_path, capsys):
    _model(tmp_path / "m0.zip")
    for k in (1, 2):
        for ext in (".zip", ".yml"):
            shutil.copy(tmp_path / f"m0{ext}", tmp_path / f"m{k}{ext}")
    out = tmp_path / "ev"
    assert evaluate.main(["--policies", f"kernel-default,one={tmp_path / 'm0.zip'},vote:{tmp_path / 'm*.zip'},"
                          f"mean:{tmp_path / 'm*.zip'}",
                          "--scenarios", "incast-pagecache", "--seeds", "2", "--duration-s", "3", "--out", str(out),
                          "--no-oracle", "--no-summary"]) == 0
    rows = list(csv.DictReader(open(out / "episodes.csv")))
    one = {r["seed"]: r["cost"] for r in rows if r["policy"] == "one"}
    vote = {r["seed"]: r["cost"] for r in rows if r["policy"] == "vote"}
    mean = {r["seed"]: r["cost"] for r in rows if r["policy"] == "mean"}
    kd = {r["seed"]: r["cost"] for r in rows if r["policy"] == "kernel-default"}
    assert one == vote == mean and len(vote) == 2 and one != kd      # the model acts: not the defaults
    assert {r["run"] for r in rows if r["policy"] in ("vote", "mean")} == {"vote3", "mean3"}
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ONE vs best baseline")


def test_a_bad_vote_is_one_line(tmp_path, capsys):
    _model(tmp_path / "a.zip")
    _model(tmp_path / "b.zip", action_type="levels")
    for pattern, needle in ((tmp_path / "a*.zip", "needs 2 or more model .zip files"),
                            (tmp_path / "*.zip", "action_type 'levels'")):
        rc = evaluate.main(["--policies", f"vote:{pattern}", "--scenarios", "incast-pagecache", "--seeds", "1",
                            "--out", str(tmp_path / "ev")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_a_bare_pattern_matching_nothing_here_names_the_shipped_members(tmp_path, monkeypatch):
    """``mean:NAME-*.zip`` from any folder (an installed wheel too) plays the shipped members, as a
    bare NAME.zip plays the shipped policy; a pattern with a folder is taken as given."""
    from atomgym.agents.policies import parse_policies
    from atomgym.agents.usage import UsageError
    from atomgym.paths import PRETRAINED_DIR
    monkeypatch.chdir(tmp_path)
    (spec,) = parse_policies("m=mean:benchmark-curriculum-cut-*.zip")
    assert spec.kind == "ensemble" and len(spec.paths) == 10
    assert all(p.parent == PRETRAINED_DIR for p in spec.paths)
    with pytest.raises(UsageError, match="matches 0"):
        parse_policies("m=mean:sub/benchmark-curriculum-cut-*.zip")
