"""The change sensor, the index automation and the rebuild schedule, evaluated the way the
daemon evaluates them (`build_sensor_context` / `build_schedule_context`), on a copy of the
fixture repository. No model, no index runs: these tests are about what gets requested."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
from pathlib import Path

import dagster as dg
import pytest

from coderag_assets.definitions import build_definitions
from coderag_assets.freshness import TORN_SUFFIX
from coderag_assets.resources import CodeRagResource
from coderag_assets.runner import (
    CHANGE_COUNTS_TAG,
    HOST_TAG,
    PID_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
)
from coderag_assets.schedules import (
    DEFAULT_REBUILD_CRON,
    REBUILD_SCHEDULE_NAME,
    SCHEDULES,
    build_rebuild_schedule,
)
from coderag_assets.sensors import (
    AUTOMATION_SENSOR_NAME,
    CHANGE_SENSOR_NAME,
    SENSORS,
    SHARD_KEYS,
    coderag_changes,
    shard_of_path,
)
from coderag_assets.settings import SettingsError, load_settings
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    IndexStore,
    vector_schema,
)
from tests.conftest import copy_fixture_repo


@pytest.fixture(scope="module")
def instance():
    """One throw-away instance for the module (creating one costs seconds)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def watched(repo_copy: Path, tmp_path: Path, instance: dg.DagsterInstance):
    """A repository, its resource, and a `tick(cursor)` helper returning (result, cursor)."""
    root = repo_copy.resolve()
    resource = CodeRagResource(root=str(root), data_dir=str(tmp_path / "data"))

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"coderag": resource}
        )
        return coderag_changes(context)

    first = tick(None)
    return root, resource, tick, first


def requested_shards(result: dg.SensorResult) -> set[str]:
    return {request.partition_key for request in result.run_requests or []}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# ------------------------------------------------------------------ what is requested


def test_first_tick_without_an_index_requests_every_shard_in_one_range_run(watched) -> None:
    root, _, _, first = watched
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        SHARD_KEYS[0],
        SHARD_KEYS[-1],
    )
    added = int(request.tags[CHANGE_COUNTS_TAG].split(",")[0])
    assert added == sum(1 for p in root.rglob("*") if p.is_file()) - 2  # minus 2 gitignored
    assert set(json.loads(first.cursor)["fp"]) == set(SHARD_KEYS)


def test_unchanged_tree_is_skipped(watched) -> None:
    _, _, tick, first = watched
    second = tick(first.cursor)
    assert not second.run_requests
    assert "no changes" in second.skip_reason.skip_message


@pytest.mark.parametrize(
    ("change", "expected_paths"),
    [
        ("modify", ["pyutils/cache.py"]),
        ("create", ["pyutils/brand_new.py"]),
        ("delete", ["server/router.go"]),
        ("rename", ["lib/slugify.rb", "lib/slug_helpers.rb"]),
        ("replace_by_directory", ["docs/guide.md", "docs/guide.md/index.md"]),
    ],
)
def test_each_kind_of_change_requests_exactly_the_affected_shards(
    watched, change, expected_paths
) -> None:
    root, _, tick, first = watched
    if change == "modify":
        append(root / "pyutils" / "cache.py", "\n# edited\n")
    elif change == "create":
        (root / "pyutils" / "brand_new.py").write_text("def brand_new():\n    return 1\n")
    elif change == "delete":
        (root / "server" / "router.go").unlink()
    elif change == "rename":
        (root / "lib" / "slugify.rb").rename(root / "lib" / "slug_helpers.rb")
    else:
        (root / "docs" / "guide.md").unlink()
        (root / "docs" / "guide.md").mkdir()
        (root / "docs" / "guide.md" / "index.md").write_text("# now a directory\n")
    result = tick(first.cursor)
    assert requested_shards(result) == {shard_of_path(p) for p in expected_paths}
    again = tick(result.cursor)
    assert not again.run_requests, "a change is requested once"


def test_ignored_files_do_not_trigger_runs(watched) -> None:
    root, _, tick, first = watched
    (root / "server.log").write_text("a new log line\n")  # *.log is gitignored
    (root / "build" / "more_generated.py").write_text("x = 1\n")  # build/ is gitignored
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    result = tick(first.cursor)
    assert not result.run_requests


