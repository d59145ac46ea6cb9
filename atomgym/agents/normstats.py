"""A model's observation-normalisation statistics (SB3 VecNormalize) as plain arrays.

``<stem>.vecnormalize.npz`` beside ``<stem>.zip``: a NumPy ``.npz`` of plain numbers read with
``allow_pickle=False`` (nothing in it can run code), written by agents.train beside the model and
every checkpoint, read by agents.evaluate / agents.replay (frozen) and by ``train --resume``
(training continues them). The older ``<stem>.vecnormalize.pkl`` (a pickle of the VecNormalize
object) is never unpickled: ``python -m agents.pretrained convert-stats FILE.pkl`` turns one the
user trusts into the .npz, reading it with an unpickler that builds only NumPy arrays and plain
data (every other global in it is refused, so a payload cannot run).
"""
from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np

from atomgym import files

from atomgym.agents import command

FORMAT = "atomgym-vecnormalize"
VERSION = 1
MAX_BYTES = 16 << 20          # a few kB for the env's observations; reads stop here
SCALARS = ("clip_obs", "clip_reward", "epsilon", "gamma", "obs_count", "ret_count")
FLAGS = ("norm_obs", "norm_reward")


class StatsError(ValueError):
    """A statistics file that is not readable or not valid: one line naming the file."""


def stats_path(model_zip: Path) -> Path:
    """Where a model's statistics live: ``<stem>.vecnormalize.npz`` beside the .zip."""
    return model_zip.with_name(f"{model_zip.stem}.vecnormalize.npz")


def legacy_path(model_zip: Path) -> Path:
    """The old pickle format's file beside a model (never unpickled)."""
    return model_zip.with_name(f"{model_zip.stem}.vecnormalize.pkl")


def legacy_message(pkl: Path) -> str:
    return (f"{pkl}: normalisation statistics in the old pickle format are not read (a pickle can run code); "
            f"if you trust the file, convert it: {command('pretrained')} convert-stats {pkl}")


