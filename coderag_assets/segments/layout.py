"""What a segment is on disk: file names, columns, the `segment.json` record (`SegmentInfo`)
and the integrity check every reader and writer applies (`verify_segment`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.store import (
    IndexNotFoundError,
    IndexStore,
)
from coderag_assets.vectors import SCAN_CODES_FILE, SCAN_SCALES_FILE, VECTORS_FILE

#: 4: terms.npy holds UTF-8 byte strings (was UTF-32, 4× the bytes). Readers also open 3.
SEGMENT_FORMAT = 4
READABLE_SEGMENT_FORMATS = (3, 4)
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
OPTIONAL_SEGMENT_FILES = (OCCURRENCES_FILE, SCAN_CODES_FILE, SCAN_SCALES_FILE)
INPUT_KINDS = ("manifest", "chunks", "symbols", "occurrences", "embeddings")
CHUNK_ROW_GROUP_ROWS = 256  # rows per Parquet row group: what fetching one result decodes
TEXT_COLUMNS = ("content", "bm25_text")  # chunks.parquet columns written without statistics
CONTENT_CACHE_BYTES = 32 * 1024 * 1024  # decoded content a reader keeps, all segments together
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
#: Its string columns with few distinct values: read and sorted as dictionaries.
OCCURRENCE_STRING_COLUMNS = ("name", "path", "language", "context")
#: The order of occurrences.parquet's rows (a name lookup reads one run of rows).
OCCURRENCE_ORDER = ("name", "path", "line", "column")
#: Footer key of an occurrence file written in the segment's layout (`occurrence_file_table`):
#: its value names the order and row group size, so a shard file that carries it can become a
#: segment's occurrences.parquet byte for byte.
_OCCURRENCE_LAYOUT_KEY = b"coderag.occurrence_layout"
_OCCURRENCE_LAYOUT = (
    f"order={','.join(OCCURRENCE_ORDER)};row_group_rows={OCCURRENCE_ROW_GROUP_ROWS}".encode()
)
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
        if payload.pop("format", None) not in READABLE_SEGMENT_FORMATS:
            raise SegmentError(shard, path, "written by another segment format")
        payload["path"] = path
        return cls(**payload)


def occurrence_file_table(rows: pa.Table) -> pa.Table:
    """`rows` (already in `OCCURRENCE_ORDER`) as `OCCURRENCE_SCHEMA`, marked as being in the
    segment's layout; write it with `OCCURRENCE_WRITE_OPTIONS`."""
    return rows.cast(OCCURRENCE_SCHEMA).replace_schema_metadata(
        {_OCCURRENCE_LAYOUT_KEY: _OCCURRENCE_LAYOUT}
    )


#: How an occurrence file is written (`pyarrow.parquet.write_table` keywords).
OCCURRENCE_WRITE_OPTIONS = {"compression": "zstd", "row_group_size": OCCURRENCE_ROW_GROUP_ROWS}


def in_occurrence_layout(data: bytes) -> bool:
    """True when the Parquet file `data` was written from `occurrence_file_table` with
    `OCCURRENCE_WRITE_OPTIONS` by this layout: its rows, order and row groups are what a
    segment's occurrences.parquet holds. Reads the footer only."""
    try:
        schema = pq.read_schema(pa.BufferReader(data))
    except (pa.ArrowException, OSError):
        return False
    marked = (schema.metadata or {}).get(_OCCURRENCE_LAYOUT_KEY) == _OCCURRENCE_LAYOUT
    return marked and schema.remove_metadata().equals(OCCURRENCE_SCHEMA)


def verify_segment(info: SegmentInfo) -> None:
    """Raise SegmentError if any file of the segment is missing or not the size it was written."""
    optional = tuple(name for name in OPTIONAL_SEGMENT_FILES if name in info.file_sizes)
    directory = os.fspath(info.path)  # str joins: a publish verifies each segment ~4 times
    for name in SEGMENT_FILES + optional:
        try:
            size = os.stat(os.path.join(directory, name)).st_size
        except FileNotFoundError as error:
            raise SegmentError(info.shard, info.path, f"{name} is missing") from error
        if size != info.file_sizes.get(name):
            raise SegmentError(
                info.shard,
                info.path,
                f"{name} is {size} bytes, {info.file_sizes.get(name)} were written",
            )


def segments_dir(base: Path, shard: str) -> Path:
    return base / SEGMENTS_DIR / shard


def latest_segment(store: IndexStore, shard: str) -> tuple[str, dict] | None:
    try:
        payload = json.loads((segments_dir(store.base, shard) / LATEST_FILE).read_text())
        return str(payload["segment_id"]), payload
    except (OSError, ValueError, KeyError):
        return None
