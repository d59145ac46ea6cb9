"""Where numba's compile time goes: a cold first env step, function by function.

    python scripts/compile_times.py [--env-id atomgym/IncastPagecache-v0] [--top 30] [--json FILE]

Runs in a fresh child process with an empty compile cache (a temporary ``ATOMGYM_CACHE_DIR``):
``gym.make``, ``reset()``, then the first ``step(0)``, which compiles the engine. numba's event API
(``numba:compile``, emitted only for a real compile, not a cache load) gives each compile's
inclusive time; a function's *exclusive* time is that minus the compiles nested in it (its callees
compile first, from inside it). Also printed: the number of compiles (a function compiled once per
distinct argument-type signature) and the time spent holding LLVM's lock (optimisation and machine
code). Wall times on a shared machine vary with the neighbours; the CPU time and the count of
compiles do not vary much.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, resource, sys, time
from numba.core import event as ev

class Rec(ev.Listener):
    def __init__(self): self.log = []
    def on_start(self, e): self.log.append((time.perf_counter(), 1, e.kind, e.data))
    def on_end(self, e): self.log.append((time.perf_counter(), 0, e.kind, e.data))

rec = Rec()
for kind in ("numba:compile", "numba:llvm_lock"):
    ev.register(kind, rec)
t0 = time.perf_counter()
import gymnasium as gym, atomgym  # noqa: F401
env = gym.make(sys.argv[1]); env.reset(seed=0)
t1 = time.perf_counter()
env.step(0)
t2 = time.perf_counter()
stack, rows, llvm, start = [], [], 0.0, None
for ts, is_start, kind, data in rec.log:
    if kind == "numba:llvm_lock":
        if is_start:
            start = ts
        elif start is not None:
            llvm += ts - start
            start = None
        continue
    if is_start:
        stack.append([ts, 0.0])
        continue
    t_start, nested = stack.pop()
    incl = ts - t_start
    if stack:
        stack[-1][1] += incl
    f = getattr(data.get("dispatcher"), "py_func", None)
    name = f"{getattr(f, '__module__', None) or '?'}.{getattr(f, '__qualname__', None) or '?'}"
    rows.append([name, incl - nested, incl])
cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime
json.dump({"setup_s": t1 - t0, "first_step_s": t2 - t1, "cpu_s": cpu, "llvm_lock_s": llvm, "rows": rows},
          open(sys.argv[2], "w"))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/compile_times.py", description=__doc__.splitlines()[0])
    ap.add_argument("--env-id", default="atomgym/IncastPagecache-v0")
    ap.add_argument("--top", type=int, default=30, help="functions listed (by exclusive time)")
    ap.add_argument("--json", help="also write every compile to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.json")
        env = dict(os.environ, ATOMGYM_CACHE_DIR=os.path.join(tmp, "cache"), ATOMGYM_COMPILE_NOTICE="0")
        r = subprocess.run([sys.executable, "-c", _CHILD, args.env_id, out], env=env, timeout=3600)
        if r.returncode != 0:
            return r.returncode
        res = json.load(open(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    per = collections.defaultdict(lambda: [0, 0.0])
    for name, excl, _ in res["rows"]:
        per[name][0] += 1
        per[name][1] += excl
    print(f"first step {res['first_step_s']:.1f} s (+ {res['setup_s']:.1f} s import/make/reset), CPU "
          f"{res['cpu_s']:.1f} s, {len(res['rows'])} compiles of {len(per)} functions, "
          f"{res['llvm_lock_s']:.1f} s in LLVM")
    print(f"{'exclusive s':>11} {'compiles':>8}  function")
    for name, (n, t) in sorted(per.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"{t:11.2f} {n:8d}  {name}")
    by_mod = collections.Counter()
    for name, (_n, t) in per.items():
        by_mod[name.rsplit(".", 1)[0] if name.startswith("atomgym.") else "numba (library overloads)"] += t
    print("by module: " + ", ".join(f"{m.removeprefix('atomgym.')} {t:.1f} s" for m, t in by_mod.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
