"""Immutable per-shard segments and the versioned manifest that publishes them.

Layout, next to the shard Parquet files of one index (see `store`)::

    segments/<shard>/<segment_id>/    one immutable segment (never modified once renamed in)
      segment.json                    SegmentInfo: counts, inputs, sizes of the files below
      chunks.parquet                  chunk rows sorted by (path, start_line, chunker order):
                                      the columns of the `chunks` view (content included)
      reader.arrow                    what search reads per chunk, row-aligned with
                                      chunks.parquet, as an uncompressed Arrow IPC file in
                                      record batches of READER_BATCH_ROWS (long-lived readers
                                      map it, one-shot readers read the batches they need,
                                      see `ReaderRows`): path, language, lines, symbol, kind, the
                                      stored ranking features (name/file words, test/glue/
                                      non-code flags, definition-run ids, BM25 document
                                      lengths) and `vector`, the row of its vector in
                                      vectors.npy (-1: none yet)
      vectors.npy                     float32 (distinct vectors × dim): each distinct vector
                                      once (see `vectors`)
      terms.npy                       sorted BM25 vocabulary of the segment (stemmed terms)
      postings_offsets.npy            int64, len(terms) + 1: term i owns rows[off[i]:off[i+1]]
      postings_rows.npy               int32 chunk rows, ascending within a term
      postings_tf.npy                 float32 term count in the chunk's token stream
      postings_name_tf.npy            float32 term count in the definition's own name
      files.parquet                   the shard's manifest rows plus chunks per file
      symbols.parquet                 definitions, sorted by (path, line)
      occurrences.parquet             identifier occurrences (`OCCURRENCE_SCHEMA`), sorted by
                                      (name, path, line, column) in small row groups, so a
                                      lookup by name reads only the groups holding it (absent
                                      in segments built before occurrences were recorded)
    segments/<shard>/LATEST           which segment the shard's current input files produced
    manifests/<version>.json          one published version: shard → segment dir, meta, totals
    CURRENT                           the live version number (replaced atomically)
    readers/<v>.<pid>.<id>.lease      a reader's hold on version <v> (`VersionLease`)
    index.duckdb                      SQL surface: `meta` table, views `chunks`/`files`/`symbols`
                                      (and `occurrences` when every segment has them) over the
                                      CURRENT version's segment Parquet files

**Segments.** `write_segment` turns one shard's Parquet files (manifest, chunks, symbols,
occurrences, embeddings) into a segment. Its id is a digest of those input bytes and the model id, so an
unchanged shard yields the same id and is not rewritten, and two processes writing the same
shard produce the same directory (the first rename wins, the other discards its copy). A
segment is built in a temporary directory and renamed into place, so a killed writer leaves
either no segment or a complete one; `segment.json` records every file's size, which is how a
truncated or deleted file is detected (`SegmentError`, naming the shard) and repaired by the
next `ensure_segment`.

**Publishing.** `publish` validates the segments of the new version (the index's checks, per
segment, from the counts recorded when each was written — O(shards), no chunk rows are read),
writes `manifests/<version>.json`, builds `index.duckdb` under a temporary name, then replaces
`CURRENT` (the commit point) and finally `index.duckdb`. A failure before the `CURRENT` flip
leaves the old version live and removes what the publish wrote (its manifest, the half-built
`index.duckdb`, temporary files); a full disk anywhere on the way (a segment, the manifest,
`index.duckdb`, `CURRENT`) is a `DiskFullError` naming the step. A publish killed before the
flip leaves the same files behind for the next publish to reclaim. A kill between the flip
and the `index.duckdb` replacement leaves the SQL surface one version behind (both versions'
segments are kept) until the next publish. Readers resolve `CURRENT` once and use only that
manifest's segments, so they never see a mix.

**BM25 across segments.** Each segment stores raw term counts (postings), not scores. The
global statistics — N, each query term's document frequency, the average document length —
are summed over the manifest's segments at query time (`bm25_scores`), so scores are exactly
those of a single-segment build of the same chunks. `bm25s` and similar libraries bake their
own index's IDF (and length normalisation) into the stored score matrix, so independently
built segments cannot be combined into correct global scores; plain arrays also need no
per-open work, and a query reads only its terms' posting ranges (`PostingsFile`).

**Reclaiming.** At each publish (under the writer lock), segments and manifests referenced by
neither the current version, the `KEEP_PREVIOUS_VERSIONS` before it, a version some reader
holds, a shard's `LATEST`, nor younger than `GC_GRACE_S` are removed, and so are manifests
newer than `CURRENT` (a publish that died before its flip) whatever their age. A reader holds
its version with a `VersionLease` (a locked file under `readers/`) until it closes or moves
on, so its files, which its DuckDB views (`IndexReader.con`) read by path, stay; once it lets
go, the next publish reclaims them. Without a lease (a read-only index directory) a
long-lived reader still keeps answering on Linux after its files are unlinked: it holds
every file it reads open or mapped (a one-shot reader opens chunks.parquet and the vectors
when its query needs them, moments later).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coderag_assets import vectors
from coderag_assets.features import (
    definition_runs,
    file_words,
    is_test_path,
    name_tokens,
    name_words,
    non_code_languages,
)
from coderag_assets.store import (
    CHUNK_SCHEMA,
    INDEX_SCHEMA_VERSION,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    CheckOutcome,
    IndexNotFoundError,
    IndexStore,
    IndexValidationError,
    release_unused_memory,
    reporting_disk_full,
    vector_matrix,
    with_bm25_text,
    write_bytes_atomic,
)
from coderag_assets.tokens import stem
from coderag_assets.vectors import VECTORS_FILE, SegmentVectors

SEGMENT_FORMAT = 3
SEGMENTS_DIR = "segments"
MANIFESTS_DIR = "manifests"
CURRENT_FILE = "CURRENT"
LATEST_FILE = "LATEST"
READERS_DIR = "readers"
LEASE_SUFFIX = ".lease"
INFO_FILE = "segment.json"
CHUNKS_FILE = "chunks.parquet"
FILES_FILE = "files.parquet"
SYMBOLS_FILE = "symbols.parquet"
OCCURRENCES_FILE = "occurrences.parquet"
READER_FILE = "reader.arrow"
TERMS_FILE = "terms.npy"
OFFSETS_FILE = "postings_offsets.npy"
ROWS_FILE = "postings_rows.npy"
TF_FILE = "postings_tf.npy"
NAME_TF_FILE = "postings_name_tf.npy"
POSTINGS_FILES = (TERMS_FILE, OFFSETS_FILE, ROWS_FILE, TF_FILE, NAME_TF_FILE)
SEGMENT_FILES = (
    CHUNKS_FILE,
    READER_FILE,
    FILES_FILE,
    SYMBOLS_FILE,
    VECTORS_FILE,
    TERMS_FILE,
    OFFSETS_FILE,
    ROWS_FILE,
    TF_FILE,
    NAME_TF_FILE,
)
#: Segment files that segments written before they existed lack; checked when recorded.
OPTIONAL_SEGMENT_FILES = (OCCURRENCES_FILE,)
INPUT_KINDS = ("manifest", "chunks", "symbols", "occurrences", "embeddings")
CHUNK_ROW_GROUP_ROWS = 256  # rows per Parquet row group: what fetching one result decodes
TEXT_COLUMNS = ("content", "bm25_text")  # chunks.parquet columns written without statistics
CONTENT_GROUPS_CACHED = 32  # decoded content row groups a warm reader keeps per segment
READER_BATCH_ROWS = 1024  # rows per record batch of reader.arrow: what one row lookup reads
READER_BATCHES_CACHED = 8  # decoded reader.arrow batches a segment keeps (one-shot readers)
POSTINGS_BATCH_ROWS = 2048  # chunks tokenised at once while building postings
OCCURRENCE_ROW_GROUP_ROWS = 8192  # a name lookup decodes about one group per segment

#: One identifier occurrence (see `chunking.occurrences`): `line`/`column` 1-based, the column
#: in characters; `context` is code, comment, string or text (a file without a grammar);
#: `language` the chunk language of the file.
OCCURRENCE_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("line", pa.int32()),
        ("column", pa.int32()),
        ("context", pa.string()),
    ]
)
KEEP_PREVIOUS_VERSIONS = 2  # versions kept besides the current one
GC_GRACE_S = 600.0  # nothing younger than this is reclaimed
BM25_K1 = 1.2
BM25_B = 0.75

#: Columns of the `chunks` view (the SQL surface); the rest of chunks.parquet is ranking data.
CHUNK_VIEW_COLUMNS = (
    "chunk_id",
    "path",
    "language",
    "start_line",
    "end_line",
    "symbol",
    "kind",
    "content",
    "content_hash",
    "bm25_text",
    "embedding_dim",
    "model_id",
    "chunker_version",
    "chunk_run_id",
    "embed_run_id",
)
#: Where a chunk is and what it defines: in both chunks.parquet and reader.arrow.
LOCATION_COLUMNS = ("path", "language", "start_line", "end_line", "symbol", "kind")
#: Fixed-width columns of reader.arrow, read whole when a segment is opened.
READER_FEATURES = ("is_test", "is_glue", "is_non_code", "run", "body_len", "name_len", "vector")
#: Columns of reader.arrow: what search reads per chunk (never `content`).
READER_COLUMNS = (
    "path",
    "language",
    "start_line",
    "end_line",
    "symbol",
    "kind",
    "name_words",
    "file_words",
    "is_test",
    "is_glue",
    "is_non_code",
    "run",
    "body_len",
    "name_len",
    "vector",
)


class SegmentError(IndexNotFoundError):
    """A segment of the published version is missing or damaged; `coderag index` rewrites it."""

    def __init__(self, shard: str, path: Path, reason: str):
        self.shard = shard
        self.path = path
        super().__init__(
            f"segment of shard {shard} at {path} is unusable ({reason}); "
            "run `coderag index` to repair it"
        )


# ------------------------------------------------------------------ segment records


@dataclass(frozen=True)
class SegmentInfo:
    """What one segment holds and was built from (`segment.json`).

    `path` is the segment directory. `chunk_file` is the fingerprint of the chunks shard file
    it was built from (as `IndexStore.read_shard_pinned` computes it); `file_sizes` the byte
    size of each segment file, checked by `verify_segment`.
    """

    shard: str
    segment_id: str
    path: Path
    model_id: str
    embedded_model_id: str | None  # the model of the shard's embeddings file (None: none)
    dim: int  # vector dimension; 0 when the segment has no vectors
    chunks: int
    files: int
    symbols: int
    source_chunks: int  # rows of the chunks shard file
    chunks_without_vector: int
    distinct_vectors: int  # rows of vectors.npy (chunks with equal content share one)
    orphan_chunks: int  # chunks whose file is not an indexable file of the shard's manifest
    runs: int  # definition runs (ids 0..runs-1 in the `run` column)
    body_tokens: int
    name_tokens: int
    chunk_file: str | None
    run_id: str
    created_at: float
    file_sizes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] | None = None  # manifest rows per skip reason (None: not recorded)

    def to_json(self) -> dict[str, object]:
        """The `segment.json` record (the directory is where it lies, so `path` is left out)."""
        payload = asdict(self)
        del payload["path"]
        payload["format"] = SEGMENT_FORMAT
        return payload

    @classmethod
    def load(cls, shard: str, path: Path) -> SegmentInfo:
        """The segment at `path`; SegmentError when its record is missing or unreadable."""
        try:
            payload = json.loads((path / INFO_FILE).read_text())
        except (OSError, ValueError) as error:
            raise SegmentError(shard, path, f"cannot read {INFO_FILE}: {error}") from error
        if payload.pop("format", None) != SEGMENT_FORMAT:
            raise SegmentError(shard, path, "written by another segment format")
        payload["path"] = path
        return cls(**payload)


def verify_segment(info: SegmentInfo) -> None:
    """Raise SegmentError if any file of the segment is missing or not the size it was written."""
    optional = tuple(name for name in OPTIONAL_SEGMENT_FILES if name in info.file_sizes)
    for name in SEGMENT_FILES + optional:
        file_path = info.path / name
        try:
            size = file_path.stat().st_size
        except FileNotFoundError as error:
            raise SegmentError(info.shard, info.path, f"{name} is missing") from error
        if size != info.file_sizes.get(name):
            raise SegmentError(
                info.shard,
                info.path,
                f"{name} is {size} bytes, {info.file_sizes.get(name)} were written",
            )


def _input_stamps(store: IndexStore, shard: str) -> dict[str, list[int] | None]:
    """(inode, size, mtime_ns) of each input shard file (None when absent). Shard files are
    replaced whole, so equal stamps mean the same input; unequal stamps fall back to digests."""
    stamps: dict[str, list[int] | None] = {}
    for kind in INPUT_KINDS:
        try:
            stat = store.shard_file(kind, shard).stat()
        except FileNotFoundError:
            stamps[kind] = None
            continue
        stamps[kind] = [stat.st_ino, stat.st_size, stat.st_mtime_ns]
    return stamps


def _segments_dir(base: Path, shard: str) -> Path:
    return base / SEGMENTS_DIR / shard


def _latest(store: IndexStore, shard: str) -> tuple[str, dict] | None:
    try:
        payload = json.loads((_segments_dir(store.base, shard) / LATEST_FILE).read_text())
        return str(payload["segment_id"]), payload
    except (OSError, ValueError, KeyError):
        return None


def ensure_segment(store: IndexStore, shard: str, *, model_id: str, run_id: str) -> SegmentInfo:
    """The segment of the shard's current input files: the one `write_segment` last recorded
    when its inputs are unchanged and its files intact (a few stats), else a new one."""
    latest = _latest(store, shard)
    if latest is not None:
        segment_id, payload = latest
        if payload.get("model_id") == model_id and payload.get("inputs") == _input_stamps(
            store, shard
        ):
            try:
                info = SegmentInfo.load(shard, _segments_dir(store.base, shard) / segment_id)
                verify_segment(info)
                return info
            except SegmentError:
                pass  # damaged: rewritten below
    return write_segment(store, shard, model_id=model_id, run_id=run_id)


def write_segment(store: IndexStore, shard: str, *, model_id: str, run_id: str) -> SegmentInfo:
    """Write (or find) the segment of the shard's current Parquet files and record it as the
    shard's LATEST. Idempotent; safe to run concurrently for any shards, including the same
    one. Vectors are taken from the shard's embeddings file when it was made with `model_id`;
    chunks without one are counted in `chunks_without_vector` (and fail validation).

    Raises DiskFullError (naming the shard; the half-built directory is removed) when the
    disk fills up."""
    stamps = _input_stamps(store, shard)
    inputs: dict[str, bytes | None] = {}
    for kind in INPUT_KINDS:
        try:
            inputs[kind] = store.shard_file(kind, shard).read_bytes()
        except FileNotFoundError:
            inputs[kind] = None
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"segment-format={SEGMENT_FORMAT};model={model_id};".encode())
    for kind in INPUT_KINDS:
        data = inputs[kind]
        digest.update(f"{kind}:{-1 if data is None else len(data)}:".encode())
        digest.update(data or b"")
    segment_id = digest.hexdigest()
    shard_dir = _segments_dir(store.base, shard)
    final = shard_dir / segment_id
    with reporting_disk_full(f"writing the segment of shard {shard}", final):
        info = _existing_segment(shard, final)
        if info is None:
            shard_dir.mkdir(parents=True, exist_ok=True)
            building = shard_dir / f".building-{uuid.uuid4().hex}"
            try:
                _build_segment(building, shard, segment_id, inputs, model_id, run_id)
                try:
                    os.rename(building, final)
                except OSError:
                    if _existing_segment(shard, final) is None:  # not a concurrent twin
                        raise
            finally:
                shutil.rmtree(building, ignore_errors=True)
                release_unused_memory()
            info = SegmentInfo.load(shard, final)
        latest = {"segment_id": segment_id, "model_id": model_id, "inputs": stamps}
        write_bytes_atomic(shard_dir / LATEST_FILE, json.dumps(latest).encode("utf-8"))
    return info


def _existing_segment(shard: str, path: Path) -> SegmentInfo | None:
    """The intact segment at `path`, or None; a damaged one is moved aside to be rebuilt."""
    if not path.exists():
        return None
    try:
        info = SegmentInfo.load(shard, path)
        verify_segment(info)
        return info
    except SegmentError:
        trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
        try:
            os.rename(path, trash)
        except OSError:
            return None
        shutil.rmtree(trash, ignore_errors=True)
        return None


def _read_input(data: bytes | None, schema: pa.Schema) -> pa.Table:
    return schema.empty_table() if data is None else pq.read_table(pa.BufferReader(data))


def _build_segment(
    directory: Path,
    shard: str,
    segment_id: str,
    inputs: Mapping[str, bytes | None],
    model_id: str,
    run_id: str,
) -> None:
    """Write every file of one segment into `directory` (created here), `segment.json` last."""
    directory.mkdir(parents=True)
    # Occurrences first, on their own: the largest input once decoded, and sorting copies it.
    has_occurrences = inputs["occurrences"] is not None
    if has_occurrences:
        occurrence_rows = _read_input(inputs["occurrences"], OCCURRENCE_SCHEMA)
        occurrence_rows = occurrence_rows.select(OCCURRENCE_SCHEMA.names).cast(OCCURRENCE_SCHEMA)
        occurrence_rows = occurrence_rows.sort_by(
            [(name, "ascending") for name in ("name", "path", "line", "column")]
        )
        pq.write_table(
            occurrence_rows,
            directory / OCCURRENCES_FILE,
            compression="zstd",
            row_group_size=OCCURRENCE_ROW_GROUP_ROWS,
        )
        del occurrence_rows
    manifest = _read_input(inputs["manifest"], MANIFEST_SCHEMA)
    source_chunks = _read_input(inputs["chunks"], CHUNK_SCHEMA)
    symbols = _read_input(inputs["symbols"], SYMBOL_SCHEMA)
    embeddings = _read_input(inputs["embeddings"], pa.schema([]))

    order = pa.array(np.arange(source_chunks.num_rows, dtype=np.int64))
    chunk_rows = with_bm25_text(source_chunks).append_column("_order", order)
    chunk_rows = chunk_rows.sort_by(
        [("path", "ascending"), ("start_line", "ascending"), ("_order", "ascending")]
    ).drop_columns(["_order"])
    count = chunk_rows.num_rows
    source_chunk_count = source_chunks.num_rows
    del source_chunks, order

    # vectors: each distinct one once, rows point at theirs
    embedded_model_id = None
    dim = 0
    vector_rows = np.full(count, -1, dtype=np.int64)
    embed_run_ids: pa.Array = pa.nulls(count, pa.string())
    if embeddings.num_rows:
        embedded_model_id = embeddings.column("model_id")[0].as_py()
        if embedded_model_id == model_id:
            dim = embeddings.schema.field("vector").type.list_size
            found = pc.index_in(
                chunk_rows.column("content_hash"), embeddings.column("content_hash")
            )
            vector_rows = found.fill_null(-1).to_numpy().astype(np.int64)
            embed_run_ids = pc.take(embeddings.column("run_id"), found).combine_chunks()
    sources, vector_of_row = vectors.distinct(vector_rows)
    matrix = (
        vector_matrix(embeddings.column("vector"))[sources]
        if dim
        else np.zeros((0, 0), dtype=np.float32)
    )
    has_vector = vector_of_row >= 0
    vectors.save(directory, matrix)

    # ranking features
    paths = chunk_rows.column("path").to_pylist()
    chunk_symbols = chunk_rows.column("symbol").to_pylist()
    languages = chunk_rows.column("language").to_pylist()
    non_code = non_code_languages()
    names_of = {symbol: sorted(name_words(symbol)) for symbol in set(chunk_symbols)}
    files_of = {path: sorted(file_words(path)) for path in set(paths)}
    test_of = {path: is_test_path(path) for path in set(paths)}
    runs = definition_runs(paths, chunk_symbols)
    postings = build_postings(chunk_rows.column("bm25_text"), chunk_symbols, stemmed=True)
    postings.save(directory)

    indexable = set(
        manifest.filter(pc.is_null(manifest.column("skip_reason"))).column("path").to_pylist()
    )
    orphans = sum(1 for path in paths if path not in indexable)
    n = count
    located = {name: chunk_rows.column(name) for name in LOCATION_COLUMNS}
    chunk_table = pa.table(
        {
            "chunk_id": chunk_rows.column("chunk_id"),
            **located,
            "content": chunk_rows.column("content"),
            "content_hash": chunk_rows.column("content_hash"),
            "bm25_text": chunk_rows.column("bm25_text"),
            "embedding_dim": pa.array(
                np.where(has_vector, dim, 0).astype(np.int32), mask=~has_vector
            ),
            "model_id": pa.array([model_id] * n, pa.string()),
            "chunker_version": chunk_rows.column("chunker_version"),
            "chunk_run_id": chunk_rows.column("run_id"),
            "embed_run_id": embed_run_ids,
        }
    )
    pq.write_table(
        chunk_table,
        directory / CHUNKS_FILE,
        compression="zstd",
        row_group_size=CHUNK_ROW_GROUP_ROWS,
        # no min/max of chunk texts in the footer: kilobytes per row group that no filter uses
        write_statistics=[name for name in chunk_table.column_names if name not in TEXT_COLUMNS],
    )
    del chunk_table
    reader_table = pa.table(
        {
            **located,
            "name_words": pa.array([names_of[s] for s in chunk_symbols], pa.list_(pa.string())),
            "file_words": pa.array([files_of[p] for p in paths], pa.list_(pa.string())),
            "is_test": pa.array([test_of[p] for p in paths], pa.bool_()),
            "is_glue": pa.array(
                [not s and lang not in non_code for s, lang in zip(chunk_symbols, languages)],
                pa.bool_(),
            ),
            "is_non_code": pa.array([lang in non_code for lang in languages], pa.bool_()),
            "run": pa.array(runs, pa.int64()),
            "body_len": pa.array(postings.body_len, pa.int32()),
            "name_len": pa.array(postings.name_len, pa.int32()),
            "vector": pa.array(vector_of_row, pa.int32()),
        }
    ).select(list(READER_COLUMNS))
    with (
        pa.OSFile(str(directory / READER_FILE), "wb") as sink,
        pa.ipc.new_file(sink, reader_table.schema) as writer,
    ):
        writer.write_table(reader_table.combine_chunks(), max_chunksize=READER_BATCH_ROWS)
    per_path = pc.value_counts(chunk_rows.column("path")) if n else None
    chunk_counts = (
        dict(zip(per_path.field("values").to_pylist(), per_path.field("counts").to_pylist()))
        if per_path is not None
        else {}
    )
    file_rows = manifest.sort_by([("path", "ascending")])
    file_rows = file_rows.append_column(
        "chunks",
        pa.array(
            [chunk_counts.get(p, 0) for p in file_rows.column("path").to_pylist()], pa.int32()
        ),
    )
    pq.write_table(file_rows, directory / FILES_FILE, compression="zstd")
    symbol_rows = symbols.sort_by([("path", "ascending"), ("line", "ascending")])
    pq.write_table(symbol_rows, directory / SYMBOLS_FILE, compression="zstd")
    written = list(SEGMENT_FILES)
    if has_occurrences:
        written.append(OCCURRENCES_FILE)

    chunk_file = (
        None
        if inputs["chunks"] is None
        else hashlib.blake2b(inputs["chunks"], digest_size=16).hexdigest()
    )
    info = SegmentInfo(
        shard=shard,
        segment_id=segment_id,
        path=directory,
        model_id=model_id,
        embedded_model_id=embedded_model_id,
        dim=dim,
        chunks=n,
        files=manifest.num_rows,
        symbols=symbols.num_rows,
        source_chunks=source_chunk_count,
        chunks_without_vector=int(n - has_vector.sum()),
        distinct_vectors=len(sources),
        orphan_chunks=orphans,
        runs=int(runs[-1] + 1) if n else 0,
        body_tokens=int(postings.body_len.sum()),
        name_tokens=int(postings.name_len.sum()),
        chunk_file=chunk_file,
        run_id=run_id,
        created_at=time.time(),
        file_sizes={name: (directory / name).stat().st_size for name in written},
        skipped=dict(Counter(manifest.column("skip_reason").drop_null().to_pylist())),
    )
    (directory / INFO_FILE).write_text(json.dumps(info.to_json()))


# ------------------------------------------------------------------ BM25 postings


@dataclass(frozen=True)
class Postings:
    """Term counts of one segment in CSC layout: term `terms[i]` occurs in chunk rows
    `rows[offsets[i]:offsets[i+1]]`, `tf` times in its token stream and `name_tf` times in its
    definition's name. `body_len`/`name_len` are per-chunk token counts (BM25 lengths)."""

    terms: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    name_tf: np.ndarray
    body_len: np.ndarray
    name_len: np.ndarray

    def lookup(self, term: str) -> slice | None:
        """The posting range of `term`, None when the segment does not have it."""
        index = int(np.searchsorted(self.terms, term))
        if index >= len(self.terms) or self.terms[index] != term:
            return None
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def term_postings(self, where: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, tf, name_tf) of a posting range from `lookup`."""
        return self.rows[where], self.tf[where], self.name_tf[where]

    def save(self, directory: Path) -> None:
        np.save(directory / TERMS_FILE, self.terms)
        np.save(directory / OFFSETS_FILE, self.offsets)
        np.save(directory / ROWS_FILE, self.rows)
        np.save(directory / TF_FILE, self.tf)
        np.save(directory / NAME_TF_FILE, self.name_tf)


class _NpyFile:
    """A 1-d `.npy` file read by position (`os.pread`), never mapped: a read costs what it
    returns, and the pages it touched are not charged to the process."""

    def __init__(self, path: Path):
        mapped = np.load(path, mmap_mode="r")  # header only: nothing is paged in
        if mapped.ndim != 1:
            raise ValueError(f"{path.name} is not one-dimensional")
        self.dtype = mapped.dtype
        self.length = len(mapped)
        self.offset = int(mapped.offset) if isinstance(mapped, np.memmap) else 0
        del mapped
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.length

    def __del__(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)

    def read(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        size = self.dtype.itemsize
        data = os.pread(self.fd, count * size, self.offset + start * size)
        if len(data) != count * size:
            raise OSError(f"{self.length} entries were recorded but the file is shorter")
        return np.frombuffer(data, dtype=self.dtype)


class PostingsFile:
    """A saved segment's postings, read by position per query term (`_NpyFile`): a term is
    found by binary search over the sorted vocabulary and its posting range is read, so a
    process touches the terms it looks up, not the segment's whole vocabulary and postings.
    `offsets` (one entry per term) is held in memory.

    `mapped` (long-lived readers) maps the files instead (`Postings` over the mapped arrays):
    a lookup is then a NumPy binary search and a slice, not about 14 + 3 `pread` calls per
    term and segment, which at 64 segments was most of a warm query's time (in-process warm
    hybrid p50 at 400k chunks: 33 → 28 ms; bm25: 16 → 10 ms)."""

    def __init__(
        self, directory: Path, body_len: np.ndarray, name_len: np.ndarray, *, mapped: bool = False
    ):
        def open_file(name: str) -> _NpyFile | np.ndarray:
            if not mapped:
                return _NpyFile(directory / name)
            array = np.load(directory / name, mmap_mode="r")
            if array.ndim != 1:
                raise ValueError(f"{name} is not one-dimensional")
            return array

        self.terms = open_file(TERMS_FILE)
        self.offsets = np.load(directory / OFFSETS_FILE)
        self.rows = open_file(ROWS_FILE)
        self.tf = open_file(TF_FILE)
        self.name_tf = open_file(NAME_TF_FILE)
        self.body_len = body_len
        self.name_len = name_len
        if len(self.offsets) != len(self.terms) + 1 or not (
            len(self.rows) == len(self.tf) == len(self.name_tf) == int(self.offsets[-1])
        ):
            raise ValueError("postings files disagree on their sizes")
        self.mapped = (
            Postings(self.terms, self.offsets, self.rows, self.tf, self.name_tf, body_len, name_len)
            if mapped
            else None
        )

    def lookup(self, term: str) -> slice | None:
        """The posting range of `term`, None when the segment does not have it."""
        if self.mapped is not None:
            return self.mapped.lookup(term)
        low, high = 0, len(self.terms)
        while low < high:  # first index whose term is >= `term`
            middle = (low + high) // 2
            if str(self.terms.read(middle, middle + 1)[0]) < term:
                low = middle + 1
            else:
                high = middle
        if low >= len(self.terms) or str(self.terms.read(low, low + 1)[0]) != term:
            return None
        return slice(int(self.offsets[low]), int(self.offsets[low + 1]))

    def term_postings(self, where: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, tf, name_tf) of a posting range from `lookup`."""
        if self.mapped is not None:
            return self.mapped.term_postings(where)
        start, stop = where.start, where.stop
        return (
            self.rows.read(start, stop),
            self.tf.read(start, stop),
            self.name_tf.read(start, stop),
        )


