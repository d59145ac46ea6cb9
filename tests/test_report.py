"""agents.report on bad episode CSVs (issue 16): one line naming the file/line/column, exit 2;
never a traceback. Plus a hypothesis fuzz over episode CSV text."""
from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import report

COLS = ["policy", "run", "scenario", "seed", "score", "cost", "atomic_fail", "drops_total", "reserved_mib_s", "stall_s"]
GOOD = [["kernel-default", "-", "quiet", "1", "1.0", "2.0", "10", "0", "100", "0.5"],
        ["kernel-default", "-", "quiet", "2", "1.0", "3.0", "30", "2", "100", "1.5"],
        ["psi", "-", "quiet", "1", "1.5", "1.0", "0", "0", "120", "0.0"],
        ["psi", "-", "quiet", "2", "1.25", "2.25", "4", "0", "140", "0.1"]]


def _write(p, header, rows):
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return p


def _err(capsys, path):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("agents.report: error:") and str(path) in err, err
    return err


@pytest.mark.parametrize("case, want", [
    ("nonnumeric", "line 3, column score: 'abc' is not a number"),
    ("empty_field", "line 2, column atomic_fail: '' is not a number"),
    ("short_row", "line 4: 9 fields, expected 10"),
    ("nan_score", "line 2, column score: 'nan'; expected a finite number"),
    ("inf_cost", "line 5, column cost: '-inf'; expected a finite number"),
    ("header_only", "no episodes (only a header)"),
    ("empty", "empty"),
    ("missing", "missing column(s) score"),
    ("neg_seed", "column seed"),
    ("empty_policy", "line 2, column policy: empty"),
    ("torn", "line 5: 7 fields, expected 10"),
])
def test_bad_csvs_one_line_exit_2(tmp_path, capsys, case, want):
    rows = [list(r) for r in GOOD]
    header = list(COLS)
    if case == "nonnumeric":
        rows[1][4] = "abc"
    elif case == "empty_field":
        rows[0][6] = ""
    elif case == "short_row":
        rows[2] = rows[2][:-1]
    elif case == "nan_score":
        rows[0][4] = "nan"
    elif case == "inf_cost":
        rows[3][5] = "-inf"
    elif case == "header_only":
        rows = []
    elif case == "empty":
        header, rows = None, []
    elif case == "missing":
        header = [c for c in COLS if c != "score"]
        rows = [r[:4] + r[5:] for r in rows]
    elif case == "neg_seed":
        rows[0][3] = "-3"
    elif case == "empty_policy":
        rows[0][0] = ""
    elif case == "torn":          # the last row cut short (a copy interrupted)
        rows[-1] = rows[-1][:6] + [rows[-1][6][:1]]
    p = _write(tmp_path / "e.csv", header, rows)
    assert report.main([str(p)]) == 2
    assert want in _err(capsys, p)


