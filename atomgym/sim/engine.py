"""The compiled loop: one per-machine tick function and two drivers over machines.

Order of events inside one tick (machine b, time t = t_ms at the start of the tick,
length dt = tick_ms). Every loop below runs in index order (nodes, workloads, traffic
sources, NICs), never in dict or set order:

0. **Phases and pcp decay**: the scenario's sysctl writes due by now (``phases``); on
   pcp auto-tuning kernels (6.7+) decay_pcp_high() once per simulated second.
1. **Tuner timer**: ``tuner_on_event(EV_TIMER)``.
2. **kswapd**, node 0, 1, ...: a wakeup whose latency has elapsed starts balance_pgdat()
   (pageoutrun, boost snapshot); a finished nap sleeps fully or counts
   high_wmark_hit_quickly; a running kswapd reclaims ``rate * dt`` pages (bounded by what
   is reclaimable and, in a boosted pass, by nr_boost_reclaim), or ends its run (boost
   snapshot cleared, ``EV_KSWAPD_END`` tuner hook, 100 ms nap or another run).
3. **Memory workloads**, in index order: page-cache reads, anonymous growth/exit, churn;
   blocking allocations with direct reclaim and stall accounting; the OOM killer.
4. **Traffic**: each source, in index order, generates its packets for NIC
   ``source % n_nics``; per NIC the sum is capped at line rate and arrives at the ring
   (no posted buffer: ``rx_missed``).
5. **NIC**, in index order: a due virtio ``refill_work`` (GFP_KERNEL) runs; NAPI delivers
   up to ``queues * budget * polls`` packets to the sockets (pfmemalloc and rcvbuf drops)
   and refills the ring with atomic allocations (failures: ``EV_ALLOC_FAIL``).
6. **Applications** read their sockets, NIC 0, 1, ...; read packets free their pages.
7. **Accounting**: ``reserved_mib_ms += sum(high + boost) * 4 KiB * dt`` (the free memory the
   watermarks hold: kswapd reclaims until every zone is above high + boost, balance_pgdat());
   ``min_reserve_mib_ms += sum(min) * 4 KiB * dt``; ``min_free_seen``; then ``t += dt``.

A terminated machine (deadlock) does not advance.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numba
from numba import prange, types
from ..kernel.jit import jit
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


_PKG = Path(__file__).resolve().parents[1]
# not part of the engine's digest: the scenario schema and machine builders (what they produce reaches the
# engine through encode.py and simulator.py, which are part of it: a change there changes the dynamics)
_NOT_DIGESTED = ("__init__.py", "scenario.py", "machines.py")


def _compiled_sources(pkg: Path = _PKG) -> list[Path]:
    """Every numba source the engine compiles: atomgym/kernel/*.py and the compiled modules of
    atomgym/sim, with the scenario encoders (all but _NOT_DIGESTED)."""
    return sorted(list((pkg / "kernel").glob("*.py")) + [
        p for p in (pkg / "sim").glob("*.py") if p.name not in _NOT_DIGESTED])


def sources_digest(pkg: Path = _PKG) -> str:
    """SHA-1 over every numba source the engine compiles (_compiled_sources()): it changes
    whenever the simulated dynamics may. Also part of agents.evaluate's best-static cache key."""
    srcs = _compiled_sources(pkg)
    h = hashlib.sha1()
    for p in srcs:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


from ..kernel.pcp import PCP_HIGH_AUTOTUNE
from ..kernel.watermarks import WMARK_HIGH
from .kswapd import kswapd_tick
from .layout import (
    C_MIN_FREE_SEEN, C_MIN_RESERVE_MIB_MS, C_RESERVED_MIB_MS,
    MR_T_MS, MR_TICK_MS, MI_NNIC, MI_NNODES, MI_NTRAFFIC, MI_NWORK, MI_SUM_MIN, MI_TERMINATED,
    MI_PCP_DECAY_NEXT, MI_PCP_MODE, MI_PHASE_N, MI_PHASE_NEXT,
    MI_TICK, MI_TUNER, NP_ARR_ACC, NP_LINE_PPMS, NP_VIRTIO_DUE, ZF_FREE, TP_NIC,
    KS_SLEEP, ND_STATE, NI_PENDING, NI_REPOLL, NI_SOCK,
)
from .layout import CONST_DIMS, STATE_FIELDS, SimState, UArray
from .nic import app_drain, nic_arrivals, nic_poll
from .alloc import decay_pcp_high
from .vmstat import vmstat_update
from .knobs import apply_knobs, apply_phases
from .tuners import EV_KSWAPD_END, EV_TIMER, tuner_on_event
from .workloads import traffic_tick, workload_tick

PAGE_MIB = 4.0 / 1024.0
PARALLEL_MIN_WORK = 50_000   # machine-ticks per call below which run_ticks() stays serial


@jit()
def step_machine(S, b):
    """One tick of machine b (the order is in this module's docstring)."""
    mi = S.mi
    mr = S.mr
    ctr = S.ctr
    nf = S.nf
    dt = mr[b, MR_TICK_MS]
    # (calls are skipped when they would do nothing: a call costs ~40 ns)
    # 0. the scenario's timed sysctl writes (phases); decay_pcp_high() once a second (6.7+), and
    #    vmstat_update()'s fold of the per-CPU counter diffs
    if mi[b, MI_PHASE_NEXT] < mi[b, MI_PHASE_N]:
        apply_phases(S, b)
    if mi[b, MI_TICK] >= mi[b, MI_PCP_DECAY_NEXT]:
        if mi[b, MI_PCP_MODE] == PCP_HIGH_AUTOTUNE:
            decay_pcp_high(S, b)
        vmstat_update(S, b)      # vmstat_update() every sysctl_stat_interval (1 s): the diffs folded
        mi[b, MI_PCP_DECAY_NEXT] += max(1, int(1000.0 / dt + 0.5))
    # 1. tuner timer
    if mi[b, MI_TUNER] != 0:
        tuner_on_event(S, b, EV_TIMER, 0, 0, -1, -1, 0)
    # 2. kswapd
    nd = S.nd
    for node in range(mi[b, MI_NNODES]):
        if nd[b, node, ND_STATE] == KS_SLEEP:
            continue
        r = kswapd_tick(S, b, node)
        if r != 0:
            tuner_on_event(S, b, EV_KSWAPD_END, 0, 0, -1, node, 1 if r == 2 else 0)
    # 3. memory workloads
    for w in range(mi[b, MI_NWORK]):
        workload_tick(S, b, w)
    if mi[b, MI_TERMINATED] != 0:
        return
    # 4. traffic -> rings
    nn = mi[b, MI_NNIC]
    if nn > 0:
        for k in range(nn):
            nf[b, k, NP_ARR_ACC] = 0.0
        tp = S.tp
        for i in range(mi[b, MI_NTRAFFIC]):
            n = traffic_tick(S, b, i)
            if n > 0:
                nf[b, int(tp[b, i, TP_NIC]), NP_ARR_ACC] += n
        for k in range(nn):
            a = nf[b, k, NP_ARR_ACC]
            cap = nf[b, k, NP_LINE_PPMS] * dt
            if a > cap:
                a = cap
            if a >= 1.0:
                nic_arrivals(S, b, k, int(a))
        # 5. NAPI + refill
        ni = S.ni
        for k in range(nn):
            if ni[b, k, NI_PENDING] > 0 or ni[b, k, NI_REPOLL] != 0 or nf[b, k, NP_VIRTIO_DUE] >= 0.0:
                nic_poll(S, b, k)
        # 6. applications
        for k in range(nn):
            if ni[b, k, NI_SOCK] > 0:
                app_drain(S, b, k)
    # 7. accounting
    ctr[b, C_MIN_RESERVE_MIB_MS] += mi[b, MI_SUM_MIN] * PAGE_MIB * dt
    zs = S.zs
    wm = S.wmark
    bo = S.boost
    f = 0
    h = 0
    for z in range(zs.shape[1]):
        f += zs[b, z, ZF_FREE]
        h += wm[b, z, WMARK_HIGH] + bo[b, z]
    ctr[b, C_RESERVED_MIB_MS] += h * PAGE_MIB * dt
    if f < ctr[b, C_MIN_FREE_SEEN]:
        ctr[b, C_MIN_FREE_SEEN] = f
    mr[b, MR_T_MS] += dt
    mi[b, MI_TICK] += 1


@jit(inline="always")   # a thin wrapper, inlined by numba: its callers link the engine once, not again
def run_machine(S, b, n_ticks):
    """n_ticks ticks of machine b (stops early if it terminates)."""
    mi = S.mi
    for _ in range(n_ticks):
        if mi[b, MI_TERMINATED] != 0:
            return
        step_machine(S, b)


@intrinsic
def _unmanaged_fields(typingctx, tup):
    """The tuple of state arrays, each without its NRT meminfo and typed layout.UArray: no
    reference counting at all. The numpy arrays stay owned by Simulator.state for as long as
    compiled code runs. Each carries the sizes its layout.STATE field fixes (layout.CONST_DIMS)."""
    fixed = CONST_DIMS if len(tup.types) == len(CONST_DIMS) else [()] * len(tup.types)
    ret = types.Tuple([UArray(t.dtype, t.ndim, t.layout, fixed[i]) for i, t in enumerate(tup.types)])

    def codegen(context, builder, signature, args):
        vals = []
        for i, (src_t, dst_t) in enumerate(zip(signature.args[0].types, ret.types)):
            src = context.make_array(src_t)(context, builder, value=builder.extract_value(args[0], i))
            out = context.make_array(dst_t)(context, builder)
            populate_array(out, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize,
                           meminfo=None)
            vals.append(out._getvalue())
        return context.make_tuple(builder, ret, vals)

    return ret(tup), codegen


@jit(inline="noinline")   # never inlined: the payload's loads are invariant (layout._simstate_getattr())
def make_state(T):
    """The SimState structref over the tuple of state arrays (layout.STATE order). The
    fields are UArray (no meminfo) and SimState itself is not reference counted, so passing
    ``S`` or reading a field in compiled code costs no refcount operation (they were ~30 %, then
    ~10 % of a tick). Release it with free_state(S) when done (else ~2 KB leak per call)."""
    return SimState(*_unmanaged_fields(T))


@intrinsic
def free_state(typingctx, st):
    """Release a SimState made by make_state() (its type is not reference counted)."""
    sig = types.void(st)

    def codegen(context, builder, signature, args):
        sr = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        context.nrt.decref(builder, types.MemInfoPointer(types.voidptr), sr.meminfo)
        return context.get_dummy_value()

    return sig, codegen


if numba.config.DISABLE_JIT:     # NUMBA_DISABLE_JIT=1: the engine as Python (docs/simulator.md, "Speed")
    def make_state(T):  # noqa: F811
        return SimpleNamespace(**dict(zip(STATE_FIELDS, T)))

    def free_state(st):  # noqa: F811
        return None


@jit(parallel=True)
def run_parallel(T, n_ticks, mask):
    for b in prange(mask.shape[0]):
        if mask[b]:
            S = make_state(T)
            run_machine(S, b, n_ticks)
            free_state(S)


@jit()
def apply_knobs_state(T, knobs, boost_pages, boost_calls, mask):
    """knobs.apply_knobs() on the tuple of state arrays (Simulator.set_knobs())."""
    S = make_state(T)
    apply_knobs(S, knobs, boost_pages, boost_calls, mask)
    free_state(S)


@jit()
def begin_interval(S, prev, mask):
    """Start a measurement interval for the machines in mask: ``prev`` (B, NC) = the counters
    now, and the lowest-free tracker ``min_free_seen`` = buddy free pages now (so that after the
    interval it holds the lowest free of the interval)."""
    zs = S.zs
    ctr = S.ctr
    for b in range(mask.shape[0]):
        if not mask[b]:
            continue
        f = 0.0
        for z in range(zs.shape[1]):
            f += zs[b, z, ZF_FREE]
        ctr[b, C_MIN_FREE_SEEN] = f
        for c in range(ctr.shape[1]):
            prev[b, c] = ctr[b, c]


@jit(inline="always")   # a thin wrapper, inlined by numba: its callers link the engine once, not again
def step_batch(S, knobs, boost_pages, boost_calls, mask, n_ticks, prev, begin):
    """Knob writes, then an interval of ``n_ticks`` ticks, for every machine in mask, serially:
    knobs.apply_knobs() (-1 / 0 entries: unchanged; skipped when nothing is asked),
    begin_interval(S, prev, mask) if ``begin``, then run_machine() per machine in index order. Bit
    for bit the same as Simulator.set_knobs() + begin_interval + Simulator.advance(); without knob
    writes and without ``begin`` it runs the machines serially (Simulator.advance() uses it so:
    one compiled entry point links the engine instead of two)."""
    ask = False
    for b in range(mask.shape[0]):
        if mask[b]:
            for k in range(knobs.shape[1]):
                ask = ask or knobs[b, k] >= 0
            for z in range(boost_pages.shape[1]):
                ask = ask or boost_pages[b, z] > 0 or boost_calls[b, z] > 0
    if ask:
        apply_knobs(S, knobs, boost_pages, boost_calls, mask)
    if begin:
        begin_interval(S, prev, mask)
    for b in range(mask.shape[0]):
        if mask[b]:
            run_machine(S, b, n_ticks)


@jit(inline="always")   # a thin wrapper, inlined by numba: its callers link the engine once, not again
def step_state(T, knobs, boost_pages, boost_calls, mask, n_ticks, prev, begin):
    """step_batch() on the tuple of state arrays (``Simulator.state``): the sim side of the envs'
    fused step, callable from compiled code (no make_state()/free_state() at the call site)."""
    S = make_state(T)
    step_batch(S, knobs, boost_pages, boost_calls, mask, n_ticks, prev, begin)
    free_state(S)


def goes_parallel(n_batch: int, n_active: int, n_ticks: int, parallel: bool | None = None) -> bool:
    """Whether run_ticks() runs ``n_active`` of ``n_batch`` machines for ``n_ticks`` in parallel: ``parallel`` if
    given, else only with enough work to amortise waking the worker threads (it costs up to a
    scheduler time slice when another process holds a core; measured: 16 machines x 100 ticks took
    7 ms in parallel, 0.7 ms serially): ~25 ms of machine-ticks."""
    if parallel is not None:
        return bool(parallel)
    nt = numba.config.NUMBA_NUM_THREADS   # (not numba.get_num_threads(): that starts the thread pool)
    return nt > 1 and n_batch >= 2 * nt and int(n_active) * int(n_ticks) >= PARALLEL_MIN_WORK


_POOL_STARTED = False


def _start_pool() -> None:
    """Start numba's thread pool for run_parallel(), keeping torch's thread count: with the OpenMP
    layer (libgomp, shared with torch) the start sets the process's OpenMP thread count to numba's,
    and a training that asked torch for one thread would then run its ops on two, the second
    spinning at each op's barrier (measured: ~60 % of a core taken from the simulator)."""
    global _POOL_STARTED
    if _POOL_STARTED:
        return
    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else None
    numba.get_num_threads()
    if torch is not None:
        torch.set_num_threads(n)
    _POOL_STARTED = True


def run_ticks(S, n_ticks: int, mask, parallel: bool | None, no_knobs: tuple) -> None:
    """Advance every machine where ``mask`` is True by ``n_ticks`` ticks: run_parallel(), or serially
    step_state() without knob writes and without starting an interval (``no_knobs``: its (B, NKNOBS)
    -1 knobs, (B, Z) zero boost arrays and a (B, NC) scratch ``prev``, Simulator.advance()'s)."""
    if goes_parallel(mask.shape[0], int(mask.sum()), n_ticks, parallel):
        _start_pool()
        run_parallel(S, int(n_ticks), mask)
        return
    knobs, bp, bw, prev = no_knobs
    step_state(S, knobs, bp, bw, mask, int(n_ticks), prev, False)
