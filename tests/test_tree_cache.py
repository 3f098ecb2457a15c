"""The walk that reuses the previous one (`files.walk_tree`, `tree_cache`) finds exactly what
a full walk finds, on a generated tree taken through adds, edits, deletes, renames, newly
ignored files and directories, symlinks, size-based skips and environments, in a plain
directory and in a git work tree; and it falls back to listing everything, saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coderag_assets.files import scan_tree, walk_tree
from coderag_assets.freshness import LiveTree, TreeSnapshot, snapshot_tree
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.tree_cache import (
    METHOD_EVENTS,
    METHOD_REUSED,
    METHOD_WALK,
    TREE_CACHE_FILE,
    EventWalker,
    walk_root,
)

HOUR_NS = 3600 * 10**9
MAX_FILE_BYTES = 4096


def backdate(root: Path) -> None:
    """Give every directory (and file) an mtime an hour ago: the tree as it is after a
    while, outside the racy window in which a walk lists a directory again anyway."""
    past = time.time_ns() - HOUR_NS
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.utime(path, ns=(past, past))
        os.utime(dirpath, ns=(past, past))


def generated_tree(root: Path, *, packages: int = 6, modules: int = 5) -> None:
    for number in range(packages):
        package = root / f"pkg{number}" / "sub"
        package.mkdir(parents=True)
        for module in range(modules):
            (package / f"mod{module}.py").write_text(f"def f{number}_{module}():\n    return 1\n")
        (package.parent / "README.md").write_text(f"# package {number}\n")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("x = 1\n")
    (root / "app.log").write_text("log\n")
    (root / "secret.pem").write_text("key\n")
    (root / "empty.py").write_text("")
    (root / "pkg0" / "link.py").symlink_to(root / "pkg0" / "sub" / "mod2.py")


def edit(root: Path) -> None:
    with (root / "pkg0" / "sub" / "mod0.py").open("a") as handle:
        handle.write("\ndef edited():\n    return 2\n")


def edit_same_size(root: Path) -> None:
    path = root / "pkg1" / "sub" / "mod1.py"
    path.write_text(path.read_text().replace("return 1", "return 9"))


def add(root: Path) -> None:
    (root / "pkg2" / "sub" / "new.py").write_text("def new():\n    pass\n")


def add_nested_dir(root: Path) -> None:
    (root / "pkg2" / "deep" / "er").mkdir(parents=True)
    (root / "pkg2" / "deep" / "er" / "x.py").write_text("X = 1\n")


def delete(root: Path) -> None:
    (root / "pkg3" / "sub" / "mod2.py").unlink()


def delete_dir(root: Path) -> None:
    shutil.rmtree(root / "pkg5")


def rename_file(root: Path) -> None:
    (root / "pkg4" / "sub" / "mod3.py").rename(root / "pkg4" / "sub" / "renamed.py")


def move_file_across_dirs(root: Path) -> None:
    (root / "pkg4" / "sub" / "mod4.py").rename(root / "pkg1" / "mod4.py")


def rename_dir(root: Path) -> None:
    (root / "pkg3").rename(root / "pkg3_renamed")


def ignore_by_editing_gitignore_in_place(root: Path) -> None:
    with (root / ".gitignore").open("a") as handle:
        handle.write("pkg1/\n")


def ignore_with_new_ignore_file(root: Path) -> None:
    (root / "pkg0" / ".coderagignore").write_text("sub/mod1.py\n")


def unignore_by_deleting_ignore_file(root: Path) -> None:
    (root / ".gitignore").unlink()


def grow_past_size_limit(root: Path) -> None:
    (root / "pkg2" / "sub" / "mod1.py").write_text("# big\n" * MAX_FILE_BYTES)


def empty_a_file(root: Path) -> None:
    (root / "pkg2" / "sub" / "mod2.py").write_text("")


def become_an_environment(root: Path) -> None:
    (root / "pkg4" / "pyvenv.cfg").write_text("home = /usr\n")


def symlink_target_grows(root: Path) -> None:
    """The link's directory does not change; the link's row (its target's size) does."""
    (root / "pkg0" / "sub" / "mod2.py").write_text("# the target grew\n" * 10)


def replace_file_by_directory(root: Path) -> None:
    (root / "pkg1" / "sub" / "mod3.py").unlink()
    (root / "pkg1" / "sub" / "mod3.py").mkdir()
    (root / "pkg1" / "sub" / "mod3.py" / "inner.py").write_text("Y = 2\n")


CHANGES: list[Callable[[Path], None]] = [
    edit,
    edit_same_size,
    add,
    add_nested_dir,
    delete,
    delete_dir,
    rename_file,
    move_file_across_dirs,
    rename_dir,
    ignore_by_editing_gitignore_in_place,
    ignore_with_new_ignore_file,
    unignore_by_deleting_ignore_file,
    grow_past_size_limit,
    empty_a_file,
    become_an_environment,
    symlink_target_grows,
    replace_file_by_directory,
]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.mark.parametrize("kind", ["plain", "git"])
@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__ for change in CHANGES])
def test_reused_walk_finds_exactly_what_a_full_walk_finds(
    tmp_path: Path, kind: str, change: Callable[[Path], None]
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)
    if kind == "git":
        if shutil.which("git") is None:
            pytest.skip("git is not installed")
        git(root, "init", "-q")
        (root / ".git" / "info").mkdir(exist_ok=True)
        (root / ".git" / "info" / "exclude").write_text("*.tmp\n")
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree")
    backdate(root)
    previous = walk_tree(root, max_file_bytes=MAX_FILE_BYTES)
    assert previous.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)

    change(root)

    reused = walk_tree(root, max_file_bytes=MAX_FILE_BYTES, previous=previous)
    full = scan_tree(root, max_file_bytes=MAX_FILE_BYTES)
    assert reused.files == full
    assert reused.files != previous.files
    if "ignore" in change.__name__:
        assert reused.relisted_reason  # ignore rules changed: everything is listed again
        assert reused.reused_dirs == 0
    else:
        assert reused.reused_dirs > 0  # unchanged directories were not listed again
        assert reused.listed_dirs < len(previous.listings)


