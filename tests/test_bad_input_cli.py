"""Bad input to the `atomgym` CLI and the snapshot parser (issue: every bad input a clear error,
nothing a user owns overwritten): `snapshot -o` output safety, impossible snapshot values, bounded
reads, full disks, wide tables, usage messages."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atomgym import cli
from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.snapshot import MAX_MANAGED_PAGES, SnapshotError, parse_snapshot, parse_text
from cli_helpers import one_line_error, run
from snapshot_helpers import snapshot_text

REPO = Path(__file__).parents[1]



def _machine() -> Machine:
    return Machine(managed=np.array([3840, 600000, 500000, 0, 0]), version=KernelVersion(6, 18)).boot()


def _fake_host(root: Path) -> None:
    text = snapshot_text(_machine(), release="6.18.9")
    for block in text.split("==> ")[1:]:
        path, body = block.split(" <==\n", 1)
        f = root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body.rstrip("\n") + "\n")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    _fake_host(root)
    return root


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


# ---- snapshot -o: never replace what is not a regular file, never leave a temporary file -------
def test_snapshot_refuses_a_symlink_and_leaves_it_and_its_target(host, tmp_path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    for force in ([], ["--force"]):
        code, _, err = run(["snapshot", "--root", str(host), "-o", str(link), *force])
        one_line_error(code, err, str(link), "symbolic link")
        assert link.is_symlink() and target.read_text() == "precious\n"
    assert _leftovers(tmp_path) == []


def test_snapshot_refuses_a_dangling_symlink(host, tmp_path) -> None:
    link = tmp_path / "dangling.txt"
    link.symlink_to(tmp_path / "nowhere")
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(link), "--force"])
    one_line_error(code, err, "symbolic link")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_snapshot_refuses_a_device_node(host, tmp_path) -> None:
    """Run as root, `-o /dev/full --force` used to replace the device with a regular file."""
    dev = Path("/dev/null")
    before = os.lstat(dev)
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(dev), "--force"])
    one_line_error(code, err, "/dev/null", "not a regular file")
    after = os.lstat(dev)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(fifo), "--force"])
    one_line_error(code, err, "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _leftovers(tmp_path) == []


def test_snapshot_refuses_a_directory_and_a_missing_directory(host, tmp_path) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(d), "--force"])
    one_line_error(code, err, "is a directory")
    assert d.is_dir() and list(d.iterdir()) == []
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(tmp_path / "no" / "such" / "s.txt")])
    one_line_error(code, err, "no such directory")
    assert not (tmp_path / "no").exists() and _leftovers(tmp_path) == []


def test_snapshot_never_touches_an_existing_dot_tmp(host, tmp_path) -> None:
    """The old code wrote P.tmp (even without --force, even if P.tmp was someone's file)."""
    out = tmp_path / "s.txt"
    mine = tmp_path / "s.txt.tmp"
    mine.write_text("mine\n")
    for force in ([], ["--force"]):
        code, _, err = run(["snapshot", "--root", str(host), "-o", str(out), *force])
        assert code == 0, err
    assert mine.read_text() == "mine\n"
    assert parse_snapshot(out).zones and _leftovers(tmp_path) == ["s.txt.tmp"]


def test_snapshot_keeps_the_mode_of_a_replaced_file_and_umask_for_a_new_one(host, tmp_path) -> None:
    out = tmp_path / "s.txt"
    out.write_text("old\n")
    out.chmod(0o640)
    assert run(["snapshot", "--root", str(host), "-o", str(out), "--force"])[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    new = tmp_path / "new.txt"
    old = os.umask(0o022)
    try:
        assert run(["snapshot", "--root", str(host), "-o", str(new)])[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644


def test_snapshot_without_force_does_not_clobber_a_file_that_appears_meanwhile(host, tmp_path, monkeypatch):
    """The file is linked into place (fails if it exists), not renamed over it."""
    out = tmp_path / "s.txt"
    real = cli.take_snapshot

    def racing(root):
        res = real(root)
        out.write_text("theirs\n")     # created after the first check, before the write
        return res
    monkeypatch.setattr(cli, "take_snapshot", racing)
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(out)])
    one_line_error(code, err, "exists")
    assert out.read_text() == "theirs\n" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_snapshot_full_disk_is_one_line_and_leaves_nothing(host, tmp_path, monkeypatch, fail_at) -> None:
    out = tmp_path / "s.txt"
    out.write_text("old\n")

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if fail_at == "write":
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, *a, **k):
                self.f = real_fdopen(*a, **k)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            write = enospc
        monkeypatch.setattr(cli.os, "fdopen", Full)
    else:
        monkeypatch.setattr(cli.os, fail_at, enospc)
    code, _, err = run(["snapshot", "--root", str(host), "-o", str(out), "--force"])
    monkeypatch.undo()
    one_line_error(code, err, str(out), "No space left on device")
    assert out.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_snapshot_read_only_directory(host, tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        code, _, err = run(["snapshot", "--root", str(host), "-o", str(d / "s.txt")])
        one_line_error(code, err, "Permission denied")
    finally:
        d.chmod(0o755)


def test_stdout_on_a_full_disk_is_one_line_exit_2(tmp_path) -> None:
    """`atomgym check S > /dev/full`: one line, exit 2, no 'Exception ignored' at exit."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    p = tmp_path / "s.txt"
    p.write_text(snapshot_text(_machine()))
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "atomgym", "check", str(p)], stdout=full, stderr=subprocess.PIPE,
                           text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "No space left on device" in r.stderr, r.stderr


# ---- snapshot values: impossible ones refused with file, line and the valid range ---------------
def _text(**repl: str) -> str:
    t = snapshot_text(_machine())
    for old, new in repl.items():
        assert old in t, old
        t = t.replace(old, new, 1)
    return t


@pytest.mark.parametrize("managed, needle", [
    ("-5", "outside 0.."),
    (str(2**63 - 1), "outside 0.."),                 # used to overflow to min 0
    (str(2**64), "outside 0.."),                     # used to be an OverflowError traceback
    ("9" * 5000, "too large"),                       # int() refuses > 4300 digits
])
def test_impossible_managed_is_refused(managed, needle) -> None:
    t = snapshot_text(_machine())
    i = t.index("managed  ", t.index("zone    DMA32"))
    line = t[i:t.index("\n", i)]
    with pytest.raises(SnapshotError) as e:
        parse_text(t.replace(line, f"managed  {managed}", 1), "s.txt")
    msg = str(e.value)
    assert needle in msg and "s.txt:" in msg and "\n" not in msg


def test_managed_at_the_limit_is_accepted_and_computes_without_overflow() -> None:
    t = snapshot_text(Machine(managed=np.array([3840, 600000, MAX_MANAGED_PAGES, 0, 0]),
                              version=KernelVersion(6, 18)).boot())
    m = parse_text(t, "s.txt").machine()
    assert (m.wmark >= 0).all() and m.wmark[2, 0] > 0


def test_negative_lowmem_reserve_ratio_and_inconsistent_page_counts() -> None:
    t = snapshot_text(_machine())
    i = t.index("==> /proc/sys/vm/lowmem_reserve_ratio <==\n") + len("==> /proc/sys/vm/lowmem_reserve_ratio <==\n")
    j = t.index("\n", i)
    bad = t[:i] + "256\t-1\t32\t0\t0" + t[j:]
    with pytest.raises(SnapshotError, match=r"lowmem_reserve_ratio: -1 is outside 0\.\.2147483647"):
        parse_text(bad, "s.txt")
    k = t.index("present  ", t.index("zone    DMA32"))
    line = t[k:t.index("\n", k)]
    with pytest.raises(SnapshotError, match="spanned >= present >= managed"):
        parse_text(t.replace(line, "present  5", 1), "s.txt")


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_check_of_an_endless_device_is_refused_quickly(path) -> None:
    if not Path(path).exists():
        pytest.skip(f"no {path}")
    code, out, err = run(["check", path])
    one_line_error(code, err, path)
    assert out == ""


def test_check_of_a_huge_file_is_refused(tmp_path, monkeypatch) -> None:
    import atomgym.kernel.snapshot as snapmod
    monkeypatch.setattr(snapmod, "MAX_SNAPSHOT_BYTES", 1000)
    p = tmp_path / "big.txt"
    p.write_text(snapshot_text(_machine()))
    code, _, err = run(["check", str(p)])
    one_line_error(code, err, "larger than")


def test_bad_snapshot_through_a_scenario_is_one_line(tmp_path) -> None:
    """A negative managed in a scenario's machine.snapshot used to be a traceback."""
    from atomgym.sim import Simulator
    from atomgym.sim.scenario import ScenarioError, load_scenario
    snap = tmp_path / "s.txt"
    t = snapshot_text(_machine())
    i = t.index("managed  ", t.index("zone    DMA32"))
    snap.write_text(t.replace(t[i:t.index("\n", i)], "managed  -600000", 1))
    sc = tmp_path / "sc.yaml"
    sc.write_text("machine:\n  snapshot: s.txt\n")
    with pytest.raises(ScenarioError, match="outside 0"):
        Simulator(load_scenario(sc), n_machines=1)


# ---- tables and usage messages ------------------------------------------------------------------
def test_whatif_table_columns_never_run_together(tmp_path) -> None:
    m = Machine(managed=np.array([3840, 600000, 123456789, 0, 0]), version=KernelVersion(6, 18)).boot()
    p = tmp_path / "big.txt"
    p.write_text(snapshot_text(m))
    code, out, _ = run(["whatif", str(p), "--set", "vm.min_free_kbytes=2000000000"])
    assert code == 0
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("node"))
    normal = lines[head + 3].split()
    assert normal[:3] == ["0", "Normal", "123456789"] and len(normal) == 8 + 5, normal
    code, out, _ = run(["check", str(p)])
    row = next(ln for ln in out.splitlines() if "Normal" in ln and " min " in ln)
    assert row.split()[2] == "123456789", row


