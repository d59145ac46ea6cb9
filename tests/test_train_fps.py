"""scripts/train_fps.py, the command docs/simulator.md cites for SB3's training speed with a
training config: it trains, prints its frames per second and, with --profile, where the time goes
(the shadow's part named by the function that runs it now, Core._diverge)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_fps.py"

CONFIG = """scenario: stream-read-bursts
algo: ppo
seed: 0
n_envs: 2
total_timesteps: 1000
checkpoint_every: 1000
env:
  observation: memory
  action_type: relative
  decision_interval_ms: 100
  reward_baseline: score
  gate: drops
ppo: {n_steps: 32, batch_size: 64}
"""


def test_train_fps_prints_the_rate_and_the_profile(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    r = subprocess.run([sys.executable, str(SCRIPT), "--config", str(cfg), "--steps", "128", "--profile"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert any(ln.startswith("tiny.yaml: ") and "frames/s (128 agent steps" in ln for ln in lines), r.stdout
    assert any("the reward shadow (from a machine's first knob write)" in ln for ln in lines), r.stdout
    assert any("the agent's machines (compiled env step)" in ln for ln in lines), r.stdout


def test_train_fps_bad_config_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("algo: nope\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "--config", str(cfg)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
