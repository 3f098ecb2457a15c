"""Run the index job for one root from this process: the code path of `coderag index` (and,
through :mod:`coderag_assets.watcher`, of `coderag watch`).

An update is one run of the job `coderag_index` from `definitions.py` on the instance under
the data directory, executed here and recorded under the `coderag` code location
(:func:`launch.execute_index_run`: re-executable from the UI, listed on the job's pages): the
shard steps that need it (on the executor :mod:`coderag_assets.execution` chooses), then the
gated index publish. Shards a failed run already finished are not run again.
:func:`run_index` asks :mod:`coderag_assets.freshness` which shards differ from the published
index and runs only those (or nothing: "up to date"), handing the run the walk it planned
with (:mod:`coderag_assets.scans`) so that the tree is walked once per update; `full=True`
re-hashes every file.

One update per root at a time: a run holds the root's lock file (`filelock`) from start to
end, so a second `coderag index` waits for the first (and says so). Holding the lock also
proves that any run of this root still marked active on the instance lost its process
(kill -9, power loss): such runs are marked failed before the new one starts, and the next
update redoes their shards. Runs launched by the daemon (sensor, schedule, UI) are watched by
Dagster's own run monitoring (`dagster.yaml`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import replace
from pathlib import Path
from typing import Self, TextIO

import dagster as dg

from coderag_assets.disk_space import FullDisk, find_full_disk
from coderag_assets.execution import (
    ServiceUnavailableError,
    UpdateBlockedError,
    check_broker,
    choose_executor,
    executor_threads,
    run_config,
)
from coderag_assets.files import RootError
from coderag_assets.launch import (
    INVOCATION_TAG,
    LOCK_WAIT_NOTICE_S,
    execute_index_run,
    locked_by_starter,
)
from coderag_assets.launch import root_lock as _base_lock
from coderag_assets.partitions import shard_keys
from coderag_assets.progress import ProgressReporter, report, use_reporter
from coderag_assets.settings import Settings, prepare_dagster_env, settings_env
from coderag_assets.store import IndexStore
from coderag_assets.tags import (
    ACTIVE_RUN_STATUSES,
    EXECUTOR_TAG,
    ROOT_TAG,
    TAG_VALUE_CHARS,
    TRIGGER_TAG,
    range_tags,
)
from coderag_assets.updates import (
    IndexSummary,
    PlannedUpdate,
    fill_from_index,
    plan_index_update,
    unusable_root_summary,
)

__all__ = ["INVOCATION_TAG", "LOCK_WAIT_NOTICE_S", "root_lock"]  # launch's, used by tests
SHARD_STEP = "index_shard"


def _is_shard_step(step_key: str) -> bool:
    """`shard_assets.index_shard[shard_3]` — one mapped shard step."""
    return step_key.split(".")[-1].startswith(SHARD_STEP + "[")


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance of `settings.data_dir` (created once per process, before any worker).

    Raises ServiceUnavailableError naming the storage when the instance's database (e.g.
    PostgreSQL with `CODERAG_INSTANCE_YAML=deploy/cluster/dagster.yaml`) does not answer.
    """
    prepare_dagster_env(settings)
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs_count()  # touches the run storage: a dead database fails here
    except Exception as error:
        if "could not connect" in str(error).lower() or "connection refused" in str(error).lower():
            raise ServiceUnavailableError(
                f"the Dagster instance storage is not reachable ({str(error).splitlines()[0]}); "
                "is PostgreSQL running (scripts/cluster.sh up)?"
            ) from error
        raise
    return instance


# ------------------------------------------------------------------ coderag index


