"""Run the asset graph through Dagster for one root: the code path of `coderag index` and
`coderag watch`.

An update is one in-process run on the local instance under the data directory: the shards
that need it (a partition range, `BackfillPolicy.single_run()`), then the index and its
checks. :func:`run_index` asks :mod:`coderag_assets.freshness` which shards differ from the
published index and runs only those (or nothing: "up to date"); `full=True` re-hashes every
file of every shard. :class:`Watcher` evaluates the change sensor in-process and runs what it
requests, with the model kept warm in the watching process. The UI, the sensor and the
schedule launch the same assets.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg

from coderag_assets.files import RootError
from coderag_assets.progress import ProgressReporter, use_reporter
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ROOT_TAG = "coderag/root"
TRIGGER_TAG = "coderag/trigger"  # index | watch | sensor | schedule
PID_TAG = "coderag/pid"  # the process running an in-process run ...
HOST_TAG = "coderag/host"  # ... on this host (to fail runs of killed processes)
CHANGES_TAG = "coderag/changes"  # "2 modified, 1 added"
CHANGE_COUNTS_TAG = "coderag/change_counts"  # "added,modified,deleted"
CHANGED_PATHS_TAG = "coderag/changed_paths"
NEWEST_CHANGE_TAG = "coderag/newest_change_ns"
RUN_KEYS_TAG = "coderag/run_keys"
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
SHARD_ASSET_NAMES = ("file_manifest", "code_chunks", "chunk_embeddings")
INDEX_ASSET_NAMES = ("search_index", "bm25_index")
TAG_VALUE_CHARS = 1000


@dataclass
class IndexSummary:
    """What one update did. Totals (files, chunks, skipped) describe the published index;
    `embedded`/`reused` describe this update; `shards` are the shards it ran."""

    root: Path
    index_path: Path
    success: bool
    run_id: str
    seconds: float
    files: int = 0
    indexable_files: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    error: str = ""
    up_to_date: bool = False
    version: int | None = None
    shards: list[str] = field(default_factory=list)
    reason: str = ""
    changes: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "index_path": str(self.index_path),
            "success": self.success,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "indexable_files": self.indexable_files,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": self.skipped,
            "error": self.error,
            "up_to_date": self.up_to_date,
            "version": self.version,
            "shards": self.shards,
            "reason": self.reason,
            "changes": self.changes,
            "timings": {name: round(value, 3) for name, value in self.timings.items()},
        }


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The local instance of `settings.data_dir` (created once per process, before workers)."""
    from coderag_assets.settings import prepare_dagster_env

    prepare_dagster_env(settings)
    return dg.DagsterInstance.get()


# ------------------------------------------------------------------ coderag index


def run_index(
    settings: Settings,
    *,
    reporter: ProgressReporter | None = None,
    full: bool = False,
    instance: dg.DagsterInstance | None = None,
) -> IndexSummary:
    """Bring the index of `settings.root` up to date; never raises for run failures.

    Runs only the shards whose files differ from the published index (plus shards left
    unfinished by a killed run), then rebuilds the index, in one run; returns an
    `up_to_date` summary without a run when nothing changed. `full` runs every shard and
    re-hashes every file (vectors are still reused by content hash).
    """
    from coderag_assets.assets import SHARDS
    from coderag_assets.chunking import CHUNKER_VERSION
    from coderag_assets.embedding import EmbeddingError
    from coderag_assets.freshness import plan_update, snapshot_tree
    from coderag_assets.partitions import shard_of
    from coderag_assets.resources import CodeRagResource

    assert settings.root is not None, "run_index needs settings.root"
    started = time.perf_counter()
    instance = instance or get_instance(settings)
    fail_orphaned_runs(instance)
    keys = SHARDS.get_partition_keys()
    store = IndexStore.for_root(settings.data_dir, settings.root)
    if full:
        return run_shards(
            settings,
            keys,
            instance=instance,
            reporter=reporter,
            verify_hashes=True,
            tags={TRIGGER_TAG: "index"},
            reason="full rebuild",
        )
    try:
        snapshot = snapshot_tree(
            settings.root,
            keys,
            lambda path: shard_of(path, len(keys)),
            max_file_bytes=settings.max_file_bytes,
        )
    except RootError as error:
        return IndexSummary(
            root=settings.root,
            index_path=store.index_path,
            success=False,
            run_id="",
            seconds=time.perf_counter() - started,
            error=str(error),
        )
    try:
        model_id = CodeRagResource.from_settings(settings).embedder_spec().model_id
    except EmbeddingError:
        model_id = ""  # unknown model: plan everything, the run reports the error clearly
    plan = plan_update(
        store,
        snapshot,
        keys,
        lambda path: shard_of(path, len(keys)),
        model_id=model_id,
        chunker_version=CHUNKER_VERSION,
    )
    if plan.up_to_date:
        summary = IndexSummary(
            root=settings.root,
            index_path=store.index_path,
            success=True,
            run_id="",
            seconds=0.0,
            up_to_date=True,
            reason=plan.reason,
        )
        _fill_from_index(summary, store)
        summary.reused = _distinct_content_hashes(store)
        summary.seconds = time.perf_counter() - started
        return summary
    summary = run_shards(
        settings,
        plan.shards,
        instance=instance,
        reporter=reporter,
        tags={TRIGGER_TAG: "index"},
        reason=plan.reason,
    )
    summary.changes = plan.changes.to_json()
    summary.seconds = time.perf_counter() - started
    return summary


