"""Per-CPU page lists (pcp): batch and high per zone as each kernel version computes them,
and the ``pagesets`` of a /proc/zoneinfo snapshot.

* ``zone_batchsize()`` (mm/page_alloc.c, 5.14 .. 6.18): ``b = min(managed >> 10, 256) / 4``,
  at least 1; ``batch = rounddown_pow_of_two(b + b/2) - 1``, at least 1
  (zone_set_pageset_high_and_batch()).
* high, by version (PCP_HIGH_* modes):
  - before 5.14, ``pageset_set_batch()``: ``high = 6 * batch``;
  - 5.14 .. 6.6, ``zone_highsize(zone, batch, cpu_online, percpu_pagelist_high_fraction = 0)``:
    ``high = max(low_wmark_pages(zone) / cpus_of_node, 4 * batch)``, static (recomputed by
    zone_pcp_update() after every setup_per_zone_wmarks());
  - 6.7 on (pcp high auto-tuning): ``high_min`` = the same, ``high_max = max(managed / 8 /
    cpus_of_node, 4 * batch)``; ``pcp->high`` moves between them (sim/alloc.py).
"""
from __future__ import annotations

import re

from .jit import jit
from .zones import KernelVersion

PCP_HIGH_6X_BATCH = 0     # < 5.14: pageset_set_batch()
PCP_HIGH_LOW_STATIC = 1   # 5.14 .. 6.6: zone_highsize() with fraction 0, static
PCP_HIGH_AUTOTUNE = 2     # >= 6.7: high_min .. high_max auto-tuning
PCP_HIGH_FRACTION_MAX = 8  # zone_highsize(..., fraction = 8) gives high_max on >= 6.7


def pcp_high_mode(v: KernelVersion) -> int:
    if (v.major, v.minor) < (5, 14):
        return PCP_HIGH_6X_BATCH
    if (v.major, v.minor) < (6, 7):
        return PCP_HIGH_LOW_STATIC
    return PCP_HIGH_AUTOTUNE


def _rounddown_pow_of_two(x: int) -> int:
    return 1 << (x.bit_length() - 1) if x > 0 else 0


def zone_batchsize(managed: int) -> int:
    """zone_batchsize() (CONFIG_MMU), then zone_set_pageset_high_and_batch()'s max(1, .)."""
    b = min(managed >> 10, 256) // 4
    if b < 1:
        b = 1
    return max(1, _rounddown_pow_of_two(b + b // 2) - 1)


@jit()
def zone_highsize(managed, low, batch, cpus, fraction):
    """zone_highsize(): ``max(total / cpus, 4 * batch)`` with ``total = managed / fraction`` or
    the low watermark (boost included when it is called) when fraction is 0."""
    if fraction > 0:
        total = managed // fraction
    else:
        total = low
    n = cpus if cpus > 0 else 1
    h = total // n
    if h < 4 * batch:
        h = 4 * batch
    return h


@jit()
def pcp_high_static(mode, managed, low, batch, cpus):
    """(high_min, high_max) of a zone for a PCP_HIGH_* mode; equal unless auto-tuning."""
    if mode == PCP_HIGH_6X_BATCH:
        return 6 * batch, 6 * batch
    lo = zone_highsize(managed, low, batch, cpus, 0)
    if mode == PCP_HIGH_LOW_STATIC:
        return lo, lo
    hi = zone_highsize(managed, low, batch, cpus, PCP_HIGH_FRACTION_MAX)
    # with a huge watermark_scale_factor low / cpus can exceed managed / 8 / cpus; pcp->high is
    # clamp(high, high_min, high_max), which then gives high_min: keep high_max >= high_min
    return lo, hi if hi > lo else lo


_ZONE_HDR = re.compile(r"^Node\s+(\d+),\s+zone\s+(\w+)")
_KV = re.compile(r"^\s+(count|high|batch|high_min|high_max):\s+(-?\d+)\s*$")
_CPU = re.compile(r"^\s+cpu:\s+(\d+)")


def parse_pagesets(text: str) -> dict[tuple[int, str], dict]:
    """The ``pagesets`` of every zone in a zoneinfo text: {(node, zone name): {"batch", "high_min",
    "high_max" (None when the kernel does not print them), "high": [per CPU], "cpus"}}. Zones
    without a pagesets section are absent."""
    out: dict[tuple[int, str], dict] = {}
    key = None
    cur: dict | None = None
    cpu: dict | None = None
    for line in text.splitlines():
        m = _ZONE_HDR.match(line)
        if m:
            key = (int(m.group(1)), m.group(2))
            cur = None
            cpu = None
            continue
        if key is None:
            continue
        if line.strip() == "pagesets":
            cur = {"cpus": []}
            out[key] = cur
            continue
        if cur is None:
            continue
        m = _CPU.match(line)
        if m:
            cpu = {}
            cur["cpus"].append(cpu)
            continue
        m = _KV.match(line)
        if m and cpu is not None:
            cpu[m.group(1)] = int(m.group(2))
            continue
        if line.strip() and not line.strip().startswith("vm stats threshold") and not line.startswith(" " * 6):
            cur = None
    res = {}
    for k, v in out.items():
        cpus = v["cpus"]
        if not cpus or "batch" not in cpus[0]:
            continue
        res[k] = {"batch": cpus[0]["batch"], "high_min": cpus[0].get("high_min"),
                  "high_max": cpus[0].get("high_max"), "high": [c.get("high", 0) for c in cpus],
                  "cpus": len(cpus)}
    return res
