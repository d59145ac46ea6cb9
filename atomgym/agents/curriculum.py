"""The training fleet as a designed mix, a curriculum over it, and a bounded episode return.

Training config keys (docs/training.md, "The curriculum"):

* ``curriculum: {mix: {headroom: 0.5, control: 0.25, uncontrollable: 0.25}, every: 100000, floor: 0.05}``:
  the training machines must be fleet machines whose class the fleet's manifest records
  (configs/fleets/*.manifest.json). The ``n_envs`` machine slots of the batched simulators are
  dealt out by class in the shares of ``mix`` (classes absent from the machines are left out and
  the shares renormalised); within a class, in proportion to ``floor`` + the machine's gap: how far
  the policy's mean score on its training episodes of the last stage it ran in lies below the
  machine's reference, max(psi's score, the oracle-static bound of the manifest), both on the
  manifest's episodes (seeds 7000, 7001, 30 s); behind ``gate: drops`` only on the machines whose
  defaults drop packets there (elsewhere the agent never acts). Every ``every`` agent steps a stage ends, the slots
  are dealt out again and the batched simulators rebuilt (the normalisation statistics carried
  over; episodes under way are cut). The first stage deals by class only. A machine that got no
  slot in a stage keeps its last measured gap (never measured: its class's mean weight).
  Each stage, its slots, seeds and the scores behind it go to ``curriculum.json`` in the run folder
  (written whole at each stage's start, atomically); ``--resume`` rebuilds the stage of the
  checkpoint it resumes from.
* ``return_floor: F`` (F < 0, with ``reward_baseline: score``): an episode's return, score - 1 in
  (-inf, 1], is clipped below at F: the reward of a step is max(S, F) - max(S', F), S' and S the
  return so far before and after it, so that the steps sum to max(score - 1, F) and a machine's
  catastrophe weighs at most |F| in the gradient. The curriculum reads the unclipped scores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atomgym import files, safefiles
from atomgym.fleets import CLASSES, FLEETS, read_manifest
from atomgym.schema import ConfigError, short

KEYS = ("mix", "every", "floor")
REFERENCE_SEEDS = (7000, 7001)      # the manifest's classification episodes (agents.fleetclass.CLASSIFY_*)
REFERENCE_DURATION_S = 30.0
STATE_FILE = "curriculum.json"
STATE_FORMAT = "atomgym-curriculum"
DEFAULT_FLOOR = 0.05
STAGE_SEED_STRIDE = 1_000_003       # stage k's machines are seeded from seed + k x this (+ slot index)
MAX_STATE_BYTES = 64 << 20


def check(path: Path, cur: Any, n_envs: int) -> dict:
    """``curriculum:`` validated: a mapping with ``mix`` (class -> share >= 0, one share > 0),
    ``every`` (agent steps per stage, >= n_envs) and ``floor`` (> 0); ConfigError naming the key."""
    if not isinstance(cur, dict) or not cur or set(cur) - set(KEYS) or "mix" not in cur or "every" not in cur:
        raise ConfigError(f"{path}: curriculum: expected a mapping with keys mix, every (and optionally floor), "
                          f"got {short(cur)}")
    mix = cur["mix"]
    if not isinstance(mix, dict) or not mix or set(mix) - set(CLASSES):
        raise ConfigError(f"{path}: curriculum.mix: expected a mapping of the classes {', '.join(CLASSES)} to "
                          f"shares, got {short(mix)}")
    for k, v in mix.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1e6:
            raise ConfigError(f"{path}: curriculum.mix.{k}: {short(v)}; expected a share >= 0")
    if sum(float(v) for v in mix.values()) <= 0.0:
        raise ConfigError(f"{path}: curriculum.mix: every share is 0; give one class a share > 0")
    ev = cur["every"]
    if isinstance(ev, bool) or not isinstance(ev, int) or ev < n_envs:
        raise ConfigError(f"{path}: curriculum.every: {short(ev)}; expected agent steps per stage, an integer "
                          f">= n_envs ({n_envs})")
    fl = cur.get("floor", DEFAULT_FLOOR)
    if isinstance(fl, bool) or not isinstance(fl, (int, float)) or not 0.0 < float(fl) <= 1e6:
        raise ConfigError(f"{path}: curriculum.floor: {short(fl)}; expected a weight > 0")
    return {"mix": {k: float(v) for k, v in mix.items()}, "every": ev, "floor": float(fl)}


def check_return_floor(path: Path, f: Any, reward_baseline: Any) -> None:
    if f is None:
        return
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not -1e6 <= float(f) < 0.0:
        raise ConfigError(f"{path}: return_floor: {short(f)}; expected a number below 0 (an episode's return, "
                          f"score - 1, is clipped below at it)")
    if reward_baseline != "score":
        raise ConfigError(f"{path}: return_floor: needs reward_baseline: score (the return it bounds is score - 1), "
                          f"not {short(reward_baseline)}")


# ---- the machines and their classes ---------------------------------------------------------------
@dataclass
class Machines:
    """The training machines in the config's order: names, classes and oracle-static bounds (the
    manifests'), and the scenario files."""
    paths: list[str]
    names: list[str]
    classes: list[str]
    oracle: np.ndarray
    drops: np.ndarray       # the defaults drop packets on the manifest's episodes (a drops gate opens)


