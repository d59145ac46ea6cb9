"""`python -m agents.replay`: runs atomgym.agents.replay (its docstring is the manual); imported,
this module is atomgym.agents.replay itself."""
import sys

from atomgym.agents import replay as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
