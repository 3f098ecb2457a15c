"""Where the pipeline's data lives: paths and Parquet I/O of one index, and its SQL surface.

Layout of one index (one per indexed root) under the data directory::

    data/indexes/<name>-<hash>/
      root.json                     the indexed root (how `coderag search` finds its index)
      manifest/<shard>.parquet      file_manifest[shard]
      chunks/<shard>.parquet        code_chunks[shard]
      symbols/<shard>.parquet       definitions found while chunking
      embeddings/<shard>.parquet    chunk_embeddings[shard]: one vector per content hash
      vectors/<model>/*.parquet     append-only vector cache keyed by content hash (reuse)
      segments/, manifests/, CURRENT  the published versions (see `segments`)
      index.duckdb                  SQL surface of the current version (replaced atomically)

Per-shard files are Parquet written to a temporary name and renamed. Publishing (immutable
per-shard segments, a versioned manifest, the `CURRENT` flip) lives in `segments`; this module
only reads the published `index.duckdb` (`connect_index`) and defines the checks' SQL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.tokens import bm25_text

INDEX_FILE_NAME = "index.duckdb"
INDEX_SCHEMA_VERSION = 1
VECTOR_CACHE_COMPACT_FILES = 64
VECTOR_CACHE_GRACE_S = 7 * 24 * 3600.0  # unreferenced vectors survive a week (branch switches)
VECTOR_CACHE_COLUMNS = ("content_hash", "vector", "model_id", "run_id", "last_used_s")
VECTOR_CACHE_MEMORY_LIMIT = "256MB"  # DuckDB's limit while compacting; beyond it, it spills
VECTOR_CACHE_BATCH_ROWS = 8192
SHARD_KINDS = ("manifest", "chunks", "symbols", "occurrences", "embeddings")

MANIFEST_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("shard", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("sha256", pa.string()),
        ("language", pa.string()),
        ("skip_reason", pa.string()),
        ("skip_detail", pa.string()),
    ]
)
CHUNK_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("start_line", pa.int32()),
        ("end_line", pa.int32()),
        ("symbol", pa.string()),
        ("kind", pa.string()),
        ("content", pa.string()),
        ("content_hash", pa.string()),
        ("file_sha256", pa.string()),
        ("chunker_version", pa.string()),
        ("run_id", pa.string()),
        ("bm25_text", pa.string()),
    ]
)
SYMBOL_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("qualified_name", pa.string()),
        ("kind", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("line", pa.int32()),
        ("column", pa.int32()),
        ("end_line", pa.int32()),
        ("signature", pa.string()),
        ("parent", pa.string()),
    ]
)


def vector_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("content_hash", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("model_id", pa.string()),
            ("run_id", pa.string()),
        ]
    )


class IndexNotFoundError(FileNotFoundError):
    """No published index exists for the requested root; the message says how to create one."""


class IndexValidationError(RuntimeError):
    """A freshly built index failed a check; it was not published. `outcomes` holds the checks."""

    def __init__(self, outcomes: list[CheckOutcome]):
        self.outcomes = outcomes
        failed = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if not o.passed)
        super().__init__(f"index not published, checks failed: {failed}")


class DiskFullError(OSError):
    """Writing the index ran out of disk space (or quota) while `step`, at `path`. What was
    half written is removed; a publish that fails so leaves the last version live."""

    def __init__(self, step: str, path: Path):
        self.step = step
        self.path = path
        super().__init__(
            f"disk full while {step} ({path}); free some space and run `coderag index` again"
        )


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """True for an out-of-space error from the OS, Arrow (an OSError with its errno) or DuckDB."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    return isinstance(error, duckdb.IOException) and "No space left on device" in str(error)


@contextmanager
def reporting_disk_full(step: str, path: Path) -> Iterator[None]:
    """Raise DiskFullError naming `step` and `path` when the block runs out of disk space
    (other errors pass unchanged). Cleaning up what the block half wrote is the block's job."""
    try:
        yield
    except (OSError, duckdb.Error) as error:
        if isinstance(error, DiskFullError) or not is_disk_full(error):
            raise
        raise DiskFullError(step, path) from error


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:48] or "root"


