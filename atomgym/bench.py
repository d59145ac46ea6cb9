"""`python -m atomgym.bench [--json]`: simulator speed against Gymnasium's CartPole-v1.

In one process: (a) one machine on the headline scenario (incast-pagecache), simulated ticks
per wall second; (b) a batch of 1024 machines (prange over machines), machine-ticks per
second and the batch state's size; (c) CartPole-v1 through gym.make, steps per second;
(d) AtomEnv through gym.make("atomgym/<Scenario>-v1", compute_score=False) and (e)
AtomVectorEnv (1024 machines) agent steps per second at the default 100 ms decision interval
(100 ticks per agent step); (d) is also run at the shortest valid interval (10 ms, 10 ticks per
step, on a 1 ms tick), where the per-step overhead dominates.
Compile time is excluded (a warm-up call first) but measured on its own: (f) a fresh process with
an empty compile cache makes the headline env, resets it and takes its first step
(``first_step_cold_s``; the package's portable code not used), then a second fresh process does the
same with the cache the first one left (``first_step_warm_s``), and when the package holds portable
code for these sources (a wheel from ``make wheel``, or a checkout after it), a third with an empty
cache and that code, as a fresh install of the wheel starts (``first_step_installed_s``);
``--skip-cold`` leaves (f) out. (g) SB3 PPO with the same
hyperparameters on CartPole-v1 and on AtomEnv (default 100 ms interval, one env each, one torch
thread), frames per second of ``learn()``, the two envs' rollouts interleaved one by one within
each round (``sb3_ppo_vs_cartpole``: the median of the rounds' ratios); ``--skip-sb3`` leaves it
out. The batch (b) is also set against one machine doing the same work per machine, its window
of ticks and its seeds one by one (``single_window_ticks_per_s``; ``batch_vs_single``, the median
of the rounds' ratios): (a) runs the first ten simulated minutes of one seed, which cost fewer
instructions per tick than an episode's first seconds. All run ``--repeat`` times (default 3),
interleaved round by round so that a busy neighbour on a shared machine affects every line
alike; the medians are reported (``--json``: the same keys, plus every round under ``runs``).
Numbers are for this machine only.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time

# numpy's OpenBLAS threads spin after start-up and take CPU from the numba threads on a small box
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from atomgym import schema
from atomgym.paths import checkout_commit
from atomgym.schema import Parser, UsageError


def _bench_single(scenario, ticks: int) -> float:
    from atomgym.sim import Simulator

    sim = Simulator(scenario, n_machines=1)
    sim.reset(np.array([1]))
    sim.advance(100)                       # compile / warm up
    sim.reset(np.array([1]))
    t0 = time.perf_counter()
    sim.advance(ticks)
    return ticks / (time.perf_counter() - t0)


WINDOW_SEEDS = 64   # machines of the batch that one machine replays, one by one, for the batch ratio


def _bench_single_window(scenario, n: int, ticks: int) -> float:
    """One machine over the batch run's window (``ticks`` ticks after the first 10) for each of the
    batch's first ``n`` seeds, one after another: the same simulated work per machine as (b), so
    that (b) over this is what running the batch adds. (a) averages the first ten simulated minutes
    of one seed, which cost fewer instructions per tick than an episode's first seconds."""
    from atomgym.sim import Simulator

    sim = Simulator(scenario, n_machines=1)
    total = 0.0
    for seed in range(n):
        sim.reset(np.array([seed]))
        sim.advance(10)
        t0 = time.perf_counter()
        sim.advance(ticks)
        total += time.perf_counter() - t0
    return n * ticks / total


def _bench_batch(scenario, n: int, ticks: int) -> tuple[float, float]:
    from atomgym.sim import Simulator

    sim = Simulator(scenario, n_machines=n, parallel=True)
    sim.reset(np.arange(n))
    sim.advance(10)
    t0 = time.perf_counter()
    sim.advance(ticks)
    dt = time.perf_counter() - t0
    return n * ticks / dt, sim.nbytes / 2**20


