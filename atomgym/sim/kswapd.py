"""kswapd per node and page reclaim (mm/vmscan.c), per machine, per tick.

State per node in ``nd[b, node, ND_*]``. Reclaim moves pages from the page cache (and
anonymous memory when swap is configured and the pass is not boosted) to the buddy free
count at a rate (pages/ms) bounded by what is reclaimable. Page cache of streaming
readers that is reclaimed is remembered so that re-reading it counts as a refault.
"""
from __future__ import annotations

from ..kernel.jit import jit

from ..kernel.watermark_ok import MIGRATE_MOVABLE, gfp_migratetype, zone_watermark_ok
from ..kernel.watermarks import WMARK_HIGH
from ..kernel.zones import MAX_NR_ZONES, MAX_RECLAIM_RETRIES, SWAP_CLUSTER_MAX
from .lru import lru_reclaim
from .vmstat import free_seen_safe, refresh_thresholds
from .layout import (
    C_HIGH_HIT, C_KSWAPD_LONGEST, C_KSWAPD_PASSES, C_KSWAPD_RUN_MS, C_KSWAPD_WAKEUPS, C_LOW_HIT,
    C_PAGEOUTRUN, C_PGSCAN_KSWAPD, C_PGSTEAL_KSWAPD,
    KS_NAP, KS_RUN, KS_SLEEP, KS_WAKING,
    MR_KS_LATENCY, MR_KS_RATE, MR_T_MS, MR_TICK_MS, MI_NWORK, MI_SWAP,
    ND_ACC, ND_BOOST_LEFT, ND_BOOSTED, ND_FAILURES, ND_HZ, ND_HZ_PEND, ND_PASS_ANON, ND_PASS_BOOSTED, ND_PASS_ENOUGH,
    ND_PASS_FILE, ND_PASS_GOT, ND_PRIO, ND_RECLAIMED, ND_RUN_T0, ND_STATE, ND_STAT_PRESSURE, ND_T,
    WK_ATOMIC, WK_STREAM, WP_KIND, WP_S_HELD, WP_S_RESIDENT,
    ZF_ANON, ZF_BOOST_SNAP, ZF_CACHE, ZF_FREE, MI_CACHE_GFP,
)

KSWAPD_NAP_MS = 100.0  # kswapd_try_to_sleep(): schedule_timeout(HZ/10)
DEF_PRIORITY = 12      # mm/vmscan.c
SWAPPINESS = 60        # vm.swappiness default (mem_cgroup_swappiness())


@jit(inline="llvm")
def pgdat_balanced(S, b, node, hz):
    """pgdat_balanced(): true if ANY managed zone up to ``hz`` passes
    zone_watermark_ok_safe(zone, 0, high_wmark_pages(zone), hz) (boost included, no
    reserve access) on the zone's NR_FREE_PAGES counter (free_seen_safe(), sim/vmstat.py); a node
    with no managed zone up to hz is balanced."""
    managed = S.managed
    wmark = S.wmark
    boost = S.boost
    reserve = S.reserve
    base = node * MAX_NR_ZONES
    seen = False
    for t in range(hz + 1):
        z = base + t
        if managed[b, z] == 0:
            continue
        seen = True
        if zone_watermark_ok(free_seen_safe(S, b, z), wmark[b, z, WMARK_HIGH] + boost[b, z], reserve[b, z, hz], 0):
            return True
    return not seen


@jit()
def pgdat_watermark_boosted(S, b, node, hz):
    """pgdat_watermark_boosted(): any zone up to hz has a watermark_boost."""
    boost = S.boost
    base = node * MAX_NR_ZONES
    for t in range(hz + 1):
        if boost[b, base + t] > 0:
            return True
    return False


