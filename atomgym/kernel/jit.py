"""The compile options of every numba function of the model, in one place.

``cache=True``: machine code is kept in __pycache__ (engine.py invalidates it when any model
source changes). ``error_model="numpy"``: no zero-division check and exception path around each
``//``, ``%`` and ``/`` (numba's default "python" model): every divisor in the model is guarded or
positive by construction; a zero would give 0 or inf instead of raising, and the property tests
check that no count goes negative or NaN.
"""
from __future__ import annotations

import functools

from numba import njit

jit = functools.partial(njit, cache=True, error_model="numpy")