def build_postings(
    bm25_texts: pa.Array | pa.ChunkedArray | Sequence[str],
    symbols: Sequence[str],
    *,
    stemmed: bool,
    batch_rows: int = POSTINGS_BATCH_ROWS,
) -> Postings:
    """Postings of chunks given their stored token streams (`bm25_text`, space-separated) and
    symbols; tokens sharing a stem share a term when `stemmed`. Chunks are tokenised
    `batch_rows` at a time, so memory follows the batch (token arrays) plus the postings, not
    the segment's token count."""
    size = len(symbols)
    if isinstance(bm25_texts, pa.ChunkedArray):
        texts = bm25_texts.combine_chunks()
    elif isinstance(bm25_texts, pa.Array):
        texts = bm25_texts
    else:
        texts = pa.array(list(bm25_texts), pa.string())
    term_ids: dict[str, int] = {}
    batch_terms: list[np.ndarray] = []
    batch_rows_found: list[np.ndarray] = []
    batch_tf: list[np.ndarray] = []
    batch_name_tf: list[np.ndarray] = []
    body_len = np.zeros(size, dtype=np.int32)
    name_len = np.zeros(size, dtype=np.int32)
    for first in range(0, size, max(batch_rows, 1)):
        last = min(size, first + max(batch_rows, 1))
        batch = _batch_postings(texts.slice(first, last - first), symbols[first:last], stemmed)
        ids = np.array([term_ids.setdefault(t, len(term_ids)) for t in batch.vocabulary])
        batch_terms.append(ids[batch.terms].astype(np.int64) if len(ids) else batch.terms)
        batch_rows_found.append(batch.rows + first)
        batch_tf.append(batch.tf)
        batch_name_tf.append(batch.name_tf)
        body_len[first:last] = batch.body_len
        name_len[first:last] = batch.name_len
    vocabulary = sorted(term_ids)
    rank = np.zeros(len(term_ids), dtype=np.int64)
    rank[[term_ids[term] for term in vocabulary]] = np.arange(len(vocabulary))
    terms = rank[np.concatenate(batch_terms)] if batch_terms else np.zeros(0, np.int64)
    rows = np.concatenate(batch_rows_found) if batch_rows_found else np.zeros(0, np.int64)
    order = np.lexsort((rows, terms))
    offsets = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=len(vocabulary)), out=offsets[1:])
    empty = np.zeros(0, dtype=np.float32)
    return Postings(
        terms=np.array(vocabulary, dtype=str) if vocabulary else np.zeros(0, dtype="<U1"),
        offsets=offsets,
        rows=rows[order].astype(np.int32),
        tf=np.concatenate(batch_tf)[order] if batch_tf else empty,
        name_tf=np.concatenate(batch_name_tf)[order] if batch_name_tf else empty,
        body_len=body_len,
        name_len=name_len,
    )


