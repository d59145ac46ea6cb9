"""In-kernel tuner hooks (the patch series' versions) and their action log.

A machine's tuner is an integer id (``TUNERS``) with a float64 state row ``ts[b]`` and a
params row ``tpar[b]``. The compiled loop calls :func:`tuner_on_event` at the exact tick:

* ``EV_ALLOC_FAIL``     an allocation failed (gfp mask, class, preferred zone)
* ``EV_SLOWPATH_ENTRY`` an allocation entered __alloc_pages_slowpath() (gfp, class, preferred zone)
* ``EV_KSWAPD_END``     a balance_pgdat() run ended (node; ``arg`` = 1 if it was boosted)
* ``EV_TIMER``          every tick (tuners check their own deadlines)

Tuners act only through the knob writers of sim/knobs.py (sysctl writes with the proc handlers'
semantics, boost_watermark()) and wakeup_kswapd and record every action with
:func:`log_action` (a ring of (t_ms, reason, zone, value) per machine, rendered by
``REASONS`` on the Python side).

Adding a tuner (e.g. a patch-series version): give it an id in ``TUNERS``, a reason code
and text in ``REASONS``, write ``_my_tuner(S, b, ev, gfp, cls, zone, node, arg)`` below and
add one ``elif tid == TUNER_MY:`` branch to :func:`tuner_on_event`. Parameters go in
``tpar[b, :]`` (filled from ``Simulator(..., tuner_params=...)``), state in ``ts[b, :]``.
"""
from __future__ import annotations

import numpy as np
from ..kernel.jit import jit

from ..kernel.watermark_ok import GFP_ATOMIC
from ..kernel.watermarks import WMARK_HIGH, setup_per_zone_wmarks
from ..kernel.zones import MAX_NR_ZONES, PAGEBLOCK_NR_PAGES, ZONE_NORMAL
from .knobs import after_wmark_change, boost_zone, boost_zone_pages, knob_min_free_kbytes
from .kswapd import wakeup_kswapd
from .layout import (
    C_TUNER_ACTIONS, CLS_KERNEL, MI_MIN_FREE_KBYTES, MI_MOVABLE_CLAMPED, MI_NZL_KERNEL, MI_RING_N, MI_TUNER, MI_WSF,
    MR_T_MS, TUNER_RING, ZL_KERNEL,
)

EV_ALLOC_FAIL = 0
EV_SLOWPATH_ENTRY = 1
EV_KSWAPD_END = 2
EV_TIMER = 3

TUNER_NONE = 0
TUNER_BOOST_ON_FAIL = 1
TUNER_V1 = 2
TUNER_V2 = 3
TUNER_V3 = 4
TUNER_V4 = 5
TUNER_V10 = 6
TUNERS: dict[str, int] = {"none": TUNER_NONE, "boost-on-fail": TUNER_BOOST_ON_FAIL,
                          "v1-double": TUNER_V1, "v2-grow-decay": TUNER_V2, "v3-boost": TUNER_V3,
                          "v4-soft-boost": TUNER_V4, "v10-acked": TUNER_V10}

# state row: 16 scalars, then three per-zone arrays (up to 8 nodes x 5 zones)
MAXZ = 40
TS_ZA = 16                # per-zone array A (v4: soft-boost debounce; v10: debounce)
TS_ZB = TS_ZA + MAXZ      # per-zone array B (v4: failure-boost debounce)
TS_ZC = TS_ZB + MAXZ      # per-zone array C (v4: watermark_scale_boost)
NTS = TS_ZC + MAXZ        # tuner state row length (layout.STATE's ts)
NTPAR = 16                # tuner params row length (layout.STATE's tpar)

# reason codes of action records
R_BOOST_ON_FAIL = 1
R_V1_DOUBLE = 2
R_V2_GROW = 3
R_V2_DECAY = 4
R_V3_BOOST = 5
R_V4_SOFT = 6
R_V4_FAIL = 7
R_V4_WSB = 8
R_V4_WSB_DECAY = 9
R_V10_BOOST = 10
REASONS: dict[int, str] = {
    R_BOOST_ON_FAIL: "boost-on-fail: atomic allocation failed; boost_watermark({zone}) -> boost {value:.0f} pages",
    R_V1_DOUBLE: "v1-double: order-0 failure in {zone}; min_free_kbytes doubled (cap 1% RAM) -> {value:.0f} kB",
    R_V2_GROW: "v2-grow-decay: order-0 failure in {zone}; min_free_kbytes +50% (cap 1% RAM) -> {value:.0f} kB",
    R_V2_DECAY: "v2-grow-decay: 300 s decay; min_free_kbytes -5% -> {value:.0f} kB",
    R_V3_BOOST: "v3-boost: order-0 failure; boost_watermark({zone}) -> boost {value:.0f} pages",
    R_V4_SOFT: "v4-soft-boost: atomic slow-path entry; soft boost in {zone} -> boost {value:.0f} pages",
    R_V4_FAIL: "v4-soft-boost: atomic failure in {zone}; boost_watermark -> boost {value:.0f} pages",
    R_V4_WSB: "v4-soft-boost: atomic failure in {zone}; watermark_scale_boost +5 -> {value:.0f}",
    R_V4_WSB_DECAY: "v4-soft-boost: boosted kswapd run ended; watermark_scale_boost of {zone} -5 -> {value:.0f}",
    R_V10_BOOST: "v10-acked: atomic failure; boost {zone} by 0.1% of managed -> boost {value:.0f} pages",
}

