"""The real-kernel harness without QEMU: plan reader, serial-log parser, output handling,
hang handling (a fake qemu), fidelity on the committed capture (tests/data/realkernel/capture-smoke,
made by `atomgym realkernel run tests/data/realkernel/real-smoke.yaml`)."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import stat
import textwrap
from pathlib import Path

import pytest

from atomgym import cli
from atomgym.kernel.snapshot import parse_snapshot
from atomgym.realkernel import host, run as rkrun
from atomgym.realkernel.capture import parse_serial, read_jsonl, timeseries_csv, timeseries_jsonl
from atomgym.realkernel.errors import RealKernelError
from atomgym.realkernel.plan import load_plan
from atomgym.paths import SCENARIO_DIR
from atomgym.sim.scenario import ScenarioError, load_scenario

DATA = Path(__file__).parent / "data" / "realkernel"
CAP = DATA / "capture-smoke"
ROOT = Path(__file__).resolve().parents[1]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


# ---- parser -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cap():
    return parse_serial((CAP / "serial.log").read_text())


def test_parser_reproduces_the_committed_time_series(cap):
    assert cap.complete and not cap.errors and cap.skipped == 0
    assert timeseries_jsonl(cap) == (CAP / "timeseries.jsonl").read_text()
    assert cap.snapshots["final"] == (CAP / "snapshot.txt").read_text()
    meta = json.loads((CAP / "capture.json").read_text())
    assert len(cap.samples) == meta["samples"]
    assert cap.atomic == meta["atomic"]


def test_samples_are_ordered_and_counters_monotone(cap):
    ts = [s["t"] for s in cap.samples]
    assert ts == sorted(ts) and ts[0] < 0.5 and ts[-1] > 19.5
    steps = [b - a for a, b in zip(ts, ts[1:])]
    assert 0.25 < sorted(steps)[len(steps) // 2] < 0.4      # ~0.3 s guest time
    for key in ("pgpgin", "pgsteal_kswapd", "pageoutrun"):
        v = [s["vmstat"][key] for s in cap.samples]
        assert v == sorted(v), key
    req = [s["atomic"]["req"] for s in cap.samples]
    assert req == sorted(req) and req[-1] > 0
    a = cap.atomic
    assert a["req"] == a["got"] + a["fail"]          # every requested page is counted once
    assert a["fail"] > 0 and a["fail_bursts"] >= 1 and a["held"] == 0


def test_snapshot_from_the_guest_reads_and_matches_the_samples(cap):
    snap = parse_snapshot(CAP / "snapshot.txt")
    assert str(snap.version).startswith("6.1")
    last = cap.samples[-1]
    by_zone = {z["zone"]: z for z in last["zones"]}
    for z in snap.zones:
        assert z.managed == by_zone[z.zone]["managed"]
        assert (z.min, z.low, z.high) == (by_zone[z.zone]["min"], by_zone[z.zone]["low"], by_zone[z.zone]["high"])
    # the guest's own watermarks agree with the model (atomgym check: exit 0)
    rc, out, _ = _cli("check", str(CAP / "snapshot.txt"))
    assert rc == 0, out


def test_parser_skips_broken_lines_and_flags_an_unfinished_log():
    text = (CAP / "serial.log").read_text().splitlines()
    i = next(k for k, ln in enumerate(text) if ln.startswith("@Z"))
    broken = text[:i] + ["@Z 0 DMA32 12[    5.1] random: crng init done"] + text[i + 1:]
    c = parse_serial("\n".join(broken))
    assert c.skipped == 1
    j = next(k for k, ln in enumerate(text) if ln.startswith("@SNAP final"))
    cut = parse_serial("\n".join(text[:j + 5]))
    assert not cut.complete and any("inside snapshot" in e for e in cut.errors)
    err = parse_serial("@BOOT 1.0 6.1.0-1-amd64\n@ERR plan: cannot read line: bogus\n")
    assert err.errors == ["plan: cannot read line: bogus"] and not err.complete


def test_csv_has_one_row_per_sample(cap):
    rows = timeseries_csv(cap).splitlines()
    assert len(rows) == len(cap.samples) + 1
    head = rows[0].split(",")
    assert head[0] == "t" and "DMA32.free" in head and "atomic_fail" in head and "pageoutrun" in head


def test_read_jsonl_names_a_bad_line():
    with pytest.raises(RealKernelError, match=r"x.jsonl:2: not a time-series sample"):
        read_jsonl('{"t": 0, "zones": []}\n{"oops": 1}\n', "x.jsonl")


# ---- plan ---------------------------------------------------------------------------------
def test_plan_of_the_shipped_scenario():
    p = load_plan(SCENARIO_DIR / "real-atomic-stream.yaml")
    assert (p.ram_mib, p.cpus, p.thp, p.duration_s) == (512, 1, "never", 60.0)
    kinds = {w.name: w for w in p.works}
    assert kinds["reader"].stop == 40.0            # the phase at 40 s stops it
    assert kinds["hog"].start == 15.0 and kinds["hog"].stop is None
    assert kinds["softirq"].params == [0, 512, 100_000, 50_000]   # atomic, pages, interval us, hold us
    assert [(at, k, v) for at, k, v in p.sysctls] == [(0.0, "watermark_scale_factor", 10),
                                                     (40.0, "watermark_boost_factor", 0)]
    assert p.shots == [(17.0, 4096, 200.0), (32.0, 4096, 200.0)]
    assert p.prefill_cache_mib == int(512 * 0.30) and p.prefill_anon_mib == int(512 * 0.05)
    text = p.text()
    assert "shot 17 4096 200000" in text and "sysctl 40 watermark_boost_factor 0" in text
    assert load_plan(SCENARIO_DIR / "real-atomic-stream-wsf100.yaml").sysctls[0] == (0.0, "watermark_scale_factor", 100)


SHIPPED_PLAN = """\
# atomgym plan for real-atomic-stream
duration 60
sample 0.3
disk /dev/vda
thp never
prefill 153 25 0
sysctl 0 watermark_scale_factor 10
sysctl 40 watermark_boost_factor 0
stream 0 0 40 48 153 2048 -1
hog 1 15 -1 32 160 5 0
atomic 2 0 -1 0 512 100000 50000
shot 17 4096 200000
shot 32 4096 200000
"""


def test_plan_text_of_the_shipped_scenarios_is_unchanged():
    # the text the harness's own reader wrote before the plan was built from the simulator's loader
    assert load_plan("real-atomic-stream").text() == SHIPPED_PLAN      # a shipped scenario by name
    assert load_plan(SCENARIO_DIR / "real-atomic-stream-wsf100.yaml").text() == SHIPPED_PLAN.replace(
        "real-atomic-stream", "real-atomic-stream-wsf100").replace("scale_factor 10", "scale_factor 100")
    assert load_plan(DATA / "real-atomic-stream-nowait.yaml").text() == SHIPPED_PLAN.replace(
        "real-atomic-stream", "real-atomic-stream-nowait").replace("atomic 2 0 -1 0 ", "atomic 2 0 -1 1 ")
    # the plan the committed capture ran (written by the harness at run time)
    assert load_plan(DATA / "real-smoke.yaml").text() == (CAP / "plan.txt").read_text()


def test_phase_start_and_stop_set_the_interval(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(textwrap.dedent("""\
        duration_s: 30
        machine: {ram_mib: 512, cpus: 1}
        nics: []
        workloads:
          - {name: r, kind: stream_read, rate_mib_s: 10, working_set_mib: 100, stop_s: 25}
          - {name: late, kind: anon_hog, peak_mib: 64, start_s: 30}
        phases:
          - {at_s: 10, start: [r]}
        """))
    p = load_plan(f)
    # the schema's rule (workload_times): the phase's start replaces start_s; a workload starting
    # at or after duration_s is left out
    assert [(w.name, w.start, w.stop) for w in p.works] == [("r", 10.0, 25.0)]
    f.write_text(f.read_text() + "  - {at_s: 20, stop: [r]}\n")
    assert [(w.start, w.stop) for w in load_plan(f).works] == [(10.0, 20.0)]
    # a stop before the start is the scenario loader's error, word for word
    f.write_text(f.read_text().replace("at_s: 20", "at_s: 5"))
    with pytest.raises(ScenarioError) as want:
        load_scenario(f)
    with pytest.raises(RealKernelError) as got:
        load_plan(f)
    assert str(got.value) == str(want.value) and "stop at 5 s is not after the start at 10 s" in str(got.value)


def test_a_bad_value_in_an_atomic_alloc_is_the_loaders_one_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("nics: []\nmachine: {ram_mib: 512, cpus: 1}\nworkloads:\n"
                 "  - kind: atomic_alloc\n    interval_ms: 10\n    pages_per_burst: -5\n")
    with pytest.raises(ScenarioError) as want:
        load_scenario(f)
    with pytest.raises(RealKernelError) as got:
        load_plan(f)
    s = str(got.value)
    assert s == str(want.value) and "\n" not in s
    assert s.startswith(f"{f}:6: workloads[0].pages_per_burst: -5 is out of range")
    assert s.count("pages_per_burst") == 1 and s.count("out of range") == 1     # reported once


NICS0 = "nics: []\nmachine: {ram_mib: 512, cpus: 1}\n"     # lines 2 and 3
BAD = [
    # the simulator's loader (schema, ranges, names)
    (NICS0 + "workloads: [{kind: atomic_alloc, gfp: high}]\n",
     "workloads[0].gfp: 'high' is not a valid choice; choices: atomic, nowait"),
    (NICS0 + "workloads: [{kind: stream_read, rate: 5}]\n", "workloads[0].rate: unknown key"),
    (NICS0 + "phases: [{at_s: 1, stop: [nobody]}]\n", "no workload named 'nobody'"),
    ("nics: []\nmachine: {ram_mib: 100}\n", ":3: machine.ram_mib: 100 is out of range; valid range 512.."),
    (NICS0 + "tick_ms: [1]\n", "tick_ms: expected a number"),
    (NICS0 + "phases: [{at_s: 1, sysctl: {swappiness: 3}}]\n", "phases[0].sysctl.swappiness: unknown key"),
    # what a guest cannot run
    ("nics: [{driver: page_pool}]\n", "a guest cannot run nics (1) at line 2,"),
    ("nics: [{driver: page_pool}]\ntraffic: [{kind: poisson}]\n",
     "a guest cannot run nics (1) at line 2, traffic (1) at line 3, machine.cpus 8, the default (at most 4);"),
    ("workloads: []\n", "nics absent (one default NIC in the simulator; write `nics: []`)"),
    (NICS0 + "workloads: [{kind: churn}]\n", "a guest cannot run workloads[0] kind churn at line 4;"),
    (NICS0 + "memory: {swap: true}\n", "a guest cannot run memory.swap (the guest has no swap) at line 4;"),
    (NICS0 + "workloads:\n  - {kind: atomic_alloc, shots: [{at_s: 1}]}\n  - {kind: atomic_alloc, shots: [{at_s: 2}]}\n",
     "a guest cannot run workloads[1], a second atomic_alloc (the module has one configuration) at line 6;"),
    ("nics: []\nmachine: {ram_mib: 32768, cpus: 2}\n", "machine.ram_mib 32768 (at most 16384) at line 3;"),
    (NICS0 + "tick_ms: 0.1\nworkloads: [{kind: atomic_alloc, pages_per_burst: 1, interval_ms: 0.5}]\n",
     "workloads[0].interval_ms 0.5 (the module's timer ticks every 1 ms: 0 or at least 1) at line 5;"),
    (NICS0 + "memory: {page_cache_frac: 0.6, anon_frac: 0.35, kernel_frac: 0}\n",
     "page_cache_frac + anon_frac = 0.95 (at most 0.9: the guest needs the rest) at line 4;"),
]


@pytest.mark.parametrize("yaml_text,msg", BAD)
def test_plan_refuses_with_one_line(tmp_path, yaml_text, msg):
    f = tmp_path / "bad.yaml"
    f.write_text("duration_s: 10\n" + yaml_text)
    with pytest.raises(RealKernelError) as e:
        load_plan(f)
    s = str(e.value)
    assert msg in s and "\n" not in s and s.startswith(str(f) + ":")


def test_every_item_a_guest_cannot_run_is_named_with_its_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent("""\
        nics: []
        machine:
          nodes: 2
          cpus: 1
        memory: {swap: true}
        randomize: {memory.page_cache_frac: [0.1, 0.2]}
        workloads:
          - {kind: churn}
          - {kind: atomic_alloc, shots: [{at_s: 1}]}
          - {kind: atomic_alloc, shots: [{at_s: 2}]}
        """))
    with pytest.raises(RealKernelError) as e:
        load_plan(f)
    s = str(e.value)
    assert "\n" not in s
    for item in ("randomize (a guest runs one fixed scenario) at line 6",
                 "machine.nodes 2 (the guest has one NUMA node) at line 3",
                 "memory.swap (the guest has no swap) at line 5", "workloads[0] kind churn at line 8",
                 "workloads[2], a second atomic_alloc (the module has one configuration) at line 10"):
        assert s.count(item) == 1, item


def test_everything_a_guest_cannot_run_is_named_in_one_line():
    with pytest.raises(RealKernelError) as e:
        load_plan(Path(__file__).parents[1] / "configs/scenarios/anon-hog-bursts.yaml")
    s = str(e.value)
    assert "nics (1) at line" in s and "traffic (1) at line" in s and "\n" not in s


def test_cli_run_refuses_a_scenario_the_guest_cannot_run(tmp_path):
    rc, out, err = _cli("realkernel", "run", str(Path(__file__).parents[1] / "configs/scenarios/quiet.yaml"),
                        "--out", str(tmp_path / "o"))
    assert rc == 2 and err.count("\n") == 1 and err.startswith("atomgym: error: ")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


# ---- output directory and hang handling ---------------------------------------------------
def test_prepare_out_never_deletes_a_users_files(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep")
    with pytest.raises(RealKernelError, match="not empty"):
        rkrun.prepare_out(d, force=False)
    with pytest.raises(RealKernelError, match="not an atomgym capture"):
        rkrun.prepare_out(d, force=True)
    assert (d / "notes.txt").read_text() == "keep"
    (d / "capture.json").write_text("{}")
    # a capture with a file its run did not write: --force refuses (it would be deleted with the capture)
    with pytest.raises(RealKernelError, match="'notes.txt', which `realkernel run` did not write"):
        rkrun.prepare_out(d, force=True)
    (d / "sub").mkdir()                    # nor a folder, nor a link under a capture file's name
    (d / "notes.txt").rename(tmp_path / "notes.txt")
    with pytest.raises(RealKernelError, match="'sub'"):
        rkrun.prepare_out(d, force=True)
    (d / "sub").rmdir()
    (d / "serial.log").symlink_to(tmp_path / "notes.txt")
    with pytest.raises(RealKernelError, match="'serial.log'"):
        rkrun.prepare_out(d, force=True)
    (d / "serial.log").unlink()
    part = rkrun.prepare_out(d, force=True)
    assert part == tmp_path / "mine.partial" and part.is_dir() and (d / "capture.json").exists()
    # an old DIR.partial with a user's file in it is not emptied either
    (part / "plan.txt").write_text("x")
    (part / "mine.txt").write_text("keep")
    with pytest.raises(RealKernelError, match="'mine.txt'"):
        rkrun.prepare_out(d, force=True)
    assert (part / "mine.txt").read_text() == "keep" and (tmp_path / "notes.txt").read_text() == "keep"


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """A fake qemu-system-x86_64 on PATH and a fake build (no kernel, no QEMU needed)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    initramfs = tmp_path / "initramfs.cpio"
    initramfs.write_bytes(host.cpio([("init", 0o100755, b"#!/bin/sh\n")]))
    b = host.Build(release="6.1.0-0-amd64", kernel=str(tmp_path / "vmlinuz"), initramfs=str(initramfs),
                   module="m.ko", helper="agrun", sources="x")
    monkeypatch.setattr(host, "load_build", lambda cache: b)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def qemu(script: str) -> None:
        q = bindir / "qemu-system-x86_64"
        q.write_text("#!/bin/sh\n" + script)
        q.chmod(q.stat().st_mode | stat.S_IXUSR)
    return qemu


