"""Property tests (hypothesis) over random machines and sysctl values."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomgym.cli import check_snapshot
from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.snapshot import find_boot_pattern, parse_text
from atomgym.kernel.watermarks import mult_frac
from snapshot_helpers import snapshot_text

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERSIONS = [KernelVersion(6, 1, "6.1.0-56-amd64"), KernelVersion(6, 18, "6.18.44")]


@st.composite
def machines(draw) -> Machine:
    nodes = draw(st.integers(1, 3))
    managed = []
    for n in range(nodes):
        dma = draw(st.sampled_from([0, 3840, 3977])) if n == 0 else 0
        dma32 = draw(st.integers(0, 1_000_000)) if n == 0 else draw(st.sampled_from([0, draw(st.integers(1, 900_000))]))
        normal = draw(st.integers(0, 8_000_000))
        movable = draw(st.sampled_from([0, 0, draw(st.integers(1, 2_000_000))]))
        managed += [dma, dma32, normal, movable, 0]
    if sum(managed[i] for i in range(len(managed)) if i % 5 < 3) == 0:
        managed[2] = draw(st.integers(1024, 4_000_000))
    m = Machine(managed=np.array(managed), version=draw(st.sampled_from(VERSIONS)),
                thp=draw(st.sampled_from(["always", "madvise", "never"])))
    return m.boot()


def _wm(m: Machine) -> np.ndarray:
    return np.array([[r["min"], r["low"], r["high"], r["promo"]] for r in m.zone_rows()])


@SETTINGS
@given(m=machines(), mf=st.integers(0, 4_000_000), wsf=st.integers(1, 3000))
def test_ordering(m: Machine, mf: int, wsf: int) -> None:
    m.write("vm.min_free_kbytes", mf)
    m.write("vm.watermark_scale_factor", wsf)
    w = _wm(m)
    assert (w[:, 0] <= w[:, 1]).all() and (w[:, 1] <= w[:, 2]).all() and (w[:, 2] <= w[:, 3]).all()
    # low, high and promo are equally spaced (the same gap), as __setup_per_zone_wmarks() stores them
    assert ((w[:, 2] - w[:, 1]) == (w[:, 3] - w[:, 2])).all()


@SETTINGS
@given(m=machines(), a=st.integers(0, 4_000_000), b=st.integers(0, 4_000_000))
def test_monotone_in_min_free_kbytes(m: Machine, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    m1, m2 = m.copy(), m.copy()
    m1.write("vm.min_free_kbytes", lo)
    m2.write("vm.min_free_kbytes", hi)
    assert (_wm(m1) <= _wm(m2)).all()
    assert m2.min_free_kbytes == hi and m2.user_min_free_kbytes == hi


@SETTINGS
@given(m=machines(), a=st.integers(1, 3000), b=st.integers(1, 3000))
def test_monotone_in_watermark_scale_factor(m: Machine, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    m1, m2 = m.copy(), m.copy()
    m1.write("vm.watermark_scale_factor", lo)
    m2.write("vm.watermark_scale_factor", hi)
    w1, w2 = _wm(m1), _wm(m2)
    assert (w1 <= w2).all()
    assert (w1[:, 0] == w2[:, 0]).all()  # min does not depend on the scale factor


@SETTINGS
@given(m=machines(), key=st.sampled_from(["vm.min_free_kbytes", "vm.watermark_scale_factor", "transparent_hugepage"]),
       data=st.data())
def test_boost_cleared_on_recompute(m: Machine, key: str, data) -> None:
    for z in range(m.managed.size):
        for _ in range(data.draw(st.integers(0, 3))):
            m.boost_zone(z)
    value = {"vm.min_free_kbytes": data.draw(st.integers(0, 1_000_000)),
             "vm.watermark_scale_factor": data.draw(st.integers(1, 3000)),
             "transparent_hugepage": data.draw(st.sampled_from(["always", "madvise", "never"]))}[key]
    m.write(key, value)
    assert (m.boost == 0).all()


@SETTINGS
@given(m=machines(), data=st.data())
def test_writes_that_do_not_recompute_keep_boosts(m: Machine, data) -> None:
    boosted = [z for z in range(m.managed.size) if m.boost_zone(z)]
    before = m.boost.copy()
    m.write("vm.watermark_boost_factor", data.draw(st.integers(0, 100_000)))
    m.write("vm.lowmem_reserve_ratio", "128 128 16 0 0")
    assert (m.boost == before).all()
    assert all(m.boost[z] > 0 for z in boosted)


@SETTINGS
@given(m=machines(), factor=st.integers(0, 100_000), calls=st.integers(1, 40))
def test_boost_watermark_caps(m: Machine, factor: int, calls: int) -> None:
    m.write("vm.watermark_boost_factor", factor)
    for z in range(m.managed.size):
        high = int(m.wmark[z, 2])
        cap = mult_frac(high, factor, 10000)
        results = [m.boost_zone(z) for _ in range(calls)]
        if factor == 0 or m.managed[z] < 4 * 512 or cap == 0:
            assert not any(results) and m.boost[z] == 0     # no-op: factor 0, small zone, zero cap
        else:
            max_boost = max(cap, 512)
            assert all(results)
            assert m.boost[z] == min(512 * calls, max_boost)
            assert m.boost[z] <= max_boost


@SETTINGS
@given(m=machines(), promo=st.booleans(), data=st.data())
def test_snapshot_roundtrip_checks_exactly(m: Machine, promo: bool, data) -> None:
    """Any machine the model can be in, written as a snapshot, checks equal (exit 0)."""
    if data.draw(st.booleans()):
        m.write("vm.min_free_kbytes", data.draw(st.integers(0, 2_000_000)))
    for z in data.draw(st.lists(st.integers(0, m.managed.size - 1), max_size=3)):
        m.boost_zone(z)
    text = snapshot_text(m, release=m.version.release, promo=promo)
    snap = parse_text(text, "rt.txt")
    rep = check_snapshot(snap)
    assert rep["status"] == "equal", rep["zones"]


@settings(max_examples=15, deadline=None)
@given(m=machines(), delta=st.integers(300, 3000))
def test_boot_pattern_found_for_stale_watermarks(m: Machine, delta: int) -> None:
    """Watermarks computed with `delta` fewer pages in the largest lowmem zone (what boot
    does before free_initmem()) are recognised, with `delta` among the fitting counts."""
    lowmem = [z for z in range(m.managed.size) if z % 5 < 3]
    z = max(lowmem, key=lambda i: m.managed[i])
    if m.managed[z] < 20 * delta:
        return
    m.managed[z] -= delta
    m.setup_per_zone_wmarks()
    m.managed[z] += delta
    snap = parse_text(snapshot_text(m, release=m.version.release), "boot.txt")
    rep = check_snapshot(snap)
    if rep["status"] == "equal":
        return  # the delta vanished in the rounding
    bp = find_boot_pattern(snap)
    assert bp is not None and bp.z == z and delta in bp.deltas
