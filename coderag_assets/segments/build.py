"""Writing one shard's segment from its Parquet files (`write_segment`, `ensure_segment`).

A segment's id is a digest of its input bytes and the model id, so an unchanged shard yields
the same id and is not rewritten; it is built in a temporary directory and renamed into place,
so a killed writer leaves either no segment or a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from coderag_assets import vectors
from coderag_assets.features import (
    definition_runs,
    file_words,
    is_test_path,
    name_words,
    non_code_languages,
)
from coderag_assets.segments.layout import (
    CHUNK_ROW_GROUP_ROWS,
    CHUNKS_FILE,
    FILES_FILE,
    INFO_FILE,
    INPUT_KINDS,
    LATEST_FILE,
    LOCATION_COLUMNS,
    OCCURRENCE_ORDER,
    OCCURRENCE_SCHEMA,
    OCCURRENCE_STRING_COLUMNS,
    OCCURRENCE_WRITE_OPTIONS,
    OCCURRENCES_FILE,
    POSTINGS_FILES,
    READER_BATCH_ROWS,
    READER_COLUMNS,
    READER_FILE,
    SEGMENT_FILES,
    SEGMENT_FORMAT,
    SYMBOLS_FILE,
    TEXT_COLUMNS,
    SegmentError,
    SegmentInfo,
    in_occurrence_layout,
    latest_segment,
    occurrence_file_table,
    segments_dir,
    verify_segment,
)
from coderag_assets.segments.postings import build_postings
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    IndexStore,
    dictionary_columns,
    dictionary_encoded,
    release_unused_memory,
    reporting_disk_full,
    sort_rows,
    vector_matrix,
    with_bm25_text,
    write_bytes_atomic,
)


def _input_stamps(store: IndexStore, shard: str) -> dict[str, list[int] | None]:
    """(inode, size, mtime_ns) of each input shard file (None when absent). Shard files are
    replaced whole, so equal stamps mean the same input; unequal stamps fall back to digests."""
    stamps: dict[str, list[int] | None] = {}
    for kind in INPUT_KINDS:
        try:
            stat = store.shard_file(kind, shard).stat()
        except FileNotFoundError:
            stamps[kind] = None
            continue
        stamps[kind] = [stat.st_ino, stat.st_size, stat.st_mtime_ns]
    return stamps


def segment_is_current(store: IndexStore, shard: str, *, model_id: str) -> bool:
    """True when the shard's LATEST segment was written from its current input files with
    `model_id` (a few stats; the segment's own files are not verified here)."""
    latest = latest_segment(store, shard)
    if latest is None:
        return False
    _, payload = latest
    return payload.get("model_id") == model_id and payload.get("inputs") == _input_stamps(
        store, shard
    )


def ensure_segment(store: IndexStore, shard: str, *, model_id: str, run_id: str) -> SegmentInfo:
    """The segment of the shard's current input files: the one `write_segment` last recorded
    when its inputs are unchanged and its files intact (a few stats), else a new one."""
    latest = latest_segment(store, shard)
    if latest is not None:
        segment_id, payload = latest
        if payload.get("model_id") == model_id and payload.get("inputs") == _input_stamps(
            store, shard
        ):
            try:
                info = SegmentInfo.load(shard, segments_dir(store.base, shard) / segment_id)
                verify_segment(info)
                return info
            except SegmentError:
                pass  # damaged: rewritten below
    return write_segment(store, shard, model_id=model_id, run_id=run_id)


def write_segment(store: IndexStore, shard: str, *, model_id: str, run_id: str) -> SegmentInfo:
    """Write (or find) the segment of the shard's current Parquet files and record it as the
    shard's LATEST. Idempotent; safe to run concurrently for any shards, including the same
    one. Vectors are taken from the shard's embeddings file when it was made with `model_id`;
    chunks without one are counted in `chunks_without_vector` (and fail validation).

    Raises DiskFullError (naming the shard; the half-built directory is removed) when the
    disk fills up."""
    stamps = _input_stamps(store, shard)
    inputs: dict[str, bytes | None] = {}
    for kind in INPUT_KINDS:
        try:
            inputs[kind] = store.shard_file(kind, shard).read_bytes()
        except FileNotFoundError:
            inputs[kind] = None
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"segment-format={SEGMENT_FORMAT};model={model_id};".encode())
    for kind in INPUT_KINDS:
        data = inputs[kind]
        digest.update(f"{kind}:{-1 if data is None else len(data)}:".encode())
        digest.update(data or b"")
    segment_id = digest.hexdigest()
    chunk_file = _chunk_file_digest(inputs["chunks"])
    shard_dir = segments_dir(store.base, shard)
    final = shard_dir / segment_id
    with reporting_disk_full(f"writing the segment of shard {shard}", final):
        info = _existing_segment(shard, final)
        if info is None:
            shard_dir.mkdir(parents=True, exist_ok=True)
            building = shard_dir / f".building-{uuid.uuid4().hex}"
            try:
                sibling = _sibling_segment(store, shard, stamps, chunk_file, model_id)
                if sibling is not None:
                    _derive_segment(
                        building, sibling, segment_id, inputs["embeddings"], model_id, run_id
                    )
                else:
                    _build_segment(
                        building, shard, segment_id, chunk_file, inputs, model_id, run_id
                    )
                try:
                    os.rename(building, final)
                except OSError:
                    if _existing_segment(shard, final) is None:  # not a concurrent twin
                        raise
            finally:
                shutil.rmtree(building, ignore_errors=True)
                release_unused_memory()
            info = SegmentInfo.load(shard, final)
        latest = {"segment_id": segment_id, "model_id": model_id, "inputs": stamps}
        write_bytes_atomic(shard_dir / LATEST_FILE, json.dumps(latest).encode("utf-8"))
    return info