def _serial_arg() -> str:
    # the fake finds the serial file in the -chardev argument: file,id=ser0,path=FILE
    return 'for a in "$@"; do case "$a" in file,id=ser0,path=*) S="${a#file,id=ser0,path=}";; esac; done\n'


def test_a_hung_guest_is_killed_and_nothing_looks_complete(tmp_path, fake_env):
    fake_env(_serial_arg() + 'echo "@BOOT 1.0 6.1.0-0-amd64" > "$S"\necho "stuck in init" >> "$S"\nexec sleep 60\n')
    out = tmp_path / "cap"
    logs: list[str] = []
    with pytest.raises(RealKernelError, match=r"guest hung: no serial output for 1 s"):
        rkrun.run(str(DATA / "real-smoke.yaml"), str(out), stall_s=1, log=logs.append)
    assert not out.exists()
    assert (tmp_path / "cap.partial" / "serial.log").exists()
    assert any("stuck in init" in ln for ln in logs)      # the log's last lines are shown


def test_a_guest_that_finishes_is_written_atomically(tmp_path, fake_env):
    fake_env(_serial_arg() + f'cat "{CAP / "serial.log"}" > "$S"\nexit 0\n')
    out = tmp_path / "cap"
    meta = rkrun.run(str(DATA / "real-smoke.yaml"), str(out), log=lambda m: None)
    assert not (tmp_path / "cap.partial").exists()
    for f in ("timeseries.jsonl", "timeseries.csv", "snapshot.txt", "snapshot-start.txt", "serial.log",
              "capture.json", "scenario.yaml", "events.json"):
        assert (out / f).is_file(), f
    assert (out / "timeseries.jsonl").read_text() == (CAP / "timeseries.jsonl").read_text()
    assert meta["first_failure_t"] == pytest.approx(6.0, abs=0.05)   # the shot at 6 s
    assert not (out / "initrd.cpio").exists()
    # a second run refuses the capture without --force, replaces it with --force
    with pytest.raises(RealKernelError, match="not empty"):
        rkrun.run(str(DATA / "real-smoke.yaml"), str(out), log=lambda m: None)
    rkrun.run(str(DATA / "real-smoke.yaml"), str(out), force=True, log=lambda m: None)
    assert (out / "capture.json").exists() and not (tmp_path / "cap.partial").exists()
    # a file the user added to the capture: --force refuses (one line) and deletes nothing
    (out / "my-notes.txt").write_text("keep")
    with pytest.raises(RealKernelError, match="'my-notes.txt', which `realkernel run` did not write"):
        rkrun.run(str(DATA / "real-smoke.yaml"), str(out), force=True, log=lambda m: None)
    assert (out / "my-notes.txt").read_text() == "keep" and (out / "capture.json").exists()


