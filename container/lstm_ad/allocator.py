"""glibc malloc settings for the `train` and `serve` processes.

Every mini-batch and every scoring chunk allocates and frees the same few megabytes of
LSTM workspace. glibc serves blocks that large with mmap and gives them back to the
kernel when they are freed, so each batch page-faults its workspace in again: 740,000
minor page faults per 10 epochs of the ECG example configuration (8,500 with these
settings), and in a virtual machine every fault is expensive. Raising the mmap and trim
thresholds keeps freed blocks in the heap for reuse; on our 2-core VM that alone made a
plain training loop 1.6-2x faster. The price: a process keeps its high-water mark of
memory instead of shrinking between batches (the peak itself does not change).

The entrypoints call `retain_freed_memory()` first thing, as they configure logging.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 1 << 30
# glibc's own environment variables for the same settings: when the user set one, theirs wins
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def retain_freed_memory() -> bool:
    """Apply the settings when the C library is glibc; returns whether they were applied."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not applied:
        logger.debug("mallopt refused the settings; keeping the C library's defaults")
    return applied
