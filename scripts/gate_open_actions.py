"""What trained models choose where their actions act: the share of each action over the decisions
taken on a machine whose gate is open (behind ``gate: drops`` the others are held at action 0),
summed over the models, per machine (``--per-machine``) or over all the scenarios
(docs/training.md, "The residual with levels").

    python scripts/gate_open_actions.py "runs/X/multiseed-*/runs/*/model.zip" \
        --scenarios suite:fleet-test --seeds 10 --seed-base 1000 [--per-machine] [--top 5]
"""
from __future__ import annotations

import argparse
import collections
import glob
import sys
from pathlib import Path

import numpy as np

from atomgym.agents import episodes
from atomgym.agents.models import load_model
from atomgym.envs.spaces import action_names
from atomgym.sim.scenario import load_scenario
from atomgym.suites import scenarios_of


class _Recording(episodes.ModelPolicy):
    """A model policy that keeps (action, machine) of every decision taken with the gate open."""

    def reset(self, sim, seeds):
        self.taken: list[int] = []
        return super().reset(sim, seeds)

    def _apply(self, live: np.ndarray) -> None:
        a = np.asarray(self.player.act(), np.int64).reshape(self.core.B, -1)[:, 0]
        self.core.apply(a, live)
        self.taken += [int(a[i]) for i in np.flatnonzero(live & self.core.gate_open)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gate_open_actions.py", description=__doc__.splitlines()[0])
    ap.add_argument("models", help="a model .zip or a glob of them (quoted)")
    ap.add_argument("--scenarios", required=True, help="comma-separated scenarios or suite:NAME")
    ap.add_argument("--seeds", type=int, default=1, help="episodes per machine and model")
    ap.add_argument("--seed-base", type=int, default=1000)
    ap.add_argument("--per-machine", action="store_true", help="one line per machine")
    ap.add_argument("--top", type=int, default=5, help="actions shown per line (0: all chosen)")
    a = ap.parse_args(argv)
    paths = [Path(p) for p in sorted(glob.glob(a.models))]
    if not paths:
        print(f"gate_open_actions.py: {a.models}: no model file", file=sys.stderr)
        return 2
    if a.seeds < 1:
        print(f"gate_open_actions.py: --seeds {a.seeds}: expected 1 or more", file=sys.stderr)
        return 2
    try:
        lms = [load_model(p) for p in paths]
        names = [s for part in a.scenarios.split(",") if part.strip() for s in scenarios_of(part.strip())]
        scs = [load_scenario(n) for n in names]
    except (ValueError, OSError) as e:
        print(f"gate_open_actions.py: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    an = action_names(lms[0].env_kw.get("action_type", "discrete"))
    seeds = np.arange(a.seed_base, a.seed_base + a.seeds, dtype=np.int64)
    total: collections.Counter = collections.Counter()

    def line(label: str, c: collections.Counter) -> str:
        n = sum(c.values())
        top = c.most_common(a.top or None)
        return f"{label}: {n} gate-open decisions" + "".join(f"\n  {k / n:.2f}  {act:2d} {an[act]}" for act, k in top)

    for sc in scs:
        c: collections.Counter = collections.Counter()
        for lm in lms:
            pol = _Recording(dict(lm.env_kw), sc, lm.player(deterministic=True, n=len(seeds)))
            episodes.run(pol, sc, seeds, float(sc.duration_s))
            c.update(pol.taken)
        total.update(c)
        if a.per_machine and c:
            print(line(sc.name, c))
    print(line(f"all {len(scs)} machines, {len(paths)} model(s), seeds {seeds[0]}-{seeds[-1]}", total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