def test_a_traced_run_asks_the_guest_for_the_tracepoints_and_writes_what_it_printed(tmp_path, fake_env):
    """--trace: the plan names each tracepoint (agrun switches them on at t = 0 and prints the buffer
    as @T lines before @DONE); the capture keeps those lines in trace.txt. Without it: no trace line
    in the plan, no trace.txt."""
    from atomgym.realkernel.plan import TRACE_EVENTS
    lines = ["         kswapd0-39      [000] .....    10.475323: mm_vmscan_kswapd_wake: nid=0 order=0",
             "           agrun-106     [000] .....    10.972688: mm_vmscan_direct_reclaim_begin: order=0 "
             "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO"]
    log = (CAP / "serial.log").read_text().replace("@DONE", "".join(f"@T {ln}\n" for ln in lines) + "@DONE", 1)
    (tmp_path / "traced.log").write_text(log)
    fake_env(_serial_arg() + f'cat "{tmp_path / "traced.log"}" > "$S"\nexit 0\n')
    out = tmp_path / "cap"
    meta = rkrun.run(str(DATA / "real-smoke.yaml"), str(out), log=lambda m: None, trace=True)
    plan = (out / "plan.txt").read_text().splitlines()
    assert [ln for ln in plan if ln.startswith("trace ")] == [f"trace {ev}" for ev in TRACE_EVENTS]
    assert "tracebuf 2048" in plan
    assert (out / "trace.txt").read_text().splitlines() == lines
    assert meta["trace"] == list(TRACE_EVENTS) and meta["trace_lines"] == 2
    assert parse_serial(log).trace == lines
    plain = tmp_path / "plain"
    meta = rkrun.run(str(DATA / "real-smoke.yaml"), str(plain), log=lambda m: None)
    assert not (plain / "trace.txt").exists() and meta["trace"] == [] and meta["trace_lines"] == 0
    assert not any(ln.startswith(("trace", "tracebuf")) for ln in (plain / "plan.txt").read_text().splitlines())


