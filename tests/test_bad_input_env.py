"""Bad arguments to the envs are a clear ValueError naming the argument and what is valid;
stepping past the end of an episode without a reset is an error (it used to simulate on)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from gymnasium.error import ResetNeeded

from atomgym.envs import AtomEnv, AtomVectorEnv
from atomgym.envs.sb3 import AtomSB3VecEnv

QUIET = "quiet"


@pytest.mark.parametrize("kw, needle", [
    ({"w_drops": float("nan")}, "w_drops: nan is out of range; valid range 0..1e+12"),
    ({"w_stall": float("inf")}, "w_stall: inf is out of range"),
    ({"w_stall": 10**400}, "w_stall: 1000"),                        # float() would raise OverflowError
    ({"w_reserved": -1e-3}, "w_reserved: -0.001 is out of range"),
    ({"w_knob": "0.01"}, "w_knob: expected a number, got str '0.01'"),
    ({"w_atomic_fail": True}, "w_atomic_fail: expected a number, got bool"),
    ({"deadlock_penalty": -100}, "deadlock_penalty: -100 is out of range"),
    ({"decision_interval_ms": "100"}, "decision_interval_ms: expected a number, got str '100'; valid range 10..10000 ms"),
    ({"decision_interval_ms": float("nan")}, "decision_interval_ms: nan is out of range"),
    ({"decision_interval_ms": 15.5}, "not a multiple of the scenario's tick"),
    ({"duration_s": "60"}, "duration_s: expected a number, got str '60'"),
    ({"duration_s": float("inf")}, "duration_s: inf is out of range"),
    ({"render_window": 0}, "render_window: 0 is out of range"),
    ({"compute_score": "yes"}, "compute_score: expected True or False"),
    ({"action_type": "binary"}, "action_type: 'binary' is not valid"),
    ({"reward_baseline": "kernel"}, "reward_baseline: 'kernel' is not valid"),
    ({"weights": [1, 2, 3]}, "weights: expected a mapping of term -> weight, got list [1, 2, 3]"),
    ({"weights": "drops"}, "weights: expected a mapping"),
])
def test_bad_env_arguments(kw, needle) -> None:
    with pytest.raises(ValueError) as e:
        AtomEnv(QUIET, **kw)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_numpy_numbers_are_still_accepted() -> None:
    env = AtomEnv(QUIET, decision_interval_ms=np.float64(100), w_drops=np.float32(1e-3), w_stall=np.int64(1))
    assert env.core.ticks == 100


@pytest.mark.parametrize("n, needle", [
    (1.5, "num_envs: expected an integer >= 1, got float 1.5"),
    (True, "num_envs: expected an integer >= 1, got bool True"),
    ("2", "num_envs: expected an integer >= 1, got str '2'"),
    (0, "num_envs: 0 is out of range"),
    (2**40, "num_envs: 1099511627776 is out of range; valid range 1..65536"),   # was an empty MemoryError
])
def test_vector_env_num_envs_must_be_a_positive_integer(n, needle) -> None:
    for cls in (AtomVectorEnv, AtomSB3VecEnv):
        with pytest.raises(ValueError) as e:
            cls(num_envs=n, scenario=QUIET)
        assert needle in str(e.value), str(e.value)
    assert AtomVectorEnv(num_envs=np.int64(2), scenario=QUIET).num_envs == 2


def test_vector_env_bad_max_episode_steps_and_weights() -> None:
    with pytest.raises(ValueError, match="max_episode_steps: expected an integer >= 1, got float 2.5"):
        AtomVectorEnv(num_envs=2, scenario=QUIET, max_episode_steps=2.5)
    with pytest.raises(ValueError, match="w_drops: nan is out of range"):
        AtomVectorEnv(num_envs=2, scenario=QUIET, w_drops=float("nan"))


def test_step_after_truncation_without_reset_is_an_error() -> None:
    """It used to simulate on past the scenario's end and re-emit the score."""
    env = AtomEnv(QUIET, duration_s=0.3, compute_score=False)
    env.reset(seed=0)
    ends = [env.step(0)[3] for _ in range(3)]
    assert ends == [False, False, True]
    t_end = float(env.sim.t_ms[0])
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step(0)
    assert float(env.sim.t_ms[0]) == t_end          # nothing simulated
    clone = pickle.loads(pickle.dumps(env))          # the flag survives pickling
    with pytest.raises(ResetNeeded):
        clone.step(0)
    env.reset(seed=1)
    env.step(0)                                      # fine again after a reset


def test_step_after_termination_without_reset_is_an_error(tmp_path) -> None:
    """A deadlock terminates; the old env kept applying writes afterwards and re-emitted the score."""
    p = tmp_path / "small.yaml"
    p.write_text("machine: {ram_mib: 1024}\nduration_s: 5\n")
    env = AtomEnv(p, action_type="continuous", compute_score=False)
    env.reset(seed=0)
    high = np.ones(3, np.float32)                    # min_free_kbytes 1 GiB on a 1 GiB machine: deadlock
    for _ in range(env.episode_steps):
        _, _, term, trunc, _ = env.step(high)
        if term or trunc:
            break
    assert term and not trunc
    with pytest.raises(ResetNeeded):
        env.step(high)


def test_a_scenario_built_in_code_is_validated_like_a_file() -> None:
    from atomgym.sim.scenario import Scenario, ScenarioError
    for kw, needle in (({"tick_ms": 0.0}, "tick_ms: 0 is out of range"), ({"duration_s": -1.0}, "duration_s"),
                       ({"tick_ms": float("nan")}, "tick_ms")):
        with pytest.raises(ScenarioError, match=needle):
            AtomEnv(Scenario(**kw))


def test_sb3_vec_env_names_a_wrong_action_shape() -> None:
    venv = AtomSB3VecEnv(num_envs=2, scenario=QUIET)
    venv.reset()
    with pytest.raises(ValueError, match=r"actions: expected 2 integers 0\.\.6"):
        venv.step(np.zeros(3, np.int64))


def test_float_actions_for_a_discrete_space_are_refused_alike_by_both_vector_envs() -> None:
    """AtomSB3VecEnv cast floats to int64 (2.7 played action 2) where AtomVectorEnv refused them:
    one rule, one message."""
    msgs = []
    for venv in (AtomVectorEnv(num_envs=2, scenario=QUIET), AtomSB3VecEnv(num_envs=2, scenario=QUIET)):
        venv.reset()
        for bad in (np.array([2.7, 0.0]), np.array([1.0, 2.0])):
            with pytest.raises(ValueError, match=r"actions: expected 2 integers 0\.\.6") as e:
                venv.step(bad)
            msgs.append(str(e.value))
    assert msgs[0] == msgs[2] and msgs[1] == msgs[3]
    sb3 = AtomSB3VecEnv(num_envs=2, scenario=QUIET)
    sb3.reset()
    sb3.step(np.array([[1], [2]], np.int64))          # SB3's (n, 1) integers still play
