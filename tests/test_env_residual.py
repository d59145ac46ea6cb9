"""action_type="residual": a learned residual on the psi controller (envs/psi.py), whose back-off
the agent scales each decision (spaces.RES_MULT) while psi keeps running."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.agents import baselines
from atomgym.envs.atom_env import AtomEnv
from atomgym.envs.psi import psi_step
from atomgym.envs.spaces import REL_WSF, RES_MULT, RES_NAMES, RES_POINTS
from atomgym.sim import Simulator

PSI_AS_IS = RES_POINTS.index(((1, 1), -1))      # "psi back-off x1, watermark_scale_factor=boot"


def _psi_reference(mf, p, t, quiet, floor, cap, mult):
    """psi's rule for one machine, as its docstring states it (agents/baselines Psi)."""
    if p > 0:
        quiet = t
        f = min(0.5, 0.05 * np.log2(1.0 + p)) * mult
        new = min(max(int(mf * (1.0 + f)), mf + 1), cap)
        return (new, quiet) if mult > 0 and new > mf else (mf, quiet)
    if t - quiet >= 10000.0 and mf > floor:
        return max(int(mf * 0.98), floor), quiet
    return mf, quiet


def test_psi_step_is_the_stated_rule():
    rng = np.random.default_rng(3)
    B = 400
    mf = rng.integers(128, 200000, B)
    p = np.where(rng.random(B) < 0.5, 0, rng.integers(1, 10**6, B)).astype(float)
    t = rng.uniform(0, 60000, B)
    quiet = t - rng.uniform(0, 20000, B)
    floor = np.minimum(mf, rng.integers(128, 100000, B))
    cap = rng.integers(1000, 300000, B)
    for mult in (0.0, 0.5, 1.0, 2.0, 4.0):
        q = quiet.copy()
        new, write, up = psi_step(mf, p, t, q, floor, cap, mult)
        for i in range(B):
            want, wq = _psi_reference(int(mf[i]), p[i], t[i], quiet[i], int(floor[i]), int(cap[i]), mult)
            assert (new[i], q[i]) == (want, wq), (mult, i)
            assert write[i] == (want != mf[i])
        assert not (up & (p == 0)).any()


def _psi_gated_on_simulator(scenario: str, seed: int, steps: int) -> tuple[list[int], np.ndarray]:
    """psi-gated as agents.evaluate runs it: on a Simulator, deciding every 1 s."""
    env = AtomEnv(scenario, action_type="residual", gate="drops", decision_interval_ms=1000.0)
    sim = Simulator(env.unwrapped.core.scenario, n_machines=1)
    sim.reset(np.array([seed]))
    pol = baselines.get("psi-gated")
    pol.reset(sim)
    mfs = []
    for k in range(steps):
        mfs.append(int(sim.min_free_kbytes[0]))     # the value in force over interval k
        sim.advance(env.unwrapped.core.ticks)
        if k < steps - 1:
            pol.act(sim)
    return mfs, sim.counters[0].copy()


def assert_plays_psi_gated(scenario: str, action_type: str, action: int, each=None, steps: int = 12) -> None:
    """``action`` on every decision of an ``action_type`` env behind gate="drops" writes what
    psi-gated writes, decision for decision, with the same counters (memalloc-drops: the gate
    opens and psi raises; incast-pagecache: only socket drops and failures, the gate stays shut and
    nothing is written). ``each(core, written)``: a further check after every decision."""
    want_mf, want_ctr = _psi_gated_on_simulator(scenario, 7, steps)
    env = AtomEnv(scenario, action_type=action_type, gate="drops", decision_interval_ms=1000.0)
    env.reset(options={"sim_seed": 7})
    core = env.unwrapped.core
    got = []
    for _ in range(steps):
        env.step(action)
        got.append(int(core.sim.min_free_kbytes[0]))   # the value in force over the interval just run
        if each is not None:
            each(core, got[-1])
    assert got == want_mf
    names = core.sim.counter_names   # min_free_seen: the lowest free of the env's interval (reset per step)
    assert {n: v for n, v in zip(names, core.sim.counters[0]) if n != "min_free_seen"} == \
        {n: v for n, v in zip(names, want_ctr) if n != "min_free_seen"}
    if scenario == "memalloc-drops":
        assert max(got) > got[0]          # the gate opened and psi raised
    else:
        assert set(got) == {got[0]} and core.sim.counter("knob_writes")[0] == 0


@pytest.mark.parametrize("scenario", ["memalloc-drops", "incast-pagecache"])
def test_the_residual_at_x1_behind_the_gate_is_psi_gated(scenario):
    """The action "psi back-off x1, boot wsf" on every decision, behind gate="drops", is psi-gated."""
    assert_plays_psi_gated(scenario, "residual", PSI_AS_IS)


def test_residual_multipliers_scale_the_raise():
    """On memalloc-drops, once the gate is open, x4 raises at least as much as x1, and x0 never
    raises; every action's names say what it does."""
    assert len(RES_NAMES) == len(RES_MULT) * len(REL_WSF) == 20
    finals = {}
    for m in ((0, 1), (1, 1), (4, 1)):
        env = AtomEnv("memalloc-drops", action_type="residual", gate="drops", decision_interval_ms=1000.0)
        env.reset(options={"sim_seed": 7})
        a = RES_POINTS.index((m, -1))
        for _ in range(10):
            env.step(a)
        finals[m] = int(env.unwrapped.core.sim.min_free_kbytes[0])
    assert finals[(4, 1)] > finals[(1, 1)] > finals[(0, 1)]
    env = AtomEnv("memalloc-drops", action_type="residual", gate="drops", decision_interval_ms=1000.0)
    env.reset(options={"sim_seed": 7})
    assert finals[(0, 1)] == int(env.unwrapped.core.sim.min_free_kbytes[0])   # x0: never above boot
    assert "psi back-off x4" in RES_NAMES[RES_POINTS.index(((4, 1), 300))]
