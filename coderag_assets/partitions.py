"""Path-hash shards: which partition a file belongs to, and the Dagster partitions definition."""

from __future__ import annotations

import hashlib

import dagster as dg


def shard_keys(shard_count: int) -> list[str]:
    """Zero-padded hex keys `0..f` for 16 shards, `00..3f` for 64, `00..ff` for 256."""
    width = len(f"{shard_count - 1:x}")
    return [f"{index:0{width}x}" for index in range(shard_count)]


def shard_of(rel_path: str, shard_count: int) -> str:
    """The shard key of a repo-relative posix path; stable across runs, machines and renames."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).hexdigest()
    width = len(f"{shard_count - 1:x}")
    return f"{int(digest[:8], 16) % shard_count:0{width}x}"


def shards_partitions(shard_count: int) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(shard_keys(shard_count))