# series gates (patch-series.md): v1-v3 `(gfp & GFP_ATOMIC) && order == 0`;
# v4+ `(gfp & GFP_ATOMIC) == GFP_ATOMIC` (all simulated requests are order 0)
# v1/v2 state
V_S_INIT = 0      # boot min_free_kbytes (set at the first timer tick)
V_S_LAST = 1      # v2/v3: t_ms of the last action (global debounce)
V_S_DECAY_AT = 2  # v2: t_ms of the next decay (-1: not armed)
V_P_DEBOUNCE_MS = 0   # v2/v3 default 10000; v4 10000; v10 1000
V_P_DECAY_MS = 1      # v2: 300000

# boost-on-fail: params / state
BOF_P_DEBOUNCE_MS = 0      # default 1000
BOF_S_LAST = 0             # t_ms of the last boost (-inf at reset)


# ---- action log ------------------------------------------------------------------------------
@jit()
def log_action(S, b, reason, zone, value):
    ring = S.ring
    mi = S.mi
    k = mi[b, MI_RING_N] % TUNER_RING
    ring[b, k, 0] = S.mr[b, MR_T_MS]
    ring[b, k, 1] = reason
    ring[b, k, 2] = zone
    ring[b, k, 3] = value
    mi[b, MI_RING_N] += 1
    S.ctr[b, C_TUNER_ACTIONS] += 1


# ---- tuners ------------------------------------------------------------------------------------
@jit()
def _boost_on_fail(S, b, ev, gfp, cls, zone, node, arg):
    """Test tuner: at an atomic failure, boost_watermark() every zone of the kernel zonelist,
    at most once per debounce interval (default 1 s)."""
    if ev != EV_ALLOC_FAIL or cls == CLS_KERNEL:   # only non-blocking failures
        return
    ts = S.ts
    deb = S.tpar[b, BOF_P_DEBOUNCE_MS]
    t = S.mr[b, MR_T_MS]
    if t - ts[b, BOF_S_LAST] < deb:
        return
    ts[b, BOF_S_LAST] = t
    zl = S.zl
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if boost_zone(S, b, z, PAGEBLOCK_NR_PAGES):
            log_action(S, b, R_BOOST_ON_FAIL, z, S.boost[b, z])


@jit()
def _one_percent_ram_kb(S, b):
    """1 % of total RAM in kB (the series' cap: totalram_pages() / 100, in kB)."""
    tot = 0
    for z in range(S.managed.shape[1]):
        tot += S.managed[b, z]
    return (tot * 4) // 100


@jit()
def _v1_double(S, b, ev, gfp, cls, zone, node, arg):
    """v1 (Jan 2026): on an order-0 failure passing the v1-v3 gate, min_free_kbytes *= 2,
    capped at 1 % of RAM; no-op when already at/above the cap (THP's larger value)."""
    if ev != EV_ALLOC_FAIL or (gfp & GFP_ATOMIC) == 0:
        return
    min_free = S.mi[b, MI_MIN_FREE_KBYTES]
    cap = _one_percent_ram_kb(S, b)
    new = min_free * 2
    if new > cap:
        new = cap
    if new > min_free:
        knob_min_free_kbytes(S, b, new, False)
        log_action(S, b, R_V1_DOUBLE, zone, new)


