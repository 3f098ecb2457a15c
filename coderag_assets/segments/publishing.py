"""Publishing a version: validate its segments, write its manifest and SQL surface, flip
`CURRENT` (the commit point), reclaim what no recent version uses.

A failure before the flip leaves the old version live and removes what the publish wrote; a
full disk anywhere on the way is a `DiskFullError` naming the step.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.segments.gc import collect_garbage
from coderag_assets.segments.layout import (
    CHUNKS_FILE,
    CURRENT_FILE,
    MANIFESTS_DIR,
    POSTINGS_FILES,
    TERMS_FILE,
    SegmentError,
    SegmentInfo,
    verify_segment,
)
from coderag_assets.segments.postings import BM25_B, BM25_K1
from coderag_assets.segments.sql_surface import create_sql_surface
from coderag_assets.segments.versions import IndexVersion, current_version, manifest_versions
from coderag_assets.store import (
    INDEX_SCHEMA_VERSION,
    CheckOutcome,
    IndexStore,
    IndexValidationError,
    reporting_disk_full,
    write_bytes_atomic,
)


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
class PublishedVersion:
    version: int
    chunks: int
    files: int
    symbols: int
    checks: list[CheckOutcome]


_STORED_ROWS_CACHED = 4096  # segment files whose row count a process remembers
_stored_rows_cache: dict[tuple[str, int, int, int], int] = {}


def _stored_rows(path: Path) -> int:
    """The row count in the Parquet footer of `path`. Segment files are written once and never
    changed in place, so the count is remembered per (path, inode, size, mtime): a process that
    publishes again and again (`coderag watch`) reads the footers of the unchanged segments
    once, not twice per publish. Raises OSError / ArrowException as reading the footer does."""
    info = path.stat()
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    rows = _stored_rows_cache.get(key)
    if rows is None:
        rows = pq.ParquetFile(path).metadata.num_rows
        if len(_stored_rows_cache) >= _STORED_ROWS_CACHED:
            _stored_rows_cache.clear()
        _stored_rows_cache[key] = rows
    return rows


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
            stored_rows = _stored_rows(info.path / CHUNKS_FILE)
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
        known = [previous, *manifest_versions(base)]
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
                import duckdb  # here: a chunking worker never loads DuckDB (-47 MiB)

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
