"""One index's directory: its paths, root record, per-shard Parquet files and writer lock."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.store.atomic import replacing, write_bytes_atomic
from coderag_assets.store.schemas import SHARD_KINDS
from coderag_assets.store.tables import dictionary_columns, union
from coderag_assets.store.vector_cache import VectorCache

INDEX_FILE_NAME = "index.duckdb"
TORN_SUFFIX = ".torn"  # an unreadable shard file set aside (`freshness.quarantine_torn_files`)
VECTORS_DIR = "vectors"  # the vector caches, one directory per model
INDEXES_DIR = "indexes"  # under the data directory: one directory per indexed root
WRITER_LOCK_FILE = "index.lock"  # held while a version is built and published (flock)
UPDATE_LOCK_FILE = "update.lock"  # held by an update of the root from start to end (filelock)


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
        return cls(data_dir / INDEXES_DIR / f"{_slug(root.name)}-{digest}", root)

    # ----- paths
    @property
    def index_path(self) -> Path:
        return self.base / INDEX_FILE_NAME

    @property
    def update_lock_path(self) -> Path:
        """The root's update lock (a `filelock` file): an update (`coderag index`, `watch`)
        holds it from start to end, `coderag prune` while it removes the index."""
        return self.base / UPDATE_LOCK_FILE

    def shard_file(self, kind: str, shard: str) -> Path:
        return self.base / kind / f"{shard}.parquet"

    def vector_cache_dir(self, model_id: str) -> Path:
        return self.base / VECTORS_DIR / _slug(model_id.replace(":", "__"))

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
    def write_shard(self, kind: str, shard: str, table: pa.Table, **write_options: object) -> None:
        """Replace the shard's file whole (zstd, unless `write_options` for
        `pyarrow.parquet.write_table` say otherwise); DiskFullError (nothing replaced) when
        space runs out."""
        path = self.shard_file(kind, shard)
        with replacing(path, f"writing the {kind} file of shard {shard}") as tmp_path:
            pq.write_table(table, tmp_path, **{"compression": "zstd", **write_options})

    def read_shard(
        self, kind: str, shard: str, schema: pa.Schema, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """The shard's table (only `columns` when given), or an empty table of `schema` if it
        was never written; the columns `schema` dictionary-encodes are read as dictionaries."""
        path = self.shard_file(kind, shard)
        if not path.exists():
            empty = schema.empty_table()
            return empty.select(list(columns)) if columns is not None else empty
        return pq.read_table(
            path,
            columns=list(columns) if columns is not None else None,
            read_dictionary=dictionary_columns(schema),
        )

    def read_all_shards(self, kind: str, shards: Iterable[str], schema: pa.Schema) -> pa.Table:
        return union([self.read_shard(kind, shard, schema) for shard in shards], schema)

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
        return union(tables, schema), fingerprints

    # ----- vector cache (content hash → vector, per model)
    # ----- vector cache (content hash → vector, per model)
    def vector_cache(self, model_id: str) -> VectorCache:
        return VectorCache(self.vector_cache_dir(model_id))

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive lock held while the index is built and published (one writer)."""
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / WRITER_LOCK_FILE, "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


def find_index(data_dir: Path, start: Path) -> IndexStore | None:
    """The index whose root is `start` or its nearest indexed ancestor (the way git finds a repo)."""
    start = start.resolve()
    best: IndexStore | None = None
    for root_file in (data_dir / INDEXES_DIR).glob("*/root.json"):
        try:
            root = Path(json.loads(root_file.read_text())["root"])
        except (OSError, ValueError, KeyError):
            continue
        covers = start == root or root in start.parents
        if covers and (best is None or len(root.parts) > len(best.root.parts)):
            best = IndexStore(root_file.parent, root)
    return best
