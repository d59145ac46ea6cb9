"""The one error type of the real-kernel harness: printed as one line, exit 2."""
from __future__ import annotations


class RealKernelError(Exception):
    """Bad input or an environment that cannot run the guest; the message is one line."""