def test_git_exclude_file_change_lists_everything_again(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)
    (root / ".git" / "info").mkdir(parents=True)
    backdate(root)
    previous = walk_tree(root, max_file_bytes=MAX_FILE_BYTES)
    (root / ".git" / "info" / "exclude").write_text("pkg2/\n")
    reused = walk_tree(root, max_file_bytes=MAX_FILE_BYTES, previous=previous)
    assert reused.relisted_reason == ".git/info/exclude changed"
    assert reused.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)
    assert not any(row.path.startswith("pkg2/") for row in reused.files)


def test_directories_changed_just_before_the_previous_walk_are_listed_again(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)  # mtimes of now: inside the racy window of the walk below
    previous = walk_tree(root, max_file_bytes=MAX_FILE_BYTES)
    add(root)
    reused = walk_tree(root, max_file_bytes=MAX_FILE_BYTES, previous=previous)
    assert reused.reused_dirs == 0
    assert reused.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)


def test_walk_root_saves_reuses_and_says_why_it_could_not(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)
    backdate(root)
    cache = tmp_path / "index" / TREE_CACHE_FILE

    walk, detection = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_WALK
    assert detection.reason == "no previous walk of this root"
    assert cache.is_file()

    edit(root)
    walk, detection = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_REUSED and detection.reason == ""
    assert detection.reused_dirs > detection.listed_dirs
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)

    cache.write_bytes(b"not a walk")
    walk, detection = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_WALK
    assert detection.reason.startswith("previous walk unreadable")
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)

    other = tmp_path / "other"
    shutil.copytree(root, other)
    walk, detection = walk_root(other, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_WALK
    assert detection.reason.startswith("the previous walk was of")
    assert walk.files == scan_tree(other, max_file_bytes=MAX_FILE_BYTES)


def test_a_walk_that_lists_nothing_again_keeps_the_saved_walk(tmp_path: Path) -> None:
    """An in-place edit lists no directory: the saved walk is left as it is (no rewrite of
    32k listings per one-file update); every walk in a chain of changes after that still
    equals a full walk."""
    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)
    (root / "pkg0" / "link.py").unlink()  # a directory holding a symlink is listed every time
    backdate(root)
    cache = tmp_path / "index" / TREE_CACHE_FILE
    walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    saved = cache.read_bytes()

    edit(root)
    walk, detection = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_REUSED and detection.listed_dirs == 0
    assert cache.read_bytes() == saved
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)

    for change in (edit_same_size, add, delete, edit, rename_dir, edit, grow_past_size_limit):
        change(root)
        walk, _ = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
        assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES), change.__name__
    backdate(root)
    walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)  # lists the back-dated directories
    edit(root)
    walk, detection = walk_root(root, cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.listed_dirs == 0
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)


# ------------------------------------------------------------------ event-driven walks


