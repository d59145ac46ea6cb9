"""Gymnasium environments over the atomgym simulator (layout constants in ``spaces.py``)."""
from .spaces import *  # noqa: F401,F403
from .atom_env import AtomEnv  # noqa: F401
from .vector_env import AtomVectorEnv  # noqa: F401
from .registration import env_ids, register_envs  # noqa: F401

register_envs()
