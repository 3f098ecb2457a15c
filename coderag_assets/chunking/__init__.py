"""Tree-sitter chunking and symbol extraction for CodeRAG (Dagster-free, plain functions).

``chunk_file(path, text, language)`` turns one file into :class:`Chunk` s (the unit that is
embedded and searched) and :class:`Symbol` s (every definition, for symbol search). Code in
``SUPPORTED_AST_LANGUAGES`` is chunked along its syntax tree, one definition per chunk where sizes
allow; everything else is chunked as text. See ``ast_chunker`` for the split/pack rules and
``grammars`` for the per-language node tables.
"""

from __future__ import annotations

from .chunker import chunk_file
from .languages import SUPPORTED_AST_LANGUAGES, TEXT_LANGUAGES, language_for_path
from .limits import CHUNKER_VERSION, HARD_MAX_CHUNK_CHARS, MAX_CHUNK_CHARS
from .model import Chunk, ChunkedFile, Symbol
from .occurrences import FileOccurrences

__all__ = [
    "CHUNKER_VERSION",
    "HARD_MAX_CHUNK_CHARS",
    "MAX_CHUNK_CHARS",
    "SUPPORTED_AST_LANGUAGES",
    "TEXT_LANGUAGES",
    "Chunk",
    "ChunkedFile",
    "FileOccurrences",
    "Symbol",
    "chunk_file",
    "language_for_path",
]
