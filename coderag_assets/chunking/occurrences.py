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
from itertools import compress

import numpy as np
from tree_sitter import Language, Query, QueryCursor, QueryError, Tree

from .contexts import _INTERPOLATION_TYPES, _STRING_TYPES, Context, _is_string_part

#: Occurrence tokens: a word-character run that starts with a letter or ``_``.
WORD = re.compile(r"\w+")
#: Whether each byte is a word character in an ASCII text (what `WORD` matches).
_ASCII_WORD_CHARACTERS = np.array(
    [chr(byte).isalnum() or chr(byte) == "_" for byte in range(256)], np.bool_
)
_ASCII_WORD_CHARACTERS[0x80:] = False

_SPECIAL_QUERIES: dict[int, Query | None] = {}


@dataclass(slots=True)
class FileOccurrences:
    """Occurrences of one file as parallel columns, in (line, column) order.

    ``lines``/``columns`` are 1-based (int32 arrays); ``columns`` counts characters (as
    ``Symbol.column`` and ``navigation.Reference.column``). ``contexts[i]`` is one of ``Context``.
    """

    names: list[str] = field(default_factory=list)
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    contexts: list[Context] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def rows(self) -> list[tuple[str, int, int, Context]]:
        """(name, line, column, context) per occurrence."""
        return list(
            zip(self.names, self.lines.tolist(), self.columns.tolist(), self.contexts, strict=True)
        )


@dataclass(slots=True)
class _Tokens:
    """A text's occurrence tokens: names, and 0-based character offsets in the text."""

    names: list[str]
    starts: np.ndarray  # int64


def _tokens(text: str, characters: np.ndarray) -> _Tokens:
    """The `WORD` runs of `text` that do not start with a digit; `characters` are its code
    points (:func:`_characters`).

    The runs are found in NumPy (where a word character follows another kind) and named by
    one `findall`: no match object is made per token, as a file has thousands and holding
    them keeps the garbage collector busy."""
    word = _is_word_character(characters).view(np.int8)
    edges = np.diff(word, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    names = WORD.findall(text)
    if len(names) != starts.size:  # a character `\w` and `str.isalnum` judge apart: exact path
        matches = list(WORD.finditer(text))
        names = [match.group() for match in matches]
        starts = np.array([match.start() for match in matches], np.int64)
    number = _is_digit(characters[starts])
    if number.any():
        names = list(compress(names, (~number).tolist()))
        starts = starts[~number]
    return _Tokens(names, starts)


def _is_word_character(characters: np.ndarray) -> np.ndarray:
    """What `WORD` matches (`str.isalnum` or ``_``), per code point."""
    if characters.dtype == np.uint8:
        return _ASCII_WORD_CHARACTERS[characters]
    distinct, where = np.unique(characters, return_inverse=True)
    word = [chr(code).isalnum() or code == ord("_") for code in distinct.tolist()]
    return np.array(word, np.bool_)[where]


def _is_digit(characters: np.ndarray) -> np.ndarray:
    """`str.isdigit` per code point."""
    digit = (characters >= ord("0")) & (characters <= ord("9"))
    other = np.flatnonzero(characters >= 0x80)
    if other.size:  # other scripts' digits, superscripts ...: looked up once per character
        distinct, where = np.unique(characters[other], return_inverse=True)
        digit[other] = np.array([chr(code).isdigit() for code in distinct.tolist()])[where]
    return digit


def _characters(text: str) -> np.ndarray:
    """The code point of each character of `text` (bytes when it is ASCII)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def _located(characters: np.ndarray, tokens: _Tokens) -> tuple[np.ndarray, np.ndarray]:
    """1-based line and character column of each token (lines split on ``"\\n"``)."""
    line_starts = np.concatenate(([0], np.flatnonzero(characters == 10) + 1))
    rows = np.searchsorted(line_starts, tokens.starts, side="right") - 1
    columns = tokens.starts - line_starts[rows]
    return (rows + 1).astype(np.int32), (columns + 1).astype(np.int32)


def text_occurrences(text: str) -> FileOccurrences:
    """Occurrences of a file without a grammar (docs, config, ...): every one is "text"."""
    characters = _characters(text)
    tokens = _tokens(text, characters)
    if not tokens.names:
        return FileOccurrences()
    lines, columns = _located(characters, tokens)
    return FileOccurrences(tokens.names, lines, columns, ["text"] * len(tokens.names))


def syntax_occurrences(text: str, tree: Tree, language: Language) -> FileOccurrences:
    """Occurrences of a parsed file; ``tree`` is the parse of ``text`` encoded as UTF-8
    (surrogatepass), whose rows are the text split on ``"\\n"``."""
    characters = _characters(text)
    tokens = _tokens(text, characters)
    if not tokens.names:
        return FileOccurrences()
    lengths = np.fromiter(map(len, tokens.names), np.int64, len(tokens.names))
    if characters.dtype == np.uint8:  # ASCII: the tree's byte offsets are character offsets
        starts = tokens.starts
        ends = starts + lengths
    else:  # byte offset of every character: its UTF-8 width (a surrogate takes 3), summed
        widths = 1 + (characters >= 0x80) + (characters >= 0x800) + (characters >= 0x10000)
        offsets = np.concatenate(([0], np.cumsum(widths, dtype=np.int64)))
        starts = offsets[tokens.starts]
        ends = offsets[tokens.starts + lengths]
    contexts = _sweep(_context_regions(tree, language), starts, ends)
    lines, columns = _located(characters, tokens)
    return FileOccurrences(tokens.names, lines, columns, contexts)


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


def _sweep(regions: list[_Region], starts: np.ndarray, ends: np.ndarray) -> list[Context]:
    """Context of each token (byte ranges in increasing start order): that of the innermost
    region holding all of it, "code" when none does.

    One pass over the regions (a file has far fewer than tokens) gives each its parent: the
    innermost earlier region still open where it starts. A token's candidates are then the
    last region starting at or before it and that region's ancestors; the walk up runs in
    NumPy for all tokens at once, one step per level of nesting."""
    if not regions:
        return ["code"] * len(starts)
    region_starts = np.fromiter((region[0] for region in regions), np.int64, len(regions))
    region_ends = np.fromiter((region[1] for region in regions), np.int64, len(regions))
    parents = np.empty(len(regions), np.int64)
    open_regions: list[int] = []
    for index, (start, _, _, _) in enumerate(regions):
        while open_regions and regions[open_regions[-1]][1] <= start:
            open_regions.pop()
        parents[index] = open_regions[-1] if open_regions else -1
        open_regions.append(index)
    holder = np.searchsorted(region_starts, starts, side="right") - 1
    pending = np.flatnonzero(holder >= 0)
    while pending.size:  # climb while the candidate ends before the token does
        short = region_ends[holder[pending]] < ends[pending]
        pending = pending[short]
        holder[pending] = parents[holder[pending]]
        pending = pending[holder[pending] >= 0]
    names: list[Context] = [region[3] for region in regions]
    names.append("code")  # holder -1: no region holds the token
    return [names[index] for index in holder.tolist()]
