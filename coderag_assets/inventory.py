"""Every index in a data directory, and removing the ones nobody needs (`coderag status --all`,
`coderag prune`).

A data directory holds one index per indexed root (`store.IndexStore`). When a root is moved
or deleted its index stays behind; :func:`list_indexes` shows each index with its root (and
whether that still exists), live version, chunk count, size on disk and last publish, read
from the version's manifest (no chunk is opened). :func:`prune_indexes` removes the indexes
whose roots are gone, or the ones named explicitly. Removing one holds its root's update lock
(an update of that root cannot be running) and its writer lock (no publish is running), and
is refused while a live reader holds one of its versions (a `coderag serve`, a warm search).
The directory is renamed out of the way before it is deleted, so a command looking for
indexes never sees half of one.

Plain module: no Dagster, no CLI.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from coderag_assets.disk_space import disk_bytes
from coderag_assets.model_cache import MODELS_DIR, remove_abandoned_conversions
from coderag_assets.segments import collect_garbage, held_versions, read_current
from coderag_assets.segments.layout import READERS_DIR
from coderag_assets.store import (
    INDEXES_DIR,
    UPDATE_LOCK_FILE,
    WRITER_LOCK_FILE,
    IndexNotFoundError,
    IndexStore,
)

PRUNING_PREFIX = ".pruning-"  # an index being removed (renamed away first)


@dataclass(frozen=True)
class IndexEntry:
    """One index of the data directory. `root` is None when its root record is unreadable
    (an index whose first run died before recording it); `version` and the counts are None
    when nothing was published."""

    base: Path
    root: Path | None
    root_exists: bool
    version: int | None
    files: int | None
    chunks: int | None
    published_at: float | None
    disk_bytes: int

    @property
    def orphaned(self) -> bool:
        """Nobody can use it: its root is gone (or unknown)."""
        return not self.root_exists

    def to_json(self) -> dict[str, object]:
        return {
            "index_dir": str(self.base),
            "root": str(self.root) if self.root is not None else None,
            "root_exists": self.root_exists,
            "version": self.version,
            "files": self.files,
            "chunks": self.chunks,
            "published_at": self.published_at,
            "disk_bytes": self.disk_bytes,
        }


def list_indexes(data_dir: Path) -> list[IndexEntry]:
    """Every index under `data_dir`, sorted by root (unknown roots last)."""
    directory = data_dir / INDEXES_DIR
    if not directory.is_dir():
        return []
    entries = [
        _entry(base)
        for base in directory.iterdir()
        if base.is_dir() and not base.name.startswith(".")
    ]
    return sorted(entries, key=lambda e: (e.root is None, str(e.root or ""), str(e.base)))


def _entry(base: Path) -> IndexEntry:
    root = _recorded_root(base)
    version = files = chunks = None
    published_at = None
    try:
        current = read_current(base)
    except (IndexNotFoundError, OSError, ValueError, KeyError):
        pass
    else:
        version = current.version
        totals = current.meta.get("totals")
        if isinstance(totals, dict):
            files, chunks = int(totals.get("files", 0)), int(totals.get("chunks", 0))
        stamp = current.meta.get("published_at")
        published_at = float(stamp) if isinstance(stamp, int | float | str) else None
    return IndexEntry(
        base=base,
        root=root,
        root_exists=root is not None and root.is_dir(),
        version=version,
        files=files,
        chunks=chunks,
        published_at=published_at,
        disk_bytes=disk_bytes(base),
    )


def _recorded_root(base: Path) -> Path | None:
    try:
        return Path(json.loads((base / "root.json").read_text())["root"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prunable_bytes(data_dir: Path) -> int:
    """Bytes held by the indexes whose roots no longer exist (what `coderag prune` frees)."""
    return sum(entry.disk_bytes for entry in list_indexes(data_dir) if entry.orphaned)


class PruneRefusedError(RuntimeError):
    """An index cannot be removed now (being updated, published or read); says which and why."""


@dataclass(frozen=True)
class PruneResult:
    """What `prune_indexes` removed (or, on a dry run, would remove) and what it left."""

    removed: list[IndexEntry]
    refused: dict[Path, str]  # index directory -> why it was left
    dry_run: bool
    reclaimed_bytes: int = 0  # what garbage collection freed in the indexes that stay

    @property
    def freed_bytes(self) -> int:
        return sum(entry.disk_bytes for entry in self.removed) + self.reclaimed_bytes


def select_for_pruning(entries: Sequence[IndexEntry], roots: Sequence[Path]) -> list[IndexEntry]:
    """The entries `prune` removes: those whose root is gone, or (when `roots` are named)
    exactly the indexes of those roots, whether they exist or not. A named root without an
    index is a ValueError."""
    if not roots:
        return [entry for entry in entries if entry.orphaned]
    wanted = {_normalized(root) for root in roots}
    chosen = [e for e in entries if e.root is not None and _normalized(e.root) in wanted]
    missing = wanted - {_normalized(e.root) for e in chosen if e.root is not None}
    if missing:
        listed = ", ".join(sorted(missing))
        raise ValueError(
            f"no index of {listed} in this data directory (see `coderag status --all`)"
        )
    return chosen


def _normalized(root: Path) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(root)))


def prune_indexes(
    data_dir: Path,
    *,
    roots: Sequence[Path] = (),
    dry_run: bool = False,
    in_use: Callable[[IndexEntry], str | None] | None = None,
) -> PruneResult:
    """Remove the indexes of `roots` (named explicitly: even if the root exists), or with no
    `roots` every index whose root no longer exists. An index being updated, published or
    read, or one `in_use` (called holding its locks) gives a reason for, is left and reported
    in `refused`; `dry_run` removes nothing. What a killed prune left (renamed, not yet
    deleted) goes too, and every index that stays gets the garbage collection a publish runs
    (`segments.collect_garbage`: old versions, killed writers' leftovers), so a full disk can
    be relieved without publishing; an index in use is skipped there. Work directories of
    killed model conversions go as well."""
    removed: list[IndexEntry] = []
    refused: dict[Path, str] = {}
    if not dry_run:
        for leftover in leftover_prunings(data_dir):
            shutil.rmtree(leftover, ignore_errors=True)
    for entry in select_for_pruning(list_indexes(data_dir), roots):
        try:
            with _exclusive(entry.base):
                reason = in_use(entry) if in_use is not None else None
                if reason:
                    raise PruneRefusedError(reason)
                if not dry_run:
                    _remove(entry.base)
        except PruneRefusedError as error:
            refused[entry.base] = str(error)
            continue
        removed.append(entry)
    reclaimed = 0
    if not dry_run:
        models_dir = data_dir / MODELS_DIR
        before = disk_bytes(models_dir)
        if remove_abandoned_conversions(models_dir):
            reclaimed += max(0, before - disk_bytes(models_dir))
        chosen = {entry.base for entry in removed} | set(refused)
        for entry in list_indexes(data_dir):
            if entry.base not in chosen and entry.root is not None:
                reclaimed += _collect_garbage(entry)
    return PruneResult(removed=removed, refused=refused, dry_run=dry_run, reclaimed_bytes=reclaimed)


def _collect_garbage(entry: IndexEntry) -> int:
    """Run the publish's garbage collection on an index nobody is updating; bytes freed."""
    assert entry.root is not None
    try:
        with _exclusive(entry.base):
            collect_garbage(IndexStore(entry.base, entry.root))
    except PruneRefusedError:
        return 0  # in use: its next publish collects
    return max(0, entry.disk_bytes - disk_bytes(entry.base))


@contextmanager
def _exclusive(base: Path) -> Iterator[None]:
    """Hold the index's update and writer locks without waiting; PruneRefusedError when
    either is taken or a live reader holds a version."""
    with ExitStack() as stack:
        update_lock = FileLock(str(base / UPDATE_LOCK_FILE))
        try:
            update_lock.acquire(timeout=0)
        except Timeout as error:
            raise PruneRefusedError("an update of this root is running") from error
        stack.callback(update_lock.release)
        writer = stack.enter_context(open(base / WRITER_LOCK_FILE, "a"))
        try:
            fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise PruneRefusedError("a new version of this index is being published") from error
        readers = held_versions(base)
        if readers:
            pids = sorted(_reader_pids(base))
            raise PruneRefusedError(
                f"a live reader holds version(s) {', '.join(map(str, sorted(readers)))} "
                f"(process {', '.join(pids) or 'unknown'}); stop it first"
            )
        yield


def _reader_pids(base: Path) -> set[str]:
    """Process ids in the names of the lease files (`<version>.<pid>.<id>.lease`)."""
    return {
        path.name.split(".")[1]
        for path in (base / READERS_DIR).glob("*.lease")
        if len(path.name.split(".")) > 2
    }


def _remove(base: Path) -> None:
    """Rename the index directory away (atomic: nobody sees half an index), then delete it."""
    doomed = base.with_name(f"{PRUNING_PREFIX}{base.name}-{uuid.uuid4().hex[:8]}")
    os.rename(base, doomed)
    shutil.rmtree(doomed)


def leftover_prunings(data_dir: Path) -> list[Path]:
    """Directories of a prune that was killed between its rename and its delete."""
    return sorted((data_dir / INDEXES_DIR).glob(f"{PRUNING_PREFIX}*"))