@jit()
def wakeup_kswapd(S, b, node, hz):
    """wakeup_kswapd(): first raises the pending pgdat->kswapd_highest_zoneidx (set if none is
    pending or it is lower: the run after this one reads it, a run in progress keeps its own);
    then a no-op if kswapd is already running (waitqueue not active), if kswapd_failures >=
    MAX_RECLAIM_RETRIES, or if the node is balanced and not boosted at ``hz``. Waking it during
    its 100 ms nap counts kswapd_low_wmark_hit_quickly (kswapd_try_to_sleep(): "remaining" !=
    0). Returns True if it was woken."""
    nd = S.nd
    ctr = S.ctr
    pend = nd[b, node, ND_HZ_PEND]
    if pend >= MAX_NR_ZONES or pend < hz:
        nd[b, node, ND_HZ_PEND] = hz
    st = nd[b, node, ND_STATE]
    if st == KS_WAKING or st == KS_RUN:
        return False
    if nd[b, node, ND_FAILURES] >= MAX_RECLAIM_RETRIES:
        return False
    if pgdat_balanced(S, b, node, hz) and not pgdat_watermark_boosted(S, b, node, hz):
        return False
    if st == KS_NAP:
        ctr[b, C_LOW_HIT] += 1
    nd[b, node, ND_STATE] = KS_WAKING
    nd[b, node, ND_T] = S.mr[b, MR_T_MS]
    ctr[b, C_KSWAPD_WAKEUPS] += 1
    return True


@jit(inline="llvm")
def _highest_zoneidx(S, b, node, reset):
    """kswapd_highest_zoneidx(pgdat, prev): the pending index if a wakeup set one, else the
    previous run's; kswapd() resets the pending one (MAX_NR_ZONES) when it reads it for a run."""
    nd = S.nd
    pend = nd[b, node, ND_HZ_PEND]
    if pend < MAX_NR_ZONES:
        nd[b, node, ND_HZ] = pend
        if reset:
            nd[b, node, ND_HZ_PEND] = MAX_NR_ZONES


@jit()
def _take_anon(S, b, z, x):
    """Swap out up to x anonymous pages of zone z: background anon first, then the
    workloads' pages in workload order. Returns pages taken."""
    zs = S.zs
    wz = S.wz
    wp = S.wp
    held = 0
    nw = S.mi[b, MI_NWORK]
    for w in range(nw):
        if wp[b, w, WP_KIND] != WK_ATOMIC:   # an atomic_alloc workload's pages are kernel memory
            held += wz[b, w, z]
    # pages of an allocation still in flight (scratch row, not yet charged to their owner)
    # are not background anon
    bg = zs[b, z, ZF_ANON] - held - S.scr[b, z]
    if bg < 0:
        bg = 0
    t = x if x < bg else bg
    left = x - t
    for w in range(nw):
        if left == 0:
            break
        if wp[b, w, WP_KIND] == WK_ATOMIC:
            continue
        k = wz[b, w, z] if wz[b, w, z] < left else left
        wz[b, w, z] -= k
        wp[b, w, WP_S_HELD] -= k
        left -= k
    took = x - left
    zs[b, z, ZF_ANON] -= took
    zs[b, z, ZF_FREE] += took
    return took


SHRINK_BOTH = 0   # page cache, then anonymous memory when swap is configured (direct reclaim)
SHRINK_FILE = 1   # the file LRU only
SHRINK_ANON = 2   # the anon LRU only (with swap)


@jit(inline="llvm")
def _zone_reclaimable(S, b, z, with_anon, with_file):
    zs = S.zs
    r = zs[b, z, ZF_CACHE] if with_file else 0
    if with_anon:
        r += zs[b, z, ZF_ANON]
    return r


