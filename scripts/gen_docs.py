"""The docs' generated tables, from the one description of the inputs (atomgym/schema.py,
atomgym/scenario_schema.py).

    python scripts/gen_docs.py           # rewrite the tables in docs/ (make docs)
    python scripts/gen_docs.py --check   # exit 1 if a committed table differs from the generated one

A table lives between ``<!-- schema:NAME -->`` and ``<!-- /schema:NAME -->`` in a docs file; the
text around it is the docs' own.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from atomgym import scenario_schema, schema

ROOT = Path(__file__).resolve().parent.parent
# docs file -> the tables it holds: a command's options (schema.COMMANDS), train-config, scenario
# atomgym's own subcommands (schema.ATOMGYM_COMMANDS, "atomgym NAME"; warmup has no options)
TABLES = {"docs/cli.md": (*(f"atomgym {n}" for n, f in schema.ATOMGYM_COMMANDS.items() if f),
                          *schema.COMMANDS, "train-config"),
          "docs/scenarios.md": ("scenario",)}


def table(name: str) -> str:
    """The table ``name`` as the docs hold it: a command's options (an agents' command, or atomgym's
    own: "atomgym NAME"), the training config's keys or a scenario's keys."""
    if name == "train-config":
        return schema.config_table(schema.TRAIN_CONFIG)
    if name == "scenario":
        return scenario_schema.schema_markdown()
    if name.startswith("atomgym "):
        return schema.markdown_table(schema.ATOMGYM_COMMANDS[name.removeprefix("atomgym ")])
    return schema.markdown_table(schema.COMMANDS[name])


def render(text: str, names: tuple[str, ...]) -> str:
    """``text`` with each ``schema:NAME`` block replaced by the generated table (ValueError if a
    block is missing: a table that is not in the docs is not documented)."""
    for name in names:
        pat = re.compile(rf"(<!-- schema:{re.escape(name)} -->\n).*?(<!-- /schema:{re.escape(name)} -->)", re.S)
        if not pat.search(text):
            raise ValueError(f"no <!-- schema:{name} --> ... <!-- /schema:{name} --> block")
        rows = table(name)
        text = pat.sub(lambda m, rows=rows: m.group(1) + rows + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/gen_docs.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = ap.parse_args(argv)
    stale = []
    for rel, names in TABLES.items():
        p = ROOT / rel
        old = p.read_text()
        new = render(old, names)
        if new != old:
            stale.append(rel)
            if not args.check:
                p.write_text(new)
    if args.check and stale:
        print(f"generated tables differ in {', '.join(stale)}: run make docs", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "wrote: ") + (", ".join(stale) or "nothing") if stale else "docs up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
