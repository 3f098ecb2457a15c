"""Syntax-aware chunking: definitions become chunks, big ones are split, small ones packed.

The file is processed as nested *regions*. A region is a row range plus the syntax nodes inside
it ("items"): the module's top-level statements, or the members of a class being split. Each item
is a definition or *glue* (code outside any definition: imports, constants, fields, statements).

1. Comments/attributes directly above a definition join it; a doc block comment (`/** ... */`)
   joins it across one blank row too (JSDoc written with a blank row before the code).
2. Every item starts a *segment* that runs until the next item starts (items sharing a row share
   a segment); the first segment starts at the region's first row and the last one ends at its
   last row, so every row of the region belongs to exactly one segment.
3. A segment up to ``MAX_CHUNK_CHARS`` becomes one piece. A bigger definition is split as a
   region of its own members (a class: a header piece with the class line, docstring and fields,
   then its methods; a function: its statements), keeping its symbol and kind for its own glue.
   Bigger glue is cut into line windows at statement boundaries, and nodes without usable
   structure into plain line windows.
4. Adjacent pieces are packed while the result stays within ``MAX_CHUNK_CHARS``: glue with glue,
   and runs of small definitions (each < ``SMALL_PIECE_CHARS``: one-liners, getters) with each
   other. A packed chunk takes the symbol and kind of its first piece. Other definitions keep a
   chunk of their own, so a search hit names the definition it found.
5. Glue smaller than ``TINY_GLUE_CHARS`` that is left alone joins the previous chunk (or, when
   that is full or absent, the next one) and takes that chunk's symbol. So a split class whose
   header is just ``class Foo(Base):`` has that line lead its first method's chunk instead of
   becoming a one-line chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tree_sitter import Node

from .definitions import Definition, end_row
from .grammars import Grammar
from .limits import MAX_CHUNK_CHARS, MAX_SPLIT_DEPTH, SMALL_PIECE_CHARS, TINY_GLUE_CHARS
from .source_text import SourceText
from .text_chunker import line_windows

_DOC_BLOCK_RE = re.compile(r"\s*/\*\*(?![*/<])")


@dataclass(slots=True)
class _Item:
    """A syntax node taking part in a region: rows (0-based, inclusive) and its definition."""

    start: int
    end: int
    definition: Definition | None
    is_prefix: bool


@dataclass(slots=True)
class Piece:
    """A chunk in the making (rows 0-based, inclusive).

    ``glue``: holds no definition of its own (after packing: none of its parts does).
    ``small``: a definition below ``SMALL_PIECE_CHARS`` (after packing: every part was one).
    ``sealed``: part of a split definition, never packed with the definition's neighbours.
    ``char_slice``: a slice of one overlong row.
    """

    start: int
    end: int
    symbol: str
    kind: str
    glue: bool
    small: bool
    sealed: bool = False
    char_slice: tuple[int, int] | None = None


class AstChunker:
    """Chunks one parsed file. ``definitions_by_outer`` maps ``outer.id`` of every definition
    that is a chunk unit to the definition."""

    def __init__(
        self, source: SourceText, grammar: Grammar, definitions_by_outer: dict[int, Definition]
    ) -> None:
        self._source = source
        self._prefix_types = grammar.prefix_types
        self._definitions_by_outer = definitions_by_outer

    def pieces(self, root: Node) -> list[Piece]:
        """Pieces covering every row of the file, in order, without overlap."""
        items = self._items(root.named_children, 0)
        return self._region(items, 0, self._source.last_row, "", "block", depth=0)

    # ----------------------------------------------------------------- items

    def _items(self, nodes: Iterable[Node], depth: int) -> list[_Item]:
        """Items for ``nodes``. A big multi-row node that is not a definition is replaced by its
        children, so glue is split at statement boundaries; so is a multi-row ERROR node, which
        often wraps well-formed definitions after a syntax error."""
        items: list[_Item] = []
        source = self._source
        for node in nodes:
            definition = self._definitions_by_outer.get(node.id)
            start = node.start_point[0]
            end = end_row(node)
            if definition is not None:
                items.append(_Item(start, max(end, definition.end_row), definition, False))
                continue
            if (
                end > start
                and depth < MAX_SPLIT_DEPTH
                and node.named_child_count
                and (node.is_error or source.size(start, end) > MAX_CHUNK_CHARS)
            ):
                children = self._items(node.named_children, depth + 1)
                if not children or children[0].start > start:
                    children.insert(0, _Item(start, start, None, False))  # the node's own first row
                items.extend(children)
                continue
            items.append(_Item(start, end, None, node.type in self._prefix_types))
        return items

    def _attach_prefixes(self, items: list[_Item]) -> list[_Item]:
        """Merge comments/attributes that sit directly above a definition (no blank row between,
        not trailing code on their first row) into that definition's item. The doc comment right
        above the definition may be one blank row away when it is a `/**` block."""
        attached: list[_Item] = []
        for item in items:
            if item.definition is not None:
                first = len(attached)
                while first > 0:
                    candidate = attached[first - 1]
                    below = attached[first] if first < len(attached) else item
                    if not candidate.is_prefix or candidate.end + 1 < below.start - (
                        below is item and self._is_doc_block(candidate, below.start)
                    ):
                        break
                    if first > 1 and attached[first - 2].end >= candidate.start:
                        break
                    first -= 1
                if first < len(attached):
                    item = _Item(attached[first].start, item.end, item.definition, False)
                    del attached[first:]
            attached.append(item)
        return attached

    def _is_doc_block(self, item: _Item, definition_row: int) -> bool:
        """A `/** ... */` doc comment whose last row is followed by one blank row, then the
        definition; not a banner (`/*****`, `/**/`), a trailing member doc (`/**<`) or a file
        header (a block on the first row, or one naming a license or copyright)."""
        source = self._source
        if not (
            item.start > 0
            and item.end + 2 == definition_row
            and source.is_blank(item.end + 1)
            and _DOC_BLOCK_RE.match(source.lines[item.start]) is not None
            and source.lines[item.end].rstrip().endswith("*/")
        ):
            return False
        text = source.content(item.start, item.end).lower()
        return "@license" not in text and "copyright" not in text

    # ----------------------------------------------------------------- regions

    def _region(
        self,
        items: list[_Item],
        first_row: int,
        last_row: int,
        glue_symbol: str,
        glue_kind: str,
        depth: int,
    ) -> list[Piece]:
        """Pieces covering rows ``first_row..last_row`` (see the module docstring)."""
        segment_starts: list[int] = []
        segment_items: list[list[_Item]] = []
        covered_until = -1
        for item in self._attach_prefixes(items):
            start = max(item.start, first_row)
            if start > last_row:
                break
            if segment_items and start <= covered_until:
                segment_items[-1].append(item)
                covered_until = max(covered_until, item.end)
                continue
            segment_starts.append(start)
            segment_items.append([item])
            covered_until = item.end
        if not segment_items:
            return self._glue_pieces(first_row, last_row, glue_symbol, glue_kind)
        segment_starts[0] = first_row

        pieces: list[Piece] = []
        for index, members in enumerate(segment_items):
            start = segment_starts[index]
            end = segment_starts[index + 1] - 1 if index + 1 < len(segment_starts) else last_row
            lead = members[0].definition
            size = self._source.size(start, end)
            if lead is None:
                pieces.extend(self._glue_pieces(start, end, glue_symbol, glue_kind))
            elif size <= MAX_CHUNK_CHARS:
                small = size < SMALL_PIECE_CHARS
                pieces.append(
                    Piece(start, end, lead.qualified_name, lead.kind, glue=False, small=small)
                )
            else:
                pieces.extend(self._split_definition(lead, start, end, depth + 1))
        return self._absorb_tiny_glue(self._pack(pieces))

    def _split_definition(
        self, definition: Definition, first_row: int, last_row: int, depth: int
    ) -> list[Piece]:
        """Pieces for a definition bigger than ``MAX_CHUNK_CHARS``: a region of its members when
        it has structure spread over several rows, line windows otherwise."""
        if depth <= MAX_SPLIT_DEPTH:
            items = self._items(definition.node.named_children, depth)
            starts = {max(item.start, first_row) for item in items if item.start <= last_row}
            if len(starts) >= 2:
                pieces = self._region(
                    items,
                    first_row,
                    last_row,
                    definition.qualified_name,
                    definition.kind,
                    depth,
                )
                for piece in pieces:
                    piece.sealed = True
                return pieces
        pieces = self._glue_pieces(first_row, last_row, definition.qualified_name, definition.kind)
        for piece in pieces:
            piece.sealed = True
        return pieces

    def _glue_pieces(self, first_row: int, last_row: int, symbol: str, kind: str) -> list[Piece]:
        """One glue piece, or line windows when the rows exceed ``MAX_CHUNK_CHARS``."""
        size = self._source.size(first_row, last_row)
        if size <= MAX_CHUNK_CHARS:
            return [Piece(first_row, last_row, symbol, kind, glue=True, small=False)]
        return [
            Piece(
                window.first_row,
                window.last_row,
                symbol,
                kind,
                glue=True,
                small=False,
                char_slice=window.char_slice,
            )
            for window in line_windows(self._source, first_row, last_row)
        ]

    # ----------------------------------------------------------------- packing

    def _pack(self, pieces: list[Piece]) -> list[Piece]:
        """Merge neighbours: glue with glue, small with small, within ``MAX_CHUNK_CHARS``."""
        packed: list[Piece] = []
        for piece in pieces:
            if packed:
                last = packed[-1]
                if (
                    not last.sealed
                    and not piece.sealed
                    and last.char_slice is None
                    and piece.char_slice is None
                    and ((last.glue and piece.glue) or (last.small and piece.small))
                    and self._source.size(last.start, piece.end) <= MAX_CHUNK_CHARS
                ):
                    last.end = piece.end
                    last.glue = last.glue and piece.glue
                    last.small = last.small and piece.small
                    continue
            packed.append(piece)
        return packed

    def _absorb_tiny_glue(self, pieces: list[Piece]) -> list[Piece]:
        """Fold lone tiny glue into the previous piece, or the next one at a region's start."""
        if len(pieces) < 2:
            return pieces
        size = self._source.size
        result: list[Piece] = []
        waiting: Piece | None = None  # tiny glue to prepend to the next piece
        for index, piece in enumerate(pieces):
            if waiting is not None:
                if piece.char_slice is None and size(waiting.start, piece.end) <= MAX_CHUNK_CHARS:
                    piece.start = waiting.start
                else:
                    result.append(waiting)
                waiting = None
            tiny = (
                piece.glue
                and not piece.sealed
                and piece.char_slice is None
                and size(piece.start, piece.end) < TINY_GLUE_CHARS
            )
            if tiny:
                previous = result[-1] if result else None
                if (
                    previous is not None
                    and previous.char_slice is None
                    and size(previous.start, piece.end) <= MAX_CHUNK_CHARS
                ):
                    previous.end = piece.end
                    continue
                if index + 1 < len(pieces):
                    waiting = piece
                    continue
            result.append(piece)
        if waiting is not None:
            result.append(waiting)
        return result