def _chunk_file_digest(data: bytes | None) -> str | None:
    """`SegmentInfo.chunk_file` of a chunks shard file's bytes (as `read_shard_pinned`)."""
    return None if data is None else hashlib.blake2b(data, digest_size=16).hexdigest()


def _existing_segment(shard: str, path: Path) -> SegmentInfo | None:
    """The intact segment at `path`, or None; a damaged one is moved aside to be rebuilt."""
    if not path.exists():
        return None
    try:
        info = SegmentInfo.load(shard, path)
        verify_segment(info)
        return info
    except SegmentError:
        trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
        try:
            os.rename(path, trash)
        except OSError:
            return None
        shutil.rmtree(trash, ignore_errors=True)
        return None


def _read_input(data: bytes | None, schema: pa.Schema) -> pa.Table:
    """The input's table (its columns `schema` dictionary-encodes read as dictionaries), or an
    empty table of `schema`."""
    if data is None:
        return schema.empty_table()
    return pq.read_table(pa.BufferReader(data), read_dictionary=dictionary_columns(schema))


@dataclass(frozen=True)
class _Placement:
    """Where each chunk row's vector lies among a segment's distinct vectors."""

    embedded_model_id: str | None  # the model of the shard's embeddings file (None: empty)
    dim: int  # 0 when the embeddings are absent or of another model
    vector_of_row: np.ndarray  # int32 per row: its vector's row in `matrix`, -1 for none
    matrix: np.ndarray  # distinct vectors, float32
    embed_run_ids: pa.Array  # per row: the run that embedded its vector (null: none)

    @property
    def without_vector(self) -> int:
        return int((self.vector_of_row < 0).sum())

    def embedding_dim(self) -> pa.Array:
        """chunks.parquet's `embedding_dim`: the dimension, null for a row without a vector."""
        has_vector = self.vector_of_row >= 0
        return pa.array(np.where(has_vector, self.dim, 0).astype(np.int32), mask=~has_vector)

    def save(self, directory: Path) -> list[str]:
        """Write the vectors and their scan copy into `directory`; the file names."""
        return [
            vectors.save(directory, self.matrix),
            *vectors.save_scan_copy(directory, self.matrix),
        ]


