"""`python -m agents.publish`: runs atomgym.agents.publish (its docstring is the manual); imported,
this module is atomgym.agents.publish itself."""
import sys

from atomgym.agents import publish as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
