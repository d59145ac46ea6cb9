"""`atomgym fidelity DIR...` over a corpus (issue 21, items 2 and 3), without QEMU: a small
synthetic corpus made of the committed 20 s capture (tests/data/realkernel/capture-smoke), the
simulator's first failure, bad corpora and bad arguments (one line, exit 2, nothing written),
and the shipped corpus (corpus/): its manifest and scenarios (its score: the ratchet in
test_calibration.py)."""
from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from atomgym import cli
from atomgym.realkernel.fidelity import METRICS

ROOT = Path(__file__).resolve().parent.parent
CAP = ROOT / "tests" / "data" / "realkernel" / "capture-smoke"
CORPUS = ROOT / "corpus"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _scale_fail(folder: Path, factor: float) -> None:
    """Make a repeat differ from its twin: the module's failed pages x factor in every sample."""
    ts = folder / "timeseries.jsonl"
    rows = [json.loads(ln) for ln in ts.read_text().splitlines()]
    for s in rows:
        s["atomic"]["fail"] = round(s["atomic"]["fail"] * factor)
    ts.write_text("".join(json.dumps(s, separators=(",", ":")) + "\n" for s in rows))


def _gzip_timeseries(folder: Path) -> None:
    ts = folder / "timeseries.jsonl"
    (folder / "timeseries.jsonl.gz").write_bytes(gzip.compress(ts.read_bytes(), mtime=0))
    ts.unlink()


