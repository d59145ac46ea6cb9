"""The outcomes a shipped scenario's description states ("Measured (seeds 1000-1002): ..."),
measured on this tree's simulator: per seed, per minute of the scenario, the failed atomic page
allocations, receive drops (ring, socket buffer, pfmemalloc), deferred and failed virtio refills,
migratetype fallbacks and boosts, kswapd runs and direct-reclaim stalls. Rerun after an engine
change and update the descriptions it moves:

    python scripts/scenario_outcomes.py [SCENARIO ...] [--seeds 1000,1001,1002]
"""
from __future__ import annotations

import argparse

import numpy as np

from atomgym.sim.scenario import list_scenarios, load_scenario
from atomgym.sim.simulator import Simulator

MEASURED = ("anon-hog-bursts", "diurnal-bursts", "incast-pagecache", "memalloc-drops", "stream-read-bursts",
            "trace-replay", "virtio-deferral")
COUNTERS = ("atomic_fail", "rx_missed", "rcvbuf_drop", "pfmemalloc_drop", "refill_deferred", "fail_kernel",
            "fallbacks", "fallback_boosts", "pageoutrun")


def outcomes(name: str, seeds: list[int]) -> list[dict[str, float]]:
    s = load_scenario(name)
    sim = Simulator(s, n_machines=len(seeds))
    sim.reset(np.array(seeds, dtype=np.int64))
    sim.advance(int(round(s.duration_s * 1000 / s.tick_ms)))
    per_min = 60.0 / s.duration_s
    rows = []
    for i in range(len(seeds)):
        c = sim.counter_dict(i)
        row = {k: c[k] * per_min for k in COUNTERS if k in c}
        row["allocstall"] = sum(v for k, v in c.items() if k.startswith("allocstall_")) * per_min
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", help=f"shipped scenarios (default: {', '.join(MEASURED)})")
    ap.add_argument("--seeds", default="1000,1001,1002")
    a = ap.parse_args()
    names = a.scenarios or list(MEASURED)
    known = set(list_scenarios())
    for n in names:
        if n not in known:
            ap.error(f"{n!r} is not a shipped scenario")
    seeds = [int(x) for x in a.seeds.split(",")]
    for n in names:
        rows = outcomes(n, seeds)
        print(f"{n} (per minute, seeds {a.seeds}):")
        for k in rows[0]:
            vals = [r[k] for r in rows]
            print(f"  {k:20s} " + "  ".join(f"{v:10.0f}" for v in vals))


if __name__ == "__main__":
    main()
