"""Scenario schema: every shipped file loads; every class of bad input gets a one-line
message naming the file, the key path (and line) and what is valid; randomize draws."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from atomgym.sim.scenario import (
    REPO_ROOT,
    Scenario,
    ScenarioError,
    TrafficSpec,
    draw_scenario,
    list_scenarios,
    load_scenario,
    load_trace,
    scenario_from_dict,
    scenario_to_dict,
    schema_markdown,
    validate_scenario,
)

REQUIRED = {"quiet", "incast-pagecache", "anon-hog-bursts", "stream-read-bursts", "diurnal-bursts",
            "virtio-deferral", "memalloc-drops", "trace-replay"}


def test_required_scenarios_shipped():
    names = set(list_scenarios())
    assert REQUIRED <= names
    assert any(load_scenario(n).randomize for n in names), "no domain-randomisation scenario shipped"


@pytest.mark.parametrize("name", list_scenarios())
def test_shipped_scenario_loads(name):
    s = load_scenario(name)
    assert s.name == name
    assert len(s.description.split()) >= 40, "description must say what it represents and why"
    # a memory-only experiment describes a machine without a NIC (nics: [], traffic: [])
    assert (s.nics and s.traffic) or (not s.nics and not s.traffic and s.workloads)
    # The resolved config round-trips through plain data and YAML.
    d = scenario_to_dict(s)
    again = scenario_from_dict(yaml.safe_load(yaml.safe_dump(d)), source=s.source)
    assert again == s
    # Episodes stay modest except the diurnal one, which must outlast a 5-minute decay 3x.
    if name == "diurnal-bursts":
        assert s.duration_s >= 15 * 60
    else:
        assert s.duration_s <= 120
    for t in s.traffic:
        if t.kind == "replay":
            assert load_trace(Path(s.source).parent / t.trace).size * t.trace_interval_ms >= s.duration_s * 1000


def test_shipped_parameters_make_the_intended_pressure():
    """Initial free memory: far above the watermarks in 'quiet', within a few % of RAM otherwise."""
    quiet = load_scenario("quiet")
    used = quiet.memory.page_cache_frac + quiet.memory.anon_frac + quiet.memory.kernel_frac
    assert 1 - used > 0.2 and not quiet.workloads
    for n in REQUIRED - {"quiet"}:
        m = load_scenario(n).memory
        assert 1 - (m.page_cache_frac + m.anon_frac + m.kernel_frac) <= 0.05, n


def test_load_by_path_and_name_equal():
    a = load_scenario("quiet")
    b = load_scenario(REPO_ROOT / "configs" / "scenarios" / "quiet.yaml")
    assert a == b


def test_yaml_floats_without_dot(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("traffic:\n  - kind: poisson\n    rate_pps: 1e5\nnics:\n  - ring_size: 2e3\n")
    s = load_scenario(p)
    assert s.traffic[0].rate_pps == 100000.0 and s.nics[0].ring_size == 2000
    assert isinstance(s.nics[0].ring_size, int)
    assert s.name == "f"


def _err(tmp_path, text: str, name: str = "bad.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(p)
    msg = str(ei.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert str(p) in msg or name in msg, msg
    return msg


BASE = "duration_s: 10\nnics:\n  - driver: page_pool\ntraffic:\n  - kind: incast\n    burst_pps: 1.0e6\n"


def test_unknown_key_suggests(tmp_path):
    msg = _err(tmp_path, BASE.replace("burst_pps", "burst_ppss"))
    assert ":6: traffic[0].burst_ppss: unknown key" in msg
    assert "did you mean 'burst_pps'" in msg and "valid keys:" in msg


def test_unknown_top_level_key(tmp_path):
    msg = _err(tmp_path, BASE + "duraton_s: 5\n")
    assert ":7: duraton_s: unknown key" in msg and "'duration_s'" in msg


def test_out_of_range(tmp_path):
    msg = _err(tmp_path, BASE.replace("1.0e6", "-5"))
    assert ":6: traffic[0].burst_pps: -5 is out of range; valid range 0..1e9 packets/s" in msg
    msg = _err(tmp_path, "machine:\n  nodes: 9\n")
    assert ":2: machine.nodes: 9 is out of range; valid range 1..8" in msg


def test_bad_choice(tmp_path):
    msg = _err(tmp_path, BASE.replace("page_pool", "pagepool"))
    assert ":3: nics[0].driver: 'pagepool' is not a valid choice (did you mean 'page_pool'?)" in msg
    assert "choices: page_pool, dev_alloc_pages, virtio_net" in msg


def test_bad_type(tmp_path):
    msg = _err(tmp_path, BASE.replace("1.0e6", "fast"))
    assert "traffic[0].burst_pps: expected a number, got string 'fast'; valid range 0..1e9 packets/s" in msg
    msg = _err(tmp_path, "nics:\n  - ring_size: 100.5\n")
    assert "nics[0].ring_size: expected an integer, got 100.5; valid range 16..65536 descriptors" in msg
    msg = _err(tmp_path, "memory:\n  swap: 1\n")
    assert "memory.swap: expected true or false" in msg
    msg = _err(tmp_path, "nics:\n  driver: page_pool\n")
    assert "nics: expected a list of NicSpec mappings" in msg
    msg = _err(tmp_path, "machine: 8\n")
    assert "machine: expected a mapping of MachineSpec keys" in msg
    msg = _err(tmp_path, "duration_s: true\n")
    assert "duration_s: expected a number, got boolean" in msg
    msg = _err(tmp_path, "duration_s: .nan\n")
    assert "duration_s: nan is not a finite number" in msg


def test_bad_randomize(tmp_path):
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.0.burst_pp: [1, 2]\n")
    assert ":8: randomize.traffic.0.burst_pp: no key 'burst_pp' in traffic[0] (did you mean 'burst_pps'?)" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.3.burst_pps: [1, 2]\n")
    assert "traffic has 1 entry: index 3 does not exist" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.0.burst_pps: [-1, 2]\n")
    assert "randomize.traffic.0.burst_pps: [-1, 2] leaves the valid range of traffic[0].burst_pps; " \
           "valid range 0..1e9 packets/s" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.0.kind: [1, 2]\n")
    assert "traffic[0].kind is not numeric" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  nics.0.queues: [1.5, 4]\n")
    assert "nics[0].queues is an integer: give integer bounds; valid range 1..256" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.0.burst_pps: [5, 2]\n")
    assert "lo 5 is above hi 2" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  traffic.0.burst_pps: 5\n")
    assert "expected [lo, hi]" in msg
    msg = _err(tmp_path, BASE + "randomize:\n  memory.page_cache_frac: [0.1, 0.9]\n")
    assert "memory: page_cache_frac + anon_frac + kernel_frac = 1.030" in msg


def test_yaml_syntax_error_names_line(tmp_path):
    msg = _err(tmp_path, "duration_s: 10\nnics:\n  - driver: [page_pool\n")
    assert re.search(r"bad\.yaml:\d+:\d+: YAML syntax error", msg), msg
    msg = _err(tmp_path, "duration_s: 10\nduration_s: 20\n")
    assert ":2: duration_s: duplicate key" in msg
    msg = _err(tmp_path, "- 1\n- 2\n")
    assert "expected a mapping of scenario keys, got list" in msg


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match=r"no shipped scenario 'incast-pagecach' \(did you mean 'incast-pagecache'\?\)"):
        load_scenario("incast-pagecach")


def test_missing_referenced_files(tmp_path):
    msg = _err(tmp_path, "machine:\n  snapshot: nowhere.txt\n")
    assert ":2: machine.snapshot: no such file 'nowhere.txt'" in msg
    msg = _err(tmp_path, "traffic:\n  - kind: replay\n")
    assert "traffic[0].trace: kind 'replay' needs a trace" in msg
    msg = _err(tmp_path, "traffic:\n  - kind: replay\n    trace: nowhere.csv\n")
    assert ":3: traffic[0].trace: no such file 'nowhere.csv'" in msg


def test_cross_field_rules(tmp_path):
    msg = _err(tmp_path, "memory:\n  page_cache_frac: 0.9\n  anon_frac: 0.1\n")
    assert "memory: page_cache_frac + anon_frac + kernel_frac = 1.030" in msg
    msg = _err(tmp_path, "traffic:\n  - start_s: 5\n    stop_s: 2\n")
    assert "traffic[0].stop_s: 2 s is not after start_s 5 s" in msg
    msg = _err(tmp_path, "machine:\n  kernel: linux\n")
    assert "machine.kernel: 'linux' is not a kernel release" in msg


def test_scenario_from_dict_names_source():
    with pytest.raises(ScenarioError, match=r"^<dict>: kswapd.wake_latency_ms: 500 is out of range; valid range 0..100 ms$"):
        scenario_from_dict({"kswapd": {"wake_latency_ms": 500}})
    with pytest.raises(ScenarioError, match=r"^run.yaml: tick_ms"):
        scenario_from_dict({"tick_ms": 20}, source="run.yaml", check_files=False)


def test_validate_scenario_built_in_code():
    s = Scenario(traffic=[TrafficSpec(rate_pps=-1.0)])
    with pytest.raises(ScenarioError, match=r"traffic\[0\].rate_pps: -1 is out of range"):
        validate_scenario(s)
    assert validate_scenario(Scenario()) == Scenario()


def test_draw_scenario_deterministic_and_in_range():
    s = load_scenario("train-randomized")
    a, b = draw_scenario(s, 7), draw_scenario(s, 7)
    assert a == b
    assert draw_scenario(s, np.random.default_rng(7)) == a
    c = draw_scenario(s, 8)
    assert c != a
    assert s == load_scenario("train-randomized"), "draw must not modify its input"
    seen_queues = set()
    for seed in range(40):
        d = draw_scenario(s, seed)
        assert isinstance(d.nics[0].queues, int) and isinstance(d.nics[0].ring_size, int)
        assert isinstance(d.traffic[1].burst_ms, float)
        for key, (lo, hi) in s.randomize.items():
            obj = d
            for p in key.split("."):
                obj = obj[int(p)] if p.isdigit() else getattr(obj, p)
            assert lo <= obj <= hi, key
        seen_queues.add(d.nics[0].queues)
        validate_scenario(d)
    assert len(seen_queues) > 10


def test_draw_scenario_accepts_bracket_syntax_and_rejects_bad_rng():
    s = scenario_from_dict({"nics": [{}], "randomize": {"nics[0].ring_size": [512, 512]}})
    assert list(s.randomize) == ["nics.0.ring_size"]
    assert draw_scenario(s, 0).nics[0].ring_size == 512
    with pytest.raises(TypeError):
        draw_scenario(s, "seed")


def test_draw_scenario_checks_ranges_of_code_built_scenarios():
    s = Scenario(randomize={"kswapd.wake_latency_ms": [0.0, 1000.0]})
    with pytest.raises(ScenarioError, match=r"leaves the valid range of kswapd.wake_latency_ms; valid range 0..100 ms"):
        draw_scenario(s, 1)


def test_schema_markdown_covers_every_field():
    md = schema_markdown()
    def leaves(cls, prefix):
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            from atomgym.sim import scenario as sc
            if f.name in ("machine", "sysctl", "memory", "kswapd") and cls is Scenario:
                yield from leaves(type(getattr(Scenario(), f.name)), f"{prefix}{f.name}.")
            elif f.name == "sysctl" and cls is sc.PhaseSpec:
                yield from leaves(sc.PhaseSysctlSpec, f"{prefix}{f.name}.")
            elif f.name in ("nics", "traffic", "workloads", "phases", "shots"):
                item = {"nics": sc.NicSpec, "traffic": sc.TrafficSpec, "workloads": sc.WorkloadSpec,
                        "phases": sc.PhaseSpec, "shots": sc.ShotSpec}[f.name]
                yield from leaves(item, f"{prefix}{f.name}[i].")
            else:
                yield prefix + f.name
    keys = list(leaves(Scenario, ""))
    assert len(keys) > 40
    for k in keys:
        assert f"| `{k}` |" in md, k
    assert "| `traffic[i].burst_pps` | float | 0 | packets/s | 0..1e9 |" in md
    # docs/scenarios.md carries the current output (make docs writes it)
    doc = (REPO_ROOT / "docs" / "scenarios.md").read_text()
    assert md.strip() in doc, "docs/scenarios.md is stale: run make docs"


def test_kernel_and_sim_have_no_gymnasium_import():
    """The kernel model and the simulator are pure Python/numpy: no module under atomgym/kernel or
    atomgym/sim imports gymnasium (the package's __init__ registers the envs, that is all)."""
    import ast

    pkg = REPO_ROOT / "atomgym"
    files = sorted((pkg / "kernel").glob("*.py")) + sorted((pkg / "sim").glob("*.py"))
    assert len(files) > 10
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("gymnasium", "gym") for n in names), f"{f.name} imports {names}"


