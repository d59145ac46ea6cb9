"""Bad scenario files and replay traces, and bad `python -m atomgym.bench` arguments: one clear
line naming the file (and line), never a traceback, never a silent default."""
from __future__ import annotations

from pathlib import Path

import pytest

from atomgym import bench
from atomgym.sim.scenario import ScenarioError, load_scenario, load_trace


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "# a\n\n# b\n", "---\n", "~\n", "null\n"])
def test_empty_or_comment_only_scenario_is_refused(tmp_path, text) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "empty.yaml" in msg and "empty" in msg and "duration_s" in msg and "\n" not in msg


def test_explicit_empty_mapping_still_means_every_default(tmp_path) -> None:
    p = tmp_path / "defaults.yaml"
    p.write_text("{}\n")
    assert load_scenario(p).name == "defaults"


@pytest.mark.parametrize("rows, line, needle", [
    ("packets\n5\n1.5\n", 3, "not a whole number"),
    ("packets\n5\n2.0\n", 3, "not written as plain digits"),
    ("packets\n5\n1e3\n", 3, "not written as plain digits"),
    ("packets\n5,7\n", 2, "has 2 columns; expected one"),
    ("packets,bytes\n5,7500\n", 1, "(one column)"),
    ("# c\npackets\n5\n-1\n", 4, "out of range"),
    ("packets\nnan\n", 2, "out of range"),
    ("packets\n" + "9" * 40 + "\n", 2, "out of range"),
    ("packets\n" + "9" * 5000 + "\n", 2, "out of range"),     # int() refuses > 4300 digits
    ("packets\n\u0665\n", 2, "not written as plain digits"),   # an Arabic-Indic five: float() takes it
])
def test_bad_trace_rows_name_the_line(tmp_path, rows, line, needle) -> None:
    p = tmp_path / "t.csv"
    p.write_text(rows, encoding="utf-8")
    with pytest.raises(ScenarioError) as e:
        load_trace(p)
    msg = str(e.value)
    assert f"t.csv:{line}: trace:" in msg and needle in msg and "\n" not in msg, msg


def test_good_trace_with_comments_loads(tmp_path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("# made by hand\npackets\n0\n12 # a comment\n\n7\n")
    assert load_trace(p).tolist() == [0.0, 12.0, 7.0]


def test_scenario_yaml_bombs_and_deep_nesting(tmp_path) -> None:
    """A self-referencing alias, an exponential alias tree and 10,000 nested lists: one line each."""
    p = tmp_path / "x.yaml"
    p.write_text("randomize: &a {x: *a}\n")
    with pytest.raises(ScenarioError, match="x.yaml"):
        load_scenario(p)
    # "billion laughs": 9^9 list items by reference; walking or printing them would never end
    lvl = ["&a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for i in range(1, 10):
        lvl.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    for key in ("duration_s", "randomize", "machine"):
        p.write_text(f"{key}: [" + ", ".join(lvl) + "]\n")
        with pytest.raises(ScenarioError, match="x.yaml") as e:
            load_scenario(p)
        assert len(str(e.value)) < 1000
    p.write_text("duration_s: " + "[" * 10000 + "]" * 10000 + "\n")
    with pytest.raises(ScenarioError, match="x.yaml"):
        load_scenario(p)
    p.write_text("duration_s: " + "9" * 5000 + "\n")
    with pytest.raises(ScenarioError, match="x.yaml"):
        load_scenario(p)


def test_scenario_path_that_is_a_directory_or_a_device(tmp_path) -> None:
    with pytest.raises(ScenarioError, match="it is a directory"):
        load_scenario(tmp_path)
    if Path("/dev/zero").exists():
        with pytest.raises(ScenarioError, match="it is not a regular file"):
            load_scenario("/dev/zero")


@pytest.mark.parametrize("argv, needle", [
    (["--ticks", "0"], "--ticks: 0: expected an integer in [1, 1000000000]"),
    (["--batch", "0"], "--batch: 0: expected an integer in [1, "),
    (["--batch", "-3"], "--batch: -3: expected an integer in [1, "),
    (["--repeat", "0"], "--repeat: 0: expected an integer in [1, "),
    (["--env-steps", "many"], "--env-steps: 'many' is not an integer"),
    (["--scenario", "no-such-scenario"], "no shipped scenario"),
])
def test_bench_bad_arguments_are_one_line_exit_2(capsys, argv, needle) -> None:
    code = bench.main(argv)              # returns 2 (no SystemExit: callable in-process)
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and err.count("\n") == 0 and "Traceback" not in err, err


def test_bench_refuses_a_scenario_its_env_cannot_run(tmp_path, capsys) -> None:
    """tick_ms 0.3: the 100 ms decision interval is no multiple of it; refused before measuring."""
    p = tmp_path / "odd.yaml"
    p.write_text("tick_ms: 0.3\nduration_s: 1\n")
    assert bench.main(["--scenario", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "decision_interval_ms" in err and "tick" in err and err.count("\n") == 0, err


def test_trace_with_a_byte_order_mark_loads(tmp_path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbfpackets\n5\n")
    assert load_trace(p).tolist() == [5.0]


# ---- issue 23: files a scenario names are read at load time, not lazily inside a run ------------
def _with_file(tmp_path, shipped: str, key_line: str, new_line: str, name: str, content: str):
    from atomgym.paths import SCENARIO_DIR
    text = (SCENARIO_DIR / f"{shipped}.yaml").read_text()
    assert key_line in text
    (tmp_path / name).write_text(content)
    p = tmp_path / "s.yaml"
    p.write_text(text.replace(key_line, new_line))
    return p


def test_a_garbled_trace_fails_at_load_naming_the_trace_line(tmp_path):
    import pytest

    from atomgym.sim.scenario import ScenarioError, load_scenario
    p = _with_file(tmp_path, "trace-replay", "trace: ../traces/incast-onoff-25g.csv", "trace: bad.csv", "bad.csv",
                   "packets\n12\ngarbage\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert "s.yaml:" in str(e.value) and "traffic[0].trace" in str(e.value) and "bad.csv:3" in str(e.value)


def test_a_snapshot_with_a_negative_count_fails_at_load(tmp_path):
    import pytest

    from atomgym.paths import CONFIG_DIR
    from atomgym.sim.scenario import ScenarioError, load_scenario
    snap = (CONFIG_DIR / "machines" / "qemu-4G-6.1-mf16384.txt").read_text()
    p = _with_file(tmp_path, "virtio-deferral", "snapshot: ../machines/qemu-4G-6.1-mf16384.txt", "snapshot: neg.txt",
                   "neg.txt", snap.replace("managed  754602", "managed  -754602"))
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    assert "machine.snapshot" in str(e.value) and "neg.txt:24" in str(e.value) and "-754602" in str(e.value)


def test_evaluate_refuses_a_garbled_trace_before_any_work(tmp_path, capsys):
    from agents import evaluate
    p = _with_file(tmp_path, "trace-replay", "trace: ../traces/incast-onoff-25g.csv", "trace: bad.csv", "bad.csv",
                   "packets\n-5\n")
    assert evaluate.main(["--policies", "psi", "--scenarios", str(p), "--seeds", "1", "--out",
                          str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv:2" in err and not (tmp_path / "ev").exists(), err
