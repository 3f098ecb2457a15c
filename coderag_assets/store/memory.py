"""Handing memory back to the OS between stages."""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa


def release_unused_memory() -> None:
    """Hand back to the OS the memory Arrow's allocator keeps for reuse once a stage has let
    its tables go (hundreds of MB after a large shard), and the free pages the C allocator
    keeps (glibc's `malloc_trim`), so the next stage's NumPy, model or Python allocations do
    not stack on top of them."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc()
