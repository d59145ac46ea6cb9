"""State-array indexing without numba's negative-index normalisation (sim/layout.py, UArray).

Compiled code reads and writes the simulator's state arrays through UArray, whose variable
signed indices are taken as unsigned (no wraparound of a negative index): the same cells as
numpy's indexing for every non-negative index (the axis sizes the layout fixes compiled in as
constants), and with ATOMGYM_CHECK_INDEX=1 a negative or out-of-bounds index raises IndexError
instead of reading outside the array.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
from numba import njit

from atomgym.sim import layout as L
from atomgym.sim.engine import free_state, make_state

DIMS = {"B": 3, "Z": 5, "N": 2, "NN": 2, "NT": 2, "NW": 3, "TL": 4, "NTS": 2, "NTPAR": 2}


def _state() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    out = []
    for a in L.allocate(DIMS):
        a[...] = rng.integers(0, 1000, a.shape).astype(a.dtype)
        out.append(a)
    return tuple(out)


@njit
def _read(T, b, z, f, node, bk, t):
    S = make_state(T)
    r = (S.zs[b, z, f], S.managed[b, z], S.lru[b, node, bk, t], S.mr[b, f], S.lru[b, node, bk][t])
    free_state(S)
    return r


@njit
def _write(T, b, z, f, node, bk, t):
    S = make_state(T)
    S.zs[b, z, f] = 11
    S.managed[b, z] += 5
    S.lru[b, node, bk, t] = 13
    S.mr[b, f] = 2.5
    row = S.lru[b, node, bk]      # a row view (a plain array) of a UArray
    row[t + 1] = 17
    free_state(S)


@njit
def _slices(T, b, z):
    S = make_state(T)
    total = S.zs[b, z, :].sum() + S.lru[b, 0, 1:3, :].sum()
    S.mr[b, 1:3] = 7.5
    free_state(S)
    return total


def test_slices_of_a_state_array():
    T = _state()
    A = L.Arrays(T)
    for b, z in ((0, 0), (2, 4), (1, 3)):
        assert _slices(T, b, z) == A.zs[b, z, :].sum() + A.lru[b, 0, 1:3, :].sum()
        assert (A.mr[b, 1:3] == 7.5).all()


def test_reads_and_writes_the_cells_numpy_indexes():
    T = _state()
    A = L.Arrays(T)
    rng = np.random.default_rng(1)
    for _ in range(50):
        b, z, node = int(rng.integers(3)), int(rng.integers(5)), int(rng.integers(2))
        f = int(rng.integers(min(A.zs.shape[2], A.mr.shape[1])))
        bk, t = int(rng.integers(A.lru.shape[2])), int(rng.integers(A.lru.shape[3] - 1))
        assert _read(T, b, z, f, node, bk, t) == (A.zs[b, z, f], A.managed[b, z], A.lru[b, node, bk, t],
                                                  A.mr[b, f], A.lru[b, node, bk, t])
        before = [a.copy() for a in T]
        m = A.managed[b, z]
        _write(T, b, z, f, node, bk, t)
        assert A.zs[b, z, f] == 11 and A.managed[b, z] == m + 5 and A.mr[b, f] == 2.5
        assert A.lru[b, node, bk, t] == 13 and A.lru[b, node, bk, t + 1] == 17
        changed = sum(int((a != c).sum()) for a, c in zip(T, before))
        assert changed <= 5            # nothing but the cells written


def test_negative_or_out_of_bounds_index_raises_with_the_check():
    code = textwrap.dedent("""
        import numpy as np
        from numba import njit
        from atomgym.sim import layout as L
        from atomgym.sim.engine import free_state, make_state

        @njit
        def read(T, b, z):
            S = make_state(T)
            v = S.zs[b, z, 0]
            free_state(S)
            return v

        T = L.allocate({"B": 2, "Z": 5, "N": 1, "NN": 1, "NT": 1, "NW": 1, "TL": 1, "NTS": 1, "NTPAR": 1})
        T[L.STATE_FIELDS.index("zs")][1, 4, 0] = 9
        assert read(T, 1, 4) == 9
        for z in (-1, 5):
            try:
                read(T, 1, z)
            except IndexError as e:
                print("raised:", e)
            else:
                print("no error")
    """)
    env = dict(os.environ, ATOMGYM_CHECK_INDEX="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "raised: negative index into a simulator state array" in r.stdout
    assert "raised: index out of bounds of a simulator state array" in r.stdout
    assert "no error" not in r.stdout
