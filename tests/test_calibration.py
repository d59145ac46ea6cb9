"""Calibration (issue 21, items 4 and 5): the corpus's split into a calibration and a held-out half,
`atomgym fidelity fit` on a tiny synthetic corpus (copies of the committed 20 s capture) and its
refusals, and the fidelity ratchet on the shipped corpus (no QEMU)."""
from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest

from atomgym import cli

ROOT = Path(__file__).resolve().parent.parent
CAP = ROOT / "tests" / "data" / "realkernel" / "capture-smoke"
CORPUS = ROOT / "corpus"
SCORE_FILE = CORPUS / "fidelity-score.json"
FIT_FILE = CORPUS / "calibration.json"
TINY = ["--grid", "reclaim_pages_per_ms=100,400", "--grid", "wake_latency_ms=0.2", "--grid",
        "direct_reclaim_pages_per_ms=50"]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- the split ------------------------------------------------------------------------------------
def _design() -> dict[str, dict]:
    """Run -> its factors (from scripts/corpus_scenarios.py, the generator of its scenario) and half."""
    gen = _script("corpus_scenarios")
    var = {n: dict(gen.BASE, **v) for n, v, _ in gen.RUNS}
    man = json.loads((CORPUS / "MANIFEST.json").read_text())
    return {r["run"]: {**var[Path(r["scenario"]).stem], "scenario": r["scenario"], "half": r["half"]}
            for r in man["runs"]}


def test_split_covers_every_level_in_each_half() -> None:
    runs = _design()
    for half in ("calibration", "held-out"):
        mine = [r for r in runs.values() if r["half"] == half]
        assert {r["ram"] for r in mine} == {512, 1024, 2048, 4096}, half
        assert {r["wsf"] for r in mine} == {10, 30, 100, 300}, half
        assert {r["gfp"] for r in mine} == {"atomic", "nowait"}, half
        assert {r["wbf"] == 0 for r in mine} == {True, False}, half            # boosting on and off
        assert {r["cpus"] for r in mine} == {1, 2}, half
        # a wsf 10 -> 100 pair: two scenarios that differ only in wsf
        key = [tuple(sorted((k, v) for k, v in r.items() if k not in ("wsf", "scenario", "half"))) for r in mine]
        assert any(key[i] == key[j] and mine[i]["wsf"] == 10 and mine[j]["wsf"] == 100
                   for i in range(len(mine)) for j in range(len(mine))), half
    assert sum(r["half"] == "held-out" for r in runs.values()) >= 10


def test_split_keeps_a_scenarios_repeats_together_and_is_the_scripts() -> None:
    runs = _design()
    by_scen: dict[str, set[str]] = {}
    for r in runs.values():
        by_scen.setdefault(r["scenario"], set()).add(r["half"])
    assert all(len(h) == 1 for h in by_scen.values())
    assert sum(1 for s in by_scen if sum(r["scenario"] == s for r in runs.values()) >= 2
               and by_scen[s] == {"held-out"}) >= 2                          # the held-out half has repeats too
    cap = _script("capture_corpus")
    assert all(cap.half_of(name) == r["half"] for name, r in runs.items())


def _corpus(root: Path, runs: dict[str, str], wsf100: tuple[str, ...] = ()) -> Path:
    """Copies of the committed capture as a corpus: run -> half; a run named in ``wsf100`` has its
    scenario at watermark_scale_factor 100 (another scenario); `x-2` repeats `x` with 1.5 x the failures."""
    root.mkdir(parents=True)
    entries = []
    for r, half in runs.items():
        shutil.copytree(CAP, root / r)
        scen = root / r / "scenario.yaml"
        if r in wsf100:
            scen.write_text(scen.read_text().replace("watermark_scale_factor: 10", "watermark_scale_factor: 100"))
        if r.endswith("-2"):
            ts = root / r / "timeseries.jsonl"
            rows = [json.loads(ln) for ln in ts.read_text().splitlines()]
            for s in rows:
                s["atomic"]["fail"] = round(s["atomic"]["fail"] * 1.5)
            ts.write_text("".join(json.dumps(s, separators=(",", ":")) + "\n" for s in rows))
        entries.append({"run": r, "scenario": f"configs/x/{r.removesuffix('-2')}.yaml", "kernel": "6.1.0-56-amd64",
                        "captured": "2026-01-01T00:00:00Z", "host_wall_s": 38.1, "half": half})
    (root / "MANIFEST.json").write_text(json.dumps({"runs": entries}))
    return root


