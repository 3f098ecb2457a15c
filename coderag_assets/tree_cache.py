"""The previous walk of an indexed root, kept next to its index, so that the next look at the
tree lists only the directories that changed (:func:`~coderag_assets.files.walk_tree`).

Why not git: a one-shot `coderag index` has to learn the size and mtime of every file to
compare the tree with the published index, and on Linux nothing but a running file-system
watcher spares the per-file ``stat`` (git's builtin fsmonitor is macOS/Windows only;
`git status` stats every tracked file too). What a previous walk can spare is everything
around the stats: listing unchanged directories, matching every entry against the ignore
rules, the name checks. Measured on 33,600 files / 6,401 directories (2 busy cores; see
``docs/indexing-speed.md``): full walk 196-232 ms, walk reusing the previous one
119-139 ms, `git status --porcelain -uall` with the untracked cache 82 ms (and it would
still need a stat per file, plus HEAD bookkeeping, to say what changed since the index).
The reused walk also needs no git: plain directories, broken or absent git metadata and
trees whose ignore rules differ from git's all work the same way.

The cache is an optimization only. It is ignored (and the walk says why, in ``--json``'s
``detection``) when it is missing, unreadable, written by another version, or made for
another root; :func:`~coderag_assets.files.walk_tree` itself lists everything again when an
ignore file changed. Written atomically, so concurrent writers (an update, the sensor)
leave one complete walk.

Plain module (no Dagster).
"""

from __future__ import annotations

import marshal
import os
import posixpath
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coderag_assets.files import MAX_FILE_BYTES, DirListing, TreeWalk, walk_tree
from coderag_assets.store.atomic import write_bytes_atomic

TREE_CACHE_FILE = "tree_walk.marshal"
TREE_CACHE_FORMAT = 1
METHOD_REUSED = "reused_walk"  # unchanged directories were not listed again
METHOD_WALK = "walk"  # every directory was listed


@dataclass(frozen=True)
class Detection:
    """How the tree was looked at for one update (``--json``: ``detection``)."""

    method: str
    reason: str  # why the previous walk could not be used ("" when it was)
    listed_dirs: int
    reused_dirs: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "reason": self.reason,
            "listed_dirs": self.listed_dirs,
            "reused_dirs": self.reused_dirs,
            "seconds": round(self.seconds, 3),
        }


def load_walk(path: Path) -> tuple[TreeWalk | None, str]:
    """The walk saved at `path`, or None and the reason it cannot be used."""
    try:
        payload = marshal.loads(path.read_bytes())
    except FileNotFoundError:
        return None, "no previous walk of this root"
    except (OSError, ValueError, EOFError, TypeError) as error:
        return None, f"previous walk unreadable ({type(error).__name__})"
    try:
        version, root, exclude_file, started_ns, raw_listings = payload
        if version != TREE_CACHE_FORMAT:
            return None, f"previous walk has format {version}, not {TREE_CACHE_FORMAT}"
        listings = {
            dir_rel: DirListing(
                mtime_ns,
                tuple(files),
                tuple(dirs),
                tuple(tuple(entry) for entry in ignore_files),
                bool(reusable),
                tuple(name_skips),
            )
            for dir_rel, (mtime_ns, files, dirs, ignore_files, reusable, name_skips) in (
                raw_listings.items()
            )
        }
    except (TypeError, ValueError) as error:
        return None, f"previous walk malformed ({error})"
    return TreeWalk(
        root=root,
        files=[],
        listings=listings,
        exclude_file=tuple(exclude_file) if exclude_file else None,
        started_ns=started_ns,
    ), ""


def save_walk(path: Path, walk: TreeWalk) -> None:
    """Keep `walk` for the next look at the tree (best effort: a failure only costs speed)."""
    raw_listings = {
        dir_rel: (
            listing.mtime_ns,
            listing.files,
            listing.dirs,
            listing.ignore_files,
            listing.reusable,
            listing.name_skips,
        )
        for dir_rel, listing in walk.listings.items()
    }
    payload = marshal.dumps(
        (TREE_CACHE_FORMAT, walk.root, walk.exclude_file, walk.started_ns, raw_listings)
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, payload)
    except OSError:
        pass


def walk_root(
    root: Path, cache_path: Path, *, max_file_bytes: int = MAX_FILE_BYTES
) -> tuple[TreeWalk, Detection]:
    """Walk `root` reusing the walk saved at `cache_path`, save the new one there, and say
    how it went. Its rows equal :func:`~coderag_assets.files.scan_tree`'s. Raises RootError
    if the root is unusable."""
    started = time.perf_counter()
    previous, reason = load_walk(cache_path)
    walk = walk_tree(root, max_file_bytes=max_file_bytes, previous=previous)
    reason = walk.relisted_reason or reason
    if previous is None or walk.listed_dirs:
        # A walk that listed nothing again holds exactly the saved listings: the file stays
        # (its older start time only makes the racy-mtime rule stricter, never looser).
        save_walk(cache_path, walk)
    method = METHOD_REUSED if walk.reused_dirs else METHOD_WALK
    if method == METHOD_WALK and not reason:
        reason = "every directory changed since the previous walk"
    return walk, Detection(
        method=method,
        reason="" if method == METHOD_REUSED else reason,
        listed_dirs=walk.listed_dirs,
        reused_dirs=walk.reused_dirs,
        seconds=time.perf_counter() - started,
    )