def _env_id(scenario) -> str | None:
    """The registered id of a shipped scenario (None for a scenario file)."""
    from atomgym.envs.registration import env_ids

    for env_id, name in env_ids().items():
        if name == scenario.name and not env_id.startswith("atomgym/Atom-"):
            return env_id
    return None


def _bench_env_single(scenario, steps: int, decision_interval_ms: float | None = None) -> float:
    """AtomEnv agent steps/s at the default decision interval, or at ``decision_interval_ms``
    (random discrete actions), made like CartPole through gym.make (env checker, order enforcing
    and TimeLimit wrappers); the normalised score's reference episode is off (compute_score=False)."""
    import gymnasium as gym

    import atomgym.envs  # noqa: F401  (registers the ids)
    from atomgym.envs import AtomEnv

    env_id = _env_id(scenario)
    kw = {"compute_score": False}
    if decision_interval_ms is not None:
        kw["decision_interval_ms"] = decision_interval_ms
    env = gym.make(env_id, **kw) if env_id is not None else AtomEnv(scenario, **kw)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, env.action_space.n, size=steps)
    for a in acts[:20]:                    # compile / warm up
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    env.reset(seed=1)
    t0 = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _bench_env_batch(scenario, n: int, steps: int) -> float:
    """AtomVectorEnv (n machines, one batched simulator) agent steps/s, summed over the batch."""
    from atomgym.envs import AtomVectorEnv

    env = AtomVectorEnv(num_envs=n, scenario=scenario)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(rng.integers(0, 7, size=n))   # warm up
    acts = rng.integers(0, 7, size=(steps, n))
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    return n * steps / (time.perf_counter() - t0)


def _bench_cartpole(steps: int) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, size=steps)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


_FIRST_STEP = r"""
import sys, time
t0 = time.perf_counter()
import gymnasium as gym, atomgym  # noqa: F401
env = gym.make(sys.argv[1]); env.reset(seed=0)
t1 = time.perf_counter()
env.step(0)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def _first_step(env_id: str, cache: str, precompiled: bool = False) -> tuple[float, float]:
    """(import + make + reset s, first step s) in a fresh process whose compile cache is ``cache``;
    the package's portable code (kernel/jit.py, `make wheel`) is used only with ``precompiled``."""
    import subprocess
    env = dict(os.environ, ATOMGYM_CACHE_DIR=cache, ATOMGYM_COMPILE_NOTICE="0")
    if not precompiled:
        env["ATOMGYM_PRECOMPILED_DIR"] = os.path.join(cache, "no-precompiled-code")
    r = subprocess.run([sys.executable, "-c", _FIRST_STEP, env_id], env=env, capture_output=True, text=True,
                       timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"the first-step process failed: {r.stderr.strip().splitlines()[-1:]}")
    a, b = (float(x) for x in r.stdout.split())
    return a, b


# PPO's hyperparameters for both envs in (g): SB3's defaults but a shorter rollout
_PPO_KW = {"n_steps": 512, "batch_size": 64, "n_epochs": 4, "seed": 0, "device": "cpu", "verbose": 0}


