"""What each pipeline stage does, as plain functions over one shard of one index.

The Dagster shard steps (:mod:`coderag_assets.assets`) call :func:`prepare_shard` (manifest
and chunks) and :func:`embed_shard` (embeddings and the search segment) once per shard; the
index step calls :func:`publish_index`. Each stage reads its upstream shard files,
writes its own shard files, and returns stats a person wants to see. Stages are incremental:

- manifest: a file whose size and mtime are unchanged keeps its recorded sha256 (unless
  `verify_hashes`), so a no-op re-run reads no file contents;
- chunks: a file whose sha256 and chunker version are unchanged keeps its chunk rows;
- embeddings: a content hash with a vector (this shard's last output or the vector cache)
  is never embedded again, so renames, reverts and rebuilds reuse vectors.

Parallelism is not this module's business: Dagster's executor runs shard steps side by side
(one process per step, or Celery workers), and each step embeds with the threads it is given.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coderag_assets import segments
from coderag_assets.chunking import (
    CHUNKER_VERSION,
    Chunk,
    FileOccurrences,
    chunk_file,
    language_for_path,
)
from coderag_assets.embedding import EmbedderSpec, load_embedder, prepare_model
from coderag_assets.files import FileStat, SkippedFile, SourceReader, scan_tree
from coderag_assets.model_cache import available_cores
from coderag_assets.progress import report
from coderag_assets.scans import ScanUnusableError, load_scan
from coderag_assets.segments.layout import LOCATION_COLUMNS
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    VECTOR_WRITE_OPTIONS,
    CheckOutcome,
    IndexStore,
    chunk_bm25_text,
    dictionary_encoded,
    first_row_per_hash,
    release_unused_memory,
    sort_rows,
    vector_schema,
    vectors_table,
)

SKIP_UNSUPPORTED_TYPE = "unsupported_type"
CHUNK_BATCH_ROWS = 4096  # chunk rows held as Python objects before becoming an Arrow table
#: Occurrence rows held as plain strings before a batch is dictionary-encoded. A shard has
#: ~60 a chunk (560k for 8.7k Django chunks: 43 MiB as plain strings, most of it the file's
#: path repeated on every row; ~15 MiB encoded), and a chunking worker held them all plain.
OCCURRENCE_BATCH_ROWS = 65_536
CACHE_FLUSH_VECTORS = 2048  # new vectors are persisted at least this often (crash safety)
#: Occurrence rows as a chunk step holds them: strings with few distinct values as dictionaries.
OCCURRENCE_ENCODED_SCHEMA = dictionary_encoded(
    segments.OCCURRENCE_SCHEMA, segments.OCCURRENCE_STRING_COLUMNS
)


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


# ------------------------------------------------------------------ scan (one walk per update)


def scan_shards(
    root: Path,
    shards: Sequence[str],
    shard_of: Callable[[str], str],
    *,
    max_file_bytes: int,
) -> dict[str, list[FileStat]]:
    """Walk the root once; the stat entries of each of `shards` (every shard key present)."""
    wanted = set(shards)
    by_shard: dict[str, list[FileStat]] = {shard: [] for shard in shards}
    for stat in scan_tree(root, max_file_bytes=max_file_bytes):
        shard = shard_of(stat.path)
        if shard in wanted:
            by_shard[shard].append(stat)
    return by_shard


def shard_file_stats(
    store: IndexStore,
    shards: Sequence[str],
    shard_of: Callable[[str], str],
    *,
    shard_count: int,
    max_file_bytes: int,
    scan_id: str = "",
) -> tuple[dict[str, list[FileStat]], str]:
    """The stat entries of each of `shards` (as :func:`scan_shards` returns them) and one
    line for the run's log saying where they came from.

    They come from the planner's scan `scan_id` (:mod:`coderag_assets.scans`) when it is
    usable, which spares the run a second walk of the tree; otherwise (no scan named, or
    the scan is gone, torn, too old or made for other settings) from one walk of
    `store.root`, and the line says why. Raises RootError when the walk cannot list the root.
    """
    started = time.perf_counter()
    reason = "no planner scan in the run config"
    if scan_id:
        try:
            by_shard = load_scan(
                store, scan_id, shards, shard_count=shard_count, max_file_bytes=max_file_bytes
            )
        except ScanUnusableError as error:
            reason = str(error)
        else:
            files = sum(len(stats) for stats in by_shard.values())
            return by_shard, (
                f"{files} files of {len(shards)} shards from the planner's scan {scan_id} "
                f"in {time.perf_counter() - started:.2f} s (no walk)"
            )
    by_shard = scan_shards(store.root, shards, shard_of, max_file_bytes=max_file_bytes)
    files = sum(len(stats) for stats in by_shard.values())
    return by_shard, (
        f"walked the root for {files} files of {len(shards)} shards in "
        f"{time.perf_counter() - started:.2f} s: {reason}"
    )


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


def build_manifest(
    store: IndexStore,
    shard: str,
    file_stats: Sequence[FileStat],
    *,
    max_file_bytes: int,
    verify_hashes: bool = False,
    reader: SourceReader | None = None,
) -> ManifestStats:
    """Write `manifest/<shard>.parquet` for the shard's `file_stats` (from :func:`scan_shards`).

    A file whose size and mtime match the previous manifest keeps its sha256 and skip reason
    without being read (unless `verify_hashes`); every other readable file is hashed, read
    with `reader`, which keeps it for the chunk stage.
    """
    reader = reader or SourceReader(store.root, max_file_bytes=max_file_bytes)
    report().start("scan", len(file_stats))
    languages = [classify_language(stat.path) for stat in file_stats]
    current = pl.DataFrame(
        {
            "path": [stat.path for stat in file_stats],
            "size": [stat.size for stat in file_stats],
            "mtime_ns": [stat.mtime_ns for stat in file_stats],
            "language": [language for language, _ in languages],
            "stat_skip": [stat.skip_reason for stat in file_stats],
            "type_skip": [type_skip for _, type_skip in languages],
        },
        schema={
            "path": pl.String,
            "size": pl.Int64,
            "mtime_ns": pl.Int64,
            "language": pl.String,
            "stat_skip": pl.String,
            "type_skip": pl.String,
        },
    )
    previous = pl.from_arrow(store.read_shard("manifest", shard, MANIFEST_SCHEMA)).select(
        "path",
        pl.col("size").alias("prev_size"),
        pl.col("mtime_ns").alias("prev_mtime_ns"),
        pl.col("sha256").alias("prev_sha256"),
        pl.col("skip_reason").alias("prev_skip"),
        pl.col("skip_detail").alias("prev_detail"),
    )
    unchanged = (
        pl.col("stat_skip").is_null()
        & (pl.col("prev_size") == pl.col("size"))
        & (pl.col("prev_mtime_ns") == pl.col("mtime_ns"))
        & pl.lit(not verify_hashes)
    ).fill_null(False)
    rows = (
        current.join(previous, on="path", how="left", maintain_order="left")
        .with_columns(unchanged.alias("unchanged"))
        .with_columns(
            pl.when("unchanged").then("prev_sha256").alias("sha256"),
            pl.when("unchanged")
            .then("prev_skip")
            .otherwise(pl.coalesce("stat_skip", "type_skip"))
            .alias("skip_reason"),
            pl.when("unchanged").then("prev_detail").alias("skip_detail"),
            (pl.col("stat_skip").is_null() & ~pl.col("unchanged")).alias("needs_hash"),
        )
    )
    sha256 = rows["sha256"].to_list()
    skip_reason = rows["skip_reason"].to_list()
    skip_detail = rows["skip_detail"].to_list()
    for row in np.flatnonzero(rows["needs_hash"].to_numpy()):
        try:
            # kept for the chunk stage when it will chunk the file (a known type)
            source = reader.read(file_stats[row].path, keep=languages[row][1] is None)
            sha256[row] = source.sha256
        except SkippedFile as skipped:
            skip_reason[row], skip_detail[row] = skipped.reason, skipped.detail
    manifest = pl.DataFrame(
        {
            "path": rows["path"],
            "shard": [shard] * rows.height,
            "size": rows["size"],
            "mtime_ns": rows["mtime_ns"],
            "sha256": pl.Series(sha256, dtype=pl.String),
            "language": rows["language"],
            "skip_reason": pl.Series(skip_reason, dtype=pl.String),
            "skip_detail": pl.Series(skip_detail, dtype=pl.String),
        }
    )
    store.write_shard("manifest", shard, manifest.to_arrow().cast(MANIFEST_SCHEMA))
    indexable = manifest.filter(pl.col("skip_reason").is_null())
    skipped = manifest.filter(pl.col("skip_reason").is_not_null())["skip_reason"]
    report().advance("scan", len(file_stats))
    report().finish("scan")
    return ManifestStats(
        files=manifest.height,
        indexable=indexable.height,
        hashed=int(rows["needs_hash"].sum()),
        bytes=int(indexable["size"].sum()),
        skipped=Counter(skipped.to_list()),
    )


# ------------------------------------------------------------------ chunks


def build_chunks(
    store: IndexStore,
    shard: str,
    *,
    run_id: str,
    max_file_bytes: int,
    reader: SourceReader | None = None,
) -> ChunkStats:
    """Chunk the shard's indexable files into `chunks/`, `symbols/` and `occurrences/<shard>`;
    a file whose sha256 and chunker version are unchanged keeps its previous chunk, symbol and
    occurrence rows (selected by a join, not re-read). A shard chunked before occurrences were
    recorded (no occurrences file) is chunked again whole, once. Files are read with `reader`
    (the manifest stage's, which hands over the files it read)."""
    reader = reader or SourceReader(store.root, max_file_bytes=max_file_bytes)
    started = time.perf_counter()
    stats = ChunkStats()
    manifest = pl.from_arrow(store.read_shard("manifest", shard, MANIFEST_SCHEMA)).filter(
        pl.col("skip_reason").is_null()
    )
    report().start("chunk", manifest.height)
    # Which files keep their rows: decided from three columns of the previous chunk file.
    previous_files = pl.from_arrow(_previous_chunk_files(store, shard))
    has_occurrences = store.shard_file("occurrences", shard).exists()
    reusable_paths = (
        previous_files.group_by("path")
        .agg(
            pl.col("file_sha256").first().alias("sha256"),
            (
                (pl.col("file_sha256") == pl.col("file_sha256").first())
                & (pl.col("chunker_version") == CHUNKER_VERSION)
            )
            .all()
            .alias("current"),
        )
        .filter("current")
        .join(manifest.select("path", "sha256"), on=["path", "sha256"], how="semi")
        .get_column("path")
    )
    if not has_occurrences:
        reusable_paths = reusable_paths.clear()
    stats.files_reused = reusable_paths.len()
    reused = pa.array(reusable_paths.to_list(), pa.string())
    del previous_files
    chunk_rows: list[dict] = []
    chunk_tables: list[pa.Table] = []
    symbol_rows: list[dict] = []
    occurrence_tables: list[pa.Table] = []
    batch = OccurrenceBatch()  # files' occurrences, one encoded table per batch
    to_chunk = manifest.filter(~pl.col("path").is_in(reusable_paths.implode()))
    for entry in to_chunk.select("path", "language").iter_rows(named=True):
        try:
            source = reader.read(entry["path"])
        except SkippedFile as skipped:
            stats.skipped[skipped.reason] += 1
            continue
        chunked = chunk_file(entry["path"], source.text, entry["language"])
        stats.files_chunked += 1
        stats.parse_error_files += int(chunked.parse_errors > 0)
        chunk_rows.extend(chunk_row(chunk, source.sha256, run_id) for chunk in chunked.chunks)
        symbol_rows.extend(symbol_row(symbol) for symbol in chunked.symbols)
        batch.add(entry["path"], entry["language"], chunked.occurrences)
        if len(chunk_rows) >= CHUNK_BATCH_ROWS:  # rows as Arrow, not Python objects
            chunk_tables.append(pa.Table.from_pylist(chunk_rows, schema=CHUNK_SCHEMA))
            chunk_rows.clear()
        if batch.rows >= OCCURRENCE_BATCH_ROWS:
            occurrence_tables.append(batch.encoded_table())
            batch = OccurrenceBatch()
        report().advance("chunk")
    report().advance("chunk", stats.files_reused)
    chunk_tables.append(pa.Table.from_pylist(chunk_rows, schema=CHUNK_SCHEMA))
    if batch.rows:
        occurrence_tables.append(batch.encoded_table())
    del chunk_rows, batch
    # One kind at a time: the previous file's kept rows, then the new ones, sorted (a copy),
    # written and let go before the next kind is read.
    chunk_tables.insert(0, _reused_rows(store, "chunks", shard, CHUNK_SCHEMA, reused))
    chunks = pa.concat_tables(chunk_tables)
    del chunk_tables
    chunks = chunks.sort_by([("path", "ascending"), ("start_line", "ascending")])
    store.write_shard("chunks", shard, chunks)
    stats.chunks = chunks.num_rows
    del chunks
    symbols = pa.concat_tables(
        [
            _reused_rows(store, "symbols", shard, SYMBOL_SCHEMA, reused),
            pa.Table.from_pylist(symbol_rows, schema=SYMBOL_SCHEMA),
        ]
    ).sort_by([("path", "ascending"), ("line", "ascending")])
    store.write_shard("symbols", shard, symbols)
    stats.symbols = symbols.num_rows
    del symbols, symbol_rows
    # The largest kind (~60 rows a chunk): read and sorted with its strings as dictionaries.
    occurrences = pa.concat_tables(
        [
            _reused_rows(store, "occurrences", shard, OCCURRENCE_ENCODED_SCHEMA, reused),
            *occurrence_tables,
        ]
    )
    del occurrence_tables
    # In the segment's order and layout: the segment build takes the file as it is.
    occurrences = sort_rows(occurrences, segments.OCCURRENCE_ORDER)
    store.write_shard(
        "occurrences",
        shard,
        segments.occurrence_file_table(occurrences),
        **segments.OCCURRENCE_WRITE_OPTIONS,
    )
    del occurrences
    release_unused_memory()
    report().finish("chunk")
    stats.seconds = time.perf_counter() - started
    return stats


def _previous_chunk_files(store: IndexStore, shard: str) -> pa.Table:
    """Path, file hash and chunker version of the shard's chunk rows (no content is read)."""
    columns = ["path", "file_sha256", "chunker_version"]
    path = store.shard_file("chunks", shard)
    if not path.exists():
        return CHUNK_SCHEMA.empty_table().select(columns)
    return pq.read_table(path, columns=columns)


def _reused_rows(
    store: IndexStore, kind: str, shard: str, schema: pa.Schema, paths: pa.Array
) -> pa.Table:
    """The rows of the shard's previous `kind` file whose path is in `paths`, as `schema`
    (whose dictionary-encoded string columns are read as such: a fraction of the time)."""
    previous = store.read_shard(kind, shard, schema)
    kept = previous.filter(pc.is_in(previous.column("path"), value_set=paths))
    return kept.select(schema.names).cast(schema)


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


@dataclass
class OccurrenceBatch:
    """Files' occurrences gathered column by column (no table per file), then made into one
    table of `segments.OCCURRENCE_SCHEMA` with its string columns as dictionaries
    (:meth:`encoded_table`). Each file's path and language is held once."""

    names: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    lines: list[np.ndarray] = field(default_factory=list)
    columns: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    rows: int = 0

    def add(self, path: str, language: str | None, occurrences: FileOccurrences) -> None:
        """One file's occurrences (the language as its chunks record it: "text" without one)."""
        if not len(occurrences):
            return
        self.names.extend(occurrences.names)
        self.contexts.extend(occurrences.contexts)
        self.lines.append(occurrences.lines)
        self.columns.append(occurrences.columns)
        self.paths.append(path)
        self.languages.append(language or "text")
        self.counts.append(len(occurrences))
        self.rows += len(occurrences)

    def encoded_table(self) -> pa.Table:
        """The rows gathered, in the order added, as `OCCURRENCE_ENCODED_SCHEMA`."""
        files = np.repeat(np.arange(len(self.paths), dtype=np.int32), self.counts)
        languages = list(dict.fromkeys(self.languages))
        language_of_file = np.array([languages.index(lang) for lang in self.languages], np.int32)
        return pa.table(
            {
                "name": pa.array(self.names, pa.string()).dictionary_encode(),
                "path": pa.DictionaryArray.from_arrays(files, pa.array(self.paths, pa.string())),
                "language": pa.DictionaryArray.from_arrays(
                    language_of_file[files], pa.array(languages, pa.string())
                ),
                "line": pa.array(_joined(self.lines), pa.int32()),
                "column": pa.array(_joined(self.columns), pa.int32()),
                "context": pa.array(self.contexts, pa.string()).dictionary_encode(),
            },
            schema=OCCURRENCE_ENCODED_SCHEMA,
        )


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, np.int32)


