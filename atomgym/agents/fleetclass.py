"""A fleet's measured classes, its manifest, the `atomgym fleet` command and the docs tables.

atomgym/fleets.py generates the fleets (no agents); this module measures them with the agents'
machinery (the oracle grid of agents.oracle, the classes and rule of agents.deploy), so that the
generator sits below the agents and `suite:fleet-*` never reaches up into them.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from .. import safefiles
from ..envs.cost import score
from ..files import FileError, read_json
from ..fleets import (CLASSES, FAMILIES, FLEETS, REGIMES, FleetError, _gib, cache_dir, check_seed, generate, get_fleet,
                      materialise, read_manifest, write_fleet)
from ..sim.scenario import load_scenario
from . import deploy, identity, oracle

# ---- measured classification ----------------------------------------------------------------
# The classes and the rule are agents.deploy's (one decision rule for the fleet's manifest and for
# the deployment statistics of a report): ``headroom`` if the oracle-static bound (the best grid
# point of each episode) scores above 1 + deploy.HEADROOM_MARGIN on average; else ``uncontrollable``
# if the defaults lose packets or stall; else ``control`` (a negative control).
# the classes are agents.deploy's; atomgym.fleets names them for its regimes' expected class
assert set(CLASSES) == {deploy.HEADROOM, deploy.CONTROL, deploy.UNCONTROLLABLE}, CLASSES
CLASSIFY_SEEDS = (7000, 7001)       # disjoint from evaluate's 1000+ and oracle.FLEET_SEEDS (5000+)
CLASSIFY_DURATION_S = 30.0
CLASSIFY_VERSION = 4                # part of the cache key: a change of classify_metrics' output


def classify_metrics(default: list[dict], grid: list[list[dict]], points: list) -> dict[str, Any]:
    """The class of one machine from the per-seed metrics (episode_metrics dicts) of the defaults
    and of every grid point, by agents.deploy.classify; plus what the manifest shows of it."""
    rows = []
    for j, d in enumerate(default):
        rows.append({"policy": deploy.REFERENCE, "run": "-", "scenario": "m", "seed": j, "score": 1.0,
                     "drops_total": d["drops_total"], "stall_s": d["stall_s"]})
        rows.append({"policy": "oracle-static", "run": "-", "scenario": "m", "seed": j, "drops_total": 0.0,
                     "stall_s": 0.0, "score": max(score(per[j]["cost"], d["cost"]) for per in grid)})
    cls = deploy.classify(pd.DataFrame(rows))["m"]
    assert cls in CLASSES, cls
    c_def = float(np.mean([m["cost"] for m in default]))
    costs = [float(np.mean([m["cost"] for m in per])) for per in grid]
    b = int(np.argmin(costs))
    loss = {k: float(np.mean([m[k] for m in default])) for k in ("drops_total", "atomic_fail", "stall_s")}
    mf, wsf = points[b]
    # a grid point below the boot reserve exists on small THP machines (1 % of RAM < 67584 kB):
    # their headroom is in reserving less, which the manifest says
    res = [float(np.mean([m["reserved_mib_s"] for m in per])) for per in (default, grid[b])]
    return {"class": cls, "oracle_score": round(float(np.mean([r["score"] for r in rows[1::2]])), 6),
            "default_cost": round(c_def, 6), "best_cost": round(costs[b], 6),
            "best": {"min_free_kbytes": str(mf), "watermark_scale_factor": int(wsf)},
            "best_reserves": "less" if res[1] < res[0] else ("more" if res[1] > res[0] else "same"),
            "default_loss": {k: round(v, 6) for k, v in loss.items()},
            # every grid point's mean cost ("MF/WSF", WSF -1 = the kernel's): what a blind static setting costs
            "grid_costs": {f"{m}/{w}": round(c, 6) for (m, w), c in zip(points, costs)}}


def classify(sc, seeds: tuple[int, ...] = CLASSIFY_SEEDS, duration_s: float = CLASSIFY_DURATION_S,
             cache: Path | None = None) -> dict[str, Any]:
    """Measure one scenario's class: the oracle grid (agents.oracle.sweep, which includes the
    defaults) on ``seeds`` for ``duration_s``. Cached by the scenario's content, the seeds, the
    length, the grid, the cost's definition and the simulator's sources."""
    key = hashlib.sha256(json.dumps([identity.scenario_digest(sc), list(seeds), duration_s, oracle.GRID_MF,
                                     oracle.GRID_WSF, deploy.HEADROOM_MARGIN, CLASSIFY_VERSION, identity.cost_digest(),
                                     identity.simulator_digest()]).encode()).hexdigest()[:16]
    path = (cache or cache_dir() / "classes") / f"{key}.json"
    if path.is_file() and not path.is_symlink():
        try:
            d = read_json(path, 1 << 20, "a fleet class cached by atomgym.agents.fleetclass.classify")
            if isinstance(d, dict) and d.get("class") in CLASSES:
                return d
        except FileError:
            pass                                    # a damaged entry is recomputed and replaced
    pts, met = oracle.sweep(sc, np.asarray(seeds, dtype=np.int64), duration_s)
    ref = pts.index(("boot", -1))
    d = classify_metrics(met[ref], met, pts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(d, fh)
        os.replace(tmp, path)
    except OSError:
        pass                                        # no cache: the result is still right
    return d


def manifest(fleet: str, seed: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every machine's measured class, the mix, and what it was measured with."""
    fl = get_fleet(fleet)
    s = fl.seed if seed is None else check_seed(seed)
    fams = [f for f, n in fl.counts for _ in range(n)]
    machines = []
    for p, fam in zip(materialise(fl.name, s), fams):
        sc = load_scenario(p)
        d = classify(sc)
        machines.append({"name": sc.name, "family": fam, "digest": identity.scenario_digest(sc), **d})
        if progress:
            progress(f"{sc.name} {fam}: {d['class']} (default {d['default_cost']:.3g}, best {d['best_cost']:.3g})")
    mix = {c: sum(m["class"] == c for m in machines) for c in CLASSES}
    return {"fleet": fl.name, "seed": s, "machines_n": len(machines), "mix": mix,
            "mix_frac": {c: round(v / len(machines), 3) for c, v in mix.items()},
            "measured_with": {"seeds": list(CLASSIFY_SEEDS), "duration_s": CLASSIFY_DURATION_S,
                              "rule": "agents.deploy.classify", "margin": deploy.HEADROOM_MARGIN,
                              "grid": f"agents.oracle.grid_points() ({len(oracle.grid_points())} points)",
                              "cost": identity.cost_digest(),
                              "simulator": identity.simulator_digest()},
            "machines": machines}