@dataclass(frozen=True)
class _BatchPostings:
    """Postings of a batch of chunks: `vocabulary` (its terms), and per (term, row) pair the
    index of the term in `vocabulary`, the row in the batch and the two term counts."""

    vocabulary: list[str]
    terms: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    name_tf: np.ndarray
    body_len: np.ndarray
    name_len: np.ndarray


def _batch_postings(texts: pa.Array, symbols: Sequence[str], stemmed: bool) -> _BatchPostings:
    size = len(symbols)
    split = pc.split_pattern(texts, " ")
    body_tokens = pc.list_flatten(split)
    body_rows = pc.list_parent_indices(split).to_numpy().astype(np.int64)
    keep = pc.not_equal(body_tokens, "")
    body_tokens = body_tokens.filter(keep)
    body_rows = body_rows[keep.to_numpy(zero_copy_only=False)]
    name_row_list: list[int] = []
    name_token_list: list[str] = []
    for row, symbol in enumerate(symbols):
        if symbol:
            for token in name_tokens(symbol):
                name_row_list.append(row)
                name_token_list.append(token)
    tokens = pa.concat_arrays([body_tokens, pa.array(name_token_list, pa.string())])
    rows = np.concatenate([body_rows, np.array(name_row_list, dtype=np.int64)])
    is_name = np.zeros(len(rows), dtype=bool)
    is_name[len(body_rows) :] = True
    encoded = tokens.dictionary_encode()
    token_terms = [stem(t) if stemmed else t for t in encoded.dictionary.to_pylist()]
    vocabulary = sorted(set(token_terms))
    term_id = {term: index for index, term in enumerate(vocabulary)}
    term_of_token = np.array([term_id[t] for t in token_terms], dtype=np.int64)
    terms_of_rows = (
        term_of_token[encoded.indices.to_numpy(zero_copy_only=False)]
        if len(rows)
        else (np.zeros(0, dtype=np.int64))
    )
    keys = terms_of_rows * max(size, 1) + rows
    body_keys, body_counts = np.unique(keys[~is_name], return_counts=True)
    name_keys, name_counts = np.unique(keys[is_name], return_counts=True)
    all_keys = np.union1d(body_keys, name_keys)
    tf = np.zeros(len(all_keys), dtype=np.float32)
    tf[np.searchsorted(all_keys, body_keys)] = body_counts
    name_tf = np.zeros(len(all_keys), dtype=np.float32)
    name_tf[np.searchsorted(all_keys, name_keys)] = name_counts
    return _BatchPostings(
        vocabulary=vocabulary,
        terms=all_keys // max(size, 1),
        rows=all_keys % max(size, 1),
        tf=tf,
        name_tf=name_tf,
        body_len=np.bincount(body_rows, minlength=size).astype(np.int32),
        name_len=np.bincount(np.array(name_row_list, dtype=np.int64), minlength=size).astype(
            np.int32
        ),
    )


