"""Symbol navigation over a published index: definitions, outlines, references, files.

Plain, typed functions over a read-only DuckDB connection to one published index
(:func:`coderag_assets.store.connect_index`); no Dagster. The CLI (`coderag symbols`,
`coderag refs`) and the MCP server call them.

* :func:`find_symbols` — definitions by name (exact, prefix, contains or fuzzy).
* :func:`list_symbols` — the outline of one file in source order.
* :func:`find_references` — identifier-level occurrences of a name: ``get`` never matches
  ``get_netrc_auth`` or ``target``. Occurrences come from the indexed chunk texts, so line
  numbers agree with the index; each says whether it is a definition.
* :func:`list_files` — indexed files by glob and language.
* :func:`get_file` — a line range of one indexed file, read from disk and confined to the
  root (see :func:`confine_path`).

Every result has a size limit and says when it was cut (``truncated``). Bad arguments raise
:class:`NavigationError`; paths that may not be read raise a :class:`PathRefusedError`
subclass naming the path and the reason.
"""

from __future__ import annotations

import difflib
import os
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from itertools import groupby
from operator import itemgetter
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

import duckdb

from coderag_assets.chunking.contexts import Context, occurrence_contexts
from coderag_assets.files import (
    SKIP_SECRET,
    SKIP_SYMLINK,
    SkippedFile,
    name_skip_reason,
    read_source,
)
from coderag_assets.search import normalize_language, path_matches

SymbolMatchMode = Literal["exact", "prefix", "contains", "fuzzy"]
SYMBOL_MATCH_MODES: tuple[SymbolMatchMode, ...] = get_args(SymbolMatchMode)

DEFAULT_SYMBOL_LIMIT = 20
MAX_SYMBOL_LIMIT = 200
MAX_OUTLINE_SYMBOLS = 1_000
DEFAULT_REFERENCE_LIMIT = 100
MAX_REFERENCE_LIMIT = 1_000
DEFAULT_FILE_LIMIT = 200
MAX_FILE_LIMIT = 5_000
DEFAULT_SLICE_LINES = 400
MAX_SLICE_LINES = 2_000
MAX_SLICE_CHARS = 100_000
MAX_LINE_CHARS = 300
DEFAULT_DEFINITION_LINES = 40
MAX_NAME_CHARS = 200
FUZZY_CANDIDATES = 2_000
FUZZY_MIN_SCORE = 0.6
FUZZY_PREFILTER_SIMILARITY = 0.75
QUALIFIER_SEPARATORS = re.compile(r"\.|::|#|->")


# ------------------------------------------------------------------------------ errors


class NavigationError(ValueError):
    """A navigation request cannot be answered as asked (bad name, mode, kind, line range)."""


class PathRefusedError(NavigationError):
    """A path argument may not be served. ``path`` is the argument as given (NUL bytes shown
    escaped), ``reason`` says why in words, ``code`` is a stable short name of the refusal."""

    code = "refused"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}")


class InvalidPathError(PathRefusedError):
    """Empty, or holds a NUL byte or another control character."""

    code = "invalid_path"


class PathOutsideRootError(PathRefusedError):
    """Absolute, climbs out with ``..``, or resolves (through a symlink) outside the root."""

    code = "outside_root"


class SecretFileError(PathRefusedError):
    """The indexer treats this file as a secret (``.env``, ``*.pem``, ...): never served."""

    code = "secret"


