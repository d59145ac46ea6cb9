"""Observation and action layout of the atomgym environments (the contract for agents).

Observation: a float32 vector of ``OBS_DIM`` entries, index ``i`` named ``OBS_NAMES[i]``, with
unit ``OBS_UNITS[i]`` and range ``[OBS_LOW[i], OBS_HIGH[i]]`` (the Box bounds). Integer constants
``OBS_<NAME>`` give the indices. Per-zone entries come for the zone *types* DMA, DMA32, Normal,
each summed over NUMA nodes (all shipped machines have one node; Movable is never populated).
An unpopulated zone type reads 0 in all its entries.

Discrete actions: ``ACTION_NAMES[a]``; continuous actions: ``CONT_ACTION_NAMES``.
"""
from __future__ import annotations

import numpy as np

ZONE_TYPES = ("DMA", "DMA32", "Normal")   # kernel zone types 0, 1, 2
ZONE_FEATURES = (
    # name, unit, low, high
    ("free_over_min", "free / min, clipped to 4, divided by 4", 0.0, 1.0),
    ("free_over_low", "free / (low + boost), clipped to 4, divided by 4", 0.0, 1.0),
    ("free_over_high", "free / (high + boost), clipped to 4, divided by 4", 0.0, 1.0),
    ("boost_over_high", "boost / high, clipped to 2, divided by 2", 0.0, 1.0),
    ("reclaimable_frac", "reclaimable pages (page cache, + anon with swap) / managed", 0.0, 1.0),
    ("free_frac", "free pages / managed", 0.0, 1.0),
)
MACHINE_FEATURES = (
    ("min_free_kbytes", "log(mf / 128 kB) / log(1048576 kB / 128 kB), clipped to [0, 1]", 0.0, 1.0),
    ("watermark_scale_factor", "log(wsf) / log(3000)", 0.0, 1.0),
    ("kswapd_awake", "fraction of nodes whose kswapd is waking or running", 0.0, 1.0),
)
INTERVAL_FEATURES = (   # over the last decision interval
    ("atomic_fail", "log1p(atomic allocation failures) / 20, clipped to 1", 0.0, 1.0),
    ("rx_missed", "log1p(packets dropped at the NIC: no posted buffer) / 20", 0.0, 1.0),
    ("rcvbuf_drop", "log1p(packets dropped at a full socket receive buffer) / 20", 0.0, 1.0),
    ("pfmemalloc_drop", "log1p(packets dropped as pfmemalloc, TcpExtPFMemallocDrop) / 20", 0.0, 1.0),
    ("rx_packets", "log1p(packets arrived at the NICs) / 20", 0.0, 1.0),
    ("lowest_free_over_min", "lowest sum of free pages / sum of min, clipped to 4, divided by 4", 0.0, 1.0),
    ("direct_reclaim_stall", "log1p(direct-reclaim stall in microseconds) / 20", 0.0, 1.0),
)
LOG1P_SCALE = 20.0   # log1p(4.85e8) = 20: 10 s at 100 GbE line rate still reads < 1

_rows = []
for _z in ZONE_TYPES:
    for _n, _u, _lo, _hi in ZONE_FEATURES:
        _rows.append((f"{_z}.{_n}", _u, _lo, _hi))
for _n, _u, _lo, _hi in MACHINE_FEATURES + INTERVAL_FEATURES:
    _rows.append((_n, _u, _lo, _hi))

OBS_NAMES: tuple[str, ...] = tuple(r[0] for r in _rows)
OBS_UNITS: tuple[str, ...] = tuple(r[1] for r in _rows)
OBS_LOW = np.array([r[2] for r in _rows], dtype=np.float32)
OBS_HIGH = np.array([r[3] for r in _rows], dtype=np.float32)
OBS_DIM = len(OBS_NAMES)
OBS_INDEX: dict[str, int] = {n: i for i, n in enumerate(OBS_NAMES)}
N_ZONE_FEATURES = len(ZONE_FEATURES)
OBS_MACHINE_START = len(ZONE_TYPES) * N_ZONE_FEATURES      # 18
OBS_INTERVAL_START = OBS_MACHINE_START + len(MACHINE_FEATURES)   # 21

OBS_MIN_FREE_KBYTES = OBS_INDEX["min_free_kbytes"]
OBS_WSF = OBS_INDEX["watermark_scale_factor"]
OBS_KSWAPD_AWAKE = OBS_INDEX["kswapd_awake"]
OBS_ATOMIC_FAIL = OBS_INDEX["atomic_fail"]
OBS_RX_MISSED = OBS_INDEX["rx_missed"]
OBS_RCVBUF_DROP = OBS_INDEX["rcvbuf_drop"]
OBS_PFMEMALLOC_DROP = OBS_INDEX["pfmemalloc_drop"]
OBS_RX_PACKETS = OBS_INDEX["rx_packets"]
OBS_LOWEST_FREE = OBS_INDEX["lowest_free_over_min"]
OBS_STALL = OBS_INDEX["direct_reclaim_stall"]
OBS_NORMAL_FREE_OVER_MIN = OBS_INDEX["Normal.free_over_min"]

# ---- actions ----------------------------------------------------------------------------------
A_NOOP, A_MF_UP, A_MF_DOWN, A_BOOST_NORMAL, A_BOOST_ALL, A_WSF_UP, A_WSF_DOWN = range(7)
ACTION_NAMES: tuple[str, ...] = (
    "noop",
    "min_free_kbytes x1.25",
    "min_free_kbytes /1.25",
    "boost_watermark(Normal zones)",
    "boost_watermark(all populated zones)",
    "watermark_scale_factor x1.25",
    "watermark_scale_factor /1.25",
)
N_ACTIONS = len(ACTION_NAMES)
CONT_ACTION_NAMES: tuple[str, ...] = ("min_free_kbytes_target", "watermark_scale_factor_target", "boost_level")

# knob ranges (log scale for the continuous targets and the observation)
MF_MIN_KB = 128          # calculate_min_free_kbytes(): lower clamp
MF_MAX_KB = 1048576      # 1 GiB: 4x the kernel's own upper clamp (262144 kB)
WSF_MIN, WSF_MAX = 1, 3000   # watermark_scale_factor sysctl: extra1 = SYSCTL_ONE, extra2 = 3000
STEP_FACTOR = 1.25
