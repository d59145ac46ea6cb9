"""scripts/scenario_outcomes.py, the command that measures the outcomes the shipped scenarios'
descriptions state (docs/scenarios.md): it prints a row per counter and a column per seed, counts
the losing draws of a randomized training scenario, and refuses a name that is not a scenario."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scenario_outcomes.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_outcomes_of_a_shipped_scenario_per_seed():
    r = _run("quiet", "--seeds", "1,2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "quiet (one 60 s episode, seeds 1,2):"
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert rows["atomic_fail"] == ["0", "0"] and rows["pfmemalloc_drop"] == ["0", "0"]   # the control
    assert set(rows) >= {"rx_missed", "rcvbuf_drop", "fallback_boosts", "pageoutrun", "allocstall"}


def test_an_unknown_scenario_is_one_line_exit_2():
    r = _run("no-such-scenario")
    assert r.returncode == 2 and "'no-such-scenario' is not a shipped scenario" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_bad_seeds_are_one_line_exit_2():
    for bad in ("1,x", "-3", ""):
        r = _run("quiet", "--seeds", bad)
        assert r.returncode == 2 and "--seeds" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)


def test_memory_overrides_run_and_bad_ones_are_one_line_exit_2():
    """--memory KEY=VALUE replaces a key of the memory: section, validated as in a scenario file:
    real-atomic-stream with a file's (MOVABLE) page cache instead of the disk's counts differently
    from the shipped file."""
    on = _run("real-atomic-stream", "--seeds", "1")
    off = _run("real-atomic-stream", "--seeds", "1", "--memory", "page_cache_gfp=GFP_HIGHUSER_MOVABLE")
    assert on.returncode == 0 and off.returncode == 0, (on.stderr, off.stderr)
    assert on.stdout != off.stdout
    for bad, what in (("nosuch=1", "memory.nosuch: unknown key"), ("reclaim_reforms_pageblocks=maybe", "expected true or false"),
                      ("noequals", "expected KEY=VALUE")):
        r = _run("quiet", "--memory", bad)
        assert r.returncode == 2 and what in r.stderr and "Traceback" not in r.stderr and r.stdout == "", (bad, r.stderr)