def run_index(
    settings: Settings,
    *,
    reporter: ProgressReporter | None = None,
    full: bool = False,
    instance: dg.DagsterInstance | None = None,
    skip_gates: Sequence[str] = (),
    planned: PlannedUpdate | None = None,
) -> IndexSummary:
    """Bring the index of `settings.root` up to date; never raises for run failures.

    Detect → plan (:func:`coderag_assets.updates.plan_index_update`, or `planned` when the
    caller already did) → lock → run: runs only the shards whose files differ from the
    published index (plus shards left unfinished by a killed run), then rebuilds the index,
    in one run; returns an `up_to_date` summary without a run — and without touching the
    Dagster instance — when nothing changed. The walk that planned the update is handed to
    the run (:mod:`coderag_assets.scans`), so the tree is walked once. `full` runs every
    shard and re-hashes every file (vectors are still reused by content hash); its run walks
    the tree itself. `skip_gates` names promotion gates that report but do not block this
    update.
    """
    from coderag_assets.indexing import shards_already_written
    from coderag_assets.scans import save_scan

    assert settings.root is not None, "run_index needs settings.root"
    if planned is None:
        try:
            planned = plan_index_update(settings, full=full)
        except RootError as error:
            return unusable_root_summary(settings, error)
    if planned.up_to_date:
        return planned.up_to_date_summary()
    settings, store, snapshot, plan = (
        planned.settings,
        planned.store,
        planned.snapshot,
        planned.plan,
    )
    instance = instance or get_instance(settings)
    if plan is None:  # a full rebuild
        return run_shards(
            settings,
            planned.keys,
            instance=instance,
            reporter=reporter,
            verify_hashes=True,
            tags={TRIGGER_TAG: "index"},
            reason="full rebuild",
            skip_gates=skip_gates,
        )
    # Shards a failed run already finished (their step ran on these very files) need no
    # step again, only the publish: the next run redoes just what failed.
    finished = shards_already_written(
        store, plan.shards, lambda shard: snapshot.shard_files([shard]), model_id=planned.model_id
    )
    if finished:
        plan = replace(plan, shards=[shard for shard in plan.shards if shard not in finished])
    # One run of those shards under the root's lock (run_shards); it reads the rows of its
    # shards from this walk instead of walking again.
    scan = save_scan(
        store,
        snapshot,
        plan.shards,
        shard_count=len(planned.keys),
        max_file_bytes=settings.max_file_bytes,
    )
    summary = run_shards(
        settings,
        plan.shards,
        instance=instance,
        reporter=reporter,
        tags={TRIGGER_TAG: "index"},
        reason=plan.reason,
        scan=scan,
        skip_gates=skip_gates,
    )
    summary.changes = plan.changes.to_json()
    summary.detection = planned.detection
    summary.seconds = time.perf_counter() - planned.started
    return summary


# ------------------------------------------------------------------ one update run


@contextmanager
def root_lock(store: IndexStore, *, on_wait: str = "") -> Iterator[None]:
    """Hold the root's update lock; waits (printing `on_wait` once) while another holds it."""
    with _base_lock(store.base, on_wait=(lambda: report().start(on_wait, 0)) if on_wait else None):
        yield


def fail_abandoned_runs(instance: dg.DagsterInstance, root: Path, message: str) -> list[str]:
    """Mark failed the runs of `root` started from a CLI process that are still active.

    Call only while holding :func:`root_lock`: the process that started such a run held the
    lock, so if we hold it now that process is gone. Daemon-launched runs (no
    `coderag/invocation` tag) are left to Dagster's run monitoring.
    """
    failed = []
    filters = dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={ROOT_TAG: str(root)})
    for run in instance.get_runs(filters):
        if locked_by_starter(run.tags):
            instance.report_run_failed(run, message=message)
            # A step killed while holding the index writer's pool slot keeps it claimed
            # (the daemon frees such slots; a CLI-only user has no daemon).
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            failed.append(run.run_id)
    return failed


