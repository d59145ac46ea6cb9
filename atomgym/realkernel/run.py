"""Boot the guest under QEMU (TCG, no network), run a plan, write the capture directory.

The output directory is written as ``DIR.partial`` and renamed to ``DIR`` only when the
guest finished (``@DONE``) and every file is written, so a directory without the suffix is
always complete. An existing non-empty DIR is refused; with ``--force`` it is replaced only
if it is an earlier capture (it holds ``capture.json``) holding only the files a run writes
(CAPTURE_FILES): a file anyone else put there is never deleted, --force is refused instead.
A run that fails or is stopped (Ctrl-C, SIGTERM, SIGHUP) leaves ``DIR.partial`` (with the
serial log) for inspection; QEMU never outlives the command (it is killed on those signals, and
by the kernel if we are killed with SIGKILL).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from .. import interrupts, safefiles
from ..schema import REALKERNEL_RUN_CMD
from . import host
from .capture import Capture, begin_t0, parse_serial, timeseries_csv, timeseries_jsonl
from .errors import Interrupted, RealKernelError
from .plan import TRACE_EVENTS, Plan, load_plan

MARKER = "capture.json"
# every file `realkernel run` writes into a capture (and its DIR.partial): what --force may delete
CAPTURE_FILES = frozenset({MARKER, "plan.txt", "scenario.yaml", "serial.log", "qemu.cmd", "initrd.cpio",
                           "timeseries.jsonl", "timeseries.csv", "snapshot.txt", "snapshot-start.txt", "events.json",
                           "trace.txt"})
APPEND = "console=ttyS0 loglevel=3 rdinit=/init panic=-1 mitigations=off nokaslr"


def resolve_scenario(name: str) -> Path:
    """A path, or a scenario name under configs/scenarios."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or os.sep in name:
        if not p.exists():
            raise RealKernelError(f"{name}: no such scenario file")
        return p
    from ..sim.scenario import SCENARIO_DIR
    for cand in (SCENARIO_DIR / f"{name}.yaml",):
        if cand.exists():
            return cand
    raise RealKernelError(f"{name}: no scenario of that name in configs/scenarios (give a path to a .yaml file)")