#: The chunk columns an embedding text is made of (`chunk_from_row`), and the hash.
EMBED_COLUMNS = ("content_hash", *LOCATION_COLUMNS, "content")


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


def inference_threads(requested: int, concurrent_steps: int) -> int:
    """Inference threads for one shard step: `requested`, or (0 = auto) the cores left to each
    of `concurrent_steps` steps running at once, so processes × threads ≤ cores."""
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, concurrent_steps))


def build_embeddings(
    store: IndexStore, shard: str, spec: EmbedderSpec, *, run_id: str
) -> EmbedStats:
    """One vector per distinct content hash of the shard; only unseen hashes are embedded.

    Vectors come from, in order: the shard's previous embeddings file (same model), the
    append-only vector cache, and finally the model (loaded once per process with `spec`,
    whose `threads` the caller sets). New vectors are persisted to the cache every
    `CACHE_FLUSH_VECTORS`, so a killed step keeps what it computed.
    """
    started = time.perf_counter()
    model_id = spec.model_id
    chunk_hashes = pl.from_arrow(
        store.read_shard("chunks", shard, CHUNK_SCHEMA, columns=["content_hash"])
    ).get_column("content_hash")
    hashes = chunk_hashes.unique().sort()
    stats = EmbedStats(chunks=chunk_hashes.len(), unique_hashes=hashes.len(), model_id=model_id)
    known: list[pa.Table] = []
    previous = store.read_shard("embeddings", shard, vector_schema(1))
    if previous.num_rows and previous.column("model_id")[0].as_py() == model_id:
        known.append(
            pl.from_arrow(previous)
            .filter(pl.col("content_hash").is_in(hashes.implode()))
            .to_arrow()
        )
    have = {h for table in known for h in table.column("content_hash").to_pylist()}
    cached = store.vector_cache(model_id).cached(set(hashes.to_list()) - have)
    if cached.num_rows:
        known.append(cached)
        have.update(cached.column("content_hash").to_pylist())
    unseen = hashes.filter(~hashes.is_in(list(have)))
    # Texts are read only for the hashes without a vector (none, most of the time).
    missing = (
        pl.from_arrow(store.read_shard("chunks", shard, CHUNK_SCHEMA, columns=EMBED_COLUMNS))
        .filter(pl.col("content_hash").is_in(unseen.implode()))
        .unique("content_hash", keep="first", maintain_order=True)
        .sort("content_hash")
        if unseen.len()
        else pl.DataFrame(schema={"content_hash": pl.String})
    )
    report().start("embed", missing.height)
    if missing.height:
        prepare_model(spec)
        embedder = load_embedder(spec)
        texts = [chunk_from_row(row).embedding_text for row in missing.iter_rows(named=True)]
        missing_hashes = missing.get_column("content_hash").to_list()
        # Longest first across the shard, so each window holds texts of similar length and
        # its batches pad as little as one sort of the whole shard would (`Embedder.embed`
        # sorts by tokens within a window; characters are the proxy here).
        order = sorted(range(len(texts)), key=lambda row: -len(texts[row]))
        texts = [texts[row] for row in order]
        missing_hashes = [missing_hashes[row] for row in order]
        for start in range(0, len(texts), CACHE_FLUSH_VECTORS):
            vectors = embedder.embed(
                texts[start : start + CACHE_FLUSH_VECTORS],
                on_progress=lambda n: report().advance("embed", n),
            )
            table = vectors_table(
                missing_hashes[start : start + CACHE_FLUSH_VECTORS], vectors, model_id, run_id
            )
            store.vector_cache(model_id).add(run_id, table)
            known.append(table)
        del texts
        embedder.release_memory()  # the segment build comes next, in this process
        release_unused_memory()
    report().finish("embed")
    if known:
        vectors = first_row_per_hash(pa.concat_tables(known, promote_options="permissive"))
        order = pl.DataFrame({"content_hash": hashes}).with_row_index("position")
        placed = (
            pl.from_arrow(vectors.select(["content_hash"]))
            .with_row_index("row")
            .join(order, on="content_hash", how="inner")
            .sort("position")
        )
        table = vectors.take(pa.array(placed.get_column("row").to_numpy()))
        dim = table.schema.field("vector").type.list_size
        table = table.select(vector_schema(dim).names).cast(vector_schema(dim))
    else:
        table = vectors_table([], np.zeros((0, 1), np.float32), model_id, run_id)
    store.write_shard("embeddings", shard, table, **VECTOR_WRITE_OPTIONS)
    stats.embedded = missing.height
    stats.reused = stats.unique_hashes - stats.embedded
    stats.seconds = time.perf_counter() - started
    return stats


