"""The compile cache (kernel/jit.py): keyed by each module's import closure, shared per user."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from numba.core import event as ev

from atomgym.kernel import jit as J

PKG = Path(J.__file__).resolve().parents[1]


def _copy_pkg(tmp_path: Path) -> Path:
    pkg = tmp_path / "atomgym"
    for sub in ("kernel", "sim", "envs"):
        shutil.copytree(PKG / sub, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "__init__.py").write_text("")
    return pkg


def test_import_closure_follows_the_imports():
    names = {p.relative_to(PKG).as_posix() for p in J.import_closure(PKG / "sim" / "engine.py")}
    # engine -> kswapd/alloc/nic/... -> kernel rules; never the env or the agents
    assert {"sim/engine.py", "sim/tuners.py", "sim/alloc.py", "kernel/watermark_ok.py", "kernel/jit.py"} <= names
    assert not any(n.startswith(("envs/", "agents/")) for n in names)
    leaf = {p.relative_to(PKG).as_posix() for p in J.import_closure(PKG / "kernel" / "watermarks.py")}
    assert leaf == {"kernel/watermarks.py", "kernel/zones.py", "kernel/jit.py"}
    env = {p.relative_to(PKG).as_posix() for p in J.import_closure(PKG / "envs" / "_compiled.py")}
    assert names <= env and "envs/spaces.py" in env


def test_an_edit_changes_the_keys_of_exactly_the_modules_that_import_it(tmp_path):
    pkg = _copy_pkg(tmp_path)
    mods = ["kernel/watermarks.py", "kernel/boost.py", "sim/tuners.py", "sim/alloc.py", "sim/engine.py",
            "envs/_compiled.py", "sim/rng.py"]
    before = {m: J.module_key(pkg / m, pkg) for m in mods}
    J.module_key.cache_clear()
    J._imports.cache_clear()
    t = pkg / "sim" / "tuners.py"
    t.write_text(t.read_text() + "\n# an edit\n")
    after = {m: J.module_key(pkg / m, pkg) for m in mods}
    J.module_key.cache_clear()
    J._imports.cache_clear()
    changed = {m for m in mods if before[m] != after[m]}
    assert changed == {"sim/tuners.py", "sim/alloc.py", "sim/engine.py", "envs/_compiled.py"}


def test_same_sources_share_the_cache_across_processes(tmp_path):
    """A second process (another checkout or venv with the same sources) loads what the first compiled."""
    code = ("import numpy as np; from atomgym.sim import rng; s = np.ones(4, np.uint64); rng.uniform(s);"
            "print(sum(rng.uniform._cache_misses.values()), sum(rng.uniform._cache_hits.values()))")
    env = dict(os.environ, ATOMGYM_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["1", "0"], ["0", "1"]], [r.stderr for r in runs]
    (entry,) = (tmp_path / "cache").glob("numba*/sim.rng/*")
    assert entry.name == J.module_key(PKG / "sim" / "rng.py")


def test_old_keys_are_pruned(tmp_path):
    mod = tmp_path / "sim.engine"
    for i in range(J.KEYS_KEPT + 3):
        (mod / f"k{i}").mkdir(parents=True)
        os.utime(mod / f"k{i}", (1000 + i, 1000 + i))
    J._prune(mod)
    assert sorted(d.name for d in mod.iterdir()) == sorted(f"k{i}" for i in range(3, J.KEYS_KEPT + 3))


def test_a_long_compile_is_announced_on_one_line(monkeypatch, capsys, tmp_path):
    from atomgym.sim import rng
    monkeypatch.setenv("ATOMGYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ATOMGYM_COMPILE_NOTICE", "1")
    monkeypatch.setattr(J, "NOTICE_AFTER_S", 0.05)
    notice = J._CompileNotice()
    start = ev.Event("numba:compile", ev.EventStatus.START, data={"dispatcher": rng.uniform})
    end = ev.Event("numba:compile", ev.EventStatus.END, data={"dispatcher": rng.uniform})
    notice.on_start(start)
    time.sleep(0.5)
    notice.on_end(end)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("atomgym: compiling the simulator (uniform)"), lines
    assert "atomgym warmup" in lines[0]
    # a short compile says nothing
    notice.on_start(start)
    notice.on_end(end)
    time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_warmup_command_compiles_every_group(tmp_path):
    """`atomgym warmup` runs (the shared cache is warm after the suite's first compile)."""
    r = subprocess.run([sys.executable, "-m", "atomgym", "warmup"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[-1].startswith("atomgym warmup: done in") and "functions compiled" in lines[-1]
    assert any("vector env" in ln for ln in lines)


def test_warmup_runs_the_reward_shadows_compiled_episode():
    """The warmup's reward-shadow env writes a knob, so the shadow's compiled episode (called only at
    a machine's first write) is compiled or loaded too, not left to a first training."""
    code = ("from atomgym.envs import _compiled; from atomgym.warmup import steps;"
            "dict(steps())['env: reward_baseline default/score'](); print(len(_compiled.shadow_episode.signatures))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1"], r.stdout


def test_compile_times_are_remembered_newest_last_and_bounded(monkeypatch, tmp_path):
    monkeypatch.setenv("ATOMGYM_CACHE_DIR", str(tmp_path))
    for i in range(J.TIMES_KEPT + 5):
        J._record_time(f"f{i}", 2.0)
    J._record_time("f10", 3.0)                       # a new time of an old entry moves it last
    times = J._read_times()
    assert len(times) == J.TIMES_KEPT and list(times)[-1] == "f10" and times["f10"] == 3.0
    assert "f0" not in times and "f4" not in times and "f5" in times   # the oldest are dropped
    J._record_time("short", 0.5)                     # a compile under a second is not worth a line
    assert "short" not in J._read_times()


# ---- inline="llvm": LLVM's alwaysinline instead of numba's IR copies -----------------------------------
_BIG = """
def body(a, n):
    s = 0.0
    for i in range(n):
        x = a[i % a.shape[0]]
        if x > 0.5:
            s += np.sqrt(x) * 3.0 + np.log1p(x)
        elif x > 0.25:
            s -= np.exp(x) / (1.0 + x * x)
        else:
            s += np.sin(x) * np.cos(x) + np.tanh(x)
        for k in range(3):
            s = s * 0.999 + a[(i + k) % a.shape[0]] * (k + 1)
    return s
"""


def _pair(inline: str):
    """A large callee (LLVM's cost model would not inline it on its own) and a caller that calls it
    from three sites."""
    import numpy as np
    ns: dict = {"np": np}
    exec(_BIG, ns)
    callee = J.jit(inline=inline)(ns["body"])

    def caller(a, n):
        return callee(a, n) + callee(a, n + 1) * 2.0 + callee(a, n + 2) * 3.0
    return callee, J.jit()(caller)


def _calls_left(callee, caller) -> int:
    import numpy as np
    a = np.linspace(0.0, 1.0, 7)
    assert caller(a, 5) == callee(a, 5) + callee(a, 6) * 2.0 + callee(a, 7) * 3.0
    (cres,) = callee.overloads.values()
    (llvm,) = caller.inspect_llvm().values()
    return sum(1 for ln in llvm.splitlines() if " call " in ln and cres.fndesc.mangled_name in ln)


def test_inline_llvm_inlines_every_call_site_and_never_leaves_it_to_the_cost_model():
    callee, caller = _pair("llvm")
    assert _calls_left(callee, caller) == 0
    (cres,) = callee.overloads.values()
    fn = cres.library._get_module_for_linking().get_function(cres.fndesc.mangled_name)
    assert J.has_llvm_attribute(fn, "alwaysinline")
    # the control: the same callee without the attribute stays a call (so the check above can fail)
    callee, caller = _pair("never")
    assert _calls_left(callee, caller) == 3


def test_inline_llvm_survives_the_cache(tmp_path):
    """A function loaded from the cache keeps alwaysinline in the module its callers link."""
    code = ("import numpy as np; from atomgym.sim import rng; s = np.ones(4, np.uint64); rng.uniform(s);"
            "(c,) = rng.uniform.overloads.values();"
            "f = c.library._get_module_for_linking().get_function(c.fndesc.mangled_name);"
            "from atomgym.kernel.jit import has_llvm_attribute;"
            "print(sum(rng.uniform._cache_hits.values()), has_llvm_attribute(f, 'alwaysinline'))")
    env = dict(os.environ, ATOMGYM_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["0", "True"], ["1", "True"]], [r.stderr for r in runs]


def test_jit_refuses_an_unknown_inline_mode():
    import pytest
    with pytest.raises(ValueError, match="inline"):
        J.jit(inline="sometimes")


# ---- the package's portable code (warmup --portable, shipped by `make wheel`) -------------------------
_RNG = ("import numpy as np; from atomgym.sim import rng; from atomgym.kernel.jit import _Cache; "
        "s = np.ones(4, np.uint64); x = rng.uniform(s);")


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)


def test_portable_code_is_loaded_on_a_miss_and_native_code_is_preferred(tmp_path, capsys):
    """`warmup --portable` compiles in a generic-CPU child into the package folder; a process with an
    empty cache of its own then loads that code (no compile) and computes the same; once native code is
    in its cache it loads that instead; a generic process itself never reads the package folder."""
    from atomgym.warmup import MARKER, portable
    pre = tmp_path / "pre"
    assert portable(pre, child=("-c", _RNG)) == 0
    assert "generic x86-64" in capsys.readouterr().err and (pre / MARKER).is_file()
    entries = list(J._versioned(pre).rglob("*.nbc"))
    assert entries and all("sim.rng" in str(p) or "kernel." in str(p) for p in entries), entries
    stats = ("print(sum(rng.uniform._cache_misses.values()), sum(rng.uniform._cache_hits.values()), "
             "_Cache.precompiled_loads, repr(float(x)))")
    native = _run(_RNG + stats, ATOMGYM_CACHE_DIR=str(tmp_path / "none"), ATOMGYM_PRECOMPILED_DIR=str(tmp_path / "no"))
    first = _run(_RNG + stats, ATOMGYM_CACHE_DIR=str(tmp_path / "user"), ATOMGYM_PRECOMPILED_DIR=str(pre))
    assert first.stdout.split()[:3] == ["0", "1", "1"], first.stderr
    assert first.stdout.split()[3] == native.stdout.split()[3]         # the same number
    # a compile for this CPU (warmup) goes to the user's cache, and is the one loaded from then on
    _run(_RNG, ATOMGYM_CACHE_DIR=str(tmp_path / "user"), ATOMGYM_PRECOMPILED_DIR=str(tmp_path / "no"))
    again = _run(_RNG + stats, ATOMGYM_CACHE_DIR=str(tmp_path / "user"), ATOMGYM_PRECOMPILED_DIR=str(pre))
    assert again.stdout.split()[:3] == ["0", "1", "0"], again.stderr
    # `atomgym warmup` compiles for this CPU even where portable code is there to load
    off = _run("from atomgym.kernel.jit import _Cache; _Cache.use_precompiled = False; " + _RNG + stats,
               ATOMGYM_CACHE_DIR=str(tmp_path / "w"), ATOMGYM_PRECOMPILED_DIR=str(pre))
    assert off.stdout.split()[:3] == ["1", "0", "0"], off.stderr
    gen = _run(_RNG + stats, ATOMGYM_CACHE_DIR=str(tmp_path / "g"), ATOMGYM_PRECOMPILED_DIR=str(pre),
               NUMBA_CPU_NAME="generic", NUMBA_CPU_FEATURES="")
    assert gen.stdout.split()[:3] == ["1", "0", "0"], gen.stderr


def test_warmup_compiles_for_this_cpu_not_the_portable_code(monkeypatch):
    from atomgym import warmup as W
    monkeypatch.setattr(W, "steps", lambda: [])
    monkeypatch.setattr(J._Cache, "use_precompiled", True)
    assert W.warmup(open(os.devnull, "w")) == 0 and J._Cache.use_precompiled is False


def test_damaged_portable_code_is_compiled_instead(tmp_path):
    from atomgym.warmup import portable
    pre = tmp_path / "pre"
    assert portable(pre, err=open(os.devnull, "w"), child=("-c", _RNG)) == 0
    for f in J._versioned(pre).rglob("*.nb[ic]"):
        f.write_bytes(f.read_bytes()[:20])
    r = _run(_RNG + "print(sum(rng.uniform._cache_misses.values()), _Cache.precompiled_loads)",
             ATOMGYM_CACHE_DIR=str(tmp_path / "user"), ATOMGYM_PRECOMPILED_DIR=str(pre))
    assert r.returncode == 0 and r.stdout.split() == ["1", "0"], r.stderr[-2000:]


def test_portable_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    from atomgym.warmup import portable
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    assert portable(mine, child=("-c", "raise SystemExit(0)")) == 2
    err = capsys.readouterr().err
    assert "not a folder `atomgym warmup --portable` wrote" in err and err.count("\n") == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # a failed compile leaves an earlier build alone
    pre = tmp_path / "pre"
    assert portable(pre, err=open(os.devnull, "w"), child=("-c", _RNG)) == 0
    before = sorted(str(p) for p in pre.rglob("*"))
    assert portable(pre, child=("-c", "raise SystemExit(3)")) == 2
    assert "failed (exit 3)" in capsys.readouterr().err
    assert sorted(str(p) for p in pre.rglob("*")) == before
    # a build killed before it cleaned up leaves its temporary folder: the next build removes it
    (pre / ".portable-killed" / "x").mkdir(parents=True)
    assert portable(pre, err=open(os.devnull, "w"), child=("-c", _RNG)) == 0
    assert not list(pre.glob(".portable-*"))