# ------------------------------------------------------------------ one update run


def shard_span(shards: Sequence[str], keys: Sequence[str]) -> tuple[str, str]:
    """First and last key (in partition order) of the range covering `shards`."""
    positions = sorted(keys.index(shard) for shard in shards)
    return keys[positions[0]], keys[positions[-1]]


def run_tags(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        ROOT_TAG: str(settings.root),
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        **{key: value[:TAG_VALUE_CHARS] for key, value in (extra or {}).items()},
    }


def run_shards(
    settings: Settings,
    shards: Sequence[str],
    *,
    instance: dg.DagsterInstance,
    reporter: ProgressReporter | None = None,
    verify_hashes: bool = False,
    include_index: bool = True,
    include_checks: bool = True,
    tags: Mapping[str, str] | None = None,
    reason: str = "",
) -> IndexSummary:
    """One in-process run: the shard assets over the range covering `shards`, then the index.

    `include_checks=False` leaves out the asset checks on the index (they run after the
    publish and re-read every shard; the build itself validates the same invariants before
    publishing, so nothing unvalidated is ever published). `coderag watch` skips them to keep
    updates short; `coderag index` and the schedule run them.

    Non-adjacent shards run as one range (the shards in between are cheap no-ops: nothing
    of theirs is re-read or re-embedded), so one update is one run and one index rebuild.
    Unreadable (torn) shard files are set aside first so the run recomputes them. With no
    shards, only the index is rebuilt. Never raises for run failures.
    """
    from coderag_assets.assets import SHARDS
    from coderag_assets.checks import INDEX_CHECKS
    from coderag_assets.definitions import ASSETS
    from coderag_assets.freshness import quarantine_torn_files
    from coderag_assets.resources import CodeRagResource
    from coderag_assets.sensors import FRESHNESS_CHECKS

    assert settings.root is not None, "run_shards needs settings.root"
    keys = SHARDS.get_partition_keys()
    store = IndexStore.for_root(settings.data_dir, settings.root)
    run_config: dict = {**QUIET_RUN_CONFIG}
    if verify_hashes:
        run_config["ops"] = {"file_manifest": {"config": {"verify_hashes": True}}}
    all_tags = run_tags(settings, tags)
    selection: list[str] = list(INDEX_ASSET_NAMES) if include_index else []
    span: list[str] = []
    if shards:
        first, last = shard_span(shards, keys)
        span = keys[keys.index(first) : keys.index(last) + 1]
        all_tags.update({RANGE_START_TAG: first, RANGE_END_TAG: last})
        selection = [*SHARD_ASSET_NAMES, *selection]
        quarantine_torn_files(store, span)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with use_reporter(reporter) if reporter else nullcontext():
                checks = [*INDEX_CHECKS, *FRESHNESS_CHECKS] if include_checks else []
                result = dg.materialize(
                    [*ASSETS, *checks],
                    instance=instance,
                    resources={"coderag": CodeRagResource.from_settings(settings)},
                    run_config=run_config,
                    tags=all_tags,
                    selection=selection,
                    raise_on_error=False,
                )
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the run must not stay "started"
        fail_runs_of_process(instance, os.getpid(), "interrupted")
        raise
    run_seconds = time.perf_counter() - started
    summary = IndexSummary(
        root=settings.root,
        index_path=store.index_path,
        success=result.success,
        run_id=result.run_id,
        seconds=run_seconds,
        shards=sorted(shards, key=keys.index),
        reason=reason,
    )
    metadata = _metadata_by_asset(result)
    _fill_from_metadata(summary, metadata)
    if result.success and include_index:
        _fill_from_index(summary, store)
    if not result.success:
        summary.error = _failure_message(result)
    summary.timings = _run_timings(instance, result.run_id, run_seconds, metadata)
    return summary


