"""atomgym/interrupts.py: an interrupted command's exit leaves nothing but its own line on stderr."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A half-built llvmlite object (what a SIGTERM inside a numba compile leaves) and another object
# whose finalizer fails; then the interpreter exits.
_SCRIPT = """
import sys
from atomgym import interrupts
if sys.argv[1] == "interrupted":
    assert interrupts.exit_code(interrupts.Interrupted(15)) == 143
from llvmlite.binding.ffi import ObjectRef
o = ObjectRef.__new__(ObjectRef)
del o
class Other:
    def __del__(self):
        raise ValueError("another finalizer")
x = Other()
del x
"""


def _stderr(mode: str) -> str:
    p = subprocess.run([sys.executable, "-c", _SCRIPT, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stderr


def test_after_an_interrupt_llvmlites_failing_finalizers_are_quiet_and_others_are_not():
    """tests/test_evaluate.py's SIGTERM test once caught the evaluation inside a compile: after its
    one line, "Exception ignored in: <function ObjectRef.__del__ ...>" and a traceback."""
    before = _stderr("plain")
    assert "ObjectRef.__del__" in before and "another finalizer" in before      # what Python prints by default
    after = _stderr("interrupted")
    assert "ObjectRef" not in after and "llvmlite" not in after
    assert "another finalizer" in after                                         # any other finalizer still reports
