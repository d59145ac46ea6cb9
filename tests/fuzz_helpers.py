"""Helpers (no tests) of the property-based fuzz suites (tests/test_fuzz_*.py).

Profiles, chosen with the environment variable ``ATOMGYM_FUZZ`` (hypothesis' own profile
mechanism is global and would change every other property test run in the same process):

- ``ci`` (default): derandomized (the same examples on every run), bounded ``max_examples``;
  the whole fuzz suite stays under a minute on 2 cores.
- ``dev``: random examples, the same bounds (finds new cases; failures are printed with the
  ``@reproduce_failure`` blob and kept in hypothesis' example database).
- ``deep``: random, 20x the examples (minutes), for hunting before a release.

The invariant every fuzz test checks (``assert_clean_outcome``): the call returns exit 0 (or
``check``'s 1, "differs"), or exit 2 with exactly one error line that names the offending
file/key/line; never a traceback, never output on stdout with the error.
"""
from __future__ import annotations

import io
import os
import re
from typing import Callable, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_PROFILE = os.environ.get("ATOMGYM_FUZZ", "ci")
if _PROFILE not in ("ci", "dev", "deep"):
    raise ValueError(f"ATOMGYM_FUZZ={_PROFILE!r}; valid: ci, dev, deep")


def fuzz_settings(max_examples: int) -> settings:
    """The settings of one fuzz test: ``max_examples`` in the ci/dev profiles, 20x in deep."""
    return settings(
        max_examples=max_examples * (20 if _PROFILE == "deep" else 1),
        derandomize=_PROFILE == "ci",
        database=None if _PROFILE == "ci" else settings.default.database,
        deadline=None,                       # a first call may compile numba code
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
        print_blob=True,
    )


# ---- values an adversarial user types -----------------------------------------------------------
NASTY_TEXT = st.sampled_from([
    "", " ", "\t", "0", "-0", "-1", "1.5", "1e3", "1e400", "nan", "NaN", "inf", "-inf", "+5", "0x10", "1_000",
    "007", "9" * 25, "9" * 5000, str(2**63 - 1), str(2**63), str(-2**63 - 1), str(2**64), "\u0665", "\uff15",
    "١٢٣", "ünïcödé", "名前", "🙂", "\x00", "a\nb", "a\rb", "'", '"', "[", "]", "{", "}", "*", "&", "!!python/object",
    "~", "null", "true", "yes", "no", "on", "---", "...", "#", "%", ":", ": x", "- x", "?", "|", ">", "@", "`",
])
NASTY_INT = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, -2**63,
                     10**20, 10**100]),
    st.integers(),
)
NASTY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([0.0, -0.0, 0.3, 1.5, 15.5, 1e-300, 5e-324, 1e308, 1.7976931348623157e308]))
NASTY_SCALAR = st.one_of(NASTY_TEXT, NASTY_INT, NASTY_FLOAT, st.booleans(), st.none(), st.text(max_size=20))


def nasty_value(depth: int = 2) -> st.SearchStrategy:
    """A YAML-able value: a scalar, or a (small) list or mapping of them."""
    if depth <= 0:
        return NASTY_SCALAR
    inner = nasty_value(depth - 1)
    return st.one_of(NASTY_SCALAR, st.lists(inner, max_size=3),
                     st.dictionaries(st.one_of(NASTY_TEXT, st.text(max_size=8)), inner, max_size=3))


ALL_OPS = ("value", "value", "value", "delete", "dup", "swap", "token", "insert", "cut", "append")


