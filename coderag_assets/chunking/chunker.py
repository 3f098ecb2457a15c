"""``chunk_file``: one file's text in, chunks and symbols out."""

from __future__ import annotations

import logging

from tree_sitter import Node, Query, QueryCursor

from .ast_chunker import AstChunker, Piece
from .definitions import Definition, find_definitions
from .grammars import GRAMMARS
from .languages import SUPPORTED_AST_LANGUAGES
from .limits import HARD_MAX_CHUNK_CHARS, MAX_SIGNATURE_CHARS
from .model import Chunk, ChunkedFile, Symbol
from .occurrences import syntax_occurrences, text_occurrences
from .parsers import parser_for
from .source_text import SourceText
from .text_chunker import line_windows, text_pieces

logger = logging.getLogger(__name__)

_ERROR_QUERIES: dict[str, Query] = {}


def count_parse_errors(root: Node, language: str) -> int:
    """Number of ERROR and MISSING nodes under ``root`` (a query, so the walk runs in C)."""
    if not root.has_error:
        return 0
    query = _ERROR_QUERIES.get(language)
    if query is None:
        query = Query(parser_for(language)[1], "(ERROR) @error (MISSING) @missing")
        _ERROR_QUERIES[language] = query
    captures = QueryCursor(query).captures(root)
    return sum(len(nodes) for nodes in captures.values())


def chunk_file(path: str, text: str, language: str | None) -> ChunkedFile:
    """Chunk one file and list its symbols.

    ``path`` is the repo-relative POSIX path (recorded, never embedded); ``language`` a name from
    ``language_for_path``. Languages in ``SUPPORTED_AST_LANGUAGES`` are chunked along their syntax
    tree and yield symbols; any other language (or ``None``) is chunked as text with no symbols.
    Chunks cover every non-blank line once, in source order, without overlap (see ``Chunk`` for
    the one exception, overlong single lines). Empty or whitespace-only text gives no chunks.
    Identifier occurrences are recorded from the same parse (``ChunkedFile.occurrences``).
    Never raises for bad source: syntax errors are counted in ``parse_errors``, and should the
    syntax-tree path fail unexpectedly the file is chunked as text (logged as a warning).
    """
    if not text.strip():
        return ChunkedFile([], [], 0)
    source = SourceText(text)
    chunk_language = language or "text"
    if chunk_language in SUPPORTED_AST_LANGUAGES:
        try:
            return _chunk_syntax_tree(path, source, chunk_language)
        except Exception:  # a grammar or chunker bug must not stop indexing: fall back to text
            logger.warning(
                "syntax-tree chunking failed for %s (%s); chunking as text",
                path,
                chunk_language,
                exc_info=True,
            )
    chunks = [
        _make_chunk(
            path,
            chunk_language,
            source,
            piece.window.first_row,
            piece.window.last_row,
            piece.symbol,
            piece.kind,
            piece.window.char_slice,
        )
        for piece in text_pieces(source, chunk_language)
    ]
    return ChunkedFile(
        [chunk for chunk in chunks if chunk is not None], [], 0, text_occurrences(source.text)
    )


def _chunk_syntax_tree(path: str, source: SourceText, language: str) -> ChunkedFile:
    grammar = GRAMMARS[language]
    parser, ts_language = parser_for(language)
    encoded = source.text.encode("utf-8", "surrogatepass")
    tree = parser.parse(encoded)
    definitions = find_definitions(tree, encoded, grammar, ts_language)
    by_outer: dict[int, Definition] = {}
    for definition in definitions:
        if definition.is_chunk_unit:
            by_outer.setdefault(definition.outer.id, definition)
    pieces = AstChunker(source, grammar, by_outer).pieces(tree.root_node)
    chunks = _pieces_to_chunks(path, language, source, pieces)
    symbols = [_make_symbol(path, language, source, definition) for definition in definitions]
    occurrences = syntax_occurrences(source.text, tree, ts_language)
    return ChunkedFile(chunks, symbols, count_parse_errors(tree.root_node, language), occurrences)


def _pieces_to_chunks(
    path: str, language: str, source: SourceText, pieces: list[Piece]
) -> list[Chunk]:
    """Trim blank edge rows, drop blank pieces, cut anything above ``HARD_MAX_CHUNK_CHARS``."""
    chunks: list[Chunk] = []
    for piece in pieces:
        if (
            piece.char_slice is not None
            or source.size(piece.start, piece.end) <= HARD_MAX_CHUNK_CHARS
        ):
            chunk = _make_chunk(
                path,
                language,
                source,
                piece.start,
                piece.end,
                piece.symbol,
                piece.kind,
                piece.char_slice,
            )
            if chunk is not None:
                chunks.append(chunk)
            continue
        for window in line_windows(source, piece.start, piece.end):
            chunk = _make_chunk(
                path,
                language,
                source,
                window.first_row,
                window.last_row,
                piece.symbol,
                piece.kind,
                window.char_slice,
            )
            if chunk is not None:
                chunks.append(chunk)
    return chunks


def _make_chunk(
    path: str,
    language: str,
    source: SourceText,
    first_row: int,
    last_row: int,
    symbol: str,
    kind: str,
    char_slice: tuple[int, int] | None,
) -> Chunk | None:
    """A chunk for rows ``first_row..last_row`` without blank rows at its edges; ``None`` when
    the rows are all blank."""
    if char_slice is not None:
        content = source.lines[first_row][char_slice[0] : char_slice[1]]
        if not content.strip():
            return None
        return Chunk(path, language, first_row + 1, first_row + 1, symbol, kind, content)
    while first_row <= last_row and source.is_blank(first_row):
        first_row += 1
    while last_row >= first_row and source.is_blank(last_row):
        last_row -= 1
    if first_row > last_row:
        return None
    return Chunk(
        path,
        language,
        first_row + 1,
        last_row + 1,
        symbol,
        kind,
        source.content(first_row, last_row),
    )


def _make_symbol(path: str, language: str, source: SourceText, definition: Definition) -> Symbol:
    row = min(definition.name_row, source.last_row)
    return Symbol(
        name=definition.name,
        qualified_name=definition.qualified_name,
        kind=definition.kind,
        path=path,
        language=language,
        line=row + 1,
        column=source.char_column(row, definition.name_byte_column),
        end_line=min(definition.end_row, source.last_row) + 1,
        signature=source.signature(row, MAX_SIGNATURE_CHARS),
        parent=definition.parent,
    )
