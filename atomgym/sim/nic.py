"""NIC receive: RX rings of posted buffers, NAPI, sockets and the three refill models.

The RX queues of one NIC are symmetric under RSS (arrivals spread evenly), so they are
simulated as one aggregate: a ring of ``queues * ring_size`` buffers, NAPI processing
``queues * budget`` packets per poll, one poll per ``napi_interval_us``, sockets holding
``queues * rcvbuf / truesize`` packets. Within a tick, the tick's arrivals come first
(a packet finding no posted buffer is dropped by the NIC: ``rx_missed``), then NAPI polls
deliver packets to the sockets and refill the ring, then the application reads.

Buffers come from order-0 pages; buffers smaller than a page share pages (page_pool
frags: ``4096 // buffer_bytes`` per page), larger ones take several pages. A page returns
to its zone (via the pcp list) when no buffer carved from it is held. Pages are returned
to the zones the NIC holds pages in, in zonelist order (the oldest buffers came from the
first zone). Buffers carved from pfmemalloc pages are consumed first; a packet in one is
dropped at the socket (``pfmemalloc_drop``, TcpExtPFMemallocDrop) unless the socket is
SOCK_MEMALLOC (sk_filter_trim_cap()).

Refill models (the allocation class is what a failure means):

* ``page_pool`` (mlx5 & most modern drivers): GFP_ATOMIC | __GFP_NOWARN; a short refill
  keeps NAPI polling, so the next tick's poll retries.
* ``dev_alloc_pages`` (ixgbe, i40e): GFP_ATOMIC | __GFP_NOWARN | __GFP_MEMALLOC; the
  slow path may take pages below every watermark, down to the last page; they are
  pfmemalloc.
* ``virtio_net``: try_fill_recv(GFP_ATOMIC) from NAPI only when packets were processed
  and more than half of min(budget, ring) slots are free; on failure refill_work is
  scheduled (delay 0) and refills with GFP_KERNEL (direct reclaim allowed), re-arming
  itself every HZ/2 = 500 ms while it cannot fill the ring (drivers/net/virtio_net.c).
  An empty ring receives nothing, so NAPI never runs again: only refill_work refills it.
"""
from __future__ import annotations

from ..kernel.jit import jit

from ..kernel.watermark_ok import GFP_ATOMIC, GFP_KERNEL, GFP_MEMALLOC, GFP_NOWARN
from ..kernel.zones import MAX_NR_ZONES
from .alloc import alloc_pages_bulk, alloc_pages_reclaim, clear_scratch, free_pages_zone, softirq_gfp
from .layout import (
    C_ATOMIC_ALLOC, C_ATOMIC_FAIL, C_ATOMIC_FAIL_Z0, C_FAIL_ATOMIC, C_FAIL_KERNEL, C_FAIL_MEMALLOC,
    C_PFMEMALLOC_DROP, C_PFMEMALLOC_PAGES, C_RCVBUF_DROP, C_REFILL_DEFERRED, C_REFILL_WORK_RUNS, C_RX_RECYCLED,
    C_RX_DELIVERED, C_RX_MISSED, C_RX_PACKETS, CLS_ATOMIC, CLS_KERNEL, CLS_MEMALLOC,
    DRV_DEV_ALLOC, DRV_VIRTIO,
    MR_T_MS, MR_TICK_MS, MI_NZL_KERNEL,
    NI_BUFS, NI_FRAG, NI_PAGES, NI_PENDING, NI_POOL, NI_PENDING_PFM, NI_POSTED, NI_POSTED_PFM, NI_REPOLL,
    NI_SOCK, NP_BPP, NP_BUF_PER_PAGE, NP_DRAIN_ACC, NP_DRAIN_PER_MS, NP_DRIVER, NP_NAPI_ACC,
    NP_NAPI_BUDGET, NP_NAPI_PER_TICK, NP_PAGES_PER_BUF, NP_QUEUES, NP_RING, NP_SOCK_CAP,
    NP_POOL_CAP, NP_SOCK_MEMALLOC, NP_VIRTIO_DUE, ZF_NET, ZL_KERNEL,
)
from .tuners import EV_ALLOC_FAIL, tuner_on_event



@jit(inline="llvm")
def div_small(a, d):
    """``a // d`` (floor) for the NIC's per-packet and per-page ratios, which are almost always 1
    or 2: those skip the hardware divide (~20 cycles on this machine, several per tick)."""
    if d == 1:
        return a
    if d == 2:
        return a >> 1
    return a // d