def _placed_vectors(
    content_hashes: pa.ChunkedArray, embeddings: pa.Table, model_id: str
) -> _Placement:
    """Each row's vector (by its content hash) from the shard's embeddings table, when that
    was made with `model_id`; each distinct vector kept once."""
    count = len(content_hashes)
    embedded_model_id = None
    dim = 0
    vector_rows = np.full(count, -1, dtype=np.int64)
    embed_run_ids: pa.Array = pa.nulls(count, pa.string())
    if embeddings.num_rows:
        embedded_model_id = embeddings.column("model_id")[0].as_py()
        if embedded_model_id == model_id:
            dim = embeddings.schema.field("vector").type.list_size
            found = pc.index_in(content_hashes, embeddings.column("content_hash"))
            vector_rows = found.fill_null(-1).to_numpy().astype(np.int64)
            embed_run_ids = pc.take(embeddings.column("run_id"), found).combine_chunks()
    sources, vector_of_row = vectors.distinct(vector_rows)
    matrix = (
        vector_matrix(embeddings.column("vector"))[sources]
        if dim
        else np.zeros((0, 0), dtype=np.float32)
    )
    return _Placement(embedded_model_id, dim, vector_of_row, matrix, embed_run_ids)


def _write_chunk_file(directory: Path, chunk_table: pa.Table) -> None:
    pq.write_table(
        chunk_table,
        directory / CHUNKS_FILE,
        compression="zstd",
        row_group_size=CHUNK_ROW_GROUP_ROWS,
        # no min/max of chunk texts in the footer: kilobytes per row group that no filter uses
        write_statistics=[name for name in chunk_table.column_names if name not in TEXT_COLUMNS],
    )


def _write_reader_file(directory: Path, reader_table: pa.Table) -> None:
    with (
        pa.OSFile(str(directory / READER_FILE), "wb") as sink,
        pa.ipc.new_file(sink, reader_table.schema) as writer,
    ):
        writer.write_table(reader_table.combine_chunks(), max_chunksize=READER_BATCH_ROWS)


#: Segment files that depend only on the chunk, manifest, symbol and occurrence inputs: a
#: segment of the same inputs with other embeddings shares them (`_derive_segment`).
_SHARED_FILES = (*POSTINGS_FILES, FILES_FILE, SYMBOLS_FILE, OCCURRENCES_FILE)


def _sibling_segment(
    store: IndexStore,
    shard: str,
    stamps: Mapping[str, list[int] | None],
    chunk_file: str | None,
    model_id: str,
) -> SegmentInfo | None:
    """The shard's LATEST segment when it was written, in this format and for `model_id`,
    from the same chunk, manifest, symbol and occurrence files as now, with other embeddings:
    in a cold index, the early publish's segment without vectors. None otherwise, or when
    it is damaged or its chunk file's digest differs from `chunk_file`."""
    latest = latest_segment(store, shard)
    if latest is None or chunk_file is None:
        return None
    segment_id, payload = latest
    recorded = payload.get("inputs") or {}
    if payload.get("model_id") != model_id or any(
        recorded.get(kind) != stamps[kind] for kind in INPUT_KINDS if kind != "embeddings"
    ):
        return None
    path = segments_dir(store.base, shard) / segment_id
    try:
        if json.loads((path / INFO_FILE).read_text()).get("format") != SEGMENT_FORMAT:
            return None
        info = SegmentInfo.load(shard, path)
        verify_segment(info)
    except (OSError, ValueError, SegmentError):
        return None
    return info if info.chunk_file == chunk_file else None


def _file_sizes(directory: Path, names: list[str]) -> dict[str, int]:
    """`SegmentInfo.file_sizes`: the byte size of each named file of the segment (each once)."""
    return {name: (directory / name).stat().st_size for name in dict.fromkeys(names)}


