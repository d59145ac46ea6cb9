"""`EnvConfig`: every option of the atomgym envs in one dataclass, validated once.

AtomEnv, AtomVectorEnv and AtomSB3VecEnv take these options as keyword arguments (and
``gym.make`` passes them through), build one EnvConfig from them (:meth:`EnvConfig.from_options`)
and keep it (``env.config``; pickling an env pickles it). The reward weights are one mapping,
``weights`` (term -> weight, cost.TERMS), and each term's keyword argument (``w_drops=``, ...,
cost.WEIGHT_ARGS) sets one of them. A bad option raises a one-line ValueError naming it and what
is valid; an unknown one a TypeError naming the valid ones.

Adding an env option: add a field here with its default and its check in ``__post_init__`` (a
range: a Field in atomgym/schema.py, read by the check);
every env constructor accepts it, pickling keeps it; document it in AtomEnv's docstring
("Arguments") and docs/environment.md.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..fields import Field
from ..schema import (
    COST,
    ENV_DEADLOCK_PENALTY,
    ENV_DECISION_INTERVAL_MS,
    ENV_DURATION_S,
    ENV_RENDER_WINDOW,
    ENV_WEIGHT,
    REWARD_BASELINES,
)
from ..sim.scenario import Scenario, load_scenario, validate_scenario
from .cost import DEFAULT_COST, DEFAULT_DEADLOCK_PENALTY, DEFAULT_WEIGHTS, TERM_NAMES, WEIGHT_ARGS, weights_of
from .episode import DEFAULT_DECISION_INTERVAL_MS, episode_steps
from .spaces import ACTION_TYPES, CUT_GATES, GATES, OBSERVATION_MODES

RENDER_MODES = ("ansi", "rgb_array")


def real_number(name: str, v: object, spec: Field) -> float:
    """``v`` as a float if it is a real number (not a bool, not a string) in the range of ``spec``
    (the schema's Field of the option, atomgym/schema.py); else a ValueError naming the argument
    ``name`` and the valid range."""
    lo, hi = spec.range
    rng = f"valid range {lo:g}..{hi:g}{' ' + spec.unit if spec.unit else ''}"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number, got {type(v).__name__} {v!r}; {rng}")
    try:
        f = float(v)
    except OverflowError:       # an int beyond float's range (10**400)
        f = math.inf
    if not lo <= f <= hi:       # NaN fails too
        raise ValueError(f"{name}: {v!r} is out of range; {rng}")
    return f


def positive_int(name: str, v: object, hi: int | None = None) -> int:
    """``v`` as an int if it is an integer >= 1 (not a bool, not 1.5) and at most ``hi``; else a
    ValueError."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= 1, got {type(v).__name__} {v!r}")
    if v < 1 or (hi is not None and v > hi):
        raise ValueError(f"{name}: {v} is out of range; valid range 1..{hi if hi is not None else 'inf'}")
    return int(v)


def resolve_scenario(scenario: str | Path | Scenario, duration_s: float | None) -> Scenario:
    # a Scenario built in code gets the checks a file gets (tick_ms 0 would divide by zero)
    s = validate_scenario(scenario) if isinstance(scenario, Scenario) else load_scenario(scenario)
    if duration_s is not None:
        s = dataclasses.replace(s, duration_s=real_number("duration_s", duration_s, ENV_DURATION_S))
    return s


def interval_ticks(s: Scenario, decision_interval_ms: float) -> int:
    decision_interval_ms = real_number("decision_interval_ms", decision_interval_ms, ENV_DECISION_INTERVAL_MS)
    n = decision_interval_ms / s.tick_ms
    if abs(n - round(n)) > 1e-9:
        raise ValueError(f"decision_interval_ms: {decision_interval_ms} is not a multiple of the scenario's "
                         f"tick ({s.tick_ms} ms)")
    return int(round(n))


def _choice(name: str, v: object, choices: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name}: {v!r} is not valid; choices: {', '.join(choices)}")
    return v


