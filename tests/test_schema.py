"""One description per option (atomgym/schema.py): the parser, the help, the one-line error and the
docs table are derived from it, and the committed docs are the generated ones."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from atomgym import schema
from atomgym.agents import evaluate, train

ROOT = Path(__file__).resolve().parent.parent


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_docs_are_the_generated_ones():
    gen = _gen_docs()
    for rel, names in gen.TABLES.items():
        text = (ROOT / rel).read_text()
        assert gen.render(text, names) == text, f"{rel}: run make docs"


def test_a_made_up_option_shows_everywhere_from_one_place(monkeypatch, capsys):
    """One Field added to the table: the parser takes it, --help shows it, the docs table lists it
    and a bad value is one line naming it and its range."""
    made_up = schema.Field("frobnication_level", int, default=2, range=(1, 9), help="how much to frobnicate")
    monkeypatch.setitem(schema.COMMANDS, "evaluate", (*schema.EVALUATE, made_up))
    monkeypatch.setattr(schema, "EVALUATE", schema.COMMANDS["evaluate"])
    ap = evaluate.parser()
    args = ap.parse_args(["--policies", "psi", "--scenarios", "quiet", "--out", "x", "--frobnication-level", "7"])
    assert args.frobnication_level == 7
    assert "--frobnication-level" in ap.format_help() and "how much to frobnicate" in ap.format_help()
    assert "| `--frobnication-level` | an integer in [1, 9] | `2` | how much to frobnicate |" in \
        _gen_docs().table("evaluate")
    assert evaluate.main(["--policies", "psi", "--scenarios", "quiet", "--out", "x", "--frobnication-level", "12"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("agents.evaluate: error: argument --frobnication-level: 12: expected an integer in [1, 9] "
                   "(see `python -m agents.evaluate --help`)"), err


def test_a_made_up_option_of_an_atomgym_subcommand_shows_everywhere(monkeypatch, capsys):
    """atomgym's own subcommands (atomgym/cli.py) take their options from the same kind of fields:
    one Field added to `atomgym check`'s table reaches its parser, --help, docs table and errors."""
    import io

    from atomgym import cli
    made_up = schema.Field("frobnication_level", int, default=2, range=(1, 9), help="how much to frobnicate")
    monkeypatch.setitem(schema.ATOMGYM_COMMANDS, "check", (*schema.CHECK_CMD, made_up))
    args = cli.build_parser().parse_args(["check", "snap.txt", "--frobnication-level", "7"])
    assert args.frobnication_level == 7 and args.snapshot == "snap.txt"
    assert cli.main(["check", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "--frobnication-level" in helptext and "how much to frobnicate" in helptext
    assert "| `--frobnication-level` | an integer in [1, 9] | `2` | how much to frobnicate |" in \
        _gen_docs().table("atomgym check")
    err = io.StringIO()
    assert cli.main(["check", "snap.txt", "--frobnication-level", "12"], err=err) == 2
    assert err.getvalue() == ("atomgym: error: argument --frobnication-level: 12: expected an integer in [1, 9] "
                              "(see `atomgym check --help`)\n"), err.getvalue()


@pytest.mark.parametrize("argv, want", [
    (["realkernel", "run", "s", "--out", "d", "--frobnicate"],
     "atomgym: error: unrecognized arguments: --frobnicate (see `atomgym realkernel run --help`)"),
    (["fidelity", "d", "--seed", "-1"],
     "atomgym: error: argument --seed: -1: expected an integer in [0, 9223372036854775807] "
     "(see `atomgym fidelity --help`)"),
    (["fidelity", "fit", "c", "--seed", "x"],
     "atomgym: error: argument --seed: 'x' is not an integer (see `atomgym fidelity fit --help`)"),
    (["realkernel", "run", "s", "--out", "d", "--sample", "inf"],
     "atomgym: error: argument --sample: 'inf': expected a number of seconds in [0.05, 10] "
     "(see `atomgym realkernel run --help`)"),
])
def test_atomgym_subcommand_errors_name_the_subcommand_typed(argv, want):
    import io

    from atomgym import cli
    err = io.StringIO()
    assert cli.main(argv, err=err) == 2
    assert err.getvalue() == want + "\n"


@pytest.mark.parametrize("argv, want", [
    (["--seeds", "0"], "argument --seeds: 0: expected an integer in [1, 100000]"),
    (["--seed-base", "-1"], "argument --seed-base: -1: expected an integer in [0, 9223372036854775807]"),
    (["--duration-s", "nan"], "argument --duration-s: 'nan': expected a number of seconds in (0, 86400]"),
    (["--duration-s", "soon"], "argument --duration-s: 'soon' is not a number of seconds"),
    (["--play", "greedy"], "argument --play: 'greedy': expected a comma-separated list of deterministic, stochastic"),
    (["--out", " "], "argument --out: empty; give the folder"),
])
def test_evaluate_option_errors_come_from_the_specs(argv, want, capsys):
    base = {"--policies": "psi", "--scenarios": "quiet", "--out": "x"}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v
    assert evaluate.main([x for kv in base.items() for x in kv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and want in err, err


def test_a_caller_gets_the_same_checks_as_the_command_line(capsys):
    """Options built by another command (agents.train after training) are checked by the specs too."""
    opts = evaluate.Options(policies="psi", scenarios="quiet", out=Path("x"), seeds=0)
    assert evaluate.run(opts) == 2
    assert "argument --seeds: 0: expected an integer in [1, 100000]" in capsys.readouterr().err
    opts = evaluate.Options(policies="psi", scenarios="quiet", out=Path("x"), duration_s=5)
    evaluate.check(opts)
    assert opts.duration_s == 5.0 and isinstance(opts.duration_s, float)   # as --duration-s 5 gives it


def test_train_options_come_from_the_specs(capsys):
    assert train.main(["--total-timesteps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("agents.train: error: argument --total-timesteps: 0: expected an integer in [1, 1000000000000] "
                   "(see `python -m agents.train --help`)"), err
    assert {a.dest for a in train.parser()._actions} - {"help"} == {f.name for f in schema.TRAIN}


def test_the_scenario_loader_checks_against_the_schema_layer():
    """Every scenario key's dataclass field carries its Field of atomgym/scenario_schema.py (the one
    the loader's checks and the docs table read), and the env's episode length is the scenario's."""
    import dataclasses
    import typing

    from atomgym import scenario_schema
    from atomgym.sim import scenario as sc

    def walk(cls, specs):
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
        assert [f.name for f in fields] == [s.name for s in specs]
        for f, s in zip(fields, specs):
            assert f.metadata["spec"] is s
            if s.keys is not None:        # a section: a mapping (its dataclass) or a list of them
                walk(hints[f.name] if s.type is dict else typing.get_args(hints[f.name])[0], s.keys)

    walk(sc.Scenario, scenario_schema.SCENARIO)
    assert schema.ENV_DURATION_S.range == scenario_schema.SCENARIO_KEYS["duration_s"].range
    with pytest.raises(sc.ScenarioError, match=r"nics\[0\]\.mtu: 60 is out of range; valid range 68\.\.65535 bytes"):
        sc.scenario_from_dict({"nics": [{"mtu": 60}]}, source="x.yaml")