class NormStats:
    """The frozen observation normalisation of a trained model: what SB3's VecNormalize.normalize_obs
    does with its obs_rms (clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs), float32),
    and the statistics train --resume puts back into a VecNormalize."""

    def __init__(self, obs_mean: np.ndarray, obs_var: np.ndarray, obs_count: float, ret_mean: float,
                 ret_var: float, ret_count: float, clip_obs: float, clip_reward: float, epsilon: float,
                 gamma: float, norm_obs: bool, norm_reward: bool, observation_space=None) -> None:
        self.obs_mean, self.obs_var = np.asarray(obs_mean, np.float64), np.asarray(obs_var, np.float64)
        self.obs_count, self.ret_mean, self.ret_var, self.ret_count = obs_count, ret_mean, ret_var, ret_count
        self.clip_obs, self.clip_reward, self.epsilon, self.gamma = clip_obs, clip_reward, epsilon, gamma
        self.norm_obs, self.norm_reward = bool(norm_obs), bool(norm_reward)
        self.observation_space = observation_space

    # ---- as SB3's VecNormalize (frozen) ----
    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if not self.norm_obs:
            return np.array(obs, copy=True)
        return np.clip((obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon),
                       -self.clip_obs, self.clip_obs).astype(np.float32)

    @classmethod
    def of(cls, vn) -> "NormStats":
        """The statistics of a live VecNormalize (training's)."""
        return cls(vn.obs_rms.mean, vn.obs_rms.var, float(vn.obs_rms.count), float(np.asarray(vn.ret_rms.mean)),
                   float(np.asarray(vn.ret_rms.var)), float(vn.ret_rms.count), float(vn.clip_obs),
                   float(vn.clip_reward), float(vn.epsilon), float(vn.gamma), vn.norm_obs, vn.norm_reward,
                   vn.observation_space)

    def vec_normalize(self, venv):
        """A VecNormalize around ``venv`` holding these statistics, training (train --resume): what
        VecNormalize.load + set_venv gave (the per-env returns start at zero either way)."""
        from stable_baselines3.common.vec_env import VecNormalize
        vn = VecNormalize(venv, training=True, norm_obs=self.norm_obs, norm_reward=self.norm_reward,
                          clip_obs=self.clip_obs, clip_reward=self.clip_reward, gamma=self.gamma, epsilon=self.epsilon)
        if vn.obs_rms.mean.shape != self.obs_mean.shape:
            raise StatsError(f"normalisation statistics of shape {self.obs_mean.shape} do not fit the env's "
                             f"observations {vn.obs_rms.mean.shape}")
        vn.obs_rms.mean, vn.obs_rms.var, vn.obs_rms.count = self.obs_mean.copy(), self.obs_var.copy(), self.obs_count
        vn.ret_rms.mean, vn.ret_rms.var, vn.ret_rms.count = (np.float64(self.ret_mean), np.float64(self.ret_var),
                                                             self.ret_count)
        return vn

    # ---- the file ----
    def arrays(self) -> dict[str, np.ndarray]:
        return {"format": np.array(FORMAT), "version": np.array(VERSION), "obs_mean": self.obs_mean,
                "obs_var": self.obs_var, "ret_mean": np.array(self.ret_mean), "ret_var": np.array(self.ret_var),
                **{k: np.array(float(getattr(self, k))) for k in SCALARS},
                **{k: np.array(bool(getattr(self, k))) for k in FLAGS}}

    def write(self, fh) -> None:
        """Into an open binary file (agents.train writes it atomically)."""
        np.savez(fh, **self.arrays())

    @classmethod
    def read(cls, path: Path, observation_space=None) -> "NormStats":
        """A statistics file, checked: shapes (against ``observation_space`` when given), finite
        numbers, variances >= 0. StatsError (one line) otherwise; a legacy .pkl is refused."""
        if path.suffix == ".pkl":
            raise StatsError(legacy_message(path))
        raw = _read(path, "a statistics file of agents.train (.npz)")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception:            # noqa: BLE001 - whatever a damaged or foreign file makes NumPy raise
            raise StatsError(f"{path}: not a statistics file of agents.train (a .npz of plain arrays)") from None
        return cls.from_arrays(d, str(path), observation_space)

    @classmethod
    def from_arrays(cls, d: dict, where: str, observation_space=None) -> "NormStats":
        def bad(key: str, what: str) -> StatsError:
            return StatsError(f"{where}: {key}: {what}; not a valid statistics file of agents.train")
        if str(d.get("format", "")) != FORMAT or d.get("version") is None or int(d["version"]) != VERSION:
            raise bad("format", f"expected {FORMAT} version {VERSION}")
        need = ("obs_mean", "obs_var", "ret_mean", "ret_var", *SCALARS, *FLAGS)
        for k in need:
            if k not in d:
                raise bad(k, "missing")
            a = d[k]
            if k in FLAGS:
                if a.shape != () or a.dtype != np.bool_:
                    raise bad(k, "expected true or false")
            elif a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                raise bad(k, "expected finite numbers")
            elif k not in ("obs_mean", "obs_var") and a.shape != ():
                raise bad(k, "expected one number")
        mean, var = d["obs_mean"].astype(np.float64), d["obs_var"].astype(np.float64)
        if mean.ndim != 1 or mean.shape != var.shape or mean.size == 0:
            raise bad("obs_var", f"shape {var.shape} does not match obs_mean {mean.shape}")
        if observation_space is not None and mean.shape != tuple(observation_space.shape):
            raise bad("obs_mean", f"shape {mean.shape}; the model's observations are {tuple(observation_space.shape)}")
        if (var < 0).any() or float(d["ret_var"]) < 0:
            raise bad("obs_var", "a negative variance")
        s = {k: float(d[k]) for k in SCALARS}
        if not (s["epsilon"] > 0 and s["clip_obs"] > 0 and s["clip_reward"] > 0 and 0 <= s["gamma"] <= 1):
            raise bad("epsilon", "epsilon, clip_obs, clip_reward must be > 0 and gamma in [0, 1]")
        return cls(mean, var, s["obs_count"], float(d["ret_mean"]), float(d["ret_var"]), s["ret_count"],
                   s["clip_obs"], s["clip_reward"], s["epsilon"], s["gamma"], bool(d["norm_obs"]),
                   bool(d["norm_reward"]), observation_space)