METHOD_EVENTS = "events"  # only the directories file-system events named were looked at
FULL_CHECK_INTERVAL_S = 60.0  # an event-driven walker still stats every file this often


class EventWalker:
    """Walks of one root for a process that receives file-system events (`coderag watch`).

    The observer thread calls :meth:`note` with every path an event names; :meth:`walk`
    then looks only at the directories those paths are in (and at directories changed
    too recently to trust, see :func:`~coderag_assets.files.walk_tree`'s `changed_dirs`),
    taking the rest of the tree from the previous walk held in memory. Its rows equal a
    full walk's as long as every change produced an event. Because events can be lost
    (inotify drops them when its queue overflows, and watchdog does not report that;
    network file systems send none), :meth:`walk` falls back to :func:`walk_root` — every
    file stat'ed, the walk saved under the index — on the first call, after
    :meth:`invalidate`, and every `full_check_s` seconds — and on every call once the root
    directory was replaced by another one (deleted and created again: the observer still
    watches the old one; ``events_stopped`` says so).

    Thread-safe between one walking thread and any number of noting threads. Events must
    be flowing (the observer started) before the first walk begins.
    """

    def __init__(self, root: Path, *, full_check_s: float = FULL_CHECK_INTERVAL_S):
        self.root = os.path.realpath(root)
        self.full_check_s = full_check_s
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._lost = True  # nothing walked yet: the first walk stats everything
        self._previous: TreeWalk | None = None
        self._full_at = 0.0
        self._watched: tuple[int, int] | None = None  # (st_dev, st_ino) of the root watched
        self.events_stopped = False  # the root was replaced: its observer watches the old one

    @property
    def last_walk(self) -> TreeWalk | None:
        """The walk the last :meth:`walk` returned (None before the first)."""
        return self._previous

    def note(self, *paths: str) -> None:
        """Paths (absolute, under the root) that an event says were created, modified,
        deleted or moved; paths outside the root are ignored."""
        prefix = self.root + os.sep
        dirs = []
        for path in paths:
            if path == self.root:
                dirs.append("")
            elif path.startswith(prefix):
                rel = path[len(prefix) :].replace(os.sep, "/")
                dirs.append(rel)  # a directory's own listing (new, moved, deleted)
                dirs.append(posixpath.dirname(rel))  # the listing that holds the entry
        with self._lock:
            self._changed.update(dirs)

    def invalidate(self) -> None:
        """Events may have been lost: the next walk stats every file."""
        with self._lock:
            self._lost = True

    def walk(
        self, cache_path: Path, *, max_file_bytes: int = MAX_FILE_BYTES
    ) -> tuple[TreeWalk, Detection]:
        """The walk of the root as it is now, and how it was made. Raises RootError."""
        started = time.perf_counter()
        with self._lock:  # take the events before looking: later ones belong to the next walk
            changed, self._changed = self._changed, set()
            lost, self._lost = self._lost, False
        previous = self._previous
        due = time.monotonic() - self._full_at >= self.full_check_s
        try:
            info = os.stat(self.root)
            identity: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            identity = None  # walk_root says what is wrong with the root
        if self._watched is None:
            self._watched = identity
        elif identity is not None and identity != self._watched:
            self.events_stopped = True  # deleted and made again: no events come from it now
        if lost or due or self.events_stopped or previous is None or previous.root != self.root:
            try:
                walk, detection = walk_root(
                    Path(self.root), cache_path, max_file_bytes=max_file_bytes
                )
            except BaseException:
                self.invalidate()
                raise
            self._previous, self._full_at = walk, time.monotonic()
            return walk, detection
        try:
            walk = walk_tree(
                Path(self.root),
                max_file_bytes=max_file_bytes,
                previous=previous,
                changed_dirs=changed,
            )
        except BaseException:
            self.invalidate()
            raise
        self._previous = walk
        if walk.relisted_reason:  # an ignore file changed: everything was listed (and stat'ed)
            save_walk(cache_path, walk)
            self._full_at = time.monotonic()
        return walk, Detection(
            method=METHOD_EVENTS if not walk.relisted_reason else METHOD_WALK,
            reason=walk.relisted_reason,
            listed_dirs=walk.listed_dirs,
            reused_dirs=walk.reused_dirs,
            seconds=time.perf_counter() - started,
        )
