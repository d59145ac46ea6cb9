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
