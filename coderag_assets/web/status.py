"""What the status strip, ``/api/status``, ``/healthz`` and ``/metrics`` report, kept fresh in
the background.

Computing the index status walks the working tree for freshness (~0.3 s per 30k files) and the
last run comes from the Dagster instance: neither belongs on a request's path. A
:class:`StatusCache` recomputes both every :data:`STATUS_REFRESH_S` seconds on its own thread
(less often when one refresh takes longer than a tenth of that), and requests read the last
snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from coderag_assets.backend import IndexBackend
from coderag_assets.metrics import IndexSnapshot
from coderag_assets.query import IndexStatus

STATUS_REFRESH_S = 5.0
LAST_RUN_REFRESH_S = 15.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LastRun:
    run_id: str
    status: str  # SUCCESS, FAILURE, CANCELED
    duration_s: float | None
    ended_at: float | None


@dataclass(frozen=True)
class StatusView:
    """One snapshot: the status record (None before the first publish, or when the index
    cannot be read — ``reason`` says why) and the last finished index run, if known."""

    status: IndexStatus | None
    reason: str
    last_run: LastRun | None
    checked_at: float

    def to_json(self) -> dict[str, object]:
        """What ``/api/status`` answers: `coderag status --json` plus ``last_run``."""
        if self.status is None:
            return {"error": self.reason, "code": "no_index"}
        payload = self.status.to_json()
        payload["last_run"] = None if self.last_run is None else self.last_run.__dict__
        return payload

    def snapshot(self) -> IndexSnapshot:
        status, run = self.status, self.last_run
        freshness = (status.freshness or {}) if status else {}
        changed = freshness.get("changed_files")
        lag: float | None = None
        if status is not None and isinstance(changed, int):
            lag = 0.0 if changed == 0 else max(0.0, time.time() - status.published_at)
        return IndexSnapshot(
            version=status.version if status else None,
            chunks=status.chunks if status else None,
            published_at=status.published_at if status else None,
            changed_files=changed if isinstance(changed, int) else None,
            freshness_lag_s=lag,
            last_run_duration_s=run.duration_s if run else None,
            last_run_status=run.status if run else None,
            last_run_id=run.run_id if run else None,
            readable=status is not None,
            reason=self.reason,
        )


class StatusCache:
    """The latest :class:`StatusView` of one backend, refreshed on a daemon thread."""

    def __init__(self, backend: IndexBackend, *, interval_s: float = STATUS_REFRESH_S) -> None:
        self.backend = backend
        self.interval_s = interval_s
        self._view = StatusView(None, "starting", None, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_run: LastRun | None = None
        self._last_run_checked = 0.0
        self._last_run_failed = False
        self._last_version: int | None = None

    @property
    def view(self) -> StatusView:
        return self._view

    def refresh(self) -> StatusView:
        """Recompute now (also warms the query model once the first index appears)."""
        try:
            status: IndexStatus | None = self.backend.status()
            reason = ""
            self.backend.warm_up_once()
        except Exception as exc:  # noqa: BLE001  (no index yet, or unreadable: report it, keep serving)
            status, reason = None, str(exc) or type(exc).__name__
        version = status.version if status is not None else None
        published = version != self._last_version  # a new publish ends a run: look now
        self._last_version = version
        if published or time.monotonic() - self._last_run_checked >= LAST_RUN_REFRESH_S:
            self._last_run_checked = time.monotonic()
            self._last_run = self._read_last_run()
        self._view = StatusView(status, reason, self._last_run, time.time())
        return self._view

    def _read_last_run(self) -> LastRun | None:
        if self._last_run_failed:
            return None
        try:
            import dagster as dg

            from coderag_assets.runs import get_instance
            from coderag_assets.tags import INDEX_JOB_NAME, ROOT_TAG

            instance = get_instance(self.backend.settings)
            records = instance.get_run_records(
                dg.RunsFilter(
                    job_name=INDEX_JOB_NAME,
                    tags={ROOT_TAG: str(self.backend.root)},
                    statuses=[
                        dg.DagsterRunStatus.SUCCESS,
                        dg.DagsterRunStatus.FAILURE,
                        dg.DagsterRunStatus.CANCELED,
                    ],
                ),
                limit=1,
            )
        except Exception as exc:  # noqa: BLE001  (the instance is optional for serving)
            log.warning("last index run unavailable: %s", exc)
            self._last_run_failed = True
            return None
        if not records:
            return None
        record = records[0]
        start, end = record.start_time, record.end_time
        return LastRun(
            run_id=record.dagster_run.run_id,
            status=record.dagster_run.status.value,
            duration_s=None if start is None or end is None else round(end - start, 3),
            ended_at=end,
        )

    def start(self) -> None:
        if self._thread is not None:
            return
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="coderag-status", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # Freshness walks the tree: on a huge tree refresh less often, so the walk stays
        # under ~10 % of one core.
        wait_s = self.interval_s
        while not self._stop.wait(wait_s):
            started = time.monotonic()
            self.refresh()
            wait_s = max(self.interval_s, 10 * (time.monotonic() - started))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