VIRTIO_REARM_MS = 500.0   # refill_work(): schedule_delayed_work(&vi->refill, HZ/2)

GFP_PAGE_POOL = GFP_ATOMIC | GFP_NOWARN
GFP_DEV_ALLOC = GFP_ATOMIC | GFP_NOWARN | GFP_MEMALLOC   # dev_alloc_pages()
GFP_VIRTIO_ATOMIC = GFP_ATOMIC
GFP_VIRTIO_WORK = GFP_KERNEL


@jit(inline="llvm")
def nic_arrivals(S, b, k, pkts):
    """``pkts`` packets reach NIC k: each needs NP_BPP posted buffers; none -> rx_missed."""
    ni = S.ni
    nf = S.nf
    ctr = S.ctr
    if pkts <= 0:
        return
    bpp = int(nf[b, k, NP_BPP])
    cap = div_small(ni[b, k, NI_POSTED], bpp)
    acc = pkts if pkts < cap else cap
    ctr[b, C_RX_MISSED] += pkts - acc
    ctr[b, C_RX_PACKETS] += acc
    if acc == 0:
        return
    used = acc * bpp
    pf = ni[b, k, NI_POSTED_PFM]
    pfm_used = used if used < pf else pf
    ni[b, k, NI_POSTED_PFM] = pf - pfm_used
    ni[b, k, NI_POSTED] -= used
    ni[b, k, NI_PENDING] += acc
    pfm_pk = div_small(pfm_used + bpp - 1, bpp)
    ni[b, k, NI_PENDING_PFM] += pfm_pk if pfm_pk < acc else acc


@jit(inline="llvm")
def release_buffers(S, b, k, nbufs, recyclable):
    """``nbufs`` buffers are no longer held; the pages no held buffer shares go to the driver's
    recycle pool while it has room (``recyclable``: not pfmemalloc; encode.pool_capacity cites the
    drivers), the rest back to their zones."""
    ni = S.ni
    nf = S.nf
    nz = S.nz
    zl = S.zl
    ni[b, k, NI_BUFS] -= nbufs
    per = int(nf[b, k, NP_BUF_PER_PAGE])
    ppb = int(nf[b, k, NP_PAGES_PER_BUF])
    slots = ni[b, k, NI_BUFS] + ni[b, k, NI_FRAG]
    need = div_small(slots + per - 1, per) * ppb
    pool = ni[b, k, NI_POOL]
    x = ni[b, k, NI_PAGES] - pool - need
    if x <= 0:
        return
    if recyclable:
        # __page_pool_put_page(): page_ref_count == 1 and not pfmemalloc -> the alloc cache or the
        # ptr_ring; page_pool_return_page() once the ring is full
        room = int(nf[b, k, NP_POOL_CAP]) - pool
        r = x if x < room else room
        if r > 0:
            ni[b, k, NI_POOL] = pool + r
            pool += r
            x -= r
            if x == 0:
                return
    ni[b, k, NI_PAGES] = need + pool
    # zonelist order first, then any other zone holding pages
    for i in range(S.mi[b, MI_NZL_KERNEL]):
        if x == 0:
            return
        z = zl[b, ZL_KERNEL, i]
        t = nz[b, k, z] if nz[b, k, z] < x else x
        if t > 0:
            nz[b, k, z] -= t
            free_pages_zone(S, b, z, t, ZF_NET)
            x -= t
    for z in range(nz.shape[2]):
        if x == 0:
            return
        t = nz[b, k, z] if nz[b, k, z] < x else x
        if t > 0:
            nz[b, k, z] -= t
            free_pages_zone(S, b, z, t, ZF_NET)
            x -= t


