"""CI smoke test of the real-kernel harness, through the commands a user types:
`python -m atomgym realkernel setup` (build into a temporary cache, then its boot check), `python -m
atomgym realkernel run` of the 20 s scenario tests/data/realkernel/real-smoke.yaml, and `python -m
atomgym fidelity` on the result.

It runs whenever the packages are installed (.ci/run installs them on a CI machine; `python -m
atomgym realkernel setup` as root installs them too; with ATOMGYM_REALKERNEL_INSTALL=1 and root
this test lets setup install them). With the packages there, any failure of the commands fails
the test; it skips only when they are absent, and says which. No other test needs QEMU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atomgym.realkernel import host
from atomgym.realkernel.capture import read_jsonl

DATA = Path(__file__).parent / "data" / "realkernel"
ROOT = Path(__file__).parents[1]


def _skip_reason() -> str | None:
    miss = host.missing_packages()
    if not miss:
        return None
    if os.environ.get("ATOMGYM_REALKERNEL_INSTALL") == "1" and os.geteuid() == 0:
        return None           # setup installs them
    return (f"missing packages: {' '.join(miss)} (run `python -m atomgym realkernel setup` as root, "
            f"or set ATOMGYM_REALKERNEL_INSTALL=1 as root to let this test install them)")


def _atomgym(*argv: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.run([sys.executable, "-m", "atomgym", *argv], capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert p.returncode == 0, f"atomgym {' '.join(argv)}: exit {p.returncode}\n{p.stderr}{p.stdout}"
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.mark.slow
def test_setup_boot_and_a_20s_run(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cache = tmp_path / "cache"
    p = _atomgym("realkernel", "setup", "--cache-dir", str(cache), timeout=900)
    assert p.stdout.startswith("boot check: kernel 6.1."), p.stdout
    b = host.load_build(cache)
    assert b is not None and Path(b.initramfs).is_file() and Path(b.module).is_file()
    out = tmp_path / "cap"
    _atomgym("realkernel", "run", str(DATA / "real-smoke.yaml"), "--out", str(out), "--cache-dir", str(cache),
             "--trace", timeout=600)
    meta = json.loads((out / "capture.json").read_text())
    # --trace: the guest mounted tracefs and enabled every tracepoint (agrun dies on a failed write),
    # and what it printed parses (atomgym/realkernel/tracepoints.py)
    from atomgym.realkernel import tracepoints
    events = tracepoints.load(out)
    assert meta["trace_lines"] == len(events) and all(0 <= e.t <= 21 for e in events)
    assert meta["kernel"] == b.release and meta["boot_guest_s"] < 30
    samples = read_jsonl((out / "timeseries.jsonl").read_text())
    assert samples[-1]["t"] >= 19.5 and len(samples) >= 40
    a = meta["atomic"]
    assert a["req"] > 0 and a["req"] == a["got"] + a["fail"]
    assert (out / "snapshot.txt").read_text().startswith("==> /proc/sys/kernel/osrelease <==")
    rep = json.loads(_atomgym("fidelity", str(out), "--json", timeout=600).stdout)
    assert rep["verdict"] and rep["kernel"] == b.release
