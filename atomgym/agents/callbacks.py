"""stable-baselines3 callbacks of agents.train: what a kernel developer wants to see in TensorBoard.

* ``DomainScalars``: per rollout, the raw domain quantities per simulated second averaged over the
  machines (``env/atomic_fail_per_s``, ``env/drops_per_s`` and by cause ``env/drops_rx_missed_per_s``,
  ``env/drops_rcvbuf_per_s``, ``env/drops_pfmemalloc_per_s``, ``env/reserved_mib`` (high + boost),
  ``env/stall_s_per_s``, ``env/knob_changes_per_s``) and the knob values at the rollout's end
  (``env/min_free_kbytes``, ``env/watermark_scale_factor``, means over machines). The drops by cause
  are counter deltas read from the simulator; the step in which a machine is reset is not counted.
* ``PeriodicEval``: every ``every`` agent steps, the deterministic policy on held-out seeds of a
  scenario (``eval/score``: the env's normalised score against kernel-default on the same
  machines, ``eval/score_iqm``), with the baselines' scores on those seeds as reference scalars
  (``eval/ref/<policy>``, also ``oracle-static``; saved in ``eval_refs.json``) and a CSV row per evaluation (``eval_curve.csv``: steps, wall time,
  per-seed scores) from which agents.plots draws learning curves.
* ``HParams``: the config's hyperparameters as TensorBoard hparams (and a text table).
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from atomgym import safefiles
from atomgym.agents import baselines, episodes, oracle, stats
from atomgym.agents.config import eval_env_kwargs
from atomgym.agents.models import run_loaded
from atomgym.envs.core import score
from atomgym.envs.cost import TERM_NAMES
from atomgym.sim.scenario import load_scenario
from atomgym.suites import scenarios_of

_TERM_KEYS = tuple("term_" + n for n in TERM_NAMES)


def term_tag(name: str) -> str:
    """The TensorBoard tag of a cost term per simulated second: ``env/<term>_per_s`` (a count),
    ``env/<quantity>`` for a term in quantity x seconds (reserved_mib_s -> env/reserved_mib, the
    mean reserved MiB; stall_s -> env/stall, the fraction of time stalled)."""
    return f"env/{name[:-2]}" if name.endswith("_s") else f"env/{name}_per_s"


CAUSES = {"rx_missed": "drops_rx_missed", "rcvbuf_drop": "drops_rcvbuf", "pfmemalloc_drop": "drops_pfmemalloc"}


def _core(training_env):
    """The atomgym Core under SB3's wrappers (VecMonitor -> AtomSB3VecEnv -> AtomVectorEnv)."""
    env = training_env
    for _ in range(6):
        if hasattr(env, "core"):
            return env.core
        env = getattr(env, "venv", None)
        if env is None:
            break
    return None


class DomainScalars(BaseCallback):
    def _on_rollout_start(self) -> None:
        self.core = _core(self.training_env)
        self.sums: dict[str, float] = {}
        self.n = 0
        self.last = None

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or []
        for info in infos:
            for k in _TERM_KEYS:
                if k in info:
                    self.sums[k] = self.sums.get(k, 0.0) + float(info[k])
        self.n += len(infos)
        if self.core is not None:
            sim = self.core.sim
            now = np.stack([sim.counter(c) for c in CAUSES], axis=1)
            if self.last is not None and self.last.shape == now.shape:
                d = np.maximum(now - self.last, 0.0)        # a reset machine starts at 0: not counted
                for j, name in enumerate(CAUSES.values()):
                    self.sums[name] = self.sums.get(name, 0.0) + float(d[:, j].sum())
            self.last = now.copy()
        return True

    def _on_rollout_end(self) -> None:
        if not self.n or self.core is None:
            return
        dt_s = float(self.core.decision_interval_ms) / 1000.0
        machine_s = self.n * dt_s
        rec = self.logger.record
        for name in TERM_NAMES:      # every term of the cost table, per simulated second
            rec(term_tag(name), self.sums.get("term_" + name, 0.0) / machine_s)
        for name in CAUSES.values():
            rec(f"env/{name}_per_s", self.sums.get(name, 0.0) / machine_s)
        sim = self.core.sim
        rec("env/min_free_kbytes", float(np.mean(sim.min_free_kbytes)))
        rec("env/watermark_scale_factor", float(np.mean(sim.watermark_scale_factor)))


