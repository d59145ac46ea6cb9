"""agents.stats is atomgym.agents.stats (the same module object)."""
import sys

from atomgym.agents import stats as _impl

sys.modules[__name__] = _impl
