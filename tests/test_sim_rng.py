"""The per-machine random generators (atomgym/sim/rng.py) against the distributions they claim.

Fixed seeds, so each check is deterministic; the bounds are the usual 1 % critical values, so a
wrong table, a biased layer pick or a broken tail shows at once (checked: the normal test fails
when the ziggurat's tail returns 0 or its wedges accept without the rejection test). The
compiled helpers here are not cached: numba's cache would not see an edit to rng.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from atomgym.sim.rng import _ZR, _ZX, normal, poisson, seed_state, uniform

N = 1_000_000


@njit
def _draws(s, n, which):
    """n draws of normal() (which == 0) or uniform() (which == 1)."""
    out = np.empty(n)
    for i in range(n):
        out[i] = normal(s) if which == 0 else uniform(s)
    return out


def _normals(s, n):
    return _draws(s, n, 0)


@njit
def _poissons(s, lam, n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = poisson(s, lam)
    return out


def _uniforms(s, n):
    return _draws(s, n, 1)


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def test_ziggurat_tables_are_marsaglia_tsang_128():
    # Marsaglia and Tsang (2000), 128 layers: x[1] = r = 3.442619855899, x[2] = 3.223084984581,
    # the last edge before 0 = 0.2723208647046; every layer has area v = 9.91256303526217e-3
    assert _ZX[1] == 3.442619855899
    assert abs(_ZX[2] - 3.223084984581) < 1e-9
    assert abs(_ZX[127] - 0.2723208647046) < 1e-9
    assert _ZX[128] == 0.0
    f = np.exp(-0.5 * _ZX ** 2)
    areas = _ZX[1:128] * (f[2:129] - f[1:128])      # x[i] * (f(x[i+1]) - f(x[i])), i = 1..127
    assert np.allclose(areas, 9.91256303526217e-3, rtol=1e-9)
    assert np.all(_ZR[:128] < 1.0) and np.all(np.diff(_ZX[1:]) < 0)


def test_normal_matches_the_standard_normal():
    x = _normals(seed_state(7), N)
    assert abs(x.mean()) < 2.6 / math.sqrt(N)
    assert abs(x.var() - 1.0) < 2.6 * math.sqrt(2.0 / N)
    xs = np.sort(x)
    cdf = _phi(xs)
    d = max(np.max(np.arange(1, N + 1) / N - cdf), np.max(cdf - np.arange(N) / N))
    assert d < 1.63 / math.sqrt(N)                       # Kolmogorov-Smirnov, 1 %
    # the tail beyond r (drawn by its own branch) and the wedges' region, by counts
    for lo in (1.0, 2.5, 3.442619855899, 4.0):
        p = 2.0 * (1.0 - _phi(np.array([lo]))[0])
        k = int(np.sum(np.abs(x) > lo))
        assert abs(k - N * p) < 3.3 * math.sqrt(N * p * (1 - p)) + 1, (lo, k, N * p)


def test_poisson_mean_and_variance_both_branches():
    for lam in (0.4, 5.0, 29.0, 150.0, 2030.0):        # inversion below 30, normal approximation above
        k = _poissons(seed_state(11), lam, 200_000)
        assert k.min() >= 0
        se = math.sqrt(lam / len(k))
        assert abs(k.mean() - lam) < 4 * se, lam
        assert abs(k.var() / lam - 1.0) < 0.02, lam


def test_uniform_range_and_moments():
    u = _uniforms(seed_state(3), N)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 3 * math.sqrt(1 / 12 / N)
    hist = np.bincount((u * 64).astype(int), minlength=64)
    chi2 = float(np.sum((hist - N / 64) ** 2 / (N / 64)))
    assert chi2 < 98.0                                  # chi-square, 63 degrees of freedom, 1 %


def test_same_seed_same_stream_different_seed_different():
    a = _normals(seed_state(5), 1000)
    b = _normals(seed_state(5), 1000)
    c = _normals(seed_state(6), 1000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
