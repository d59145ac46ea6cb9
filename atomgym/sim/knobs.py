"""Every knob write on a simulated machine: one writer per sysctl with a proc handler, one generic
writer for the store-only ones (compiled).

The writers apply a value with the semantics of the kernel's proc handler (kernel/sysctl.py does
the watermark arithmetic), count a ``knob_writes`` and re-derive what depends on the watermarks
(the sum of min watermarks, the deadlock check, the pcp high limits). Every caller goes through
them: ``Simulator.set_knobs()``/``Simulator.step()`` (via :func:`apply_knobs`), a scenario's timed
writes (:func:`apply_phases`) and the in-kernel tuners (sim/tuners.py). Values are not checked
here; the Python side checks them against kernel/sysctl.py's ``SYSCTL_RANGES`` (from its ``SYSCTLS``).

Besides the sysctls, two boost actions: :func:`boost_zone` (the kernel's boost_watermark()) and
:func:`boost_zone_pages` (a raw boost, offered to agents).
"""
from __future__ import annotations

from ..kernel.boost import boost_watermark_zone
from ..kernel.jit import jit
from ..kernel.pcp import PCP_HIGH_AUTOTUNE, pcp_high_static
from ..kernel.sysctl import SYSCTLS, write_min_free_kbytes, write_watermark_scale_factor
from ..kernel.watermarks import WMARK_LOW, WMARK_MIN
from ..kernel.zones import PAGEBLOCK_NR_PAGES, ZONE_NORMAL
from .layout import (
    C_BOOST_ACTIONS, C_KNOB_WRITES, MI_MIN_FREE_KBYTES, MI_MOVABLE_CLAMPED, MI_NZL_KERNEL, MI_PCP_CPUS,
    MI_PCP_MODE, MI_PHASE_N, MI_PHASE_NEXT, MI_PHASE_OFF, MI_SUM_MIN, MI_TERMINATED, MI_USER_MIN_FREE_KBYTES,
    MI_NAMES, MI_WBF, MI_WSF, MR_T_MS, ZF_BOOSTED_FLAG, ZF_KERNEL, ZF_PCP_BATCH, ZF_PCP_HIGH, ZF_PCP_HIGH_MAX,
    ZF_PCP_HIGH_MIN, ZL_KERNEL, WP_RATE,
)
from .vmstat import refresh_thresholds

# The sysctls the simulator writes, by id: kernel/sysctl.py's SYSCTLS, in its order. A knob vector
# is (B, len(KNOBS)) int64 (-1: unchanged); a phase's writes are stored as (t_ms, knob id, value);
# both are applied in KNOB_WRITE_ORDER (apply_knobs()). Each value lives in the machine integer of
# the same name (layout.MI_NAMES, KNOB_MI) and is written by write_knob(): a store-only sysctl by
# the generic knob_store(), the others by their own writer below (the kernel's proc handler rule).
KNOBS: tuple[str, ...] = tuple(s.name for s in SYSCTLS)
KNOB_MIN_FREE_KBYTES = KNOBS.index("min_free_kbytes")
KNOB_WSF = KNOBS.index("watermark_scale_factor")
NKNOBS = len(KNOBS)
KNOB_MI = tuple(MI_NAMES.index(n) if n in MI_NAMES else -1 for n in KNOBS)   # where each value is stored
KNOB_STORE_ONLY = tuple(s.store_only for s in SYSCTLS)   # written by knob_store()
# The sysctls with a handler, in the order their writers run, after every store-only one (which
# recomputes nothing): the scale factor first, so that a min_free_kbytes write in the same batch
# computes the watermarks with the new factor. write_knob() has a branch for each.
_HANDLER_WRITE_ORDER = ("watermark_scale_factor", "min_free_kbytes")
# A phase's rate change is stored like a write, with id PHASE_RATE + the workload's index and the
# rate in pages/ms (apply_phases()): a workload parameter, not a sysctl.
PHASE_RATE = 1000
KNOB_WRITE_ORDER = (tuple(k for k in range(NKNOBS) if KNOB_STORE_ONLY[k])
                    + tuple(KNOBS.index(n) for n in _HANDLER_WRITE_ORDER if n in KNOBS))
