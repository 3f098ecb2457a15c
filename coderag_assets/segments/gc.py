"""Reclaiming what no version, reader or writer needs, and readers' leases on versions."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TextIO

from coderag_assets.segments.layout import (
    CURRENT_FILE,
    LATEST_FILE,
    LEASE_SUFFIX,
    MANIFESTS_DIR,
    READERS_DIR,
    SEGMENTS_DIR,
    latest_segment,
)
from coderag_assets.segments.versions import IndexVersion, current_version, manifest_versions
from coderag_assets.store import (
    SHARD_KINDS,
    TORN_SUFFIX,
    VECTORS_DIR,
    IndexNotFoundError,
    IndexStore,
)

KEEP_PREVIOUS_VERSIONS = 2  # versions kept besides the current one
GC_GRACE_S = 600.0  # nothing younger than this is reclaimed


def collect_garbage(store: IndexStore, *, now: float | None = None) -> list[Path]:
    """Remove what no version, reader or writer needs; returns what was removed.

    Call holding `store.writer_lock()` (`publish` does): then no other publish is running,
    so manifests newer than CURRENT, half-built `index.duckdb` files and temporary files in
    the index directory are leftovers of a publish that died before its flip, and go at once.
    Kept: the current version, the `KEEP_PREVIOUS_VERSIONS` before it, older manifests younger
    than `GC_GRACE_S`, versions a live reader holds (`VersionLease`), and the segments all of
    these name; each shard's LATEST segment; segment directories younger than `GC_GRACE_S`
    (shard steps write them without the lock, and record them as LATEST just after).
    Temporary files of writers that work without the lock and quarantined torn shard files
    go once older than `GC_GRACE_S` (`stale_leftovers`).
    """
    base = store.base
    now = time.time() if now is None else now
    current = current_version(base)
    versions = manifest_versions(base)
    keep = held_versions(base, now=now)
    if current is not None:
        older = [v for v in versions if v <= current]
        keep.update(older[-(KEEP_PREVIOUS_VERSIONS + 1) :])
    removed: list[Path] = []
    # Relative names first: the kept versions (every version of the last `GC_GRACE_S`, about
    # 150 under `coderag watch`) name mostly the same 64 segments.
    referenced_names: set[str] = set()
    for version in versions:
        path = base / MANIFESTS_DIR / f"{version}.json"
        young = version < (current or 0) and _age(path, now) < GC_GRACE_S
        if version in keep or young or current is None:
            try:
                referenced_names.update(IndexVersion.load(base, version).segments.values())
            except IndexNotFoundError:
                continue
        else:
            path.unlink(missing_ok=True)
            removed.append(path)
    referenced: set[Path] = {base / name for name in referenced_names}
    leftovers = [
        *base.glob(".index.*.building.duckdb*"),
        *base.glob(f".{CURRENT_FILE}.*.tmp"),
        *(base / MANIFESTS_DIR).glob(".*.tmp"),
    ]
    for path in leftovers:
        path.unlink(missing_ok=True)
        removed.append(path)
    for path in stale_leftovers(store, now=now):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    for shard_dir in (base / SEGMENTS_DIR).glob("*"):
        if not shard_dir.is_dir():
            continue
        latest = latest_segment(store, shard_dir.name)
        if latest is not None:
            referenced.add(shard_dir / latest[0])
        for segment_dir in shard_dir.iterdir():
            if segment_dir.name == LATEST_FILE or segment_dir in referenced:
                continue
            if _age(segment_dir, now) < GC_GRACE_S and not segment_dir.name.startswith(".trash"):
                continue
            if segment_dir.is_dir():
                shutil.rmtree(segment_dir, ignore_errors=True)
            else:  # a temporary LATEST of a killed shard step
                segment_dir.unlink(missing_ok=True)
            removed.append(segment_dir)
    return removed


def stale_leftovers(store: IndexStore, *, now: float | None = None) -> list[Path]:
    """What killed writers that work without the writer lock left behind, last written more
    than `GC_GRACE_S` ago: temporary files (`.<name>.<id>.tmp`) of shard steps' Parquet
    files, of `root.json` and of the vector caches, a vector-cache compaction's spill
    directory, and quarantined torn shard files (`*.torn`, kept that long for a look).

    A live writer's temporary file is younger: it is written in one go and renamed at once,
    so a file untouched for the grace period has no writer left.
    """
    base = store.base
    now = time.time() if now is None else now
    directories = [
        base,
        *(base / kind for kind in SHARD_KINDS),
        *(base / VECTORS_DIR).glob("*"),
    ]
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        found += directory.glob(".*.tmp")
        found += directory.glob(f"*{TORN_SUFFIX}")
        found += directory.glob(".compact-spill-*")
    return sorted(path for path in found if _age(path, now) >= GC_GRACE_S)


class VersionLease:
    """A reader's hold on one published version: while it is held, `collect_garbage` keeps
    the version's manifest and segments (DuckDB views of the version read them by path).

    The lease is a file `readers/<version>.<pid>.<random>.lease` that its reader keeps locked
    (`flock`); the lock goes when the reader releases it or its process dies, so a crashed
    reader holds nothing. Best effort: where the index directory cannot be written (a
    read-only consumer, a full disk) `held` is False and the reader relies on its memory
    mappings and open files alone.
    """

    def __init__(self, base: Path, version: int):
        self.version = version
        self.path: Path | None = None
        self._lock_file: TextIO | None = None
        directory = base / READERS_DIR
        name = f"{version}.{os.getpid()}.{uuid.uuid4().hex}"
        pending = directory / f".{name}"  # locked before it gets the name GC looks at
        try:
            directory.mkdir(exist_ok=True)
            lock_file = open(pending, "w")  # noqa: SIM115 - held until release()
        except OSError:
            return
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(pending, directory / f"{name}{LEASE_SUFFIX}")
        except OSError:
            lock_file.close()
            pending.unlink(missing_ok=True)
            return
        self._lock_file = lock_file
        self.path = directory / f"{name}{LEASE_SUFFIX}"

    @property
    def held(self) -> bool:
        return self._lock_file is not None

    def release(self) -> None:
        """Let the version go (idempotent); the next publish may reclaim it."""
        if self._lock_file is None:
            return
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self._lock_file.close()
        self._lock_file = None


def held_versions(base: Path, *, now: float | None = None) -> set[int]:
    """The versions live readers hold (`VersionLease`). Removes the lease files of readers
    that are gone (their lock is free) and pending ones older than `GC_GRACE_S`."""
    now = time.time() if now is None else now
    held: set[int] = set()
    for path in (base / READERS_DIR).glob("*"):
        if path.name.startswith("."):
            if _age(path, now) >= GC_GRACE_S:
                path.unlink(missing_ok=True)
            continue
        try:
            version = int(path.name.split(".", 1)[0])
            with open(path) as probe:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # the lock was free: its reader is gone
        except BlockingIOError:
            held.add(version)
        except (OSError, ValueError):
            continue
    return held


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
