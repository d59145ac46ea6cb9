"""A run folder's checkpoints and its identity: models saved atomically with their normalisation
statistics (``<stem>.vecnormalize.npz``), the newest checkpoint that loads (``--resume``), and
``identity.json``, what the run's result depends on, checked before a run is continued."""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from atomgym import files, safefiles
from atomgym.agents import identity, normstats, safeload
from atomgym.agents.build import make_vec_env
from atomgym.agents.config import MAX_CONFIG_BYTES, as_dict
from atomgym.schema import ConfigError
from atomgym.sim.scenario import load_scenario
from atomgym.suites import scenarios_of


def vecnormalize_path(model_zip: Path) -> Path:
    """Where a model's normalisation statistics live: ``<stem>.vecnormalize.npz`` beside the .zip
    (agents/normstats.py: plain arrays, never a pickle)."""
    return normstats.stats_path(model_zip)


def save_atomically(model, path: Path) -> None:
    """``model.save()`` onto ``path`` atomically (safefiles.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    safefiles.replace(path, model.save)


def save_model(model, path: Path) -> None:
    """The model and, with VecNormalize, its statistics (saved first: a .zip means both are complete),
    both atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vn = model.get_vec_normalize_env()
    if vn is not None:
        safefiles.replace(vecnormalize_path(path), normstats.NormStats.of(vn).write)
    save_atomically(model, path)


def atomic_checkpoint_callback(save_freq: int, save_path: Path):
    """SB3's CheckpointCallback (model_<steps>_steps.zip every save_freq calls), saving atomically."""
    from stable_baselines3.common.callbacks import CheckpointCallback   # torch: imported by training only

    class AtomicCheckpoint(CheckpointCallback):
        def _on_step(self) -> bool:
            if self.n_calls % self.save_freq == 0:
                save_model(self.model, Path(self._checkpoint_path(extension="zip")))
            return True

    return AtomicCheckpoint(save_freq=save_freq, save_path=str(save_path), name_prefix="model")


def checkpoints(run: Path) -> list[Path]:
    """The run's checkpoints (model_<steps>_steps.zip), newest (most steps) first."""
    def steps(p: Path) -> int:
        try:
            return int(p.stem.split("_")[-2])
        except (IndexError, ValueError):
            return -1
    return sorted((run / "checkpoints").glob("model_*_steps.zip"), key=steps, reverse=True)


def load_newest_valid(algo, run: Path, cfg: dict) -> tuple[Any, Path | None]:
    """The model of the newest checkpoint that loads (with its env: normalisation statistics
    from the checkpoint's .vecnormalize.npz), and its path; (None, None) if none does. A checkpoint
    that does not load (a kill during its save left it truncated) is skipped, and the message says so.
    Nothing in a checkpoint is unpickled (agents/safeload.py: the spaces are the env's); a checkpoint
    holding a pickled object this loader does not rebuild, or statistics left in the old pickle
    format, is refused (ConfigError), not skipped."""
    vn = cfg.get("vec_normalize") not in (None, False)
    for ck in checkpoints(run):
        try:
            if not zipfile.is_zipfile(ck):
                raise ValueError("not a complete zip file")
            if vn and not vecnormalize_path(ck).is_file():
                if normstats.legacy_path(ck).is_file():
                    raise ConfigError(normstats.legacy_message(normstats.legacy_path(ck)))
                raise ValueError(f"no normalisation statistics {vecnormalize_path(ck).name}")
            venv = make_vec_env(cfg, vecnormalize_path(ck) if vn else None)
            model = safeload.load(ck, cfg["algo"], venv.observation_space, venv.action_space, cfg.get(cfg["algo"]),
                                  env=venv, tensorboard_log=str(run / "tb"), device="cpu")
        except (ConfigError, safeload.UnsafeModelError) as e:
            if isinstance(e, safeload.UnsafeModelError) and "not a stable-baselines3 model" in str(e):
                why = str(e)
            else:
                raise ConfigError(str(e)) from None
            print(f"checkpoint {ck} cannot be loaded ({why}; a kill during its save leaves it truncated): "
                  f"falling back to the one before", file=sys.stderr)
            continue
        except Exception as e:   # noqa: BLE001 - whatever a damaged file makes SB3/torch raise
            why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"checkpoint {ck} cannot be loaded ({why}; a kill during its save leaves it truncated): "
                  f"falling back to the one before", file=sys.stderr)
            continue
        return model, ck
    return None, None


