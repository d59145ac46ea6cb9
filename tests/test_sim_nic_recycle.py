"""Page recycling in the NIC model (nic.py release_buffers / refill; encode.pool_capacity): page_pool's
alloc cache + ptr_ring (net/core/page_pool.c: __page_pool_put_page, page_pool_recycle_in_ring,
page_pool_alloc_pages) and ixgbe/i40e half-page reuse (*_can_reuse_rx_page, dev_page_is_reusable)."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim import layout as L
from atomgym.sim.encode import PP_ALLOC_CACHE_SIZE, pool_capacity
from atomgym.sim.scenario import ScenarioError, load_scenario, scenario_from_dict, scenario_to_dict


def _run(name: str, recycle, ms: int = 5000, seeds=(1, 2), drain_pps: float | None = None):
    s = load_scenario(name)
    for n in s.nics:
        n.recycle = recycle
        n.app_drain_pps = drain_pps or n.app_drain_pps
    sim = Simulator(s, n_machines=len(seeds))
    sim.reset(np.asarray(seeds, dtype=np.int64))
    sim.advance(ms)
    return sim


def test_pool_capacity_is_the_drivers():
    s = load_scenario("incast-pagecache")             # page_pool, 16 queues x 1024, 2 KiB buffers
    n = s.nics[0]
    n.recycle = None                                 # the driver's way (the shipped file says false)
    assert pool_capacity(n, 2, 1) == 16 * (PP_ALLOC_CACHE_SIZE + 512)
    d = load_scenario("memalloc-drops").nics[0]      # dev_alloc_pages, 16 x 512: the ring's pages
    d.recycle = None
    assert pool_capacity(d, 2, 1) == 16 * 256
    v = load_scenario("virtio-deferral").nics[0]
    assert pool_capacity(v, 2, 1) == 0               # virtio_net (6.1): no recycling
    n.recycle = False
    assert pool_capacity(n, 2, 1) == 0


def test_page_pool_refills_come_from_the_pool_and_spare_the_allocator():
    on, off = _run("incast-pagecache", None), _run("incast-pagecache", False)
    rec = on.counter("rx_pages_recycled")
    assert (rec > 0).all() and (off.counter("rx_pages_recycled") == 0).all()
    # the same packets arrive (traffic is the machine's own draw); most refills are recycled pages
    assert np.array_equal(on.counter("rx_packets") + on.counter("rx_missed"),
                          off.counter("rx_packets") + off.counter("rx_missed"))
    assert (on.counter("atomic_alloc_pages") < 0.5 * off.counter("atomic_alloc_pages")).all()
    assert (on.counter("atomic_fail") <= off.counter("atomic_fail")).all()
    ni, nf = on.field("ni"), on.field("nf")
    assert (ni[:, 0, L.NI_POOL] <= nf[:, 0, L.NP_POOL_CAP]).all()


def test_recycling_hides_pressure_only_while_the_reader_keeps_up():
    """memalloc-drops with a reader at 300 kpps: sockets back up, the pool runs dry in the bursts,
    dev_alloc_pages refills dip into the reserves and their packets are still dropped at the socket
    (pfmemalloc pages are not reusable, dev_page_is_reusable()), fewer than without recycling."""
    on = _run("memalloc-drops", None, ms=20000, drain_pps=3e5)
    off = _run("memalloc-drops", False, ms=20000, drain_pps=3e5)
    assert (on.counter("rx_pages_recycled") > 0).all()
    assert 0 < on.counter("pfmemalloc_drop").sum() < off.counter("pfmemalloc_drop").sum()


def test_shipped_scenarios_say_how_they_recycle():
    """Every shipped page_pool / dev_alloc_pages NIC states recycle: false (the model they were built
    and measured with; scripts/recycle_effect.py shows what recycling changes)."""
    from atomgym.sim.scenario import list_scenarios
    for name in list_scenarios():
        for n in load_scenario(name).nics:
            assert n.recycle is False or n.driver == "virtio_net", name


def test_virtio_cannot_recycle():
    d = scenario_to_dict(load_scenario("train-wide-virtio"))     # no snapshot file to resolve
    d["nics"][0]["recycle"] = True
    with pytest.raises(ScenarioError, match=r"nics\[0\]\.recycle.*virtio_net \(6\.1\) has no page recycling"):
        scenario_from_dict(d)
