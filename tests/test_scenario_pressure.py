"""The shipped scenarios do what their descriptions say, on the simulator (short runs).

Not golden numbers (those belong to the engine's tests): only the qualitative claims each
description makes, so that an engine change that silently removes the pressure is caught.
"""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim.scenario import load_scenario, scenario_from_dict, scenario_to_dict
from atomgym.sim.simulator import Simulator


def _run(name: str, seconds: float, seeds=(1,)) -> Simulator:
    d = scenario_to_dict(load_scenario(name))
    d["duration_s"] = seconds
    s = scenario_from_dict(d, source=load_scenario(name).source)
    sim = Simulator(s, n_machines=len(seeds))
    sim.reset(np.array(seeds, dtype=np.int64))
    sim.advance(int(seconds * 1000 / s.tick_ms))
    return sim


def test_quiet_nothing_fails():
    sim = _run("quiet", 10)
    for c in ("atomic_fail", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "allocstall_normal",
              "pgscan_direct", "kswapd_wakeups", "oom_kill"):
        assert sim.counter(c)[0] == 0, c
    assert sim.counter("rx_packets")[0] > 900_000


@pytest.mark.parametrize("name", ["incast-pagecache", "stream-read-bursts"])
def test_burst_scenarios_fail_atomic(name):
    sim = _run(name, 10)
    assert sim.counter("atomic_fail")[0] > 0
    assert sim.counter("oom_kill")[0] == 0


def test_memalloc_drops_at_socket_not_in_allocator():
    sim = _run("memalloc-drops", 10)
    assert sim.counter("pfmemalloc_drop")[0] > 0
    assert sim.counter("atomic_fail")[0] == 0


def test_virtio_defers_refills():
    sim = _run("virtio-deferral", 20)
    assert sim.counter("refill_deferred")[0] > 0 and sim.counter("atomic_fail")[0] > 0
