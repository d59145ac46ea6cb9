"""What every agents command shares on its command line: the usage error, the parser whose errors
are one line naming the command as the user typed it (``atomgym NAME`` or ``agents.NAME``), exit 2,
and the option types (their checks come from atomgym.schema's field specs)."""
from __future__ import annotations

import sys
from typing import Callable

from atomgym import interrupts
from atomgym.agents import command, who
from atomgym import schema
from atomgym.schema import ConfigError, UsageError, one_line


class Parser(schema.Parser):
    """The house's parser (one-line errors, UsageError) with ``prog`` the command as typed."""

    def __init__(self, name: str | None = None, description: str | None = None, **kw) -> None:
        if name is not None:                   # a command's parser; a sub-command's gets its prog from it
            kw["prog"] = command(name)
        super().__init__(description=description, **kw)


def fail(name: str, message: object) -> int:
    """Print ``NAME: error: MESSAGE`` (one line) on stderr; the exit status 2."""
    print(one_line(f"{who(name)}: error: {message}"), file=sys.stderr)
    return 2


def run_main(name: str, body: Callable[[], int], interrupted: Callable[[KeyboardInterrupt], str | None]) -> int:
    """A command's main(): ``body()`` with SIGTERM/SIGHUP as Ctrl-C; bad input (UsageError,
    ConfigError) one line and exit 2; an interrupt the line ``interrupted(e)`` says (None: the
    command said it already) and the signal's exit status."""
    try:
        with interrupts.interruptible():
            return body()
    except (UsageError, ConfigError) as e:
        return fail(name, e)
    except KeyboardInterrupt as e:
        msg = interrupted(e)
        if msg is not None:
            print(f"{who(name)}: {msg}", file=sys.stderr)
        return interrupts.exit_code(e)
