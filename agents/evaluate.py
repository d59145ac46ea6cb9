"""`python -m agents.evaluate --policies P[,P...] --scenarios S[,S...] --seeds N --out DIR
[--duration-s X] [--seed-base K] [--force] [--cache-dir D]`

Runs every (policy, scenario, seed) episode on the batched simulator (one Simulator with N machines
per (policy, scenario)); a policy given as the path of a trained model .zip (agents.train) runs
through the Gymnasium env instead, on the same simulator seeds (machines, draws, traffic) as the baselines; writes one CSV row per episode to DIR/episodes.csv (an existing file is
never overwritten: episodes-1.csv, -2, ... unless --force), the knob changes' one-line reasons to
DIR/actions.log, and prints a per-(scenario, policy) summary: mean +- std and 95 % CI.

Episode cost = minus the environment's episode return with its default weights
(atomgym/envs/core.py DEFAULT_WEIGHTS, docs/environment.md "Reward"):
    cost = 1e-3 drops + 1e-3 atomic failures + 1e-3 reserved MiB.s (sum of high + boost) + 1.0 stall s
           + 1e-2 knob changes (sysctl writes + userspace boost requests) + 100 if deadlocked
score = 1 - (cost - cost(kernel-default)) / max(cost(kernel-default), 1), same scenario and seed
(the env's normalised score): 1.0 = as the kernel default, 2.0 = zero cost, < 1 worse.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from agents import baselines
# one definition of the reward weights and the score: the env's (atomgym/envs/core.py)
from atomgym.envs.core import DEFAULT_DEADLOCK_PENALTY as DEADLOCK
from atomgym.envs.core import DEFAULT_WEIGHTS as _W
from atomgym.envs.core import score as env_score
from atomgym.kernel.zones import PAGE_KB

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "runs" / "best-static-cache"

W_DROPS, W_FAIL, W_RESERVED, W_STALL_S, W_KNOB = (_W["drops"], _W["atomic_fail"], _W["reserved_mib_s"],
                                                  _W["stall_s"], _W["knob_changes"])
METRICS = ("drops_total", "drops_rx_missed", "drops_rcvbuf", "drops_pfmemalloc", "atomic_fail", "fail_atomic",
           "fail_kernel", "fail_nowait", "fail_memalloc", "refill_deferred", "reserved_mib_s", "min_reserve_mib_s", "stall_s",
           "throttle_stall_s", "kswapd_runs", "kswapd_wakeups", "allocstall", "oom_kill", "knob_changes",
           "tuner_actions", "terminated", "final_min_free_kbytes", "final_wsf", "cost", "score")
# Part of the best-static cache key: bump when the cost's definition changes (2: reserved memory is
# sum(high + boost) x time, was sum(min) x time), so no sweep chosen under an old cost is reused.
COST_VERSION = 2
# best-static grid: min_free_kbytes (-1 = kernel value; "x2" twice it; fractions of RAM) x wsf
GRID_MF = ("boot", "x2", 0.01, 0.02, 0.03, 135168)
GRID_WSF = (-1, 100, 300, 1000)


def episode_metrics(sim, i: int) -> dict[str, float]:
    """The domain metrics of machine i's episode (cumulative counters since reset)."""
    c = sim.counter_dict(i)
    m = {
        "drops_rx_missed": c["rx_missed"], "drops_rcvbuf": c["rcvbuf_drop"], "drops_pfmemalloc": c["pfmemalloc_drop"],
        "atomic_fail": c["atomic_fail"], "fail_atomic": c["fail_atomic"], "fail_kernel": c["fail_kernel"],
        "fail_nowait": c["fail_nowait"], "fail_memalloc": c["fail_memalloc"], "refill_deferred": c["refill_deferred"],
        "reserved_mib_s": c["reserved_mib_ms"] / 1000.0, "min_reserve_mib_s": c["min_reserve_mib_ms"] / 1000.0,
        "stall_s": c["direct_reclaim_stall_us"] / 1e6,
        "throttle_stall_s": c["throttle_stall_us"] / 1e6, "kswapd_runs": c["pageoutrun"],
        "kswapd_wakeups": c["kswapd_wakeups"],
        "allocstall": sum(v for k, v in c.items() if k.startswith("allocstall_")), "oom_kill": c["oom_kill"],
        "knob_changes": c["knob_writes"] + c["boost_actions"], "tuner_actions": c["tuner_actions"],
        "terminated": float(sim.terminated[i]), "final_min_free_kbytes": float(sim.min_free_kbytes[i]),
        "final_wsf": float(sim.watermark_scale_factor[i]),
    }
    m["drops_total"] = m["drops_rx_missed"] + m["drops_rcvbuf"] + m["drops_pfmemalloc"]
    m["cost"] = (W_DROPS * m["drops_total"] + W_FAIL * m["atomic_fail"] + W_STALL_S * m["stall_s"]
                 + W_RESERVED * m["reserved_mib_s"] + W_KNOB * m["knob_changes"] + DEADLOCK * m["terminated"])
    return m


