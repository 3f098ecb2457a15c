"""The change sensor and the rebuild schedule, evaluated the way the daemon evaluates them
(`build_sensor_context` / `build_schedule_context` against `build_definitions(settings)`), on
a copy of the fixture repository. No model, no index runs: these tests are about what gets
requested — one run of the job `coderag_index` per tick, limited by run config to exactly the
shards that changed — and every request is checked against the job it targets."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from coderag_assets.definitions import PUBLISH_SENSOR_NAME, build_definitions
from coderag_assets.freshness import TORN_SUFFIX, snapshot_tree
from coderag_assets.indexing import scan_shards
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.resources import CodeRagResource
from coderag_assets.scans import load_scan
from coderag_assets.schedules import (
    DEFAULT_REBUILD_CRON,
    REBUILD_SCHEDULE_NAME,
    build_rebuild_schedule,
)
from coderag_assets.sensors import (
    CHANGE_SENSOR_NAME,
    FRESHNESS_CHECK_NAME,
    evaluate_changes,
)
from coderag_assets.settings import Settings, SettingsError
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    IndexStore,
    vector_schema,
)
from coderag_assets.tags import (
    CHANGE_COUNTS_TAG,
    CHANGED_PATHS_TAG,
    CHANGES_TAG,
    EXECUTOR_TAG,
    INDEX_JOB_NAME,
    RANGE_END_TAG,
    RANGE_START_TAG,
    ROOT_TAG,
    RUN_KEYS_TAG,
    TRIGGER_TAG,
    shards_of_requests,
)
from tests.conftest import copy_fixture_repo

KEYS = shard_keys(16)
SHARD_ASSET_KEYS = {
    dg.AssetKey(name) for name in ("file_manifest", "code_chunks", "chunk_embeddings")
}
INDEX_ASSET_KEYS = {dg.AssetKey("search_index"), dg.AssetKey("bm25_index")}


def of(path: str, shard_count: int = 16) -> str:
    return shard_of(path, shard_count)


def ordered(shards, keys=KEYS) -> list[str]:
    return sorted(set(shards), key=keys.index)


@pytest.fixture(scope="module")
def instance():
    """One throw-away instance for the module (creating one costs seconds)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


# ------------------------------------------------------------------ helpers


def scan_config(request: dg.RunRequest) -> dict:
    """`ops.shard_assets.ops.prepare_shards.config` of a request's run config ({} if absent)."""
    ops = request.run_config.get("ops", {})
    return ops.get("shard_assets", {}).get("ops", {}).get("prepare_shards", {}).get("config", {})


def requested_scan(env, request: dg.RunRequest, shards) -> dict:
    """The stat rows of `shards` in the scan a request names (as the run's step loads them)."""
    return load_scan(
        env.store,
        scan_config(request)["scan"],
        shards,
        shard_count=16,
        max_file_bytes=env.settings.max_file_bytes,
    )


def check_against_job(request: dg.RunRequest, job: dg.JobDefinition) -> None:
    """What the daemon would launch: the index job, valid run config, scan shards in range."""
    assert request.job_name == INDEX_JOB_NAME
    dg.validate_run_config(job, request.run_config)  # raises DagsterInvalidConfigError
    keys = job.partitions_def.get_partition_keys()
    start, end = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
    in_range = keys[keys.index(start) : keys.index(end) + 1]
    assert set(scan_config(request).get("shards", [])) <= set(in_range)


def the_request(data, keys=KEYS, *, shards) -> dg.RunRequest:
    """The one request of a tick; asserts it covers exactly `shards` (range and scan config)."""
    requests = list(data.run_requests or [])
    assert len(requests) == 1, f"expected one run request, got {len(requests)}"
    (request,) = requests
    wanted = ordered(shards, keys)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (wanted[0], wanted[-1])
    scan = scan_config(request)
    if wanted == keys:
        assert "shards" not in scan, "every shard: no shard list in the run config"
    else:
        assert scan["shards"] == wanted
    return request


def counts(request: dg.RunRequest) -> tuple[int, int, int]:
    added, modified, deleted = map(int, request.tags[CHANGE_COUNTS_TAG].split(","))
    return added, modified, deleted


