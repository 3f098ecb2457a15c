"""The vector cache of `IndexStore`: lookup by content hash, compaction and garbage collection."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coderag_assets.store import VECTOR_CACHE_GRACE_S, IndexStore, vectors_table

MODEL = "test-model:openvino:auto:256"
DAY_S = 24 * 3600.0


def hashes_file(directory: Path, hashes: set[str]) -> list[Path]:
    """A Parquet file listing `hashes`, as a shard's embeddings file lists what it holds."""
    path = directory / f"referenced-{len(list(directory.glob('*.parquet')))}.parquet"
    pq.write_table(pa.table({"content_hash": pa.array(sorted(hashes), pa.string())}), path)
    return [path]


def add(store: IndexStore, hashes: list[str], seed: int) -> None:
    vectors = np.random.default_rng(seed).random((len(hashes), 4), dtype=np.float32)
    store.vector_cache(MODEL).add(f"run{seed}", vectors_table(hashes, vectors, MODEL, "r"))


@pytest.fixture
def store(tmp_path: Path) -> IndexStore:
    return IndexStore(tmp_path / "index", tmp_path / "repo")


def test_lookup_returns_only_wanted_hashes_and_skips_torn_files(store: IndexStore) -> None:
    add(store, ["a", "b"], 1)
    add(store, ["c"], 2)
    (store.vector_cache_dir(MODEL) / "0-torn.parquet").write_bytes(b"PAR1 not really")
    found = store.vector_cache(MODEL).cached({"a", "c", "zzz"})
    assert sorted(found.column("content_hash").to_pylist()) == ["a", "c"]
    assert found.schema.field("vector").type.list_size == 4


def test_lookup_reads_only_matching_row_groups_and_returns_their_rows_exactly(
    store: IndexStore,
) -> None:
    """A cache file of many row groups: the rows found are those a full read filtered by
    hash gives, vectors and run ids included, in file order; a miss returns nothing."""
    hashes = [f"h{i:03}" for i in range(100)]
    vectors = np.random.default_rng(7).random((100, 4), dtype=np.float32)
    directory = store.vector_cache_dir(MODEL)
    directory.mkdir(parents=True)
    table = vectors_table(hashes, vectors, MODEL, "r1")
    pq.write_table(table, directory / "1-grouped.parquet", row_group_size=10)
    wanted = {"h005", "h042", "h043", "h099", "absent"}
    found = store.vector_cache(MODEL).cached(wanted)
    expected = table.filter(pa.array([h in wanted for h in hashes]))
    assert found.column("content_hash").to_pylist() == ["h005", "h042", "h043", "h099"]
    assert found.column("vector").to_pylist() == expected.column("vector").to_pylist()
    assert found.column("run_id").to_pylist() == expected.column("run_id").to_pylist()
    assert store.vector_cache(MODEL).cached({"absent"}).num_rows == 0


def test_compaction_keeps_referenced_and_recent_vectors_and_drops_stale_ones(
    store: IndexStore, tmp_path: Path
) -> None:
    add(store, ["kept", "branch", "stale"], 1)
    now = time.time()
    # Nothing references "branch" and "stale"; "stale" was last used beyond the grace period.
    first = store.vector_cache(MODEL).compact(
        lambda: hashes_file(tmp_path, {"kept", "branch"}), now=now, force=True
    )
    assert (first.kept, first.dropped) == (3, 0)
    later = now + VECTOR_CACHE_GRACE_S - DAY_S  # "branch" unused for less than the grace
    second = store.vector_cache(MODEL).compact(
        lambda: hashes_file(tmp_path, {"kept"}), now=later, force=True
    )
    assert (second.kept, second.dropped) == (3, 0)
    much_later = now + VECTOR_CACHE_GRACE_S + DAY_S
    third = store.vector_cache(MODEL).compact(
        lambda: hashes_file(tmp_path, {"kept"}), now=much_later, force=True
    )
    assert (third.kept, third.dropped) == (1, 2)
    left = store.vector_cache(MODEL).cached({"kept", "branch", "stale"})
    assert left.column("content_hash").to_pylist() == ["kept"]
    assert len(list(store.vector_cache_dir(MODEL).glob("*.parquet"))) == 1


def test_compaction_waits_for_enough_files_unless_forced(store: IndexStore) -> None:
    add(store, ["a"], 1)
    calls = []
    stats = store.vector_cache(MODEL).compact(lambda: calls.append(1) or [])
    assert stats.dropped == 0 and calls == []  # not compacted: the shards are not even read
    assert len(list(store.vector_cache_dir(MODEL).glob("*.parquet"))) == 1


