"""The same experiment on a real Linux kernel (docs/realkernel.md).

- `host`: what the host needs (packages, a Debian 6.1 kernel with its headers), the cache
  directory, and the builds kept there (the module, the static guest helper, the initramfs).
- `plan`: a scenario's memory workloads compiled into the guest's plan (refuses what a guest
  cannot run: NICs, traffic, churn).
- `capture`: the serial log parsed into a time series and snapshots.
- `run`: boot QEMU (TCG, no network), run the plan, write the capture directory atomically.
- `fidelity`: the captured run beside the simulator's run of the same scenario.

Nothing here reads or writes the host's sysctls: every sysctl write happens inside the guest.
"""
