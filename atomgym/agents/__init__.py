"""atomgym agents: baselines (agents.baselines), evaluation (agents.evaluate), training (agents.train)."""
