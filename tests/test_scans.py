"""`scans`: the planner's walk handed to the run. What the run reads back is exactly what a
walk lists; any doubt about a scan (gone, torn, stale, other settings) means walking."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from coderag_assets import indexing
from coderag_assets.freshness import TreeSnapshot, snapshot_tree
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.scans import (
    SCAN_KEEP_S,
    SCAN_MAX_AGE_S,
    ScanUnusableError,
    load_scan,
    save_scan,
    scan_dir,
    scan_path,
)
from coderag_assets.store import IndexStore

KEYS = shard_keys(16)
SMALL_LIMIT_BYTES = 600  # some fixture files are larger: `too_large` skips must survive the trip


def of(path: str) -> str:
    return shard_of(path, 16)


@pytest.fixture
def store(repo_copy: Path, tmp_path: Path) -> IndexStore:
    root = repo_copy.resolve()
    (root / ".env").write_text("SECRET=1\n")  # a `secret` skip
    (root / "empty.py").write_text("")  # an `empty` skip
    return IndexStore.for_root(tmp_path / "data", root)


def snapshot(store: IndexStore) -> TreeSnapshot:
    return snapshot_tree(store.root, KEYS, of, max_file_bytes=SMALL_LIMIT_BYTES)


def saved(store: IndexStore, shards=KEYS, tree: TreeSnapshot | None = None) -> str:
    scan_id = save_scan(
        store,
        tree or snapshot(store),
        shards,
        shard_count=len(KEYS),
        max_file_bytes=SMALL_LIMIT_BYTES,
    )
    assert scan_id is not None
    return scan_id


def loaded(store: IndexStore, scan_id: str, shards=KEYS, **overrides):
    options = {"shard_count": len(KEYS), "max_file_bytes": SMALL_LIMIT_BYTES, **overrides}
    return load_scan(store, scan_id, shards, **options)


def walked(store: IndexStore, shards=KEYS):
    return indexing.scan_shards(store.root, shards, of, max_file_bytes=SMALL_LIMIT_BYTES)


def test_a_scan_reads_back_exactly_what_a_walk_lists(store) -> None:
    by_shard = loaded(store, saved(store))
    assert by_shard == walked(store)
    reasons = {stat.skip_reason for stats in by_shard.values() for stat in stats}
    assert {None, "too_large", "secret", "empty"} <= reasons


def test_a_scan_of_some_shards_serves_those_shards(store) -> None:
    some = KEYS[::5]
    scan_id = saved(store, some)
    assert loaded(store, scan_id, some[:2]) == walked(store, some[:2])
    with pytest.raises(ScanUnusableError, match=r"does not cover shards \['1'\]"):
        loaded(store, scan_id, ["0", "1"])


@pytest.mark.parametrize(("setting", "value"), [("shard_count", 64), ("max_file_bytes", 1_000_000)])
def test_a_scan_made_with_other_settings_is_refused(store, setting, value) -> None:
    with pytest.raises(ScanUnusableError, match=f"made with {setting}="):
        loaded(store, saved(store), **{setting: value})


def test_a_scan_of_another_root_is_refused(store, tmp_path) -> None:
    scan_id = saved(store)
    other = IndexStore(store.base, tmp_path / "elsewhere")  # same directory, other root
    with pytest.raises(ScanUnusableError, match="made with root="):
        loaded(other, scan_id)


def test_a_stale_scan_is_refused(store) -> None:
    tree = snapshot(store)
    old = dataclasses.replace(tree, scanned_at=time.time() - SCAN_MAX_AGE_S - 60)
    with pytest.raises(ScanUnusableError, match="s old"):
        loaded(store, saved(store, tree=old))
    assert loaded(store, saved(store, tree=tree)) == walked(store)


def test_a_missing_or_torn_scan_is_refused(store) -> None:
    scan_id = saved(store)
    path = scan_path(store, scan_id)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ScanUnusableError, match="unreadable"):
        loaded(store, scan_id)
    path.unlink()
    with pytest.raises(ScanUnusableError, match="gone"):
        loaded(store, scan_id)


def test_only_ids_the_planner_makes_are_opened(store) -> None:
    with pytest.raises(ScanUnusableError, match="not one the planner makes"):
        loaded(store, "../../manifest/0")


def test_saving_a_scan_removes_scans_older_than_an_hour(store) -> None:
    old_scan = scan_path(store, saved(store))
    recent_scan = scan_path(store, saved(store))
    stray_tmp = scan_dir(store) / ".1234.parquet.deadbeef.tmp"  # left by a killed writer
    stray_tmp.write_bytes(b"PAR1")
    an_hour_ago = time.time() - SCAN_KEEP_S - 60
    for path in (old_scan, stray_tmp):
        os.utime(path, (an_hour_ago, an_hour_ago))
    newest = scan_path(store, saved(store))
    assert sorted(scan_dir(store).iterdir()) == sorted([recent_scan, newest])


def test_an_unwritable_scan_directory_leaves_the_run_to_walk(store) -> None:
    store.base.mkdir(parents=True)
    scan_dir(store).write_text("a file where the directory should be")
    assert save_scan(store, snapshot(store), KEYS, shard_count=16, max_file_bytes=1) is None


def test_the_run_walks_and_says_why_when_the_scan_is_unusable(store, monkeypatch) -> None:
    walks = []
    real_scan_tree = indexing.scan_tree
    monkeypatch.setattr(
        indexing, "scan_tree", lambda *a, **k: walks.append(1) or real_scan_tree(*a, **k)
    )

    def stats(scan_id: str):
        return indexing.shard_file_stats(
            store, KEYS, of, shard_count=16, max_file_bytes=SMALL_LIMIT_BYTES, scan_id=scan_id
        )

    scan_id = saved(store)
    by_shard, line = stats(scan_id)
    assert walks == [] and "from the planner's scan" in line and "no walk" in line
    assert by_shard == walked(store)
    walks.clear()
    scan_path(store, scan_id).unlink()
    by_shard, line = stats(scan_id)
    assert walks == [1] and line.startswith("walked the root") and "is gone" in line
    assert by_shard == walked(store)
    walks.clear()
    _, line = stats("")
    assert walks == [1] and "no planner scan in the run config" in line