@jit(literal_args=("mode",))   # SHRINK_BOTH/FILE/ANON: one version each (measured: +30 % of its instructions without)
def shrink_zones(S, b, node, hz, x, mode):
    """shrink_node() for kswapd (``node``) or direct reclaim (node < 0: every node, the page
    cache in proportion to each node's eligible share): reclaim up to ``x`` pages of zones 0..hz; progress
    on a node resets its kswapd_failures. ``mode``: SHRINK_BOTH (page cache before anonymous
    memory, the latter only with swap), SHRINK_FILE, SHRINK_ANON (only with swap). The page
    cache comes off each node's LRU oldest first, whatever its zone (sim/lru.py); anonymous
    memory from each zone in proportion to its share. Freed pages go to the buddy free pages of
    their pageblocks' type (free_unref_page_list() -> get_pfnblock_migratetype()): MOVABLE, or
    UNMOVABLE for a block device's page cache (GFP_USER, MI_CACHE_GFP). Returns pages
    reclaimed."""
    zs = S.zs
    managed = S.managed
    nz = managed.shape[1]
    nn = nz // MAX_NR_ZONES
    with_anon = (S.mi[b, MI_SWAP] != 0) and mode != SHRINK_FILE
    with_file = mode != SHRINK_ANON
    total = 0
    cache_before = 0
    for z in range(nz):
        cache_before += zs[b, z, ZF_CACHE]
        if managed[b, z] == 0 or z % MAX_NR_ZONES > hz:
            continue
        if node >= 0 and z // MAX_NR_ZONES != node:
            continue
        total += _zone_reclaimable(S, b, z, with_anon, with_file)
    if total == 0 or x <= 0:
        return 0
    if x > total:
        x = total
    done = 0
    if with_file:
        unmov = gfp_migratetype(S.mi[b, MI_CACHE_GFP]) != MIGRATE_MOVABLE
        if node >= 0:
            got = lru_reclaim(S, b, node, hz, x, unmov)
            if got > 0:
                # shrink_node() [6.1, 6.18]: "On reclaim progress, reset the failure counter. A
                # successful direct reclaim run will revive a dormant kswapd." (kswapd's and
                # direct reclaim's alike)
                S.nd[b, node, ND_FAILURES] = 0.0
            done = got
        else:
            # direct reclaim walks every node: shares in proportion to each node's eligible
            # page cache (floor), then the remainder in node order
            cache = 0
            for z in range(nz):
                if managed[b, z] != 0 and z % MAX_NR_ZONES <= hz:
                    cache += zs[b, z, ZF_CACHE]
            want = x if x < cache else cache
            for p in range(2):
                for n in range(nn):
                    if done >= want:
                        break
                    c = 0
                    for t in range(hz + 1):
                        c += zs[b, n * MAX_NR_ZONES + t, ZF_CACHE]
                    if c == 0:
                        continue
                    share = (want * c) // cache if p == 0 else want - done
                    got = lru_reclaim(S, b, n, hz, share, unmov)
                    if got > 0:
                        S.nd[b, n, ND_FAILURES] = 0.0
                    done += got
        if done > 0:
            evict_cache_owners(S, b, done, cache_before)
    if with_anon and done < x:
        done += _shrink_anon(S, b, node, hz, x - done)
    return done


