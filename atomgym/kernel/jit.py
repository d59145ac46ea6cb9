"""The compile options of every numba function of the model, and where its machine code is kept.

``nogil=True``: a call from Python releases the GIL while it runs (envs/shadow_ahead.py runs the
reward shadow in a thread beside the agent's machines).

``error_model="numpy"``: no zero-division check and exception path around each ``//``, ``%`` and
``/`` (numba's default "python" model): every divisor in the model is guarded or positive by
construction; a zero would give 0 or inf instead of raising, and the property tests check that no
count goes negative or NaN.

**The compile cache.** numba's own ``cache=True`` keeps machine code in ``__pycache__`` beside each
source and keys a function on its own file only: after an edit of a callee in another file the
caller would load stale code, and every checkout or virtual environment compiles again. Here every
compiled function of atomgym is cached in one folder per user (:func:`cache_root`,
``~/.cache/atomgym`` or ``$ATOMGYM_CACHE_DIR``), under a key of its module's *import closure*
(:func:`module_key`: the content of the module and of every atomgym module it imports, transitively).
So an edit invalidates exactly the modules that can see it (an edit of ``sim/tuners.py`` recompiles
the tuners, the allocator and the engine that import it, not ``kernel/watermarks.py``), and two
checkouts or venvs with the same sources share one cache. numba adds the CPU model and features
to each entry's key, so one folder serves several CPUs.

**Portable code.** A wheel built by ``make wheel`` ships the same entries compiled for numba's generic
x86-64 CPU (:func:`precompiled_root`, ``atomgym warmup --portable``); on a miss in the per-user cache
:class:`_Cache` loads those, so a fresh install's first step does not compile.

**Inlining.** ``@jit(inline="llvm")`` marks a function ``alwaysinline`` for LLVM: it is typed and
lowered once, and LLVM inlines its LLVM IR into every compiled caller, where the caller's
constant arguments fold its branches. numba's own ``inline="always"`` copies the function's numba
IR into every call site before typing instead, and each copy is typed and lowered again (its
``copy_ir`` deep-copies the callee's variable scope once per block: 43 % of a cold first step
under Python's profiler, measured): kept only for the engine's thin wrappers, whose inlining saves
linking the engine into one more module (docs/simulator.md, "Compile time and the compile cache").

**State indices.** No index into a simulator state array is negative, so sim/layout.py compiles
them without numba's negative-index normalisation (and with the axis sizes the layout fixes as
constants); ``ATOMGYM_CHECK_INDEX=1`` compiles a check that raises IndexError on a negative or
out-of-bounds index instead (:data:`CHECK_INDEX`, part of every cache key).

**Telling the user.** A compile of the engine takes a while the first time on a machine;
:class:`_CompileNotice` prints one line to stderr when one starts (``ATOMGYM_COMPILE_NOTICE=0``
silences it) and ``atomgym warmup`` compiles everything ahead.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import pickle
import shutil
import sys
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:      # (not on Windows: saves unlocked, as numba's own)
    fcntl = None

import numba
from numba import njit, types
from numba.core import event as _ev
from numba.core.caching import CompileResultCacheImpl, FunctionCache, IndexDataCacheFile, _CacheLocator
from numba.core.registry import CPUDispatcher

_PKG = Path(__file__).resolve().parents[1]      # the atomgym package folder
# ATOMGYM_CHECK_INDEX=1: state-array indices are checked (negative, out of bounds: sim/layout.py)
CHECK_INDEX = os.environ.get("ATOMGYM_CHECK_INDEX", "") not in ("", "0")
KEYS_KEPT = 6      # per module: older keys (earlier versions of the sources) are pruned beyond this


def _versioned(base: Path) -> Path:
    """One subfolder per numba and Python version (their machine code and pickles are not
    interchangeable)."""
    return base / f"numba{numba.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"


def cache_root() -> Path:
    """The per-user folder of compiled code: ``$ATOMGYM_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/atomgym``,
    else ``$XDG_CACHE_HOME/atomgym`` (``~/.cache/atomgym``); one subfolder per numba and Python
    version."""
    if os.environ.get("ATOMGYM_CACHE_DIR"):
        base = Path(os.environ["ATOMGYM_CACHE_DIR"])
    elif os.environ.get("NUMBA_CACHE_DIR"):
        base = Path(os.environ["NUMBA_CACHE_DIR"]) / "atomgym"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atomgym"
    return _versioned(base)


PRECOMPILED_DIR = _PKG / "kernel" / "precompiled"   # package data of a wheel built by `make wheel`


def precompiled_base() -> Path:
    """The folder of the package's portable code (``$ATOMGYM_PRECOMPILED_DIR`` moves it)."""
    return Path(os.environ.get("ATOMGYM_PRECOMPILED_DIR") or PRECOMPILED_DIR)