class FileNotIndexedError(PathRefusedError):
    """Not a file of the index: unknown, ignored, or skipped by the indexer (binary, ...)."""

    code = "not_indexed"


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """One definition. ``line``/``column`` (1-based) point at its name, ``end_line`` is its
    last line; ``score`` is set in fuzzy mode (1.0 = identical, case-insensitively)."""

    name: str
    qualified_name: str
    kind: str
    path: str
    language: str
    line: int
    column: int
    end_line: int
    signature: str
    parent: str
    score: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SymbolMatches:
    query: str
    mode: SymbolMatchMode
    symbols: list[SymbolInfo]
    truncated: bool

    def to_json(self) -> dict[str, object]:
        return {
            "query": self.query,
            "mode": self.mode,
            "symbols": [symbol.to_json() for symbol in self.symbols],
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class OutlineEntry:
    """A symbol of a file outline; ``depth`` is its nesting level (0 = top level)."""

    symbol: SymbolInfo
    depth: int

    def to_json(self) -> dict[str, object]:
        return {**self.symbol.to_json(), "depth": self.depth}


@dataclass(frozen=True, slots=True)
class FileOutline:
    path: str
    language: str
    entries: list[OutlineEntry]
    truncated: bool

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "language": self.language,
            "symbols": [entry.to_json() for entry in self.entries],
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class Reference:
    """One occurrence of an identifier. ``text`` is the whole source line (cut to
    :data:`MAX_LINE_CHARS` around the occurrence), ``enclosing`` the qualified name of the
    innermost definition containing the line ("" at top level), ``context`` where it sits in the
    syntax: ``code``, ``comment``, ``string`` (docstrings too) or ``text`` (a file without a
    grammar: docs, config, SQL, HTML, ...)."""

    path: str
    line: int
    column: int
    text: str
    enclosing: str
    is_definition: bool
    language: str
    context: Context = "code"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReferenceMatches:
    """Occurrences of ``identifier`` (``name``'s last segment: ``Router.Handle`` →
    ``Handle``): definitions first, then by path and line. ``total`` counts every
    occurrence in the index (within the glob; only code ones with ``code_only``); ``truncated``
    when fewer were returned."""

    name: str
    identifier: str
    references: list[Reference]
    total: int
    truncated: bool
    definitions: list[SymbolInfo] = field(default_factory=list)
    code_only: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "identifier": self.identifier,
            "total": self.total,
            "truncated": self.truncated,
            "code_only": self.code_only,
            "definitions": [symbol.to_json() for symbol in self.definitions],
            "references": [reference.to_json() for reference in self.references],
        }


@dataclass(frozen=True, slots=True)
class IndexedFile:
    path: str
    language: str
    size: int
    chunks: int
    symbols: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FileListing:
    files: list[IndexedFile]
    total: int
    truncated: bool

    def to_json(self) -> dict[str, object]:
        return {
            "files": [item.to_json() for item in self.files],
            "total": self.total,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True)
class FileSlice:
    """Lines ``start_line..end_line`` (1-based, inclusive) of a file as it is on disk now,
    joined with ``"\\n"``. ``truncated`` when the requested range was cut to the size limits
    (continue at ``end_line + 1``); ``changed_since_index`` when the file's size or mtime
    differ from what was indexed (other tools' line numbers may be off)."""

    path: str
    language: str
    start_line: int
    end_line: int
    total_lines: int
    content: str
    truncated: bool
    changed_since_index: bool

    def to_json(self) -> dict[str, object]:
        return asdict(self)


# ------------------------------------------------------------------------------ symbols

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


def _check_limit(limit: int, maximum: int) -> int:
    if limit < 1:
        raise NavigationError(f"limit must be at least 1 (got {limit})")
    return min(limit, maximum)


