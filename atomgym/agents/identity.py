"""What determines a result, as digests: the identity a resumed block or run is checked against.

A finished block of ``agents.evaluate`` (one policy on one scenario, every seed) and a training run
of ``agents.train`` record, beside their output, the digests of everything their numbers depend
on: the scenario (its resolved content and the bytes of the trace and snapshot files it names),
the policy (a baseline's name, or the bytes of a model's .zip, its config and its normalisation
statistics), the simulator's sources (atomgym.sim.sources_digest) and the cost's definition
(envs/cost.py). ``--resume`` compares them with the current ones and refuses, naming what changed,
rather than mixing two experiments under one name.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import atomgym.sim as engine     # engine.sources_digest read at call time (tests replace it)
from atomgym.agents.models import model_config_path
from atomgym.envs.cost import definition
from atomgym.sim.scenario import resolve_path, scenario_to_dict

# a file named by a scenario is read at most this far when hashed (the loaders refuse larger ones)
MAX_HASHED_BYTES = (512 << 20) + 1


def _update_file(h: "hashlib._Hash", path: Path) -> None:
    """The bytes of ``path`` (at most MAX_HASHED_BYTES: a link to a device never ends), or the fact
    that it cannot be read, into ``h``."""
    h.update(str(path.name).encode())
    try:
        with open(path, "rb") as fh:
            left = MAX_HASHED_BYTES
            while left > 0:
                b = fh.read(min(1 << 20, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
    except OSError as e:
        h.update(f"<unreadable: {e.errno}>".encode())


def scenario_digest(sc) -> str:
    """The resolved scenario (every key, after defaults) and the bytes of its trace and snapshot files."""
    h = hashlib.sha256(json.dumps(scenario_to_dict(sc), sort_keys=True, default=str).encode())
    files = [t.trace for t in sc.traffic if t.kind == "replay" and t.trace is not None]
    if sc.machine.snapshot is not None:
        files.append(sc.machine.snapshot)
    for rel in files:
        _update_file(h, resolve_path(sc, rel))
    return h.hexdigest()[:16]


def model_files(path: Path) -> list[Path]:
    """The files a trained model is played from: the .zip, its config (NAME.yml or the run's
    config.yml) and its normalisation statistics (``<stem>.vecnormalize.*`` beside it)."""
    out = [path]
    cfg = model_config_path(path)
    if cfg is not None:
        out.append(cfg)
    out += sorted(path.parent.glob(f"{path.stem}.vecnormalize.*"))
    return out


def model_digest(path: Path) -> str:
    """The bytes of a model's files (model_files)."""
    h = hashlib.sha256()
    for p in model_files(path):
        _update_file(h, p)
    return h.hexdigest()[:16]


def cost_digest() -> str:
    return hashlib.sha256(definition().encode()).hexdigest()[:16]


def simulator_digest() -> str:
    return str(engine.sources_digest())


# how each component is named in a refusal
WHAT = {"scenario": "the scenario's content (its YAML, trace or snapshot file)",
        "policy": "the policy (a model's .zip, config or normalisation statistics)",
        "simulator": "the simulator's sources (atomgym.sim)",
        "cost": "the cost's definition (atomgym/envs/cost.py)",
        "duration_s": "the episode length (--duration-s)",
        "seeds": "the seeds (--seeds, --seed-base)"}


def changed(old: Any, new: dict[str, Any]) -> list[str]:
    """The components of ``new`` that ``old`` (a recorded identity) records otherwise, in the
    order of ``new``; every component when ``old`` is not a mapping."""
    if not isinstance(old, dict):
        return list(new)
    return [k for k, v in new.items() if _plain(old.get(k)) != _plain(v)]


def _plain(v: Any) -> Any:
    """A value as JSON gives it back (tuples as lists, 2 and 2.0 as one number)."""
    return json.loads(json.dumps(v))