def test_usage_errors_name_the_command_once() -> None:
    code, _, err = run(["frobnicate"])
    assert code == 2 and "(see `atomgym --help`)" in err and "atomgym atomgym" not in err
    code, _, err = run(["check"])
    assert code == 2 and "(see `atomgym check --help`)" in err


# ---- found by re-trying the hardest cases -------------------------------------------------------
def test_snapshot_of_the_live_host_reads_proc_sys_files() -> None:
    """One 64 MiB read() of a /proc/sys file fails with ENOMEM (the bounded read must be chunked)."""
    if not Path("/proc/sys/vm/min_free_kbytes").is_file():
        pytest.skip("not a Linux host")
    text, notes = cli.take_snapshot("/")
    assert not any("min_free_kbytes" in n or "osrelease" in n for n in notes), notes
    assert "==> /proc/sys/vm/min_free_kbytes <==\n" in text


def test_control_characters_in_a_file_name_stay_on_one_line(tmp_path) -> None:
    code, _, err = run(["check", str(tmp_path / "a\nb.txt")])
    one_line_error(code, err, "a\\nb.txt", "cannot read")
    assert err.count("\n") == 1, err


def test_a_5000_digit_sysctl_value_is_out_of_range(tmp_path) -> None:
    p = tmp_path / "s.txt"
    p.write_text(snapshot_text(_machine()))
    code, out, err = run(["whatif", str(p), "--set", "vm.min_free_kbytes=" + "9" * 5000])
    line = one_line_error(code, err, "vm.min_free_kbytes", "5000 digits) is out of range", "5019 characters")
    assert len(line) < 400 and out == ""


