"""A full file system: recognized wherever it surfaces, reported in one line, nothing lost.

The end-to-end tests run `coderag index` on a real, small tmpfs (mounted by the test; needs
root, as CI has) filled to within 1.5 MB and 3 MB of its size."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coderag_assets.cli import main as cli_main
from coderag_assets.disk_space import (
    INDEX_WRITER,
    INSTANCE_WRITER,
    NEARLY_FULL_BYTES,
    file_system_of,
    find_full_disk,
)
from coderag_assets.query import QueryService
from coderag_assets.segments import current_version
from coderag_assets.settings import load_settings
from coderag_assets.store import DiskFullError, IndexStore
from tests.conftest import data_dir_sharing_model

TMPFS_BYTES = 32 * 1024 * 1024


# ------------------------------------------------------------------ recognizing it


def test_an_out_of_space_oserror_names_its_path_and_file_system(tmp_path) -> None:
    target = tmp_path / "indexes" / "repo-1" / "chunks" / "3.parquet"
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    full = find_full_disk(error, instance_dir=tmp_path)
    assert full is not None
    assert full.path == target and full.writer == INDEX_WRITER
    expected = file_system_of(tmp_path)  # free bytes move with other writers: not compared
    assert (full.file_system.mount_point, full.file_system.fs_type) == (
        expected.mount_point,
        expected.fs_type,
    )
    assert full.file_system.total_bytes == expected.total_bytes


def test_disk_full_error_behind_a_wrapping_exception_is_found(tmp_path) -> None:
    path = tmp_path / "indexes" / "r" / "segments" / "d" / "abc"
    try:
        try:
            raise DiskFullError("writing the segment of shard d", path) from OSError(
                errno.ENOSPC, "No space left on device"
            )
        except DiskFullError as inner:
            raise RuntimeError("step failed") from inner
    except RuntimeError as outer:
        full = find_full_disk(outer, instance_dir=tmp_path)
    assert full is not None and full.path == path and full.writer == INDEX_WRITER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            (
                "coderag_assets.store.DiskFullError: disk full while writing the segment of "
                "shard d (/data/indexes/repo-1/segments/d/d76b); free some space and run "
                "`coderag index` again"
            ),
            Path("/data/indexes/repo-1/segments/d/d76b"),
        ),
        (
            (
                "_duckdb.FatalException: FATAL Error: Failed to create checkpoint because of "
                'error: Could not write file "/data/indexes/repo-1/.index.5.building.duckdb": '
                "No space left on device"
            ),
            Path("/data/indexes/repo-1/.index.5.building.duckdb"),
        ),
        (
            "OSError: [Errno 28] No space left on device: '/data/indexes/repo-1/root.json.tmp'",
            Path("/data/indexes/repo-1/root.json.tmp"),
        ),
    ],
)
def test_a_failed_steps_text_names_the_path_the_index_could_not_write(text, expected) -> None:
    full = find_full_disk([text], instance_dir=Path("/data"))
    assert full is not None and full.path == expected and full.writer == INDEX_WRITER
    if "disk full while" in text:  # CodeRAG's own DiskFullError also says what it was doing
        assert full.step == "writing the segment of shard d"
        assert " while writing the segment of shard d;" in full.message()


def test_sqlite_out_of_space_is_the_instance_storage(tmp_path) -> None:
    text = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database or disk is full"
    full = find_full_disk([text], instance_dir=tmp_path)
    assert full is not None and full.writer == INSTANCE_WRITER and full.path == tmp_path
    line = full.message(tmp_path, live_version=7)
    assert "\n" not in line
    assert f"file system {full.file_system.mount_point} (" in line
    assert "the Dagster instance's storage" in line
    assert "version 7 of the index stays live and searchable" in line


def test_a_sqlite_io_error_with_room_to_spare_is_not_called_a_full_disk(tmp_path) -> None:
    if file_system_of(tmp_path).free_bytes < NEARLY_FULL_BYTES:
        pytest.skip("the temporary directory's file system is nearly full itself")
    text = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) disk I/O error"
    assert find_full_disk([text], instance_dir=tmp_path) is None
    assert find_full_disk(RuntimeError("some other failure"), instance_dir=tmp_path) is None


# ------------------------------------------------------------------ on a real full tmpfs


@pytest.fixture
def small_file_system(tmp_path):
    """A 32 MB tmpfs mounted for the test (unmounted after)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _coderag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coderag_assets.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "CI": "true"},
        check=False,
    )


def _top_path(data: Path, root: Path, query: str) -> str | None:
    settings = load_settings(data_dir=data)
    service = QueryService(IndexStore.for_root(data, root.resolve()), settings, one_shot=True)
    try:
        results = service.search(query, mode="bm25", limit=1)
    finally:
        service.close()
    return results[0].path if results else None


def _fill(file_system: Path, leave_bytes: int) -> Path:
    filler = file_system / "filler"
    free = shutil.disk_usage(file_system).free
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(0, free - leave_bytes))
    return filler


@pytest.mark.parametrize("leave_mb", [1.5, 3.0])
def test_indexing_on_a_full_tmpfs_is_one_line_and_loses_nothing(
    leave_mb, small_file_system, repo_copy, data_dir
) -> None:
    data = data_dir_sharing_model(small_file_system / "data", data_dir)
    assert cli_main(["--data-dir", str(data), "index", str(repo_copy), "--quiet"]) == 0
    store = IndexStore.for_root(data, repo_copy.resolve())
    live = current_version(store.base)
    assert _top_path(data, repo_copy, "multiply two matrices") == "engine/src/matrix.rs"
    for module in range(30):  # new files: new chunks, segments and events to write
        functions = "\n".join(
            f"def forecast_{module}_{n}(history):\n    return sum(history[-{n + 1}:]) * {n}\n"
            for n in range(40)
        )
        (repo_copy / f"forecast_{module}.py").write_text(functions)

    # The index of a checkout that was deleted since: the error says `coderag prune` frees it.
    gone = store.base.with_name("gone-0123456789")
    shutil.copytree(store.base, gone)
    (gone / "root.json").write_text(json.dumps({"root": str(repo_copy.with_name("gone"))}))

    filler = _fill(small_file_system, int(leave_mb * 1024 * 1024))
    failed = _coderag("--data-dir", str(data), "index", str(repo_copy), "--quiet")

    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith(f"error: file system {small_file_system} (tmpfs) is full: ")
    assert INSTANCE_WRITER in lines[0] or f"{INDEX_WRITER} could not write {data}" in lines[0]
    assert f"free space on {small_file_system} (the data directory {data} holds " in lines[0]
    assert "; `coderag prune` frees " in lines[0]
    assert f"version {live} of the index stays live and searchable" in lines[0]
    assert "Traceback" not in failed.stdout
    assert current_version(store.base) == live
    assert _top_path(data, repo_copy, "multiply two matrices") == "engine/src/matrix.rs"

    filler.unlink()  # space freed: the next run completes
    again = _coderag("--data-dir", str(data), "index", str(repo_copy), "--quiet")
    assert again.returncode == 0, again.stderr
    assert current_version(store.base) != live
    assert _top_path(data, repo_copy, "forecast_7_3") == "forecast_7.py"
