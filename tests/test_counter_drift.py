"""scripts/counter_drift.py, the command behind docs/realkernel.md's "The counter at the samples":
the counter (zoneinfo's free) against the buddy pages (pagetypeinfo's free blocks) on a hand-made
capture, the documented figures of the shipped corpus (kernel and twin), one line and exit 2 on a
capture without pagetypeinfo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "counter_drift.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO)


def _sample(t: float, free: int, blocks: dict[str, list[int]] | None) -> dict:
    wm = {"min": 942, "low": 1184, "high": 1426, "boost": 0}
    s = {"t": t, "vmstat": {}, "atomic": {},
         "zones": [{"node": 0, "zone": "DMA", "free": 3808, "managed": 3840, **wm},
                   {"node": 0, "zone": "DMA32", "free": free, "managed": 242093, **wm}]}
    if blocks is not None:
        s["pagetypes"] = {"0:DMA32": blocks}
    return s


def test_a_hand_made_capture(tmp_path):
    """DMA32 (the most managed pages) at four samples: 1 + 2x4 + 512x2 = 1033 buddy pages against
    a counter of 1033 (exact), 1037 (4 off) and 1100 (67 off); a sample without pagetypeinfo is
    not counted."""
    blocks = {"Unmovable": [1, 0, 2], "Movable": [0] * 9 + [2]}
    s = [_sample(0.0, 1033, blocks), _sample(0.3, 1037, blocks), _sample(0.6, 1100, blocks), _sample(0.9, 1033, None)]
    d = tmp_path / "cap"
    d.mkdir()
    (d / "timeseries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in s))
    r = _run(str(d), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[str(d)] == {"zone": "DMA32", "samples": 3, "exact": 1, "within_8": 1, "beyond_8": 1}
    r = _run(str(d))
    assert r.returncode == 0 and "equals its buddy pages at 1 of 3 samples" in r.stdout


def test_the_documented_figures_of_the_shipped_corpus():
    """docs/realkernel.md: base-4's counter equals its buddy pages at 73 of its 82 samples, the
    twin's at 38; ram2g-4 77 and 51."""
    r = _run("corpus/base-4", "corpus/ram2g-4", "--twin", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["corpus/base-4"]["exact"], out["corpus/base-4"]["twin"]["exact"]) == (73, 38)
    assert (out["corpus/ram2g-4"]["exact"], out["corpus/ram2g-4"]["twin"]["exact"]) == (77, 51)


def test_a_capture_without_pagetypeinfo_is_one_line(tmp_path):
    d = tmp_path / "cap"
    d.mkdir()
    (d / "timeseries.jsonl").write_text("".join(json.dumps(_sample(t, 1000, None)) + "\n" for t in (0.0, 0.3)))
    r = _run(str(d))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no /proc/pagetypeinfo" in r.stderr