def test_a_scenarios_repeats_in_two_halves_are_refused(tmp_path) -> None:
    root = _corpus(tmp_path / "c", {"a": "calibration", "a-2": "held-out"})
    for argv in (["fidelity", str(root)], ["fidelity", "fit", str(root), *TINY]):
        rc, out, err = _cli(*argv)
        assert rc == 2 and err.count("\n") == 1 and "in one half" in err and "'a'" in err and out == "", err
    m = json.loads((root / "MANIFEST.json").read_text())
    m["runs"][1]["half"] = "test"
    (root / "MANIFEST.json").write_text(json.dumps(m))
    rc, _, err = _cli("fidelity", str(root))
    assert rc == 2 and "runs[1]: half 'test'; valid: 'calibration' or 'held-out'" in err


# ---- the fit --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit(tmp_path_factory) -> tuple[Path, dict, str]:
    """A tiny fit: a, its repeat a-2 and c (a at wsf 100) calibrate, b is held out; 2 grid points."""
    tmp = tmp_path_factory.mktemp("fit")
    root = _corpus(tmp / "corpus", {"a": "calibration", "a-2": "calibration", "c": "calibration",
                                    "b": "held-out"}, wsf100=("c",))
    out = tmp / "fit.json"
    rc, text, err = _cli("fidelity", "fit", str(root), *TINY, "--out", str(out))
    assert rc == 0, err
    return root, json.loads(out.read_text()), text


def test_fit_prints_each_point_and_picks_the_best(fit) -> None:
    _, rec, text = fit
    assert text.count("] reclaim_pages_per_ms=") == 2
    assert [(p["reclaim_pages_per_ms"], p["wake_latency_ms"], p["direct_reclaim_pages_per_ms"])
            for p in rec["points"]] == [(100.0, 0.2, 50.0), (400.0, 0.2, 50.0)]
    best = max(rec["points"], key=lambda p: (p["score"], -p["closeness"]))
    assert rec["fitted"] == {k: best[k] for k in ("reclaim_pages_per_ms", "wake_latency_ms",
                                                  "direct_reclaim_pages_per_ms", "cpu_share")}
    assert rec["fitted"]["cpu_share"] == 0.0          # the default grid's only value
    assert rec["calibration"]["score"] == best["score"] and rec["calibration"]["runs"] == ["a", "a-2", "c"]
    assert rec["held-out"]["runs"] == ["b"] and 0 <= rec["held-out"]["score"] <= 1
    assert rec["kind"] == "atomgym fidelity fit" and rec["how"].startswith("python -m atomgym fidelity fit ")
    assert {r["metric"] for r in rec["held-out"]["per_metric"]} >= {"atomic_fail_pages", "kswapd_runs"}
    assert "done-when, held-out half:" in text and text.strip().splitlines()[-1].startswith("wrote ")


def test_fit_prints_the_kernels_own_ceiling(fit) -> None:
    """The fit reads its scores against the kernel's own repeats (corpus.kernel_self_score(): a, a-2
    and b, copies of one capture and its scenario file, judged as each other's twins, 6 ordered
    pairs; c's file differs): a column of the aggregate tables, the done-when pairs' line, and the
    record's ``kernel_self_score``."""
    _, rec, text = fit
    own = rec["kernel_self_score"]
    assert own["run_pairs"] == 6 and 0 < own["score"] <= 1 and own["per_metric"]["atomic_req_pages"] == 1.0
    assert "kernel vs itself" in text
    assert text.count(f"target 85 %: missed (the kernel against its own repeats: {own['score']:.1%})") + text.count(
        f"target 85 %: met (the kernel against its own repeats: {own['score']:.1%})") == 2