DAEMON_RUN_POLL_S = 1.0
DAEMON_RUN_WAIT_S = 600.0
RUNNING_STATUSES = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def wait_for_daemon_runs(
    instance: dg.DagsterInstance, root: Path, *, limit_s: float = DAEMON_RUN_WAIT_S
) -> None:
    """Block while a daemon-launched run (sensor, schedule, UI) of `root` is running: two runs
    must never write the same shards. Call it without holding :func:`root_lock` (the run's
    steps take it). Queued runs are not
    waited for (the run queue holds them back while this update runs). Raises
    UpdateBlockedError, naming the run, after `limit_s`."""
    filters = dg.RunsFilter(statuses=RUNNING_STATUSES, tags={ROOT_TAG: str(root)})
    deadline = time.monotonic() + limit_s
    announced = False
    while runs := instance.get_runs(filters, limit=1):
        if time.monotonic() > deadline:
            raise UpdateBlockedError(
                f"run {runs[0].run_id} of {root} has been running for over {limit_s:.0f} s; "
                "wait for it, or if its process is gone terminate it in the Dagster UI (Runs)"
            )
        if not announced:
            report().start("waiting for a running Dagster run of this root", 0)
            announced = True
        time.sleep(DAEMON_RUN_POLL_S)


@contextmanager
def _update_claim(instance: dg.DagsterInstance, store: IndexStore) -> Iterator[None]:
    """Hold the root's lock with no daemon-launched run of the root running (runs of a dead
    CLI process are marked failed first). A running daemon run is waited for without the
    lock: its writing steps take the lock too (shared, :func:`launch.claim_root`)."""
    while True:
        with root_lock(store, on_wait="waiting for another update of this root"):
            fail_abandoned_runs(instance, store.root, "the process running it is gone (killed?)")
            running = dg.RunsFilter(statuses=RUNNING_STATUSES, tags={ROOT_TAG: str(store.root)})
            if not instance.get_runs(running, limit=1):
                yield
                return
        wait_for_daemon_runs(instance, store.root)


def sized_for_tree(settings: Settings) -> Settings:
    """`settings` with the shard count of a new index sized from one walk of its root (the
    count as it is when it was set or the index exists). `run_index` sizes from its own walk;
    this is for `coderag watch` (its first update comes from the change sensor) and
    `coderag ui` (its partitions are fixed when the UI starts)."""
    from coderag_assets.files import scan_tree
    from coderag_assets.scope import estimate_chunks

    if settings.root is None:
        return settings
    settings = settings.with_root(settings.root)
    if not settings.shards_unsized:
        return settings
    stats = scan_tree(settings.root, max_file_bytes=settings.max_file_bytes)
    return settings.sized(estimate_chunks((s.path, s.size) for s in stats if not s.skip_reason))