def manifest_index() -> dict[str, dict]:
    """Every shipped fleet manifest's machines by name."""
    out: dict[str, dict] = {}
    for fleet in FLEETS:
        for e in (read_manifest(fleet) or {}).get("machines", []):
            out[e["name"]] = e
    return out


def machines(path: Path, scenario_paths: list[str]) -> Machines:
    """The config's training machines with their manifest entries; ConfigError naming the first
    scenario that is not a fleet machine with a measured class."""
    from atomgym.sim.scenario import load_scenario
    idx = manifest_index()
    names, classes, oracle, drops = [], [], [], []
    for s in scenario_paths:
        name = load_scenario(s).name
        e = idx.get(name)
        if e is None or e.get("class") not in CLASSES:
            raise ConfigError(f"{path}: curriculum: scenario {name} is not a fleet machine with a measured class "
                              f"(configs/fleets/*.manifest.json); the curriculum deals machines of suite:fleet-* by class")
        names.append(name)
        classes.append(e["class"])
        oracle.append(float(e["oracle_score"]))
        drops.append(float((e.get("default_loss") or {}).get("drops_total", 0.0)) > 0.0)
    return Machines(list(scenario_paths), names, classes, np.array(oracle), np.array(drops, bool))


def reference_scores(m: Machines) -> np.ndarray:
    """psi's mean score per machine on the manifest's episodes (REFERENCE_SEEDS, 30 s)."""
    from atomgym.agents import baselines, episodes
    from atomgym.envs.cost import score
    from atomgym.sim.scenario import load_scenario
    seeds = np.array(REFERENCE_SEEDS, np.int64)
    out = np.zeros(len(m.paths))
    for i, p in enumerate(m.paths):
        sc = load_scenario(p)
        d = episodes.run(baselines.get("kernel-default"), sc, seeds, REFERENCE_DURATION_S)
        q = episodes.run(baselines.get("psi"), sc, seeds, REFERENCE_DURATION_S)
        out[i] = float(np.mean([score(b["cost"], a["cost"]) for a, b in zip(d, q)]))
    return out


# ---- dealing the slots -----------------------------------------------------------------------------
def _largest_remainder(exact: np.ndarray, n: int) -> np.ndarray:
    base = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: n - int(base.sum())]] += 1
    return base


def allocate(classes: list[str], weights: np.ndarray, mix: dict[str, float], n: int) -> np.ndarray:
    """Slots per machine (sum n): class c gets mix[c] / (sum of the present classes' shares) of
    the n slots, a machine within its class in proportion to its weight; each level rounded by
    largest remainder (ties to the earlier class, machine)."""
    cls = np.array(classes)
    w = np.asarray(weights, np.float64)
    present = [c for c in CLASSES if np.any(cls == c) and mix.get(c, 0.0) > 0.0]
    if not present:
        raise ValueError(f"curriculum.mix: no share > 0 for the machines' classes ({', '.join(sorted(set(classes)))})")
    tot = sum(mix[c] for c in present)
    per_class = _largest_remainder(np.array([mix[c] / tot * n for c in present]), n)
    out = np.zeros(len(cls), np.int64)
    for c, k in zip(present, per_class):
        sel = np.flatnonzero(cls == c)
        out[sel] = _largest_remainder(w[sel] / w[sel].sum() * k, int(k))
    return out


def weights(m: Machines, reference: np.ndarray, measured: np.ndarray, floor: float, gated: bool) -> np.ndarray:
    """floor + max(reference - measured score, 0) per machine; NaN (never measured): its class's
    mean weight among the measured (floor + 1 if none is). ``gated`` (the env's ``gate: drops``):
    the gap counts only on machines whose defaults drop packets (the manifest's episodes): behind
    the gate the agent never acts on the others, whatever their gap."""
    gap = np.maximum(reference - measured, 0.0)
    if gated:
        gap = np.where(m.drops, gap, 0.0)
    w = floor + gap
    cls = np.array(m.classes)
    for c in set(m.classes):
        sel = cls == c
        known = sel & ~np.isnan(measured)
        w[sel & np.isnan(measured)] = w[known].mean() if known.any() else floor + 1.0
    return w


