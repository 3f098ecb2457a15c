"""Incremental updates end to end: change a copy of the fixture repository, let the watcher
evaluate the change sensor and run what it requests (shards + index, in-process, real model),
then search. Also the bad input the issue lists that can be reproduced deterministically.

The fixture repository is indexed once for the module; every test starts from that state
(the tree and the index data are restored with their mtimes, at the same root path).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from coderag_assets import indexing
from coderag_assets import settings as settings_module
from coderag_assets.checks import shard_consistency
from coderag_assets.freshness import TORN_SUFFIX, diff_files, index_freshness, snapshot_tree
from coderag_assets.partitions import shard_of
from coderag_assets.query import QueryService, index_status
from coderag_assets.runs import get_instance, run_index, run_shards, sized_for_tree
from coderag_assets.scans import save_scan
from coderag_assets.sensors import FRESHNESS_CHECK_NAME
from coderag_assets.settings import Settings, load_settings, settings_env
from coderag_assets.store import IndexStore, connect_index, read_meta
from coderag_assets.watcher import Watcher
from tests.conftest import copy_fixture_repo

SHARDS = 16
PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """The indexed fixture repository, and copies of its tree and index data to restore."""
    base = tmp_path_factory.mktemp("incremental")
    root = (base / "repo").resolve()
    copy_fixture_repo(root)
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root)
    instance = get_instance(settings)
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    store = IndexStore.for_root(data_dir, root)
    shutil.copytree(root, base / "tree-copy", symlinks=True)
    shutil.copytree(store.base, base / "store-copy")
    return settings, instance, store, base


@pytest.fixture
def repo(pristine):
    """(settings, instance, store, watcher) at the indexed state; the watcher starts idle."""
    settings, instance, store, base = pristine
    shutil.rmtree(settings.root, ignore_errors=True)
    shutil.copytree(base / "tree-copy", settings.root, symlinks=True)
    shutil.rmtree(store.base)
    shutil.copytree(base / "store-copy", store.base)
    watcher = Watcher(settings, instance)
    assert watcher.tick() is None, watcher.last_skip
    return settings, instance, store, watcher


def search_paths(
    store: IndexStore, settings: Settings, query: str, mode: str = "bm25"
) -> list[str]:
    service = QueryService(store, settings)
    try:
        return [result.path for result in service.search(query, mode=mode, limit=5)]
    finally:
        service.close()


def chunk_rows(store: IndexStore, path: str) -> list[tuple[str, str]]:
    con = connect_index(store.index_path)
    try:
        return con.execute(
            "SELECT content_hash, content FROM chunks WHERE path = ? ORDER BY start_line", [path]
        ).fetchall()
    finally:
        con.close()


NEW_FUNCTION = '''

def quokka_checksum(values):
    """Fold the values into one quokka-flavoured checksum."""
    total = 0
    for value in values:
        total = (total * 31 + value) % 1_000_003
    return total
'''


# ------------------------------------------------------------------ changes


def test_edit_is_searchable_and_only_the_new_chunk_is_embedded(repo) -> None:
    settings, _, store, watcher = repo
    before = dict(chunk_rows(store, "pyutils/cache.py"))
    path = settings.root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    update = watcher.tick()
    assert update is not None and update.summary.success, update and update.summary.error
    assert update.shards == [shard_of("pyutils/cache.py", SHARDS)]
    assert (update.modified, update.added, update.deleted) == (1, 0, 0)
    after = dict(chunk_rows(store, "pyutils/cache.py"))
    new_hashes = set(after) - set(before)
    assert update.summary.embedded == len(new_hashes) >= 1
    assert update.summary.reused >= len(set(after) & set(before)) >= 1
    assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/cache.py"
    assert search_paths(store, settings, "fold values into a checksum", "hybrid")[0] == (
        "pyutils/cache.py"
    )
    assert watcher.tick() is None  # nothing left to do
    assert index_freshness(store).up_to_date


def test_delete_removes_the_file_from_results_and_embeds_nothing(repo) -> None:
    settings, _, store, watcher = repo
    assert "server/router.go" in search_paths(store, settings, "Router Handle route")
    (settings.root / "server" / "router.go").unlink()
    update = watcher.tick()
    assert update.summary.success and update.deleted == 1
    assert update.summary.embedded == 0
    assert "server/router.go" not in search_paths(store, settings, "Router Handle route")
    assert chunk_rows(store, "server/router.go") == []


def test_rename_moves_results_and_reuses_every_vector(repo) -> None:
    settings, _, store, watcher = repo
    old_hashes = [h for h, _ in chunk_rows(store, "lib/slugify.rb")]
    (settings.root / "lib" / "slugify.rb").rename(settings.root / "lib" / "slug_helpers.rb")
    update = watcher.tick()
    assert update.summary.success and (update.added, update.deleted) == (1, 1)
    assert set(update.shards) == {
        shard_of(p, SHARDS) for p in ("lib/slugify.rb", "lib/slug_helpers.rb")
    }
    assert update.summary.embedded == 0
    assert [h for h, _ in chunk_rows(store, "lib/slug_helpers.rb")] == old_hashes
    results = search_paths(store, settings, "slugify")
    assert "lib/slug_helpers.rb" in results and "lib/slugify.rb" not in results


def test_changes_made_while_nothing_watched_are_picked_up(repo) -> None:
    settings, instance, store, _ = repo
    (settings.root / "pyutils" / "offline_edit.py").write_text(
        "def penguin_route():\n    return 7\n"
    )
    fresh_watcher = Watcher(settings, instance)  # starts from the published index
    update = fresh_watcher.tick()
    assert update.summary.success and update.added == 1
    assert search_paths(store, settings, "penguin_route")[0] == "pyutils/offline_edit.py"


def test_freshness_reports_changes_until_the_update(repo) -> None:
    settings, _, store, watcher = repo
    assert index_freshness(store).up_to_date
    path = settings.root / "web" / "src" / "debounce.ts"
    path.write_text(path.read_text() + "\n// touched\n")
    (settings.root / "config" / "settings.yaml").unlink()
    stale = index_freshness(store)
    assert not stale.up_to_date
    assert (stale.changes.modified, stale.changes.deleted) == (
        ["web/src/debounce.ts"],
        ["config/settings.yaml"],
    )
    assert "2 files changed" in stale.describe()
    reader = QueryService(store, settings)  # a long-lived reader holds the old index open
    try:
        update = watcher.tick()
        assert update.summary.success
        assert index_freshness(store).up_to_date  # judged on the new file, not the reader's
    finally:
        reader.close()
    assert latest_freshness_verdict(watcher) is False  # recorded when the change was seen
    assert watcher.tick() is None
    assert latest_freshness_verdict(watcher) is True  # and again once the index caught up


def latest_freshness_verdict(watcher: Watcher) -> bool | None:
    key = dg.AssetCheckKey(dg.AssetKey("search_index"), FRESHNESS_CHECK_NAME)
    history = watcher.instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    if not history or history[0].event is None:
        return None
    return history[0].event.dagster_event.event_specific_data.passed


# ------------------------------------------------------------------ coderag index


def test_index_of_an_unchanged_tree_is_up_to_date_without_a_run(repo) -> None:
    settings, instance, store, _ = repo
    runs_before = instance.get_runs_count()
    summary = run_index(settings, instance=instance)
    assert summary.success and summary.up_to_date and summary.embedded == 0
    assert summary.run_id == "" and instance.get_runs_count() == runs_before
    assert summary.chunks == index_status(store)["chunks"]
    # `reused`: the vectors the index holds shard by shard, as a run of every shard counts them
    con = connect_index(store.index_path)
    try:
        rows = con.execute("SELECT path, content_hash FROM chunks").fetchall()
    finally:
        con.close()
    per_shard = {(shard_of(path, summary.shard_count), text) for path, text in rows}
    assert summary.reused == len(per_shard) > 0


def test_coderag_index_of_an_unchanged_tree_never_imports_dagster(repo) -> None:
    """The no-op `coderag index` (an agent's "make sure it is fresh" before each search)
    plans without Dagster: neither its import nor its instance (≈ 1 s at 68k files)."""
    settings, *_ = repo
    probe = (
        "import json, sys\n"
        "from coderag_assets.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('dagster loaded:', 'dagster' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "--data-dir", str(settings.data_dir), "index",
         str(settings.root), "--json", "-q"],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["up_to_date"] and summary["run_id"] == "" and summary["chunks"] > 0
    assert summary["reused"] > 0 and summary["detection"]["method"] == "reused_walk"
    assert "dagster loaded: False" in done.stderr


def test_index_totals_come_from_the_manifest_and_agree_with_sql(repo) -> None:
    settings, instance, store, _ = repo
    (settings.root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (settings.root / "empty.txt").write_text("")
    assert run_index(settings, instance=instance).success
    con = connect_index(store.index_path)
    try:
        files, indexable, chunks = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE skip_reason IS NULL), "
            "(SELECT count(*) FROM chunks) FROM files"
        ).fetchone()
        skipped = dict(
            con.execute(
                "SELECT skip_reason, count(*) FROM files WHERE skip_reason IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    assert skipped == {"binary": 1, "empty": 1}
    expected = (files, indexable, chunks, skipped)
    summary = run_index(settings, instance=instance)  # up to date: totals only
    assert (summary.files, summary.indexable_files, summary.chunks, summary.skipped) == expected
    # An index whose segments predate recorded skip counts is counted by SQL, the same.
    manifest = store.base / "manifests" / f"{summary.version}.json"
    payload = json.loads(manifest.read_text())
    del payload["meta"]["totals"]["skipped"]
    manifest.write_text(json.dumps(payload))
    again = run_index(settings, instance=instance)
    assert (again.files, again.indexable_files, again.chunks, again.skipped) == expected


def test_index_runs_only_the_changed_shards(repo) -> None:
    settings, instance, store, _ = repo
    path = settings.root / "pyutils" / "retry.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    assert summary.shards == [shard_of("pyutils/retry.py", SHARDS)]
    assert 1 <= summary.embedded <= 2
    assert summary.chunks == index_status(store)["chunks"]  # totals of the whole index
    assert summary.changes["modified"] == ["pyutils/retry.py"]


def test_a_new_index_gets_the_shards_its_size_calls_for_and_keeps_them(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no CODERAG_SHARDS, the first update sizes the index from its walk (here: 52 files
    against a threshold of 2 chunks a shard, so 64 shards), records the count, and every later
    update, the watcher and the UI's definitions use the recorded count."""
    monkeypatch.delenv("CODERAG_SHARDS", raising=False)
    monkeypatch.setattr(settings_module, "CHUNKS_PER_SHARD_ADVISED", 2)
    monkeypatch.setattr(settings_module, "CHUNKS_PER_SMALL_SHARD", 2)
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    (root / "generated").mkdir()
    for number in range(40):
        (root / "generated" / f"module_{number}.py").write_text(
            f"def generated_{number}():\n    return {number}\n"
        )
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root)
    assert settings.shards_unsized and settings.shard_count == SHARDS
    assert sized_for_tree(settings).shard_count == 64  # what `coderag watch` and `ui` do
    instance = get_instance(settings)
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    assert summary.shard_count == 64 and len(summary.shards) == 64
    store = IndexStore.for_root(data_dir, root)
    assert store.recorded_shard_count() == 64
    con = connect_index(store.index_path)
    try:
        assert read_meta(con)["shard_count"] == 64  # the published version's
    finally:
        con.close()

    again = load_settings(data_dir=data_dir, workers=2).with_root(root)
    assert again.shard_count == 64 and not again.shards_unsized
    path = root / "pyutils" / "retry.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    edit = run_index(settings, instance=instance)  # the stale unsized settings too
    assert edit.success, edit.error
    assert edit.shards == [shard_of("pyutils/retry.py", 64)] and edit.shard_count == 64
    assert search_paths(store, again, "quokka checksum")[0] == "pyutils/retry.py"


