"""Gymnasium environments over the atomgym simulator (layout constants in ``spaces.py``).

The env classes load on first use (PEP 562), so that ``import atomgym`` registers the ids
(registration.py) without loading the simulator's compiled code."""
from .spaces import *  # noqa: F401,F403
from .registration import env_ids, register_envs  # noqa: F401

_LAZY = {"AtomEnv": "atom_env", "AtomVectorEnv": "vector_env"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
