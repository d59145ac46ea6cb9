"""The README is a front page whose examples run as written: the first-episode-and-training block,
the simulator snippet and the `check`/`whatif` console lines (against the snapshots the repo ships)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block(after: str, lang: str) -> str:
    i = README.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, i)
    assert m, f"no ```{lang} block after {after!r}"
    return m.group(1)


def _run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # SB3_LOGDIR: the example's model has SB3's default logger, whose folder would go to the system's /tmp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SB3_LOGDIR": str(tmp_path / "sb3-log")}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 250
    heads = re.findall(r"^## (.+)$", README, flags=re.M)
    # the make-reset-step example comes before everything measured
    assert heads.index("A first episode, and a minute of training") < heads.index("Results")
    for link in re.findall(r"\]\((docs/[\w./-]+?)(?:#[\w-]+)?\)", README):
        assert (ROOT / link).exists(), link


@pytest.mark.slow
def test_first_episode_and_training_example_runs(tmp_path):
    code = _block("## A first episode", "python")
    assert "env.reset(" in code and "env.step(" in code and ".learn(" in code
    r = _run_python(code, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    shape, fail, drops, reserved = r.stdout.split()[-4:]
    assert shape == "(28,)" and float(reserved) > 0 and float(fail) >= 0 and float(drops) >= 0


def test_simulator_snippet_runs(tmp_path):
    code = _block("## What is inside", "python").replace("sim.advance(20_000)", "sim.advance(2_000)")
    r = _run_python(code, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(r.stdout.split()) == 8         # two counters of 4 machines


def _console_blocks() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each `$ ` line of the README's console blocks."""
    out = []
    for blk in re.findall(r"```\n(\$ .*?)```", README, flags=re.S):
        cmd, want = None, []
        for line in blk.splitlines():
            if line.startswith("$ "):
                if cmd:
                    out.append((cmd, want))
                cmd, want = line[2:], []
            elif line.startswith("    --") and not want:
                cmd = cmd.rstrip("\\ ") + " " + line.strip()
            else:
                want.append(line)
        if cmd:
            out.append((cmd, want))
    return out


@pytest.mark.parametrize("cmd,want", _console_blocks(), ids=lambda x: x[:40] if isinstance(x, str) else "")
def test_console_examples_print_what_the_readme_shows(cmd, want):
    assert cmd.startswith("python -m atomgym ")
    # as a new user types it, from the clone's root: the snapshots are the repository's own copies
    assert "../" not in cmd, cmd
    cmd = cmd.replace("python ", f"{sys.executable} ", 1)
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == want
