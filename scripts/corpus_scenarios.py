"""The scenarios of the real-kernel corpus (configs/corpus/*.yaml): a covering design around one base.

    python scripts/corpus_scenarios.py [--check]

Every run is the base (BASE: a 1 GiB single-CPU guest, watermark_scale_factor 10, the guest's own
min_free_kbytes and watermark_boost_factor, GFP_ATOMIC bursts, an anonymous hog, a 48 MiB/s
reader) with one to four factors changed (RUNS), so that each level of each factor of issue 21
appears at least once; docs/realkernel.md ("The corpus") has the table. The files are written
into configs/corpus (only files named after RUNS; a file whose content differs is rewritten).
``--check`` writes nothing and exits 1 if a file differs from what this script makes.

The captures' copies (corpus/<run>/scenario.yaml, corpus/traced/<run>/scenario.yaml) are the same text: the script rewrites a copy
whose only difference is the `kswapd:` section (the simulator's free parameters, KSWAPD, which
the guest never reads; `atomgym fidelity` replays a capture with its copy's), and refuses (exit 1)
a copy that differs anywhere else (that would be another experiment than the one captured).
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "configs" / "corpus"
# prefill per guest size (page cache, anonymous): about a quarter of RAM or less left free, so the
# 48 MiB/s reader brings free memory down to the watermarks within the first 6-8 s
MEM = {512: (0.30, 0.05), 1024: (0.55, 0.08), 2048: (0.72, 0.05), 4096: (0.82, 0.04)}
# min_free_kbytes the 6.1 guest computes at boot (int_sqrt(lowmem_kbytes * 16)), read from the
# captures' snapshot-start.txt (corpus/ram512, base, ram2g, ram4g): x2 and x4 are of these
MFK_DEFAULT = {512: 2725, 1024: 3828, 2048: 5581, 4096: 7907}
# the simulator's free parameters of the real-kernel machine: fitted on the corpus's calibration
# half by `python -m atomgym fidelity fit corpus` (docs/realkernel.md, "Calibration")
KSWAPD = {"reclaim_pages_per_ms": 100, "wake_latency_ms": 2, "direct_reclaim_pages_per_ms": 50, "cpu_share": 0}
CORPUS = OUT.parent.parent / "corpus"
BASE = dict(ram=1024, cpus=1, wsf=10, mfk=None, wbf=None, gfp="atomic", hog=True, rate=48)
RUNS = [
    ("base", {}, "nothing: the base every other run varies"),
    ("ram512", {"ram": 512}, "a 512 MiB guest"),
    ("ram2g", {"ram": 2048}, "a 2 GiB guest"),
    ("ram4g", {"ram": 4096}, "a 4 GiB guest"),
    ("cpus2", {"cpus": 2}, "2 CPUs"),
    ("wsf30", {"wsf": 30}, "watermark_scale_factor 30"),
    ("wsf100", {"wsf": 100}, "watermark_scale_factor 100"),
    ("wsf300", {"wsf": 300}, "watermark_scale_factor 300"),
    ("mfk2x", {"mfk": 2}, "min_free_kbytes twice the guest's default"),
    ("mfk4x", {"mfk": 4}, "min_free_kbytes four times the guest's default"),
    ("noboost", {"wbf": 0}, "watermark_boost_factor 0 (boosting off)"),
    ("nowait", {"gfp": "nowait"}, "GFP_NOWAIT bursts and shots instead of GFP_ATOMIC"),
    ("nohog", {"hog": False}, "no anonymous hog"),
    ("slowread", {"rate": 24}, "the reader at 24 MiB/s instead of 48"),
    ("ram512-wsf100", {"ram": 512, "wsf": 100}, "a 512 MiB guest at watermark_scale_factor 100"),
    ("ram2g-wsf100", {"ram": 2048, "wsf": 100}, "a 2 GiB guest at watermark_scale_factor 100"),
    ("ram2g-cpus2-nowait-noboost", {"ram": 2048, "cpus": 2, "gfp": "nowait", "wbf": 0},
     "a 2 GiB guest with 2 CPUs, GFP_NOWAIT and boosting off"),
    ("ram4g-cpus2-mfk2x-wsf30", {"ram": 4096, "cpus": 2, "mfk": 2, "wsf": 30},
     "a 4 GiB guest with 2 CPUs, min_free_kbytes x2 and watermark_scale_factor 30"),
    ("ram4g-wsf100", {"ram": 4096, "wsf": 100}, "a 4 GiB guest at watermark_scale_factor 100"),
    ("ram512-nowait-slowread", {"ram": 512, "gfp": "nowait", "rate": 24},
     "a 512 MiB guest, GFP_NOWAIT and the reader at 24 MiB/s"),
    ("cpus2-wsf300-nohog", {"cpus": 2, "wsf": 300, "hog": False},
     "2 CPUs, watermark_scale_factor 300 and no anonymous hog"),
    ("ram2g-mfk4x-noboost", {"ram": 2048, "mfk": 4, "wbf": 0},
     "a 2 GiB guest, min_free_kbytes x4 and boosting off"),
]
HOG = """  - name: hog
    kind: anon_hog
    rate_mib_s: 32
    peak_mib: 160
    hold_s: 4
    period_s: 0
    start_s: 6
