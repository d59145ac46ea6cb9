"""The checkout's entry points: ``python -m agents.train``, ``agents.evaluate``, ``agents.report``, ...

The code is the package ``atomgym.agents`` (installed with the wheel: ``python -m atomgym train``,
``atomgym evaluate``, ...). Each module here is that module under its old name
(``from agents import evaluate`` is ``atomgym.agents.evaluate``), run as ``python -m agents.NAME``
it calls the package module's ``main``.
"""
