"""`python -m agents.fullreport`: runs atomgym.agents.fullreport (its docstring is the manual); imported,
this module is atomgym.agents.fullreport itself."""
import sys

from atomgym.agents import fullreport as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