# ---- the legacy pickle, converted without running it -----------------------------------------------
class _Obj:
    """Stands for any object of the pickle (VecNormalize, RunningMeanStd, a gymnasium space): its
    state is only stored, no method of the real class runs."""

    def __init__(self, *args, **kwargs) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(isinstance(x, (dict, type(None))) for x in state):
            state = {**(state[0] or {}), **(state[1] or {})}       # (dict, slots)
        if isinstance(state, dict):
            self.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})


def _nothing(*args, **kwargs) -> _Obj:
    return _Obj()


# The globals a VecNormalize pickle names: NumPy's array and scalar rebuilders (what numpy itself
# registers for pickling; they build data, they call nothing), stand-ins for SB3 and gymnasium
# objects, and an empty stand-in for a random generator's state. Anything else (os.system, builtins.eval,
# subprocess, ...) is refused.
_STAND_INS = {
    ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"), ("stable_baselines3.common.running_mean_std",
                                                                        "RunningMeanStd"),
    ("gymnasium.spaces.box", "Box"), ("gymnasium.spaces.discrete", "Discrete"), ("gymnasium.spaces.dict", "Dict"),
    ("collections", "OrderedDict"), ("copyreg", "_reconstructor"), ("builtins", "object"),
}
_NOTHING = {("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
            ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pcg64", "PCG64"),
            ("numpy.random._generator", "Generator"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
            ("numpy.random.bit_generator", "SeedSequence")}
_NUMPY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
          ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY:
            import importlib
            try:                             # NumPy 2 names numpy.core numpy._core
                mod = importlib.import_module(module.replace("numpy.core.", "numpy._core."))
            except ImportError:
                mod = importlib.import_module(module)
            return getattr(mod, name)
        if (module, name) in _STAND_INS:
            return _Obj
        if (module, name) in _NOTHING:
            return _nothing
        raise pickle.UnpicklingError(f"names {module}.{name}, which a statistics file never holds")


def _read(path: Path, what: str) -> bytes:
    """A regular file of at most MAX_BYTES (atomgym.files.read_bytes), or StatsError (one line)."""
    try:
        return files.read_bytes(path, MAX_BYTES, what)
    except files.FileError as e:
        raise StatsError(str(e)) from None


def from_legacy_pickle(path: Path) -> NormStats:
    """The statistics of an old ``.vecnormalize.pkl`` read with _Unpickler (no code of the file
    runs: a global other than NumPy's rebuilders and the stand-ins is refused). StatsError otherwise."""
    raw = _read(path, "a VecNormalize pickle")
    try:
        vn = _Unpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as e:
        raise StatsError(f"{path}: refused: {e}") from None
    except Exception as e:           # noqa: BLE001 - a damaged pickle
        raise StatsError(f"{path}: not a VecNormalize pickle ({type(e).__name__})") from None
    try:
        obs, ret = vn.obs_rms, vn.ret_rms
        d = {"format": np.array(FORMAT), "version": np.array(VERSION),
             "obs_mean": np.asarray(obs.mean, np.float64), "obs_var": np.asarray(obs.var, np.float64),
             "obs_count": np.array(float(obs.count)), "ret_mean": np.array(float(np.asarray(ret.mean))),
             "ret_var": np.array(float(np.asarray(ret.var))), "ret_count": np.array(float(ret.count)),
             "clip_obs": np.array(float(vn.clip_obs)), "clip_reward": np.array(float(vn.clip_reward)),
             "epsilon": np.array(float(vn.epsilon)), "gamma": np.array(float(vn.gamma)),
             "norm_obs": np.array(bool(vn.norm_obs)), "norm_reward": np.array(bool(vn.norm_reward))}
    except (AttributeError, TypeError, ValueError):
        raise StatsError(f"{path}: not a VecNormalize pickle (no obs_rms / ret_rms statistics)") from None
    if not all(math.isfinite(float(np.sum(v))) for k, v in d.items() if k not in ("format",)):
        raise StatsError(f"{path}: holds non-finite statistics")
    return NormStats.from_arrays(d, str(path))
