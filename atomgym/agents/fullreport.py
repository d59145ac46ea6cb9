"""`python -m agents.fullreport [--seeds 0-9] [--scenarios S,...] [--eval-seeds N] [--config FILE]
[--total-timesteps N] [--out DIR]` (`make report`): the whole result in one folder.

``runs/report-<time>/``: trains the config once per seed (agents.multiseed, through Ray), evaluates
every model with every baseline and both oracles (``oracle-static`` per episode and the
clairvoyant ``oracle-planner``) on the scenarios (the training scenario and held-out ones), and
writes ``report.md`` (the command, date, machine, versions, wall times, the statistics tables of
agents.report, the verdict) with the PNGs: Pareto planes, performance profiles, learning curves
and one episode's time series of the learned policy, ``v10-acked`` and ``psi``. Its last line printed
is the verdict.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from atomgym import interrupts, safefiles, schema
from atomgym.envs.cost import DEFAULT_COST
from atomgym.agents import baselines, command, deploy, evaluate, multiseed, plots, report, stats, who
from atomgym.agents.config import as_dict, check_unique_names, env_kwargs, load_config
from atomgym.agents.policies import play_label
from atomgym.agents.usage import Parser, UsageError, run_main
from atomgym.paths import RUNS_DIR, TRAIN_CONFIG_DIR, checkout_commit
from atomgym.schema import parse_plays
from atomgym.sim.scenario import load_scenario
from atomgym.suites import scenarios_of

# the benchmark: train on the training fleet (suite:fleet-train) with this config, judge on the test fleet
# (suite:fleet-test; atomgym/fleets.py)
BENCHMARK_CONFIG = TRAIN_CONFIG_DIR / "benchmark.yaml"


def _machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu or platform.machine()}), Python {platform.python_version()}"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for p in ("numpy", "numba", "gymnasium", "stable-baselines3", "torch", "rliable", "pandas", "ray"):
        try:
            out.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    return run_main("fullreport", lambda: _main(argv), lambda e: (
        f"interrupted ({interrupts.signal_name(e)}); the training runs were stopped; "
        "the report folder is incomplete (no report.md)"))


def _main(argv: list[str] | None) -> int:
    ap = Parser("fullreport", description=__doc__.split("\n\n")[1])
    schema.add_arguments(ap, schema.FULLREPORT)
    args = ap.parse_args(argv)
    args.config = args.config or BENCHMARK_CONFIG
    t_all = time.perf_counter()
    commit = checkout_commit()      # the code that runs is the code at the start (a later commit ran none of it)
    cmd = " ".join(shlex.quote(a) for a in [*command("fullreport").split(), *(sys.argv[1:] if argv is None else argv)])
    out = args.out or RUNS_DIR / f"report-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists():
        raise UsageError(f"{out} exists; choose another --out")
    seeds = multiseed.parse_seeds(args.seeds)
    # every option the evaluation takes is checked by its spec before the first training run
    try:
        plays = parse_plays(args.play)
    except ValueError as e:
        raise UsageError(f"--play {e}") from None
    cfg = load_config(args.config)
    given = args.scenarios          # as typed (a suite's name, not the cache paths it expands to)
    scenario_list = scenarios_of([x.strip() for x in args.scenarios.split(",") if x.strip()] or "", None,
                                 "--scenarios")
    args.scenarios = ",".join(scenario_list)
    # two files of one name are refused by agents.evaluate: now, not after the training
    check_unique_names("--scenarios", scenario_list)
    if args.total_timesteps is not None:
        cfg["total_timesteps"] = args.total_timesteps
    if args.eval_every is not None:
        cfg["checkpoint_every"] = args.eval_every
    out.mkdir(parents=True)
    # 1. training: one run per seed through Ray, the evaluation config replaced by the report's
    cfg["evaluate"] = {**(cfg.get("evaluate") or {}), "scenarios": args.scenarios.split(",")}
    cfg["evaluate"].pop("policies", None)
    rcfg = out / "config.yml"
    # files of the folder made just now: created, never through a link
    safefiles.write_text(rcfg, yaml.safe_dump(as_dict(cfg), sort_keys=False), exclusive=True)
    t0 = time.perf_counter()
    res = multiseed.dispatch([(str(_seed_cfg(out, cfg, s)), str(out / "runs"), None) for s in seeds],
                             args.ray_address, None, True)
    t_train = time.perf_counter() - t0
    safefiles.write_text(out / "runs.json", json.dumps(res, indent=1), exclusive=True)
    ok = [r for r in res if r["rc"] == 0 and r["run"]]
    if not ok:
        print(f"{who('fullreport')}: error: every training run failed (see runs.json)", file=sys.stderr)
        return 1
    models = sorted((Path(r["run"]) / "model.zip" for r in ok), key=lambda p: p.parent.name)
    label = cfg["algo"]
    # 2. evaluation: every baseline, the oracles, the models (runs of one policy)
    pols = eval_policies(cfg, label, models, out / "runs", planner=not args.no_planner)
    opts = evaluate.Options(policies=",".join(pols), scenarios=args.scenarios, seeds=args.eval_seeds,
                            out=out / "eval", no_summary=True, play=plays,
                            duration_s=args.eval_duration_s)
    t0 = time.perf_counter()
    rc = evaluate.run(opts)
    t_eval = time.perf_counter() - t0
    if rc != 0:
        return rc
    # 3. figures and the report
    t0 = time.perf_counter()
    df = report.load_rows(out / "eval" / "episodes.csv")
    pngs = plots.evaluation_plots(df, out)
    curves = {m.parent.name: m.parent / "eval_curve.csv" for m in models if (m.parent / "eval_curve.csv").is_file()}
    refs = next((json.loads((m.parent / "eval_refs.json").read_text()) for m in models
                 if (m.parent / "eval_refs.json").is_file()), {})
    if curves:
        pngs.append(plots.learning_curves(curves, refs, out / "learning-curves.png"))
    sc = load_scenario(_showcase(df, scenario_list))
    dur = args.eval_duration_s or float(sc.duration_s)
    traces = {f"{label} ({models[0].parent.name.split('__')[2] if '__' in models[0].parent.name else 'run 0'})":
              plots.trace_episode(str(models[0]), sc, 1000, dur)}
    for p in ("v10-acked", "psi"):
        traces[p] = plots.trace_episode(p, sc, 1000, dur)
    pngs.append(plots.timeseries_plot(traces, sc.name, 1000, out / f"timeseries-{sc.name}.png"))
    planner_wall = df[df["policy"] == "oracle-planner"].groupby("scenario")["wall_s"].sum() if "wall_s" in df else None
    body = report.summary(df, with_deployment=False)
    deployment = report.deployment(df)
    learned = [play_label(label, p) for p in args.play.split(",") if p.strip()] + [label + MEAN]
    vs_table, verdict = learned_vs_heuristics(df, learned)
    t_report = time.perf_counter() - t0
    wall = time.perf_counter() - t_all
    tw = [r["wall_s"] for r in ok]
    many = isinstance(cfg["scenario"], list)
    trained = ("scenarios " if many else "scenario ") + ", ".join(f"`{x}`" for x in (cfg["scenario"] if many else [cfg["scenario"]]))
    lines = [f"# atomgym report ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- command: `{cmd}` (`make report`)", f"- machine: {_machine()}", f"- versions: {_versions()}",
             f"- commit: {commit}",
             f"- cost: `{DEFAULT_COST}` (atomgym/envs/cost.py COSTS; `agents.report --cost` prices the episodes otherwise)",
             f"- training: {len(ok)} of {len(seeds)} runs of `{args.config.name}` ({cfg['algo']}, "
             f"{cfg['total_timesteps']} agent steps each, seeds {args.seeds}) through Ray: {t_train:.0f} s wall "
             f"(per run {min(tw):.0f}-{max(tw):.0f} s)",
             f"- evaluation: {args.eval_seeds} seeds (1000..{999 + args.eval_seeds}) per scenario, scenarios "
             f"`{given}` ({len(scenario_list)}; training {trained}; the others held out): {t_eval:.0f} s wall",
             ]
    if planner_wall is not None and len(planner_wall):
        lines.append(f"- oracle-planner cost: {planner_wall.sum():.1f} s wall for {args.eval_seeds} seeds x "
                     f"{len(planner_wall)} scenarios ({planner_wall.sum() / len(planner_wall) / args.eval_seeds:.1f} s per episode)")
    lines += [f"- figures and tables: {t_report:.0f} s; whole report: {wall:.0f} s ({wall / 60:.1f} min) wall", "",
              f"**Verdict:** {verdict}", "",
              f"Learned rows: `{label}` is deterministic play (argmax / mean action), `{label}-stochastic` "
              "sampled actions seeded by the episode's seed (agents.evaluate --play).", "",
              *([deploy.REPORT_SECTION, "", deployment, ""] if deployment else []),
              "## Best learned policy against every heuristic", "", vs_table,
              "## Tables", "", body, "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in pngs]
    safefiles.replace_text(out / "report.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'} and {len(pngs)} figures ({wall:.0f} s)")
    print(verdict)
    return 0


def _showcase(df, scenarios: list[str]) -> str:
    """The scenario of the time-series figure: the one where the defaults lose most to the hindsight
    bound (the largest mean C_def - C_oracle-static), else the first."""
    try:
        c = df.groupby(["policy", "scenario"])["cost"].mean()
        gap = (c.loc[deploy.REFERENCE] - c.loc["oracle-static"]).dropna()
    except KeyError:
        return scenarios[0]
    if gap.empty:
        return scenarios[0]
    name = str(gap.idxmax())
    return next((s for s in scenarios if Path(s).stem == name or s == name), scenarios[0])


MEAN = "-mean"    # LABEL-mean: the runs' averaged action probabilities as one policy (eval_policies)


def eval_policies(cfg: dict, label: str, models: list[Path], runs: Path, planner: bool = True) -> list[str]:
    """agents.evaluate's --policies of the report: every baseline, the planner, the models (runs of
    one policy ``label``) and, for two or more models of a Discrete-action PPO or A2C, their mean
    (``LABEL-mean=mean:RUNS/*/model.zip``: the action with the highest averaged probability, one
    policy; docs/evaluation.md "A vote of models")."""
    pols = [*baselines.names(), *(["oracle-planner"] if planner else []), *[f"{label}={m}" for m in models]]
    if (len(models) >= 2 and cfg.get("algo") in ("ppo", "a2c")
            and env_kwargs(cfg).get("action_type", "discrete") != "continuous"):
        pols.append(f"{label}{MEAN}=mean:{glob.escape(str(runs))}/*/model.zip")
    return pols


def learned_vs_heuristics(df, learned: list[str], reps: int = 2000) -> tuple[str, str]:
    """The best learned policy (highest IQM score of ``learned``: a label and its -stochastic play)
    against every heuristic (each baseline of agents.baselines present): IQM with stratified-
    bootstrap 95 % CIs, the CI of the IQM difference, P(learned > heuristic) with its CI, and the
    fraction of the default-to-oracle cost gap closed (mean over scenarios). Returns (markdown
    table, one-line verdict); the benchmark's target: P >= 0.75 and the IQM-difference CI above 0
    against every heuristic."""
    d, _ = stats.dedupe(df)
    u = stats.units(d)
    learned = [p for p in learned if p in set(d["policy"])]
    heur = [p for p in dict.fromkeys(d["policy"])
            if p in baselines.names() and p != deploy.REFERENCE and not deploy.is_bound(p)]
    bounds = [p for p in dict.fromkeys(d["policy"]) if deploy.is_bound(p)]
    pols = [*learned, *heur]
    scs = [s for s in dict.fromkeys(d["scenario"]) if all(((u["policy"] == p) & (u["scenario"] == s)).any() for p in pols)]
    bounds = [q for q in bounds if all(((u["policy"] == q) & (u["scenario"] == s)).any() for s in scs)]
    if not learned or not heur or not scs:
        return "", "no learned policy and heuristic share a scenario: nothing to compare"
    mats = stats.matrices(u, [*pols, *bounds], scs)
    ag = stats.aggregate(mats, None, reps=reps).set_index("policy")
    best = max(learned, key=lambda p: ag.loc[p, "iqm"])
    gc = stats.gap_closed(d)
    gcm = gc.groupby("policy")["gap_closed"].mean()
    pairs = {f"{best}\x00{h}": (mats[best], mats[h]) for h in heur}
    _, pi_ci = stats._interval(pairs, stats.prob_improvement, min(reps, 1000), 0)
    _, diff_ci = stats._interval(pairs, lambda a, b: np.array([stats.iqm(a) - stats.iqm(b)]), min(reps, 1000), 0)
    rows = []
    wins = 0
    b = ag.loc[best]
    for h in heur:
        k = f"{best}\x00{h}"
        pi = stats.prob_improvement(mats[best], mats[h])
        plo, phi = (float(np.ravel(pi_ci[k])[0]), float(np.ravel(pi_ci[k])[1]))
        dlo, dhi = (float(np.ravel(diff_ci[k])[0]), float(np.ravel(diff_ci[k])[1]))
        diff = float(b.iqm - ag.loc[h, "iqm"])
        ok = deploy.beats(pi, dlo)
        wins += ok
        rows.append(f"| {h} | {report.fmt_ci(ag.loc[h, 'iqm'], ag.loc[h, 'iqm_lo'], ag.loc[h, 'iqm_hi'])} | "
                    f"{report.fmt_ci(diff, dlo, dhi)} | {report.fmt_ci(pi, plo, phi)} | {gcm.get(h, float('nan')):.2f} | "
                    f"{'yes' if ok else 'no'} |")
    play = "stochastic" if best.endswith("-stochastic") else "deterministic"
    how = ("the training runs' averaged action probabilities, one policy" if best.endswith(MEAN)
           else f"{int(b.runs)} training runs")
    head = (f"Best learned policy: `{best}` ({play} play; {how}), IQM "
            f"{report.fmt_ci(b.iqm, b.iqm_lo, b.iqm_hi)}, oracle gap closed {gcm.get(best, float('nan')):.2f}, "
            f"on {', '.join(scs)}.\n\n"
            "| heuristic | IQM [95 % CI] | IQM difference (learned - heuristic) | P(learned > heuristic) | "
            "oracle gap closed | beaten |\n|---|---|---|---|---|---|\n")
    verdict = (f"{best} ({play} play) vs every heuristic on {len(scs)} scenarios: beats {wins} of {len(heur)} "
               f"(P >= {deploy.BEAT_P} and IQM-difference CI > 0; bounds excluded); "
               + ("it beats every heuristic" if wins == len(heur) else
                  "not every heuristic is beaten: " + ", ".join(r.split(" | ")[0].strip("| ") for r in rows
                                                                 if r.endswith("| no |"))))
    tail = ""
    if bounds:
        tail = ("\nBounds (chosen with hindsight on these episodes: what a policy could reach, not rivals): "
                + ", ".join(f"`{q}` IQM {report.fmt_ci(ag.loc[q, 'iqm'], ag.loc[q, 'iqm_lo'], ag.loc[q, 'iqm_hi'])}"
                            for q in bounds) + ".\n")
    return (head + "\n".join(rows) + "\n" + tail + f"\nDecision rule: {deploy.DECISION_RULE}.\n"), verdict


def _seed_cfg(out: Path, cfg: dict, seed: int) -> Path:
    p = out / "configs" / f"seed{seed}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    safefiles.write_text(p, yaml.safe_dump({**cfg, "seed": seed}, sort_keys=False), exclusive=True)
    return p


if __name__ == "__main__":
    sys.exit(main())
