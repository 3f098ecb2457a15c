"""`coderag watch` without the terminal: the change sensor evaluated in this process, and
each tick's request run as one update of the index job (:func:`runs.run_shards`) with the
model kept warm here (small updates run on the in-process executor).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from coderag_assets.execution import executor_threads, prepare_config
from coderag_assets.freshness import LiveTree
from coderag_assets.partitions import shard_keys
from coderag_assets.progress import ProgressReporter
from coderag_assets.runs import IndexSummary, run_shards
from coderag_assets.settings import Settings
from coderag_assets.tags import (
    CHANGE_COUNTS_TAG,
    CHANGES_TAG,
    RUN_KEYS_TAG,
    TRIGGER_TAG,
    requested_changes,
    shards_of_requests,
)
from coderag_assets.tree_cache import EventWalker


def run_requests(
    settings: Settings,
    requests: Sequence[dg.RunRequest],
    *,
    instance: dg.DagsterInstance,
    reporter: ProgressReporter | None = None,
    tags: Mapping[str, str] | None = None,
) -> IndexSummary:
    """Execute sensor or schedule run requests from this process as one run of the job.

    The sensor's walk named in the requests (one scan for all of them) is handed on to the
    run; requests naming different scans, or none, leave the run to walk the tree.
    """
    keys = shard_keys(settings.shard_count)
    configs = [prepare_config(request.run_config) for request in requests]
    verify = any(config.get("verify_hashes") for config in configs)
    scans = {config.get("scan") or "" for config in configs}
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
        tags=extra,
        reason=reason,
        scan=scans.pop() if len(scans) == 1 else None,
    )


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

    With `events` (fed by a file-system observer that is already running) a tick looks at
    the tree only where events said it changed, with a periodic full check
    (:class:`tree_cache.EventWalker`); without, every tick stats every file.
    """

    def __init__(
        self,
        settings: Settings,
        instance: dg.DagsterInstance,
        events: EventWalker | None = None,
    ):
        from coderag_assets.resources import CodeRagResource

        assert settings.root is not None, "Watcher needs settings.root"
        self.settings = settings
        self.instance = instance
        self.resource = CodeRagResource.from_settings(settings)
        self.live = LiveTree(events) if events is not None else None
        self.cursor: str | None = None
        self.last_skip: str | None = None
        self.last_scan_seconds = 0.0
        self.failures = 0  # consecutive failed updates
        self.retry_at = 0.0  # after repeated failures, wait before trying the same changes again

    def warm_up(self) -> float:
        """Load the embedding model into this process now (seconds it took)."""
        from coderag_assets.embedding import load_embedder, prepare_model

        started = time.perf_counter()
        # the spec of the in-process executor's steps: the runs reuse this very model
        spec = self.resource.step_embedder_spec(
            threads=executor_threads("in_process", self.resource.workers)
        )
        prepare_model(spec)
        load_embedder(spec)
        return time.perf_counter() - started

    def tick(self, on_start: Callable[[str, list[str]], None] | None = None) -> WatchUpdate | None:
        """Evaluate the sensor once; if it requests runs, run them now. None when idle.

        `on_start(description, shards)` is called before the run starts.
        """
        from coderag_assets.sensors import evaluate_changes

        if time.monotonic() < self.retry_at:
            return None
        started = time.perf_counter()
        detected_at = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = evaluate_changes(
                self.resource, self.cursor, self.instance, self.settings.executor, self.live
            )
        tick_seconds = time.perf_counter() - started
        self.last_scan_seconds = tick_seconds
        for event in result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        previous_cursor, self.cursor = self.cursor, result.cursor
        requests = list(result.run_requests or [])
        if not requests:
            self.last_skip = result.skip_reason.skip_message if result.skip_reason else None
            return None
        self.last_skip = None
        changes = requested_changes(requests)
        if on_start is not None:
            shards = shards_of_requests(requests, shard_keys(self.settings.shard_count))
            on_start(changes.describe() if changes.files else "repair", shards)
        summary = run_requests(
            self.settings,
            requests,
            instance=self.instance,
            tags={TRIGGER_TAG: "watch"},
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
