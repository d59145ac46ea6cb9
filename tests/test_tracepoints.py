"""The kernel's reclaim tracepoints of a traced capture (atomgym/realkernel/tracepoints.py) and
scripts/kswapd_trace.py over them, on a hand-written trace and on the shipped corpus/traced runs."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from atomgym.realkernel import tracepoints as tp
from atomgym.realkernel.errors import RealKernelError

ROOT = Path(__file__).resolve().parent.parent
TRACED = ROOT / "corpus" / "traced"
T0 = 100.0
TEXT = """\
           agrun-106     [000] d..3.   106.131350: mm_page_alloc_extfrag: page=(____ptrval____) pfn=0x7b00 alloc_order=0 fallback_order=8 pageblock_order=9 alloc_migratetype=1 fallback_migratetype=0 fragmenting=1 change_ownership=1
           agrun-106     [000] .....   106.131390: mm_vmscan_wakeup_kswapd: nid=0 order=0 gfp_flags=none
           agrun-106     [000] .....   106.132270: mm_vmscan_direct_reclaim_begin: order=0 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO
          <idle>-0       [000] d.s2.   106.132300: mm_vmscan_wakeup_kswapd: nid=0 order=0 gfp_flags=GFP_ATOMIC|__GFP_NOWARN
           agrun-106     [000] .....   106.132880: mm_vmscan_direct_reclaim_end: nr_reclaimed=51
         kswapd0-39      [000] .....   106.136590: mm_vmscan_kswapd_wake: nid=0 order=0
           agrun-105     [000] d..3.   100.500000: mm_page_alloc_extfrag: page=(____ptrval____) pfn=0x2e400 alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1
           agrun-105     [000] .....   107.000000: mm_vmscan_wakeup_kswapd: nid=0 order=0 gfp_flags=GFP_NOFS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_HARDWALL
           agrun-105     [000] .....   107.500000: mm_vmscan_direct_reclaim_begin: order=0 gfp_flags=GFP_NOFS|__GFP_NOWARN
         kswapd0-39      [000] .....   108.000000: mm_vmscan_kswapd_sleep: nid=0