def test_a_guest_that_dies_early_is_one_error(tmp_path, fake_env):
    fake_env(_serial_arg() + 'echo "@BOOT 1.0 6.1.0-0-amd64" > "$S"\necho "Kernel panic - not syncing" >> "$S"\n'
             'exit 0\n')
    with pytest.raises(RealKernelError, match="stopped before finishing"):
        rkrun.run(str(DATA / "real-smoke.yaml"), str(tmp_path / "c"), log=lambda m: None)
    assert not (tmp_path / "c").exists()


def test_missing_packages_are_named_without_root(monkeypatch):
    monkeypatch.setattr(host, "missing_packages", lambda: ["busybox-static", "qemu-system-x86"])
    with pytest.raises(RealKernelError, match="missing packages: busybox-static qemu-system-x86"):
        host.setup(install=False)


def test_no_space_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(host.shutil, "disk_usage", lambda p: type("U", (), {"free": 5 << 20})())
    with pytest.raises(RealKernelError, match=r"no space: 5 MiB free"):
        host._check_space(tmp_path)


def test_cpio_is_newc_and_aligned():
    blob = host.cpio([("a", 0o100644, b"xyz"), ("d", 0o040755, b"")])
    assert blob.startswith(b"070701") and len(blob) % 4 == 0 and blob.count(b"070701") == 3
    assert b"TRAILER!!!" in blob


