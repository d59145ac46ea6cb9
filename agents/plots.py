"""agents.plots is atomgym.agents.plots (the same module object)."""
import sys

from atomgym.agents import plots as _impl

sys.modules[__name__] = _impl
