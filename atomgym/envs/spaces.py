"""Observation and action layout of the atomgym environments (the contract for agents).

Observation: a float32 vector of ``OBS_DIM`` entries, index ``i`` named ``OBS_NAMES[i]``, with
unit ``OBS_UNITS[i]`` and range ``[OBS_LOW[i], OBS_HIGH[i]]`` (the Box bounds). Integer constants
``OBS_<NAME>`` give the indices. Per-zone entries come for the zone *types* DMA, DMA32, Normal,
each summed over NUMA nodes (all shipped machines have one node; Movable is never populated).
An unpopulated zone type reads 0 in all its entries.

Observation modes (``observation=``): "basic" is the layout above; "memory" appends
``MEMORY_FEATURES`` (rates averaged at several time scales, time since the last failure / drop,
arrival peaks, machine size, knobs relative to boot); its layout is ``MEMORY_OBS_NAMES``,
``MEMORY_OBS_UNITS``, ``MEMORY_OBS_LOW``, ``MEMORY_OBS_HIGH``, ``MEMORY_OBS_DIM``,
``MEMORY_OBS_INDEX`` and the ``OBS_M_*`` indices; ``obs_layout(mode)`` gives either.

Action types (``action_type=``): "discrete" ``ACTION_NAMES[a]``; "discrete-noboost"
``NOBOOST_ACTION_NAMES[a]`` (the discrete actions ``NOBOOST_ACTIONS[a]``); "levels"
``LEVEL_NAMES[a]`` (the grid ``LEVEL_MF`` x ``LEVEL_WSF``); "relative" ``REL_NAMES[a]`` (``REL_MF`` x
``REL_WSF``, relative to the boot values); "residual" ``RES_NAMES[a]`` (``RES_MULT`` x ``REL_WSF``: a
scale of the psi controller's back-off and a wsf setting); "residual-level" ``RL_NAMES[a]``
(``RL_BACKOFF`` x ``RL_LEVEL`` x ``REL_WSF``: psi's back-off scale, a multiplier on psi's target,
with a cut below it, and a wsf setting); "continuous" ``CONT_ACTION_NAMES``.
"""
from __future__ import annotations

import numpy as np

# the watermark_scale_factor sysctl's range (extra1 SYSCTL_ONE, extra2 3000): the kernel table's, once
from atomgym.kernel.sysctl import WSF_MAX, WSF_MIN

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
STEP_FACTOR = 1.25

# ---- action types -----------------------------------------------------------------------------
ACTION_TYPES: tuple[str, ...] = ("discrete", "continuous", "discrete-noboost", "levels", "relative", "residual",
                                 "residual-level")

# "discrete-noboost": the discrete actions without the two boost_watermark() actions
NOBOOST_ACTIONS: tuple[int, ...] = (A_NOOP, A_MF_UP, A_MF_DOWN, A_WSF_UP, A_WSF_DOWN)
NOBOOST_ACTION_NAMES: tuple[str, ...] = tuple(ACTION_NAMES[a] for a in NOBOOST_ACTIONS)

# The min_free_kbytes x watermark_scale_factor grid of target settings: the "levels" actions, and
# (with the TuneD hpc-compute value 135168 kB added) the grid best-static and the oracles sweep
# (agents/oracle.py imports it). min_free_kbytes: "boot" = the machine's value at reset, "x2" =
# twice it, a float = that fraction of RAM (managed memory); an int = kB (grid_mf_kb()).
# watermark_scale_factor: -1 = the machine's value at reset.
LEVEL_MF: tuple = ("boot", "x2", 0.01, 0.02, 0.03)
LEVEL_WSF: tuple = (-1, 100, 300, 1000)
LEVEL_POINTS: tuple[tuple[object, int], ...] = tuple((m, w) for m in LEVEL_MF for w in LEVEL_WSF)


