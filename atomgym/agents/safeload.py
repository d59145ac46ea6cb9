"""Loading a stable-baselines3 model .zip without unpickling anything in it.

SB3 stores a model's constructor state in the zip's ``data`` JSON; what JSON cannot hold
(the spaces, the policy class, the schedules, buffers, ...) it stores as a cloudpickle under
``":serialized:"`` and unpickles on load unless ``custom_objects`` supplies the key: a model file
someone shares could run code. Here every such key of the file's ``data`` is supplied: the spaces
rebuilt from the env the model's config describes (and checked against the description SB3 wrote
beside the pickle), the policy class from the algorithm, the schedules from the constant SB3 wrote
in plain text, the optimizer and activation classes of ``policy_kwargs`` from a short list, the
rest (observations and episode buffers of the last rollout, buffer classes) left for SB3's
``_setup_model`` to rebuild as it does for a fresh model. A serialized key not on this list is
refused, one line. The tensors (``*.pth``) are read by SB3 with ``torch.load(weights_only=True)``,
which builds tensors and plain containers only.
"""
from __future__ import annotations

import inspect
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from atomgym.agents.algos import algo_class, policy_name
from atomgym.envs.atom_env import make_action_space, make_observation_space

MAX_DATA_BYTES = 16 << 20    # the data JSON of a model is tens of kB
# left None: SB3's _setup_model (or learn()) rebuilds them as for a new model; None is what
# load(env=...) sets _last_obs to anyway
REBUILT_BY_SB3 = {"_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer",
                  "_last_lstm_states", "exploration_schedule", "rollout_buffer_class", "replay_buffer_class"}
SCHEDULES = {"clip_range", "clip_range_vf", "lr_schedule"}
_CONSTANT = re.compile(r"ConstantSchedule\(val=([-+0-9.eE]+|inf)\)")
# classes policy_kwargs may name (SB3's defaults and the usual choices), by the str() SB3 wrote
_CLASSES = {
    "torch.optim.rmsprop.RMSprop": ("torch.optim", "RMSprop"), "torch.optim.adam.Adam": ("torch.optim", "Adam"),
    "torch.optim.adamw.AdamW": ("torch.optim", "AdamW"), "torch.optim.sgd.SGD": ("torch.optim", "SGD"),
    "torch.nn.modules.activation.Tanh": ("torch.nn", "Tanh"), "torch.nn.modules.activation.ReLU": ("torch.nn", "ReLU"),
    "torch.nn.modules.activation.ELU": ("torch.nn", "ELU"), "torch.nn.modules.activation.LeakyReLU": ("torch.nn", "LeakyReLU"),
}


class UnsafeModelError(ValueError):
    """A model file this loader will not load (one line naming the file)."""


