"""The compile helper's half of the engine (atomgym/compile_split.py starts it in a process of its
own when a compile of the engine starts): the functions of HELPER_ORDER compiled into the per-user
cache, for the engine's state type. Separate from compile_split.py, which the Simulator imports:
this module imports the simulator.

    python -m atomgym.compile_helper
"""
from __future__ import annotations

# (module, function) the helper compiles, in order: the end of step_machine's tick first
HELPER_ORDER = (("atomgym.sim.nic", "nic_poll"), ("atomgym.sim.workloads", "traffic_tick"),
                ("atomgym.sim.nic", "app_drain"), ("atomgym.sim.workloads", "workload_tick"))


def compile_helper_half() -> list[str]:
    """Compile HELPER_ORDER's functions for the engine's state type (that of engine.make_state()
    over a Simulator's state arrays, the same for every scenario); returns their names."""
    import importlib

    import numba
    from numba import types

    from .sim import Simulator, engine
    from .sim.scenario import load_scenario

    sim = Simulator(load_scenario("quiet"), n_machines=1)
    tt = numba.typeof(sim.state)
    engine.make_state.compile((tt,))
    state_t = engine.make_state.overloads[(tt,)].signature.return_type
    done = []
    for module, name in HELPER_ORDER:
        getattr(importlib.import_module(module), name).compile((state_t, types.int64, types.int64))
        done.append(name)
    return done


class _Stopped(Exception):
    """SIGTERM in the helper (its process exited): an Exception, so that numba's cache writer, which
    removes its temporary file on an Exception, leaves no partial file behind."""


def _main() -> int:
    import signal
    stopped = []

    def stop(signum, frame):
        stopped.append(signum)
        raise _Stopped()
    signal.signal(signal.SIGTERM, stop)
    try:
        compile_helper_half()
    except Exception:
        if stopped:        # numba may turn the interruption into an error of its own
            return 0
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
