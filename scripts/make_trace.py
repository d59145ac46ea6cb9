#!/usr/bin/env python3
"""Generate a synthetic RX packet trace for the ``trace-replay`` scenario (deterministic).

What it is, honestly: a *synthetic* trace, not a capture. It is shaped after the on/off
structure that datacenter measurements report for server-facing links (Benson, Akella and
Maltz, "Network Traffic Characteristics of Data Centers in the Wild", IMC 2010: ON and OFF
periods with heavy-tailed, roughly lognormal lengths) and the synchronized fan-in of
partition/aggregate incast (Alizadeh et al., "Data Center TCP", SIGCOMM 2010), where many
responses arrive together and the receiver's link runs at line rate for milliseconds. The
exact parameters are ours (the defaults below), chosen so that the bursts reach line rate
of a 25 GbE port and last milliseconds to tens of milliseconds. At 1 ms per row the
sub-millisecond structure of real microbursts (Zhang et al., "High-Resolution Measurement of
Data Center Microbursts", IMC 2017) is averaged away.

Model, per 1 ms row:
* background: a lognormal AR(1) load around ``--base-pps`` (correlation time ~1 s);
* incast episodes: OFF gaps lognormal (median ``--off-median-ms``), ON lengths lognormal
  (median ``--on-median-ms``), during which the link runs at a fraction U(0.7, 1.0) of
  line rate;
* each row's count is a Poisson draw of the row's mean, capped at line rate.

Line rate in packets/s at 1500-byte packets: Gbit/s * 1e9 / (8 * 1538) (1500 + 14 Ethernet
header + 4 FCS + 8 preamble + 12 inter-frame gap = 1538 bytes on the wire); 25 GbE: 2,031,860.

The output is a CSV: '#' comment lines (the command and parameters), a header 'packets',
then one integer per interval. Same arguments -> byte-identical file (numpy PCG64 seeded
with --seed; no time, no host data).

    python scripts/make_trace.py                      # writes configs/traces/incast-onoff-25g.csv
    python scripts/make_trace.py --seed 2 --duration-s 30 -o /tmp/t.csv
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

WIRE_BYTES_1500 = 1538  # 1500 B payload frame + header, FCS, preamble, inter-frame gap
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "configs" / "traces" / "incast-onoff-25g.csv"


def line_rate_pps(gbps: float, packet_bytes: int = 1500) -> float:
    """Packets per second at line rate for ``packet_bytes`` frames (IP MTU-sized payload)."""
    return gbps * 1e9 / (8 * (packet_bytes + 38))


def make_trace(duration_s: float = 60.0, interval_ms: float = 1.0, seed: int = 1,
               line_gbps: float = 25.0, base_pps: float = 150e3, on_median_ms: float = 15.0,
               on_sigma: float = 0.8, off_median_ms: float = 400.0, off_sigma: float = 1.0) -> np.ndarray:
    """Packets per interval (int64). Deterministic for the same arguments."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * 1000.0 / interval_ms))
    cap = line_rate_pps(line_gbps) * interval_ms / 1000.0
    # Background: exp(AR(1)) around base_pps, correlation time ~1 s, sd of log ~0.3.
    phi = float(np.exp(-interval_ms / 1000.0))
    eps = rng.normal(0.0, 0.3 * np.sqrt(1 - phi * phi), n)
    x = np.empty(n)
    acc = rng.normal(0.0, 0.3)
    for i in range(n):
        acc = phi * acc + eps[i]
        x[i] = acc
    mean = base_pps * interval_ms / 1000.0 * np.exp(x - 0.045)   # -sd^2/2: keeps the mean at base
    # Incast episodes: alternate lognormal OFF gaps and ON bursts.
    t = 0.0
    total_ms = n * interval_ms
    while True:
        t += float(rng.lognormal(np.log(off_median_ms), off_sigma))
        if t >= total_ms:
            break
        on = float(rng.lognormal(np.log(on_median_ms), on_sigma))
        frac = float(rng.uniform(0.7, 1.0))
        a, b = int(t // interval_ms), min(n, int(np.ceil((t + on) / interval_ms)))
        mean[a:b] = np.maximum(mean[a:b], frac * cap)
        t += on
    counts = rng.poisson(np.minimum(mean, cap))
    return np.minimum(counts, int(cap)).astype(np.int64)


def write_csv(path: Path, counts: np.ndarray, header: list[str]) -> None:
    """Written to a temporary file beside ``path``, then renamed onto it (never half a file, never
    through a link: the rename replaces the link itself)."""
    lines = [f"# {h}" for h in header] + ["packets"] + [str(int(c)) for c in counts]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:      # one line, exit 2 (no usage block)
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output CSV (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="replace an existing --out file (the shipped trace needs none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--interval-ms", type=float, default=1.0)
    ap.add_argument("--line-gbps", type=float, default=25.0)
    ap.add_argument("--base-pps", type=float, default=150e3)
    ap.add_argument("--on-median-ms", type=float, default=15.0)
    ap.add_argument("--on-sigma", type=float, default=0.8)
    ap.add_argument("--off-median-ms", type=float, default=400.0)
    ap.add_argument("--off-sigma", type=float, default=1.0)
    a = ap.parse_args(argv)
    for name in ("duration_s", "interval_ms", "line_gbps", "on_median_ms", "off_median_ms"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(a, name)}")
    if a.base_pps < 0 or a.on_sigma < 0 or a.off_sigma < 0:
        ap.error("--base-pps, --on-sigma and --off-sigma must be >= 0")
    if (a.out.exists() or a.out.is_symlink()) and not a.force and a.out.resolve() != DEFAULT_OUT.resolve():
        ap.error(f"{a.out} exists: --force replaces it, or choose another --out")
    if not 0 <= a.seed < 2**63:
        ap.error(f"--seed must be in 0..{2**63 - 1}, got {a.seed}")
    for name in ("duration_s", "interval_ms", "line_gbps", "base_pps", "on_median_ms", "on_sigma", "off_median_ms",
                 "off_sigma"):
        if not math.isfinite(getattr(a, name)):
            ap.error(f"--{name.replace('_', '-')} must be a finite number, got {getattr(a, name)}")
    if a.duration_s * 1000.0 / a.interval_ms > 1e8:
        ap.error("--duration-s / --interval-ms gives more than 10^8 rows; make the trace shorter or the interval longer")
    counts = make_trace(a.duration_s, a.interval_ms, a.seed, a.line_gbps, a.base_pps, a.on_median_ms,
                        a.on_sigma, a.off_median_ms, a.off_sigma)
    params = (f"--seed {a.seed} --duration-s {a.duration_s:g} --interval-ms {a.interval_ms:g} "
              f"--line-gbps {a.line_gbps:g} --base-pps {a.base_pps:g} --on-median-ms {a.on_median_ms:g} "
              f"--on-sigma {a.on_sigma:g} --off-median-ms {a.off_median_ms:g} --off-sigma {a.off_sigma:g}")
    header = ["synthetic RX trace (not a capture): lognormal on/off incast at line rate over a "
              "lognormal AR(1) background; see scripts/make_trace.py",
              f"made by: python scripts/make_trace.py {params}",
              f"interval_ms={a.interval_ms:g} rows={counts.size} mean_pps="
              f"{counts.mean() * 1000.0 / a.interval_ms:.0f} line_rate_pps={line_rate_pps(a.line_gbps):.0f}"]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(a.out, counts, header)
    print(f"wrote {a.out}: {counts.size} rows, mean {counts.mean() * 1000.0 / a.interval_ms:.0f} pps, "
          f"max {counts.max() * 1000.0 / a.interval_ms:.0f} pps, "
          f"{(counts >= 0.7 * line_rate_pps(a.line_gbps) * a.interval_ms / 1000.0).mean():.1%} of rows "
          f"at >= 70 % of line rate", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
