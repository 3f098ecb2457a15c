"""One tree-sitter parser and Language per grammar per process (parsers are not thread-safe:
the pipeline runs workers as processes)."""

from __future__ import annotations

from tree_sitter import Language, Parser
from tree_sitter_language_pack import get_language, get_parser

_PARSERS: dict[str, Parser] = {}
_LANGUAGES: dict[str, Language] = {}


def parser_for(language: str) -> tuple[Parser, Language]:
    """The parser and Language of a grammar name from ``SUPPORTED_AST_LANGUAGES``."""
    parser = _PARSERS.get(language)
    if parser is None:
        parser = get_parser(language)  # type: ignore[arg-type]
        _PARSERS[language] = parser
        _LANGUAGES[language] = get_language(language)  # type: ignore[arg-type]
    return parser, _LANGUAGES[language]