def _level_name(m: object, w: int) -> str:
    ms = {"boot": "boot", "x2": "2x boot"}.get(m, f"{m * 100:g} % of RAM" if isinstance(m, float) else f"{m} kB")
    return f"min_free_kbytes={ms}, watermark_scale_factor={'boot' if w == -1 else w}"


LEVEL_NAMES: tuple[str, ...] = tuple(_level_name(m, w) for m, w in LEVEL_POINTS)   # action a = LEVEL_POINTS[a]
N_LEVELS = len(LEVEL_POINTS)

# The "relative" actions: target settings relative to the machine, none below its boot values (the
# "levels" grid's fractions of RAM are cuts below the boot value on small THP machines and gigabytes
# on large ones). min_free_kbytes: the boot value times REL_MF (numerator, denominator: integer kB
# as the kernel's own arithmetic); watermark_scale_factor: the boot value (-1) or max(w, boot value).
REL_MF: tuple[tuple[int, int], ...] = ((1, 1), (3, 2), (2, 1), (3, 1), (4, 1))
REL_WSF: tuple[int, ...] = (-1, 30, 100, 300)
REL_POINTS: tuple[tuple[tuple[int, int], int], ...] = tuple((m, w) for m in REL_MF for w in REL_WSF)
REL_NAMES: tuple[str, ...] = tuple(
    f"min_free_kbytes={'boot' if m == (1, 1) else f'{m[0] / m[1]:g}x boot'}, "
    f"watermark_scale_factor={'boot' if w == -1 else f'max({w}, boot)'}" for m, w in REL_POINTS)
assert len(REL_POINTS) == N_LEVELS, "the level table has one size for both table action types"

# The "residual" actions: a learned residual on the psi controller (envs/psi.py), which keeps running
# on every machine: each decision psi's back-off step is scaled by RES_MULT (numerator, denominator;
# 0 = no raise on pressure, 1 = psi itself; its probe down after 10 s without pressure and its bounds
# [boot, 3 % of RAM] hold for every multiplier) and watermark_scale_factor is set as in "relative"
# (REL_WSF). The table of each decision's settings is written into the level table before the step
# (envs/core.Core.residual_table): action a = RES_POINTS[a]. Action 0 (no raise, boot wsf) is what
# the gate holds: a machine behind a closed gate runs its boot values, as psi-gated does.
RES_MULT: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (1, 1), (2, 1), (4, 1))
RES_POINTS: tuple[tuple[tuple[int, int], int], ...] = tuple((m, w) for m in RES_MULT for w in REL_WSF)
RES_NAMES: tuple[str, ...] = tuple(
    f"psi back-off x{m[0] / m[1]:g}, watermark_scale_factor={'boot' if w == -1 else f'max({w}, boot)'}"
    for m, w in RES_POINTS)
assert len(RES_POINTS) == N_LEVELS, "the residual table is a level table"

# The "residual-level" actions: the residual on psi, plus the level psi's min_free_kbytes target is
# written at. psi keeps its own target (Core.psi_mf, advanced by its rule at the chosen back-off
# scale RL_BACKOFF: 0 = no raise, 1 = psi; its probe down and its bounds [boot, 3 % of RAM] hold as
# in "residual"); each decision the agent writes that target times RL_LEVEL (numerator,
# denominator; integer kB): x1 is psi's own target, x0.5 a *cut* (below psi's target and below the
# boot value while psi sits there; at least 128 kB, the kernel's lower clamp), x1.5 and x2 above it
# (at most psi's cap, 3 % of RAM, and 1048576 kB; never below psi's target); a multiplier does not
# compound (psi's next decision starts from its own target, not from the value written).
# watermark_scale_factor is set as in "relative" (REL_WSF). Action a = RL_POINTS[a] = (back-off,
# level, wsf); x1 is the first level, so action 0 (no raise, psi's target, boot wsf) is the boot
# setting on a machine whose gate is closed: what the gate holds. Of "residual"'s back-offs x0.5
# and x2 are left out to keep the table small (48 actions): the shipped residual policy chose
# neither on a machine whose gate opened (training fleets, seed 7000; docs/training.md).
RL_BACKOFF: tuple[tuple[int, int], ...] = ((0, 1), (1, 1), (4, 1))
RL_LEVEL: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (3, 2), (2, 1))
RL_POINTS: tuple[tuple[tuple[int, int], tuple[int, int], int], ...] = tuple(
    (b, m, w) for b in RL_BACKOFF for m in RL_LEVEL for w in REL_WSF)