def run_shards(
    settings: Settings,
    shards: Sequence[str],
    *,
    instance: dg.DagsterInstance,
    reporter: ProgressReporter | None = None,
    verify_hashes: bool = False,
    include_index: bool = True,
    tags: Mapping[str, str] | None = None,
    reason: str = "",
    scan: str | None = None,
    skip_gates: Sequence[str] = (),
) -> IndexSummary:
    """One run of the job: a step for each of `shards`, then (`include_index`) the publish.

    With no shards, only the index is published. `scan` names the planner's walk of
    `shards` (:func:`coderag_assets.scans.save_scan`); without one the run walks the tree.
    Unreadable (torn) shard files are set aside first so the run recomputes them. The
    executor follows `settings.executor` (auto: in-process, see
    :func:`coderag_assets.execution.choose_executor`). Never raises for run failures; an
    interrupt (Ctrl-C, SIGTERM) marks the run failed and propagates. A full file system,
    whether the index's writes or the Dagster instance's storage hit it first, is a failed
    summary with `out_of_space` set and a one-line `error` naming the file system
    (:mod:`coderag_assets.disk_space`); what Dagster writes to stderr about its failed
    event-log writes is held back.
    """
    from coderag_assets.assets import INDEX_ASSET_NAMES, SHARD_ASSET_NAMES
    from coderag_assets.definitions import index_job
    from coderag_assets.freshness import quarantine_torn_files
    from coderag_assets.resources import CodeRagResource

    assert settings.root is not None, "run_shards needs settings.root"
    keys = shard_keys(settings.shard_count)
    store = IndexStore.for_root(settings.data_dir, settings.root)
    shards = sorted(set(shards), key=keys.index)
    executor = choose_executor(settings.executor)
    run_settings = replace(
        settings,
        inference_threads=settings.inference_threads
        or executor_threads(executor, settings.workers),
    )
    invocation = uuid.uuid4().hex
    all_tags = {
        ROOT_TAG: str(settings.root),
        EXECUTOR_TAG: executor,
        INVOCATION_TAG: invocation,
        **{key: value[:TAG_VALUE_CHARS] for key, value in (tags or {}).items()},
    }
    config = run_config(
        executor,
        workers=settings.workers,
        verify_hashes=verify_hashes,
        shards=shards if shards and len(shards) < len(keys) else None,
        scan=scan if shards else None,
        resource=CodeRagResource.from_settings(run_settings).as_run_config(),
        start_method=(
            _start_method(settings_env(run_settings)) if executor == "multiprocess" else "spawn"
        ),
        skip_gates=list(skip_gates) if include_index else None,
    )
    selected = [*SHARD_ASSET_NAMES] * bool(shards) + [*INDEX_ASSET_NAMES] * include_index
    # The whole job when it is all selected (a subset would also plan the assets' checks).
    asset_selection = None
    if len(selected) < len(SHARD_ASSET_NAMES) + len(INDEX_ASSET_NAMES):
        asset_selection = [dg.AssetKey(name) for name in selected]
    if shards:
        all_tags.update(range_tags(shards, keys))
    check_broker(executor)
    started = time.perf_counter()
    with (
        _update_claim(instance, store),
        _environment(
            settings_env(run_settings)  # every step process rebuilds the job from it
        ),
    ):
        quarantine_torn_files(store, shards)
        watcher = (
            _StepProgress(instance, invocation, len(shards)) if executor != "in_process" else None
        )
        event_log_errors = _HeldBackEventLogErrors()
        try:
            with warnings.catch_warnings(), event_log_errors:
                warnings.simplefilter("ignore")
                with use_reporter(reporter) if reporter else nullcontext():
                    if watcher is not None:
                        watcher.start()
                    job = dg.reconstructable(index_job)
                    # The definition is cached per process: rebuild it from this run's settings.
                    job.get_definition.cache_clear()
                    job.get_repository_definition.cache_clear()
                    # Recorded under the `coderag` code location: re-executable from the UI.
                    result = execute_index_run(
                        job,
                        instance,
                        run_config=config,
                        tags=all_tags,
                        asset_selection=asset_selection,
                    )
        except Exception as error:  # the instance's storage failed (e.g. its disk is full)
            full = find_full_disk(error, instance_dir=settings.data_dir)
            with suppress(Exception):  # a storage still failing: the next run marks it failed
                fail_abandoned_runs(instance, settings.root, f"the run failed: {error}")
            if full is None:
                raise
            return _out_of_space_summary(
                full, settings, store, shards, keys, reason, time.perf_counter() - started
            )
        except BaseException:  # interrupted: the run must not stay "started"
            fail_abandoned_runs(instance, settings.root, "interrupted")
            raise
        finally:
            if watcher is not None:
                watcher.stop()
    run_seconds = time.perf_counter() - started
    if not result.success:
        full = find_full_disk(
            [*_failure_texts(result), *event_log_errors.lines], instance_dir=settings.data_dir
        )
        if full is not None:
            return _out_of_space_summary(
                full, settings, store, shards, keys, reason, run_seconds, run_id=result.run_id
            )
    summary = IndexSummary(
        root=settings.root,
        index_path=store.index_path,
        success=result.success,
        run_id=result.run_id,
        seconds=run_seconds,
        shards=list(shards),
        shard_count=len(keys),
        reason=reason,
    )
    metadata = _metadata_by_asset(result.get_asset_materialization_events())
    _fill_from_metadata(summary, metadata)
    summary.gates = _gate_results(result)
    if result.success and include_index:
        fill_from_index(summary, store)
    else:
        summary.error = _failure_message(result)
        if event_log_errors.lines:  # the run's own record is incomplete: say why
            summary.error += f" ({event_log_errors.lines[0].splitlines()[0]})"
    summary.timings = _run_timings(instance, result.run_id, run_seconds, metadata)
    summary.timings["executor_" + executor] = run_seconds
    return summary