@jit()
def _v2_grow_decay(S, b, ev, gfp, cls, zone, node, arg):
    """v2: new = min_free + min_free/2 clamped to 1 % RAM, applied only if larger (raises
    user_min_free_kbytes too), global 10 s debounce; a delayed work 300 s after each increase
    does min_free -= min_free/20 and re-arms every 300 s while min_free > initial + initial/5."""
    ts = S.ts
    t = S.mr[b, MR_T_MS]
    if ev == EV_TIMER:
        if ts[b, V_S_INIT] <= 0:
            ts[b, V_S_INIT] = S.mi[b, MI_MIN_FREE_KBYTES]
        da = ts[b, V_S_DECAY_AT]
        if da >= 0 and t >= da:
            init = np.int64(ts[b, V_S_INIT])
            floor = init + init // 5
            min_free = S.mi[b, MI_MIN_FREE_KBYTES]
            ts[b, V_S_DECAY_AT] = -1.0
            if min_free > floor:
                new = min_free - min_free // 20
                if new < floor:
                    new = floor
                knob_min_free_kbytes(S, b, new, True)
                log_action(S, b, R_V2_DECAY, -1, new)
                if new > floor:
                    ts[b, V_S_DECAY_AT] = t + S.tpar[b, V_P_DECAY_MS]
        return
    if ev != EV_ALLOC_FAIL or (gfp & GFP_ATOMIC) == 0:
        return
    if t - ts[b, V_S_LAST] < S.tpar[b, V_P_DEBOUNCE_MS]:
        return
    min_free = S.mi[b, MI_MIN_FREE_KBYTES]
    cap = _one_percent_ram_kb(S, b)
    new = min_free + min_free // 2
    if new > cap:
        new = cap
    if new > min_free:
        ts[b, V_S_LAST] = t
        knob_min_free_kbytes(S, b, new, True)
        log_action(S, b, R_V2_GROW, zone, new)
        ts[b, V_S_DECAY_AT] = t + S.tpar[b, V_P_DECAY_MS]   # (re)schedule the decay work


