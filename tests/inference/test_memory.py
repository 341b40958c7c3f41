"""reuse_freed_memory: large tensors come from malloc's heap inside the block (no fresh
mappings), from fresh mappings outside it, and nothing changes off the CPU or when disabled."""

import ctypes

import pytest
import torch

from audioae.inference.memory import _glibc, reuse_freed_memory

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
    before = mmapped_bytes()
    x = torch.ones(size_mb * 2**18)  # float32: size_mb MB
    grown = mmapped_bytes() - before
    del x
    return grown


def test_large_tensors_come_from_the_heap_only_inside_the_block():
    assert mapped_by(64) >= 64 * 2**20  # glibc's default: its own mapping
    with reuse_freed_memory("cpu") as active:
        assert active
        assert mapped_by(64) == 0
        with reuse_freed_memory("cpu"):  # nested: still on, and still on after the inner exit
            assert mapped_by(64) == 0
        assert mapped_by(64) == 0
    assert mapped_by(64) >= 64 * 2**20  # defaults restored


def test_off_for_other_devices_and_when_disabled(monkeypatch):
    with reuse_freed_memory("meta") as active:
        assert not active
        assert mapped_by(64) >= 64 * 2**20
    monkeypatch.setenv("AUDIOAE_REUSE_MEMORY", "0")
    with reuse_freed_memory("cpu") as active:
        assert not active
        assert mapped_by(64) >= 64 * 2**20
