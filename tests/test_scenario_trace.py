"""scripts/make_trace.py is deterministic and the shipped trace is what it generates."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from atomgym.sim.scenario import REPO_ROOT, ScenarioError, load_trace

SCRIPT = REPO_ROOT / "scripts" / "make_trace.py"
SHIPPED = REPO_ROOT / "configs" / "traces" / "incast-onoff-25g.csv"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_make_trace_deterministic(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for p, seed in ((a, "3"), (b, "3"), (c, "4")):
        r = _run("--seed", seed, "--duration-s", "5", "-o", str(p))
        assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    t = load_trace(a)
    assert t.size == 5000 and (t >= 0).all() and (t == np.round(t)).all()


def test_shipped_trace_is_the_default_output(tmp_path):
    out = tmp_path / "t.csv"
    assert _run("-o", str(out)).returncode == 0
    assert out.read_bytes() == SHIPPED.read_bytes(), "configs/traces is stale: rerun scripts/make_trace.py"


def test_shipped_trace_shape():
    t = load_trace(SHIPPED)
    line_per_ms = 25e9 / (8 * 1538) / 1000
    assert t.size == 60000
    assert t.max() <= line_per_ms
    hot = t >= 0.7 * line_per_ms
    assert 0.005 < hot.mean() < 0.2                 # bursts are rare but present
    starts = np.flatnonzero(hot[1:] & ~hot[:-1])
    assert len(starts) >= 20                          # many distinct bursts
    assert 1e5 < t.mean() * 1000 < 5e5               # mean rate (pps) well under line rate


def test_make_trace_rejects_bad_args():
    r = _run("--duration-s", "0")
    assert r.returncode != 0 and "--duration-s must be > 0" in r.stderr


def test_load_trace_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("# c\npackets\n5\n-1\n")
    with pytest.raises(ScenarioError, match=r"t.csv:4: trace: '-1' is out of range"):
        load_trace(p)
    p.write_text("pkts\n5\n")
    with pytest.raises(ScenarioError, match=r"t.csv:1: trace: not a trace: expected the header line .packets."):
        load_trace(p)
    p.write_text("packets\nfive\n")
    with pytest.raises(ScenarioError, match=r"t.csv:2: trace: 'five' is not a number"):
        load_trace(p)


@pytest.mark.parametrize("args, needle", [(["--seed", "-1"], "--seed must be in 0.."),
                                          (["--duration-s", "nan"], "--duration-s must be a finite number"),
                                          (["--interval-ms", "1e-9"], "more than 10^8 rows")])
def test_make_trace_refuses_bad_numbers_in_one_line(tmp_path, args, needle):
    r = subprocess.run([sys.executable, "scripts/make_trace.py", *args, "-o", str(tmp_path / "t.csv")],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and needle in r.stderr, r.stderr
    assert not (tmp_path / "t.csv").exists()


def test_make_trace_never_replaces_a_users_file_without_force(tmp_path):
    out = tmp_path / "mine.csv"
    out.write_text("mine")
    r = subprocess.run([sys.executable, "scripts/make_trace.py", "--duration-s", "1", "-o", str(out)],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 2 and "--force" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert out.read_text() == "mine"
    r = subprocess.run([sys.executable, "scripts/make_trace.py", "--duration-s", "1", "-o", str(out), "--force"],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert r.returncode == 0 and out.read_text().startswith("# synthetic RX trace")
    assert [p.name for p in tmp_path.iterdir()] == ["mine.csv"]      # no temporary file left
