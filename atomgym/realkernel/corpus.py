"""`atomgym fidelity DIR...` over a corpus of real-kernel captures.

Each DIR is one capture (a folder `atomgym realkernel run` wrote) or a corpus folder (one with
``MANIFEST.json``, as scripts/capture_corpus.py writes it: every run it lists is a capture folder
inside it). Every capture is measured (fidelity.measure: the real run and the simulator's run of
its scenario); runs of the same scenario (same name and same file content) are the kernel's own
repeats, and the spread between them per metric is the kernel's run-to-run spread
(kernel_spread), which widens that metric's tolerance (fidelity.tolerance). Then: one table per
run, one aggregate row per metric and the fidelity score, the fraction of (run, metric) pairs
within tolerance. Everything is read and checked before anything is written (plots, the score
file), and each file is written to a temporary name and renamed.

One capture without a corpus folder prints what `atomgym fidelity DIR` always printed (its
table and verdict).
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any, TextIO

from .. import files, safefiles
from .errors import RealKernelError
from .fidelity import (KIND_COUNT, KIND_PAGES, KIND_POS, KIND_SHARE, METRICS, REAL_SIDE_ONLY, RELATIVE, SMALL_COUNT, _json, _num, _show,
                       compare, format_table, judge, measure, metric_family, metric_kind, tolerance)

MANIFEST = "MANIFEST.json"
MANIFEST_KEYS = {"run": str, "scenario": str, "kernel": str, "captured": str, "host_wall_s": (int, float)}
KEY_KIND = {str: "a string", (int, float): "a number"}
MAX_MANIFEST = 1 << 20
FAMILIES = [k for k, _ in METRICS] + ["median_pos"]
LABELS = dict(METRICS, median_pos="median (free-min)/(high-min), per phase")
SCORE_KIND = "atomgym fidelity score"
# the calibration split (optional key "half" of a manifest entry; `atomgym fidelity fit` needs it)
HALVES = ("calibration", "held-out")


# ---- the captures a command line names ---------------------------------------------------------
def read_manifest(folder: Path) -> list[dict[str, Any]]:
    """The runs of a corpus folder's MANIFEST.json, each checked against its capture folder."""
    man = folder / MANIFEST
    what = "a corpus manifest (scripts/capture_corpus.py)"
    if man.is_symlink():
        raise RealKernelError(f"{man}: a symbolic link; a corpus manifest is a regular file (not followed)")
    try:
        data = files.read_json(man, MAX_MANIFEST, what)
    except files.FileError as e:
        raise RealKernelError(str(e)) from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise RealKernelError(f"{man}: needs an object with a non-empty list \"runs\"; expected {what}")
    seen: set[str] = set()
    for i, r in enumerate(data["runs"]):
        bad = [k for k, t in MANIFEST_KEYS.items() if not isinstance(r, dict) or not isinstance(r.get(k), t)
               or isinstance(r.get(k), bool)]
        if bad:
            raise RealKernelError(f"{man}: runs[{i}]: {bad[0]} missing or not {KEY_KIND[MANIFEST_KEYS[bad[0]]]}; "
                                  f"each run needs {', '.join(MANIFEST_KEYS)}")
        name = r["run"]
        if not safefiles.valid_name(name):
            raise RealKernelError(f"{man}: runs[{i}]: run {name[:40]!r} is not a folder name "
                                  f"({safefiles.NAME_CHARS})")
        if not _num(r["host_wall_s"]) or r["host_wall_s"] < 0:
            raise RealKernelError(f"{man}: runs[{i}]: host_wall_s = {r['host_wall_s']}; valid: seconds >= 0")
        if name in seen:
            raise RealKernelError(f"{man}: run {name!r} listed twice")
        seen.add(name)
        if "half" in r and r["half"] not in HALVES:
            raise RealKernelError(f"{man}: runs[{i}]: half {_show(r['half'])}; valid: "
                                  f"{' or '.join(map(repr, HALVES))} (the calibration split)")
        cap = folder / name
        if cap.is_symlink() or not cap.is_dir():
            raise RealKernelError(f"{man}: run {name!r}: no capture folder {cap} (a missing capture)")
    halves: dict[str, tuple[str, str]] = {}      # a scenario's runs (its repeats) all on one side
    for r in data["runs"]:
        if "half" in r:
            first = halves.setdefault(r["scenario"], (r["run"], r["half"]))
            if first[1] != r["half"]:
                raise RealKernelError(f"{man}: runs {first[0]!r} and {r['run']!r} capture the same scenario "
                                      f"{r['scenario']} but are in halves {first[1]!r} and {r['half']!r}; a "
                                      f"scenario's repeats are in one half (else the fit sees the held-out answer)")
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.endswith(".partial") and (p / "capture.json").exists() and p.name not in seen:
            raise RealKernelError(f"{p}: a capture that {man} does not list; add it to the manifest or move it away")
    return data["runs"]


