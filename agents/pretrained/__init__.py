"""agents.pretrained is atomgym.agents.pretrained: the shipped policies are package data there
(atomgym/agents/pretrained/NAME.zip, ...)."""
import sys

from atomgym.agents import pretrained as _impl

sys.modules[__name__] = _impl