def test_crlf_and_byte_order_mark_snapshots_are_read(tmp_path) -> None:
    text = snapshot_text(_machine())
    for name, data in (("crlf.txt", text.replace("\n", "\r\n").encode()), ("bom.txt", b"\xef\xbb\xbf" + text.encode())):
        p = tmp_path / name
        p.write_bytes(data)
        code, out, err = run(["check", str(p)])
        assert code == 0 and "every zone equal" in out, err


def test_snapshot_to_an_empty_file_name_is_refused(host) -> None:
    code, out, err = run(["snapshot", "--root", str(host), "-o", ""])
    one_line_error(code, err, "empty file name")
    assert out == ""


def test_check_of_a_snapshot_with_hundreds_of_nodes_ends(tmp_path) -> None:
    """The boot-time pattern search is populated zones x deltas x zones: bounded, so a (valid)
    snapshot listing 100 nodes is checked in seconds, not hours."""
    managed = np.tile(np.array([3840, 600000, 500000, 0, 0]), 100)
    m = Machine(managed=managed, version=KernelVersion(6, 18)).boot()
    t = snapshot_text(m)
    i = t.index("min      ", t.index("zone    DMA32"))
    line = t[i:t.index("\n", i)]
    p = tmp_path / "big.txt"
    p.write_text(t.replace(line, "min      1", 1))       # a difference: the search runs
    code, out, err = run(["check", str(p)])
    assert code == 1 and "differ" in out, err


def test_more_free_pages_than_managed_is_impossible() -> None:
    t = snapshot_text(_machine())
    i = t.index("pages free", t.index("zone    DMA32"))
    line = t[i:t.index("\n", i)]
    with pytest.raises(SnapshotError, match="pages free 600001 is above managed 600000"):
        parse_text(t.replace(line, "pages free     600001", 1), "s.txt")