@jit(inline="llvm")
def _post_pages(S, b, k, got, pfm, want, fresh):
    """Carve ``got`` pages (the last ``pfm`` pfmemalloc) into buffers and post up to ``want`` of
    them. ``fresh``: new pages, per zone in the scratch row; else pages out of the recycle pool
    (already held, already in their zones' counts)."""
    ni = S.ni
    nf = S.nf
    nz = S.nz
    scr = S.scr
    zl = S.zl
    if fresh:
        for i in range(S.mi[b, MI_NZL_KERNEL]):
            z = zl[b, ZL_KERNEL, i]
            nz[b, k, z] += scr[b, z]
        ni[b, k, NI_PAGES] += got
    else:
        ni[b, k, NI_POOL] -= got
    per = int(nf[b, k, NP_BUF_PER_PAGE])
    ppb = int(nf[b, k, NP_PAGES_PER_BUF])
    newbufs = div_small(got, ppb) * per
    post = want if want < newbufs else newbufs
    ni[b, k, NI_FRAG] += newbufs - post
    pfm_bufs = div_small(pfm, ppb) * per
    ni[b, k, NI_POSTED_PFM] += pfm_bufs if pfm_bufs < post else post
    ni[b, k, NI_POSTED] += post
    ni[b, k, NI_BUFS] += post
    if got - div_small(got, ppb) * ppb:
        release_buffers(S, b, k, 0, pfm == 0)   # pages of an incomplete multi-page buffer go back


