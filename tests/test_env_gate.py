"""The action gate (``gate="drops"``, atomgym.envs.spaces.GATES): action 0 on a machine until its
first drop a reserve can prevent, then the agent's actions."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.envs import AtomEnv, AtomVectorEnv
from atomgym.envs.spaces import GATE_COUNTERS, REL_POINTS
from atomgym.sim.layout import COUNTER_NAMES

X4 = REL_POINTS.index(((4, 1), 300))
GATED = [COUNTER_NAMES.index(c) for c in GATE_COUNTERS["drops"]]


def _run(gate: str, action: int, n: int = 8, steps: int = 10):
    # seed 3: six of the eight draws drop a preventable packet within the first second (at various steps)
    venv = AtomVectorEnv(n, scenario="test-16g-devalloc-mmpp", duration_s=steps / 10, action_type="relative",
                         decision_interval_ms=100, gate=gate)
    venv.reset(seed=3)
    sim = venv.core.sim
    boot = sim.min_free_kbytes.astype(np.int64).copy()
    mf, opened, counters = [], [], [sim.counters.copy()]   # counters[0]: at reset
    for _ in range(steps):
        venv.step(np.full(n, action))
        mf.append(sim.min_free_kbytes.astype(np.int64).copy())
        opened.append(venv.core.gate_open.copy())
        counters.append(sim.counters.copy())
    return boot, np.array(mf), np.array(opened), np.array(counters)   # counters[k + 1]: after step k


def test_gate_holds_the_defaults_until_the_first_preventable_drop():
    boot, _, _, ref = _run("none", 0)                  # the defaults: no knob is ever written
    boot_g, mf, opened, got = _run("drops", X4)         # an agent that always asks for 4x boot
    assert np.array_equal(boot, boot_g)
    lost = ref[:, :, GATED].sum(axis=2)                 # (1 + steps, machines) cumulative preventable drops
    n_open = 0
    for i in range(len(boot)):
        first = np.flatnonzero(lost[1:, i] > lost[0, i])   # steps after which a drop had happened
        if first.size == 0:     # never a preventable drop: the machine ran its defaults throughout
            assert not opened[:, i].any()
            assert np.array_equal(got[:, i], ref[:, i]) and np.all(mf[:, i] == boot[i])
            continue
        n_open += 1
        k = int(first[0]) + 1   # the gate opens at the decision after the interval with the drop
        assert not opened[:k, i].any() and opened[k:, i].all()
        assert np.all(mf[:k, i] == boot[i]) and np.array_equal(got[:k + 1, i], ref[:k + 1, i])
        assert np.all(mf[k:, i] == 4 * boot[i])
    assert 0 < n_open < len(boot), "the draw should hold both kinds of machine"


def test_a_machine_without_preventable_drops_scores_exactly_the_defaults():
    env = AtomEnv("incast-pagecache", duration_s=2.0, action_type="relative", observation="memory",
                  decision_interval_ms=100, gate="drops", reward_baseline="score")
    env.reset(seed=5)
    total, done = 0.0, False
    while not done:
        _, r, term, trunc, info = env.step(X4)
        total += r
        done = term or trunc
    assert not env.core.gate_open[0]     # incast-pagecache drops nothing it could prevent in 2 s
    assert info["score"] == pytest.approx(1.0, abs=1e-12) and total == pytest.approx(0.0, abs=1e-12)


def test_gate_is_pickled_with_the_env_state():
    venv = AtomVectorEnv(4, scenario="train-randomized", duration_s=3.0, action_type="relative",
                         decision_interval_ms=100, gate="drops")
    venv.reset(seed=11)
    for _ in range(15):
        venv.step(np.full(4, X4))
    snap = venv.core.snapshot()
    base, was = venv.core.gate_base.copy(), venv.core.gate_open.copy()
    venv.reset(seed=12)
    assert not venv.core.gate_open.any()
    venv.core.restore(snap)
    assert np.array_equal(venv.core.gate_base, base) and np.array_equal(venv.core.gate_open, was)


@pytest.mark.parametrize("kw, msg", [
    ({"gate": "always"}, "gate: 'always' is not valid; choices: none, drops"),
    ({"gate": "drops", "action_type": "continuous"}, "action_type 'continuous' has none"),
])
def test_bad_gate_is_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        AtomEnv("incast-pagecache", duration_s=1.0, **kw)


def test_the_shipped_gated_policy_plays_the_defaults_where_nothing_drops():
    # benchmark-gated-ppo (atomgym/agents/pretrained/README.md) acts behind the gate: on the quiet
    # scenario no packet is lost to memory, so its episodes are the defaults' counter for counter
    from atomgym.agents import baselines, evaluate, models
    from atomgym.paths import PRETRAINED_DIR
    from atomgym.sim.scenario import load_scenario
    path = PRETRAINED_DIR / "benchmark-gated-ppo.zip"
    lm = models.load_model(path)                      # digests checked against SHA256SUMS
    assert lm.env_kw["gate"] == "drops" and lm.env_kw["action_type"] == "relative"
    sc, seeds = load_scenario("quiet"), np.array([1, 2], np.int64)
    got, _ = models.run_model(path, sc, seeds, 5.0)
    ref = evaluate.run_policy(baselines.get("kernel-default"), sc, seeds, 5.0)
    assert got == ref
