"""Line-indexed view of one file's text: O(1) sizes and contents of line ranges."""

from __future__ import annotations

from itertools import accumulate


class SourceText:
    """A file's text split on ``"\\n"`` (the same rows tree-sitter counts).

    Rows are 0-based here; the public types convert to 1-based lines. ``size(a, b)`` and
    ``content(a, b)`` cover rows ``a..b`` inclusive, joined with ``"\\n"``.
    """

    __slots__ = ("_offsets", "lines", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        # _offsets[i] = index in text where row i starts; the sentinel makes row ranges uniform.
        self._offsets = [0, *accumulate(len(line) + 1 for line in self.lines)]

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
        """1-based character column of a UTF-8 byte offset within ``row``."""
        line = self.lines[row] if 0 <= row < len(self.lines) else ""
        if line.isascii():
            return byte_column + 1
        prefix = line.encode("utf-8", "surrogatepass")[:byte_column]
        return len(prefix.decode("utf-8", "ignore")) + 1
