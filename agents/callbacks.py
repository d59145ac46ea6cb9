"""agents.callbacks is atomgym.agents.callbacks (the same module object)."""
import sys

from atomgym.agents import callbacks as _impl

sys.modules[__name__] = _impl
