"""How a run of the index job is started and who may write a root while it runs.

Every run of `coderag_index` is recorded as a run of the `coderag` code location (the one
`workspace.yaml` and `coderag ui` load), whoever starts it:

- `coderag index` / `coderag watch` create the run with the code location's origin
  (:func:`job_origin`, what `dagster job launch` and the webserver record) and execute it in
  this process (:func:`execute_index_run`). No code server is started, so the CLI pays
  nothing for it; the run links to its job in the UI (Overview, the job's Runs tab) and
  can be re-executed from there, all steps or from failure, like a UI-launched run.
- The daemon (sensor, schedule, backfills, the UI's Materialize, re-execution) launches
  runs through the code location itself.

One writer per root: the CLI holds the root's update lock (:func:`root_lock`) for its whole
run. A run that the daemon launched takes the same lock, shared, in each writing step
(:func:`claim_root`: the steps of one run still write in parallel), so a UI launch on a root that `coderag index` is updating waits for it
(saying so in the run's log) and fails clearly after `ROOT_WAIT_S`, never writing alongside
it. Such runs also get the root's tag, so the CLI sees them and the run queue's per-root
limit (`dagster.yaml`) holds back the ones queued after them.
"""

from __future__ import annotations

import fcntl
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from coderag_assets.execution import UpdateBlockedError
from coderag_assets.store import UPDATE_LOCK_FILE

CODE_LOCATION_NAME = "coderag"  # workspace.yaml's location_name (settings.WORKSPACE_YAML)
DEFINITIONS_MODULE = "coderag_assets.definitions"
INVOCATION_TAG = "coderag/invocation"  # the CLI process that started (and locks for) a run
PARENT_RUN_TAG = "dagster/parent_run_id"
LOCK_WAIT_NOTICE_S = 1.0
ROOT_WAIT_S = 600.0
LOCK_POLL_S = 0.2


class RootBusyError(UpdateBlockedError):
    """Another update of the root held its lock for longer than a run waits."""


def _root_busy(base: Path, timeout_s: float) -> RootBusyError:
    return RootBusyError(
        f"another update of this index ({base}) held its lock for over {timeout_s:.0f} s (a "
        "`coderag index` or `coderag watch`); this run wrote nothing. Launch it again when "
        "that update has finished."
    )


@contextmanager
def root_lock(
    base: Path,
    *,
    on_wait: Callable[[], None] | None = None,
    timeout_s: float | None = None,
) -> Iterator[None]:
    """Hold the update lock of the index directory `base`.

    Waits while another process holds it, calling `on_wait` once after `LOCK_WAIT_NOTICE_S`;
    raises RootBusyError after `timeout_s` (None: wait for ever).
    """
    base.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(base / UPDATE_LOCK_FILE))
    try:
        lock.acquire(timeout=LOCK_WAIT_NOTICE_S)
    except Timeout:
        if on_wait is not None:
            on_wait()
        try:
            lock.acquire(timeout=-1 if timeout_s is None else max(0.0, timeout_s))
        except Timeout as error:
            raise _root_busy(base, timeout_s) from error
    try:
        yield
    finally:
        lock.release()


def locked_by_starter(tags: Mapping[str, str]) -> bool:
    """True when the process that started the run holds the root's lock for all of it: a
    run of `coderag index`/`watch` (a re-execution launched from the UI inherits the tag, but
    not the lock, and says so with its parent tag)."""
    return INVOCATION_TAG in tags and PARENT_RUN_TAG not in tags


@contextmanager
def shared_root_lock(
    base: Path, *, on_wait: Callable[[], None], timeout_s: float
) -> Iterator[None]:
    """Hold the root's update lock shared: steps of one daemon-launched run may write at once,
    but not while a CLI update holds it exclusively (:func:`root_lock`). Raises RootBusyError
    after `timeout_s`."""
    base.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    announced = False
    with open(base / UPDATE_LOCK_FILE, "a") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _root_busy(base, timeout_s) from None
                if not announced:
                    on_wait()
                    announced = True
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextmanager
def claim_root(
    tags: Mapping[str, str],
    base: Path,
    root: str,
    *,
    add_tags: Callable[[dict[str, str]], None],
    log: Callable[[str], None],
    timeout_s: float = ROOT_WAIT_S,
) -> Iterator[None]:
    """What a writing step does first: tag its run with the root (`add_tags`, when missing),
    and unless the run's starter holds the root's lock (:func:`locked_by_starter`), hold it
    shared for the step. Raises RootBusyError when a CLI update keeps it for `timeout_s`."""
    from coderag_assets.tags import ROOT_TAG

    if tags.get(ROOT_TAG) != root:
        add_tags({ROOT_TAG: root})
    if locked_by_starter(tags):
        yield
        return
    started = time.monotonic()

    def announce() -> None:
        log(
            f"another update of {root} is running (coderag index or watch holds its lock); "
            f"waiting up to {timeout_s:.0f} s for it"
        )

    with shared_root_lock(base, on_wait=announce, timeout_s=timeout_s):
        waited = time.monotonic() - started
        if waited > LOCK_WAIT_NOTICE_S:
            log(f"the other update finished; continuing after {waited:.1f} s")
        yield


# ------------------------------------------------------------------ CLI runs with an origin


def job_origin(job_name: str):
    """The remote origin the webserver gives runs of `job_name` in the `coderag` location.

    Built from the same module and location name as `workspace.yaml`: re-execution and the
    UI's job pages find the code location by these names (no code server is started here).
    """
    from dagster._core.definitions.repository_definition.valid_definitions import (
        SINGLETON_REPOSITORY_NAME,  # the repository a module's `Definitions` object loads as
    )
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origin_from_module_name

    location = location_origin_from_module_name(
        DEFINITIONS_MODULE, None, None, CODE_LOCATION_NAME, sys.executable
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


def execute_index_run(
    recon_job,
    instance,
    *,
    run_config: Mapping[str, object],
    tags: Mapping[str, str],
    asset_selection: Sequence[object] | None = None,
):
    """Create a run of `recon_job` (a `dg.reconstructable` job) recorded under the `coderag`
    code location and execute it here, like `dg.execute_job` (never raises for step
    failures). Returns the `dg.ExecutionResult`."""
    from dagster._core.execution.api import execute_run

    job_def = recon_job.get_definition()
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags=tags,
        asset_selection=frozenset(asset_selection) if asset_selection else None,
        job_code_origin=recon_job.get_python_origin(),
        remote_job_origin=job_origin(job_def.name),
    )
    return execute_run(recon_job, run, instance, raise_on_error=False)
