"""Helpers (no tests) for the CLI tests: run ``atomgym`` in-process and check a one-line error."""
from __future__ import annotations

import io

from atomgym.cli import main


def run(argv: list[str]) -> tuple[int, str, str]:
    """``atomgym ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(argv, out, err)
    except SystemExit as e:        # argparse usage errors
        code = int(e.code)
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 with exactly one ``atomgym: error:`` line holding every needle, and no traceback."""
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("atomgym: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def wait_until_caught(pid: int, signum: int, timeout: float = 300.0) -> None:
    """Wait until process ``pid`` has a handler for ``signum`` (Linux: /proc/PID/status SigCgt), so
    that a test's signal reaches the command's handler however slowly its imports ran."""
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            return                                  # gone: the caller's communicate() tells why
        caught = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:")), 16)
        if caught >> (signum - 1) & 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} installed no handler for signal {signum} in {timeout:.0f} s")
