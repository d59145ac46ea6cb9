"""Userspace/static baselines: registry, decisions on crafted observations, SB3 predict()."""
from __future__ import annotations

import numpy as np
import pytest

from agents import baselines
from atomgym.sim.tuners import TUNERS


def _obs(B=2, mf=10000, boot=None, free=100000, min_pages=2500, fail=0.0, drops=0.0, t=0.0, wsf=10, total=2_000_000,
         gate=0.0):
    return {"t_ms": np.full(B, t), "min_free_kbytes": np.full(B, mf, np.int64),
            "watermark_scale_factor": np.full(B, wsf, np.int64), "total_pages": np.full(B, total, np.int64),
            "free_pages": np.full(B, free, np.int64), "min_pages": np.full(B, min_pages, np.int64),
            "low_pages": np.full(B, min_pages * 5 // 4, np.int64), "high_pages": np.full(B, min_pages * 3 // 2, np.int64),
            "atomic_fail": np.full(B, fail), "fail_kernel": np.zeros(B), "drops": np.full(B, drops),
            "gate_drops": np.broadcast_to(np.asarray(gate, np.float64), (B,)).copy(),
            "default_min_free_kbytes": np.full(B, mf if boot is None else boot, np.int64)}


def test_registry_names_and_unknown():
    n = baselines.names()
    for name in ("kernel-default", "tuned-hpc", "three-percent", "best-static", "v1-double", "v2-grow-decay",
                 "v3-boost", "v4-soft-boost", "v10-acked", "proactive", "wsf-raise", "psi", "psi-drops", "psi-gated"):
        assert name in n
    for name in n:
        p = baselines.get(name)
        assert p.name == name and p.tuner in TUNERS and p.mechanism and p.source
    assert baselines.get("v3-boost").tuner == "v3-boost"
    with pytest.raises(ValueError, match="valid: kernel-default"):
        baselines.get("v11")


def test_static_predict_writes_once():
    p = baselines.get("tuned-hpc")
    a, st = p.predict(_obs(), episode_start=np.array([True, True]))
    assert a.shape == (2, 2) and (a[:, 0] == 135168).all() and (a[:, 1] == -1).all()
    a, _ = p.predict(_obs(), st, episode_start=np.array([False, False]))
    assert (a == -1).all()
    a, _ = baselines.get("three-percent").predict(_obs(), episode_start=np.array([True, True]))
    assert (a[:, 0] == 2_000_000 * 4 * 3 // 100).all()
    a, _ = baselines.get("kernel-default").predict(_obs(), episode_start=np.array([True, True]))
    assert (a == -1).all()


def test_proactive_raises_15_percent_only_near_the_limit():
    p = baselines.get("proactive")
    a, st = p.predict(_obs(free=2751))                  # 2751 > 1.1 x 2500
    assert (a == -1).all()
    a, _ = p.predict(_obs(free=2750), st)
    assert (a[:, 0] == 11500).all()
    a, _ = p.predict(_obs(free=100, mf=239000), st)     # cap 3 % RAM = 240000 kB
    assert (a[:, 0] == 240000).all()


def test_wsf_raise_doubles_on_failure_and_decays_after_60s_quiet():
    p = baselines.get("wsf-raise")
    a, st = p.predict(_obs(fail=0, t=0))
    a, st = p.predict(_obs(fail=5, t=1000), st)
    assert (a[:, 1] == 20).all()
    a, st = p.predict(_obs(fail=5, t=30000, wsf=20), st)
    assert (a == -1).all()
    a, st = p.predict(_obs(fail=5, t=61000, wsf=20), st)
    assert (a[:, 1] == 18).all()                         # -10 %, floor = boot value 10


def test_psi_backs_off_on_pressure_and_probes_down_when_quiet():
    p = baselines.get("psi")
    a, st = p.predict(_obs(fail=0, t=0))
    a, st = p.predict(_obs(fail=1023, t=1000), st)      # 0.05 x log2(1024) = 0.5 (the bound)
    assert (a[:, 0] == 15000).all()
    a, st = p.predict(_obs(mf=15000, boot=10000, fail=1023, t=5000), st)
    assert (a == -1).all()                              # no pressure, not yet 10 s quiet
    a, st = p.predict(_obs(mf=15000, boot=10000, fail=1023, t=11000), st)
    assert (a[:, 0] == 14700).all()                     # probe down 2 %
    o = _obs(mf=10000, fail=1023, t=30000)
    a, st = p.predict(o, st)
    assert (a == -1).all()                              # floor: the boot value


def test_predict_first_call_without_episode_start_applies_static_write():
    a, st = baselines.get("tuned-hpc").predict(_obs())
    assert (a[:, 0] == 135168).all()
    a, _ = baselines.get("tuned-hpc").predict(_obs(), st)
    assert (a == -1).all()


def test_blind_raises_double_the_boot_value_or_take_one_percent():
    a, _ = baselines.get("double-boot").predict(_obs(mf=67584), episode_start=np.array([True, True]))
    assert (a[:, 0] == 2 * 67584).all() and (a[:, 1] == -1).all()     # the oracle grid's "x2" point
    a, _ = baselines.get("one-percent").predict(_obs(), episode_start=np.array([True, True]))
    assert (a[:, 0] == 2_000_000 * 4 // 100).all()


def test_psi_gated_is_psi_from_the_first_preventable_drop_on():
    p, q = baselines.get("psi-gated"), baselines.get("psi")
    a, st = p.predict(_obs(fail=0, drops=0, t=0))
    b, sq = q.predict(_obs(fail=0, drops=0, t=0))
    # socket drops (a slow application) and failures: psi raises, the gate stays shut
    a, st = p.predict(_obs(fail=5000, drops=1023, t=1000), st)
    b, sq = q.predict(_obs(fail=5000, drops=1023, t=1000), sq)
    assert (a == -1).all() and (b[:, 0] > 10000).all()
    # machine 1 drops a packet at its ring: it opens at this decision (as Core.hold), machine 0 stays shut
    a, st = p.predict(_obs(fail=9000, drops=3000, t=2000, gate=[0, 1]), st)
    b, sq = q.predict(_obs(fail=9000, drops=3000, t=2000, gate=[0, 1]), sq)
    assert a[0, 0] == -1 and a[1, 0] == b[1, 0] > 10000
    # a fresh episode shuts it again
    a, st = p.predict(_obs(fail=0, drops=0, t=0), st, episode_start=np.ones(2, bool))
    assert not st["open"].any()


def test_psi_drops_ignores_failures_that_drop_nothing():
    p = baselines.get("psi-drops")
    a, st = p.predict(_obs(fail=0, drops=0, t=0))
    a, st = p.predict(_obs(fail=5000, drops=0, t=1000), st)
    assert (a == -1).all()                              # failures alone: no pressure
    a, st = p.predict(_obs(fail=5000, drops=1023, t=2000), st)
    assert (a[:, 0] == 15000).all()                     # 1023 drops/s: the same bounded back-off as psi
    a, st = p.predict(_obs(mf=15000, boot=10000, fail=9000, drops=1023, t=12500), st)
    assert (a[:, 0] == 14700).all()                     # 10 s without drops (failures go on): probe down


def test_psi_gated_in_the_simulator_acts_only_after_a_ring_or_pfmemalloc_drop(tmp_path):
    """Through agents.evaluate: where no ring/pfmemalloc drop happens psi-gated is the defaults to the
    counter though psi acts (incast-pagecache: socket drops only); on memalloc-drops (pfmemalloc
    drops from the first second) it plays as psi."""
    import csv

    from agents import evaluate
    assert evaluate.main(["--policies", "kernel-default,psi,psi-gated", "--scenarios", "incast-pagecache,memalloc-drops",
                          "--seeds", "1", "--duration-s", "10", "--no-oracle", "--no-summary",
                          "--out", str(tmp_path / "ev")]) == 0
    rows = {(r["scenario"], r["policy"]): r for r in csv.DictReader(open(tmp_path / "ev" / "episodes.csv"))}
    num = ("drops_total", "atomic_fail", "reserved_mib_s", "knob_changes", "final_min_free_kbytes")
    inc = {p: rows[("incast-pagecache", p)] for p in ("kernel-default", "psi", "psi-gated")}
    assert float(inc["psi"]["knob_changes"]) > 0 and float(inc["psi-gated"]["drops_rx_missed"]) == 0
    assert [inc["psi-gated"][k] for k in num] == [inc["kernel-default"][k] for k in num]
    mem = {p: rows[("memalloc-drops", p)] for p in ("psi", "psi-gated")}
    assert float(mem["psi-gated"]["knob_changes"]) > 0
    assert float(mem["psi-gated"]["final_min_free_kbytes"]) > float(rows[("memalloc-drops", "kernel-default")]["final_min_free_kbytes"])
