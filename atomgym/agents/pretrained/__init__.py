"""Shipped trained policies: ``NAME.zip`` (the model), ``NAME.yml`` (its resolved training
config) and, when trained with ``vec_normalize``, ``NAME.vecnormalize.npz`` (its frozen
normalisation statistics, plain arrays); ``SHA256SUMS`` records their digests (``verify``).
``python -m agents.pretrained export RUN_DIR NAME`` copies a finished run of agents.train here; ``python -m agents.evaluate --policies NAME.zip,...`` (installed:
``atomgym evaluate --policies NAME.zip,...``) plays one (README.md in this folder)."""
from __future__ import annotations

import hashlib
from pathlib import Path

from atomgym import paths
from atomgym.agents import command
from atomgym.agents.normstats import stats_path

MANIFEST = "SHA256SUMS"    # ``<sha256>  <file name>`` a line (sha256sum's format): the shipped files' digests


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """File name -> digest of ``folder/SHA256SUMS`` ({} if there is none)."""
    p = folder / MANIFEST
    if not p.is_file():
        return {}
    out: dict[str, str] = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def manifest_text(digests: dict[str, str]) -> str:
    return "".join(f"{d}  {n}\n" for n, d in sorted(digests.items()))


def shipped_files(model: Path) -> list[Path]:
    """The files of a shipped policy NAME: NAME.zip, NAME.yml and, if present, NAME.vecnormalize.npz."""
    out = [model, model.with_suffix(".yml")]
    return out + ([stats_path(model)] if stats_path(model).exists() else [])


def verify(model: Path, config: Path | None = None) -> None:
    """For a model in the shipped folder (atomgym/agents/pretrained): every file of it is listed in
    SHA256SUMS with the digest it has now; ValueError (one line) otherwise. Models elsewhere are not
    checked (they are the user's, loaded without unpickling anything)."""
    try:
        if model.resolve().parent != paths.PRETRAINED_DIR.resolve():   # read now: tests move it
            return
    except OSError:
        return
    recorded = read_manifest(paths.PRETRAINED_DIR)
    files = shipped_files(model.resolve())
    if config is not None and config.resolve() not in files:
        files.append(config.resolve())
    for f in files:
        want = recorded.get(f.name)
        if want is None:
            raise ValueError(f"{f}: a file of the shipped policies that {paths.PRETRAINED_DIR / MANIFEST} does not "
                             f"record; refused (export policies with {command('pretrained')} export)")
        if sha256(f) != want:
            raise ValueError(f"{f}: its SHA-256 differs from the one recorded in {paths.PRETRAINED_DIR / MANIFEST}; "
                             f"the shipped file was changed: refused (reinstall atomgym)")