def test_full_rebuild_rehashes_everything_and_embeds_nothing(repo) -> None:
    settings, instance, store, _ = repo
    chunks = index_status(store)["chunks"]
    summary = run_index(settings, instance=instance, full=True)
    assert summary.success, summary.error
    assert len(summary.shards) == SHARDS and summary.embedded == 0
    assert summary.chunks == chunks
    assert any(  # a full rebuild looks at the tree itself
        "no planner scan in the run config" in line
        for line in run_messages(instance, summary.run_id)
    )


# ------------------------------------------------------------------ one walk per update


def run_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [record.user_message for record in instance.all_logs(run_id)]


@pytest.fixture
def run_walks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The roots walked inside runs (in-process steps; the planners' walks are not counted)."""
    walked: list[Path] = []
    real_scan_tree = indexing.scan_tree

    def counting_scan_tree(root: Path, **kwargs):
        walked.append(root)
        return real_scan_tree(root, **kwargs)

    monkeypatch.setattr(indexing, "scan_tree", counting_scan_tree)
    return walked


def test_index_walks_the_tree_once_and_writes_the_manifest_a_walk_would(
    repo, run_walks, tmp_path
) -> None:
    settings, instance, store, _ = repo
    settings = replace(settings, executor="in_process")
    path = settings.root / "pyutils" / "retry.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    (settings.root / "pyutils" / "brand_new.py").write_text("def brand_new():\n    return 1\n")
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    assert run_walks == []  # the run read the rows of the walk that planned it
    assert any("from the planner's scan" in m for m in run_messages(instance, summary.run_id))
    limit = settings.max_file_bytes
    walked_store = IndexStore(tmp_path / "walked", settings.root)
    for shard in summary.shards:
        file_stats = indexing.scan_shards(
            settings.root, [shard], lambda p: shard_of(p, SHARDS), max_file_bytes=limit
        )[shard]
        indexing.build_manifest(walked_store, shard, file_stats, max_file_bytes=limit)
        walked = pq.read_table(walked_store.shard_file("manifest", shard))
        assert pq.read_table(store.shard_file("manifest", shard)).equals(walked)
    assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/retry.py"


def test_watch_runs_on_the_sensors_walk(repo, run_walks) -> None:
    settings, instance, _, watcher = repo
    path = settings.root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    update = watcher.tick()
    assert update is not None and update.summary.success, update and update.summary.error
    assert run_walks == []
    assert any(
        "from the planner's scan" in m for m in run_messages(instance, update.summary.run_id)
    )


def test_a_run_given_a_stale_scan_walks_and_logs_why(repo, run_walks) -> None:
    settings, instance, store, _ = repo
    path = settings.root / "pyutils" / "retry.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    shard = shard_of("pyutils/retry.py", SHARDS)
    limit = settings.max_file_bytes
    tree = snapshot_tree(
        settings.root, [shard], lambda p: shard_of(p, SHARDS), max_file_bytes=limit
    )
    stale = replace(tree, scanned_at=time.time() - 3600)  # e.g. queued behind a long run
    scan = save_scan(store, stale, [shard], shard_count=SHARDS, max_file_bytes=limit)
    summary = run_shards(
        replace(settings, executor="in_process"), [shard], instance=instance, scan=scan
    )
    assert summary.success, summary.error
    assert run_walks == [settings.root]
    (line,) = [m for m in run_messages(instance, summary.run_id) if "walked the root" in m]
    assert f"scan {scan} is 36" in line and "s old (limit 600 s)" in line
    assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/retry.py"


# ------------------------------------------------------------------ bad input


def test_file_changed_again_during_its_run_is_caught_by_the_next_tick(repo, monkeypatch) -> None:
    settings, _, store, watcher = repo
    path = settings.root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    real_build_chunks = indexing.build_chunks

    def edit_after_the_manifest(*args, **kwargs):  # the manifest has hashed the first edit
        path.write_text(path.read_text() + "\n\ndef second_edit_marker():\n    return 2\n")
        return real_build_chunks(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_chunks", edit_after_the_manifest)
    first = watcher.tick()
    monkeypatch.setattr(indexing, "build_chunks", real_build_chunks)
    assert first.summary.success
    # the run chunked the text its manifest hashed (each file is read once), not the second edit
    first_contents = [content for _, content in chunk_rows(store, "pyutils/cache.py")]
    assert sum("def quokka_checksum" in c for c in first_contents) == 1
    assert not any("second_edit_marker" in c for c in first_contents)
    second = watcher.tick()
    assert second is not None, "the second write must trigger another update"
    assert second.summary.success and second.summary.embedded >= 1
    contents = [content for _, content in chunk_rows(store, "pyutils/cache.py")]
    assert sum("second_edit_marker" in c for c in contents) == 1
    assert sum("def quokka_checksum" in c for c in contents) == 1
    assert index_freshness(store).up_to_date
    assert watcher.tick() is None


def test_file_replaced_by_a_directory(repo) -> None:
    settings, _, store, watcher = repo
    guide = settings.root / "docs" / "guide.md"
    guide.unlink()
    guide.mkdir()
    (guide / "index.md").write_text("# Walrus handbook\n\nHow to feed a walrus on deploy day.\n")
    update = watcher.tick()
    assert update.summary.success, update.summary.error
    assert chunk_rows(store, "docs/guide.md") == []
    assert search_paths(store, settings, "walrus handbook")[0] == "docs/guide.md/index.md"


def test_deleted_root_fails_clearly_and_keeps_the_last_index(repo) -> None:
    settings, instance, store, watcher = repo
    version = index_status(store)["version"]
    shutil.rmtree(settings.root)
    assert watcher.tick() is None
    assert "does not exist" in watcher.last_skip
    failed = run_shards(settings, ["3"], instance=instance)
    assert not failed.success and "does not exist" in failed.error
    assert index_status(store)["version"] == version
    assert search_paths(store, settings, "multiply two matrices")[0] == "engine/src/matrix.rs"
    assert index_freshness(store).root_error


def test_torn_shard_file_from_a_killed_run_is_recomputed(repo) -> None:
    settings, _, store, watcher = repo
    shard = shard_of("engine/src/matrix.rs", SHARDS)
    chunks_file = store.shard_file("chunks", shard)
    chunks_file.write_bytes(chunks_file.read_bytes()[: chunks_file.stat().st_size // 2])
    (chunks_file.parent / f".{chunks_file.name}.deadbeef.tmp").write_bytes(b"PAR1 partial")
    total = index_status(store)["chunks"]
    update = watcher.tick()
    assert update is not None and update.shards == [shard]
    assert update.summary.success, update.summary.error
    assert update.summary.embedded == 0  # vectors come back from the shard file / cache
    assert index_status(store)["chunks"] == total
    assert chunks_file.with_name(chunks_file.name + TORN_SUFFIX).exists()
    assert search_paths(store, settings, "multiply two matrices")[0] == "engine/src/matrix.rs"


def test_run_killed_after_chunking_is_finished_by_the_next_tick(repo, monkeypatch) -> None:
    settings, instance, store, watcher = repo
    path = settings.root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + NEW_FUNCTION)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what SIGINT does to an in-process run

    monkeypatch.setattr(indexing, "build_embeddings", killed)
    interrupted = watcher.tick()
    monkeypatch.undo()
    assert not interrupted.summary.success and "index_shard" in interrupted.summary.error
    assert instance.get_run_by_id(interrupted.summary.run_id).status in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    )
    assert search_paths(store, settings, "quokka_checksum")[:1] != ["pyutils/cache.py"]
    repaired = watcher.tick()  # same cursor: the change was already requested
    assert repaired is not None, "the half-done shard must be run again"
    assert repaired.summary.success and repaired.summary.embedded >= 1
    assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/cache.py"
    assert watcher.tick() is None


# ------------------------------------------------------------------ coderag watch


def test_watch_command_updates_then_stops_promptly_on_sigterm(repo) -> None:
    """The CLI end to end: an edit becomes a JSON update line; SIGTERM in the middle of a
    large update stops the process within seconds, marks its run failed, and the next
    update finishes the interrupted work."""
    settings, instance, store, _ = repo
    command = [
        sys.executable,
        "-c",
        "import sys; from coderag_assets.cli import main; sys.exit(main())",
        "--data-dir",
        str(settings.data_dir),
        "watch",
        str(settings.root),
        "--json",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR
    )
    stderr_lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [stderr_lines.put(line) for line in process.stderr], daemon=True
    ).start()
    try:
        wait_for_line(stderr_lines, "embedding model ready")
        path = settings.root / "pyutils" / "cache.py"
        path.write_text(path.read_text() + NEW_FUNCTION)
        update = json.loads(process.stdout.readline())
        assert update["success"] and update["modified"] == 1 and update["embedded"] >= 1
        assert update["shards"] == [shard_of("pyutils/cache.py", SHARDS)]
        assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/cache.py"
        burst = settings.root / "burst"
        burst.mkdir()
        for i in range(260):  # more than 256 chunks: the worker pool, a long update
            (burst / f"module_{i:03}.py").write_text(
                f"def burst_function_{i}(value):\n    return value * {i} + {i * i}\n"
            )
        wait_for_line(stderr_lines, "updating: 260 added")
        time.sleep(0.5)
        stop_sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
        stop_seconds = time.monotonic() - stop_sent
    finally:
        if process.poll() is None:
            process.kill()
    assert exit_code == 0
    assert stop_seconds < 8, f"took {stop_seconds:.1f} s to stop"
    assert not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert search_paths(store, settings, "quokka_checksum")[0] == "pyutils/cache.py"
    finishing = Watcher(settings, instance).tick()  # a new watch picks up where it stopped
    assert finishing is not None and finishing.summary.success, finishing.summary.error
    assert search_paths(store, settings, "burst_function_259")[0] == "burst/module_259.py"


def wait_for_line(lines: queue.Queue[str], text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"no {text!r} in the output of coderag watch: {''.join(seen)}")


# ------------------------------------------------------------------ index checks


def shard_check(store: IndexStore):
    con = connect_index(store.index_path)
    try:
        return shard_consistency(store, con, read_meta(con))
    finally:
        con.close()


def edit_index(store: IndexStore, statement: str) -> None:
    """Change the published index file in place (to simulate a damaged or older index)."""
    con = duckdb.connect(str(store.index_path))
    try:
        con.execute(statement)
    finally:
        con.close()


def drop_chunks_of(store: IndexStore, path: str) -> None:
    """Make the published `chunks` view lose one file's chunks (a damaged SQL surface)."""
    con = duckdb.connect(str(store.index_path))
    try:
        (definition,) = con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'chunks'"
        ).fetchone()
        select = definition.split(" AS ", 1)[1].rstrip().rstrip(";")
        quoted = path.replace("'", "''")
        con.execute(
            f"CREATE OR REPLACE VIEW chunks AS SELECT * FROM ({select}) WHERE path <> '{quoted}'"
        )
    finally:
        con.close()