# ---- `atomgym fleet` (its options: atomgym/schema.py FLEET_CMD, parsed by atomgym.cli) ----------
def cmd_fleet(args, out, err) -> int:
    try:
        return _fleet(args, out, err)
    except FleetError as e:
        print(f"atomgym: error: {e}", file=err)
        return 2
    except OSError as e:              # an unwritable --out, --manifest or fleet cache folder
        print(f"atomgym: error: {getattr(e, 'filename', None) or ''}: {e.strerror or e}", file=err)
        return 2


def _fleet(args, out, err) -> int:
    if args.families:
        for f in FAMILIES.values():
            out.write(f"{f.name}: {f.help}\n")
        for fl in FLEETS.values():
            out.write(f"fleet {fl.name} (seed {fl.seed}, {fl.size} machines): {fl.help}; "
                      + ", ".join(f"{k} x{n}" for k, n in fl.counts) + "\n")
        return 0
    if args.name is None:
        raise FleetError(f"fleet: give a fleet name ({', '.join(FLEETS)}) or --families")
    fl = get_fleet(args.name)
    seed = fl.seed if args.seed is None else args.seed      # checked by its Field (schema.FLEET_CMD)
    if args.force and not args.manifest:
        raise FleetError("--force applies to --manifest only (--out never overwrites)")
    if args.out:
        paths = write_fleet(fl.name, seed, Path(args.out))
        out.write(f"wrote {len(paths)} scenarios to {args.out} ({paths[0].name} .. {paths[-1].name})\n")
    if args.manifest:
        mp = Path(args.manifest)
        if (mp.exists() or mp.is_symlink()) and not args.force:
            raise FleetError(f"--manifest {mp}: exists; not overwritten (add --force to replace it)")
        d = manifest(fl.name, seed, progress=lambda s: print(s, file=err, flush=True))
        safefiles.replace_text(mp, json.dumps(d, indent=1) + "\n")
        out.write(f"{mp}: {d['machines_n']} machines, " + ", ".join(f"{c} {d['mix'][c]} ({d['mix_frac'][c]:.0%})"
                                                                      for c in CLASSES) + "\n")
    if not args.out and not args.manifest:
        for name, fam, text in generate(fl.name, seed):
            d = yaml.safe_load(text)
            m, n = d["machine"], d["nics"][0]
            kinds = "+".join(t["kind"] for t in d["traffic"])
            out.write(f"{name}  {fam:<15} {_gib(m['ram_mib']):>9} {m['kernel']:<4} thp={m['thp']:<7} "
                      f"{n['driver']} {n['line_rate_gbps']:g}GbE {n['queues']}x{n['ring_size']}  {kinds}\n")
    return 0


