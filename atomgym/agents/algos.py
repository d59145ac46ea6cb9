"""The algorithms agents.train trains and agents.evaluate plays: their config keys, their SB3
classes and policies, and which algorithm a saved model .zip holds."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from atomgym.schema import ALGOS

DISCRETE_ONLY = ("dqn",)          # SB3's DQN takes a Discrete action space only
CONTINUOUS_ONLY = ("sac", "td3")  # SAC/TD3 take a Box action space only


def algo_class(name: str):
    """The SB3 / sb3-contrib class of an algo key."""
    # imported here: stable-baselines3 pulls in torch (seconds), which only training and playing need
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
    if name == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO
        return RecurrentPPO
    return {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC, "td3": TD3}[name]


def policy_name(algo: str) -> str:
    """The SB3 policy of an algorithm: an LSTM for recurrent_ppo, an MLP otherwise."""
    return "MlpLstmPolicy" if algo == "recurrent_ppo" else "MlpPolicy"


def algo_of_model(path: Path) -> str:
    """The algo key of a saved model .zip, read from its policy class's module (ValueError if not a model)."""
    try:
        data = json.loads(zipfile.ZipFile(path).read("data"))
        module = data["policy_class"]["__module__"]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a stable-baselines3 model .zip ({e})") from None
    if "sb3_contrib" in module and "recurrent" in module:
        return "recurrent_ppo"
    for name in ("dqn", "sac", "td3"):
        if f".{name}." in module:
            return name
    if module == "stable_baselines3.common.policies":     # PPO and A2C share ActorCriticPolicy
        return "ppo" if "clip_range" in data else "a2c"
    raise ValueError(f"{path}: policy class from {module} is not one of {', '.join(ALGOS)}")
