"""The shard stages of `indexing`: preparing shards on several processes writes exactly the
files one process writes, and reports the same numbers; the distinct texts left to embed
decide whether an early publish is worth its second segment pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from coderag_assets import indexing
from coderag_assets.files import scan_tree
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.store import CHUNK_SCHEMA, IndexStore, vectors_table

SHARD_COUNT = 16
KINDS = ("manifest", "chunks", "symbols", "occurrences")


def prepare(data_dir: Path, root: Path, workers: int) -> tuple[IndexStore, list]:
    store = IndexStore.for_root(data_dir, root)
    keys = shard_keys(SHARD_COUNT)
    by_shard: dict[str, list] = {key: [] for key in keys}
    for stat in scan_tree(root):
        by_shard[shard_of(stat.path, SHARD_COUNT)].append(stat)
    prepared = indexing.prepare_shards(
        store, keys, by_shard, run_id="run-1", max_file_bytes=1_000_000, workers=workers
    )
    return store, prepared


def test_parallel_prepare_writes_what_one_process_writes(
    tmp_path: Path, repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "PARALLEL_PREPARE_MIN_FILES", 1)
    monkeypatch.setattr(indexing, "available_cores", lambda: 2)
    root = repo_copy.resolve()
    assert indexing.prepare_workers(2, SHARD_COUNT, 10) == 2

    serial_store, serial = prepare(tmp_path / "serial", root, workers=1)
    parallel_store, parallel = prepare(tmp_path / "parallel", root, workers=2)

    assert [item.shard for item in parallel] == shard_keys(SHARD_COUNT)
    for item in (*serial, *parallel):
        item.chunks.seconds = 0.0  # the only number that may differ
    assert parallel == serial  # stats: files, chunks, symbols, skips, pending vectors
    assert sum(item.chunks.chunks for item in parallel) > 15
    for shard in shard_keys(SHARD_COUNT):
        for kind in KINDS:
            serial_file = serial_store.shard_file(kind, shard)
            parallel_file = parallel_store.shard_file(kind, shard)
            assert parallel_file.exists() == serial_file.exists(), (kind, shard)
            if serial_file.exists():
                assert pq.read_table(parallel_file).equals(pq.read_table(serial_file)), (
                    kind,
                    shard,
                )


def test_occurrences_encoded_batch_by_batch_are_written_as_in_one_batch(
    tmp_path: Path, repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo_copy.resolve()
    whole_store, _ = prepare(tmp_path / "whole", root, workers=1)
    monkeypatch.setattr(indexing, "OCCURRENCE_BATCH_ROWS", 3)  # a batch every file or so
    batched_store, _ = prepare(tmp_path / "batched", root, workers=1)
    written = 0
    for shard in shard_keys(SHARD_COUNT):
        whole_file = whole_store.shard_file("occurrences", shard)
        if whole_file.exists():
            table = pq.read_table(batched_store.shard_file("occurrences", shard))
            assert table.equals(pq.read_table(whole_file)), shard
            written += table.num_rows
    assert written > 100


def test_a_chunking_worker_loads_neither_duckdb_nor_torch() -> None:
    """What a spawned `prepare_shards` worker imports (its RSS: ~100 MiB before any shard;
    DuckDB alone added ~30 MiB to each worker)."""
    script = (
        "import sys, coderag_assets.indexing; "
        "print(sorted({'duckdb', 'torch', 'transformers', 'openvino', 'dagster'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_small_updates_and_daemonic_processes_prepare_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(indexing, "available_cores", lambda: 8)
    assert indexing.prepare_workers(8, 1, 10_000) == 1  # one shard
    assert indexing.prepare_workers(8, 16, indexing.PARALLEL_PREPARE_MIN_FILES - 1) == 1
    assert indexing.prepare_workers(4, 16, 10_000) == 4
    assert indexing.prepare_workers(8, 3, 10_000) == 3

    class Daemonic:
        daemon = True

    monkeypatch.setattr(indexing.multiprocessing, "current_process", lambda: Daemonic())
    assert indexing.prepare_workers(8, 16, 10_000) == 1


def test_distinct_pending_vectors_counts_copies_once_and_skips_embedded_hashes(
    tmp_path: Path, repo_copy: Path
) -> None:
    root = tmp_path / "copies"
    root.mkdir()
    for copy in range(3):  # three copies of one repository: the same texts three times
        shutil.copytree(repo_copy, root / f"copy_{copy}", symlinks=True)
    store, prepared = prepare(tmp_path / "data", root.resolve(), workers=1)
    keys = shard_keys(SHARD_COUNT)
    hashes_by_shard = {
        key: set(store.read_shard("chunks", key, CHUNK_SCHEMA).column("content_hash").to_pylist())
        for key in keys
    }
    every_hash = set().union(*hashes_by_shard.values())
    chunks = sum(item.chunks.chunks for item in prepared)
    assert chunks >= 3 * len(every_hash) > 0  # each text at least three times
    assert indexing.distinct_pending_vectors(store, keys, "model-a") == len(every_hash)
    # shards whose digests were computed already (as the workers returned them) count the same
    known = {key: indexing.pending_digests(store, key, "model-a") for key in keys[::2]}
    assert indexing.distinct_pending_vectors(store, keys, "model-a", known=known) == len(every_hash)

    # A shard whose embeddings file (same model) has its hashes no longer counts them ...
    shard = max(keys, key=lambda key: len(hashes_by_shard[key]))
    embedded = sorted(hashes_by_shard[shard])
    vectors = np.ones((len(embedded), 4), np.float32)
    store.write_shard("embeddings", shard, vectors_table(embedded, vectors, "model-a", "run-1"))
    rest = set().union(*(hashes_by_shard[key] for key in keys if key != shard))
    assert indexing.distinct_pending_vectors(store, keys, "model-a") == len(rest)
    # ... while vectors of another model count for nothing.
    assert indexing.distinct_pending_vectors(store, keys, "model-b") == len(every_hash)


def test_early_publish_pays_only_when_enough_distinct_texts_wait() -> None:
    share = indexing.EARLY_PUBLISH_MIN_VECTOR_SHARE
    assert indexing.early_publish_pays(40_000, 40_000, min_vectors=512)  # a cold repository
    assert not indexing.early_publish_pays(511, 600, min_vectors=512)  # little to embed
    # requests ×1350: 733 distinct texts for a million chunks
    assert not indexing.early_publish_pays(733, 1_000_000, min_vectors=512)
    assert indexing.early_publish_pays(int(share * 100_000), 100_000, min_vectors=512)
    assert not indexing.early_publish_pays(int(share * 100_000) - 1, 100_000, min_vectors=512)


def test_an_update_writes_the_rows_a_fresh_prepare_writes(tmp_path: Path, repo_copy: Path) -> None:
    """The shard files of an update (kept rows of unchanged files merged with the new rows of
    edited, added and renamed ones, deleted files' rows gone) are what preparing the changed
    tree from nothing writes; only the chunks' run ids tell them apart."""
    root = repo_copy.resolve()
    store, _ = prepare(tmp_path / "updated", root, workers=1)
    with (root / "pyutils" / "cache.py").open("a") as handle:
        handle.write("\n\ndef evict_all(cache):\n    cache.clear()\n    return cache\n")
    (root / "pyutils" / "retry.py").rename(root / "pyutils" / "retrying.py")
    (root / "lib" / "slugify.rb").unlink()
    (root / "server" / "health.go").write_text(
        'package server\n\nfunc Health() string {\n\treturn "ok"\n}\n'
    )
    keys = shard_keys(SHARD_COUNT)
    by_shard: dict[str, list] = {key: [] for key in keys}
    for stat in scan_tree(root):
        by_shard[shard_of(stat.path, SHARD_COUNT)].append(stat)
    indexing.prepare_shards(store, keys, by_shard, run_id="run-2", max_file_bytes=1_000_000)
    fresh, _ = prepare(tmp_path / "fresh", root, workers=1)

    for shard in keys:
        for kind in KINDS:
            updated_file, fresh_file = store.shard_file(kind, shard), fresh.shard_file(kind, shard)
            assert updated_file.exists() == fresh_file.exists(), (kind, shard)
            if not fresh_file.exists():
                continue
            updated, expected = pq.read_table(updated_file), pq.read_table(fresh_file)
            if kind == "chunks":
                updated, expected = (
                    updated.drop_columns(["run_id"]),
                    expected.drop_columns(["run_id"]),
                )
            assert updated.equals(expected), (kind, shard)
    occurrences = pq.read_table(store.shard_file("occurrences", shard_of("pyutils/cache.py", 16)))
    assert "evict_all" in occurrences.column("name").to_pylist()


def test_workers_are_counted_from_the_files_an_update_reads_not_the_files_it_keeps(
    tmp_path: Path, repo_copy: Path
) -> None:
    """`files_to_prepare`: every file of a shard never prepared (or re-hashed), then only the
    files whose path, size or mtime the manifest does not record: an edit of one file in a
    big shard does not start worker processes to keep its other rows."""
    root = repo_copy.resolve()
    store = IndexStore.for_root(tmp_path / "data", root)
    keys = shard_keys(SHARD_COUNT)
    edited = "pyutils/cache.py"
    shard = shard_of(edited, SHARD_COUNT)

    def stats() -> list:
        return [s for s in scan_tree(root) if shard_of(s.path, SHARD_COUNT) == shard]

    assert indexing.files_to_prepare(store, shard, stats()) == len(stats())  # never prepared
    prepare(tmp_path / "data", root, workers=1)
    assert indexing.files_to_prepare(store, shard, stats()) == 0
    assert indexing.files_to_prepare(store, shard, stats(), verify_hashes=True) == len(stats())
    with (root / edited).open("a") as handle:
        handle.write("\n\ndef evict_all(cache):\n    cache.clear()\n")
    (root / "pyutils" / "new_module.py").write_text("def added():\n    return 1\n")
    expected = 1 + (shard_of("pyutils/new_module.py", SHARD_COUNT) == shard)
    assert indexing.files_to_prepare(store, shard, stats()) == expected
    for other in keys:  # a shard without occurrences (chunked before they existed): all
        store.shard_file("occurrences", other).unlink(missing_ok=True)
    assert indexing.files_to_prepare(store, shard, stats()) == len(stats())


def test_embedding_reads_texts_only_for_hashes_without_a_vector(
    tmp_path: Path, repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`build_embeddings` learns a shard's hashes from one column; chunk texts are read and
    the model is loaded only for hashes that no file has a vector for."""
    from coderag_assets.embedding import EmbedderSpec

    store, _ = prepare(tmp_path / "data", repo_copy.resolve(), workers=1)
    shard = max(
        shard_keys(SHARD_COUNT),
        key=lambda key: store.read_shard("chunks", key, CHUNK_SCHEMA).num_rows,
    )
    rows = store.read_shard("chunks", shard, CHUNK_SCHEMA).to_pylist()
    hashes = sorted({row["content_hash"] for row in rows})
    assert len(hashes) >= 2
    spec = EmbedderSpec()
    known = hashes[1:]  # the first hash has no vector anywhere
    vectors = np.ones((len(known), 4), np.float32)
    store.write_shard("embeddings", shard, vectors_table(known, vectors, spec.model_id, "r0"))

    texts: list[list[str]] = []

    class CountingEmbedder:
        def embed(self, batch: list[str], on_progress=None) -> np.ndarray:
            texts.append(list(batch))
            return np.full((len(batch), 4), 0.5, np.float32)

        def release_memory(self) -> None:
            pass

    monkeypatch.setattr(indexing, "prepare_model", lambda spec: None)
    monkeypatch.setattr(indexing, "load_embedder", lambda spec: CountingEmbedder())
    stats = indexing.build_embeddings(store, shard, spec, run_id="r1")
    first = next(row for row in rows if row["content_hash"] == hashes[0])
    assert texts == [[indexing.chunk_from_row(first).embedding_text]]
    assert (stats.embedded, stats.reused, stats.chunks) == (1, len(known), len(rows))
    written = pq.read_table(store.shard_file("embeddings", shard), columns=["content_hash"])
    assert written.column("content_hash").to_pylist() == hashes

    # Every hash has a vector now: no text is made and no model is loaded.
    def no_model(spec: EmbedderSpec) -> None:
        raise AssertionError("the model was loaded for a shard with every vector")

    monkeypatch.setattr(indexing, "load_embedder", no_model)
    monkeypatch.setattr(indexing, "chunk_from_row", no_model)
    again = indexing.build_embeddings(store, shard, spec, run_id="r2")
    assert (again.embedded, again.reused) == (0, len(hashes))


def test_an_occurrence_batch_is_its_files_rows_in_order() -> None:
    """`OccurrenceBatch` gathers files' occurrences column by column: its table holds each
    file's rows (path and language repeated, "text" for a file without a language) in the
    order the files were added, and a file without occurrences adds none."""
    from coderag_assets import segments
    from coderag_assets.chunking import chunk_file

    files = [
        ("pkg/a.py", "python", "def get(url):\n    return url  # get it\n"),
        ("blank.py", "python", "   \n"),
        ("README", None, "Call get() twice.\n"),
        ("pkg/b.py", "python", "x = get('s')\n"),
    ]
    batch = indexing.OccurrenceBatch()
    expected = []
    for path, language, text in files:
        occurrences = chunk_file(path, text, language).occurrences
        batch.add(path, language, occurrences)
        expected += [
            {
                "name": name,
                "path": path,
                "language": language or "text",
                "line": line,
                "column": column,
                "context": context,
            }
            for name, line, column, context in occurrences.rows()
        ]
    table = batch.encoded_table()
    assert table.schema == indexing.OCCURRENCE_ENCODED_SCHEMA
    assert batch.rows == len(expected) == table.num_rows
    assert table.cast(segments.OCCURRENCE_SCHEMA).to_pylist() == expected
    assert {r["context"] for r in expected} == {"code", "comment", "string", "text"}
