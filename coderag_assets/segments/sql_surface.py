"""DuckDB's view of a version: the `meta` table and the `chunks`, `files`, `symbols` (and
`occurrences`) views over the version's segment Parquet files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from coderag_assets.segments.layout import (
    CHUNK_VIEW_COLUMNS,
    CHUNKS_FILE,
    FILES_FILE,
    OCCURRENCES_FILE,
    SYMBOLS_FILE,
)
from coderag_assets.segments.versions import IndexVersion

if TYPE_CHECKING:  # imported where used: a chunking worker never loads DuckDB (-47 MiB)
    import duckdb


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def create_sql_surface(con: duckdb.DuckDBPyConnection, base: Path, version: IndexVersion) -> None:
    """Create the `meta` table and the `chunks`, `files`, `symbols` views of `version` in the
    connection's current database, and `occurrences` when every segment has an occurrences
    file (a version with older segments has none: reference search then scans chunk text).
    `chunks.rowid` is unique and follows path/line order."""
    dirs = [base / relative for _, relative in sorted(version.segments.items())]
    columns = ", ".join(CHUNK_VIEW_COLUMNS)
    # One scan over the list: binding reads one footer, not one per segment (64 at ~400k
    # chunks), on every publish and every reader's first query; `file_index` is the
    # segment's place in the list.
    chunk_files = ", ".join(_sql_path(d / CHUNKS_FILE) for d in dirs)
    con.execute(
        f"CREATE OR REPLACE VIEW chunks AS SELECT {columns}, "
        "(file_index::BIGINT << 32) + file_row_number AS rowid "
        f"FROM read_parquet([{chunk_files}], file_row_number = true)"
    )
    for view, file_name in (("files", FILES_FILE), ("symbols", SYMBOLS_FILE)):
        listed = ", ".join(_sql_path(d / file_name) for d in dirs)
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{listed}])")
    occurrence_files = [d / OCCURRENCES_FILE for d in dirs]
    if occurrence_files and all(path.exists() for path in occurrence_files):
        listed = ", ".join(_sql_path(path) for path in occurrence_files)
        con.execute(f"CREATE OR REPLACE VIEW occurrences AS SELECT * FROM read_parquet([{listed}])")
    con.execute("CREATE OR REPLACE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    rows = [(key, json.dumps(value)) for key, value in version.meta.items()]
    if rows:  # one statement: `executemany` runs one per row (~40 ms in a new database file)
        con.execute(
            "INSERT INTO meta VALUES " + ", ".join(["(?, ?)"] * len(rows)),
            [item for row in rows for item in row],
        )


def connect_version(base: Path, version: IndexVersion) -> duckdb.DuckDBPyConnection:
    """An in-memory connection whose `published` database shows exactly `version` (the same
    shape as `store.connect_index`, whose file may already name a newer version)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS published")
    con.execute("USE published")
    create_sql_surface(con, base, version)
    return con
