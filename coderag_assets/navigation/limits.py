"""Size limits of navigation answers, and the checks of limit and name arguments."""

from __future__ import annotations

import re
from typing import Literal, get_args

from coderag_assets.navigation.errors import NavigationError

#: How `find_symbols` matches a name.
SymbolMatchMode = Literal["exact", "prefix", "contains", "fuzzy"]
SYMBOL_MATCH_MODES: tuple[SymbolMatchMode, ...] = get_args(SymbolMatchMode)

DEFAULT_SYMBOL_LIMIT = 20
MAX_SYMBOL_LIMIT = 200
MAX_OUTLINE_SYMBOLS = 1_000
DEFAULT_REFERENCE_LIMIT = 100
MAX_REFERENCE_LIMIT = 1_000
DEFAULT_FILE_LIMIT = 200
MAX_FILE_LIMIT = 5_000
DEFAULT_SLICE_LINES = 400
MAX_SLICE_LINES = 2_000
MAX_SLICE_CHARS = 100_000
MAX_LINE_CHARS = 300
DEFAULT_DEFINITION_LINES = 40
MAX_NAME_CHARS = 200
FUZZY_CANDIDATES = 2_000
FUZZY_MIN_SCORE = 0.6
FUZZY_PREFILTER_SIMILARITY = 0.75
QUALIFIER_SEPARATORS = re.compile(r"\.|::|#|->")


def _check_limit(limit: int, maximum: int) -> int:
    if limit < 1:
        raise NavigationError(f"limit must be at least 1 (got {limit})")
    return min(limit, maximum)


def _check_name(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        raise NavigationError("empty name")
    if len(stripped) > MAX_NAME_CHARS:
        raise NavigationError(f"name longer than {MAX_NAME_CHARS} characters")
    if "\0" in stripped or any(ch.isspace() for ch in stripped):
        raise NavigationError(f"{stripped!r} is not an identifier (whitespace or NUL inside)")
    return stripped
