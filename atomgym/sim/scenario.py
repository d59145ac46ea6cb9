"""Scenario schema: a typed description of one simulated machine and its load.

Every field carries its valid range and unit in ``metadata`` so that the loader can
name the file, key and valid range in every error. YAML files live in
configs/scenarios/; loading, validation, ``randomize`` draws and the list of shipped
scenarios are implemented below the schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field


def _f(default, lo=None, hi=None, unit="", doc="", choices=None):
    """A schema field with its valid range/choices, unit and one-line doc."""
    md = {"range": (lo, hi), "unit": unit, "doc": doc}
    if choices is not None:
        md["choices"] = tuple(choices)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=md)
    return field(default=default, metadata=md)


@dataclass
class MachineSpec:
    snapshot: str | None = _f(None, doc="machine snapshot file (relative to the scenario file or the repo); "
                                         "overrides ram_mib/nodes/kernel/thp")
    ram_mib: int = _f(16384, 512, 4 << 20, "MiB", "RAM when no snapshot is given (x86-64 zone layout)")
    nodes: int = _f(1, 1, 8, "", "NUMA nodes (RAM split evenly)")
    kernel: str = _f("6.18", doc="kernel release whose arithmetic to use (e.g. 6.1, 6.18)")
    thp: str = _f("madvise", doc="transparent_hugepage/enabled at boot", choices=("always", "madvise", "never"))
    cpus: int = _f(8, 1, 1024, "", "CPUs (one per-CPU page list per zone each)")
    pcp_batch: int = _f(63, 1, 4096, "pages", "per-CPU list batch (zoneinfo 'batch')")


@dataclass
class SysctlSpec:
    min_free_kbytes: int | None = _f(None, 0, 2**31 - 1, "kB", "vm.min_free_kbytes; null = the kernel's boot value")
    watermark_scale_factor: int = _f(10, 1, 3000, "1/10000", "vm.watermark_scale_factor")
    watermark_boost_factor: int = _f(15000, 0, 2**31 - 1, "1/10000", "vm.watermark_boost_factor")


@dataclass
class MemorySpec:
    page_cache_frac: float = _f(0.5, 0.0, 0.99, "", "initial page cache, fraction of managed pages")
    anon_frac: float = _f(0.1, 0.0, 0.99, "", "initial anonymous memory, fraction of managed pages")
    kernel_frac: float = _f(0.03, 0.0, 0.99, "", "initial unreclaimable kernel memory (slab etc.)")
    swap: bool = _f(False, doc="anonymous memory is reclaimable (swap configured)")


@dataclass
class KswapdSpec:
    reclaim_pages_per_ms: float = _f(1000.0, 1.0, 1e6, "pages/ms", "kswapd reclaim rate (1000 = ~4 GB/s)")
    wake_latency_ms: float = _f(0.1, 0.0, 100.0, "ms", "from wakeup_kswapd() to reclaim starting")
    direct_reclaim_pages_per_ms: float = _f(250.0, 1.0, 1e6, "pages/ms", "direct reclaim rate of a stalled task")


@dataclass
class NicSpec:
    driver: str = _f("page_pool", doc="RX refill model", choices=("page_pool", "dev_alloc_pages", "virtio_net"))
    queues: int = _f(8, 1, 256, "", "RX queues")
    ring_size: int = _f(1024, 16, 65536, "descriptors", "RX ring size per queue (ixgbe default 512, max 4096)")
    mtu: int = _f(1500, 68, 65535, "bytes", "MTU")
    buffer_bytes: int = _f(2048, 256, 65536, "bytes", "RX buffer size (page_pool frags: 2 per 4 KiB page)")
    napi_budget: int = _f(64, 1, 65536, "packets", "NAPI poll budget per queue")
    napi_interval_us: float = _f(50.0, 1.0, 100000.0, "us", "time between NAPI polls of a queue under load")
    line_rate_gbps: float = _f(25.0, 0.01, 1000.0, "Gbit/s", "link speed (caps arrivals)")
    rcvbuf_kb: int = _f(6144, 4, 1 << 24, "kB", "socket receive buffer (tcp_rmem max) per queue's socket")
    app_drain_pps: float = _f(2e6, 0.0, 1e9, "packets/s", "rate at which the application reads the sockets")
    sock_memalloc: bool = _f(False, doc="sockets are SOCK_MEMALLOC (pfmemalloc packets not dropped)")


@dataclass
class TrafficSpec:
    kind: str = _f("poisson", doc="arrival process", choices=("poisson", "mmpp", "incast", "diurnal", "replay"))
    rate_pps: float = _f(1e5, 0.0, 1e9, "packets/s", "mean rate (poisson, diurnal mean, mmpp off state)")
    burst_pps: float = _f(0.0, 0.0, 1e9, "packets/s", "mmpp on-state rate; incast: 0 = line rate")
    mean_on_ms: float = _f(10.0, 0.01, 1e7, "ms", "mmpp mean on duration")
    mean_off_ms: float = _f(1000.0, 0.01, 1e7, "ms", "mmpp mean off duration")
    period_ms: float = _f(1000.0, 0.1, 1e9, "ms", "incast burst period / diurnal period")
    burst_ms: float = _f(5.0, 0.01, 1e7, "ms", "incast burst length")
    jitter: float = _f(0.2, 0.0, 1.0, "", "incast period jitter (fraction)")
    amplitude: float = _f(0.5, 0.0, 1.0, "", "diurnal amplitude (fraction of the mean)")
    trace: str | None = _f(None, doc="replay: CSV of packets per interval (relative to the scenario file)")
    trace_interval_ms: float = _f(1.0, 0.1, 1e6, "ms", "replay: length of one CSV row")
    packet_bytes: int = _f(1500, 64, 65535, "bytes", "packet size")
    start_s: float = _f(0.0, 0.0, 1e7, "s", "start time")
    stop_s: float | None = _f(None, 0.0, 1e7, "s", "stop time (null = end of episode)")


@dataclass
class WorkloadSpec:
    kind: str = _f("stream_read", doc="userspace memory", choices=("stream_read", "anon_hog", "churn"))
    rate_mib_s: float = _f(500.0, 0.0, 1e6, "MiB/s", "read rate / hog growth rate / churn rate")
    working_set_mib: float = _f(4096.0, 0.0, 4e6, "MiB", "stream_read: size of the files read in a loop")
    peak_mib: float = _f(1024.0, 0.0, 4e6, "MiB", "anon_hog: size at which it stops growing")
    hold_s: float = _f(10.0, 0.0, 1e7, "s", "anon_hog: time held at peak before exiting")
    period_s: float = _f(60.0, 0.0, 1e7, "s", "anon_hog: restart period (0 = once)")
    start_s: float = _f(0.0, 0.0, 1e7, "s", "start time")


@dataclass
class Scenario:
    name: str = _f("unnamed", doc="scenario name (file stem)")
    description: str = _f("", doc="what it represents and why its parameters are plausible")
    duration_s: float = _f(60.0, 0.001, 1e7, "s", "episode length in simulated time")
    tick_ms: float = _f(1.0, 0.1, 10.0, "ms", "simulation tick")
    machine: MachineSpec = field(default_factory=MachineSpec)
    sysctl: SysctlSpec = field(default_factory=SysctlSpec)
    memory: MemorySpec = field(default_factory=MemorySpec)
    kswapd: KswapdSpec = field(default_factory=KswapdSpec)
    nics: list[NicSpec] = field(default_factory=lambda: [NicSpec()])
    traffic: list[TrafficSpec] = field(default_factory=list)
    workloads: list[WorkloadSpec] = field(default_factory=list)
    randomize: dict[str, list[float]] = field(default_factory=dict,
                                              metadata={"doc": "key path -> [lo, hi], drawn per episode"})
