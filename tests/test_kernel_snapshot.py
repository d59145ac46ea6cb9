"""The snapshot parser: real snapshots, a bare zoneinfo, and every class of bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest

from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.snapshot import SnapshotError, parse_snapshot, parse_text
from snapshot_helpers import SHARED, require_snapshots, snapshot_text, zoneinfo_text


def test_real_snapshots_parse() -> None:
    snaps = require_snapshots()
    files = sorted(snaps.glob("*.txt"))
    assert len(files) == 9
    for f in files:
        s = parse_snapshot(f)
        assert s.warnings == [], (f.name, s.warnings)
        assert len(s.zones) % 5 == 0
        assert [z.zone for z in s.zones[:5]] == ["DMA", "DMA32", "Normal", "Movable", "Device"]
        assert s.lowmem_reserve_ratio == [256, 256, 32, 0, 0]


def test_618_vm_fields() -> None:
    s = parse_snapshot(require_snapshots() / "vm-6.18-3zones.txt")
    assert (s.version.major, s.version.minor) == (6, 18) and not s.version_assumed
    assert s.thp == "madvise"          # "always [madvise] never"
    assert s.min_free_kbytes == 67584
    normal = s.zones[2]
    # the per-node stats and pagesets ("high:  7082") must not be read as watermarks
    assert (normal.min, normal.low, normal.high, normal.promo) == (11231, 14038, 16845, 19652)
    assert (normal.spanned, normal.present, normal.managed) == (5505024, 5505024, 1540096)
    assert s.zones[0].protection == [0, 3019, 9035, 9035, 9035]
    assert s.vmstat["nr_free_pages"] == 2029319
    assert s.meminfo["MemTotal"] == 24684096
    assert s.movable_rule_from_zones() is True


def test_61_has_no_promo_and_two_nodes() -> None:
    s = parse_snapshot(require_snapshots() / "2G-smp2-numa2-default--start.txt")
    assert s.nodes == [0, 1]
    assert all(z.promo is None for z in s.zones)
    assert s.movable_rule_from_zones() is False
    assert (s.version.major, s.version.minor) == (6, 1)


def _machine(release: str = "6.18.0") -> Machine:
    m = Machine(managed=np.array([3840, 700000, 300000, 0, 0]), version=KernelVersion.parse(release))
    return m.boot()


def test_bare_zoneinfo_warns_about_every_default(tmp_path) -> None:
    m = _machine()
    p = tmp_path / "zoneinfo"
    p.write_text(zoneinfo_text(m))
    s = parse_snapshot(p)
    text = "\n".join(s.warnings)
    assert "bare /proc/zoneinfo" in text
    for path in ("osrelease", "min_free_kbytes", "watermark_scale_factor", "watermark_boost_factor",
                 "lowmem_reserve_ratio", "transparent_hugepage"):
        assert path in text, path
    assert s.version_assumed and (s.version.major, s.version.minor) == (6, 18)
    # min_free_kbytes is inferred from the min watermarks: the recomputed machine matches
    assert s.min_free_kbytes // 4 == m.min_free_kbytes // 4
    rows = s.machine().zone_rows()
    assert [r["min"] for r in rows] == [r["min"] for r in m.zone_rows()]


def test_roundtrip_full_snapshot() -> None:
    m = _machine("6.1.0-56-amd64")
    s = parse_text(snapshot_text(m, release="6.1.0-56-amd64", promo=False), "x.txt")
    assert s.warnings == []
    assert s.min_free_kbytes == m.min_free_kbytes and s.thp == m.thp
    assert [z.min for z in s.zones] == [r["min"] for r in m.zone_rows()]


# ---- bad input: each a SnapshotError naming file, line and the expectation ----------------
GOOD = None


def _good() -> str:
    return snapshot_text(_machine())


def _line_of(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln]
    return hits[nth]


def _err(text: str) -> str:
    with pytest.raises(SnapshotError) as ei:
        parse_text(text, "snap.txt")
    msg = str(ei.value)
    assert msg.startswith("snap.txt"), msg
    assert "\n" not in msg, msg
    return msg


def test_empty_file() -> None:
    assert "empty" in _err("")
    assert "empty" in _err("\n  \n")


def test_not_a_snapshot() -> None:
    msg = _err("hello world\n")
    assert "snap.txt:1:" in msg and "==> PATH <==" in msg


def test_truncated_zoneinfo() -> None:
    text = _good()
    lines = text.splitlines()
    cut = _line_of(text, "        present", 2)  # Normal zone's block loses present..protection
    bad = "\n".join(lines[:cut - 1] + lines[_line_of(text, "Node 0, zone  Movable") - 1:]) + "\n"
    msg = _err(bad)
    assert f"snap.txt:{_line_of(text, 'zone   Normal')}:" in msg
    assert "truncated" in msg and "present" in msg and "managed" in msg and "protection" in msg


def test_truncated_at_end_of_file() -> None:
    text = zoneinfo_text(_machine())
    lines = text.splitlines()
    msg = _err("\n".join(lines[:-3]) + "\n")
    assert "Device" in msg and "truncated" in msg


@pytest.mark.parametrize("needle,replace,expect", [
    ("        min      ", "        min      12x", "not a number"),
    ("        min      ", "        min      1_2", "not a number"),
    ("  pages free", "  pages free     lots", "not a number"),
    ("protection: (", "        protection: (0, 1, two, 3, 4)", "not a number"),
    ("protection: (", "        protection: (0, 1, 2)", "3 values"),
    ("        managed  ", "        managed  1 2", "one integer"),
])
def test_garbage_numbers_in_zoneinfo(needle: str, replace: str, expect: str) -> None:
    text = _good()
    n = _line_of(text, needle, 1)
    lines = text.splitlines()
    lines[n - 1] = replace
    msg = _err("\n".join(lines) + "\n")
    assert f"snap.txt:{n}:" in msg and expect in msg, msg


@pytest.mark.parametrize("path,value,expect", [
    ("min_free_kbytes", "lots", "not a number"),
    ("min_free_kbytes", "-5", "outside 0..2147483647"),
    ("watermark_scale_factor", "0", "outside 1..3000"),
    ("lowmem_reserve_ratio", "256\t256\t32", "expected 5 tab-separated integers"),
    ("lowmem_reserve_ratio", "256\t256\tx\t0\t0", "not a number"),
    ("enabled", "always madvise never", "bracketed"),
    ("enabled", "[sometimes] madvise never", "bracketed"),
    ("osrelease", "linux", "kernel version"),
])
def test_garbage_in_sysctl_files(path: str, value: str, expect: str) -> None:
    text = _good()
    n = _line_of(text, path) + 1
    lines = text.splitlines()
    lines[n - 1] = value
    msg = _err("\n".join(lines) + "\n")
    assert f"snap.txt:{n}:" in msg and expect in msg, msg


def test_missing_zone() -> None:
    text = _good()
    lines = text.splitlines()
    a = _line_of(text, "zone  Movable")
    b = _line_of(text, "zone   Device")
    msg = _err("\n".join(lines[:a - 1] + lines[b - 1:]) + "\n")
    assert "Node 0" in msg and "missing Movable" in msg


def test_second_node_incomplete() -> None:
    m = Machine(managed=np.array([3840, 200000, 0, 0, 0, 0, 0, 250000, 0, 0]), version=KernelVersion(6, 18)).boot()
    text = zoneinfo_text(m)
    lines = text.splitlines()
    cut = _line_of(text, "Node 1, zone  Movable")
    msg = _err("\n".join(lines[:cut - 1]) + "\n")
    assert "Node 1" in msg and "missing Movable, Device" in msg


def test_duplicated_header() -> None:
    text = _good() + "\n==> /proc/sys/vm/min_free_kbytes <==\n1024\n"
    msg = _err(text)
    assert "duplicated header" in msg and "min_free_kbytes" in msg
    assert f"(first at line {_line_of(text, '==> /proc/sys/vm/min_free_kbytes')})" in msg


def test_no_zoneinfo_section() -> None:
    msg = _err("==> /proc/sys/vm/min_free_kbytes <==\n1024\n")
    assert "/proc/zoneinfo" in msg


def test_unknown_zone_and_multi_line_sysctl() -> None:
    assert "unknown zone 'HighMem'" in _err("Node 0, zone HighMem\n  pages free 1\n")
    text = _good().replace("==> /proc/sys/vm/watermark_scale_factor <==\n10\n",
                           "==> /proc/sys/vm/watermark_scale_factor <==\n10\n20\n")
    assert "expected one line" in _err(text)


def test_binary_file(tmp_path) -> None:
    p = tmp_path / "bin"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SnapshotError, match=re.escape(str(p)) + ": not a text file"):
        parse_snapshot(p)


def test_pre_50_zoneinfo_without_boost_lines() -> None:
    m = _machine("4.19.0")
    text = snapshot_text(m, release="4.19.0-27-amd64", promo=False)
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("boost")) + "\n"
    s = parse_text(text, "old.txt")
    assert all(z.boost == 0 for z in s.zones)
    joined = " ".join(s.warnings)
    assert "no `boost` lines" in joined and "older than the oldest modelled" in joined
    # but one zone without boost among zones that have it is a truncated block
    text = snapshot_text(m, release="6.18.0")
    lines = text.splitlines()
    lines.pop(_line_of(text, "boost", 1) - 1)
    assert "missing boost" in _err("\n".join(lines) + "\n")


def test_node_ids_kept_as_printed() -> None:
    m = Machine(managed=np.array([3840, 200000, 0, 0, 0, 0, 0, 250000, 0, 0]), version=KernelVersion(6, 18)).boot()
    text = snapshot_text(m).replace("Node 1,", "Node 2,")
    s = parse_text(text, "n.txt")
    assert s.nodes == [0, 2]
    assert [z.node for z in s.zones] == [0] * 5 + [2] * 5


def test_vendored_snapshots_equal_the_shared_originals():
    """tests/data/snapshots is a byte-for-byte copy of ../shared/data/snapshots (the ground truth);
    where the originals are beside the repository, any drift fails here."""
    ours = require_snapshots()
    theirs = SHARED / "data" / "snapshots"
    if not theirs.is_dir():
        pytest.skip(f"{theirs} not beside this clone; the vendored copy is used alone")
    names = sorted(p.name for p in theirs.iterdir() if p.is_file())
    assert names == sorted(p.name for p in ours.iterdir() if p.is_file())
    for n in names:
        assert (ours / n).read_bytes() == (theirs / n).read_bytes(), n
