"""Property-based fuzzing of the `atomgym` CLI (in-process, through cli.main(argv, out, err)):
snapshot texts (real snapshots mutated, arbitrary text and bytes), command lines, and
`snapshot -o` onto whatever a user may have at that path. Every input ends with exit 0 (check:
0/1), or exit 2 and one line naming the file; never a traceback, never a file that was not ours
replaced, never a temporary file left behind. Profiles: tests/fuzz_helpers.py."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from atomgym.cli import main
from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.machine import WRITABLE_KEYS
from atomgym.kernel.snapshot import parse_snapshot
from fuzz_helpers import NASTY_TEXT, assert_clean_outcome, fuzz_settings, mutate_lines, run_cli
from snapshot_helpers import SNAPSHOTS, snapshot_text

BASES = [(SNAPSHOTS / n).read_text() for n in ("1G-default--start.txt", "2G-smp2-numa2-default--start.txt",
                                                "4G-mf16384--after-mf-16384.txt")]
BASES.append(snapshot_text(Machine(managed=np.array([3840, 600000, 500000, 0, 0]),
                                   version=KernelVersion(6, 18)).boot()))


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="atomgym-fuzz-"))


SET_VALUES = st.one_of(NASTY_TEXT, st.integers(-10, 10**7).map(str), st.sampled_from(
    ["16384", "1048576", "2147483647", "3000", "1", "256 256 32 0 0", "0 0 0 0 0", "-1 -1 -1 -1 -1",
     "always", "madvise", "never", "[always]"]))
SETS = st.lists(st.tuples(st.sampled_from(list(WRITABLE_KEYS) + ["vm.swappiness", "", " vm.min_free_kbytes "]),
                          SET_VALUES, st.sampled_from(["=", "==", ""])).map(lambda t: f"{t[0]}{t[2]}{t[1]}"),
                max_size=3)


def _check_snapshot_file(p: Path, sets: list[str]) -> None:
    for argv, ok in ((["check", str(p)], (0, 1)), (["check", str(p), "--json", "--strict"], (0, 1)),
                     (["whatif", str(p), *sum((["--set", s] for s in sets), [])], (0,))):
        code, out, err = run_cli(main, argv)
        assert_clean_outcome(code, out, err, ok, names=(str(p),) if argv[0] == "check" else (str(p), "--set"))


@fuzz_settings(max_examples=60)
@given(base=st.sampled_from(BASES), data=st.data(), sets=SETS)
def test_mutated_snapshots(base, data, sets) -> None:
    text = data.draw(mutate_lines(base))
    d = _tmpdir()
    try:
        p = d / "snap.txt"
        p.write_text(text, encoding="utf-8")
        _check_snapshot_file(p, sets)
    finally:
        shutil.rmtree(d)


@fuzz_settings(max_examples=60)
@given(base=st.sampled_from(BASES), data=st.data())
def test_snapshot_values(base, data) -> None:
    """Only numbers changed (negative, huge, 2^63, fractional, unicode digits...): the structure
    survives, so every value check and the arithmetic behind check/whatif is reached."""
    text = data.draw(mutate_lines(base, ops=("value",), max_ops=2))
    d = _tmpdir()
    try:
        p = d / "snap.txt"
        p.write_text(text, encoding="utf-8")
        _check_snapshot_file(p, ["vm.min_free_kbytes=2147483647", "vm.watermark_scale_factor=3000"])
    finally:
        shutil.rmtree(d)


@fuzz_settings(max_examples=25)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda s: s.encode("utf-8", "replace"))))
def test_arbitrary_bytes_as_a_snapshot(raw) -> None:
    d = _tmpdir()
    try:
        p = d / "snap.txt"
        p.write_bytes(raw)
        _check_snapshot_file(p, ["vm.min_free_kbytes=16384"])
    finally:
        shutil.rmtree(d)


WORDS = st.sampled_from(["check", "whatif", "snapshot", "--json", "--strict", "--set", "-o", "--force", "--output",
                         "--help", "-h", "--", "-", "--set=vm.min_free_kbytes=1", "vm.watermark_scale_factor=20",
                         "@SNAP", "@MISSING", "@DIR", "@DEVNULL", "@HOST"])


@fuzz_settings(max_examples=60)
@given(argv=st.lists(st.one_of(WORDS, NASTY_TEXT), max_size=6))
def test_arbitrary_command_lines(argv) -> None:
    d = _tmpdir()
    try:
        snap = d / "snap.txt"
        snap.write_text(BASES[0])
        host = d / "host"
        (host / "proc").mkdir(parents=True)
        (host / "proc" / "zoneinfo").write_text(BASES[0].split("==> /proc/zoneinfo <==\n")[1].split("==>")[0])
        subst = {"@SNAP": str(snap), "@MISSING": str(d / "missing.txt"), "@DIR": str(d), "@DEVNULL": os.devnull,
                 "@HOST": str(host)}
        args = [subst.get(a, a) for a in argv]
        if "snapshot" in args:
            # never the real host's root or a path outside the sandbox as output
            args = [a for a in args if a not in ("-o", "--output", "--force")] + ["--root", str(host)]
        before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
        code, out, err = run_cli(main, args)
        assert_clean_outcome(code, out, err, (0, 1))
        assert {p: p.read_bytes() for p in before} == before          # nothing of ours was touched
    finally:
        shutil.rmtree(d)


TARGETS = st.sampled_from(["absent", "file", "symlink-to-file", "dangling-symlink", "dir", "fifo", "devnull",
                           "missing-dir", "dot-tmp-exists", "symlink-loop"])


@fuzz_settings(max_examples=40)
@given(kind=TARGETS, force=st.booleans(), name=st.sampled_from(["s.txt", "ünï 名.txt", ".hidden", "a b", "x.tmp"]))
def test_snapshot_output_never_replaces_what_is_not_ours(kind, force, name) -> None:
    d = _tmpdir()
    try:
        host = d / "host"
        for block in BASES[3].split("==> ")[1:]:
            path, body = block.split(" <==\n", 1)
            f = host / path.lstrip("/")
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(body)
        out_dir = d / "out"
        out_dir.mkdir()
        p = out_dir / name
        other = d / "precious.txt"
        other.write_text("precious\n")
        if kind == "file":
            p.write_text("old\n")
        elif kind == "symlink-to-file":
            p.symlink_to(other)
        elif kind == "dangling-symlink":
            p.symlink_to(d / "nowhere")
        elif kind == "symlink-loop":
            p.symlink_to(p)
        elif kind == "dir":
            p.mkdir()
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "devnull":
            p = Path(os.devnull)
        elif kind == "missing-dir":
            p = out_dir / "no" / name
        elif kind == "dot-tmp-exists":
            (out_dir / f"{name}.tmp").write_text("theirs\n")
        before = {q.name: (os.lstat(q).st_mode, os.lstat(q).st_ino) for q in out_dir.iterdir()}
        code, out, err = run_cli(main, ["snapshot", "--root", str(host), "-o", str(p), *(["--force"] if force else [])])
        assert_clean_outcome(code, out, err, names=(str(p),))
        assert other.read_text() == "precious\n"
        if kind == "dot-tmp-exists":
            assert (out_dir / f"{name}.tmp").read_text() == "theirs\n"
        after = {q.name: (os.lstat(q).st_mode, os.lstat(q).st_ino) for q in out_dir.iterdir()}
        may_write = kind in ("absent", "dot-tmp-exists") or (kind == "file" and force)
        if code == 0:
            assert may_write, (kind, force)
            assert stat.S_ISREG(os.lstat(p).st_mode) and parse_snapshot(p).zones
            assert set(after) == set(before) | {p.name}
        else:
            assert not may_write, (kind, force, err)
            assert after == before                          # nothing created, nothing replaced
        if kind == "devnull":
            assert stat.S_ISCHR(os.lstat(os.devnull).st_mode)
    finally:
        shutil.rmtree(d)