def test_shard_check_passes_on_a_fresh_index(repo) -> None:
    _, _, store, _ = repo
    outcome, metadata = shard_check(store)
    assert outcome.passed, outcome.detail
    assert metadata["pending_shards"] == 0
    assert metadata["expected_chunks"] == index_status(store, with_freshness=False)["chunks"]


def test_shard_rewritten_after_the_build_is_pending_not_a_failure(repo) -> None:
    settings, instance, store, _ = repo
    path = "pyutils/cache.py"
    target = settings.root / path
    target.write_text(target.read_text() + "\n\ndef extra_helper(value):\n    return value * 2\n")
    shard = shard_of(path, SHARDS)
    summary = run_shards(settings, [shard], instance=instance, include_index=False)
    assert summary.success, summary.error
    outcome, metadata = shard_check(store)
    assert outcome.passed, outcome.detail
    assert metadata["pending_shards"] == 1
    assert f"rewritten since the build ({shard})" in outcome.detail


def test_shard_check_fails_when_the_index_lost_chunks_of_an_unchanged_shard(repo) -> None:
    _, _, store, _ = repo
    drop_chunks_of(store, "pyutils/cache.py")
    outcome, metadata = shard_check(store)
    assert not outcome.passed
    assert metadata["pending_shards"] == 0
    assert "shards hold" in outcome.detail


