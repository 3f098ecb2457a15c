"""Segments and published versions: the manifest flip, segment lookup, global BM25 statistics,
incremental publishes that touch one shard, readers that keep their version, damaged segments.

The index is built here without Dagster or the embedding model: the fixture repository is
chunked with the real chunker into shard Parquet files, vectors are deterministic
pseudo-random unit vectors per content hash, and `publish_index` publishes them.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from coderag_assets import segments
from coderag_assets.chunking import chunk_file
from coderag_assets.embedding import EmbedderSpec
from coderag_assets.features import name_tokens
from coderag_assets.files import SkippedFile, read_source, scan_tree
from coderag_assets.freshness import quarantine_torn_files
from coderag_assets.indexing import chunk_row, classify_language, publish_index, symbol_row
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.query import index_status
from coderag_assets.search import DEFAULT_RANKING, IndexReader
from coderag_assets.segments.layout import INFO_FILE, SEGMENT_FORMAT
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    DiskFullError,
    IndexNotFoundError,
    IndexStore,
    IndexValidationError,
    connect_index,
    vectors_table,
)
from coderag_assets.tokens import query_terms, stem
from tests.conftest import copy_fixture_repo

SHARDS = 16
DIM = 8
SPEC = EmbedderSpec()
PROJECT_DIR = Path(__file__).resolve().parents[1]


def fake_vector(content_hash: str) -> np.ndarray:
    vector = np.random.default_rng(int(content_hash[:12], 16)).normal(size=DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def write_shards(
    store: IndexStore, shard_count: int = SHARDS, only: set[str] | None = None
) -> None:
    """Write manifest/chunks/symbols/embeddings shard files for the tree (or `only` shards)."""
    manifest_rows: dict[str, list[dict]] = defaultdict(list)
    chunk_rows: dict[str, list[dict]] = defaultdict(list)
    symbol_rows: dict[str, list[dict]] = defaultdict(list)
    for stat in scan_tree(store.root):
        shard = shard_of(stat.path, shard_count)
        language, type_skip = classify_language(stat.path)
        row = {
            "path": stat.path,
            "shard": shard,
            "size": stat.size,
            "mtime_ns": stat.mtime_ns,
            "sha256": None,
            "language": language,
            "skip_reason": stat.skip_reason or type_skip,
            "skip_detail": None,
        }
        if row["skip_reason"] is None:
            try:
                source = read_source(store.root, stat.path)
            except SkippedFile as skipped:
                row["skip_reason"] = skipped.reason
            else:
                row["sha256"] = source.sha256
                chunked = chunk_file(stat.path, source.text, language)
                chunk_rows[shard].extend(
                    chunk_row(chunk, source.sha256, "run") for chunk in chunked.chunks
                )
                symbol_rows[shard].extend(symbol_row(symbol) for symbol in chunked.symbols)
        manifest_rows[shard].append(row)
    for shard in shard_keys(shard_count):
        if only is not None and shard not in only:
            continue
        store.write_shard(
            "manifest", shard, pa.Table.from_pylist(manifest_rows[shard], schema=MANIFEST_SCHEMA)
        )
        store.write_shard(
            "chunks", shard, pa.Table.from_pylist(chunk_rows[shard], schema=CHUNK_SCHEMA)
        )
        store.write_shard(
            "symbols", shard, pa.Table.from_pylist(symbol_rows[shard], schema=SYMBOL_SCHEMA)
        )
        hashes = sorted({row["content_hash"] for row in chunk_rows[shard]})
        matrix = (
            np.stack([fake_vector(h) for h in hashes]) if hashes else np.zeros((0, 1), np.float32)
        )
        store.write_shard("embeddings", shard, vectors_table(hashes, matrix, SPEC.model_id, "run"))


def build(data_dir: Path, root: Path, shard_count: int = SHARDS) -> IndexStore:
    store = IndexStore.for_root(data_dir, root)
    write_shards(store, shard_count)
    publish_index(store, shard_keys(shard_count), SPEC, run_id="run")
    return store


def segment_dirs(store: IndexStore) -> dict[str, str]:
    return segments.read_current(store.base).segments


def tree_digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[IndexStore, Path]:
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    return build(tmp_path / "data", root), root


def results_key(results) -> list[tuple]:
    return [(r.path, r.start_line, r.end_line, r.symbol, r.score, r.content) for r in results]


QUERIES = ["least recently used cache", "retry_with_backoff", "multiply two matrices", "debounce"]


def all_searches(reader: IndexReader) -> list[list[tuple]]:
    found = []
    for query in QUERIES:
        vector = fake_vector(hashlib.sha256(query.encode()).hexdigest())
        for mode in ("bm25", "vector", "hybrid"):
            found.append(results_key(reader.search(query, mode=mode, limit=8, query_vector=vector)))
    return found


# ------------------------------------------------------------------ the manifest flip


def test_publish_flips_current_to_a_new_manifest(indexed) -> None:
    store, _ = indexed
    first = segments.read_current(store.base)
    assert set(first.segments) == set(shard_keys(SHARDS))
    result = publish_index(store, shard_keys(SHARDS), SPEC, run_id="again")
    second = segments.read_current(store.base)
    assert result.version == second.version > first.version
    assert second.segments == first.segments  # nothing changed: every segment reused
    assert second.meta["run_id"] == "again"
    con = connect_index(store.index_path)
    try:
        meta_version = con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]
        chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        files = con.execute("SELECT count(*), sum(chunks) FROM files").fetchone()
    finally:
        con.close()
    assert int(meta_version) == second.version
    assert chunks == result.chunks == files[1] > 0
    assert files[0] == result.files


def test_chunk_rowids_name_the_segment_and_row_and_follow_path_order(indexed) -> None:
    """`chunks.rowid` = (the segment's place among the version's sorted shards << 32) + its
    row in that segment's chunks.parquet: unique, and in shard, path, line order."""
    store, _ = indexed
    version = segments.read_current(store.base)
    con = segments.connect_version(store.base, version)
    try:
        rows = con.execute("SELECT rowid, path, start_line FROM chunks ORDER BY rowid").fetchall()
    finally:
        con.close()
    place = {shard: index for index, shard in enumerate(sorted(version.segments))}
    expected = []
    for shard in sorted(version.segments):
        table = segments.open_segment(store.base, shard, version.segments[shard]).rows
        for row, (path, line) in enumerate(
            zip(table.column("path").to_pylist(), table.column("start_line").to_pylist())
        ):
            expected.append(((place[shard] << 32) + row, path, line))
    assert len({rowid for rowid, _, _ in rows}) == len(rows) > 0
    assert rows == expected
    assert sum(1 for rowid, _, _ in rows if rowid >> 32 > 0) > 0  # more than one segment