def _not_ours(folder: Path) -> list[str]:
    """The entries of a capture folder `realkernel run` did not write (not in CAPTURE_FILES, or not a
    regular file: a folder, a symbolic link)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in CAPTURE_FILES or p.is_symlink() or not p.is_file())


def _check_ours(folder: Path, what: str) -> None:
    other = _not_ours(folder)
    if other:
        more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        raise RealKernelError(f"{folder} holds {other[0]!r}{more}, which `realkernel run` did not write; {what} "
                              f"deletes only the files of a capture: move it away first")


def remove_capture(folder: Path) -> None:
    """Delete a capture folder of ours: its CAPTURE_FILES one by one, then the (then empty) folder;
    anything else in it is refused (RealKernelError), never deleted."""
    _check_ours(folder, "--force")
    for name in CAPTURE_FILES:
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError as e:               # a file added since the check: it stays, and so does the folder
        raise RealKernelError(f"{folder}: not removed ({e.strerror}); a file was added to it meanwhile") from None


def prepare_out(out: Path, force: bool) -> Path:
    """Check DIR and make a fresh DIR.partial; returns the partial path."""
    if out.is_symlink():
        raise RealKernelError(f"{out} is a symbolic link; give the capture folder itself")
    if out.exists():
        if not out.is_dir():
            raise RealKernelError(f"{out} exists and is not a directory")
        if any(out.iterdir()):
            if not force:
                raise RealKernelError(f"{out} exists and is not empty; refusing to overwrite it (use --force)")
            if not (out / MARKER).is_file():
                raise RealKernelError(f"{out} is not an atomgym capture (no {MARKER}); --force replaces only "
                                      f"captures: move it away")
            _check_ours(out, "--force")
    part = out.with_name(out.name + ".partial")
    if part.is_symlink() or (part.exists() and not part.is_dir()):
        raise RealKernelError(f"{part} exists and is not an earlier partial capture; move it away")
    if part.exists():
        if any(part.iterdir()) and not (part / "serial.log").exists() and not (part / "plan.txt").exists():
            raise RealKernelError(f"{part} exists and is not an earlier partial capture; move it away")
        _check_ours(part, "a new run")
        remove_capture(part)
    part.mkdir(parents=True)
    return part


def qemu_command(build: host.Build, plan: Plan, initrd: Path, serial: Path) -> list[str]:
    return ["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-no-user-config", "-nic", "none",
            "-display", "none", "-no-reboot", "-m", f"{plan.ram_mib}M", "-smp", str(plan.cpus),
            "-kernel", build.kernel, "-initrd", str(initrd), "-append", APPEND,
            "-chardev", f"file,id=ser0,path={serial}", "-serial", "chardev:ser0",
            "-blockdev", f"driver=null-co,node-name=disk0,size={plan.disk_mib << 20},read-zeroes=on",
            "-device", "virtio-blk-pci,drive=disk0"]


def _tail(path: Path, n: int = 8) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln.rstrip("\r") for ln in lines[-n:]]


def boot(build: host.Build, plan: Plan, part: Path, sample_s: float, stall_s: float, timeout_s: float,
         log: Callable[[str], None]) -> tuple[Capture, float]:
    """Run QEMU until the guest powers off; returns the parsed capture and the host seconds."""
    initrd = part / "initrd.cpio"
    with safefiles.open_write(initrd, exclusive=True, binary=True) as fh:   # part is new: every file created
        fh.write(Path(build.initramfs).read_bytes())
        fh.write(host.cpio([("plan", 0o100644, plan.text(sample_s).encode())]))
    serial = part / "serial.log"
    safefiles.write_bytes(serial, b"", exclusive=True)
    cmd = qemu_command(build, plan, initrd, serial)
    # for the record, with paths inside the capture directory relative to it
    safefiles.write_text(part / "qemu.cmd", " ".join(cmd).replace(str(part) + os.sep, "") + "\n", exclusive=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=interrupts.die_with_parent())
    except OSError as e:
        raise RealKernelError(f"cannot start qemu-system-x86_64: {e.strerror or e} (run `atomgym realkernel setup`)") from None
    last_size, last_change = -1, t0
    reason = ""
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            size = serial.stat().st_size
            if size != last_size:
                last_size, last_change = size, now
            if now - last_change > stall_s:
                reason = f"no serial output for {stall_s:g} s (host time)"
            elif now - t0 > timeout_s:
                reason = f"still running after {timeout_s:g} s (host time)"
            if reason:
                proc.kill()
                proc.wait()
                break
    except KeyboardInterrupt as e:      # Ctrl-C, or SIGTERM/SIGHUP (interrupts.interruptible)
        proc.kill()
        proc.wait()
        raise Interrupted(f"interrupted ({interrupts.signal_name(e)}); QEMU stopped; the unfinished capture "
                          f"is in {part}", interrupts.exit_code(e)) from None
    host_s = time.monotonic() - t0
    qout = proc.stdout.read().decode(errors="replace").strip() if proc.stdout else ""
    initrd.unlink(missing_ok=True)
    if reason:
        tail = _tail(serial)
        for ln in tail:
            log(f"atomgym:   | {ln}")
        raise RealKernelError(f"guest hung: {reason}; killed it; the log's last lines are above "
                              f"(whole log: {serial})")
    cap = parse_serial(serial.read_text(errors="replace"))
    if cap.errors:
        raise RealKernelError(f"the guest could not run the scenario: {cap.errors[0]} (log: {serial})")
    if not cap.complete:
        tail = _tail(serial)
        for ln in tail:
            log(f"atomgym:   | {ln}")
        msg = qout.splitlines()[-1] if qout else f"exit status {proc.returncode}"
        raise RealKernelError(f"the guest stopped before finishing ({msg}); log: {serial}")
    return cap, host_s


# option -> (name on the command line, lowest, highest) in seconds
# run()'s numbers of seconds: their option's Field (atomgym/schema.py, `atomgym realkernel run`)
SECONDS = {f"{f.name}_s": f for f in REALKERNEL_RUN_CMD if f.name in ("sample", "stall", "timeout")}


def check_seconds(**values: float | None) -> None:
    """Each given number of seconds finite and in its range (SECONDS); None is the default."""
    for key, v in values.items():
        opt, (lo, hi) = SECONDS[key].flag, SECONDS[key].range
        if v is None and key == "timeout_s":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise RealKernelError(f"{opt} {v}: valid: a number of seconds from {lo:g} to {hi:g}")


def first_failure_t(cap: Capture) -> float | None:
    """Scenario time of the module's first failed page (its ktime minus the begin event's)."""
    ns = cap.atomic.get("first_fail_ns", -1)
    if ns is None or ns < 0:
        return None
    try:
        t0 = begin_t0(cap.events)
    except RealKernelError:      # no begin event with its t0: no time to give
        return None
    return round(ns / 1e9 - t0, 3)


def run(scenario: str, out: str, force: bool = False, cache: str | None = None, sample_s: float = 0.3,
        stall_s: float = 90.0, timeout_s: float | None = None, log: Callable[[str], None] = print,
        trace: bool = False) -> dict:
    """`atomgym realkernel run`: returns the capture's metadata (capture.json). ``trace``: record
    plan.TRACE_EVENTS into trace.txt (the tracefs buffer's lines, timestamps CLOCK_MONOTONIC: scenario
    time is a line's time minus the begin event's t0)."""
    check_seconds(sample_s=sample_s, stall_s=stall_s, timeout_s=timeout_s)   # before any work
    spath = resolve_scenario(scenario)
    plan = load_plan(spath)
    if trace:
        plan.trace = TRACE_EVENTS
    build = host.load_build(host.cache_dir(cache))
    if build is None:
        raise RealKernelError(f"no current build in {host.cache_dir(cache)}: run `atomgym realkernel setup` first")
    if shutil.which("qemu-system-x86_64") is None:
        raise RealKernelError("qemu-system-x86_64 not found (missing package: qemu-system-x86)")
    outp = Path(out)
    host._check_space(outp.parent if outp.parent != Path("") else Path("."), 64 << 20)
    part = prepare_out(outp, force)
    if timeout_s is None:
        # guest time runs at the host clock's pace under TCG; booting and the prefill take extra
        timeout_s = 240.0 + 2.0 * plan.duration_s + plan.prefill_cache_mib / 10.0
    safefiles.write_text(part / "plan.txt", plan.text(sample_s), exclusive=True)
    safefiles.write_bytes(part / "scenario.yaml", spath.read_bytes(), exclusive=True)
    log(f"atomgym: booting {build.release} under TCG: {plan.ram_mib} MiB, {plan.cpus} CPU, "
        f"{plan.duration_s:g} s of guest time (log: {part / 'serial.log'})")
    cap, host_s = boot(build, plan, part, sample_s, stall_s, timeout_s, log)
    try:
        safefiles.write_text(part / "timeseries.jsonl", timeseries_jsonl(cap), exclusive=True)
        safefiles.write_text(part / "timeseries.csv", timeseries_csv(cap), exclusive=True)
        safefiles.write_text(part / "snapshot.txt", cap.snapshots["final"], exclusive=True)
        if "start" in cap.snapshots:
            safefiles.write_text(part / "snapshot-start.txt", cap.snapshots["start"], exclusive=True)
        safefiles.write_text(part / "events.json", json.dumps(cap.events, indent=0) + "\n", exclusive=True)
        if plan.trace:
            safefiles.write_text(part / "trace.txt", "".join(ln + "\n" for ln in cap.trace), exclusive=True)
        oom = cap.samples[-1]["vmstat"].get("oom_kill", 0) - cap.samples[0]["vmstat"].get("oom_kill", 0) \
            if cap.samples else 0
        meta = {"scenario": plan.scenario, "scenario_file": spath.name, "kernel": cap.release,
                "ram_mib": plan.ram_mib, "cpus": plan.cpus, "memtotal_kb": cap.memtotal_kb,
                "duration_s": plan.duration_s, "sample_s": sample_s, "samples": len(cap.samples),
                "skipped_lines": cap.skipped,
                "boot_guest_s": cap.ready_uptime_s, "init_started_guest_s": cap.boot_uptime_s,
                "host_wall_s": round(host_s, 1), "guest_done_t": cap.done_t, "oom_kills": oom,
                "atomic": cap.atomic, "first_failure_t": first_failure_t(cap), "accel": "tcg",
                "trace": list(plan.trace), "trace_lines": len(cap.trace) if plan.trace else 0}
        safefiles.write_text(part / MARKER, json.dumps(meta, indent=1) + "\n", exclusive=True)
    except OSError as e:
        raise RealKernelError(f"writing {part}: {e.strerror or e}") from None
    outp = Path(out)
    if outp.exists():
        if any(outp.iterdir()):   # prepare_out proved it is a capture of ours and --force was given
            old = outp.with_name(outp.name + f".old.{os.getpid()}")
            os.rename(outp, old)
            try:
                remove_capture(old)   # only the files a run writes; anything added since: kept, and said
            except RealKernelError as e:
                raise RealKernelError(f"{e}; the old capture stays in {old}, the new one in {part}") from None
        else:
            outp.rmdir()
    os.rename(part, outp)
    if oom:
        log(f"atomgym: WARNING: the guest's OOM killer ran {oom} time(s): the scenario overcommits "
            f"{plan.ram_mib} MiB")
    log(f"atomgym: wrote {outp}: {len(cap.samples)} samples over {cap.done_t:.1f} s guest time "
        f"(boot {cap.ready_uptime_s:.1f} s guest uptime; {host_s:.0f} s host wall)")
    return meta
