"""Capture the real-kernel corpus: each scenario of configs/corpus with `atomgym realkernel run`.

    python scripts/capture_corpus.py [--corpus corpus] [--only RUN ...] [--commit]

One capture at a time (a TCG guest takes a host core per CPU), in the order of RUNS; a run whose
folder `corpus/<run>` is already there is skipped, so the script resumes after a stop. Each
finished capture is made compact for the repository: `serial.log` and `timeseries.jsonl` gzipped
(`serial.log.gz`, the raw console log every other file was parsed from; `timeseries.jsonl.gz`,
which `atomgym fidelity` reads as it is), `timeseries.csv` left out (the same samples as
`timeseries.jsonl`, flat); then its entry (scenario file, kernel release, capture date, host
wall time) is written into `corpus/MANIFEST.json` (a temporary file renamed into place).
Each entry also names its half of the calibration split (HELD_OUT).
`--commit` commits each capture and the manifest on the current git branch as it is done.
`--traced` captures TRACED instead, with `atomgym realkernel run --trace` (the kernel's reclaim
tracepoints, trace.txt.gz), into `corpus/traced/<scenario>` with their own MANIFEST.json (no
calibration half: they are not in the fidelity score's corpus; `python scripts/kswapd_trace.py`
reads them, docs/realkernel.md "Tracepoints").
Runs named `<scenario>-2` are a second capture of the same scenario, `<scenario>-3` a third (every
scenario, captured 2026-12-06 with the guest's /proc/pagetypeinfo samples), `<scenario>-4` a fourth
(every scenario, 2026-12-07, with kswapd0's schedstat too): the kernel's own run-to-run spread
(docs/realkernel.md, "The corpus").
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCEN_DIR = ROOT / "configs" / "corpus"
# the order they are captured in; "<scenario>-2" is a repeat of <scenario>
RUNS = ("ram4g", "base", "ram512", "ram2g", "cpus2", "wsf30", "wsf100", "wsf300", "mfk2x", "mfk4x", "noboost",
        "nowait", "nohog", "slowread", "ram512-wsf100", "ram2g-wsf100", "ram2g-cpus2-nowait-noboost",
        "ram4g-cpus2-mfk2x-wsf30", "ram4g-wsf100", "ram512-nowait-slowread", "cpus2-wsf300-nohog",
        "ram2g-mfk4x-noboost", "base-2", "wsf100-2", "nowait-2", "ram512-2", "ram2g-wsf100-2", "cpus2-2")
SCENARIOS = tuple(r for r in RUNS if not r.endswith("-2"))
# a third capture of every scenario (2026-12-06): the guest now samples /proc/pagetypeinfo, and every
# scenario's run-to-run spread becomes known
RUNS += tuple(f"{s}-3" for s in SCENARIOS)
# a fourth (2026-12-07): the guest now also samples kswapd0's /proc/PID/schedstat, so each of these
# runs measures its kswapd's reclaim rate and wake-up wait (the twin runs them: fidelity.kswapd_measured())
RUNS += tuple(f"{s}-4" for s in SCENARIOS)


# The calibration split (docs/realkernel.md, "Calibration"): the scenarios whose runs are held out
# of `atomgym fidelity fit` and validate it; every other scenario's runs calibrate. Chosen by hand
# so that each half has every guest size, every watermark_scale_factor, GFP_ATOMIC and GFP_NOWAIT,
# boosting on and off, 1 and 2 CPUs, and a wsf 10 -> 100 pair; a repeat is in its scenario's half
# (a run and its repeat on both sides would leak the kernel's answer into the fit).
# the scenarios captured with tracepoints (2026-12-08: --traced): a hog's stalls (base, ram512), none (nohog)
TRACED = ("base", "ram512", "nohog")
HELD_OUT = ("ram512", "ram512-wsf100", "ram2g", "ram2g-wsf100", "ram4g-cpus2-mfk2x-wsf30", "wsf300",
            "ram2g-cpus2-nowait-noboost", "mfk4x", "slowread", "nohog")


def half_of(run: str) -> str:
    return "held-out" if scenario_of(run) in HELD_OUT else "calibration"


def scenario_of(run: str) -> str:
    """``<scenario>-2``, ``-3``, ``-4``: the second, third and fourth capture of a scenario."""
    return run[:-2] if run[-2:] in ("-2", "-3", "-4") else run


def write_manifest(corpus: Path, entry: dict) -> None:
    man = corpus / "MANIFEST.json"
    what = ("with the kernel's reclaim tracepoints (docs/realkernel.md, \"Tracepoints\")" if corpus.name == "traced"
            else "(docs/realkernel.md, \"The corpus\")")
    data = json.loads(man.read_text()) if man.exists() else {
        "about": f"real-kernel captures of configs/corpus {what}; made by scripts/capture_corpus.py", "runs": []}
    data["runs"] = [r for r in data["runs"] if r["run"] != entry["run"]] + [entry]
    data["runs"].sort(key=lambda r: RUNS.index(r["run"]) if r["run"] in RUNS else len(RUNS))
    fd, tmp = tempfile.mkstemp(dir=corpus, prefix=".MANIFEST.")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, man)


def compact(folder: Path) -> None:
    """serial.log, timeseries.jsonl, trace.txt -> .gz (mtime 0: the same bytes every time);
    timeseries.csv dropped."""
    for name in ("serial.log", "timeseries.jsonl", "trace.txt"):
        f = folder / name
        if not f.exists():
            continue
        with open(f, "rb") as src, open(folder / f"{name}.gz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename=name) as gz:
                gz.write(src.read())
        f.unlink()
    (folder / "timeseries.csv").unlink(missing_ok=True)


def capture(run: str, corpus: Path, commit: bool, trace: bool = False) -> bool:
    scen = SCEN_DIR / f"{scenario_of(run)}.yaml"
    out = corpus / run
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "atomgym", "realkernel", "run", str(scen), "--out", str(out)] + (["--trace"] if trace else [])
    print(f"capture_corpus: {run}: {' '.join(cmd[1:])}", flush=True)
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode != 0:
        print(f"capture_corpus: {run}: failed (exit {r.returncode}); its log is in {out}.partial", flush=True)
        return False
    wall = round(time.monotonic() - t0, 1)
    meta = json.loads((out / "capture.json").read_text())
    compact(out)
    entry = {"run": run, "scenario": str(scen.relative_to(ROOT)), "kernel": meta["kernel"], "captured": date,
             "host_wall_s": meta["host_wall_s"], "command_wall_s": wall,
             "repeat_of": scenario_of(run) if run != scenario_of(run) else None}
    write_manifest(corpus, entry if trace else dict(entry, half=half_of(run)))
    if commit:
        rel = [str(out.relative_to(ROOT)), str((corpus / "MANIFEST.json").relative_to(ROOT))]
        for _ in range(5):   # another git command may hold the index lock for a moment
            if subprocess.run(["git", "add", "--", *rel], cwd=ROOT).returncode == 0 and subprocess.run(
                    ["git", "commit", "-q", "-m", f"corpus: capture {run} ({meta['kernel']}, {wall:.0f} s host wall)",
                     "--", *rel], cwd=ROOT).returncode == 0:
                break
            time.sleep(3)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "corpus"))
    ap.add_argument("--only", nargs="+", choices=RUNS, help="these runs only (in RUNS order)")
    ap.add_argument("--commit", action="store_true", help="git commit each capture as it is done")
    ap.add_argument("--traced", action="store_true", help="capture TRACED with tracepoints into CORPUS/traced")
    a = ap.parse_args()
    corpus = Path(a.corpus) / ("traced" if a.traced else "")
    corpus.mkdir(parents=True, exist_ok=True)
    failed = []
    for run in TRACED if a.traced else RUNS:
        if a.only and run not in a.only:
            continue
        if (corpus / run / "capture.json").exists():
            print(f"capture_corpus: {run}: already captured", flush=True)
            continue
        if not capture(run, corpus, a.commit, trace=a.traced):
            failed.append(run)
    if failed:
        print(f"capture_corpus: failed: {', '.join(failed)} (run again to retry them)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