def precompiled_root() -> Path:
    """The portable machine code shipped with the package (``atomgym warmup --portable``, run by
    ``make wheel``): the same layout as :func:`cache_root`, compiled for numba's ``generic`` x86-64
    CPU, read-only; absent in a checkout."""
    return _versioned(precompiled_base())


def _resolve(base: Path, parts: list[str]) -> Path | None:
    """atomgym/<parts>.py, or the package's __init__.py, or None (not an atomgym module)."""
    p = base.joinpath(*parts)
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return None


@functools.lru_cache(maxsize=None)
def _imports(path: Path, pkg: Path) -> tuple[Path, ...]:
    """The atomgym modules that the source at ``path`` imports anywhere in it (relative or absolute;
    ``from .x import y`` counts x, and y too when y is a module)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    here = path.parent
    found: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == pkg.name:
                    m = _resolve(pkg, a.name.split(".")[1:])
                    if m:
                        found.add(m)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.parent
                parts = node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == pkg.name:
                base, parts = pkg, node.module.split(".")[1:]
            else:
                continue
            m = _resolve(base, parts)
            if m:
                found.add(m)
            for a in node.names:
                sub = _resolve(base, parts + [a.name])
                if sub:
                    found.add(sub)
    return tuple(sorted(p for p in found if p.resolve().is_relative_to(pkg)))


def import_closure(path: Path, pkg: Path = _PKG) -> list[Path]:
    """``path`` and every atomgym module it imports, transitively (sorted)."""
    seen = {path}
    todo = [path]
    while todo:
        for dep in _imports(todo.pop(), pkg):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def module_key(path: Path, pkg: Path = _PKG) -> str:
    """The cache key of a compiled module: SHA-256 over the relative path and content of every module
    in its import closure. What a compiled function can call or read as a constant is imported, so
    any edit that can change its machine code changes the key."""
    h = hashlib.sha256()
    if CHECK_INDEX:                      # the same sources compiled with the index check
        h.update(b"check-index\0")
    for p in import_closure(path, pkg):
        h.update(p.relative_to(pkg).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _prune(module_dir: Path, keep: int = KEYS_KEPT) -> None:
    """Keep the ``keep`` most recently used keys of one module (old versions of its sources)."""
    try:
        keys = sorted((d for d in module_dir.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    for d in keys[keep:]:
        shutil.rmtree(d, ignore_errors=True)


class _Locator(_CacheLocator):
    """numba cache locator: <cache_root>/<module>/<module_key>/ for a function of atomgym."""

    def __init__(self, py_func, py_file):
        path = Path(py_file).resolve()
        self._key = module_key(path)
        self._module_name = ".".join(path.relative_to(_PKG).with_suffix("").parts)
        self._module_dir = cache_root() / self._module_name
        self._path = self._module_dir / self._key
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):
        new = not self._path.is_dir()
        super().ensure_cache_path()
        if new:
            _prune(self._module_dir)
        else:
            try:
                os.utime(self._path)        # recently used: kept by _prune
            except OSError:
                pass

    def get_cache_path(self):
        return str(self._path)

    def precompiled_path(self) -> Path:
        """Where the package's portable code for this module's sources would be."""
        return precompiled_root() / self._module_name / self._key

    def get_source_stamp(self):
        return self._key

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            if not Path(py_file).resolve().is_relative_to(_PKG):
                return None
            self = cls(py_func, py_file)
            self.ensure_cache_path()
        except OSError:      # no writable cache folder: compile in memory only
            return None
        return self


class _CacheImpl(CompileResultCacheImpl):
    _locator_classes = [_Locator]


def has_precompiled() -> bool:
    """Whether the package holds portable code for these sources (the engine's module key)."""
    engine = _PKG / "sim" / "engine.py"
    return (precompiled_root() / "sim.engine" / module_key(engine)).is_dir()


GENERIC_CPU = ("generic", "")     # numba's codegen key (CPU name, features) for NUMBA_CPU_NAME=generic


class _GenericCodegen:
    """What numba keys a cache entry on (``magic_tuple()``), as a ``generic``-CPU compile wrote it."""

    def __init__(self, triple: str) -> None:
        self.triple = triple

    def magic_tuple(self) -> tuple[str, str, str]:
        return (self.triple, *GENERIC_CPU)


class _Cache(FunctionCache):
    """numba's function cache on the per-user folder; on a miss, the package's portable code
    (:func:`precompiled_root`): machine code for the generic x86-64 CPU, which runs on this one
    (measured as fast as the native build on the headline scenario, same counters). A fresh install
    of the wheel so starts in about a second instead of compiling; ``atomgym warmup`` (or any compile)
    still writes native code to the per-user folder, which is tried first."""

    _impl_class = _CacheImpl
    precompiled_loads = 0            # entries served from the package's portable code (all dispatchers)
    use_precompiled = True           # `atomgym warmup` turns it off: it compiles for this CPU

    def __init__(self, py_func) -> None:
        super().__init__(py_func)
        pre = self._impl.locator.precompiled_path()
        self._precompiled = IndexDataCacheFile(cache_path=str(pre), filename_base=self._impl.filename_base,
                                               source_stamp=self._impl.locator.get_source_stamp()) \
            if pre.is_dir() else None

    def _save_overload(self, sig, data):
        # Two processes may save entries of one function at once (the compile helper of
        # atomgym/compile_split.py, test workers): numba's save reads the index, picks the first data
        # file name not in it, then writes both, so two unlocked saves of two signatures could share one
        # data file and the index would give one signature the other's code. An exclusive lock per
        # function makes each save whole.
        if fcntl is None:
            return super()._save_overload(sig, data)
        try:
            self._impl.locator.ensure_cache_path()
            fh = open(Path(self._cache_path) / f"{self._impl.filename_base}.lock", "ab")
        except OSError:
            return super()._save_overload(sig, data)
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                return super()._save_overload(sig, data)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load_overload(self, sig, target_context):
        data = super()._load_overload(sig, target_context)
        if data is not None or not self._enabled or self._precompiled is None or not _Cache.use_precompiled:
            return data
        triple, cpu, features = target_context.codegen().magic_tuple()
        if (cpu, features) == GENERIC_CPU:      # a generic build itself: its own folder was the one to read
            return None
        try:
            raw = self._precompiled.load(self._index_key(sig, _GenericCodegen(triple)))
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):
            return None                          # a damaged package file: compile instead
        if raw is None:
            return None
        _Cache.precompiled_loads += 1
        return self._impl.rebuild(target_context, raw)