def test_a_repeated_header_and_a_repeated_seed_count_once(tmp_path, capsys):
    """`cat a.csv b.csv` leaves a second header; the same (policy, run, scenario, seed) twice is one
    sample, not two (seeds are the unit)."""
    p = _write(tmp_path / "e.csv", COLS, GOOD + [COLS] + GOOD)
    assert report.main([str(p), "--reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "| `psi` | 1.375 ± 0.177 |" in out                 # 2 seeds, std(ddof=1) of 1.5, 1.25
    assert "4 repeated (policy, run, scenario, seed) rows counted once" in out
    assert "| `psi` | quiet | 2 |" in out                       # n = 2 runs


def test_missing_file_and_folder_exit_2(tmp_path, capsys):
    assert report.main([str(tmp_path / "nope.csv")]) == 2
    _err(capsys, tmp_path / "nope.csv")
    assert report.main([str(tmp_path)]) == 2
    _err(capsys, tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert report.main([str(tmp_path / "bin.csv")]) == 2
    _err(capsys, tmp_path / "bin.csv")


def test_report_out_writes_summary_and_plots_never_onto_a_file(tmp_path, capsys):
    p = _write(tmp_path / "e.csv", COLS, GOOD)
    out = tmp_path / "r"
    assert report.main([str(p), "--out", str(out), "--reps", "200"]) == 0
    assert (out / "summary.md").is_file() and (out / "pareto-quiet.png").is_file()
    f = tmp_path / "f"
    f.write_text("mine")
    assert report.main([str(p), "--out", str(f)]) == 2
    assert f.read_text() == "mine"
    _err(capsys, f)


_field = st.one_of(st.sampled_from(["", "nan", "inf", "-1", "0", "1.5", "1e400", "psi", "kernel-default", "-",
                                    "quiet", "\"", "a,b", " 3 ", "0x10", "1_0", "\t"]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 10**20).map(str),
                   st.text(max_size=6))
_row = st.lists(_field, min_size=0, max_size=12)
_header = st.one_of(st.just(COLS), st.permutations(COLS), st.lists(st.sampled_from(COLS + ["x"]), max_size=12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_header, rows=st.lists(st.one_of(_row, st.sampled_from(GOOD)), max_size=8),
       junk=st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_episode_csvs_exit_0_or_one_line_2(tmp_path, capsys, header, rows, junk):
    p = tmp_path / "fuzz.csv"
    if junk is not None and not rows:
        p.write_bytes(junk)
    else:
        _write(p, header, rows)
    rc = report.main([str(p), "--reps", "100"])
    captured = capsys.readouterr()
    assert rc in (0, 2), captured.err
    if rc == 2:
        err = captured.err.strip()
        assert len(err.splitlines()) == 1 and str(p) in err, err
    else:
        assert "Traceback" not in captured.err


# ---- issue 23: a byte-order mark, huge values, a `|` in a label, a device ------------------------
def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path, capsys):
    p = _write(tmp_path / "bom.csv", COLS, GOOD)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    df = report.load_rows(p)
    assert list(df["policy"]) == [r[0] for r in GOOD]
    assert report.main([str(p), "--out", str(tmp_path / "o"), "--reps", "100"]) == 0


def test_huge_values_are_refused_not_printed_as_inf(tmp_path, capsys):
    rows = [r[:] for r in GOOD]
    rows[2][4] = "1e308"
    p = _write(tmp_path / "huge.csv", COLS, rows)
    assert report.main([str(p), "--out", str(tmp_path / "o")]) == 2
    assert "line 4, column score: '1e308'; expected a finite number of magnitude at most 1e+15" in _err(capsys, p)


def test_a_label_with_a_pipe_keeps_the_tables_columns(tmp_path):
    rows = [[("a|b" if r[0] == "psi" else r[0]), *r[1:]] for r in GOOD]
    md = report.summary(report.load_rows(_write(tmp_path / "pipe.csv", COLS, rows)), reps=50)
    for table in md.split("\n\n"):
        lines = [ln for ln in table.splitlines() if ln.startswith("|")]
        if lines:
            seps = {ln.replace("\\|", "").count("|") for ln in lines}
            assert len(seps) == 1, table
    assert "`a\\|b`" in md


def test_a_csv_linked_to_a_device_is_refused_unread(tmp_path, capsys):
    p = tmp_path / "zero.csv"
    p.symlink_to("/dev/zero")
    assert report.main([str(p)]) == 2
    assert "cannot read: a character device" in _err(capsys, p)


def test_one_scenario_at_two_episode_lengths_is_refused(tmp_path, capsys):
    """Two evaluations of one scenario at other --duration-s were merged with no warning (a score
    is relative to the default's cost over the same length)."""
    cols = [*COLS, "duration_s"]
    a = _write(tmp_path / "a.csv", cols, [[*r, "60"] for r in GOOD])
    b = _write(tmp_path / "b.csv", cols, [[*r, "10"] for r in GOOD])
    assert report.main([str(a), str(b)]) == 2
    err = _err(capsys, b)
    assert str(a) in err and "quiet" in err and "60 s and 10 s" in err, err
    mixed = _write(tmp_path / "m.csv", cols, [[*r, "60" if i else "10"] for i, r in enumerate(GOOD)])
    assert report.main([str(mixed)]) == 2
    assert "10 s and 60 s" in _err(capsys, mixed)
    # other scenarios may have other lengths; one length per scenario merges
    c = _write(tmp_path / "c.csv", cols, [[*r[:2], "other", *r[3:], "10"] for r in GOOD])
    assert report.main([str(a), str(c)]) == 0


def test_evaluations_of_another_simulator_are_refused(tmp_path, capsys):
    """agents.evaluate records the simulator and the cost of each block (blocks.json beside its
    CSV): two files of two simulators are not merged."""
    import json
    for name, sim in (("x", "s1"), ("y", "s2")):
        (tmp_path / name).mkdir()
        _write(tmp_path / name / "episodes.csv", COLS, GOOD)
        (tmp_path / name / "blocks.json").write_text(json.dumps({"format": "atomgym-evaluate-blocks", "blocks": [
            {"policy": "psi", "run": "-", "scenario": "quiet", "identity": {"simulator": sim, "cost": "c"}}]}))
    x, y = tmp_path / "x" / "episodes.csv", tmp_path / "y" / "episodes.csv"
    assert report.main([str(x), str(y)]) == 2
    assert "two simulator sources" in _err(capsys, y)
    assert report.main([str(x), str(x)]) == 0


def test_report_prices_every_episode_under_the_named_cost(tmp_path, capsys):
    """--cost reprices cost and score from the term columns (the harm cost by default, whatever cost
    the CSV was written under); a CSV without the term columns keeps its own under the default and
    is refused, one line, under another."""
    cols = COLS + ["knob_changes", "terminated"]
    rows = [["kernel-default", "-", "m", "1", "1.0", "9.9", "1000", "0", "1000", "0.0", "0", "0"],
            ["psi", "-", "m", "1", "1.0", "9.9", "0", "0", "1500", "0.0", "1", "0"]]
    p = _write(tmp_path / "episodes.csv", cols, rows)
    harm = report.load_many([p])
    # harm: defaults 1.0 (reserve), psi 1.5 + 0.01 (a knob write); atomic failures uncharged
    assert list(harm["cost"]) == pytest.approx([1.0, 1.51]) and list(harm["score"]) == pytest.approx([1.0, 0.49])
    old = report.load_many([p], "atomic-charged")                # + 1e-3 per failed refill: 1000 on the defaults
    assert list(old["cost"]) == pytest.approx([2.0, 1.51]) and list(old["score"]) == pytest.approx([1.0, 1.245])
    assert report.main([str(p), "--cost", "atomic-charged"]) == 0
    assert "1.245" in capsys.readouterr().out
    bare = _write(tmp_path / "bare.csv", COLS, GOOD)
    assert list(report.load_many([bare])["cost"]) == [2.0, 3.0, 1.0, 2.25]   # no term columns: as written
    assert report.main([str(bare), "--cost", "atomic-charged"]) == 2
    assert "needs the columns" in _err(capsys, bare)
    assert report.main([str(p), "--cost", "nope"]) == 2
    assert "harm, atomic-charged" in capsys.readouterr().err


@pytest.mark.parametrize("damage, want", [
    (lambda rows: rows[1].__setitem__(slice(6, None), []), "line 3: 6 fields, expected"),      # torn
    (lambda rows: rows[0].__setitem__(4, "1e400"), "line 2, column duration_s: '1e400'; expected a finite"),
    (lambda rows: rows[1].__setitem__(3, "1.5"), "line 3, column seed: '1.5'; expected an integer >= 0"),
])
def test_one_reader_one_message_for_reports_and_resume(tmp_path, damage, want):
    """agents.report and agents.evaluate --resume read an episodes.csv with the one reader
    (results.read_columns): the same rules, the same one line naming the file, line and column."""
    from atomgym.agents import results
    row = ["psi", "-", "quiet", "1", *(["1"] * (len(results.COLUMNS) - 4))]
    rows = [list(row), list(row)]
    damage(rows)
    p = _write(tmp_path / "episodes.csv", results.COLUMNS, rows)
    with pytest.raises(ValueError) as report_err:
        results.load_rows(p)
    with pytest.raises(results.UsageError) as resume_err:
        results.read_episodes(p)
    msg = str(report_err.value)
    assert msg.startswith(f"{p}: ") and want in msg and "\n" not in msg, msg
    assert str(resume_err.value).startswith(msg + "; --force starts afresh")


def test_resume_needs_this_versions_columns(tmp_path):
    from atomgym.agents import results
    p = _write(tmp_path / "episodes.csv", COLS, GOOD)        # a report reads it; --resume cannot append to it
    assert len(report.load_rows(p)) == 4
    with pytest.raises(results.UsageError, match="its columns differ"):
        results.read_episodes(p)
    full = _write(tmp_path / "full.csv", results.COLUMNS, [["psi", "-", "quiet", "7", *(["1"] * (len(results.COLUMNS) - 4))]])
    assert results.read_episodes(full)[0]["seed"] == 7
