"""`python -m agents.results`: runs atomgym.agents.results (its docstring is the manual); imported,
this module is atomgym.agents.results itself."""
import sys

from atomgym.agents import results as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