def _share_file(source: Path, target: Path) -> None:
    """`target` as a hard link to the immutable segment file `source` (a copy where the file
    system has no links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _derive_segment(
    directory: Path,
    sibling: SegmentInfo,
    segment_id: str,
    embeddings_input: bytes | None,
    model_id: str,
    run_id: str,
) -> None:
    """Write the segment of `sibling`'s inputs with other embeddings into `directory`: the
    postings, file, symbol and occurrence files are `sibling`'s (linked); the rows, already in
    segment order, are read back from its chunk and reader files with their vector columns
    replaced; the vectors are placed anew. What `_build_segment` would write, without
    re-tokenising, sorting or re-deriving the ranking features."""
    directory.mkdir(parents=True)
    shared = [name for name in _SHARED_FILES if name in sibling.file_sizes]
    for name in shared:
        _share_file(sibling.path / name, directory / name)
    chunk_table = pq.read_table(sibling.path / CHUNKS_FILE)
    embeddings = _read_input(embeddings_input, pa.schema([]))
    placed = _placed_vectors(chunk_table.column("content_hash"), embeddings, model_id)
    vector_files = placed.save(directory)
    chunk_table = chunk_table.set_column(
        chunk_table.schema.get_field_index("embedding_dim"), "embedding_dim", placed.embedding_dim()
    ).set_column(
        chunk_table.schema.get_field_index("embed_run_id"), "embed_run_id", placed.embed_run_ids
    )
    _write_chunk_file(directory, chunk_table)
    del chunk_table
    with pa.memory_map(str(sibling.path / READER_FILE)) as source:
        reader_table = pa.ipc.open_file(source).read_all()
        reader_table = reader_table.set_column(
            reader_table.schema.get_field_index("vector"),
            "vector",
            pa.array(placed.vector_of_row, pa.int32()),
        )
        _write_reader_file(directory, reader_table)
        del reader_table
    written = [*SEGMENT_FILES, *shared, *vector_files]
    info = replace(
        sibling,
        segment_id=segment_id,
        path=directory,
        embedded_model_id=placed.embedded_model_id,
        dim=placed.dim,
        chunks_without_vector=placed.without_vector,
        distinct_vectors=len(placed.matrix),
        run_id=run_id,
        created_at=time.time(),
        file_sizes=_file_sizes(directory, written),
    )
    (directory / INFO_FILE).write_text(json.dumps(info.to_json()))


def _build_segment(
    directory: Path,
    shard: str,
    segment_id: str,
    chunk_file: str | None,
    inputs: Mapping[str, bytes | None],
    model_id: str,
    run_id: str,
) -> None:
    """Write every file of one segment into `directory` (created here), `segment.json` last;
    `chunk_file` is the digest of `inputs["chunks"]` (`_chunk_file_digest`)."""
    directory.mkdir(parents=True)
    # Occurrences first, on their own: the largest input once decoded, and sorting copies it.
    # A shard file in the segment's layout (what `indexing.build_chunks` writes) is the file.
    occurrence_input = inputs["occurrences"]
    has_occurrences = occurrence_input is not None
    if occurrence_input is not None and in_occurrence_layout(occurrence_input):
        (directory / OCCURRENCES_FILE).write_bytes(occurrence_input)
    elif occurrence_input is not None:  # a shard chunked before the layout: sorted here
        encoded = dictionary_encoded(OCCURRENCE_SCHEMA, OCCURRENCE_STRING_COLUMNS)
        occurrence_rows = _read_input(occurrence_input, encoded)
        occurrence_rows = sort_rows(
            occurrence_rows.select(encoded.names).cast(encoded), OCCURRENCE_ORDER
        )
        pq.write_table(
            occurrence_file_table(occurrence_rows),
            directory / OCCURRENCES_FILE,
            **OCCURRENCE_WRITE_OPTIONS,
        )
        del occurrence_rows
    manifest = _read_input(inputs["manifest"], MANIFEST_SCHEMA)
    source_chunks = _read_input(inputs["chunks"], CHUNK_SCHEMA)
    symbols = _read_input(inputs["symbols"], SYMBOL_SCHEMA)
    embeddings = _read_input(inputs["embeddings"], pa.schema([]))

    order = pa.array(np.arange(source_chunks.num_rows, dtype=np.int64))
    chunk_rows = with_bm25_text(source_chunks).append_column("_order", order)
    chunk_rows = chunk_rows.sort_by(
        [("path", "ascending"), ("start_line", "ascending"), ("_order", "ascending")]
    ).drop_columns(["_order"])
    count = chunk_rows.num_rows
    source_chunk_count = source_chunks.num_rows
    del source_chunks, order

    placed = _placed_vectors(chunk_rows.column("content_hash"), embeddings, model_id)
    vector_files = placed.save(directory)

    # ranking features
    paths = chunk_rows.column("path").to_pylist()
    chunk_symbols = chunk_rows.column("symbol").to_pylist()
    languages = chunk_rows.column("language").to_pylist()
    non_code = non_code_languages()
    names_of = {symbol: sorted(name_words(symbol)) for symbol in set(chunk_symbols)}
    files_of = {path: sorted(file_words(path)) for path in set(paths)}
    test_of = {path: is_test_path(path) for path in set(paths)}
    runs = definition_runs(paths, chunk_symbols)
    postings = build_postings(chunk_rows.column("bm25_text"), chunk_symbols, stemmed=True)
    postings.save(directory)

    indexable = set(
        manifest.filter(pc.is_null(manifest.column("skip_reason"))).column("path").to_pylist()
    )
    orphans = sum(1 for path in paths if path not in indexable)
    n = count
    located = {name: chunk_rows.column(name) for name in LOCATION_COLUMNS}
    chunk_table = pa.table(
        {
            "chunk_id": chunk_rows.column("chunk_id"),
            **located,
            "content": chunk_rows.column("content"),
            "content_hash": chunk_rows.column("content_hash"),
            "bm25_text": chunk_rows.column("bm25_text"),
            "embedding_dim": placed.embedding_dim(),
            "model_id": pa.array([model_id] * n, pa.string()),
            "chunker_version": chunk_rows.column("chunker_version"),
            "chunk_run_id": chunk_rows.column("run_id"),
            "embed_run_id": placed.embed_run_ids,
        }
    )
    _write_chunk_file(directory, chunk_table)
    del chunk_table
    reader_table = pa.table(
        {
            **located,
            "name_words": pa.array([names_of[s] for s in chunk_symbols], pa.list_(pa.string())),
            "file_words": pa.array([files_of[p] for p in paths], pa.list_(pa.string())),
            "is_test": pa.array([test_of[p] for p in paths], pa.bool_()),
            "is_glue": pa.array(
                [not s and lang not in non_code for s, lang in zip(chunk_symbols, languages)],
                pa.bool_(),
            ),
            "is_non_code": pa.array([lang in non_code for lang in languages], pa.bool_()),
            "run": pa.array(runs, pa.int64()),
            "body_len": pa.array(postings.body_len, pa.int32()),
            "name_len": pa.array(postings.name_len, pa.int32()),
            "vector": pa.array(placed.vector_of_row, pa.int32()),
        }
    ).select(list(READER_COLUMNS))
    _write_reader_file(directory, reader_table)
    per_path = pc.value_counts(chunk_rows.column("path")) if n else None
    chunk_counts = (
        dict(zip(per_path.field("values").to_pylist(), per_path.field("counts").to_pylist()))
        if per_path is not None
        else {}
    )
    file_rows = manifest.sort_by([("path", "ascending")])
    file_rows = file_rows.append_column(
        "chunks",
        pa.array(
            [chunk_counts.get(p, 0) for p in file_rows.column("path").to_pylist()], pa.int32()
        ),
    )
    pq.write_table(file_rows, directory / FILES_FILE, compression="zstd")
    symbol_rows = symbols.sort_by([("path", "ascending"), ("line", "ascending")])
    pq.write_table(symbol_rows, directory / SYMBOLS_FILE, compression="zstd")
    written = list(SEGMENT_FILES)
    if has_occurrences:
        written.append(OCCURRENCES_FILE)
    written.extend(vector_files)

    info = SegmentInfo(
        shard=shard,
        segment_id=segment_id,
        path=directory,
        model_id=model_id,
        embedded_model_id=placed.embedded_model_id,
        dim=placed.dim,
        chunks=n,
        files=manifest.num_rows,
        symbols=symbols.num_rows,
        source_chunks=source_chunk_count,
        chunks_without_vector=placed.without_vector,
        distinct_vectors=len(placed.matrix),
        orphan_chunks=orphans,
        runs=int(runs[-1] + 1) if n else 0,
        body_tokens=int(postings.body_len.sum()),
        name_tokens=int(postings.name_len.sum()),
        chunk_file=chunk_file,
        run_id=run_id,
        created_at=time.time(),
        file_sizes=_file_sizes(directory, written),
        skipped=dict(Counter(manifest.column("skip_reason").drop_null().to_pylist())),
    )
    (directory / INFO_FILE).write_text(json.dumps(info.to_json()))
