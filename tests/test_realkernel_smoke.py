"""CI smoke test of the real-kernel harness: setup (build into a temporary cache), one boot,
the 20 s scenario tests/data/realkernel/real-smoke.yaml, fidelity on the result (~1-2 min on
2 cores under TCG).

It runs when the packages are installed (`python -m atomgym realkernel setup` as root installs
them); with ATOMGYM_REALKERNEL_INSTALL=1 and root it installs them itself. Otherwise it skips
and says why. No other test needs QEMU.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from atomgym.realkernel import host
from atomgym.realkernel.capture import read_jsonl
from atomgym.realkernel.errors import RealKernelError

DATA = Path(__file__).parent / "data" / "realkernel"


def _skip_reason() -> str | None:
    miss = host.missing_packages()
    if not miss:
        return None
    if os.environ.get("ATOMGYM_REALKERNEL_INSTALL") != "1":
        return (f"missing packages: {' '.join(miss)} (run `python -m atomgym realkernel setup` as root, "
                f"or set ATOMGYM_REALKERNEL_INSTALL=1 to let this test install them)")
    if os.geteuid() != 0:
        return f"missing packages: {' '.join(miss)} and not root: cannot install them"
    return None


@pytest.mark.slow
def test_setup_boot_and_a_20s_run(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cache = tmp_path / "cache"
    try:
        b = host.setup(str(cache), install=True, log=lambda m: None)
    except RealKernelError as e:
        pytest.skip(f"setup could not install or build: {e}")
    assert Path(b.initramfs).is_file() and Path(b.module).is_file()
    from atomgym.realkernel import run as rkrun
    out = tmp_path / "cap"
    meta = rkrun.run(str(DATA / "real-smoke.yaml"), str(out), cache=str(cache), log=lambda m: None)
    assert meta["kernel"] == b.release and meta["boot_guest_s"] < 30
    samples = read_jsonl((out / "timeseries.jsonl").read_text())
    assert samples[-1]["t"] >= 19.5 and len(samples) >= 40
    a = meta["atomic"]
    assert a["req"] > 0 and a["req"] == a["got"] + a["fail"]
    assert (out / "snapshot.txt").read_text().startswith("==> /proc/sys/kernel/osrelease <==")
    from atomgym.realkernel.fidelity import fidelity
    rep = fidelity(str(out))
    assert rep["verdict"] and json.dumps(rep, default=str)
