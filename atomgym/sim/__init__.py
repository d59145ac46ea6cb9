"""The simulator: allocation paths, kswapd, NIC rings and workloads, tick by tick, batched."""
from __future__ import annotations


def __getattr__(name: str):
    # lazy: importing atomgym.sim.scenario must not compile the engine
    if name == "Simulator":
        from .simulator import Simulator
        return Simulator
    raise AttributeError(name)


__all__ = ["Simulator"]
