"""The PNG of one run for `atomgym fidelity --plots DIR`: the real and the simulated time series
overlaid (fidelity.real_series and sim_metrics' series, sampled at the capture's interval).

Panels: the largest zone's free pages with its min/low/high watermarks (unboosted); its
watermark boost; kswapd (runs and pages it reclaimed, cumulative) and direct-reclaim stalls;
failed atomic pages (cumulative). Real: solid lines, simulator: dashed.
"""
from __future__ import annotations

import io
from typing import Any

REAL, SIM = "tab:blue", "tab:orange"


def render(m: dict[str, Any], rep: dict[str, Any]) -> bytes:
    """The PNG (bytes) of a measured run (fidelity.measure) and its report (fidelity.judge)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    r, s = m["series"]["real"], m["series"]["sim"]
    fig = Figure(figsize=(10, 10), dpi=80)
    ax = fig.subplots(4, 1, sharex=True)
    for ser, ls, who in ((r, "-", "real"), (s, "--", "sim")):
        ax[0].plot(ser["t"], ser["free"], ls, color=REAL if who == "real" else SIM, lw=1.2, label=f"free ({who})")
        for k, c in (("min", "tab:red"), ("low", "tab:olive"), ("high", "tab:green")):
            ax[0].plot(ser["t"], ser[k], ls, color=c, lw=0.8, label=f"{k} ({who})")
        ax[1].plot(ser["t"], ser["boost"], ls, color=REAL if who == "real" else SIM, label=who)
        ax[2].plot(ser["t"], ser["kswapd_runs"], ls, color="tab:purple", label=f"kswapd runs ({who})")
        ax[2].plot(ser["t"], ser["direct_reclaim_stalls"], ls, color="tab:brown", label=f"direct-reclaim stalls ({who})")
        ax[3].plot(ser["t"], ser["atomic_fail_pages"], ls, color=REAL if who == "real" else SIM, label=who)
    hi = max(max(r["high"]), max(s["high"]))
    ax[0].set_ylim(0, max(3 * hi, 1))     # the watermarks' neighbourhood: the prefill's free memory is off scale
    ax[0].set_ylabel(f"pages, zone {m['zone']}")
    ax[0].set_title(f"{m['run']}: scenario {m['scenario']}, kernel {m['kernel']} — real solid, simulator dashed "
                    f"({rep['agree']} of {rep['agree'] + rep['differ']} metrics agree)", fontsize=9)
    ax[1].set_ylabel("boost (pages)")
    ax[2].set_ylabel("cumulative")
    ax[3].set_ylabel("failed atomic pages")
    ax[3].set_xlabel("scenario time (s)")
    for a in ax:
        a.legend(fontsize=6, ncol=4, loc="upper left")
        a.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
