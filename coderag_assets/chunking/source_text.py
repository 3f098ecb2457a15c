"""Line-indexed view of one file's text: O(1) sizes and contents of line ranges."""

from __future__ import annotations

import re
from itertools import accumulate

_NON_SPACE = re.compile(r"\S")


class SourceText:
    """A file's text split on ``"\\n"`` (the same rows tree-sitter counts).

    Rows are 0-based here; the public types convert to 1-based lines. ``size(a, b)`` and
    ``content(a, b)`` cover rows ``a..b`` inclusive, joined with ``"\\n"``.
    """

    __slots__ = (
        "_column_byte",
        "_column_bytes",
        "_column_char",
        "_column_row",
        "_offsets",
        "lines",
        "text",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        # _offsets[i] = index in text where row i starts; the sentinel makes row ranges uniform.
        self._offsets = [0, *accumulate(len(line) + 1 for line in self.lines)]
        # char_column's cursor: the row it last converted, that row's UTF-8 bytes (None when the
        # row is ASCII), and the last byte offset converted with its character offset.
        self._column_row = -1
        self._column_bytes: bytes | None = None
        self._column_byte = 0
        self._column_char = 0

    @property
    def last_row(self) -> int:
        """Index of the last row (a trailing newline yields a final empty row)."""
        return len(self.lines) - 1

    def size(self, first_row: int, last_row: int) -> int:
        """Number of characters in rows ``first_row..last_row`` joined with newlines."""
        return self._offsets[last_row + 1] - self._offsets[first_row] - 1

    def content(self, first_row: int, last_row: int) -> str:
        """Exact text of rows ``first_row..last_row`` joined with newlines."""
        return self.text[self._offsets[first_row] : self._offsets[last_row + 1] - 1]

    def is_blank(self, row: int) -> bool:
        """True when the row holds only whitespace."""
        return not self.lines[row].strip()

    def char_column(self, row: int, byte_column: int) -> int:
        """1-based character column of a UTF-8 byte offset within ``row``.

        Calls for increasing columns of one row cost only the bytes between them, so naming every
        symbol of a minified one-line file stays linear.
        """
        if row != self._column_row:
            line = self.lines[row] if 0 <= row < len(self.lines) else ""
            self._column_row = row
            self._column_bytes = None if line.isascii() else line.encode("utf-8", "surrogatepass")
            self._column_byte, self._column_char = 0, 0
        encoded = self._column_bytes
        if encoded is None:
            return byte_column + 1
        if byte_column < self._column_byte:
            self._column_byte, self._column_char = 0, 0
        step = encoded[self._column_byte : byte_column].decode("utf-8", "ignore")
        self._column_char += len(step)
        self._column_byte = byte_column
        return self._column_char + 1

    def signature(self, row: int, max_chars: int) -> str:
        """Row ``row`` without surrounding whitespace, cut to ``max_chars`` (linear in the result,
        not the row: minified rows are megabytes long)."""
        line = self.lines[row]
        first = _NON_SPACE.search(line)
        if first is None:
            return ""
        return line[first.start() : first.start() + max_chars].rstrip()
