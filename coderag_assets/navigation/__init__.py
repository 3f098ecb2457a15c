"""Symbol navigation over a published index: definitions, outlines, references, files.

Plain, typed functions over a read-only DuckDB connection to one published index
(:func:`coderag_assets.store.connect_index`); no Dagster. The CLI (`coderag symbols`,
`coderag refs`) and the MCP server call them.

* :func:`find_symbols` — definitions by name (exact, prefix, contains or fuzzy).
* :func:`list_symbols` — the outline of one file in source order.
* :func:`find_references` — identifier-level occurrences of a name: ``get`` never matches
  ``get_netrc_auth`` or ``target``. Occurrences come from the indexed chunk texts, so line
  numbers agree with the index; each says whether it is a definition.
* :func:`list_files` — indexed files by glob and language.
* :func:`get_file` — a line range of one indexed file, read from disk and confined to the
  root (see :func:`confine_path`).

Every result has a size limit and says when it was cut (``truncated``). Bad arguments raise
:class:`NavigationError`; paths that may not be read raise a :class:`PathRefusedError`
subclass naming the path and the reason.

Modules: :mod:`.records` (the answers' records), :mod:`.errors`, :mod:`.limits`,
:mod:`.symbols`, :mod:`.references`, :mod:`.paths` (confinement), :mod:`.files` (listing and
reading files). This package re-exports their public names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
    from coderag_assets.navigation.errors import (
        FileGoneError,
        FileNotIndexedError,
        InvalidPathError,
        NavigationError,
        PathOutsideRootError,
        PathRefusedError,
        SecretFileError,
    )
    from coderag_assets.navigation.files import get_file, list_files
    from coderag_assets.navigation.limits import (
        DEFAULT_DEFINITION_LINES,
        DEFAULT_FILE_LIMIT,
        DEFAULT_REFERENCE_LIMIT,
        DEFAULT_SLICE_LINES,
        DEFAULT_SYMBOL_LIMIT,
        FUZZY_MIN_SCORE,
        MAX_FILE_LIMIT,
        MAX_LINE_CHARS,
        MAX_OUTLINE_SYMBOLS,
        MAX_REFERENCE_LIMIT,
        MAX_SLICE_CHARS,
        MAX_SLICE_LINES,
        MAX_SYMBOL_LIMIT,
        SYMBOL_MATCH_MODES,
        SymbolMatchMode,
    )
    from coderag_assets.navigation.paths import check_glob, confine_path, normalize_rel_path
    from coderag_assets.navigation.records import (
        DefinitionHeader,
        FileListing,
        FileOutline,
        FileSlice,
        IndexedFile,
        OutlineSymbol,
        Reference,
        ReferenceMatches,
        SymbolInfo,
        SymbolMatches,
    )
    from coderag_assets.navigation.references import (
        _scan_references,
        find_references,
        identifier_of,
        identifier_pattern,
    )
    from coderag_assets.navigation.symbols import (
        definition_source,
        definition_sources,
        enclosing_definitions,
        find_symbols,
        fuzzy_score,
        indexed_lines,
        list_symbols,
        symbol_kinds,
    )

#: Where each re-exported name lives: importing the package loads none of its modules, so
#: `coderag index` (whose parser names navigation's limits) does not import search, pydantic
#: and DuckDB readers it never uses; a name's module loads when the name is first used.
_HOME: dict[str, str] = {
    "FileGoneError": "errors",
    "FileNotIndexedError": "errors",
    "InvalidPathError": "errors",
    "NavigationError": "errors",
    "PathOutsideRootError": "errors",
    "PathRefusedError": "errors",
    "SecretFileError": "errors",
    "get_file": "files",
    "list_files": "files",
    "DEFAULT_DEFINITION_LINES": "limits",
    "DEFAULT_FILE_LIMIT": "limits",
    "DEFAULT_REFERENCE_LIMIT": "limits",
    "DEFAULT_SLICE_LINES": "limits",
    "DEFAULT_SYMBOL_LIMIT": "limits",
    "FUZZY_MIN_SCORE": "limits",
    "MAX_FILE_LIMIT": "limits",
    "MAX_LINE_CHARS": "limits",
    "MAX_OUTLINE_SYMBOLS": "limits",
    "MAX_REFERENCE_LIMIT": "limits",
    "MAX_SLICE_CHARS": "limits",
    "MAX_SLICE_LINES": "limits",
    "MAX_SYMBOL_LIMIT": "limits",
    "check_glob": "paths",
    "confine_path": "paths",
    "normalize_rel_path": "paths",
    "DefinitionHeader": "records",
    "FileListing": "records",
    "FileOutline": "records",
    "FileSlice": "records",
    "IndexedFile": "records",
    "OutlineSymbol": "records",
    "Reference": "records",
    "ReferenceMatches": "records",
    "SYMBOL_MATCH_MODES": "limits",
    "SymbolInfo": "records",
    "SymbolMatchMode": "limits",
    "SymbolMatches": "records",
    "_scan_references": "references",
    "find_references": "references",
    "identifier_of": "references",
    "identifier_pattern": "references",
    "definition_source": "symbols",
    "definition_sources": "symbols",
    "enclosing_definitions": "symbols",
    "find_symbols": "symbols",
    "fuzzy_score": "symbols",
    "indexed_lines": "symbols",
    "list_symbols": "symbols",
    "symbol_kinds": "symbols",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_DEFINITION_LINES",
    "DEFAULT_FILE_LIMIT",
    "DEFAULT_REFERENCE_LIMIT",
    "DEFAULT_SLICE_LINES",
    "DEFAULT_SYMBOL_LIMIT",
    "FUZZY_MIN_SCORE",
    "MAX_FILE_LIMIT",
    "MAX_LINE_CHARS",
    "MAX_OUTLINE_SYMBOLS",
    "MAX_REFERENCE_LIMIT",
    "MAX_SLICE_CHARS",
    "MAX_SLICE_LINES",
    "MAX_SYMBOL_LIMIT",
    "SYMBOL_MATCH_MODES",
    "DefinitionHeader",
    "FileGoneError",
    "FileListing",
    "FileNotIndexedError",
    "FileOutline",
    "FileSlice",
    "IndexedFile",
    "InvalidPathError",
    "NavigationError",
    "OutlineSymbol",
    "PathOutsideRootError",
    "PathRefusedError",
    "Reference",
    "ReferenceMatches",
    "SecretFileError",
    "SymbolInfo",
    "SymbolMatchMode",
    "SymbolMatches",
    "_scan_references",
    "check_glob",
    "confine_path",
    "definition_source",
    "definition_sources",
    "enclosing_definitions",
    "find_references",
    "find_symbols",
    "fuzzy_score",
    "get_file",
    "identifier_of",
    "identifier_pattern",
    "indexed_lines",
    "list_files",
    "list_symbols",
    "normalize_rel_path",
    "symbol_kinds",
]
