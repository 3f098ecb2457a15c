"""Smoke test of the Dagster UI in a real browser: `coderag ui` on an indexed copy of the
fixture repository, Debian's headless Chromium (tests/browser.py) on the asset graph and on
the page of the run `coderag index` made.

With `CODERAG_SCREENSHOTS=<dir>` the pages are also saved there (scripts/ui_screenshots.sh
refreshes the pictures in docs/images/ this way)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coderag_assets.cli import main as cli_main
from tests.browser import chromium_driver
from tests.conftest import data_dir_sharing_model

UI_START_TIMEOUT_S = 90
PAGE_TIMEOUT_S = 45
SHARD_ASSETS = ("file_manifest", "code_chunks", "chunk_embeddings")
INDEX_ASSET = "search_index"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"coderag ui exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"coderag ui did not serve {url} within {UI_START_TIMEOUT_S} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    """Stop `coderag ui` and everything it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # dagster dev's children may outlive it
    except ProcessLookupError:
        pass
    process.wait()


def _page_text(driver, url: str, expected: list[str]) -> str:
    """Open `url` and wait until the page shows every one of `expected` and has nothing left
    "Loading..."; the page's text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    text = ""

    def shows_all(driver) -> bool:
        nonlocal text
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(item in text for item in expected) and "Loading..." not in text

    try:
        WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.25).until(shows_all)
    except TimeoutException:
        missing = [item for item in expected if item not in text] or ["the end of Loading..."]
        pytest.fail(f"{url} did not show {missing} within {PAGE_TIMEOUT_S} s; it shows:\n{text}")
    time.sleep(1.0)  # let the graph finish its layout before a screenshot
    return driver.find_element(By.TAG_NAME, "body").text


def _save(driver, name: str, tmp_path: Path) -> None:
    driver.save_screenshot(str(tmp_path / name))
    target = os.environ.get("CODERAG_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / name))


def test_the_asset_graph_and_a_cli_run_render_in_a_browser(
    tmp_path, repo_copy, data_dir, capsys
) -> None:
    data = data_dir_sharing_model(tmp_path / "data", data_dir)
    assert cli_main(["--data-dir", str(data), "index", str(repo_copy), "--quiet", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert run_id

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    with open(log, "w") as log_file:
        command = [sys.executable, "-m", "coderag_assets.cli", "--data-dir", str(data)]
        ui = subprocess.Popen(
            [*command, "ui", str(repo_copy), "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    try:
        _wait_until_serving(url, ui, log)
        with chromium_driver() as driver:
            # The asset graph around the published index: the shard assets feed it.
            # ("N partitions": the shard assets are partitioned.)
            _page_text(
                driver,
                f"{url}/assets/{INDEX_ASSET}?view=lineage&lineageScope=upstream",
                [INDEX_ASSET, *SHARD_ASSETS, "Materialized", "partitions"],
            )
            _save(driver, "dagster-asset-graph.png", tmp_path)

            # The page of the run `coderag index` made: it succeeded, it is a run of the job.
            run_page = _page_text(
                driver, f"{url}/runs/{run_id}", ["Success", "coderag_index", "RUN_SUCCESS"]
            )
            assert "STEP_FAILURE" not in run_page
            _save(driver, "dagster-run.png", tmp_path)

            # The whole graph renders (how its groups read is the definitions' business).
            _page_text(driver, f"{url}/asset-groups", ["Global asset lineage"])
            _save(driver, "dagster-global-graph.png", tmp_path)
    finally:
        _stop(ui)