def run_policy(policy: baselines.Baseline, scenario, seeds: np.ndarray, duration_s: float,
               log: list[str] | None = None) -> list[dict[str, float]]:
    """Run one policy on one scenario for every seed in one batched Simulator."""
    from atomgym.sim import Simulator
    B = len(seeds)
    sim = Simulator(scenario, n_machines=B, tuner=policy.tuner)
    sim.reset(seeds)
    reasons = policy.reset(sim)
    n_total = int(round(duration_s * 1000.0 / sim.tick_ms))
    chunk = int(round(policy.interval_ms / sim.tick_ms)) if policy.interval_ms > 0 else 10000
    chunk = max(1, chunk)
    done = 0
    while done < n_total:
        n = min(chunk, n_total - done)
        sim.advance(n)
        done += n
        if policy.interval_ms > 0:
            reasons += [f"t={done * sim.tick_ms:.0f} ms {r}" for r in policy.act(sim)]
    out = []
    for i in range(B):
        out.append(episode_metrics(sim, i))
        if log is not None:
            log += [f"{policy.name} {scenario.name} seed {int(seeds[i])}: {r}" for r in sim.tuner_actions(i)]
    if log is not None:
        log += [f"{policy.name} {scenario.name}: {r}" for r in reasons]
    return out


def load_model(path: Path):
    """A trained SB3 model .zip (PPO or SAC, read from the zip's policy class) and the env keyword
    arguments it was trained with (decision_interval_ms from the run folder's config.yml, if any)."""
    import zipfile

    import yaml
    from stable_baselines3 import PPO, SAC
    try:
        data = json.loads(zipfile.ZipFile(path).read("data"))
        module = data["policy_class"]["__module__"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a stable-baselines3 model .zip ({e})") from None
    algo = SAC if ".sac." in module else PPO
    kw: dict = {}
    for cfg in (path.parent / "config.yml", path.parent.parent / "config.yml"):
        if cfg.is_file():
            di = (yaml.safe_load(cfg.read_text()) or {}).get("decision_interval_ms")
            if di is not None:
                kw["decision_interval_ms"] = float(di)
            break
    return algo.load(str(path), device="cpu"), kw


def run_model(path: Path, scenario, seeds: np.ndarray, duration_s: float) -> tuple[list[dict], np.ndarray]:
    """A trained SB3 model (a .zip from agents.train) through the Gymnasium env (AtomEnv, one
    episode per seed, deterministic actions), each episode on the simulator seed the baselines get
    (the same machine, randomised draws and traffic). Returns the metrics and the simulator seeds."""
    import gymnasium

    from atomgym.envs.atom_env import AtomEnv
    model, env_kw = load_model(path)
    env_kw["action_type"] = "discrete" if isinstance(model.action_space, gymnasium.spaces.Discrete) else "continuous"
    out, sim_seeds = [], []
    for s in seeds:
        env = AtomEnv(scenario, duration_s=duration_s, **env_kw)
        obs, info = env.reset(seed=int(s), options={"sim_seed": int(s)})   # the baselines' machine
        sim_seeds.append(int(info["sim_seed"]))
        done = False
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, _, term, trunc, info = env.step(a)
            done = bool(term or trunc)
        out.append(episode_metrics(env.unwrapped.core.sim, 0))
        env.close()
    return out, np.array(sim_seeds, dtype=np.int64)


def _grid(sim) -> list[tuple[str, object, int]]:
    return [(str(mf), mf, wsf) for mf in GRID_MF for wsf in GRID_WSF]


def best_static(scenario, seeds: np.ndarray, duration_s: float, cache_dir: Path) -> tuple[int | None, int | None, dict]:
    """Sweep GRID_MF x GRID_WSF on the given seeds (all points in one batched Simulator); the
    point with the lowest mean cost wins. Cached per (scenario file content, seeds, duration, grid,
    weights, cost version, engine sources): a sweep run by another simulator is never reused."""
    from atomgym.sim import Simulator
    from atomgym.sim.engine import sources_digest
    key_src = json.dumps([scenario.name, Path(scenario.source).read_text() if scenario.source else "",
                          [int(s) for s in seeds], duration_s, GRID_MF, GRID_WSF, W_DROPS, W_FAIL, W_STALL_S, W_RESERVED, W_KNOB,
                          COST_VERSION, sources_digest()])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    cache = cache_dir / f"{scenario.name}__{key}.json"
    if cache.is_file():
        d = json.loads(cache.read_text())
        return d["mf_kb"], d["wsf"], d
    pts = [(mf, wsf) for mf in GRID_MF for wsf in GRID_WSF]
    N = len(seeds)
    sim = Simulator(scenario, n_machines=len(pts) * N)
    sim.reset(np.tile(seeds, len(pts)))
    boot = sim.min_free_kbytes.copy()
    ram_kb = sim.managed.sum(axis=1) * PAGE_KB
    mfw = np.full(sim.B, -1, np.int64)
    wsfw = np.full(sim.B, -1, np.int64)
    for p, (mf, wsf) in enumerate(pts):
        for j in range(N):
            b = p * N + j
            mfw[b] = -1 if mf == "boot" else 2 * boot[b] if mf == "x2" else int(ram_kb[b] * mf) if isinstance(mf, float) else mf
            wsfw[b] = wsf
    sim.set_knobs(min_free_kbytes=mfw, watermark_scale_factor=wsfw)
    sim.advance(int(round(duration_s * 1000.0 / sim.tick_ms)))
    costs = np.array([episode_metrics(sim, b)["cost"] for b in range(sim.B)]).reshape(len(pts), N).mean(axis=1)
    best = int(np.argmin(costs))
    # the absolute value written (machines of a scenario share their RAM and boot value unless randomised)
    mf_kb = None if pts[best][0] == "boot" else int(np.median(mfw[best * N:(best + 1) * N]))
    wsf = None if pts[best][1] < 0 else int(pts[best][1])
    d = {"scenario": scenario.name, "seeds": [int(s) for s in seeds], "duration_s": duration_s, "mf_kb": mf_kb,
         "wsf": wsf, "grid": [{"mf": str(mf), "wsf": w, "mean_cost": float(c)} for (mf, w), c in zip(pts, costs)]}
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(d, indent=1))
    return mf_kb, wsf, d


