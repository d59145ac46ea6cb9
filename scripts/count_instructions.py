"""Instructions per simulated tick, per compiled function, counted by valgrind's callgrind.

    python scripts/count_instructions.py [--scenario incast-pagecache] [--ticks 20000]

Wall-clock timings on a shared 2-core VM swing by 20-50 % with the neighbours; instruction counts
do not (callgrind counts, it does not time). This is the noise-free A/B for the engine's speed work.

How: numba caches machine code per CPU model and valgrind's virtual CPU has no AVX-512, so the
engine is compiled once natively for a fixed target (``NUMBA_CPU_NAME=haswell``) into a private
cache folder, then run twice under callgrind (10 and 10 + ``--ticks`` ticks, after a warm-up);
the difference per JIT symbol, divided by ``--ticks``, is the per-tick count. The counts are for
haswell code (the native build may use other instructions) and exclude libm calls.
Needs valgrind (``apt install valgrind``); takes ~3 minutes.
"""
from __future__ import annotations

import argparse
import bisect
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,"
           "+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")

_CHILD = r"""
import sys, numpy as np
from atomgym.sim import Simulator, engine
from atomgym.sim.scenario import load_scenario
mode, scenario, ticks, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sim = Simulator(load_scenario(scenario), n_machines=1)
sim.reset(np.array([1])); sim.advance(10)
libs = [cres.library for cres in engine.step_state.overloads.values()]   # advance() runs step_state serially
if mode == "names":      # fresh compile: the module's function names are known
    names = sorted({f.name for lib in libs for f in lib._final_module.functions if not f.is_declaration})
    open(out, "w").write("\n".join(names))
else:                    # from the cache, under callgrind: where each function was loaded
    with open(out, "w") as fh:
        for name in open(sys.argv[5]).read().split():
            for lib in libs:
                try:
                    a = lib.get_pointer_to_function(name)
                except Exception:
                    a = 0
                if a:
                    fh.write(f"{a:x} {name}\n")
                    break
    sim.reset(np.array([1])); sim.advance(ticks)
"""


def _short(name: str) -> str:
    """atomgym.sim.nic.refill from numba's Itanium-style mangled name."""
    out, s = [], name[3:] if name.startswith("_ZN") else name
    while s and s[0].isdigit():
        k = re.match(r"\d+", s).group()
        out.append(s[len(k):len(k) + int(k)])
        s = s[len(k) + int(k):]
    return ".".join(out) or name[:60]


def _per_function(cg_out: Path, addr_map: Path) -> dict[str, int]:
    ents = sorted((int(a, 16), n) for a, n in (line.split() for line in addr_map.read_text().splitlines()))
    addrs = [a for a, _ in ents]
    txt = subprocess.run(["callgrind_annotate", "--threshold=100", str(cg_out)], capture_output=True,
                         text=True, check=True).stdout
    counts: dict[str, int] = {}
    for line in txt.splitlines():
        m = re.match(r"\s*([\d,]+) .*\?\?\?:0x([0-9a-f]+) \[\?\?\?\]", line)   # JIT code: no object file
        if not m:
            continue
        a = int(m.group(2), 16)
        i = bisect.bisect_right(addrs, a) - 1
        name = _short(ents[i][1]) if i >= 0 and ents[i][0] == a else "(unmapped JIT code)"
        counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="incast-pagecache")
    ap.add_argument("--ticks", type=int, default=20_000)
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("error: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    if args.ticks < 1:
        print(f"error: --ticks must be at least 1, got {args.ticks}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="atomgym-cg-") as tmp:
        t = Path(tmp)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(t / "cache"), NUMBA_CPU_NAME="haswell",
                   NUMBA_CPU_FEATURES=HASWELL, PYTHONHASHSEED="0")
        child = t / "child.py"
        child.write_text(_CHILD)
        names = t / "names.txt"
        print("compiling for the haswell target (native, ~2 min) ...", file=sys.stderr)
        subprocess.run([sys.executable, str(child), "names", args.scenario, "0", str(names)], env=env, check=True)
        per: list[dict[str, int]] = []
        for n in (0, args.ticks):
            print(f"callgrind, {n} ticks ...", file=sys.stderr)
            cg, amap = t / f"cg.{n}.out", t / f"map.{n}.txt"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", sys.executable,
                            str(child), "run", args.scenario, str(n), str(amap), str(names)],
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            per.append(_per_function(cg, amap))
    diff = {k: (per[1].get(k, 0) - per[0].get(k, 0)) / args.ticks for k in set(per[0]) | set(per[1])}
    total = sum(diff.values())
    print(f"scenario {args.scenario}: {total:,.0f} instructions per tick in compiled code "
          f"({args.ticks} ticks, callgrind, haswell target)")
    for k, v in sorted(diff.items(), key=lambda kv: -kv[1]):
        if v >= 0.5:
            print(f"{v:10.1f}  {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
