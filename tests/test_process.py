"""Process-wide tuning of `train` and `serve` (lstm_ad/sagemaker/process.py): glibc keeps freed workspace in
the heap for reuse, one malloc arena per serve worker, and the user's own allocator settings win."""

from __future__ import annotations

import ctypes
import mmap
import platform
import resource
import sys

import pytest

from lstm_ad.sagemaker.process import USER_SETTINGS, retain_freed_memory, share_one_malloc_arena

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; other C libraries keep their defaults")
WORKSPACE = [16 << 20, 16 << 20]  # a mini-batch's blocks, each below MMAP_THRESHOLD (32 MB)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def faults_of_fresh_pages(size: int) -> int:
    """Page faults of writing `size` bytes of memory never used before (an anonymous mapping of its own)."""
    with mmap.mmap(-1, size) as fresh:
        before = minor_faults()
        ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(fresh)), 1, size)
        return minor_faults() - before


def faults_of_a_batch(sizes: list[int]) -> int:
    """Page faults of malloc, writing every byte, free (last first): what a mini-batch does with its workspace."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = minor_faults()
    pointers = [libc.malloc(size) for size in sizes]
    assert all(pointers)
    for pointer, size in zip(pointers, sizes, strict=True):
        ctypes.memset(pointer, 1, size)
    for pointer in reversed(pointers):
        libc.free(pointer)
    return minor_faults() - before


@needs_glibc
def test_freed_workspace_is_reused_without_page_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert retain_freed_memory() is True
    faults_of_a_batch(WORKSPACE)  # the heap grows once
    fresh = faults_of_fresh_pages(sum(WORKSPACE))
    assert fresh > 0
    # With glibc's defaults the freed blocks go back to the kernel (the heap's top is trimmed), and each of these
    # five batches faults its workspace in again: about 5 x `fresh`. Kept in the heap, they cost next to nothing.
    reused = sum(faults_of_a_batch(WORKSPACE) for _ in range(5))
    assert reused <= fresh / 4


@needs_glibc
def test_a_serve_worker_gets_one_malloc_arena() -> None:
    assert share_one_malloc_arena() is True


def test_users_own_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert retain_freed_memory() is False