def test_fit_in_two_processes_is_the_same_fit(fit, tmp_path) -> None:
    """--jobs 2 replays the grid's points in two forked workers: the same lines, points, fitted
    values and halves as the serial fit (the replays are deterministic); `how` names --jobs."""
    root, rec, text = fit
    out = tmp_path / "fit2.json"
    rc, text2, err = _cli("fidelity", "fit", str(root), *TINY, "--out", str(out), "--jobs", "2")
    assert rc == 0, err
    rec2 = json.loads(out.read_text())
    same = lambda t: [ln for ln in t.splitlines() if not ln.startswith(("fit: ", "wrote "))]   # noqa: E731
    assert same(text2) == same(text)
    for k in ("points", "fitted", "calibration", "held-out", "captures_own", "kernel_spread", "kernel_self_score", "grid"):
        assert rec2[k] == rec[k], k
    assert rec2["how"].endswith("--jobs 2") and "--jobs" not in rec["how"]
    rc, _, err = _cli("fidelity", "fit", str(root), *TINY, "--jobs", "0")
    assert rc == 2 and err.count("\n") == 1 and "--jobs" in err, err


def test_fit_done_when_numbers(fit) -> None:
    _, rec, _ = fit
    dw = rec["calibration"]["done_when"]
    (pair,) = dw["wsf10_to_100"]["pairs"]            # a + a-2 at wsf 10, c at wsf 100
    assert pair["wsf10"] == ["a", "a-2"] and pair["wsf100"] == ["c"]
    assert pair["real_ratio"] == pytest.approx(3039 / ((3039 + 4558) / 2), abs=1e-3)
    runs = {x["run"]: x for x in dw["kswapd_runs"]["per_run"]}
    assert runs["a"]["ratio"] == pytest.approx(runs["a"]["sim"] / runs["a"]["real"], abs=1e-3)
    assert dw["failed_pages"]["runs"] == 3 and dw["boosts_at_samples"]["runs"] == 3
    assert dw["pairs_within"]["score"] == rec["calibration"]["score"]
    assert rec["held-out"]["done_when"]["wsf10_to_100"]["pairs"] == []


def test_fit_scores_are_fidelitys_at_the_fitted_values(fit, tmp_path) -> None:
    """The fit's two scores are what `atomgym fidelity` gives the corpus whose scenarios carry the
    fitted values (the whole corpus's kernel spread in both)."""
    root, rec, _ = fit
    copy = tmp_path / "corpus"
    shutil.copytree(root, copy)
    f = rec["fitted"]
    for r in ("a", "a-2", "b", "c"):
        p = copy / r / "scenario.yaml"
        p.write_text(p.read_text().replace("reclaim_pages_per_ms: 100", f"reclaim_pages_per_ms: {f['reclaim_pages_per_ms']:g}"))
    rc, out, err = _cli("fidelity", str(copy), "--json")
    assert rc == 0, err
    halves = json.loads(out)["halves"]
    assert halves["calibration"]["score"] == rec["calibration"]["score"]
    assert halves["held-out"]["score"] == rec["held-out"]["score"]