@jit()
def _fail(S, b, k, cls, gfp, nfail):
    """Account a refill that fell short and call the tuner's EV_ALLOC_FAIL hook."""
    ctr = S.ctr
    zl = S.zl
    zpref = zl[b, ZL_KERNEL, 0]
    if cls == CLS_KERNEL:
        ctr[b, C_FAIL_KERNEL] += nfail
    else:
        ctr[b, C_ATOMIC_FAIL] += nfail
        ctr[b, C_ATOMIC_FAIL_Z0 + zpref % MAX_NR_ZONES] += nfail
        if cls == CLS_MEMALLOC:
            ctr[b, C_FAIL_MEMALLOC] += nfail
        else:
            ctr[b, C_FAIL_ATOMIC] += nfail
    tuner_on_event(S, b, EV_ALLOC_FAIL, gfp, cls, zpref, zpref // MAX_NR_ZONES, nfail)


@jit()
def refill(S, b, k, gfp, cls, blocking):
    """Fill the ring's empty slots: frags of the current page first, then new pages.
    Returns True if the ring is full afterwards."""
    ni = S.ni
    nf = S.nf
    ctr = S.ctr
    empty = int(nf[b, k, NP_RING]) - ni[b, k, NI_POSTED]
    u = ni[b, k, NI_FRAG] if ni[b, k, NI_FRAG] < empty else empty
    if u > 0:
        ni[b, k, NI_FRAG] -= u
        ni[b, k, NI_POSTED] += u
        ni[b, k, NI_BUFS] += u
        empty -= u
    if empty <= 0:
        return True
    per = int(nf[b, k, NP_BUF_PER_PAGE])
    ppb = int(nf[b, k, NP_PAGES_PER_BUF])
    npages = div_small(empty + per - 1, per) * ppb
    pool = ni[b, k, NI_POOL]
    if pool > 0:
        # page_pool_alloc_pages(): the alloc cache, then the ptr_ring, before the page allocator
        t = pool if pool < npages else npages
        _post_pages(S, b, k, t, 0, empty, False)
        ctr[b, C_RX_RECYCLED] += t
        empty = int(nf[b, k, NP_RING]) - ni[b, k, NI_POSTED]
        if empty <= 0:
            return True
        npages = div_small(empty + per - 1, per) * ppb
    clear_scratch(S, b, ZL_KERNEL)
    if blocking:
        got, _, _ = alloc_pages_reclaim(S, b, npages, gfp, ZL_KERNEL, ZF_NET, cls, S.mr[b, MR_TICK_MS])
        pfm = 0
    else:
        got, pfm = alloc_pages_bulk(S, b, npages, softirq_gfp(S, b, gfp), ZL_KERNEL, ZF_NET, cls)   # NAPI softirq
    if got > 0:
        _post_pages(S, b, k, got, pfm, empty, True)
        ctr[b, C_ATOMIC_ALLOC] += 0 if blocking else got
        ctr[b, C_PFMEMALLOC_PAGES] += pfm
    if got < npages:
        # each RX queue's refill loop stops at its first failed allocation
        q = int(nf[b, k, NP_QUEUES])
        short = npages - got
        _fail(S, b, k, cls, gfp, q if q < short else short)
        return False
    return True


@jit()
def nic_poll(S, b, k):
    """This tick's NAPI polls of NIC k (and a due virtio refill_work first)."""
    ni = S.ni
    nf = S.nf
    ctr = S.ctr
    t = S.mr[b, MR_T_MS]
    drv = int(nf[b, k, NP_DRIVER])
    # virtio refill_work (process context, GFP_KERNEL)
    if drv == DRV_VIRTIO and nf[b, k, NP_VIRTIO_DUE] >= 0.0 and t >= nf[b, k, NP_VIRTIO_DUE]:
        ctr[b, C_REFILL_WORK_RUNS] += 1
        if refill(S, b, k, GFP_VIRTIO_WORK, CLS_KERNEL, True):
            nf[b, k, NP_VIRTIO_DUE] = -1.0
        else:
            nf[b, k, NP_VIRTIO_DUE] = t + VIRTIO_REARM_MS
    # NAPI: deliver up to queues * budget * polls packets
    capf = nf[b, k, NP_NAPI_PER_TICK] + nf[b, k, NP_NAPI_ACC]
    cap = int(capf)
    nf[b, k, NP_NAPI_ACC] = capf - cap
    pend = ni[b, k, NI_PENDING]
    n = pend if pend < cap else cap
    if n > 0:
        bpp = int(nf[b, k, NP_BPP])
        ppfm = ni[b, k, NI_PENDING_PFM]
        p_pfm = ppfm if ppfm < n else n
        ni[b, k, NI_PENDING] -= n
        ni[b, k, NI_PENDING_PFM] -= p_pfm
        normal = n
        if p_pfm > 0 and nf[b, k, NP_SOCK_MEMALLOC] == 0.0:
            ctr[b, C_PFMEMALLOC_DROP] += p_pfm
            normal -= p_pfm
            release_buffers(S, b, k, p_pfm * bpp, False)   # pfmemalloc pages are never recycled
        room = int(nf[b, k, NP_SOCK_CAP]) - ni[b, k, NI_SOCK]
        if room < 0:
            room = 0
        acc = normal if normal < room else room
        ctr[b, C_RCVBUF_DROP] += normal - acc
        ni[b, k, NI_SOCK] += acc
        if normal > acc:
            release_buffers(S, b, k, (normal - acc) * bpp, True)
    # refill
    full_ring = int(nf[b, k, NP_RING])
    empty = full_ring - ni[b, k, NI_POSTED]
    if empty <= 0:
        ni[b, k, NI_REPOLL] = 0
        return
    if drv == DRV_VIRTIO:
        # virtnet_receive(): refill when num_free > min(budget, ring) / 2 (per queue)
        q = nf[b, k, NP_QUEUES]
        per_q_ring = full_ring / q
        bud = nf[b, k, NP_NAPI_BUDGET]
        thr = q * ((bud if bud < per_q_ring else per_q_ring) // 2)
        if n > 0 and empty > thr:
            if not refill(S, b, k, GFP_VIRTIO_ATOMIC, CLS_ATOMIC, False):
                if nf[b, k, NP_VIRTIO_DUE] < 0.0:
                    nf[b, k, NP_VIRTIO_DUE] = t   # schedule_delayed_work(&vi->refill, 0)
                    ctr[b, C_REFILL_DEFERRED] += 1
        return
    if n > 0 or ni[b, k, NI_REPOLL] != 0:
        if drv == DRV_DEV_ALLOC:
            ok = refill(S, b, k, GFP_DEV_ALLOC, CLS_MEMALLOC, False)
        else:
            ok = refill(S, b, k, GFP_PAGE_POOL, CLS_ATOMIC, False)
        ni[b, k, NI_REPOLL] = 0 if ok else 1


@jit(inline="llvm")
def app_drain(S, b, k):
    """The application reads its sockets at app_drain_pps; read packets free their buffers."""
    ni = S.ni
    nf = S.nf
    s = ni[b, k, NI_SOCK]
    if s == 0:
        nf[b, k, NP_DRAIN_ACC] = 0.0
        return
    d = nf[b, k, NP_DRAIN_PER_MS] * S.mr[b, MR_TICK_MS] + nf[b, k, NP_DRAIN_ACC]
    n = int(d)
    if n > s:
        n = s
        d = 0.0
    nf[b, k, NP_DRAIN_ACC] = d - n if d > n else 0.0
    if n == 0:
        return
    ni[b, k, NI_SOCK] -= n
    S.ctr[b, C_RX_DELIVERED] += n
    release_buffers(S, b, k, n * int(nf[b, k, NP_BPP]), True)
