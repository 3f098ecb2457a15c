"""Settings helpers: the shard count of an index (set, recorded, or sized from the tree for
a new index) and the suggestion `coderag index` prints when an index outgrows its count."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderag_assets.scope import AVERAGE_CHUNK_BYTES, estimate_chunks
from coderag_assets.settings import (
    CHUNKS_PER_SHARD_ADVISED,
    CHUNKS_PER_SMALL_SHARD,
    SHARDS_RECORDED,
    SHARDS_SET,
    SHARDS_SIZED,
    SHARDS_UNSIZED,
    Settings,
    load_settings,
    shard_count_advice,
    shard_count_for,
)
from coderag_assets.store import IndexStore


def test_small_indexes_get_no_advice() -> None:
    assert shard_count_advice(40_000, 16) is None
    assert shard_count_advice(16 * CHUNKS_PER_SHARD_ADVISED, 16) is None
    assert shard_count_advice(999_000, 64) is None  # 15.6k a shard: measured fine at 1M


def test_a_small_index_that_grew_is_advised_more_shards() -> None:
    assert shard_count_advice(CHUNKS_PER_SMALL_SHARD, 1) is None
    assert "CODERAG_SHARDS=4" in (shard_count_advice(CHUNKS_PER_SMALL_SHARD + 1, 1) or "")
    assert "CODERAG_SHARDS=16" in (shard_count_advice(40_000, 4) or "")


def test_large_indexes_are_advised_the_smallest_count_that_fits() -> None:
    advice = shard_count_advice(399_600, 16)
    assert advice is not None
    assert "399,600 chunks in 16 shards" in advice and "CODERAG_SHARDS=64" in advice
    assert "CODERAG_SHARDS=256" in (shard_count_advice(2_000_000, 16) or "")


def test_the_largest_shard_count_gets_no_advice() -> None:
    assert shard_count_advice(50_000_000, 256) is None
    assert "CODERAG_SHARDS=256" in (shard_count_advice(50_000_000, 64) or "")


# ------------------------------------------------------------------ the shard count of an index


def test_shard_count_for_is_the_smallest_count_that_keeps_shards_small() -> None:
    assert shard_count_for(0) == 1  # a small repository: one step, one segment
    assert shard_count_for(740) == 1  # requests 2.32.3
    assert shard_count_for(CHUNKS_PER_SMALL_SHARD) == 1
    assert shard_count_for(CHUNKS_PER_SMALL_SHARD + 1) == 4
    assert shard_count_for(4 * CHUNKS_PER_SMALL_SHARD) == 4
    assert shard_count_for(4 * CHUNKS_PER_SMALL_SHARD + 1) == 16
    assert shard_count_for(40_000) == 16
    assert shard_count_for(16 * CHUNKS_PER_SHARD_ADVISED) == 16
    assert shard_count_for(16 * CHUNKS_PER_SHARD_ADVISED + 1) == 64
    assert shard_count_for(399_600) == 64
    assert shard_count_for(64 * CHUNKS_PER_SHARD_ADVISED + 1) == 256
    assert shard_count_for(50_000_000) == 256  # the largest count beyond that


def test_a_set_shard_count_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERAG_SHARDS", "64")
    settings = load_settings(data_dir=tmp_path).with_root(tmp_path / "repo")
    assert (settings.shard_count, settings.shards_from) == (64, SHARDS_SET)
    assert settings.sized(10) == settings
    direct = Settings(data_dir=tmp_path, shard_count=64).with_root(tmp_path / "repo")
    assert direct.shard_count == 64 and direct.sized(10).shard_count == 64


def test_without_a_set_count_the_index_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODERAG_SHARDS", raising=False)
    root = (tmp_path / "repo").resolve()
    new = load_settings(data_dir=tmp_path).with_root(root)
    assert new.shards_unsized and new.shard_count == 16
    assert new.sized(40_000).shard_count == 16
    assert new.sized(740).shard_count == 1
    sized = new.sized(399_600)
    assert (sized.shard_count, sized.shards_from) == (64, SHARDS_SIZED)
    assert sized.with_root(root) == sized  # a chosen count is not re-read

    IndexStore.for_root(tmp_path, root).register(64)
    recorded = load_settings(data_dir=tmp_path).with_root(root)
    assert (recorded.shard_count, recorded.shards_from) == (64, SHARDS_RECORDED)
    assert recorded.sized(10).shard_count == 64  # an index keeps its count
    monkeypatch.setenv("CODERAG_ROOT", str(root))
    assert load_settings(data_dir=tmp_path).shard_count == 64  # the UI's and daemon's way


def test_estimate_chunks_counts_only_files_a_chunker_takes() -> None:
    files = [("a.py", 65_000), ("b.md", 6_500), ("logo.svg", 1_000_000), ("README", 10)]
    assert estimate_chunks(files) == (65_000 + 6_500 + 10) // AVERAGE_CHUNK_BYTES
    assert estimate_chunks([("a.py", 10), ("b.py", 10)]) == 2  # at least a chunk a file


def test_a_recorded_count_this_version_does_not_build_is_sized_again(tmp_path: Path) -> None:
    root = (tmp_path / "repo").resolve()
    IndexStore.for_root(tmp_path, root).register(32)
    settings = Settings(data_dir=tmp_path, shards_from=SHARDS_UNSIZED).with_root(root)
    assert settings.shards_unsized and settings.shard_count == 16
