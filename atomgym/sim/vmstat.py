"""The free-page count the watermark checks read (mm/vmstat.c).

NR_FREE_PAGES is a vmstat counter: each CPU accumulates its changes in a per-CPU diff and folds it
into the zone's counter only when the diff passes the zone's stat threshold
(__mod_zone_page_state(): ``abs(x) > t``), or at vmstat_update() / quiet_vmstat(). The allocator's
checks (zone_watermark_fast(), and zone_watermark_ok_safe() where the zone has no
percpu_drift_mark) read the zone's counter, zone_page_state(), so they see free memory up to
``t`` pages per CPU off the buddy count. The threshold is calculate_normal_threshold() while
kswapd sleeps and calculate_pressure_threshold() from the moment it runs after a full sleep until
it sleeps fully again (set_pgdat_percpu_threshold() in kswapd_try_to_sleep(); ND_STAT_PRESSURE).

Every second vmstat_update() folds the diffs (refresh_cpu_vm_stats(), sysctl_stat_interval = HZ).

Simplified: a watermark write (min_free_kbytes, watermark_scale_factor) moves the pressure
thresholds with low - min at once, where the kernel keeps those it set at kswapd's wake-up (the
sysctl handlers call setup_per_zone_wmarks(), not refresh_zone_stat_thresholds()); one diff per
zone, as if every change came from one CPU (the kernel's counter can lag
by up to ``t`` on each CPU whose diff is not folded: the drift here is the least the kernel shows,
exact on one CPU), folded where the count is read rather than at each change (the same fold points
for single-page steps and bulk moves larger than ``t``); quiet_vmstat()'s fold when a CPU enters
idle is not modelled.
"""
from __future__ import annotations

from ..kernel.jit import jit
from ..kernel.watermarks import WMARK_HIGH, WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES
from .layout import MI_NNODES, MI_PCP_CPUS, ND_STAT_PRESSURE, ZF_FREE, ZF_FREE_SEEN, ZF_STAT_NORMAL, ZF_STAT_T

STAT_THRESHOLD_MAX = 125    # calculate_normal_threshold() / calculate_pressure_threshold(): min(125, ...)


def normal_threshold_of(managed: int, cpus: int) -> int:
    """calculate_normal_threshold(): 2 * fls(cpus) * (1 + fls(managed >> (27 - PAGE_SHIFT))), at
    most 125 (fls(): the highest set bit, 1-based, 0 for 0). It depends on the zone's managed pages
    and the CPUs only, so the encoder stores it per zone (``ZF_STAT_NORMAL``)."""
    cpus = max(int(cpus), 1)
    return min(STAT_THRESHOLD_MAX, 2 * cpus.bit_length() * (1 + (int(managed) >> 15).bit_length()))


@jit(inline="llvm")
def online_cpus(S, b):
    """num_online_cpus(): the machine's CPUs (the encoder stores them per node, MI_PCP_CPUS; the
    same product gave ZF_STAT_NORMAL at encode)."""
    return S.mi[b, MI_PCP_CPUS] * S.mi[b, MI_NNODES]


@jit(inline="llvm")
def _threshold_now(S, b, z):
    """calculate_pressure_threshold() while the node's kswapd is awake, from its first run after a
    full sleep (max(1, (low - min) / cpus), at most 125), else calculate_normal_threshold()
    (``ZF_STAT_NORMAL``)."""
    if S.nd[b, z // MAX_NR_ZONES, ND_STAT_PRESSURE] == 0.0:
        return S.zs[b, z, ZF_STAT_NORMAL]
    cpus = online_cpus(S, b)
    t = S.wmark[b, z, WMARK_LOW] - S.wmark[b, z, WMARK_MIN]
    if cpus > 1:
        t //= cpus
    if t < 1:
        t = 1
    return t if t < STAT_THRESHOLD_MAX else STAT_THRESHOLD_MAX


@jit()
def refresh_thresholds(S, b, node):
    """set_pgdat_percpu_threshold(): the threshold in force (``ZF_STAT_T``) of each zone of
    ``node`` (every node when ``node`` < 0), after kswapd's state or the watermarks changed."""
    zs = S.zs
    for z in range(zs.shape[1]):
        if node < 0 or z // MAX_NR_ZONES == node:
            zs[b, z, ZF_STAT_T] = _threshold_now(S, b, z)


@jit(inline="llvm")
def stat_threshold(S, b, z):
    """The zone's per-CPU stat threshold in force (``ZF_STAT_T``, refresh_thresholds())."""
    return S.zs[b, z, ZF_STAT_T]


@jit(inline="llvm")
def fold(f, g, t):
    """The zone counter ``g`` after the buddy count moved to ``f``: folded to ``f`` once the
    pending diff passes the threshold ``t``, else unchanged."""
    d = f - g
    if d > t or d < -t:
        return f
    return g


@jit(inline="llvm")
def free_seen(S, b, z):
    """zone_page_state(zone, NR_FREE_PAGES): the zone's counter, folded first if the buddy count
    has moved past the threshold since the last fold (stored)."""
    zs = S.zs
    g = fold(zs[b, z, ZF_FREE], zs[b, z, ZF_FREE_SEEN], stat_threshold(S, b, z))
    zs[b, z, ZF_FREE_SEEN] = g
    return g


@jit(inline="llvm")
def free_seen_safe(S, b, z):
    """zone_watermark_ok_safe()'s count: the zone's counter, or the exact sum
    (zone_page_state_snapshot()) below the zone's percpu_drift_mark, which
    refresh_zone_stat_thresholds() sets to high + cpus * normal threshold only where that drift
    exceeds low - min (a zone whose counter could pass low with min breached)."""
    g = free_seen(S, b, z)
    drift = online_cpus(S, b) * S.zs[b, z, ZF_STAT_NORMAL]
    if drift > S.wmark[b, z, WMARK_LOW] - S.wmark[b, z, WMARK_MIN] and g < S.wmark[b, z, WMARK_HIGH] + drift:
        return S.zs[b, z, ZF_FREE]
    return g


@jit()
def vmstat_update(S, b):
    """vmstat_update() -> refresh_cpu_vm_stats(): every zone's counter folded to the buddy count."""
    zs = S.zs
    for z in range(zs.shape[1]):
        zs[b, z, ZF_FREE_SEEN] = zs[b, z, ZF_FREE]
