"""The one evaluation path (agents/episodes.py): a model played through it equals the same model
played through the Gymnasium env, step for step; batches equal lone machines; recorded actions
replay; samples fall where asked."""
import numpy as np
import pytest

from agents import baselines, episodes
from atomgym.envs import AtomEnv
from atomgym.sim.scenario import load_scenario
from atomgym.agents import models

SC = "incast-pagecache"
DUR = 2.0


def _model(kw: dict):
    from stable_baselines3 import PPO
    env = AtomEnv(SC, duration_s=DUR, **kw)
    import torch
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=3, device="cpu")
    with torch.no_grad():     # untrained, its output layer scaled up: actions that vary with the observation
        for p in model.policy.action_net.parameters():
            p.mul_(200.0)
        if hasattr(env.action_space, "n"):   # never the no-op / boot level: every episode writes knobs
            model.policy.action_net.bias[0] -= 1e4
    return model


class Spy(episodes.Player):
    """A Player that keeps every observation it was shown."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen: list[np.ndarray] = []

    def reset(self, obs, seed=None):
        self.seen.append(np.array(obs, np.float32).reshape(-1))
        return super().reset(obs, seed)

    def observe(self, obs):
        self.seen.append(np.array(obs, np.float32).reshape(-1))
        super().observe(obs)


def _env_episode(model, kw: dict, seed: int, deterministic: bool):
    """The model played through AtomEnv as a user would; the final counters and the actions."""
    env = AtomEnv(SC, duration_s=DUR, **kw)
    obs, _ = env.reset(seed=seed, options={"sim_seed": seed})
    player = Spy(model, deterministic=deterministic)
    player.reset(obs, seed=seed)
    acts, done = [], False
    while not done:
        a = player.act()
        acts.append(a.tolist() if np.ndim(a) else int(a))
        obs, _, term, trunc, _ = env.step(a)
        done = bool(term or trunc)
        if not done:
            player.observe(obs)
    return env.unwrapped.core.sim.counter_dict(0), acts, player.seen


KWS = [{"action_type": "discrete"}, {"action_type": "continuous"},
       {"action_type": "levels", "observation": "memory", "decision_interval_ms": 500.0}]


@pytest.mark.parametrize("kw", KWS, ids=lambda k: k["action_type"])
@pytest.mark.parametrize("deterministic", [True, False], ids=["deterministic", "stochastic"])
def test_model_on_the_path_equals_the_env(kw, deterministic):
    model = _model(kw)
    sc = load_scenario(SC)
    writes, acts = 0.0, set()
    for seed in (11, 12):
        want, want_acts, want_obs = _env_episode(model, kw, seed, deterministic)
        sims: list = []
        spy = Spy(model, deterministic=deterministic, n=1)
        pol = episodes.ModelPolicy(kw, sc, spy, record=True)
        episodes.run(pol, sc, np.array([seed]), DUR, sims=sims)
        assert len(spy.seen) == len(want_obs) == len(want_acts)
        for got, exp in zip(spy.seen, want_obs):
            np.testing.assert_array_equal(got, exp)
        assert pol.recorded[0] == want_acts
        assert sims[0].counter_dict(0) == want
        writes += want["knob_writes"] + want["boost_actions"]
        acts |= {str(a) for a in want_acts}
    assert writes > 0      # the model wrote knobs: the comparison means something
    assert len({o.tobytes() for o in want_obs}) > 2


def test_a_batch_of_seeds_equals_each_seed_alone():
    kw = KWS[0]
    model = _model(kw)
    sc = load_scenario(SC)
    seeds = np.array([21, 22, 23])
    together, _ = models.run_loaded(model, kw, sc, seeds, DUR)
    alone = [models.run_loaded(model, kw, sc, seeds[i:i + 1], DUR)[0][0] for i in range(3)]
    assert together == alone
    assert len({m["cost"] for m in together}) == 3


def test_recorded_actions_replay_to_the_same_counters():
    kw = KWS[1]
    model = _model(kw)
    sc = load_scenario(SC)
    sims: list = []
    pol = episodes.ModelPolicy(kw, sc, episodes.Player(model, n=1), record=True)
    episodes.run(pol, sc, np.array([5]), DUR, sims=sims)
    again: list = []
    episodes.run(episodes.ModelPolicy(kw, sc, episodes.ActionsPlayer(pol.recorded[0])), sc, np.array([5]), DUR,
                 sims=again)
    assert again[0].counter_dict(0) == sims[0].counter_dict(0)
    short = episodes.ModelPolicy(kw, sc, episodes.ActionsPlayer(pol.recorded[0][:3]))
    with pytest.raises(ValueError, match="holds 3 actions"):
        episodes.run(short, sc, np.array([5]), DUR)


def test_samples_and_decisions_fall_on_their_times():
    sc = load_scenario(SC)
    pol = baselines.get("psi")                     # decides every 1000 ms
    assert pol.interval_ms == 1000.0
    seen: list[float] = []
    decided: list[tuple[float, bool]] = []
    act = pol.act

    def spy(sim, first=False, last=False):
        decided.append((float(sim.t_ms[0]), last))
        return act(sim, first=first, last=last)

    pol.act = spy
    episodes.run(pol, sc, np.array([1]), 2.5, every_ms=300.0, on_sample=lambda s: seen.append(float(s.t_ms[0])))
    assert seen == [0.0, 300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0, 2100.0, 2400.0, 2500.0]
    assert decided == [(0.0, False), (1000.0, False), (2000.0, False), (2500.0, True)]
