"""The simulator: allocation paths, kswapd, NIC rings and workloads, tick by tick, batched."""
from __future__ import annotations


def __getattr__(name: str):
    # lazy: importing atomgym.sim.scenario must not compile the engine
    if name == "Simulator":
        from .simulator import Simulator
        return Simulator
    if name == "sources_digest":     # the engine sources' digest (keys of caches and replays)
        from .engine import sources_digest
        return sources_digest
    raise AttributeError(name)


__all__ = ["Simulator", "sources_digest"]
