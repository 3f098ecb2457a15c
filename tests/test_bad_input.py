"""Bad input never loses the last good index: failures are clear, skips are recorded."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from coderag_assets import freshness, segments
from coderag_assets.cli import main as cli_main
from coderag_assets.partitions import shard_of
from coderag_assets.query import QueryService, index_status
from coderag_assets.runs import get_instance, run_index
from coderag_assets.settings import load_settings
from coderag_assets.store import CheckOutcome, IndexStore


def _index(root: Path, data_dir: Path):
    settings = load_settings(data_dir=data_dir, workers=1).with_root(root.resolve())
    return settings, run_index(settings, instance=get_instance(settings))


def test_empty_repository_indexes_to_an_empty_searchable_index(tmp_path, data_dir) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    settings, summary = _index(root, data_dir)
    assert summary.success, summary.error
    assert summary.files == 0 and summary.chunks == 0
    service = QueryService(IndexStore.for_root(data_dir, root.resolve()), settings)
    try:
        assert service.search("anything at all", mode="hybrid") == []
        assert service.search("anything", mode="bm25") == []
    finally:
        service.close()


def test_file_vanishing_between_walk_and_read_is_a_recorded_skip(
    repo_copy, data_dir, monkeypatch
) -> None:
    real_walk = freshness.walk_root

    def walk_then_delete(root, cache_path, **kwargs):
        walked = real_walk(root, cache_path, **kwargs)
        (root / "pyutils" / "retry.py").unlink(missing_ok=True)
        return walked

    # The walk that plans the update is the one its run reads (the run does not walk again).
    monkeypatch.setattr(freshness, "walk_root", walk_then_delete)
    _, summary = _index(repo_copy, data_dir)
    assert summary.success, summary.error
    assert summary.skipped.get("vanished") == 1
    status = index_status(IndexStore.for_root(data_dir, repo_copy.resolve()))
    assert status["skipped"].get("vanished") == 1


def test_failed_run_keeps_last_good_index_searchable(repo_copy, data_dir, capsys) -> None:
    settings, first = _index(repo_copy, data_dir)
    assert first.success
    store = IndexStore.for_root(data_dir, repo_copy.resolve())
    version = index_status(store)["version"]
    moved = repo_copy.with_name("moved-away")
    shutil.move(repo_copy, moved)  # the indexed root disappears
    second = run_index(settings, instance=get_instance(settings))
    assert not second.success
    assert "does not exist" in second.error or "No such file" in second.error
    assert index_status(store)["version"] == version
    code = cli_main(
        ["--data-dir", str(data_dir), "search", "matrix", "--root", str(moved), "--json"]
    )
    assert code == 2  # a different root: not indexed
    service = QueryService(store, settings)
    try:
        assert (
            service.search("multiply two matrices", mode="bm25")[0].path == "engine/src/matrix.rs"
        )
    finally:
        service.close()


def test_index_failing_its_checks_is_not_published(
    repo_copy, data_dir, monkeypatch, capsys
) -> None:
    settings, _first = _index(repo_copy, data_dir)
    store = IndexStore.for_root(data_dir, repo_copy.resolve())
    version = index_status(store)["version"]
    (repo_copy / "pyutils" / "extra.py").write_text("def brand_new_function():\n    return 1\n")

    def failing_validation(store, shard_segments, dim, model_id, **options):
        return [CheckOutcome("every_chunk_has_vector", False, "simulated corruption")]

    monkeypatch.setattr(segments.publishing, "validate_segments", failing_validation)
    second = run_index(settings, instance=get_instance(settings))
    assert not second.success
    assert "simulated corruption" in second.error
    assert index_status(store)["version"] == version
    assert not list(store.base.glob(".index.*.building.duckdb"))
    assert second.gates["every_chunk_has_vector"]["state"] == "failed"
    # The CLI prints the failure and the gate, never a summary of the run's numbers.
    (repo_copy / "pyutils" / "extra.py").write_text("def another_new_function():\n    return 2\n")
    capsys.readouterr()
    assert cli_main(["--data-dir", str(data_dir), "index", str(repo_copy), "--quiet"]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert "gate every_chunk_has_vector failed: simulated corruption" in printed.err
    assert "error: indexing failed:" in printed.err and "stays live" in printed.err


def test_disk_full_while_indexing_is_a_clear_error_and_the_next_index_succeeds(
    repo_copy, data_dir, monkeypatch, capsys
) -> None:
    settings, first = _index(repo_copy, data_dir)
    assert first.success, first.error
    store = IndexStore.for_root(data_dir, repo_copy.resolve())
    version = index_status(store)["version"]
    service = QueryService(store, settings)
    try:
        before = service.search("multiply two matrices", mode="bm25")
    finally:
        service.close()
    (repo_copy / "pyutils" / "finance.py").write_text(
        "def quarterly_revenue_forecast(history):\n    return sum(history[-4:]) / 4\n"
    )
    shard = shard_of("pyutils/finance.py", settings.shard_count)

    def save_until_full(postings, directory: Path) -> None:
        (directory / segments.TERMS_FILE).write_bytes(b"\x93NUMPY half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(segments.Postings, "save", save_until_full)
    capsys.readouterr()
    index_args = ["--data-dir", str(data_dir), "index", str(repo_copy), "--quiet"]
    assert cli_main(index_args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    # One line naming the file system, what could not be written and what to free.
    assert errors[0].startswith("error: file system "), errors
    assert f"the index could not write {store.base / 'segments' / shard}" in errors[0]
    assert "free space on " in errors[0]
    assert f"version {version} of the index stays live and searchable" in errors[0]
    monkeypatch.undo()
    assert index_status(store)["version"] == version
    assert not list(store.base.rglob(".building-*")) and not list(store.base.rglob(".*.tmp"))
    service = QueryService(store, settings)
    try:
        assert service.search("multiply two matrices", mode="bm25") == before
    finally:
        service.close()
    assert cli_main(index_args) == 0  # space freed
    service = QueryService(store, settings)
    try:
        found = service.search("quarterly_revenue_forecast", mode="bm25")
        assert found[0].path == "pyutils/finance.py"
    finally:
        service.close()


def test_cli_index_of_a_file_is_a_clear_error(tmp_path, data_dir, capsys) -> None:
    target = tmp_path / "file.py"
    target.write_text("x = 1\n")
    assert cli_main(["--data-dir", str(data_dir), "index", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_cli_rejects_bad_limit(limit, data_dir, capsys) -> None:
    assert cli_main(["--data-dir", str(data_dir), "search", "x", "--limit", limit]) == 2


def test_reader_keeps_its_snapshot_while_a_new_index_is_published(repo_copy, data_dir) -> None:
    settings, first = _index(repo_copy, data_dir)
    assert first.success
    store = IndexStore.for_root(data_dir, repo_copy.resolve())
    service = QueryService(store, settings)
    try:
        before = service.reader.search("quarterly_revenue_forecast", mode="bm25")
        (repo_copy / "pyutils" / "finance.py").write_text(
            "def quarterly_revenue_forecast(history):\n    return sum(history[-4:]) / 4\n"
        )
        second = run_index(settings, instance=get_instance(settings))
        assert second.success, second.error
        # the open reader still answers from its snapshot, consistently
        assert service.reader.search("quarterly_revenue_forecast", mode="bm25") == before
        assert service.reader.refresh() is True
        after = service.reader.search("quarterly_revenue_forecast", mode="bm25")
        assert after and after[0].path == "pyutils/finance.py"
        assert second.embedded >= 1 and second.reused > 0
    finally:
        service.close()