def expand(dirs: list[str]) -> tuple[list[Path], dict[str, dict]]:
    """The capture folders of the command line (a corpus folder: its manifest's runs, in its
    order) and the manifest entry of each (by capture path). One line on anything else."""
    caps: list[Path] = []
    entries: dict[str, dict] = {}
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise RealKernelError(f"{d}: {'no such folder' if not p.exists() else 'not a folder'}; give capture "
                                  f"folders (`atomgym realkernel run --out`) or corpus folders (with {MANIFEST})")
        if (p / MANIFEST).exists() or (p / MANIFEST).is_symlink():
            for r in read_manifest(p):
                caps.append(p / r["run"])
                entries[str(p / r["run"])] = r
        else:
            caps.append(p)
    real = [os.path.realpath(c) for c in caps]
    for i, c in enumerate(real):
        if c in real[:i]:
            raise RealKernelError(f"{caps[i]}: named twice (directly or through a corpus folder); each capture once")
    names = [c.name for c in caps]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise RealKernelError(f"{caps[i]} and {caps[names.index(n)]}: two captures named {n!r}; runs are "
                                  f"named by their folder (tables, plots): rename one")
    return caps, entries


# ---- the kernel's own spread -----------------------------------------------------------------------
def _values(m: dict[str, Any], fam: str) -> list[float | None]:
    if fam == "median_pos":
        return [p["median_pos"] for p in m["real"]["phases"]]
    return [m["real"].get(fam)]


def spread_of(vals: list[float], fam: str, gap: float) -> float | None:
    """How far a scenario's repeated real runs are from each other, in the unit of the metric's
    tolerance: (max - min) / mean for counts and times, in high - min gaps for free pages, as is
    for positions. None when the runs say nothing about it: counts that are all at most
    SMALL_COUNT (a scenario where the event hardly happens; such counts agree by that rule, not by
    a spread)."""
    lo, hi = min(vals), max(vals)
    kind = metric_kind(fam)
    if kind in (KIND_POS, KIND_SHARE):
        return hi - lo
    if kind == KIND_PAGES:
        return (hi - lo) / max(gap, 1.0)
    if kind == KIND_COUNT and max(abs(lo), abs(hi)) <= SMALL_COUNT:
        return None
    mean = statistics.fmean(vals)
    return (hi - lo) / abs(mean) if mean else 0.0


def repeat_key(m: dict[str, Any]) -> tuple[str, str, bool]:
    """What makes runs repeats of each other (kernel_spread()): the scenario's name, its file, and
    whether the guest also sampled /proc/pagetypeinfo."""
    return m["scenario"], m["scenario_sha"], bool(m["real"].get("sampled_pagetypeinfo"))


