"""Suite-wide settings: no compile notice on stderr (tests and the commands they start compare
stderr line by line; tests/test_jit_cache.py checks the notice itself)."""
import os

os.environ.setdefault("ATOMGYM_COMPILE_NOTICE", "0")