def test_compaction_keeps_the_newest_copy_of_each_vector_exactly(
    store: IndexStore, tmp_path: Path
) -> None:
    old = np.arange(8, dtype=np.float32).reshape(2, 4)
    new = old + 100
    store.vector_cache(MODEL).add("r1", vectors_table(["a", "b"], old, MODEL, "r1"))
    time.sleep(0.01)  # cache files are named by their write time in ms
    store.vector_cache(MODEL).add("r2", vectors_table(["b"], new[1:], MODEL, "r2"))
    (store.vector_cache_dir(MODEL) / "0-torn.parquet").write_bytes(b"PAR1 not really")
    stats = store.vector_cache(MODEL).compact(lambda: hashes_file(tmp_path, {"a", "b"}), force=True)
    assert (stats.files, stats.kept, stats.dropped) == (3, 2, 0)
    (compacted,) = store.vector_cache_dir(MODEL).glob("*.parquet")
    assert pq.read_schema(compacted).field("vector").type == pa.list_(pa.float32(), 4)
    found = store.vector_cache(MODEL).cached({"a", "b"})
    vectors = dict(
        zip(found.column("content_hash").to_pylist(), found.column("vector").to_pylist())
    )
    assert vectors == {"a": old[0].tolist(), "b": new[1].tolist()}


def test_compaction_without_references_keeps_everything(store: IndexStore) -> None:
    add(store, ["a", "b"], 1)
    long_after = time.time() + 10 * VECTOR_CACHE_GRACE_S
    stats = store.vector_cache(MODEL).compact(None, now=long_after, force=True)
    assert (stats.kept, stats.dropped) == (2, 0)


def test_cache_files_keep_vectors_without_a_dictionary_and_read_back_exactly(store) -> None:
    """A float column's dictionary is built, found useless and dropped by the writer (3× the
    write time); only the repeating string columns are dictionary-encoded."""
    hashes = [f"h{i:04d}" for i in range(300)]
    vectors = np.random.default_rng(7).random((300, 16), dtype=np.float32)
    store.vector_cache(MODEL).add("run", vectors_table(hashes, vectors, MODEL, "r"))
    (path,) = store.vector_cache_dir(MODEL).glob("*.parquet")
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: row_group.column(i).encodings
        for i in range(row_group.num_columns)
    }
    assert not any("DICTIONARY" in e for e in encodings["vector.list.element"])
    assert not any("DICTIONARY" in e for e in encodings["content_hash"])
    assert any("DICTIONARY" in e for e in encodings["model_id"])
    found = store.vector_cache(MODEL).cached(set(hashes))
    order = np.argsort(found.column("content_hash").to_pylist())
    stored = np.stack(found.column("vector").to_numpy(zero_copy_only=False))[order]
    np.testing.assert_array_equal(stored, vectors)


def test_a_cache_files_hashes_are_read_once_per_process(store, monkeypatch) -> None:
    """Shard k of a cold index looks up every file the k steps before it added; each file's
    hash column is read from disk once, and again only when the file is replaced."""
    from coderag_assets.store import vector_cache

    add(store, ["a", "b"], 1)
    add(store, ["c"], 2)
    reads: list[str] = []
    real_read_table = vector_cache.pq.read_table

    def counting_read_table(path, *args, **kwargs):
        reads.append(str(path))
        return real_read_table(path, *args, **kwargs)

    monkeypatch.setattr(vector_cache.pq, "read_table", counting_read_table)
    cache = store.vector_cache(MODEL)
    assert sorted(cache.cached({"a", "c", "x"}).column("content_hash").to_pylist()) == ["a", "c"]
    assert len(reads) == 2
    assert sorted(cache.cached({"b", "y"}).column("content_hash").to_pylist()) == ["b"]
    assert cache.cached({"z"}).num_rows == 0
    assert len(reads) == 2  # both files' hashes came from memory
    # a file replaced under the same name (another inode) is read again
    first = min(store.vector_cache_dir(MODEL).glob("*.parquet"))
    replacement = vectors_table(["q"], np.ones((1, 4), np.float32), MODEL, "r")
    pq.write_table(replacement, first.with_suffix(".tmp"))
    first.with_suffix(".tmp").replace(first)
    found = cache.cached({"a", "q"}).column("content_hash").to_pylist()
    assert found == ["q"] and len(reads) == 3
