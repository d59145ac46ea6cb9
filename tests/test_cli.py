"""The CLI: output forms, exit codes, hazards, the snapshot command, bad input (exit 2, one line)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atomgym.kernel import KernelVersion, Machine
from atomgym.kernel.snapshot import parse_snapshot
from cli_helpers import one_line_error, run
from snapshot_helpers import require_snapshots, snapshot_text

REPO = Path(__file__).parents[1]



# ---- whatif ------------------------------------------------------------------------------
def test_whatif_json_lines_exact_form() -> None:
    f = str(require_snapshots() / "4G-mf16384--start.txt")
    code, out, err = run(["whatif", f, "--set", "vm.min_free_kbytes=16384", "--set", "transparent_hugepage=always",
                          "--json"])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    # the form the issue gives, byte for byte at the start
    assert lines[0].startswith(
        '{"set": "vm.min_free_kbytes=16384", "min_free_kbytes": 16384, "zones": [{"node": 0, "zone": "DMA", '
        '"managed": 3840, "min": 15, "low": 18, "high": 21, "promo": 24, "boost": 0, "protection": [0, 2947, '
        '3900, 3900, 3900]}, ')
    a, b = (json.loads(x) for x in lines)
    assert [list(z) for z in a["zones"]] == [["node", "zone", "managed", "min", "low", "high", "promo", "boost",
                                              "protection"]] * 5
    assert "hazard" not in a
    assert b["set"] == "transparent_hugepage=always" and b["min_free_kbytes"] == 67584  # THP raises a user value


def test_whatif_lists_every_zone_of_every_node_in_order() -> None:
    f = require_snapshots() / "2G-smp2-numa2-default--start.txt"
    code, out, _ = run(["whatif", str(f), "--set", "vm.watermark_scale_factor=200", "--json"])
    d = json.loads(out)
    assert [(z["node"], z["zone"]) for z in d["zones"]] == [(z.node, z.zone) for z in parse_snapshot(f).zones]
    assert len(d["zones"]) == 10


def test_whatif_text_table() -> None:
    f = str(require_snapshots() / "1G-default--start.txt")
    code, out, _ = run(["whatif", f, "--set", "vm.watermark_scale_factor=10"])
    assert code == 0
    assert "after vm.watermark_scale_factor=10: min_free_kbytes 45056" in out
    assert "   0  DMA32      242096   11088   13860   16632   19404      0  (0, 0, 0, 0, 0)" in out


def test_whatif_non_recomputing_write_keeps_the_snapshot_state() -> None:
    """watermark_boost_factor does not recompute: the boot-time watermarks stay as shown."""
    f = str(require_snapshots() / "1G-default--start.txt")
    code, out, _ = run(["whatif", f, "--set", "vm.watermark_boost_factor=0", "--json"])
    z = json.loads(out)["zones"][1]
    assert (z["min"], z["low"], z["high"], z["promo"]) == (11086, 13857, 16628, 16628 + (16628 - 13857))


def test_whatif_lowmem_reserve_ratio() -> None:
    f = str(require_snapshots() / "4G-mf16384--start.txt")
    code, out, _ = run(["whatif", f, "--set", "vm.lowmem_reserve_ratio=128 128 16 0 0", "--json"])
    assert code == 0
    z = json.loads(out)["zones"]
    assert z[0]["protection"] == [0, 754602 // 128, (754602 + 243907) // 128] + [(754602 + 243907) // 128] * 2
    assert z[1]["protection"] == [0, 0, 243907 // 128, 243907 // 128, 243907 // 128]


def test_whatif_hazard_flagged_loudly_but_applied() -> None:
    f = str(require_snapshots() / "1G-default--start.txt")
    code, out, err = run(["whatif", f, "--set", "vm.min_free_kbytes=1000000", "--json"])
    assert code == 0
    d = json.loads(out)
    assert d["min_free_kbytes"] == 1000000
    assert any("deadlock" in h for h in d["hazard"])
    assert "WARNING" in err and "deadlock" in err and "vm.min_free_kbytes=1000000" in err
    # the same write in text form shows the hazard too
    code, out, err = run(["whatif", f, "--set", "vm.min_free_kbytes=1000000"])
    assert code == 0 and "HAZARD:" in out and "WARNING" in err
    # a sane write raises no hazard
    code, out, err = run(["whatif", f, "--set", "vm.min_free_kbytes=90112", "--json"])
    assert "hazard" not in json.loads(out) and err == ""


@pytest.mark.parametrize("setting,needles", [
    ("vm.swappiness=10", ["unknown key 'vm.swappiness'", "vm.min_free_kbytes", "transparent_hugepage"]),
    ("vm.min_free_kbytes=lots", ["vm.min_free_kbytes", "not an integer", "0..2147483647"]),
    ("vm.min_free_kbytes=-1", ["vm.min_free_kbytes", "out of range", "0..2147483647"]),
    ("vm.min_free_kbytes=16_384", ["vm.min_free_kbytes", "not an integer"]),   # int() would take it
    ("vm.min_free_kbytes=1.5", ["vm.min_free_kbytes", "not an integer"]),
    ("vm.watermark_scale_factor=3001", ["vm.watermark_scale_factor", "1..3000"]),
    ("vm.watermark_scale_factor=0", ["vm.watermark_scale_factor", "1..3000"]),
    ("vm.watermark_boost_factor=-3", ["vm.watermark_boost_factor", "0..2147483647"]),
    ("vm.lowmem_reserve_ratio=1 2 3 4 5 6", ["vm.lowmem_reserve_ratio", "1 to 5"]),
    ("vm.lowmem_reserve_ratio=256 x", ["vm.lowmem_reserve_ratio", "not an integer"]),
    ("transparent_hugepage=sometimes", ["transparent_hugepage", "always, madvise, never"]),
    ("vm.min_free_kbytes", ["KEY=VALUE"]),
])
def test_whatif_bad_writes(setting: str, needles: list[str]) -> None:
    f = str(require_snapshots() / "1G-default--start.txt")
    # a good write first: nothing may be printed before the bad one is rejected
    code, out, err = run(["whatif", f, "--set", "vm.min_free_kbytes=16384", "--set", setting, "--json"])
    one_line_error(code, err, *needles)
    assert out == ""


def test_whatif_needs_a_set() -> None:
    f = str(require_snapshots() / "1G-default--start.txt")
    code, out, err = run(["whatif", f])
    one_line_error(code, err, "--set")


# ---- check -------------------------------------------------------------------------------
def test_check_json_report() -> None:
    f = str(require_snapshots() / "vm-6.18-3zones.txt")
    code, out, err = run(["check", f, "--json"])
    d = json.loads(out)
    assert code == 0 and d["status"] == "equal" and d["exit"] == 0 and d["differences"] == 0
    assert d["zones"][2]["fields"]["promo"] == {"observed": 19652, "model": 19652, "diff": 0}
    assert d["kernel"] == "6.18.44-fc-v595" and d["kernel_assumed"] is False


def test_check_no_osrelease_says_newest_assumed(tmp_path) -> None:
    m = Machine(managed=np.array([3840, 600000, 500000, 0, 0]), version=KernelVersion(6, 18)).boot()
    p = tmp_path / "s.txt"
    p.write_text(snapshot_text(m, release=None))
    code, out, err = run(["check", str(p)])
    assert code == 0
    assert "assumed" in out and "osrelease" in err


# ---- bad snapshots: exit 2, one line naming file and line ----------------------------------
def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    good = snapshot_text(Machine(managed=np.array([3840, 600000, 500000, 0, 0]), version=KernelVersion(6, 18)).boot())
    lines = good.splitlines()
    cases = {
        "empty": ("", ["empty"]),
        "truncated": ("\n".join(lines[:20]) + "\n", ["truncated", "zone DMA32", "missing low"]),
        "garbage": (good.replace("        min      ", "        min      x", 1), ["not a number"]),
        "missing-zone": (good.replace("Node 0, zone   Device", "Node 0, zone   Movable"), ["Node 0", "Device"]),
        "dup-header": (good + "\n==> /proc/zoneinfo <==\n", ["duplicated header", "/proc/zoneinfo"]),
    }
    out = {}
    for name, (text, needles) in cases.items():
        p = tmp_path / f"{name}.txt"
        p.write_text(text)
        out[name] = (p, needles)
    return out


def test_bad_snapshots_check_and_whatif(tmp_path) -> None:
    for name, (p, needles) in _bad_files(tmp_path).items():
        for argv in (["check", str(p)], ["check", str(p), "--json"],
                     ["whatif", str(p), "--set", "vm.min_free_kbytes=1024"]):
            code, out, err = run(argv)
            one_line_error(code, err, str(p), *needles)
            assert out == "", (name, argv)


def test_bad_input_through_the_real_entry_point(tmp_path) -> None:
    """The installed command path (`python -m atomgym`): exit 2, one line, no traceback."""
    p, _ = _bad_files(tmp_path)["truncated"]
    for argv in (["check", str(p)], ["check", str(tmp_path / "missing.txt")], ["frobnicate"]):
        r = subprocess.run([sys.executable, "-m", "atomgym", *argv], capture_output=True, text=True, cwd=REPO,
                           timeout=120)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and r.stderr.startswith("atomgym: error:"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---- snapshot ----------------------------------------------------------------------------
def _fake_host(root: Path, with_zoneinfo: bool = True) -> None:
    m = Machine(managed=np.array([3840, 600000, 500000, 0, 0]), version=KernelVersion(6, 18)).boot()
    text = snapshot_text(m, release="6.18.9")
    for block in text.split("==> ")[1:]:
        path, body = block.split(" <==\n", 1)
        if path == "/proc/zoneinfo" and not with_zoneinfo:
            continue
        f = root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body.rstrip("\n") + "\n")


def test_snapshot_roundtrip_and_missing_files_noted(tmp_path) -> None:
    root = tmp_path / "host"
    _fake_host(root)
    out_file = tmp_path / "snap.txt"
    code, out, err = run(["snapshot", "--root", str(root), "-o", str(out_file)])
    assert code == 0
    assert "skipped /proc/vmstat" in err and "skipped /proc/meminfo" in err  # not in the fake host
    text = out_file.read_text()
    assert text.startswith("==> /proc/sys/kernel/osrelease <==\n6.18.9\n\n==> /proc/zoneinfo <==\nNode 0, zone")
    code, out, err = run(["check", str(out_file)])
    assert code == 0 and "every zone equal" in out


def test_snapshot_refuses_to_overwrite(tmp_path) -> None:
    root = tmp_path / "host"
    _fake_host(root)
    target = tmp_path / "exists.txt"
    target.write_text("precious\n")
    code, out, err = run(["snapshot", "--root", str(root), "-o", str(target)])
    one_line_error(code, err, "exists", "--force")
    assert target.read_text() == "precious\n"
    code, out, err = run(["snapshot", "--root", str(root), "-o", str(target), "--force"])
    assert code == 0 and target.read_text().startswith("==> /proc/sys/kernel/osrelease <==")


def test_snapshot_without_zoneinfo_fails(tmp_path) -> None:
    root = tmp_path / "host"
    _fake_host(root, with_zoneinfo=False)
    code, out, err = run(["snapshot", "--root", str(root)])
    one_line_error(code, err, "zoneinfo")


def test_snapshot_to_stdout() -> None:
    if not Path("/proc/zoneinfo").is_file():
        pytest.skip("not a Linux host: no /proc/zoneinfo")
    code, out, err = run(["snapshot"])
    assert code == 0 and "==> /proc/zoneinfo <==" in out


# ---- issue 23: the agents' commands name the command the user typed -----------------------------
def test_agent_commands_through_atomgym_name_atomgym_not_python_m_agents(capsys, monkeypatch):
    """A wheel installs no `agents` package: `atomgym train --bogus` must not point at
    `python -m agents.train`."""
    import atomgym.agents
    from atomgym import cli
    monkeypatch.setattr(atomgym.agents, "invoked_as", None)
    monkeypatch.setattr("sys.argv", ["/usr/bin/atomgym"])
    assert cli.main(["train", "--bogus"]) == 2     # one line, exit 2, like every agents command
    err = capsys.readouterr().err
    assert "atomgym train: error:" in err and "`atomgym train --help`" in err and "python -m agents" not in err, err
    for name in ("evaluate", "replay", "report", "multiseed", "fullreport"):
        try:
            cli.main([name, "--help"])
        except SystemExit as e:               # argparse's --help exits 0
            assert e.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: atomgym {name}") and "python -m agents" not in out.split("\n\n")[0], out[:200]
    monkeypatch.setattr("sys.argv", ["/x/atomgym/__main__.py"])
    assert cli.main(["evaluate", "--policies", "nope", "--scenarios", "quiet", "--out", "/nonexistent/x"]) == 2
    assert capsys.readouterr().err.startswith("atomgym evaluate: error:")
    assert atomgym.agents.command("train") == "python -m agents.train"    # restored after the command
    monkeypatch.setattr(atomgym.agents, "invoked_as", "python -m atomgym")
    assert atomgym.agents.command("train") == "python -m atomgym train"