def bm25_norms(body_len: np.ndarray, name_len: np.ndarray, name_tf: float) -> np.ndarray:
    """Per-chunk BM25 length normalisation `k1 (1 - b + b·len/avg)` with the global average
    length (name tokens count `name_tf` each, as in the postings)."""
    lengths = body_len.astype(np.float32) + np.float32(name_tf) * name_len.astype(np.float32)
    size = len(lengths)
    average = max(float(lengths.sum(dtype=np.float64)) / size if size else 1.0, 1.0)
    return BM25_K1 * (1 - BM25_B + BM25_B * lengths / average)


def bm25_scores(
    parts: Sequence[tuple[int, Postings | PostingsFile]],
    norms: np.ndarray,
    terms: Sequence[str],
    *,
    name_tf: float,
) -> np.ndarray | None:
    """Okapi BM25 of every chunk for `terms` over segments given as (first global row,
    postings); N, document frequencies and lengths are global, so the scores equal those of
    one segment holding every chunk. None when no term occurs anywhere."""
    size = len(norms)
    scores = np.zeros(size, dtype=np.float32)
    found = False
    for term in terms:
        term_rows, term_tf = [], []
        for first_row, postings in parts:
            where = postings.lookup(term)
            if where is None:
                continue
            rows_of_term, body_tf, name_tf_of_term = postings.term_postings(where)
            tf = body_tf + np.float32(name_tf) * name_tf_of_term
            present = tf > 0
            term_rows.append(rows_of_term[present].astype(np.int64) + first_row)
            term_tf.append(tf[present])
        rows = np.concatenate(term_rows) if term_rows else np.zeros(0, dtype=np.int64)
        if not len(rows):
            continue
        found = True
        tf = np.concatenate(term_tf)
        frequency = len(rows)
        idf = np.float32(np.log1p((size - frequency + 0.5) / (frequency + 0.5)))
        weights = tf * np.float32(BM25_K1 + 1) / (tf + norms[rows])
        scores[rows] += weights * idf
    return scores if found else None


