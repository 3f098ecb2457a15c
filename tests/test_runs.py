"""`runs`: one update per root at a time, and runs whose process died are marked failed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from coderag_assets.runs import INVOCATION_TAG, fail_abandoned_runs, root_lock
from coderag_assets.store import IndexStore
from coderag_assets.tags import ROOT_TAG


@dg.op
def noop() -> None:
    pass


@dg.job
def placeholder_job() -> None:
    noop()


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    """A run left "started" by a process that is gone (what kill -9 leaves behind)."""
    run = instance.create_run_for_job(placeholder_job, tags=tags)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=dg.DagsterEvent(
                dg.DagsterEventType.RUN_START.value, job_name=placeholder_job.name
            ),
        )
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run.run_id


def test_abandoned_cli_runs_of_the_root_are_failed_others_are_left(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    mine = started_run(instance, {ROOT_TAG: str(root), INVOCATION_TAG: "dead"})
    daemon = started_run(instance, {ROOT_TAG: str(root)})  # launched by the daemon
    other_root = started_run(instance, {ROOT_TAG: str(tmp_path / "other"), INVOCATION_TAG: "x"})
    assert fail_abandoned_runs(instance, root, "gone") == [mine]
    status = {
        run_id: instance.get_run_by_id(run_id).status for run_id in (mine, daemon, other_root)
    }
    assert status == {
        mine: dg.DagsterRunStatus.FAILURE,
        daemon: dg.DagsterRunStatus.STARTED,  # Dagster's run monitoring owns those
        other_root: dg.DagsterRunStatus.STARTED,
    }


def test_second_update_of_a_root_waits_for_the_first(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index", tmp_path / "repo")
    order: list[str] = []
    first_holds = threading.Event()
    release = threading.Event()

    def first() -> None:
        with root_lock(store):
            order.append("first start")
            first_holds.set()
            release.wait(5)
            order.append("first end")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(5)
    waiter = threading.Thread(target=lambda: _second(store, order))
    waiter.start()
    time.sleep(1.5)  # the second is still waiting while the first holds the lock
    assert order == ["first start"]
    release.set()
    thread.join(5)
    waiter.join(5)
    assert order == ["first start", "first end", "second"]


def _second(store: IndexStore, order: list[str]) -> None:
    with root_lock(store):
        order.append("second")