def test_empty_file_is_refused_empty_mapping_gives_defaults_and_empty_name_is_an_error(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing\n")
    with pytest.raises(ScenarioError, match=r"empty\.yaml: the file is empty \(or holds only comments\)"):
        load_scenario(p)       # a file that says nothing is a mistake, not a request for every default
    p.write_text("{}\n")
    s = load_scenario(p)
    assert s.name == "empty" and s == dataclasses.replace(Scenario(), name="empty", source=s.source)
    with pytest.raises(ScenarioError, match="empty scenario name; shipped: "):
        load_scenario("")
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(ScenarioError, match=r"dir\.yaml: no such scenario file"):
        load_scenario(d)


@pytest.mark.parametrize("key, needle", [
    ("duration_s: [5, 20]", "duration_s cannot be randomized (the episode length"),
    ("tick_ms: [0.5, 2]", "tick_ms cannot be randomized (one tick"),
    ("machine.nodes: [1, 4]", "machine.nodes cannot be randomized"),
])
def test_keys_that_cannot_be_randomized_are_refused(tmp_path, key, needle):
    """A drawn duration_s was ignored; a drawn tick_ms gave episodes of another simulated length
    than their label (the tick count follows the scenario's tick); nodes size the batch's arrays."""
    msg = _err(tmp_path, BASE + f"randomize:\n  {key}\n")
    assert needle in msg and "traffic.0.rate_pps" in msg, msg     # names what can be randomized


@pytest.mark.parametrize("extra, rand, needle", [
    ("    start_s: 1\n    stop_s: 5\n", "traffic.0.start_s: [1, 8]", "traffic[0]'s stop at 5 s, not after its start at 8 s"),
    ("    start_s: 1\n    stop_s: 5\n", "traffic.0.stop_s: [0.5, 8]", "traffic[0]'s stop at 0.5 s"),
])
def test_randomize_ranges_that_can_draw_a_start_after_a_stop_are_refused_at_load(tmp_path, extra, rand, needle):
    """They loaded, then failed at the reset of the machine that drew the bad combination."""
    msg = _err(tmp_path, BASE + extra + f"randomize:\n  {rand}\n")
    assert needle in msg and "randomize." in msg, msg
    # the same ranges kept apart load, and every draw passes
    ok = tmp_path / "ok.yaml"
    ok.write_text(BASE + "    start_s: 1\n    stop_s: 5\nrandomize:\n  traffic.0.start_s: [0, 4.9]\n"
                  "  traffic.0.stop_s: [5, 8]\n")
    s = load_scenario(ok)
    for seed in range(20):
        draw_scenario(s, seed)


def test_randomized_workload_times_and_bursts_are_checked_at_load(tmp_path):
    wl = ("workloads:\n  - kind: anon_hog\n    name: hog\n    start_s: 1\n  - kind: atomic_alloc\n"
          "    pages_per_burst: 4\n    interval_ms: 10\nphases:\n  - at_s: 3\n    stop: [hog]\n")
    msg = _err(tmp_path, BASE + wl + "randomize:\n  phases.0.at_s: [0.5, 6]\n")
    assert "workloads[0]'s stop at 0.5 s, not after its start at 1 s (phases included)" in msg
    assert "phases.0.at_s" in msg, msg
    msg = _err(tmp_path, BASE + wl + "randomize:\n  workloads.1.pages_per_burst: [0, 8]\n")
    assert "interval_ms > 0 and pages_per_burst 0" in msg, msg
    msg = _err(tmp_path, BASE + wl + "randomize:\n  workloads.0.volume_mib: [1, 8]\n")
    assert "volume_mib is only for kind stream_read (workloads[0] is 'anon_hog')" in msg, msg
    ok = tmp_path / "ok.yaml"
    ok.write_text(BASE + wl + "randomize:\n  phases.0.at_s: [2, 6]\n  workloads.1.pages_per_burst: [1, 8]\n")
    s = load_scenario(ok)
    for seed in range(20):
        draw_scenario(s, seed)


@pytest.mark.parametrize("rate, needle", [
    ("{nobody: 10}", "phases[0].rate.nobody: no workload named 'nobody'; named workloads: hog, net"),
    ("{net: 10}", "workload 'net' is an atomic_alloc, which has no rate; a rate is for stream_read, anon_hog, churn"),
    ("{hog: -1}", "phases[0].rate.hog: -1 is out of range; valid range 0..1000000 MiB/s"),
    ("{hog: fast}", "phases[0].rate.hog: expected a number, got string 'fast'; valid range 0..1000000 MiB/s"),
    ("[hog, 10]", "phases[0].rate: expected a mapping 'workload name: MiB/s', got list"),
])
def test_a_phases_rate_names_a_workload_with_a_rate_and_a_valid_number(tmp_path, rate, needle):
    wl = ("workloads:\n  - kind: anon_hog\n    name: hog\n  - kind: atomic_alloc\n    name: net\n"
          "    pages_per_burst: 4\n    interval_ms: 10\n")
    msg = _err(tmp_path, BASE + wl + f"phases:\n  - at_s: 3\n    rate: {rate}\n")
    assert needle in msg, msg
    ok = tmp_path / "ok.yaml"
    ok.write_text(BASE + wl + "phases:\n  - at_s: 3\n    rate: {hog: 12.5}\n")
    assert load_scenario(ok).phases[0].rate == {"hog": 12.5}


def test_a_phases_rate_changes_the_workloads_rate_from_its_time(tmp_path):
    """A reader at 64 MiB/s that a phase slows to 16 MiB/s at 1 s reads 64 x 256 x 1 + 16 x 256 x 1
    pages in 2 s (all new: its working set is larger than the memory), and one with the same phase
    but no rate change reads 64 x 256 x 2; the phases' trace is applied by knobs.apply_phases()."""
    from atomgym.sim.layout import ZF_CACHE
    from atomgym.sim.simulator import Simulator
    text = ("duration_s: 2\nmachine: {ram_mib: 1024, cpus: 1, thp: never}\nnics: []\n"
            "memory: {page_cache_frac: 0.05, anon_frac: 0.05, kernel_frac: 0.05, swap: false}\n"
            "workloads:\n  - {kind: stream_read, name: reader, rate_mib_s: 64, working_set_mib: 4096, access: sequential}\n"
            "phases:\n  - {at_s: 1, rate: {reader: %s}}\n")
    got = []
    for r in (16, 64):
        p = tmp_path / f"r{r}.yaml"
        p.write_text(text % r)
        sim = Simulator(load_scenario(p), n_machines=1)
        sim.reset([1])
        c0 = sim.zone_state[0, :, ZF_CACHE].sum()       # (memory enough: nothing is reclaimed)
        sim.advance(2000)
        got.append(sim.zone_state[0, :, ZF_CACHE].sum() - c0)
    assert got == [64 * 256 + 16 * 256, 2 * 64 * 256]


def test_a_machine_seed_draws_once_for_every_simulator():
    """Simulator's memo of randomised draws (sim/simulator.py, drawn_machine()): an env's machine
    and its reward shadow reset with the same seed get the same draw and machine, equal to a fresh
    draw; another seed or another scenario object draws again."""
    import atomgym.sim.simulator as simulator
    from atomgym.sim import Simulator
    from atomgym.sim.machines import scenario_machine
    from atomgym.sim.scenario import draw_scenario, load_scenario

    s = load_scenario("train-randomized")
    seed = 123456789
    d1, m1 = simulator.drawn_machine(s, seed)
    d2, m2 = simulator.drawn_machine(s, seed)
    assert d1 is d2 and m1 is m2
    fresh = draw_scenario(s, np.random.default_rng([seed, 0x5CE4]))
    assert fresh == d1 and scenario_machine(fresh).zone_rows() == m1.zone_rows()
    d3, _ = simulator.drawn_machine(s, seed + 1)
    assert d3 is not d1
    d4, _ = simulator.drawn_machine(load_scenario("train-randomized"), seed)
    assert d4 is not d1 and d4 == d1
    # two simulators of the scenario, reset with the same seed: the same state (and only one draw)
    a, b = Simulator(s, n_machines=1), Simulator(s, n_machines=1)
    a.reset(np.array([seed + 7]))
    b.reset(np.array([seed + 7]))
    for x, y in zip(a.state, b.state):
        assert np.array_equal(x, y)