if -1 in KNOB_MI:
    raise ValueError(f"sim/knobs.py: sysctl {KNOBS[KNOB_MI.index(-1)]!r} (kernel/sysctl.py SYSCTLS) has "
                     "no machine integer of its name in sim/layout.py MI_NAMES")
for _k, _n in enumerate(KNOBS):
    if not KNOB_STORE_ONLY[_k] and _n not in _HANDLER_WRITE_ORDER:
        raise ValueError(f"sim/knobs.py: sysctl {_n!r} is not store-only (kernel/sysctl.py SYSCTLS) but has no "
                         "writer here: add its knob_<name>() writer, its write_knob() branch and its place in "
                         "_HANDLER_WRITE_ORDER")
for _n in _HANDLER_WRITE_ORDER:
    if _n not in KNOBS or KNOB_STORE_ONLY[KNOBS.index(_n)]:
        raise ValueError(f"sim/knobs.py: _HANDLER_WRITE_ORDER names {_n!r}, not a sysctl with a handler in "
                         "kernel/sysctl.py SYSCTLS")
if sorted(KNOB_WRITE_ORDER) != list(range(NKNOBS)):
    raise ValueError(f"sim/knobs.py: KNOB_WRITE_ORDER must order every sysctl of KNOBS once: {', '.join(KNOBS)}")


# ---- what follows a watermark change -------------------------------------------------------
@jit()
def after_wmark_change(S, b):
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
    zone_pcp_update(S, b)
    # simplified: the pressure thresholds follow the new low - min at once (the kernel keeps those
    # set_pgdat_percpu_threshold() computed at kswapd's wake-up; sim/vmstat.py)
    refresh_thresholds(S, b, -1)


@jit()
def zone_pcp_update(S, b):
    """zone_pcp_update() after setup_per_zone_wmarks(): every zone's pcp high (before 6.7) or
    high_min/high_max (6.7+, pcp->high clamped into them) from kernel/pcp.py's rules."""
    zs = S.zs
    mode = S.mi[b, MI_PCP_MODE]
    cpus = S.mi[b, MI_PCP_CPUS]
    for z in range(zs.shape[1]):
        if S.managed[b, z] == 0:
            continue
        lo, hi = pcp_high_static(mode, S.managed[b, z], S.wmark[b, z, WMARK_LOW], zs[b, z, ZF_PCP_BATCH], cpus)
        zs[b, z, ZF_PCP_HIGH_MIN] = lo
        zs[b, z, ZF_PCP_HIGH_MAX] = hi
        h = zs[b, z, ZF_PCP_HIGH]
        if mode != PCP_HIGH_AUTOTUNE or h < lo:
            h = lo
        if h > hi:
            h = hi
        zs[b, z, ZF_PCP_HIGH] = h


# ---- one writer per sysctl -------------------------------------------------------------------
@jit()
def knob_min_free_kbytes(S, b, value, set_user):
    """vm.min_free_kbytes = value: min_free_kbytes_sysctl_handler() (setup_per_zone_wmarks(),
    boosts cleared). ``set_user``: also user_min_free_kbytes, as a write through /proc does (and
    the series' v2); the v1 series patch writes min_free_kbytes alone."""
    mi = S.mi
    if set_user:
        mi[b, MI_USER_MIN_FREE_KBYTES] = value
    mi[b, MI_MIN_FREE_KBYTES] = write_min_free_kbytes(
        value, S.managed[b], S.ztype[b], mi[b, MI_WSF], mi[b, MI_MOVABLE_CLAMPED] != 0,
        S.wmark[b], S.boost[b])
    S.ctr[b, C_KNOB_WRITES] += 1
    after_wmark_change(S, b)


@jit()
def knob_watermark_scale_factor(S, b, value):
    """vm.watermark_scale_factor = value: watermark_scale_factor_sysctl_handler()."""
    mi = S.mi
    mi[b, MI_WSF] = value
    write_watermark_scale_factor(value, S.managed[b], S.ztype[b], mi[b, MI_MIN_FREE_KBYTES],
                                 mi[b, MI_MOVABLE_CLAMPED] != 0, S.wmark[b], S.boost[b])
    S.ctr[b, C_KNOB_WRITES] += 1
    after_wmark_change(S, b)


