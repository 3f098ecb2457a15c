"""Where the pipeline's data lives, and how the published DuckDB index is built.

Layout of one index (one per indexed root) under the data directory::

    data/indexes/<name>-<hash>/
      root.json                     the indexed root (how `coderag search` finds its index)
      manifest/<shard>.parquet      file_manifest[shard]
      chunks/<shard>.parquet        code_chunks[shard]
      symbols/<shard>.parquet       definitions found while chunking
      embeddings/<shard>.parquet    chunk_embeddings[shard]: one vector per content hash
      vectors/<model>/*.parquet     append-only vector cache keyed by content hash (reuse)
      index.duckdb                  the published index (replaced atomically)

Per-shard files are Parquet written to a temporary name and renamed. Only
:func:`build_index` writes DuckDB, under an exclusive file lock, into a new file that is
validated and then `os.replace`d over the live one: readers never see a half-built index.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
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
SHARD_KINDS = ("manifest", "chunks", "symbols", "embeddings")

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
        try:
            recorded = json.loads(root_file.read_text()).get("shard_count")
        except (OSError, ValueError):
            recorded = None
        if recorded is not None and recorded != shard_count:
            for kind in SHARD_KINDS:
                for path in (self.base / kind).glob("*.parquet"):
                    path.unlink()
        payload = {"root": str(self.root), "shard_count": shard_count}
        _write_bytes_atomic(root_file, json.dumps(payload).encode("utf-8"))

    # ----- shard Parquet files
    def write_shard(self, kind: str, shard: str, table: pa.Table) -> None:
        path = self.shard_file(kind, shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp_path, compression="zstd")
        os.replace(tmp_path, path)

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
    def cached_vectors(self, model_id: str, wanted: set[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for any of the `wanted` content hashes with this model."""
        found: dict[str, np.ndarray] = {}
        cache_dir = self.vector_cache_dir(model_id)
        if not wanted or not cache_dir.is_dir():
            return found
        for path in sorted(cache_dir.glob("*.parquet")):
            try:
                hashes = pq.read_table(path, columns=["content_hash"]).column(0).to_pylist()
            except (OSError, pa.ArrowInvalid):
                continue  # a torn file from a killed run: its vectors are simply recomputed
            rows = [i for i, h in enumerate(hashes) if h in wanted and h not in found]
            if not rows:
                continue
            vectors = vector_matrix(pq.read_table(path, columns=["vector"]).column(0))
            for row in rows:
                found[hashes[row]] = vectors[row]
        return found

    def add_cached_vectors(self, model_id: str, run_id: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        cache_dir = self.vector_cache_dir(model_id)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_path = cache_dir / f".{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp_path, compression="zstd")
        os.replace(
            tmp_path,
            cache_dir / f"{int(time.time() * 1000)}-{run_id[:8]}-{uuid.uuid4().hex[:8]}.parquet",
        )

    def compact_vector_cache(self, model_id: str) -> None:
        """Merge many small cache files into one (call under the index lock)."""
        cache_dir = self.vector_cache_dir(model_id)
        files = sorted(cache_dir.glob("*.parquet")) if cache_dir.is_dir() else []
        if len(files) < VECTOR_CACHE_COMPACT_FILES:
            return
        tables = []
        for path in files:
            try:
                tables.append(pq.read_table(path))
            except (OSError, pa.ArrowInvalid):
                continue
        if not tables:
            return
        merged = first_row_per_hash(pa.concat_tables(tables))
        tmp_path = cache_dir / f".{uuid.uuid4().hex}.tmp"
        pq.write_table(merged, tmp_path, compression="zstd")
        os.replace(tmp_path, cache_dir / f"{int(time.time() * 1000)}-compacted.parquet")
        for path in files:
            path.unlink(missing_ok=True)

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


def _write_bytes_atomic(path: Path, payload: bytes) -> None:
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp_path.write_bytes(payload)
    os.replace(tmp_path, path)


def _union(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The rows of all non-empty `tables` (an empty table of `schema` when there are none)."""
    tables = [table for table in tables if table.num_rows] or [schema.empty_table()]
    return pa.concat_tables(tables, promote_options="permissive")


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


def duckdb_extension_path(name: str) -> str:
    """Path of a pip-packaged DuckDB extension (`duckdb-extension-<name>`); never downloads."""
    import importlib

    module = importlib.import_module(f"duckdb_extension_{name}")
    package_dir = Path(module.__file__ or "").parent
    candidates = sorted(
        package_dir.glob(f"extensions/v{duckdb.__version__}/{name}.duckdb_extension")
    )
    if not candidates:
        candidates = sorted(package_dir.rglob(f"{name}.duckdb_extension"))
    if not candidates:
        raise RuntimeError(
            f"DuckDB extension {name!r} not found in {package_dir}; install "
            f"duckdb-extension-{name}=={duckdb.__version__}"
        )
    return str(candidates[0])


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"LOAD '{duckdb_extension_path('fts')}'")


def connect_index(index_path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the index file published *now*, with FTS loaded.

    The file is ATTACHed to a fresh in-memory database instead of opened by path: DuckDB
    hands out the database already open in this process for a path, so a long-lived
    reader elsewhere in the process (MCP server, watch loop) would pin an old snapshot.
    """
    if not index_path.exists():
        raise IndexNotFoundError(f"no index at {index_path}")
    con = duckdb.connect(":memory:")
    try:
        load_fts(con)
        quoted = str(index_path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS published (READ_ONLY)")
        con.execute("USE published")
    except duckdb.IOException as error:
        con.close()
        raise IndexNotFoundError(f"cannot open the index at {index_path}: {error}") from error
    return con


@dataclass(frozen=True)
class IndexBuildInput:
    """Everything one index build reads: the union of all shards of one root."""

    root: str
    manifest: pa.Table
    chunks: pa.Table
    symbols: pa.Table
    vectors: pa.Table  # content_hash, vector, model_id, run_id (one row per hash)
    model_id: str
    model: str  # what the query side loads to embed queries the same way
    backend: str
    dim: int
    chunker_version: str
    shard_count: int
    expected_chunks: int  # sum of the shards' chunk rows
    chunk_shard_files: dict[str, str | None] = field(default_factory=dict)  # shard → fingerprint


@dataclass(frozen=True)
class BuildResult:
    version: int
    index_path: Path
    chunks: int
    files: int
    symbols: int
    seconds: float
    checks: list[CheckOutcome]


def _fts_build(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "PRAGMA create_fts_index('chunks', 'chunk_id', 'bm25_text', stemmer='porter', "
        "stopwords='english', ignore='(\\.|[^a-z0-9_])+', strip_accents=0, lower=1, overwrite=1)"
    )


def validate_index(
    con: duckdb.DuckDBPyConnection, expected_chunks: int, dim: int
) -> list[CheckOutcome]:
    """The invariants a published index must hold; shared by the build and the asset checks."""
    total, bad_vectors = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE embedding IS NULL OR len(embedding) <> ?) FROM chunks",
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


def build_index(store: IndexStore, build: IndexBuildInput, run_id: str) -> BuildResult:
    """Build a new DuckDB index from `build`, validate it, and publish it atomically.

    Raises IndexValidationError (and leaves the live index untouched) if a check fails.
    """
    started = time.perf_counter()
    with store.writer_lock():
        store.base.mkdir(parents=True, exist_ok=True)
        building_path = store.base / f".index.{uuid.uuid4().hex}.building.duckdb"
        version = time.time_ns() // 1000
        try:
            con = duckdb.connect(str(building_path))
            try:
                load_fts(con)
                checks = _write_index(con, build, run_id, version)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            if not all(outcome.passed for outcome in checks):
                raise IndexValidationError(checks)
            os.replace(building_path, store.index_path)
        finally:
            building_path.unlink(missing_ok=True)
            Path(f"{building_path}.wal").unlink(missing_ok=True)
        store.compact_vector_cache(build.model_id)
    return BuildResult(
        version=version,
        index_path=store.index_path,
        chunks=build.chunks.num_rows,
        files=build.manifest.num_rows,
        symbols=build.symbols.num_rows,
        seconds=time.perf_counter() - started,
        checks=checks,
    )


def chunk_bm25_text(path: str, symbol: str, content: str) -> str:
    """The code-aware token stream a chunk is found by (BM25 and the FTS index)."""
    return bm25_text(f"{path} {symbol} {content}")


def _with_bm25_text(chunk_rows: pa.Table) -> pa.Table:
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


def _write_index(
    con: duckdb.DuckDBPyConnection, build: IndexBuildInput, run_id: str, version: int
) -> list[CheckOutcome]:
    chunk_rows = build.chunks
    chunk_arrow = _with_bm25_text(chunk_rows)
    vector_arrow = build.vectors.select(["content_hash", "vector", "run_id"]).rename_columns(
        ["content_hash", "vector", "embed_run_id"]
    )
    con.register("chunk_arrow", chunk_arrow)
    con.register("vector_arrow", vector_arrow)
    con.register("manifest_arrow", build.manifest)
    con.register("symbol_arrow", build.symbols)
    con.execute(
        f"""
        CREATE TABLE chunks AS
        SELECT c.chunk_id, c.path, c.language, c.start_line, c.end_line, c.symbol, c.kind,
               c.content, c.content_hash, c.bm25_text,
               v.vector::FLOAT[{build.dim}] AS embedding,
               ? AS model_id, c.chunker_version, c.run_id AS chunk_run_id, v.embed_run_id
        FROM chunk_arrow c LEFT JOIN vector_arrow v USING (content_hash)
        ORDER BY c.path, c.start_line
        """,
        [build.model_id],
    )
    con.execute(
        """
        CREATE TABLE files AS
        SELECT m.*, coalesce(n.chunks, 0)::INTEGER AS chunks
        FROM manifest_arrow m
        LEFT JOIN (SELECT path, count(*) AS chunks FROM chunk_arrow GROUP BY path) n USING (path)
        ORDER BY m.path
        """
    )
    con.execute("CREATE TABLE symbols AS SELECT * FROM symbol_arrow ORDER BY path, line")
    for name in ("chunk_arrow", "vector_arrow", "manifest_arrow", "symbol_arrow"):
        con.unregister(name)
    _fts_build(con)
    meta = {
        "schema_version": INDEX_SCHEMA_VERSION,
        "version": version,
        "root": build.root,
        "published_at": time.time(),
        "run_id": run_id,
        "model_id": build.model_id,
        "model": build.model,
        "backend": build.backend,
        "dim": build.dim,
        "chunker_version": build.chunker_version,
        "shard_count": build.shard_count,
        "chunk_shard_files": build.chunk_shard_files,
    }
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    return validate_index(con, build.expected_chunks, build.dim)


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
