"""A full file system, recognized wherever it surfaces, and described in one line.

Space can run out in three places during an update, and each reports it its own way: the
index's own writes (`store.DiskFullError`, an `OSError` with `ENOSPC`/`EDQUOT`, DuckDB's
"No space left on device"), and the Dagster instance's SQLite storage (`database or disk is
full`, or on tmpfs and some other file systems a bare `disk I/O error`). A step's error
reaches the command line only as text (Dagster serializes it), an instance-storage error as
an exception chain. :func:`find_full_disk` looks at either and returns a :class:`FullDisk`
naming the path that could not be written, its file system (mount point, type, free and
total bytes) and who was writing; :meth:`FullDisk.message` is the one line the user gets,
with what takes the space in the data directory and how to reclaim it.

Plain module: no Dagster, no CLI.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

OUT_OF_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: A SQLite "disk I/O error" counts as a full disk when its file system has less free space
#: than this (SQLite reports a failed write on tmpfs as an I/O error, not as "disk full").
NEARLY_FULL_BYTES = 64 * 1024 * 1024
INSTANCE_WRITER = "the Dagster instance's storage"
INDEX_WRITER = "the index"

_FULL_TEXT = re.compile(
    r"No space left on device|database or disk is full|Disk quota exceeded|"
    r"\[Errno (?:28|122)\]|disk full while",
    re.IGNORECASE,
)
_IO_ERROR_TEXT = re.compile(r"disk I/O error", re.IGNORECASE)
#: Paths the messages name: DiskFullError's "(path)", DuckDB's `file "path"`, OSError's 'path'.
_PATH_PATTERNS = (
    re.compile(r"disk full while .*? \((/[^()]+)\)"),
    re.compile(r"file \"(/[^\"]+)\""),
    re.compile(r"'(/[^']+)'"),
)
_STEP_TEXT = re.compile(r"disk full while (.+?) \(/")
_SQLITE_TEXT = re.compile(r"sqlite3?\.|sqlalchemy|OperationalError", re.IGNORECASE)


@dataclass(frozen=True)
class FileSystem:
    """The file system holding a path: where it is mounted, its type, free and total bytes."""

    mount_point: Path
    fs_type: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class FullDisk:
    """A write that failed for lack of space: `path` (what could not be written, or the
    directory of the storage that failed), `writer` (`INSTANCE_WRITER` or `INDEX_WRITER`) and
    the file system holding it."""

    path: Path
    writer: str
    file_system: FileSystem
    step: str = ""  # what the writer was doing (`DiskFullError.step`), when known

    def message(
        self,
        data_dir: Path | None = None,
        *,
        live_version: int | None = None,
        prunable_bytes: int = 0,
    ) -> str:
        """One line: which file system is full, who could not write where, what to free (the
        largest parts of `data_dir` on that file system; `prunable_bytes` held by indexes of
        roots that no longer exist) and that the last version stays live."""
        fs = self.file_system
        parts = [
            f"file system {fs.mount_point} ({fs.fs_type}) is full: "
            + f"{human_bytes(fs.free_bytes)} free of {human_bytes(fs.total_bytes)}; "
            + (
                f"{self.writer} (under {self.path}) could not write"
                if self.writer == INSTANCE_WRITER
                else f"{self.writer} could not write {self.path}"
                + (f" while {self.step}" if self.step else "")
            )
        ]
        usage = data_dir_usage(data_dir, fs.mount_point) if data_dir is not None else []
        if usage:
            used = max(0, fs.total_bytes - fs.free_bytes)
            largest = ", ".join(f"{name} {human_bytes(size)}" for name, size in usage[:3])
            parts.append(
                f"free space on {fs.mount_point} (the data directory {data_dir} holds "
                + f"{human_bytes(sum(size for _, size in usage))} of the "
                + f"{human_bytes(used)} used: {largest})"
            )
        else:
            parts.append(f"free space on {fs.mount_point}")
        if prunable_bytes:
            parts.append(
                f"`coderag prune` frees {human_bytes(prunable_bytes)} of indexes whose roots "
                + "no longer exist"
            )
        parts.append("then run `coderag index` again")
        parts.append(
            f"version {live_version} of the index stays live and searchable"
            if live_version is not None
            else "the last published index, if any, stays live and searchable"
        )
        return "; ".join(parts)


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def file_system_of(path: Path) -> FileSystem:
    """The file system holding `path` (or its nearest existing ancestor)."""
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    mount = existing
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    usage = shutil.disk_usage(existing)
    return FileSystem(mount, _fs_type(mount), usage.free, usage.total)


def _fs_type(mount_point: Path) -> str:
    fs_type = "unknown type"
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and _unescape_mount(fields[1]) == str(mount_point):
                    fs_type = fields[2]  # the last mount on a point is the visible one
    except OSError:
        pass
    return fs_type


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def error_texts(error: BaseException) -> Iterator[tuple[str, Path | None]]:
    """Every exception in `error`'s chain (causes and contexts) as (text, path it names)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        path = getattr(current, "path", None) or getattr(current, "filename", None)
        text = f"{type(current).__module__}.{type(current).__name__}: {current}"
        if isinstance(current, OSError) and current.errno in OUT_OF_SPACE_ERRNOS:
            text += " [Errno 28]"
        yield text, Path(path) if isinstance(path, str | os.PathLike) else None
        pending.extend([current.__cause__, current.__context__])


