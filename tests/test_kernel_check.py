"""`check` against the real snapshots, the boot-time pattern, and the replay of sequences.json."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from atomgym.cli import check_snapshot, main
from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.snapshot import parse_snapshot, parse_text
from snapshot_helpers import require_snapshots, snapshot_text


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out, err)
    return code, out.getvalue(), err.getvalue()


def _files(pattern: str) -> list[str]:
    return sorted(str(p) for p in require_snapshots().glob(pattern))


def test_after_snapshots_and_618_are_exact() -> None:
    files = _files("*--after-*.txt") + _files("vm-6.18-*.txt")
    assert len(files) == 6
    for f in files:
        rep = check_snapshot(parse_snapshot(f))
        assert rep["status"] == "equal", (f, [z for z in rep["zones"] if any(
            v.get("diff", 0) or v.get("equal") is False for v in z["fields"].values())])
        code, out, _ = run(["check", f])
        assert code == 0 and "result: every zone equal" in out


def test_618_vm_every_value() -> None:
    snap = parse_snapshot(require_snapshots() / "vm-6.18-3zones.txt")
    rows = snap.machine().zone_rows()
    got = [(r["min"], r["low"], r["high"], r["promo"], r["protection"]) for r in rows]
    assert got == [
        (28, 35, 42, 49, [0, 3019, 9035, 9035, 9035]),
        (5636, 7045, 8454, 9863, [0, 0, 6016, 6016, 6016]),
        (11231, 14038, 16845, 19652, [0, 0, 0, 0, 0]),
        (32, 32, 32, 32, [0, 0, 0, 0, 0]),        # empty Movable: clamp(0/1024, 32, 128)
        (0, 0, 0, 0, [0, 0, 0, 0, 0]),
    ]
    # The 6.1 rule gives the empty Movable zone min 0: the version matters and is applied.
    old = snap.machine(KernelVersion(6, 1)).zone_rows()
    assert old[3]["min"] == 0


@pytest.mark.parametrize("name", ["1G-default--start.txt", "2G-smp2-numa2-default--start.txt",
                                  "4G-mf16384--start.txt"])
def test_start_snapshots_show_the_boot_pattern(name: str) -> None:
    f = str(require_snapshots() / name)
    rep = check_snapshot(parse_snapshot(f))
    assert rep["status"] == "boot-time pattern"
    bp = rep["boot_pattern"]
    assert (bp["node"], bp["zone"]) == (0, "DMA32")
    lo, hi = bp["fewer_managed_pages_range"]
    assert 200 <= lo <= hi <= 4000
    assert bp["protection"] == "fresh"
    code, out, _ = run(["check", f])
    assert code == 0
    assert (f"boot-time pattern: matches with {lo} fewer managed pages in Node 0 DMA32" in out
            and "the first recompute removes it" in out)
    assert run(["check", f, "--strict"])[0] == 1
    code, out, _ = run(["check", f, "--json"])
    d = json.loads(out)
    assert code == 0 and d["status"] == "boot-time pattern" and d["exit"] == 0


def test_start_snapshots_match_after_recompute_with_fewer_pages() -> None:
    """The pattern is real: rebuilding the 1G start machine with the reported delta
    reproduces every observed min/low/high exactly."""
    f = require_snapshots() / "1G-default--start.txt"
    snap = parse_snapshot(f)
    bp = check_snapshot(snap)["boot_pattern"]
    m = snap.machine()
    m.managed[1] -= bp["fewer_managed_pages"]
    m.recompute()
    assert [(r["min"], r["low"], r["high"]) for r in m.zone_rows()] == [(z.min, z.low, z.high) for z in snap.zones]


def _tamper(text: str, zone_header: str, key: str, delta: int) -> str:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if zone_header in ln)
    i = next(i for i in range(start, len(lines)) if lines[i].split()[:1] == [key])
    v = int(lines[i].split()[1])
    lines[i] = lines[i].replace(str(v), str(v + delta))
    return "\n".join(lines) + "\n"


def test_a_real_difference_is_reported(tmp_path) -> None:
    f = require_snapshots() / "1G-default--after-wsf-10.txt"
    bad = tmp_path / "bad.txt"
    bad.write_text(_tamper(f.read_text(), "zone    DMA32", "min", 1))
    code, out, _ = run(["check", str(bad)])
    assert code == 1
    assert "result: 1 values differ (no boot-time pattern fits)" in out
    assert "11089" in out and "+1" in out  # observed - model
    rep = check_snapshot(parse_snapshot(bad))
    dma32 = rep["zones"][1]["fields"]["min"]
    assert dma32 == {"observed": 11089, "model": 11088, "diff": 1}


def test_stale_protection_is_a_difference(tmp_path) -> None:
    f = require_snapshots() / "4G-mf16384--after-mf-16384.txt"
    text = f.read_text().replace("protection: (0, 2947, 3900, 3900, 3900)", "protection: (0, 2947, 3901, 3901, 3901)")
    p = tmp_path / "p.txt"
    p.write_text(text)
    code, out, _ = run(["check", str(p), "--json"])
    d = json.loads(out)
    assert code == 1 and d["status"] == "differs"
    assert d["zones"][0]["fields"]["protection"]["equal"] is False


def test_boosted_zone_compares_with_boost() -> None:
    m = Machine(managed=np.array([3840, 500000, 400000, 0, 0]), version=KernelVersion(6, 18)).boot()
    assert m.boost_zone(2)
    text = snapshot_text(m, release="6.18.1")
    rep = check_snapshot(parse_text(text, "boosted.txt"))
    assert rep["status"] == "equal"
    assert rep["zones"][2]["boost"] == 512


def test_movable_rule_taken_from_snapshot_over_release() -> None:
    """A release the threshold puts on the proportional side (6.2) whose empty Movable
    zone prints min 32: the snapshot's own evidence wins, and check passes."""
    m = Machine(managed=np.array([3840, 500000, 400000, 0, 0]), version=KernelVersion(6, 18)).boot()
    snap = parse_text(snapshot_text(m, release="6.2.0"), "x.txt")
    assert snap.version.movable_min_clamped is False
    assert snap.model_version().movable_min_clamped is True
    assert check_snapshot(snap)["status"] == "equal"