def read_data(path: Path) -> dict[str, Any]:
    """The zip's ``data`` JSON (plain parsing, nothing unpickled). UnsafeModelError otherwise."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("data")
            if info.file_size > MAX_DATA_BYTES:
                raise UnsafeModelError(f"{path}: its data entry is {info.file_size} bytes; a model's is < "
                                       f"{MAX_DATA_BYTES >> 20} MiB")
            data = json.loads(z.read(info))
    except UnsafeModelError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RecursionError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        raise UnsafeModelError(f"{path}: not a stable-baselines3 model .zip ({why})") from None
    if not isinstance(data, dict):
        raise UnsafeModelError(f"{path}: not a stable-baselines3 model .zip (data is not a mapping)")
    return data


def serialized_keys(data: dict) -> list[str]:
    return [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]


def _space_matches(desc: dict, space) -> str | None:
    """Why the space SB3 described in plain text (type, dtype, shape, n) differs from ``space``, or None."""
    import gymnasium
    typ = str(desc.get(":type:", ""))
    want = {gymnasium.spaces.Box: "gymnasium.spaces.box.Box",
            gymnasium.spaces.Discrete: "gymnasium.spaces.discrete.Discrete"}.get(type(space))
    if want is None or want not in typ:
        return f"a {typ.strip('<>')}, the config builds {space}"
    if str(desc.get("dtype")) != str(space.dtype):
        return f"dtype {desc.get('dtype')}, the config builds {space.dtype}"
    if str(desc.get("_shape")).replace(" ", "") not in (str(list(space.shape)).replace(" ", ""),
                                                        str(tuple(space.shape)).replace(" ", "")):
        return f"shape {desc.get('_shape')}, the config builds {list(space.shape)}"
    if isinstance(space, gymnasium.spaces.Discrete) and (str(desc.get("n")) != str(int(space.n)) or
                                                         str(desc.get("start", "0")) != str(int(space.start))):
        return f"Discrete({desc.get('n')}), the config builds Discrete({int(space.n)})"
    return None


def _class(text: object):
    m = re.fullmatch(r"<class '([A-Za-z0-9_.]+)'>", str(text))
    if m is None or m.group(1) not in _CLASSES:
        return None
    import importlib
    mod, name = _CLASSES[m.group(1)]
    return getattr(importlib.import_module(mod), name)


def _policy_kwargs(path: Path, desc: dict) -> dict:
    """policy_kwargs from the plain description SB3 wrote beside its pickle (A2C's RMSprop, ...)."""
    out: dict[str, Any] = {}
    for k, v in desc.items():
        if k in (":type:", ":serialized:"):
            continue
        if isinstance(v, str) and v.startswith("<class "):
            cls = _class(v)
            if cls is None:
                raise UnsafeModelError(f"{path}: data.policy_kwargs.{k} is {v[:80]}, not a class this loader "
                                       f"rebuilds ({', '.join(sorted(_CLASSES))}); refused (loading it would "
                                       f"unpickle the file's code)")
            out[k] = cls
        elif isinstance(v, str) and v.startswith("<"):
            raise UnsafeModelError(f"{path}: data.policy_kwargs.{k} is an object this loader does not rebuild; "
                                   f"refused (loading it would unpickle the file's code)")
        else:
            out[k] = v
    return out


def custom_objects(path: Path, data: dict, algo: str, observation_space, action_space,
                   algo_kwargs: dict | None = None) -> dict[str, Any]:
    """custom_objects for SB3's load() covering every serialized key of ``data`` (UnsafeModelError
    for a key this loader cannot rebuild, or spaces that are not what the config builds)."""
    algo_cls = algo_class(algo)
    out: dict[str, Any] = {}
    for key in serialized_keys(data):
        desc = data[key]
        if key in ("observation_space", "action_space"):
            space = observation_space if key == "observation_space" else action_space
            why = _space_matches(desc, space)
            if why is not None:
                raise UnsafeModelError(f"{path}: the model's {key} is {why}; the model does not fit its config")
            out[key] = space
        elif key == "policy_class":
            cls = algo_cls.policy_aliases[policy_name(algo)]
            if desc.get("__module__") != cls.__module__:
                raise UnsafeModelError(f"{path}: data.policy_class is from {str(desc.get('__module__'))[:80]}, not "
                                       f"{cls.__module__} ({algo}); refused")
            out[key] = cls
        elif key in SCHEDULES:
            m = _CONSTANT.fullmatch(str(desc.get("value_schedule", "")))
            if m is None:
                raise UnsafeModelError(f"{path}: data.{key} is not a constant schedule; only constants are rebuilt "
                                       f"without unpickling; refused")
            out[key] = float(m.group(1))
        elif key == "train_freq":
            default = inspect.signature(algo_cls.__init__).parameters["train_freq"].default
            tf = (algo_kwargs or {}).get("train_freq", default)
            out[key] = tuple(tf) if isinstance(tf, list) else tf
        elif key == "policy_kwargs":
            out[key] = _policy_kwargs(path, desc)
        elif key in REBUILT_BY_SB3:
            out[key] = None
        else:
            raise UnsafeModelError(f"{path}: data.{key} is a pickled object ({str(desc.get(':type:'))[:60]}) this "
                                   f"loader does not rebuild; refused (loading it would unpickle the file's code)")
    return out


def load(path: Path, algo: str, observation_space, action_space, algo_kwargs: dict | None = None, **kw):
    """``ALGO.load(path, custom_objects=...)`` with nothing unpickled (custom_objects above), then
    checked: the buffer classes SB3 rebuilt are those the file named."""
    data = read_data(path)
    objs = custom_objects(path, data, algo, observation_space, action_space, algo_kwargs)
    model = algo_class(algo).load(str(path), custom_objects=objs, **kw)
    for key in ("rollout_buffer_class", "replay_buffer_class"):
        desc = data.get(key)
        got = getattr(model, key, None)
        if isinstance(desc, dict) and got is not None and desc.get("__module__") != got.__module__:
            raise UnsafeModelError(f"{path}: data.{key} names a class from {str(desc.get('__module__'))[:80]}; "
                                   f"this loader rebuilds {got.__module__}.{got.__name__} only; refused")
    return model


def spaces_of(env_kw: dict, n_stack: int | None = None):
    """The observation and action spaces a model trained with these AtomEnv keyword arguments and
    frame stack has (AtomEnv's spaces; stacked as SB3's VecFrameStack stacks them)."""
    obs = make_observation_space(env_kw.get("observation", "basic"))
    act = make_action_space(env_kw.get("action_type", "discrete"))
    if n_stack:
        from stable_baselines3.common.vec_env.stacked_observations import StackedObservations
        obs = StackedObservations(1, int(n_stack), obs).stacked_observation_space
    return obs, act


def action_type_of(data: dict) -> str:
    """The action_type of a model without a config, from the plain description of its action space
    (a Box: continuous; a Discrete: discrete)."""
    desc = data.get("action_space")
    return "continuous" if isinstance(desc, dict) and "spaces.box.Box" in str(desc.get(":type:")) else "discrete"