@pytest.mark.parametrize("totals", ["recorded", "absent"])
def test_index_status_counts_equal_a_count_over_the_views(indexed, totals) -> None:
    """index_status reads the manifest's totals (no chunk file opened); an index published
    before totals were recorded is counted over the views, with the same numbers."""
    store, _ = indexed
    if totals == "absent":
        con = duckdb.connect(str(store.index_path))
        con.execute("DELETE FROM meta WHERE key = 'totals'")
        con.close()
    con = connect_index(store.index_path)
    try:
        files, indexed_files = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE skip_reason IS NULL) FROM files"
        ).fetchone()
        chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        symbols = con.execute("SELECT count(*) FROM symbols").fetchone()[0]
    finally:
        con.close()
    status = index_status(store, with_freshness=False)
    counts = {key: status[key] for key in ("files", "indexed_files", "chunks", "symbols")}
    assert counts == {
        "files": files,
        "indexed_files": indexed_files,
        "chunks": chunks,
        "symbols": symbols,
    }
    assert 0 < indexed_files <= files and chunks > 0 and symbols > 0


def test_segment_lookup_names_each_shard_of_the_version(indexed) -> None:
    store, _ = indexed
    version = segments.read_current(store.base)
    path = "pyutils/cache.py"
    shard = shard_of(path, SHARDS)
    segment = segments.open_segment(store.base, shard, version.segments[shard])
    assert segment.info.shard == shard
    assert path in segment.rows.column("path").to_pylist()
    assert segment.vectors.dim == DIM
    assert 0 < segment.vectors.count == segment.info.distinct_vectors <= segment.size
    assert (segment.vector_of_row >= 0).all()
    assert segment.vector_of_row.max() == segment.vectors.count - 1
    assert segment.postings.lookup("lrucach") is not None or segment.postings.lookup("lru")


def test_failed_flip_leaves_the_old_version_live(indexed, monkeypatch) -> None:
    store, root = indexed
    before = segments.read_current(store.base)
    (root / "pyutils" / "extra.py").write_text("def brand_new_function():\n    return 1\n")
    write_shards(store)
    real_replace = os.replace

    def failing_replace(source, target):
        if Path(target).name == segments.CURRENT_FILE:
            raise OSError("simulated kill during the flip")
        return real_replace(source, target)

    monkeypatch.setattr(segments.publishing.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated kill"):
        publish_index(store, shard_keys(SHARDS), SPEC, run_id="killed")
    monkeypatch.undo()
    assert segments.read_current(store.base).version == before.version
    reader = IndexReader(store.index_path)
    assert "pyutils/extra.py" not in {
        r.path for r in reader.search("brand_new_function", mode="bm25")
    }
    assert not list(store.base.glob(".index.*.building.duckdb"))
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="next")
    assert reader.refresh() is True
    assert reader.search("brand_new_function", mode="bm25")[0].path == "pyutils/extra.py"