# ---- the run's state -------------------------------------------------------------------------------
class Curriculum:
    """A run's curriculum: its stages (curriculum.json), the scores measured in the current one."""

    def __init__(self, cfg: dict, run: Path, m: Machines, reference: np.ndarray, stages: list[dict]) -> None:
        spec = cfg["curriculum"]
        self.mix, self.every, self.floor = spec["mix"], int(spec["every"]), float(spec.get("floor", DEFAULT_FLOOR))
        self.cfg, self.run, self.m, self.reference, self.stages = cfg, run, m, reference, stages
        n = len(m.names)
        self.sums, self.counts = np.zeros(n), np.zeros(n, np.int64)
        self.last = np.full(n, np.nan)       # each machine's mean score in the last stage it ran in
        self.slot_machine = np.zeros(0, np.int64)
        if stages:
            self._restore()

    def _restore(self) -> None:
        """``last`` from the finished stages; the current stage's slots and the scores saved for it."""
        self.last[:] = np.nan
        for st in self.stages[:-1]:
            self._fold(st)
        cur = self.stages[-1]
        self.slot_machine = self._slot_machine(cur["slots"])
        self.sums[:] = np.array(cur["score_sum"], np.float64)
        self.counts[:] = np.array(cur["episodes"], np.int64)

    @classmethod
    def open(cls, cfg: dict, run: Path) -> "Curriculum":
        """The run's curriculum: read from curriculum.json if the run has one (resume), else
        started (psi's reference scores measured, the first stage dealt by class)."""
        from atomgym.suites import scenarios_of
        p = run / STATE_FILE
        m = machines(run / "config.yml", scenarios_of(cfg["scenario"]))
        if p.is_file():
            try:
                st = files.read_json(p, MAX_STATE_BYTES, "a run's curriculum state")
            except files.FileError as e:
                raise ConfigError(str(e)) from None
            bad = (f"{p}: not this run's curriculum state (format {STATE_FORMAT}, its machines those of the "
                   f"config's scenario, a stage per entry); move it away to start the curriculum afresh")
            if not isinstance(st, dict) or st.get("format") != STATE_FORMAT or st.get("machines") != m.names:
                raise ConfigError(bad)
            try:
                n = len(m.names)
                ref = np.array(st["reference"], np.float64)
                stages = st["stages"]
                ok = ref.shape == (n,) and isinstance(stages, list) and stages and all(
                    isinstance(x, dict) and isinstance(x["start"], int) and isinstance(x["seed"], int)
                    and all(len(x[k]) == n for k in ("slots", "weights", "score_sum", "episodes"))
                    and sum(x["slots"]) == int(cfg["n_envs"]) for x in stages)
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(bad)
            return cls(cfg, run, m, ref, stages)
        print(f"curriculum: psi's reference scores on {len(m.names)} machines ...", flush=True)
        ref = np.maximum(reference_scores(m), m.oracle)
        c = cls(cfg, run, m, ref, [])
        c._start(0, np.full(len(m.names), np.nan))
        return c

    def _slot_machine(self, slots: list[int]) -> np.ndarray:
        return np.repeat(np.arange(len(slots)), slots)

    def _fold(self, st: dict) -> None:
        """A finished stage's measured scores into ``last``."""
        for i, (s, k) in enumerate(zip(st["score_sum"], st["episodes"])):
            if k:
                self.last[i] = s / k

    def _start(self, step: int, measured: np.ndarray) -> None:
        k = len(self.stages)
        # behind gate "drops" the agent acts only where the defaults drop; "drops-cut" lets a cut act anywhere
        gated = (self.cfg.get("env") or {}).get("gate", "none") == "drops"   # the gate is an env: key only
        w = np.ones(len(self.m.names)) if k == 0 else weights(self.m, self.reference, measured, self.floor, gated)
        slots = allocate(self.m.classes, w, self.mix, int(self.cfg["n_envs"]))
        self.stages.append({"start": int(step), "seed": int(self.cfg["seed"]) + k * STAGE_SEED_STRIDE,
                            "weights": [round(float(x), 6) for x in w], "slots": [int(x) for x in slots],
                            "score_sum": [0.0] * len(slots), "episodes": [0] * len(slots)})
        self.slot_machine = self._slot_machine(slots)
        self.sums[:], self.counts[:] = 0.0, 0
        self.save()

    def save(self) -> None:
        st = self.stages[-1]
        st["score_sum"] = [round(float(x), 9) for x in self.sums]
        st["episodes"] = [int(x) for x in self.counts]
        safefiles.replace_text(self.run / STATE_FILE, json.dumps(
            {"format": STATE_FORMAT, "machines": self.m.names, "classes": self.m.classes,
             "reference": [round(float(x), 6) for x in self.reference], "mix": self.mix, "every": self.every,
             "floor": self.floor, "stages": self.stages}, indent=1) + "\n")

    def stage_of(self, step: int) -> int:
        """The index of the stage that ``step`` agent steps fall in (the latest started at or before)."""
        k = 0
        for i, st in enumerate(self.stages):
            if st["start"] <= step:
                k = i
        return k

    def resume_at(self, step: int) -> None:
        """A resumed run at ``step``: the stages started after it are dropped; the current stage
        keeps the scores saved for it (saved at its start and at a run's end: a run trained further
        keeps what its last stage measured; an interrupted one starts the stage's scores again)."""
        del self.stages[self.stage_of(step) + 1:]
        self._restore()
        self.save()

    def next_stage(self, step: int) -> None:
        """End the current stage at ``step``: its scores into ``last``; the next one dealt."""
        self.save()
        self._fold(self.stages[-1])
        self._start(step, self.last.copy())

    def stage_end(self) -> int:
        return self.stages[-1]["start"] + self.every

    def stage(self) -> tuple[list[str], list[int], int]:
        """The current stage as agents.build.make_vec_env takes it: the scenario files with at least
        one slot, their slot counts, the stage's seed."""
        st = self.stages[-1]
        keep = [i for i, s in enumerate(st["slots"]) if s > 0]
        return [self.m.paths[i] for i in keep], [st["slots"][i] for i in keep], st["seed"]

    def record(self, slot: int, episode_return: float) -> None:
        """An episode of ``slot`` ended with this (unclipped) return: score = 1 + return."""
        i = int(self.slot_machine[slot])
        self.sums[i] += 1.0 + float(episode_return)
        self.counts[i] += 1

    def scores_by_class(self, k: int) -> dict[str, float]:
        """Stage k's mean training score (1 + the unclipped return) per class, over its episodes."""
        st = self.stages[k]
        cls = np.array(self.m.classes)
        sums, eps = np.array(st["score_sum"], np.float64), np.array(st["episodes"], np.int64)
        return {c: float(sums[cls == c].sum() / eps[cls == c].sum()) for c in CLASSES
                if np.any(cls == c) and eps[cls == c].sum() > 0}

    def describe(self) -> str:
        st = self.stages[-1]
        slots = np.array(st["slots"])
        cls = np.array(self.m.classes)
        per = ", ".join(f"{c} {int(slots[cls == c].sum())}" for c in CLASSES if np.any(cls == c))
        return (f"curriculum stage {len(self.stages) - 1} from step {st['start']}: slots by class {per}; "
                f"{int((slots == 0).sum())} machines without a slot, most slots {int(slots.max())}")


