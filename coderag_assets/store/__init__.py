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

Modules: `schemas` (Arrow schemas of the shard files), `errors` (including disk-full
reporting), `atomic` (replace-by-rename writes), `tables` (Arrow helpers), `index_store` (one
index's paths, shard files and writer lock), `vector_cache` (content hash → vector reuse),
`sql` (the published `index.duckdb`), `memory`. This package re-exports what the rest of
CodeRAG uses.
"""

from coderag_assets.store.atomic import write_bytes_atomic
from coderag_assets.store.errors import (
    CheckOutcome,
    DiskFullError,
    IndexNotFoundError,
    IndexValidationError,
    duckdb_errors,
    is_disk_full,
    reporting_disk_full,
)
from coderag_assets.store.index_store import (
    INDEX_FILE_NAME,
    INDEXES_DIR,
    TORN_SUFFIX,
    UPDATE_LOCK_FILE,
    VECTORS_DIR,
    WRITER_LOCK_FILE,
    IndexStore,
    find_index,
)
from coderag_assets.store.memory import ArrayCache, release_unused_memory
from coderag_assets.store.schemas import (
    CHUNK_SCHEMA,
    INDEX_SCHEMA_VERSION,
    MANIFEST_SCHEMA,
    SHARD_KINDS,
    SYMBOL_SCHEMA,
    VECTOR_WRITE_OPTIONS,
    vector_schema,
)
from coderag_assets.store.sql import connect_index, index_cursor, read_meta, validate_index
from coderag_assets.store.tables import (
    chunk_bm25_text,
    dictionary_columns,
    dictionary_encoded,
    first_row_per_hash,
    sort_rows,
    vector_matrix,
    vectors_table,
    with_bm25_text,
)
from coderag_assets.store.vector_cache import VECTOR_CACHE_GRACE_S, VectorCache, VectorCacheStats

__all__ = [
    "CHUNK_SCHEMA",
    "INDEXES_DIR",
    "INDEX_FILE_NAME",
    "INDEX_SCHEMA_VERSION",
    "MANIFEST_SCHEMA",
    "SHARD_KINDS",
    "SYMBOL_SCHEMA",
    "TORN_SUFFIX",
    "UPDATE_LOCK_FILE",
    "VECTORS_DIR",
    "VECTOR_CACHE_GRACE_S",
    "VECTOR_WRITE_OPTIONS",
    "WRITER_LOCK_FILE",
    "ArrayCache",
    "CheckOutcome",
    "DiskFullError",
    "IndexNotFoundError",
    "IndexStore",
    "IndexValidationError",
    "VectorCache",
    "VectorCacheStats",
    "chunk_bm25_text",
    "connect_index",
    "dictionary_columns",
    "dictionary_encoded",
    "duckdb_errors",
    "find_index",
    "first_row_per_hash",
    "index_cursor",
    "is_disk_full",
    "read_meta",
    "release_unused_memory",
    "reporting_disk_full",
    "sort_rows",
    "validate_index",
    "vector_matrix",
    "vector_schema",
    "vectors_table",
    "with_bm25_text",
    "write_bytes_atomic",
]