def test_burst_of_many_files_is_one_request_per_shard(watched) -> None:
    root, _, tick, first = watched
    (root / "generated_burst").mkdir()
    paths = [f"generated_burst/module_{i:03}.py" for i in range(200)]
    for path in paths:
        (root / path).write_text(f"def function_{path[-7:-3]}():\n    return 1\n")
    result = tick(first.cursor)
    shards = [request.partition_key for request in result.run_requests]
    assert sorted(shards) == sorted({shard_of_path(p) for p in paths})
    assert len(shards) <= len(SHARD_KEYS)
    added = sum(int(r.tags[CHANGE_COUNTS_TAG].split(",")[0]) for r in result.run_requests)
    assert added >= 200  # counted against the last index: nothing is indexed yet


def test_run_keys_deduplicate_a_replayed_tick_but_not_an_undo(watched) -> None:
    root, _, tick, first = watched
    target = root / "pyutils" / "retry.py"
    original = target.read_text()
    stat = target.stat()
    append(target, "\n# edit\n")
    edited = tick(first.cursor)
    replayed = tick(first.cursor)  # the daemon re-evaluates a tick it could not save
    assert [r.run_key for r in edited.run_requests] == [r.run_key for r in replayed.run_requests]
    target.write_text(original)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # exactly the first state again
    undone = tick(edited.cursor)
    assert requested_shards(undone) == {shard_of_path("pyutils/retry.py")}
    assert undone.run_requests[0].run_key != edited.run_requests[0].run_key
    first_keys = {r.run_key for r in first.run_requests}
    assert undone.run_requests[0].run_key not in first_keys


def test_evaluate_tick_resolves_partitioned_requests_against_the_definitions(
    watched, instance
) -> None:
    root, resource, _, first = watched
    append(root / "pyutils" / "cache.py", "\n# edited\n")
    settings = load_settings(data_dir=Path(resource.data_dir)).with_root(root)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=first.cursor,
        sensor_name=CHANGE_SENSOR_NAME,
        definitions=build_definitions(settings),
        resources={"coderag": resource},
    )
    data = coderag_changes.evaluate_tick(context)
    (request,) = data.run_requests
    assert request.tags["dagster/partition"] == shard_of_path("pyutils/cache.py")


def test_deleted_root_is_a_clear_skip_and_keeps_the_cursor(watched) -> None:
    root, _, tick, first = watched
    shutil.rmtree(root)
    result = tick(first.cursor)
    assert not result.run_requests
    assert "does not exist" in result.skip_reason.skip_message
    assert result.cursor == first.cursor
    copy_fixture_repo(root, fresh_mtimes=True)
    assert tick(result.cursor).run_requests, "the root came back (with new mtimes)"


def test_cursor_of_another_root_starts_over(watched, tmp_path) -> None:
    _, resource, _, first = watched
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_text("print('hi')\n")
    context = dg.build_sensor_context(
        cursor=first.cursor,
        resources={"coderag": CodeRagResource(root=str(other), data_dir=resource.data_dir)},
    )
    result = coderag_changes(context)
    assert result.run_requests[0].run_key.startswith("all:")


def test_cursor_is_compact(watched) -> None:
    _, _, _, first = watched
    assert len(first.cursor) < 40 * len(SHARD_KEYS) + 100


def test_no_root_configured_is_a_skip() -> None:
    context = dg.build_sensor_context(
        resources={"coderag": CodeRagResource(root="", data_dir="/nonexistent")}
    )
    result = coderag_changes(context)
    assert "CODERAG_ROOT" in result.skip_reason.skip_message


# ------------------------------------------------------------------ repairs after a killed run


def write_complete_shard(store: IndexStore, shard: str) -> None:
    for kind, schema in (
        ("manifest", MANIFEST_SCHEMA),
        ("chunks", CHUNK_SCHEMA),
        ("symbols", SYMBOL_SCHEMA),
        ("embeddings", vector_schema(1)),
    ):
        store.write_shard(kind, shard, schema.empty_table())


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))


def test_shard_left_half_done_is_repaired_once(watched) -> None:
    root, resource, tick, first = watched
    store = IndexStore.for_root(Path(resource.data_dir), root)
    shard = SHARD_KEYS[3]
    write_complete_shard(store, shard)
    touch_later(store.shard_file("manifest", shard))  # killed after writing the manifest
    result = tick(first.cursor)
    assert requested_shards(result) == {shard}
    assert result.run_requests[0].run_key.endswith(":repair")
    assert not tick(result.cursor).run_requests, "one repair per state, not a loop"


def test_torn_shard_file_is_set_aside_and_its_shard_requested(watched) -> None:
    root, resource, tick, first = watched
    store = IndexStore.for_root(Path(resource.data_dir), root)
    shard = SHARD_KEYS[5]
    write_complete_shard(store, shard)
    chunks_file = store.shard_file("chunks", shard)
    chunks_file.write_bytes(chunks_file.read_bytes()[:20])  # torn: header without footer
    result = tick(first.cursor)
    assert requested_shards(result) == {shard}
    assert not chunks_file.exists()
    assert chunks_file.with_name(chunks_file.name + TORN_SUFFIX).exists()