def bounded_return(venv, floor: float):
    """``return_floor``: the VecEnvWrapper that clips each episode's return below at ``floor``."""
    from stable_baselines3.common.vec_env import VecEnvWrapper   # torch: training only

    class BoundedReturn(VecEnvWrapper):
        """Rewards r_k -> max(S_k, F) - max(S_{k-1}, F), S the episode's return so far: an episode's
        rewards sum to max(return, F) (F < 0). The return so far restarts at each episode's end."""

        def __init__(self, v, f: float) -> None:
            super().__init__(v)
            self.floor = f
            self.ret = np.zeros(v.num_envs)

        def reset(self):
            self.ret[:] = 0.0
            return self.venv.reset()

        def step_wait(self):
            obs, r, done, infos = self.venv.step_wait()
            before = np.maximum(self.ret, self.floor)
            self.ret += r
            out = (np.maximum(self.ret, self.floor) - before).astype(np.float32)
            self.ret[np.asarray(done, bool)] = 0.0
            return obs, out, done, infos

    return BoundedReturn(venv, float(floor))


def recorder(cur: Curriculum):
    """The callback that hands each finished training episode (VecMonitor's unclipped return) to
    the curriculum."""
    from stable_baselines3.common.callbacks import BaseCallback   # torch: training only

    class Recorder(BaseCallback):
        def _on_step(self) -> bool:
            for j, (d, info) in enumerate(zip(self.locals["dones"], self.locals["infos"])):
                if d and "episode" in info:
                    cur.record(j, info["episode"]["r"])
            return True

    return Recorder()