def _rl_name(b: tuple[int, int], m: tuple[int, int], w: int) -> str:
    lv = ("psi's target" if m == (1, 1) else
          f"psi's target x{m[0] / m[1]:g}{' (cut)' if m[0] < m[1] else ''}")
    return (f"psi back-off x{b[0] / b[1]:g}, min_free_kbytes={lv}, "
            f"watermark_scale_factor={'boot' if w == -1 else f'max({w}, boot)'}")


RL_NAMES: tuple[str, ...] = tuple(_rl_name(*pt) for pt in RL_POINTS)
N_RL = len(RL_POINTS)
assert RL_POINTS[0] == ((0, 1), (1, 1), -1), "action 0 of residual-level is what the gate holds"


def level_scale(target: np.ndarray, level: tuple[int, int], cap: np.ndarray) -> np.ndarray:
    """min_free_kbytes (int64 kB) a "residual-level" action writes: psi's ``target`` (B,) times
    ``level`` (numerator, denominator), a cut at least MF_MIN_KB, a raise at most max(cap, target)
    and MF_MAX_KB; x1 is ``target`` exactly (whatever the bounds)."""
    t = np.asarray(target, np.int64)
    num, den = level
    v = t * num // den
    if num < den:
        return np.minimum(np.maximum(v, MF_MIN_KB), t)
    if num > den:
        return np.maximum(np.minimum(v, np.minimum(np.asarray(cap, np.int64), MF_MAX_KB)), t)
    return t.copy()


def table_wsf(boot_wsf: np.ndarray, w: int) -> np.ndarray:
    """watermark_scale_factor (int64) of a REL_WSF column on machines booted with ``boot_wsf``:
    the boot value (-1) or max(w, boot value), in the sysctl's range."""
    b = np.asarray(boot_wsf, np.int64)
    return np.clip(b if w == -1 else np.maximum(w, b), WSF_MIN, WSF_MAX)


# The action gate (``gate=``): "none" applies every action as given; "drops" holds action 0 (the
# boot values: noop for the discrete types, boot/boot for the tables) on each machine until its
# first drop a reserve can prevent (rx_missed: an empty ring, pfmemalloc_drop: a packet on a
# reserve page the socket may not keep) in the episode, then applies the agent's actions for the
# rest of it. A socket's full receive buffer (rcvbuf_drop: a slow application) and a failed atomic
# refill the next NAPI poll retries (it loses nothing by itself) do not open it: a machine that never
# loses a packet to memory runs its defaults, whatever the agent would do (do-no-harm by structure).
# "drops-cut" (action_type "residual-level" only) is "drops" that lets a cut through a closed gate:
# an action whose level is a cut (x0.5) is applied there as the cut alone (no raise on pressure, the
# boot wsf: cut_through()), any other action is held at action 0. A raise still waits for the first
# drop; a cut, which can only lower the reserve, need not (the test fleet's machines whose headroom
# is a cut never drop a packet with the defaults).
GATES: tuple[str, ...] = ("none", "drops", "drops-cut")
GATE_COUNTERS: dict[str, tuple[str, ...]] = {"drops": ("rx_missed", "pfmemalloc_drop"),
                                             "drops-cut": ("rx_missed", "pfmemalloc_drop")}
CUT_GATES: tuple[str, ...] = ("drops-cut",)


