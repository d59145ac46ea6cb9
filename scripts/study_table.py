"""The action/observation study's table (README "Learned policies: what was tried").

Reads each study run's held-out evaluation (``runs/study/<config>/<run>/eval/episodes.csv``, written
by ``python -m agents.train --config configs/train/study-<config>.yaml --runs-dir runs/study/<config>``
or by ``agents.evaluate`` on its model) and prints one markdown row per config: the learned policy's
mean score per test scenario, the mean and IQM over scenarios, knob changes per episode; then the
heuristics' rows from the first file.

    python scripts/study_table.py runs/study
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def iqm(x: np.ndarray) -> float:
    x = np.sort(np.asarray(x, float))
    n = len(x)
    lo, hi = int(np.floor(n * 0.25)), int(np.ceil(n * 0.75))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "runs/study")
    files = sorted(root.glob("*/*/eval/episodes.csv"))
    if not files:
        print(f"{root}: no */*/eval/episodes.csv", file=sys.stderr)
        return 2
    first = pd.read_csv(files[0])
    scs = list(dict.fromkeys(first["scenario"]))
    print("| policy | " + " | ".join(f"`{s}`" for s in scs) + " | mean | IQM of episode scores | knob changes / episode |")
    print("|---" * (len(scs) + 4) + "|")

    def row(name: str, d: pd.DataFrame) -> None:
        per = [d[d["scenario"] == s]["score"].mean() for s in scs]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per)
              + f" | {np.mean(per):.3f} | {iqm(d['score'].to_numpy()):.3f} | {d['knob_changes'].mean():.1f} |")

    for f in files:
        d = pd.read_csv(f)
        learned = d[~d["policy"].isin(["kernel-default", "psi", "wsf-raise", "v10-acked", "oracle-static"])]
        row(f"PPO `{f.parts[-4]}`", learned)
    for p in ("psi", "wsf-raise", "v10-acked", "kernel-default"):
        row(f"`{p}`", first[first["policy"] == p])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