def no_space_left() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_disk_at(monkeypatch, step: str) -> None:
    """Make publishing run out of disk space in `step`, after half its bytes are written."""
    if step == "index.duckdb":
        real_surface = segments.publishing.create_sql_surface

        def surface_then_full(con, base, version) -> None:
            real_surface(con, base, version)
            raise duckdb.IOException(f'Could not write file "x": {os.strerror(errno.ENOSPC)}')

        monkeypatch.setattr(segments.publishing, "create_sql_surface", surface_then_full)
        return
    real_write_bytes = Path.write_bytes

    def write_half(path: Path, data: bytes) -> int:
        in_step = (
            path.parent.name == segments.MANIFESTS_DIR
            if step == "index manifest"
            else path.name.startswith(f".{segments.CURRENT_FILE}.")
        )
        if not in_step:
            return real_write_bytes(path, data)
        real_write_bytes(path, data[: len(data) // 2])
        raise no_space_left()

    monkeypatch.setattr(Path, "write_bytes", write_half)


def temporary_files(store: IndexStore) -> list[Path]:
    return [
        path
        for pattern in ("**/.*.tmp", "**/.building-*", ".index.*")
        for path in store.base.glob(pattern)
    ]


@pytest.mark.parametrize("step", ["index manifest", "index.duckdb", "CURRENT"])
def test_disk_full_while_publishing_keeps_the_old_version(indexed, monkeypatch, step) -> None:
    store, root = indexed
    before = segments.read_current(store.base)
    manifests = sorted((store.base / segments.MANIFESTS_DIR).iterdir())
    expected = all_searches(IndexReader(store.index_path))
    (root / "pyutils" / "extra.py").write_text("def brand_new_function():\n    return 1\n")
    write_shards(store)
    fill_disk_at(monkeypatch, step)
    with pytest.raises(DiskFullError, match=f"disk full while .*{step}") as raised:
        publish_index(store, shard_keys(SHARDS), SPEC, run_id="full")
    assert "run `coderag index` again" in str(raised.value)
    monkeypatch.undo()
    assert segments.read_current(store.base).version == before.version
    assert sorted((store.base / segments.MANIFESTS_DIR).iterdir()) == manifests
    assert temporary_files(store) == []
    con = connect_index(store.index_path)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == str(
            before.version
        )
    finally:
        con.close()
    assert all_searches(IndexReader(store.index_path)) == expected
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="space freed")
    reader = IndexReader(store.index_path)
    assert reader.search("brand_new_function", mode="bm25")[0].path == "pyutils/extra.py"


def test_disk_full_while_writing_a_segment_names_its_shard(indexed, monkeypatch) -> None:
    store, root = indexed
    path = "pyutils/cache.py"
    shard = shard_of(path, SHARDS)
    before = segments.read_current(store.base)
    shard_dir = store.base / segments.SEGMENTS_DIR / shard
    segment_dirs_before = sorted(shard_dir.iterdir())
    expected = all_searches(IndexReader(store.index_path))
    (root / path).write_text((root / path).read_text() + "\n\ndef wombat_total():\n    pass\n")
    write_shards(store, only={shard})

    def save_until_full(postings, directory: Path) -> None:
        (directory / segments.TERMS_FILE).write_bytes(b"\x93NUMPY half a file")
        raise no_space_left()

    monkeypatch.setattr(segments.Postings, "save", save_until_full)
    with pytest.raises(
        DiskFullError, match=f"disk full while writing the segment of shard {shard}"
    ):
        publish_index(store, shard_keys(SHARDS), SPEC, run_id="full")
    monkeypatch.undo()
    assert segments.read_current(store.base) == before
    assert sorted(shard_dir.iterdir()) == segment_dirs_before
    assert temporary_files(store) == []
    assert all_searches(IndexReader(store.index_path)) == expected
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="space freed")
    assert IndexReader(store.index_path).search("wombat_total", mode="bm25")[0].path == path


def test_killed_segment_write_leaves_no_segment_and_is_redone(indexed, monkeypatch) -> None:
    store, root = indexed
    path = "pyutils/cache.py"
    shard = shard_of(path, SHARDS)
    (root / path).write_text((root / path).read_text() + "\n\ndef wombat_total():\n    pass\n")
    write_shards(store, only={shard})
    real_save = segments.Postings.save

    def dying_save(self, directory):
        real_save(self, directory)
        raise KeyboardInterrupt("simulated kill -9 while writing a segment")

    monkeypatch.setattr(segments.Postings, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        segments.write_segment(store, shard, model_id=SPEC.model_id, run_id="killed")
    monkeypatch.undo()
    shard_dir = store.base / segments.SEGMENTS_DIR / shard
    assert not list(shard_dir.glob(".building-*"))
    assert segments.read_current(store.base).segments[shard] in {
        str(p.relative_to(store.base)) for p in shard_dir.iterdir()
    }
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="next")
    reader = IndexReader(store.index_path)
    assert reader.search("wombat_total", mode="bm25")[0].path == path