# ---- fidelity -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fid():
    from atomgym.realkernel.fidelity import fidelity
    return fidelity(str(CAP))


def test_fidelity_real_column_comes_from_the_capture(fid, cap):
    rows = {r["metric"]: r for r in fid["rows"]}
    h = fid["horizon_s"]
    if not fid["simulator_features"]["stop_s"]:
        assert h == 14.0     # the reader stops at 14 s; a simulator without stops is compared up to then
    within = [s for s in cap.samples if s["t"] <= h + 1e-6]
    first, last = within[0]["vmstat"], within[-1]["vmstat"]
    assert rows["kswapd_runs"]["real"] == last["pageoutrun"] - first["pageoutrun"] > 0
    assert rows["atomic_fail_pages"]["real"] == within[-1]["atomic"]["fail"] > 0
    dma32 = next(z["free"] for z in cap.atomic["first_fail_free"] if z["zone_idx"] == 1)
    assert rows["free_at_first_failure"]["real"] == dma32 and fid["zone"] == "DMA32"
    assert rows["largest_boost"]["real"] == max(z["boost"] for s in within for z in s["zones"])
    assert "median_pos[0-14s]" in rows
    assert ("median_pos[14-20s]" in rows) == (h == 20.0)


def test_fidelity_sim_column_and_verdict(fid):
    rows = {r["metric"]: r for r in fid["rows"]}
    assert rows["kswapd_runs"]["sim"] > 0                 # the simulated reader makes kswapd run
    from atomgym.realkernel.fidelity import REAL_SIDE_ONLY
    for r in fid["rows"]:
        assert r["verdict"] in ("agree", "differs", "n/a")
        # n/a only when neither side has a value, or the kernel's side needs samples this capture
        # predates (/proc/pagetypeinfo); one side only differs (a failure the other never had)
        real_side_missing = r["metric"] in REAL_SIDE_ONLY and r["real"] is None
        assert (r["verdict"] == "n/a") == ((r["real"] is None and r["sim"] is None) or real_side_missing)
        assert r["sim"] is not None     # every row has a simulated value
        assert r["real"] is not None or real_side_missing
    feats = fid["simulator_features"]
    assert (rows["atomic_fail_pages"]["sim"] is None) == (not feats["atomic_alloc"])
    if not feats["atomic_alloc"]:
        assert any("atomic_alloc" in m for m in fid["missing_in_simulator"])
    assert fid["agree"] + fid["differ"] + fid["not_comparable"] == len(fid["rows"])