def test_sequences_replay_through_whatif() -> None:
    snaps = require_snapshots()
    seqs = json.loads((snaps / "sequences.json").read_text())
    n_steps = 0
    for seq in seqs:
        argv = ["whatif", str(snaps / seq["start"]), "--json"]
        for st in seq["steps"]:
            argv += ["--set", st["set"]]
        code, out, err = run(argv)
        assert code == 0, err
        lines = [json.loads(ln) for ln in out.splitlines()]
        assert len(lines) == len(seq["steps"])
        for got, want in zip(lines, seq["steps"]):
            n_steps += 1
            assert got["set"] == want["set"]
            assert got["min_free_kbytes"] == want["min_free_kbytes"], (seq["start"], want["set"])
            assert len(got["zones"]) == len(want["zones"])
            for gz, wz in zip(got["zones"], want["zones"]):
                for k in ("node", "zone", "managed", "boost", "min", "low", "high", "protection"):
                    assert gz[k] == wz[k], (seq["start"], want["set"], wz["node"], wz["zone"], k)
            # and the after-snapshot of that step checks exactly
            assert check_snapshot(parse_snapshot(snaps / want["snapshot"]))["status"] == "equal"
    assert n_steps == 5


def test_protection_known_answer() -> None:
    """setup_per_zone_lowmem_reserve(): lowmem_reserve[j] = Σ managed[i+1..j] / ratio[i],
    truncating; 0 for an empty zone i or a 0 ratio."""
    m = Machine(managed=np.array([4000, 1023, 31, 5000, 0]), version=KernelVersion(6, 18),
                lowmem_reserve_ratio=np.array([256, 256, 32, 0, 0])).recompute()
    assert m.zone_rows()[0]["protection"] == [0, 3, 4, 23, 23]         # 1023//256, 1054//256, 6054//256
    assert m.zone_rows()[1]["protection"] == [0, 0, 0, 19, 19]         # 31//256, 5031//256
    assert m.zone_rows()[2]["protection"] == [0, 0, 0, 156, 156]       # 5000//32
    assert m.zone_rows()[3]["protection"] == [0, 0, 0, 0, 0]           # ratio 0