def test_no_repair_while_a_run_is_in_flight_unless_its_process_is_gone(watched, instance) -> None:
    root, resource, tick, first = watched
    store = IndexStore.for_root(Path(resource.data_dir), root)
    shard = SHARD_KEYS[7]
    write_complete_shard(store, shard)
    touch_later(store.shard_file("manifest", shard))
    live = dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(live)
    assert not tick(first.cursor).run_requests, "a running shard looks half-done too"
    instance.report_run_failed(live)
    dead = dg.DagsterRun(
        job_name="__ASSET_JOB",
        status=dg.DagsterRunStatus.STARTED,
        tags={PID_TAG: str(2**22 + 12345), HOST_TAG: socket.gethostname()},
    )
    instance.add_run(dead)
    result = tick(first.cursor)
    assert requested_shards(result) == {shard}
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.FAILURE


# ------------------------------------------------------------------ index automation


def test_a_burst_of_shard_runs_becomes_one_index_rebuild(tmp_path, instance) -> None:
    settings = load_settings(data_dir=tmp_path / "data").with_root(tmp_path)
    defs = build_definitions(settings)
    automation = next(s for s in SENSORS if s.name == AUTOMATION_SENSOR_NAME)
    selection = automation.asset_selection

    def evaluate(cursor):
        return dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=cursor
        )

    def shard_runs(shards):
        for shard in shards:
            event = dg.AssetMaterialization("chunk_embeddings", partition=shard)
            instance.report_runless_asset_event(event)

    start = evaluate(None)  # the sensor's first tick only records the state
    shard_runs(SHARD_KEYS)  # the first full index: every shard ...
    first = evaluate(start.cursor)
    assert first.get_num_requested(dg.AssetKey("search_index")) == 1  # ... then the index
    for key in ("search_index", "bm25_index"):
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
    idle = evaluate(first.cursor)
    assert idle.get_num_requested(dg.AssetKey("search_index")) == 0
    shard_runs(SHARD_KEYS[:5])  # a burst: five shard runs
    burst = evaluate(idle.cursor)
    assert burst.get_num_requested(dg.AssetKey("search_index")) == 1  # one rebuild
    assert burst.get_num_requested(dg.AssetKey("chunk_embeddings")) == 0


def test_sensors_are_registered() -> None:
    names = {sensor.name for sensor in SENSORS}
    assert names == {CHANGE_SENSOR_NAME, AUTOMATION_SENSOR_NAME}
    automation = next(s for s in SENSORS if s.name == AUTOMATION_SENSOR_NAME)
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING


# ------------------------------------------------------------------ the rebuild schedule


def test_rebuild_schedule_runs_every_shard_with_hash_verification(tmp_path) -> None:
    (schedule,) = SCHEDULES
    assert schedule.name == REBUILD_SCHEDULE_NAME
    tick = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
    context = dg.build_schedule_context(
        scheduled_execution_time=tick,
        resources={"coderag": CodeRagResource(root=str(tmp_path), data_dir=str(tmp_path / "d"))},
    )
    request = schedule.evaluate_tick(context).run_requests[0]
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        SHARD_KEYS[0],
        SHARD_KEYS[-1],
    )
    assert request.run_config["ops"]["file_manifest"]["config"]["verify_hashes"] is True
    assert request.run_key == f"rebuild:{tick.isoformat()}"


def test_rebuild_schedule_without_root_skips() -> None:
    (schedule,) = SCHEDULES
    context = dg.build_schedule_context(
        resources={"coderag": CodeRagResource(root="", data_dir="/nonexistent")}
    )
    data = schedule.evaluate_tick(context)
    assert not data.run_requests and "CODERAG_ROOT" in data.skip_message


def test_rebuild_cron_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("CODERAG_REBUILD_CRON", raising=False)
    assert build_rebuild_schedule().cron_schedule == DEFAULT_REBUILD_CRON
    monkeypatch.setenv("CODERAG_REBUILD_CRON", "30 1 * * 6")
    assert build_rebuild_schedule().cron_schedule == "30 1 * * 6"
    monkeypatch.setenv("CODERAG_REBUILD_CRON", "every night")
    with pytest.raises(SettingsError, match="CODERAG_REBUILD_CRON"):
        build_rebuild_schedule()
