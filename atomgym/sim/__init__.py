"""The simulator: allocation paths, kswapd, NIC rings and workloads, tick by tick, batched."""
