"""Definitions: by name (exact, prefix, contains, fuzzy), a file's outline, a definition's source."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import duckdb

from coderag_assets.navigation.errors import (
    NavigationError,
)
from coderag_assets.navigation.limits import (
    DEFAULT_DEFINITION_LINES,
    DEFAULT_SYMBOL_LIMIT,
    FUZZY_CANDIDATES,
    FUZZY_MIN_SCORE,
    FUZZY_PREFILTER_SIMILARITY,
    MAX_NAME_CHARS,
    MAX_OUTLINE_SYMBOLS,
    MAX_SYMBOL_LIMIT,
    SYMBOL_MATCH_MODES,
    SymbolMatchMode,
    _check_limit,
)
from coderag_assets.navigation.paths import (
    _indexed_language,
    normalize_rel_path,
)
from coderag_assets.navigation.records import (
    DefinitionHeader,
    FileOutline,
    OutlineSymbol,
    SymbolInfo,
    SymbolMatches,
)

_SYMBOL_COLUMNS = (
    'name, qualified_name, kind, path, language, line, "column", end_line, signature, parent'
)


def _symbol(row: tuple, score: float | None = None) -> SymbolInfo:
    name, qualified, kind, path, language, line, column, end_line, signature, parent = row[:10]
    return SymbolInfo(
        name=name,
        qualified_name=qualified,
        kind=kind,
        path=path,
        language=language or "",
        line=int(line),
        column=int(column),
        end_line=int(end_line),
        signature=signature or "",
        parent=parent or "",
        score=score,
    )


def symbol_kinds(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The symbol kinds present in the index, sorted."""
    return [
        row[0] for row in con.execute("SELECT DISTINCT kind FROM symbols ORDER BY kind").fetchall()
    ]


def _check_kind(con: duckdb.DuckDBPyConnection, kind: str | None) -> str | None:
    if kind is None or not kind.strip():
        return None
    wanted = kind.strip().lower()
    kinds = symbol_kinds(con)
    if wanted not in kinds:
        raise NavigationError(
            f"unknown symbol kind {kind!r}; kinds in this index: {', '.join(kinds) or 'none'}"
        )
    return wanted


def find_symbols(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    kind: str | None = None,
    mode: SymbolMatchMode = "exact",
    limit: int = DEFAULT_SYMBOL_LIMIT,
) -> SymbolMatches:
    """Definitions whose name or qualified name matches ``name``.

    Modes: ``exact`` (case-sensitive: ``Handle`` or ``Router.Handle``), ``prefix`` and
    ``contains`` (case-insensitive), ``fuzzy`` (case-insensitive similarity that tolerates
    typos, missing separators and abbreviations — ``lrucahce``, ``retry backoff``,
    ``celsToFahr``; best first, each with a ``score``). Exact matches of the name come first
    in the other modes, then shorter names. ``kind`` keeps one kind (``function``,
    ``method``, ``class``...; see :func:`symbol_kinds`). At most ``limit`` (≤
    :data:`MAX_SYMBOL_LIMIT`) results.

    Raises NavigationError for an empty name, an unknown mode or kind, or a bad limit.
    """
    if mode not in SYMBOL_MATCH_MODES:
        raise NavigationError(f"unknown mode {mode!r}; use one of {', '.join(SYMBOL_MATCH_MODES)}")
    query = name.strip()
    if not query:
        raise NavigationError("empty name")
    if len(query) > MAX_NAME_CHARS:
        raise NavigationError(f"name longer than {MAX_NAME_CHARS} characters")
    limit = _check_limit(limit, MAX_SYMBOL_LIMIT)
    wanted_kind = _check_kind(con, kind)
    if mode == "fuzzy":
        return _fuzzy_symbols(con, query, wanted_kind, limit)
    lowered = query.lower()
    on_name, on_qualified = {
        "exact": ("name = $q", "qualified_name = $q"),
        "prefix": ("starts_with(lower(name), $lq)", "starts_with(lower(qualified_name), $lq)"),
        "contains": ("contains(lower(name), $lq)", "contains(lower(qualified_name), $lq)"),
    }[mode]
    kind_condition = "AND kind = $kind" if wanted_kind else ""
    rows = con.execute(
        f"SELECT {_SYMBOL_COLUMNS} FROM symbols WHERE ({on_name} OR {on_qualified}) {kind_condition} "
        f"ORDER BY (name = $q OR qualified_name = $q) DESC, (lower(name) = $lq) DESC, ({on_name}) DESC, "
        'length(name), path, line, "column" LIMIT $n',
        {
            "q": query,
            "lq": lowered,
            "n": limit + 1,
            **({"kind": wanted_kind} if wanted_kind else {}),
        },
    ).fetchall()
    symbols = [_symbol(row) for row in rows[:limit]]
    return SymbolMatches(query=query, mode=mode, symbols=symbols, truncated=len(rows) > limit)


