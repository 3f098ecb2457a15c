"""How current the published index is, and which shards must run to make it current.

Plain module (no Dagster): the change sensor, `coderag watch`, `coderag index`, `coderag
status` and the freshness asset check all use these functions, so they agree on what
"changed" means.

- A **shard fingerprint** is a short hash of the sorted ``(path, mtime_ns, size)`` of every
  file :func:`~coderag_assets.files.scan_tree` lists in the shard (skipped files included,
  since their skip can change). It is computed the same way from the working tree, from the
  shard's manifest file, and from the published index's ``files`` table: equal fingerprints
  mean nothing in the shard changed.
- A shard is **incomplete** when its last run did not finish (killed between writing the
  manifest and the embeddings) or one of its Parquet files is torn (unreadable).
- The index is **stale** when the tree differs from the ``files`` table of the published
  index (what searches see). The difference is reported file by file.

Change detection is stat-based (size + mtime), like `git status`: a change that keeps both
(same-size rewrite within one mtime tick, a permission-only change) is picked up by the next
full rebuild, which re-hashes every file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.files import (
    MAX_FILE_BYTES,
    FileStat,
    RootError,
    TreeWalk,
    WalkDelta,
    scan_tree,
)
from coderag_assets.store import TORN_SUFFIX, IndexNotFoundError, IndexStore, connect_index
from coderag_assets.tree_cache import Detection, EventWalker, walk_root

if TYPE_CHECKING:  # imported where used: a chunking worker never loads DuckDB (-47 MiB)
    import duckdb

FINGERPRINT_HEX_CHARS = 12  # 48 bits per shard: collisions are not a practical concern
EMPTY_SHARD = "empty"  # fingerprint of a shard with no files
STAGE_KINDS = ("manifest", "chunks", "symbols", "embeddings")  # in the order a run writes them
EXAMPLE_PATHS = 20  # changed paths listed per kind in JSON output

ShardOf = Callable[[str], str]
StatRow = tuple[int, int]  # (size, mtime_ns)


def shard_fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """Short stable hash of ``(path, size, mtime_ns)`` entries (any order)."""
    rows = sorted(entries)
    if not rows:
        return EMPTY_SHARD
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX_CHARS // 2)
    for path, size, mtime_ns in rows:
        digest.update(f"{path}\0{mtime_ns}\0{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def fingerprints_by_shard(
    entries: Iterable[tuple[str, int, int]], shard_keys: Sequence[str], shard_of: ShardOf
) -> dict[str, str]:
    """Fingerprint of every shard in `shard_keys` (shards without entries are `EMPTY_SHARD`)."""
    grouped: dict[str, list[tuple[str, int, int]]] = {key: [] for key in shard_keys}
    for entry in entries:
        shard = shard_of(entry[0])
        if shard in grouped:
            grouped[shard].append(entry)
    return {shard: shard_fingerprint(rows) for shard, rows in grouped.items()}


# ------------------------------------------------------------------ the working tree


def describe_counts(modified: int, added: int, deleted: int, empty: str = "no file changes") -> str:
    """``"2 modified, 1 added"`` (zero counts left out); `empty` when all are zero."""
    parts = [
        f"{count} {label}"
        for label, count in (("modified", modified), ("added", added), ("deleted", deleted))
        if count
    ]
    return ", ".join(parts) or empty


@dataclass(frozen=True)
class TreeSnapshot:
    """One stat-only walk of a root: every listed file, grouped into shards.

    `paths_by_shard` lists each shard's paths in :func:`scan_tree`'s order (sorted);
    `skip_reasons` holds the stat-level skip reason of each path that has one, so that
    :meth:`file_stats` gives back exactly the rows the walk listed. :attr:`fingerprints`
    (what the change sensor compares) are computed on first use: `coderag index` plans
    from the changed paths and never needs them.
    """

    root: Path
    files: dict[str, StatRow]
    paths_by_shard: dict[str, list[str]]
    scanned_at: float
    scan_seconds: float
    skip_reasons: dict[str, str] = field(default_factory=dict)
    detection: Detection | None = None  # how the tree was looked at (walk_cache given)
    known_fingerprints: Mapping[str, str] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def fingerprints(self) -> dict[str, str]:
        """The fingerprint of every shard (`known_fingerprints` where given, which a
        `LiveTree` carries over for shards whose rows did not change)."""
        return {
            shard: self.known_fingerprints.get(shard)
            or shard_fingerprint((path, *self.files[path]) for path in paths)
            for shard, paths in self.paths_by_shard.items()
        }

    def shard_files(self, shards: Iterable[str]) -> dict[str, StatRow]:
        """`(size, mtime_ns)` per path of the files in `shards`."""
        return {
            path: self.files[path]
            for shard in shards
            for path in self.paths_by_shard.get(shard, [])
        }

    def file_stats(self, shard: str) -> list[FileStat]:
        """The rows :func:`scan_tree` listed for `shard`, in its order."""
        return [
            FileStat(path, *self.files[path], self.skip_reasons.get(path))
            for path in self.paths_by_shard.get(shard, [])
        ]

    def regrouped(self, shard_keys: Sequence[str], shard_of: ShardOf) -> TreeSnapshot:
        """The same walk grouped into other shards (a new index sized after its first walk)."""
        # fingerprints are computed again (on first use) for the new grouping
        return replace(
            self, paths_by_shard=_group(self.files, shard_keys, shard_of), known_fingerprints={}
        )


def snapshot_tree(
    root: Path,
    shard_keys: Sequence[str],
    shard_of: ShardOf,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    walk_cache: Path | None = None,
    live: LiveTree | None = None,
) -> TreeSnapshot:
    """Walk `root` (stat only, ignore rules applied). Raises RootError if the root is unusable.

    With `walk_cache` (a file under the index directory) the walk skips the directories
    that did not change since the walk saved there, and saves itself for the next one
    (:mod:`coderag_assets.tree_cache`); with `live` as well (a process receiving
    file-system events for `root`), it looks only where events said something changed,
    with a periodic full check, and fingerprints again only the shards whose rows changed
    since `live`'s last snapshot. The result is the same either way.
    """
    started = time.perf_counter()
    detection = None
    walk: TreeWalk | None = None
    if walk_cache is None:
        stats: list[FileStat] = scan_tree(root, max_file_bytes=max_file_bytes)
    elif live is not None:
        walk, detection = live.walker.walk(walk_cache, max_file_bytes=max_file_bytes)
        stats = walk.files
    else:
        walk, detection = walk_root(root, walk_cache, max_file_bytes=max_file_bytes)
        stats = walk.files
    previous = live.previous(shard_keys) if live is not None else None
    delta = walk.delta if live is not None and walk is not None else None
    if (
        live is not None
        and previous is not None
        and delta is not None
        and delta.based_on == live.last_walk_ns
    ):
        snapshot = _patched(previous, delta, shard_of, time.perf_counter() - started, detection)
    else:
        files = {stat.path: (stat.size, stat.mtime_ns) for stat in stats}
        skip_reasons = {stat.path: stat.skip_reason for stat in stats if stat.skip_reason}
        paths_by_shard = _group(files, shard_keys, shard_of, previous)
        snapshot = TreeSnapshot(
            root=root,
            files=files,
            paths_by_shard=paths_by_shard,
            scanned_at=time.time(),
            scan_seconds=time.perf_counter() - started,
            skip_reasons=skip_reasons,
            detection=detection,
            known_fingerprints=_unchanged_fingerprints(files, paths_by_shard, previous),
        )
    if live is not None:
        snapshot.fingerprints  # noqa: B018 - computed now: the next snapshot reuses them
        live.keep(snapshot, shard_keys, walk.started_ns if walk is not None else -1)
    return snapshot


def _patched(
    previous: TreeSnapshot,
    delta: WalkDelta,
    shard_of: ShardOf,
    seconds: float,
    detection: Detection | None,
) -> TreeSnapshot:
    """`previous` with an event-driven walk's changes applied: the same snapshot a full
    grouping of the new walk gives, at the cost of what changed (unchanged shards keep their
    path lists and fingerprints; a snapshot's lists are never modified)."""
    files = dict(previous.files)
    skip_reasons = dict(previous.skip_reasons)
    for path in delta.removed:
        files.pop(path, None)
        skip_reasons.pop(path, None)
    for row in delta.rows:
        files[row.path] = (row.size, row.mtime_ns)
        skip_reasons.pop(row.path, None)
        if row.skip_reason:
            skip_reasons[row.path] = row.skip_reason
    touched = delta.removed | {row.path for row in delta.rows}
    by_shard: dict[str, set[str]] = {}
    for path in touched:
        by_shard.setdefault(shard_of(path), set()).add(path)
    paths_by_shard = dict(previous.paths_by_shard)
    for shard, paths in by_shard.items():
        kept = [path for path in paths_by_shard.get(shard, []) if path not in paths]
        paths_by_shard[shard] = sorted(kept + [path for path in paths if path in files])
    return TreeSnapshot(
        root=previous.root,
        files=files,
        paths_by_shard=paths_by_shard,
        scanned_at=time.time(),
        scan_seconds=seconds,
        skip_reasons=skip_reasons,
        detection=detection,
        known_fingerprints={
            shard: fingerprint
            for shard, fingerprint in previous.fingerprints.items()
            if shard not in by_shard
        },
    )


@dataclass
class LiveTree:
    """The tree as a long-running process that receives file-system events sees it
    (`coderag watch`): walks driven by those events (:class:`tree_cache.EventWalker`), and
    its last snapshot, from which :func:`snapshot_tree` takes the shard of every path it
    already knew and the fingerprint of every shard whose rows did not change."""

    walker: EventWalker
    last: TreeSnapshot | None = None
    last_shard_keys: tuple[str, ...] = ()
    last_walk_ns: int = -1  # `started_ns` of the walk `last` was made from

    def previous(self, shard_keys: Sequence[str]) -> TreeSnapshot | None:
        """The last snapshot, if it was grouped into the same shards."""
        return self.last if tuple(shard_keys) == self.last_shard_keys else None

    def keep(self, snapshot: TreeSnapshot, shard_keys: Sequence[str], walk_ns: int) -> None:
        self.last, self.last_shard_keys = snapshot, tuple(shard_keys)
        self.last_walk_ns = walk_ns


def _group(
    files: Mapping[str, StatRow],
    shard_keys: Sequence[str],
    shard_of: ShardOf,
    previous: TreeSnapshot | None = None,
) -> dict[str, list[str]]:
    """The paths of each shard in `files`' order. With `previous` (a snapshot grouped by
    the same `shard_of`), a path it holds keeps its shard without hashing it again."""
    known = (
        {path: shard for shard, paths in previous.paths_by_shard.items() for path in paths}
        if previous is not None
        else {}
    )
    paths_by_shard: dict[str, list[str]] = {key: [] for key in shard_keys}
    for path in files:
        shard = known.get(path)
        paths_by_shard.setdefault(shard if shard is not None else shard_of(path), []).append(path)
    return paths_by_shard


def _unchanged_fingerprints(
    files: Mapping[str, StatRow],
    paths_by_shard: Mapping[str, list[str]],
    previous: TreeSnapshot | None,
) -> dict[str, str]:
    """The fingerprints of `previous` for the shards whose paths and rows did not change."""
    if previous is None:
        return {}
    return {
        shard: previous.fingerprints[shard]
        for shard, paths in paths_by_shard.items()
        if previous.paths_by_shard.get(shard) == paths
        and all(files[path] == previous.files[path] for path in paths)
    }


# ------------------------------------------------------------------ what was indexed


def _read_stat_columns(path: Path) -> pa.Table:
    return pq.read_table(path, columns=["path", "size", "mtime_ns"])


def manifest_files(store: IndexStore, shards: Iterable[str]) -> dict[str, StatRow]:
    """`(size, mtime_ns)` per path recorded by the shards' manifests (unreadable ones count as empty)."""
    files: dict[str, StatRow] = {}
    for shard in shards:
        path = store.shard_file("manifest", shard)
        if not path.exists():
            continue
        try:
            table = _read_stat_columns(path)
        except (OSError, pa.ArrowException):
            continue
        for name, size, mtime in zip(
            *(table.column(c).to_pylist() for c in table.column_names), strict=True
        ):
            files[name] = (size, mtime)
    return files


@dataclass(frozen=True)
class PublishedIndex:
    """What the live index says about itself: its `meta` table and its `files` listing."""

    meta: dict[str, object]
    files: dict[str, StatRow]

    @property
    def version(self) -> int | None:
        value = self.meta.get("version")
        return int(value) if isinstance(value, int | float | str) else None

    @property
    def published_at(self) -> float | None:
        value = self.meta.get("published_at")
        return float(value) if isinstance(value, int | float | str) else None


@contextmanager
def open_published(store: IndexStore) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the index file published *now* (see `store.connect_index`:
    the live file is attached, never an older snapshot this process still holds open).
    Raises IndexNotFoundError when there is no index."""
    con = connect_index(store.index_path)
    try:
        yield con
    finally:
        con.close()


def read_published(store: IndexStore) -> PublishedIndex | None:
    """The published index's meta and `(size, mtime_ns)` per path; None if there is none."""
    import duckdb

    try:
        with open_published(store) as con:
            meta = {
                k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()
            }
            rows = con.execute("SELECT path, size, mtime_ns FROM files").fetchall()
    except (IndexNotFoundError, duckdb.Error):
        return None
    return PublishedIndex(meta, {path: (size, mtime) for path, size, mtime in rows})


def published_fingerprints(
    published: PublishedIndex, shard_keys: Sequence[str], shard_of: ShardOf
) -> dict[str, str]:
    """Shard fingerprints of what the published index holds (comparable with a snapshot's)."""
    return fingerprints_by_shard(
        ((path, size, mtime) for path, (size, mtime) in published.files.items()),
        shard_keys,
        shard_of,
    )


# ------------------------------------------------------------------ differences


@dataclass(frozen=True)
class FileChanges:
    """Paths that differ between two listings (a rename is one deletion plus one addition)."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.added) + len(self.modified) + len(self.deleted)

    @property
    def paths(self) -> list[str]:
        return sorted({*self.added, *self.modified, *self.deleted})

    def describe(self) -> str:
        """E.g. ``"2 modified, 1 added"``; ``"no file changes"`` when empty."""
        return describe_counts(len(self.modified), len(self.added), len(self.deleted))

    def to_json(self, limit: int = EXAMPLE_PATHS) -> dict[str, object]:
        return {
            "files_added": len(self.added),
            "files_modified": len(self.modified),
            "files_deleted": len(self.deleted),
            "added": self.added[:limit],
            "modified": self.modified[:limit],
            "deleted": self.deleted[:limit],
        }


def diff_files(current: Mapping[str, StatRow], indexed: Mapping[str, StatRow]) -> FileChanges:
    """What changed from `indexed` to `current` (both path → (size, mtime_ns))."""
    changed = current.items() - indexed.items()  # one set operation in C over 68k rows
    return FileChanges(
        added=sorted(path for path, _ in changed if path not in indexed),
        modified=sorted(path for path, _ in changed if path in indexed),
        deleted=sorted(indexed.keys() - current.keys()),
    )


# ------------------------------------------------------------------ shard health


def is_torn(path: Path) -> bool:
    """True when `path` exists but is not a readable Parquet file (killed writer, bad disk)."""
    try:
        pq.read_metadata(path)
    except FileNotFoundError:
        return False
    except (OSError, pa.ArrowException):
        return True
    return False


def incomplete_shards(store: IndexStore, shards: Iterable[str]) -> dict[str, str]:
    """Shards whose files are torn or whose last run stopped after the manifest: shard → reason.

    A finished run writes manifest, chunks, symbols and embeddings in that order, so a
    manifest newer than the shard's embeddings means the run did not get to the end.
    Call it when no run is in flight (a running shard looks incomplete too).
    """
    found: dict[str, str] = {}
    for shard in shards:
        files = {kind: store.shard_file(kind, shard) for kind in STAGE_KINDS}
        torn = [kind for kind, path in files.items() if is_torn(path)]
        if torn:
            found[shard] = f"unreadable {', '.join(torn)} file"
            continue
        mtimes = {kind: path.stat().st_mtime_ns for kind, path in files.items() if path.exists()}
        if "manifest" not in mtimes:
            continue  # never ran: nothing to repair (a change, or the first run, requests it)
        behind = [k for k in ("chunks", "embeddings") if mtimes.get(k, -1) < mtimes["manifest"]]
        if behind:
            found[shard] = f"last run stopped before writing {', '.join(behind)}"
    live = live_segment_problems(store)
    found.update({shard: live[shard] for shard in shards if shard in live and shard not in found})
    return found


def live_segment_problems(store: IndexStore) -> dict[str, str]:
    """Shards whose segment in the live version is damaged (a file truncated or deleted) or
    was published early and still lacks vectors (the run that would finish it died)."""
    from coderag_assets import segments

    try:
        version = segments.read_current(store.base)
    except IndexNotFoundError:
        return {}
    problems: dict[str, str] = {}
    for shard, relative in version.segments.items():
        try:
            info = segments.SegmentInfo.load(shard, store.base / relative)
            segments.verify_segment(info)
        except segments.SegmentError as error:
            problems[shard] = f"damaged segment ({error})"
            continue
        if info.chunks_without_vector:
            problems[shard] = f"{info.chunks_without_vector} chunks published without vectors"
    return problems


def quarantine_torn_files(store: IndexStore, shards: Iterable[str]) -> list[Path]:
    """Rename unreadable shard files to `*.torn` so the next run recomputes them.

    Recomputing is cheap: the manifest re-hashes, chunks are re-cut and vectors come back
    from the vector cache (nothing is embedded twice). Returns the quarantined paths. A
    quarantined file is kept for the garbage collector's grace period, counted from now
    (`segments.gc.collect_garbage` reclaims it after that).
    """
    moved: list[Path] = []
    for shard in shards:
        for kind in STAGE_KINDS:
            path = store.shard_file(kind, shard)
            if is_torn(path):
                target = path.with_name(path.name + TORN_SUFFIX)
                os.replace(path, target)
                os.utime(target)  # the grace period before reclaiming it starts now
                moved.append(target)
    return moved


# ------------------------------------------------------------------ plans and freshness


@dataclass(frozen=True)
class UpdatePlan:
    """Which shards an update must run, and why (no shards: the index is up to date).

    A shard is run when its files differ from what the published index holds, or when its
    last run stopped half-way; unchanged shards of an out-of-date index are cheap no-ops.
    """

    shards: list[str]
    changes: FileChanges
    changed_shards: list[str]
    incomplete: dict[str, str]
    reason: str

    @property
    def up_to_date(self) -> bool:
        return not self.shards


def plan_update(
    store: IndexStore,
    snapshot: TreeSnapshot,
    shard_keys: Sequence[str],
    shard_of: ShardOf,
    *,
    model_id: str,
    chunker_version: str,
) -> UpdatePlan:
    """Compare the tree with the published index and the shard files; see :class:`UpdatePlan`.

    Everything is re-run when there is no index yet, or when it was built with another
    shard count, model or chunker (vectors are still reused by content hash).
    """
    published = read_published(store)
    everything = list(shard_keys)
    if published is None:
        return UpdatePlan(
            everything, diff_files(snapshot.files, {}), everything, {}, "no published index"
        )
    changes = diff_files(snapshot.files, published.files)
    expected_meta = {
        "shard_count": len(shard_keys),
        "model_id": model_id,
        "chunker_version": chunker_version,
    }
    for key, expected in expected_meta.items():
        if published.meta.get(key) != expected:
            reason = f"index built with {key}={published.meta.get(key)!r}, now {expected!r}"
            return UpdatePlan(everything, changes, everything, {}, reason)
    # A shard's fingerprint differs exactly when one of its files was added, modified or
    # deleted: the shards of the changed paths (O(changes), not a hash of every file again).
    changed_set = {shard_of(path) for path in changes.paths}
    changed = [s for s in shard_keys if s in changed_set]
    incomplete = incomplete_shards(store, shard_keys)
    shards = sorted({*changed, *incomplete})
    if not shards:
        return UpdatePlan([], changes, [], {}, "up to date")
    reason = changes.describe() if changed else "repairing " + ", ".join(sorted(incomplete))
    return UpdatePlan(shards, changes, changed, incomplete, reason)


@dataclass(frozen=True)
class IndexFreshness:
    """The published index compared with the working tree right now."""

    root: str
    index_path: str
    version: int | None
    published_at: float | None
    checked_at: float
    changes: FileChanges
    root_error: str | None = None
    scan_seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return self.root_error is None and self.changes.count == 0

    @property
    def age_seconds(self) -> float | None:
        return None if self.published_at is None else max(0.0, self.checked_at - self.published_at)

    def describe(self) -> str:
        """One line for people: ``"up to date"``, ``"3 files changed since the last update (2 modified, 1 added)"``."""
        if self.root_error:
            return f"root unavailable: {self.root_error}"
        if self.up_to_date:
            return "up to date"
        noun = "file" if self.changes.count == 1 else "files"
        return (
            f"{self.changes.count} {noun} changed since the last update ({self.changes.describe()})"
        )

    def to_json(self, limit: int = EXAMPLE_PATHS) -> dict[str, object]:
        return {
            "up_to_date": self.up_to_date,
            "summary": self.describe(),
            "changed_files": self.changes.count,
            **self.changes.to_json(limit),
            "version": self.version,
            "published_at": self.published_at,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "checked_at": self.checked_at,
            "root_error": self.root_error,
        }


def index_freshness(store: IndexStore, *, max_file_bytes: int = MAX_FILE_BYTES) -> IndexFreshness:
    """Compare the tree under `store.root` with the published index's `files` table.

    Costs one stat-only walk (~0.3 s per 30k files) and one small read of the index.
    Raises IndexNotFoundError when nothing was published yet. A root that no longer exists
    is reported in `root_error` (every indexed file then counts as deleted).
    """
    published = read_published(store)
    if published is None:
        raise IndexNotFoundError(f"no index at {store.index_path}")
    checked_at = time.time()
    started = time.perf_counter()
    root_error: str | None = None
    current: dict[str, StatRow] = {}
    try:
        stats = scan_tree(store.root, max_file_bytes=max_file_bytes)
        current = {stat.path: (stat.size, stat.mtime_ns) for stat in stats}
    except RootError as error:
        root_error = str(error)
    return IndexFreshness(
        root=str(store.root),
        index_path=str(store.index_path),
        version=published.version,
        published_at=published.published_at,
        checked_at=checked_at,
        changes=diff_files(current, published.files),
        root_error=root_error,
        scan_seconds=time.perf_counter() - started,
    )
