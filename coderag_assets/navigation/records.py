"""The records navigation answers with: what the CLI's ``--json``, the MCP tools and the web
API print (one definition each; see :class:`coderag_assets.records.Record`)."""

from __future__ import annotations

from pydantic import Field

from coderag_assets.chunking.contexts import Context
from coderag_assets.navigation.limits import MAX_LINE_CHARS, SymbolMatchMode
from coderag_assets.records import Record


class SymbolInfo(Record):
    """One definition. ``line``/``column`` (1-based) point at its name, ``end_line`` is its
    last line; ``score`` is set in fuzzy mode (1.0 = identical, case-insensitively);
    ``source`` only when the caller asked for the definition's text."""

    name: str
    qualified_name: str = Field(description="Name with its enclosing scopes, e.g. Router.Handle")
    kind: str = Field(
        description="function, method, class, struct, interface, enum, type, constant, module..."
    )
    path: str = Field(description="File path relative to the indexed root")
    language: str
    line: int = Field(description="Line of the definition's name (1-based)")
    column: int = Field(description="Column of the name (1-based, characters)")
    end_line: int = Field(description="Last line of the definition")
    signature: str = Field(description="The source line holding the name")
    parent: str = Field(description="Qualified name of the enclosing scope, '' at top level")
    score: float | None = Field(
        default=None, description="Fuzzy-match score in [0, 1] (fuzzy mode only)"
    )
    source: str | None = Field(default=None, description="Indexed source from `line` to `end_line`")
    source_truncated: bool = Field(default=False, description="source cut to max_source_lines")


class SymbolMatches(Record):
    query: str
    mode: SymbolMatchMode
    symbols: list[SymbolInfo]
    truncated: bool = Field(description="More definitions matched than `limit`")


class OutlineSymbol(SymbolInfo):
    """A symbol of a file outline; ``depth`` is its nesting level (0 = top level)."""

    depth: int = Field(description="Nesting level (0 = top level)")


class FileOutline(Record):
    path: str
    language: str
    symbols: list[OutlineSymbol] = Field(description="Definitions in source order")
    truncated: bool


class Reference(Record):
    """One occurrence of an identifier. ``text`` is the whole source line (cut to
    :data:`MAX_LINE_CHARS` around the occurrence), ``enclosing`` the qualified name of the
    innermost definition containing the line ("" at top level), ``context`` where it sits in the
    syntax: ``code``, ``comment``, ``string`` (docstrings too) or ``text`` (a file without a
    grammar: docs, config, SQL, HTML, ...)."""

    path: str
    line: int = Field(description="1-based line of the occurrence")
    column: int = Field(description="1-based column of the occurrence")
    text: str = Field(description=f"The source line (cut to {MAX_LINE_CHARS} characters)")
    enclosing: str = Field(
        description="Qualified name of the innermost definition containing the line"
    )
    is_definition: bool = Field(description="This occurrence is where the symbol is defined")
    language: str
    context: Context = Field(
        default="code",
        description="Where it sits: code, a comment, a string or docstring, or text (a file "
        "without a grammar: docs, config, SQL, HTML, ...)",
    )


class ReferenceMatches(Record):
    """Occurrences of ``identifier`` (``name``'s last segment: ``Router.Handle`` →
    ``Handle``): definitions first, then by path and line. ``total`` counts every
    occurrence in the index (within the glob; only code ones with ``code_only``); ``truncated``
    when fewer were returned."""

    name: str
    identifier: str = Field(
        description="The identifier searched for (last segment of a qualified name)"
    )
    total: int = Field(description="Occurrences in the index (within path_glob)")
    truncated: bool = Field(description="Fewer references returned than `total`")
    code_only: bool = Field(
        default=False, description="Only occurrences in code were counted and returned"
    )
    definitions: list[SymbolInfo] = Field(default_factory=list)
    references: list[Reference] = Field(description="Definitions first, then by path and line")


class IndexedFile(Record):
    path: str
    language: str
    size: int = Field(description="Bytes")
    chunks: int
    symbols: int


class FileListing(Record):
    files: list[IndexedFile]
    total: int = Field(description="Matching files")
    truncated: bool


class FileSlice(Record):
    """Lines ``start_line..end_line`` (1-based, inclusive) of a file as it is on disk now,
    joined with ``"\\n"``. ``truncated`` when the requested range was cut to the size limits
    (continue at ``end_line + 1``); ``changed_since_index`` when the file's size or mtime
    differ from what was indexed (other tools' line numbers may be off)."""

    path: str
    language: str
    start_line: int
    end_line: int = Field(description="Last line returned (inclusive)")
    total_lines: int
    content: str = Field(description="Lines start_line..end_line joined with newlines")
    truncated: bool = Field(description="The requested range was cut; continue at end_line + 1")
    changed_since_index: bool = Field(description="File changed on disk since it was indexed")


class DefinitionHeader(Record):
    """The definition enclosing a search hit that starts below its first line: the hit's
    reader sees where it is (``signature`` at ``line``) without the lines in between."""

    qualified_name: str
    kind: str
    line: int = Field(description="Line of the definition's name (1-based)")
    signature: str = Field(description="The source line holding the name")
