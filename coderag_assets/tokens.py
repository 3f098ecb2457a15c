"""Code-aware tokens for BM25: identifiers are kept whole *and* split into their words.

`get_netrc_auth` → `get_netrc_auth get netrc auth`; `parseHTTPHeader2` →
`parsehttpheader2 parse http header 2`. The same function tokenizes documents and queries,
so a query for "netrc auth" and one for `get_netrc_auth` both reach the definition.
"""

from __future__ import annotations

import re

IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
# Word boundaries inside an identifier: lower→Upper, ACRONYM→Word, letter↔digit.
_CAMEL_SPLIT_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
MAX_TOKEN_CHARS = 64


def identifier_parts(identifier: str) -> list[str]:
    """Lowercased words of one identifier (snake_case, camelCase, PascalCase, digits)."""
    parts: list[str] = []
    for piece in identifier.split("_"):
        if piece:
            parts.extend(match.lower() for match in _CAMEL_SPLIT_RE.findall(piece))
    return parts


def code_tokens(text: str) -> list[str]:
    """Tokens of `text` in order: each identifier whole (lowercased), then its parts if it has >1."""
    tokens: list[str] = []
    for match in IDENTIFIER_RE.finditer(text):
        word = match.group(0)
        if len(word) > MAX_TOKEN_CHARS:
            continue
        whole = word.lower().strip("_") or word.lower()
        tokens.append(whole)
        parts = identifier_parts(word)
        if len(parts) > 1:
            tokens.extend(parts)
    return tokens


def bm25_text(text: str) -> str:
    """The space-joined token stream stored in the full-text column."""
    return " ".join(code_tokens(text))