# ------------------------------------------------------------------ the two shard steps


@dataclass
class PreparedShard:
    """A shard after manifest and chunks: what its embedding step is handed."""

    shard: str
    manifest: ManifestStats
    chunks: ChunkStats
    pending_vectors: int  # chunks whose content hash the shard's embeddings file lacks


@dataclass
class ShardStats:
    """What one shard's steps did, stage by stage."""

    shard: str
    manifest: ManifestStats
    chunks: ChunkStats
    embeddings: EmbedStats
    segment_id: str = ""
    seconds: float = 0.0


def prepare_shard(
    store: IndexStore,
    shard: str,
    file_stats: Sequence[FileStat],
    *,
    run_id: str,
    max_file_bytes: int,
    verify_hashes: bool = False,
    model_id: str | None = None,
) -> PreparedShard:
    """Manifest → chunks of one shard (cheap: no model), and how many of its chunks still
    need a vector (compared with the shard's embeddings file for `model_id`)."""
    reader = SourceReader(store.root, max_file_bytes=max_file_bytes)
    manifest = build_manifest(
        store,
        shard,
        file_stats,
        max_file_bytes=max_file_bytes,
        verify_hashes=verify_hashes,
        reader=reader,
    )
    chunks = build_chunks(store, shard, run_id=run_id, max_file_bytes=max_file_bytes, reader=reader)
    return PreparedShard(shard, manifest, chunks, pending_vectors(store, shard, model_id))


