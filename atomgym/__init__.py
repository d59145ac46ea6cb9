"""atomgym: a Gymnasium environment for Linux watermark tuning under GFP_ATOMIC pressure.

Importing atomgym registers the ``atomgym/...-v0`` environments (atomgym.envs.registration) as
soon as gymnasium is loaded: at once if gymnasium is already imported (as in
``gym.make("atomgym:atomgym/...")``), otherwise right after ``import gymnasium`` (a one-shot
import hook). So atomgym.kernel / atomgym.sim never pull in gymnasium (docs/design.md).
"""
import sys as _sys

__version__ = "0.1.0"


def _register() -> None:
    from .envs.registration import register_envs
    register_envs()


def _register_when_gymnasium_loads() -> None:
    if "gymnasium" in _sys.modules:
        _register()
        return
    import importlib.abc
    import importlib.machinery

    class _GymnasiumHook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "gymnasium":
                return None
            if self in _sys.meta_path:
                _sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                _register()

            spec.loader.exec_module = exec_and_register
            return spec

    _sys.meta_path.insert(0, _GymnasiumHook())


_register_when_gymnasium_loads()
