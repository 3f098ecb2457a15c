"""Settings helpers: the shard-count suggestion `coderag index` prints for large indexes."""

from __future__ import annotations

from coderag_assets.settings import CHUNKS_PER_SHARD_ADVISED, shard_count_advice


def test_small_indexes_get_no_advice() -> None:
    assert shard_count_advice(40_000, 16) is None
    assert shard_count_advice(16 * CHUNKS_PER_SHARD_ADVISED, 16) is None
    assert shard_count_advice(999_000, 64) is None  # 15.6k a shard: measured fine at 1M


def test_large_indexes_are_advised_the_smallest_count_that_fits() -> None:
    advice = shard_count_advice(399_600, 16)
    assert advice is not None
    assert "399,600 chunks in 16 shards" in advice and "CODERAG_SHARDS=64" in advice
    assert "CODERAG_SHARDS=256" in (shard_count_advice(2_000_000, 16) or "")


def test_the_largest_shard_count_gets_no_advice() -> None:
    assert shard_count_advice(50_000_000, 256) is None
    assert "CODERAG_SHARDS=256" in (shard_count_advice(50_000_000, 64) or "")
