"""atomgym's agents: baselines (atomgym.agents.baselines), training (atomgym.agents.train),
evaluation (atomgym.agents.evaluate), reports, replay, oracles and the shipped policies
(atomgym.agents.pretrained). Installed: ``atomgym train|evaluate|report|replay|...``; in a
checkout also ``python -m agents.NAME`` (the repo's agents/ is a thin entry point over this)."""
