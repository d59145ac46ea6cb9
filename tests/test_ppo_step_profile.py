"""scripts/ppo_step_profile.py, the command docs/simulator.md cites for where SB3 PPO's frames go
on AtomEnv: it trains PPO on CartPole, on a no-work env with AtomEnv's spaces and on AtomEnv,
prints each one's frames per second, the ratio, and the compiled step's time inside PPO and in a
tight loop."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ppo_step_profile.py"


def test_it_prints_the_three_rates_the_ratio_and_the_step_times():
    r = subprocess.run([sys.executable, str(SCRIPT), "--frames", "512", "--rounds", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for name in ("CartPole-v1", "no-work env, AtomEnv's spaces", "atomgym/IncastPagecache-v1"):
        assert re.search(rf"^{re.escape(name)} +\d+ frames/s +\d+ us a frame$", out, re.M), out
    assert re.search(r"^PPO on atomgym/IncastPagecache-v1 / CartPole: \d\.\d{3}x$", out, re.M), out
    m = re.search(r"compiled step \(Core.step_fused\): ([\d.]+) us inside PPO, ([\d.]+) us in a tight loop; "
                  r"the whole env step ([\d.]+) / ([\d.]+) us", out)
    assert m, out
    fused_ppo, fused_loop, step_ppo, step_loop = map(float, m.groups())
    assert 0 < fused_ppo <= step_ppo and 0 < fused_loop <= step_loop   # the env step contains the compiled one


def test_bad_arguments_are_one_usage_error_exit_2():
    for args, what in ((["--rounds", "0"], "--rounds"), (["--frames", "x"], "--frames"),
                       (["--env", "atomgym/Nope-v1"], "not a registered atomgym env")):
        r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and what in r.stderr.splitlines()[-1] and r.stdout == "", (args, r.stderr)