def grid_mf_kb(spec: object, boot_kb: np.ndarray, ram_kb: np.ndarray) -> np.ndarray:
    """min_free_kbytes (int64 kB, per machine) of one LEVEL_MF / GRID_MF entry for machines with
    boot values ``boot_kb`` and RAM ``ram_kb`` (kB, both (N,))."""
    boot_kb = np.asarray(boot_kb, np.int64)
    if spec == "boot":
        return boot_kb.copy()
    if spec == "x2":
        return 2 * boot_kb
    if isinstance(spec, float):
        return (np.asarray(ram_kb, np.int64) * spec).astype(np.int64)
    return np.full(boot_kb.shape, int(spec), np.int64)


def level_table(boot_mf: np.ndarray, boot_wsf: np.ndarray, ram_kb: np.ndarray, relative: bool = False) -> np.ndarray:
    """(N, N_LEVELS, 2) int64: the (min_free_kbytes, watermark_scale_factor) each "levels" action
    (``relative``: each "relative" action) sets on each machine, clamped into the knob ranges as the
    discrete actions are."""
    tab = np.empty((len(boot_mf), N_LEVELS, 2), np.int64)
    if relative:
        b_mf, b_wsf = np.asarray(boot_mf, np.int64), np.asarray(boot_wsf, np.int64)
        for a, ((num, den), w) in enumerate(REL_POINTS):
            tab[:, a, 0] = np.clip(b_mf * num // den, MF_MIN_KB, MF_MAX_KB)
            tab[:, a, 1] = table_wsf(b_wsf, w)
        return tab
    for a, (m, w) in enumerate(LEVEL_POINTS):
        tab[:, a, 0] = np.clip(grid_mf_kb(m, boot_mf, ram_kb), MF_MIN_KB, MF_MAX_KB)
        tab[:, a, 1] = np.clip(np.asarray(boot_wsf, np.int64) if w == -1 else w, WSF_MIN, WSF_MAX)
    return tab


def cut_through(action_type: str) -> np.ndarray:
    """gate "drops-cut": per action of ``action_type`` ("residual-level"), what a closed gate applies:
    the cut alone (back-off x0, psi's target x0.5, boot wsf) for an action whose level is a cut, else
    action 0 (the boot setting)."""
    if action_type != "residual-level":
        raise ValueError(f"gate 'drops-cut' needs action_type 'residual-level' (a named cut), not {action_type!r}")
    cut = RL_POINTS.index(((0, 1), (1, 2), -1))
    return np.array([cut if m == (1, 2) else 0 for _, m, _ in RL_POINTS], np.int64)


def psi_action(action_type: str) -> int | None:
    """The action that is psi itself (back-off x1, psi's target, boot wsf) of the residual action
    types (behind the drops gate: psi-gated); None for the others."""
    if action_type == "residual":
        return RES_POINTS.index(((1, 1), -1))
    if action_type == "residual-level":
        return RL_POINTS.index(((1, 1), (1, 1), -1))
    return None


def action_names(action_type: str) -> tuple[str, ...]:
    """The names of the actions of a Discrete action type (index = action)."""
    return {"discrete": ACTION_NAMES, "discrete-noboost": NOBOOST_ACTION_NAMES, "levels": LEVEL_NAMES,
            "relative": REL_NAMES, "residual": RES_NAMES, "residual-level": RL_NAMES,
            "continuous": CONT_ACTION_NAMES}[action_type]


# ---- observation modes --------------------------------------------------------------------------
OBSERVATION_MODES: tuple[str, ...] = ("basic", "memory")
RATE_TAUS_S = (1.0, 10.0, 60.0)   # time constants of the failure and drop rate averages
PEAK_TAUS_S = (1.0, 10.0)         # decay time constants of the arrival-peak holds
SINCE_CAP_S = 3600.0              # time-since features saturate at one hour
SIZE_MIN_MIB, SIZE_MAX_MIB = 256.0, 65536.0   # machine_size maps 256 MiB..64 GiB onto [0, 1]
KNOB_RATIO_SPAN = 1024.0          # *_vs_boot maps ratios 1/1024..1024 onto [0, 1] (boot = 0.5)

_rate_unit = "log1p(exponential average of {what} per second, time constant {tau:g} s) / 20, clipped to 1"
_since_unit = "log1p(seconds since the last interval with {what}, or since reset; at most 3600) / log1p(3600)"
_peak_unit = ("log1p(peak arrivals per second: max(this interval's rx_packets / interval, the previous peak "
              "x exp(-interval / {tau:g} s))) / 20, clipped to 1")
_ratio_unit = "0.5 + log({k} / its value at reset) / (2 log 1024), clipped to [0, 1]"
MEMORY_FEATURES = (
    *[(f"atomic_fail_rate_{t:g}s", _rate_unit.format(what="atomic allocation failures", tau=t), 0.0, 1.0)
      for t in RATE_TAUS_S],
    *[(f"drop_rate_{t:g}s", _rate_unit.format(what="drops (rx_missed + rcvbuf_drop + pfmemalloc_drop)", tau=t),
       0.0, 1.0) for t in RATE_TAUS_S],
    ("time_since_atomic_fail", _since_unit.format(what="an atomic failure"), 0.0, 1.0),
    ("time_since_drop", _since_unit.format(what="a drop"), 0.0, 1.0),
    *[(f"rx_peak_{t:g}s", _peak_unit.format(tau=t), 0.0, 1.0) for t in PEAK_TAUS_S],
    ("machine_size", "log(managed memory / 256 MiB) / log(64 GiB / 256 MiB), clipped to [0, 1]", 0.0, 1.0),
    ("min_free_kbytes_vs_boot", _ratio_unit.format(k="min_free_kbytes"), 0.0, 1.0),
    ("watermark_scale_factor_vs_boot", _ratio_unit.format(k="watermark_scale_factor"), 0.0, 1.0),
)
MEMORY_OBS_NAMES: tuple[str, ...] = OBS_NAMES + tuple(r[0] for r in MEMORY_FEATURES)
MEMORY_OBS_UNITS: tuple[str, ...] = OBS_UNITS + tuple(r[1] for r in MEMORY_FEATURES)
MEMORY_OBS_LOW = np.concatenate([OBS_LOW, np.array([r[2] for r in MEMORY_FEATURES], np.float32)])
MEMORY_OBS_HIGH = np.concatenate([OBS_HIGH, np.array([r[3] for r in MEMORY_FEATURES], np.float32)])
MEMORY_OBS_DIM = len(MEMORY_OBS_NAMES)
MEMORY_OBS_INDEX: dict[str, int] = {n: i for i, n in enumerate(MEMORY_OBS_NAMES)}
OBS_M_ATOMIC_FAIL_RATE_1S = MEMORY_OBS_INDEX["atomic_fail_rate_1s"]   # first memory feature (= OBS_DIM)
OBS_M_DROP_RATE_1S = MEMORY_OBS_INDEX["drop_rate_1s"]
OBS_M_TIME_SINCE_FAIL = MEMORY_OBS_INDEX["time_since_atomic_fail"]
OBS_M_TIME_SINCE_DROP = MEMORY_OBS_INDEX["time_since_drop"]
OBS_M_RX_PEAK_1S = MEMORY_OBS_INDEX["rx_peak_1s"]
OBS_M_MACHINE_SIZE = MEMORY_OBS_INDEX["machine_size"]
OBS_M_MF_VS_BOOT = MEMORY_OBS_INDEX["min_free_kbytes_vs_boot"]
OBS_M_WSF_VS_BOOT = MEMORY_OBS_INDEX["watermark_scale_factor_vs_boot"]


def obs_layout(observation: str) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray, np.ndarray]:
    """(names, units, low, high) of an observation mode."""
    if observation == "basic":
        return OBS_NAMES, OBS_UNITS, OBS_LOW, OBS_HIGH
    if observation == "memory":
        return MEMORY_OBS_NAMES, MEMORY_OBS_UNITS, MEMORY_OBS_LOW, MEMORY_OBS_HIGH
    raise ValueError(f"observation: {observation!r} is not valid; choices: {', '.join(OBSERVATION_MODES)}")