def _out_of_space_summary(
    full: FullDisk,
    settings: Settings,
    store: IndexStore,
    shards: Sequence[str],
    keys: Sequence[str],
    reason: str,
    seconds: float,
    *,
    run_id: str = "",
) -> IndexSummary:
    """The failed summary of a run that ran out of space: one line naming the file system.
    `run_id` is empty when the instance could not even record the run."""
    from coderag_assets.inventory import prunable_bytes
    from coderag_assets.segments import read_current
    from coderag_assets.store import IndexNotFoundError

    try:
        live_version: int | None = read_current(store.base).version
    except (IndexNotFoundError, OSError, ValueError):
        live_version = None
    return IndexSummary(
        root=store.root,
        index_path=store.index_path,
        success=False,
        run_id=run_id,
        seconds=seconds,
        shards=list(shards),
        shard_count=len(keys),
        reason=reason,
        error=full.message(
            settings.data_dir,
            live_version=live_version,
            prunable_bytes=prunable_bytes(settings.data_dir),
        ),
        out_of_space=True,
        version=live_version,
    )


class _HeldBackEventLogErrors:
    """While entered, lines Dagster writes to `sys.stderr` when it cannot write a log call to
    the run's event log (its storage failed, e.g. a full disk) are kept in `lines` instead of
    reaching the terminal; everything else passes through. Steps in other processes write to
    their own stderr and are not covered."""

    PREFIX = "Exception while writing logger call to event log"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._stream: TextIO | None = None

    def __enter__(self) -> Self:
        self._stream = sys.stderr
        sys.stderr = _FilteredStream(self._stream, self.PREFIX, self.lines)  # type: ignore[assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            sys.stderr = self._stream
            self._stream = None


class _FilteredStream:
    """A text stream that passes writes through to `target` except those starting with
    `prefix`, which are appended to `held`."""

    def __init__(self, target: TextIO, prefix: str, held: list[str]):
        self._target = target
        self._prefix = prefix
        self._held = held

    def write(self, text: str) -> int:
        if text.startswith(self._prefix):
            self._held.append(text.strip())
            return len(text)
        return self._target.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._target, name)


_forkserver_env: dict[str, str] | None = None


def _start_method(env: Mapping[str, str]) -> str:
    """`forkserver` unless this process already started one under other settings.

    The forkserver is started once per process and every step process forks from it, with
    the environment it had then: the instance configuration resolves `CODERAG_DATA` from
    that environment, so a second run with another data directory would send its steps'
    events to the first one's instance. Such runs (tests, several roots in one process)
    spawn fresh processes instead.
    """
    global _forkserver_env
    wanted = {**env, "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", "")}
    if _forkserver_env is None:
        _forkserver_env = wanted
    return "forkserver" if _forkserver_env == wanted else "spawn"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ for the duration (child processes inherit them), then restored,
    so a long-lived process (watch, tests) keeps its own settings between runs."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _StepProgress:
    """Advances the "shards" progress bar from the run's step events while shard steps run in
    other processes (the in-process executor reports from the stages themselves)."""

    POLL_S = 0.5

    def __init__(self, instance: dg.DagsterInstance, invocation: str, shards: int):
        self.instance = instance
        self.invocation = invocation
        self.shards = shards
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="coderag-progress", daemon=True)

    def start(self) -> None:
        report().start("shards", self.shards)
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=2)
        report().finish("shards")

    def _poll(self) -> None:
        reporter = report()
        seen = 0
        run_id = None
        while not self.done.wait(self.POLL_S):
            try:
                if run_id is None:
                    runs = self.instance.get_runs(
                        dg.RunsFilter(tags={INVOCATION_TAG: self.invocation}), limit=1
                    )
                    run_id = runs[0].run_id if runs else None
                    continue
                records = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            except Exception:  # noqa: BLE001, S112 - progress is best effort
                continue
            finished = sum(1 for r in records if _is_shard_step(r.step_key or ""))
            if finished > seen:
                reporter.advance("shards", finished - seen)
                seen = finished


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


