"""The host side of `atomgym realkernel setup`: packages, kernel, cache, builds.

The guest runs a Debian 6.1 distribution kernel (``linux-image-6.1.*-amd64``) under
``qemu-system-x86_64 -accel tcg``; the project's module (guest/atomgym_atomic.c) is built
against the matching ``linux-headers`` package, the guest helper (guest/agrun.c) with
``gcc -static``, and the initramfs holds busybox-static, the helper, the module, virtio
block drivers and the init script. Everything built goes to the cache directory
(``$ATOMGYM_CACHE``, else ``$XDG_CACHE_HOME/atomgym``, else ``~/.cache/atomgym``), never the repo.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import interrupts
from .errors import RealKernelError

GUEST_DIR = Path(__file__).resolve().parent / "guest"
# Debian package -> the file it provides that we use.
PACKAGES: dict[str, str] = {
    "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
    "busybox-static": "/bin/busybox",
    "gcc": "/usr/bin/gcc",
    "make": "/usr/bin/make",
    "libc6-dev": "/usr/include/stdio.h",
}
KERNEL_META = ("linux-image-amd64", "linux-headers-amd64")   # bookworm: the newest 6.1.0-N-amd64
_KREL = re.compile(r"^6\.1\.\d+-\d+-amd64$")
MIN_FREE_BYTES = 200 << 20   # the cache needs ~40 MiB; refuse below this


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache directory: --cache-dir, $ATOMGYM_CACHE, $XDG_CACHE_HOME/atomgym, ~/.cache/atomgym."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("ATOMGYM_CACHE"):
        return Path(os.environ["ATOMGYM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "atomgym"


def _busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    return None


def find_kernels(root: str = "/") -> list[str]:
    """Releases with both an image (/boot/vmlinuz-R) and headers (/lib/modules/R/build), newest first."""
    out = []
    boot = Path(root, "boot")
    for p in boot.glob("vmlinuz-*") if boot.is_dir() else []:
        rel = p.name[len("vmlinuz-"):]
        if _KREL.match(rel) and Path(root, "lib/modules", rel, "build", "Makefile").exists():
            out.append(rel)

    def key(r: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", r))
    return sorted(out, key=key, reverse=True)


def missing_packages() -> list[str]:
    """Debian packages whose files are absent (the kernel pair counts as one need)."""
    miss = [pkg for pkg, f in PACKAGES.items() if not (os.path.exists(f) or (pkg == "busybox-static" and _busybox()))]
    if pkg_busybox_is_dynamic():
        miss.append("busybox-static")
    if not find_kernels():
        miss.extend(KERNEL_META)
    return sorted(set(miss))


def pkg_busybox_is_dynamic() -> bool:
    """Debian's plain `busybox` package is dynamically linked: the guest needs busybox-static."""
    bb = _busybox()
    if bb is None:
        return False
    with open(bb, "rb") as fh:
        head = fh.read(1 << 16)
    return b"ld-linux" in head