def test_fit_refuses_bad_arguments_in_one_line(fit, tmp_path) -> None:
    root, _, _ = fit
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    nohalf = tmp_path / "nohalf"
    shutil.copytree(root, nohalf)
    m = json.loads((nohalf / "MANIFEST.json").read_text())
    del m["runs"][0]["half"]
    (nohalf / "MANIFEST.json").write_text(json.dumps(m))
    onehalf = tmp_path / "onehalf"
    shutil.copytree(root, onehalf)
    m = json.loads((onehalf / "MANIFEST.json").read_text())
    for r in m["runs"]:
        r["half"] = "calibration"
    (onehalf / "MANIFEST.json").write_text(json.dumps(m))
    for argv, needle in [
        ([str(root), "--grid", "kswapd_rate=1"], "KEY one of reclaim_pages_per_ms"),
        ([str(root), "--grid", "wake_latency_ms"], "give KEY=V1,V2"),
        ([str(root), "--grid", "wake_latency_ms=1,x"], "'x' is not a number"),
        ([str(root), "--grid", "wake_latency_ms=1000"], "valid: 0 .. 100"),
        ([str(root), "--grid", "wake_latency_ms=nan"], "valid: 0 .. 100"),
        ([str(root), "--grid", "wake_latency_ms=1,1"], "1 given twice"),
        ([str(root), "--grid", "wake_latency_ms=1", "--grid", "wake_latency_ms=2"], "given twice"),
        ([str(root), "--grid", "reclaim_pages_per_ms=" + ",".join(str(i) for i in range(1, 60))], "at most"),
        ([str(root), *TINY, "--out", str(mine)], "exists; add --force"),
        ([str(root), *TINY, "--out", str(tmp_path / "no" / "f.json")], "no folder"),
        ([str(root), *TINY, "--out", str(tmp_path)], "a folder or a link"),
        ([str(tmp_path / "nope"), *TINY], "no such folder"),
        ([str(CAP), *TINY], "no MANIFEST.json"),
        ([str(nohalf), *TINY], "run 'a' has no \"half\""),
        ([str(onehalf), *TINY], "no run in half 'held-out'"),
        ([str(root), "--seed", "-1"], "argument --seed: -1: expected an integer in [0, 9223372036854775807]"),
        ([], "the following arguments are required: CORPUS"),
    ]:
        rc, out, err = _cli("fidelity", "fit", *argv)
        assert rc == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err and out == "", (argv, err)
    assert mine.read_text() == "my notes" and not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json", "nohalf", "onehalf"]   # nothing written
    rc, _, err = _cli("fidelity", "fit", str(root), *TINY[:4], "--grid", "direct_reclaim_pages_per_ms=50",
                      "--out", str(mine), "--force")
    assert rc == 0, err
    assert json.loads(mine.read_text())["kind"] == "atomgym fidelity fit"


# ---- the ratchet ----------------------------------------------------------------------------------
def test_ratchet_fails_below_the_committed_score() -> None:
    from atomgym.realkernel.corpus import ratchet_failures
    committed = {"score": 0.6, "halves": {"calibration": {"score": 0.6}, "held-out": {"score": 0.5}}}
    same = {"score": 0.6, "halves": {"calibration": {"score": 0.6}, "held-out": {"score": 0.5}}}
    assert ratchet_failures(same, committed) == []
    better = {"score": 0.7, "halves": {"calibration": {"score": 0.7}, "held-out": {"score": 0.51}}}
    assert ratchet_failures(better, committed) == []
    worse = {"score": 0.6, "halves": {"calibration": {"score": 0.62}, "held-out": {"score": 0.49}}}
    assert ratchet_failures(worse, committed) == ["held-out half: 0.49 < committed 0.5"]
    assert ratchet_failures({"score": 0.59, "halves": {}}, committed)[0] == "corpus: 0.59 < committed 0.6"


def test_shipped_corpus_fidelity_ratchet() -> None:
    """The ratchet: the shipped corpus replayed through this tree's simulator scores at least what
    corpus/fidelity-score.json says, over all runs and on each half (regenerate the file with the
    command it names when the simulator improves, or changes on purpose)."""
    from atomgym.realkernel.corpus import ratchet_failures
    committed = json.loads(SCORE_FILE.read_text())
    rc, out, err = _cli("fidelity", str(CORPUS), "--json")
    assert rc == 0, err
    rep = json.loads(out)
    assert [r["run"] for r in rep["runs"]] == committed["runs"]
    assert set(committed["halves"]) == {"calibration", "held-out"}
    assert ratchet_failures(rep, committed) == [], (rep["score"], rep["halves"])
    assert committed["how"] == "python -m atomgym fidelity corpus --write-score corpus/fidelity-score.json"


