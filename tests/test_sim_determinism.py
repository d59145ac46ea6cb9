"""Determinism: same seed -> same counters to the page; machine i of a batch == that machine
alone with seed i (serial and prange drivers); different seeds differ."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim.scenario import load_scenario


def _run(scn, seeds, ticks=400, parallel=None):
    sim = Simulator(scn, n_machines=len(seeds), parallel=parallel)
    sim.reset(np.asarray(seeds))
    sim.advance(ticks)
    return sim


@pytest.fixture(scope="module")
def headline():
    return load_scenario("incast-pagecache")


def test_same_seed_same_counters(headline):
    a = _run(headline, [7])
    b = _run(headline, [7])
    assert np.array_equal(a.counters, b.counters)
    assert np.array_equal(a.zone_state, b.zone_state)
    assert a.counter("rx_packets")[0] > 0


def test_different_seeds_differ(headline):
    a = _run(headline, [7])
    b = _run(headline, [8])
    assert not np.array_equal(a.counters, b.counters)


@pytest.mark.parametrize("parallel", [False, True])
def test_batch_member_equals_machine_alone(headline, parallel):
    batch = _run(headline, [11, 12, 13, 14], parallel=parallel)
    alone = _run(headline, [13])
    assert np.array_equal(batch.counters[2], alone.counters[0])
    assert np.array_equal(batch.zone_state[2], alone.zone_state[0])
    assert np.array_equal(batch.boost[2], alone.boost[0])


def test_randomized_scenario_batch_equals_alone():
    scn = load_scenario("train-randomized")
    batch = _run(scn, [3, 4, 5], ticks=200)
    alone = _run(scn, [4], ticks=200)
    assert np.array_equal(batch.counters[1], alone.counters[0])
    assert np.array_equal(batch.wmark[1], alone.wmark[0])


def test_mixed_scenarios_in_one_batch(headline):
    quiet = load_scenario("quiet")
    sim = Simulator([headline, quiet], n_machines=2)
    sim.reset(np.array([1, 2]))
    sim.advance(300)
    alone = _run(quiet, [2], ticks=300)
    assert np.array_equal(sim.counters[1], alone.counters[0])


def test_autoreset_mask_resets_only_masked(headline):
    sim = Simulator(headline, n_machines=2)
    sim.reset(np.array([1, 2]))
    sim.advance(100)
    before = sim.counters[1].copy()
    sim.reset(np.array([5, 5]), mask=np.array([True, False]))
    assert sim.t_ms[0] == 0.0 and sim.t_ms[1] == 100.0
    assert np.array_equal(sim.counters[1], before)


_DIGEST = r"""
import hashlib, json, sys
import numpy as np
from atomgym.sim import Simulator
from atomgym.sim.scenario import list_scenarios, load_scenario
from atomgym.sim.tuners import TUNERS
out = {}
tuners = sorted(TUNERS)
for i, name in enumerate(list_scenarios()):
    sim = Simulator(load_scenario(name), n_machines=2, tuner=tuners[i % len(tuners)])
    sim.reset(np.array([3, 4]))
    sim.advance(700)
    sim.set_knobs(min_free_kbytes=np.array([-1, 4 * int(sim.min_free_kbytes[1])]), watermark_scale_factor=100)
    sim.step(700, boost_watermark=np.ones_like(sim.boost, dtype=np.int64))
    sim.advance(700)
    h = hashlib.sha256()
    for a in (sim.counters, sim.zone_state, sim.wmark, sim.boost):
        h.update(np.ascontiguousarray(a).tobytes())
    out[name] = h.hexdigest()[:16]
from atomgym.sim import engine
out["(step_machine)"] = type(engine.step_machine).__name__
print(json.dumps(out))
"""


def test_compiled_engine_equals_its_python_source():
    """Every shipped scenario (each with one of the in-kernel tuners) for 2.1 s of two machines, with
    knob writes and boosts after 0.7 s (sim/knobs.py, the fused step): the
    compiled engine and the same functions run as Python (NUMBA_DISABLE_JIT=1; kernel/jit.py,
    engine.make_state(), rng.state_row()) end with the same counters and zone state, bit for bit.
    numba's integer and float semantics (error_model="numpy", unsigned state indices, literal
    specialisation) change nothing the Python source says."""
    import json
    import os
    import subprocess
    import sys

    runs = {}
    for mode in ("1", "0"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=mode, ATOMGYM_COMPILE_NOTICE="0")
        r = subprocess.run([sys.executable, "-W", "ignore", "-c", _DIGEST], env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs["1"].pop("(step_machine)") == "function"          # the Python source ran
    assert runs["0"].pop("(step_machine)") == "_Dispatcher"       # the compiled engine ran
    assert len(runs["0"]) >= 18
    assert runs["1"] == runs["0"]