IDENTITY_FILE = "identity.json"     # in a run folder: what the run's result depends on


IDENTITY_FORMAT = "atomgym-train-identity"


def run_identity(cfg: dict) -> dict:
    """What a training run's result depends on (agents/identity.py): its config (every key but
    total_timesteps, which --resume --total-timesteps may raise), the content of its scenarios, the
    simulator's sources and the cost's definition."""
    conf = json.loads(json.dumps({k: v for k, v in as_dict(cfg).items() if k != "total_timesteps"}, default=str))
    scs = scenarios_of(cfg["scenario"])
    return {"config": conf, "scenario": {sc: identity.scenario_digest(load_scenario(sc)) for sc in scs},
            "simulator": identity.simulator_digest(), "cost": identity.cost_digest()}


def check_resume_identity(run: Path, cfg: dict) -> None:
    """--resume continues a run only as it started: the run folder's config.yml (but
    total_timesteps), its scenarios' content, the simulator and the cost unchanged since; else
    ConfigError naming what changed (a checkpoint of another config would not load, and training
    would silently restart from step 0 in this folder)."""
    f = run / IDENTITY_FILE
    fresh = f"start a new run instead: --config {run / 'config.yml'}"
    if not f.exists():
        raise ConfigError(f"{run}: no {IDENTITY_FILE} (a run started by an older agents.train): what it was "
                          f"trained with cannot be checked, so it is not resumed; {fresh}")
    try:
        old = files.read_json(f, MAX_CONFIG_BYTES, "the run's identity")
        if not isinstance(old, dict) or old.get("format") != IDENTITY_FORMAT:
            raise ValueError("format")
    except ValueError:                               # files.FileError is a ValueError
        raise ConfigError(f"{f}: not readable as this run's identity; {fresh}") from None
    new = run_identity(cfg)
    for k in identity.changed(old, new):
        if k == "config":
            o = old.get("config") if isinstance(old.get("config"), dict) else {}
            keys = sorted(set(o) | set(new["config"]), key=str)
            diff = [str(x) for x in keys if identity.changed({"v": o.get(x)}, {"v": new["config"].get(x)})]
            raise ConfigError(f"{run / 'config.yml'}: changed since the run started (key(s) {', '.join(diff)}); "
                              f"--resume continues an unchanged run only; {fresh}")
        what = {"scenario": "the content of its scenario(s) (YAML, trace or snapshot files)"}.get(k, identity.WHAT.get(k, k))
        raise ConfigError(f"{run}: {what} changed since the run started; --resume would continue it on another "
                          f"experiment; {fresh}")


def write_run_identity(run: Path, cfg: dict) -> None:
    safefiles.replace_text(run / IDENTITY_FILE, json.dumps({"format": IDENTITY_FORMAT, **run_identity(cfg)},
                                                           indent=1) + "\n")


def run_is_complete(run: Path) -> bool:
    """model.zip is written last, atomically: a loadable zip there means training finished."""
    return (run / "model.zip").is_file() and zipfile.is_zipfile(run / "model.zip")


def model_steps(model_zip: Path) -> int:
    """The agent steps a saved model was trained for (its ``data``'s num_timesteps, read as JSON)."""
    n = safeload.read_data(model_zip).get("num_timesteps")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise safeload.UnsafeModelError(f"{model_zip}: no agent-step count (num_timesteps) in its data")
    return n


def keep_as_checkpoint(run: Path) -> Path:
    """Before a finished run trains further: its model.zip (and statistics) copied, byte for byte and
    atomically, to ``checkpoints/model_<steps>_steps.zip``, the checkpoint the extension starts from.
    model.zip itself stays until the longer training replaces it (atomically): an interruption on the
    way loses nothing, and ``--resume`` continues from the newest checkpoint."""
    src = run / "model.zip"
    dst = run / "checkpoints" / f"model_{model_steps(src)}_steps.zip"
    dst.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(vecnormalize_path(src), vecnormalize_path(dst))] if vecnormalize_path(src).is_file() else []
    for a, b in [*pairs, (src, dst)]:           # statistics first: a .zip means both are complete
        data = a.read_bytes()
        if not (b.is_file() and b.read_bytes() == data):
            safefiles.replace(b, lambda f, d=data: f.write(d))
    return dst
