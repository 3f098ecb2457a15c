"""Path-hash shards: which partition a file belongs to, and the Dagster partitions definition.

Dagster is imported only by :func:`shards_partitions`: planning an update (which shard each
file is in) needs none of it.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


def shard_keys(shard_count: int) -> list[str]:
    """Zero-padded hex keys `0..f` for 16 shards, `00..3f` for 64, `00..ff` for 256."""
    width = len(f"{shard_count - 1:x}")
    return [f"{index:0{width}x}" for index in range(shard_count)]


def shard_of(rel_path: str, shard_count: int) -> str:
    """The shard key of a repo-relative posix path; stable across runs, machines and renames:
    the first 4 bytes of the path's SHA-256, big-endian, modulo the shard count. Called for
    every file of the tree on each update (68k times at Django ×10), hence no hex round trip."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    return _keys_of(shard_count)[int.from_bytes(digest[:4], "big") % shard_count]


@functools.cache
def _keys_of(shard_count: int) -> tuple[str, ...]:
    return tuple(shard_keys(shard_count))


def shards_partitions(shard_count: int) -> dg.StaticPartitionsDefinition:
    import dagster as dg

    return dg.StaticPartitionsDefinition(shard_keys(shard_count))
