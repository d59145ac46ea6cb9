"""Suite-wide settings: no compile notice on stderr (tests and the commands they start compare
stderr line by line; tests/test_jit_cache.py checks the notice itself), and one thread per torch
and BLAS worker (two test workers share two cores: more threads only spin against each other);
the package's portable code (`make wheel`, kernel/jit.py) is not used, so that a checkout where it
was built compiles and caches as a fresh clone does (tests that exercise it point at their own)."""
import os

os.environ.setdefault("ATOMGYM_COMPILE_NOTICE", "0")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["ATOMGYM_PRECOMPILED_DIR"] = os.path.join(os.path.dirname(__file__), "no-precompiled-code")
