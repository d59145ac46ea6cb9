"""`atomgym realkernel setup|run` and `atomgym fidelity` (registered by atomgym/cli.py)."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TextIO

from .. import interrupts
from ..schema import ATOMGYM_COMMANDS, add_arguments
from .errors import Interrupted, RealKernelError

EXIT_BAD_INPUT = 2
BOOT_CHECK = """\
duration_s: 1
machine: {ram_mib: 512, cpus: 1, thp: never}
nics: []
workloads:
  - {kind: atomic_alloc, gfp: atomic, pages_per_burst: 8, interval_ms: 100, hold_ms: 10}
"""


def _wrap(fn):
    def handler(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        try:
            with interrupts.interruptible():     # SIGTERM/SIGHUP: as Ctrl-C (QEMU and builds stopped)
                return fn(args, out, err)
        except Interrupted as e:
            print(f"atomgym: error: {e}", file=err)
            return e.code
        except RealKernelError as e:
            print(f"atomgym: error: {e}", file=err)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt as e:           # outside a run (setup's builds): nothing left half-built
            print(f"atomgym: error: interrupted ({interrupts.signal_name(e)})", file=err)
            return interrupts.exit_code(e)
    return handler


def cmd_setup(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import host, run
    b = host.setup(args.cache_dir, install=not args.no_install, log=lambda m: print(m, file=err))
    if args.no_boot:
        return 0
    with tempfile.TemporaryDirectory(prefix="atomgym-boot-") as tmp:
        scen = Path(tmp, "boot-check.yaml")
        scen.write_text(BOOT_CHECK)
        t0 = time.monotonic()
        meta = run.run(str(scen), str(Path(tmp, "capture")), cache=args.cache_dir, stall_s=60, timeout_s=180,
                       log=lambda m: print(m, file=err))
        wall = time.monotonic() - t0
    a = meta["atomic"]
    print(f"boot check: kernel {meta['kernel']}, module loaded (atomic pages requested {a.get('req')}, "
          f"failed {a.get('fail')}), guest ready at {meta['boot_guest_s']:.1f} s uptime, "
          f"{wall:.1f} s host wall for boot + 1 s run + power-off; build in {b.dir}", file=out)
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import run
    run.check_seconds(sample_s=args.sample, stall_s=args.stall, timeout_s=args.timeout)
    run.run(args.scenario, args.out, force=args.force, cache=args.cache_dir, sample_s=args.sample,
            stall_s=args.stall, timeout_s=args.timeout, log=lambda m: print(m, file=err), trace=args.trace)
    return 0


def cmd_fidelity(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import corpus   # one capture or a corpus: corpus.main measures each with fidelity.measure
    return corpus.main(args, out, err)


def cmd_fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import calibrate
    return calibrate.main(args, out, err)


def build_fit_parser(parser_class) -> argparse.ArgumentParser:
    """`atomgym fidelity fit CORPUS`: parsed on its own (cli.main hands `fidelity fit ...` over), as
    `fidelity`'s positional DIR... would take `fit` for a folder; a capture folder named fit is
    `./fit`."""
    p = parser_class(prog="atomgym fidelity fit",
                     description="fit the simulator's free parameters (the scenario's kswapd: section) on a "
                                 "corpus's calibration half and validate them on its held-out half")
    add_arguments(p, ATOMGYM_COMMANDS["fidelity fit"])
    p.set_defaults(handler=_wrap(cmd_fit))
    return p


def add_subcommands(sub, parser_class) -> None:
    """Register `realkernel` (setup, run) and `fidelity` on atomgym's subparsers; their options are
    their fields in atomgym/schema.py (ATOMGYM_COMMANDS)."""
    rk = sub.add_parser("realkernel", help="run a scenario's memory workloads on a real kernel under QEMU")
    rsub = rk.add_subparsers(dest="rk_command", required=True, parser_class=parser_class)
    s = rsub.add_parser("setup", help="install qemu/kernel/headers/busybox/gcc (root) and build the guest")
    add_arguments(s, ATOMGYM_COMMANDS["realkernel setup"])
    s.set_defaults(handler=_wrap(cmd_setup))
    r = rsub.add_parser("run", help="boot, run SCENARIO, write the capture to --out DIR")
    add_arguments(r, ATOMGYM_COMMANDS["realkernel run"])
    r.set_defaults(handler=_wrap(cmd_run))
    f = sub.add_parser("fidelity", help="real-kernel captures beside the simulator's runs of the same scenarios")
    add_arguments(f, ATOMGYM_COMMANDS["fidelity"])
    f.set_defaults(handler=_wrap(cmd_fidelity))
    f.epilog = "`atomgym fidelity fit CORPUS ...` calibrates the simulator (`atomgym fidelity fit --help`)"
