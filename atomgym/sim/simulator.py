"""`Simulator`: the Python facade over the batched, compiled per-tick dynamics.

The facade builds the state arrays of ``layout.py`` from scenarios (one per machine),
resets machines from integer seeds, applies knob writes and calls the compiled loop
(engine.py). Everything per tick happens in compiled code; ``advance(n)`` is one call.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from ..kernel.jit import jit

from ..kernel.machine import Machine
from ..kernel.pcp import PCP_HIGH_AUTOTUNE, parse_pagesets, pcp_high_mode, pcp_high_static, zone_batchsize
from ..kernel.watermark_ok import GFP_ATOMIC, GFP_NOWAIT, GFP_NOWARN
from ..kernel.watermarks import WMARK_LOW, WMARK_MIN
from ..kernel.zones import MAX_NR_ZONES, PAGEBLOCK_NR_PAGES, ZONE_DMA32 as ZONE_DMA32_T, ZONE_NAMES, ZONE_NORMAL as ZONE_NORMAL_T
from . import layout as L
from .engine import free_state, make_state, run_ticks
from .machines import scenario_machine
from .rng import seed_state
from .scenario import Scenario, draw_scenario, load_trace, resolve_path, workload_times
from .tuners import (
    TP, TS, TUNERS, init_tuner, knob_min_free_kbytes, knob_watermark_boost_factor,
    knob_watermark_scale_factor, boost_zone, boost_zone_pages, render_action,
)

PAGES_PER_MIB = 256
ETH_OVERHEAD = 38          # Ethernet header + FCS + preamble + inter-frame gap, bytes on the wire
SKB_OVERHEAD = 256         # skbuff_head_cache object (232 B in a 256 B buffer) per packet


@jit()
def _apply_knobs(T, mf, wsf, wbf, boost_pages, boost_kernel, mask):
    """Knob writes for every machine in mask (-1 = unchanged): apply_knobs() on the state tuple."""
    S = make_state(T)
    apply_knobs(S, mf, wsf, wbf, boost_pages, boost_kernel, mask)
    free_state(S)


@jit()
def apply_knobs(S, mf, wsf, wbf, boost_pages, boost_kernel, mask):
    """Knob writes for every machine in mask (-1 = unchanged), in a fixed order:
    watermark_boost_factor, watermark_scale_factor, min_free_kbytes, then boosts. Values are
    not checked here (set_knobs() validates them like the sysctl handlers). A machine asked to
    boost counts one ``boost_actions`` (however many zones), as the envs' knob-change term does."""
    for b in range(mask.shape[0]):
        if not mask[b]:
            continue
        if wbf[b] >= 0:
            knob_watermark_boost_factor(S, b, wbf[b])
        if wsf[b] >= 0:
            knob_watermark_scale_factor(S, b, wsf[b])
        if mf[b] >= 0:
            knob_min_free_kbytes(S, b, mf[b])
        asked = False
        for z in range(boost_pages.shape[1]):
            asked = asked or boost_pages[b, z] > 0 or boost_kernel[b, z] > 0
            if boost_pages[b, z] > 0:
                boost_zone_pages(S, b, z, boost_pages[b, z])
            if boost_kernel[b, z] > 0:
                for _ in range(boost_kernel[b, z]):
                    boost_zone(S, b, z, 512)
        if asked:
            S.ctr[b, L.C_BOOST_ACTIONS] += 1


