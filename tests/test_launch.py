"""`launch`: who may write a root while a run of it executes, and the origin CLI runs carry."""

from __future__ import annotations

import threading
import time

import pytest

from coderag_assets.launch import (
    CODE_LOCATION_NAME,
    DEFINITIONS_MODULE,
    INVOCATION_TAG,
    RootBusyError,
    claim_root,
    job_origin,
    locked_by_starter,
    root_lock,
)
from coderag_assets.settings import WORKSPACE_YAML
from coderag_assets.tags import ROOT_TAG


def test_the_origin_names_the_workspace_code_location() -> None:
    assert f"module_name: {DEFINITIONS_MODULE}" in WORKSPACE_YAML
    assert f"location_name: {CODE_LOCATION_NAME}" in WORKSPACE_YAML
    origin = job_origin("coderag_index")
    assert origin.repository_origin.get_label() == "__repository__@coderag"
    assert origin.job_name == "coderag_index"


def test_only_the_starting_cli_process_holds_the_lock_for_its_run() -> None:
    assert locked_by_starter({INVOCATION_TAG: "x"})
    assert not locked_by_starter({INVOCATION_TAG: "x", "dagster/parent_run_id": "p"})
    assert not locked_by_starter({})


def test_a_ui_run_waits_for_the_cli_update_then_writes(tmp_path) -> None:
    added: list[dict] = []
    logged: list[str] = []
    release = threading.Event()
    held = threading.Event()

    def cli_update() -> None:
        with root_lock(tmp_path):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=cli_update)
    thread.start()
    held.wait(5)
    threading.Timer(1.5, release.set).start()
    started = time.monotonic()
    with claim_root({}, tmp_path, "/repo", add_tags=added.append, log=logged.append):
        waited = time.monotonic() - started
    thread.join()
    assert waited >= 1.0
    assert added == [{ROOT_TAG: "/repo"}]
    assert "waiting up to" in logged[0] and "continuing after" in logged[-1]


def test_a_ui_run_is_refused_clearly_when_the_cli_keeps_the_root(tmp_path) -> None:
    with (
        root_lock(tmp_path),
        pytest.raises(RootBusyError, match="wrote nothing"),
        claim_root(
            {ROOT_TAG: "/repo"}, tmp_path, "/repo", add_tags=print, log=print, timeout_s=1.2
        ),
    ):
        pytest.fail("entered while the CLI held the root")


def test_steps_of_one_ui_run_share_the_root(tmp_path) -> None:
    tags = {ROOT_TAG: "/repo"}
    with (
        claim_root(tags, tmp_path, "/repo", add_tags=print, log=print, timeout_s=1),
        claim_root(tags, tmp_path, "/repo", add_tags=print, log=print, timeout_s=1),
    ):
        pass
