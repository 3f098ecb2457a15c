"""Writing a file so readers see the old bytes or the new ones, never a mix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coderag_assets.store.errors import reporting_disk_full


@contextmanager
def replacing(path: Path, step: str) -> Iterator[Path]:
    """A temporary path next to `path` for the block to write: renamed over `path` when the
    block succeeds, removed when it fails (DiskFullError naming `step` when out of space)."""
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with reporting_disk_full(step, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Replace `path` with `payload` via a temporary file in its directory (removed again
    when writing fails, e.g. on a full disk), so readers see the old bytes or the new ones."""
    tmp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp_path.write_bytes(payload)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