class Simulator:
    """A batch of ``n_machines`` independent simulated machines (see docs/simulator.md)."""

    def __init__(self, scenario: Scenario | Sequence[Scenario], n_machines: int = 1, tuner: str | Sequence[str] = "none",
                 tuner_params: dict | Sequence[dict] | None = None,
                 machines: Machine | Sequence[Machine] | None = None, parallel: bool | None = None) -> None:
        if isinstance(scenario, Scenario):
            self.scenarios = [scenario] * n_machines
        else:
            self.scenarios = list(scenario)
            if n_machines not in (1, len(self.scenarios)) and len(self.scenarios) != n_machines:
                raise ValueError(f"{len(self.scenarios)} scenarios for n_machines={n_machines}")
            n_machines = len(self.scenarios)
        if n_machines < 1:
            raise ValueError("n_machines must be >= 1")
        self.B = n_machines
        self._tuner_names = [tuner] * self.B if isinstance(tuner, str) else list(tuner)
        for t in self._tuner_names:
            if t not in TUNERS:
                raise ValueError(f"unknown tuner {t!r}; valid: {', '.join(TUNERS)}")
        if tuner_params is None or isinstance(tuner_params, dict):
            self._tuner_params = [dict(tuner_params or {})] * self.B
        else:
            self._tuner_params = list(tuner_params)
        if machines is not None and isinstance(machines, Machine):
            machines = [machines] * self.B
        self._machine_override = list(machines) if machines is not None else None
        self.parallel = parallel
        self._machine_cache: dict[int, Machine] = {}
        self._trace_cache: dict[str, np.ndarray] = {}
        self._pageset_cache: dict[str, dict] = {}
        self._machines: list[Machine | None] = [None] * self.B
        # dimensions: the largest over the batch (and over randomize draws: nodes/NICs/... are not randomizable)
        sc0 = self.scenarios
        maxnodes = 1
        for i, s in enumerate(sc0):
            m = self._base_machine(i, s)
            maxnodes = max(maxnodes, m.nr_nodes)
        self.n_nodes = maxnodes
        self.n_zones = Z = maxnodes * MAX_NR_ZONES
        NN = max(1, max(len(s.nics) for s in sc0))
        NT = max(1, max(len(s.traffic) for s in sc0))
        NW = max(1, max(len(s.workloads) for s in sc0))
        TL = 1
        for s in sc0:
            n = sum(len(self._load_trace(s, t)) for t in s.traffic if t.kind == "replay")
            n += 3 * sum(len(w.shots) for w in s.workloads) + 3 * 3 * len(s.phases)
            TL = max(TL, n)
        B = self.B
        self.tick_ms = float(sc0[0].tick_ms)
        self.zone_names = tuple(f"Node {z // MAX_NR_ZONES}, zone {ZONE_NAMES[z % MAX_NR_ZONES]}" for z in range(Z))
        i8, f8 = np.int64, np.float64
        self.state = (
            np.zeros((B, Z), i8), np.zeros((B, Z, 4), i8), np.zeros((B, Z), i8), np.zeros((B, Z, MAX_NR_ZONES), i8),
            np.zeros((B, Z, L.NZF), i8), np.zeros((B, 2, Z), i8), np.zeros((B, L.NMI), i8), np.zeros((B, L.NMF), f8),
            np.zeros((B, maxnodes, L.NNF), f8), np.zeros((B, NN, L.NNI), i8), np.zeros((B, NN, L.NNP), f8),
            np.zeros((B, NN, Z), i8), np.zeros((B, NT, L.NTP), f8), np.zeros((B, NW, L.NWP), f8),
            np.zeros((B, NW, Z), i8), np.zeros((B, TL), f8), np.zeros((B, 4), np.uint64), np.zeros((B, L.NC), f8),
            np.zeros((B, TS), f8), np.zeros((B, TP), f8), np.zeros((B, L.TUNER_RING, 4), f8),
            np.tile(np.arange(MAX_NR_ZONES, dtype=i8), (B, maxnodes)), np.zeros((B, Z), i8),
        )
        for name, arr in zip(L.STATE_FIELDS, self.state):
            setattr(self, "_" + name, arr)
        self.counter_names = L.COUNTER_NAMES
        self._cidx = {n: i for i, n in enumerate(L.COUNTER_NAMES)}
        self.reset(np.arange(B, dtype=np.int64))

    # ---- construction helpers ------------------------------------------------------------
    def _base_machine(self, i: int, s: Scenario) -> Machine:
        if self._machine_override is not None:
            return self._machine_override[i]
        key = id(s)
        if key not in self._machine_cache:
            self._machine_cache[key] = scenario_machine(s)
        return self._machine_cache[key]

    def _load_trace(self, s: Scenario, t) -> np.ndarray:
        if t.kind != "replay" or t.trace is None:
            return np.zeros(0)
        p = str(resolve_path(s, t.trace))
        if p not in self._trace_cache:
            self._trace_cache[p] = load_trace(p)
        return self._trace_cache[p]

    def _init_machine(self, b: int, s: Scenario, seed: int) -> None:
        (managed, wmark, boost, reserve, zs, zl, mi, mf, nd, ni, nf, nz, tp, wp, wz, trace, rng, ctr, ts,
         tpar, ring, ztype, scr) = self.state
        if s.randomize:
            s = draw_scenario(s, np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x5CE4]))
            m = (self._machine_override[b] if self._machine_override is not None else scenario_machine(s)).copy()
        else:
            m = self._base_machine(b, s).copy()
        self._machines[b] = m
        zm = m.managed.size
        for arr in (managed[b], boost[b], scr[b]):
            arr[:] = 0
        wmark[b] = 0
        reserve[b] = 0
        zs[b] = 0
        managed[b, :zm] = m.managed
        wmark[b, :zm] = m.wmark
        boost[b, :zm] = m.boost
        reserve[b, :zm] = m.reserve
        mi[b] = 0
        mf[b] = 0.0
        mi[b, L.MI_MIN_FREE_KBYTES] = m.min_free_kbytes
        mi[b, L.MI_USER_MIN_FREE_KBYTES] = m.user_min_free_kbytes
        mi[b, L.MI_WSF] = m.watermark_scale_factor
        mi[b, L.MI_WBF] = m.watermark_boost_factor
        mi[b, L.MI_MOVABLE_CLAMPED] = int(m.version.movable_min_clamped)
        self._init_pcp(b, s, m)
        mi[b, L.MI_SWAP] = int(s.memory.swap)
        mi[b, L.MI_NNODES] = m.nr_nodes
        mi[b, L.MI_SUM_MIN] = int(m.wmark[:, WMARK_MIN].sum())
        # compact zonelists: local node first (node 0), then the others; populated zones only
        for k, types in ((L.ZL_KERNEL, (2, 1, 0)), (L.ZL_USER, (3, 2, 1, 0))):
            lst = [n * MAX_NR_ZONES + t for n in range(m.nr_nodes) for t in types if m.managed[n * MAX_NR_ZONES + t] > 0]
            zl[b, k] = 0
            zl[b, k, :len(lst)] = lst
            mi[b, L.MI_NZL_KERNEL + k] = len(lst)
        mf[b, L.MF_TICK_MS] = s.tick_ms
        mf[b, L.MF_KS_RATE] = s.kswapd.reclaim_pages_per_ms
        mf[b, L.MF_KS_LATENCY] = s.kswapd.wake_latency_ms
        mf[b, L.MF_DR_RATE] = s.kswapd.direct_reclaim_pages_per_ms
        # memory: kernel memory in every zone; page cache and anon in zones above DMA
        mem = s.memory
        for z in range(zm):
            mg = int(m.managed[z])
            if mg == 0:
                continue
            kern = int(mem.kernel_frac * mg)
            cache = anon = 0
            if z % MAX_NR_ZONES != 0:
                cache = int(mem.page_cache_frac * mg)
                anon = int(mem.anon_frac * mg)
            if kern + cache + anon > mg:
                cache = max(0, mg - kern - anon)
            zs[b, z, L.ZF_KERNEL] = kern
            zs[b, z, L.ZF_CACHE] = cache
            zs[b, z, L.ZF_ANON] = anon
            zs[b, z, L.ZF_FREE] = mg - kern - cache - anon
        # kswapd
        nd[b] = 0.0
        nd[b, :, L.ND_HZ] = 2
        # NICs
        ni[b] = 0
        nf[b] = 0.0
        nz[b] = 0
        mi[b, L.MI_NNIC] = len(s.nics)
        first_pkt = {}
        for i, t in enumerate(s.traffic):
            first_pkt.setdefault(i % max(1, len(s.nics)), t.packet_bytes)
        for k, n in enumerate(s.nics):
            pkt = min(first_pkt.get(k, n.mtu), n.mtu)
            per = max(1, 4096 // n.buffer_bytes)
            ppb = max(1, -(-n.buffer_bytes // 4096))
            bpp = max(1, -(-pkt // n.buffer_bytes))
            ring_total = n.queues * n.ring_size
            nf[b, k, L.NP_DRIVER] = L.DRIVERS.index(n.driver)
            nf[b, k, L.NP_RING] = ring_total
            nf[b, k, L.NP_BPP] = bpp
            nf[b, k, L.NP_BUF_PER_PAGE] = per
            nf[b, k, L.NP_PAGES_PER_BUF] = ppb
            nf[b, k, L.NP_NAPI_PER_TICK] = n.queues * n.napi_budget * (s.tick_ms * 1000.0 / n.napi_interval_us)
            truesize = bpp * n.buffer_bytes + SKB_OVERHEAD
            nf[b, k, L.NP_SOCK_CAP] = n.queues * (n.rcvbuf_kb * 1024 // truesize)
            nf[b, k, L.NP_DRAIN_PER_MS] = n.app_drain_pps / 1000.0
            nf[b, k, L.NP_VIRTIO_DUE] = -1.0
            nf[b, k, L.NP_SOCK_MEMALLOC] = float(n.sock_memalloc)
            nf[b, k, L.NP_QUEUES] = n.queues
            nf[b, k, L.NP_NAPI_BUDGET] = n.napi_budget
            nf[b, k, L.NP_LINE_PPMS] = n.line_rate_gbps * 1e9 / 8.0 / (pkt + ETH_OVERHEAD) / 1000.0
            ni[b, k, L.NI_ENABLED] = 1
            # boot: rings full, pages from the kernel zonelist
            pages = -(-ring_total // per) * ppb
            ni[b, k, L.NI_POSTED] = ring_total
            ni[b, k, L.NI_BUFS] = ring_total
            ni[b, k, L.NI_PAGES] = pages
            ni[b, k, L.NI_FRAG] = (pages // ppb) * per - ring_total
            # Free memory first. The rings are filled when the interface comes up, before the page
            # cache grows, so what free memory cannot hold comes out of the scenario's initial page
            # cache (a randomised draw of many large rings over a full page cache fits that way).
            left = pages
            for src in (L.ZF_FREE, L.ZF_CACHE):
                for z in zl[b, L.ZL_KERNEL, :mi[b, L.MI_NZL_KERNEL]]:
                    take = min(left, int(zs[b, z, src]))
                    zs[b, z, src] -= take
                    zs[b, z, L.ZF_NET] += take
                    nz[b, k, z] += take
                    left -= take
            if left:
                raise ValueError(f"{s.name}: NIC {k}'s rings need {pages} pages ({n.queues} queues x "
                                 f"{n.ring_size} descriptors); free memory and page cache hold only {pages - left}")
        # migratetypes: kernel memory and ring buffers fill UNMOVABLE pageblocks; the free rest of
        # their last, partly used block is the zone's unmovable free supply at the start
        for z in range(zm):
            used = int(zs[b, z, L.ZF_KERNEL] + zs[b, z, L.ZF_NET])
            slack = (-used) % PAGEBLOCK_NR_PAGES
            zs[b, z, L.ZF_FREE_U] = min(slack, int(zs[b, z, L.ZF_FREE]))
        # traffic
        tp[b] = 0.0
        tp[b, :, L.TP_KIND] = L.TK_NONE
        trace[b] = 0.0
        mi[b, L.MI_NTRAFFIC] = len(s.traffic)
        off = 0
        nnic = max(1, len(s.nics))
        for i, t in enumerate(s.traffic):
            k = i % nnic
            tp[b, i, L.TP_KIND] = L.TRAFFIC_KINDS.index(t.kind)
            tp[b, i, L.TP_NIC] = k
            tp[b, i, L.TP_RATE] = t.rate_pps / 1000.0
            burst = t.burst_pps / 1000.0
            if t.kind == "incast" and burst == 0.0 and s.nics:
                burst = nf[b, k, L.NP_LINE_PPMS]
            tp[b, i, L.TP_BURST] = burst
            tp[b, i, L.TP_MEAN_ON] = t.mean_on_ms
            tp[b, i, L.TP_MEAN_OFF] = t.mean_off_ms
            tp[b, i, L.TP_PERIOD] = t.period_ms
            tp[b, i, L.TP_BURST_MS] = t.burst_ms
            tp[b, i, L.TP_JITTER] = t.jitter
            tp[b, i, L.TP_AMPL] = t.amplitude
            tp[b, i, L.TP_START] = t.start_s * 1000.0
            tp[b, i, L.TP_STOP] = math.inf if t.stop_s is None else t.stop_s * 1000.0
            tp[b, i, L.TP_TRACE_INT] = t.trace_interval_ms
            tp[b, i, L.TP_S_NEXT] = t.start_s * 1000.0   # mmpp: first switch (to on); incast: first burst
            tp[b, i, L.TP_S_END] = -math.inf
            if t.kind == "mmpp":
                tp[b, i, L.TP_S_ON] = 1.0   # the switch due at start turns it off: an episode starts off
            if t.kind == "replay":
                arr = self._load_trace(s, t)
                trace[b, off:off + len(arr)] = arr
                tp[b, i, L.TP_TRACE_OFF] = off
                tp[b, i, L.TP_TRACE_N] = len(arr)
                off += len(arr)
        # phases' sysctl writes: (t_ms, knob, value), in time order (a phase's writes in
        # apply_knobs() order: watermark_boost_factor, watermark_scale_factor, min_free_kbytes)
        mi[b, L.MI_PHASE_OFF] = off
        n_ph = 0
        for ph in sorted(s.phases, key=lambda p: p.at_s):
            for knob, v in ((2, ph.sysctl.watermark_boost_factor), (1, ph.sysctl.watermark_scale_factor),
                            (0, ph.sysctl.min_free_kbytes)):
                if v is not None:
                    trace[b, off:off + 3] = (ph.at_s * 1000.0, knob, v)
                    off += 3
                    n_ph += 1
        mi[b, L.MI_PHASE_N] = n_ph
        mi[b, L.MI_PHASE_NEXT] = 0
        # memory workloads
        wp[b] = 0.0
        wp[b, :, L.WP_KIND] = L.WK_NONE
        wz[b] = 0
        mi[b, L.MI_NWORK] = len(s.workloads)
        times = workload_times(s)
        for w, wl in enumerate(s.workloads):
            wp[b, w, L.WP_KIND] = L.WORKLOAD_KINDS.index(wl.kind)
            start, stop = times[w]
            wp[b, w, L.WP_START] = start * 1000.0
            wp[b, w, L.WP_STOP] = math.inf if stop is None else stop * 1000.0
            wp[b, w, L.WP_VOLUME] = 0 if wl.volume_mib is None else max(1, int(wl.volume_mib * PAGES_PER_MIB))
            if wl.kind == "atomic_alloc":
                wp[b, w, L.WP_GFP] = (GFP_ATOMIC | GFP_NOWARN) if wl.gfp == "atomic" else GFP_NOWAIT
                wp[b, w, L.WP_PEAK] = wl.pages_per_burst
                wp[b, w, L.WP_PERIOD] = wl.interval_ms
                wp[b, w, L.WP_HOLD] = wl.hold_ms
                wp[b, w, L.WP_S_NEXT] = start * 1000.0
                wp[b, w, L.WP_SHOT_OFF] = off
                wp[b, w, L.WP_SHOT_N] = len(wl.shots)
                for sh in sorted(wl.shots, key=lambda x: x.at_s):
                    trace[b, off:off + 3] = (sh.at_s * 1000.0, sh.pages, sh.hold_ms)
                    off += 3
                continue
            wp[b, w, L.WP_RATE] = wl.rate_mib_s * PAGES_PER_MIB / 1000.0
            wp[b, w, L.WP_WS] = int(wl.working_set_mib * PAGES_PER_MIB)
            wp[b, w, L.WP_PEAK] = int(wl.peak_mib * PAGES_PER_MIB)
            wp[b, w, L.WP_HOLD] = wl.hold_s * 1000.0
            wp[b, w, L.WP_PERIOD] = wl.period_s * 1000.0
        mi[b, L.MI_TRACE_LEN] = off
        # rng, counters, tuner
        rng[b] = seed_state(int(seed))
        ctr[b] = 0.0
        ctr[b, L.C_MIN_FREE_SEEN] = float(zs[b, :, L.ZF_FREE].sum())
        mi[b, L.MI_TUNER] = init_tuner(self._tuner_names[b], ts[b], tpar[b], self._tuner_params[b])
        ring[b] = 0.0

    def _pagesets(self, s: Scenario) -> dict:
        if s.machine.snapshot is None:
            return {}
        p = str(resolve_path(s, s.machine.snapshot))
        if p not in self._pageset_cache:
            try:
                text = Path(p).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            self._pageset_cache[p] = parse_pagesets(text)
        return self._pageset_cache[p]

    def _init_pcp(self, b: int, s: Scenario, m: Machine) -> None:
        """Per-zone pcp batch and high (kernel/pcp.py): from the snapshot's pagesets when it has
        them, else zone_batchsize()/zone_highsize() of the machine's kernel version; a scenario's
        machine.pcp_batch overrides every zone's batch. One list per zone stands for the lists of
        the CPU(s) doing the allocating, with one CPU's high."""
        zs, mi = self._zs, self._mi
        mode = pcp_high_mode(m.version)
        psets = self._pagesets(s)
        cpus = max(1, s.machine.cpus // max(1, m.nr_nodes))
        if psets:
            cpus = max(1, next(iter(psets.values()))["cpus"] // max(1, m.nr_nodes))
        mi[b, L.MI_PCP_MODE] = mode
        mi[b, L.MI_PCP_CPUS] = cpus
        for z in range(m.managed.size):
            mg = int(m.managed[z])
            if mg == 0:
                continue
            ps = psets.get((z // MAX_NR_ZONES, ZONE_NAMES[z % MAX_NR_ZONES]))
            batch = s.machine.pcp_batch or (ps["batch"] if ps else zone_batchsize(mg))
            lo, hi = pcp_high_static(mode, mg, int(m.wmark[z, WMARK_LOW]), batch, cpus)
            if ps and not s.machine.pcp_batch:
                if ps["high_min"] is not None:
                    lo, hi = ps["high_min"], ps["high_max"]
                elif mode != PCP_HIGH_AUTOTUNE:
                    lo = hi = ps["high"][0]
            zs[b, z, L.ZF_PCP_BATCH] = batch
            zs[b, z, L.ZF_PCP_HIGH_MIN] = lo
            zs[b, z, L.ZF_PCP_HIGH_MAX] = hi
            zs[b, z, L.ZF_PCP_HIGH] = lo
        mi[b, L.MI_PCP_DECAY_NEXT] = (max(1, int(1000.0 / s.tick_ms + 0.5)) if mode == PCP_HIGH_AUTOTUNE
                                      else 2**62)
        # alloc_flags_nofragment(): GFP_KERNEL's preferred zone is Normal and DMA32 is populated
        mi[b, L.MI_NOFRAG] = int(m.managed[ZONE_NORMAL_T] > 0 and m.managed[ZONE_DMA32_T] > 0)

    # ---- API ---------------------------------------------------------------------------------
    def reset(self, seeds, mask=None) -> None:
        """Reset machines (all, or where ``mask`` is True) from integer seeds (B,)."""
        seeds = np.broadcast_to(np.asarray(seeds, dtype=np.int64), (self.B,))
        mask = np.ones(self.B, bool) if mask is None else np.asarray(mask, bool)
        for b in np.flatnonzero(mask):
            self._init_machine(int(b), self.scenarios[b], int(seeds[b]))

    def advance(self, n_ticks: int, mask=None) -> None:
        """Run every machine (or those in ``mask``) ``n_ticks`` ticks in the compiled loop."""
        m = np.ones(self.B, np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
        run_ticks(self.state, int(n_ticks), m, self.parallel)

    def set_knobs(self, min_free_kbytes=None, watermark_scale_factor=None, watermark_boost_factor=None,
                  boost_pages=None, boost_watermark=None, mask=None) -> None:
        """Knob writes with sysctl semantics (-1 entries: unchanged). ``boost_pages`` (B, Z):
        raise a zone's boost by N pages; ``boost_watermark`` (B, Z): call the kernel's
        boost_watermark() that many times. Values are validated like the sysctl handlers."""
        B, Z = self.B, self.n_zones

        def vec(x, name, lo, hi):
            if x is None:
                return np.full(B, -1, np.int64)
            a = np.broadcast_to(np.asarray(x, dtype=np.int64), (B,)).copy()
            bad = (a != -1) & ((a < lo) | (a > hi))
            if bad.any():
                raise ValueError(f"{name}: {int(a[bad][0])} is out of range; valid range {lo}..{hi} (or -1: unchanged)")
            return a

        mf = vec(min_free_kbytes, "min_free_kbytes", 0, 2**31 - 1)
        wsf = vec(watermark_scale_factor, "watermark_scale_factor", 1, 3000)
        wbf = vec(watermark_boost_factor, "watermark_boost_factor", 0, 2**31 - 1)
        bp = np.zeros((B, Z), np.int64) if boost_pages is None else np.broadcast_to(
            np.asarray(boost_pages, np.int64), (B, Z)).copy()
        bk = np.zeros((B, Z), np.int64) if boost_watermark is None else np.broadcast_to(
            np.asarray(boost_watermark, np.int64), (B, Z)).copy()
        m = np.ones(B, np.bool_) if mask is None else np.asarray(mask, np.bool_)
        _apply_knobs(self.state, mf, wsf, wbf, bp, bk, m)

    # ---- views ---------------------------------------------------------------------------------
    @property
    def counters(self) -> np.ndarray:
        return self._ctr

    def counter(self, name: str) -> np.ndarray:
        if name not in self._cidx:
            raise KeyError(f"unknown counter {name!r}; valid: {', '.join(self.counter_names)}")
        return self._ctr[:, self._cidx[name]]

    def counter_dict(self, b: int = 0) -> dict[str, float]:
        return {n: float(self._ctr[b, i]) for i, n in enumerate(self.counter_names)}

    @property
    def free(self) -> np.ndarray:
        """Buddy free pages per zone (NR_FREE_PAGES; per-CPU list pages not included)."""
        return self._zs[:, :, L.ZF_FREE]

    @property
    def pcp(self) -> np.ndarray:
        return self._zs[:, :, L.ZF_PCP]

    @property
    def zone_state(self) -> np.ndarray:
        """(B, Z, NZF) dynamic zone state (layout.ZF_*)."""
        return self._zs

    @property
    def wmark(self) -> np.ndarray:
        return self._wmark

    @property
    def boost(self) -> np.ndarray:
        return self._boost

    @property
    def reserve(self) -> np.ndarray:
        return self._reserve

    @property
    def managed(self) -> np.ndarray:
        return self._managed

    @property
    def min_free_kbytes(self) -> np.ndarray:
        return self._mi[:, L.MI_MIN_FREE_KBYTES]

    @property
    def watermark_scale_factor(self) -> np.ndarray:
        return self._mi[:, L.MI_WSF]

    @property
    def watermark_boost_factor(self) -> np.ndarray:
        return self._mi[:, L.MI_WBF]

    @property
    def reclaimable(self) -> np.ndarray:
        r = self._zs[:, :, L.ZF_CACHE].copy()
        r += self._zs[:, :, L.ZF_ANON] * (self._mi[:, L.MI_SWAP, None] != 0)
        return r

    @property
    def kswapd_awake(self) -> np.ndarray:
        st = self._nd[:, :, L.ND_STATE]
        return (st == L.KS_WAKING) | (st == L.KS_RUN)

    @property
    def kswapd_state(self) -> np.ndarray:
        return self._nd[:, :, L.ND_STATE].astype(np.int64)

    @property
    def terminated(self) -> np.ndarray:
        return self._mi[:, L.MI_TERMINATED] != 0

    @property
    def t_ms(self) -> np.ndarray:
        return self._mf[:, L.MF_T_MS]

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.state))

    def snapshot(self) -> dict:
        """A copy of the whole batch state (for pickling an env); restore() puts it back."""
        return {"state": [a.copy() for a in self.state], "machines": self._machines}

    def restore(self, snap: dict) -> None:
        """Put back a snapshot() of a Simulator built from the same scenarios (in place: the state
        arrays are never rebound, compiled callers may hold them)."""
        for dst, src in zip(self.state, snap["state"]):
            dst[...] = src
        self._machines = snap["machines"]

    def machine(self, i: int) -> Machine:
        """Static view of machine i now (current sysctls, watermarks, boosts)."""
        m = self._machines[i].copy()
        zm = m.managed.size
        m.min_free_kbytes = int(self._mi[i, L.MI_MIN_FREE_KBYTES])
        m.user_min_free_kbytes = int(self._mi[i, L.MI_USER_MIN_FREE_KBYTES])
        m.watermark_scale_factor = int(self._mi[i, L.MI_WSF])
        m.watermark_boost_factor = int(self._mi[i, L.MI_WBF])
        m.wmark[:] = self._wmark[i, :zm]
        m.boost[:] = self._boost[i, :zm]
        m.reserve[:] = self._reserve[i, :zm]
        return m

    def tuner_actions(self, i: int) -> list[str]:
        """The last (up to 32) tuner actions of machine i as one-line reasons, oldest first."""
        n = int(self._mi[i, L.MI_RING_N])
        k = min(n, L.TUNER_RING)
        out = []
        for j in range(n - k, n):
            out.append(render_action(self._ring[i, j % L.TUNER_RING], self.zone_names))
        return out
