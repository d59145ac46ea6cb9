"""The policies an evaluation runs (``--policies``): baselines, oracles and trained models
(``[LABEL=]PATH.zip[:PLAY]``), each a Spec with its label in episodes.csv and its run id."""
from __future__ import annotations

import glob
from pathlib import Path

from atomgym.paths import PRETRAINED_DIR
from atomgym.agents import baselines
from atomgym.agents.models import LoadedModel, check_ensemble, load_model, model_run_id
from atomgym.agents.usage import UsageError
from atomgym.schema import PLAYS

ORACLES = ("oracle-static", "oracle-planner")


class Spec:
    """One policy of --policies: a baseline, an oracle, or a trained model (``[LABEL=]PATH.zip``)."""

    def __init__(self, label: str, kind: str, path: Path | None = None, run: str = "-",
                 play: str = "deterministic", paths: tuple[Path, ...] = (), how: str = "") -> None:
        self.label, self.kind, self.path, self.run, self.play = label, kind, path, run, play
        self.paths, self.how = paths, how   # kind "ensemble": the members' model files (``path`` the first), vote | mean

    def __repr__(self) -> str:
        return f"Spec({self.label!r}, {self.kind!r}, {self.path}, run={self.run!r}, play={self.play!r})"


def play_label(label: str, play: str) -> str:
    """A learned policy's name in episodes.csv: LABEL for deterministic play (argmax / mean
    action), LABEL-stochastic for sampled actions."""
    return label if play == "deterministic" else f"{label}-{play}"


def default_label(path: Path, lm: LoadedModel) -> str:
    """A bare model path's label: a shipped policy's NAME (NAME.zip with NAME.yml beside it), else
    its algorithm (ppo, a2c, dqn, recurrent_ppo, sac, td3)."""
    if lm.config is not None and lm.config == path.with_suffix(".yml"):
        return path.stem
    return lm.algo


def parse_policies(text: str, plays: tuple[str, ...] = ("deterministic",)) -> list[Spec]:
    """--policies: comma-separated baseline names, oracle names and model paths
    (``[LABEL=]PATH.zip[:PLAY]``, PLAY deterministic or stochastic; without one, each of ``plays``:
    --play). ``LABEL=PATH`` names a model; a bare PATH is labelled by its shipped name or its
    algorithm; stochastic play adds ``-stochastic`` to the label; models under one label are runs
    of one policy, told apart by their training seed. A repeated entry counts once."""
    specs: list[Spec] = []
    seen: set[tuple[str, str]] = set()
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        label, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        item_plays = plays
        if ".zip:" in path:
            path, _, play = path.rpartition(":")
            if play not in PLAYS:
                raise UsageError(f"--policies: {item!r}: play {play!r}; valid: {', '.join(PLAYS)}")
            item_plays = (play,)
        if path in baselines.names() or path in ORACLES:
            if label:
                raise UsageError(f"--policies: {item!r}: a label (LABEL=) is for model paths only")
            new = [Spec(path, "oracle" if path in ORACLES else "baseline")]
        elif path.startswith(ENSEMBLES):
            how, _, pattern = path.partition(":")
            new = [ensemble_spec(item, label, pattern, how)]
        elif path.endswith(".zip"):
            p = Path(path)
            if not p.is_file() and p.parent == Path(".") and (PRETRAINED_DIR / p.name).is_file():
                p = PRETRAINED_DIR / p.name      # a bare NAME.zip: the shipped policy (installed too)
            if not p.is_file():
                raise UsageError(f"--policies: {path}: no such model file")
            try:
                lm = load_model(p)
            except ValueError as e:
                raise UsageError(f"--policies: {e}") from None
            if label and not all(c.isalnum() or c in "-_.+" for c in label):
                raise UsageError(f"--policies: label {label!r}: use letters, digits and -_.+")
            label = label or default_label(p, lm)
            new = [Spec(play_label(label, pl), "model", p, model_run_id(p), pl) for pl in item_plays]
        else:
            raise UsageError(f"--policies: unknown policy {item!r}; valid: {', '.join(baselines.names())}, "
                             f"{', '.join(ORACLES)}, [LABEL=]PATH of a trained model .zip[:stochastic], or "
                             f"[LABEL=]vote:GLOB or mean:GLOB of 2 or more models")
        for spec in new:
            key = (spec.label, spec.run)
            if key in seen:
                continue
            seen.add(key)
            specs.append(spec)
    if not specs:
        raise UsageError(f"--policies: empty; valid: {', '.join(baselines.names())}, {', '.join(ORACLES)}, "
                         "or [LABEL=]PATH of a trained model .zip")
    return specs


ENSEMBLES = ("vote:", "mean:")   # episodes.VotePlayer's ways of combining members


def ensemble_spec(item: str, label: str, pattern: str, how: str = "vote") -> Spec:
    """``[LABEL=]vote:GLOB`` / ``mean:GLOB``: the model .zip files the pattern matches (sorted; at
    least 2, sharing one env: models.check_ensemble) as one policy, deterministic play by majority
    vote or by the highest mean action probability (episodes.VotePlayer); labelled LABEL, else
    "vote" / "mean". A bare pattern (no folder) that matches no file here matches the shipped
    policies, as a bare NAME.zip does (``mean:benchmark-curriculum-cut-*.zip``, installed too)."""
    def matches(pat: str) -> list[Path]:
        return sorted(Path(p) for p in glob.glob(pat) if p.endswith(".zip") and Path(p).is_file())
    paths = matches(pattern)
    if not paths and Path(pattern).parent == Path("."):
        paths = matches(str(PRETRAINED_DIR / pattern))
    if len(paths) < 2:
        raise UsageError(f"--policies: {item!r}: {how}:GLOB needs 2 or more model .zip files; "
                         f"{pattern!r} matches {len(paths)}")
    try:
        check_ensemble(paths, [load_model(p) for p in paths], how)
    except ValueError as e:
        raise UsageError(f"--policies: {item!r}: {e}") from None
    label = label or how
    if not all(c.isalnum() or c in "-_.+" for c in label):
        raise UsageError(f"--policies: label {label!r}: use letters, digits and -_.+")
    return Spec(label, "ensemble", paths[0], f"{how}{len(paths)}", "deterministic", tuple(paths), how)
