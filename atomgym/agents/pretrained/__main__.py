"""`python -m agents.pretrained export RUN_DIR NAME [--dest DIR]` |
`python -m agents.pretrained convert-stats FILE.vecnormalize.pkl`

``export`` copies a finished agents.train run (RUN_DIR/model.zip, config.yml and, with vec_normalize,
model.vecnormalize.npz) to ``atomgym/agents/pretrained/NAME.zip``, ``NAME.yml`` and
``NAME.vecnormalize.npz``, the layout agents.evaluate reads, and records their SHA-256 digests in
the folder's SHA256SUMS (a shipped policy is checked against them when it is loaded). An existing
file is never overwritten (exit 2); each file is written atomically.

``convert-stats`` turns normalisation statistics saved by an older agents.train as a pickle
(``NAME.vecnormalize.pkl``, which no other command reads) into ``NAME.vecnormalize.npz`` beside
it: the pickle is read by an unpickler that builds NumPy arrays and plain data only (a file naming
anything else is refused; nothing of it runs). Convert only files you trust to hold statistics.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from atomgym import safefiles
from atomgym.agents import command, normstats, pretrained, who
from atomgym.agents.checkpoints import run_is_complete
from atomgym.agents.models import load_model
from atomgym.agents.usage import Parser, UsageError, fail

DEST = Path(__file__).resolve().parent


def export(run: Path, name: str, dest: Path = DEST) -> list[Path]:
    """The files written; ValueError (one line) for a run that is not finished, a bad name or an
    existing file."""
    safefiles.check_name(name, "NAME")
    model, cfg = run / "model.zip", run / "config.yml"
    if not cfg.is_file():
        raise ValueError(f"{run}: not a run folder of agents.train (no config.yml)")
    if not run_is_complete(run):
        raise ValueError(f"{run}: the run is not finished (no complete model.zip); finish it with "
                         f"{command('train')} --resume {run}")
    try:
        load_model(model)      # it loads, with its config and statistics, before anything is copied
    except ValueError as e:
        raise ValueError(str(e)) from None
    pairs = [(model, safefiles.inside(dest, f"{name}.zip")), (cfg, safefiles.inside(dest, f"{name}.yml"))]
    vn = normstats.stats_path(model)
    if vn.is_file():
        pairs.append((vn, safefiles.inside(dest, normstats.stats_path(Path(f"{name}.zip")).name)))
    for _, dst in pairs:
        if dst.exists() or dst.is_symlink():
            raise ValueError(f"{dst} exists; not overwritten (choose another NAME or remove it yourself)")
    dest.mkdir(parents=True, exist_ok=True)
    digests = pretrained.read_manifest(dest)
    # the .zip last: a policy whose .zip is there has its config and statistics beside it
    for src, dst in sorted(pairs, key=lambda p: p[1].suffix == ".zip"):
        data = src.read_bytes()
        digests[dst.name] = hashlib.sha256(data).hexdigest()
        safefiles.replace(dst, lambda fh, data=data: fh.write(data))
    # the digests of what was copied (the bytes read once: hashed and written alike)
    safefiles.replace_text(dest / pretrained.MANIFEST, pretrained.manifest_text(digests))
    return [d for _, d in pairs]


def convert_stats(pkl: Path) -> Path:
    """``NAME.vecnormalize.pkl`` -> ``NAME.vecnormalize.npz`` beside it (never overwritten); ValueError otherwise."""
    if not pkl.name.endswith(".vecnormalize.pkl"):
        raise ValueError(f"{pkl}: expected a NAME.vecnormalize.pkl file")
    out = pkl.with_name(pkl.name[:-len(".pkl")] + ".npz")
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out} exists; not overwritten")
    stats = normstats.from_legacy_pickle(pkl)
    safefiles.replace(out, stats.write)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = Parser("pretrained", description=__doc__.split("\n\n")[1])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    ex = sub.add_parser("export", help="copy a finished run to atomgym/agents/pretrained/NAME.*")
    ex.add_argument("run", type=Path, metavar="RUN_DIR")
    ex.add_argument("name", metavar="NAME")
    ex.add_argument("--dest", type=Path, default=DEST, help="folder of shipped policies (default atomgym/agents/pretrained)")
    cv = sub.add_parser("convert-stats", help="NAME.vecnormalize.pkl (old format) -> NAME.vecnormalize.npz, "
                                              "read without running the pickle")
    cv.add_argument("pkl", type=Path, metavar="FILE.vecnormalize.pkl")
    try:
        args = ap.parse_args(argv)
    except UsageError as e:
        return fail("pretrained", e)
    try:
        if args.cmd == "convert-stats":
            print(f"wrote {convert_stats(args.pkl)}")
            return 0
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
