"""Progress reporting from long pipeline stages to whoever is watching (CLI bar, logs).

Plain module: stages call `report().start(...)` / `.advance(...)`; the CLI installs a
rich-backed reporter with :func:`use_reporter`. Without one, reporting is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, amount: int = 1) -> None: ...
    def finish(self, stage: str) -> None: ...


class NullReporter:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, amount: int = 1) -> None:
        pass

    def finish(self, stage: str) -> None:
        pass


_reporter: ProgressReporter = NullReporter()


def report() -> ProgressReporter:
    return _reporter


@contextmanager
def use_reporter(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        _reporter = previous
