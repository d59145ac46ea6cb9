"""agents.baselines is atomgym.agents.baselines (and agents.baselines.env its env module)."""
import sys

from atomgym.agents import baselines as _impl
from atomgym.agents.baselines import env as _env

sys.modules[__name__ + ".env"] = _env
sys.modules[__name__] = _impl