def _run_timings(
    instance: dg.DagsterInstance,
    run_id: str,
    run_seconds: float,
    metadata: dict[str, dict[str, object]],
) -> dict[str, float]:
    """Seconds per stage of one run, from the run's step events and the assets' metadata.

    `shard_steps` adds up the shard steps (they overlap on the multiprocess executor),
    `run_overhead` is the run's wall time outside its steps (run creation, process starts,
    event-log work); `embed` and `index_publish` are what the assets measured themselves.
    """
    timings: dict[str, float] = {"run": run_seconds}
    spans: list[tuple[float, float]] = []
    starts: dict[str, float] = {}
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
            begin = starts.pop(step)
            spans.append((begin, record.timestamp))
            name = "shard_steps" if _is_shard_step(step) else step.split(".")[-1]
            timings[name] = timings.get(name, 0.0) + record.timestamp - begin
    covered, last_end = 0.0, float("-inf")
    for begin, end in sorted(spans):
        if end > last_end:
            covered += end - max(begin, last_end)
            last_end = end
    timings["run_overhead"] = max(0.0, run_seconds - covered)
    embed = metadata.get("chunk_embeddings", {}).get("seconds")
    if isinstance(embed, int | float):
        timings["embed"] = float(embed)
    publish = metadata.get("search_index", {}).get("seconds")
    if isinstance(publish, int | float):
        timings["index_publish"] = float(publish)
    return timings


def _metadata_by_asset(events: Sequence[dg.DagsterEvent]) -> dict[str, dict[str, object]]:
    """Metadata per asset, added up over its partitions (numbers summed, counts merged).

    A shard's partitions are recorded by its own step and again by the run's last shard op:
    the latest event of each (asset, partition) counts once."""
    values: dict[str, dict[str, object]] = {}
    latest = {}
    for event in events:
        materialization = event.step_materialization_data.materialization
        latest[(materialization.asset_key, materialization.partition)] = event
    for event in latest.values():
        materialization = event.step_materialization_data.materialization
        totals = values.setdefault(materialization.asset_key.to_user_string(), {})
        for name, entry in materialization.metadata.items():
            value = entry.value
            previous = totals.get(name)
            if isinstance(value, bool) or previous is None:
                totals[name] = value
            elif isinstance(value, int | float) and isinstance(previous, int | float):
                totals[name] = previous + value
            elif isinstance(value, dict) and isinstance(previous, dict):
                totals[name] = dict(Counter(previous) + Counter(value))
    return values


def _failure_texts(result: dg.ExecutionResult) -> list[str]:
    """`<class>: <message>` of every error (causes and contexts too) of the run's failed
    steps and of the run failure itself."""
    texts: list[str] = []
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else None
        pending = [data.error if data else None]
        if event.event_type == dg.DagsterEventType.RUN_FAILURE and event.event_specific_data:
            pending.append(getattr(event.event_specific_data, "error", None))
        while pending:
            error = pending.pop()
            if error is None:
                continue
            texts.append(f"{error.cls_name}: {error.message.strip()}")
            pending.extend([error.cause, error.context])
    return texts


def _gate_results(result: dg.ExecutionResult) -> dict[str, dict[str, object]]:
    """The promotion gates this run evaluated: check name -> passed, state, detail."""
    gates: dict[str, dict[str, object]] = {}
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        metadata = {name: entry.value for name, entry in evaluation.metadata.items()}
        gates[evaluation.check_name] = {
            "passed": evaluation.passed,
            "state": metadata.get("state", "passed" if evaluation.passed else "failed"),
            "detail": evaluation.description or metadata.get("detail", ""),
        }
    return gates


def _failure_message(result: dg.ExecutionResult) -> str:
    """`<step>: <message>` of the run's first failed step. CodeRAG's own exceptions say what
    failed, where and what to do (e.g. DiskFullError), so their class path is left out."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "dagster" in (error.cls_name or "").lower():
                error = error.cause
            message = re.sub(r"^coderag_assets\.[\w.]+: ", "", error.message.strip())
            return f"{event.step_key}: {message}"
    return "run failed"
