"""`python -m agents.report`: runs atomgym.agents.report (its docstring is the manual); imported,
this module is atomgym.agents.report itself."""
import sys

from atomgym.agents import report as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