def _bench_ppo(make_envs, steps: int) -> list[float]:
    """SB3 PPO learn() frames per second on each env of ``make_envs`` (after a first rollout of
    each as warm-up), the envs' rollouts interleaved one by one (the order turned every rollout),
    so that a neighbour's burst on this shared host falls on both sides of the ratio alike."""
    import torch
    from stable_baselines3 import PPO

    from atomgym.envs.sb3 import quiet_logger
    torch.set_num_threads(1)
    n = _PPO_KW["n_steps"]
    models = [PPO("MlpPolicy", make(), **_PPO_KW) for make in make_envs]
    for m in models:
        m.set_logger(quiet_logger())     # (else every learn() below leaves an empty folder in /tmp)
        m.learn(n)
    spent = [0.0] * len(models)
    for k in range(max(1, steps // n)):
        for i in (range(len(models)) if k % 2 == 0 else reversed(range(len(models)))):
            t0 = time.perf_counter()
            models[i].learn(n, reset_num_timesteps=False)
            spent[i] += time.perf_counter() - t0
    return [max(1, steps // n) * n / t for t in spent]


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m atomgym.bench", description=__doc__.splitlines()[0])
    schema.add_arguments(ap, schema.BENCH)   # the options: atomgym/schema.py (docs/cli.md is made from it)
    try:
        args = ap.parse_args(argv)
    except UsageError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    from atomgym.sim.scenario import ScenarioError, load_scenario

    try:
        scn = load_scenario(args.scenario)
        # everything the measurements build, checked before the first one runs: the machine (its
        # snapshot, its trace) and the env at the default decision interval
        from atomgym.envs.core import DEFAULT_DECISION_INTERVAL_MS, interval_ticks
        from atomgym.sim import Simulator
        Simulator(scn, n_machines=1)
        interval_ticks(scn, DEFAULT_DECISION_INTERVAL_MS)
    except (ScenarioError, ValueError) as e:
        msg = str(e) or repr(e)
        msg = msg if msg.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)
        print(f"{ap.prog}: error: {msg}", file=sys.stderr)
        return 2
    # the shortest valid decision interval: 10 ms, rounded up to a multiple of the scenario's tick
    short_ms = scn.tick_ms * math.ceil(10.0 / scn.tick_ms - 1e-9)
    runs: dict[str, list[float]] = {k: [] for k in ("single", "single_window", "batch", "env_single",
                                                    "env_single_short", "env_batch", "cartpole")}
    if not args.skip_sb3:
        runs.update(ppo_atom=[], ppo_cartpole=[])
    first: dict[str, float] = {}
    env_id = _env_id(scn) or "atomgym/IncastPagecache-v1"
    if not args.skip_cold:                 # before anything else: the first process ever on this cache
        import tempfile
        from atomgym.kernel.jit import has_precompiled
        with tempfile.TemporaryDirectory() as cache:
            first["first_step_cold_setup_s"], first["first_step_cold_s"] = _first_step(env_id, cache)
            first["first_step_warm_setup_s"], first["first_step_warm_s"] = _first_step(env_id, cache)
        if has_precompiled():             # a wheel's install (or a checkout after `make wheel`)
            with tempfile.TemporaryDirectory() as cache:
                first["first_step_installed_setup_s"], first["first_step_installed_s"] = \
                    _first_step(env_id, cache, precompiled=True)
    n_window = min(args.batch, WINDOW_SEEDS)
    try:
        for _ in range(args.repeat):          # interleaved, so a noisy neighbour hits every line alike
            runs["single"].append(_bench_single(scn, args.ticks))
            runs["single_window"].append(_bench_single_window(scn, n_window, args.batch_ticks))
            b, mib = _bench_batch(scn, args.batch, args.batch_ticks)
            runs["batch"].append(b)
            runs["env_single"].append(_bench_env_single(scn, args.env_steps))
            runs["env_single_short"].append(_bench_env_single(scn, args.env_steps, decision_interval_ms=short_ms))
            runs["env_batch"].append(_bench_env_batch(scn, args.batch, args.env_batch_steps))
            runs["cartpole"].append(_bench_cartpole(args.cartpole_steps))
            if not args.skip_sb3:
                import gymnasium as gym
                c, a = _bench_ppo([lambda: gym.make("CartPole-v1"),
                                   lambda: gym.make(env_id, compute_score=False)], args.ppo_steps)
                runs["ppo_cartpole"].append(c)
                runs["ppo_atom"].append(a)
    except MemoryError:
        print(f"{ap.prog}: error: not enough memory for --batch {args.batch} machines; try a smaller batch",
              file=sys.stderr)
        return 2
    med = {k: statistics.median(v) for k, v in runs.items()}
    single, batch, cart = med["single"], med["batch"], med["cartpole"]
    env_single, env_batch = med["env_single"], med["env_batch"]
    res = {
        "scenario": scn.name,
        "single_ticks_per_s": single,
        "batch_ticks_per_s": batch,
        # the batch against one machine doing the same work per machine (its window, its seeds)
        "single_window_ticks_per_s": med["single_window"],
        "batch_vs_single": statistics.median(b / w for b, w in zip(runs["batch"], runs["single_window"])),
        "cartpole_steps_per_s": cart,
        "batch_machines": args.batch,
        "batch_state_mib": mib,
        "single_vs_cartpole": single / cart,
        "batch_vs_cartpole": batch / cart,
        "simulated_hour_single_s": 3_600_000 / single,
        "env_single_steps_per_s": env_single,
        "env_batch_steps_per_s": env_batch,
        "env_single_vs_cartpole": env_single / cart,
        "env_single_short_steps_per_s": med["env_single_short"],
        "short_interval_ms": short_ms,
        "repeat": args.repeat,
        "commit": checkout_commit(),            # the code measured (a report's publication names it)
        **first,
        "runs": runs,
    }
    if not args.skip_sb3:
        res.update(sb3_ppo_atom_fps=med["ppo_atom"], sb3_ppo_cartpole_fps=med["ppo_cartpole"],
                   # the median of the rounds' paired ratios (each round interleaves their rollouts)
                   sb3_ppo_vs_cartpole=statistics.median(a / c for a, c in zip(runs["ppo_atom"], runs["ppo_cartpole"])))
    if args.json:
        print(json.dumps(res))
        return 0
    def rng(k: str, scale: float, unit: str) -> str:
        lo, hi = min(runs[k]) / scale, max(runs[k]) / scale
        return f"[{lo:.2f}–{hi:.2f} {unit}]" if args.repeat > 1 else ""

    print(f"scenario {scn.name} (tick {scn.tick_ms} ms); medians of {args.repeat} interleaved rounds, [range]")
    print(f"(a) one machine      {single:>14,.0f} simulated ticks/s   {rng('single', 1e6, 'M')} (one simulated hour in {res['simulated_hour_single_s']:.2f} s)")
    print(f"(b) {args.batch} machines   {batch:>14,.0f} machine-ticks/s     {rng('batch', 1e6, 'M')} (state {mib:.1f} MiB)")
    print(f"    one machine, (b)'s window {med['single_window']:>9,.0f} ticks/s             {rng('single_window', 1e6, 'M')} "
          f"(ticks 10-{10 + args.batch_ticks} of seeds 0-{n_window - 1}, one by one): "
          f"(b) over it, median of the rounds: "
          f"{res['batch_vs_single']:.2f}x")
    print(f"(c) CartPole-v1      {cart:>14,.0f} steps/s             {rng('cartpole', 1e3, 'k')}")
    print(f"(d) AtomEnv          {env_single:>14,.0f} agent steps/s       {rng('env_single', 1e3, 'k')} (gym.make, 100 ms decision interval = 100 ticks/step, random actions)")
    print(f"    AtomEnv          {med['env_single_short']:>14,.0f} agent steps/s       {rng('env_single_short', 1e3, 'k')} (the same at {short_ms:g} ms, the shortest valid interval: {round(short_ms / scn.tick_ms)} ticks/step)")
    print(f"(e) AtomVectorEnv x{args.batch} {env_batch:>11,.0f} agent steps/s       {rng('env_batch', 1e3, 'k')} (summed over the batch)")
    if first:
        print(f"(f) first step, empty cache {first['first_step_cold_s']:>8.1f} s (+ {first['first_step_cold_setup_s']:.1f} s import/make/reset); "
              f"cache warm: {first['first_step_warm_s']:.2f} s (+ {first['first_step_warm_setup_s']:.1f} s)")
        if "first_step_installed_s" in first:
            print(f"    first step, empty cache, the package's portable code (`make wheel`) "
                  f"{first['first_step_installed_s']:.2f} s (+ {first['first_step_installed_setup_s']:.1f} s)")
    if not args.skip_sb3:
        print(f"(g) SB3 PPO          {med['ppo_atom']:>14,.0f} frames/s on AtomEnv, {med['ppo_cartpole']:,.0f} on CartPole-v1: "
              f"{res['sb3_ppo_vs_cartpole']:.2f}x (same hyperparameters, 1 torch thread)")
    print(f"ratios: single/CartPole {res['single_vs_cartpole']:.1f}x, batch/CartPole {res['batch_vs_cartpole']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
