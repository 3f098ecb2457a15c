"""Every index of a data directory (`coderag status --all`) and removing the ones nobody needs
(`coderag prune`): real indexes (the real chunker, segments and publish; deterministic
vectors, as in tests/test_segments.py), real locks, a real reader's lease."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderag_assets.cli import main as cli_main
from coderag_assets.inventory import list_indexes, prune_indexes
from coderag_assets.model_cache import MODELS_DIR, WORK_DIR_MARK, file_lock
from coderag_assets.search import IndexReader
from coderag_assets.segments import GC_GRACE_S, current_version
from coderag_assets.store import IndexStore
from tests.conftest import copy_fixture_repo
from tests.test_segments import SHARDS, build

PROJECT_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_indexes(tmp_path) -> tuple[Path, IndexStore, IndexStore]:
    """A data directory with the indexes of two copies of the fixture repository."""
    data = tmp_path / "data"
    stores = []
    for name in ("kept", "moved"):
        root = copy_fixture_repo(tmp_path / name).resolve()
        store = build(data, root)
        store.register(SHARDS)
        stores.append(store)
    return data, stores[0], stores[1]


def _status_all(data: Path, capsys) -> dict:
    capsys.readouterr()
    assert cli_main(["--data-dir", str(data), "status", "--all", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_all_lists_every_index_and_whether_its_root_exists(two_indexes, capsys) -> None:
    data, kept, moved = two_indexes
    shutil.rmtree(moved.root)  # the user deleted (or moved) that checkout
    listed = _status_all(data, capsys)
    by_root = {entry["root"]: entry for entry in listed["indexes"]}
    assert set(by_root) == {str(kept.root), str(moved.root)}
    assert by_root[str(kept.root)]["root_exists"] is True
    assert by_root[str(moved.root)]["root_exists"] is False
    for store in (kept, moved):
        entry = by_root[str(store.root)]
        assert entry["version"] == current_version(store.base)
        assert entry["chunks"] > 0 and entry["files"] > 0
        assert entry["disk_bytes"] > 100_000
        assert entry["published_at"] > 0
    assert listed["data_dir_bytes"]["indexes"] >= sum(e["disk_bytes"] for e in listed["indexes"])

    assert cli_main(["--data-dir", str(data), "status", "--all"]) == 0
    text = capsys.readouterr().out
    assert "1 index(es) of roots that no longer exist hold " in text and "coderag prune" in text


def test_prune_removes_the_indexes_of_missing_roots_only(two_indexes, capsys) -> None:
    data, kept, moved = two_indexes
    shutil.rmtree(moved.root)
    capsys.readouterr()
    assert cli_main(["--data-dir", str(data), "prune", "--dry-run"]) == 0
    assert f"would remove {moved.root} (" in capsys.readouterr().out
    assert moved.base.exists()

    assert cli_main(["--data-dir", str(data), "prune"]) == 0
    printed = capsys.readouterr().out
    assert f"removed {moved.root} (" in printed and "freed " in printed
    assert not moved.base.exists()
    assert [entry.root for entry in list_indexes(data)] == [kept.root]
    reader = IndexReader(kept.index_path)
    try:
        assert reader.search("LRUCache", mode="bm25")[0].path == "pyutils/cache.py"
    finally:
        reader.close()

    assert cli_main(["--data-dir", str(data), "prune"]) == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_an_existing_root_is_pruned_only_when_named(two_indexes, capsys) -> None:
    data, kept, moved = two_indexes
    assert prune_indexes(data).removed == []  # both roots exist
    assert cli_main(["--data-dir", str(data), "prune", str(kept.root)]) == 0
    assert not kept.base.exists() and moved.base.exists()
    capsys.readouterr()
    assert cli_main(["--data-dir", str(data), "prune", str(kept.root)]) == 2
    assert "no index of" in capsys.readouterr().err


HOLD_UPDATE_LOCK = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_an_index_being_updated_is_not_pruned(two_indexes, capsys) -> None:
    data, _, moved = two_indexes
    shutil.rmtree(moved.root)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UPDATE_LOCK, str(moved.update_lock_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_DIR,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert cli_main(["--data-dir", str(data), "prune"]) == 1
        assert "an update of this root is running" in capsys.readouterr().err
        assert moved.base.exists()
    finally:
        holder.kill()
        holder.wait()
    assert cli_main(["--data-dir", str(data), "prune"]) == 0
    assert not moved.base.exists()


def test_an_index_a_live_reader_holds_is_not_pruned(two_indexes, capsys) -> None:
    data, _, moved = two_indexes
    reader = IndexReader(moved.index_path)  # a warm reader (e.g. `coderag serve`) holds a lease
    try:
        reader.search("LRUCache", mode="bm25")
        shutil.rmtree(moved.root)
        result = prune_indexes(data)
        assert result.removed == []
        assert "a live reader holds version" in result.refused[moved.base]
        assert moved.base.exists()
    finally:
        reader.close()
    assert [entry.base for entry in prune_indexes(data).removed] == [moved.base]


def test_prune_also_collects_the_garbage_of_the_indexes_that_stay(two_indexes, capsys) -> None:
    data, kept, moved = two_indexes
    leftover = kept.shard_file("chunks", "0").with_name(".0.parquet.killed.tmp")
    leftover.write_bytes(b"\0" * 200_000)  # what a writer killed mid-write leaves
    old = time.time() - 2 * GC_GRACE_S
    os.utime(leftover, (old, old))
    capsys.readouterr()
    assert cli_main(["--data-dir", str(data), "prune"]) == 0
    assert "reclaimed " in capsys.readouterr().out
    assert not leftover.exists()
    assert kept.base.exists() and moved.base.exists()  # both roots exist: no index removed


def test_prune_removes_the_work_directory_of_a_killed_model_conversion(tmp_path) -> None:
    models = tmp_path / "data" / MODELS_DIR / "openvino"
    models.mkdir(parents=True)
    killed = models / f".minilm{WORK_DIR_MARK}abc123"  # SIGKILL mid-conversion leaves it
    killed.mkdir()
    (killed / "openvino_model.bin").write_bytes(b"\0" * 300_000)
    running = models / f".reranker{WORK_DIR_MARK}def456"
    running.mkdir()
    with file_lock(models / ".reranker.lock"):  # a conversion of that model is under way
        result = prune_indexes(tmp_path / "data")
    assert not killed.exists() and running.exists()
    assert result.reclaimed_bytes >= 300_000
