"""`python -m agents.multiseed`: runs atomgym.agents.multiseed (its docstring is the manual); imported,
this module is atomgym.agents.multiseed itself."""
import sys

from atomgym.agents import multiseed as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
