"""Handing memory back to the OS between stages, and a byte-bounded cache of Arrow arrays."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections import OrderedDict
from collections.abc import Hashable

import pyarrow as pa


def release_unused_memory() -> None:
    """Hand back to the OS the memory Arrow's allocator keeps for reuse once a stage has let
    its tables go (hundreds of MB after a large shard), and the free pages the C allocator
    keeps (glibc's `malloc_trim`), so the next stage's NumPy, model or Python allocations do
    not stack on top of them."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


class ArrayCache:
    """Arrow arrays by key, bounded by their total size: the least recently used go once the
    cache holds more than `budget_bytes` (the newest always stays). Callers serialize access."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.bytes = 0
        self._arrays: OrderedDict[Hashable, pa.Array | pa.ChunkedArray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._arrays)

    def get(self, key: Hashable) -> pa.Array | pa.ChunkedArray | None:
        array = self._arrays.get(key)
        if array is not None:
            self._arrays.move_to_end(key)
        return array

    def put(self, key: Hashable, array: pa.Array | pa.ChunkedArray) -> None:
        if key in self._arrays:
            return
        self._arrays[key] = array
        self.bytes += array.nbytes
        while self.bytes > self.budget_bytes and len(self._arrays) > 1:
            _, dropped = self._arrays.popitem(last=False)
            self.bytes -= dropped.nbytes


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc()
