"""The episode cost, defined once: one row per term (no gymnasium, no numba).

Every user of the cost reads this table: the env's per-step reward (``envs/_compiled.terms_batch``
through ``Core``), the normalised score's default-settings reference (``Core.default_totals`` /
``Core.default_costs``) and ``agents.evaluate.episode_metrics``. A term is the sum of the listed
simulator counters (their increments over an interval, or their totals over an episode) divided
by ``divisor`` (a unit conversion), and the cost is ``sum(weight * term) + deadlock_penalty *
[deadlocked]``. The env's weight of a term is its keyword argument ``arg`` (``AtomEnv(w_drops=...)``).

Adding a term: add a row here (its counters must exist in ``sim.layout.COUNTER_NAMES``). The
reward, ``info["term_<name>"]`` / ``info["reward_<name>"]``, the ``w_<...>`` keyword argument of
every env, the score's reference, evaluate's cost and AtomEnv's docstring follow; the reward
table of docs/environment.md lists the rows (tests/test_docs.py checks them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from atomgym.schema import COST_NAMES


@dataclass(frozen=True)
class CostTerm:
    name: str                  # info["term_<name>"] (raw) and info["reward_<name>"] (weighted, negative)
    arg: str                   # the env keyword argument giving its weight
    counters: tuple[str, ...]  # simulator counters summed (in this order)
    divisor: float             # term = sum / divisor
    weight: float              # default weight
    doc: str
    # The env counts this term from the agent's own actions (one per sysctl its action writes, one
    # per boost action), not from the counters: the counters also count a scenario phase's writes
    # and an in-kernel tuner's (episode totals from counters, as agents.evaluate reads them, do).
    from_actions: bool = False


TERMS: tuple[CostTerm, ...] = (
    CostTerm("drops", "w_drops", ("rx_missed", "rcvbuf_drop", "pfmemalloc_drop"), 1.0, 1e-3,
             "packets dropped: at the NIC (no posted buffer), at a full socket receive buffer, as pfmemalloc"),
    # a diagnostic under the default cost: a failed GFP_ATOMIC|__GFP_NOWARN refill that the next NAPI
    # poll retries loses nothing; what it causes (an empty ring's rx_missed) is charged as drops
    CostTerm("atomic_fail", "w_atomic_fail", ("atomic_fail",), 1.0, 0.0,
             "failed atomic RX refills (a diagnostic: charged only by the `atomic-charged` cost)"),
    CostTerm("reserved_mib_s", "w_reserved", ("reserved_mib_ms",), 1000.0, 1e-3,
             "memory held free by the watermarks, sum over zones of (high + boost) x time, MiB.s"),
    CostTerm("stall_s", "w_stall", ("direct_reclaim_stall_us",), 1e6, 1.0, "direct-reclaim stall, s"),
    CostTerm("knob_changes", "w_knob", ("knob_writes", "boost_actions"), 1.0, 1e-2,
             "sysctl writes + boost actions", from_actions=True),
)
TERM_NAMES: tuple[str, ...] = tuple(t.name for t in TERMS)

# The named costs: each a set of weights of TERMS (a term not named keeps its row's weight). ``harm``
# (the default) charges what is lost: packets (ring, socket, pfmemalloc), direct-reclaim stalls,
# reserved memory and knob writes; atomic failures are reported, not charged (a refill deferral's
# latency shows as the drops of the ring it left empty). ``atomic-charged`` is the cost of the
# benchmark before 2026-12-06, a failed refill charged like a dropped packet: kept for comparison
# (env option ``cost=``, ``agents.report --cost``, the sensitivity table of every summary.md).
COSTS: dict[str, dict[str, float]] = {
    "harm": {},
    "atomic-charged": {"atomic_fail": 1e-3},
}
DEFAULT_COST = "harm"
assert tuple(COSTS) == COST_NAMES and DEFAULT_COST == COST_NAMES[0], "schema.COST_NAMES must name COSTS"
assert DEFAULT_COST in COSTS and all(set(w) <= set(TERM_NAMES) for w in COSTS.values()), COSTS
DEFAULT_WEIGHTS: dict[str, float] = {t.name: t.weight for t in TERMS}
WEIGHT_ARGS: dict[str, str] = {t.name: t.arg for t in TERMS}   # term -> env keyword argument
TERM_BY_NAME: dict[str, CostTerm] = {t.name: t for t in TERMS}
DEFAULT_DEADLOCK_PENALTY = 100.0
SCORE_COST_FLOOR = 1.0


def weights_of(name: str) -> dict[str, float]:
    """The weights of a named cost (COSTS), every term; ValueError naming the valid costs."""
    if name not in COSTS:
        raise ValueError(f"cost: {name!r} is not a cost; valid: {', '.join(COSTS)}")
    return {**DEFAULT_WEIGHTS, **COSTS[name]}


def episode_terms(counter: Mapping[str, float] | Callable[[str], float],
                  actions: float | None = None) -> list[float]:
    """Raw term totals (TERMS order) from cumulative counters (a name -> value mapping or
    function). ``actions``: the value of the ``from_actions`` terms (an episode without agent
    writes: 0.0); None reads them from the counters too."""
    get = counter if callable(counter) else counter.__getitem__
    out = []
    for t in TERMS:
        if t.from_actions and actions is not None:
            out.append(float(actions))
        else:
            out.append(sum(get(c) for c in t.counters) / t.divisor)
    return out


def cost(terms: Sequence[float], weights: Sequence[float], deadlock_penalty: float, deadlocked: float) -> float:
    """sum(weight * term) over TERMS, plus the penalty if deadlocked (the reward's expression)."""
    c = 0.0
    for x, w in zip(terms, weights):
        c = c + x * w
    return float(c + deadlock_penalty * float(deadlocked))


def default_cost(counter: Mapping[str, float] | Callable[[str], float], deadlocked: float,
                 name: str = DEFAULT_COST) -> float:
    """The cost of a whole episode from its counters, under the named cost (default weights and penalty)."""
    w = weights_of(name)
    return cost(episode_terms(counter), [w[t.name] for t in TERMS], DEFAULT_DEADLOCK_PENALTY, deadlocked)


def definition() -> str:
    """The cost's definition as text (every row and the deadlock penalty): part of the key of any
    cache holding costs (agents.evaluate's best-static sweeps, agents.oracle's fleet sweep), so that
    nothing chosen under another cost is reused."""
    return repr([(t.name, t.counters, t.divisor, t.weight, t.from_actions) for t in TERMS]
                + [DEFAULT_DEADLOCK_PENALTY, DEFAULT_COST])


def score(cost: float, default_cost: float) -> float:
    """1.0 = the kernel defaults' cost; 2.0 = zero cost; below 1 = worse than the defaults."""
    return 1.0 - (cost - default_cost) / max(default_cost, SCORE_COST_FLOOR)