#: Below this many files in the shards to prepare, one process prepares them. A spawned
#: worker costs ~0.9 s of CPU (its imports) and preparing costs ~3 ms per file (requests
#: sources), so two workers break even near 600 files on two idle cores; on two busy cores
#: (load ~5) 1,680 files gained nothing (5.3-5.5 s serial, 5.2-7.6 s with two workers) and
#: 8,400 files went from 31.2 s to 27.9 s. Measured in docs/indexing-speed.md.
PARALLEL_PREPARE_MIN_FILES = 2000


def prepare_workers(workers: int, shards: int, files: int) -> int:
    """Processes to prepare `shards` shards holding `files` files with: at most `workers`
    and the cores this process may use, one per shard, and 1 for small updates, inside a
    daemonic process (a Celery worker's pool process may not start children) or when
    there is one core."""
    if files < PARALLEL_PREPARE_MIN_FILES or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(workers, available_cores(), shards))


def files_to_prepare(
    store: IndexStore, shard: str, file_stats: Sequence[FileStat], *, verify_hashes: bool = False
) -> int:
    """How many of the shard's `file_stats` its :func:`prepare_shard` will read and chunk: the
    files whose path, size or mtime its manifest does not record (all of them when the shard
    was never prepared, is re-hashed, lacks its occurrences or was chunked by another chunker
    version). An edit of a few files in big shards (`coderag watch`, a rename that moves a
    file to another shard) counts those few, not the thousands kept, so it does not start
    worker processes (about 1 s of imports each) to reuse rows."""
    if verify_hashes or not store.shard_file("occurrences", shard).exists():
        return len(file_stats)
    try:
        manifest = pq.read_table(
            store.shard_file("manifest", shard), columns=["path", "size", "mtime_ns"]
        )
        versions = pq.read_table(store.shard_file("chunks", shard), columns=["chunker_version"])
    except (OSError, pa.ArrowException):
        return len(file_stats)
    if (
        versions.num_rows
        and pc.any(pc.not_equal(versions.column("chunker_version"), CHUNKER_VERSION)).as_py()
    ):
        return len(file_stats)
    recorded = set(
        zip(*(manifest.column(name).to_pylist() for name in ("path", "size", "mtime_ns")))
    )
    return sum((stat.path, stat.size, stat.mtime_ns) not in recorded for stat in file_stats)


