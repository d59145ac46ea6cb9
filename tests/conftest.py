"""Suite-wide settings: no compile notice on stderr (tests and the commands they start compare
stderr line by line; tests/test_jit_cache.py checks the notice itself), and one thread per torch
and BLAS worker (two test workers share two cores: more threads only spin against each other);
the package's portable code (`make wheel`, kernel/jit.py) is not used, so that a checkout where it
was built compiles and caches as a fresh clone does (tests that exercise it point at their own)."""
import os

import pytest

os.environ.setdefault("ATOMGYM_COMPILE_NOTICE", "0")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["ATOMGYM_PRECOMPILED_DIR"] = os.path.join(os.path.dirname(__file__), "no-precompiled-code")

# The slow tier's longest files first, in an order that splits them evenly over xdist's two workers
# (--dist loadfile hands each worker two files to start with, in collection order): the README's
# training example (~82 s) and the wheel on one worker, the QEMU smoke test (~42 s) and the two
# multiseed runs (~62 s) on the other; measured on the idle 2-core machine, 2026-12-06.
SLOW_FIRST = ("tests/test_readme.py", "tests/test_realkernel_smoke.py", "tests/test_packaging.py",
              "tests/test_multiseed.py")


@pytest.hookimpl(trylast=True)                 # after -m has deselected the other tests
def pytest_collection_modifyitems(config, items):
    if items and all(it.get_closest_marker("slow") for it in items):
        def rank(item):
            f = item.nodeid.split("::")[0]
            return SLOW_FIRST.index(f) if f in SLOW_FIRST else len(SLOW_FIRST)
        items.sort(key=rank)        # stable: the other files keep their order
