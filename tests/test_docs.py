"""docs/environment.md's tables are the code's: observation names and order, action counts, reward
terms with their default weights, registered ids; the README keeps none of them (one place, linked)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from atomgym.envs.atom_env import AtomEnv
from atomgym.envs.cost import DEFAULT_WEIGHTS, TERM_NAMES, TERMS
from atomgym.envs.registration import env_ids
from atomgym.envs.spaces import CONT_ACTION_NAMES, N_ACTIONS, OBS_NAMES

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, title: str) -> str:
    i = text.index(f"## {title}") if f"## {title}" in text else text.index(f"### {title}")
    m = re.search(r"\n#{2,3} ", text[i + 4:])
    return text[i:i + 4 + m.start()] if m else text[i:]


@pytest.mark.parametrize("doc", ["docs/environment.md"])
def test_observation_table_matches_the_space(doc):
    sec = _section((ROOT / doc).read_text(), "Observation space")
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \|", sec, flags=re.M)
    assert [(int(i), n) for i, n in rows] == list(enumerate(OBS_NAMES))


@pytest.mark.parametrize("doc", ["docs/environment.md"])
def test_action_and_reward_tables_match_the_code(doc):
    text = (ROOT / doc).read_text()
    act = _section(text, "Action space")
    assert [int(a) for a in re.findall(r"^\| (\d) \| (?!min_free|watermark|boost_level)", act, flags=re.M)] \
        == list(range(N_ACTIONS))
    assert re.findall(r"^\| \d \| (\w+) \|", act, flags=re.M) == list(CONT_ACTION_NAMES)
    rew = _section(text, "Reward")
    for name in TERM_NAMES:
        m = re.search(rf"^\| `{name}` \|.*\| ([0-9.e-]+) \|$", rew, flags=re.M)
        assert m, f"{doc}: no reward row for {name}"
        assert float(m.group(1)) == DEFAULT_WEIGHTS[name], name


def test_registered_ids_table_and_docstring_sections():
    sec = _section((ROOT / "docs/environment.md").read_text(), "Registered ids")
    ids = dict(re.findall(r"^\| `(atomgym/[\w-]+)` \| `([\w-]+)`", sec, flags=re.M))
    assert ids == env_ids()
    doc = AtomEnv.__doc__
    heads = re.findall(r"^    ## (.+)$", doc, flags=re.M)
    assert heads == ["Description", "Action Space", "Observation Space", "Rewards", "Starting State",
                     "Episode End", "Arguments", "Version History"]
    for i, n in enumerate(CONT_ACTION_NAMES):
        assert f"| {i} | {n} |" in doc


def test_docstring_lists_the_cost_table():
    """AtomEnv's Rewards and Arguments sections are filled from cost.TERMS (no placeholder left)."""
    doc = AtomEnv.__doc__
    assert "@" not in doc
    rew = doc[doc.index("## Rewards"):doc.index("## Starting State")]
    args = doc[doc.index("## Arguments"):doc.index("## Version History")]
    for t in TERMS:
        assert f"* ``{t.name}`` (``{t.arg}``, {t.weight:g}): {t.doc}" in rew, t.name
        assert f"``{t.arg}``" in args, t.arg
    assert "``deadlock_penalty``: 100." in rew


def test_readme_keeps_no_copy_of_the_env_tables():
    """The observation, action and reward tables live in docs/environment.md only."""
    text = (ROOT / "README.md").read_text()
    for name in (*OBS_NAMES[:3], *CONT_ACTION_NAMES):
        assert f"`{name}`" not in text and f"| {name} |" not in text, name