@dataclass
class EarlySegments:
    """The early publish's segment writes, made while chunking workers still run: the
    parent process of :func:`prepare_shards` waits on its workers and has a core's worth of
    gaps. As each shard comes back prepared, the distinct texts the shards so far still have
    to embed are counted and, once :func:`early_publish_pays` on them, the prepared shards'
    segments are written without vectors; `publish_index(early=True)` then finds them
    current. The publish decides on every shard; a shard written for a publish that does not
    happen cost one segment write, as its step writes its segment with vectors anyway."""

    store: IndexStore
    model_id: str
    run_id: str
    min_vectors: int
    chunks: int = 0
    #: each prepared shard's `pending_digests`, for `distinct_pending_vectors(known=)`
    digests: dict[str, pl.Series] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    def prepared(self, item: PreparedShard) -> None:
        self.digests[item.shard] = pending_digests(self.store, item.shard, self.model_id)
        self.chunks += item.chunks.chunks
        self.waiting.append(item.shard)
        distinct = pl.concat(list(self.digests.values())).n_unique()
        if not early_publish_pays(distinct, self.chunks, min_vectors=self.min_vectors):
            return
        for shard in self.waiting:
            segments.write_segment(self.store, shard, model_id=self.model_id, run_id=self.run_id)
        self.written += self.waiting
        self.waiting = []


