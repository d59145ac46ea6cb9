"""atomgym: a Gymnasium environment for Linux watermark tuning under GFP_ATOMIC pressure.

Importing atomgym registers the ``atomgym/...-v1`` environments, as Gymnasium documents for
third-party packages (``gym.make("atomgym:atomgym/IncastPagecache-v1")`` imports it first). The
registration names entry points as strings and loads no simulator code; the kernel model and the
simulator (atomgym.kernel, atomgym.sim) contain no gymnasium import (docs/design.md).
"""
__version__ = "0.1.0"

from .envs.registration import register_envs as _register_envs  # noqa: E402

_register_envs()
