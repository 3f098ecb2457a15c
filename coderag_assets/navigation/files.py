"""Indexed files: listing by glob and language, and reading a line range from disk."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from coderag_assets.files import (
    SKIP_SECRET,
    SKIP_SYMLINK,
    SKIP_VANISHED,
    SkippedFile,
    read_source,
)
from coderag_assets.navigation.errors import (
    FileGoneError,
    NavigationError,
    PathOutsideRootError,
    SecretFileError,
)
from coderag_assets.navigation.limits import (
    DEFAULT_FILE_LIMIT,
    DEFAULT_SLICE_LINES,
    MAX_FILE_LIMIT,
    MAX_SLICE_CHARS,
    MAX_SLICE_LINES,
    _check_limit,
)
from coderag_assets.navigation.paths import (
    check_glob,
    confine_path,
)
from coderag_assets.navigation.records import (
    FileListing,
    FileSlice,
    IndexedFile,
)
from coderag_assets.search import normalize_language, path_matches


def list_files(
    con: duckdb.DuckDBPyConnection,
    *,
    glob: str | None = None,
    language: str | None = None,
    limit: int = DEFAULT_FILE_LIMIT,
) -> FileListing:
    """Indexed files (skipped ones excluded) in path order, filtered by a glob on the
    repo-relative path (``*`` crosses ``/``; no wildcard = a directory prefix) and a language
    (aliases such as ``py``, ``ts`` accepted). Raises PathRefusedError for a glob that leaves
    the root, NavigationError for a bad limit."""
    limit = _check_limit(limit, MAX_FILE_LIMIT)
    pattern = check_glob(glob) if glob else None
    wanted_language = normalize_language(language) if language else None
    rows = con.execute(
        """
        SELECT f.path, coalesce(f.language, 'text'), f.size, f.chunks, coalesce(s.symbols, 0)
        FROM files f
        LEFT JOIN (SELECT path, count(*) AS symbols FROM symbols GROUP BY path) s USING (path)
        WHERE f.skip_reason IS NULL AND ($language IS NULL OR coalesce(f.language, 'text') = $language)
        ORDER BY f.path
        """,
        {"language": wanted_language},
    ).fetchall()
    matching = [row for row in rows if pattern is None or path_matches(row[0], pattern)]
    files = [
        IndexedFile(
            path=path, language=lang, size=int(size), chunks=int(chunks), symbols=int(symbols)
        )
        for path, lang, size, chunks, symbols in matching[:limit]
    ]
    return FileListing(files=files, total=len(matching), truncated=len(matching) > limit)


def get_file(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    path: str,
    *,
    start_line: int | None = None,
    end_line: int | None = None,
    max_lines: int = DEFAULT_SLICE_LINES,
) -> FileSlice:
    """Lines ``start_line..end_line`` (1-based, inclusive; default the whole file) of an
    indexed file under ``root``, read from disk now.

    The range is cut to ``max_lines`` (≤ :data:`MAX_SLICE_LINES`) and
    :data:`MAX_SLICE_CHARS` (``truncated`` is then set); an ``end_line`` past the end is
    clamped. Raises the PathRefusedError subclasses of :func:`confine_path`, and
    NavigationError for a bad range (start < 1, end < start, start past the last line) or a
    file that can no longer be read as text.
    """
    rel, real_path, language = confine_path(con, root, path)
    if start_line is not None and start_line < 1:
        raise NavigationError(f"start_line must be at least 1 (got {start_line})")
    if end_line is not None and end_line < 1:
        raise NavigationError(f"end_line must be at least 1 (got {end_line})")
    if start_line is not None and end_line is not None and end_line < start_line:
        raise NavigationError(f"end_line {end_line} is before start_line {start_line}")
    max_lines = _check_limit(max_lines, MAX_SLICE_LINES)
    try:
        source = read_source(Path(os.path.realpath(root)), rel)
    except SkippedFile as exc:
        if exc.reason == SKIP_SECRET:
            raise SecretFileError(
                rel, "the indexer treats this file as a secret; it is never served"
            ) from None
        if exc.reason == SKIP_SYMLINK:
            raise PathOutsideRootError(
                rel, "resolves (through a symlink) outside the indexed root"
            ) from None
        if exc.reason == SKIP_VANISHED:
            raise FileGoneError(rel, "deleted or moved since it was indexed") from None
        raise NavigationError(
            f"{rel!r}: cannot be read now ({exc.reason}{': ' + exc.detail if exc.detail else ''})"
        ) from None
    except ValueError as exc:
        raise PathOutsideRootError(rel, str(exc)) from None
    lines = source.text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # a trailing newline ends the last line; it does not start a new one
    total_lines = len(lines)
    first = start_line or 1
    if first > total_lines:
        raise NavigationError(f"start_line {first} is past the end of {rel} ({total_lines} lines)")
    requested_last = min(end_line or total_lines, total_lines)
    last = min(requested_last, first + max_lines - 1)
    selected: list[str] = []
    size = 0
    cut_inside_line = False
    for line_text in lines[first - 1 : last]:
        if size + len(line_text) + 1 > MAX_SLICE_CHARS:
            if not selected:  # a single enormous line: return its beginning
                selected.append(line_text[:MAX_SLICE_CHARS])
                cut_inside_line = True
            break
        selected.append(line_text)
        size += len(line_text) + 1
    last = first + len(selected) - 1
    truncated = cut_inside_line or last < requested_last
    content = "\n".join(selected)
    return FileSlice(
        path=rel,
        language=language,
        start_line=first,
        end_line=last,
        total_lines=total_lines,
        content=content,
        truncated=truncated,
        changed_since_index=_changed_since_index(con, rel, real_path),
    )


def _changed_since_index(con: duckdb.DuckDBPyConnection, rel: str, real_path: Path) -> bool:
    row = con.execute("SELECT size, mtime_ns FROM files WHERE path = ?", [rel]).fetchone()
    try:
        stat = real_path.stat()
    except OSError:
        return True
    return row is None or (int(row[0]), int(row[1])) != (stat.st_size, stat.st_mtime_ns)
