"""Keep freed memory for reuse while a chunked encode or decode runs on the CPU (glibc malloc).

glibc serves every block above its mmap threshold (32 MB at most) with fresh pages from the
kernel and gives them back on free, so each large tensor is page-faulted in anew, a page at a
time, zero-filled by the kernel. One chunk through the SA 2.0 VAE allocates about a hundred
activations of 134 MB (128 channels x 262,144 samples); on the 2-vCPU VM of docs/benchmarks.md
those faults took 40% of the time. Inside `reuse_freed_memory()`, malloc serves large blocks from
its heap and keeps what is freed (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD large), so the next
chunk reuses pages that are already mapped: about 1.6x faster, for a higher peak of resident
memory while it runs (measured in docs/benchmarks.md). On leaving, the memory goes back to the
kernel (malloc_trim) and glibc's defaults are restored. The setting is process-wide: other
threads' allocations during the block are served the same way.

Does nothing for other devices, off glibc, or with the environment variable
AUDIOAE_REUSE_MEMORY=0.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import torch

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc malloc.h
_DEFAULT_TRIM, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB free at the heap's top

_lock = threading.Lock()
_depth = 0  # nested or concurrent users: settings change on the first entry, back on the last


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
        libc.mallopt, libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_freed_memory(device: torch.device | str = "cpu") -> Iterator[bool]:
    """Within the block, freed memory stays mapped for reuse (see the module docstring).
    Yields whether the setting is in effect."""
    libc = _glibc()
    if (
        torch.device(device).type != "cpu"
        or libc is None
        or os.environ.get("AUDIOAE_REUSE_MEMORY", "1") == "0"
    ):
        yield False
        return
    global _depth
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                libc.malloc_trim(0)
