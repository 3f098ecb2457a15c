"""What a navigation request can be refused with: bad arguments and paths that may not be served."""

from __future__ import annotations


class NavigationError(ValueError):
    """A navigation request cannot be answered as asked (bad name, mode, kind, line range)."""


class PathRefusedError(NavigationError):
    """A path argument may not be served. ``path`` is the argument as given (NUL bytes shown
    escaped), ``reason`` says why in words, ``code`` is a stable short name of the refusal."""

    code = "refused"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}")


class InvalidPathError(PathRefusedError):
    """Empty, or holds a NUL byte or another control character."""

    code = "invalid_path"


class PathOutsideRootError(PathRefusedError):
    """Absolute, climbs out with ``..``, or resolves (through a symlink) outside the root."""

    code = "outside_root"


class SecretFileError(PathRefusedError):
    """The indexer treats this file as a secret (``.env``, ``*.pem``, ...): never served."""

    code = "secret"


class FileNotIndexedError(PathRefusedError):
    """Not a file of the index: unknown, ignored, or skipped by the indexer (binary, ...)."""

    code = "not_indexed"


class FileGoneError(PathRefusedError):
    """An indexed file that no longer exists on disk (deleted or moved since indexing)."""

    code = "gone"