def install_packages(pkgs: list[str], log) -> None:
    """apt-get update + install (root only). Raises RealKernelError with the exact packages."""
    if os.geteuid() != 0:
        raise RealKernelError(f"missing packages: {' '.join(pkgs)} (run as root, or: "
                              f"sudo apt-get install {' '.join(pkgs)})")
    if not shutil.which("apt-get"):
        raise RealKernelError(f"missing packages: {' '.join(pkgs)} and no apt-get on this host "
                              f"(install the equivalents of these Debian packages)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]):
        log(f"atomgym: running {' '.join(cmd)}")
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
            raise RealKernelError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {last}")


@dataclass
class Build:
    """What `setup` built, as recorded in CACHE/<release>/build.json."""

    release: str
    kernel: str          # /boot/vmlinuz-<release>
    initramfs: str       # cpio (newc), uncompressed
    module: str
    helper: str
    sources: str         # hash of the guest sources: a changed source means rebuild

    @property
    def dir(self) -> Path:
        return Path(self.initramfs).parent


def sources_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(GUEST_DIR.iterdir()):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def load_build(cache: Path) -> Build | None:
    """The current build in the cache, or None if there is none or its sources changed."""
    for rel in find_kernels():
        f = cache / rel / "build.json"
        try:
            b = Build(**json.loads(f.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if b.sources == sources_hash() and all(os.path.exists(p) for p in (b.kernel, b.initramfs)):
            return b
    return None


def _check_space(path: Path, need: int = MIN_FREE_BYTES) -> None:
    p = path
    while not p.exists():
        p = p.parent
    free = shutil.disk_usage(p).free
    if free < need:
        raise RealKernelError(f"no space: {free >> 20} MiB free under {p}, need {need >> 20} MiB "
                              f"(set --cache-dir or $ATOMGYM_CACHE elsewhere)")


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> None:
    # a build dies with us (subprocess.run kills it on Ctrl-C/SIGTERM; the kernel on SIGKILL)
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       preexec_fn=interrupts.die_with_parent())
    if r.returncode != 0:
        err = [ln for ln in r.stdout.splitlines() if "error" in ln.lower()] or r.stdout.strip().splitlines() or ["?"]
        raise RealKernelError(f"{what or cmd[0]} failed (exit {r.returncode}): {err[0].strip()}")


# ---- initramfs (cpio newc, written here: no cpio tool needed) -----------------------------
def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    nb = name.encode() + b"\0"
    hdr = "070701" + "".join(f"{v:08X}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
    out = hdr.encode() + nb
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc archive of (name, mode, data) entries (directories: mode 0o040755, data b"")."""
    body = b"".join(_cpio_entry(n, m, d, i + 1) for i, (n, m, d) in enumerate(entries))
    return body + _cpio_entry("TRAILER!!!", 0, b"", 0)


def _module_bytes(release: str, rel_path: str) -> bytes:
    p = Path("/lib/modules", release, rel_path)
    data = p.read_bytes()
    return lzma.decompress(data) if p.suffix == ".xz" else data


def _module_deps(release: str, names: tuple[str, ...]) -> list[str]:
    """Module paths (relative to /lib/modules/R) for names, dependencies first (modules.dep)."""
    dep: dict[str, list[str]] = {}
    for ln in Path("/lib/modules", release, "modules.dep").read_text().splitlines():
        k, _, v = ln.partition(":")
        dep[k] = v.split()
    by_name = {re.sub(r"\.ko(\.xz|\.zst|\.gz)?$", "", os.path.basename(k)): k for k in dep}
    order: list[str] = []

    def visit(k: str) -> None:
        for d in reversed(dep.get(k, [])):   # modules.dep lists the deepest dependency last
            visit(d)
        if k not in order:
            order.append(k)
    for n in names:
        if n not in by_name:
            raise RealKernelError(f"kernel {release} has no module {n} (modules.dep)")
        visit(by_name[n])
    return order


def build_initramfs(release: str, module: Path, helper: Path, busybox: str) -> bytes:
    entries: list[tuple[str, int, bytes]] = []
    for d in ("bin", "dev", "proc", "sys", "tmp", "mods", "etc"):
        entries.append((d, 0o040755, b""))
    entries.append(("bin/busybox", 0o100755, Path(busybox).read_bytes()))
    entries.append(("bin/agrun", 0o100755, helper.read_bytes()))
    entries.append(("init", 0o100755, (GUEST_DIR / "init.sh").read_bytes()))
    mods = _module_deps(release, ("virtio_pci", "virtio_blk"))
    lst = []
    for i, m in enumerate(mods):
        name = f"{i:02d}-{re.sub(r'(.xz|.zst|.gz)$', '', os.path.basename(m))}"
        entries.append((f"mods/{name}", 0o100644, _module_bytes(release, m)))
        lst.append(name)
    entries.append(("mods/atomgym_atomic.ko", 0o100644, module.read_bytes()))
    entries.append(("mods/list", 0o100644, ("\n".join(lst) + "\n").encode()))
    return cpio(entries)


def setup(cache_override: str | None = None, install: bool = True, log=print) -> Build:
    """Install what is missing (root) and build the module, helper and initramfs into the cache."""
    miss = missing_packages()
    if miss:
        if not install:
            raise RealKernelError(f"missing packages: {' '.join(miss)} "
                                  f"(install: apt-get install {' '.join(miss)})")
        install_packages(miss, log)
        miss = missing_packages()
        if miss:
            raise RealKernelError(f"still missing after apt-get install: {' '.join(miss)}")
    release = find_kernels()[0]
    cache = cache_dir(cache_override)
    _check_space(cache)
    cached = load_build(cache)
    if cached is not None and cached.release == release:
        log(f"atomgym: up to date: {cached.dir} (kernel {release})")
        return cached
    kernel = f"/boot/vmlinuz-{release}"
    if not os.access(kernel, os.R_OK):
        raise RealKernelError(f"cannot read {kernel} (run setup as root once, or make it readable)")
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / release
    work = Path(tempfile.mkdtemp(prefix=f".{release}.", dir=cache))
    try:
        src = work / "module"
        src.mkdir()
        for f in ("atomgym_atomic.c", "Kbuild"):
            shutil.copy(GUEST_DIR / f, src / f)
        log(f"atomgym: building the module against /lib/modules/{release}/build")
        _run(["make", "-C", f"/lib/modules/{release}/build", f"M={src}", "modules"], what="module build")
        log("atomgym: building the guest helper (gcc -static)")
        _run(["gcc", "-static", "-O2", "-Wall", "-o", str(work / "agrun"), str(GUEST_DIR / "agrun.c")],
             what="helper build (gcc -static)")
        shutil.copy(src / "atomgym_atomic.ko", work / "atomgym_atomic.ko")
        shutil.rmtree(src)
        img = build_initramfs(release, work / "atomgym_atomic.ko", work / "agrun", _busybox() or "/bin/busybox")
        (work / "initramfs.cpio").write_bytes(img)
        b = Build(release=release, kernel=kernel, initramfs=str(final / "initramfs.cpio"),
                  module=str(final / "atomgym_atomic.ko"), helper=str(final / "agrun"), sources=sources_hash())
        (work / "build.json").write_text(json.dumps(asdict(b), indent=1) + "\n")
        if final.exists():   # an older build of ours (build.json proves it): replaced whole
            if not (final / "build.json").exists():
                raise RealKernelError(f"{final} exists and is not an atomgym build; move it away")
            old = cache / f".old.{release}.{os.getpid()}"
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(work, final)
    except OSError as e:
        if e.errno == 28:
            raise RealKernelError(f"no space left under {cache} while building") from None
        raise RealKernelError(f"setup: {e}") from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    log(f"atomgym: built {final} (kernel {release}: module, helper, initramfs {len(img) >> 10} KiB)")
    return b
