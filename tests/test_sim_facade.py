"""The Simulator facade contract (docs/design.md): shapes, counter names, knob semantics."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim import Simulator
from atomgym.sim.scenario import load_scenario

REQUIRED = ["pgalloc_normal", "pgalloc_dma32", "allocstall_normal", "pgscan_kswapd", "pgsteal_kswapd",
            "pgscan_direct", "pgsteal_direct", "pageoutrun", "kswapd_low_wmark_hit_quickly",
            "kswapd_high_wmark_hit_quickly", "kswapd_wakeups", "oom_kill", "rx_packets", "rx_missed",
            "rcvbuf_drop", "pfmemalloc_drop", "atomic_fail", "atomic_fail_normal", "fail_atomic", "fail_kernel",
            "fail_nowait", "fail_memalloc", "refill_deferred", "direct_reclaim_stall_us", "refaults",
            "reserved_mib_ms", "min_free_seen", "knob_writes", "tuner_actions"]


@pytest.fixture(scope="module")
def sim():
    s = Simulator(load_scenario("quiet"), n_machines=3)
    s.reset(np.array([1, 2, 3]))
    return s


def test_shapes_and_names(sim):
    B, Z = 3, sim.n_zones
    assert Z == 5 * sim.n_nodes
    assert sim.free.shape == (B, Z) and sim.wmark.shape == (B, Z, 4) and sim.boost.shape == (B, Z)
    assert sim.reserve.shape == (B, Z, 5) and sim.managed.shape == (B, Z) and sim.reclaimable.shape == (B, Z)
    assert sim.kswapd_awake.shape == (B, sim.n_nodes) and sim.terminated.shape == (B,)
    assert sim.counters.shape == (B, len(sim.counter_names))
    for n in REQUIRED:
        assert n in sim.counter_names, n
    assert sim.counter("rx_packets").shape == (B,)
    with pytest.raises(KeyError, match="unknown counter"):
        sim.counter("nope")
    assert len(sim.zone_names) == Z and sim.tick_ms == 1.0


def test_knob_writes_follow_the_sysctl_handlers(sim):
    sim.advance(10)
    m = sim.machine(0)
    z = np.zeros((3, sim.n_zones), np.int64)
    z[:, 2] = 1
    sim.set_knobs(boost_watermark=z)
    assert (sim.boost[:, 2] == 512).all()
    # watermark_boost_factor: stored only, nothing recomputed (boost stays)
    sim.set_knobs(watermark_boost_factor=np.array([0, -1, -1]))
    assert sim.watermark_boost_factor.tolist() == [0, 15000, 15000] and sim.boost[0, 2] == 512
    # min_free_kbytes: the Machine's own sysctl write gives the same watermarks, boosts cleared
    m.write("vm.min_free_kbytes", 90000)
    sim.set_knobs(min_free_kbytes=np.array([90000, -1, -1]))
    assert np.array_equal(sim.wmark[0, :m.managed.size], m.wmark) and sim.boost[0].sum() == 0
    assert sim.boost[1, 2] == 512 and sim.min_free_kbytes[0] == 90000
    assert sim.machine(0).zone_rows()[2]["min"] == m.zone_rows()[2]["min"]
    m.write("vm.watermark_scale_factor", 200)
    sim.set_knobs(watermark_scale_factor=np.array([200, -1, -1]))
    assert np.array_equal(sim.wmark[0, :m.managed.size], m.wmark)
    assert sim.counter("knob_writes").tolist() == [3, 0, 0]


def test_bad_knob_values_are_clear_errors(sim):
    with pytest.raises(ValueError, match=r"watermark_scale_factor: 5000 is out of range; valid range 1\.\.3000"):
        sim.set_knobs(watermark_scale_factor=5000)
    with pytest.raises(ValueError, match="unknown tuner"):
        Simulator(load_scenario("quiet"), tuner="v99")


def test_quiet_scenario_stays_quiet():
    sim = Simulator(load_scenario("quiet"), n_machines=3)
    sim.reset(np.array([1, 2, 3]))
    sim.advance(10)
    sim.advance(2000)
    for n in ("atomic_fail", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "oom_kill", "direct_reclaim_stall_us"):
        assert (sim.counter(n) == 0).all(), n
    assert (sim.counter("rx_packets") > 0).all()
    assert (sim.t_ms == 2010.0).all()
    assert sim.nbytes > 0


def test_bench_json_smoke(capsys, tmp_path, monkeypatch):
    import json
    import tempfile

    from atomgym.bench import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # where SB3 puts a model's default logger
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    assert main(["--json", "--ticks", "2000", "--batch", "4", "--batch-ticks", "50", "--cartpole-steps", "500",
                 "--env-steps", "30", "--env-batch-steps", "2", "--repeat", "2", "--skip-cold",
                 "--ppo-steps", "64"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sb3_ppo_atom_fps"] > 0 and res["sb3_ppo_cartpole_fps"] > 0
    paired = sorted(a / c for a, c in zip(res["runs"]["ppo_atom"], res["runs"]["ppo_cartpole"]))
    assert res["sb3_ppo_vs_cartpole"] == pytest.approx((paired[0] + paired[1]) / 2)   # median of the rounds' ratios
    assert "first_step_cold_s" not in res
    for k in ("single_ticks_per_s", "batch_ticks_per_s", "cartpole_steps_per_s", "batch_state_mib",
              "env_single_steps_per_s", "env_single_short_steps_per_s"):
        assert res[k] > 0, k
    assert res["repeat"] == 2 and len(res["runs"]["single"]) == 2
    assert res["short_interval_ms"] == 10.0
    assert min(res["runs"]["single"]) <= res["single_ticks_per_s"] <= max(res["runs"]["single"])
    assert res["single_window_ticks_per_s"] > 0 and len(res["runs"]["single_window"]) == 2
    ratios = sorted(b / w for b, w in zip(res["runs"]["batch"], res["runs"]["single_window"]))
    assert res["batch_vs_single"] == pytest.approx((ratios[0] + ratios[1]) / 2)   # median of the rounds' ratios
    assert not list(tmp_path.glob("SB3-*"))    # no empty SB3-<date> folder per learn() (envs.sb3.quiet_logger())
    assert main(["--scenario", "no-such-scenario"]) == 2
    assert main(["--repeat", "0"]) == 2


def test_bench_first_step_runs_in_a_fresh_process():
    """(f) of the bench: a fresh process makes, resets and steps the env against a given compile
    cache (here the warm one of this suite: the cold run of `atomgym.bench` itself takes minutes)."""
    from atomgym import bench
    from atomgym.kernel.jit import cache_root

    setup_s, step_s = bench._first_step("atomgym/IncastPagecache-v1", str(cache_root().parent))
    assert 0 < setup_s < 600 and 0 < step_s < 600


def test_rings_too_big_for_free_memory_come_out_of_the_page_cache():
    """Every draw of the training distribution boots (seeds 1000-1063 include draws of up to
    32 x 4096 descriptors over a 99 % full machine: more ring pages than free memory). The rings are
    filled when the interface comes up, so what free memory cannot hold comes out of the initial
    page cache; every managed page stays accounted for."""
    import dataclasses

    from atomgym.sim import layout as L
    sim = Simulator(load_scenario("train-randomized"), n_machines=64)
    sim.reset(np.arange(1000, 1064))
    sim.advance(5)
    assert (sim.free >= 0).all() and not sim.terminated.any()
    q = load_scenario("quiet")
    full = dataclasses.replace(q, memory=dataclasses.replace(q.memory, page_cache_frac=0.84, anon_frac=0.12,
                                                             kernel_frac=0.03))
    big = dataclasses.replace(full, nics=[dataclasses.replace(full.nics[0], queues=32, ring_size=4096)])
    out = []
    for scen in (full, big):
        x = Simulator(scen, n_machines=1)
        x.reset([0])
        zs = x.zone_state[0]
        held = zs[:, list(L.ZF_POOLS)].sum()
        assert held == x.managed.sum()
        out.append((int(zs[:, L.ZF_FREE].sum()), int(zs[:, L.ZF_CACHE].sum()), int(zs[:, L.ZF_NET].sum())))
    (f0, c0, n0), (f1, c1, n1) = out
    assert n1 > n0 + f0, "the big rings must exceed free memory for this test to mean anything"
    assert f1 == 0 or c1 == c0           # free memory is used first ...
    assert c0 - c1 == (n1 - n0) - (f0 - f1) > 0   # ... then the page cache, page for page
