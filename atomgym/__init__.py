"""atomgym: a Gymnasium environment for Linux watermark tuning under GFP_ATOMIC pressure.

Importing atomgym registers the ``atomgym/...-v0`` environments (see atomgym.envs.registration).
"""
__version__ = "0.1.0"


def _register() -> None:
    try:
        import gymnasium  # noqa: F401
    except ImportError:   # the kernel model and simulator work without gymnasium
        return
    from .envs import register_envs
    register_envs()


_register()