class _Dispatcher(CPUDispatcher):
    """A dispatcher that compiles one version of a function for every call site: numba would
    compile a separate version for each combination of *literal* arguments it is called with
    from compiled code (``refill(S, b, k, GFP_PAGE_POOL, CLS_ATOMIC, False)`` and each other
    constant gfp/class/flag), and each version compiles its whole call tree again: measured, 225
    compiles for one env step, alloc_pages_bulk 7 times (204 s of 482 s). Arguments are typed by
    their type, not their value; no model function dispatches on a literal value."""

    keep_literal: frozenset[int] = frozenset()   # argument positions still specialised by value
    llvm_inline: bool = False                      # jit(inline="llvm"): alwaysinline for LLVM
    llvm_noinline: bool = False                    # jit(inline="noinline"): noinline for LLVM

    def add_overload(self, cres):
        # every compile and every load from the cache passes here, before any caller links the library
        if self.llvm_inline and not cres.objectmode:
            mark_llvm_attribute(cres.library, cres.fndesc.mangled_name, "alwaysinline")
        if self.llvm_noinline and not cres.objectmode:
            mark_llvm_attribute(cres.library, cres.fndesc.mangled_name, "noinline")
        super().add_overload(cres)

    def get_call_template(self, args, kws):
        keep = self.keep_literal
        return super().get_call_template(tuple(a if i in keep else types.unliteral(a) for i, a in enumerate(args)),
                                         {k: types.unliteral(v) for k, v in kws.items()})


def mark_llvm_attribute(library, name: str, attr: str) -> None:
    """Give the function ``name`` of a compiled library the LLVM function attribute ``attr``
    (``alwaysinline``, ``noinline``), in the module that callers link (``_shared_module``, the one a
    cache entry keeps) and in the library's own module (from which numba clones the first). Its own machine code is already emitted: the
    attribute only changes what LLVM does in the modules of its callers."""
    for mod in (library._final_module, library._shared_module):
        if mod is None:
            continue
        try:
            fn = mod.get_function(name)
        except NameError:
            continue
        if not fn.is_declaration and not has_llvm_attribute(fn, attr):
            fn.add_function_attribute(attr)


def has_llvm_attribute(fn, attr: str) -> bool:
    """Whether an llvmlite function value carries the attribute ``attr`` (its attribute sets are
    bytes, the function's own set space-separated)."""
    return any(attr.encode() in a.split() for a in fn.attributes)


DISPATCHERS: list = []     # every dispatcher jit() made, in import order (atomgym warmup counts them)


