"""The outcomes a shipped scenario's description states ("Measured (seeds 1000-1002): ..."),
measured on this tree's simulator: per seed, over one episode (the scenario's duration_s; the
60 s scenarios state them "per minute"), the failed atomic page allocations, receive drops (ring, socket buffer, pfmemalloc), deferred and failed virtio refills,
migratetype fallbacks and boosts, kswapd runs and direct-reclaim stalls. Rerun after an engine
change and update the descriptions it moves:

    python scripts/scenario_outcomes.py [SCENARIO ...] [--seeds 1000,1001,1002] [--memory KEY=VALUE ...]

``--memory KEY=VALUE`` replaces a key of the scenarios' `memory:` section (validated like the file's
own), e.g. ``--memory reclaim_reforms_pageblocks=true`` to see what a rule would move.

The randomized training scenarios print how many draws (seeds 100-...) lose what, and the range.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import yaml

from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario, scenario_from_dict
from atomgym.sim.simulator import Simulator

MEASURED = ("anon-hog-bursts", "diurnal-bursts", "incast-pagecache", "memalloc-drops", "stream-read-bursts",
            "trace-replay", "virtio-deferral", "real-atomic-stream", "real-atomic-stream-wsf100",
            "test-1g-virtio-incast", "test-2g-devalloc-diurnal", "test-16g-devalloc-mmpp", "test-64g-incast-100g")
# the randomized training scenarios: their descriptions count the draws (seeds 100-...) that lose
DRAWS = {"train-randomized": 32, "train-wide-devalloc": 16, "train-wide-pagepool": 16, "train-wide-virtio": 16}
COUNTERS = ("atomic_fail", "atomic_fail_pages", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "refill_deferred", "fail_kernel",
            "fallbacks", "fallback_boosts", "pageoutrun")


def memory_overrides(memory: dict[str, object]) -> dict[str, object]:
    """`memory:` keys and values as the scenario loader validates and types them (ScenarioError,
    one line, on an unknown key or a bad value)."""
    given = scenario_from_dict({"duration_s": 1, "memory": memory}, source="--memory").memory
    return {k: getattr(given, k) for k in memory}


def outcomes(name: str, seeds: list[int], memory: dict[str, object] | None = None) -> list[dict[str, float]]:
    """Per seed, the counters of one episode of the shipped scenario ``name``, its `memory:` keys
    replaced by ``memory`` (memory_overrides())."""
    s = load_scenario(name)
    if memory:
        s = dataclasses.replace(s, memory=dataclasses.replace(s.memory, **memory))
    sim = Simulator(s, n_machines=len(seeds))
    sim.reset(np.array(seeds, dtype=np.int64))
    sim.advance(int(round(s.duration_s * 1000 / s.tick_ms)))
    rows = []
    for i in range(len(seeds)):
        c = sim.counter_dict(i)
        row = {k: c[k] for k in COUNTERS if k in c}
        row["allocstall"] = sum(v for k, v in c.items() if k.startswith("allocstall_"))
        rows.append(row)
    return rows


def _seeds(text: str) -> list[int]:
    """--seeds: comma-separated non-negative integers (argparse turns a ValueError into one line)."""
    seeds = [int(x) for x in text.split(",")]
    if not seeds or min(seeds) < 0:
        raise ValueError(text)
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", help=f"shipped scenarios (default: {', '.join(MEASURED)})")
    ap.add_argument("--seeds", type=_seeds, default="1000,1001,1002",
                    help="comma-separated non-negative integers (default: 1000,1001,1002)")
    ap.add_argument("--memory", action="append", default=[], metavar="KEY=VALUE",
                    help="replace a key of the memory: section (repeatable)")
    a = ap.parse_args()
    names = a.scenarios or [*MEASURED, *DRAWS]
    known = set(list_scenarios())
    for n in names:
        if n not in known:
            ap.error(f"{n!r} is not a shipped scenario")
    raw: dict[str, object] = {}
    for kv in a.memory:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            ap.error(f"--memory {kv!r}: expected KEY=VALUE")
        raw[k.strip()] = yaml.safe_load(v)
    try:
        memory = memory_overrides(raw)
    except ScenarioError as e:
        ap.error(str(e))
    for n in names:
        if n in DRAWS:
            seeds = list(range(100, 100 + DRAWS[n]))
            rows = outcomes(n, seeds, memory)
            print(f"{n} ({len(seeds)} draws, seeds {seeds[0]}-{seeds[-1]}, kernel defaults, one episode each):")
            for k in ("atomic_fail", "pfmemalloc_drop", "rx_missed", "rcvbuf_drop"):
                hit = sorted(r[k] for r in rows if r[k] > 0)
                rng = f"{hit[0]:.0f}-{hit[-1]:.0f}" if hit else "-"
                print(f"  {k:20s} {len(hit)} of {len(rows)} draws, {rng}")
            continue
        seeds = a.seeds
        rows = outcomes(n, seeds, memory)
        print(f"{n} (one {load_scenario(n).duration_s:g} s episode, seeds {','.join(map(str, seeds))}):")
        for k in rows[0]:
            vals = [r[k] for r in rows]
            print(f"  {k:20s} " + "  ".join(f"{v:10.0f}" for v in vals))


if __name__ == "__main__":
    main()
