"""One digest of everything the simulator counts: every shipped scenario x seeds x in-kernel tuner.

A refactor that must not change behaviour prints the same ``total`` before and after; an engine
change shows which scenario/tuner pairs moved. Each row hashes the counters and the final zone
state, watermarks and boosts of every machine at the end of a whole episode.

    python scripts/counter_hash.py                 # 3 seeds, every scenario, every tuner
    python scripts/counter_hash.py --seeds 1 --scenarios quiet,incast-pagecache --json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

from atomgym.sim import Simulator
from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
from atomgym.sim.tuners import TUNERS


def episode_digest(scenario: str, tuner: str, seeds: list[int]) -> str:
    s = load_scenario(scenario)
    sim = Simulator(s, n_machines=len(seeds), tuner=tuner)
    sim.reset(np.asarray(seeds, dtype=np.int64))
    sim.advance(int(round(s.duration_s * 1000.0 / s.tick_ms)))
    h = hashlib.sha256()
    for arr in (sim.counters, sim.zone_state, sim.wmark, sim.boost):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="counter_hash.py", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..N per scenario (default 3)")
    ap.add_argument("--scenarios", default=",".join(list_scenarios()), help="comma-separated names")
    ap.add_argument("--tuners", default=",".join(TUNERS), help="comma-separated in-kernel tuners")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        print("counter_hash.py: --seeds must be >= 1", file=sys.stderr)
        return 2
    tuners = [t for t in a.tuners.split(",") if t]
    bad = [t for t in tuners if t not in TUNERS]
    if bad:
        print(f"counter_hash.py: unknown tuner {bad[0]!r}; valid: {', '.join(TUNERS)}", file=sys.stderr)
        return 2
    seeds = list(range(1, a.seeds + 1))
    rows: dict[str, str] = {}
    try:
        for sc in (x for x in a.scenarios.split(",") if x):
            for t in tuners:
                rows[f"{sc}/{t}"] = episode_digest(sc, t, seeds)
                if not a.json:
                    print(f"{sc:28s} {t:16s} {rows[f'{sc}/{t}']}", flush=True)
    except ScenarioError as e:
        print(f"counter_hash.py: {e}", file=sys.stderr)
        return 2
    total = hashlib.sha256("".join(f"{k}={v};" for k, v in rows.items()).encode()).hexdigest()[:16]
    if a.json:
        print(json.dumps({"rows": rows, "total": total}, indent=1))
    else:
        print(f"total {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
