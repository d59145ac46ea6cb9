"""Compiled per-step bookkeeping of the envs (observation, reward terms, discrete actions).

Numba, no gymnasium. One row per machine, computed by the same code for B = 1 and B = N, so a
batch row equals a lone machine bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from ..kernel.jit import jit

from ..kernel.watermarks import WMARK_HIGH, WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES, ZONE_NORMAL
from ..sim import layout as L
from ..sim.layout import (
    C_ATOMIC_FAIL, C_MIN_FREE_SEEN, C_PFMEMALLOC_DROP, C_RCVBUF_DROP, C_RX_MISSED, C_RX_PACKETS, C_STALL_US,
)
from ..sim.engine import step_state   # Simulator.step() for compiled callers
from ..sim.knobs import KNOB_MIN_FREE_KBYTES, KNOB_WSF, NKNOBS
from .spaces import (
    A_BOOST_ALL, A_BOOST_NORMAL, A_MF_DOWN, A_MF_UP, A_WSF_DOWN, A_WSF_UP, KNOB_RATIO_SPAN, LOG1P_SCALE, MF_MAX_KB,
    MF_MIN_KB, N_ZONE_FEATURES, OBS_DIM, OBS_INTERVAL_START, OBS_MACHINE_START, PEAK_TAUS_S, RATE_TAUS_S, SINCE_CAP_S,
    SIZE_MAX_MIB, SIZE_MIN_MIB, STEP_FACTOR, WSF_MAX, WSF_MIN,
)

_NZT = ZONE_NORMAL + 1   # zone types observed: DMA, DMA32, Normal
_LOG_MF = math.log(MF_MAX_KB / MF_MIN_KB)
_LOG_WSF = math.log(WSF_MAX)
# the state arrays step_fused() reads from the state tuple (compile-time constants)
_S_MI, _S_ND, _S_ZS, _S_CTR, _S_MANAGED, _S_WMARK, _S_BOOST = (
    L.STATE_INDEX[n] for n in ("mi", "nd", "zs", "ctr", "managed", "wmark", "boost"))

# Per-machine memory of the "memory" observation and the "levels" actions: Core.mem, (B, M_N) f8.
_NR = len(RATE_TAUS_S)
_NP = len(PEAK_TAUS_S)
M_FAIL_RATE = 0                 # _NR exponential averages of atomic failures / s
M_DROP_RATE = M_FAIL_RATE + _NR  # _NR exponential averages of drops / s
M_SINCE_FAIL = M_DROP_RATE + _NR  # s since the end of the last interval with a failure (or reset)
M_SINCE_DROP = M_SINCE_FAIL + 1
M_PEAK = M_SINCE_DROP + 1        # _NP decaying peak holds of rx_packets / s
M_BOOT_MF = M_PEAK + _NP         # min_free_kbytes at reset
M_BOOT_WSF = M_BOOT_MF + 1       # watermark_scale_factor at reset
M_MANAGED_MIB = M_BOOT_WSF + 1   # managed memory at reset, MiB
M_N = M_MANAGED_MIB + 1
M_DYNAMIC = M_BOOT_MF            # columns [0, M_DYNAMIC) start at 0 on reset
_LOG_SINCE = math.log1p(SINCE_CAP_S)
_LOG_SIZE = math.log(SIZE_MAX_MIB / SIZE_MIN_MIB)
_LOG_RATIO = 2.0 * math.log(KNOB_RATIO_SPAN)

# action kinds of action_knobs()
K_DISCRETE = 0   # a = index into amap -> a discrete action (A_*)
K_LEVELS = 1     # a = index into the machine's level table
K_CONTINUOUS = 2  # the float actions (B, 3): continuous_knobs()
CONT_DEADBAND = 0.02   # continuous targets within 2 % of the current value are not written
_LOG_MF_MIN = math.log(MF_MIN_KB)
_LOG_WSF_MIN = math.log(WSF_MIN)
_LOG_WSF_SPAN = math.log(WSF_MAX / WSF_MIN)


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
def obs_batch(managed, wmark, boost, zs, mi, nd, ctr, prev, n_nodes, out, lo, hi):
    """Fill rows lo..hi-1 of out (B, OBS_DIM) float32 (layout: spaces.py)."""
    for b in range(lo, hi):
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
                mn += wmark[b, z, WMARK_MIN]
                lo += wmark[b, z, WMARK_LOW]
                hi += wmark[b, z, WMARK_HIGH]
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
        out[b, k + 2] = _lg(ctr[b, C_RCVBUF_DROP] - prev[b, C_RCVBUF_DROP])
        out[b, k + 3] = _lg(ctr[b, C_PFMEMALLOC_DROP] - prev[b, C_PFMEMALLOC_DROP])
        out[b, k + 4] = _lg(ctr[b, C_RX_PACKETS] - prev[b, C_RX_PACKETS])
        smin = 0.0
        for z in range(wmark.shape[1]):
            smin += wmark[b, z, WMARK_MIN]
        out[b, k + 5] = _ratio(ctr[b, C_MIN_FREE_SEEN], smin, 4.0)
        out[b, k + 6] = _lg(ctr[b, C_STALL_US] - prev[b, C_STALL_US])


@jit()
def mem_update(ctr, prev, mask, dt_s, decay, mem):
    """Advance the memory of the machines in mask by one interval of dt_s seconds (counters since
    ``prev``). ``decay[i] = exp(-dt_s / tau_i)`` for RATE_TAUS_S then PEAK_TAUS_S, so the averages
    mean the same per second whatever the decision interval."""
    for b in range(mask.shape[0]):
        if not mask[b]:
            continue
        fails = ctr[b, C_ATOMIC_FAIL] - prev[b, C_ATOMIC_FAIL]
        drops = ((ctr[b, C_RX_MISSED] - prev[b, C_RX_MISSED]) + (ctr[b, C_RCVBUF_DROP] - prev[b, C_RCVBUF_DROP])
                 + (ctr[b, C_PFMEMALLOC_DROP] - prev[b, C_PFMEMALLOC_DROP]))
        rx = (ctr[b, C_RX_PACKETS] - prev[b, C_RX_PACKETS]) / dt_s
        for i in range(_NR):
            d = decay[i]
            mem[b, M_FAIL_RATE + i] = d * mem[b, M_FAIL_RATE + i] + (1.0 - d) * (fails / dt_s)
            mem[b, M_DROP_RATE + i] = d * mem[b, M_DROP_RATE + i] + (1.0 - d) * (drops / dt_s)
        mem[b, M_SINCE_FAIL] = 0.0 if fails > 0.0 else min(mem[b, M_SINCE_FAIL] + dt_s, SINCE_CAP_S)
        mem[b, M_SINCE_DROP] = 0.0 if drops > 0.0 else min(mem[b, M_SINCE_DROP] + dt_s, SINCE_CAP_S)
        for i in range(_NP):
            h = decay[_NR + i] * mem[b, M_PEAK + i]
            mem[b, M_PEAK + i] = rx if rx > h else h


@jit()
def _unit(v):
    return min(max(v, 0.0), 1.0)


@jit()
def obs_memory(mi, mem, out, lo, hi):
    """Fill the memory features of rows lo..hi-1, out[lo:hi, OBS_DIM:] (layout: spaces.MEMORY_FEATURES)."""
    for b in range(lo, hi):
        k = OBS_DIM
        for i in range(_NR):
            out[b, k + i] = _lg(mem[b, M_FAIL_RATE + i])
            out[b, k + _NR + i] = _lg(mem[b, M_DROP_RATE + i])
        k += 2 * _NR
        out[b, k] = math.log1p(min(mem[b, M_SINCE_FAIL], SINCE_CAP_S)) / _LOG_SINCE
        out[b, k + 1] = math.log1p(min(mem[b, M_SINCE_DROP], SINCE_CAP_S)) / _LOG_SINCE
        k += 2
        for i in range(_NP):
            out[b, k + i] = _lg(mem[b, M_PEAK + i])
        k += _NP
        out[b, k] = _unit(math.log(max(mem[b, M_MANAGED_MIB], 1.0) / SIZE_MIN_MIB) / _LOG_SIZE)
        out[b, k + 1] = _unit(0.5 + math.log(max(float(mi[b, L.MI_MIN_FREE_KBYTES]), 1.0)
                                             / max(mem[b, M_BOOT_MF], 1.0)) / _LOG_RATIO)
        out[b, k + 2] = _unit(0.5 + math.log(max(float(mi[b, L.MI_WSF]), 1.0)
                                             / max(mem[b, M_BOOT_WSF], 1.0)) / _LOG_RATIO)


@jit()
def terms_batch(ctr, prev, changes, table, weights, penalty, mi, was_term, mask, t_out, r_out, dead_out, lo, hi):
    """Raw reward terms (B, K), reward (B,) and newly deadlocked (B,) over the last interval, for
    the rows lo..hi-1 (the only rows read or written).
    ``table`` is Core.cost_table (cost.TERMS as arrays): ``table.term_of[j]`` sums counter
    ``table.counter_of[j]``; a term is divided by ``table.divisor``; a ``from_actions`` term is
    ``changes`` (the knob changes of the agent's action)."""
    term_of, counter_of, divisor, from_actions = table
    K = divisor.shape[0]
    for b in range(lo, hi):
        for i in range(K):
            t_out[b, i] = changes[b] if from_actions[i] else 0.0
        for j in range(term_of.shape[0]):
            c = counter_of[j]
            t_out[b, term_of[j]] += ctr[b, c] - prev[b, c]
        for i in range(K):
            t_out[b, i] = t_out[b, i] / divisor[i]
        term = mi[b, L.MI_TERMINATED] != 0
        dead_out[b] = term and not was_term[b]
        was_term[b] = term
        if not mask[b]:
            for i in range(K):
                t_out[b, i] = 0.0
            r_out[b] = 0.0
            dead_out[b] = False
            continue
        cost = 0.0
        for i in range(K):
            cost += t_out[b, i] * weights[i]
        r_out[b] = -cost - (penalty if dead_out[b] else 0.0)


@jit()
def continuous_knobs(a, mi, managed, wmark, boost, mask, mf, wsf, bk, changes):
    """Continuous actions (B, 3) in [-1, 1], u = (a + 1) / 2 -> log-scale targets of min_free_kbytes
    (128 kB .. 1 GiB) and watermark_scale_factor (1 .. 3000), each written only if more than 2 %
    from the current value, and a boost level: target boost per populated zone u * max_boost
    (boost_watermark()'s cap, max(pageblock, high * watermark_boost_factor / 10000)) reached by
    ceil(gap / 512) boost_watermark() calls, the gap measured from 0 when a sysctl write (which
    clears the boosts) comes first. One change per sysctl written, one if any zone is boosted."""
    for b in range(a.shape[0]):
        _no_action(b, mf, wsf, bk, changes)
        if not mask[b]:
            continue
        m0 = mi[b, L.MI_MIN_FREE_KBYTES]
        w0 = mi[b, L.MI_WSF]
        u0 = (a[b, 0] + 1.0) / 2.0
        u1 = (a[b, 1] + 1.0) / 2.0
        u2 = (a[b, 2] + 1.0) / 2.0
        mft = min(MF_MAX_KB, max(MF_MIN_KB, int(np.round(np.exp(_LOG_MF_MIN + u0 * _LOG_MF)))))
        wst = min(WSF_MAX, max(WSF_MIN, int(np.round(np.exp(_LOG_WSF_MIN + u1 * _LOG_WSF_SPAN)))))
        if abs(mft - m0) > CONT_DEADBAND * m0:
            mf[b] = mft
            changes[b] += 1.0
        if wst != w0 and abs(wst - w0) > CONT_DEADBAND * w0:
            wsf[b] = wst
            changes[b] += 1.0
        written = mf[b] >= 0 or wsf[b] >= 0
        wbf = mi[b, L.MI_WBF]
        boosted = False
        for z in range(bk.shape[1]):
            if managed[b, z] <= 0:
                continue
            maxb = max(512, wmark[b, z, WMARK_HIGH] * wbf // 10000)
            target = int(np.floor(u2 * maxb))
            cur = 0 if written else boost[b, z]
            if target > cur:
                bk[b, z] = -(-(target - cur) // 512)
                boosted = True
        if boosted:
            changes[b] += 1.0


@jit()
def action_knobs(kind, a, amap, levels, mi, managed, mask, mf, wsf, bk, changes):
    """Actions of a Discrete action type -> sysctl targets (-1 = unchanged), boost_watermark()
    calls, change count (one per sysctl written, one per boost action). K_DISCRETE: action a is the
    discrete action amap[a]; K_LEVELS: action a sets the machine's levels[b, a] = (min_free_kbytes,
    watermark_scale_factor), each written only if it differs from the current value."""
    if kind == K_LEVELS:
        level_knobs(a, levels, mi, mask, mf, wsf, bk, changes)
    else:
        discrete_knobs(a, amap, mi, managed, mask, mf, wsf, bk, changes)


@jit()
def _no_action(b, mf, wsf, bk, changes):
    """Machine b's action outputs before its action: no sysctl write, no boost, no change."""
    mf[b] = -1
    wsf[b] = -1
    changes[b] = 0.0
    for z in range(bk.shape[1]):
        bk[b, z] = 0


@jit()
def level_knobs(a, levels, mi, mask, mf, wsf, bk, changes):
    for b in range(a.shape[0]):
        _no_action(b, mf, wsf, bk, changes)
        if not mask[b]:
            continue
        x = a[b]
        if levels[b, x, 0] != mi[b, L.MI_MIN_FREE_KBYTES]:
            mf[b] = levels[b, x, 0]
            changes[b] += 1.0
        if levels[b, x, 1] != mi[b, L.MI_WSF]:
            wsf[b] = levels[b, x, 1]
            changes[b] += 1.0


@jit()
def discrete_knobs(a, amap, mi, managed, mask, mf, wsf, bk, changes):
    """Discrete actions amap[a] -> sysctl targets (-1 = unchanged), boost_watermark() calls, change count."""
    for b in range(a.shape[0]):
        _no_action(b, mf, wsf, bk, changes)
        if not mask[b]:
            continue
        m0 = mi[b, L.MI_MIN_FREE_KBYTES]
        w0 = mi[b, L.MI_WSF]
        x = amap[a[b]]
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
                if managed[b, z] > 0 and (x == A_BOOST_ALL or z % MAX_NR_ZONES == ZONE_NORMAL):
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
def shadow_episode(T, knobs, bp, bw, mask, n_ticks, prev, k0, steps, table, weights, penalty, was_term, out, stop):
    """The reward shadow's intervals k0..steps-1 of the machines in ``mask``, in one compiled call:
    per interval engine.step_state (= Simulator.step(n_ticks) with no knob write: the start of the
    interval, then its ticks) and terms_batch() with no knob change, the reward written to
    ``out[b, k]``. ``knobs``/``bp``/``bw``: Simulator.step()'s no-write arrays; ``was_term``: each
    machine's terminated flag before interval k0 (updated in place). Stops before the next interval
    once ``stop[0]`` is nonzero (another thread's request: envs/shadow_ahead.py at exit)."""
    mi = T[_S_MI]
    ctr = T[_S_CTR]
    B = mask.shape[0]
    changes = np.zeros(B)
    t = np.empty((B, table[2].shape[0]))
    r = np.empty(B)
    dead = np.empty(B, np.bool_)
    for k in range(k0, steps):
        if stop[0] != 0:
            return
        step_state(T, knobs, bp, bw, mask, n_ticks, prev, True)
        terms_batch(ctr, prev, changes, table, weights, penalty, mi, was_term, mask, t, r, dead, 0, B)
        for b in range(B):
            if mask[b]:
                out[b, k] = r[b]


@jit()
def step_fused(T, actions, factions, kind, amap, levels, n_ticks, table, weights, penalty, prev, was_term, n_nodes,
               mem, dt_s, decay, memory, obs_out, t_out, r_out, dead_out, lo, hi):
    """One agent step of every machine of the batch in one compiled call, exactly as Core.apply()
    + Core.advance() + Core.step_terms() + Core.obs() with every machine active: the actions'
    knobs (action_knobs() of ``actions`` (B,) int64 for the Discrete kinds, continuous_knobs() of
    ``factions`` (B, 3) float64 for K_CONTINUOUS), then the simulator's step (engine.step_state =
    Simulator.step(): the knob writes, the start of the interval, ``n_ticks`` ticks per machine),
    mem_update() if ``memory``, terms_batch(), obs_batch() (+ obs_memory()). Only the machines
    lo..hi-1 step and only their rows are read or written: two threads may step two ranges at once
    (Core.step_fused())."""
    mi = T[_S_MI]
    ctr = T[_S_CTR]
    managed = T[_S_MANAGED]
    B = actions.shape[0]
    Z = managed.shape[1]
    mask = np.zeros(B, np.bool_)
    mask[lo:hi] = True
    mf = np.empty(B, np.int64)
    wsf = np.empty(B, np.int64)
    bk = np.empty((B, Z), np.int64)
    changes = np.empty(B, np.float64)
    if kind == K_CONTINUOUS:
        continuous_knobs(factions, mi, managed, T[_S_WMARK], T[_S_BOOST], mask, mf, wsf, bk, changes)
    else:
        action_knobs(kind, actions, amap, levels, mi, managed, mask, mf, wsf, bk, changes)
    knobs = np.full((B, NKNOBS), -1, np.int64)
    for b in range(lo, hi):
        knobs[b, KNOB_MIN_FREE_KBYTES] = mf[b]
        knobs[b, KNOB_WSF] = wsf[b]
    bp = np.zeros((B, Z), np.int64)
    step_state(T, knobs, bp, bk, mask, n_ticks, prev, True)
    if memory:
        mem_update(ctr, prev, mask, dt_s, decay, mem)
    terms_batch(ctr, prev, changes, table, weights, penalty, mi, was_term, mask, t_out, r_out, dead_out, lo, hi)
    obs_batch(managed, T[_S_WMARK], T[_S_BOOST], T[_S_ZS], mi, T[_S_ND], ctr, prev, n_nodes, obs_out, lo, hi)
    if memory:
        obs_memory(mi, mem, obs_out, lo, hi)
