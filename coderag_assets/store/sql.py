"""Reading the published `index.duckdb` (the SQL surface) and the index checks' SQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from coderag_assets.store.errors import CheckOutcome, IndexNotFoundError

if TYPE_CHECKING:  # imported where used: a chunking worker never loads DuckDB (-47 MiB)
    import duckdb


def connect_index(index_path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the index file published *now*.

    The file is ATTACHed to a fresh in-memory database instead of opened by path: DuckDB
    hands out the database already open in this process for a path, so a long-lived
    reader elsewhere in the process (MCP server, watch loop) would pin an old snapshot.
    """
    if not index_path.exists():
        raise IndexNotFoundError(f"no index at {index_path}")
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        quoted = str(index_path).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS published (READ_ONLY)")
        con.execute("USE published")
    except duckdb.IOException as error:
        con.close()
        raise IndexNotFoundError(f"cannot open the index at {index_path}: {error}") from error
    return con


def validate_index(
    con: duckdb.DuckDBPyConnection, expected_chunks: int, dim: int
) -> list[CheckOutcome]:
    """The invariants of a published index, checked through its SQL surface (the asset
    checks); `segments.validate_segments` checks the same per segment before a publish."""
    total, bad_vectors = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE embedding_dim IS NULL OR embedding_dim <> ?) "
        "FROM chunks",
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