def test_validation_failure_blocks_the_flip(indexed) -> None:
    store, _ = indexed
    before = segments.read_current(store.base).version
    shard = shard_of("pyutils/cache.py", SHARDS)
    store.write_shard(
        "embeddings", shard, vectors_table([], np.zeros((0, 1), np.float32), SPEC.model_id, "r")
    )
    with pytest.raises(IndexValidationError, match="every_chunk_has_vector"):
        publish_index(store, shard_keys(SHARDS), SPEC, run_id="bad")
    assert segments.read_current(store.base).version == before
    assert not list(store.base.glob(".index.*.building.duckdb"))


# ------------------------------------------------------------------ global BM25 statistics


def test_bm25_scores_across_segments_equal_a_single_segment_build(tmp_path) -> None:
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    many = IndexReader(build(tmp_path / "many", root, SHARDS).index_path)
    one = IndexReader(build(tmp_path / "one", root, 1).index_path)
    assert many.size == one.size and len(many.segments) == SHARDS and len(one.segments) == 1

    def by_chunk(reader: IndexReader, scores: np.ndarray) -> dict[tuple, float]:
        starts = reader.column("start_line").to_pylist()
        keyed: dict[tuple, float] = {}
        for row, (path, start) in enumerate(zip(reader.paths, starts, strict=True)):
            key = (path, start, reader.symbols[row])
            keyed[key] = keyed.get(key, 0.0) + float(scores[row])
        return keyed

    for name_tf in (0.0, DEFAULT_RANKING.bm25_name_tf):
        for reader in (many, one):
            reader.ranking = DEFAULT_RANKING.__class__(bm25_name_tf=name_tf)
        for query in ["cache evict entries", "retry backoff", "matrix", "quokka"]:
            terms = query_terms(query)
            left, right = many.bm25_scores(terms), one.bm25_scores(terms)
            if left is None or right is None:
                assert left is None and right is None
                continue
            assert by_chunk(many, left) == by_chunk(one, right)


def test_postings_equal_term_counts_computed_row_by_row() -> None:
    """Every (term, row) pair once, sorted by term then row, with its body and name counts,
    on documents whose names share terms with bodies (the union of the two key sets)."""
    rng = np.random.default_rng(7)
    words = ["cache", "caches", "cached", "parse", "header", "retry", "evict", "x", "é"]
    names = ["", "CacheEntry", "parse_header", "retryCache", "x"]
    texts = [
        " ".join(words[i] for i in rng.integers(0, len(words), rng.integers(0, 12)))
        for _ in range(300)
    ]
    symbols = [names[i] for i in rng.integers(0, len(names), len(texts))]
    postings = segments.build_postings(texts, symbols, stemmed=True, batch_rows=64)
    expected: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for row, (text, symbol) in enumerate(zip(texts, symbols, strict=True)):
        for token in text.split(" "):
            if token:
                expected[stem(token)].setdefault(row, [0.0, 0.0])[0] += 1
        for token in name_tokens(symbol) if symbol else []:
            expected[stem(token)].setdefault(row, [0.0, 0.0])[1] += 1
    # format 4 stores the vocabulary as UTF-8 bytes, which sort in code-point order
    assert [term.decode() for term in postings.terms.tolist()] == sorted(expected)
    for term, by_row in expected.items():
        rows, tf, name_tf = postings.term_postings(postings.lookup(term))
        assert rows.tolist() == sorted(by_row), term
        assert tf.tolist() == [by_row[row][0] for row in sorted(by_row)], term
        assert name_tf.tolist() == [by_row[row][1] for row in sorted(by_row)], term


def test_mapped_and_read_postings_find_the_same_ranges(tmp_path) -> None:
    texts = ["alpha beta beta", "beta gamma", "zeta alpha", "omega"]
    postings = segments.build_postings(texts, ["", "Gamma", "", ""], stemmed=False)
    postings.save(tmp_path)
    lengths = (postings.body_len, postings.name_len)
    read = segments.PostingsFile(tmp_path, *lengths)
    mapped = segments.PostingsFile(tmp_path, *lengths, mapped=True)
    for term in ["alpha", "beta", "gamma", "omega", "zeta", "", "aaa", "delta", "zzz"]:
        expected = postings.lookup(term)
        assert read.lookup(term) == mapped.lookup(term) == expected, term
        if expected is not None:
            for left, right in zip(
                read.term_postings(expected), postings.term_postings(expected), strict=True
            ):
                np.testing.assert_array_equal(left, right)
    assert postings.lookup("beta") is not None and postings.lookup("delta") is None


