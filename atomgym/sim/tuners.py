"""In-kernel tuner hooks and the knob writes they (and set_knobs) use.

A machine's tuner is an integer id (``TUNERS``) with a float64 state row ``ts[b]`` and a
params row ``tpar[b]``. The compiled loop calls :func:`tuner_on_event` at the exact tick:

* ``EV_ALLOC_FAIL``     an allocation failed (gfp mask, class, preferred zone)
* ``EV_SLOWPATH_ENTRY`` an allocation entered __alloc_pages_slowpath() (gfp, class, preferred zone)
* ``EV_KSWAPD_END``     a balance_pgdat() run ended (node; ``arg`` = 1 if it was boosted)
* ``EV_TIMER``          every tick (tuners check their own deadlines)

Tuners act only through kernel functions (sysctl writes via kernel/sysctl.py,
kernel/boost.py's boost_watermark, wakeup_kswapd) and record every action with
:func:`log_action` (a ring of (t_ms, reason, zone, value) per machine, rendered by
``REASONS`` on the Python side).

Adding a tuner (e.g. a patch-series version): give it an id in ``TUNERS``, a reason code
and text in ``REASONS``, write ``_my_tuner(S, b, ev, gfp, cls, zone, node, arg)`` below and
add one ``elif tid == TUNER_MY:`` branch to :func:`tuner_on_event`. Parameters go in
``tpar[b, :]`` (filled from ``Simulator(..., tuner_params=...)``), state in ``ts[b, :]``.
"""
from __future__ import annotations

from numba import njit

from ..kernel.boost import boost_watermark_zone
from ..kernel.sysctl import write_min_free_kbytes, write_watermark_scale_factor
from ..kernel.watermarks import WMARK_MIN
from ..kernel.zones import PAGEBLOCK_NR_PAGES, ZONE_NORMAL
from .layout import (
    C_KNOB_WRITES, C_TUNER_ACTIONS, CLS_KERNEL,
    MF_T_MS, MI_MIN_FREE_KBYTES, MI_MOVABLE_CLAMPED, MI_NZL_KERNEL, MI_RING_N, MI_SUM_MIN,
    MI_TERMINATED, MI_TUNER, MI_USER_MIN_FREE_KBYTES, MI_WBF, MI_WSF, TUNER_RING, ZF_BOOSTED_FLAG,
    ZF_KERNEL, ZL_KERNEL,
)

EV_ALLOC_FAIL = 0
EV_SLOWPATH_ENTRY = 1
EV_KSWAPD_END = 2
EV_TIMER = 3

TUNER_NONE = 0
TUNER_BOOST_ON_FAIL = 1
TUNERS: dict[str, int] = {"none": TUNER_NONE, "boost-on-fail": TUNER_BOOST_ON_FAIL}

TS = 16   # tuner state row length
TP = 16   # tuner params row length

# reason codes of action records
R_BOOST_ON_FAIL = 1
REASONS: dict[int, str] = {
    R_BOOST_ON_FAIL: "boost-on-fail: atomic allocation failed; boost_watermark({zone}) -> boost {value:.0f} pages",
}

# boost-on-fail: params / state
BOF_P_DEBOUNCE_MS = 0      # default 1000
BOF_S_LAST = 0             # t_ms of the last boost (-inf at reset)


