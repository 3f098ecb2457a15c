"""What each pipeline stage does, as plain functions over one index's shards.

The Dagster assets are thin wrappers around these; the CLI reaches them only through the
assets (one code path). Each stage reads its upstream shard files, writes its own shard
files, and returns stats a person wants to see. Stages are incremental:

- manifest: a file whose size and mtime are unchanged keeps its recorded sha256 (unless
  `verify_hashes`), so a no-op re-run reads no file contents;
- chunks: a file whose sha256 and chunker version are unchanged keeps its chunk rows;
- embeddings: a content hash with a vector (this shard's last output or the vector cache)
  is never embedded again, so renames, reverts and rebuilds reuse vectors.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa

from coderag_assets.chunking import CHUNKER_VERSION, Chunk, chunk_file, language_for_path
from coderag_assets.embedding import Embedder, EmbedderSpec, load_embedder, prepare_model
from coderag_assets.files import FileStat, SkippedFile, read_source, scan_tree
from coderag_assets.progress import report
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    BuildResult,
    IndexBuildInput,
    IndexStore,
    build_index,
    chunk_bm25_text,
    first_row_per_hash,
    vector_matrix,
    vector_schema,
    vectors_table,
)

SKIP_UNSUPPORTED_TYPE = "unsupported_type"
EMBED_TASK_TEXTS = 128  # texts per task handed to a worker process
PARALLEL_EMBED_MIN_TEXTS = 256  # below this, embedding in-process beats starting workers
CACHE_FLUSH_VECTORS = 2048  # new vectors are persisted at least this often (crash safety)


@dataclass
class ManifestStats:
    files: int = 0
    indexable: int = 0
    hashed: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class ChunkStats:
    files_chunked: int = 0
    files_reused: int = 0
    chunks: int = 0
    symbols: int = 0
    parse_error_files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


@dataclass
class EmbedStats:
    chunks: int = 0
    unique_hashes: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    model_id: str = ""


# ------------------------------------------------------------------ manifest


def classify_language(rel_path: str) -> tuple[str | None, str | None]:
    """(language, skip reason) from the file name alone.

    Files with an extension no chunker knows (`.po` catalogs, `.svg`, `.csv` ...) are skipped
    as `unsupported_type`; extensionless files (README, LICENSE, Makefile) are text.
    """
    language = language_for_path(rel_path)
    if language is None and PurePosixPath(rel_path).suffix:
        return None, SKIP_UNSUPPORTED_TYPE
    return language, None


def build_manifests(
    store: IndexStore,
    shards: Sequence[str],
    shard_of: Callable[[str], str],
    *,
    max_file_bytes: int,
    verify_hashes: bool = False,
) -> dict[str, ManifestStats]:
    """Walk the root once and write `manifest/<shard>.parquet` for each of `shards`."""
    file_stats = scan_tree(store.root, max_file_bytes=max_file_bytes)
    by_shard: dict[str, list[FileStat]] = defaultdict(list)
    wanted = set(shards)
    for stat in file_stats:
        shard = shard_of(stat.path)
        if shard in wanted:
            by_shard[shard].append(stat)
    report().start("scan", sum(len(by_shard[s]) for s in shards))
    results: dict[str, ManifestStats] = {}
    for shard in shards:
        previous = {
            row["path"]: row
            for row in store.read_shard("manifest", shard, MANIFEST_SCHEMA).to_pylist()
        }
        stats = ManifestStats()
        rows = [
            _manifest_row(
                store.root,
                stat,
                shard,
                previous.get(stat.path),
                stats,
                max_file_bytes,
                verify_hashes,
            )
            for stat in by_shard[shard]
        ]
        store.write_shard("manifest", shard, pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA))
        results[shard] = stats
        report().advance("scan", len(rows))
    report().finish("scan")
    return results


def _manifest_row(
    root: Path,
    stat: FileStat,
    shard: str,
    previous: dict | None,
    stats: ManifestStats,
    max_file_bytes: int,
    verify_hashes: bool,
) -> dict:
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
    stats.files += 1
    if stat.skip_reason is None:
        unchanged = (
            previous is not None
            and previous["size"] == stat.size
            and previous["mtime_ns"] == stat.mtime_ns
            and not verify_hashes
        )
        if unchanged:
            row.update(
                sha256=previous["sha256"],
                skip_reason=previous["skip_reason"],
                skip_detail=previous["skip_detail"],
            )
        else:
            stats.hashed += 1
            try:
                source = read_source(root, stat.path, max_file_bytes=max_file_bytes)
                row["sha256"] = source.sha256
            except SkippedFile as skipped:
                row.update(skip_reason=skipped.reason, skip_detail=skipped.detail)
    if row["skip_reason"] is None:
        stats.indexable += 1
        stats.bytes += stat.size
    else:
        stats.skipped[row["skip_reason"]] += 1
    return row


# ------------------------------------------------------------------ chunks


def build_chunks(
    store: IndexStore, shards: Sequence[str], *, run_id: str, max_file_bytes: int
) -> dict[str, ChunkStats]:
    """Chunk the indexable files of each shard; unchanged files keep their chunk rows."""
    manifests = {shard: store.read_shard("manifest", shard, MANIFEST_SCHEMA) for shard in shards}
    report().start("chunk", sum(m.num_rows for m in manifests.values()))
    results: dict[str, ChunkStats] = {}
    for shard in shards:
        started = time.perf_counter()
        stats = ChunkStats()
        previous_chunks = store.read_shard("chunks", shard, CHUNK_SCHEMA)
        previous_symbols = store.read_shard("symbols", shard, SYMBOL_SCHEMA)
        chunks_by_path = _rows_by_path(previous_chunks)
        symbols_by_path = _rows_by_path(previous_symbols)
        chunk_rows: list[dict] = []
        symbol_rows: list[dict] = []
        for entry in manifests[shard].to_pylist():
            if entry["skip_reason"] is not None:
                continue
            old_rows = chunks_by_path.get(entry["path"], [])
            if old_rows and all(
                r["file_sha256"] == entry["sha256"] and r["chunker_version"] == CHUNKER_VERSION
                for r in old_rows
            ):
                chunk_rows.extend(old_rows)
                symbol_rows.extend(symbols_by_path.get(entry["path"], []))
                stats.files_reused += 1
                continue
            try:
                source = read_source(store.root, entry["path"], max_file_bytes=max_file_bytes)
            except SkippedFile as skipped:
                stats.skipped[skipped.reason] += 1
                continue
            chunked = chunk_file(entry["path"], source.text, entry["language"])
            stats.files_chunked += 1
            stats.parse_error_files += int(chunked.parse_errors > 0)
            chunk_rows.extend(chunk_row(chunk, source.sha256, run_id) for chunk in chunked.chunks)
            symbol_rows.extend(symbol_row(symbol) for symbol in chunked.symbols)
        report().advance("chunk", manifests[shard].num_rows)
        store.write_shard("chunks", shard, pa.Table.from_pylist(chunk_rows, schema=CHUNK_SCHEMA))
        store.write_shard("symbols", shard, pa.Table.from_pylist(symbol_rows, schema=SYMBOL_SCHEMA))
        stats.chunks = len(chunk_rows)
        stats.symbols = len(symbol_rows)
        stats.seconds = time.perf_counter() - started
        results[shard] = stats
    report().finish("chunk")
    return results


def _rows_by_path(table: pa.Table) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        grouped[row["path"]].append(row)
    return grouped


def chunk_row(chunk: Chunk, file_sha256: str, run_id: str) -> dict:
    return {
        "chunk_id": chunk.chunk_id,
        "path": chunk.path,
        "language": chunk.language,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "symbol": chunk.symbol,
        "kind": chunk.kind,
        "content": chunk.content,
        "content_hash": chunk.content_hash,
        "file_sha256": file_sha256,
        "chunker_version": CHUNKER_VERSION,
        "run_id": run_id,
        "bm25_text": chunk_bm25_text(chunk.path, chunk.symbol, chunk.content),
    }


def symbol_row(symbol: object) -> dict:
    return {name: getattr(symbol, name) for name in SYMBOL_SCHEMA.names}


def chunk_from_row(row: dict) -> Chunk:
    return Chunk(
        path=row["path"],
        language=row["language"],
        start_line=row["start_line"],
        end_line=row["end_line"],
        symbol=row["symbol"],
        kind=row["kind"],
        content=row["content"],
    )


# ------------------------------------------------------------------ embeddings

_worker_embedder: Embedder | None = None


def _init_embed_worker(spec: EmbedderSpec) -> None:
    global _worker_embedder
    _worker_embedder = load_embedder(spec)


def _embed_in_worker(texts: list[str]) -> np.ndarray:
    assert _worker_embedder is not None, "worker initializer did not run"
    return _worker_embedder.embed(texts)


def worker_layout(workers: int) -> tuple[int, int]:
    """(processes, inference threads per process) with processes × threads ≤ cores."""
    cores = os.cpu_count() or 1
    processes = max(1, min(workers, cores))
    return processes, max(1, cores // processes)


def iter_embeddings(
    spec: EmbedderSpec, texts: list[str], workers: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Embed `texts`, yielding (row indices, vectors) as each length-sorted task finishes.

    One pool for the whole call: each worker process loads the model once (initializer)
    and runs `cores // processes` inference threads, so processes × threads ≤ cores.
    Small inputs are embedded in-process (starting workers would cost more than it saves).
    """
    if not texts:
        return
    processes, threads = worker_layout(workers)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    tasks = [order[i : i + EMBED_TASK_TEXTS] for i in range(0, len(order), EMBED_TASK_TEXTS)]
    if processes == 1 or len(texts) < PARALLEL_EMBED_MIN_TEXTS:
        embedder = load_embedder(replace(spec, threads=os.cpu_count() or 1))
        for rows in tasks:
            yield rows, embedder.embed([texts[i] for i in rows])
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        processes,
        mp_context=context,
        initializer=_init_embed_worker,
        initargs=(replace(spec, threads=threads),),
    ) as pool:
        futures = {pool.submit(_embed_in_worker, [texts[i] for i in rows]): rows for rows in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # On an error (or an abandoned generator) do not finish the queued tasks first.
            pool.shutdown(wait=True, cancel_futures=True)


def build_embeddings(
    store: IndexStore, shards: Sequence[str], spec: EmbedderSpec, *, run_id: str, workers: int
) -> dict[str, EmbedStats]:
    """One vector per distinct content hash of each shard; only unseen hashes are embedded."""
    started = time.perf_counter()
    prepare_model(spec)
    model_id = spec.model_id
    shard_hashes: dict[str, list[str]] = {}
    text_of: dict[str, str] = {}
    stats: dict[str, EmbedStats] = {}
    known: dict[str, np.ndarray] = {}
    for shard in shards:
        chunk_rows = store.read_shard("chunks", shard, CHUNK_SCHEMA).to_pylist()
        hashes = sorted({row["content_hash"] for row in chunk_rows})
        shard_hashes[shard] = hashes
        for row in chunk_rows:
            text_of.setdefault(row["content_hash"], chunk_from_row(row).embedding_text)
        stats[shard] = EmbedStats(
            chunks=len(chunk_rows), unique_hashes=len(hashes), model_id=model_id
        )
        previous = store.read_shard("embeddings", shard, vector_schema(1))
        if previous.num_rows and previous.column("model_id")[0].as_py() == model_id:
            wanted = set(hashes)
            prev_hashes = previous.column("content_hash").to_pylist()
            prev_vectors = vector_matrix(previous.column("vector"))
            for i, content_hash in enumerate(prev_hashes):
                if content_hash in wanted:
                    known[content_hash] = prev_vectors[i]
    all_hashes = set(text_of)
    known.update(store.cached_vectors(model_id, all_hashes - set(known)))
    missing = sorted(all_hashes - set(known))
    report().start("embed", len(missing))
    pending_hashes: list[str] = []
    pending_vectors: list[np.ndarray] = []
    for rows, vectors in iter_embeddings(spec, [text_of[h] for h in missing], workers):
        batch_hashes = [missing[i] for i in rows]
        known.update(zip(batch_hashes, vectors, strict=True))
        pending_hashes.extend(batch_hashes)
        pending_vectors.append(vectors)
        report().advance("embed", len(rows))
        if len(pending_hashes) >= CACHE_FLUSH_VECTORS:
            _flush_vectors(store, model_id, run_id, pending_hashes, pending_vectors)
    _flush_vectors(store, model_id, run_id, pending_hashes, pending_vectors)
    report().finish("embed")
    missing_set = set(missing)
    for shard in shards:
        hashes = shard_hashes[shard]
        matrix = np.stack([known[h] for h in hashes]) if hashes else np.zeros((0, 1), np.float32)
        store.write_shard("embeddings", shard, vectors_table(hashes, matrix, model_id, run_id))
        shard_stats = stats[shard]
        shard_stats.embedded = sum(1 for h in hashes if h in missing_set)
        shard_stats.reused = shard_stats.unique_hashes - shard_stats.embedded
        shard_stats.seconds = time.perf_counter() - started
    return stats


def _flush_vectors(
    store: IndexStore, model_id: str, run_id: str, hashes: list[str], vectors: list[np.ndarray]
) -> None:
    """Persist new vectors to the cache (so a killed run keeps them) and clear the buffers."""
    if hashes:
        table = vectors_table(list(hashes), np.concatenate(vectors), model_id, run_id)
        store.add_cached_vectors(model_id, run_id, table)
    hashes.clear()
    vectors.clear()


# ------------------------------------------------------------------ index


def publish_index(
    store: IndexStore, all_shards: Sequence[str], spec: EmbedderSpec, *, run_id: str
) -> BuildResult:
    """Union every shard and publish a new DuckDB index (validated, atomic)."""
    manifest = store.read_all_shards("manifest", all_shards, MANIFEST_SCHEMA)
    chunks, chunk_shard_files = store.read_all_shards_pinned("chunks", all_shards, CHUNK_SCHEMA)
    symbols = store.read_all_shards("symbols", all_shards, SYMBOL_SCHEMA)
    vector_tables = [store.read_shard("embeddings", s, vector_schema(1)) for s in all_shards]
    vector_tables = [t for t in vector_tables if t.num_rows]
    if vector_tables:
        wrong_model = {t.column("model_id")[0].as_py() for t in vector_tables} - {spec.model_id}
        if wrong_model:
            raise ValueError(
                f"some shards were embedded with {sorted(wrong_model)}, not {spec.model_id}; "
                "re-run every shard (`coderag index`) so they are embedded with one model"
            )
        vectors = first_row_per_hash(pa.concat_tables(vector_tables))
        dim = vectors.schema.field("vector").type.list_size
    else:
        dim = load_embedder(spec).dim
        vectors = vector_schema(dim).empty_table()
    build = IndexBuildInput(
        root=str(store.root),
        manifest=manifest,
        chunks=chunks,
        symbols=symbols,
        vectors=vectors,
        model_id=spec.model_id,
        model=spec.model,
        backend=spec.backend,
        dim=dim,
        chunker_version=CHUNKER_VERSION,
        shard_count=len(all_shards),
        expected_chunks=chunks.num_rows,
        chunk_shard_files=chunk_shard_files,
    )
    return build_index(store, build, run_id)
