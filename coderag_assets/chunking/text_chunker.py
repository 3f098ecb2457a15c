"""Line windows: the chunker for text files and the last resort for code without structure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .limits import (
    HARD_MAX_CHUNK_CHARS,
    MAX_CHUNK_CHARS,
    SMALL_SECTION_CHARS,
    TEXT_WINDOW_MAX_LINES,
    TEXT_WINDOW_MIN_LINES,
)
from .source_text import SourceText

_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_MARKDOWN_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass(frozen=True, slots=True)
class Window:
    """Rows ``first_row..last_row`` (0-based, inclusive) of a file. ``char_slice`` is set only
    for a piece of one overlong row: the ``(start, stop)`` character range of that row."""

    first_row: int
    last_row: int
    char_slice: tuple[int, int] | None = None


def line_windows(
    source: SourceText,
    first_row: int,
    last_row: int,
    max_chars: int = MAX_CHUNK_CHARS,
    max_lines: int | None = None,
    min_lines_before_blank_break: int | None = None,
) -> list[Window]:
    """Cut rows ``first_row..last_row`` into consecutive windows of at most ``max_chars``
    characters (and ``max_lines`` rows when given), covering every row exactly once.

    A window preferably ends at a blank row in its second half; with
    ``min_lines_before_blank_break`` a blank row ends a window as soon as it has that many rows.
    A single row longer than ``HARD_MAX_CHUNK_CHARS`` is cut into ``max_chars`` character slices;
    a single row between ``max_chars`` and that limit stays one window.
    """
    windows: list[Window] = []
    start = first_row
    last_blank = -1
    row = first_row
    while row <= last_row:
        if row == start and source.size(row, row) > HARD_MAX_CHUNK_CHARS:
            length = len(source.lines[row])
            windows.extend(
                Window(row, row, (offset, min(offset + max_chars, length)))
                for offset in range(0, length, max_chars)
            )
            start = row + 1
            last_blank = -1
            row += 1
            continue
        too_big = source.size(start, row) > max_chars
        too_long = max_lines is not None and row - start + 1 > max_lines
        if row > start and (too_big or too_long):
            end = last_blank if last_blank >= start + (row - start) // 2 else row - 1
            windows.append(Window(start, end))
            start = end + 1
            last_blank = -1
            row = start
            continue
        if source.is_blank(row):
            last_blank = row
            if (
                min_lines_before_blank_break is not None
                and row - start + 1 >= min_lines_before_blank_break
            ):
                windows.append(Window(start, row))
                start = row + 1
                last_blank = -1
        row += 1
    if start <= last_row:
        windows.append(Window(start, last_row))
    return windows


@dataclass(frozen=True, slots=True)
class TextPiece:
    """A text chunk before trimming: rows, the heading it belongs to (Markdown) and its kind."""

    window: Window
    symbol: str
    kind: str


def _markdown_sections(source: SourceText) -> list[tuple[int, int, str]]:
    """``(first_row, last_row, heading)`` for each section; fenced code never holds headings."""
    sections: list[tuple[int, int, str]] = []
    section_start, heading = 0, ""
    in_fence = False
    for row, line in enumerate(source.lines):
        if _MARKDOWN_FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _MARKDOWN_HEADING.match(line)
        if match is None:
            continue
        if row > section_start:
            sections.append((section_start, row - 1, heading))
        section_start, heading = row, match.group(2).strip()
    sections.append((section_start, source.last_row, heading))
    return sections


def text_pieces(source: SourceText, language: str) -> list[TextPiece]:
    """Chunk a text file: Markdown by sections (small neighbouring sections packed together, big
    ones windowed, symbol = the section heading, kind ``"section"``), anything else by line
    windows (symbol ``""``, kind ``"text"``)."""
    if language != "markdown":
        return [
            TextPiece(window, "", "text")
            for window in line_windows(
                source,
                0,
                source.last_row,
                max_lines=TEXT_WINDOW_MAX_LINES,
                min_lines_before_blank_break=TEXT_WINDOW_MIN_LINES,
            )
        ]
    pieces: list[TextPiece] = []
    last_is_small_pack = False  # pieces[-1] consists only of small whole sections
    for first_row, last_row, heading in _markdown_sections(source):
        size = source.size(first_row, last_row)
        small = size < SMALL_SECTION_CHARS
        if (
            small
            and last_is_small_pack
            and source.size(pieces[-1].window.first_row, last_row) <= MAX_CHUNK_CHARS
        ):
            previous = pieces[-1]
            pieces[-1] = TextPiece(
                Window(previous.window.first_row, last_row), previous.symbol, "section"
            )
            continue
        last_is_small_pack = small
        if size <= MAX_CHUNK_CHARS:
            pieces.append(TextPiece(Window(first_row, last_row), heading, "section"))
            continue
        pieces.extend(
            TextPiece(window, heading, "section")
            for window in line_windows(
                source,
                first_row,
                last_row,
                max_lines=TEXT_WINDOW_MAX_LINES,
                min_lines_before_blank_break=TEXT_WINDOW_MIN_LINES,
            )
        )
    return pieces