def mutate_lines(text: str, ops: Sequence[str] = ALL_OPS, max_ops: int = 4) -> st.SearchStrategy[str]:
    """Texts derived from a valid ``text``: a number replaced by a nasty value, lines deleted,
    duplicated, swapped, a word replaced, random text inserted, or the file cut short anywhere
    (``ops``: which of these, 1..``max_ops`` of them)."""
    lines = text.splitlines()

    @st.composite
    def strat(draw) -> str:
        out = list(lines)
        for _ in range(draw(st.integers(1, max_ops))):
            if not out:
                break
            i = draw(st.integers(0, len(out) - 1))
            op = draw(st.sampled_from(list(ops)))
            if op == "value":              # a number of the text replaced: the deepest checks
                numbered = [j for j, ln in enumerate(out) if re.search(r"-?[0-9]+\)?\s*$", ln)]
                if numbered:
                    j = draw(st.sampled_from(numbered))
                    m = re.search(r"(-?[0-9]+)(\)?\s*)$", out[j])
                    new = draw(st.one_of(NASTY_INT.map(str), NASTY_TEXT, st.sampled_from(
                        [str(2**34), str(2**34 + 1), str(2**40), str(2**40 + 1), "0"])))
                    out[j] = out[j][:m.start(1)] + new + m.group(2)
            elif op == "delete":
                del out[i]
            elif op == "dup":
                out.insert(i, out[i])
            elif op == "swap":
                j = draw(st.integers(0, len(out) - 1))
                out[i], out[j] = out[j], out[i]
            elif op == "token":            # a word of the line (most often its value, the last one)
                line = out[i]
                lead = line[:len(line) - len(line.lstrip())]
                toks = line.split() or [""]
                k = draw(st.one_of(st.just(len(toks) - 1), st.integers(0, len(toks) - 1)))
                toks[k] = draw(st.one_of(NASTY_TEXT, NASTY_INT.map(str)))
                out[i] = lead + " ".join(toks)
            elif op == "insert":
                out.insert(i, draw(st.one_of(NASTY_TEXT, st.text(max_size=30))))
            elif op == "cut":
                s = "\n".join(out)
                s = s[:draw(st.integers(0, len(s)))]
                out = s.split("\n")
            else:
                out.append(draw(st.text(max_size=30)))
        return "\n".join(out) + draw(st.sampled_from(["\n", "", "\n\n"]))
    return strat()


# ---- the invariant ------------------------------------------------------------------------------
def run_cli(main: Callable[..., int], argv: Sequence[str]) -> tuple[int, str, str]:
    """An `atomgym` command in-process: (exit code, stdout, stderr). Any exception fails the test
    (a traceback is what the suite exists to rule out)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def assert_clean_outcome(code: int, out: str, err: str, ok_codes: tuple[int, ...] = (0,),
                         names: Sequence[str] = (), prefix: str = "atomgym: error:") -> None:
    """exit in ok_codes, or exit 2 with one error line (naming one of ``names`` when given) and
    nothing on stdout; warnings/notes may precede the error line."""
    assert isinstance(code, int), code
    assert "Traceback" not in err, err
    if code == 2:
        errors = [ln for ln in err.splitlines() if ln.startswith(prefix)]
        others = [ln for ln in err.splitlines() if ln and not ln.startswith(prefix)
                  and not ln.startswith(("atomgym: warning:", "atomgym: WARNING:", "atomgym: note:"))]
        assert len(errors) == 1 and not others, err
        assert out == "", out
        if names:
            assert any(n in errors[0] for n in names), (names, errors[0])
    else:
        assert code in ok_codes, (code, err)


def one_line(msg: str, *names: str) -> None:
    """An exception message fit for `error: {msg}`: one line, naming one of ``names``."""
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    assert "Traceback" not in msg
    if names:
        assert any(n in msg for n in names), (names, msg)


# ---- JSON documents we wrote, damaged: records, captures, caches (issue 23) ----------------------
DEEP = ["[" * 100000, "{\"a\":" * 100000, "[" * 3000 + "]" * 3000, "9" * 5000, "1e400", "-1e400"]


def _paths(doc, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (lists: their first few items)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            out += _paths(v, prefix + (i,))
    return out


def mutate_json(doc) -> st.SearchStrategy[str]:
    """JSON texts derived from a valid document: a value replaced by a nasty one (huge numbers,
    wrong types, deep nesting), a key deleted, the text cut short anywhere."""
    import copy
    import json
    paths = _paths(doc)

    @st.composite
    def strat(draw) -> str:
        d = copy.deepcopy(doc)
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            op = draw(st.sampled_from(["value", "value", "delete", "deep"]))
            if not path:
                continue
            node = d
            try:
                for k in path[:-1]:
                    node = node[k]
                last = path[-1]
                if op == "delete" and isinstance(node, dict):
                    node.pop(last, None)
                elif op == "deep":
                    node[last] = "@@DEEP@@"
                else:
                    node[last] = draw(nasty_value(1))
            except (KeyError, IndexError, TypeError):
                continue
        try:
            text = json.dumps(d)
        except ValueError:
            text = "{}"
        if "@@DEEP@@" in text:
            text = text.replace('"@@DEEP@@"', draw(st.sampled_from(DEEP)), 1).replace('"@@DEEP@@"', "0")
        if draw(st.integers(0, 5)) == 0:
            text = text[:draw(st.integers(0, len(text)))]
        return text
    return strat()
