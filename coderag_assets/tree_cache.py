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
