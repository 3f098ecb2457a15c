"""A headless Chromium for browser tests: Debian's `chromium` driven through `chromium-driver`
by Selenium, offline (no driver or browser download; `.ci/run` installs both packages).

Shared by every test that drives a real browser (the CodeRAG web page, the Dagster UI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

WINDOW_SIZE = "1280,900"
PAGE_LOAD_TIMEOUT_S = 30


def _missing(reason: str) -> None:
    message = f"{reason}; install the Debian packages `chromium chromium-driver` (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs them: their absence there is a defect, not a skip
    pytest.skip(message)


@contextmanager
def chromium_driver() -> Iterator[object]:
    """A headless ``selenium.webdriver.Chrome`` on the system Chromium, quit afterwards.

    Skips (fails under ``CI``) when Chromium, its driver or Selenium is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[dev]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        _missing("chromium or chromedriver is not on PATH")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={WINDOW_SIZE}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()