def test_fidelity_cli_table_json_and_bad_dir(tmp_path):
    rc, out, err = _cli("fidelity", str(CAP))
    assert rc == 0 and out.strip().splitlines()[-1].startswith("verdict: ")
    assert "real | sim" in out
    rc, out, _ = _cli("fidelity", str(CAP), "--json")
    assert rc == 0 and json.loads(out)["scenario"] == "real-smoke"
    rc, out, err = _cli("fidelity", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "no capture.json" in err
    # a capture whose file is a link to a file elsewhere: refused, not followed
    shutil.copytree(CAP, tmp_path / "c")
    secret = tmp_path / "secret.json"
    secret.write_text('["SECRET"]')
    (tmp_path / "c" / "events.json").unlink()
    (tmp_path / "c" / "events.json").symlink_to(secret)
    rc, out, err = _cli("fidelity", str(tmp_path / "c"))
    assert rc == 2 and err.count("\n") == 1 and "events.json: a symbolic link" in err and "SECRET" not in err


def test_agreement_rule():
    """Counts within 25 % of the real value, positions and free pages within 0.25 of the high-min
    gap (issue 21), either widened by the kernel's own spread."""
    from atomgym.realkernel.fidelity import _agree
    assert _agree(100, 124, "kswapd_runs") and _agree(100, 76, "kswapd_runs")
    assert not _agree(100, 126, "kswapd_runs") and not _agree(100, 190, "kswapd_runs")
    assert _agree(100, 190, "kswapd_runs", spread=0.95)   # the kernel differs from itself by 95 %
    assert _agree(3, 9, "direct_reclaim_stalls")          # both small
    assert not _agree(0, 50, "direct_reclaim_stalls")
    assert _agree(0.8, 1.0, "median_pos[0-14s]") and not _agree(0.5, 0.9, "median_pos[0-14s]")
    assert not _agree(13.0, 12.6, "median_pos[0-14s]")    # no relative slack far above high any more
    assert _agree(13.0, 12.6, "median_pos[0-14s]", spread=0.5)
    # free pages in gaps: 40 pages off with a 200-page gap is 0.2 gap; 60 is 0.3
    assert _agree(500, 540, "free_at_first_failure", gap=200) and not _agree(500, 560, "free_at_first_failure", gap=200)
    # a time: 25 %, or one sample interval (the floor)
    assert _agree(1.0, 1.25, "first_failure_t") and _agree(0.1, 0.35, "first_failure_t", floor=0.3)
    assert not _agree(8.0, 10.5, "first_failure_t", floor=0.3)
    assert not _agree(8.0, 5.5, "first_failure_t", floor=0.3)   # a time is not a small count


# ---- setup's boot check, numeric options, stopping a run (issue 23) ----------------------------
def test_the_boot_check_scenario_is_one_a_guest_runs(tmp_path):
    """`realkernel setup` boots this scenario: the loader and the plan must accept it (a RAM below
    the schema's minimum made every first setup fail)."""
    from atomgym.realkernel.cli import BOOT_CHECK
    f = tmp_path / "boot-check.yaml"
    f.write_text(BOOT_CHECK)
    plan = load_plan(f)
    assert plan.duration_s == 1 and [w.kind for w in plan.works] == ["atomic"]


@pytest.mark.parametrize("opt, value", [("--stall", "nan"), ("--timeout", "nan"), ("--timeout", "-1"),
                                        ("--timeout", "inf"), ("--sample", "inf"), ("--stall", "0"),
                                        ("--sample", "nan")])
def test_run_refuses_a_bad_number_of_seconds_before_booting(tmp_path, fake_env, opt, value):
    started = tmp_path / "qemu-started"
    fake_env(f'touch "{started}"\nexit 1\n')
    rc, out, err = _cli("realkernel", "run", str(DATA / "real-smoke.yaml"), "--out", str(tmp_path / "o"),
                        f"{opt}={value}")
    # the option's Field (atomgym/schema.py) refuses it, naming the subcommand typed and the range
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"atomgym: error: argument {opt}: ") and "expected a number of seconds in [" in err, err
    assert err.endswith("(see `atomgym realkernel run --help`)\n"), err
    assert not started.exists() and not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    with pytest.raises(RealKernelError, match=opt):
        rkrun.run(str(DATA / "real-smoke.yaml"), str(tmp_path / "o"), **{
            {"--stall": "stall_s", "--timeout": "timeout_s", "--sample": "sample_s"}[opt]: float(value)})


