"""Per-chunk ranking features, computed once when a segment is written and stored with it.

Search reads these as columns (see `segments`), so opening an index runs no Python loop over
its chunks. The functions are the definitions: `search` re-exports them and the tests pin them.
"""

from __future__ import annotations

import re

import numpy as np

from coderag_assets.tokens import STOPWORDS, code_tokens, identifier_parts, stem

_TEST_PATH_RE = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)/|(^|/)test_[^/]*$|_test\.[^/]+$|\.(test|spec)\.[^/]+$"
)


def name_words(symbol: str) -> frozenset[str]:
    """Stemmed words of a definition's own name (the last part of `Class.method`)."""
    name = symbol.rsplit(".", 1)[-1]
    return frozenset(stem(part) for part in identifier_parts(name) if part not in STOPWORDS)


def name_tokens(symbol: str) -> list[str]:
    """BM25 tokens of a definition's own name; each counts `RankingConfig.bm25_name_tf` extra."""
    return code_tokens(symbol.rsplit(".", 1)[-1])


def file_words(path: str) -> frozenset[str]:
    """Stemmed words of a file name without its extension (`ranges/max-satisfying.js` →
    {max, satisfy}); `index`/`__init__`/`mod` files are named by their directory."""
    parts = path.split("/")
    stem_name = parts[-1].split(".", 1)[0]
    if stem_name in {"index", "__init__", "mod", "main", "lib"} and len(parts) > 1:
        stem_name = parts[-2]
    words = [w for piece in re.split(r"[-\s]+", stem_name) for w in identifier_parts(piece)]
    return frozenset(stem(w) for w in words if w not in STOPWORDS)


def is_test_path(path: str) -> bool:
    """True for test code: a `test`/`tests`/`__tests__`/`spec` directory, `test_*`, `*_test.*`,
    `*.test.*`, `*.spec.*`."""
    return _TEST_PATH_RE.search(path) is not None


def non_code_languages() -> frozenset[str]:
    """Languages demoted as docs/config (Markdown, reST, text, YAML, JSON, ...)."""
    from coderag_assets.chunking import TEXT_LANGUAGES  # the chunker is not needed to search

    return frozenset(TEXT_LANGUAGES) | {"text"}


def definition_runs(paths: list[str], symbols: list[str]) -> np.ndarray:
    """Run id per chunk (chunks in path/line order): consecutive chunks with the same path and
    symbol — the pieces of one split definition, or adjacent windows of one text — share it."""
    runs = np.zeros(len(paths), dtype=np.int64)
    for row in range(1, len(paths)):
        same = paths[row] == paths[row - 1] and symbols[row] == symbols[row - 1]
        runs[row] = runs[row - 1] if same else runs[row - 1] + 1
    return runs