@pytest.mark.parametrize("utf32", [False, True], ids=["utf8", "utf32-format3"])
def test_vocabulary_is_utf8_and_utf32_vocabularies_still_read(tmp_path, utf32) -> None:
    """Format 4 stores terms as UTF-8 bytes (a quarter of UTF-32); a format-3 segment's
    UTF-32 vocabulary is looked up the same way, mapped or read by position."""
    texts = ["naïve café straße", "café 東京 alpha", "zeta 𝛼lpha alpha", "straße omega"]
    postings = segments.build_postings(texts, ["", "Tokyo", "", ""], stemmed=False)
    assert postings.terms.dtype.kind == "S"
    terms = [term.decode() for term in postings.terms]
    assert terms == sorted(terms) and "東京" in terms
    wide = np.array(terms, dtype=str)
    assert postings.terms.nbytes * 2 < wide.nbytes  # 4x on ASCII; these are mostly not
    if utf32:
        postings = dataclasses.replace(postings, terms=wide)
    postings.save(tmp_path)
    lengths = (postings.body_len, postings.name_len)
    read = segments.PostingsFile(tmp_path, *lengths)
    mapped = segments.PostingsFile(tmp_path, *lengths, mapped=True)
    assert read.terms.dtype.kind == mapped.terms.dtype.kind == ("U" if utf32 else "S")
    for term in [*terms, "", "caf", "cafe", "東", "zzz", "ü"]:
        expected = postings.lookup(term)
        assert read.lookup(term) == mapped.lookup(term) == expected, term
        assert (expected is not None) == (term in terms)


def test_segments_of_format_3_open_and_unknown_formats_are_refused(indexed) -> None:
    store, _ = indexed
    version = segments.read_current(store.base)
    shard, relative = min(version.segments.items())
    info_path = store.base / relative / INFO_FILE
    payload = json.loads(info_path.read_text())
    assert payload["format"] == SEGMENT_FORMAT == 4
    original = info_path.read_text()
    try:
        info_path.write_text(json.dumps({**payload, "format": 3}))
        assert segments.SegmentInfo.load(shard, info_path.parent).chunks == payload["chunks"]
        info_path.write_text(json.dumps({**payload, "format": 99}))
        with pytest.raises(segments.SegmentError, match="another segment format"):
            segments.SegmentInfo.load(shard, info_path.parent)
    finally:
        info_path.write_text(original)


def test_search_results_equal_a_from_scratch_build(indexed, tmp_path) -> None:
    store, root = indexed
    path = root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + "\n\ndef cache_wombat(entries):\n    return entries\n")
    write_shards(store, only={shard_of("pyutils/cache.py", SHARDS)})
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="incremental")
    scratch = build(tmp_path / "scratch", root)
    incremental_reader = IndexReader(store.index_path)
    scratch_reader = IndexReader(scratch.index_path)
    assert all_searches(incremental_reader) == all_searches(scratch_reader)
    assert incremental_reader.search("cache_wombat", mode="bm25")[0].path == "pyutils/cache.py"


# ------------------------------------------------------------------ cost follows the change


def test_editing_one_file_changes_only_its_shards_segment(indexed) -> None:
    store, root = indexed
    before = segment_dirs(store)
    digests = {shard: tree_digest(store.base / d) for shard, d in before.items()}
    edited = "pyutils/retry.py"
    target = root / edited
    target.write_text(target.read_text() + "\n\ndef retry_forever():\n    pass\n")
    shard = shard_of(edited, SHARDS)
    write_shards(store, only={shard})
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="edit")
    after = segment_dirs(store)
    changed = {s for s in after if after[s] != before[s]}
    assert changed == {shard}
    for other in set(after) - {shard}:
        assert tree_digest(store.base / after[other]) == digests[other]


# ------------------------------------------------------------------ readers and reclaiming


def edit_and_publish(store: IndexStore, root: Path, number: int) -> None:
    for relative in ("pyutils/cache.py", "pyutils/retry.py", "engine/src/matrix.rs"):
        target = root / relative
        target.write_text(target.read_text() + f"\n// edit {number}\n")
    write_shards(store)
    time.sleep(0.01)
    publish_index(store, shard_keys(SHARDS), SPEC, run_id=f"v{number}")


def test_reader_holds_its_version_until_it_closes(indexed, monkeypatch) -> None:
    """A reader of version N while N+1 and N+2 are published: N's manifest and segments stay
    (searches and its DuckDB views keep working) until it closes; then they are reclaimed."""
    store, root = indexed
    reader = IndexReader(store.index_path)
    expected = all_searches(reader)
    held = segment_dirs(store)
    held_manifest = store.base / segments.MANIFESTS_DIR / f"{reader.version.version}.json"
    monkeypatch.setattr(segments.gc, "KEEP_PREVIOUS_VERSIONS", 0)
    monkeypatch.setattr(segments.gc, "GC_GRACE_S", 0.0)
    for number in (1, 2):
        edit_and_publish(store, root, number)
    superseded = [d for shard, d in held.items() if d != segment_dirs(store)[shard]]
    assert superseded, "the edits replaced some segments"
    assert held_manifest.exists() and all((store.base / d).exists() for d in superseded)
    assert all_searches(reader) == expected
    assert reader.con.execute("SELECT count(*) FROM chunks").fetchone()[0] == reader.size
    reader.close()
    edit_and_publish(store, root, 3)
    assert not held_manifest.exists()
    assert not any((store.base / d).exists() for d in superseded)