@jit()
def knob_store(S, b, knob, value):
    """vm.<knob> = value for a store-only sysctl (kernel/sysctl.py SYSCTLS, e.g.
    watermark_boost_factor): proc_dointvec_minmax only stores the value; the kernel recomputes
    nothing (existing boosts stay until kswapd clears them)."""
    S.mi[b, KNOB_MI[knob]] = value
    S.ctr[b, C_KNOB_WRITES] += 1


@jit()
def write_knob(S, b, knob, value):
    """The writer of sysctl ``knob`` (a KNOBS id), as a write through /proc."""
    if KNOB_STORE_ONLY[knob]:
        knob_store(S, b, knob, value)
    elif knob == KNOB_MIN_FREE_KBYTES:
        knob_min_free_kbytes(S, b, value, True)
    elif knob == KNOB_WSF:
        knob_watermark_scale_factor(S, b, value)


# ---- boosts ------------------------------------------------------------------------------------
@jit()
def boost_zone(S, b, z, step):
    """boost_watermark() on zone z with ``step`` pages (kernel: pageblock_nr_pages), then
    set ZONE_BOOSTED_WATERMARK so the next successful allocation wakes kswapd. Returns
    whether the zone was boosted."""
    ok = boost_watermark_zone(S.managed[b], S.wmark[b], S.boost[b], z, S.mi[b, MI_WBF], step)
    if ok:
        S.zs[b, z, ZF_BOOSTED_FLAG] = 1
    return ok


@jit()
def boost_zone_pages(S, b, z, pages):
    """Boost zone z by N pages directly (no factor cap): an action outside the kernel's
    rule, offered to agents; sets ZONE_BOOSTED_WATERMARK like boost_watermark()."""
    if pages <= 0 or S.managed[b, z] == 0:
        return
    S.boost[b, z] += pages
    S.zs[b, z, ZF_BOOSTED_FLAG] = 1


# ---- batches of writes ------------------------------------------------------------------------
@jit()
def apply_knobs(S, knobs, boost_pages, boost_calls, mask):
    """Knob writes for every machine in mask: ``knobs`` (B, NKNOBS) sysctl values (-1 =
    unchanged) through write_knob() in KNOB_WRITE_ORDER (the store-only sysctls such as
    watermark_boost_factor, then watermark_scale_factor, min_free_kbytes), then boosts (``boost_pages`` (B, Z):
    boost_zone_pages(); ``boost_calls`` (B, Z): that many boost_zone() calls with a pageblock
    each). A machine asked to boost counts one ``boost_actions`` (however many zones), as the
    envs' knob-change term does."""
    for b in range(mask.shape[0]):
        if not mask[b]:
            continue
        for k in KNOB_WRITE_ORDER:
            if knobs[b, k] >= 0:
                write_knob(S, b, k, knobs[b, k])
        asked = False
        for z in range(boost_pages.shape[1]):
            asked = asked or boost_pages[b, z] > 0 or boost_calls[b, z] > 0
            if boost_pages[b, z] > 0:
                boost_zone_pages(S, b, z, boost_pages[b, z])
            if boost_calls[b, z] > 0:
                for _ in range(boost_calls[b, z]):
                    boost_zone(S, b, z, PAGEBLOCK_NR_PAGES)
        if asked:
            S.ctr[b, C_BOOST_ACTIONS] += 1


@jit()
def apply_phases(S, b):
    """The scenario phases' sysctl writes and workload rates due by now, in time order (stored by
    sim/encode.py's encode_phases() as (t_ms, knob, value) triples in ``trace``; a rate's knob is
    PHASE_RATE + the workload, its value pages/ms)."""
    mi = S.mi
    tr = S.trace
    t = S.mr[b, MR_T_MS]
    off = mi[b, MI_PHASE_OFF]
    while mi[b, MI_PHASE_NEXT] < mi[b, MI_PHASE_N]:
        j = off + 3 * mi[b, MI_PHASE_NEXT]
        if t < tr[b, j]:
            return
        mi[b, MI_PHASE_NEXT] += 1
        k = int(tr[b, j + 1])
        if k >= PHASE_RATE:
            S.wp[b, k - PHASE_RATE, WP_RATE] = tr[b, j + 2]
        else:
            write_knob(S, b, k, int(tr[b, j + 2]))
