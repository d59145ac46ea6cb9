"""The one error type of the real-kernel harness: printed as one line, exit 2."""
from __future__ import annotations


class RealKernelError(Exception):
    """Bad input or an environment that cannot run the guest; the message is one line."""


class Interrupted(RealKernelError):
    """Ctrl-C, SIGTERM or SIGHUP during a run: one line, exit ``code`` (128 + the signal)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
