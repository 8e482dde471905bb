"""Keep glibc's heap warm in processes that train: fewer page faults for the same work.

By default glibc returns a freed block above its mmap threshold (128 KiB, raised as large
blocks are freed) to the OS, and trims the heap top past twice that, so the next allocation of
that size page-faults in fresh memory. A training step allocates and frees the same activation
sizes every step, and it pays for those faults every time the pattern shifts. Measured here
(``docs/federated.md``): with the heap kept warm, a MOON round, which allocates the frozen
models' activations beside the trained one's, went from 1.47x a FedAvg round to 1.28x in
``python benchmarks/federated_cifar10.py --data-root ../shared/data``.

The settings are process-wide and the price is that freed memory up to the peak stays with the
process instead of going back to the OS, so they are opt-in: the federated ClientApp (a
simulated party's worker, a SuperNode's app) applies them only when the environment sets
``CONTRASTKIT_KEEP_HEAP_WARM=1``; the benchmarks that time steps ask for them with
``force=True``.
"""

from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["ENV", "keep_heap_warm"]

ENV = "CONTRASTKIT_KEEP_HEAP_WARM"


def keep_heap_warm(force: bool = False) -> bool:
    """Serve allocations up to 32 MiB from a heap glibc never trims, when ``$CONTRASTKIT_KEEP_HEAP_WARM``
    is ``1`` or ``force``; True when the setting is in effect (False without glibc)."""
    if not (force or os.environ.get(ENV, "") == "1"):
        return False
    return _apply()


@functools.cache
def _apply() -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False
