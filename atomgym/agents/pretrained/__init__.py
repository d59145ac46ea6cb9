"""Shipped trained policies: ``NAME.zip`` (the model), ``NAME.yml`` (its resolved training
config) and, when trained with ``vec_normalize``, ``NAME.vecnormalize.pkl`` (its frozen
normalisation statistics). ``python -m agents.pretrained export RUN_DIR NAME`` copies a finished
run of agents.train here; ``python -m agents.evaluate --policies NAME.zip,...`` (installed:
``atomgym evaluate --policies NAME.zip,...``) plays one (README.md in this folder)."""