@dataclass
class Watch:
    """A root watched by the change sensor of `build_definitions(settings)`."""

    root: Path
    settings: Settings
    resource: CodeRagResource
    defs: dg.Definitions
    job: dg.JobDefinition
    instance: dg.DagsterInstance
    first: dg.SensorResult | None = None

    @property
    def store(self) -> IndexStore:
        return IndexStore.for_root(self.settings.data_dir, self.root)

    @property
    def keys(self) -> list[str]:
        return shard_keys(self.settings.shard_count)

    def tick(self, cursor: str | None):
        sensor = self.defs.get_repository_def().get_sensor_def(CHANGE_SENSOR_NAME)
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            sensor_name=CHANGE_SENSOR_NAME,
            definitions=self.defs,
            resources={"coderag": self.resource},
        )
        data = sensor.evaluate_tick(context)
        for request in data.run_requests or []:
            check_against_job(request, self.job)
        return data


def make_watch(root: Path, data_dir: Path, instance, **overrides) -> Watch:
    settings = Settings(data_dir=data_dir, root=root.resolve(), workers=1, **overrides)
    defs = build_definitions(settings)
    return Watch(
        root=root.resolve(),
        settings=settings,
        resource=CodeRagResource.from_settings(settings),
        defs=defs,
        job=defs.resolve_job_def(INDEX_JOB_NAME),
        instance=instance,
    )


def write_complete_shard(store: IndexStore, shard: str, manifest: pa.Table | None = None) -> None:
    """The files of a finished shard run, written in the order a run writes them."""
    store.write_shard("manifest", shard, manifest or MANIFEST_SCHEMA.empty_table())
    for kind, schema in (
        ("chunks", CHUNK_SCHEMA),
        ("symbols", SYMBOL_SCHEMA),
        ("embeddings", vector_schema(1)),
    ):
        store.write_shard(kind, shard, schema.empty_table())


def index_as_is(store: IndexStore, root: Path, shard_count: int = 16) -> None:
    """Stand-in for a finished run: every shard's manifest lists the tree as it is now and a
    published index (its `meta` and `files` tables, what the sensor reads) holds it."""
    keys = shard_keys(shard_count)
    snapshot = snapshot_tree(root, keys, lambda path: shard_of(path, shard_count))
    for shard in keys:
        paths = snapshot.paths_by_shard[shard]
        rows = {name: [None] * len(paths) for name in MANIFEST_SCHEMA.names}
        rows.update(
            path=paths,
            shard=[shard] * len(paths),
            size=[snapshot.files[p][0] for p in paths],
            mtime_ns=[snapshot.files[p][1] for p in paths],
        )
        write_complete_shard(store, shard, pa.table(rows, schema=MANIFEST_SCHEMA))
    store.index_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.index_path.with_name("publishing.duckdb")
    con = duckdb.connect(str(tmp))
    con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("shard_count", json.dumps(shard_count)), ("version", json.dumps(1))],
    )
    con.execute("CREATE TABLE files (path VARCHAR, size BIGINT, mtime_ns BIGINT)")
    con.executemany(
        "INSERT INTO files VALUES (?, ?, ?)",
        [(path, size, mtime) for path, (size, mtime) in snapshot.files.items()],
    )
    con.close()
    os.replace(tmp, store.index_path)


@pytest.fixture
def watched(repo_copy: Path, tmp_path: Path, instance) -> Watch:
    """A never-indexed root and the sensor's first tick on it."""
    watch = make_watch(repo_copy, tmp_path / "data", instance)
    watch.first = watch.tick(None)
    return watch


@pytest.fixture
def indexed(repo_copy: Path, tmp_path: Path, instance) -> Watch:
    """A root whose index matches the working tree, and the sensor's first tick on it."""
    watch = make_watch(repo_copy, tmp_path / "data", instance)
    index_as_is(watch.store, watch.root)
    watch.first = watch.tick(None)
    return watch


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))


def listed_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file()) - 2  # minus 2 gitignored ones


# ------------------------------------------------------------------ definitions


