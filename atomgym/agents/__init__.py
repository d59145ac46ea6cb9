"""atomgym's agents: baselines (atomgym.agents.baselines), training (atomgym.agents.train),
evaluation (atomgym.agents.evaluate), reports, replay, oracles and the shipped policies
(atomgym.agents.pretrained). Installed: ``atomgym train|evaluate|report|replay|...``; in a
checkout also ``python -m agents.NAME`` (the repo's agents/ is a thin entry point over this)."""
from __future__ import annotations

# How the user started the command: None for a checkout's ``python -m agents.NAME``; "atomgym" or
# "python -m atomgym" when atomgym.cli ran it (a wheel installs no ``agents`` package).
invoked_as: str | None = None


def command(name: str) -> str:
    """The command line that runs agents.NAME, as the user typed it: ``atomgym NAME`` (or
    ``python -m atomgym NAME``) through atomgym's entry point, else ``python -m agents.NAME``.
    Usage lines and hints (``continue with: ... --resume``) name it."""
    return f"{invoked_as} {name}" if invoked_as else f"python -m agents.{name}"


def who(name: str) -> str:
    """The prefix of the command's one-line errors: ``atomgym NAME`` or ``agents.NAME``."""
    return f"atomgym {name}" if invoked_as else f"agents.{name}"