def test_a_dead_readers_lease_holds_nothing(indexed) -> None:
    store, _ = indexed
    version = segments.read_current(store.base).version
    readers = store.base / segments.READERS_DIR
    readers.mkdir(exist_ok=True)
    dead = readers / f"{version - 1}.999999.dead{segments.LEASE_SUFFIX}"
    dead.touch()  # what a killed reader leaves behind: the file without its lock
    lease = segments.VersionLease(store.base, version)
    assert lease.held
    assert segments.held_versions(store.base) == {version}
    assert not dead.exists()
    lease.release()
    assert segments.held_versions(store.base) == set()
    assert list(readers.iterdir()) == []


KILLED_PUBLISH = """
import os, sys
from pathlib import Path
from coderag_assets.embedding import EmbedderSpec
from coderag_assets.indexing import publish_index
from coderag_assets.partitions import shard_keys
from coderag_assets.store import IndexStore

real_replace = os.replace

def replace(source, target):
    if Path(target).name == "CURRENT":
        os._exit(137)  # killed just before the flip: no cleanup runs
    real_replace(source, target)

os.replace = replace
store = IndexStore(Path(sys.argv[1]), Path(sys.argv[2]))
publish_index(store, shard_keys(int(sys.argv[3])), EmbedderSpec(), run_id="killed")
"""


def test_publish_killed_before_the_flip_leaves_orphans_the_next_publish_reclaims(
    indexed,
) -> None:
    store, root = indexed
    live = segments.read_current(store.base)
    expected = all_searches(IndexReader(store.index_path))
    path = "pyutils/cache.py"
    shard = shard_of(path, SHARDS)
    shard_dir = store.base / segments.SEGMENTS_DIR / shard
    manifests_before = set((store.base / segments.MANIFESTS_DIR).iterdir())
    segments_before = set(shard_dir.iterdir())
    (root / path).write_text((root / path).read_text() + "\n\ndef wombat_total():\n    pass\n")
    write_shards(store, only={shard})
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PUBLISH, str(store.base), str(store.root), str(SHARDS)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == 137, killed.stderr
    orphan_manifests = set((store.base / segments.MANIFESTS_DIR).iterdir()) - manifests_before
    orphan_segments = set(shard_dir.iterdir()) - segments_before
    leftovers = temporary_files(store)
    assert len(orphan_manifests) == 1 and len(orphan_segments) == 1 and leftovers
    assert segments.read_current(store.base) == live
    assert all_searches(IndexReader(store.index_path)) == expected

    # The file changes again, so the killed publish's segment is no longer any shard's LATEST.
    # It is reclaimed once older than the grace period (a shard step may have just written
    # one); a segment a shard step is building right now stays.
    (root / path).write_text((root / path).read_text() + "\n\ndef numbat_total():\n    pass\n")
    write_shards(store, only={shard})
    long_ago = time.time() - 2 * segments.GC_GRACE_S
    for orphan in orphan_segments:
        os.utime(orphan, (long_ago, long_ago))
    in_progress = shard_dir / ".building-in-progress"
    in_progress.mkdir()
    published = publish_index(store, shard_keys(SHARDS), SPEC, run_id="next")
    assert not any(p.exists() for p in orphan_manifests | orphan_segments | set(leftovers))
    assert in_progress.exists()
    current = segments.read_current(store.base)
    assert current.version == published.version > live.version
    reader = IndexReader(store.index_path)
    assert reader.search("numbat_total", mode="bm25")[0].path == path
    assert (store.base / segments.MANIFESTS_DIR / f"{live.version}.json").exists()


KILLED_SHARD_WRITER = """
import os, signal, sys
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
from coderag_assets.store.atomic import replacing

with replacing(Path(sys.argv[1]), "writing") as tmp_path:
    writer = pq.ParquetWriter(tmp_path, pa.schema([("content_hash", pa.string())]))
    writer.write_table(pa.table({"content_hash": ["a" * 64] * 1000}))
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: no cleanup, no rename
"""


