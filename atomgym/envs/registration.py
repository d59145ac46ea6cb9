"""Gymnasium registration: ``atomgym/<Scenario>-v0`` per shipped scenario and ``atomgym/Atom-v0``.

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


def env_ids() -> dict[str, str]:
    """Registered id -> scenario name (the generic id maps to the default scenario)."""
    ids = {f"atomgym/{camel(n)}-v0": n for n in list_scenarios()}
    ids["atomgym/Atom-v0"] = "incast-pagecache"
    return ids


def register_envs() -> None:
    for env_id, name in env_ids().items():
        if env_id in registry:
            continue
        steps = episode_steps(load_scenario(name), DEFAULT_DECISION_INTERVAL_MS)
        kwargs = {} if env_id == "atomgym/Atom-v0" else {"scenario": name}
        register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                 max_episode_steps=steps, kwargs=kwargs)
