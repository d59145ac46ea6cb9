"""`python -m agents.report EPISODES_CSV`: the Markdown tables of an evaluation (the README's).

Reads the ``episodes.csv`` that ``agents.evaluate`` wrote and prints two policy x scenario tables:
the normalised score (mean ± sample std over seeds) and the means of atomic allocation failures /
dropped packets / reserved MiB·s / direct-reclaim stall s. Rows and columns keep the order in which
policies and scenarios first appear in the file.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def load_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    need = {"policy", "scenario", "score", "atomic_fail", "drops_total", "reserved_mib_s", "stall_s"}
    if not rows or need - set(rows[0]):
        raise ValueError(f"{path}: not an agents.evaluate episodes.csv (needs columns {sorted(need)})")
    return rows


def tables(rows: list[dict[str, str]]) -> str:
    pols = list(dict.fromkeys(r["policy"] for r in rows))
    scs = list(dict.fromkeys(r["scenario"] for r in rows))

    def vals(p: str, s: str, k: str) -> np.ndarray:
        return np.array([float(r[k]) for r in rows if r["policy"] == p and r["scenario"] == s])

    head = "| policy | " + " | ".join(scs) + " |\n|---|" + "---|" * len(scs)
    score, other = [head], [head]
    for p in pols:
        a, b = [], []
        for s in scs:
            x = vals(p, s, "score")
            if not len(x):
                a.append("")
                b.append("")
                continue
            sd = x.std(ddof=1) if len(x) > 1 else 0.0
            a.append(f"{x.mean():.3f} ± {sd:.3f}")
            f, d, r, st = (vals(p, s, k).mean() for k in ("atomic_fail", "drops_total", "reserved_mib_s", "stall_s"))
            b.append(f"{f:.0f} / {d:.0f} / {r:.0f} / {st:.1f}")
        score.append(f"| `{p}` | " + " | ".join(a) + " |")
        other.append(f"| `{p}` | " + " | ".join(b) + " |")
    return ("Score (the env's normalised score: 1 = kernel default, 2 = zero cost; mean ± std over seeds):\n\n"
            + "\n".join(score) + "\n\nAtomic allocation failures / dropped packets / reserved MiB·s / "
            "direct-reclaim stall s (means over seeds):\n\n" + "\n".join(other))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agents.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("episodes_csv", type=Path)
    args = ap.parse_args(argv)
    try:
        rows = load_rows(args.episodes_csv)
    except ValueError as e:
        print(f"agents.report: error: {e}", file=sys.stderr)
        return 2
    print(tables(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