"""


def scenario(name: str, var: dict, what: str) -> str:
    c = dict(BASE, **var)
    cache, anon = MEM[c["ram"]]
    sysctl = [f"  watermark_scale_factor: {c['wsf']}"]
    if c["mfk"]:
        sysctl.append(f"  min_free_kbytes: {MFK_DEFAULT[c['ram']] * c['mfk']}")
    if c["wbf"] is not None:
        sysctl.append(f"  watermark_boost_factor: {c['wbf']}")
    desc = (f"Corpus run {name} (docs/realkernel.md, \"The corpus\"): the corpus base with {what}. "
            f"Base: a 1 GiB single-CPU 6.1 guest, watermark_scale_factor 10, the guest's own min_free_kbytes "
            f"and watermark_boost_factor (15000); page cache and anonymous memory prefilled so that about a "
            f"quarter of RAM is free; a reader streams at 48 MiB/s from t = 0; an anonymous hog grows to "
            f"160 MiB at 32 MiB/s from t = 6 s, holds 4 s and exits; 512-page GFP_ATOMIC bursts every "
            f"100 ms held 50 ms and two 4096-page shots held 200 ms at t = 8 s and 18 s. 24 s.")
    sysctls = "\n".join(sysctl)
    return "description: >\n" + textwrap.fill(desc, 96, initial_indent="  ", subsequent_indent="  ") + f"""
duration_s: 24
tick_ms: 1.0
machine:
  ram_mib: {c['ram']}
  kernel: "6.1"
  thp: never
  cpus: {c['cpus']}
sysctl:
{sysctls}
memory:
  page_cache_frac: {cache}
  anon_frac: {anon}
  kernel_frac: 0.05
  swap: false
kswapd:
  reclaim_pages_per_ms: {KSWAPD['reclaim_pages_per_ms']:g}
  wake_latency_ms: {KSWAPD['wake_latency_ms']:g}
  direct_reclaim_pages_per_ms: {KSWAPD['direct_reclaim_pages_per_ms']:g}
{f"  cpu_share: {KSWAPD['cpu_share']:g}" + chr(10) if KSWAPD.get('cpu_share') else ""}nics: []
traffic: []
workloads:
  - name: reader
    kind: stream_read
    rate_mib_s: {c['rate']}
    working_set_mib: 2048
{HOG if c['hog'] else ''}  - name: softirq
    kind: atomic_alloc
    gfp: {c['gfp']}
    pages_per_burst: 512
    interval_ms: 100
    hold_ms: 50
    shots:
      - {{at_s: 8.0, pages: 4096, hold_ms: 200}}
      - {{at_s: 18.0, pages: 4096, hold_ms: 200}}
"""


def without_kswapd(text: str) -> str:
    """A scenario's text with its `kswapd:` section (the indented lines under it) left out."""
    out, skip = [], False
    for ln in text.splitlines(True):
        if ln.startswith("kswapd:"):
            skip = True
            continue
        if skip and ln.startswith(" "):
            continue
        skip = False
        out.append(ln)
    return "".join(out)


def captured_copies() -> dict[str, list[Path]]:
    """Scenario name -> the corpus's copies of it (corpus/<run>/scenario.yaml and the traced
    captures' corpus/traced/<run>/scenario.yaml), by the manifests."""
    out: dict[str, list[Path]] = {}
    for folder in (CORPUS, CORPUS / "traced"):
        man = folder / "MANIFEST.json"
        if man.exists():
            for r in json.loads(man.read_text())["runs"]:
                out.setdefault(Path(r["scenario"]).stem, []).append(folder / r["run"] / "scenario.yaml")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    a = ap.parse_args()
    differ, refused = [], []
    copies = captured_copies()
    for name, var, what in RUNS:
        text = scenario(name, var, what)
        for f in [OUT / f"{name}.yaml", *copies.get(name, [])]:
            if f.exists() and f.read_text() == text:
                continue
            if f.parent != OUT and without_kswapd(f.read_text()) != without_kswapd(text):
                refused.append(str(f.relative_to(OUT.parent.parent)))
                continue
            differ.append(str(f.relative_to(OUT.parent.parent)))
            if not a.check:
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text)
    if differ:
        print(f"{'differ' if a.check else 'written'}: {', '.join(differ)}")
    if refused:
        print(f"refused (a captured copy differs from its scenario beyond kswapd:): {', '.join(refused)}")
    return 1 if refused or (a.check and differ) else 0


if __name__ == "__main__":
    sys.exit(main())
