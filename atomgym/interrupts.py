"""Stopping a long command: SIGTERM and SIGHUP handled like Ctrl-C, children that die with us.

Every long command (evaluate, train, multiseed, fullreport, replay --save, realkernel run) runs
inside ``interruptible()``: SIGTERM (``kill``, a job scheduler's timeout) and SIGHUP (a closed
terminal) raise ``Interrupted``, a KeyboardInterrupt, so the command's own Ctrl-C path runs: it
stops its child processes, leaves no output that looks complete, prints one line and exits
128 + the signal (130 for Ctrl-C). A child process we start gets ``die_with_parent()`` as its
``preexec_fn``: the kernel kills it when we die, even by ``kill -9`` (no handler runs then).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from typing import Callable, Iterator

PR_SET_PDEATHSIG = 1     # <linux/prctl.h>
HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP received; ``code`` is the exit status a shell gives for it (128 + signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.code = 128 + signum


def exit_code(e: BaseException) -> int:
    """The exit status of an interrupted command: 128 + the signal (Ctrl-C: 130). Every interrupt
    path asks for it just before it returns, so it also quiets what an interrupt inside a numba
    compile leaves behind: llvmlite objects half-built, whose finalizers fail at exit and would
    print "Exception ignored in ... ObjectRef.__del__" with a traceback after the command's line
    (_quiet_llvmlite_finalizers())."""
    _quiet_llvmlite_finalizers()
    return e.code if isinstance(e, Interrupted) else 128 + signal.SIGINT


def _quiet_llvmlite_finalizers() -> None:
    """sys.unraisablehook drops the exceptions raised by llvmlite's finalizers (their objects
    were cut off mid-construction by the interrupt); any other goes to the hook that was set."""
    import sys
    prev = sys.unraisablehook
    if getattr(prev, "_atomgym_quiet", False):
        return

    def hook(u) -> None:
        if getattr(u.object, "__module__", "").startswith("llvmlite"):
            return
        prev(u)
    hook._atomgym_quiet = True      # type: ignore[attr-defined]
    sys.unraisablehook = hook


def signal_name(e: BaseException) -> str:
    return signal.Signals(e.signum).name if isinstance(e, Interrupted) else "Ctrl-C"


def _raise(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted inside the block (the main thread only: elsewhere
    Python cannot install a handler, and the block runs unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        if old[s] is not signal.SIG_IGN:      # nohup's SIGHUP stays ignored
            signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for subprocess.Popen: the child gets SIGKILL when this process dies
    (prctl PR_SET_PDEATHSIG), and exits at once if we died before it was set. None where there
    is no prctl (not Linux): the signal handlers above still stop the child."""
    try:
        # looked up here, in the parent: after fork() (a multithreaded parent) the child only calls it
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return setup
