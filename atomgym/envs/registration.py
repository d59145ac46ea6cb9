"""Gymnasium registration: ``atomgym/<Scenario>-v1`` per shipped scenario and ``atomgym/Atom-v1``,
and the same ids at ``-v0`` with v0's reward (``cost="atomic-charged"``, atomic failures charged).

Called from ``atomgym/__init__.py`` as Gymnasium documents for third-party environments, so
``import atomgym`` (or ``gym.make("atomgym:atomgym/...")``) registers every id. Entry points are
strings: nothing of the simulator is loaded until an env is made."""
from __future__ import annotations

from gymnasium.envs.registration import register, registry

from ..sim.scenario import list_scenarios, load_scenario
from .episode import DEFAULT_DECISION_INTERVAL_MS, episode_steps

ENTRY_POINT = "atomgym.envs.atom_env:AtomEnv"
VECTOR_ENTRY_POINT = "atomgym.envs.vector_env:AtomVectorEnv"


def camel(name: str) -> str:
    """'incast-pagecache' -> 'IncastPagecache'."""
    return "".join(p[:1].upper() + p[1:] for p in name.replace("_", "-").split("-"))


# Gymnasium's rule: an id's version changes with anything that changes its results. v1 charges the
# default cost (envs/cost.py DEFAULT_COST, "harm": atomic failures a diagnostic); v0 keeps the
# rewards it always gave (the cost "atomic-charged").
VERSION = 1
VERSION_KWARGS: dict[int, dict[str, str]] = {0: {"cost": "atomic-charged"}, 1: {}}
GENERIC = "Atom"


def env_ids(version: int = VERSION) -> dict[str, str]:
    """Registered id -> scenario name at ``version`` (the generic id maps to the default scenario)."""
    ids = {f"atomgym/{camel(n)}-v{version}": n for n in list_scenarios()}
    ids[f"atomgym/{GENERIC}-v{version}"] = "incast-pagecache"
    return ids


def register_envs() -> None:
    steps_of: dict[str, int] = {}    # each scenario read once for both versions (import time of every process)
    for version, extra in VERSION_KWARGS.items():
        for env_id, name in env_ids(version).items():
            if env_id in registry:
                continue
            if name not in steps_of:
                steps_of[name] = episode_steps(load_scenario(name, check_files=False), DEFAULT_DECISION_INTERVAL_MS)
            steps = steps_of[name]
            kwargs = {**extra} if env_id.startswith(f"atomgym/{GENERIC}-") else {"scenario": name, **extra}
            register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                     max_episode_steps=steps, kwargs=kwargs)
