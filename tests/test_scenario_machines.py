"""build_machine(): real snapshots reproduce their zones and watermarks; the x86-64 layout
rule for ram_mib lands within 30 pages per zone of the real QEMU guests."""
from __future__ import annotations

import json

import numpy as np
import pytest

from atomgym.kernel.zones import MAX_NR_ZONES, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL
from atomgym.sim.machines import build_machine, read_snapshot, scenario_machine, x86_layout
from atomgym.sim.scenario import (
    REPO_ROOT,
    MachineSpec,
    ScenarioError,
    SysctlSpec,
    list_scenarios,
    load_scenario,
)

SNAP_DIR = REPO_ROOT / "tests" / "data" / "snapshots"   # the real snapshots, vendored (snapshot_helpers.py)
SNAPSHOTS = sorted(SNAP_DIR.glob("*.txt"))


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.name)
def test_snapshot_machine_reproduces_managed_and_sysctls(path):
    snap = read_snapshot(path)
    m = build_machine(MachineSpec(snapshot=str(path)), SysctlSpec(watermark_scale_factor=snap["watermark_scale_factor"]))
    assert np.array_equal(m.managed, snap["managed"])
    assert np.array_equal(m.present, snap["present"])
    assert m.min_free_kbytes == snap["min_free_kbytes"]
    assert m.thp == snap["thp"]
    assert m.watermark_scale_factor == snap["watermark_scale_factor"]


def _sequences():
    f = SNAP_DIR / "sequences.json"
    return json.loads(f.read_text()) if f.is_file() else []


@pytest.mark.parametrize("seq", _sequences(), ids=lambda s: s["start"])
def test_snapshot_machine_watermarks_match_fresh_kernel_values(seq):
    """After a write that recomputes them, the kernel's watermarks equal ours to the page."""
    for step in seq["steps"]:
        if not step.get("wmarks_fresh"):
            continue
        m = build_machine(MachineSpec(snapshot=str(SNAP_DIR / step["snapshot"])), SysctlSpec())
        rows = {(r["node"], r["zone"]): r for r in m.zone_rows()}
        for z in step["zones"]:
            r = rows[(z["node"], z["zone"])]
            assert (r["managed"], r["min"], r["low"], r["high"]) == (z["managed"], z["min"], z["low"], z["high"]), z
            assert r["protection"] == z["protection"]