# ------------------------------------------------------------------ reading segments


class ReaderRows:
    """One segment's reader.arrow: the ranking features (`READER_FEATURES`) as NumPy arrays,
    read whole when opened (a few bytes per chunk), and the per-chunk values (path, symbol,
    lines, name and file words ...) of the rows a query ranks or returns.

    `mapped` (a long-lived reader) maps the file and reads values from the map. Otherwise the
    file is read by position: a value is read with its record batch (`READER_BATCH_ROWS`
    rows; the last `READER_BATCHES_CACHED` batches are kept), so a one-shot process never
    maps the file — scattered lookups in a mapped file leave much more of it resident than
    they read (see `vectors`). Raises ValueError / ArrowException when the file does not
    hold `count` rows.
    """

    def __init__(self, path: Path, count: int, *, mapped: bool):
        self.count = count
        self._table: pa.Table | None = None
        self._batches: dict[int, pa.RecordBatch] = {}
        if mapped:
            self._table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
            features = self._table.select(list(READER_FEATURES))
        else:
            self._source = pa.OSFile(str(path))
            self._reader = pa.ipc.open_file(self._source)
            features = self._read_columns(READER_FEATURES)
            batches = self._reader.num_record_batches
            if count and batches != -(-count // READER_BATCH_ROWS):
                raise ValueError(f"{path.name} has {batches} batches for {count} rows")
        if features.num_rows != count:
            raise ValueError(f"{path.name} holds {features.num_rows} rows, not {count}")
        self.features = {name: _column_array(features, name) for name in READER_FEATURES}

    def _read_columns(self, names: Sequence[str]) -> pa.Table:
        schema = self._reader.schema
        options = pa.ipc.IpcReadOptions(
            included_fields=[schema.get_field_index(name) for name in names]
        )
        return pa.ipc.open_file(self._source, options=options).read_all()

    def column(self, name: str) -> pa.ChunkedArray:
        """Every row's value of column `name` (read whole when not mapped)."""
        if self._table is not None:
            return self._table.column(name)
        return self._read_columns([name]).column(0)

    def row(self, row: int) -> dict[str, object]:
        """Every reader column's value of `row`."""
        if self._table is not None:
            return self._table.slice(row, 1).to_pylist()[0]
        batch = self._batch(row // READER_BATCH_ROWS)
        return batch.slice(row % READER_BATCH_ROWS, 1).to_pylist()[0]

    def value(self, row: int, name: str) -> object:
        """The value of column `name` at `row`."""
        if self._table is not None:
            return self._table.column(name)[row].as_py()
        batch = self._batch(row // READER_BATCH_ROWS)
        return batch.column(batch.schema.get_field_index(name))[row % READER_BATCH_ROWS].as_py()

    def _batch(self, index: int) -> pa.RecordBatch:
        cache = self._batches
        batch = cache.pop(index, None)
        if batch is None:
            batch = self._reader.get_batch(index)
            if len(cache) >= READER_BATCHES_CACHED:
                cache.pop(next(iter(cache)))
        cache[index] = batch  # most recently used last
        return batch


@dataclass
class OpenSegment:
    """One segment opened for search: its ranking features in memory, per-chunk values,
    vectors and postings read (or mapped) as queries need them, the chunks file held open to
    fetch `content` of returned rows only. `vector_of_row[row]` is the row's vector in
    `vectors.matrix` (-1: none)."""

    info: SegmentInfo
    rows: ReaderRows
    vectors: SegmentVectors
    postings: PostingsFile
    _chunk_file: pq.ParquetFile | None = None
    _unstemmed: Postings | None = None
    _content_groups: dict[int, pa.ChunkedArray] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.rows.count

    @property
    def vector_of_row(self) -> np.ndarray:
        return self.rows.features["vector"]

    def content(self, row: int) -> str:
        """The chunk text of `row`: decodes its row group's `content` once, then serves it
        from a small per-segment cache (a warm reader returns hot files without decoding)."""
        group = row // CHUNK_ROW_GROUP_ROWS
        cache = self._content_groups
        column = cache.pop(group, None)
        if column is None:
            column = self.chunk_file.read_row_group(group, columns=["content"]).column(0)
            if len(cache) >= CONTENT_GROUPS_CACHED:
                cache.pop(next(iter(cache)))
        cache[group] = column  # most recently used last
        return column[row % CHUNK_ROW_GROUP_ROWS].as_py()

    @property
    def chunk_file(self) -> pq.ParquetFile:
        """chunks.parquet, opened on first use: a query reads content only from the segments
        holding its results, and a file's footer is sizeable (SegmentError when unusable)."""
        if self._chunk_file is None:
            path = self.info.path / CHUNKS_FILE
            try:
                self._chunk_file = pq.ParquetFile(path)
            except (OSError, pa.ArrowException) as error:
                raise SegmentError(self.info.shard, self.info.path, str(error)) from error
            if self._chunk_file.metadata.num_rows != self.size:
                raise SegmentError(self.info.shard, self.info.path, "chunks.parquet row count")
        return self._chunk_file

    def unstemmed_postings(self) -> Postings:
        """Postings without stemming, built from the stored token streams on first use."""
        if self._unstemmed is None:
            texts = self.chunk_file.read(columns=["bm25_text"]).column(0)
            symbols = self.rows.column("symbol").to_pylist()
            self._unstemmed = build_postings(texts, symbols, stemmed=False)
        return self._unstemmed


FILES_HELD_PER_SEGMENT = 6  # an open segment's descriptors: postings, chunks, reader files
FILES_HELD_BESIDES = 512  # for everything else a process opens


def allow_open_files(segment_count: int) -> None:
    """Raise the soft limit on open files (up to the hard limit) when `segment_count` open
    segments would not fit under it; a 256-shard index holds about 1,300 descriptors, more
    than the common default of 1,024."""
    import resource

    needed = segment_count * FILES_HELD_PER_SEGMENT + FILES_HELD_BESIDES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def open_segment(base: Path, shard: str, relative_dir: str, *, mapped: bool = True) -> OpenSegment:
    """Open one segment of a manifest; SegmentError (naming the shard) when it is damaged.
    `mapped`: map reader.arrow (long-lived readers) or read it by position (see ReaderRows)."""
    path = base / relative_dir
    info = SegmentInfo.load(shard, path)
    verify_segment(info)
    try:
        rows = ReaderRows(path / READER_FILE, info.chunks, mapped=mapped)
        segment_vectors = SegmentVectors.load(path, dim=info.dim)
        postings = PostingsFile(
            path, rows.features["body_len"], rows.features["name_len"], mapped=mapped
        )
    except (OSError, ValueError, pa.ArrowException) as error:
        raise SegmentError(shard, path, str(error)) from error
    if segment_vectors.count != info.distinct_vectors:
        raise SegmentError(shard, path, "vector counts disagree with segment.json")
    segment = OpenSegment(info, rows, segment_vectors, postings)
    if mapped:  # a long-lived reader holds every file from the start (see the module doc)
        _ = segment.chunk_file
    return segment


def _column_array(columns: pa.Table, name: str) -> np.ndarray:
    """A fixed-width column of a reader file as NumPy (zero-copy when it has one chunk and
    is not boolean: Arrow packs booleans in bits)."""
    column = columns.column(name)
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy(zero_copy_only=False)
    return column.to_numpy()


# ------------------------------------------------------------------ versions


@dataclass(frozen=True)
class PublishMeta:
    """What a published version records besides its segments."""

    root: str
    model_id: str
    model: str  # what the query side loads to embed queries the same way
    backend: str
    dim: int
    chunker_version: str
    shard_count: int
    run_id: str


@dataclass(frozen=True)
class IndexVersion:
    """One published version: `meta` (the keys of the `meta` table) and shard → segment dir
    (relative to the index directory)."""

    version: int
    meta: dict[str, object]
    segments: dict[str, str]

    @classmethod
    def load(cls, base: Path, version: int) -> IndexVersion:
        path = base / MANIFESTS_DIR / f"{version}.json"
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise IndexNotFoundError(f"cannot read index manifest {path}: {error}") from error
        return cls(int(payload["version"]), payload["meta"], payload["segments"])


@dataclass(frozen=True)
class PublishedVersion:
    version: int
    chunks: int
    files: int
    symbols: int
    checks: list[CheckOutcome]


def current_version(base: Path) -> int | None:
    """The version CURRENT names (None when nothing was published in this format)."""
    try:
        return int((base / CURRENT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def read_current(base: Path) -> IndexVersion:
    """The live version, resolved once; IndexNotFoundError when there is none."""
    version = current_version(base)
    if version is None:
        hint = " (built by an older CodeRAG)" if (base / "index.duckdb").exists() else ""
        raise IndexNotFoundError(f"no index at {base}{hint}; run `coderag index`")
    return IndexVersion.load(base, version)


def validate_segments(
    store: IndexStore,
    shard_segments: Mapping[str, SegmentInfo],
    dim: int,
    model_id: str,
    *,
    allow_pending: bool = False,
) -> list[CheckOutcome]:
    """The index's checks, per segment, from what each segment recorded when it was written
    and its files' sizes: every chunk has a `dim` vector of `model_id`, each segment holds
    exactly its shard's chunk rows, no chunk belongs to a file missing from the manifest.

    `allow_pending` (an early publish, before embedding finished) accepts chunks that have
    no vector yet; vectors of another model or dimension still fail."""
    no_vector: list[str] = []
    pending = 0
    missing: list[str] = []
    orphans: list[str] = []
    total = expected = 0
    for shard, info in sorted(shard_segments.items()):
        try:
            verify_segment(info)
            stored_rows = pq.ParquetFile(info.path / CHUNKS_FILE).metadata.num_rows
        except (SegmentError, OSError, pa.ArrowException) as error:
            missing.append(f"{shard} ({error})")
            stored_rows = 0
        total += stored_rows
        expected += info.source_chunks
        wrong_vectors = info.chunks_without_vector
        if info.chunks and info.dim and (info.dim != dim or info.model_id != model_id):
            wrong_vectors = info.chunks
        elif allow_pending:
            pending += info.chunks_without_vector
            wrong_vectors = 0
        elif info.chunks and not info.dim:
            wrong_vectors = info.chunks
        if wrong_vectors:
            no_vector.append(f"{shard}: {wrong_vectors}")
        if info.orphan_chunks:
            orphans.append(f"{shard}: {info.orphan_chunks}")
    lacking = sum(int(item.split(": ")[1]) for item in no_vector)
    count_detail = f"index has {total} chunks, shards hold {expected}"
    if missing:
        count_detail += f"; damaged segments: {', '.join(missing)}"
    return [
        CheckOutcome(
            "every_chunk_has_vector",
            not no_vector,
            f"{lacking} of {total} chunks lack a {dim}-dim vector"
            + (f" (shards {', '.join(no_vector)})" if no_vector else "")
            + (f"; {pending} chunks are waiting for theirs (early publish)" if pending else ""),
        ),
        CheckOutcome("chunk_count_matches_shards", total == expected and not missing, count_detail),
        CheckOutcome(
            "no_orphan_chunks",
            not orphans,
            f"{sum(int(o.split(': ')[1]) for o in orphans)} chunks belong to files missing "
            f"from every manifest" + (f" (shards {', '.join(orphans)})" if orphans else ""),
        ),
    ]


def publish(
    store: IndexStore,
    shard_segments: Mapping[str, SegmentInfo],
    meta: PublishMeta,
    *,
    allow_pending: bool = False,
) -> PublishedVersion:
    """Validate the segments, then make them the live version: write its manifest and SQL
    surface, flip CURRENT, reclaim what no recent version uses (and, before the flip, what
    publishes that died before theirs left). Takes the writer lock.

    `allow_pending` publishes chunks that have no vector yet (BM25, symbols and references
    answer for them; vector search skips them); the manifest records how many in
    `pending_vectors`, and the next complete publish replaces the version.

    Raises IndexValidationError when a check fails, DiskFullError (naming the step: the
    manifest, `index.duckdb` or the `CURRENT` flip) when the disk fills up; either way the
    old version stays live and what this publish half wrote is removed.
    """
    with store.writer_lock():
        checks = validate_segments(
            store, shard_segments, meta.dim, meta.model_id, allow_pending=allow_pending
        )
        if not all(outcome.passed for outcome in checks):
            raise IndexValidationError(checks)
        # Leftovers of a publish that died before its flip are told apart from older versions
        # only while they are newer than CURRENT: reclaim them before this flip.
        collect_garbage(store)
        base = store.base
        previous = current_version(base) or 0
        known = [previous, *_manifest_versions(base)]
        version = max(time.time_ns() // 1000, max(known) + 1)
        segment_dirs = {
            shard: str(info.path.relative_to(base))
            for shard, info in sorted(shard_segments.items())
        }
        totals: dict[str, object] = {
            "chunks": sum(info.chunks for info in shard_segments.values()),
            "files": sum(info.files for info in shard_segments.values()),
            "symbols": sum(info.symbols for info in shard_segments.values()),
        }
        if all(info.skipped is not None for info in shard_segments.values()):
            skipped: Counter[str] = Counter()
            for info in shard_segments.values():
                skipped.update(info.skipped or {})
            totals["skipped"] = dict(sorted(skipped.items()))
        meta_values: dict[str, object] = {
            "schema_version": INDEX_SCHEMA_VERSION,
            "version": version,
            "published_at": time.time(),
            **asdict(meta),
            "chunk_shard_files": {
                shard: info.chunk_file for shard, info in sorted(shard_segments.items())
            },
            "totals": totals,
            "pending_vectors": sum(info.chunks_without_vector for info in shard_segments.values()),
        }
        manifest = {"version": version, "meta": meta_values, "segments": segment_dirs}
        manifest_path = base / MANIFESTS_DIR / f"{version}.json"
        index_version = IndexVersion(version, meta_values, segment_dirs)
        building = base / f".index.{uuid.uuid4().hex}.building.duckdb"
        try:
            with reporting_disk_full(f"writing index manifest {version}", manifest_path):
                manifest_path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
            with reporting_disk_full("building index.duckdb", building):
                con = duckdb.connect(str(building))
                try:
                    create_sql_surface(con, base, index_version)
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
            current_path = base / CURRENT_FILE
            with reporting_disk_full(f"switching CURRENT to version {version}", current_path):
                write_bytes_atomic(current_path, f"{version}\n".encode())  # the commit point
            os.replace(building, store.index_path)
        except BaseException:
            if current_version(base) != version:  # never became live: nothing may name it
                manifest_path.unlink(missing_ok=True)
            raise
        finally:
            building.unlink(missing_ok=True)
            Path(f"{building}.wal").unlink(missing_ok=True)
        collect_garbage(store)
    return PublishedVersion(version, totals["chunks"], totals["files"], totals["symbols"], checks)


def bm25_summary(shard_segments: Mapping[str, SegmentInfo]) -> dict[str, object]:
    """The BM25 structure of a version as the `bm25_index` asset reports it: the segments'
    postings (what search reads) and the global statistics scores are computed with."""
    documents = sum(info.chunks for info in shard_segments.values())
    postings_bytes = sum(
        info.file_sizes.get(name, 0) for info in shard_segments.values() for name in POSTINGS_FILES
    )
    segment_terms = 0
    for info in shard_segments.values():
        terms_path = info.path / TERMS_FILE
        if info.chunks and terms_path.exists():
            segment_terms += int(np.load(terms_path, mmap_mode="r", allow_pickle=False).shape[0])
    return {
        "documents": documents,
        "segments": len(shard_segments),
        "segment_terms": segment_terms,
        "postings_bytes": postings_bytes,
        "k1": BM25_K1,
        "b": BM25_B,
    }


def _manifest_versions(base: Path) -> list[int]:
    versions = []
    for path in (base / MANIFESTS_DIR).glob("*.json"):
        try:
            versions.append(int(path.stem))
        except ValueError:
            continue
    return sorted(versions)


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def create_sql_surface(con: duckdb.DuckDBPyConnection, base: Path, version: IndexVersion) -> None:
    """Create the `meta` table and the `chunks`, `files`, `symbols` views of `version` in the
    connection's current database, and `occurrences` when every segment has an occurrences
    file (a version with older segments has none: reference search then scans chunk text).
    `chunks.rowid` is unique and follows path/line order."""
    dirs = [base / relative for _, relative in sorted(version.segments.items())]
    columns = ", ".join(CHUNK_VIEW_COLUMNS)
    chunk_selects = [
        f"SELECT {columns}, ({index}::BIGINT << 32) + file_row_number AS rowid "
        f"FROM read_parquet({_sql_path(d / CHUNKS_FILE)}, file_row_number = true)"
        for index, d in enumerate(dirs)
    ]
    con.execute("CREATE OR REPLACE VIEW chunks AS " + " UNION ALL ".join(chunk_selects))
    for view, file_name in (("files", FILES_FILE), ("symbols", SYMBOLS_FILE)):
        listed = ", ".join(_sql_path(d / file_name) for d in dirs)
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{listed}])")
    occurrence_files = [d / OCCURRENCES_FILE for d in dirs]
    if occurrence_files and all(path.exists() for path in occurrence_files):
        listed = ", ".join(_sql_path(path) for path in occurrence_files)
        con.execute(f"CREATE OR REPLACE VIEW occurrences AS SELECT * FROM read_parquet([{listed}])")
    con.execute("CREATE OR REPLACE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in version.meta.items()]
    )


def connect_version(base: Path, version: IndexVersion) -> duckdb.DuckDBPyConnection:
    """An in-memory connection whose `published` database shows exactly `version` (the same
    shape as `store.connect_index`, whose file may already name a newer version)."""
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS published")
    con.execute("USE published")
    create_sql_surface(con, base, version)
    return con


def collect_garbage(store: IndexStore, *, now: float | None = None) -> list[Path]:
    """Remove what no version, reader or writer needs; returns what was removed.

    Call holding `store.writer_lock()` (`publish` does): then no other publish is running,
    so manifests newer than CURRENT, half-built `index.duckdb` files and temporary files in
    the index directory are leftovers of a publish that died before its flip, and go at once.
    Kept: the current version, the `KEEP_PREVIOUS_VERSIONS` before it, older manifests younger
    than `GC_GRACE_S`, versions a live reader holds (`VersionLease`), and the segments all of
    these name; each shard's LATEST segment; segment directories younger than `GC_GRACE_S`
    (shard steps write them without the lock, and record them as LATEST just after).
    """
    base = store.base
    now = time.time() if now is None else now
    current = current_version(base)
    versions = _manifest_versions(base)
    keep = held_versions(base, now=now)
    if current is not None:
        older = [v for v in versions if v <= current]
        keep.update(older[-(KEEP_PREVIOUS_VERSIONS + 1) :])
    removed: list[Path] = []
    referenced: set[Path] = set()
    for version in versions:
        path = base / MANIFESTS_DIR / f"{version}.json"
        young = version < (current or 0) and _age(path, now) < GC_GRACE_S
        if version in keep or young or current is None:
            try:
                referenced.update(
                    base / d for d in IndexVersion.load(base, version).segments.values()
                )
            except IndexNotFoundError:
                continue
        else:
            path.unlink(missing_ok=True)
            removed.append(path)
    leftovers = [
        *base.glob(".index.*.building.duckdb*"),
        *base.glob(f".{CURRENT_FILE}.*.tmp"),
        *(base / MANIFESTS_DIR).glob(".*.tmp"),
    ]
    for path in leftovers:
        path.unlink(missing_ok=True)
        removed.append(path)
    for shard_dir in (base / SEGMENTS_DIR).glob("*"):
        if not shard_dir.is_dir():
            continue
        latest = _latest(store, shard_dir.name)
        if latest is not None:
            referenced.add(shard_dir / latest[0])
        for segment_dir in shard_dir.iterdir():
            if segment_dir.name == LATEST_FILE or segment_dir in referenced:
                continue
            if _age(segment_dir, now) < GC_GRACE_S and not segment_dir.name.startswith(".trash"):
                continue
            if segment_dir.is_dir():
                shutil.rmtree(segment_dir, ignore_errors=True)
            else:  # a temporary LATEST of a killed shard step
                segment_dir.unlink(missing_ok=True)
            removed.append(segment_dir)
    return removed


class VersionLease:
    """A reader's hold on one published version: while it is held, `collect_garbage` keeps
    the version's manifest and segments (DuckDB views of the version read them by path).

    The lease is a file `readers/<version>.<pid>.<random>.lease` that its reader keeps locked
    (`flock`); the lock goes when the reader releases it or its process dies, so a crashed
    reader holds nothing. Best effort: where the index directory cannot be written (a
    read-only consumer, a full disk) `held` is False and the reader relies on its memory
    mappings and open files alone.
    """

    def __init__(self, base: Path, version: int):
        self.version = version
        self.path: Path | None = None
        self._lock_file: TextIO | None = None
        directory = base / READERS_DIR
        name = f"{version}.{os.getpid()}.{uuid.uuid4().hex}"
        pending = directory / f".{name}"  # locked before it gets the name GC looks at
        try:
            directory.mkdir(exist_ok=True)
            lock_file = open(pending, "w")  # noqa: SIM115 - held until release()
        except OSError:
            return
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(pending, directory / f"{name}{LEASE_SUFFIX}")
        except OSError:
            lock_file.close()
            pending.unlink(missing_ok=True)
            return
        self._lock_file = lock_file
        self.path = directory / f"{name}{LEASE_SUFFIX}"

    @property
    def held(self) -> bool:
        return self._lock_file is not None

    def release(self) -> None:
        """Let the version go (idempotent); the next publish may reclaim it."""
        if self._lock_file is None:
            return
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self._lock_file.close()
        self._lock_file = None


def held_versions(base: Path, *, now: float | None = None) -> set[int]:
    """The versions live readers hold (`VersionLease`). Removes the lease files of readers
    that are gone (their lock is free) and pending ones older than `GC_GRACE_S`."""
    now = time.time() if now is None else now
    held: set[int] = set()
    for path in (base / READERS_DIR).glob("*"):
        if path.name.startswith("."):
            if _age(path, now) >= GC_GRACE_S:
                path.unlink(missing_ok=True)
            continue
        try:
            version = int(path.name.split(".", 1)[0])
            with open(path) as probe:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # the lock was free: its reader is gone
        except BlockingIOError:
            held.add(version)
        except (OSError, ValueError):
            continue
    return held


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
