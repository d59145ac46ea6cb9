"""The psi controller's rule (agents/baselines ``psi``; a senpai-shaped bounded multiplicative
probe/back-off on min_free_kbytes), batched over machines: one definition for the baseline and for
the env's ``residual`` actions, which scale its back-off (docs/environment.md, "Actions").

Pressure p = atomic allocation failures + dropped packets since the last decision. p > 0: back
off, ``mf x (1 + mult x min(0.5, 0.05 log2(1 + p)))`` (at least +1 kB; ``mult`` 1 is psi, 0 holds);
p = 0 for 10 s: probe down, ``mf x 0.98`` at every decision until the next pressure; bounded to [boot value, 3 % of RAM].
"""
from __future__ import annotations

import numpy as np

from ..kernel.zones import PAGE_KB
from .cost import TERM_BY_NAME

# the pressure's counters: atomic failures plus the drops the cost counts (the baselines' observe()
# sums the same counters into "atomic_fail" and "drops")
PRESSURE_COUNTERS: tuple[str, ...] = ("atomic_fail", *TERM_BY_NAME["drops"].counters)
MAX_UP = 0.5          # the back-off's largest step (x 1.5 a decision)
STEP_PER_DOUBLING = 0.05   # the back-off per doubling of the pressure
PROBE_DOWN = 0.02     # the probe's step down
QUIET_MS = 10000.0    # pressure-free time before a probe
CAP_RAM_FRAC = 0.03   # the upper bound: 3 % of RAM


def cap_kb(total_pages: np.ndarray) -> np.ndarray:
    """psi's upper bound (kB, int64) on machines of ``total_pages`` managed pages: 3 % of RAM."""
    return (np.asarray(total_pages) * PAGE_KB * CAP_RAM_FRAC).astype(np.int64)


def psi_step(mf: np.ndarray, p: np.ndarray, t_ms: np.ndarray, quiet_since: np.ndarray, floor: np.ndarray,
             cap: np.ndarray, mult: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One decision of psi on B machines: (new min_free_kbytes (B,) int64, whether it is written
    (B,) bool, the back-off's raise flags (B,) bool). ``quiet_since`` (B,) is updated in place (the
    time of the latest pressure). ``mult`` scales the back-off's step (1 =
    psi); a machine with no pressure probes down whatever its ``mult``."""
    mf = np.asarray(mf, np.int64)
    p = np.asarray(p, np.float64)
    up = p > 0
    quiet_since[up] = t_ms[up]
    f = np.minimum(MAX_UP, STEP_PER_DOUBLING * np.log2(1.0 + np.maximum(p, 0.0))) * mult
    raised = np.minimum(np.maximum((mf * (1.0 + f)).astype(np.int64), mf + 1), cap)
    raise_ = up & (np.asarray(mult) > 0) & (raised > mf)
    probe = ~up & (t_ms - quiet_since >= QUIET_MS) & (mf > floor)
    new = mf.copy()
    new[raise_] = raised[raise_]
    new[probe] = np.maximum((mf[probe] * (1.0 - PROBE_DOWN)).astype(np.int64), floor[probe])
    return new, raise_ | probe, raise_
