"""Per-machine random numbers inside the compiled loop.

numba's np.random state is per thread, not per machine, so a batch would not equal
machines run alone. Each machine carries its own xoshiro256** state (4 x uint64),
seeded by splitmix64 from one integer that the environment draws from its
``np_random`` (one generator, passed down).
"""
from __future__ import annotations

import numpy as np
from numba import uint64
from ..kernel.jit import jit
from numba.core import cgutils
import numba
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from .layout import UArray

_M64 = 0xFFFFFFFFFFFFFFFF


def seed_state(seed: int) -> np.ndarray:
    """xoshiro256** state from an integer seed via splitmix64 (pure Python, exact)."""
    x = int(seed) & _M64
    out = np.empty(4, dtype=np.uint64)
    for i in range(4):
        x = (x + 0x9E3779B97F4A7C15) & _M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        out[i] = z ^ (z >> 31)
    return out


@intrinsic
def state_row(typingctx, arr, b):
    """Row ``b`` of a C-contiguous 2-D state array (``S.rng``) as a 1-D UArray view: no NRT
    meminfo, so handing it to the generators below costs no refcount calls."""
    rt = UArray(arr.dtype, 1, "C")
    sig = rt(arr, b)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        src = context.make_array(aty)(context, builder, value=args[0])
        shape = cgutils.unpack_tuple(builder, src.shape)
        strides = cgutils.unpack_tuple(builder, src.strides)
        zero = context.get_constant(signature.args[1], 0)
        ptr = cgutils.get_item_pointer(context, builder, aty, src, [args[1], zero])
        out = context.make_array(signature.return_type)(context, builder)
        populate_array(out, data=ptr, shape=[shape[1]], strides=[strides[1]], itemsize=src.itemsize,
                       meminfo=None)
        return out._getvalue()

    return sig, codegen


if numba.config.DISABLE_JIT:     # NUMBA_DISABLE_JIT=1 (debugging): a plain numpy view
    def state_row(arr, b):  # noqa: F811
        return arr[b]


@jit(inline="llvm")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@jit(inline="llvm")
def next_u64(s):
    """xoshiro256** step on state array ``s`` (uint64[4]), in place."""
    result = _rotl(s[1] * uint64(5), 7) * uint64(9)
    t = s[1] << uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@jit(inline="llvm")
def uniform(s):
    """Uniform float64 in [0, 1) with 53 random bits."""
    return np.float64(next_u64(s) >> uint64(11)) * (1.0 / 9007199254740992.0)


@jit()
def exponential(s, mean):
    return -mean * np.log(1.0 - uniform(s))


_ZIG_R = 3.442619855899          # r of the 128-layer ziggurat (Marsaglia and Tsang 2000)


def _ziggurat_tables(n: int = 128, r: float = _ZIG_R, v: float = 9.91256303526217e-3):
    """Layer edges ``x`` (x[0] = v / f(r) is the base strip's pseudo-width, x[1] = r, x[n] = 0)
    and ratios x[i+1] / x[i] of the 128-layer ziggurat for the standard normal (Marsaglia and
    Tsang 2000; Doornik 2005, "An improved ziggurat method": r and v for 128 layers)."""
    x = np.empty(n + 1)
    x[0] = v / np.exp(-0.5 * r * r)
    x[1] = r
    for i in range(2, n):
        x[i] = np.sqrt(-2.0 * np.log(v / x[i - 1] + np.exp(-0.5 * x[i - 1] * x[i - 1])))
    x[n] = 0.0
    return x, x[1:] / x[:-1]


_ZX, _ZR = _ziggurat_tables()


@jit()
def normal(s):
    """Standard normal, ziggurat (Doornik's ZIGNOR): one 64-bit draw (7 bits pick the layer,
    the top 53 the position) and a multiply in ~98.5 % of calls; exact in distribution. The
    wedge and tail rejections draw more. (Box-Muller spent a log, a sqrt and a cos per value.)"""
    zx = _ZX
    zr = _ZR
    while True:
        w = next_u64(s)
        i = int(w & uint64(127))
        u = 2.0 * (np.float64(w >> uint64(11)) * (1.0 / 9007199254740992.0)) - 1.0
        if abs(u) < zr[i]:
            return u * zx[i]
        if i == 0:
            # the tail beyond r (Marsaglia 1964)
            while True:
                x = -np.log(1.0 - uniform(s)) / _ZIG_R
                y = -np.log(1.0 - uniform(s))
                if y + y >= x * x:
                    break
            return -(_ZIG_R + x) if u < 0.0 else _ZIG_R + x
        x = u * zx[i]
        f0 = np.exp(-0.5 * (zx[i] * zx[i] - x * x))
        f1 = np.exp(-0.5 * (zx[i + 1] * zx[i + 1] - x * x))
        if f1 + uniform(s) * (f0 - f1) < 1.0:
            return x


@jit()
def poisson(s, lam):
    """Poisson(lam): exact (inversion) for lam < 30, rounded normal approximation above."""
    if lam <= 0.0:
        return 0
    if lam < 30.0:
        L = np.exp(-lam)
        k = 0
        p = uniform(s)
        while p > L:
            k += 1
            p *= uniform(s)
        return k
    v = lam + np.sqrt(lam) * normal(s) + 0.5
    return int(v) if v > 0.0 else 0
