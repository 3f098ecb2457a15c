"""Arrow table helpers shared by the stages: unions, vector columns, BM25 token streams."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

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
