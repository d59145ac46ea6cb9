"""Benchmark suites: named lists of shipped scenarios (``configs/suites/NAME.txt``).

A suite file holds one scenario name (or a scenario file path, relative to the suite file) per
line; ``#`` starts a comment, blank lines are skipped. ``train`` and ``test`` are the benchmark's
split (docs/scenarios.md "Suites"). ``suite:NAME`` is how the CLIs and training configs name one.
A line ``fleet:NAME[:SEED]`` stands for a generated fleet (atomgym.fleets): it expands to the
fleet's scenario files, materialised in the fleet cache (``configs/suites/fleet-test.txt`` holds
``fleet:test:1``), so ``suite:fleet-test`` works wherever a suite does.
"""
from __future__ import annotations

from pathlib import Path

from .paths import CONFIG_DIR, DATA_ROOT
from .schema import ConfigError, short
from .sim.scenario import ScenarioError, list_scenarios

SUITE_DIR = CONFIG_DIR / "suites"
PREFIX = "suite:"


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.txt")) if SUITE_DIR.is_dir() else []


def suite_path(name: str | Path) -> Path:
    """``train`` -> configs/suites/train.txt; a path with a directory part or a .txt suffix is used as is."""
    s = str(name)
    if s.startswith(PREFIX):
        s = s[len(PREFIX):]
    p = Path(s)
    if p.suffix == ".txt" or len(p.parts) > 1:
        return p
    return SUITE_DIR / f"{s}.txt"


def load_suite(name: str | Path) -> list[str]:
    """The scenario names (or resolved paths) a suite lists, in file order, each checked to exist.
    A missing file, an empty suite, a duplicate or an unknown scenario raises ScenarioError naming
    the file and line."""
    p = suite_path(name)
    if not p.is_file():
        valid = ", ".join(list_suites()) or "none shipped"
        raise ScenarioError(f"{p}: no such suite file (shipped suites: {valid})")
    from .files import FileError, read_text
    try:
        text = read_text(p, 1 << 20, "a suite file (one scenario per line)")
    except FileError as e:
        raise ScenarioError(str(e)) from None
    known = set(list_scenarios())
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if item.startswith("fleet:"):
            from .fleets import FleetError, materialise, parse_ref
            try:
                fl, seed = parse_ref(item)
                paths = [str(x) for x in materialise(fl, seed)]
            except FleetError as e:
                raise ScenarioError(f"{p}:{n}: {e}") from None
            except OSError as e:
                raise ScenarioError(f"{p}:{n}: {item}: cannot write the fleet cache: {e.strerror or e}") from None
            dup = [x for x in paths if x in out]
            if dup:
                raise ScenarioError(f"{p}:{n}: {item!r} is listed twice")
            out.extend(paths)
            continue
        if item in known:
            entry = item
        else:
            f = (p.parent / item)
            if not (item.endswith((".yaml", ".yml")) and f.is_file()):
                raise ScenarioError(f"{p}:{n}: {item!r} is neither a shipped scenario nor a scenario file "
                                    f"next to the suite (shipped: {', '.join(sorted(known))})")
            entry = str(f)
        if entry in out:
            raise ScenarioError(f"{p}:{n}: {item!r} is listed twice")
        out.append(entry)
    if not out:
        raise ScenarioError(f"{p}: the suite lists no scenario (one name per line)")
    return out


def expand(names: str) -> list[str]:
    """A comma-separated list of scenario names or paths where ``suite:NAME`` items expand to the suite."""
    out: list[str] = []
    for item in (x.strip() for x in names.split(",")):
        if not item:
            continue
        out.extend(load_suite(item) if item.startswith(PREFIX) else [item])
    return out


def scenarios_of(cfg_scenario: object, path: Path | None = None, key: str = "scenario") -> list[str]:
    """A config's scenario value as a list of names/paths: one name, a list, or ``suite:NAME``
    (configs/suites/NAME.txt: one scenario a line, ``#`` comments). ConfigError names ``path`` and ``key``."""
    where = f"{path}: {key}" if path is not None else key
    if isinstance(cfg_scenario, str) and cfg_scenario.startswith(PREFIX):
        return read_suite(cfg_scenario[len(PREFIX):], where)
    if isinstance(cfg_scenario, str):
        return [cfg_scenario]
    if isinstance(cfg_scenario, list) and cfg_scenario and all(isinstance(x, str) and x for x in cfg_scenario):
        out: list[str] = []
        for x in cfg_scenario:
            for y in (read_suite(x[len(PREFIX):], where) if x.startswith(PREFIX) else [x]):
                if y not in out:
                    out.append(y)
        return out
    raise ConfigError(f"{where}: expected a scenario name, a YAML path, a non-empty list of them or "
                      f"suite:NAME, got {short(cfg_scenario)}")


def read_suite(name: str, where: str = "suite") -> list[str]:
    """configs/suites/NAME.txt through load_suite, errors as ConfigError starting with ``where``."""
    p = SUITE_DIR / f"{name}.txt"
    shown = p.relative_to(DATA_ROOT) if p.is_relative_to(DATA_ROOT) else p   # the repo's path, as the docs name it
    if not name or "/" in name or not p.is_file():
        raise ConfigError(f"{where}: suite:{name}: no file {shown}; "
                          f"suites: {', '.join(list_suites()) or 'none shipped'}")
    try:
        return load_suite(name)
    except ScenarioError as e:
        raise ConfigError(f"{where}: suite:{name}: {str(e).replace(str(p), str(shown))}") from None
