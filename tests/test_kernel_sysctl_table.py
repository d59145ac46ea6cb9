"""kernel/sysctl.py SYSCTLS is the one place of a sysctl: the Machine attribute and write(), the
scenario key, the knob and its machine integer and its place in the write order follow its row."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atomgym.kernel.machine import WRITABLE_KEYS, Machine, SysctlError
from atomgym.kernel.sysctl import STORE_ONLY_SYSCTLS, SYSCTL_RANGES, SYSCTLS
from atomgym.sim import layout as L
from atomgym.sim.knobs import KNOB_MI, KNOB_STORE_ONLY, KNOB_WRITE_ORDER, KNOBS
from atomgym.sim.scenario import PhaseSysctlSpec, SysctlSpec, schema_markdown

REPO = Path(__file__).resolve().parents[1]


def test_everything_follows_the_table():
    names = tuple(s.name for s in SYSCTLS)
    assert names == tuple(SYSCTL_RANGES) == KNOBS
    assert "watermark_boost_factor" in STORE_ONLY_SYSCTLS
    assert not {"min_free_kbytes", "watermark_scale_factor"} & set(STORE_ONLY_SYSCTLS)   # their handlers
    assert WRITABLE_KEYS[:len(names)] == tuple("vm." + n for n in names)
    spec = {f.name: f for f in dataclasses.fields(SysctlSpec)}
    phase = {f.name: f for f in dataclasses.fields(PhaseSysctlSpec)}
    machine = {f.name: f for f in dataclasses.fields(Machine)}
    assert tuple(spec) == tuple(phase) == names
    for k, s in enumerate(SYSCTLS):
        f = spec[s.name]
        assert (f.default, f.metadata["range"], f.metadata["unit"], f.metadata["doc"]) == (
            s.default, (s.lo, s.hi), s.unit, s.doc)
        assert phase[s.name].default is None and phase[s.name].metadata["range"] == (s.lo, s.hi)
        assert s.name in machine and L.MI_NAMES[KNOB_MI[k]] == s.name and KNOB_STORE_ONLY[k] == s.store_only
        if s.store_only:
            assert machine[s.name].default == s.default
            assert KNOB_WRITE_ORDER.index(k) < len(STORE_ONLY_SYSCTLS)   # before every handler's write
    # the attribute sits where it always was (dataclass field order: repr, positional construction)
    assert list(machine).index("watermark_boost_factor") == list(machine).index("watermark_scale_factor") + 1
    assert "| `sysctl.watermark_boost_factor` | int | 15000 | 1/10000 | 0..2147483647 | vm.watermark_boost_factor |" \
        in schema_markdown()


def test_machine_writes_a_store_only_sysctl_generically():
    m = Machine(managed=[0, 3000, 200000, 0, 0]).boot()
    wmark = m.wmark.copy()
    m.write("vm.watermark_boost_factor", "0")
    assert m.watermark_boost_factor == 0 and (m.wmark == wmark).all()   # stored, nothing recomputed
    with pytest.raises(SysctlError, match=r"^vm.watermark_boost_factor: -1 is out of range; valid range 0..2147483647$"):
        m.write("vm.watermark_boost_factor", -1)
    with pytest.raises(SysctlError, match=r"^unknown key 'watermark_boost_factor'; valid: vm.min_free_kbytes, "):
        m.write("watermark_boost_factor", 1)   # the store-only branch takes the vm. key only


def _tree_with_row(tmp_path: Path, row: str) -> Path:
    """A copy of the atomgym package whose kernel/sysctl.py SYSCTLS has one more row."""
    dst = tmp_path / "tree"
    shutil.copytree(REPO / "atomgym", dst / "atomgym", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "configs").symlink_to(REPO / "configs")   # the shipped scenarios (env registration reads them)
    p = dst / "atomgym" / "kernel" / "sysctl.py"
    src = p.read_text()
    anchor = '           "vm.watermark_boost_factor", store_only=True),\n'
    assert anchor in src
    p.write_text(src.replace(anchor, anchor + row))
    return dst


def _run(tree: Path, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tree)


def test_a_new_store_only_row_is_all_it_takes(tmp_path):
    """Pure Python (nothing compiled): the row alone gives the scenario key (file and phase, with
    its range error), the Machine attribute and write(), the knob and its machine integer (a
    made-up name, so that the test holds whichever rows the table has; docs/simulator.md)."""
    tree = _tree_with_row(tmp_path, '    Sysctl("t_store", 0, 1000, 500, "", "vm.t_store", store_only=True),\n')
    (tmp_path / "s.yaml").write_text("sysctl: {t_store: 300}\nphases:\n"
                                     "  - {at_s: 1, sysctl: {t_store: 700}}\n")
    (tmp_path / "bad.yaml").write_text("sysctl: {t_store: 1001}\n")
    r = _run(tree, f"""
import atomgym
assert atomgym.__file__.startswith({str(tree)!r})
from atomgym.kernel.machine import Machine, SysctlError
from atomgym.sim import layout as L
from atomgym.sim.knobs import KNOBS, KNOB_MI, KNOB_WRITE_ORDER
from atomgym.sim.machines import scenario_machine
from atomgym.sim.scenario import ScenarioError, load_scenario, schema_markdown
from atomgym.kernel.sysctl import STORE_ONLY_SYSCTLS
k = KNOBS.index("t_store")
assert L.MI_NAMES[KNOB_MI[k]] == "t_store" and KNOB_WRITE_ORDER.index(k) < len(STORE_ONLY_SYSCTLS), KNOB_WRITE_ORDER
s = load_scenario({str(tmp_path / 's.yaml')!r})
assert s.sysctl.t_store == 300 and s.phases[0].sysctl.t_store == 700
m = scenario_machine(s)
assert m.t_store == 300 and Machine(managed=[0, 1, 2, 0, 0]).t_store == 500
try:
    m.write("vm.t_store", 1001)
except SysctlError as e:
    print(e)
try:
    load_scenario({str(tmp_path / 'bad.yaml')!r})
except ScenarioError as e:
    print(e)
print([r for r in schema_markdown().splitlines() if "t_store" in r])
""")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "vm.t_store: 1001 is out of range; valid range 0..1000"
    assert out[1].endswith("bad.yaml:1: sysctl.t_store: 1001 is out of range; valid range 0..1000")
    assert "| `sysctl.t_store` | int | 500 |  | 0..1000 | vm.t_store |" in out[2]
    assert "| `phases[i].sysctl.t_store` | int or null | null |  | 0..1000 |" in out[2]


def test_a_row_with_a_handler_but_no_writer_fails_at_import(tmp_path):
    tree = _tree_with_row(tmp_path, '    Sysctl("t_handler", 0, 1000, 500, "", "vm.t_handler", store_only=False),\n')
    r = _run(tree, "import atomgym.sim.knobs")
    assert r.returncode != 0
    assert ("ValueError: sim/knobs.py: sysctl 't_handler' is not store-only (kernel/sysctl.py SYSCTLS) "
            "but has no writer here") in r.stderr