def prepare_shards(
    store: IndexStore,
    shards: Sequence[str],
    file_stats: Mapping[str, Sequence[FileStat]],
    *,
    run_id: str,
    max_file_bytes: int,
    verify_hashes: bool = False,
    model_id: str | None = None,
    workers: int = 1,
    early_segments: EarlySegments | None = None,
) -> list[PreparedShard]:
    """:func:`prepare_shard` for each of `shards` (in their order), on up to `workers`
    processes at once (:func:`prepare_workers`): reading, hashing, parsing and chunking are
    CPU-bound Python, and shards share nothing, so each worker prepares whole shards and
    writes their files itself. Only the stats travel back. An error in any shard is raised
    here, as it would be by :func:`prepare_shard`. With workers, this process hands each
    shard that comes back to `early_segments` meanwhile.

    Why a pool inside the step rather than Dagster's executor: the default executor runs
    the whole job in one process (one model, every core for inference), where steps run one
    at a time; this step has to finish every shard's chunks before any is embedded (the
    early publish needs them all), so its parallelism has to live inside it.
    """
    kwargs = {
        "run_id": run_id,
        "max_file_bytes": max_file_bytes,
        "verify_hashes": verify_hashes,
        "model_id": model_id,
    }
    work = sum(
        files_to_prepare(store, shard, file_stats[shard], verify_hashes=verify_hashes)
        for shard in shards
    )
    count = prepare_workers(workers, len(shards), work)
    if count <= 1:  # the stages report their own progress, file by file
        return [prepare_shard(store, shard, file_stats[shard], **kwargs) for shard in shards]
    report().start("prepare shards", len(shards))  # workers report nothing: count shards
    by_shard: dict[str, PreparedShard] = {}
    context = multiprocessing.get_context("spawn")  # no forked copy of Dagster's threads
    # Biggest shards first, so the last ones to finish are small and no worker waits long
    # on another's big one at the end.
    biggest_first = sorted(shards, key=lambda shard: -sum(s.size for s in file_stats[shard]))
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = {
            pool.submit(prepare_shard, store, shard, list(file_stats[shard]), **kwargs): shard
            for shard in biggest_first
        }
        try:
            for future in as_completed(futures):
                by_shard[futures[future]] = future.result()
                if early_segments is not None:
                    early_segments.prepared(by_shard[futures[future]])
                report().advance("prepare shards")
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    report().finish("prepare shards")
    return [by_shard[shard] for shard in shards]