def _fill_from_metadata(summary: IndexSummary, metadata: dict[str, dict[str, object]]) -> None:
    manifest = metadata.get("file_manifest", {})
    chunks = metadata.get("code_chunks", {})
    embeddings = metadata.get("chunk_embeddings", {})
    summary.files = int(manifest.get("files", 0))  # type: ignore[call-overload]
    summary.indexable_files = int(manifest.get("indexable_files", 0))  # type: ignore[call-overload]
    summary.skipped = dict(
        Counter(manifest.get("skipped_by_reason", {}))  # type: ignore[arg-type]
        + Counter(chunks.get("skipped_by_reason", {}))  # type: ignore[arg-type]
    )
    index_chunks = metadata.get("search_index", {}).get("chunks", chunks.get("chunks", 0))
    summary.chunks = int(index_chunks)  # type: ignore[call-overload]
    summary.embedded = int(embeddings.get("embedded", 0))  # type: ignore[call-overload]
    summary.reused = int(embeddings.get("reused", 0))  # type: ignore[call-overload]
    version = metadata.get("search_index", {}).get("version")
    summary.version = int(version) if isinstance(version, int | float) else None


def _fill_from_index(summary: IndexSummary, store: IndexStore) -> None:
    """Totals of the published index (an incremental run's metadata covers only its shards)."""
    from coderag_assets.freshness import open_published
    from coderag_assets.store import IndexNotFoundError, read_meta

    try:
        with open_published(store) as con:
            files, indexable = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE skip_reason IS NULL) FROM files"
            ).fetchone()
            summary.files, summary.indexable_files = int(files), int(indexable)
            summary.chunks = int(con.execute("SELECT count(*) FROM chunks").fetchone()[0])
            rows = con.execute(
                "SELECT skip_reason, count(*) FROM files WHERE skip_reason IS NOT NULL GROUP BY 1"
            ).fetchall()
            summary.skipped = {reason: int(count) for reason, count in sorted(rows)}
            version = read_meta(con).get("version")
    except IndexNotFoundError:
        return
    summary.version = int(version) if isinstance(version, int | float) else summary.version


def _distinct_content_hashes(store: IndexStore) -> int:
    from coderag_assets.freshness import open_published

    with open_published(store) as con:
        return int(con.execute("SELECT count(DISTINCT content_hash) FROM chunks").fetchone()[0])


def _run_timings(
    instance: dg.DagsterInstance,
    run_id: str,
    run_seconds: float,
    metadata: dict[str, dict[str, object]],
) -> dict[str, float]:
    """Seconds per stage of one run, from the run's step events and the assets' metadata.

    `run_overhead` is the run's wall time outside its steps (run creation, resource and
    event-log work); `embed` and `index_publish` are what the assets measured themselves.
    """
    timings: dict[str, float] = {"run": run_seconds}
    starts: dict[str, float] = {}
    in_steps = 0.0
    records = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_START,
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        },
    )
    for record in records:
        step = record.step_key or ""
        if record.dagster_event_type == dg.DagsterEventType.STEP_START:
            starts[step] = record.timestamp
        elif step in starts:
            seconds = record.timestamp - starts.pop(step)
            in_steps += seconds
            name = (
                "checks"
                if "every_chunk" in step or "_matches_" in step or "orphan" in step
                else step
            )
            timings[name] = timings.get(name, 0.0) + seconds
    timings["run_overhead"] = max(0.0, run_seconds - in_steps)
    embed = metadata.get("chunk_embeddings", {}).get("seconds")
    if isinstance(embed, int | float):
        timings["embed"] = float(embed)
    publish = metadata.get("search_index", {}).get("seconds")
    if isinstance(publish, int | float):
        timings["index_publish"] = float(publish)
    return timings


def _metadata_by_asset(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, object]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        key = materialization.asset_key.to_user_string()
        if key in values:
            continue  # a range run records the same metadata once per partition
        values[key] = {name: entry.value for name, entry in materialization.metadata.items()}
    return values


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "dagster" in (error.cls_name or "").lower():
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
    return "run failed"


# ------------------------------------------------------------------ run housekeeping