@dataclass(frozen=True)
class EnvConfig:
    """The options of an atomgym env (AtomEnv's docstring, "Arguments"), validated on creation.

    Derived on creation (not arguments): ``sim_scenario`` (the Scenario with the ``duration_s``
    override), ``ticks`` (simulator ticks per decision interval) and ``episode_steps``."""

    scenario: str | Path | Scenario = "incast-pagecache"
    decision_interval_ms: float = DEFAULT_DECISION_INTERVAL_MS
    action_type: str = "discrete"
    observation: str = "basic"
    cost: str = DEFAULT_COST
    weights: Mapping[str, float] = field(default_factory=dict)   # a term not given: the named cost's weight
    deadlock_penalty: float = DEFAULT_DEADLOCK_PENALTY
    reward_baseline: str = "none"
    gate: str = "none"
    duration_s: float | None = None
    compute_score: bool = True
    render_mode: str | None = None
    render_window: int = 200
    sim_scenario: Scenario = field(init=False, repr=False, compare=False)
    ticks: int = field(init=False, repr=False, compare=False)
    episode_steps: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalised once here)
        if self.render_mode is not None and self.render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode: {self.render_mode!r} is not valid; choices: None, {', '.join(RENDER_MODES)}")
        if not isinstance(self.compute_score, (bool, np.bool_)):
            raise ValueError(f"compute_score: expected True or False, got {self.compute_score!r}")
        put("compute_score", bool(self.compute_score))
        put("render_window", positive_int("render_window", self.render_window, ENV_RENDER_WINDOW.range[1]))
        put("sim_scenario", resolve_scenario(self.scenario, self.duration_s))
        _choice("action_type", self.action_type, ACTION_TYPES)
        _choice("observation", self.observation, OBSERVATION_MODES)
        _choice("reward_baseline", self.reward_baseline, REWARD_BASELINES)
        _choice("gate", self.gate, GATES)
        if self.gate in CUT_GATES and self.action_type != "residual-level":
            raise ValueError(f"gate: {self.gate!r} lets a named cut through; it needs action_type 'residual-level', "
                             f"not {self.action_type!r} (use gate 'drops')")
        if self.gate != "none" and self.action_type == "continuous":
            raise ValueError(f"gate: {self.gate!r} holds action 0 of a Discrete action type; "
                             f"action_type 'continuous' has none (use gate 'none')")
        put("ticks", interval_ticks(self.sim_scenario, self.decision_interval_ms))
        put("decision_interval_ms", float(self.decision_interval_ms))
        if not isinstance(self.weights, Mapping) or set(self.weights) - set(TERM_NAMES):
            raise ValueError(f"weights: expected a mapping of term -> weight; terms: {', '.join(TERM_NAMES)}")
        # every term is a cost (reward <= 0, AtomEnv's docstring): a weight is a finite number >= 0
        _choice("cost", self.cost, COST.choices)
        base = weights_of(self.cost)
        put("weights", {k: real_number(WEIGHT_ARGS[k], self.weights.get(k, base[k]), ENV_WEIGHT)
                        for k in TERM_NAMES})
        put("deadlock_penalty", real_number("deadlock_penalty", self.deadlock_penalty, ENV_DEADLOCK_PENALTY))
        put("episode_steps", episode_steps(self.sim_scenario, self.decision_interval_ms))

    @classmethod
    def from_options(cls, **options: Any) -> "EnvConfig":
        """An EnvConfig from env keyword arguments: its fields, and the weight arguments of the
        cost table (``w_drops=`` ... set ``weights[<term>]``)."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        by_arg = {a: t for t, a in WEIGHT_ARGS.items()}
        unknown = sorted(set(options) - names - set(by_arg))
        if unknown:
            raise TypeError(f"unknown env option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names | set(by_arg)))}")
        given = options.pop("weights", None)
        if given is not None and not isinstance(given, Mapping):   # dict() of a list says nothing of weights
            raise ValueError(f"weights: expected a mapping of term -> weight, got {type(given).__name__} "
                             f"{given!r:.60}; terms: {', '.join(TERM_NAMES)}")
        weights = dict(given or {})
        for a in [a for a in options if a in by_arg]:
            weights[by_arg[a]] = options.pop(a)
        return cls(weights=weights, **options)


def options_signature(func, *head: inspect.Parameter) -> inspect.Signature:
    """The signature of an env constructor taking ``**options``: ``self``, ``head``, then every
    EnvConfig field and weight argument as a keyword argument with its default (for help() and
    for callers that inspect the constructor, e.g. agents.train's valid ``env:`` keys)."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), *head]
    taken = {p.name for p in params}
    for f in dataclasses.fields(EnvConfig):
        if f.init and f.name not in taken:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            params.append(P(f.name, P.KEYWORD_ONLY, default=default))
    for t, a in WEIGHT_ARGS.items():
        params.append(P(a, P.KEYWORD_ONLY, default=DEFAULT_WEIGHTS[t]))
    return inspect.Signature(params)
