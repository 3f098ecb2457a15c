"""Path-hash shards: the assignment is part of every index on disk, so it must never move."""

from __future__ import annotations

import hashlib

import pytest

from coderag_assets.partitions import shard_keys, shard_of


def reference_shard(rel_path: str, shard_count: int) -> str:
    """The assignment as first written (hex digest, first 8 hex digits, modulo the count)."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).hexdigest()
    width = len(f"{shard_count - 1:x}")
    return f"{int(digest[:8], 16) % shard_count:0{width}x}"


def test_pinned_assignments_of_existing_indexes() -> None:
    assert [shard_of("pyutils/retry.py", n) for n in (16, 64, 256)] == ["6", "06", "86"]
    assert [shard_of("src/requests/sessions.py", n) for n in (16, 64, 256)] == ["e", "3e", "3e"]
    assert shard_of("pyutils/retry.py", 16) == reference_shard("pyutils/retry.py", 16)
    assert [shard_of("src/requests/sessions.py", n) for n in (1, 16, 64, 256)] == [
        reference_shard("src/requests/sessions.py", n) for n in (1, 16, 64, 256)
    ]


@pytest.mark.parametrize("shard_count", [1, 2, 16, 64, 256])
def test_every_path_keeps_the_shard_it_always_had(shard_count: int) -> None:
    paths = [f"copy_{i % 7:02d}/pkg_{i % 13}/módulo_{i}.py" for i in range(2_000)] + ["", "a"]
    keys = set(shard_keys(shard_count))
    for path in paths:
        shard = shard_of(path, shard_count)
        assert shard == reference_shard(path, shard_count)
        assert shard in keys
