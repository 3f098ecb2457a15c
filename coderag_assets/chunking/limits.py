"""Size limits and the chunker version: the numbers every chunking rule is measured against."""

from __future__ import annotations

#: Bump whenever chunk boundaries, symbols or kinds produced for the same input change.
CHUNKER_VERSION = "ts-4"

#: Target upper bound for one chunk, in characters. The embedder keeps 256 word pieces, which
#: code fills at roughly 900-1500 characters; definitions above this size are split.
MAX_CHUNK_CHARS = 1500

#: No chunk may exceed this, whatever its structure (minified code, giant literals): such chunks
#: are cut into line windows, and single lines longer than this into character slices.
HARD_MAX_CHUNK_CHARS = 4 * MAX_CHUNK_CHARS

#: Definitions below this size (one-liners, getters) are packed with adjacent ones of their kind
#: of size; larger definitions always get a chunk of their own.
SMALL_PIECE_CHARS = MAX_CHUNK_CHARS // 10

#: Markdown sections below this size are packed with adjacent small sections.
SMALL_SECTION_CHARS = MAX_CHUNK_CHARS // 4

#: Glue (code outside any definition) below this size is folded into a neighbouring chunk
#: instead of becoming a chunk of its own.
TINY_GLUE_CHARS = MAX_CHUNK_CHARS // 15

#: Line windows for text files: at most this many lines, and a blank line after at least
#: ``TEXT_WINDOW_MIN_LINES`` lines ends a window early.
TEXT_WINDOW_MAX_LINES = 60
TEXT_WINDOW_MIN_LINES = 40

#: Symbol signatures (one source line) are cut to this many characters.
MAX_SIGNATURE_CHARS = 240

#: Guard against pathological nesting: deeper structure is treated as opaque text.
MAX_SPLIT_DEPTH = 48
