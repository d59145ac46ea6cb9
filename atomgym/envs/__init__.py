"""Gymnasium environments over the atomgym simulator (layout constants in ``spaces.py``)."""
from .spaces import *  # noqa: F401,F403