@dataclass(frozen=True)
class IndexStore:
    """Paths and Parquet I/O of one index (one indexed root) inside the data directory."""

    base: Path
    root: Path

    @classmethod
    def for_root(cls, data_dir: Path, root: Path) -> IndexStore:
        digest = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:10]
        return cls(data_dir / "indexes" / f"{_slug(root.name)}-{digest}", root)

    # ----- paths
    @property
    def index_path(self) -> Path:
        return self.base / INDEX_FILE_NAME

    def shard_file(self, kind: str, shard: str) -> Path:
        return self.base / kind / f"{shard}.parquet"

    def vector_cache_dir(self, model_id: str) -> Path:
        return self.base / "vectors" / _slug(model_id.replace(":", "__"))

    def register(self, shard_count: int) -> None:
        """Write `root.json` so commands run inside the tree find this index.

        A different shard count invalidates every shard file (they are removed; the vector
        cache is kept, so the rebuild embeds nothing it already knows).
        """
        self.base.mkdir(parents=True, exist_ok=True)
        root_file = self.base / "root.json"
        recorded = self.recorded_shard_count()
        if recorded is not None and recorded != shard_count:
            for kind in SHARD_KINDS:
                for path in (self.base / kind).glob("*.parquet"):
                    path.unlink()
        payload = {"root": str(self.root), "shard_count": shard_count}
        write_bytes_atomic(root_file, json.dumps(payload).encode("utf-8"))

    def recorded_shard_count(self) -> int | None:
        """The shard count `register` recorded (None: never registered, or unreadable)."""
        try:
            count = json.loads((self.base / "root.json").read_text()).get("shard_count")
        except (OSError, ValueError, AttributeError):
            return None
        return count if isinstance(count, int) else None

    # ----- shard Parquet files
    def write_shard(self, kind: str, shard: str, table: pa.Table) -> None:
        """Replace the shard's file whole; DiskFullError (nothing replaced) when space runs out."""
        path = self.shard_file(kind, shard)
        with _replacing(path, f"writing the {kind} file of shard {shard}") as tmp_path:
            pq.write_table(table, tmp_path, compression="zstd")

    def read_shard(self, kind: str, shard: str, schema: pa.Schema) -> pa.Table:
        """The shard's table, or an empty table of `schema` if it was never written."""
        path = self.shard_file(kind, shard)
        if not path.exists():
            return schema.empty_table()
        return pq.read_table(path)

    def read_all_shards(self, kind: str, shards: Iterable[str], schema: pa.Schema) -> pa.Table:
        return _union([self.read_shard(kind, shard, schema) for shard in shards], schema)

    def read_shard_pinned(
        self, kind: str, shard: str, schema: pa.Schema
    ) -> tuple[pa.Table, str | None]:
        """The shard's table and a digest of exactly the bytes it was read from (None when the
        shard was never written). Shard files are replaced whole, so equal digests mean the
        same shard version, whatever copies or restores did to the file's inode and times."""
        try:
            data = self.shard_file(kind, shard).read_bytes()
        except FileNotFoundError:
            return schema.empty_table(), None
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        return pq.read_table(pa.BufferReader(data)), digest

    def read_all_shards_pinned(
        self, kind: str, shards: Iterable[str], schema: pa.Schema
    ) -> tuple[pa.Table, dict[str, str | None]]:
        """The union of the shards and each shard file's fingerprint as read."""
        tables, fingerprints = [], {}
        for shard in shards:
            table, fingerprints[shard] = self.read_shard_pinned(kind, shard, schema)
            tables.append(table)
        return _union(tables, schema), fingerprints

    # ----- vector cache (content hash → vector, per model)
    def cached_vectors(self, model_id: str, wanted: set[str]) -> pa.Table:
        """Rows of the vector cache (`vector_schema`, one per content hash) for any of the
        `wanted` content hashes with this model; each cache file is a lazy scan filtered by
        content hash, so only matching rows are materialized."""
        import polars as pl  # lazy: searching never needs it (35 MB, 80 ms)

        cache_dir = self.vector_cache_dir(model_id)
        if not wanted or not cache_dir.is_dir():
            return vector_schema(1).empty_table()
        wanted_hashes = pl.Series("wanted", sorted(wanted), dtype=pl.String).implode()
        found: list[pa.Table] = []
        for path in sorted(cache_dir.glob("*.parquet")):
            try:
                rows = (
                    pl.scan_parquet(path)
                    .filter(pl.col("content_hash").is_in(wanted_hashes))
                    .collect()
                )
            except (OSError, pl.exceptions.PolarsError):
                continue  # a torn file from a killed run: its vectors are simply recomputed
            if rows.height:
                found.append(rows.to_arrow())
        if not found:
            return vector_schema(1).empty_table()
        return first_row_per_hash(pa.concat_tables(found, promote_options="permissive"))

    def add_cached_vectors(self, model_id: str, run_id: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        cache_dir = self.vector_cache_dir(model_id)
        path = cache_dir / f"{int(time.time() * 1000)}-{run_id[:8]}-{uuid.uuid4().hex[:8]}.parquet"
        with _replacing(path, "adding to the vector cache") as tmp_path:
            pq.write_table(table, tmp_path, compression="zstd")

    def compact_vector_cache(
        self,
        model_id: str,
        referenced: Callable[[], Sequence[Path]] | None = None,
        *,
        grace_s: float = VECTOR_CACHE_GRACE_S,
        now: float | None = None,
        force: bool = False,
    ) -> VectorCacheStats:
        """Merge the cache files of `model_id` into one and drop vectors nobody needs.

        Runs when the cache holds `VECTOR_CACHE_COMPACT_FILES` files or more (or `force`);
        call it under the writer lock. `referenced` returns Parquet files whose
        `content_hash` column lists what the current shards hold (their embeddings files); a
        vector whose hash is among them is kept and stamped as used now; an unreferenced one is
        kept while its last use is younger than `grace_s`, so switching back to a branch within
        the grace period re-embeds nothing. `referenced` is called only when the cache is
        compacted; None keeps every vector.

        Memory stays flat in the cache's size: DuckDB streams the files through a join under
        `VECTOR_CACHE_MEMORY_LIMIT` (spilling to disk beyond it) and the result is written
        batch by batch; only one row per content hash (its newest copy) survives.
        """
        cache_dir = self.vector_cache_dir(model_id)
        files = sorted(cache_dir.glob("*.parquet")) if cache_dir.is_dir() else []
        if len(files) < VECTOR_CACHE_COMPACT_FILES and not (force and files):
            return VectorCacheStats(files=len(files))
        now = time.time() if now is None else now
        readable = [path for path in files if _is_readable_parquet(path)]
        # a torn file of a killed run is deleted below; its vectors are recomputed when needed
        if not readable:
            return VectorCacheStats(files=len(files))
        spill = cache_dir / f".compact-spill-{uuid.uuid4().hex[:8]}"
        con = duckdb.connect(
            config={
                "memory_limit": VECTOR_CACHE_MEMORY_LIMIT,
                "threads": 2,
                "temp_directory": str(spill),
                "preserve_insertion_order": False,
            }
        )
        compacted = cache_dir / f"{int(now * 1000)}-compacted-{uuid.uuid4().hex[:8]}.parquet"
        try:
            con.execute(
                "CREATE TEMP TABLE file_times (filename VARCHAR, file_id BIGINT, written DOUBLE)",
            )
            con.executemany(
                "INSERT INTO file_times VALUES (?, ?, ?)",
                [(str(path), i, _cache_file_time(path)) for i, path in enumerate(readable)],
            )
            columns = {
                row[0]
                for row in con.execute(
                    "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)",
                    [[str(path) for path in readable]],
                ).fetchall()
            }
            last_used = (
                "coalesce(c.last_used_s, t.written)" if "last_used_s" in columns else ("t.written")
            )
            con.execute(
                f"""
                CREATE TEMP VIEW cache AS
                SELECT c.content_hash, c.vector, c.model_id, c.run_id,
                       t.file_id * 4294967296 + c.file_row_number AS row_key,
                       {last_used} AS last_used_s
                FROM read_parquet(?, union_by_name = true, filename = true,
                                  file_row_number = true) AS c
                JOIN file_times AS t USING (filename)
                """.replace("?", _sql_list(readable))
            )
            ref_files = [str(path) for path in referenced()] if referenced is not None else []
            if referenced is None:
                grace_s = float("inf")  # keep everything, last uses unchanged
            if ref_files:
                con.execute(
                    "CREATE TEMP TABLE referenced AS SELECT DISTINCT content_hash "
                    f"FROM read_parquet({_sql_list(ref_files)})"
                )
            else:
                con.execute("CREATE TEMP TABLE referenced (content_hash VARCHAR)")
            # The newest copy of every hash (one row, named by file and row number), found
            # without reading a single vector.
            con.execute(
                """
                CREATE TEMP TABLE newest AS
                SELECT content_hash, arg_max(row_key, last_used_s) AS row_key,
                       max(last_used_s) AS last_used_s
                FROM (SELECT content_hash, row_key, last_used_s FROM cache)
                GROUP BY content_hash
                """
            )
            before = con.execute("SELECT count(*) FROM newest").fetchone()[0]
            reader = con.execute(
                """
                SELECT c.content_hash, c.vector, c.model_id, c.run_id,
                       CASE WHEN r.content_hash IS NOT NULL THEN ?::DOUBLE
                            ELSE n.last_used_s END AS last_used_s
                FROM cache AS c
                JOIN newest AS n ON c.row_key = n.row_key
                LEFT JOIN (SELECT DISTINCT content_hash FROM referenced) AS r
                     ON r.content_hash = c.content_hash
                WHERE r.content_hash IS NOT NULL OR ?::DOUBLE - n.last_used_s < ?::DOUBLE
                """,
                [now, now, grace_s],
            ).to_arrow_reader(VECTOR_CACHE_BATCH_ROWS)
            kept = _write_vector_batches(reader, compacted)
        finally:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        for path in files:
            if path != compacted:
                path.unlink(missing_ok=True)
        return VectorCacheStats(files=len(files), kept=kept, dropped=before - kept)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive lock held while the index is built and published (one writer)."""
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "index.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


@dataclass(frozen=True)
class VectorCacheStats:
    """What one vector-cache compaction saw and did."""

    files: int
    kept: int = 0
    dropped: int = 0


def _is_readable_parquet(path: Path) -> bool:
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return False
    return True


def _sql_list(paths: Iterable[Path | str]) -> str:
    """A DuckDB list literal of file names (quotes doubled)."""
    quoted = ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths)
    return f"[{quoted}]"


def _write_vector_batches(reader: pa.RecordBatchReader, path: Path) -> int:
    """Write the batches as one cache file (vectors as fixed-size lists, like every cache
    file); rows written. DiskFullError when space runs out (nothing replaced)."""
    rows = 0
    with _replacing(path, "compacting the vector cache") as tmp_path:
        writer = None
        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                table = pa.Table.from_batches([batch])
                dim = len(table.column("vector")[0].as_py())
                schema = pa.schema([*vector_schema(dim), pa.field("last_used_s", pa.float64())])
                table = table.select(schema.names).cast(schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp_path, schema, compression="zstd")
                writer.write_table(table)
                rows += table.num_rows
            if writer is None:  # nothing kept: an empty file keeps the cache's shape
                pq.write_table(vector_schema(1).empty_table(), tmp_path, compression="zstd")
        finally:
            if writer is not None:
                writer.close()
    return rows


def _cache_file_time(path: Path) -> float:
    """When a cache file was written: its `<epoch ms>-...` name, else its mtime."""
    prefix = path.name.split("-", 1)[0]
    return int(prefix) / 1000 if prefix.isdigit() else path.stat().st_mtime


@contextmanager
def _replacing(path: Path, step: str) -> Iterator[Path]:
    """A temporary path next to `path` for the block to write: renamed over `path` when the
    block succeeds, removed when it fails (DiskFullError naming `step` when out of space)."""
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with reporting_disk_full(step, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload` via a temporary file in its directory (removed again
    when writing fails, e.g. on a full disk), so readers see the old bytes or the new ones."""
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp_path.write_bytes(payload)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _union(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The rows of all non-empty `tables` (an empty table of `schema` when there are none)."""
    tables = [table for table in tables if table.num_rows] or [schema.empty_table()]
    return pa.concat_tables(tables, promote_options="permissive")


def release_unused_memory() -> None:
    """Hand back to the OS the memory Arrow's allocator keeps for reuse once a stage has let
    its tables go (hundreds of MB after a large shard), and the free pages the C allocator
    keeps (glibc's `malloc_trim`), so the next stage's NumPy, model or Python allocations do
    not stack on top of them."""
    pa.default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc()


def vector_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(n, dim) float32 view of a fixed-size-list column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.list_size
    return (
        column.flatten()
        .to_numpy(zero_copy_only=False)
        .reshape(-1, dim)
        .astype(np.float32, copy=False)
    )


def first_row_per_hash(table: pa.Table) -> pa.Table:
    """`table` keeping only the first row of each `content_hash` (input order kept)."""
    hashes = table.column("content_hash").to_numpy(zero_copy_only=False)
    _, first_rows = np.unique(hashes, return_index=True)
    return table.take(pa.array(np.sort(first_rows)))


def vectors_table(hashes: list[str], vectors: np.ndarray, model_id: str, run_id: str) -> pa.Table:
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 0
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    vector_column = (
        pa.FixedSizeListArray.from_arrays(flat, dim)
        if dim
        else pa.array([], pa.list_(pa.float32(), 1))
    )
    return pa.table(
        {
            "content_hash": pa.array(hashes, pa.string()),
            "vector": vector_column,
            "model_id": pa.array([model_id] * len(hashes), pa.string()),
            "run_id": pa.array([run_id] * len(hashes), pa.string()),
        }
    )


# ---------------------------------------------------------------- DuckDB index


def connect_index(index_path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the index file published *now*.

    The file is ATTACHed to a fresh in-memory database instead of opened by path: DuckDB
    hands out the database already open in this process for a path, so a long-lived
    reader elsewhere in the process (MCP server, watch loop) would pin an old snapshot.
    """
    if not index_path.exists():
        raise IndexNotFoundError(f"no index at {index_path}")
    con = duckdb.connect(":memory:")
    try:
        quoted = str(index_path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS published (READ_ONLY)")
        con.execute("USE published")
    except duckdb.IOException as error:
        con.close()
        raise IndexNotFoundError(f"cannot open the index at {index_path}: {error}") from error
    return con


@dataclass(frozen=True)
class BuildResult:
    version: int
    index_path: Path
    chunks: int
    files: int
    symbols: int
    seconds: float
    checks: list[CheckOutcome]
    bm25: dict[str, object] = field(default_factory=dict)  # what the BM25 asset reports


def validate_index(
    con: duckdb.DuckDBPyConnection, expected_chunks: int, dim: int
) -> list[CheckOutcome]:
    """The invariants of a published index, checked through its SQL surface (the asset
    checks); `segments.validate_segments` checks the same per segment before a publish."""
    total, bad_vectors = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE embedding_dim IS NULL OR embedding_dim <> ?) "
        "FROM chunks",
        [dim],
    ).fetchone()
    orphans = con.execute(
        "SELECT count(*) FROM chunks c ANTI JOIN (SELECT path FROM files WHERE skip_reason IS NULL) f "
        "USING (path)"
    ).fetchone()[0]
    return [
        CheckOutcome(
            "every_chunk_has_vector",
            bad_vectors == 0,
            f"{bad_vectors} of {total} chunks lack a {dim}-dim vector",
        ),
        CheckOutcome(
            "chunk_count_matches_shards",
            total == expected_chunks,
            f"index has {total} chunks, shards hold {expected_chunks}",
        ),
        CheckOutcome(
            "no_orphan_chunks",
            orphans == 0,
            f"{orphans} chunks belong to files missing from every manifest",
        ),
    ]


def chunk_bm25_text(path: str, symbol: str, content: str) -> str:
    """The code-aware token stream a chunk is found by (BM25 and the FTS index)."""
    return bm25_text(f"{path} {symbol} {content}")


def with_bm25_text(chunk_rows: pa.Table) -> pa.Table:
    """Chunk rows with a filled `bm25_text` column (computed at chunking time; rows from
    shard files written before that column existed are tokenized here)."""
    if "bm25_text" in chunk_rows.column_names and chunk_rows.column("bm25_text").null_count == 0:
        return chunk_rows
    existing = (
        chunk_rows.column("bm25_text").to_pylist()
        if "bm25_text" in chunk_rows.column_names
        else [None] * chunk_rows.num_rows
    )
    filled = [
        text if text is not None else chunk_bm25_text(path, symbol, content)
        for text, path, symbol, content in zip(
            existing,
            chunk_rows.column("path").to_pylist(),
            chunk_rows.column("symbol").to_pylist(),
            chunk_rows.column("content").to_pylist(),
            strict=True,
        )
    ]
    column = pa.array(filled, pa.string())
    if "bm25_text" in chunk_rows.column_names:
        return chunk_rows.set_column(
            chunk_rows.column_names.index("bm25_text"), "bm25_text", column
        )
    return chunk_rows.append_column("bm25_text", column)


def index_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new cursor on a :func:`connect_index` connection (for another thread), same snapshot."""
    cursor = con.cursor()
    cursor.execute("USE published")
    return cursor


def read_meta(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    return {
        key: json.loads(value)
        for key, value in con.execute("SELECT key, value FROM meta").fetchall()
    }


def find_index(data_dir: Path, start: Path) -> IndexStore | None:
    """The index whose root is `start` or its nearest indexed ancestor (the way git finds a repo)."""
    start = start.resolve()
    best: IndexStore | None = None
    for root_file in (data_dir / "indexes").glob("*/root.json"):
        try:
            root = Path(json.loads(root_file.read_text())["root"])
        except (OSError, ValueError, KeyError):
            continue
        covers = start == root or root in start.parents
        if covers and (best is None or len(root.parts) > len(best.root.parts)):
            best = IndexStore(root_file.parent, root)
    return best
