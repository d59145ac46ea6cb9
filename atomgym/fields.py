"""The typed field spec (`Field`) and what is derived from one: the argument parser with one-line
errors, the checks of a config's values, the docs' tables.

The bottom floor of every input: atomgym/schema.py (the commands' options, the env's and the training
config's keys) and atomgym/scenario_schema.py (a scenario's keys) describe their inputs with it. It
imports nothing of atomgym, so that the simulator's loader can stand on it without pulling in the
commands (and a command's option edit never changes the compile cache's key of the simulator).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


class UsageError(ValueError):
    """A command line the parser rejects, or bad input to a command: printed as one line after the
    command's name, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError ``MESSAGE (see `PROG --help`)``) instead of the usage
    and a message on two lines and a SystemExit: every command of the house parses with it."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class ConfigError(ValueError):
    """A config's or an option's bad value: one line naming the file (or option) and the key, and
    what would be valid. The commands print it after their name and exit 2."""


def one_line(msg: str) -> str:
    """A message as one line: control characters (a file name may hold a newline) escaped."""
    return msg if msg.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


def short(v: object) -> str:
    """A value as an error shows it: its repr, at most 80 characters."""
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


# ---- typed field specs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One input a user writes (a command's option; a config key): its name, type, unit, valid
    range or choices, default and help. The parser, the help text, the one-line error and the docs
    table row are all derived from it (add_arguments, convert, markdown_table)."""

    name: str                                      # the option's dest / the config key (seed_base)
    type: Any = str                                # int | float | str | bool (a switch) | Path; a config's
    #                                                list[str], dict (a section); None: any value
    help: str = ""
    default: Any = None
    unit: str = ""                                 # "s": a number of seconds
    range: tuple[float | None, float | None] | None = None   # inclusive, but low_open excludes the low end
    low_open: bool = False
    required: bool = False
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None      # a custom text parser (raises ValueError with the reason)
    valid: str | None = None                       # what is valid, as the docs and errors say it (derived if None)
    choices: tuple[str, ...] | None = None
    positional: bool = False                       # a command's positional argument (FILE), not --NAME
    nargs: str | None = None                       # "+": one or more; "?": optional (a positional)
    short: str | None = None                       # a one-letter flag too ("-o")
    repeat: bool = False                           # the option may be given again: a list of its values
    hidden: bool = False                           # not in --help nor the docs (tests' hooks)
    keys: tuple[Field, ...] | None = None          # a config's nested section: a mapping of these keys
    #                                                (type dict), or a list of such mappings (type list)

    @property
    def flag(self) -> str:
        return self.name if self.positional else "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """What is valid, in words: ``an integer in [1, 100000]``, ``a number of seconds in (0, 86400]``."""
        if self.valid is not None:
            return self.valid
        if self.type is None:
            return "see its meaning"
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        what = {int: "an integer", float: f"a number{' of seconds' if self.unit == 's' else ''}",
                bool: "a switch", Path: "a path"}.get(self.type, "a string")
        if self.range is None:
            return what
        lo, hi = self.range
        if hi is None:
            return f"{what} {'>' if self.low_open else '>='} {_num(lo)}"
        return f"{what} in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}]"

    def convert(self, text: str) -> Any:
        """The value of the option's text; ValueError naming the text and what is valid (argparse
        shows it as ``argument --NAME: ...``)."""
        if self.parse is not None:
            return self.parse(text)
        if self.choices is not None:
            if text not in self.choices:
                raise ValueError(f"{text!r}: expected {self.describe()}")
            return text
        if self.type is int:
            try:
                v: Any = int(text)
            except ValueError:
                raise ValueError(f"{text!r} is not an integer") from None
            if not self._in_range(v):
                raise ValueError(f"{v}: expected {self.describe()}")
            return v
        if self.type is float:
            try:
                v = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not {self.describe().split(' in ')[0]}") from None
            if not (math.isfinite(v) and self._in_range(v)):
                raise ValueError(f"{text!r}: expected {self.describe()}")
            return v
        return self.type(text)

    def check(self, v: Any, where: str) -> Any:
        """A config value (YAML: already typed) against the spec; ConfigError ``WHERE: NAME: ...``
        (one line, what is valid). A spec without type check (type None) takes any value."""
        if self.choices is not None:
            if not isinstance(v, str) or v not in self.choices:
                raise ConfigError(f"{where}: {self.name}: {short(v)}; valid: {', '.join(self.choices)}")
            return v
        if self.type is int:
            if isinstance(v, bool) or not isinstance(v, int) or (self.range is not None and self.range[0] is not None
                                                                 and v < self.range[0]):
                raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
            if not self._in_range(v):       # above the top: the bound is the news, if the words do not say it
                if _num(self.range[1]) in self.describe():
                    raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
                raise ConfigError(f"{where}: {self.name}: {v} is out of range; valid range "
                                  f"{_num(self.range[0])}..{_num(self.range[1])}")
            return v
        if self.type is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not self._in_range(v):
                raise ConfigError(f"{where}: {self.name}: expected {self.describe()}, got {short(v)}")
            return v
        return v

    def _in_range(self, v: float) -> bool:
        if self.range is None:
            return True
        lo, hi = self.range
        return (lo is None or (v > lo if self.low_open else v >= lo)) and (hi is None or v <= hi)


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def add_arguments(parser: argparse.ArgumentParser, fields: Sequence[Field]) -> None:
    """One argparse option per field: its type check is Field.convert, its help the field's help."""
    for f in fields:
        names = (f.short, f.flag) if f.short else (f.flag,)
        helptext = argparse.SUPPRESS if f.hidden else (f.help or None)
        if f.type is bool:
            parser.add_argument(*names, action="store_true", help=helptext)
            continue

        def conv(text: str, f: Field = f) -> Any:
            try:
                return f.convert(text)
            except ValueError as e:           # argparse prints "argument --NAME: <reason>"
                raise argparse.ArgumentTypeError(str(e)) from None
        conv.__name__ = f.name               # argparse names a failing type by it
        if f.positional:
            parser.add_argument(f.flag, type=conv, nargs=f.nargs, metavar=f.metavar, help=helptext)
            continue
        parser.add_argument(*names, type=conv, default=f.default, required=f.required, metavar=f.metavar,
                            action="append" if f.repeat else "store", help=helptext)