@jit()
def _v3_boost(S, b, ev, gfp, cls, zone, node, arg):
    """v3: boost_watermark() on every zone of the zonelist (all nodes), waking the zone's
    kswapd when it returned true; one global 10 s debounce."""
    if ev != EV_ALLOC_FAIL or (gfp & GFP_ATOMIC) == 0:
        return
    ts = S.ts
    t = S.mr[b, MR_T_MS]
    if t - ts[b, V_S_LAST] < S.tpar[b, V_P_DEBOUNCE_MS]:
        return
    ts[b, V_S_LAST] = t
    zl = S.zl
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if boost_zone(S, b, z, PAGEBLOCK_NR_PAGES):
            log_action(S, b, R_V3_BOOST, z, S.boost[b, z])
            wakeup_kswapd(S, b, z // MAX_NR_ZONES, ZONE_NORMAL)


@jit()
def _v4_recompute(S, b):
    """v4: __setup_per_zone_wmarks() with each zone's watermark_scale_factor +
    watermark_scale_boost, boosts kept: the kernel function is run per zone on scratch copies
    (its boost clearing lands on the scratch array)."""
    mi = S.mi
    nz = S.managed.shape[1]
    wm = S.wmark[b].copy()
    bs = S.boost[b].copy()
    for z in range(nz):
        wsf = mi[b, MI_WSF] + np.int64(S.ts[b, TS_ZC + z])
        setup_per_zone_wmarks(S.managed[b], S.ztype[b], mi[b, MI_MIN_FREE_KBYTES], wsf,
                              mi[b, MI_MOVABLE_CLAMPED] != 0, wm, bs)
        for j in range(S.wmark.shape[2]):
            S.wmark[b, z, j] = wm[z, j]
    after_wmark_change(S, b)


@jit()
def _v4_soft_boost(S, b, ev, gfp, cls, zone, node, arg):
    """v4: strict gate (gfp & GFP_ATOMIC) == GFP_ATOMIC. Slow-path entry: the first zone of
    the zonelist whose 10 s debounce expired gets boost = min(boost + 256, high/2), kswapd
    woken. Failure: the first such zone gets boost_watermark() with step
    max(512, managed >> 10) and watermark_scale_boost += 5 (cap 100), watermarks recomputed
    without clearing boosts. Each boosted balance_pgdat() lowers the node's zones' scale boost
    by 5 (floor 0) and recomputes."""
    ts = S.ts
    t = S.mr[b, MR_T_MS]
    deb = S.tpar[b, V_P_DEBOUNCE_MS]
    zl = S.zl
    if ev == EV_KSWAPD_END:
        if arg != 1:
            return
        changed = False
        for t5 in range(MAX_NR_ZONES):
            z = node * MAX_NR_ZONES + t5
            if z < MAXZ and ts[b, TS_ZC + z] > 0:
                v = ts[b, TS_ZC + z] - 5
                ts[b, TS_ZC + z] = v if v > 0 else 0.0
                log_action(S, b, R_V4_WSB_DECAY, z, ts[b, TS_ZC + z])
                changed = True
        if changed:
            _v4_recompute(S, b)
        return
    if ev != EV_ALLOC_FAIL and ev != EV_SLOWPATH_ENTRY:
        return
    if (gfp & GFP_ATOMIC) != GFP_ATOMIC:
        return
    base = TS_ZA if ev == EV_SLOWPATH_ENTRY else TS_ZB
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if z >= MAXZ or t - ts[b, base + z] < deb:
            continue
        ts[b, base + z] = t
        if ev == EV_SLOWPATH_ENTRY:
            nb = S.boost[b, z] + 256
            cap = S.wmark[b, z, WMARK_HIGH] // 2
            if nb > cap:
                nb = cap
            if nb > S.boost[b, z]:
                boost_zone_pages(S, b, z, nb - S.boost[b, z])   # a zonelist zone: managed > 0
            log_action(S, b, R_V4_SOFT, z, S.boost[b, z])
        else:
            step = S.managed[b, z] >> 10
            if step < 512:
                step = 512
            boost_zone(S, b, z, step)
            log_action(S, b, R_V4_FAIL, z, S.boost[b, z])
            w = ts[b, TS_ZC + z] + 5
            ts[b, TS_ZC + z] = w if w < 100 else 100.0
            _v4_recompute(S, b)
            log_action(S, b, R_V4_WSB, z, ts[b, TS_ZC + z])
        wakeup_kswapd(S, b, z // MAX_NR_ZONES, ZONE_NORMAL)
        return


@jit()
def _v10_acked(S, b, ev, gfp, cls, zone, node, arg):
    """v10 (acked): on an order-0 GFP_ATOMIC failure, every eligible zone of the zonelist
    whose 1 s per-zone debounce expired gets boost += managed * 1 / 1000 (v9's constant),
    independent of watermark_boost_factor; kswapd woken."""
    if ev != EV_ALLOC_FAIL or (gfp & GFP_ATOMIC) != GFP_ATOMIC:
        return
    ts = S.ts
    t = S.mr[b, MR_T_MS]
    deb = S.tpar[b, V_P_DEBOUNCE_MS]
    zl = S.zl
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if z >= MAXZ or t - ts[b, TS_ZA + z] < deb:
            continue
        pages = (S.managed[b, z] * 1) // 1000
        if pages <= 0:
            continue
        ts[b, TS_ZA + z] = t
        boost_zone_pages(S, b, z, pages)
        log_action(S, b, R_V10_BOOST, z, S.boost[b, z])
        wakeup_kswapd(S, b, z // MAX_NR_ZONES, ZONE_NORMAL)


@jit()
def tuner_on_event(S, b, ev, gfp, cls, zone, node, arg):
    """Dispatch an event to machine b's tuner (an ``if tuner_id == ...`` chain)."""
    tid = S.mi[b, MI_TUNER]
    if tid == TUNER_NONE:
        return
    if tid == TUNER_BOOST_ON_FAIL:
        _boost_on_fail(S, b, ev, gfp, cls, zone, node, arg)
    elif tid == TUNER_V1:
        _v1_double(S, b, ev, gfp, cls, zone, node, arg)
    elif tid == TUNER_V2:
        _v2_grow_decay(S, b, ev, gfp, cls, zone, node, arg)
    elif tid == TUNER_V3:
        _v3_boost(S, b, ev, gfp, cls, zone, node, arg)
    elif tid == TUNER_V4:
        _v4_soft_boost(S, b, ev, gfp, cls, zone, node, arg)
    elif tid == TUNER_V10:
        _v10_acked(S, b, ev, gfp, cls, zone, node, arg)


def init_tuner(name: str, ts_row, tpar_row, params: dict | None = None) -> int:
    """Python side: fill a machine's tuner state/params rows; returns the tuner id."""
    if name not in TUNERS:
        raise ValueError(f"unknown tuner {name!r}; valid: {', '.join(TUNERS)}")
    tid = TUNERS[name]
    ts_row[:] = 0.0
    tpar_row[:] = 0.0
    params = dict(params or {})
    if tid == TUNER_BOOST_ON_FAIL:
        tpar_row[BOF_P_DEBOUNCE_MS] = float(params.pop("debounce_ms", 1000.0))
        ts_row[BOF_S_LAST] = -1e300
    elif tid in (TUNER_V2, TUNER_V3, TUNER_V4, TUNER_V10):
        tpar_row[V_P_DEBOUNCE_MS] = float(params.pop("debounce_ms", 1000.0 if tid == TUNER_V10 else 10000.0))
        tpar_row[V_P_DECAY_MS] = float(params.pop("decay_ms", 300000.0))
        ts_row[V_S_LAST] = -1e300
        ts_row[V_S_DECAY_AT] = -1.0
        ts_row[TS_ZA:TS_ZC] = -1e300
    if params:
        raise ValueError(f"tuner {name!r}: unknown params {sorted(params)}")
    return tid


def render_action(rec, zone_names) -> str:
    """One-line reason for an action record (t_ms, reason, zone, value)."""
    t, reason, zone, value = float(rec[0]), int(rec[1]), int(rec[2]), float(rec[3])
    zn = zone_names[zone] if 0 <= zone < len(zone_names) else str(zone)
    text = REASONS.get(reason, f"reason {reason}: zone {{zone}} value {{value}}")
    return f"t={t:.1f} ms " + text.format(zone=zn, value=value)