"""


def _capture(tmp_path: Path, text: str = TEXT, packed: bool = False) -> Path:
    cap = tmp_path / "cap"
    cap.mkdir(parents=True)
    (cap / "events.json").write_text(json.dumps([{"t": 0.0, "what": "begin", "args": ["10.0", str(T0)]}]))
    (cap / "capture.json").write_text(json.dumps({"duration_s": 10.0}))
    if packed:
        with gzip.open(cap / "trace.txt.gz", "wt") as fh:
            fh.write(text)
    else:
        (cap / "trace.txt").write_text(text)
    return cap


def test_parse_times_names_args_and_order():
    ev = tp.parse(TEXT, T0)
    assert [e.t for e in ev] == sorted(e.t for e in ev)
    assert ev[0].name == "extfrag" and ev[0].t == pytest.approx(0.5) and ev[0].args["fallback_order"] == "10"
    wake = [e for e in ev if e.name == "kswapd_wake"]
    assert len(wake) == 1 and wake[0].task == "kswapd0" and wake[0].pid == 39 and wake[0].t == pytest.approx(6.13659)
    assert {e.name for e in ev} == {"extfrag", "wakeup_kswapd", "direct_reclaim_begin", "direct_reclaim_end",
                                    "kswapd_wake", "kswapd_sleep"}
    idle = [e for e in ev if e.pid == 0]
    assert idle and idle[0].task == "<idle>"


def test_waker_classes_and_boosting():
    assert tp.waker("none") == "boost"
    assert tp.waker("GFP_ATOMIC|__GFP_NOWARN") == "atomic" and tp.waker("GFP_NOWAIT") == "atomic"
    assert tp.waker("GFP_HIGHUSER_MOVABLE|__GFP_COMP") == "anon"
    assert tp.waker("GFP_NOFS|__GFP_NOWARN") == "cache"
    ev = tp.parse(TEXT, T0)
    frag = [e for e in ev if e.name == "extfrag"]
    assert [tp.boosting(e) for e in frag] == [False, True]       # order 10 whole; order 8 boosts


def test_direct_reclaim_calls_pair_by_task():
    calls = tp.direct_reclaim_calls(tp.parse(TEXT, T0))
    assert len(calls) == 2
    (b1, e1), (b2, e2) = calls
    assert b1.pid == e1.pid == 106 and e1.args["nr_reclaimed"] == "51"
    assert b2.pid == 105 and e2 is None                            # the trace ends inside it


def test_load_reads_plain_and_gzip_and_refuses_what_it_cannot(tmp_path):
    a = tp.load(_capture(tmp_path / "a"))
    b = tp.load(_capture(tmp_path / "b", packed=True))
    assert [(e.t, e.name) for e in a] == [(e.t, e.name) for e in b] and len(a) == 10
    bad = _capture(tmp_path / "c", TEXT + "this is not a trace line\n")
    with pytest.raises(RealKernelError, match=r"trace.txt:11: not a tracefs line"):
        tp.load(bad)
    none = _capture(tmp_path / "d")
    (none / "trace.txt").unlink()
    with pytest.raises(RealKernelError, match=r"no trace.txt; capture it with `atomgym realkernel run \.\.\. --trace`"):
        tp.load(none)
    link = _capture(tmp_path / "e")
    (link / "trace.txt").unlink()
    (link / "trace.txt").symlink_to(tmp_path / "a" / "cap" / "trace.txt")
    with pytest.raises(RealKernelError, match="a symbolic link"):
        tp.load(link)
    nobegin = _capture(tmp_path / "f")
    (nobegin / "events.json").write_text("[]")
    with pytest.raises(RealKernelError, match="no begin event"):
        tp.load(nobegin)
    (nobegin / "events.json").write_text('[1, {"what": "begin", "args": ["10", "x"]}]')   # not events, no t0
    with pytest.raises(RealKernelError, match="no begin event"):
        tp.load(nobegin)
    broken = _capture(tmp_path / "g", packed=True)
    (broken / "trace.txt.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(RealKernelError, match="not a complete gzip file"):
        tp.load(broken)


def _script(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "kswapd_trace.py"), *argv], capture_output=True,
                          text=True, timeout=300)


def test_script_counts_what_the_trace_holds(tmp_path):
    p = _script(str(_capture(tmp_path)), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    rows = rep["kernel"]
    assert len(rows) == 10
    assert rows[6]["runs"] == 1 and rows[6]["wake:boost"] == 1 and rows[6]["wake:atomic"] == 1
    assert rows[6]["dr:anon"] == 1 and rows[6]["fb:boost"] == 1 and rows[0]["fb:whole"] == 1
    assert rows[7]["wake:cache"] == 1 and rows[7]["dr:cache"] == 1 and rows[8]["sleeps"] == 1
    dr = rep["direct_reclaim"]
    assert dr["calls"] == 2 and dr["after_own_boost"] == 1 and dr["pages_per_call"] == 51
    assert dr["ms_per_call"] == pytest.approx(0.61)
    text = _script(str(_capture(tmp_path / "x"))).stdout
    assert "direct reclaim: 2 calls" in text and "1 of them within 5 ms after a boosting fallback" in text


@pytest.mark.parametrize("argv, msg", [
    (["nowhere"], "nowhere: no such capture folder"),
    (["--bin", "0", "X"], "--bin must be in (0, 3600]"),
])
def test_script_bad_input_is_one_line(tmp_path, argv, msg):
    argv = [str(tmp_path / a) if a in ("nowhere", "X") else a for a in argv]
    if "X" in " ".join(argv):
        _capture(tmp_path)
    p = _script(*argv)
    assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_script_on_a_trace_field_that_is_not_a_number_is_one_line(tmp_path):
    """A trace line's field that call_summary() or fallback_types() reads as a number and is not one:
    one line, exit 2 (it was a traceback, or an extfrag event left out of the counts unsaid)."""
    for bad in (TEXT.replace("nr_reclaimed=51", "nr_reclaimed=many"),
                TEXT.replace("alloc_migratetype=1", "alloc_migratetype=x")):
        p = _script(str(_capture(tmp_path / str(len(list(tmp_path.iterdir()))), bad)))
        assert p.returncode == 2 and "invalid literal" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_script_on_an_untraced_capture_is_one_line():
    p = _script(str(ROOT / "corpus" / "base-4"))
    assert p.returncode == 2 and "no trace.txt; capture it with" in p.stderr and "Traceback" not in p.stderr


def test_shipped_traced_captures_show_the_stall_after_the_tasks_own_boost():
    """corpus/traced (scripts/capture_corpus.py --traced): with a hog (base, ram512) nearly every
    direct-reclaim call follows, within 5 ms, a boosting fallback of the stalling task itself
    (docs/realkernel.md, "Tracepoints"); without one (nohog) none does. The table's columns add up to
    the trace's lines."""
    man = json.loads((TRACED / "MANIFEST.json").read_text())
    assert [r["run"] for r in man["runs"]] == ["base", "ram512", "nohog"]
    for run in ("base", "ram512", "nohog"):
        cap = TRACED / run
        events = tp.load(cap)
        p = _script(str(cap), "--json")
        assert p.returncode == 0, p.stderr
        rep = json.loads(p.stdout)
        assert sum(r["runs"] for r in rep["kernel"]) == sum(e.name == "kswapd_wake" for e in events)
        dr = rep["direct_reclaim"]
        assert dr["calls"] == sum(e.name == "direct_reclaim_begin" for e in events)
        if run == "nohog":
            assert dr["after_own_boost"] == 0
        else:
            assert dr["calls"] >= 50 and dr["after_own_boost"] >= 0.75 * dr["calls"]


