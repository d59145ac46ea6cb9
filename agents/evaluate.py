"""`python -m agents.evaluate`: runs atomgym.agents.evaluate (its docstring is the manual); imported,
this module is atomgym.agents.evaluate itself."""
import sys

from atomgym.agents import evaluate as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
