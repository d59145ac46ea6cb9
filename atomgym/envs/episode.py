"""Episode length in agent steps: the one definition that registration (max_episode_steps) and
the envs share, kept free of the simulator so that registering the ids loads no compiled code."""
from __future__ import annotations

import math

DEFAULT_DECISION_INTERVAL_MS = 100.0   # justified in AtomEnv's docstring


def episode_steps(s, decision_interval_ms: float) -> int:  # s: Scenario
    """Agent steps in an episode of scenario ``s``: ceil(duration / interval), at least one."""
    return max(1, int(math.ceil(s.duration_s * 1000.0 / decision_interval_ms - 1e-9)))
