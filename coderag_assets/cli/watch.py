"""CLI command `coderag watch [PATH]`: keep one repository's index fresh, headless.

```
coderag watch [PATH] [--interval S] [--workers N] [--json] [--no-fs-events]
```

It evaluates the change sensor (:mod:`coderag_assets.sensors`) in this process every
`--interval` seconds, and at once when the file system reports a write (inotify through
`watchdog`, a Dagster dependency), so ticks are faster than the daemon's 5 s floor. The
paths those events name also tell the tick where to look (:class:`tree_cache.EventWalker`:
only the named directories are stat'ed, with a full check every minute). Each
change becomes one run on the same Dagster instance the UI shows: the affected shards, then
the index. The embedding model is loaded once and stays warm. One line per update
(`--json`: one JSON object per update on stdout, messages on stderr).

Ctrl-C or SIGTERM stops it within a few seconds: an update in progress is interrupted (its
embedding workers are terminated) and its run is marked failed; the published index is never
half-written, and the next `watch` or `index` finishes what was interrupted.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from coderag_assets.watcher import Watcher, WatchUpdate

EXIT_USAGE = 2
WATCH_INTERVAL_S = 1.0  # poll period (file-system events wake it sooner)
SCAN_CPU_SHARE = 0.2  # walking the tree may use at most this share of a core
SETTLE_QUIET_S = 0.1  # after a file-system event, wait for this much quiet ...
SETTLE_MAX_S = 1.0  # ... but no longer than this, so a burst becomes one update
STOP_GRACE_S = 4.0  # an interrupted update gets this long before a hard exit
WRITE_EVENTS = frozenset({"created", "modified", "deleted", "moved", "closed"})


def add_watch_commands(commands: argparse._SubParsersAction) -> None:
    """Register `watch` on the `coderag` parser."""
    watch = commands.add_parser(
        "watch", help="keep the index of a repository fresh as files change (Ctrl-C stops)"
    )
    watch.add_argument("path", nargs="?", help="repository root (default: current directory)")
    watch.add_argument(
        "--interval",
        type=float,
        default=WATCH_INTERVAL_S,
        help=f"seconds between polls of the tree (default {WATCH_INTERVAL_S})",
    )
    watch.add_argument("--workers", type=int, help="embedding processes for large updates")
    watch.add_argument("--json", action="store_true", help="print one JSON object per update")
    watch.add_argument(
        "--no-fs-events", action="store_true", help="poll only; ignore file-system notifications"
    )
    watch.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    from coderag_assets.cli.common import CliError, root_path, settings_from_args
    from coderag_assets.files import RootError
    from coderag_assets.runs import get_instance, sized_for_tree
    from coderag_assets.tree_cache import EventWalker
    from coderag_assets.watcher import Watcher

    if args.interval <= 0:
        raise CliError("--interval must be positive")
    settings = settings_from_args(args).with_root(root_path(args.path or "."))
    try:
        settings = sized_for_tree(settings)
    except RootError as error:
        raise CliError(str(error)) from error
    printer = UpdatePrinter(json_lines=args.json)
    instance = get_instance(settings)
    assert settings.root is not None
    events = EventWalker(settings.root)
    wake = threading.Event()

    def on_change(*paths: str) -> None:
        events.note(*paths)
        wake.set()

    # Events flow before the first tick, so the first (full) walk misses none of them.
    observer = None if args.no_fs_events else start_fs_events(settings.root, on_change)
    if observer is None and not args.no_fs_events:
        printer.message("file-system notifications unavailable: polling only")
    watcher = Watcher(settings, instance, events=events if observer is not None else None)
    loop = WatchLoop(watcher, printer, interval_s=args.interval, wake=wake)
    printer.message(f"watching {settings.root} (data: {settings.data_dir}); Ctrl-C stops")
    printer.message(f"embedding model ready in {watcher.warm_up():.1f} s")
    try:
        return loop.run_until_signal()
    finally:
        if observer is not None:
            observer.stop()


# ------------------------------------------------------------------ output


class UpdatePrinter:
    """One line per update for people, or one JSON object per update for scripts."""

    def __init__(self, *, json_lines: bool):
        self.json_lines = json_lines
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        with self._lock:
            print(text, file=sys.stderr if self.json_lines else sys.stdout, flush=True)

    def starting(self, description: str, shards: list[str]) -> None:
        self.message(f"{_clock()} updating: {description} (shards {_shard_list(shards)})")

    def update(self, update: WatchUpdate) -> None:
        if self.json_lines:
            with self._lock:
                print(json.dumps(update.to_json()), flush=True)
            return
        summary = update.summary
        paths = " ".join(update.paths[:3]) + (" …" if update.files_changed > 3 else "")
        if not summary.success:
            self.message(f"{_clock()} update FAILED for {paths}: {summary.error}")
            self.message("         the last published index is unchanged and still searchable")
            return
        latency = update.to_json().get("publish_latency_seconds")
        searchable = f", searchable {latency:.1f} s after the write" if latency else ""
        self.message(
            f"{_clock()} {_files(update)} {paths} · {summary.embedded} chunks embedded, "
            f"{summary.reused} reused · {summary.seconds:.1f} s{searchable} · "
            f"index v{summary.version}"
        )


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _files(update: WatchUpdate) -> str:
    from coderag_assets.freshness import describe_counts

    return describe_counts(update.modified, update.added, update.deleted, empty="repaired")


def _shard_list(shards: list[str]) -> str:
    return ",".join(shards) if len(shards) <= 8 else f"{shards[0]}…{shards[-1]} ({len(shards)})"


# ------------------------------------------------------------------ the loop


class WatchLoop:
    """Ticks the watcher in a worker thread; the main thread only waits for signals.

    Dagster replaces SIGINT/SIGTERM handlers while it executes a run in the main thread and
    defers the interrupt to step boundaries; running updates in a worker thread keeps the
    signals here, so a stop request can terminate an update's embedding workers and
    interrupt it at once.
    """

    def __init__(
        self,
        watcher: Watcher,
        printer: UpdatePrinter,
        *,
        interval_s: float,
        wake: threading.Event | None = None,
    ):
        self.watcher = watcher
        self.printer = printer
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.wake = wake or threading.Event()  # set by file-system events
        self.updating = threading.Event()
        self.thread = threading.Thread(target=self._run, name="coderag-watch", daemon=True)
        self.error: BaseException | None = None
        self._stop_requested_at: float | None = None

    # ----- worker thread
    def _run(self) -> None:
        last_skip: str | None = None
        try:
            while not self.stop.is_set():
                self.updating.set()
                try:
                    update = self.watcher.tick(on_start=self.printer.starting)
                finally:
                    self.updating.clear()
                if update is not None:
                    self.printer.update(update)
                skip = self.watcher.last_skip
                unavailable = bool(skip and skip.startswith("cannot watch"))
                if unavailable and skip != last_skip:
                    self.printer.message(f"{_clock()} {skip}")
                elif not unavailable and last_skip and last_skip.startswith("cannot watch"):
                    self.printer.message(f"{_clock()} {self.watcher.settings.root} is back")
                last_skip = skip
                self._wait()
        except KeyboardInterrupt:
            pass  # stop requested during an update
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            self.error = error

    def _wait(self) -> None:
        interval = max(self.interval_s, self.watcher.last_scan_seconds / SCAN_CPU_SHARE)
        if not self.wake.wait(interval) or self.stop.is_set():
            return
        settle_until = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < settle_until and not self.stop.is_set():
            self.wake.clear()
            if not self.wake.wait(SETTLE_QUIET_S):
                break

    # ----- main thread
    def run_until_signal(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.thread.start()
            while self.thread.is_alive():
                self.thread.join(0.1)
                if self._stop_requested_at is not None and (
                    time.monotonic() - self._stop_requested_at > STOP_GRACE_S
                ):
                    self._hard_exit()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.error is not None:
            self.printer.message(f"error: watch stopped: {self.error}")
            return 1
        self.printer.message(f"{_clock()} stopped")
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_requested_at is not None:
            self._hard_exit()  # second Ctrl-C: do not wait any longer
        self._stop_requested_at = time.monotonic()
        self.stop.set()
        self.wake.set()
        if self.updating.is_set():
            self.printer.message(
                f"{_clock()} {signal.Signals(signum).name}: interrupting the update"
            )
            _terminate_worker_processes()
            _raise_in_thread(self.thread, KeyboardInterrupt)

    def _hard_exit(self) -> None:
        from coderag_assets.runs import fail_abandoned_runs

        _terminate_worker_processes()
        root = self.watcher.settings.root
        assert root is not None
        failed = fail_abandoned_runs(self.watcher.instance, root, "stopped by a signal")
        self.printer.message(f"{_clock()} stopped (interrupted {len(failed)} run(s))")
        os._exit(0)


def _terminate_worker_processes() -> None:
    """Stop this process's multiprocessing children (the step processes of an update)."""
    for child in multiprocessing.active_children():
        child.terminate()


def _raise_in_thread(thread: threading.Thread, exception: type[BaseException]) -> None:
    """Raise `exception` in `thread` at its next Python instruction (the update is abandoned)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exception)
        )


def start_fs_events(root: Path, on_change: Callable[..., None]) -> BaseObserver | None:
    """An inotify (or platform) observer calling `on_change(*paths)` with the absolute
    path(s) of each write under `root` (created, modified, closed after writing, deleted;
    a move gives its source and destination); None if unavailable."""
    try:
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer
    except ImportError:
        return None
    # Only what changes the tree. Left unfiltered, inotify also reports every directory the
    # sensor's stat walk opens, and handling those events took the GIL from the walk: a tick
    # at 400k chunks (45k files) took 1.3 s instead of 0.6 s.
    changes = [
        FileCreatedEvent,
        FileModifiedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        FileClosedEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]

    class ReportWrites(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in WRITE_EVENTS:
                on_change(*(os.fsdecode(p) for p in (event.src_path, event.dest_path) if p))

    observer = Observer()
    observer.daemon = True
    try:
        observer.schedule(
            ReportWrites(), os.path.realpath(root), recursive=True, event_filter=changes
        )
        observer.start()
    except OSError:
        return None  # e.g. the inotify watch limit: polling still works
    return observer