# ---- docs -------------------------------------------------------------------------------------


def families_markdown() -> str:
    """The families table of docs/scenarios.md "Fleets" (tests/test_fleets.py checks it is current):
    per regime, what it draws, the class expected, and per fleet the machines and the measured
    classes (H headroom / C control / U uncontrollable) from the committed manifests."""
    man = {f: read_manifest(f) for f in FLEETS}
    head = "| regime | what it draws | expected | " + " | ".join(
        f"{f} fleet: machines (H/C/U measured)" for f in FLEETS) + " |"
    rows = [head, "|" + "---|" * (3 + len(FLEETS))]
    for r in REGIMES.values():
        cells = []
        for f, fl in FLEETS.items():
            fam = f"{FAMILIES[next(k for k, _ in fl.counts if FAMILIES[k].regime == r.name)].split}-{r.name}"
            n = dict(fl.counts).get(fam, 0)
            ms = [x for x in (man[f] or {}).get("machines", []) if x["family"] == fam]
            got = "/".join(str(sum(x["class"] == c for x in ms)) for c in CLASSES) if ms else "-"
            cells.append(f"`{fam}`: {n} ({got})")
        rows.append(f"| {r.name} | {r.help} | {r.expect} | " + " | ".join(cells) + " |")
    tot = []
    for f, fl in FLEETS.items():
        m = man[f]
        tot.append(f"{fl.size} ({'/'.join(str(m['mix'][c]) for c in CLASSES)})" if m else str(fl.size))
    rows.append("| **all** | | | " + " | ".join(f"**{t}**" for t in tot) + " |")
    return "\n".join(rows) + "\n"


# blind static settings shown against the fleet (GRID keys "MF/WSF"): what "always reserve more" costs
BLIND = (("x2/-1", "min_free_kbytes x2"), ("0.01/-1", "min_free_kbytes 1 % of RAM"),
         ("135168/-1", "min_free_kbytes 135168 kB (TuneD)"), ("boot/100", "watermark_scale_factor 100"),
         ("boot/300", "watermark_scale_factor 300"))


def static_markdown(fleet: str = "test") -> str:
    """Blind static settings on a fleet, from its manifest (same seeds and length as the
    classification): the fleet cost ratio sum(C)/sum(C_def), the geometric mean of C/C_def per
    machine, and C/C_def on the negative controls (median, worst) and on the headroom machines;
    the last row is each machine's best grid point over its seeds, in hindsight (a bound, not a
    setting; evaluate's oracle-static picks per episode and is lower still)."""
    m = read_manifest(fleet)
    if m is None:
        return ""
    ms = m["machines"]
    c0 = np.array([x["grid_costs"]["boot/-1"] for x in ms])
    cls = np.array([x["class"] for x in ms])
    rows = [f"| setting (every machine of fleet {fleet}) | ΣC/ΣC_def | geometric mean C/C_def | negative controls: "
            "median, worst C/C_def | headroom: median C/C_def |", "|---|---|---|---|---|"]

    def row(label: str, c: np.ndarray) -> str:
        r = c / c0
        neg, hr = r[cls == "control"], r[cls == "headroom"]
        return (f"| {label} | {c.sum() / c0.sum():.3f} | {np.exp(np.log(r).mean()):.3f} | "
                f"{np.median(neg):.2f}, {neg.max():.2f} | {np.median(hr):.2f} |")
    for key, label in BLIND:
        rows.append(row(label, np.array([x["grid_costs"][key] for x in ms])))
    rows.append(row("*hindsight bound*: each machine's best grid point", np.array([x["best_cost"] for x in ms])))
    return "\n".join(rows) + "\n"
