"""The vector cache: content hash → vector per model, so unchanged text is never embedded again."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coderag_assets.store.atomic import replacing
from coderag_assets.store.memory import ArrayCache
from coderag_assets.store.schemas import VECTOR_WRITE_OPTIONS, vector_schema
from coderag_assets.store.tables import first_row_per_hash

VECTOR_CACHE_COMPACT_FILES = 64
VECTOR_CACHE_GRACE_S = 7 * 24 * 3600.0  # unreferenced vectors survive a week (branch switches)
VECTOR_CACHE_COLUMNS = ("content_hash", "vector", "model_id", "run_id", "last_used_s")
VECTOR_CACHE_MEMORY_LIMIT = "256MB"  # DuckDB's limit while compacting; beyond it, it spills
VECTOR_CACHE_BATCH_ROWS = 8192
HASH_COLUMNS_BYTES = 32 * 1024 * 1024  # content-hash columns of cache files kept in memory


@dataclass(frozen=True)
class VectorCache:
    """The append-only vector cache of one model in one index (`IndexStore.vector_cache`):
    Parquet files of `vector_schema` rows (content hash → vector) under `directory`, added to
    by every embedding step and merged by `compact` under the writer lock."""

    directory: Path

    def cached(self, wanted: set[str]) -> pa.Table:
        """Rows of the vector cache (`vector_schema`, one per content hash) for any of the
        `wanted` content hashes with this model. Each cache file's `content_hash` column is
        read first; only the row groups holding a wanted hash are decoded further, so a
        lookup that finds nothing (the common case of a small edit: its new text was never
        embedded) reads no vector."""
        cache_dir = self.directory
        if not wanted or not cache_dir.is_dir():
            return vector_schema(1).empty_table()
        wanted_hashes = pa.array(sorted(wanted), pa.string())
        found: list[pa.Table] = []
        for path in sorted(cache_dir.glob("*.parquet")):
            try:
                rows = _matching_rows(path, wanted_hashes)
            except (OSError, pa.ArrowException):
                continue  # a torn file from a killed run: its vectors are simply recomputed
            if rows is not None and rows.num_rows:
                found.append(rows)
        if not found:
            return vector_schema(1).empty_table()
        return first_row_per_hash(pa.concat_tables(found, promote_options="permissive"))

    def add(self, run_id: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        cache_dir = self.directory
        path = cache_dir / f"{int(time.time() * 1000)}-{run_id[:8]}-{uuid.uuid4().hex[:8]}.parquet"
        with replacing(path, "adding to the vector cache") as tmp_path:
            pq.write_table(table, tmp_path, **VECTOR_WRITE_OPTIONS)

    def compact(
        self,
        referenced: Callable[[], Sequence[Path]] | None = None,
        *,
        grace_s: float = VECTOR_CACHE_GRACE_S,
        now: float | None = None,
        force: bool = False,
    ) -> VectorCacheStats:
        """Merge the cache files into one and drop vectors nobody needs.

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
        cache_dir = self.directory
        files = sorted(cache_dir.glob("*.parquet")) if cache_dir.is_dir() else []
        if len(files) < VECTOR_CACHE_COMPACT_FILES and not (force and files):
            return VectorCacheStats(files=len(files))
        now = time.time() if now is None else now
        readable = [path for path in files if _is_readable_parquet(path)]
        # a torn file of a killed run is deleted below; its vectors are recomputed when needed
        if not readable:
            return VectorCacheStats(files=len(files))
        spill = cache_dir / f".compact-spill-{uuid.uuid4().hex[:8]}"
        import duckdb  # here: a chunking worker never loads DuckDB (-47 MiB)

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


@dataclass(frozen=True)
class VectorCacheStats:
    """What one vector-cache compaction saw and did."""

    files: int
    kept: int = 0
    dropped: int = 0


def _matching_rows(path: Path, wanted: pa.Array) -> pa.Table | None:
    """The rows of the cache file `path` whose content hash is in `wanted` (file order), or
    None when there are none. Reads the hash column (once per process), then only the row
    groups with a match."""
    mask = pc.is_in(_content_hashes(path), value_set=wanted).to_numpy(zero_copy_only=False)
    if not mask.any():
        return None
    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata
    bounds = np.cumsum(
        [0] + [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    )
    groups = [i for i in range(metadata.num_row_groups) if mask[bounds[i] : bounds[i + 1]].any()]
    rows = parquet.read_row_groups(groups)
    selected = np.concatenate([mask[bounds[i] : bounds[i + 1]] for i in groups])
    return rows.filter(pa.array(selected))


#: Content-hash columns of cache files this process has read, by (path, inode, size, mtime),
#: least recently used first. A cache file never changes once written, and the shard steps
#: of one run look up every file the steps before them added: shard k of a cold index read
#: the hashes of k steps' files again, each time.
_hash_columns = ArrayCache(HASH_COLUMNS_BYTES)
_hash_columns_lock = threading.Lock()


def _content_hashes(path: Path) -> pa.Array:
    """The `content_hash` column of the cache file `path`, from memory when this process read
    the same file before (at most `HASH_COLUMNS_BYTES` of columns are kept)."""
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _hash_columns_lock:
        column = _hash_columns.get(key)
    if column is None:
        column = pq.read_table(path, columns=["content_hash"]).column("content_hash")
        column = column.combine_chunks()
        with _hash_columns_lock:
            _hash_columns.put(key, column)
    return column


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
    with replacing(path, "compacting the vector cache") as tmp_path:
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
