"""The wheel works on its own, and the package's import-time housekeeping touches only its own files."""
from __future__ import annotations

import csv
import shutil
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from atomgym.warmup import portable


REPO = Path(__file__).resolve().parents[1]


def test_wheel_package_list_matches_the_tree():
    """pyproject.toml lists packages by hand (configs/ is mapped to atomgym.configs): a new
    subpackage or configs folder that is not listed would be missing from the wheel."""
    from setuptools import find_packages

    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    code = set(find_packages(where=str(REPO), include=["atomgym", "atomgym.*"]))
    data = {"atomgym.configs"} | {f"atomgym.configs.{p.name}" for p in (REPO / "configs").iterdir() if p.is_dir()}
    data |= {"atomgym.realkernel.guest"}       # the guest's C sources and init script: data, no __init__.py
    data |= {"atomgym.kernel.precompiled"}     # `make wheel`'s portable code: data, no __init__.py
    assert listed == code | data
    assert tool["package-data"]["atomgym.realkernel.guest"] == ["*"]
    assert tool["package-dir"] == {"atomgym.configs": "configs"}
    assert not any(p == "agents" or p.startswith("agents.") for p in listed)


@pytest.mark.slow
def test_wheel_installed_alone_runs_outside_the_checkout(tmp_path):
    """Build the wheel, install it (no dependencies: those come from this environment) into a new
    environment that cannot see the checkout, and use it from another folder."""
    # the sources as `make wheel` leaves them: portable code in atomgym/kernel/precompiled (here of one
    # small function, compiled by the generic-CPU child of `warmup --portable`; `make wheel` compiles all)
    src = tmp_path / "src"
    for d in ("atomgym", "configs"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "numba*-py*", ".portable-*"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / f, src / f)
    rng_code = ("import numpy as np; from atomgym.sim import rng; from atomgym.kernel.jit import _Cache; "
                "s = np.ones(4, np.uint64); rng.uniform(s); print(_Cache.precompiled_loads)")
    assert portable(src / "atomgym" / "kernel" / "precompiled", err=open(os.devnull, "w"), child=("-c", rng_code)) == 0
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=300, cwd=src)
    (whl,) = wheels.glob("atomgym-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("atomgym/kernel/precompiled/numba") and "/sim.rng/" in n and n.endswith(".nbc")
               for n in names), [n for n in names if "precompiled" in n]
    assert "atomgym/configs/scenarios/incast-pagecache.yaml" in names
    assert "atomgym/configs/train/default.yaml" in names
    assert "atomgym/realkernel/guest/atomgym_atomic.c" in names and "atomgym/realkernel/guest/Kbuild" in names
    assert "atomgym/agents/train.py" in names and "atomgym/agents/pretrained/README.md" in names
    assert not any(n.startswith("agents/") for n in names)
    # the shipped policy: statistics as plain arrays, the digests beside it, no pickle
    assert {"atomgym/agents/pretrained/SHA256SUMS", "atomgym/agents/pretrained/benchmark-ppo.vecnormalize.npz"} <= set(names)
    assert not any(n.endswith(".pkl") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # this environment's dependencies, as a plain path: its .pth files (our editable install) do not run
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(whl)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ATOMGYM_PRECOMPILED_DIR")}
    code = (
        "import atomgym, importlib.util, gymnasium as gym\n"
        "from atomgym.sim.scenario import list_scenarios\n"
        "assert 'site-packages' in atomgym.__file__ or 'venv' in atomgym.__file__, atomgym.__file__\n"
        "assert importlib.util.find_spec('agents') is None\n"
        "from atomgym.agents import train\n"
        "assert train.load_config(train.DEFAULT_CONFIG)['algo'], train.DEFAULT_CONFIG\n"
        "names = list_scenarios(); assert 'incast-pagecache' in names and 'virtio-deferral' in names, names\n"
        "e = gym.make('atomgym/VirtioDeferral-v1', duration_s=0.5)\n"
        "o, _ = e.reset(seed=1)\n"
        "for _ in range(5): o, r, term, trunc, info = e.step(0)\n"
        "from atomgym.agents import models\n"
        "from atomgym.paths import PRETRAINED_DIR\n"
        "assert models.load_model(PRETRAINED_DIR / 'benchmark-ppo.zip').vecnorm is not None  # digests checked\n"
        "print('ok', o.shape, trunc)\n"
    )
    # the first use compiles the engine cold in the new environment (minutes on a loaded machine)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=work, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok (28,) True"
    # a fresh user (empty compile cache) loads the wheel's portable code instead of compiling
    out = subprocess.run([str(venv / "bin" / "python"), "-c", rng_code], cwd=work, capture_output=True, text=True,
                         env={**env, "ATOMGYM_CACHE_DIR": str(tmp_path / "fresh-user")}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "1", out.stderr[-2000:]
    shipped = site / "atomgym" / "configs" / "machines" / "qemu-4G-6.1-mf16384.txt"
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "atomgym", "check", str(shipped)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "result:" in out.stdout, out.stderr[-2000:]
    # a short evaluation, as `python -m agents.evaluate` in a checkout: two baselines, one seed
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "atomgym", "evaluate", "--policies", "kernel-default,psi",
                          "--scenarios", "quiet", "--seeds", "1", "--seed-base", "5", "--duration-s", "2", "--no-oracle", "--no-summary",
                          "--out", "ev"], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(work / "ev" / "episodes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["policy"], r["scenario"], r["seed"]) for r in rows] == [("kernel-default", "quiet", "5"), ("psi", "quiet", "5")]
    assert float(rows[0]["score"]) == 1.0 and float(rows[1]["cost"]) >= 0.0, rows
    assert not (work / "runs").exists()                 # no best-static cache: nothing beyond --out


def test_checkout_entry_points_are_the_package_modules(tmp_path, capsys):
    """agents.NAME (the checkout's entry point) is atomgym.agents.NAME itself, and `atomgym NAME`
    runs that module's command line."""
    import agents.baselines
    import agents.evaluate
    import atomgym.agents.baselines.env
    import atomgym.agents.evaluate
    from agents.baselines.env import EnvPolicy
    from atomgym import cli

    assert agents.evaluate is atomgym.agents.evaluate and agents.baselines is atomgym.agents.baselines
    assert EnvPolicy is atomgym.agents.baselines.env.EnvPolicy
    rc = cli.main(["evaluate", "--policies", "no-such-policy", "--scenarios", "quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    # named as the user typed it: a wheel has no `agents` package to name
    assert rc == 2 and err.startswith("atomgym evaluate: error:") and "no-such-policy" in err, err
