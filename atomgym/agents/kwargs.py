"""The keyword arguments a training config hands to SB3 (an algorithm's constructor, VecNormalize):
checked against the callee's signature (name, type of its default) and against the ranges in which
SB3 would not silently train on nonsense, one line naming the file and the key."""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

from atomgym.schema import ConfigError, short


def vecnormalize_params() -> dict:
    from stable_baselines3.common.vec_env import VecNormalize
    return dict(inspect.signature(VecNormalize.__init__).parameters)


def check_kwargs(path: Path, name: str, params, kw: dict, reserved: set) -> None:
    valid = sorted(k for k in params if k not in reserved | {"self"} and not k.startswith("_"))
    for k, v in kw.items():
        if not isinstance(k, str) or k not in params or k == "self" or k.startswith("_"):
            raise ConfigError(f"{path}: {name}: unknown argument(s) {[str(k)]}; valid: {valid}")
        if k in reserved:
            where = "the top-level `seed` key" if k == "seed" else "agents.train itself"
            raise ConfigError(f"{path}: {name}.{k}: set by {where}; remove it from {name}")
        default = params[k].default
        if isinstance(default, bool):
            ok, kind = isinstance(v, bool), "true or false"
        elif isinstance(default, int):
            ok, kind = isinstance(v, int) and not isinstance(v, bool), "an integer"
        elif isinstance(default, float):
            ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a finite number"
        elif isinstance(default, str):       # e.g. SAC's ent_coef: "auto", "auto_0.1" or a number
            ok = isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            kind = "a string or a finite number"
        else:                                 # None default: checked by building the model (validate_build)
            _check_range(path, name, k, v)
            continue
        if not ok:
            raise ConfigError(f"{path}: {name}.{k}: expected {kind} (like its default {default!r}), "
                              f"got {type(v).__name__} {short(v)}")
        _check_range(path, name, k, v)


# SB3 and VecNormalize take any number for these and then train on nonsense, exit 0 (a negative
# clip_obs clips every observation to one constant, a discount > 1 diverges, n_steps 0 never
# collects): key -> (low, high, low excluded); checked wherever the key is given as a number
NUMERIC_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "gamma": (0, 1, False), "gae_lambda": (0, 1, False), "tau": (0, 1, False),
    "exploration_fraction": (0, 1, False), "exploration_initial_eps": (0, 1, False),
    "exploration_final_eps": (0, 1, False),
    "learning_rate": (0, None, True), "clip_range": (0, None, True), "clip_range_vf": (0, None, True),
    "max_grad_norm": (0, None, True), "target_kl": (0, None, True), "rms_prop_eps": (0, None, True),
    "clip_obs": (0, None, True), "clip_reward": (0, None, True), "epsilon": (0, None, True),
    "ent_coef": (0, None, False), "vf_coef": (0, None, False), "target_policy_noise": (0, None, False),
    "target_noise_clip": (0, None, False), "learning_starts": (0, None, False),
    "n_steps": (1, None, False), "batch_size": (1, None, False), "n_epochs": (1, None, False),
    "buffer_size": (1, None, False), "train_freq": (1, None, False), "target_update_interval": (1, None, False),
    "stats_window_size": (1, None, False), "policy_delay": (1, None, False), "n_critics": (1, None, False),
    "gradient_steps": (-1, None, False), "sde_sample_freq": (-1, None, False),
}


def _check_range(path: Path, name: str, k: str, v: Any) -> None:
    """A numeric keyword argument against NUMERIC_RANGES (one line naming the key and the range)."""
    r = NUMERIC_RANGES.get(k)
    if r is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return
    lo, hi, open_lo = r
    bad = not math.isfinite(v) or (lo is not None and (v <= lo if open_lo else v < lo)) or (hi is not None and v > hi)
    if k == "gradient_steps" and v == 0:   # -1: as many as environment steps; 0 would never train
        bad = True
    if bad:
        valid = (f"{fmt(lo)}..{fmt(hi)}" if hi is not None else
                 f"> {fmt(lo)}" if open_lo else f">= {fmt(lo)}") + (" (not 0)" if k == "gradient_steps" else "")
        raise ConfigError(f"{path}: {name}.{k}: {short(v)} is out of range; valid: {valid}")


def fmt(x: float | None) -> str:
    return f"{x:g}"
