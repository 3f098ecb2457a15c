"""Identifier-level occurrences of a name (find_references)."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import duckdb

from coderag_assets.chunking.contexts import Context, occurrence_contexts
from coderag_assets.navigation.limits import (
    DEFAULT_REFERENCE_LIMIT,
    MAX_LINE_CHARS,
    MAX_REFERENCE_LIMIT,
    QUALIFIER_SEPARATORS,
    _check_limit,
    _check_name,
)
from coderag_assets.navigation.paths import (
    check_glob,
)
from coderag_assets.navigation.records import (
    Reference,
    ReferenceMatches,
    SymbolInfo,
)
from coderag_assets.navigation.symbols import _SYMBOL_COLUMNS, _rebuild_lines, _symbol
from coderag_assets.search import path_matches


def identifier_of(name: str) -> str:
    """The identifier whose occurrences :func:`find_references` looks for: the last segment
    of a qualified name (``Router.Handle``, ``Foo::bar``, ``Foo#bar`` → ``Handle``/``bar``)."""
    segments = [segment for segment in QUALIFIER_SEPARATORS.split(name) if segment]
    return segments[-1] if segments else name


def identifier_pattern(identifier: str) -> re.Pattern[str]:
    """Regex for whole-identifier occurrences: no word character (Unicode letter, digit,
    ``_``) directly before or after, on the sides where the identifier itself starts/ends with
    one. ``get`` matches ``x.get(`` but not ``get_netrc_auth``, ``target`` or ``getter``."""
    before = r"(?<!\w)" if re.match(r"\w", identifier[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", identifier[-1]) else ""
    return re.compile(before + re.escape(identifier) + after)


def _duckdb_identifier_regex(identifier: str) -> str:
    """RE2 prefilter equivalent to :func:`identifier_pattern` (RE2 has no lookbehind)."""
    before = r"(?:^|[^\pL\pN_])" if re.match(r"\w", identifier[0]) else ""
    after = r"(?:[^\pL\pN_]|$)" if re.match(r"\w", identifier[-1]) else ""
    return before + re.escape(identifier) + after


def _cut_line(text: str, column: int) -> str:
    """The line around a 1-based column, at most MAX_LINE_CHARS characters, trailing space off."""
    text = text.rstrip()
    if len(text) <= MAX_LINE_CHARS:
        return text
    start = max(0, min(column - 1 - MAX_LINE_CHARS // 3, len(text) - MAX_LINE_CHARS))
    cut = text[start : start + MAX_LINE_CHARS]
    return ("…" if start else "") + cut + ("…" if start + MAX_LINE_CHARS < len(text) else "")


def find_references(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    limit: int = DEFAULT_REFERENCE_LIMIT,
    path_glob: str | None = None,
    code_only: bool = False,
) -> ReferenceMatches:
    """Identifier-level occurrences of ``name`` across the index (case-sensitive).

    Occurrences come from the index's ``occurrences`` view: every identifier-like token (a
    run of word characters not starting with a digit) the chunker saw, with its line,
    character column and syntax context (``code``, ``comment``, ``string``, or ``text`` in
    files without a grammar), so a lookup reads only the rows of that name — its cost follows
    the number of occurrences, not the size of the index. A name with non-word characters
    around one word (``$name``, ``name!``) is looked up by the word and checked against the
    line text. An occurrence at a definition's name position (from the ``symbols`` table) is
    marked ``is_definition``; for a qualified ``name`` only that definition is; ``code_only``
    keeps the code ones (and definitions). This is still name-based, not type-resolved:
    another `get` in scope is a hit too.

    An index without the ``occurrences`` view (built by an older CodeRAG), and a name that is
    not one word with optional non-word characters around it (``a-b``), are answered by
    scanning the chunk texts instead (:func:`_scan_references`), with the same results.

    Returns at most ``limit`` (≤ :data:`MAX_REFERENCE_LIMIT`) occurrences: definitions
    first, then the others in path/line/column order. Raises NavigationError for an empty or
    non-identifier name, a bad limit, or a glob that leaves the root.
    """
    name = _check_name(name)
    limit = _check_limit(limit, MAX_REFERENCE_LIMIT)
    if path_glob:
        check_glob(path_glob)
    identifier = identifier_of(name)
    word = _WORD_WITH_AFFIXES.fullmatch(identifier)
    if word is None:
        return _scan_references(con, name, limit=limit, path_glob=path_glob, code_only=code_only)
    prefix, core, suffix = word.groups()
    try:
        rows = con.execute(
            'SELECT path, language, line, "column", context FROM occurrences WHERE name = ? '
            'ORDER BY path, line, "column"',
            [core],
        ).fetchall()
    except duckdb.CatalogException:  # an index published before occurrences were recorded
        return _scan_references(con, name, limit=limit, path_glob=path_glob, code_only=code_only)
    definitions = _reference_definitions(con, name, identifier, path_glob)
    if path_glob:
        rows = [row for row in rows if path_matches(row[0], path_glob)]
    found = [
        _Occurrence(path, language or "", int(line), int(column), "", False, context)
        for path, language, line, column, context in rows
    ]
    if prefix or suffix:
        texts = _lines_at(con, {(o.path, o.line) for o in found})
        affixed = []
        for occurrence in found:
            line_text = texts.get((occurrence.path, occurrence.line), "")
            start = occurrence.column - 1 - len(prefix)
            after = occurrence.column - 1 + len(core)
            if (
                start >= 0
                and line_text[start : occurrence.column - 1] == prefix
                and line_text[after : after + len(suffix)] == suffix
            ):
                occurrence.column = start + 1
                occurrence.text = line_text
                affixed.append(occurrence)
        found = affixed
    _mark_definitions(found, definitions)
    if code_only:
        found = [o for o in found if o.context == "code" or o.is_definition]
    kept = _first_definitions(found, limit)
    if not (prefix or suffix):
        texts = _lines_at(con, {(o.path, o.line) for o in kept})
        for occurrence in kept:
            occurrence.text = texts.get((occurrence.path, occurrence.line), "")
    return _reference_matches(con, name, identifier, found, kept, definitions, limit, code_only)


# One word-character run, with optional non-word characters before and after (``$name``).
_WORD_WITH_AFFIXES = re.compile(r"(\W*)(\w+)(\W*)")


def _reference_definitions(
    con: duckdb.DuckDBPyConnection, name: str, identifier: str, path_glob: str | None
) -> list[SymbolInfo]:
    """The definitions a reference search marks: of the qualified name when one was given."""
    qualified = identifier != name
    definition_rows = con.execute(
        f"SELECT {_SYMBOL_COLUMNS} FROM symbols WHERE "
        + ("qualified_name = ?" if qualified else "name = ?")
        + " ORDER BY path, line",
        [name if qualified else identifier],
    ).fetchall()
    definitions = [_symbol(row) for row in definition_rows]
    if path_glob:
        definitions = [symbol for symbol in definitions if path_matches(symbol.path, path_glob)]
    return definitions


def _mark_definitions(found: list[_Occurrence], definitions: list[SymbolInfo]) -> None:
    """Mark the occurrences (in path/line/column order) at a definition's name position; on a
    definition line where no column agrees (tabs, ...), the line's first occurrence."""
    definition_at = {(s.path, s.line, s.column) for s in definitions}
    definition_lines = {(s.path, s.line) for s in definitions}
    for (path, line), on_line in groupby(found, key=lambda o: (o.path, o.line)):
        occurrences = list(on_line)
        marked = False
        for occurrence in occurrences:
            if (path, line, occurrence.column) in definition_at:
                occurrence.is_definition = marked = True
        if not marked and (path, line) in definition_lines:
            occurrences[0].is_definition = True


def _first_definitions(found: list[_Occurrence], limit: int) -> list[_Occurrence]:
    """At most ``limit`` occurrences: the definitions, then the others, each in found order."""
    kept = [o for o in found if o.is_definition][:limit]
    return (kept + [o for o in found if not o.is_definition])[:limit]


def _reference_matches(
    con: duckdb.DuckDBPyConnection,
    name: str,
    identifier: str,
    found: list[_Occurrence],
    kept: list[_Occurrence],
    definitions: list[SymbolInfo],
    limit: int,
    code_only: bool,
) -> ReferenceMatches:
    scopes = _Scopes.load(con, {o.path for o in kept})
    references = [
        Reference(
            path=o.path,
            line=o.line,
            column=o.column,
            text=_cut_line(o.text, o.column),
            enclosing=scopes.at(o.path, o.line, skip_named=identifier if o.is_definition else None),
            is_definition=o.is_definition,
            language=o.language,
            context=o.context,
        )
        for o in kept
    ]
    return ReferenceMatches(
        name=name,
        identifier=identifier,
        references=references,
        total=len(found),
        truncated=len(found) > len(references),
        definitions=definitions[:limit],
        code_only=code_only,
    )


def _lines_at(
    con: duckdb.DuckDBPyConnection, places: set[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """The indexed text of each (path, line), rebuilt from the chunks covering it (the pieces
    of an overlong line joined). One query for all of them."""
    if not places:
        return {}
    ordered = sorted(places)
    rows = con.execute(
        """
        SELECT DISTINCT c.path, c.start_line, c.end_line, c.content, c.rowid
        FROM chunks c
        JOIN (SELECT unnest($paths) AS path, unnest($lines) AS line) w
          ON c.path = w.path AND c.start_line <= w.line AND c.end_line >= w.line
        WHERE c.path IN (SELECT unnest($distinct_paths))
        ORDER BY c.path, c.start_line, c.rowid
        """,
        {
            "paths": [path for path, _ in ordered],
            "lines": [line for _, line in ordered],
            "distinct_paths": sorted({path for path, _ in ordered}),
        },
    ).fetchall()
    texts: dict[tuple[str, int], str] = {}
    for path, start, end, content, _rowid in rows:
        for offset, line_text in enumerate(content.split("\n")):
            key = (path, start + offset)
            if key in places:
                texts[key] = texts.get(key, "") + line_text if start == end else line_text
    return texts


def _scan_references(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    limit: int = DEFAULT_REFERENCE_LIMIT,
    path_glob: str | None = None,
    code_only: bool = False,
) -> ReferenceMatches:
    """:func:`find_references` by scanning chunk texts, for indexes without occurrences.

    Candidate chunks come from a DuckDB regex scan of the chunk texts; each line is then
    matched at identifier boundaries (:func:`identifier_pattern`) and mapped to its file line
    through the chunk's ``start_line``; a line covered by two chunks counts once. Each
    occurrence's context comes from a tree-sitter parse of the indexed file (of the returned
    ones only, unless ``code_only``). Cost: a scan of every chunk's text.
    """
    name = _check_name(name)
    limit = _check_limit(limit, MAX_REFERENCE_LIMIT)
    if path_glob:
        check_glob(path_glob)
    identifier = identifier_of(name)
    definitions = _reference_definitions(con, name, identifier, path_glob)

    pattern = identifier_pattern(identifier)
    # Chunks holding a match, plus every piece of an overlong line one of whose pieces matched,
    # so the line is rebuilt whole (right columns, and a parse of the real text).
    chunk_rows = con.execute(
        """
        WITH hits AS (
            SELECT rowid AS id, path, start_line, end_line FROM chunks
            WHERE contains(content, ?) AND regexp_matches(content, ?)
        )
        SELECT path, language, start_line, end_line, content FROM chunks
        WHERE rowid IN (SELECT id FROM hits)
           OR (start_line = end_line AND (path, start_line) IN (
                SELECT (path, start_line) FROM hits WHERE start_line = end_line))
        ORDER BY path, start_line, rowid
        """,
        [identifier, _duckdb_identifier_regex(identifier)],
    ).fetchall()

    seen_lines: set[tuple[str, int]] = set()
    found: list[_Occurrence] = []
    for path, language, start_line, content in _join_split_lines(chunk_rows):
        if path_glob and not path_matches(path, path_glob):
            continue
        for offset, line_text in enumerate(content.split("\n")):
            matches = list(pattern.finditer(line_text))
            if not matches:
                continue
            line = start_line + offset
            if (path, line) in seen_lines:
                continue
            seen_lines.add((path, line))
            for match in matches:
                found.append(
                    _Occurrence(path, language or "", line, match.start() + 1, line_text, False)
                )
    _mark_definitions(found, definitions)
    if code_only:
        _classify(con, found, len(identifier))
        found = [o for o in found if o.context == "code" or o.is_definition]
    kept = _first_definitions(found, limit)
    if not code_only:
        _classify(con, kept, len(identifier))
    return _reference_matches(con, name, identifier, found, kept, definitions, limit, code_only)


@dataclass(slots=True)
class _Occurrence:
    path: str
    language: str
    line: int
    column: int
    text: str  # the whole source line
    is_definition: bool
    context: Context = "code"


def _classify(con: duckdb.DuckDBPyConnection, occurrences: list[_Occurrence], length: int) -> None:
    """Set each occurrence's syntax context from a parse of its file as indexed (the file is put
    back together from its chunks, so lines agree with the index even if the disk moved on)."""
    by_path: dict[str, list[_Occurrence]] = {}
    for occurrence in occurrences:
        by_path.setdefault(occurrence.path, []).append(occurrence)
    if not by_path:
        return
    rows = con.execute(
        "SELECT path, start_line, end_line, content FROM chunks "
        "WHERE path IN (SELECT unnest(?)) ORDER BY path, start_line, rowid",
        [sorted(by_path)],
    ).fetchall()
    for path, file_rows in groupby(rows, key=itemgetter(0)):
        found = by_path[path]
        lines = _rebuild_lines(row[1:] for row in file_rows)
        contexts = occurrence_contexts(
            "\n".join(lines), found[0].language, [(o.line - 1, o.column - 1, length) for o in found]
        )
        for occurrence, context in zip(found, contexts, strict=True):
            occurrence.context = context


def _join_split_lines(rows: list[tuple]) -> list[tuple[str, str, int, str]]:
    """(path, language, start_line, content) per chunk, with the pieces of one overlong line
    (consecutive single-line chunks of the same line) joined back into that line."""
    joined: list[tuple[str, str, int, str]] = []
    previous_single: tuple[str, int] | None = None
    for path, language, start_line, end_line, content in rows:
        single = (path, start_line) if start_line == end_line else None
        if single is not None and single == previous_single:
            last_path, last_language, last_start, last_content = joined[-1]
            joined[-1] = (last_path, last_language, last_start, last_content + content)
        else:
            joined.append((path, language, start_line, content))
        previous_single = single
    return joined


@dataclass(frozen=True, slots=True)
class _Scopes:
    """Definitions of some files, to name the innermost one containing a line."""

    spans: dict[str, list[tuple[int, int, str, str]]]  # path → (line, end_line, qualified, name)

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, paths: set[str]) -> _Scopes:
        spans: dict[str, list[tuple[int, int, str, str]]] = {path: [] for path in paths}
        if paths:
            rows = con.execute(
                "SELECT path, line, end_line, qualified_name, name FROM symbols "
                'WHERE path IN (SELECT unnest(?)) ORDER BY path, line, "column"',
                [sorted(paths)],
            ).fetchall()
            for path, line, end_line, qualified_name, name in rows:
                spans[path].append((int(line), int(end_line), str(qualified_name), str(name)))
        return cls(spans)

    def at(self, path: str, line: int, skip_named: str | None = None) -> str:
        """Qualified name of the innermost definition whose lines contain ``line``, or "".
        ``skip_named`` skips the definition of that name starting on ``line`` (a definition's
        own name line belongs to its parent)."""
        spans = self.spans.get(path, [])
        best = ""
        for index in range(bisect_right(spans, (line, float("inf"))) - 1, -1, -1):
            start, end, qualified_name, name = spans[index]
            if start == line and name == skip_named:
                continue
            if start <= line <= end:
                best = qualified_name
                break
        return best