def find_full_disk(
    errors: BaseException | Iterable[str | tuple[str, Path | None]],
    *,
    instance_dir: Path,
) -> FullDisk | None:
    """The full file system behind `errors` (an exception chain, or the texts of a failed
    run's errors), else None.

    An error that names a path (a shard file, a segment, DuckDB's file) is the index's write;
    one from SQLite without a path is the Dagster instance's storage under `instance_dir`. A
    SQLite "disk I/O error" counts only when that file system is (nearly) full.
    """
    if isinstance(errors, BaseException):
        texts: list[tuple[str, Path | None]] = list(error_texts(errors))
    else:
        texts = [item if isinstance(item, tuple) else (item, None) for item in errors]
    full = [(text, path) for text, path in texts if _FULL_TEXT.search(text)]
    io_errors = [(text, path) for text, path in texts if _IO_ERROR_TEXT.search(text)]
    for text, path in full:
        named = path or _path_in(text)
        if named is not None and not _SQLITE_TEXT.search(text):
            step = _STEP_TEXT.search(text)
            return FullDisk(
                named,
                _writer_of(named, instance_dir),
                file_system_of(named),
                step=step.group(1) if step else "",
            )
    if full:
        return FullDisk(instance_dir, INSTANCE_WRITER, file_system_of(instance_dir))
    if io_errors:
        file_system = file_system_of(instance_dir)
        if file_system.free_bytes < NEARLY_FULL_BYTES:
            return FullDisk(instance_dir, INSTANCE_WRITER, file_system)
    return None


def _path_in(text: str) -> Path | None:
    for pattern in _PATH_PATTERNS:
        found = pattern.search(text)
        if found:
            return Path(found.group(1))
    return None


def _writer_of(path: Path, instance_dir: Path) -> str:
    return INDEX_WRITER if "indexes" in path.parts else _instance_or_index(path, instance_dir)


def _instance_or_index(path: Path, instance_dir: Path) -> str:
    try:
        path.relative_to(instance_dir)
    except ValueError:
        return INDEX_WRITER
    return INSTANCE_WRITER


#: What the data directory's top-level entries hold, as the user should read them.
DATA_DIR_PARTS = {
    "indexes": "indexes",
    "history": "run history",
    "storage": "run logs",
    "schedules": "schedule state",
    "models": "converted models",
}


def data_dir_usage(data_dir: Path, mount_point: Path | None = None) -> list[tuple[str, int]]:
    """The data directory's parts (its directories) and their bytes on disk, largest first;
    only parts on the file system mounted at `mount_point` (when given) count."""
    sizes: dict[str, int] = {}
    try:
        entries = list(data_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue  # a models directory shared from elsewhere; small configuration files
        if mount_point is not None and file_system_of(entry).mount_point != mount_point:
            continue
        label = DATA_DIR_PARTS.get(entry.name, entry.name)
        sizes[label] = sizes.get(label, 0) + disk_bytes(entry)
    return sorted(((k, v) for k, v in sizes.items() if v), key=lambda kv: -kv[1])


def disk_bytes(path: Path) -> int:
    """Bytes `path` (a file or a tree, symlinks not followed) occupies on disk."""
    try:
        stat = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return stat.st_blocks * 512
    total = stat.st_blocks * 512
    for directory, dirs, files in os.walk(path, onerror=lambda _error: None):
        for name in (*dirs, *files):
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue
    return total