@pytest.mark.parametrize("shard_count", [16, 64])
def test_definitions_load_with_one_index_job_and_stopped_automation(tmp_path, shard_count) -> None:
    settings = Settings(data_dir=tmp_path / "data", root=tmp_path, shard_count=shard_count)
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(INDEX_JOB_NAME)
    assert job.partitions_def.get_partition_keys() == shard_keys(shard_count)
    assert job.asset_layer.executable_asset_keys == SHARD_ASSET_KEYS | INDEX_ASSET_KEYS
    repo = defs.get_repository_def()
    sensors = {sensor.name: sensor for sensor in repo.sensor_defs}
    # The change sensor is off by default; the publish sensor is on: it only ever publishes
    # the index after shard partitions that a run did not publish (a UI backfill).
    assert set(sensors) == {CHANGE_SENSOR_NAME, PUBLISH_SENSOR_NAME}
    assert sensors[CHANGE_SENSOR_NAME].default_status == dg.DefaultSensorStatus.STOPPED
    publish = sensors[PUBLISH_SENSOR_NAME]
    assert publish.default_status == dg.DefaultSensorStatus.RUNNING
    assert publish.asset_selection.resolve(defs.resolve_asset_graph()) == INDEX_ASSET_KEYS
    assert [s.name for s in repo.schedule_defs] == [REBUILD_SCHEDULE_NAME]
    sensor = repo.get_sensor_def(CHANGE_SENSOR_NAME)
    schedule = repo.get_schedule_def(REBUILD_SCHEDULE_NAME)
    assert sensor.job_name == schedule.job_name == INDEX_JOB_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_job_config_check_rejects_config_the_job_does_not_have(tmp_path) -> None:
    """`check_against_job` can fail: the old per-asset op path is no longer valid config."""
    job = build_definitions(Settings(data_dir=tmp_path)).resolve_job_def(INDEX_JOB_NAME)
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"file_manifest": {"config": {"verify_hashes": True}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(
            job, {"ops": {"shard_assets": {"ops": {"prepare_shards": {"config": {"shards": 3}}}}}}
        )


# ------------------------------------------------------------------ what is requested


def test_first_tick_without_an_index_requests_every_shard_in_one_run(watched) -> None:
    request = the_request(watched.first, shards=KEYS)
    assert request.tags[TRIGGER_TAG] == "sensor"
    assert request.tags[ROOT_TAG] == str(watched.root)
    assert counts(request) == (listed_files(watched.root), 0, 0)
    assert request.run_key.startswith("all:")
    # workers=1: every shard step in the run's own process
    assert request.tags[EXECUTOR_TAG] == "in_process"
    assert request.run_config["execution"] == {"config": {"in_process": {}}}
    assert set(json.loads(watched.first.cursor)["fp"]) == set(KEYS)


def test_unchanged_tree_is_skipped(watched) -> None:
    second = watched.tick(watched.first.cursor)
    assert not second.run_requests
    assert "no changes" in second.skip_message
    assert json.loads(second.cursor)["fp"] == json.loads(watched.first.cursor)["fp"]


def test_first_tick_on_an_up_to_date_index_requests_nothing(indexed) -> None:
    assert not indexed.first.run_requests
    assert "no changes" in indexed.first.skip_message
    assert not indexed.first.asset_events


@pytest.mark.parametrize(
    ("change", "expected_paths", "expected_counts"),
    [
        ("modify", ["pyutils/cache.py"], (0, 1, 0)),
        ("create", ["pyutils/brand_new.py"], (1, 0, 0)),
        ("delete", ["server/router.go"], (0, 0, 1)),
        ("rename", ["lib/slugify.rb", "lib/slug_helpers.rb"], (1, 0, 1)),
        ("replace_by_directory", ["docs/guide.md", "docs/guide.md/index.md"], (1, 0, 1)),
    ],
)
def test_each_kind_of_change_is_one_request_for_exactly_the_affected_shards(
    indexed, change, expected_paths, expected_counts
) -> None:
    root = indexed.root
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
    result = indexed.tick(indexed.first.cursor)
    request = the_request(result, shards={of(p) for p in expected_paths})
    assert counts(request) == expected_counts
    assert set(request.tags[CHANGED_PATHS_TAG].split()) == set(expected_paths)
    assert request.tags[TRIGGER_TAG] == "sensor"
    again = indexed.tick(result.cursor)
    assert not again.run_requests, "a change is requested once"


def one_file_per_shard(root: Path) -> dict[str, str]:
    """A listed (not ignored) file of every non-empty shard."""
    snapshot = snapshot_tree(root, KEYS, of)
    return {shard: paths[0] for shard, paths in snapshot.paths_by_shard.items() if paths}


def test_changes_in_distant_shards_are_one_run_limited_to_those_shards(indexed) -> None:
    by_shard = one_file_per_shard(indexed.root)
    first, last = ordered(by_shard)[0], ordered(by_shard)[-1]
    assert KEYS.index(last) - KEYS.index(first) > 1, "fixture: need shards with a gap"
    for shard in (first, last):
        append(indexed.root / by_shard[shard], "\n# edited\n")
    request = the_request(indexed.tick(indexed.first.cursor), shards={first, last})
    assert counts(request) == (0, 2, 0)
    assert request.tags[CHANGES_TAG] == "2 modified"
    assert len(request.tags[RUN_KEYS_TAG].split(",")) == 2  # one per shard, merged


def test_ignored_files_do_not_trigger_runs(watched) -> None:
    root = watched.root
    (root / "server.log").write_text("a new log line\n")  # *.log is gitignored
    (root / "build" / "more_generated.py").write_text("x = 1\n")  # build/ is gitignored
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1\n")
    result = watched.tick(watched.first.cursor)
    assert not result.run_requests


def test_burst_of_many_files_is_one_request(indexed) -> None:
    root = indexed.root
    (root / "generated_burst").mkdir()
    paths = [f"generated_burst/module_{i:03}.py" for i in range(200)]
    for path in paths:
        (root / path).write_text(f"def function_{path[-7:-3]}():\n    return 1\n")
    request = the_request(indexed.tick(indexed.first.cursor), shards={of(p) for p in paths})
    assert counts(request) == (200, 0, 0)
    assert request.tags[CHANGES_TAG] == "200 added"


def test_burst_on_a_never_indexed_root_counts_against_the_empty_index(watched) -> None:
    root = watched.root
    (root / "generated_burst").mkdir()
    paths = [f"generated_burst/module_{i:03}.py" for i in range(40)]
    for path in paths:
        (root / path).write_text("x = 1\n")
    request = the_request(watched.tick(watched.first.cursor), shards={of(p) for p in paths})
    assert counts(request)[0] >= 40  # nothing is indexed yet: whole shards count as added


def test_executor_follows_the_settings(repo_copy, tmp_path, instance) -> None:
    watch = make_watch(repo_copy, tmp_path / "data", instance, executor="multiprocess")
    index_as_is(watch.store, watch.root)
    append(watch.root / "pyutils" / "cache.py", "\n# edited\n")
    request = the_request(watch.tick(None), shards={of("pyutils/cache.py")})
    assert request.tags[EXECUTOR_TAG] == "multiprocess"
    assert set(request.run_config["execution"]["config"]) == {"multiprocess"}


def test_auto_executor_runs_in_process_and_multiprocess_uses_the_workers(
    repo_copy, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    resource = CodeRagResource(root=str(repo_copy), data_dir=str(tmp_path / "data"), workers=4)
    everything = evaluate_changes(resource, None, None, "auto")
    (request,) = everything.run_requests  # every shard of a never-indexed root
    assert request.tags[EXECUTOR_TAG] == "in_process"
    assert request.run_config["execution"] == {"config": {"in_process": {}}}
    spread = evaluate_changes(resource, None, None, "multiprocess")
    (request,) = spread.run_requests
    assert request.tags[EXECUTOR_TAG] == "multiprocess"
    assert request.run_config["execution"]["config"]["multiprocess"]["max_concurrent"] == 4
    append(repo_copy / "pyutils" / "cache.py", "\n# edited\n")
    (one,) = evaluate_changes(resource, everything.cursor, None, "auto").run_requests
    assert one.tags[EXECUTOR_TAG] == "in_process"
    assert scan_config(one)["shards"] == [of("pyutils/cache.py")]


def test_run_keys_deduplicate_a_replayed_tick_but_not_an_undo(indexed) -> None:
    target = indexed.root / "pyutils" / "retry.py"
    original = target.read_text()
    stat = target.stat()
    append(target, "\n# edit\n")
    edited = indexed.tick(indexed.first.cursor)
    replayed = indexed.tick(
        indexed.first.cursor
    )  # the daemon re-evaluates a tick it could not save
    assert [r.run_key for r in edited.run_requests] == [r.run_key for r in replayed.run_requests]
    target.write_text(original)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # exactly the first state again
    undone = indexed.tick(edited.cursor)
    request = the_request(undone, shards={of("pyutils/retry.py")})
    assert counts(request) == (0, 0, 0)  # the tree is back to what is indexed ...
    assert request.run_key != edited.run_requests[0].run_key  # ... but a run is still due


def test_requests_resolve_to_a_partition_range_of_the_job(indexed) -> None:
    append(indexed.root / "pyutils" / "cache.py", "\n# edited\n")
    request = indexed.tick(indexed.first.cursor).run_requests[0]
    shard = of("pyutils/cache.py")
    assert request.partition_key_range == dg.PartitionKeyRange(shard, shard)
    assert request.tags["dagster/sensor_name"] == CHANGE_SENSOR_NAME


def test_shards_of_a_merged_request_are_the_changed_shards_only(indexed) -> None:
    by_shard = one_file_per_shard(indexed.root)
    for shard in (ordered(by_shard)[0], ordered(by_shard)[-1]):
        append(indexed.root / by_shard[shard], "\n# edited\n")
    data = indexed.tick(indexed.first.cursor)
    assert (
        shards_of_requests(data.run_requests, KEYS) == scan_config(data.run_requests[0])["shards"]
    )


def test_a_request_hands_the_ticks_walk_of_its_shards_to_the_run(indexed) -> None:
    by_shard = one_file_per_shard(indexed.root)
    wanted = [ordered(by_shard)[0], ordered(by_shard)[-1]]
    for shard in wanted:
        append(indexed.root / by_shard[shard], "\n# edited\n")
    (request,) = indexed.tick(indexed.first.cursor).run_requests
    rows = requested_scan(indexed, request, wanted)
    assert rows == scan_shards(
        indexed.root, wanted, of, max_file_bytes=indexed.settings.max_file_bytes
    )


def test_the_first_request_hands_over_the_walk_of_every_shard(watched) -> None:
    (request,) = watched.first.run_requests
    rows = requested_scan(watched, request, KEYS)
    assert sum(map(len, rows.values())) == listed_files(watched.root)


# ------------------------------------------------------------------ cursor handling


def test_deleted_root_is_a_clear_skip_and_keeps_the_cursor(watched) -> None:
    shutil.rmtree(watched.root)
    result = watched.tick(watched.first.cursor)
    assert not result.run_requests
    assert "does not exist" in result.skip_message
    assert result.cursor == watched.first.cursor
    copy_fixture_repo(watched.root, fresh_mtimes=True)
    assert watched.tick(result.cursor).run_requests, "the root came back (with new mtimes)"


def test_cursor_of_another_root_starts_over(watched, tmp_path, instance) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_text("print('hi')\n")
    watch = make_watch(other, tmp_path / "data", instance)
    request = the_request(watch.tick(watched.first.cursor), shards=KEYS)
    assert request.run_key.startswith("all:")
    assert counts(request) == (1, 0, 0)


def test_unreadable_cursor_starts_from_the_published_index(indexed) -> None:
    assert not indexed.tick("not a cursor").run_requests
    append(indexed.root / "pyutils" / "cache.py", "\n# edited\n")
    request = the_request(indexed.tick("{}"), shards={of("pyutils/cache.py")})
    assert counts(request) == (0, 1, 0)


def test_another_shard_count_requests_every_shard_of_the_new_count(indexed, tmp_path) -> None:
    watch = make_watch(indexed.root, indexed.settings.data_dir, indexed.instance, shard_count=64)
    keys = shard_keys(64)
    result = watch.tick(indexed.first.cursor)  # a 16-shard cursor and a 16-shard index
    request = the_request(result, keys, shards=keys)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("00", "3f")
    assert json.loads(result.cursor)["n"] == 64
    assert not watch.tick(result.cursor).run_requests


def test_cursor_is_compact(watched) -> None:
    assert len(watched.first.cursor) < 40 * len(KEYS) + 100


def test_no_root_configured_is_a_skip(tmp_path, instance) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sensor = build_definitions(settings).get_repository_def().get_sensor_def(CHANGE_SENSOR_NAME)
    context = dg.build_sensor_context(
        instance=instance, resources={"coderag": CodeRagResource.from_settings(settings)}
    )
    result = sensor.evaluate_tick(context)
    assert not result.run_requests
    assert "CODERAG_ROOT" in result.skip_message


# ------------------------------------------------------------------ freshness events


def freshness(data) -> list[bool]:
    events = [e for e in data.asset_events or [] if isinstance(e, dg.AssetCheckEvaluation)]
    for event in events:
        assert event.check_name == FRESHNESS_CHECK_NAME
        assert event.asset_key == dg.AssetKey("search_index")
    return [event.passed for event in events]


def test_freshness_is_recorded_when_the_index_turns_stale_and_fresh_again(indexed) -> None:
    assert freshness(indexed.first) == []
    append(indexed.root / "pyutils" / "cache.py", "\n# edited\n")
    stale = indexed.tick(indexed.first.cursor)
    assert stale.run_requests and freshness(stale) == [False]
    (event,) = stale.asset_events
    assert event.metadata["changed_shards"].value == 1
    waiting = indexed.tick(stale.cursor)  # the run has not published yet
    assert not waiting.run_requests and freshness(waiting) == []
    index_as_is(indexed.store, indexed.root)  # ... now it has
    fresh = indexed.tick(waiting.cursor)
    assert not fresh.run_requests and freshness(fresh) == [True]
    assert freshness(indexed.tick(fresh.cursor)) == [], "recorded once, not every tick"


# ------------------------------------------------------------------ repairs after a killed run


def test_shard_left_half_done_is_repaired_once(watched) -> None:
    shard = KEYS[3]
    write_complete_shard(watched.store, shard)
    touch_later(watched.store.shard_file("manifest", shard))  # killed after the manifest
    result = watched.tick(watched.first.cursor)
    request = the_request(result, shards={shard})
    assert request.run_key.endswith(":repair")
    assert request.tags[CHANGES_TAG].startswith("repair: last run stopped before writing")
    assert counts(request) == (0, 0, 0)
    assert not watched.tick(result.cursor).run_requests, "one repair per state, not a loop"


def test_torn_shard_file_is_set_aside_and_its_shard_requested(watched) -> None:
    shard = KEYS[5]
    write_complete_shard(watched.store, shard)
    chunks_file = watched.store.shard_file("chunks", shard)
    chunks_file.write_bytes(chunks_file.read_bytes()[:20])  # torn: header without footer
    result = watched.tick(watched.first.cursor)
    request = the_request(result, shards={shard})
    assert "unreadable chunks" in request.tags[CHANGES_TAG]
    assert not chunks_file.exists()
    assert chunks_file.with_name(chunks_file.name + TORN_SUFFIX).exists()


def test_a_change_and_a_repair_in_one_tick_are_one_run(indexed) -> None:
    changed = of("pyutils/cache.py")
    broken = next(key for key in KEYS if key != changed)
    touch_later(indexed.store.shard_file("manifest", broken))
    append(indexed.root / "pyutils" / "cache.py", "\n# edited\n")
    request = the_request(indexed.tick(indexed.first.cursor), shards={changed, broken})
    assert counts(request) == (0, 1, 0)
    assert request.tags[CHANGES_TAG].startswith("1 modified, repair: ")
    keys = request.tags[RUN_KEYS_TAG].split(",")
    assert len(keys) == 2 and sum(key.endswith(":repair") for key in keys) == 1


def test_no_repair_while_a_run_of_this_root_is_in_flight(watched, instance) -> None:
    shard = KEYS[7]
    write_complete_shard(watched.store, shard)
    touch_later(watched.store.shard_file("manifest", shard))
    elsewhere = dg.DagsterRun(
        job_name=INDEX_JOB_NAME,
        status=dg.DagsterRunStatus.STARTED,
        tags={ROOT_TAG: str(watched.root.parent / "some_other_root")},
    )
    live = dg.DagsterRun(
        job_name=INDEX_JOB_NAME,
        status=dg.DagsterRunStatus.STARTED,
        tags={ROOT_TAG: str(watched.root)},
    )
    instance.add_run(elsewhere)
    instance.add_run(live)
    try:
        assert not watched.tick(watched.first.cursor).run_requests, (
            "a running shard looks half-done too"
        )
    finally:
        instance.report_run_failed(live)
    result = watched.tick(watched.first.cursor)  # a run of another root does not hold it back
    the_request(result, shards={shard})
    instance.report_run_failed(elsewhere)


# ------------------------------------------------------------------ the rebuild schedule


def schedule_of(settings: Settings) -> tuple[dg.ScheduleDefinition, dg.JobDefinition]:
    defs = build_definitions(settings)
    schedule = defs.get_repository_def().get_schedule_def(REBUILD_SCHEDULE_NAME)
    return schedule, defs.resolve_job_def(INDEX_JOB_NAME)


@pytest.mark.parametrize("shard_count", [16, 64])
def test_rebuild_schedule_rehashes_every_shard_in_one_run_of_the_job(tmp_path, shard_count) -> None:
    settings = Settings(data_dir=tmp_path / "d", root=tmp_path, shard_count=shard_count, workers=1)
    schedule, job = schedule_of(settings)
    assert schedule.job_name == INDEX_JOB_NAME
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
    context = dg.build_schedule_context(
        scheduled_execution_time=tick,
        resources={"coderag": CodeRagResource.from_settings(settings)},
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    check_against_job(request, job)
    keys = shard_keys(shard_count)
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (keys[0], keys[-1])
    assert scan_config(request) == {"verify_hashes": True}  # no shard list: every shard
    assert request.run_key == f"rebuild:{tick.isoformat()}"
    assert request.tags[TRIGGER_TAG] == "schedule"
    assert request.tags[ROOT_TAG] == str(tmp_path)


def test_rebuild_schedule_follows_the_executor_setting(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    settings = Settings(data_dir=tmp_path / "d", root=tmp_path, workers=4, executor="multiprocess")
    schedule, job = schedule_of(settings)
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 3, 3, 0, tzinfo=dt.UTC),
        resources={"coderag": CodeRagResource.from_settings(settings)},
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    check_against_job(request, job)
    assert request.tags[EXECUTOR_TAG] == "multiprocess"
    assert request.run_config["execution"]["config"]["multiprocess"]["max_concurrent"] == 4


def test_rebuild_schedule_without_root_skips(tmp_path) -> None:
    schedule, _ = schedule_of(Settings(data_dir=tmp_path / "d"))
    context = dg.build_schedule_context(
        resources={"coderag": CodeRagResource(root="", data_dir=str(tmp_path / "d"))}
    )
    data = schedule.evaluate_tick(context)
    assert not data.run_requests and "CODERAG_ROOT" in data.skip_message


def test_rebuild_cron_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("CODERAG_REBUILD_CRON", raising=False)
    monkeypatch.delenv("CODERAG_REBUILD_TIMEZONE", raising=False)
    schedule = build_rebuild_schedule()
    assert schedule.cron_schedule == DEFAULT_REBUILD_CRON
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == INDEX_JOB_NAME
    monkeypatch.setenv("CODERAG_REBUILD_CRON", "30 1 * * 6")
    assert build_rebuild_schedule().cron_schedule == "30 1 * * 6"
    monkeypatch.setenv("CODERAG_REBUILD_CRON", "every night")
    with pytest.raises(SettingsError, match="CODERAG_REBUILD_CRON"):
        build_rebuild_schedule()
    with pytest.raises(SettingsError, match="CODERAG_REBUILD_CRON"):
        build_rebuild_schedule("61 * * * *")


def test_invalid_rebuild_timezone_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="CODERAG_REBUILD_TIMEZONE"):
        build_rebuild_schedule("0 3 * * *", "Mars/Olympus_Mons")
