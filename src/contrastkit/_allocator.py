"""Keep glibc's heap warm in processes that train: fewer page faults for the same work.

By default glibc returns a freed block above its mmap threshold (128 KiB, raised as large
blocks are freed) to the OS, and trims the heap top past twice that, so the next allocation of
that size page-faults in fresh memory. A training step allocates and frees the same activation
sizes every step, and it pays for those faults every time the pattern shifts. Measured here
(``docs/federated.md``): with the heap kept warm, a MOON round, which allocates the frozen
models' activations beside the trained one's, went from 1.47x a FedAvg round to 1.28x in
``python benchmarks/federated_cifar10.py --data-root ../shared/data``.

The settings are process-wide, so only code that owns its process calls this: the federated
ClientApp (a simulated party's worker, a SuperNode's app) and the benchmarks. The price is
that freed memory up to the peak stays with the process instead of going back to the OS.
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["keep_heap_warm"]


@functools.cache
def keep_heap_warm() -> bool:
    """Serve allocations up to 32 MiB from a heap glibc never trims; False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False
