"""reuse_freed_memory: inside the block large tensors come from malloc's heap (no fresh
mappings) and freed memory stays resident; at its end it goes back to the kernel. Nothing
changes off the CPU or when disabled."""

import ctypes
import os

import pytest
import torch

from audioae.memory import _glibc, reuse_freed_memory

pytestmark = pytest.mark.skipif(_glibc() is None, reason="needs glibc's malloc")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def mmapped_bytes() -> int:
    """Bytes that malloc currently holds in blocks mapped one by one (glibc >= 2.33)."""
    libc = _glibc()
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2")
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2().hblkhd


def mapped_by(size_mb: int = 64) -> int:
    """Bytes newly mapped by malloc for one tensor of size_mb MB (which is then freed)."""
    before = mmapped_bytes()
    x = torch.ones(size_mb * 2**18)  # float32: size_mb MB, every page touched
    grown = mmapped_bytes() - before
    del x
    return grown


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_large_tensors_come_from_the_heap_and_stay_resident_until_the_block_ends():
    with reuse_freed_memory("cpu") as active:
        assert active
        assert mapped_by(64) == 0  # served from the heap, not a fresh mapping
        with reuse_freed_memory("cpu"):  # nested: still on after the inner block ends
            assert mapped_by(64) == 0
        assert mapped_by(64) == 0
        x = torch.ones(128 * 2**18)
        del x
        kept = resident_mb()  # the freed 128 MB stay mapped for the next tensor
    assert kept - resident_mb() >= 100  # given back to the kernel at the end


def test_off_for_other_devices_and_when_disabled(monkeypatch):
    with reuse_freed_memory("meta") as active:
        assert not active
    monkeypatch.setenv("AUDIOAE_REUSE_MEMORY", "0")
    with reuse_freed_memory("cpu") as active:
        assert not active