def test_shard_check_of_an_index_without_shard_versions_compares_all_shards(repo) -> None:
    _, _, store, _ = repo
    edit_index(store, "DELETE FROM meta WHERE key = 'chunk_shard_files'")
    outcome, metadata = shard_check(store)
    assert outcome.passed and "pending_shards" not in metadata, outcome.detail
    drop_chunks_of(store, "pyutils/cache.py")
    outcome, _ = shard_check(store)
    assert not outcome.passed and "shards hold" in outcome.detail


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_damaged_live_segment_is_repaired_by_the_next_index(repo, damage) -> None:
    from coderag_assets import segments

    settings, instance, store, _ = repo
    shard = shard_of("engine/src/matrix.rs", SHARDS)
    live = segments.read_current(store.base).segments[shard]
    chunk_file = store.base / live / segments.CHUNKS_FILE
    if damage == "deleted":
        chunk_file.unlink()
    else:
        chunk_file.write_bytes(chunk_file.read_bytes()[:100])
    summary = run_index(settings, instance=instance)
    assert summary.success and not summary.up_to_date, summary.reason
    assert shard in summary.shards and summary.embedded == 0
    assert search_paths(store, settings, "multiply two matrices")[0] == "engine/src/matrix.rs"


def test_run_dying_after_an_early_publish_is_finished_by_the_next_index(repo, monkeypatch) -> None:
    from coderag_assets import assets, segments

    settings, instance, store, _ = repo
    path = settings.root / "pyutils" / "cache.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    monkeypatch.setattr(assets, "EARLY_PUBLISH_MIN_VECTORS", 1)
    real_publish = segments.publish

    def final_publish_dies(*args, allow_pending: bool = False, **kwargs):
        if not allow_pending:
            raise OSError("simulated crash before the complete publish")
        return real_publish(*args, allow_pending=allow_pending, **kwargs)

    monkeypatch.setattr(segments, "publish", final_publish_dies)
    failed = run_index(settings, instance=instance)
    assert not failed.success
    assert index_status(store, with_freshness=False)["pending_vectors"] > 0  # early version live
    monkeypatch.setattr(segments, "publish", real_publish)
    repaired = run_index(settings, instance=instance)
    assert repaired.success and not repaired.up_to_date, repaired.reason
    assert index_status(store, with_freshness=False)["pending_vectors"] == 0
    assert search_paths(store, settings, "quokka checksum", mode="hybrid")[0] == "pyutils/cache.py"