def _compact(text: str) -> str:
    """Lowercase letters and digits only: ``retry_with_backoff`` → ``retrywithbackoff``."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _is_subsequence(needle: str, haystack: str) -> bool:
    position = 0
    for ch in needle:
        position = haystack.find(ch, position) + 1
        if position == 0:
            return False
    return True


def fuzzy_score(query: str, candidate: str) -> float:
    """Similarity of a symbol name to a query in [0, 1], case-insensitive.

    1.0 for the same name ignoring case; prefix and substring matches score 0.85–1.0 by how
    much of the name they cover; a query whose letters appear in order in the name
    (``celsToFahr`` in ``celsiusToFahrenheit``, ``retry backoff`` in ``retry_with_backoff``)
    0.6–0.9; otherwise difflib's ratio (typos: ``lrucahce`` ~ ``lrucache``).
    """
    q, c = query.lower(), candidate.lower()
    if not q or not c:
        return 0.0
    if q == c:
        return 1.0
    cq, cc = _compact(q), _compact(c)
    if cq and cq == cc:
        return 0.98
    ratio = difflib.SequenceMatcher(None, q, c, autojunk=False).ratio()
    score = ratio
    if cq and cc:
        coverage = len(cq) / len(cc)
        if cc.startswith(cq):
            score = max(score, 0.9 + 0.08 * coverage)
        elif cq in cc:
            score = max(score, 0.85 + 0.08 * coverage)
        elif _is_subsequence(cq, cc):
            score = max(score, 0.6 + 0.3 * coverage)
    return round(min(score, 0.99), 4)


def _fuzzy_symbols(
    con: duckdb.DuckDBPyConnection, query: str, kind: str | None, limit: int
) -> SymbolMatches:
    lowered = query.lower()
    compact = _compact(query) or lowered
    subsequence = ".*".join(re.escape(ch) for ch in compact)
    kind_condition = "AND kind = $kind" if kind else ""
    # Prefilter in DuckDB (vectorized): similar strings, substrings, in-order letters.
    rows = con.execute(
        f"""
        SELECT {_SYMBOL_COLUMNS},
               greatest(jaro_winkler_similarity(lower(name), $lq),
                        jaro_winkler_similarity(lower(qualified_name), $lq)) AS similarity,
               contains(lower(qualified_name), $compact) AS has_substring
        FROM symbols
        WHERE (jaro_winkler_similarity(lower(name), $lq) >= $min_similarity
               OR jaro_winkler_similarity(lower(qualified_name), $lq) >= $min_similarity
               OR regexp_matches(lower(qualified_name), $subsequence))
              {kind_condition}
        ORDER BY has_substring DESC, similarity DESC, length(name), path, line
        LIMIT $candidates
        """,
        {
            "lq": lowered,
            "compact": compact,
            "subsequence": subsequence,
            "min_similarity": FUZZY_PREFILTER_SIMILARITY,
            "candidates": FUZZY_CANDIDATES,
            **({"kind": kind} if kind else {}),
        },
    ).fetchall()
    scored = []
    for row in rows:
        name, qualified = row[0], row[1]
        score = max(fuzzy_score(query, name), fuzzy_score(query, qualified))
        if score >= FUZZY_MIN_SCORE:
            scored.append((score, row))
    scored.sort(key=lambda item: (-item[0], len(item[1][0]), item[1][3], item[1][5]))
    symbols = [_symbol(row, score) for score, row in scored[:limit]]
    return SymbolMatches(query=query, mode="fuzzy", symbols=symbols, truncated=len(scored) > limit)


def list_symbols(
    con: duckdb.DuckDBPyConnection, path: str, *, limit: int = MAX_OUTLINE_SYMBOLS
) -> FileOutline:
    """The outline of one indexed file: its definitions in source order with nesting depth.

    Raises a PathRefusedError subclass when ``path`` is not a safe repo-relative path or not
    an indexed file (secrets and skipped files included), NavigationError for a bad limit.
    """
    rel = normalize_rel_path(path)
    language = _indexed_language(con, rel)
    limit = _check_limit(limit, MAX_OUTLINE_SYMBOLS)
    rows = con.execute(
        f'SELECT {_SYMBOL_COLUMNS} FROM symbols WHERE path = ? ORDER BY line, "column" LIMIT ?',
        [rel, limit + 1],
    ).fetchall()
    depth_of: dict[str, int] = {}
    entries: list[OutlineSymbol] = []
    for row in rows[:limit]:
        symbol = _symbol(row)
        depth = (
            depth_of[symbol.parent] + 1
            if symbol.parent in depth_of
            else (1 if symbol.parent else 0)
        )
        depth_of.setdefault(symbol.qualified_name, depth)
        entries.append(OutlineSymbol(**symbol.model_dump(), depth=depth))
    return FileOutline(path=rel, language=language, symbols=entries, truncated=len(rows) > limit)


def indexed_lines(
    con: duckdb.DuckDBPyConnection, path: str, first_line: int, last_line: int
) -> list[str]:
    """Lines ``first_line..last_line`` of ``path`` as indexed, rebuilt from the chunk texts
    (chunks cover every non-blank line once, so a line no chunk covers is blank). Stops at
    the last indexed line; an unknown path gives []."""
    rows = con.execute(
        "SELECT start_line, end_line, content FROM chunks WHERE path = ? AND start_line <= ? AND end_line >= ? "
        "ORDER BY start_line, rowid",
        [path, last_line, first_line],
    ).fetchall()
    return _rebuild_lines(rows, first_line, last_line)


def _rebuild_lines(
    rows: Iterable[tuple[int, int, str]], first_line: int = 1, last_line: int | None = None
) -> list[str]:
    """Lines ``first_line..last_line`` (default: to the last one) from one file's chunk rows
    ``(start_line, end_line, content)`` in ``start_line, rowid`` order: the pieces of an
    overlong line are joined, a line no chunk covers is blank."""
    by_line: dict[int, str] = {}
    for start, end, content in rows:
        for offset, line_text in enumerate(content.split("\n")):
            line = start + offset
            if line >= first_line and (last_line is None or line <= last_line):
                by_line[line] = by_line.get(line, "") + line_text if start == end else line_text
    if not by_line:
        return []
    return [by_line.get(line, "") for line in range(first_line, max(by_line) + 1)]


def definition_sources(
    con: duckdb.DuckDBPyConnection,
    symbols: list[SymbolInfo],
    max_lines: int = DEFAULT_DEFINITION_LINES,
) -> list[tuple[str, bool]]:
    """For each symbol, the indexed text from its name line to its end line cut to
    ``max_lines``, and whether it was cut: (text, truncated). One query for all of them."""
    windows = [(s.path, s.line, min(s.end_line, s.line + max_lines - 1)) for s in symbols]
    if not windows:
        return []
    rows = con.execute(
        """
        SELECT DISTINCT c.path, c.start_line, c.end_line, c.content, c.rowid
        FROM chunks c
        JOIN (SELECT unnest($paths) AS path, unnest($firsts) AS first, unnest($lasts) AS last) w
          ON c.path = w.path AND c.start_line <= w.last AND c.end_line >= w.first
        ORDER BY c.path, c.start_line, c.rowid
        """,
        {
            "paths": [path for path, _, _ in windows],
            "firsts": [first for _, first, _ in windows],
            "lasts": [last for _, _, last in windows],
        },
    ).fetchall()
    lines_by_path: dict[str, dict[int, str]] = {}
    for path, start, end, content, _rowid in rows:
        by_line = lines_by_path.setdefault(path, {})
        for offset, line_text in enumerate(content.split("\n")):
            line = start + offset
            by_line[line] = by_line.get(line, "") + line_text if start == end else line_text
    sources = []
    for symbol, (path, first, last) in zip(symbols, windows, strict=True):
        by_line = lines_by_path.get(path, {})
        known = [line for line in range(first, last + 1) if line in by_line]
        text = (
            "\n".join(by_line.get(line, "") for line in range(first, known[-1] + 1))
            if known
            else ""
        )
        sources.append((text, symbol.end_line > last))
    return sources


def definition_source(
    con: duckdb.DuckDBPyConnection, symbol: SymbolInfo, max_lines: int = DEFAULT_DEFINITION_LINES
) -> tuple[str, bool]:
    """The indexed text of one definition (see :func:`definition_sources`)."""
    return definition_sources(con, [symbol], max_lines)[0]


def enclosing_definitions(
    con: duckdb.DuckDBPyConnection, places: list[tuple[str, int, int]]
) -> list[DefinitionHeader | None]:
    """For each ``(path, start_line, end_line)`` (a search hit), the innermost definition that
    contains the whole range and whose name line is above ``start_line`` — the header a reader
    of a snippet from inside a long definition needs — or None (the hit starts at or above its
    definition's first line, or sits outside any). One query for all of them."""
    if not places:
        return []
    rows = con.execute(
        """
        SELECT w.i, s.qualified_name, s.kind, s.line, s.signature
        FROM (SELECT unnest($paths) AS path, unnest($starts) AS first, unnest($ends) AS last,
                     unnest($ids) AS i) w
        JOIN symbols s ON s.path = w.path AND s.line < w.first AND s.end_line >= w.last
        ORDER BY w.i, s.line DESC, s."column" DESC
        """,
        {
            "paths": [path for path, _, _ in places],
            "starts": [start for _, start, _ in places],
            "ends": [end for _, _, end in places],
            "ids": list(range(len(places))),
        },
    ).fetchall()
    headers: list[DefinitionHeader | None] = [None] * len(places)
    for index, qualified_name, kind, line, signature in rows:
        if headers[index] is None:  # the innermost: the latest name line above the hit
            headers[index] = DefinitionHeader(
                qualified_name=qualified_name,
                kind=kind,
                line=int(line),
                signature=(signature or "").rstrip(),
            )
    return headers