def _check_name(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        raise NavigationError("empty name")
    if len(stripped) > MAX_NAME_CHARS:
        raise NavigationError(f"name longer than {MAX_NAME_CHARS} characters")
    if "\0" in stripped or any(ch.isspace() for ch in stripped):
        raise NavigationError(f"{stripped!r} is not an identifier (whitespace or NUL inside)")
    return stripped


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
    entries = []
    for row in rows[:limit]:
        symbol = _symbol(row)
        depth = (
            depth_of[symbol.parent] + 1
            if symbol.parent in depth_of
            else (1 if symbol.parent else 0)
        )
        depth_of.setdefault(symbol.qualified_name, depth)
        entries.append(OutlineEntry(symbol=symbol, depth=depth))
    return FileOutline(path=rel, language=language, entries=entries, truncated=len(rows) > limit)


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


# ------------------------------------------------------------------------------ references


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
            o.path,
            o.line,
            o.column,
            _cut_line(o.text, o.column),
            scopes.at(o.path, o.line, skip_named=identifier if o.is_definition else None),
            o.is_definition,
            o.language,
            o.context,
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


# ------------------------------------------------------------------------------ files and paths


def normalize_rel_path(path: str) -> str:
    """A repo-relative posix path, syntactically confined to the root (no file access).

    ``./a//b.py`` → ``a/b.py``. Raises InvalidPathError (empty, NUL or other control
    characters) or PathOutsideRootError (absolute, ``~``, a ``..`` component, a Windows
    drive).
    """
    if "\0" in path:
        raise InvalidPathError(path.replace("\0", "\\0"), "NUL byte in path")
    if any(ord(ch) < 32 for ch in path):
        raise InvalidPathError(path, "control character in path")
    candidate = path.strip()
    if not candidate:
        raise InvalidPathError(path, "empty path")
    if candidate.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", candidate):
        raise PathOutsideRootError(
            path, "absolute paths are refused; give a path relative to the indexed root"
        )
    if candidate.startswith("~"):
        raise PathOutsideRootError(
            path, "home-relative paths are refused; give a path relative to the indexed root"
        )
    parts = [
        part for part in PurePosixPath(candidate.replace("\\", "/")).parts if part not in ("", ".")
    ]
    if ".." in parts:
        raise PathOutsideRootError(path, "'..' would leave the indexed root")
    if not parts:
        raise InvalidPathError(path, "the path names the root itself, not a file")
    return "/".join(parts)


def check_glob(pattern: str) -> str:
    """A glob confined to the root (same rules as :func:`normalize_rel_path`, wildcards allowed)."""
    if "\0" in pattern:
        raise InvalidPathError(pattern.replace("\0", "\\0"), "NUL byte in glob")
    stripped = pattern.strip()
    if stripped.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", stripped):
        raise PathOutsideRootError(
            pattern, "absolute globs are refused; give a glob relative to the indexed root"
        )
    if ".." in stripped.replace("\\", "/").split("/"):
        raise PathOutsideRootError(pattern, "'..' would leave the indexed root")
    return stripped


def _indexed_language(con: duckdb.DuckDBPyConnection, rel: str) -> str:
    """The language of an indexed file; refuses secrets and files not (or not fully) indexed."""
    row = con.execute(
        "SELECT language, skip_reason, skip_detail FROM files WHERE path = ?", [rel]
    ).fetchone()
    name = rel.rpartition("/")[2]
    if name_skip_reason(name) == SKIP_SECRET or (row is not None and row[1] == SKIP_SECRET):
        raise SecretFileError(rel, "the indexer treats this file as a secret; it is never served")
    if row is None:
        raise FileNotIndexedError(
            rel, "not in the index (no such file, ignored, or not indexed yet)"
        )
    language, skip_reason, skip_detail = row
    if skip_reason == SKIP_SYMLINK:
        raise PathOutsideRootError(rel, "symlink resolving outside the indexed root")
    if skip_reason is not None:
        detail = f": {skip_detail}" if skip_detail else ""
        raise FileNotIndexedError(rel, f"skipped by the indexer ({skip_reason}{detail})")
    return language or "text"


def confine_path(con: duckdb.DuckDBPyConnection, root: Path, path: str) -> tuple[str, Path, str]:
    """Check that ``path`` may be served from ``root``; return (rel path, real path, language).

    Refused, in this order: empty / NUL / control characters (InvalidPathError); absolute,
    ``~`` and ``..`` paths (PathOutsideRootError); paths whose real location (symlinks
    resolved) is outside the root (PathOutsideRootError); secret file names, of the path or
    of a symlink's target, and files indexed as secrets (SecretFileError); files absent from
    the index or skipped by it (FileNotIndexedError).
    """
    rel = normalize_rel_path(path)
    real_root = Path(os.path.realpath(root))
    real_path = Path(os.path.realpath(real_root / rel))
    if real_path != real_root and real_root not in real_path.parents:
        raise PathOutsideRootError(rel, "resolves (through a symlink) outside the indexed root")
    if name_skip_reason(rel.rpartition("/")[2]) == SKIP_SECRET:
        raise SecretFileError(rel, "the indexer treats this file as a secret; it is never served")
    if name_skip_reason(real_path.name) == SKIP_SECRET:
        raise SecretFileError(
            rel, "points at a file the indexer treats as a secret; it is never served"
        )
    language = _indexed_language(con, rel)
    return rel, real_path, language


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
