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
