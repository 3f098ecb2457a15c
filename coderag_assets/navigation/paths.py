"""Confinement: which repo-relative paths and globs may be served from the indexed root."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import duckdb

from coderag_assets.files import (
    SKIP_SECRET,
    SKIP_SYMLINK,
    name_skip_reason,
)
from coderag_assets.navigation.errors import (
    FileNotIndexedError,
    InvalidPathError,
    PathOutsideRootError,
    SecretFileError,
)


def normalize_rel_path(path: str) -> str:
    """A repo-relative posix path, syntactically confined to the root (no file access).

    ``./a//b.py`` → ``a/b.py``. Raises InvalidPathError (empty, NUL or other control
    characters) or PathOutsideRootError (absolute, ``~``, a ``..`` component, a Windows
    drive).
    """
    if "\0" in path:
        raise InvalidPathError(path.replace("\0", "\\0"), "NUL byte in path")
    if any(ord(ch) < 32 for ch in path):
        raise InvalidPathError(path, "control character in path")
    candidate = path.strip()
    if not candidate:
        raise InvalidPathError(path, "empty path")
    if candidate.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", candidate):
        raise PathOutsideRootError(
            path, "absolute paths are refused; give a path relative to the indexed root"
        )
    if candidate.startswith("~"):
        raise PathOutsideRootError(
            path, "home-relative paths are refused; give a path relative to the indexed root"
        )
    parts = [
        part for part in PurePosixPath(candidate.replace("\\", "/")).parts if part not in ("", ".")
    ]
    if ".." in parts:
        raise PathOutsideRootError(path, "'..' would leave the indexed root")
    if not parts:
        raise InvalidPathError(path, "the path names the root itself, not a file")
    return "/".join(parts)


def check_glob(pattern: str) -> str:
    """A glob confined to the root (same rules as :func:`normalize_rel_path`, wildcards allowed)."""
    if "\0" in pattern:
        raise InvalidPathError(pattern.replace("\0", "\\0"), "NUL byte in glob")
    stripped = pattern.strip()
    if stripped.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", stripped):
        raise PathOutsideRootError(
            pattern, "absolute globs are refused; give a glob relative to the indexed root"
        )
    if ".." in stripped.replace("\\", "/").split("/"):
        raise PathOutsideRootError(pattern, "'..' would leave the indexed root")
    return stripped


def _indexed_language(con: duckdb.DuckDBPyConnection, rel: str) -> str:
    """The language of an indexed file; refuses secrets and files not (or not fully) indexed."""
    row = con.execute(
        "SELECT language, skip_reason, skip_detail FROM files WHERE path = ?", [rel]
    ).fetchone()
    name = rel.rpartition("/")[2]
    if name_skip_reason(name) == SKIP_SECRET or (row is not None and row[1] == SKIP_SECRET):
        raise SecretFileError(rel, "the indexer treats this file as a secret; it is never served")
    if row is None:
        raise FileNotIndexedError(
            rel, "not in the index (no such file, ignored, or not indexed yet)"
        )
    language, skip_reason, skip_detail = row
    if skip_reason == SKIP_SYMLINK:
        raise PathOutsideRootError(rel, "symlink resolving outside the indexed root")
    if skip_reason is not None:
        detail = f": {skip_detail}" if skip_detail else ""
        raise FileNotIndexedError(rel, f"skipped by the indexer ({skip_reason}{detail})")
    return language or "text"


def confine_path(con: duckdb.DuckDBPyConnection, root: Path, path: str) -> tuple[str, Path, str]:
    """Check that ``path`` may be served from ``root``; return (rel path, real path, language).

    Refused, in this order: empty / NUL / control characters (InvalidPathError); absolute,
    ``~`` and ``..`` paths (PathOutsideRootError); paths whose real location (symlinks
    resolved) is outside the root (PathOutsideRootError); secret file names, of the path or
    of a symlink's target, and files indexed as secrets (SecretFileError); files absent from
    the index or skipped by it (FileNotIndexedError).
    """
    rel = normalize_rel_path(path)
    real_root = Path(os.path.realpath(root))
    real_path = Path(os.path.realpath(real_root / rel))
    if real_path != real_root and real_root not in real_path.parents:
        raise PathOutsideRootError(rel, "resolves (through a symlink) outside the indexed root")
    if name_skip_reason(rel.rpartition("/")[2]) == SKIP_SECRET:
        raise SecretFileError(rel, "the indexer treats this file as a secret; it is never served")
    if name_skip_reason(real_path.name) == SKIP_SECRET:
        raise SecretFileError(
            rel, "points at a file the indexer treats as a secret; it is never served"
        )
    language = _indexed_language(con, rel)
    return rel, real_path, language
