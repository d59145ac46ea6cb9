"""A cold compile of the engine on two cores: a helper process compiles half of the call tree.

numba compiles one function at a time, depth first from the entry point (``step_machine``'s
callees in source order: the tuner, kswapd, the memory workloads, then traffic, NAPI and the
application drain). When a compile of an engine entry point starts in a process (numba's compile
event, :class:`_Trigger`, listened to once a Simulator exists), a helper process
(atomgym/compile_helper.py) compiles the same per-user cache's entries from the other end: ``nic_poll`` (the RX refill and its allocation paths), ``traffic_tick``,
``app_drain``, then ``workload_tick``. Whatever the helper has written by the time the main
process reaches a function is loaded from the cache instead of compiled (numba looks the cache up
for each callee as it types a call); what both reach first is compiled twice, which costs time,
not correctness (each entry is written whole, by a rename). Measured on the 2-core build machine:
the serial engine's cold compile 56 s alone, 32-33 s with the helper (docs/simulator.md, "Compile
time and the compile cache").

The helper is started once per process, only with at least two CPUs, and never by a helper;
``ATOMGYM_PARALLEL_COMPILE=0`` turns it off. It writes nothing but cache entries, prints nothing,
and is stopped when the process that started it exits (its remaining work is then useless).

    python -m atomgym.compile_helper     # what the helper runs (atomgym/compile_helper.py)
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys

from numba.core import event as _ev

from .kernel.jit import _is_ours

ENV_OFF = "ATOMGYM_PARALLEL_COMPILE"
# the engine's entry points whose compile starts the helper (numba reports each compile)
ENTRIES = frozenset({"step_state", "step_fused", "run_parallel", "step_machine"})
_started: subprocess.Popen | None = None


class _Trigger(_ev.Listener):
    """numba's compile events: the start of a compile of an engine entry point starts the helper.
    (Not in kernel/jit.py's compile notice: jit.py's import closure keys every compiled module's
    cache entries, and what this starts imports the simulator.)"""

    def on_start(self, event) -> None:
        d = event.data.get("dispatcher")
        if _is_ours(d):
            start(d.py_func.__qualname__)

    def on_end(self, event) -> None:
        pass


def enabled() -> bool:
    return os.environ.get(ENV_OFF, "1") != "0" and (os.cpu_count() or 1) >= 2


def start(entry: str) -> bool:
    """Start the helper if ``entry`` is an engine entry point and none was started by this
    process; returns whether one was started."""
    global _started
    if _started is not None or entry not in ENTRIES or not enabled():
        return False
    env = dict(os.environ, **{ENV_OFF: "0", "ATOMGYM_COMPILE_NOTICE": "0"})
    try:
        _started = subprocess.Popen([sys.executable, "-m", "atomgym.compile_helper"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return False
    atexit.register(_stop)
    return True


def _stop() -> None:
    p = _started
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


_TRIGGER: _Trigger | None = None


def install() -> None:
    """Listen to numba's compile events (once per process; the Simulator's constructor calls it)."""
    global _TRIGGER
    if _TRIGGER is None:
        _TRIGGER = _Trigger()
        _ev.register("numba:compile", _TRIGGER)