def runs_in_flight(instance: dg.DagsterInstance) -> bool:
    """True while any run of this instance is queued, starting or running."""
    return instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)) > 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs whose process on this host is gone (kill -9, crash).

    Without this a killed `coderag index`/`watch` leaves its run "started" forever, and the
    sensor would never consider the instance idle enough to repair the shard it left half-done.
    """
    host = socket.gethostname()
    failed: list[str] = []
    for run in instance.get_runs(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)):
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or not pid or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"process {pid} running it is gone (killed?)")
        failed.append(run.run_id)
    return failed


def fail_runs_of_process(instance: dg.DagsterInstance, pid: int, message: str) -> list[str]:
    """Mark failed the unfinished in-process runs of process `pid` on this host."""
    host = socket.gethostname()
    failed: list[str] = []
    for run in instance.get_runs(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)):
        if run.tags.get(HOST_TAG) == host and run.tags.get(PID_TAG) == str(pid):
            instance.report_run_failed(run, message=message)
            failed.append(run.run_id)
    return failed


# ------------------------------------------------------------------ sensor requests


def shards_of_requests(requests: Sequence[dg.RunRequest], keys: Sequence[str]) -> list[str]:
    """Every shard a list of sensor/schedule run requests asks for (keys or key ranges)."""
    wanted: set[str] = set()
    for request in requests:
        if request.partition_key is not None:
            wanted.add(request.partition_key)
        key_range = request.partition_key_range
        if key_range is not None:
            wanted.update(keys[keys.index(key_range.start) : keys.index(key_range.end) + 1])
    return sorted(wanted, key=keys.index)


@dataclass(frozen=True)
class RequestedChanges:
    """The file changes a list of sensor requests describes in their tags, added up."""

    added: int = 0
    modified: int = 0
    deleted: int = 0
    paths: tuple[str, ...] = ()
    newest_change_ns: int = 0

    @property
    def files(self) -> int:
        return self.added + self.modified + self.deleted

    def describe(self) -> str:
        from coderag_assets.freshness import describe_counts

        return describe_counts(self.modified, self.added, self.deleted)


def requested_changes(requests: Sequence[dg.RunRequest]) -> RequestedChanges:
    counts = [0, 0, 0]
    paths: list[str] = []
    newest = 0
    for request in requests:
        values = (request.tags.get(CHANGE_COUNTS_TAG) or "0,0,0").split(",")
        for position, value in enumerate(values[:3]):
            counts[position] += int(value) if value.isdigit() else 0
        paths.extend((request.tags.get(CHANGED_PATHS_TAG) or "").split())
        newest_tag = request.tags.get(NEWEST_CHANGE_TAG) or "0"
        newest = max(newest, int(newest_tag) if newest_tag.isdigit() else 0)
    return RequestedChanges(counts[0], counts[1], counts[2], tuple(paths), newest)


def run_requests(
    settings: Settings,
    requests: Sequence[dg.RunRequest],
    *,
    instance: dg.DagsterInstance,
    reporter: ProgressReporter | None = None,
    tags: Mapping[str, str] | None = None,
    include_checks: bool = True,
) -> IndexSummary:
    """Execute sensor or schedule run requests in-process as one run plus the index rebuild."""
    from coderag_assets.assets import SHARDS

    keys = SHARDS.get_partition_keys()
    verify = any(
        request.run_config.get("ops", {})
        .get("file_manifest", {})
        .get("config", {})
        .get("verify_hashes")
        for request in requests
    )
    changes = requested_changes(requests)
    reasons = [
        r.tags[CHANGES_TAG] for r in requests if r.tags.get(CHANGES_TAG, "").startswith("repair")
    ]
    reason = ", ".join([changes.describe()] * bool(changes.files) + reasons)
    extra = {
        **(tags or {}),
        RUN_KEYS_TAG: ",".join(request.run_key or "" for request in requests),
        CHANGES_TAG: reason or "no file changes",
        CHANGE_COUNTS_TAG: f"{changes.added},{changes.modified},{changes.deleted}",
    }
    return run_shards(
        settings,
        shards_of_requests(requests, keys),
        instance=instance,
        reporter=reporter,
        verify_hashes=bool(verify),
        include_checks=include_checks,
        tags=extra,
        reason=reason,
    )


# ------------------------------------------------------------------ coderag watch


@dataclass
class WatchUpdate:
    """One update made by :class:`Watcher`: what changed, what ran, how long each part took."""

    detected_at: float
    shards: list[str]
    added: int
    modified: int
    deleted: int
    paths: list[str]
    summary: IndexSummary
    tick_seconds: float
    newest_change_ns: int | None
    published_ns: int | None = None

    @property
    def files_changed(self) -> int:
        return self.added + self.modified + self.deleted

    def to_json(self) -> dict[str, object]:
        detect_lag = (
            self.detected_at - self.newest_change_ns / 1e9 if self.newest_change_ns else None
        )
        latency = None
        if self.newest_change_ns and self.published_ns and self.summary.success:
            latency = round((self.published_ns - self.newest_change_ns) / 1e9, 3)
        return {
            "detected_at": self.detected_at,
            "publish_latency_seconds": latency,
            "files_changed": self.files_changed,
            "added": self.added,
            "modified": self.modified,
            "deleted": self.deleted,
            "paths": self.paths,
            "shards": self.shards,
            "tick_seconds": round(self.tick_seconds, 3),
            "detect_lag_seconds": None if detect_lag is None else round(detect_lag, 3),
            **{key: value for key, value in self.summary.to_json().items() if key != "changes"},
        }


WATCH_RETRY_DELAY_S = 5.0
WATCH_RETRY_MAX_DELAY_S = 120.0


class Watcher:
    """`coderag watch` without the terminal: evaluates the change sensor in-process and runs
    each tick's requests as one update (shards + index) on the given instance.

    The cursor lives in memory; a new Watcher starts from the published index, so changes
    made while nothing was watching are picked up on its first tick.
    """

    def __init__(self, settings: Settings, instance: dg.DagsterInstance):
        from coderag_assets.definitions import build_definitions
        from coderag_assets.resources import CodeRagResource

        assert settings.root is not None, "Watcher needs settings.root"
        self.settings = settings
        self.instance = instance
        self.resource = CodeRagResource.from_settings(settings)
        self.definitions = build_definitions(settings)
        self.cursor: str | None = None
        self.last_skip: str | None = None
        self.last_scan_seconds = 0.0
        self.failures = 0  # consecutive failed updates
        self.retry_at = 0.0  # after repeated failures, wait before trying the same changes again
        fail_orphaned_runs(instance)

    def warm_up(self) -> float:
        """Load the embedding model into this process now (seconds it took)."""
        from coderag_assets.embedding import load_embedder, prepare_model

        started = time.perf_counter()
        spec = self.resource.embedder_spec()
        prepare_model(spec)
        load_embedder(replace(spec, threads=os.cpu_count() or 1))
        return time.perf_counter() - started

    def tick(self, on_start: Callable[[str, list[str]], None] | None = None) -> WatchUpdate | None:
        """Evaluate the sensor once; if it requests runs, run them now. None when idle.

        `on_start(description, shards)` is called before the run starts.
        """
        from coderag_assets.sensors import CHANGE_SENSOR_NAME, coderag_changes

        if time.monotonic() < self.retry_at:
            return None
        started = time.perf_counter()
        detected_at = time.time()
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            sensor_name=CHANGE_SENSOR_NAME,
            definitions=self.definitions,
            resources={"coderag": self.resource},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = coderag_changes.evaluate_tick(context)
        tick_seconds = time.perf_counter() - started
        self.last_scan_seconds = tick_seconds
        for event in data.asset_events or []:
            self.instance.report_runless_asset_event(event)
        previous_cursor, self.cursor = self.cursor, data.cursor
        requests = list(data.run_requests or [])
        if not requests:
            self.last_skip = data.skip_message
            return None
        self.last_skip = None
        changes = requested_changes(requests)
        if on_start is not None:
            from coderag_assets.assets import SHARDS

            shards = shards_of_requests(requests, SHARDS.get_partition_keys())
            on_start(changes.describe() if changes.files else "repair", shards)
        summary = run_requests(
            self.settings,
            requests,
            instance=self.instance,
            tags={TRIGGER_TAG: "watch"},
            include_checks=False,
        )
        summary.timings["sensor_tick"] = tick_seconds
        if summary.success:
            self.failures = 0
        else:
            # Keep the old fingerprints so the same changes are retried: at once the first
            # time (a killed run), then with a growing pause (a change that keeps failing).
            self.cursor = previous_cursor
            self.failures += 1
            if self.failures > 1:
                pause = min(WATCH_RETRY_MAX_DELAY_S, WATCH_RETRY_DELAY_S * 2 ** (self.failures - 2))
                self.retry_at = time.monotonic() + pause
        try:
            published_ns: int | None = summary.index_path.stat().st_mtime_ns
        except FileNotFoundError:
            published_ns = None
        return WatchUpdate(
            detected_at=detected_at,
            shards=summary.shards,
            added=changes.added,
            modified=changes.modified,
            deleted=changes.deleted,
            paths=list(changes.paths),
            summary=summary,
            tick_seconds=tick_seconds,
            newest_change_ns=changes.newest_change_ns or None,
            published_ns=published_ns,
        )
