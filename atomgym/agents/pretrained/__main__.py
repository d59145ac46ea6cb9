"""`python -m agents.pretrained export RUN_DIR NAME [--dest DIR]`

Copies a finished agents.train run (RUN_DIR/model.zip, config.yml and, with vec_normalize,
model.vecnormalize.pkl) to ``atomgym/agents/pretrained/NAME.zip``, ``NAME.yml`` and
``NAME.vecnormalize.pkl``, the layout agents.evaluate reads. An existing file is never
overwritten (exit 2); each file is written atomically.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from atomgym.agents import command, who

DEST = Path(__file__).resolve().parent


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:   # one line, exit 2
        self.exit(2, f"{who('pretrained')}: error: {message} (see `{self.prog} --help`)\n")


def export(run: Path, name: str, dest: Path = DEST) -> list[Path]:
    """The files written; ValueError (one line) for a run that is not finished, a bad name or an
    existing file."""
    from atomgym.agents import evaluate, train
    if not name or not all(c.isalnum() or c in "-_.+" for c in name) or name.startswith("."):
        raise ValueError(f"NAME {name!r}: use letters, digits and -_.+")
    model, cfg = run / "model.zip", run / "config.yml"
    if not cfg.is_file():
        raise ValueError(f"{run}: not a run folder of agents.train (no config.yml)")
    if not train._run_is_complete(run):
        raise ValueError(f"{run}: the run is not finished (no complete model.zip); finish it with "
                         f"{command('train')} --resume {run}")
    try:
        evaluate.load_model(model)      # it loads, with its config and statistics, before anything is copied
    except ValueError as e:
        raise ValueError(str(e)) from None
    pairs = [(model, dest / f"{name}.zip"), (cfg, dest / f"{name}.yml")]
    vn = train.vecnormalize_path(model)
    if vn.is_file():
        pairs.append((vn, dest / f"{name}.vecnormalize.pkl"))
    for _, dst in pairs:
        if dst.exists() or dst.is_symlink():
            raise ValueError(f"{dst} exists; not overwritten (choose another NAME or remove it yourself)")
    dest.mkdir(parents=True, exist_ok=True)
    # the .zip last: a policy whose .zip is there has its config and statistics beside it
    for src, dst in sorted(pairs, key=lambda p: p[1].suffix == ".zip"):
        train._replace_atomically(dst, ".tmp", lambda fh, src=src: shutil.copyfileobj(open(src, "rb"), fh))
    return [d for _, d in pairs]


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog=command("pretrained"), description=__doc__.split("\n\n")[1])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    ex = sub.add_parser("export", help="copy a finished run to atomgym/agents/pretrained/NAME.*")
    ex.add_argument("run", type=Path, metavar="RUN_DIR")
    ex.add_argument("name", metavar="NAME")
    ex.add_argument("--dest", type=Path, default=DEST, help="folder of shipped policies (default atomgym/agents/pretrained)")
    args = ap.parse_args(argv)
    try:
        files = export(args.run, args.name, args.dest)
    except (ValueError, OSError) as e:
        msg = str(e) if isinstance(e, ValueError) else f"{getattr(e, 'filename', '')}: {e.strerror or e}"
        print(f"{who('pretrained')}: error: {msg}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(f) for f in files))
    print(f"evaluate it: {command('evaluate')} --policies {files[0]},psi --scenarios ... --out ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
