"""Identifier occurrences of one file, recorded while the chunker holds its syntax tree.

Reference search (``coderag refs``, MCP ``find_references``) looks names up in these rows
instead of scanning chunk text. An occurrence is a maximal run of word characters (Unicode
letters, digits, ``_``: the same boundaries as ``navigation.identifier_pattern``) that does not
start with a digit — numbers are not identifiers and are deliberately left out. Each has the
context of :func:`coderag_assets.chunking.contexts.occurrence_contexts` (code, comment,
string, or text for files without a grammar), computed in one pass: a tree-sitter query
collects the comment, string and interpolation nodes, and a sweep over the file's tokens in
order assigns each the context of the innermost such node holding it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from tree_sitter import Language, Query, QueryCursor, QueryError, Tree

from .contexts import _INTERPOLATION_TYPES, _STRING_TYPES, Context, _is_string_part

#: Occurrence tokens: a word-character run that starts with a letter or ``_``.
WORD = re.compile(r"\w+")

_SPECIAL_QUERIES: dict[int, Query | None] = {}


@dataclass(slots=True)
class FileOccurrences:
    """Occurrences of one file as parallel columns, in (line, column) order.

    ``lines``/``columns`` are 1-based; ``columns`` counts characters (as ``Symbol.column`` and
    ``navigation.Reference.column``). ``contexts[i]`` is one of ``Context``.
    """

    names: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def rows(self) -> list[tuple[str, int, int, Context]]:
        """(name, line, column, context) per occurrence."""
        return list(zip(self.names, self.lines, self.columns, self.contexts, strict=True))


def _tokens(lines: list[str]) -> tuple[list[str], list[int], list[int]]:
    names: list[str] = []
    rows: list[int] = []
    char_columns: list[int] = []
    for row, line in enumerate(lines):
        for match in WORD.finditer(line):
            token = match.group()
            if token[0].isdigit():
                continue
            names.append(token)
            rows.append(row)
            char_columns.append(match.start())
    return names, rows, char_columns


def text_occurrences(lines: list[str]) -> FileOccurrences:
    """Occurrences of a file without a grammar (docs, config, ...): every one is "text"."""
    names, rows, char_columns = _tokens(lines)
    return FileOccurrences(
        names, [row + 1 for row in rows], [c + 1 for c in char_columns], ["text"] * len(names)
    )


def syntax_occurrences(lines: list[str], tree: Tree, language: Language) -> FileOccurrences:
    """Occurrences of a parsed file; ``lines`` are its text split on ``"\\n"`` (the rows the
    tree counts), ``tree`` the parse of that text encoded as UTF-8 (surrogatepass)."""
    names, rows, char_columns = _tokens(lines)
    if not names:
        return FileOccurrences()
    # Byte offset of each token in the encoded text (the tree's coordinates).
    row_start: list[int] = []
    offset = 0
    ascii_rows: list[bool] = []
    for line in lines:
        row_start.append(offset)
        is_ascii = line.isascii()
        ascii_rows.append(is_ascii)
        offset += (len(line) if is_ascii else len(line.encode("utf-8", "surrogatepass"))) + 1
    starts: list[int] = []
    ends: list[int] = []
    for name, row, column in zip(names, rows, char_columns, strict=True):
        if ascii_rows[row]:
            start = row_start[row] + column
            end = start + len(name)
        else:
            line = lines[row]
            start = row_start[row] + len(line[:column].encode("utf-8", "surrogatepass"))
            end = start + len(name.encode("utf-8", "surrogatepass"))
        starts.append(start)
        ends.append(end)
    contexts = _sweep(_context_regions(tree, language), starts, ends)
    return FileOccurrences(
        names, [row + 1 for row in rows], [c + 1 for c in char_columns], contexts
    )


# ------------------------------------------------------------------ context regions


def _special_query(language: Language) -> Query | None:
    """A query capturing every comment, string-like and interpolation node kind of the grammar
    (named, visible kinds only); None when the grammar has none."""
    key = id(language)
    if key in _SPECIAL_QUERIES:
        return _SPECIAL_QUERIES[key]
    kinds = sorted(
        {
            kind
            for kind_id in range(language.node_kind_count)
            if language.node_kind_is_named(kind_id) and language.node_kind_is_visible(kind_id)
            for kind in [language.node_kind_for_id(kind_id)]
            if kind
            and (
                "comment" in kind
                or "string" in kind
                or kind in _STRING_TYPES
                or kind in _INTERPOLATION_TYPES
            )
        }
    )
    usable = []
    for kind in kinds:
        try:
            Query(language, f"({kind}) @n")
        except QueryError:
            continue  # a kind the grammar cannot match on its own (a supertype, ...)
        usable.append(kind)
    query = (
        Query(language, "[" + " ".join(f"({kind})" for kind in usable) + "] @n") if usable else None
    )
    _SPECIAL_QUERIES[key] = query
    return query


# A region: (start byte, end byte, rank, context). Sorted by (start, -end, rank), regions nest;
# at equal extents the higher rank is the inner one (a node's own capture beats the "code inside
# a string" region its string parent gives it).
_Region = tuple[int, int, int, Context]


@functools.lru_cache(maxsize=1024)
def _string_part(kind: str) -> bool:
    """`contexts._is_string_part`, remembered per node kind (a grammar has a few hundred; a
    repository's strings have millions of children)."""
    return _is_string_part(kind)


def _context_regions(tree: Tree, language: Language) -> list[_Region]:
    """The regions that give a token a context other than the default "code", mirroring
    ``contexts._context_of``: the innermost comment/interpolation/string node above a token
    decides; inside a string, a named child that is not a piece of the literal is code."""
    query = _special_query(language)
    if query is None:
        return []
    captured = QueryCursor(query).captures(tree.root_node).get("n", [])
    regions: list[_Region] = []
    for node in captured:
        start, end = node.start_byte, node.end_byte
        if start >= end:
            continue
        kind = node.type
        if "comment" in kind:
            regions.append((start, end, 1, "comment"))
        elif kind in _INTERPOLATION_TYPES:
            regions.append((start, end, 1, "code"))
        else:
            regions.append((start, end, 1, "string"))
            if node.named_child_count:
                for child in node.named_children:
                    if not _string_part(child.type) and child.start_byte < child.end_byte:
                        regions.append((child.start_byte, child.end_byte, 0, "code"))
    regions.sort(key=lambda region: (region[0], -region[1], region[2]))
    return regions


def _sweep(regions: list[_Region], starts: list[int], ends: list[int]) -> list[Context]:
    """Context of each token (byte ranges in increasing start order): that of the innermost
    region holding all of it, "code" when none does."""
    contexts: list[Context] = []
    stack: list[_Region] = []
    next_region = 0
    count = len(regions)
    for start, end in zip(starts, ends, strict=True):
        while next_region < count and regions[next_region][0] <= start:
            region = regions[next_region]
            while stack and stack[-1][1] <= region[0]:
                stack.pop()
            stack.append(region)
            next_region += 1
        while stack and stack[-1][1] <= start:
            stack.pop()
        context: Context = "code"
        for region in reversed(stack):
            if region[1] >= end:
                context = region[3]
                break
        contexts.append(context)
    return contexts