def kill_a_writer_of(path: Path) -> Path:
    """Run a writer of `path` that is killed mid-write; the temporary file it leaves."""
    before = set(path.parent.glob(".*.tmp")) if path.parent.is_dir() else set()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SHARD_WRITER, str(path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    (leftover,) = set(path.parent.glob(".*.tmp")) - before
    return leftover


def test_killed_writers_files_and_torn_files_are_reclaimed_after_the_grace_period(
    indexed,
) -> None:
    store, _ = indexed
    shard = shard_of("pyutils/cache.py", SHARDS)
    killed_shard_file = kill_a_writer_of(store.shard_file("chunks", shard))
    killed_cache_file = kill_a_writer_of(store.vector_cache_dir(SPEC.model_id) / "1-run.parquet")
    killed_root_file = kill_a_writer_of(store.base / "root.json")
    embeddings = store.shard_file("embeddings", shard)
    embeddings.write_bytes(embeddings.read_bytes()[:50])  # torn by a bad disk or a kill
    (torn,) = quarantine_torn_files(store, [shard])
    assert torn.name.endswith(".torn") and not embeddings.exists()
    old = time.time() - 2 * segments.GC_GRACE_S
    os.utime(killed_shard_file, (old, old))
    os.utime(killed_cache_file, (old, old))
    os.utime(killed_root_file, (old, old))
    # A writer at work right now: its temporary file is young and must stay.
    live_writer_file = store.shard_file("symbols", shard).with_name(".x.parquet.live.tmp")
    live_writer_file.write_bytes(b"being written")

    write_shards(store, only={shard})  # the torn shard is recomputed
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="next")
    assert not killed_shard_file.exists()
    assert not killed_cache_file.exists()
    assert not killed_root_file.exists()
    assert torn.exists(), "a quarantined file is kept for the grace period after quarantine"
    assert live_writer_file.exists()

    os.utime(torn, (old, old))
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="later")
    assert not torn.exists()
    assert live_writer_file.exists()
    assert IndexReader(store.index_path).search("LRUCache", mode="bm25")[0].path == (
        "pyutils/cache.py"
    )


def test_truncated_segment_is_a_clear_error_and_the_next_publish_repairs_it(indexed) -> None:
    store, _ = indexed
    shard = shard_of("pyutils/cache.py", SHARDS)
    segment_dir = store.base / segment_dirs(store)[shard]
    vectors = segment_dir / segments.VECTORS_FILE
    vectors.write_bytes(vectors.read_bytes()[:100])
    with pytest.raises(segments.SegmentError, match=f"shard {shard}") as raised:
        IndexReader(store.index_path)
    assert isinstance(raised.value, IndexNotFoundError)
    assert "coderag index" in str(raised.value)
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="repair")
    reader = IndexReader(store.index_path)
    assert reader.search("LRUCache", mode="bm25")[0].path == "pyutils/cache.py"


def test_deleted_segment_file_is_a_clear_error(indexed) -> None:
    store, _ = indexed
    shard = shard_of("pyutils/cache.py", SHARDS)
    (store.base / segment_dirs(store)[shard] / segments.CHUNKS_FILE).unlink()
    with pytest.raises(segments.SegmentError, match=f"shard {shard} .*chunks.parquet is missing"):
        IndexReader(store.index_path)
    publish_index(store, shard_keys(SHARDS), SPEC, run_id="repair")
    assert IndexReader(store.index_path).size > 0


def test_concurrent_writers_of_one_shard_agree(indexed) -> None:
    store, _ = indexed
    shard = shard_of("pyutils/cache.py", SHARDS)
    first = segments.write_segment(store, shard, model_id=SPEC.model_id, run_id="a")
    second = segments.write_segment(store, shard, model_id=SPEC.model_id, run_id="b")
    assert first.path == second.path
    assert first.segment_id == segment_dirs(store)[shard].rsplit("/", 1)[-1]


# ------------------------------------------------------------------ vectors in segments


def test_chunks_with_equal_content_share_one_stored_vector(tmp_path) -> None:
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    (root / "pyutils" / "cache_copy.py").write_text((root / "pyutils" / "cache.py").read_text())
    store = build(tmp_path / "data", root, 1)
    reader = IndexReader(store.index_path)
    (segment,) = reader.segments
    assert segment.info.distinct_vectors < segment.info.chunks
    assert segment.vectors.count == segment.info.distinct_vectors
    rows = [row for row, symbol in enumerate(reader.symbols) if symbol == "LRUCache"]
    assert {reader.paths[row] for row in rows} == {"pyutils/cache.py", "pyutils/cache_copy.py"}
    assert len({int(segment.vector_of_row[row]) for row in rows}) == 1
    query = np.array(segment.vectors.matrix[segment.vector_of_row[rows[0]]])
    top = reader.vector_ranking(query, 2, None)
    assert sorted(row for row, _ in top) == sorted(rows)
    assert all(score == pytest.approx(1.0, abs=1e-5) for _, score in top)


