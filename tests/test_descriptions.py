"""Every scenario's description states numbers its YAML holds (issue 25: two test descriptions
disagreed with their files on queues, line rate, rates and burst length).

``description_errors`` reads the numbers a description states with a unit (RAM in GiB/MiB, GbE,
queues x ring, kpps/Mpps, ms, burst periods in s, reader MiB/s or GiB/s, kswapd pages/ms, tcp_rmem
MiB, page cache/anon/kernel/amplitude/jitter %, pages per burst) through a table of regexes, and
compares each with the fields that unit can name (``CANDIDATES``: the scenario's fields, the ends
of its ``randomize`` ranges, and the few quantities the docs derive from fields: the line rate in
packets/s, a diurnal day's trough and peak, an MMPP cycle, a trace's mean rate and the arguments its
header records). A number matches
when it is within the precision it is written with (a ``~`` number: within 25 %).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from atomgym.sim.scenario import list_scenarios, load_scenario, load_trace, resolve_path

NUM = r"(\d+(?:\.\d+)?)"
UNIT_PPS = {"kpps": 1e3, "Mpps": 1e6}


def _line_pps(gbps: float) -> float:
    return gbps * 1e9 / (8 * 1538)


def _rand(sc, suffix: str) -> list[float]:
    """The ends of every randomize range whose key ends with ``suffix``."""
    return [float(v) for k, r in sc.randomize.items() if k.endswith(suffix) for v in r]


def candidates(sc) -> dict[str, list[float]]:
    """unit -> the values a number stated in that unit may name (fields, randomize ends, derived)."""
    c: dict[str, list[float]] = {k: [] for k in ("ram_mib", "gbps", "queues", "ring", "pps", "ms", "period_s",
                                                 "mib_s", "pages_ms", "rcvbuf_mib", "pc", "anon", "kern",
                                                 "amp", "jitter", "ws_mib", "pages", "kernel")}
    if sc.machine.snapshot is None:
        c["ram_mib"] += [sc.machine.ram_mib] + _rand(sc, "ram_mib")
        c["kernel"].append(float(sc.machine.kernel))
    for n in sc.nics:
        c["gbps"].append(n.line_rate_gbps)
        c["queues"].append(n.queues)
        c["ring"].append(n.ring_size)
        c["pps"] += [n.app_drain_pps, _line_pps(n.line_rate_gbps)]
        c["rcvbuf_mib"].append(n.rcvbuf_kb / 1024)
    c["queues"] += _rand(sc, "queues")
    c["ring"] += _rand(sc, "ring_size")
    c["rcvbuf_mib"] += [v / 1024 for v in _rand(sc, "rcvbuf_kb")]
    c["pps"] += _rand(sc, "rate_pps") + _rand(sc, "app_drain_pps") + _rand(sc, "burst_pps")
    for t in sc.traffic:
        c["pps"] += [t.rate_pps, t.burst_pps]
        if t.kind == "diurnal":
            c["pps"] += [t.rate_pps * (1 - t.amplitude), t.rate_pps * (1 + t.amplitude)]
            c["amp"].append(t.amplitude)
        if t.kind == "replay" and t.trace:
            path = resolve_path(sc, t.trace)
            c["pps"].append(float(np.mean(load_trace(path))) * 1000.0 / t.trace_interval_ms)
            # the generator's arguments recorded in the trace's header (ON/OFF medians in ms)
            head = "".join(line for line in path.read_text().splitlines(True)[:5] if line.startswith("#"))
            c["ms"] += [float(v) for v in re.findall(r"--[a-z-]+-ms (\d+(?:\.\d+)?)", head)]
        if t.kind == "incast":
            c["ms"] += [t.burst_ms, t.period_ms]
            c["period_s"].append(t.period_ms / 1000)
            c["jitter"].append(t.jitter)
        if t.kind == "mmpp":
            c["ms"] += [t.mean_on_ms, t.mean_off_ms]
            c["period_s"] += [t.mean_off_ms / 1000, (t.mean_on_ms + t.mean_off_ms) / 1000]
        if t.kind == "diurnal":
            c["period_s"].append(t.period_ms / 1000)
    c["ms"] += _rand(sc, "burst_ms") + _rand(sc, "period_ms") + _rand(sc, "wake_latency_ms")
    c["period_s"] += [v / 1000 for v in _rand(sc, "period_ms")]
    c["ms"] += [sc.kswapd.wake_latency_ms, sc.tick_ms]
    c["pages_ms"] += [sc.kswapd.reclaim_pages_per_ms, sc.kswapd.direct_reclaim_pages_per_ms]
    c["pages_ms"] += _rand(sc, "reclaim_pages_per_ms")
    for w in sc.workloads:
        if w.kind in ("stream_read", "anon_hog", "churn"):
            c["mib_s"].append(w.rate_mib_s)
            c["pages_ms"].append(w.rate_mib_s * 256 / 1000)      # 256 pages a MiB
        if w.kind == "stream_read":
            c["ws_mib"] += [w.working_set_mib] + ([w.volume_mib] if w.volume_mib else [])
        if w.kind == "anon_hog":
            c["ws_mib"].append(w.peak_mib)
        if w.kind == "atomic_alloc":
            c["ms"] += [w.interval_ms, w.hold_ms] + [s.hold_ms for s in w.shots]
            c["pages"] += [w.pages_per_burst] + [s.pages for s in w.shots]
    c["mib_s"] += _rand(sc, "rate_mib_s")
    c["pc"] += [sc.memory.page_cache_frac * 100] + [v * 100 for v in _rand(sc, "page_cache_frac")]
    c["anon"] += [sc.memory.anon_frac * 100] + [v * 100 for v in _rand(sc, "anon_frac")]
    c["kern"].append(sc.memory.kernel_frac * 100)
    c["amp"] = [v * 100 for v in c["amp"]]
    c["jitter"] = [v * 100 for v in c["jitter"]]
    return c


def _mib(v: str, unit: str) -> float:
    return float(v) * (1024 if unit.startswith("GiB") else 1)


# (what, regex, unit of CANDIDATES, value of the match's groups -> list of stated numbers)
RULES: list[tuple[str, str, str, object]] = [
    ("RAM", NUM + r" (GiB|MiB) (?:single-node |single-CPU )?(?:6\.\d+ )(?:server|host|guest|storage node)",
     "ram_mib", lambda m: [_mib(m[1], m[2])]),
    ("RAM range", r"(\d+)-(\d+) GiB(?: of RAM| \(drawn\))", "ram_mib", lambda m: [_mib(m[1], "GiB"), _mib(m[2], "GiB")]),
    ("kernel", r"(?:GiB|MiB) (?:single-node |single-CPU )?(6\.\d+) ", "kernel", lambda m: [float(m[1])]),
    ("line rate", NUM + r" GbE", "gbps", lambda m: [float(m[1])]),
    ("queues", r"(\d+)(?: RX)?(?: queues?)? x (\d+)\b(?! pages| KiB| B\b)", "queues", lambda m: [float(m[1])]),
    ("ring", r"(\d+)(?: RX)?(?: queues?)? x (\d+)\b(?! pages| KiB| B\b)", "ring", lambda m: [float(m[2])]),
    ("queue range", r"(?:RX queues |\b)(\d+)-(\d+)(?: RX)? queues|RX queues (\d+)-(\d+)", "queues",
     lambda m: [float(x) for x in m.groups() if x]),
    ("ring range", r"ring (\d+)-(\d+) descriptors", "ring", lambda m: [float(m[1]), float(m[2])]),
    ("packet rate", r"(~?)" + NUM + r"(?:-" + NUM + r")? (kpps|Mpps)", "pps",
     lambda m: [float(x) * UNIT_PPS[m[4]] for x in (m[2], m[3]) if x]),
    ("duration", r"(~?)" + NUM + r"(?:-" + NUM + r")? ms\b", "ms", lambda m: [float(x) for x in (m[2], m[3]) if x]),
    ("period", r"every (~?)" + NUM + r" s\b", "period_s", lambda m: [float(m[2])]),
    ("period range", r"period (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?) s\b", "period_s", lambda m: [float(m[1]), float(m[2])]),
    ("reader rate", r"()" + NUM + r"(?:-" + NUM + r")? (GiB|MiB)/s", "mib_s",
     lambda m: [_mib(x, m[4]) for x in (m[2], m[3]) if x]),
    ("kswapd rate", r"()" + NUM + r"(?:-" + NUM + r")? pages/ms", "pages_ms",
     lambda m: [float(x) for x in (m[2], m[3]) if x]),
    ("tcp_rmem", r"tcp_rmem max (?:raised to )?(\d+)(?:-(\d+))? MiB", "rcvbuf_mib",
     lambda m: [float(x) for x in (m[1], m[2]) if x]),
    ("page cache", r"(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))? % (?:page )?cache|page cache (\d+)-(\d+) %|page cache \((\d+) %",
     "pc", lambda m: [float(x) for x in m.groups() if x]),
    ("anon", r"(\d+(?:\.\d+)?) % anon|anon (\d+)-(\d+) %", "anon", lambda m: [float(x) for x in m.groups() if x]),
    ("kernel memory", r"(\d+(?:\.\d+)?) % kernel", "kern", lambda m: [float(m[1])]),
    ("amplitude", r"amplitude (\d+(?:\.\d+)?) %", "amp", lambda m: [float(m[1])]),
    ("jitter", r"jitter (\d+(?:\.\d+)?) %", "jitter", lambda m: [float(m[1])]),
    ("data set", r"(?:streams|reads) an? " + NUM + r" (GiB|MiB) (?:data set|file)|reader over " + NUM + r" (GiB|MiB)",
     "ws_mib", lambda m: [_mib(m[1], m[2])] if m[1] else [_mib(m[3], m[4])]),
    ("pages per burst", r"(\d+)-page|bursts of (\d+) pages", "pages", lambda m: [float(x) for x in m.groups() if x]),
]
# rules whose "~" numbers are derived from several fields (socket growth in pages/ms, a burst's
# excess over the application's reading) rather than read from one: not checked
SKIP_APPROX = {"kswapd rate", "packet rate"}


def _matches(stated: float, text: str, cands: list[float], approx: bool, scale: float = 1.0) -> bool:
    """``stated`` (``text`` as written, times ``scale`` into the candidates' unit) is one of ``cands``
    to the precision it is written with: half a unit of its last digit, or 0.5 %."""
    dec = len(text.split(".")[1]) if "." in text else 0
    tol = 0.5 * 10.0 ** -dec * scale
    for c in cands:
        if approx:
            if abs(c - stated) <= 0.25 * max(abs(c), abs(stated)) + tol:
                return True
        elif abs(c - stated) <= max(tol * (1 + 1e-9), 0.005 * abs(c)):
            return True
        elif dec == 0 and stated >= 10 and abs(c - stated) <= 0.01 * abs(c):
            return True
    return False


def description_errors(sc, description: str | None = None) -> list[str]:
    """One line per number the description states that no field of its unit holds."""
    text = " ".join((sc.description if description is None else description).split())
    cands = candidates(sc)
    errs = []
    for what, rx, unit, get in RULES:
        for m in re.finditer(rx, text):
            approx = "~" in text[max(m.start() - 1, 0):m.start() + 1] or (bool(m.groups()) and m.group(1) == "~")
            if approx and what in SKIP_APPROX:
                continue
            if not cands[unit]:
                continue                         # a snapshot machine's RAM: the snapshot says it
            nums = [g for g in m.groups() if g and re.fullmatch(r"\d+(?:\.\d+)?", g)]
            for v, raw in zip(get(m), nums if what not in ("reader rate",) else nums):
                if not _matches(v, raw, cands[unit], approx, v / float(raw) if float(raw) else 1.0):
                    shown = sorted({round(c, 4) for c in cands[unit]})
                    errs.append(f"{sc.name}: {what}: {m.group(0)!r} states {v:g}, the YAML has {shown}")
    return errs


@pytest.mark.parametrize("name", list_scenarios())
def test_shipped_description_matches_yaml(name):
    assert description_errors(load_scenario(name)) == []


# the two descriptions issue 25 found wrong, as they were: the check must catch them
OLD_2G = ("Held-out test scenario (configs/suites/test.txt). A 2 GiB 6.18 host with an ixgbe-style "
          "dev_alloc_pages NIC (8 queues x 512, 10 GbE) whose load follows a compressed \"day\" of 120 s "
          "(mean 250 kpps, amplitude 80 %) with 50 ms bursts every ~1 s on top; a 768 MiB/s reader keeps the "
          "page cache busy. Quiet at night, failing at the peak: a setting that is right at noon wastes memory "
          "at night.")
OLD_16G = ("Held-out test scenario (configs/suites/test.txt). A 16 GiB 6.18 server with a 25 GbE dev_alloc_pages "
           "NIC (i40e-style, 32 queues x 512) taking on/off bursts (Markov-modulated: 1.6 Mpps for ~60 ms, off for "
           "~600 ms, on a 100 kpps base), read by the application at 500 kpps, while a 1.5 GiB/s reader streams a "
           "64 GiB data set through the page cache.")


def test_the_old_wrong_descriptions_fail():
    e2 = description_errors(load_scenario("test-2g-devalloc-diurnal"), OLD_2G)
    assert {e.split(": ")[1] for e in e2} >= {"queues", "line rate", "duration", "reader rate"}, e2
    e16 = description_errors(load_scenario("test-16g-devalloc-mmpp"), OLD_16G)
    assert {e.split(": ")[1] for e in e16} >= {"packet rate", "duration", "reader rate"}, e16
    assert any("1.6 Mpps" in e for e in e16) and any("~60 ms" in e for e in e16)


def test_each_rule_can_fail():
    """Every rule finds its number in a sentence written for it and refuses a wrong value."""
    sc = load_scenario("incast-pagecache")
    wrong = {
        "RAM": "A 7 GiB 6.18 server", "kernel": "An 8 GiB 6.1 server", "line rate": "a 40 GbE NIC",
        "queues": "(12 RX queues x 1024 descriptors", "ring": "16 RX queues x 2048", "packet rate": "Poisson 170 kpps",
        "duration": "for 45 ms", "period": "every ~0.9 s", "reader rate": "at 3 GiB/s",
        "kswapd rate": "kswapd alone, 123 pages/ms", "tcp_rmem": "tcp_rmem max raised to 32 MiB",
        "page cache": "(50 % cache", "anon": "30 % anon", "kernel memory": "9 % kernel", "jitter": "jitter 10 %",
    }
    for what, sentence in wrong.items():
        errs = description_errors(sc, sentence)
        assert any(e.split(": ")[1] == what for e in errs), (what, errs)
    others = [("train-wide-pagepool", "RAM range", "2-64 GiB of RAM"), ("train-wide-pagepool", "queue range", "8-48 RX queues"),
              ("train-randomized", "ring range", "ring 512-2048 descriptors"),
              ("train-randomized", "period range", "period 0.2-3 s"), ("diurnal-bursts", "amplitude", "amplitude 60 %"),
              ("test-64g-incast-100g", "data set", "streams a 128 GiB data set"),
              ("real-atomic-stream", "pages per burst", "makes 256-page GFP_ATOMIC bursts")]
    for name, what, sentence in others:
        sc = load_scenario(name)
        assert description_errors(sc, sentence.replace("2-64", "1-64").replace("8-48", "8-64").replace(
            "512-2048", "512-4096").replace("0.2-3", "0.2-2").replace("60 %", "70 %").replace("128", "256").replace(
            "256-page", "512-page")) == [], (name, what)                   # the right numbers pass
        errs = description_errors(sc, sentence)
        assert any(e.split(": ")[1] == what for e in errs), (name, what, errs)
