"""Compiled per-step bookkeeping of the envs (observation, reward terms, discrete actions).

Numba, no gymnasium. One row per machine, computed by the same code for B = 1 and B = N, so a
batch row equals a lone machine bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from ..kernel.jit import jit

from ..kernel.zones import MAX_NR_ZONES
from ..sim import layout as L
from ..sim.engine import free_state, make_state, run_machine
from ..sim.simulator import apply_knobs
from .spaces import (
    A_BOOST_ALL, A_BOOST_NORMAL, A_MF_DOWN, A_MF_UP, A_WSF_DOWN, A_WSF_UP, LOG1P_SCALE, MF_MAX_KB, MF_MIN_KB,
    N_ZONE_FEATURES, OBS_INTERVAL_START, OBS_MACHINE_START, STEP_FACTOR, WSF_MAX, WSF_MIN,
)

_NZT = 3   # zone types observed: DMA, DMA32, Normal
_LOG_MF = math.log(MF_MAX_KB / MF_MIN_KB)
_LOG_WSF = math.log(WSF_MAX)
C_ATOMIC_FAIL = L.COUNTER_NAMES.index("atomic_fail")
C_RX_MISSED = L.COUNTER_NAMES.index("rx_missed")
C_RCVBUF = L.COUNTER_NAMES.index("rcvbuf_drop")
C_PFMEMALLOC = L.COUNTER_NAMES.index("pfmemalloc_drop")
C_RX_PACKETS = L.COUNTER_NAMES.index("rx_packets")
C_STALL = L.COUNTER_NAMES.index("direct_reclaim_stall_us")
C_RESERVED = L.COUNTER_NAMES.index("reserved_mib_ms")
C_MIN_FREE_SEEN = L.C_MIN_FREE_SEEN


@jit()
def _ratio(a, b, cap):
    if b <= 0.0:
        return 0.0
    x = a / b
    if x > cap:
        x = cap
    if x < 0.0:
        x = 0.0
    return x / cap


@jit()
def _lg(x):
    if x < 0.0:
        x = 0.0
    v = math.log1p(x) / LOG1P_SCALE
    return 1.0 if v > 1.0 else v


@jit()
def obs_batch(managed, wmark, boost, zs, mi, nd, ctr, prev, n_nodes, out):
    """Fill out (B, OBS_DIM) float32 (layout: spaces.py)."""
    B = out.shape[0]
    for b in range(B):
        swap = mi[b, L.MI_SWAP] != 0
        for t in range(_NZT):
            free = 0.0
            mn = 0.0
            lo = 0.0
            hi = 0.0
            bs = 0.0
            mg = 0.0
            rec = 0.0
            for n in range(n_nodes):
                z = n * MAX_NR_ZONES + t
                free += zs[b, z, L.ZF_FREE]
                mn += wmark[b, z, 0]
                lo += wmark[b, z, 1]
                hi += wmark[b, z, 2]
                bs += boost[b, z]
                mg += managed[b, z]
                rec += zs[b, z, L.ZF_CACHE]
                if swap:
                    rec += zs[b, z, L.ZF_ANON]
            k = t * N_ZONE_FEATURES
            out[b, k] = _ratio(free, mn, 4.0)
            out[b, k + 1] = _ratio(free, lo + bs, 4.0)
            out[b, k + 2] = _ratio(free, hi + bs, 4.0)
            out[b, k + 3] = _ratio(bs, hi, 2.0)
            out[b, k + 4] = _ratio(rec, mg, 1.0)
            out[b, k + 5] = _ratio(free, mg, 1.0)
        k = OBS_MACHINE_START
        mf = float(mi[b, L.MI_MIN_FREE_KBYTES])
        v = math.log(max(mf, 1.0) / MF_MIN_KB) / _LOG_MF
        out[b, k] = min(max(v, 0.0), 1.0)
        v = math.log(float(mi[b, L.MI_WSF])) / _LOG_WSF
        out[b, k + 1] = min(max(v, 0.0), 1.0)
        aw = 0.0
        for n in range(n_nodes):
            st = nd[b, n, L.ND_STATE]
            if st == L.KS_WAKING or st == L.KS_RUN:
                aw += 1.0
        out[b, k + 2] = aw / n_nodes
        k = OBS_INTERVAL_START
        out[b, k] = _lg(ctr[b, C_ATOMIC_FAIL] - prev[b, C_ATOMIC_FAIL])
        out[b, k + 1] = _lg(ctr[b, C_RX_MISSED] - prev[b, C_RX_MISSED])
        out[b, k + 2] = _lg(ctr[b, C_RCVBUF] - prev[b, C_RCVBUF])
        out[b, k + 3] = _lg(ctr[b, C_PFMEMALLOC] - prev[b, C_PFMEMALLOC])
        out[b, k + 4] = _lg(ctr[b, C_RX_PACKETS] - prev[b, C_RX_PACKETS])
        smin = 0.0
        for z in range(wmark.shape[1]):
            smin += wmark[b, z, 0]
        out[b, k + 5] = _ratio(ctr[b, C_MIN_FREE_SEEN], smin, 4.0)
        out[b, k + 6] = _lg(ctr[b, C_STALL] - prev[b, C_STALL])


@jit()
def begin_interval(zs, ctr, prev, mask):
    """Start an interval: lowest-free tracker = free now; remember the counters."""
    for b in range(mask.shape[0]):
        if not mask[b]:
            continue
        f = 0.0
        for z in range(zs.shape[1]):
            f += zs[b, z, L.ZF_FREE]
        ctr[b, C_MIN_FREE_SEEN] = f
        for c in range(ctr.shape[1]):
            prev[b, c] = ctr[b, c]


@jit()
def terms_batch(ctr, prev, changes, weights, penalty, mi, was_term, mask, t_out, r_out, dead_out):
    """Raw reward terms (B, 5), reward (B,) and newly deadlocked (B,) over the last interval."""
    for b in range(mask.shape[0]):
        t_out[b, 0] = ((ctr[b, C_RX_MISSED] - prev[b, C_RX_MISSED]) + (ctr[b, C_RCVBUF] - prev[b, C_RCVBUF])
                       + (ctr[b, C_PFMEMALLOC] - prev[b, C_PFMEMALLOC]))
        t_out[b, 1] = ctr[b, C_ATOMIC_FAIL] - prev[b, C_ATOMIC_FAIL]
        t_out[b, 2] = (ctr[b, C_RESERVED] - prev[b, C_RESERVED]) / 1000.0
        t_out[b, 3] = (ctr[b, C_STALL] - prev[b, C_STALL]) / 1e6
        t_out[b, 4] = changes[b]
        term = mi[b, L.MI_TERMINATED] != 0
        dead_out[b] = term and not was_term[b]
        was_term[b] = term
        if not mask[b]:
            for i in range(5):
                t_out[b, i] = 0.0
            r_out[b] = 0.0
            dead_out[b] = False
            continue
        cost = 0.0
        for i in range(5):
            cost += t_out[b, i] * weights[i]
        r_out[b] = -cost - (penalty if dead_out[b] else 0.0)


@jit()
def discrete_knobs(a, mi, managed, mask, mf, wsf, bk, changes):
    """Discrete actions -> sysctl targets (-1 = unchanged), boost_watermark() calls, change count."""
    for b in range(a.shape[0]):
        mf[b] = -1
        wsf[b] = -1
        changes[b] = 0.0
        for z in range(bk.shape[1]):
            bk[b, z] = 0
        if not mask[b]:
            continue
        m0 = mi[b, L.MI_MIN_FREE_KBYTES]
        w0 = mi[b, L.MI_WSF]
        x = a[b]
        if x == A_MF_UP:
            mf[b] = min(MF_MAX_KB, max(m0 + 1, int(round(m0 * STEP_FACTOR))))
        elif x == A_MF_DOWN:
            mf[b] = max(MF_MIN_KB, min(m0 - 1, int(round(m0 / STEP_FACTOR))))
        elif x == A_WSF_UP:
            wsf[b] = min(WSF_MAX, max(w0 + 1, int(round(w0 * STEP_FACTOR))))
        elif x == A_WSF_DOWN:
            wsf[b] = max(WSF_MIN, min(w0 - 1, int(round(w0 / STEP_FACTOR))))
        elif x == A_BOOST_NORMAL or x == A_BOOST_ALL:
            for z in range(bk.shape[1]):
                if managed[b, z] > 0 and (x == A_BOOST_ALL or z % MAX_NR_ZONES == 2):
                    bk[b, z] = 1
            changes[b] = 1.0
        if mf[b] == m0:
            mf[b] = -1
        if wsf[b] == w0:
            wsf[b] = -1
        if mf[b] >= 0:
            changes[b] += 1.0
        if wsf[b] >= 0:
            changes[b] += 1.0


@jit()
def step_discrete(T, actions, n_ticks, weights, penalty, prev, was_term, n_nodes, obs_out, t_out, r_out, dead_out):
    """One agent step of every machine of the batch in one compiled call, exactly as Core.apply()
    (discrete) + Core.advance() + Core.step_terms() + Core.obs() with every machine active:
    discrete_knobs(), the knob writes (Simulator.set_knobs order), begin_interval(), ``n_ticks``
    ticks per machine (engine.run_machine, as run_serial), terms_batch(), obs_batch()."""
    S = make_state(T)
    B = actions.shape[0]
    Z = S.managed.shape[1]
    mask = np.ones(B, np.bool_)
    mf = np.empty(B, np.int64)
    wsf = np.empty(B, np.int64)
    bk = np.empty((B, Z), np.int64)
    changes = np.empty(B, np.float64)
    discrete_knobs(actions, S.mi, S.managed, mask, mf, wsf, bk, changes)
    wbf = np.full(B, -1, np.int64)
    bp = np.zeros((B, Z), np.int64)
    kmask = np.empty(B, np.bool_)
    anyc = False
    for b in range(B):
        kmask[b] = changes[b] > 0
        anyc = anyc or kmask[b]
    if anyc:
        apply_knobs(S, mf, wsf, wbf, bp, bk, kmask)
    begin_interval(S.zs, S.ctr, prev, mask)
    for b in range(B):
        run_machine(S, b, n_ticks)
    terms_batch(S.ctr, prev, changes, weights, penalty, S.mi, was_term, mask, t_out, r_out, dead_out)
    obs_batch(S.managed, S.wmark, S.boost, S.zs, S.mi, S.nd, S.ctr, prev, n_nodes, obs_out)
    free_state(S)