def test_shipped_scenarios_carry_the_fitted_values() -> None:
    """The fitted values are the real-kernel machine's defaults: the corpus generator's, the
    shipped real-atomic-stream scenarios', and every capture's copy (what fidelity replays)."""
    from atomgym.sim.scenario import load_scenario
    fitted = json.loads(FIT_FILE.read_text())["fitted"]
    gen = _script("corpus_scenarios")
    assert {k: float(v) for k, v in gen.KSWAPD.items()} == fitted
    paths = [ROOT / "configs" / "scenarios" / f"{n}.yaml" for n in ("real-atomic-stream", "real-atomic-stream-wsf100")]
    paths += sorted(CORPUS.glob("*/scenario.yaml"))
    for p in paths:
        k = load_scenario(p).kswapd
        assert {n: getattr(k, n) for n in fitted} == fitted, p


def test_corpus_scenarios_rewrites_only_the_kswapd_section_of_a_copy(tmp_path, monkeypatch, capsys) -> None:
    """scripts/corpus_scenarios.py: a captured copy differing only in kswapd: is rewritten to the
    scenario; one differing anywhere else (another experiment) is refused, exit 1, left alone."""
    gen = _script("corpus_scenarios")
    (tmp_path / "configs" / "corpus").mkdir(parents=True)
    corpus = tmp_path / "corpus"
    name, var, what = gen.RUNS[0]
    text = gen.scenario(name, var, what)
    old = text.replace(f"wake_latency_ms: {gen.KSWAPD['wake_latency_ms']:g}", "wake_latency_ms: 99")
    assert old != text and gen.without_kswapd(old) == gen.without_kswapd(text)
    other = old.replace("duration_s: 24", "duration_s: 25")
    for run, body in (("a", old), ("b", other)):
        (corpus / run).mkdir(parents=True)
        (corpus / run / "scenario.yaml").write_text(body)
    (corpus / "MANIFEST.json").write_text(json.dumps({"runs": [
        {"run": r, "scenario": f"configs/corpus/{name}.yaml"} for r in ("a", "b")]}))
    monkeypatch.setattr(gen, "OUT", tmp_path / "configs" / "corpus")
    monkeypatch.setattr(gen, "CORPUS", corpus)
    monkeypatch.setattr(gen, "RUNS", [(name, var, what)])
    monkeypatch.setattr("sys.argv", ["corpus_scenarios.py"])
    assert gen.main() == 1
    assert (corpus / "a" / "scenario.yaml").read_text() == text
    assert (corpus / "b" / "scenario.yaml").read_text() == other
    assert (tmp_path / "configs" / "corpus" / f"{name}.yaml").read_text() == text
    assert "refused" in capsys.readouterr().out


def test_corpus_scenarios_write_a_fitted_cpu_share_and_leave_a_zero_one_out(monkeypatch) -> None:
    """scripts/corpus_scenarios.py: KSWAPD's cpu_share goes into the kswapd: section when a fit
    chose a share (the scenario then replays with it), and a share of 0 (the default) writes no
    line, so the files stay as they were before the rule existed."""
    from atomgym.sim.scenario import scenario_from_dict
    import yaml
    gen = _script("corpus_scenarios")
    name, var, what = gen.RUNS[0]
    assert "cpu_share" not in gen.scenario(name, var, what) and gen.KSWAPD["cpu_share"] == 0
    monkeypatch.setitem(gen.KSWAPD, "cpu_share", 0.5)
    text = gen.scenario(name, var, what)
    assert "  cpu_share: 0.5\n" in text
    assert scenario_from_dict(yaml.safe_load(text)).kswapd.cpu_share == 0.5