def repeat_groups(ms: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The runs that repeat each other (same repeat_key()), groups of two or more in first-seen order:
    the kernel's spread (kernel_spread()) and its score against itself (kernel_self_score())."""
    groups: dict[tuple[str, str, bool], list[dict]] = {}
    for m in ms:
        groups.setdefault(repeat_key(m), []).append(m)
    return [g for g in groups.values() if len(g) >= 2]


def repeated_scenarios(ms: list[dict[str, Any]]) -> int:
    """How many groups of repeats (repeat_key()) the runs hold: the kernel's spread comes from them."""
    return len(repeat_groups(ms))


def kernel_spread(ms: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """Per metric family: the median over repeated scenarios of their spread (spread_of), and the
    groups it came from. Runs repeat each other when their scenario's name and scenario.yaml are
    the same and the guest sampled the same files (a guest that also read /proc/pagetypeinfo
    every sample ran under another condition: its runs differ from the others systematically).
    Groups whose counts are all at most SMALL_COUNT are listed (spread None) but left out of the
    median: with them, a metric the kernel reproduces badly whenever it occurs (direct-reclaim
    stalls: 72-201 over four runs of one scenario) had the spread of the scenarios where it does
    not occur (0)."""
    reps = repeat_groups(ms)
    out: dict[str, float] = {}
    detail: dict[str, list[dict]] = {}
    for fam in FAMILIES:
        per = []
        for g in reps:
            cols = list(zip(*(_values(m, fam) for m in g)))    # per phase: the runs' values
            for vals in cols:
                if all(v is not None for v in vals):
                    s = spread_of([float(v) for v in vals], fam, g[0]["real"].get("gap", 1.0))
                    per.append({"scenario": g[0]["scenario"], "runs": [m["run"] for m in g],
                                "real": list(vals), "spread": None if s is None else round(s, 3)})
        informative = [p["spread"] for p in per if p["spread"] is not None]
        if informative:
            out[fam] = round(statistics.median(informative), 3)
        if per:
            detail[fam] = per
    return out, detail


def kernel_self_score(ms: list[dict[str, Any]], spread: dict[str, float]) -> dict[str, Any] | None:
    """The kernel judged against itself: every ordered pair of repeats (repeat_key()) compared as
    if one were the simulator's run of the other (fidelity.compare(), the same tolerances), per
    metric family and in all. The ceiling a simulator's score can be read against: a repeat of
    the same scenario on the same kernel agrees this often. None without repeats."""
    per: dict[str, list[int]] = {}
    n_pairs = 0
    for g in repeat_groups(ms):
        for a in g:
            for b in g:
                if a is b:
                    continue
                n_pairs += 1
                for r in compare(a["real"], b["real"], spread, a.get("sample_s", 0.0)):
                    # a value only the guest measures (kswapd's schedstat) counts where both measured it
                    unmeasured = r["metric"] in REAL_SIDE_ONLY and (r["real"] is None or r["sim"] is None)
                    if r["verdict"] != "n/a" and not unmeasured:
                        c = per.setdefault(metric_family(r["metric"]), [0, 0])
                        c[0] += r["verdict"] == "agree"
                        c[1] += 1
    tot_in, tot = sum(c[0] for c in per.values()), sum(c[1] for c in per.values())
    if not tot:
        return None
    return {"score": round(tot_in / tot, 4), "within": tot_in, "pairs": tot, "run_pairs": n_pairs,
            "per_metric": {f: round(per[f][0] / per[f][1], 3) for f in FAMILIES if f in per}}


# ---- aggregate -----------------------------------------------------------------------------------
def aggregate(reps: list[dict[str, Any]], spread: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per metric family over the runs, and the score (fraction of comparable (run,
    metric) pairs within tolerance)."""
    rows = []
    tot_in = tot = 0
    for fam in FAMILIES:
        pairs = [(rep, r) for rep in reps for r in rep["rows"]
                 if metric_family(r["metric"]) == fam and r["verdict"] != "n/a"]
        within = sum(r["verdict"] == "agree" for _, r in pairs)
        kind = metric_kind(fam)
        both = [(rep, float(r["real"]), float(r["sim"])) for rep, r in pairs
                if r["real"] is not None and r["sim"] is not None]
        if kind in RELATIVE:      # sim / real where real is not 0
            vals = [s / r for _, r, s in both if r != 0]
        elif kind == KIND_PAGES:  # sim - real in high - min gaps of that run
            vals = [(s - r) / max(rep["real"].get("gap", 1.0), 1.0) for rep, r, s in both]
        else:
            vals = [s - r for _, r, s in both]
        rows.append({"metric": fam, "label": LABELS[fam], "kind": kind, "pairs": len(pairs), "within": within,
                     "fraction_within": round(within / len(pairs), 3) if pairs else None,
                     "median": round(statistics.median(vals), 3) if vals else None,
                     "median_of": "sim/real" if kind in RELATIVE else ("sim-real" if kind == KIND_SHARE
                                                                       else "sim-real (gaps)"),
                     "one_sided": len(pairs) - len(both),
                     "kernel_spread": spread.get(fam), "tolerance": round(tolerance(fam, spread.get(fam)), 3)})
        tot_in += within
        tot += len(pairs)
    score = {"score": round(tot_in / tot, 4) if tot else None, "within": tot_in, "pairs": tot}
    return rows, score


def _pct(v: float | None, kind: str) -> str:
    if v is None:
        return "n/a"
    if kind == KIND_SHARE:
        return f"{v:.2f}"
    return f"{v:.0%}" if kind in RELATIVE else f"{v:.2f} gap"


def format_aggregate(rows: list[dict[str, Any]], score: dict[str, Any], n_runs: int, n_rep: int,
                     own: dict[str, Any] | None = None) -> str:
    """The aggregate table; with ``own`` (kernel_self_score()) a last column: the fraction of the
    kernel's own repeats within the same tolerance, the ceiling of each row's ``within``."""
    w = max(len(r["label"]) for r in rows)
    per = (own or {}).get("per_metric", {})
    out = [f"aggregate over {n_runs} runs ({n_rep} scenarios captured more than once give the kernel's spread)",
           "",
           f"{'metric':<{w}}  {'pairs':>5}  {'within':>6}  {'median':>16}  {'kernel spread':>13}  {'tolerance':>9}"
           + (f"  {'kernel vs itself':>16}" if own else "")]
    for r in rows:
        med = "n/a" if r["median"] is None else (
            f"{r['median']:.2f} sim/real" if r["kind"] in RELATIVE else
            f"{r['median']:+.2f} share" if r["kind"] == KIND_SHARE else f"{r['median']:+.2f} gap")
        frac = "n/a" if r["fraction_within"] is None else f"{r['fraction_within']:.0%}"
        ceil = "n/a" if per.get(r["metric"]) is None else f"{per[r['metric']]:.0%}"
        out.append(f"{r['label']:<{w}}  {r['pairs']:>5}  {frac:>6}  {med:>16}  "
                   f"{_pct(r['kernel_spread'], r['kind']):>13}  {_pct(r['tolerance'], r['kind']):>9}"
                   + (f"  {ceil:>16}" if own else ""))
    out.append("")
    out.append(f"fidelity score: {score['score']:.3f} ({score['within']} of {score['pairs']} (run, metric) pairs "
               f"within tolerance)" if score["score"] is not None else "fidelity score: n/a (no comparable pairs)")
    return "\n".join(out)


# ---- outputs ----------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    """A temporary file in the same folder, renamed over ``path`` (a rename never writes through a link)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_outputs(plots: str | None, score_file: str | None, runs: list[str]) -> None:
    """--plots and --write-score before anything is measured: one line on a path we would not
    write (a file that is not ours would be replaced)."""
    if plots is not None:
        p = Path(plots)
        if p.exists() and not p.is_dir():
            raise RealKernelError(f"--plots {plots}: exists and is not a folder")
        if p.is_symlink():
            raise RealKernelError(f"--plots {plots}: a symbolic link; give the folder itself")
        for r in runs:
            f = p / f"{r}.png"
            if f.is_symlink() or (f.exists() and (not f.is_file() or not _is_png(f))):
                raise RealKernelError(f"--plots: {f} exists and is not a PNG plot; refusing to replace it "
                                      f"(move it away or give another folder)")
    if score_file is not None:
        f = Path(score_file)
        if f.is_dir() or f.is_symlink():
            raise RealKernelError(f"--write-score {score_file}: a folder or a link; give a file name")
        if not f.parent.is_dir():
            raise RealKernelError(f"--write-score {score_file}: no folder {f.parent}")
        if f.exists():
            try:
                old = files.read_json(f, MAX_MANIFEST, "a score file")
            except files.FileError:
                old = None
            if not (isinstance(old, dict) and old.get("kind") == SCORE_KIND):
                raise RealKernelError(f"--write-score {score_file}: exists and is not a score file `atomgym "
                                      f"fidelity` wrote; refusing to replace it")


def _is_png(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            return fh.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def half_scores(reps: list[dict[str, Any]], spread: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The score of each half of the calibration split (the manifest's "half" of every run; {} when
    a run has none), with the whole corpus's kernel spread (the same tolerances as the whole)."""
    halves = [rep.get("manifest", {}).get("half") for rep in reps]
    if not reps or any(h is None for h in halves):
        return {}
    out = {}
    for h in HALVES:
        sub = [rep for rep, x in zip(reps, halves) if x == h]
        if sub:
            rows, sc = aggregate(sub, spread)
            out[h] = {**sc, "runs": [r["run"] for r in sub],
                      "per_metric": {r["metric"]: r["fraction_within"] for r in rows}}
    return out


RATCHET_TOL = 1e-6      # the simulator is deterministic (seed 1): only another platform's float rounding


def ratchet_failures(report: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """The fidelity ratchet: each score of a report (`fidelity --json`) that fell below the
    committed score file's (the whole corpus and each half it records), one line each; [] passes."""
    out = []
    pairs = [("corpus", report.get("score"), committed.get("score"))]
    for h, sc in (committed.get("halves") or {}).items():
        pairs.append((f"{h} half", (report.get("halves") or {}).get(h, {}).get("score"), sc.get("score")))
    for what, now, then in pairs:
        if then is not None and (now is None or now < then - RATCHET_TOL):
            out.append(f"{what}: {now} < committed {then}")
    return out


def score_record(score: dict[str, Any], rows: list[dict[str, Any]], reps: list[dict[str, Any]],
                 seed: int, how: str, halves: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The --write-score file: the score, its counts, each metric's fraction within, each half's
    (half_scores), and the command that wrote it (to write it again when the simulator changes on
    purpose)."""
    rec = {"kind": SCORE_KIND, "score": score["score"], "within": score["within"], "pairs": score["pairs"],
           "seed": seed, "runs": [r["run"] for r in reps],
           "per_metric": {r["metric"]: r["fraction_within"] for r in rows}}
    if halves:
        rec["halves"] = halves
    rec["how"] = how
    return rec


def main(args, out: TextIO, err: TextIO) -> int:
    caps, entries = expand(args.capture)
    plots = getattr(args, "plots", None)
    score_file = getattr(args, "write_score", None)
    check_outputs(plots, score_file, [c.name for c in caps])
    ms = [measure(c, seed=args.seed) for c in caps]      # every capture read and checked before any output
    for m in ms:
        e = entries.get(str(m["capture"]))
        if e is not None and e["kernel"] != m["kernel"]:
            raise RealKernelError(f"{Path(m['capture']).parent / MANIFEST}: run {m['run']!r}: kernel {e['kernel']!r}, "
                                  f"but its capture.json says {m['kernel']!r}")
    single = len(ms) == 1 and not entries
    spread, detail = ({}, {}) if single else kernel_spread(ms)
    reps = [judge(m, spread) for m in ms]
    for rep, m in zip(reps, ms):
        if str(m["capture"]) in entries:
            rep["manifest"] = entries[str(m["capture"])]
    rows, score = aggregate(reps, spread)
    halves = half_scores(reps, spread)
    own = None if single else kernel_self_score(ms, spread)
    try:
        if plots is not None:
            from . import plots as P
            pngs = {m["run"]: P.render(m, rep) for m, rep in zip(ms, reps)}    # all drawn, then all written
            Path(plots).mkdir(parents=True, exist_ok=True)
            for run, png in pngs.items():
                _atomic_write(Path(plots) / f"{run}.png", png)
        if score_file is not None:
            how = " ".join(["python -m atomgym fidelity", *args.capture, "--write-score", score_file]
                           + (["--seed", str(args.seed)] if args.seed != 1 else []))
            rec = score_record(score, rows, reps, args.seed, how, halves)
            _atomic_write(Path(score_file), (json.dumps(rec, indent=1) + "\n").encode())
    except OSError as e:
        raise RealKernelError(f"writing {e.filename or plots or score_file}: {e.strerror or e}") from None
    if single:
        rep = reps[0]
        print(_json(rep) if args.json else format_table(rep), file=out)
        return 0
    n_rep = repeated_scenarios(ms)
    if args.json:
        print(_json({"runs": reps, "aggregate": rows, **score, "kernel_spread": spread,
                     "kernel_spread_groups": detail, "kernel_self_score": own, "seed": args.seed, "halves": halves,
                     "tolerance_rule": "counts within 25 %, free pages and positions within 0.25 of the high-min "
                                       "gap, or the kernel's own spread of the metric when larger"}), file=out)
        return 0
    for rep in reps:
        print(format_table(rep), file=out)
        print(file=out)
    print(format_aggregate(rows, score, len(reps), n_rep, own), file=out)
    for h, sc in halves.items():
        print(f"  {h} half: {sc['score']:.3f} ({sc['within']} of {sc['pairs']} pairs, {len(sc['runs'])} runs)", file=out)
    if own is not None:
        print(f"the kernel against its own repeats: {own['score']:.3f} ({own['within']} of {own['pairs']} pairs, "
              f"{own['run_pairs']} ordered pairs of repeated runs judged as if one were the simulator's run of "
              f"the other: the ceiling to read the score against)", file=out)
    return 0
