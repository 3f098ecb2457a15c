"""Arrow table helpers shared by the stages: unions, vector columns, BM25 token streams."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from coderag_assets.tokens import bm25_text


def union(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
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


def dictionary_encoded(schema: pa.Schema, columns: tuple[str, ...]) -> pa.Schema:
    """`schema` with its string `columns` as dictionary-encoded strings: how a table with
    few distinct values per column (paths, names of an occurrence table) is read and
    sorted cheaply. `cast` back to `schema` before writing it."""
    return pa.schema(
        [
            field.with_type(pa.dictionary(pa.int32(), field.type))
            if field.name in columns and pa.types.is_string(field.type)
            else field
            for field in schema
        ]
    )


def dictionary_columns(schema: pa.Schema) -> list[str] | None:
    """The names of `schema`'s dictionary-encoded columns (Parquet's `read_dictionary`: such
    columns are read as dictionaries, a fraction of decoding every string), None if none."""
    return [field.name for field in schema if pa.types.is_dictionary(field.type)] or None


def _sort_key(column: pa.ChunkedArray) -> np.ndarray:
    """Integers that order the rows of `column` as Arrow's sort does (strings by their
    bytes): a dictionary column's indices mapped to the rank of their value."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type):
        array = pc.dictionary_encode(array)
    if not pa.types.is_dictionary(array.type):
        return array.to_numpy(zero_copy_only=False)
    dictionary = array.dictionary
    by_value = pc.array_sort_indices(dictionary)
    values = dictionary.take(by_value)
    # dense ranks: a value repeated in the dictionary gets one rank
    steps = np.zeros(len(values), dtype=np.int64)
    if len(values) > 1:
        steps[1:] = pc.not_equal(values[1:], values[:-1]).to_numpy(zero_copy_only=False)
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[by_value.to_numpy()] = np.cumsum(steps)
    return ranks[array.indices.to_numpy(zero_copy_only=False)]


def sort_rows(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """`table` sorted by `keys` (ascending, stable): the rows `table.sort_by` gives, in a
    fraction of its time for string keys with few distinct values (each string column is
    ranked through a dictionary, then the integer keys are sorted). Dictionary-encoded
    columns of differing dictionaries (concatenated tables) are unified first."""
    if table.num_rows < 2 or any(table.column(key).null_count for key in keys):
        return table.sort_by([(key, "ascending") for key in keys])
    table = table.unify_dictionaries()
    return table.take(pa.array(_row_order([_sort_key(table.column(key)) for key in keys])))


def _row_order(keys: list[np.ndarray]) -> np.ndarray:
    """The stable order of rows by integer `keys` (most significant first): one argsort of
    the keys packed into one int64 when they fit (several times faster than `lexsort`)."""
    widths = [int(key.max()).bit_length() if len(key) and key.min() >= 0 else 64 for key in keys]
    if sum(widths) > 63:
        return np.lexsort(list(reversed(keys)))
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, width in zip(keys, widths, strict=True):
        packed <<= width
        packed |= key.astype(np.int64, copy=False)
    return np.argsort(packed, kind="stable")