def _manifest(folder: Path, runs: list[str]) -> None:
    (folder / "MANIFEST.json").write_text(json.dumps({"runs": [
        {"run": r, "scenario": "tests/data/realkernel/real-smoke.yaml", "kernel": "6.1.0-56-amd64",
         "captured": "2026-01-01T00:00:00Z", "host_wall_s": 38.1} for r in runs]}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three runs: `a` and its repeat `a-2` (50 % more failed pages: the kernel's spread of that
    metric), and `b` (the same capture, its time series gzipped as the shipped corpus has it)."""
    root = tmp_path_factory.mktemp("corpus")
    for r in ("a", "a-2", "b"):
        shutil.copytree(CAP, root / r)
    _scale_fail(root / "a-2", 1.5)
    _gzip_timeseries(root / "b")
    with open(root / "b" / "scenario.yaml", "a") as fh:    # another scenario file: not a repeat of a
        fh.write("# b\n")
    _manifest(root, ["a", "a-2", "b"])
    return root


@pytest.fixture(scope="module")
def report(corpus) -> dict:
    rc, out, err = _cli("fidelity", str(corpus), "--json")
    assert rc == 0, err
    return json.loads(out)


def test_corpus_json_keys_score_and_spread(report) -> None:
    assert {"runs", "aggregate", "score", "within", "pairs", "kernel_spread", "kernel_spread_groups"} <= set(report)
    assert [r["run"] for r in report["runs"]] == ["a", "a-2", "b"]
    agg = {r["metric"]: r for r in report["aggregate"]}
    assert set(agg) >= {"atomic_fail_pages", "kswapd_runs", "free_at_first_failure", "first_failure_t", "median_pos"}
    # the score is the fraction of comparable (run, metric) pairs within tolerance
    assert report["pairs"] == sum(r["pairs"] for r in agg.values()) == sum(
        r["agree"] + r["differ"] for r in report["runs"])
    assert report["within"] == sum(r["agree"] for r in report["runs"])
    assert report["score"] == round(report["within"] / report["pairs"], 4)
    # a-2 fails 1.5 x a's pages: spread (4558 - 3039) / mean = 0.4 widens that metric's tolerance
    sp = report["kernel_spread"]["atomic_fail_pages"]
    assert sp == pytest.approx(0.4, abs=0.002) and agg["atomic_fail_pages"]["tolerance"] == sp
    assert report["kernel_spread"]["kswapd_runs"] == 0.0 and agg["kswapd_runs"]["tolerance"] == 0.25
    rows = {r["metric"]: r for r in report["runs"][0]["rows"]}
    assert rows["atomic_fail_pages"]["tolerance"] == sp
    # the gzipped run reads as the plain one
    assert report["runs"][2]["real"] == report["runs"][0]["real"]


def test_the_kernels_spread_per_kind() -> None:
    from atomgym.realkernel.corpus import spread_of
    assert spread_of([2885, 2499], "atomic_fail_pages", 200) == pytest.approx(386 / 2692)
    assert spread_of([0, 7], "direct_reclaim_stalls", 200) is None           # both small counts: says nothing
    assert spread_of([8.006, 5.514], "first_failure_t", 200) == pytest.approx(2.492 / 6.76)   # a time is not
    assert spread_of([327, 306], "free_at_first_failure", 210) == pytest.approx(0.1)        # in gaps
    assert spread_of([6.62, 6.40], "median_pos", 210) == pytest.approx(0.22)


def test_every_row_has_a_simulated_value(report) -> None:
    for rep in report["runs"]:
        for r in rep["rows"]:
            assert r["sim"] is not None, (rep["run"], r["metric"])


def test_corpus_tables_aggregate_and_plots(corpus, tmp_path) -> None:
    plots = tmp_path / "plots"
    rc, out, err = _cli("fidelity", str(corpus), "--plots", str(plots), "--write-score", str(tmp_path / "s.json"))
    assert rc == 0, err
    assert out.count("capture:  ") == 3 and "aggregate over 3 runs (1 scenarios captured more than once" in out
    assert "kernel spread" in out and "median" in out
    last, own = out.strip().splitlines()[-2:]
    assert last.startswith("fidelity score: ") and "(run, metric) pairs within tolerance" in last
    assert own.startswith("the kernel against its own repeats: ") and "2 ordered pairs of repeated runs" in own
    for r in ("a", "a-2", "b"):
        assert (plots / f"{r}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in plots.iterdir()) == ["a-2.png", "a.png", "b.png"]   # no temporary left
    score = json.loads((tmp_path / "s.json").read_text())
    assert score["runs"] == ["a", "a-2", "b"] and f"{score['score']:.3f}" in last
    # again: our own plots and score file are replaced
    rc, _, err = _cli("fidelity", str(corpus), "--plots", str(plots), "--write-score", str(tmp_path / "s.json"))
    assert rc == 0, err


def test_single_capture_is_the_documented_table(corpus) -> None:
    rc, out, _ = _cli("fidelity", str(CAP))
    assert rc == 0 and out.strip().splitlines()[-1].startswith("verdict: ") and "aggregate" not in out
    # two captures named on the command line make a corpus of two (no manifest needed)
    rc, out, err = _cli("fidelity", str(corpus / "a"), str(corpus / "b"), "--json")
    assert rc == 0, err
    assert [r["run"] for r in json.loads(out)["runs"]] == ["a", "b"]


def test_simulated_first_failure_is_found_at_its_tick(tmp_path) -> None:
    """A shot larger than the machine fails at t = 2 s: the simulator's first failure is at that
    tick, with the free pages of that (only) failing burst; re-running the interval one tick at
    a time leaves the run as it was (its counters match one uninterrupted run)."""
    from atomgym.realkernel.fidelity import sim_features, sim_metrics
    from atomgym.realkernel.plan import load_plan
    from atomgym.sim.scenario import load_scenario
    from atomgym.sim.simulator import Simulator
    p = tmp_path / "shot.yaml"
    p.write_text("""duration_s: 4
machine: {ram_mib: 512, cpus: 1, thp: never}
memory: {page_cache_frac: 0.3, anon_frac: 0.05, kernel_frac: 0.05, swap: false}
nics: []
workloads:
  - name: softirq
    kind: atomic_alloc
    gfp: atomic
    pages_per_burst: 1
    interval_ms: 1000
    hold_ms: 1
    shots: [{at_s: 2.0, pages: 200000, hold_ms: 100}]
""")
    plan, scen = load_plan(p), load_scenario(p)
    m = sim_metrics(plan, scen, sim_features(), 0.3, seed=1)
    assert m["atomic_fail_bursts"] == 1 and m["first_failure_t"] == pytest.approx(2.0, abs=0.0011)
    assert m["free_at_first_failure"] == m["free_at_latest_failure"] is not None
    sim = Simulator(scen, n_machines=1)
    sim.reset([1])
    sim.advance(4000)
    c = sim.counter_dict(0)
    assert (m["atomic_fail_pages"], m["kswapd_runs"]) == (c["atomic_fail_pages"], c["pageoutrun"])


def test_the_simulator_is_read_at_the_guests_sample_times() -> None:
    """Both sides are read at the same instants: the twin's samples are the state after the ticks
    that end at each of the guest's sample times (ram2g's sample 13 ms after its second 4096-page
    shot at 18 s is the simulator's state after 18,013 ticks, as a run stopped there shows), not
    a 0.3 s grid from 0 (which read 18.000 s, before the shot: the calibration's "boosts at the
    samples" counted such a boost as a miss)."""
    import numpy as np
    from atomgym.realkernel import fidelity as fid
    from atomgym.sim.simulator import Simulator
    ld = fid.load(ROOT / "corpus" / "ram2g")
    m = fid.simulate(ld)
    r, s = m["series"]["real"], m["series"]["sim"]
    for t in s["t"][1:-1]:         # each simulated sample at a guest's, in whole ticks at or before it
        # (the last one at the scenario's end, where the guest's last samples may fall after it)
        assert any(0 <= u - t < 0.001 + 1e-9 for u in r["t"])
    i = next(i for i, t in enumerate(r["t"]) if 18.0 < t < 18.3)
    j = min(range(len(s["t"])), key=lambda k: abs(s["t"][k] - r["t"][i]))
    assert s["t"][j] == pytest.approx(int(r["t"][i] * 1000) / 1000) and s["t"][j] > 18.0
    sim = Simulator(ld["_scen"], n_machines=1)     # the ensemble's series are its x 1 member's
    sim.reset(np.array([1]))
    sim.advance(int(round(s["t"][j] * 1000)))
    z = int(np.argmax(sim.managed[0]))
    assert (s["free"][j], s["boost"][j]) == (float(sim.free[0, z]), float(sim.boost[0, z]))


def test_the_guests_reader_is_replayed_window_by_window() -> None:
    """wsf30's guest reader fell behind from 3 to 9 s (the host) and caught up at 10 s: the twin
    replays each ~1.5 s window's rate (pgpgin) through phases' ``rate``, the whole volume read
    the same, and the report says so."""
    from atomgym.realkernel import fidelity as fid
    ld = fid.load(ROOT / "corpus" / "wsf30")
    ph = [p for p in ld["_scen"].phases if p.rate]
    rates = [p.rate["reader"] for p in ph]
    assert len(ph) >= 15 and min(rates) < 0.5 * 48 and max(rates) > 1.5 * 48
    inside = [x for x in fid.load_samples_of(ROOT / "corpus" / "wsf30") if x["t"] <= 24.0]   # the reader's run
    mib = (inside[-1]["vmstat"]["pgpgin"] - inside[0]["vmstat"]["pgpgin"]) / 1024
    ends = [p.at_s for p in ph[1:]] + [inside[-1]["t"]]
    assert sum(r * (b - p.at_s) for r, p, b in zip(rates, ph, ends)) == pytest.approx(mib, rel=0.002)
    assert any("the simulator replays each window's rate" in n for n in ld["notes"])
    steady = fid.load(ROOT / "corpus" / "wsf30-3")          # a steady reader: replayed, no note
    assert all(0.97 * 48 < p.rate["reader"] < 1.03 * 48 for p in steady["_scen"].phases if p.rate)
    assert not any("replays" in n for n in steady["notes"])


def test_the_guests_start_and_shot_times_are_replayed() -> None:
    """The module's bursts repeat every 100 ms from its start and the guest samples every 0.3 s, so
    whether a sample sees a 512-page burst held (about one high-min gap of a 1 GiB zone) turns on
    that start to the millisecond: noboost's module started at 23.7 ms, its shots were written at
    8.0043 and 18.0085 s. The twin starts every workload and fires every shot when the guest did
    (its ``start`` and ``shot`` events); a workload a phase starts keeps the phase's time."""
    from atomgym.realkernel import fidelity as fid
    ld = fid.load(ROOT / "corpus" / "noboost")
    w = {x.name: x for x in ld["_scen"].workloads}
    events = json.loads((ROOT / "corpus" / "noboost" / "events.json").read_text())
    starts = {e["args"][1]: e["t"] for e in events if e["what"] == "start"}
    shots = [e["t"] for e in events if e["what"] == "shot"]
    assert starts["atomic"] == pytest.approx(0.0237) and w["softirq"].start_s == pytest.approx(0.0237)
    assert w["hog"].start_s == pytest.approx(starts["hog"]) and abs(starts["hog"] - 6.0) < 0.05
    assert [sh.at_s for sh in w["softirq"].shots] == pytest.approx(shots) and shots != [8.0, 18.0]
    import dataclasses
    plan = ld["_plan"]
    assert "hog" in fid.start_times(plan, events)
    by_phase = dataclasses.replace(plan, phases=[{"at_s": 6.0, "sysctl": {}, "start": ["hog"], "stop": []}])
    assert "hog" not in fid.start_times(by_phase, events) and "softirq" in fid.start_times(by_phase, events)
    one_shot = [e for e in events if not (e["what"] == "shot" and e["t"] > 10)]
    assert fid.shot_times(plan, one_shot) is None              # not one event per shot: the plan's times


def test_whole_after_exit_is_the_most_whole_movable_blocks_after_the_hogs_peak() -> None:
    """The process behind memory.reform_pageblocks and the whole UNMOVABLE blocks a MOVABLE fallback
    claims: the whole free MOVABLE pageblocks the hog's exit gives back, the most of them at a
    sample from its peak on (start + peak / rate: 6 + 160 / 32 = 11 s); the 30 whole blocks at
    1 s, before the hog, do not count. The kernel's ram2g-3 gave back 42 (/proc/pagetypeinfo's
    order >= 9 MOVABLE chunks); without a hog or such samples, n/a."""
    from atomgym.realkernel import fidelity as fid
    rows = [(1.0, 30.0), (11.2, 0.0), (15.3, 42.0), (15.6, 36.0), (18.0, 0.0)]
    assert fid.whole_after_exit(rows, 11.0) == 42.0
    assert fid.whole_after_exit(rows, None) is None and fid.whole_after_exit([], 11.0) is None
    ld = fid.load(ROOT / "corpus" / "ram2g-3")
    assert fid.hog_peak_s(ld["_plan"]) == pytest.approx(11.0)
    assert ld["real"]["whole_after_exit"] == 42.0
    assert fid.load(ROOT / "corpus" / "ram2g")["real"]["whole_after_exit"] is None   # no pagetypeinfo


def test_the_twins_metrics_are_its_members_medians() -> None:
    """Each numeric metric is the ensemble members' median; a metric most members lack (no
    failure) is None; the series and the rest are the central member's."""
    from atomgym.realkernel.fidelity import ENSEMBLE, ensemble_metrics
    assert len(ENSEMBLE) % 2 == 1 and ENSEMBLE[len(ENSEMBLE) // 2] == 1.0
    ms = [{"zone": "DMA32", "atomic_fail_pages": v, "first_failure_t": t, "series": {"t": [k]},
           "phases": [{"from_s": 0, "to_s": 24, "median_pos": 1.0 + k}]}
          for k, (v, t) in enumerate([(0, None), (750, 8.0), (0, None), (10, 8.1), (0, None)])]
    out = ensemble_metrics(ms, 2)
    assert out["atomic_fail_pages"] == 0 and out["first_failure_t"] is None
    assert out["phases"][0]["median_pos"] == 3.0 and out["series"] == {"t": [2]} and out["zone"] == "DMA32"
    ms[4]["first_failure_t"] = 9.0
    assert ensemble_metrics(ms, 2)["first_failure_t"] == 8.1


# ---- bad corpora and arguments: one line, exit 2, nothing written --------------------------------
def _bad_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    for r in ("a", "b"):
        shutil.copytree(CAP, root / r)
    _manifest(root, ["a", "b"])
    return root


def _edit_manifest(root: Path, fn) -> None:
    m = json.loads((root / "MANIFEST.json").read_text())
    fn(m)
    (root / "MANIFEST.json").write_text(json.dumps(m))


@pytest.mark.parametrize("breakit, needle", [
    (lambda r: shutil.rmtree(r / "b"), "run 'b': no capture folder"),
    (lambda r: (r / "MANIFEST.json").write_text("{\"runs\": ["), "MANIFEST.json: not JSON"),
    (lambda r: (r / "MANIFEST.json").write_text("{\"runs\": []}"), "non-empty list \"runs\""),
    (lambda r: _edit_manifest(r, lambda m: m["runs"][0].pop("kernel")), "runs[0]: kernel missing or not a string"),
    (lambda r: _edit_manifest(r, lambda m: m["runs"][0].update(host_wall_s="38")), "host_wall_s missing or not a number"),
    (lambda r: _edit_manifest(r, lambda m: m["runs"][1].update(kernel="6.1.0-1-amd64")),
     "run 'b': kernel '6.1.0-1-amd64', but its capture.json says '6.1.0-56-amd64'"),
    (lambda r: _edit_manifest(r, lambda m: m["runs"][1].update(run="a")), "run 'a' listed twice"),
    (lambda r: _edit_manifest(r, lambda m: m["runs"][1].update(run="../x")), "is not a folder name"),
    (lambda r: _edit_manifest(r, lambda m: m["runs"].pop()), "does not list"),
    (lambda r: (r / "b" / "timeseries.jsonl").write_text(
        "".join((r / "a" / "timeseries.jsonl").read_text().splitlines(True)[:30])), "a truncated capture"),
    (lambda r: (_gzip_timeseries(r / "b"), (r / "b" / "timeseries.jsonl.gz").write_bytes(
        (r / "b" / "timeseries.jsonl.gz").read_bytes()[:500])), "not a complete gzip file"),
    (lambda r: (r / "b" / "capture.json").unlink(), "no capture.json"),
    (lambda r: (r / "b" / "events.json").write_text('[{"t": "soon", "what": "start", "args": ["0"]}]'),
     "events.json: event 1: needs t (guest seconds >= 0)"),
])
def test_a_bad_corpus_is_one_line_and_writes_nothing(tmp_path, breakit, needle) -> None:
    root = _bad_corpus(tmp_path)
    breakit(root)
    plots, score = tmp_path / "plots", tmp_path / "score.json"
    rc, out, err = _cli("fidelity", str(root), "--plots", str(plots), "--write-score", str(score))
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    assert out == "" and not plots.exists() and not score.exists()


def test_bad_arguments_are_one_line(tmp_path) -> None:
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "capture-smoke.png").write_text("my notes")
    other = tmp_path / "x" / "capture-smoke"
    shutil.copytree(CAP, other)
    for argv, needle in [
        (["fidelity", str(tmp_path / "nope")], "no such folder"),
        (["fidelity", str(CAP), str(CAP)], "named twice"),
        (["fidelity", str(CAP), str(other)], "two captures named 'capture-smoke'"),
        (["fidelity", str(CAP), "--plots", str(tmp_path / "afile")], "exists and is not a folder"),
        (["fidelity", str(CAP), "--plots", str(tmp_path / "plots")], "is not a PNG plot"),
        (["fidelity", str(CAP), "--write-score", str(tmp_path / "afile")], "not a score file"),
        (["fidelity", str(CAP), "--write-score", str(tmp_path / "no" / "s.json")], "no folder"),
        (["fidelity"], "the following arguments are required"),
    ]:
        rc, out, err = _cli(*argv)
        assert rc == 2 and err.count("\n") == 1 and needle in err and out == "", (argv, err)
    assert (tmp_path / "afile").read_text() == "mine"
    assert (tmp_path / "plots" / "capture-smoke.png").read_text() == "my notes"


# ---- the shipped corpus -----------------------------------------------------------------------------
def test_shipped_corpus_manifest_covers_the_design() -> None:
    man = json.loads((CORPUS / "MANIFEST.json").read_text())
    runs = man["runs"]
    assert len(runs) >= 16
    scen = [r["scenario"] for r in runs]
    assert sum(1 for s in set(scen) if scen.count(s) >= 2) >= 3       # the kernel's spread
    for r in runs:
        assert (ROOT / r["scenario"]).is_file() and (CORPUS / r["run"] / "capture.json").is_file()
        assert json.loads((CORPUS / r["run"] / "capture.json").read_text())["kernel"] == r["kernel"]
    shipped = [f for f in CORPUS.rglob("*") if f.is_file() and not any(p.endswith(".partial") for p in f.parts)]
    assert sum(f.stat().st_size for f in shipped) < 4 << 20      # a few MiB at most


def test_corpus_scenarios_are_the_generators_and_all_captured() -> None:
    """configs/corpus is what scripts/corpus_scenarios.py makes, and every scenario was captured."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("corpus_scenarios", ROOT / "scripts" / "corpus_scenarios.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    files = sorted(p.name for p in (ROOT / "configs" / "corpus").glob("*.yaml"))
    assert files == sorted(f"{n}.yaml" for n, _, _ in mod.RUNS)
    for name, var, what in mod.RUNS:
        assert (ROOT / "configs" / "corpus" / f"{name}.yaml").read_text() == mod.scenario(name, var, what), name
    runs = json.loads((CORPUS / "MANIFEST.json").read_text())["runs"]
    assert {r["scenario"] for r in runs} == {f"configs/corpus/{f}" for f in files}
    for r in runs:     # each capture's copy is its scenario (kswapd: included: what fidelity replays)
        assert (CORPUS / r["run"] / "scenario.yaml").read_text() == (ROOT / r["scenario"]).read_text(), r["run"]


def test_unmovable_share_full_is_the_median_share_while_memory_is_full():
    """The process metric behind the UNMOVABLE page cache: per sample with /proc/pagetypeinfo, the
    share of the zone's buddy free pages on its UNMOVABLE lists, its median over the samples whose
    free pages are at most 2 x high (memory full); None without such samples."""
    from atomgym.realkernel.fidelity import _pagetype_rows, unmovable_share_full
    zone = {"zone": "DMA32", "managed": 1000, "free": 0, "min": 10, "low": 20, "high": 100, "boost": 0}

    def sample(t, u, m):   # u, m: order-0 and order-1 chunks on the UNMOVABLE and MOVABLE lists
        return {"t": t, "zones": [zone], "pagetypes": {"0:DMA32": {"Unmovable": [u, 0], "Movable": [m, 1]}}}
    rows = _pagetype_rows([sample(0.0, 10, 800), sample(0.3, 150, 48), sample(0.6, 30, 8), {"t": 0.9, "zones": [zone]}],
                          "DMA32")
    assert [(r["free_u"], r["free_total"]) for r in rows] == [(10, 812), (150, 200), (30, 40)]
    # 812 > 2 x 100: not full; 150/200 and 30/40 -> median 0.75
    assert unmovable_share_full([(r["free_u"], r["free_total"], r["hi"]) for r in rows]) == 0.75
    assert unmovable_share_full([(1.0, 900.0, 100.0)]) is None
    assert _pagetype_rows([{"t": 0.0, "zones": [zone]}], "DMA32") == []


def test_whole_share_full_counts_the_unmovable_pages_in_whole_pageblocks():
    """The process behind memory.reclaim_reforms_pageblocks: per sample with memory full, the share
    of the UNMOVABLE free pages that are whole free pageblocks (order >= pageblock_order chunks); the
    median. One order-9 chunk (512) and 512 order-0 pages on the UNMOVABLE lists: 0.5; two order-9
    chunks and 0 else: 1.0; median 0.75. A sample with memory not full or no UNMOVABLE page is left
    out; none left: None."""
    from atomgym.realkernel.fidelity import _pagetype_rows, whole_share_full
    zone = {"zone": "DMA32", "managed": 100000, "free": 0, "min": 10, "low": 20, "high": 1000, "boost": 0}

    def sample(t, u0, u9, m0):
        return {"t": t, "zones": [zone], "pagetypes": {"0:DMA32": {"Unmovable": [u0] + [0] * 8 + [u9, 0],
                                                                   "Movable": [m0] + [0] * 10}}}
    rows = _pagetype_rows([sample(0.0, 512, 1, 0), sample(0.3, 0, 2, 0), sample(0.6, 0, 1, 5000),
                           sample(0.9, 0, 0, 100)], "DMA32")
    assert [(r["whole_u"], r["free_u"]) for r in rows] == [(512, 1024), (1024, 1024), (512, 512), (0, 0)]
    # 5512 > 2 x 1000: not full; the last has no UNMOVABLE page
    assert whole_share_full([(r["whole_u"], r["free_u"], r["free_total"], r["hi"]) for r in rows]) == 0.75
    assert whole_share_full([(0.0, 0.0, 100.0, 1000.0)]) is None


def test_a_metric_only_the_kernel_can_show_is_na_without_its_samples():
    """A capture made before the guest sampled /proc/pagetypeinfo has no real UNMOVABLE share:
    that row is n/a (not a difference), whatever the simulator shows; with both sides it is
    judged within 0.25."""
    from atomgym.realkernel.fidelity import compare
    base = {"phases": [], "gap": 100.0}
    rows = {r["metric"]: r for r in compare({**base, "unmovable_share_full": None},
                                            {**base, "unmovable_share_full": 0.8})}
    assert rows["unmovable_share_full"]["verdict"] == "n/a"
    rows = {r["metric"]: r for r in compare({**base, "unmovable_share_full": 0.6},
                                            {**base, "unmovable_share_full": 0.8})}
    assert rows["unmovable_share_full"]["verdict"] == "agree"
    rows = {r["metric"]: r for r in compare({**base, "unmovable_share_full": 0.4},
                                            {**base, "unmovable_share_full": 0.8})}
    assert rows["unmovable_share_full"]["verdict"] == "differs"


def test_repeats_count_only_under_the_same_sampling():
    """corpus.kernel_spread(): runs of one scenario are the kernel's repeats only when the guest
    sampled the same files; a capture that also read /proc/pagetypeinfo is another condition
    (its runs differ systematically), so it does not widen the first round's spread."""
    from atomgym.realkernel.corpus import kernel_spread

    def run(name, runs, pt):
        return {"scenario": "s", "scenario_sha": "x", "run": name,
                "real": {"kswapd_runs": runs, "gap": 100.0, "phases": [], "sampled_pagetypeinfo": pt}}
    spread, groups = kernel_spread([run("s", 100, False), run("s-2", 104, False), run("s-3", 200, True)])
    assert spread["kswapd_runs"] == round(4 / 102, 3)
    assert [g["runs"] for g in groups["kswapd_runs"]] == [["s", "s-2"]]
    spread, _ = kernel_spread([run("s", 100, False), run("s-3", 200, True)])
    assert "kswapd_runs" not in spread


def test_the_spread_ignores_scenarios_where_a_count_hardly_happens():
    """corpus.kernel_spread(): a scenario whose repeats all count at most SMALL_COUNT stalls says
    nothing about how far the kernel's stall counts spread when it stalls (such counts agree by
    the small-count rule): listed with spread None, left out of the median."""
    from atomgym.realkernel.corpus import kernel_spread

    def run(scen, name, stalls):
        return {"scenario": scen, "scenario_sha": scen, "run": name,
                "real": {"direct_reclaim_stalls": stalls, "gap": 100.0, "phases": []}}
    spread, groups = kernel_spread([run("q", "q", 0), run("q", "q-2", 7), run("s", "s", 100), run("s", "s-2", 150)])
    assert spread["direct_reclaim_stalls"] == 0.4          # (150 - 100) / 125, not the median of 0 and 0.4
    assert [g["spread"] for g in groups["direct_reclaim_stalls"]] == [None, 0.4]
    spread, groups = kernel_spread([run("q", "q", 0), run("q", "q-2", 7)])
    assert "direct_reclaim_stalls" not in spread and len(groups["direct_reclaim_stalls"]) == 1


def test_the_kernel_against_its_own_repeats():
    """corpus.kernel_self_score(): every ordered pair of repeats judged with compare() as if one
    were the simulator's run of the other; a value only one guest measured (kswapd's schedstat)
    is left out, not counted as a disagreement; runs without a repeat add nothing."""
    from atomgym.realkernel.corpus import kernel_self_score
    from atomgym.realkernel.fidelity import compare

    def real(runs, stalls, cpu=None):
        r = {k: None for k, _ in METRICS}
        r.update(kswapd_runs=runs, direct_reclaim_stalls=stalls, kswapd_cpu_ms=cpu, gap=100.0, phases=[])
        return r

    def run(scen, name, r):
        return {"scenario": scen, "scenario_sha": scen, "run": name, "sample_s": 0.3, "real": r}
    a, b = real(100, 50, cpu=400.0), real(110, 100)          # runs agree (10 %), stalls do not (2x)
    own = kernel_self_score([run("s", "s", a), run("s", "s-2", b), run("t", "t", real(5, 5))], {})
    assert own["run_pairs"] == 2 and own["pairs"] == 4 and own["within"] == 2 and own["score"] == 0.5
    assert own["per_metric"] == {"kswapd_runs": 1.0, "direct_reclaim_stalls": 0.0}
    assert [r["verdict"] for r in compare(a, b) if r["metric"] == "kswapd_cpu_ms"] == ["differs"]
    # with the stalls' spread (a tolerance of 1.0) the stalls agree one way (50 vs 100 is 1.0 of 50) and the other
    assert kernel_self_score([run("s", "s", a), run("s", "s-2", b)], {"direct_reclaim_stalls": 1.0})["score"] == 1.0
    assert kernel_self_score([run("s", "s", a), run("t", "t", b)], {}) is None