class EventLog:
    """Feeds a real observer's events to an EventWalker and remembers when the last came."""

    def __init__(self, walker: EventWalker):
        self.walker = walker
        self.count = 0
        self.last_at = 0.0

    def __call__(self, *paths: str) -> None:
        self.walker.note(*paths)
        self.count += 1
        self.last_at = time.monotonic()

    def settle(self, *, since: int, quiet_s: float = 0.4, timeout_s: float = 10.0) -> None:
        """Wait until an event after the `since`-th arrived and none came for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count > since and time.monotonic() - self.last_at >= quiet_s:
                return
            time.sleep(0.05)
        raise AssertionError("no file-system events arrived")


SHARD_KEYS = shard_keys(16)


def shard_of_path(path: str) -> str:
    return shard_of(path, len(SHARD_KEYS))


def tick_snapshot(root: Path, cache: Path, live: LiveTree) -> TreeSnapshot:
    return snapshot_tree(
        root, SHARD_KEYS, shard_of_path, max_file_bytes=MAX_FILE_BYTES, walk_cache=cache, live=live
    )


@pytest.fixture
def watched_tree(tmp_path: Path, request: pytest.FixtureRequest):
    """(root, walker, event log, cache path, first walk, live tree): a generated tree
    watched by a real observer (`coderag watch`'s own), backdated, after a first (full) tick."""
    from coderag_assets.cli.watch import start_fs_events

    root = tmp_path / "tree"
    root.mkdir()
    generated_tree(root)
    if request.param == "git":
        if shutil.which("git") is None:
            pytest.skip("git is not installed")
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree")
    walker = EventWalker(root, full_check_s=3600)
    log = EventLog(walker)
    observer = start_fs_events(root, log)
    if observer is None:
        pytest.skip("no file-system notifications here")
    try:
        (root / "probe.txt").write_text("events flow\n")
        log.settle(since=0)
        count = log.count
        backdate(root)
        log.settle(since=count)
        cache = tmp_path / "index" / TREE_CACHE_FILE
        live = LiveTree(walker)
        snapshot = tick_snapshot(root, cache, live)
        assert snapshot.detection is not None
        assert snapshot.detection.method == METHOD_WALK  # the first walk stats every file
        first = walker.last_walk
        assert first is not None
        assert first.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)
        yield root, walker, log, cache, first, live
    finally:
        observer.stop()


@pytest.mark.parametrize("watched_tree", ["plain", "git"], indirect=True)
@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__ for change in CHANGES])
def test_event_driven_walk_finds_exactly_what_a_full_walk_finds(
    watched_tree, change: Callable[[Path], None]
) -> None:
    root, walker, log, cache, first, live = watched_tree
    before = live.last
    count = log.count
    change(root)
    log.settle(since=count)

    snapshot = tick_snapshot(root, cache, live)  # what a `coderag watch` tick computes
    full = snapshot_tree(root, SHARD_KEYS, shard_of_path, max_file_bytes=MAX_FILE_BYTES)
    assert snapshot.files == full.files
    assert snapshot.skip_reasons == full.skip_reasons
    assert snapshot.paths_by_shard == full.paths_by_shard
    assert snapshot.fingerprints == full.fingerprints
    assert before is not None and snapshot.fingerprints != before.fingerprints
    walk, detection = walker.last_walk, snapshot.detection
    assert walk is not None and detection is not None
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)
    assert walk.files != first.files
    if "ignore" in change.__name__:
        assert detection.method == METHOD_WALK and detection.reason  # rules changed: all listed
    else:
        assert detection.method == METHOD_EVENTS
        assert walk.untouched_dirs > 0  # directories no event named were not even stat'ed


@pytest.mark.parametrize("watched_tree", ["plain"], indirect=True)
def test_without_events_only_the_periodic_full_check_sees_a_change(watched_tree) -> None:
    """What the test above relies on: a change whose event is lost stays unseen by the
    event-driven walk, until the full check (or `invalidate`) stats every file again."""
    root, walker, _log, cache, first, _live = watched_tree
    walker.note = lambda *paths: None  # events are lost from here on
    edit(root)
    time.sleep(0.5)
    walk, detection = walker.walk(cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method == METHOD_EVENTS
    assert walk.files == first.files  # missed: nothing named the edited directory
    walker.invalidate()
    walk, detection = walker.walk(cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method in (METHOD_REUSED, METHOD_WALK)
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES) != first.files
    walker.full_check_s = 0.0
    with (root / "pkg1" / "sub" / "mod0.py").open("a") as handle:
        handle.write("\n# edited again\n")
    walk, detection = walker.walk(cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method in (METHOD_REUSED, METHOD_WALK)
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)


@pytest.mark.parametrize("watched_tree", ["plain"], indirect=True)
def test_a_root_made_again_is_stat_walked_on_every_tick(watched_tree) -> None:
    """Deleting and re-creating the root leaves the observer on the old directory: no event
    will come, so every later walk stats every file."""
    root, walker, _log, cache, _first, _live = watched_tree
    moved = root.with_name("tree_old")
    root.rename(moved)
    shutil.copytree(moved, root, symlinks=True)
    backdate(root)
    walk, detection = walker.walk(cache, max_file_bytes=MAX_FILE_BYTES)
    assert walker.events_stopped
    edit(root)  # no event reaches the walker now
    walk, detection = walker.walk(cache, max_file_bytes=MAX_FILE_BYTES)
    assert detection.method != METHOD_EVENTS
    assert walk.files == scan_tree(root, max_file_bytes=MAX_FILE_BYTES)
