"""Process-wide tuning of `train` and `serve`: glibc's allocator and torch's thread counts.

Set here and only here, by the entrypoints (cli.py) and gunicorn's worker hooks (server.py).

Allocator. Every mini-batch and every scoring chunk allocates and frees the same few
megabytes of LSTM workspace. glibc serves blocks that large with mmap and gives them back
to the kernel when they are freed, so each batch page-faults its workspace in again (740,000
minor page faults per 10 epochs of the ECG example configuration, 8,500 with the thresholds
below), and in a virtual machine every fault is expensive. Raising the mmap and trim
thresholds keeps freed blocks in the heap for reuse; the price is that a process keeps its
high-water mark of memory. scripts/bench_allocator.py measures the effect on the torch at hand.
In `serve`, glibc would also give each request thread its own arena, where memory freed after
a large request stays; one shared arena keeps a worker at one request's worth.

Threads. OpenMP's thread count is per calling thread: a gthread request thread would
otherwise start a team as large as the machine.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 1 << 30
# glibc's own environment variables for the same settings: when the user set one, theirs wins
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, or None on another C library (e.g. macOS when developing)."""
    if not sys.platform.startswith("linux"):
        return None
    function: Any = getattr(ctypes.CDLL(None), "mallopt", None)
    if function is None:
        return None
    function.argtypes, function.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return function


def retain_freed_memory() -> bool:
    """Keep freed workspace in the heap (see above); returns whether the settings were applied."""
    mallopt = _mallopt()
    if mallopt is None or any(name in os.environ for name in USER_SETTINGS):
        return False
    applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not applied:
        logger.debug("mallopt refused the settings; keeping the C library's defaults")
    return applied


def share_one_malloc_arena() -> bool:
    """One arena for all threads of a serve worker (see above); returns whether it was applied."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(M_ARENA_MAX, 1) == 1


def configure_serve_worker(torch_threads: int) -> None:
    """A new serve worker, right after the fork: its torch thread count and one malloc arena."""
    import torch

    torch.set_num_threads(torch_threads)
    share_one_malloc_arena()


def torch_threads_per_calling_thread(threads: int) -> Callable[[], None]:
    """A hook to run at the start of every request: sets torch's thread count once per request thread."""
    import torch  # not at module level: `train` installs its signal handler before torch loads

    state = threading.local()

    def set_threads() -> None:
        if not getattr(state, "done", False):
            torch.set_num_threads(threads)
            state.done = True

    return set_threads