def test_a_one_shot_reader_answers_like_a_mapped_one(tmp_path, monkeypatch) -> None:
    """One-shot readers read vectors in blocks and rows by record batch instead of mapping;
    small batches and a small cache make every lookup cross batches and evict. (Both scan the
    vectors exactly here; the mapped reader's int8 scan is compared in test_search.)"""
    monkeypatch.setenv("CODERAG_EXACT_VECTORS", "1")
    monkeypatch.setattr(segments.build, "READER_BATCH_ROWS", 8)
    monkeypatch.setattr(segments.reading, "READER_BATCH_ROWS", 8)
    monkeypatch.setattr(segments.reading, "READER_BATCHES_CACHED", 2)
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    store = build(tmp_path / "data", root, 2)
    mapped = IndexReader(store.index_path)
    one_shot = IndexReader(store.index_path, one_shot=True)
    assert max(segment.size for segment in one_shot.segments) > 8
    assert all_searches(one_shot) == all_searches(mapped)
    assert one_shot.paths == mapped.paths and one_shot.symbols == mapped.symbols
    query = fake_vector("ab" * 32)
    for language in ("rust", "python", None):
        mask = mapped._mask(language, None)
        assert one_shot.vector_ranking(query, 5, mask) == mapped.vector_ranking(query, 5, mask)
    for text, path_glob in (("cache", "pyutils/*"), ("matrix", "*.rs")):
        for mode in ("bm25", "hybrid"):
            left = one_shot.search(text, mode=mode, path_glob=path_glob, query_vector=query)
            right = mapped.search(text, mode=mode, path_glob=path_glob, query_vector=query)
            assert results_key(left) == results_key(right) and left


# ------------------------------------------------------------------ decoded content kept


def test_decoded_content_is_bounded_across_segments(indexed) -> None:
    store, _ = indexed
    reader = IndexReader(store.index_path)
    cache = reader.segments[0].content_cache
    assert all(segment.content_cache is cache for segment in reader.segments)
    expected = all_searches(IndexReader(store.index_path))
    cache.budget_bytes = 1  # every new group pushes the older ones out
    assert all_searches(reader) == expected  # results do not depend on what is cached
    assert len(cache) == 1 and cache.bytes > 0


def test_content_cache_drops_the_least_recently_used_first() -> None:
    cache = segments.ContentCache(budget_bytes=250)
    group = {name: pa.chunked_array([pa.array(["x" * 100])]) for name in "abc"}
    cache.put("a", group["a"])
    cache.put("b", group["b"])
    assert cache.get("a") is group["a"]  # a is now the most recently used
    cache.put("c", group["c"])
    assert cache.get("b") is None and cache.get("a") is group["a"] and len(cache) == 2
    assert cache.bytes == group["a"].nbytes + group["c"].nbytes <= 250


def test_a_segment_with_new_vectors_derived_from_its_early_twin_equals_a_fresh_build(
    tmp_path, monkeypatch
) -> None:
    """The early publish writes each shard's segment without vectors; the shard's step then
    writes it with vectors, taking the postings, features and sorted rows from the early one.
    Every file must equal a build from scratch, and no tokenising may happen."""
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    fresh = IndexStore.for_root(tmp_path / "fresh", root)
    write_shards(fresh, 4)
    derived = IndexStore.for_root(tmp_path / "derived", root)
    write_shards(derived, 4)
    embeddings = {shard: derived.shard_file("embeddings", shard).read_bytes() for shard in "0123"}
    for shard in "0123":
        derived.shard_file("embeddings", shard).unlink()
        early = segments.write_segment(derived, shard, model_id=SPEC.model_id, run_id="early")
        assert early.chunks_without_vector == early.chunks > 0
        derived.shard_file("embeddings", shard).write_bytes(embeddings[shard])

    from coderag_assets.segments import build as segment_build

    def no_postings(*args, **kwargs):
        raise AssertionError("postings rebuilt for a segment whose early twin has them")

    with monkeypatch.context() as patch:
        patch.setattr(segment_build, "build_postings", no_postings)
        late = {
            shard: segments.write_segment(derived, shard, model_id=SPEC.model_id, run_id="late")
            for shard in "0123"
        }
    for shard, info in late.items():
        expected = segments.write_segment(fresh, shard, model_id=SPEC.model_id, run_id="late")
        assert info.segment_id == expected.segment_id
        assert info.chunks_without_vector == 0 and info.dim == DIM
        got, want = tree_digest(info.path), tree_digest(expected.path)
        del got[INFO_FILE], want[INFO_FILE]
        assert got == want
        got_info, want_info = dataclasses.asdict(info), dataclasses.asdict(expected)
        for name in ("path", "created_at"):
            del got_info[name], want_info[name]
        assert got_info == want_info
        segments.verify_segment(info)
    # the early segment's files are unharmed by the links
    for shard in "0123":
        for early in (derived.base / "segments" / shard).iterdir():
            if early.is_dir() and early.name != late[shard].segment_id:
                segments.verify_segment(segments.SegmentInfo.load(shard, early))
    reader_fresh = IndexReader(publish_and_path(fresh))
    reader_derived = IndexReader(publish_and_path(derived))
    assert all_searches(reader_derived) == all_searches(reader_fresh)


def publish_and_path(store: IndexStore) -> Path:
    publish_index(store, shard_keys(4), SPEC, run_id="late")
    return store.index_path
