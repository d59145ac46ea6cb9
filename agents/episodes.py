"""agents.episodes is atomgym.agents.episodes (the same module object)."""
import sys

from atomgym.agents import episodes as _impl

sys.modules[__name__] = _impl
