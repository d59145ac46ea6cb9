"""Workloads that allocate in chunks (`chunk_pages`, workloads._rate_pages()): agrun's reader reads
256 KiB a pread() and its hog touches 64 pages between two checks of its pace, so the real-kernel
twin allocates their pages 64 at a time; without the key a rate workload allocates each tick's
pages, as before (bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest

from atomgym.sim.layout import ZF_ANON
from atomgym.sim.scenario import ScenarioError, load_scenario, scenario_from_dict, scenario_to_dict
from atomgym.sim.simulator import Simulator


def _hog_scenario(chunk: int | None) -> dict:
    """The quiet machine with one hog growing 1 MiB/s (0.256 pages a ms) from t = 0, nothing else."""
    d = scenario_to_dict(load_scenario("quiet"))
    d.update(duration_s=2, nics=[], traffic=[], phases=[])
    hog = {"kind": "anon_hog", "name": "hog", "rate_mib_s": 1.0, "peak_mib": 100.0, "hold_s": 100.0, "period_s": 0}
    if chunk is not None:
        hog["chunk_pages"] = chunk
    d["workloads"] = [hog]
    return d


def _anon_per_ms(d: dict, ms: int) -> list[int]:
    s = scenario_from_dict(d, source=load_scenario("quiet").source)
    sim = Simulator(s, n_machines=1)
    sim.reset(np.array([1]))
    out, prev = [], int(sim.zone_state[0, :, ZF_ANON].sum())
    for _ in range(ms):
        sim.advance(1)
        cur = int(sim.zone_state[0, :, ZF_ANON].sum())
        out.append(cur - prev)
        prev = cur
    return out


def test_a_hog_in_64_page_chunks():
    """0.256 pages a ms: 64 pages at once when 250 ms of its rate are due (ticks 250, 500, 750 and
    1000), nothing in between; the same 256 pages a second as the hog without chunks, which takes
    one page about every 4 ms."""
    chunked = _anon_per_ms(_hog_scenario(64), 1000)
    assert [i + 1 for i, x in enumerate(chunked) if x] == [250, 500, 750, 1000]
    assert set(chunked) == {0, 64} and sum(chunked) == 256
    smooth = _anon_per_ms(_hog_scenario(None), 1000)
    assert sum(smooth) == 256 and set(smooth) == {0, 1}
    assert _anon_per_ms(_hog_scenario(0), 1000) == smooth   # 0 is the default: each tick's pages


def test_chunk_pages_is_a_rate_workloads_key():
    d = _hog_scenario(64)
    d["workloads"].append({"kind": "atomic_alloc", "name": "irq", "pages_per_burst": 8, "interval_ms": 10.0,
                           "hold_ms": 1.0, "chunk_pages": 64})
    with pytest.raises(ScenarioError, match="chunk_pages"):
        scenario_from_dict(d, source=load_scenario("quiet").source)
    d = _hog_scenario(-1)
    with pytest.raises(ScenarioError, match="chunk_pages"):
        scenario_from_dict(d, source=load_scenario("quiet").source)


def test_the_real_kernel_twin_allocates_in_agruns_chunks():
    from atomgym.realkernel.fidelity import AGRUN_CHUNK_PAGES
    for name in ("real-atomic-stream", "real-atomic-stream-wsf100"):
        ws = {w.kind: w for w in load_scenario(name).workloads}
        assert ws["stream_read"].chunk_pages == ws["anon_hog"].chunk_pages == AGRUN_CHUNK_PAGES == 64
