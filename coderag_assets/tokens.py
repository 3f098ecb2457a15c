"""Code-aware tokens for BM25: identifiers are kept whole *and* split into their words.

`get_netrc_auth` → `get_netrc_auth get netrc auth`; `parseHTTPHeader2` →
`parsehttpheader2 parse http header 2`. The same function tokenizes documents and queries,
so a query for "netrc auth" and one for `get_netrc_auth` both reach the definition.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from itertools import chain

IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
# Word boundaries inside an identifier: lower→Upper, ACRONYM→Word, letter↔digit.
_CAMEL_SPLIT_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
MAX_TOKEN_CHARS = 64
WORD_TOKENS_CACHE_SIZE = 1 << 16  # distinct identifiers remembered (~10 MB at most)


def identifier_parts(identifier: str) -> list[str]:
    """Lowercased words of one identifier (snake_case, camelCase, PascalCase, digits)."""
    parts: list[str] = []
    for piece in identifier.split("_"):
        if piece:
            parts.extend(match.lower() for match in _CAMEL_SPLIT_RE.findall(piece))
    return parts


def code_tokens(text: str) -> list[str]:
    """Tokens of `text` in order: each identifier whole (lowercased), then its parts if it has >1."""
    return list(_token_stream(text))


def _token_stream(text: str) -> Iterator[str]:
    # map/chain run the loop in C: a chunk has hundreds of identifiers
    return chain.from_iterable(map(_word_tokens, IDENTIFIER_RE.findall(text)))


@functools.lru_cache(maxsize=WORD_TOKENS_CACHE_SIZE)
def _word_tokens(word: str) -> tuple[str, ...]:
    """The tokens of one identifier (see `code_tokens`). Cached: code repeats its
    identifiers, and splitting them was a third of the chunking stage's CPU."""
    if len(word) > MAX_TOKEN_CHARS:
        return ()
    whole = word.lower().strip("_") or word.lower()
    parts = identifier_parts(word)
    return (whole, *parts) if len(parts) > 1 else (whole,)


def bm25_text(text: str) -> str:
    """The space-joined token stream stored in the full-text column."""
    return " ".join(_token_stream(text))


# Words that carry no meaning in a code search query ("how is the cache evicted").
_STOPWORD_TEXT = """a about an and any are as at be been by can could do does for from has have how i if
in into is it its me my of on or our should so than that the their them then there these this those
to up was we what when where which while who why will with would you your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def stem(token: str) -> str:
    """A light English suffix stripper (plurals, -ing, -ed, agent -er, final -e), applied to
    documents and queries alike so "evicts", "evicted", "evicting" meet "evict", "caches" and
    "cached" meet "cache", and "handler" meets "handle". Short and non-alphabetic tokens are
    left alone."""
    if len(token) <= 3 or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        token = token[:-3] + "y"
    elif token.endswith(("sses", "xes", "zes", "ches", "shes")):
        token = token[:-2]
    elif token.endswith("ing") and len(token) > 5:
        token = _undouble(token[:-3])
    elif token.endswith("ed") and len(token) > 4:
        token = _undouble(token[:-2])
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    if token.endswith("er") and len(token) > 5:  # agent nouns: handler → handl(e), parser
        token = token[:-2]
    if token.endswith("e") and len(token) > 4:
        token = token[:-1]
    return token


def _undouble(token: str) -> str:
    if len(token) > 3 and token[-1] == token[-2] and token[-1] not in "lsz":
        return token[:-1]
    return token


def query_terms(query: str, *, stemmed: bool = True) -> list[str]:
    """The distinct BM25 terms of a query, in order: code tokens (a whole identifier such as
    `get_netrc_auth` next to its parts, as in documents), stemmed and without stopwords unless
    `stemmed` is False."""
    terms: list[str] = []
    for token in code_tokens(query):
        if stemmed:
            if token in STOPWORDS:
                continue
            token = stem(token)
        if token not in terms:
            terms.append(token)
    return terms
