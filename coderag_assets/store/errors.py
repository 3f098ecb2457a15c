"""Errors of the index store, and the disk-full reporting every writer shares."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class IndexNotFoundError(FileNotFoundError):
    """No published index exists for the requested root; the message says how to create one."""


class IndexValidationError(RuntimeError):
    """A freshly built index failed a check; it was not published. `outcomes` holds the checks."""

    def __init__(self, outcomes: list[CheckOutcome]):
        self.outcomes = outcomes
        failed = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if not o.passed)
        super().__init__(f"index not published, checks failed: {failed}")


class DiskFullError(OSError):
    """Writing the index ran out of disk space (or quota) while `step`, at `path`. What was
    half written is removed; a publish that fails so leaves the last version live."""

    def __init__(self, step: str, path: Path):
        self.step = step
        self.path = path
        super().__init__(
            f"disk full while {step} ({path}); free some space and run `coderag index` again"
        )


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """True for an out-of-space error from the OS, Arrow (an OSError with its errno) or DuckDB
    (an IOException, or a FatalException when a CHECKPOINT cannot write)."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    return isinstance(error, duckdb_errors()) and "No space left on device" in str(error)


def duckdb_errors() -> tuple[type[BaseException], ...]:
    """DuckDB's error class once DuckDB is loaded (only then can one be raised); modules that
    use DuckDB import it where they use it, so a chunking worker never loads it (-47 MiB)."""
    duckdb = sys.modules.get("duckdb")
    return (duckdb.Error,) if duckdb is not None else ()


@contextmanager
def reporting_disk_full(step: str, path: Path) -> Iterator[None]:
    """Raise DiskFullError naming `step` and `path` when the block runs out of disk space
    (other errors pass unchanged). Cleaning up what the block half wrote is the block's job."""
    try:
        yield
    except (OSError, *duckdb_errors()) as error:
        if isinstance(error, DiskFullError) or not is_disk_full(error):
            raise
        raise DiskFullError(step, path) from error


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