def jit(literal_args: tuple[str, ...] = (), inline: str = "never", **options):
    """``numba.njit`` with the model's options, one compile per function and type signature
    (_Dispatcher) and the atomgym compile cache (module docstring). ``literal_args``: parameters
    that stay specialised by their constant value where a hot caller passes one (a version per
    value: worth it only for a few values that fold whole branches, measured). ``inline``:
    ``"llvm"`` inlines the function into its compiled callers at the LLVM level, ``"always"`` at
    numba's IR level (module docstring), ``"never"`` leaves it to LLVM's own cost model,
    ``"noinline"`` forbids LLVM to inline it (engine.make_state(): layout._simstate_getattr()).
    Under ``NUMBA_DISABLE_JIT=1`` the function itself is returned (Python mode, debugging)."""
    if inline not in ("never", "always", "llvm", "noinline"):
        raise ValueError(f"jit(inline=...) must be 'never', 'always', 'llvm' or 'noinline', got {inline!r}")

    def deco(func):
        if numba.config.DISABLE_JIT:     # NUMBA_DISABLE_JIT=1: the Python functions themselves (debugging)
            return func
        dispatcher = njit(error_model="numpy", nogil=True, inline="always" if inline == "always" else "never",
                          **options)(func)
        dispatcher.__class__ = _Dispatcher
        dispatcher.llvm_inline = inline == "llvm"
        dispatcher.llvm_noinline = inline == "noinline"
        if literal_args:
            names = func.__code__.co_varnames[:func.__code__.co_argcount]
            dispatcher.keep_literal = frozenset(names.index(n) for n in literal_args)
        try:
            dispatcher._cache = _Cache(dispatcher.py_func)
        except RuntimeError:        # no locator (unwritable cache folder): no cache, still correct
            pass
        DISPATCHERS.append(dispatcher)
        return dispatcher
    return deco


# ---- telling the user about a compile ---------------------------------------------------------------
_TIMES_FILE = "compile-times.json"
FIRST_COMPILE_GUESS_S = 60.0     # shown before any compile was ever timed on this machine
TIMES_KEPT = 200                 # compile times remembered (per function and key of its module)
NOTICE_AFTER_S = 2.0             # a compile shorter than this is not worth a line


def _is_ours(dispatcher) -> bool:
    f = getattr(dispatcher, "py_func", None)
    return (getattr(f, "__module__", None) or "").startswith("atomgym.")


class _CompileNotice(_ev.Listener):
    """One stderr line when a compile of atomgym code is still running after ``NOTICE_AFTER_S``
    (a compile, not a load from the cache), with the time the last compile of the same function
    took on this machine (recorded in <cache_root>/compile-times.json)."""

    def __init__(self) -> None:
        self.depth = 0
        self.t0 = 0.0
        self.name = ""
        self.timer: threading.Timer | None = None

    def on_start(self, event) -> None:
        d = event.data.get("dispatcher")
        if self.depth == 0 and _is_ours(d):
            # keyed by the module's cache key too: the time of a compile of other sources (or of a
            # partly cached call tree) says nothing about this one
            self.name = f"{d.py_func.__module__}.{d.py_func.__qualname__}@{_key_of(d.py_func)}"
            self.t0 = time.perf_counter()
            if os.environ.get("ATOMGYM_COMPILE_NOTICE", "1") != "0":
                self.timer = threading.Timer(NOTICE_AFTER_S, _print_notice, (d.py_func.__qualname__, self.name))
                self.timer.daemon = True
                self.timer.start()
        self.depth += 1

    def on_end(self, event) -> None:
        self.depth = max(0, self.depth - 1)
        if self.depth == 0 and self.name:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            _record_time(self.name, time.perf_counter() - self.t0)
            self.name = ""


def _key_of(func) -> str:
    try:
        return module_key(Path(func.__code__.co_filename).resolve())
    except (OSError, ValueError, SyntaxError):
        return "?"


def _print_notice(short: str, name: str) -> None:
    last = _read_times().get(name)
    how = f"about {last:.0f} s last time" if last else f"up to ~{FIRST_COMPILE_GUESS_S:.0f} s"
    print(f"atomgym: compiling the simulator ({short}) for this CPU, {how}; once per version of its sources "
          f"(cached in {cache_root()}; `atomgym warmup` compiles ahead)", file=sys.stderr, flush=True)


TIMES_MAX_BYTES = 1 << 20        # the times file is ours and small: anything larger is ignored


def _read_times() -> dict:
    try:
        with open(cache_root() / _TIMES_FILE, "rb") as fh:
            raw = fh.read(TIMES_MAX_BYTES + 1)
        data = json.loads(raw) if len(raw) <= TIMES_MAX_BYTES else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_time(name: str, seconds: float) -> None:
    if seconds < 1.0:
        return
    times = _read_times()
    times.pop(name, None)
    times[name] = round(seconds, 1)         # newest last: the oldest beyond TIMES_KEPT are dropped
    times = dict(list(times.items())[-TIMES_KEPT:])
    path = cache_root() / _TIMES_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{_TIMES_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(times, indent=0))   # insertion order: newest last
        os.replace(tmp, path)
    except OSError:
        pass


_NOTICE = _CompileNotice()
_ev.register("numba:compile", _NOTICE)