_RUNNER = """
import sys
from atomgym.realkernel import host
from atomgym import cli
b = host.Build(release="6.1.0-0-amd64", kernel=sys.argv[1], initramfs=sys.argv[2], module="m.ko", helper="agrun",
               sources="x")
host.load_build = lambda cache: b
sys.exit(cli.main(["realkernel", "run", sys.argv[3], "--out", sys.argv[4]]))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"       # a zombie has died (a container's init may be slow to reap it)


def _terminal_signals() -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _start_run_with_a_hanging_qemu(tmp_path, fake_env):
    import subprocess
    import sys
    import time
    pidfile = tmp_path / "qemu.pid"
    fake_env(_serial_arg() + f'echo "@BOOT 1.0 6.1.0-0-amd64" > "$S"\necho $$ > "{pidfile}"\nexec sleep 120\n')
    initramfs = tmp_path / "initramfs.cpio"
    initramfs.write_bytes(host.cpio([("init", 0o100755, b"#!/bin/sh\n")]))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.Popen([sys.executable, "-c", _RUNNER, str(tmp_path / "vmlinuz"), str(initramfs),
                          str(DATA / "real-smoke.yaml"), str(tmp_path / "cap")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # a shell's background job ignores SIGINT, and nohup SIGHUP, and hands that on:
                         # give the command the defaults a terminal would (a command leaves an ignored
                         # signal ignored, as nohup asks)
                         preexec_fn=_terminal_signals)
    t0 = time.monotonic()
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert p.poll() is None and time.monotonic() - t0 < 60, p.communicate()
        time.sleep(0.1)
    time.sleep(0.3)
    qpid = int(pidfile.read_text())
    assert _alive(qpid)
    return p, qpid


def _gone_within(pid: int, seconds: float) -> bool:
    import time
    t0 = time.monotonic()
    while _alive(pid):
        if time.monotonic() - t0 > seconds:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_a_signal_stops_qemu_and_leaves_only_the_partial_folder(tmp_path, fake_env, sig, code):
    import signal
    p, qpid = _start_run_with_a_hanging_qemu(tmp_path, fake_env)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    errs = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errs) == 1 and errs[0].startswith("atomgym: error: interrupted") and "Traceback" not in err, err
    assert _gone_within(qpid, 5)
    assert not (tmp_path / "cap").exists() and (tmp_path / "cap.partial" / "serial.log").exists()


def test_qemu_dies_with_a_killed_parent(tmp_path, fake_env):
    p, qpid = _start_run_with_a_hanging_qemu(tmp_path, fake_env)
    p.kill()                  # SIGKILL: no handler runs; the kernel's parent-death signal stops QEMU
    p.communicate(timeout=30)
    assert _gone_within(qpid, 5)
    assert not (tmp_path / "cap").exists()


def test_parser_reads_pagetypeinfo_samples_and_old_logs_lack_them(tmp_path):
    """The guest samples /proc/pagetypeinfo (free chunks per migratetype and order; pageblocks per
    type under the header the kernel's config gives): a sample gets ``pagetypes`` and
    ``pageblocks`` keyed "NID:ZONE"; a malformed line is counted, not guessed at; a sample without
    those lines (every capture before 2026-12-06) has neither key. scripts/pagetypes.py prints the
    zone's fragmentation from them and refuses a capture without them (exit 2)."""
    import subprocess
    import sys
    log = textwrap.dedent("""\
        @S 0.5
        @Z 0 DMA32 1000 0 10 20 30 5000
        @P 0 DMA32 Unmovable 1 1 1 0 1 0 1 1 3 1 0
        @P 0 DMA32 Movable 0 4 2 2 1 2 0 3 3 1 2
        @P 0 DMA32 Movable 1 2
        @PH Unmovable Movable Reclaimable HighAtomic CMA Isolate
        @PB 0 DMA32 330 169 5 0 0 0
        @S 0.8
        @Z 0 DMA32 1000 0 10 20 30 5000
        @DONE 1.0
        """)
    cap = parse_serial(log)
    s0, s1 = cap.samples
    assert s0["pagetypes"]["0:DMA32"]["Unmovable"] == [1, 1, 1, 0, 1, 0, 1, 1, 3, 1, 0]
    assert s0["pagetypes"]["0:DMA32"]["Movable"][10] == 2 and cap.skipped == 1
    assert s0["pageblocks"]["0:DMA32"] == {"Unmovable": 330, "Movable": 169, "Reclaimable": 5, "HighAtomic": 0,
                                          "CMA": 0, "Isolate": 0}
    assert "pagetypes" not in s1 and "pageblocks" not in s1
    d = tmp_path / "cap"
    d.mkdir()
    (d / "timeseries.jsonl").write_text(timeseries_jsonl(cap))
    script = Path(__file__).resolve().parents[1] / "scripts" / "pagetypes.py"
    r = subprocess.run([sys.executable, str(script), str(d), "--every", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # free pages by type (chunks x 2**order), whole free blocks (order 9: one, order 10: two)
    assert "| 0.5 | 1000 | 0 | 1495 / 3824 / 0 | 1 / 5 | 330 / 169 / 5 |" in r.stdout
    # a symbolic link in a capture is refused, not followed (the same rule as fidelity's)
    (tmp_path / "elsewhere.jsonl").write_text(timeseries_jsonl(cap))
    (d / "timeseries.jsonl").unlink()
    (d / "timeseries.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    r = subprocess.run([sys.executable, str(script), str(d)], capture_output=True, text=True)
    assert r.returncode == 2 and "a symbolic link" in r.stderr and "Traceback" not in r.stderr
    (d / "timeseries.jsonl").unlink()
    cap.samples = [s1]
    (d / "timeseries.jsonl").write_text(timeseries_jsonl(cap))
    r = subprocess.run([sys.executable, str(script), str(d)], capture_output=True, text=True)
    assert r.returncode == 2 and "no /proc/pagetypeinfo samples" in r.stderr
    # a sample fidelity would refuse is refused here too, in one line (fidelity.check_samples())
    bad = [json.loads(ln) for ln in timeseries_jsonl(cap).splitlines()]
    bad[0]["t"] = "x"
    (d / "timeseries.jsonl").write_text("".join(json.dumps(x) + "\n" for x in bad))
    r = subprocess.run([sys.executable, str(script), str(d)], capture_output=True, text=True)
    assert r.returncode == 2 and "sample 1: t = 'x'" in r.stderr and "Traceback" not in r.stderr


def test_parser_reads_kswapds_schedstat_and_fidelity_compares_it(tmp_path):
    """The guest samples kswapd0's /proc/PID/schedstat (CPU time, runqueue wait, timeslices, ns):
    a sample gets ``kswapd``; a malformed line is counted, not guessed at; a sample without it
    (every capture before 2026-12-07) has no key, and fidelity's two kswapd rows are n/a there.
    The real side is the difference between the first and last samples: CPU time in ms, and the
    runqueue wait per balance_pgdat() run (pageoutrun); scripts/kswapd_rates.py prints the same
    figures and the reclaim rate per ms of kswapd's CPU time."""
    import subprocess
    import sys
    from atomgym.realkernel.fidelity import check_samples, real_metrics
    log = textwrap.dedent("""\
        @S 0.0
        @Z 0 DMA32 1000 0 10 20 30 5000
        @V pageoutrun 5 pgsteal_kswapd 100 pgscan_kswapd 100
        @K 1000000 500000 7
        @S 0.3
        @Z 0 DMA32 1000 0 10 20 30 5000
        @V pageoutrun 9 pgsteal_kswapd 1300 pgscan_kswapd 1300
        @K 4000000 1700000 12
        @K 12 x 3
        @S 0.6
        @Z 0 DMA32 1000 0 10 20 30 5000
        @DONE 1.0
        """)
    cap = parse_serial(log)
    s0, s1, s2 = cap.samples
    assert s0["kswapd"] == {"run_ns": 1000000, "wait_ns": 500000, "slices": 7}
    assert s1["kswapd"]["run_ns"] == 4000000 and cap.skipped == 1 and "kswapd" not in s2
    check_samples(cap.samples[:2], Path("ts"))
    with pytest.raises(RealKernelError, match=r"ts: sample 1: kswapd must be an object of numbers"):
        check_samples([dict(s0, kswapd={"run_ns": -1, "wait_ns": 0, "slices": 0})], Path("ts"))
    plan = load_plan(ROOT / "configs" / "corpus" / "base.yaml")
    m = real_metrics(plan, cap.samples[:2], {})
    assert m["kswapd_runs"] == 4 and m["kswapd_cpu_ms"] == 3.0 and m["kswapd_wait_per_run_ms"] == 0.3
    old = real_metrics(plan, [dict(s, kswapd=None) for s in cap.samples[:2]], {})
    assert old["kswapd_cpu_ms"] is None and old["kswapd_wait_per_run_ms"] is None
    d = tmp_path / "cap"
    d.mkdir()
    cap.samples = cap.samples[:2]
    (d / "timeseries.jsonl").write_text(timeseries_jsonl(cap))
    script = ROOT / "scripts" / "kswapd_rates.py"
    r = subprocess.run([sys.executable, str(script), str(d), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)[str(d)]
    assert got["cpu_ms"] == 3.0 and got["per_cpu_ms"] == 400.0 and got["cpu_per_run_ms"] == 0.75
    assert got["wait_per_run_ms"] == 0.3 and got["wait_per_slice_ms"] == 0.24


def test_fidelity_compares_kswapds_time_where_the_capture_has_it():
    """A shipped capture with kswapd0's schedstat (corpus/*-4) has both kswapd rows
    compared: its CPU time against the simulator's time in balance_pgdat() runs, its runqueue wait
    per run against the wake latency each woken run waited; one without it (the smoke capture)
    has them n/a. The twin of such a capture runs the guest's own kswapd speed: pgsteal_kswapd per ms of
    kswapd's CPU time (for kswapd and for direct reclaim) and the runqueue wait per run replace the
    scenario's values, also at a calibration's grid point (which moves only what was not measured)."""
    from atomgym.realkernel.fidelity import fidelity, load, simulate
    cap = ROOT / "corpus" / "base-4"
    rows = {r["metric"]: r for r in fidelity(str(cap))["rows"]}
    for k in ("kswapd_cpu_ms", "kswapd_wait_per_run_ms"):
        assert rows[k]["real"] > 0 and rows[k]["sim"] > 0 and rows[k]["verdict"] in ("agree", "differs")
    old = {r["metric"]: r for r in fidelity(str(CAP))["rows"]}
    assert old["kswapd_cpu_ms"]["verdict"] == old["kswapd_wait_per_run_ms"]["verdict"] == "n/a"
    ld = load(cap)
    samples = [json.loads(x) for x in gzip.open(cap / "timeseries.jsonl.gz", "rt")]
    k0, k1, v0, v1 = samples[0]["kswapd"], samples[-1]["kswapd"], samples[0]["vmstat"], samples[-1]["vmstat"]
    rate = (v1["pgsteal_kswapd"] - v0["pgsteal_kswapd"]) / ((k1["run_ns"] - k0["run_ns"]) / 1e6)
    wait = (k1["wait_ns"] - k0["wait_ns"]) / 1e6 / (v1["pageoutrun"] - v0["pageoutrun"])
    assert ld["kswapd_measured"] == {"reclaim_pages_per_ms": round(rate, 1), "wake_latency_ms": round(wait, 3),
                                     "direct_reclaim_pages_per_ms": round(rate, 1)}
    assert 200 < rate < 1000 and 0.1 < wait < 2     # 1 CPU, 1 GiB: ~400 pages per CPU ms, ~0.5 ms
    grid = {"reclaim_pages_per_ms": 50.0, "wake_latency_ms": 10.0, "direct_reclaim_pages_per_ms": 99.0}
    m = simulate(ld, 1, grid)
    assert m["kswapd"]["reclaim_pages_per_ms"] == round(rate, 1) and m["kswapd"]["wake_latency_ms"] == round(wait, 3)
    assert m["kswapd"]["direct_reclaim_pages_per_ms"] == round(rate, 1)   # measured too: the same reclaim
    assert simulate(load(CAP), 1, grid)["kswapd"]["direct_reclaim_pages_per_ms"] == 99.0   # not measured: the grid's
    assert not load(CAP)["kswapd_measured"]