def test_watch_wakes_on_changes_to_the_tree_but_not_on_reads(tmp_path: Path) -> None:
    """The sensor's own stat walk opens every directory: those reads must not wake the loop
    (nor cost the walk the GIL); writes, creations, deletions and moves must."""
    from coderag_assets.cli.watch import start_fs_events

    (tmp_path / "sub").mkdir()
    source = tmp_path / "sub" / "a.py"
    source.write_text("x = 1\n")
    wake = threading.Event()
    observer = start_fs_events(tmp_path, lambda *paths: wake.set())
    assert observer is not None
    try:
        snapshot_tree(tmp_path, ["0"], lambda path: "0")
        source.read_text()
        assert not wake.wait(0.5)
        changes = [
            lambda: source.write_text("x = 2\n"),
            lambda: (tmp_path / "sub" / "b.py").write_text("y = 1\n"),
            lambda: (tmp_path / "sub" / "b.py").unlink(),
            lambda: source.rename(tmp_path / "moved.py"),
            lambda: (tmp_path / "new_dir").mkdir(),
        ]
        for change in changes:
            wake.clear()
            change()
            assert wake.wait(5.0)
    finally:
        observer.stop()


def test_a_small_new_index_gets_one_shard(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture repository (a few hundred chunks) sized with the shipped thresholds: one
    shard, one embedding step; it indexes, answers, takes an edit and keeps its count."""
    monkeypatch.delenv("CODERAG_SHARDS", raising=False)
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root)
    assert settings.shards_unsized
    instance = get_instance(settings)
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    assert summary.shard_count == 1 and summary.shards == ["0"]
    store = IndexStore.for_root(data_dir, root)
    assert store.recorded_shard_count() == 1
    again = load_settings(data_dir=data_dir, workers=2).with_root(root)
    assert again.shard_count == 1 and not again.shards_unsized
    path = root / "pyutils" / "retry.py"
    path.write_text(path.read_text() + NEW_FUNCTION)
    edit = run_index(again, instance=instance)
    assert edit.success, edit.error
    assert edit.shards == ["0"] and edit.embedded >= 1
    assert search_paths(store, again, "quokka checksum")[0] == "pyutils/retry.py"
    monkeypatch.setenv("CODERAG_ROOT", str(root))
    from coderag_assets.definitions import build_definitions

    shard_assets = build_definitions(load_settings(data_dir=data_dir)).resolve_assets_def(
        "file_manifest"
    )
    assert shard_assets.partitions_def.get_partition_keys() == ["0"]  # the UI's partitions


def test_diff_files_names_each_kind_of_change_once() -> None:
    indexed = {"same.py": (10, 1), "grown.py": (10, 1), "touched.py": (10, 1), "gone.py": (5, 1)}
    current = {"same.py": (10, 1), "grown.py": (11, 1), "touched.py": (10, 2), "new.py": (3, 4)}
    changes = diff_files(current, indexed)
    assert changes.added == ["new.py"]
    assert changes.modified == ["grown.py", "touched.py"]
    assert changes.deleted == ["gone.py"]
    assert diff_files(indexed, indexed).count == 0
