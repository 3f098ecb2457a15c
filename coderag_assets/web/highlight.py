"""Syntax highlighting for the web page: Pygments tokens → escaped HTML, one string per line.

Every character of the source is escaped (a file holding ``<script>`` renders as text); query
terms are wrapped in ``<mark>``; identifiers that name an indexed definition can be turned
into links (``link_names``). Lines are returned separately so the page can number them, mark
hit lines and anchor each one (``#L12``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import lru_cache

from markupsafe import Markup, escape
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.token import STANDARD_TYPES, Name, _TokenType
from pygments.util import ClassNotFound

PYGMENTS_STYLE = "default"
MIN_TERM_CHARS = 2
MAX_TERMS = 20
MAX_HIGHLIGHT_CHARS = 400_000  # above this, text is shown escaped but not lexed
TOKEN_CACHE_ENTRIES = 32
_QUERY_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
    }
)


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """CSS for the token classes, scoped to ``.code`` elements."""
    return HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".code")


def _lexer(path: str, language: str) -> Lexer:
    options = {"stripnl": False, "ensurenl": False, "stripall": False}
    try:
        return get_lexer_for_filename(path, **options)
    except ClassNotFound:
        pass
    try:
        return get_lexer_by_name(language, **options)
    except ClassNotFound:
        return TextLexer(**options)


def _css_class(token_type: _TokenType) -> str:
    while token_type not in STANDARD_TYPES:
        token_type = token_type.parent
    return STANDARD_TYPES[token_type]


def query_terms(query: str) -> list[str]:
    """The words of a query worth marking in results: identifiers and words of at least
    :data:`MIN_TERM_CHARS` characters that are not stopwords, plus the parts of snake_case
    and camelCase identifiers; longest first."""
    terms: set[str] = set()
    for word in re.findall(r"\w+", query):
        parts = {word, *re.split(r"_+", word)}
        parts |= set(re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", word))
        for part in parts:
            if len(part) >= MIN_TERM_CHARS and part.lower() not in _QUERY_STOPWORDS:
                terms.add(part.lower())
    return sorted(terms, key=lambda term: (-len(term), term))[:MAX_TERMS]


def term_pattern(terms: Collection[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    return re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)


def _marked(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None:
        return str(escape(text))
    pieces: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append(str(escape(text[position : match.start()])))
        pieces.append(f"<mark>{escape(match.group())}</mark>")
        position = match.end()
    pieces.append(str(escape(text[position:])))
    return "".join(pieces)


Tokens = list[tuple[_TokenType, str]]


@lru_cache(maxsize=TOKEN_CACHE_ENTRIES)
def tokenize(text: str, path: str, language: str) -> Tokens | None:
    """Pygments tokens of ``text`` (lexer chosen by file name, then language), or None when
    the text is too large to lex (:data:`MAX_HIGHLIGHT_CHARS`). Lexing is the file view's
    main cost (~0.1 s per 2,000 lines of Python), so the last few texts' tokens are kept:
    keyed by the text itself, an edited file is lexed again."""
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return None
    return list(_lexer(path, language).get_tokens(text))


def identifiers(tokens: Tokens | None) -> set[str]:
    """The Name tokens (candidates for definition links)."""
    return {
        value for token_type, value in tokens or () if token_type in Name and value.isidentifier()
    }


def highlight_lines(
    text: str,
    path: str,
    language: str,
    *,
    terms: Collection[str] = (),
    link_names: Callable[[str], str | None] | None = None,
    tokens: Tokens | None = None,
) -> list[Markup]:
    """``text`` as highlighted HTML, one Markup per source line (``text.split("\\n")``).

    ``terms`` are marked case-insensitively; ``link_names(name)`` returns a URL for an
    identifier that should link somewhere (its definition) or None. ``tokens`` (from
    :func:`tokenize` of the same text) saves lexing twice."""
    pattern = term_pattern(terms)
    line_count = len(text.split("\n"))
    if tokens is None:
        tokens = tokenize(text, path, language)
    if tokens is None:
        return [Markup(_marked(line, pattern)) for line in text.split("\n")]
    lines: list[list[str]] = [[]]
    for token_type, value in tokens:
        css = _css_class(token_type)
        url = (
            link_names(value)
            if link_names is not None and token_type in Name and value.isidentifier()
            else None
        )
        for index, piece in enumerate(value.split("\n")):
            if index:
                lines.append([])
            if not piece:
                continue
            inner = _marked(piece, pattern)
            if url is not None:
                inner = f'<a class="def" href="{escape(url)}">{inner}</a>'
            lines[-1].append(f'<span class="{css}">{inner}</span>' if css else inner)
    rendered = [Markup("".join(parts)) for parts in lines[:line_count]]
    rendered.extend(Markup("") for _ in range(line_count - len(rendered)))
    return rendered
