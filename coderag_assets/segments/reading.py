"""Opening a segment for search: ranking features, per-chunk values, vectors, postings and
chunk content, mapped (long-lived readers) or read by position (one-shot readers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.segments.layout import (
    CHUNK_ROW_GROUP_ROWS,
    CHUNKS_FILE,
    CONTENT_CACHE_BYTES,
    READER_BATCH_ROWS,
    READER_BATCHES_CACHED,
    READER_FEATURES,
    READER_FILE,
    SegmentError,
    SegmentInfo,
    verify_segment,
)
from coderag_assets.segments.postings import Postings, PostingsFile, build_postings
from coderag_assets.store import ArrayCache
from coderag_assets.vectors import SegmentVectors


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


class ContentCache(ArrayCache):
    """Decoded `content` row groups, shared by the segments of one reader and bounded by their
    total size: the least recently used groups go once they hold more than `budget_bytes`
    (the newest group always stays). A bound per segment instead let a warm server on a
    64-segment index keep up to 2,048 groups — hundreds of MB of decoded text. Callers
    serialize access (a reader answers one search at a time)."""

    def __init__(self, budget_bytes: int = CONTENT_CACHE_BYTES):
        super().__init__(budget_bytes)


@dataclass
class OpenSegment:
    """One segment opened for search: its ranking features in memory, per-chunk values,
    vectors and postings read (or mapped) as queries need them, the chunks file held open to
    fetch `content` of returned rows only (decoded row groups are kept in `content_cache`,
    which a reader shares among its segments). `vector_of_row[row]` is the row's vector in
    `vectors.matrix` (-1: none)."""

    info: SegmentInfo
    rows: ReaderRows
    vectors: SegmentVectors
    postings: PostingsFile
    _chunk_file: pq.ParquetFile | None = None
    _unstemmed: Postings | None = None
    content_cache: ContentCache = field(default_factory=ContentCache)

    @property
    def size(self) -> int:
        return self.rows.count

    @property
    def vector_of_row(self) -> np.ndarray:
        return self.rows.features["vector"]

    def content(self, row: int) -> str:
        """The chunk text of `row`: decodes its row group's `content` once, then serves it
        from `content_cache` (a warm reader returns hot files without decoding)."""
        group = row // CHUNK_ROW_GROUP_ROWS
        key = (self.info.shard, self.info.path.name, group)
        column = self.content_cache.get(key)
        if column is None:
            column = self.chunk_file.read_row_group(group, columns=["content"]).column(0)
            self.content_cache.put(key, column)
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


def open_segment(
    base: Path, shard: str, relative_dir: str, *, mapped: bool = True, scan_copy: bool = False
) -> OpenSegment:
    """Open one segment of a manifest; SegmentError (naming the shard) when it is damaged.
    `mapped`: map reader.arrow (long-lived readers) or read it by position (see ReaderRows);
    `scan_copy`: load the int8 scan copy of the vectors, when the segment has one."""
    path = base / relative_dir
    info = SegmentInfo.load(shard, path)
    verify_segment(info)
    try:
        rows = ReaderRows(path / READER_FILE, info.chunks, mapped=mapped)
        segment_vectors = SegmentVectors.load(path, dim=info.dim, scan_copy=scan_copy)
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
