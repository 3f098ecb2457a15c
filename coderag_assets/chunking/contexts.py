"""Where in the syntax an occurrence sits: code, a comment, a string literal, or plain text.

Used by reference search to tell real uses of an identifier from mentions in comments, docstrings
and strings. The file is parsed with the same tree-sitter grammar the chunker uses; an identifier
inside an interpolation (`f"{name}"`, `` `${name}` ``, `"$name"`) counts as code. What the grammar
keeps as plain literal text stays "string": Rust's `format!("{name}")`, Python's quoted
annotations. Files without a grammar (docs, config, SQL, HTML, Makefiles, ...) are "text".
"""

from __future__ import annotations

from typing import Literal

from tree_sitter import Node

from .languages import SUPPORTED_AST_LANGUAGES
from .parsers import parser_for

Context = Literal["code", "comment", "string", "text"]

# Nodes that put code back inside a string literal.
_INTERPOLATION_TYPES = frozenset(
    {
        "interpolation",
        "template_substitution",
        "interpolated_expression",
        "interpolated_identifier",
        "string_interpolation",
        "embedded_expression",
        "expansion",
        "simple_expansion",
        "command_substitution",
    }
)
# Pieces of a literal's own text; any other named child of a string is code inside it (PHP's
# "{$name}" puts a variable_name right under the string).
_STRING_PARTS = ("str", "text", "content", "fragment", "escape", "start", "end", "quote")
# Literal types whose names do not say "string".
_STRING_TYPES = frozenset(
    {"char_literal", "character_literal", "rune_literal", "heredoc_body", "jsx_text"}
)


def occurrence_contexts(
    text: str, language: str | None, occurrences: list[tuple[int, int, int]]
) -> list[Context]:
    """The context of each occurrence ``(row, column, length)`` in ``text`` (0-based row and
    character column). Files without a grammar (docs, config, text) give "text" throughout."""
    if language not in SUPPORTED_AST_LANGUAGES:
        return ["text"] * len(occurrences)
    parser, _ = parser_for(language)
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))
    lines = text.split("\n")
    contexts: list[Context] = []
    for row, column, length in occurrences:
        line = lines[row] if row < len(lines) else ""
        start = len(line[:column].encode("utf-8", "surrogatepass"))
        end = start + len(line[column : column + length].encode("utf-8", "surrogatepass"))
        node = tree.root_node.descendant_for_point_range((row, start), (row, end))
        contexts.append(_context_of(node))
    return contexts


def _context_of(node: Node | None) -> Context:
    below: Node | None = None  # the node the walk came up from
    while node is not None:
        kind = node.type
        if "comment" in kind:
            return "comment"
        if kind in _INTERPOLATION_TYPES:
            return "code"
        if "string" in kind or kind in _STRING_TYPES:
            if below is not None and below.is_named and not _is_string_part(below.type):
                return "code"
            return "string"
        below, node = node, node.parent
    return "code"


def _is_string_part(kind: str) -> bool:
    return any(part in kind for part in _STRING_PARTS)
