"""The value types the chunker hands to the rest of the pipeline."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .occurrences import FileOccurrences


@dataclass(frozen=True, slots=True)
class Chunk:
    """One searchable piece of a file.

    Invariants: ``start_line``/``end_line`` are 1-based and inclusive, and ``content`` is exactly
    the source lines ``start_line..end_line`` joined with ``"\\n"`` (no trailing newline). The one
    exception is a single line longer than ``HARD_MAX_CHUNK_CHARS`` (minified code): it is cut
    into several chunks with ``start_line == end_line`` whose contents, concatenated in order,
    equal that line.
    """

    path: str
    language: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    content: str

    @property
    def embedding_text(self) -> str:
        """Text handed to the embedder: the symbol line (when any) and the content, never the
        path, so a renamed or moved file reuses its vectors."""
        if self.symbol:
            return f"{self.symbol}\n{self.content}"
        return self.content

    @property
    def content_hash(self) -> str:
        """sha256 hex digest of ``embedding_text``: the key for embedding reuse."""
        return hashlib.sha256(self.embedding_text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def chunk_id(self) -> str:
        """Stable 24-hex-digit id of this chunk at this place in this file."""
        key = f"{self.path}\0{self.start_line}\0{self.end_line}\0{self.content_hash}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Symbol:
    """One definition found in a file.

    ``line``/``column`` (1-based; the column counts characters) point at the definition's name;
    ``end_line`` is the definition's last line. ``signature`` is the source line holding the
    name, stripped and cut to ``MAX_SIGNATURE_CHARS``. ``parent`` is the qualified name of the
    enclosing scope ("" at top level); ``qualified_name`` is ``parent.name``.
    """

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


@dataclass(frozen=True, slots=True)
class ChunkedFile:
    """Everything the chunker extracted from one file.

    ``parse_errors`` counts the ERROR and MISSING nodes tree-sitter reported (0 for a clean parse
    and for text files); chunks and symbols are still produced for files with errors.
    ``occurrences`` are the file's identifier occurrences with their syntax context (see
    ``chunking.occurrences``), what reference search looks names up in.
    """

    chunks: list[Chunk]
    symbols: list[Symbol]
    parse_errors: int
    occurrences: FileOccurrences = field(default_factory=FileOccurrences)