def test_script_twin_columns():
    p = _script(str(TRACED / "base"), "--twin", "--json")
    assert p.returncode == 0, p.stderr
    twin = json.loads(p.stdout)["twin"]
    assert len(twin) == 25 and twin[24] is None            # the guest's last lines come after 24 s
    assert sum(r["runs"] for r in twin[:24]) > 100 and sum(r["fb:boost"] for r in twin[:24]) > 50


def test_first_failure_time_reads_the_begin_events_t0():
    """run.first_failure_t(): the module's first failed page (ktime ns) less capture.begin_t0(); no
    time without a failure or without a begin event that carries a numeric t0."""
    from atomgym.realkernel.capture import Capture
    from atomgym.realkernel.run import first_failure_t

    begin = {"what": "begin", "t": 0.0, "args": ["24", "100.25"]}
    assert first_failure_t(Capture(events=[begin], atomic={"first_fail_ns": 102_500_000_000})) == 2.25
    assert first_failure_t(Capture(events=[begin], atomic={"first_fail_ns": -1})) is None
    assert first_failure_t(Capture(events=[], atomic={"first_fail_ns": 5})) is None
    bad = {"what": "begin", "t": 0.0, "args": ["24", "soon"]}
    assert first_failure_t(Capture(events=[bad], atomic={"first_fail_ns": 5})) is None


def test_fallback_types_on_the_hand_written_trace_and_the_traced_corpus(tmp_path):
    """fallback_types(): a MOVABLE request that took an UNMOVABLE chunk (order 8: boosts) and an
    UNMOVABLE request that took a whole MOVABLE block (order 10). Over corpus/traced the kernel's
    fallbacks of UNMOVABLE requests take MOVABLE chunks (188) far more often than RECLAIMABLE ones (25),
    and RECLAIMABLE requests take UNMOVABLE chunks (26; MOVABLE 2): the orders zone_take() follows
    (docs/simulator.md, docs/realkernel.md "Which type a fallback takes")."""
    assert tp.fallback_types(tp.load(_capture(tmp_path))) == {("MOVABLE", "UNMOVABLE", "chunk"): 1,
                                                              ("UNMOVABLE", "MOVABLE", "block"): 1}
    tot: dict = {}
    for name in ("base", "ram512", "nohog"):
        for k, c in tp.fallback_types(tp.load(TRACED / name)).items():
            tot[k] = tot.get(k, 0) + c
    assert tot[("UNMOVABLE", "MOVABLE", "chunk")] == 188 and tot[("UNMOVABLE", "RECLAIMABLE", "chunk")] == 25
    assert tot[("RECLAIMABLE", "UNMOVABLE", "chunk")] == 26 and tot[("RECLAIMABLE", "MOVABLE", "chunk")] == 2
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "kswapd_trace.py"), str(TRACED / "ram512")],
                         capture_output=True, text=True, check=True).stdout
    assert "RECLAIMABLE <- UNMOVABLE chunk 23" in out.splitlines()[-1]
