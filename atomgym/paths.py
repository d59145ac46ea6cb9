"""Where the shipped data lives, in a checkout and in an installed wheel.

In the repository the scenarios, machine snapshots, traces and training configs are in
``configs/`` beside the package; the wheel installs the same tree as ``atomgym/configs/``
(pyproject.toml maps it). Everything that reads them asks this module, never ``__file__``.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_INSTALLED = PACKAGE_DIR / "configs"
# configs/ of the wheel if present, else the checkout's (an editable install maps nothing here)
CONFIG_DIR = _INSTALLED if _INSTALLED.is_dir() else PACKAGE_DIR.parent / "configs"
# What "configs/..." paths in scenarios and training configs are relative to: the repo root in a
# checkout, the package directory when installed.
DATA_ROOT = CONFIG_DIR.parent
SCENARIO_DIR = CONFIG_DIR / "scenarios"
TRAIN_CONFIG_DIR = CONFIG_DIR / "train"
# The checkout's root, or None when installed: training, evaluation and reports put their output
# under its runs/ by default (installed: ./runs of the working directory).
CHECKOUT = None if CONFIG_DIR == _INSTALLED else PACKAGE_DIR.parent
RUNS_DIR = CHECKOUT / "runs" if CHECKOUT is not None else Path("runs")
# Shipped trained policies (NAME.zip, NAME.yml, NAME.vecnormalize.npz; digests in SHA256SUMS): package data of atomgym.agents.pretrained
PRETRAINED_DIR = PACKAGE_DIR / "agents" / "pretrained"


def checkout_commit() -> str:
    """The checkout's commit (short hash, "(with local changes)" if tracked files differ), for the
    provenance line of a report or benchmark; "unknown (installed package)" outside a checkout."""
    import subprocess
    if CHECKOUT is None:
        return "unknown (installed package)"
    try:
        c = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        d = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
        return (c.stdout.strip() or "unknown") + (" (with local changes)" if d.stdout.strip() else "")
    except OSError:
        return "unknown"