def check_values(values: Any, fields: Sequence[Field]) -> None:
    """The fields of ``values`` (an object with one attribute per field) checked and converted as
    their options' text would be (a caller's Options too); ConfigError ``argument --NAME: ...``."""
    for f in fields:
        v = getattr(values, f.name)
        if v is None or f.type in (bool, str, Path) or f.parse is not None:
            continue
        try:
            setattr(values, f.name, f.convert(str(v)))
        except ValueError as e:
            raise ConfigError(f"argument {f.flag}: {e}") from None


def markdown_table(fields: Sequence[Field]) -> str:
    """The docs' table of the fields: option, valid values, default, meaning."""
    rows = ["| option | valid | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        if f.hidden:
            continue
        d = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        default = "required" if f.required else ("off" if f.type is bool else "" if d is None else f"`{d}`")
        flag = f"`{f.short}`, `{f.flag}`" if f.short else f"`{f.flag}`"
        valid = f.describe() + (" (repeatable)" if f.repeat else "")
        rows.append(f"| {flag} | {valid} | {default} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def config_table(fields: Sequence[Field]) -> str:
    """The docs' table of a config's keys: key, valid values, default, meaning."""
    rows = ["| key | valid | default | meaning |", "|---|---|---|---|"]
    for f in fields:
        default = "required" if f.required else "" if f.default is None else f"`{f.default}`"
        rows.append(f"| `{f.name}` | {f.describe()} | {default} | {f.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
