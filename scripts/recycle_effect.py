"""What the drivers' RX page recycling does to each shipped scenario (docs/scenarios.md, "Page recycling").

Every shipped scenario with a page_pool or dev_alloc_pages NIC runs as written (``recycle: false``:
every RX page from the buddy allocator) and with the drivers' recycling (``recycle: null``), whole
episodes, seeds 1000-1002; the table gives the means per episode.

    python scripts/recycle_effect.py [--scenarios a,b] [--seeds 3]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from atomgym.sim import Simulator
from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario

COUNTERS = ("atomic_fail", "pfmemalloc_drop", "rcvbuf_drop", "rx_missed", "rx_pages_recycled")


def run(name: str, recycle: bool | None, seeds: list[int]) -> dict[str, float]:
    s = load_scenario(name)
    for n in s.nics:
        if n.driver != "virtio_net":
            n.recycle = recycle
    sim = Simulator(s, n_machines=len(seeds))
    sim.reset(np.asarray(seeds, dtype=np.int64))
    sim.advance(int(round(s.duration_s * 1000.0 / s.tick_ms)))
    return {c: float(sim.counter(c).mean()) for c in COUNTERS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="recycle_effect.py", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(list_scenarios()))
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args(argv)
    if not 1 <= a.seeds <= 100:
        print("recycle_effect.py: --seeds must be 1..100", file=sys.stderr)
        return 2
    seeds = list(range(1000, 1000 + a.seeds))
    print("| scenario | atomic failures: no recycling -> recycling | pfmemalloc drops | rcvbuf drops | "
          "rx_missed | refill pages recycled |")
    print("|---|---|---|---|---|---|")
    try:
        for name in (x for x in a.scenarios.split(",") if x):
            s = load_scenario(name)
            if not any(n.driver != "virtio_net" for n in s.nics):
                continue
            off, on = run(name, False, seeds), run(name, None, seeds)
            cells = [f"{off[c]:,.0f} -> {on[c]:,.0f}" for c in COUNTERS[:4]]
            print(f"| `{name}` | " + " | ".join(cells) + f" | {on['rx_pages_recycled']:,.0f} |", flush=True)
    except ScenarioError as e:
        print(f"recycle_effect.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
