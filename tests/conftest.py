"""Suite-wide settings: no compile notice on stderr (tests and the commands they start compare
stderr line by line; tests/test_jit_cache.py checks the notice itself), and one thread per torch
and BLAS worker (two test workers share two cores: more threads only spin against each other)."""
import os

os.environ.setdefault("ATOMGYM_COMPILE_NOTICE", "0")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