@jit()
def _shrink_anon(S, b, node, hz, x):
    """Swap out up to ``x`` anonymous pages of zones 0..hz (of ``node``, or every node when
    node < 0), each zone in proportion to its anonymous memory (floor), then the remainder in
    zone order; progress resets the node's kswapd_failures (shrink_node())."""
    zs = S.zs
    managed = S.managed
    nz = managed.shape[1]
    total = 0
    for z in range(nz):
        if managed[b, z] == 0 or z % MAX_NR_ZONES > hz:
            continue
        if node >= 0 and z // MAX_NR_ZONES != node:
            continue
        total += zs[b, z, ZF_ANON]
    if total == 0:
        return 0
    if x > total:
        x = total
    done = 0
    for p in range(2):
        for z in range(nz):
            if done >= x:
                break
            if managed[b, z] == 0 or z % MAX_NR_ZONES > hz:
                continue
            if node >= 0 and z // MAX_NR_ZONES != node:
                continue
            a = zs[b, z, ZF_ANON]
            if a == 0:
                continue
            share = (x * a) // total if p == 0 else x - done
            if share > a:
                share = a
            if share <= 0:
                continue
            got = _take_anon(S, b, z, share)
            if got > 0:
                S.nd[b, z // MAX_NR_ZONES, ND_FAILURES] = 0.0
            done += got
    return done


@jit()
def evict_cache_owners(S, b, taken, cache_before):
    """Charge reclaimed page cache to streaming readers in proportion to their resident
    pages (the LRU does not know owners; the rest was background page cache)."""
    wp = S.wp
    nw = S.mi[b, MI_NWORK]
    if cache_before <= 0:
        return
    for w in range(nw):
        if wp[b, w, WP_KIND] == WK_STREAM:
            res = wp[b, w, WP_S_RESIDENT]
            # (taken * res) // cache_before in float64 (res is a float field); in integers when the
            # product is exact in a double (< 2**53): the same value without a libm fmod call
            ires = int(res)
            if (ires == res and 0 <= ires < 2147483648 and 0 <= taken < 2147483648
                    and 0 < cache_before < 9007199254740992 and taken * ires < 9007199254740992):
                ev = float((taken * ires) // cache_before)
            else:
                ev = (taken * res) // cache_before
            if ev > res:
                ev = res
            wp[b, w, WP_S_RESIDENT] = res - ev


@jit()
def prepare_kswapd_sleep(S, b, node, hz):
    """prepare_kswapd_sleep(): a hopeless node (failures >= 16) may sleep; otherwise
    sleep only when balanced."""
    if S.nd[b, node, ND_FAILURES] >= MAX_RECLAIM_RETRIES:
        return True
    return pgdat_balanced(S, b, node, hz)


@jit()
def _start_run(S, b, node):
    """balance_pgdat() entry: PAGEOUTRUN, snapshot each zone's boost (zone_boosts[]);
    nr_boost_reclaim = their sum; a non-zero sum makes the run boosted; sc.priority =
    DEF_PRIORITY; ZONE_RECLAIM_ACTIVE is implied by the KS_RUN state. Before it, kswapd() reads
    the run's highest_zoneidx and resets the pending one ("Read the new order and highest_zoneidx")."""
    nd = S.nd
    zs = S.zs
    boost = S.boost
    if nd[b, node, ND_STAT_PRESSURE] == 0.0:   # awake: set_pgdat_percpu_threshold(calculate_pressure_threshold)
        nd[b, node, ND_STAT_PRESSURE] = 1.0
        refresh_thresholds(S, b, node)
    _highest_zoneidx(S, b, node, True)
    hz = int(nd[b, node, ND_HZ])
    S.ctr[b, C_PAGEOUTRUN] += 1
    tot = 0
    base = node * MAX_NR_ZONES
    for t in range(MAX_NR_ZONES):
        z = base + t
        if t <= hz:
            zs[b, z, ZF_BOOST_SNAP] = boost[b, z]
            tot += boost[b, z]
        else:
            zs[b, z, ZF_BOOST_SNAP] = 0
    nd[b, node, ND_STATE] = KS_RUN
    nd[b, node, ND_BOOST_LEFT] = tot
    nd[b, node, ND_BOOSTED] = 1.0 if tot > 0 else 0.0
    nd[b, node, ND_RECLAIMED] = 0.0
    nd[b, node, ND_PRIO] = DEF_PRIORITY
    nd[b, node, ND_PASS_FILE] = -1.0
    nd[b, node, ND_RUN_T0] = S.mr[b, MR_T_MS]


@jit()
def _end_run(S, b, node):
    """balance_pgdat() exit: if boosted, each zone's boost -= min(boost, snapshot) in full,
    whatever was reclaimed (a boost added meanwhile survives); a run that reclaimed
    nothing increments kswapd_failures. Returns whether the run was boosted."""
    nd = S.nd
    zs = S.zs
    boost = S.boost
    ctr = S.ctr
    boosted = nd[b, node, ND_BOOSTED] != 0.0
    if boosted:
        base = node * MAX_NR_ZONES
        for t in range(MAX_NR_ZONES):
            z = base + t
            snap = zs[b, z, ZF_BOOST_SNAP]
            boost[b, z] -= snap if snap < boost[b, z] else boost[b, z]
            zs[b, z, ZF_BOOST_SNAP] = 0
    if nd[b, node, ND_RECLAIMED] == 0.0:
        nd[b, node, ND_FAILURES] += 1
    nd[b, node, ND_BOOSTED] = 0.0
    nd[b, node, ND_BOOST_LEFT] = 0.0
    nd[b, node, ND_PASS_FILE] = -1.0
    run = S.mr[b, MR_T_MS] + S.mr[b, MR_TICK_MS] - nd[b, node, ND_RUN_T0]
    ctr[b, C_KSWAPD_RUN_MS] += run
    if run > ctr[b, C_KSWAPD_LONGEST]:
        ctr[b, C_KSWAPD_LONGEST] = run
    return boosted


@jit()
def try_to_sleep(S, b, node):
    """kswapd() after a run: the index for the sleep check is the pending one if a wakeup set
    one during the run (a boosted zone's rmqueue() wakeup asks for that zone's index), else the
    run's own (kswapd_highest_zoneidx()); kswapd_try_to_sleep(): balanced at it -> 100 ms nap;
    otherwise kswapd_high_wmark_hit_quickly and another balance_pgdat() at once."""
    nd = S.nd
    _highest_zoneidx(S, b, node, False)
    hz = int(nd[b, node, ND_HZ])
    if prepare_kswapd_sleep(S, b, node, hz):
        nd[b, node, ND_STATE] = KS_NAP
        nd[b, node, ND_T] = S.mr[b, MR_T_MS] + KSWAPD_NAP_MS
    else:
        S.ctr[b, C_HIGH_HIT] += 1
        _start_run(S, b, node)


@jit()
def _start_pass(S, b, node, hz, boosting):
    """One pass of balance_pgdat()'s priority loop: kswapd_shrink_node() asks for
    nr_to_reclaim = sum over managed zones <= hz of max(high_wmark_pages(z), SWAP_CLUSTER_MAX)
    (boosts included); shrink_node() -> get_scan_count() scans each LRU list up to
    ``size >> priority`` and shrink_lruvec() stops once the target is reclaimed. Every
    scanned page is taken as reclaimed (clean, unreferenced). The split (get_scan_count()):
    no swap or a boosted pass (may_swap = 0) -> file only; file_is_tiny (file + free <=
    sum of high) -> anon only; cache_trim_mode (file >> priority > 0) -> file only;
    otherwise SCAN_FRACT with equal costs: anon gets swappiness / 200."""
    nd = S.nd
    zs = S.zs
    managed = S.managed
    wmark = S.wmark
    boost = S.boost
    prio = int(nd[b, node, ND_PRIO])
    base = node * MAX_NR_ZONES
    target = 0
    file = 0
    anon = 0
    free = 0
    sum_high = 0
    for t in range(MAX_NR_ZONES):
        z = base + t
        if managed[b, z] == 0:
            continue
        h = wmark[b, z, WMARK_HIGH] + boost[b, z]
        sum_high += h
        free += zs[b, z, ZF_FREE]
        if t > hz:
            continue
        target += h if h > SWAP_CLUSTER_MAX else SWAP_CLUSTER_MAX
        file += zs[b, z, ZF_CACHE]
        anon += zs[b, z, ZF_ANON]
    sf = file >> prio
    sa = anon >> prio
    if S.mi[b, MI_SWAP] == 0 or boosting:
        sa = 0
    elif file + free <= sum_high and sa > 0:
        sf = 0
    elif sf > 0:
        sa = 0
    else:
        sa = sa * SWAPPINESS // 200
        sf = sf * (200 - SWAPPINESS) // 200
    # shrink_lruvec() stops once nr_reclaimed >= nr_to_reclaim (in chunks of SWAP_CLUSTER_MAX)
    tgt = -(-target // SWAP_CLUSTER_MAX) * SWAP_CLUSTER_MAX
    if sf + sa > tgt:
        if sf > tgt:
            sf = tgt
        sa = tgt - sf if sa > tgt - sf else sa
    nd[b, node, ND_PASS_FILE] = sf
    nd[b, node, ND_PASS_ANON] = sa
    nd[b, node, ND_PASS_GOT] = 0.0
    nd[b, node, ND_PASS_ENOUGH] = 1.0 if sf + sa >= target else 0.0
    nd[b, node, ND_PASS_BOOSTED] = 1.0 if boosting else 0.0
    S.ctr[b, C_KSWAPD_PASSES] += 1


@jit()
def _end_pass(S, b, node):
    """The end of a pass: nr_boost_reclaim -= reclaimed; a boosted pass that reclaimed
    nothing ends the run (returns True); priority-- unless the pass scanned enough and
    reclaimed something, or a boosted pass is held at DEF_PRIORITY - 2."""
    nd = S.nd
    got = nd[b, node, ND_PASS_GOT]
    nd[b, node, ND_PASS_FILE] = -1.0
    left = nd[b, node, ND_BOOST_LEFT]
    left -= got if got < left else left
    nd[b, node, ND_BOOST_LEFT] = left
    boosting = nd[b, node, ND_PASS_BOOSTED] != 0.0
    if left > 0 and got == 0:
        return True
    prio = nd[b, node, ND_PRIO]
    raise_prio = not (nd[b, node, ND_PASS_ENOUGH] != 0.0)
    if boosting and prio == DEF_PRIORITY - 2:
        raise_prio = False
    if raise_prio or got == 0:
        nd[b, node, ND_PRIO] = prio - 1
    return False


@jit()
def kswapd_tick(S, b, node):
    """One tick of one node's kswapd. Returns 1 if a balance_pgdat() run ended this tick
    (2 if it was boosted), else 0; the engine then calls the EV_KSWAPD_END tuner hook.

    A run is balance_pgdat()'s priority loop: between passes it checks pgdat_balanced();
    a pass (_start_pass()) reclaims its target at the scan rate (``rate * dt`` pages per
    tick, carried over ticks), so several short passes may run in one tick and a long one
    over several ticks; the node is only re-checked between passes (the overshoot)."""
    nd = S.nd
    mr = S.mr
    ctr = S.ctr
    t_ms = mr[b, MR_T_MS]
    st = nd[b, node, ND_STATE]
    if st == KS_SLEEP:
        return 0
    if st == KS_NAP:
        if t_ms < nd[b, node, ND_T]:
            return 0
        hz = int(nd[b, node, ND_HZ])
        if prepare_kswapd_sleep(S, b, node, hz):
            nd[b, node, ND_STATE] = KS_SLEEP   # full sleep until explicitly woken
            nd[b, node, ND_STAT_PRESSURE] = 0.0  # set_pgdat_percpu_threshold(calculate_normal_threshold)
            refresh_thresholds(S, b, node)
            return 0
        ctr[b, C_HIGH_HIT] += 1
        _start_run(S, b, node)
    elif st == KS_WAKING:
        if t_ms < nd[b, node, ND_T] + mr[b, MR_KS_LATENCY]:
            return 0
        _start_run(S, b, node)
    # ---- KS_RUN: balance_pgdat() for this tick's scan budget ----
    hz = int(nd[b, node, ND_HZ])
    amt = mr[b, MR_KS_RATE] * mr[b, MR_TICK_MS] + nd[b, node, ND_ACC]
    budget = int(amt)
    nd[b, node, ND_ACC] = amt - budget
    for _ in range(4 * DEF_PRIORITY + 4):
        if nd[b, node, ND_PASS_FILE] < 0.0:
            # between passes
            balanced = pgdat_balanced(S, b, node, hz)
            if nd[b, node, ND_BOOST_LEFT] > 0 and not balanced:
                # "If the pgdat is imbalanced then ignore boosting": restart as normal reclaim
                # (the snapshot is still cleared at the end)
                nd[b, node, ND_BOOST_LEFT] = 0.0
                nd[b, node, ND_PRIO] = DEF_PRIORITY
            boosting = nd[b, node, ND_BOOST_LEFT] > 0
            if (not boosting and balanced) or nd[b, node, ND_PRIO] < 1:
                boosted = _end_run(S, b, node)
                try_to_sleep(S, b, node)
                return 2 if boosted else 1
            _start_pass(S, b, node, hz, boosting)
        if budget <= 0:
            return 0
        fl = int(nd[b, node, ND_PASS_FILE])
        al = int(nd[b, node, ND_PASS_ANON])
        got = 0
        short = False
        if fl > 0:
            x = fl if fl < budget else budget
            g = shrink_zones(S, b, node, hz, x, SHRINK_FILE)
            got += g
            budget -= x
            fl -= g
            if g < x:
                short = True
                fl = 0
        if al > 0 and budget > 0:
            x = al if al < budget else budget
            g = shrink_zones(S, b, node, hz, x, SHRINK_ANON)
            got += g
            budget -= x
            al -= g
            if g < x:
                short = True
                al = 0
        if got > 0:
            ctr[b, C_PGSCAN_KSWAPD] += got
            ctr[b, C_PGSTEAL_KSWAPD] += got
            nd[b, node, ND_RECLAIMED] += got
            nd[b, node, ND_PASS_GOT] += got   # (shrink_zones() reset kswapd_failures: shrink_node())
        nd[b, node, ND_PASS_FILE] = fl
        nd[b, node, ND_PASS_ANON] = al
        if fl <= 0 and al <= 0:
            if short:
                nd[b, node, ND_PASS_ENOUGH] = 0.0   # the lists ran out: not scanned enough
            if _end_pass(S, b, node):
                boosted = _end_run(S, b, node)
                try_to_sleep(S, b, node)
                return 2 if boosted else 1
        elif budget <= 0:
            return 0
    return 0