def pending_vectors(store: IndexStore, shard: str, model_id: str | None) -> int:
    """Chunks of the shard whose content hash has no vector in its embeddings file yet."""
    return _pending_hashes(store, shard, model_id).len()


def _pending_hashes(store: IndexStore, shard: str, model_id: str | None) -> pl.Series:
    """The content hash of each of the shard's chunks that its embeddings file (made with
    `model_id`) has no vector for, one per chunk."""
    chunk_hashes = pl.from_arrow(
        store.read_shard("chunks", shard, CHUNK_SCHEMA, columns=["content_hash"])
    ).get_column("content_hash")
    embedded = store.read_shard(
        "embeddings", shard, vector_schema(1), columns=["content_hash", "model_id"]
    )
    if embedded.num_rows and model_id and embedded.column("model_id")[0].as_py() == model_id:
        known = pl.from_arrow(embedded.select(["content_hash"])).get_column("content_hash")
        chunk_hashes = chunk_hashes.filter(~chunk_hashes.is_in(known.implode()))
    return chunk_hashes


def distinct_pending_vectors(
    store: IndexStore,
    shards: Sequence[str],
    model_id: str | None,
    known: Mapping[str, pl.Series] | None = None,
) -> int:
    """How many distinct texts the shards' steps will embed at most: the content hashes of
    their chunks that their embeddings files lack (:func:`pending_vectors`), counted once
    across shards (copies of a file share their vectors). Hashes are compared as 64-bit
    digests (:func:`pending_digests`), so the count holds a few bytes per chunk, not the hash
    strings; `known` holds shards' digests already computed (`EarlySegments.digests`)."""
    known = known or {}
    digests = [
        known[shard] if shard in known else pending_digests(store, shard, model_id)
        for shard in shards
    ]
    return pl.concat(digests).n_unique() if digests else 0


def pending_digests(store: IndexStore, shard: str, model_id: str | None) -> pl.Series:
    """The distinct 64-bit digests of the shard's pending content hashes (`_pending_hashes`)."""
    return _pending_hashes(store, shard, model_id).hash(seed=0).unique()


#: An early publish writes every prepared shard's segment once more (without vectors) before
#: the shard steps write them with vectors. Measured here, a segment costs ~0.15 ms of CPU per
#: chunk and a vector ~10 ms, so the extra pass costs as much as embedding 1 text in ~67
#: chunks; below 1 in 20 the wait for vectors is short next to the pass, and it is skipped.
#: (requests ×1350: 733 distinct texts for 1M chunks, so no second pass over 1M chunks.)
EARLY_PUBLISH_MIN_VECTOR_SHARE = 0.05


def early_publish_pays(distinct_pending: int, chunks: int, *, min_vectors: int) -> bool:
    """Whether publishing before embedding is worth a second segment pass: at least
    `min_vectors` distinct texts to embed, and at least `EARLY_PUBLISH_MIN_VECTOR_SHARE` of
    the `chunks` whose segments the pass would write."""
    return (
        distinct_pending >= min_vectors
        and distinct_pending >= EARLY_PUBLISH_MIN_VECTOR_SHARE * chunks
    )


def embed_shard(
    store: IndexStore, prepared: PreparedShard, spec: EmbedderSpec, *, run_id: str
) -> ShardStats:
    """Embeddings → search segment of one prepared shard: the body of one Dagster shard step.
    The segment is immutable; the index step only flips a manifest to it."""
    started = time.perf_counter()
    embeddings = build_embeddings(store, prepared.shard, spec, run_id=run_id)
    segment = segments.write_segment(
        store, prepared.shard, model_id=embeddings.model_id, run_id=run_id
    )
    return ShardStats(
        shard=prepared.shard,
        manifest=prepared.manifest,
        chunks=prepared.chunks,
        embeddings=embeddings,
        segment_id=segment.segment_id,
        seconds=time.perf_counter() - started,
    )


def shards_already_written(
    store: IndexStore,
    shards: Sequence[str],
    tree_rows: Callable[[str], dict[str, tuple[int, int]]],
    *,
    model_id: str,
) -> list[str]:
    """Those of `shards` whose step already ran on the files as they are now: the shard's
    manifest lists exactly `tree_rows(shard)` (path → (size, mtime_ns) from the planner's
    walk), its stage files are complete, and its latest segment was written from them with
    `model_id`. Such a shard needs no step, only a publish: what a run that failed in another
    shard, or at its gates, leaves behind."""
    written = []
    for shard in shards:
        path = store.shard_file("manifest", shard)
        if not path.exists() or not segments.segment_is_current(store, shard, model_id=model_id):
            continue
        embeddings = store.shard_file("embeddings", shard)
        if not embeddings.exists() or embeddings.stat().st_mtime_ns < path.stat().st_mtime_ns:
            continue  # the shard's last run stopped before its embeddings
        try:
            manifest = store.read_shard("manifest", shard, MANIFEST_SCHEMA).select(
                ["path", "size", "mtime_ns"]
            )
        except (OSError, pa.ArrowException):
            continue
        rows = zip(*(manifest.column(name).to_pylist() for name in ("path", "size", "mtime_ns")))
        if {p: (size, mtime) for p, size, mtime in rows} == tree_rows(shard):
            written.append(shard)
    return written


