"""`python -m agents.train`: runs atomgym.agents.train (its docstring is the manual); imported,
this module is atomgym.agents.train itself."""
import sys

from atomgym.agents import train as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
