"""The state declared once (sim/layout.py STATE): the Simulator's arrays, their order, dtypes and
shapes, the record widths and the named accessors all follow the table."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.scenario import load_scenario
from atomgym.sim.tuners import NTPAR, NTS


def test_allocate_follows_the_table():
    dims = {"B": 2, "Z": 10, "N": 2, "NN": 3, "NT": 4, "NW": 5, "TL": 6, "NTS": NTS, "NTPAR": NTPAR}
    arrays = L.allocate(dims)
    assert len(arrays) == len(L.STATE)
    for f, a in zip(L.STATE, arrays):
        assert a.dtype == np.dtype(f.dtype) and a.shape == L.shape_of(f, dims), f.name
        assert a.shape[0] == 2 and not a.any(), f.name
    assert arrays[L.STATE_INDEX["zs"]].shape == (2, 10, L.NZF)
    assert arrays[L.STATE_INDEX["tp"]].shape == (2, 4, len(L.TP_NAMES))
    with pytest.raises(ValueError, match=r"missing dimensions \['NTPAR', 'NTS'\]"):
        L.allocate({k: v for k, v in dims.items() if k not in ("NTS", "NTPAR")})
    assert set(d for f in L.STATE for d in f.shape if isinstance(d, str)) == set(L.DIMS)


def test_simulator_state_is_the_table():
    s = load_scenario("trace-replay")
    sim = Simulator(s, n_machines=2)
    assert len(sim.state) == len(L.STATE_FIELDS)
    for name, arr in zip(L.STATE_FIELDS, sim.state):
        assert sim.field(name) is arr
    assert sim.zone_state is sim.field("zs") and sim.counters is sim.field("ctr")
    assert sim.nic_pages is sim.field("nz") and sim.workload_anon_pages is sim.field("wz")
    assert sim.tuner_state is sim.field("ts")
    assert sim.field("mi").shape == (2, L.NMI) and sim.field("nd").shape == (2, sim.n_nodes, L.NND)
    assert sim.field("trace").shape[1] >= 1 and sim.field("ztype")[0].tolist() == [
        z % 5 for z in range(sim.n_zones)]
    with pytest.raises(KeyError, match="unknown state field 'mf'; valid: managed, wmark"):
        sim.field("mf")
    snap = sim.snapshot()
    assert [a.shape for a in snap["state"]] == [a.shape for a in sim.state]


def test_record_fields_are_unique_and_the_pools_sum_to_managed():
    for names in (L.ZF_NAMES, L.MI_NAMES, L.MR_NAMES, L.ND_NAMES, L.NI_NAMES, L.NP_NAMES, L.TP_NAMES,
                  L.WP_NAMES, L.COUNTER_NAMES):
        assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="duplicate"):
        L._index(("a", "b", "a"))
    # the traffic state no longer shares a slot between mmpp's on flag and incast's burst start
    assert L.TP_S_ON != L.TP_S_BURST_START
    sim = Simulator(load_scenario("quiet"), n_machines=1)
    sim.advance(20)
    zs = sim.zone_state[0]
    assert np.array_equal(zs[:, list(L.ZF_POOLS)].sum(axis=1), sim.managed[0])
    assert zs[:, L.ZF_FREE].sum() > 0 and zs[:, L.ZF_KERNEL].sum() > 0


def test_the_sysctls_follow_kernel_sysctl_ranges():
    """Every sysctl of kernel/sysctl.py SYSCTL_RANGES is a knob (sim/knobs.py KNOBS) stored in the
    machine integer of its name, readable as Simulator.sysctl(name) and as the booted Machine's
    attribute of that name, and settable by its name in set_knobs()."""
    from atomgym.kernel.sysctl import SYSCTL_RANGES
    from atomgym.sim.knobs import KNOB_MI, KNOB_WRITE_ORDER, KNOBS

    assert KNOBS == tuple(SYSCTL_RANGES) and sorted(KNOB_WRITE_ORDER) == list(range(len(KNOBS)))
    sim = Simulator(load_scenario("quiet"), n_machines=2)
    m = sim.machine(0)
    for k, name in enumerate(KNOBS):
        assert L.MI_NAMES[KNOB_MI[k]] == name
        assert sim.sysctl(name).tolist() == [getattr(m, name)] * 2, name
    assert sim.watermark_boost_factor.tolist() == [15000] * 2 and sim.watermark_boost_factor.base is not None
    sim.set_knobs(watermark_boost_factor=[0, -1], watermark_scale_factor=np.array([-1, 40]))
    assert sim.sysctl("watermark_boost_factor").tolist() == [0, 15000]
    assert sim.sysctl("watermark_scale_factor").tolist() == [m.watermark_scale_factor, 40]
    assert sim.machine(1).watermark_scale_factor == 40 and sim.counter("knob_writes").tolist() == [1, 1]
    with pytest.raises(KeyError, match="unknown sysctl 'wsf'; valid: min_free_kbytes, watermark_scale_factor"):
        sim.sysctl("wsf")
