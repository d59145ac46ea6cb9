"""agents.oracle is atomgym.agents.oracle (the same module object)."""
import sys

from atomgym.agents import oracle as _impl

sys.modules[__name__] = _impl