@pytest.mark.parametrize("path", SNAPSHOTS + sorted((REPO_ROOT / "corpus").glob("*/snapshot-start.txt")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_snapshot_machine_keeps_the_kernels_protection(path):
    """lowmem_reserve is computed at boot (setup_per_zone_lowmem_reserve()) before the init memory
    joins managed, and no min_free_kbytes / watermark_scale_factor write recomputes it: the machine
    keeps the protection the snapshot shows, stale or not."""
    from atomgym.kernel.snapshot import parse_snapshot
    snap = parse_snapshot(path)
    m = build_machine(MachineSpec(snapshot=str(path)), SysctlSpec())
    assert [[int(x) for x in m.reserve[i]] for i in range(len(snap.zones))] == [list(z.protection) for z in snap.zones]


def test_a_stale_protection_stays_until_lowmem_reserve_ratio_is_written():
    """corpus/ram512's guest: DMA's protection is 431 (113261 managed DMA32 pages now, 110336 / 256
    when it was computed); the formula on today's count gives 442. A min_free_kbytes write keeps 431,
    a lowmem_reserve_ratio write computes 442."""
    path = REPO_ROOT / "corpus" / "ram512" / "snapshot-start.txt"
    m = build_machine(MachineSpec(snapshot=str(path)), SysctlSpec(min_free_kbytes=4000))
    assert list(m.reserve[ZONE_DMA]) == [0, 431, 431, 431, 431] and m.managed[ZONE_DMA32] == 113261
    m.write("vm.lowmem_reserve_ratio", [256, 256, 32, 0, 0])
    assert list(m.reserve[ZONE_DMA]) == [0, 442, 442, 442, 442]             # 113261 // 256


# ram_mib, nodes, snapshot of the same QEMU guest
GUESTS = [(1024, 1, "1G-default--start.txt"), (2048, 2, "2G-smp2-numa2-default--start.txt"),
          (4096, 1, "4G-mf16384--start.txt")]


@pytest.mark.parametrize("ram,nodes,snap", GUESTS)
def test_layout_rule_close_to_real_guests(ram, nodes, snap):
    path = SNAP_DIR / snap
    if not path.is_file():
        pytest.skip(f"{snap} not available")
    s = read_snapshot(path)
    spanned, present, managed = x86_layout(ram, nodes)
    assert np.array_equal(present, s["present"]), "present pages: QEMU pc layout is exact"
    assert np.array_equal(spanned, s["spanned"])
    assert np.array_equal(managed > 0, s["managed"] > 0)
    assert np.abs(managed - s["managed"]).max() <= 30, (managed - s["managed"])


def test_layout_4g_guest_numbers():
    _, _, managed = x86_layout(4096, 1)
    assert managed[ZONE_DMA] == 3840
    assert abs(managed[ZONE_DMA32] - 754602) <= 30 and abs(managed[ZONE_NORMAL] - 243907) <= 30


@pytest.mark.parametrize("ram,nodes", [(512, 1), (3000, 1), (4096, 1), (8192, 1), (16384, 2), (16384, 4),
                                       (65536, 8), (1 << 20, 8)])
def test_layout_rule_sane(ram, nodes):
    spanned, present, managed = x86_layout(ram, nodes)
    pages = ram * 256
    z = managed.reshape(nodes, MAX_NR_ZONES)
    assert (managed >= 0).all() and (managed <= present).all() and (present <= spanned).all()
    assert present.sum() <= pages
    lo = 0.88 if ram < 1024 else 0.93                            # the ~45 MiB kernel weighs on tiny VMs
    assert lo * pages < managed.sum() < 0.99 * pages             # 1-7 % not managed (12 % at 512 MiB)
    assert z[0, ZONE_DMA] == 3840 and (z[1:, ZONE_DMA] == 0).all()
    assert z[:, 3:].sum() == 0                                    # no Movable/Device
    below_4g = present.reshape(nodes, MAX_NR_ZONES)[:, :ZONE_NORMAL].sum()
    assert below_4g <= 3584 * 256
    if pages > 3584 * 256:
        assert below_4g == 3 * 262144 - 32 - 98                   # 3 GiB minus firmware and DMA holes
        per_node = managed.reshape(nodes, MAX_NR_ZONES).sum(axis=1)
        assert per_node.max() - per_node.min() < 0.05 * pages / nodes + 20000


def test_build_machine_from_ram_applies_sysctls():
    m = build_machine(MachineSpec(ram_mib=8192, thp="madvise"), SysctlSpec())
    assert m.min_free_kbytes == 67584                              # 3 zones x 512 x 11 x 4 kB (THP)
    m = build_machine(MachineSpec(ram_mib=8192, thp="never"), SysctlSpec())
    assert m.min_free_kbytes == int(np.sqrt(m.managed.sum() * 4 * 16))  # int_sqrt(lowmem_kbytes * 16)
    m = build_machine(MachineSpec(ram_mib=8192), SysctlSpec(min_free_kbytes=200000, watermark_scale_factor=100,
                                                            watermark_boost_factor=0))
    assert (m.min_free_kbytes, m.user_min_free_kbytes, m.watermark_scale_factor, m.watermark_boost_factor) == \
        (200000, 200000, 100, 0)
    rows = m.zone_rows()
    assert rows[ZONE_NORMAL]["low"] - rows[ZONE_NORMAL]["min"] == m.managed[ZONE_NORMAL] * 100 // 10000


def test_build_machine_missing_snapshot():
    with pytest.raises(ScenarioError, match=r"machine.snapshot: no such file 'nope.txt'"):
        build_machine(MachineSpec(snapshot="nope.txt"), SysctlSpec(), REPO_ROOT)


def test_read_snapshot_rejects_garbage(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    with pytest.raises(ScenarioError, match=r"x.txt:1: not a snapshot: expected a `==> PATH <==` header"):
        read_snapshot(p)
    p.write_text("==> /proc/zoneinfo <==\nNode 0, zone   Normal\n        managed  lots\n")
    with pytest.raises(ScenarioError, match=r"x.txt:\d+: "):
        read_snapshot(p)


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_builds_its_machine(name):
    s = load_scenario(name)
    m = scenario_machine(s)
    assert m.total_pages > 0
    # 512 MiB (the real-kernel guest) to 64 GiB (the benchmark's largest test machine)
    assert 256 * 256 // 2 <= m.total_pages <= 64 * 256 * 1024, "machines stay 512 MiB-64 GiB"
    if s.machine.snapshot is None:
        assert m.version.major == int(s.machine.kernel.split(".")[0])


def test_snapshot_sysctls_kept_unless_scenario_sets_them(tmp_path):
    src = (REPO_ROOT / "configs" / "machines" / "qemu-4G-6.1-mf16384.txt").read_text()
    p = tmp_path / "s.txt"
    p.write_text(src.replace("==> /proc/sys/vm/watermark_scale_factor <==\n10",
                             "==> /proc/sys/vm/watermark_scale_factor <==\n200"))
    m = build_machine(MachineSpec(snapshot=str(p)), SysctlSpec())
    assert (m.watermark_scale_factor, m.min_free_kbytes) == (200, 16384)
    m = build_machine(MachineSpec(snapshot=str(p)), SysctlSpec(watermark_scale_factor=50, min_free_kbytes=30000))
    assert (m.watermark_scale_factor, m.min_free_kbytes) == (50, 30000)