# ------------------------------------------------------------------ index


def embeddings_files(store: IndexStore, shards: Sequence[str]) -> list[Path]:
    """The shards' current embeddings files: the content hashes the vector cache must keep."""
    return [
        path
        for path in (store.shard_file("embeddings", shard) for shard in shards)
        if path.exists()
    ]


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


@dataclass
class Candidate:
    """The next index version before it is published: each shard's segment, what the
    version records, and the integrity checks of its segments (`segments.validate_segments`).
    Nothing names it yet; the promotion gates read it through :meth:`version`."""

    infos: dict[str, segments.SegmentInfo]
    meta: segments.PublishMeta
    checks: list[CheckOutcome]
    early: bool = False

    def version(self, store: IndexStore) -> segments.IndexVersion:
        """The candidate as an unpublished version (number 0) a reader can open."""
        return segments.IndexVersion(
            0,
            {**asdict(self.meta), "version": 0},
            {
                shard: str(info.path.relative_to(store.base))
                for shard, info in sorted(self.infos.items())
            },
        )


def prepare_candidate(
    store: IndexStore,
    all_shards: Sequence[str],
    spec: EmbedderSpec,
    *,
    run_id: str,
    early: bool = False,
) -> Candidate:
    """The shards' current segments as a candidate version, with its integrity checks.

    Each shard's segment is reused when its input files are unchanged (a few stats per
    shard; the shard step normally wrote it already) and rewritten otherwise, which also
    repairs a damaged one. Raises ValueError when shards were embedded with another model
    (unless `early`: such a shard is published without vectors).
    """
    infos = {
        shard: segments.ensure_segment(store, shard, model_id=spec.model_id, run_id=run_id)
        for shard in all_shards
    }
    wrong_model = {
        info.embedded_model_id
        for info in infos.values()
        if info.embedded_model_id not in (None, spec.model_id)
    }
    if wrong_model and not early:
        raise ValueError(
            f"some shards were embedded with {sorted(wrong_model)}, not {spec.model_id}; "
            "re-run every shard (`coderag index`) so they are embedded with one model"
        )
    dim = next((info.dim for info in infos.values() if info.dim), 0)
    if not dim and not early:
        dim = load_embedder(spec).dim
    meta = segments.PublishMeta(
        root=str(store.root),
        model_id=spec.model_id,
        model=spec.model,
        backend=spec.backend,
        dim=dim,
        chunker_version=CHUNKER_VERSION,
        shard_count=len(all_shards),
        run_id=run_id,
    )
    checks = segments.validate_segments(store, infos, dim, spec.model_id, allow_pending=early)
    return Candidate(infos, meta, checks, early)


def publish_candidate(
    store: IndexStore, candidate: Candidate, spec: EmbedderSpec, *, started: float | None = None
) -> BuildResult:
    """Make `candidate` the live version (validated again under the writer lock, atomic).

    Raises IndexValidationError (the old version stays live) when a check fails.
    """
    started = time.perf_counter() if started is None else started
    published = segments.publish(
        store, candidate.infos, candidate.meta, allow_pending=candidate.early
    )
    all_shards = sorted(candidate.infos)
    if not candidate.early:  # an early version is replaced within the run: no housekeeping
        with store.writer_lock():
            store.vector_cache(spec.model_id).compact(lambda: embeddings_files(store, all_shards))
    return BuildResult(
        version=published.version,
        index_path=store.index_path,
        chunks=published.chunks,
        files=published.files,
        symbols=published.symbols,
        seconds=time.perf_counter() - started,
        checks=published.checks,
        bm25=segments.bm25_summary(candidate.infos),
    )


def publish_index(
    store: IndexStore,
    all_shards: Sequence[str],
    spec: EmbedderSpec,
    *,
    run_id: str,
    early: bool = False,
) -> BuildResult:
    """Publish the shards' current segments as a new index version (validated, atomic):
    :func:`prepare_candidate` then :func:`publish_candidate`, with no gate in between.

    `early` publishes before embedding has finished (BM25, symbols and references answer at
    once; chunks without a vector are left out of vector search until the complete publish)
    and never loads the model.
    """
    started = time.perf_counter()
    candidate = prepare_candidate(store, all_shards, spec, run_id=run_id, early=early)
    return publish_candidate(store, candidate, spec, started=started)


def live_version(store: IndexStore) -> int | None:
    """The version `CURRENT` names (None before the first publish)."""
    return segments.current_version(store.base)