class PeriodicEval(BaseCallback):
    """Evaluate on held-out seeds every ``every`` agent steps (and at the end of training)."""

    def __init__(self, scenario: str, env_kw: dict, every: int, seeds: list[int], out_csv: Path,
                 duration_s: float | None = None, references: tuple[str, ...] = ("v10-acked", "psi", "best-static"),
                 cache_dir: Path | None = None, n_stack: int | None = None) -> None:
        super().__init__()
        self.n_stack = n_stack
        self.scenario_name, self.env_kw, self.every = scenario, dict(env_kw), max(1, int(every))
        self.seeds = np.asarray(seeds, np.int64)
        self.out_csv, self.duration_s, self.references = Path(out_csv), duration_s, references
        self.cache_dir = cache_dir
        self._next = self.every
        self._last = -1
        self._t0 = time.perf_counter()
        self.ref_scores: dict[str, float] = {}

    def _init_callback(self) -> None:
        self.sc = load_scenario(self.scenario_name)
        self.dur = float(self.duration_s if self.duration_s is not None else self.sc.duration_s)
        kd = episodes.run(baselines.get("kernel-default"), self.sc, self.seeds, self.dur)
        self.kd_cost = np.array([r["cost"] for r in kd])
        for name in self.references:
            pol = baselines.get(name)
            if isinstance(pol, baselines.BestStatic):
                mf, wsf, _ = oracle.best_static(self.sc, self.seeds, self.dur, self.cache_dir or oracle.DEFAULT_CACHE)
                pol.configure(mf, wsf)
            res = episodes.run(pol, self.sc, self.seeds, self.dur)
            self.ref_scores[name] = float(np.mean([score(r["cost"], c) for r, c in zip(res, self.kd_cost)]))
        res, _ = oracle.hindsight_static(self.sc, self.seeds, self.dur)
        self.ref_scores["oracle-static"] = float(np.mean([score(r["cost"], c) for r, c in zip(res, self.kd_cost)]))
        self.ref_scores["kernel-default"] = 1.0
        refs = self.out_csv.with_name("eval_refs.json")
        # the run folder may be one handed to --resume: no link followed
        if not refs.exists():
            safefiles.write_text(refs, json.dumps({"scenario": self.sc.name, "seeds": [int(s) for s in self.seeds],
                                        "duration_s": self.dur, "scores": self.ref_scores}, indent=1))
        self._t0 = time.perf_counter()
        if not self.out_csv.exists():
            self.out_csv.parent.mkdir(parents=True, exist_ok=True)
            with safefiles.open_write(self.out_csv, newline="") as f:
                csv.writer(f).writerow(["steps", "wall_s", "score_mean", *[f"seed{s}" for s in self.seeds]])

    def evaluate_now(self) -> None:
        # the training's normalisation statistics as they are now (read only) and its frame stack
        res, _ = run_loaded(self.model, self.env_kw, self.sc, self.seeds, self.dur,
                                     self.model.get_vec_normalize_env(), self.n_stack)
        s = np.array([score(r["cost"], c) for r, c in zip(res, self.kd_cost)])
        self.logger.record("eval/score", float(s.mean()))
        self.logger.record("eval/score_iqm", stats.iqm(s[:, None]) if len(s) > 1 else float(s[0]))
        for name, v in self.ref_scores.items():
            self.logger.record(f"eval/ref/{name}", v)
        with safefiles.open_write(self.out_csv, append=True, newline="") as f:
            csv.writer(f).writerow([self.num_timesteps, round(time.perf_counter() - self._t0, 3), float(s.mean()),
                                    *[float(x) for x in s]])
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.evaluate_now()
        return True

    def _on_training_end(self) -> None:
        if self._last != self.num_timesteps:
            self.evaluate_now()
            self.logger.dump(self.num_timesteps)


class HParams(BaseCallback):
    """The config as TensorBoard hyperparameters (scalars and strings only) at the start of training."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = cfg

    def _on_training_start(self) -> None:
        from stable_baselines3.common.logger import HParam   # SB3's logger module: only this callback needs it
        flat: dict = {}
        for k, v in self.cfg.items():
            if isinstance(v, dict):
                for kk, vv in v.items():
                    if isinstance(vv, (int, float, str, bool)):
                        flat[f"{k}.{kk}"] = vv
            elif isinstance(v, (int, float, str, bool)):
                flat[k] = v
        self.logger.record("hparams", HParam(flat, {"eval/score": 0.0, "rollout/ep_rew_mean": 0.0}),
                           exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


def reward_terms_callback():
    """Logs, per rollout, each reward term's mean per agent step (``reward/<term>``: drops,
    atomic_fail, reserved_mib_s, stall_s, knob_changes, deadlock) so TensorBoard shows which cost
    the policy trades for which."""
    class RewardTerms(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.sums: dict[str, float] = {}
            self.n = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                for k, v in info.items():
                    if k.startswith("reward_"):
                        self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.n += len(self.locals["infos"])
            return True

        def _on_rollout_end(self) -> None:
            for k, v in self.sums.items():
                self.logger.record(f"reward/{k[len('reward_'):]}", v / max(self.n, 1))

    return RewardTerms()


def training_callbacks(cfg: dict, run: Path) -> list[BaseCallback]:
    """The callbacks agents.train adds: domain scalars, hyperparameters, and (with the config's
    ``evaluate``/``checkpoint_every``) the periodic evaluation on held-out seeds 10000..10002 of
    the training scenario (evaluation seeds of agents.evaluate start at 1000: no overlap with
    either the training seeds or the final evaluation)."""
    every = int(cfg.get("eval_every") or cfg.get("checkpoint_every") or 20000)
    return [DomainScalars(), HParams(cfg),
            PeriodicEval(scenarios_of(cfg["scenario"])[0], eval_env_kwargs(cfg), every,
                         [10000, 10001, 10002], run / "eval_curve.csv", n_stack=cfg.get("frame_stack") or None)]
