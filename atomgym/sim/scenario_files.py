"""Where a scenario's files are found, and the error a scenario raises.

Below both the scenario schema (scenario.py) and the machine builder (machines.py), which each use
them, so that neither imports the other's module to find a snapshot or to refuse one.
"""
from __future__ import annotations

from pathlib import Path

from ..paths import DATA_ROOT as REPO_ROOT


class ScenarioError(ValueError):
    """A scenario file, key or value that is not valid.

    The message is one line: ``FILE[:LINE]: KEY.PATH: what is wrong; what is valid``.
    """


def search_dirs(s: object) -> list[Path]:
    """Where a scenario's relative paths are looked up: its file's folder (``s`` a Scenario, by its
    ``source``, or a file or folder path), then the repository root (or the wheel's data)."""
    src = getattr(s, "source", s)
    src = "" if src is None else str(src)
    dirs = []
    if src:
        p = Path(src)
        dirs.append(p.parent if p.suffix in (".yaml", ".yml") or p.is_file() else p)
    dirs.append(REPO_ROOT)
    return dirs


def resolve_path(s: object, rel: str | Path) -> Path:
    """A path from a scenario (snapshot, trace): absolute as is; otherwise relative to the
    scenario file's directory, then to the repository root. ``s`` may also be a base directory."""
    p = Path(rel).expanduser()
    if p.is_absolute():
        return p
    cands = [d / p for d in search_dirs(s)]
    for c in cands:
        if c.exists():
            return c.resolve()
    return cands[0]