# ---- knob writes (sysctl semantics; shared by set_knobs and the tuners) -------------------
@njit(cache=True)
def _after_wmark_change(S, b):
    """Recompute the derived sums after setup_per_zone_wmarks() and check for deadlock:
    when, in every zone a GFP_KERNEL request may use, min + lowmem_reserve is at least what
    can ever be free (managed minus unreclaimable kernel memory), nothing can ever pass
    the min check ("System is deadlocked on memory")."""
    managed = S.managed
    wmark = S.wmark
    reserve = S.reserve
    zs = S.zs
    zl = S.zl
    mi = S.mi
    s = 0
    for z in range(managed.shape[1]):
        s += wmark[b, z, WMARK_MIN]
    mi[b, MI_SUM_MIN] = s
    ok = False
    for i in range(mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if wmark[b, z, WMARK_MIN] + reserve[b, z, ZONE_NORMAL] < managed[b, z] - zs[b, z, ZF_KERNEL]:
            ok = True
    if not ok:
        mi[b, MI_TERMINATED] = 1


@njit(cache=True)
def knob_min_free_kbytes(S, b, value):
    """vm.min_free_kbytes write: min_free_kbytes_sysctl_handler() (recompute, boosts cleared)."""
    mi = S.mi
    mi[b, MI_USER_MIN_FREE_KBYTES] = value
    mi[b, MI_MIN_FREE_KBYTES] = write_min_free_kbytes(
        value, S.managed[b], S.ztype[b], mi[b, MI_WSF], mi[b, MI_MOVABLE_CLAMPED] != 0,
        S.wmark[b], S.boost[b])
    S.ctr[b, C_KNOB_WRITES] += 1
    _after_wmark_change(S, b)


@njit(cache=True)
def knob_watermark_scale_factor(S, b, value):
    """vm.watermark_scale_factor write: watermark_scale_factor_sysctl_handler()."""
    mi = S.mi
    mi[b, MI_WSF] = value
    write_watermark_scale_factor(value, S.managed[b], S.ztype[b], mi[b, MI_MIN_FREE_KBYTES],
                                 mi[b, MI_MOVABLE_CLAMPED] != 0, S.wmark[b], S.boost[b])
    S.ctr[b, C_KNOB_WRITES] += 1
    _after_wmark_change(S, b)


@njit(cache=True)
def knob_watermark_boost_factor(S, b, value):
    """vm.watermark_boost_factor write: proc_dointvec_minmax only stores the value; the
    kernel recomputes nothing (existing boosts stay until kswapd clears them)."""
    S.mi[b, MI_WBF] = value
    S.ctr[b, C_KNOB_WRITES] += 1


@njit(cache=True)
def boost_zone(S, b, z, step):
    """boost_watermark() on zone z with ``step`` pages (kernel: pageblock_nr_pages), then
    set ZONE_BOOSTED_WATERMARK so the next successful allocation wakes kswapd. Returns
    whether the zone was boosted."""
    ok = boost_watermark_zone(S.managed[b], S.wmark[b], S.boost[b], z, S.mi[b, MI_WBF], step)
    if ok:
        S.zs[b, z, ZF_BOOSTED_FLAG] = 1
    return ok


@njit(cache=True)
def boost_zone_pages(S, b, z, pages):
    """Boost zone z by N pages directly (no factor cap): an action outside the kernel's
    rule, offered to agents; sets ZONE_BOOSTED_WATERMARK like boost_watermark()."""
    if pages <= 0 or S.managed[b, z] == 0:
        return
    S.boost[b, z] += pages
    S.zs[b, z, ZF_BOOSTED_FLAG] = 1


# ---- action log ------------------------------------------------------------------------------
@njit(cache=True)
def log_action(S, b, reason, zone, value):
    ring = S.ring
    mi = S.mi
    k = mi[b, MI_RING_N] % TUNER_RING
    ring[b, k, 0] = S.mf[b, MF_T_MS]
    ring[b, k, 1] = reason
    ring[b, k, 2] = zone
    ring[b, k, 3] = value
    mi[b, MI_RING_N] += 1
    S.ctr[b, C_TUNER_ACTIONS] += 1


# ---- tuners ------------------------------------------------------------------------------------
@njit(cache=True)
def _boost_on_fail(S, b, ev, gfp, cls, zone, node, arg):
    """Test tuner: at an atomic failure, boost_watermark() every zone of the kernel zonelist,
    at most once per debounce interval (default 1 s)."""
    if ev != EV_ALLOC_FAIL or cls == CLS_KERNEL:   # only non-blocking failures
        return
    ts = S.ts
    deb = S.tpar[b, BOF_P_DEBOUNCE_MS]
    t = S.mf[b, MF_T_MS]
    if t - ts[b, BOF_S_LAST] < deb:
        return
    ts[b, BOF_S_LAST] = t
    zl = S.zl
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        z = zl[b, ZL_KERNEL, i]
        if boost_zone(S, b, z, PAGEBLOCK_NR_PAGES):
            log_action(S, b, R_BOOST_ON_FAIL, z, S.boost[b, z])


@njit(cache=True)
def tuner_on_event(S, b, ev, gfp, cls, zone, node, arg):
    """Dispatch an event to machine b's tuner (an ``if tuner_id == ...`` chain)."""
    tid = S.mi[b, MI_TUNER]
    if tid == TUNER_NONE:
        return
    if tid == TUNER_BOOST_ON_FAIL:
        _boost_on_fail(S, b, ev, gfp, cls, zone, node, arg)


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
    if params:
        raise ValueError(f"tuner {name!r}: unknown params {sorted(params)}")
    return tid


def render_action(rec, zone_names) -> str:
    """One-line reason for an action record (t_ms, reason, zone, value)."""
    t, reason, zone, value = float(rec[0]), int(rec[1]), int(rec[2]), float(rec[3])
    zn = zone_names[zone] if 0 <= zone < len(zone_names) else str(zone)
    text = REASONS.get(reason, f"reason {reason}: zone {{zone}} value {{value}}")
    return f"t={t:.1f} ms " + text.format(zone=zn, value=value)