def _free_name(out: Path, stem: str, suffix: str, force: bool) -> Path:
    p = out / f"{stem}{suffix}"
    k = 1
    while p.exists() and not force:
        p = out / f"{stem}-{k}{suffix}"
        k += 1
    return p


# Student's t, two-sided 95 % (0.975 quantile), degrees of freedom 1..30 (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom: the table up to 30, then
    the Cornish-Fisher expansion around z = 1.95996 (error < 1e-4 from df 31 on)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def _ci95(x: np.ndarray) -> float:
    """Half-width of the 95 % t confidence interval of the mean."""
    n = len(x)
    if n < 2:
        return float("nan")
    return float(t975(n - 1) * x.std(ddof=1) / math.sqrt(n))


def summarize(rows: list[dict]) -> str:
    pw = max([15] + [len(r["policy"]) for r in rows])
    lines = [f"{'scenario':<20} {'policy':<{pw}} {'score mean±std [95% CI]':<34} {'atomic_fail':>11} {'drops':>9} "
             f"{'reserved MiB·s':>14} {'stall s':>8} {'knob chg':>8}"]
    keys = []
    for r in rows:
        if (r["scenario"], r["policy"]) not in keys:
            keys.append((r["scenario"], r["policy"]))
    for sc, po in keys:
        rr = [r for r in rows if r["scenario"] == sc and r["policy"] == po]
        s = np.array([r["score"] for r in rr])
        sd = s.std(ddof=1) if len(s) > 1 else 0.0
        h = _ci95(s)
        mean = lambda k: float(np.mean([r[k] for r in rr]))  # noqa: E731
        lines.append(f"{sc:<20} {po:<{pw}} {s.mean():+.3f}±{sd:.3f} [{s.mean() - h:+.3f},{s.mean() + h:+.3f}]".ljust(56 + pw)
                     + f" {mean('atomic_fail'):>11.0f} {mean('drops_total'):>9.0f} {mean('reserved_mib_s'):>14.0f}"
                     f" {mean('stall_s'):>8.2f} {mean('knob_changes'):>8.1f}")
    pols = list(dict.fromkeys(po for _, po in keys))
    scs = list(dict.fromkeys(sc for sc, _ in keys))
    if len(scs) > 1:
        lines.append("")
        lines.append(f"{'policy':<{pw}} {'mean score over scenarios':>26} {'better / worse than default (95% CI)':>38}")
        for po in pols:
            per, better, worse = [], 0, 0
            for sc in scs:
                s = np.array([r["score"] for r in rows if r["scenario"] == sc and r["policy"] == po])
                if not len(s):
                    continue
                per.append(s.mean())
                h = _ci95(s)
                if not math.isnan(h) and s.mean() - h > 1.0:
                    better += 1
                elif not math.isnan(h) and s.mean() + h < 1.0:
                    worse += 1
            lines.append(f"{po:<{pw}} {np.mean(per):>26.3f} {f'{better} / {worse} of {len(per)}':>38}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from atomgym.sim.scenario import ScenarioError, list_scenarios, load_scenario
    ap = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n\n")[1])
    ap.add_argument("--policies", required=True, help=f"comma-separated, of: {', '.join(baselines.names())}")
    ap.add_argument("--scenarios", required=True, help="comma-separated shipped scenario names or YAML paths")
    ap.add_argument("--seeds", type=int, default=3, help="episodes per (policy, scenario)")
    ap.add_argument("--seed-base", type=int, default=1000, help="evaluation seeds are seed-base .. seed-base+N-1")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--duration-s", type=float, default=None, help="episode length (default: the scenario's)")
    ap.add_argument("--force", action="store_true", help="overwrite DIR/episodes.csv")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="best-static sweep cache")
    args = ap.parse_args(argv)
    pols = [p for p in args.policies.split(",") if p]
    bad = [p for p in pols if p not in baselines.names() and not (p.endswith(".zip") and Path(p).is_file())]
    if bad:
        print(f"error: unknown policy {', '.join(bad)}; valid: {', '.join(baselines.names())}, "
              f"or the path of a trained model .zip", file=sys.stderr)
        return 2
    scen = []
    for s in [s for s in args.scenarios.split(",") if s]:
        try:
            scen.append(load_scenario(s))
        except (ScenarioError, FileNotFoundError, ValueError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"error: scenario {s!r}: {msg}; valid: {', '.join(list_scenarios())}", file=sys.stderr)
            return 2
    if args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    seeds = np.arange(args.seed_base, args.seed_base + args.seeds, dtype=np.int64)
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = _free_name(args.out, "episodes", ".csv", args.force)
    log_path = csv_path.with_name(csv_path.stem.replace("episodes", "actions") + ".log")
    rows: list[dict] = []
    log: list[str] = []
    for sc in scen:
        dur = args.duration_s if args.duration_s is not None else sc.duration_s
        ref = None
        for name in (["kernel-default"] if "kernel-default" not in pols else []) + pols:
            if name.endswith(".zip"):
                t0 = time.perf_counter()
                res, sim_seeds = run_model(Path(name), sc, seeds, dur)
                wall = time.perf_counter() - t0
                kd = run_policy(baselines.get("kernel-default"), sc, sim_seeds, dur)
                for i, r in enumerate(res):
                    r["score"] = env_score(r["cost"], kd[i]["cost"])
                    rows.append({"policy": name, "scenario": sc.name, "seed": int(seeds[i]), "duration_s": dur,
                                 "wall_s": round(wall / len(seeds), 4), **{k: r[k] for k in METRICS}})
                continue
            pol = baselines.get(name)
            if isinstance(pol, baselines.BestStatic):
                mf, wsf, _ = best_static(sc, seeds, dur, args.cache_dir)
                pol.configure(mf, wsf)
                log.append(f"best-static {sc.name}: min_free_kbytes={mf or 'kernel'} watermark_scale_factor={wsf or 'kernel'}")
            t0 = time.perf_counter()
            res = run_policy(pol, sc, seeds, dur, log)
            wall = time.perf_counter() - t0
            if name == "kernel-default":
                ref = [r["cost"] for r in res]
            if name not in pols:
                continue
            for i, r in enumerate(res):
                r["score"] = env_score(r["cost"], ref[i])
                rows.append({"policy": name, "scenario": sc.name, "seed": int(seeds[i]), "duration_s": dur,
                             "wall_s": round(wall / len(seeds), 4), **{k: r[k] for k in METRICS}})
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["policy", "scenario", "seed", "duration_s", "wall_s", *METRICS])
        w.writeheader()
        w.writerows(rows)
    log_path.write_text("\n".join(log) + ("\n" if log else ""))
    print(summarize(rows))
    print(f"wrote {csv_path} ({len(rows)} episodes) and {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
