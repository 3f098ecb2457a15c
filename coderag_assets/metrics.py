"""Prometheus metrics of one `coderag serve --http` process (``/metrics``).

Counted per call: queries by tool (an MCP tool name, or ``web``/``api_search``...) and mode,
latency histograms, results returned, errors by code. Read at scrape time from the serving
backend's cached snapshot (:class:`IndexSnapshot`, refreshed in the background so a scrape
never walks the tree): published index version, chunks, age of the published version,
freshness lag, changed files, and the last index run's duration and outcome.

Each server owns a :class:`ServerMetrics` with its own registry (no process-global state, so
tests can run several servers in one process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESULT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 500, 1000)


@dataclass(frozen=True)
class IndexSnapshot:
    """What the gauges report; None fields are left out of the scrape."""

    version: int | None = None
    chunks: int | None = None
    published_at: float | None = None
    changed_files: int | None = None
    freshness_lag_s: float | None = None
    last_run_duration_s: float | None = None
    last_run_status: str | None = None
    last_run_id: str | None = None
    readable: bool = False
    reason: str = ""


class _IndexCollector(Collector):
    def __init__(self, snapshot: Callable[[], IndexSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        snap = self._snapshot()
        yield GaugeMetricFamily(
            "coderag_index_readable",
            "1 when a published index is open and readable",
            value=int(snap.readable),
        )
        gauges = [
            ("coderag_index_version", "Version of the published index being served", snap.version),
            ("coderag_index_chunks", "Chunks in the published index", snap.chunks),
            (
                "coderag_index_published_timestamp_seconds",
                "Unix time the served index was published",
                snap.published_at,
            ),
            (
                "coderag_index_age_seconds",
                "Seconds since the served index was published",
                None if snap.published_at is None else max(0.0, time.time() - snap.published_at),
            ),
            (
                "coderag_freshness_changed_files",
                "Files added, modified or deleted in the working tree since the publish",
                snap.changed_files,
            ),
            (
                "coderag_freshness_lag_seconds",
                (
                    "How far the index is behind the working tree: 0 when up to date, else "
                    "seconds since the publish the tree has moved on from"
                ),
                snap.freshness_lag_s,
            ),
            (
                "coderag_last_run_duration_seconds",
                "Duration of the last finished index run of this root",
                snap.last_run_duration_s,
            ),
        ]
        for name, documentation, value in gauges:
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=float(value))
        if snap.last_run_status is not None:
            outcome = GaugeMetricFamily(
                "coderag_last_run_success",
                "1 when the last finished index run of this root succeeded, 0 when it failed",
                labels=["status", "run_id"],
            )
            outcome.add_metric(
                [snap.last_run_status, snap.last_run_id or ""],
                1.0 if snap.last_run_status == "SUCCESS" else 0.0,
            )
            yield outcome


class ServerMetrics:
    """The counters and histograms of one server, and its registry."""

    def __init__(self, snapshot: Callable[[], IndexSnapshot] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "coderag_queries",
            "Calls answered, by tool (MCP tool or web route) and mode",
            ["tool", "mode"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coderag_query_latency_seconds",
            "Time to answer a call, by tool and mode",
            ["tool", "mode"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.results = Histogram(
            "coderag_results_returned",
            "Results returned per search",
            ["tool"],
            buckets=RESULT_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "coderag_errors",
            "Calls that failed, by tool and error kind (bad_request, not_found, no_index, internal)",
            ["tool", "kind"],
            registry=self.registry,
        )
        if snapshot is not None:
            self.registry.register(_IndexCollector(snapshot))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def error_kind(exc: BaseException) -> str:
    """A short, stable label for a failed call."""
    from coderag_assets.navigation import NavigationError, PathRefusedError
    from coderag_assets.search import SearchError
    from coderag_assets.store import IndexNotFoundError

    if isinstance(exc, PathRefusedError):
        return "not_found"
    if isinstance(exc, NavigationError | SearchError):
        return "bad_request"
    if isinstance(exc, IndexNotFoundError):
        return "no_index"
    return "internal"


@contextmanager
def observe(metrics: ServerMetrics | None, tool: str, mode: str = "") -> Iterator[None]:
    """Count one call of ``tool`` and time it; a raised exception is counted as an error."""
    if metrics is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        metrics.errors.labels(tool=tool, kind=error_kind(exc)).inc()
        raise
    finally:
        metrics.queries.labels(tool=tool, mode=mode).inc()
        metrics.latency.labels(tool=tool, mode=mode).observe(time.perf_counter() - started)
