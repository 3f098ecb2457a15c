"""Shared fixtures: one data directory per test session (converted model + Dagster instance),
and fresh copies of the fixture repository per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_REPO = FIXTURES / "repo"


def copy_fixture_repo(destination: Path, *, fresh_mtimes: bool = False) -> Path:
    """Copy the fixture repository to `destination` and add the files its `.gitignore`
    ignores (git does not store them, so they are made here): they must stay unindexed.
    `fresh_mtimes` gives every file the current time instead of the fixture's."""
    copy = shutil.copy if fresh_mtimes else shutil.copy2
    shutil.copytree(FIXTURE_REPO, destination, symlinks=True, copy_function=copy)
    (destination / "build").mkdir(exist_ok=True)
    (destination / "build" / "generated.py").write_text("def ignored_build_output():\n    pass\n")
    (destination / "server.log").write_text("noise\n")
    return destination


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory shared by the session, so the model is converted once."""
    return tmp_path_factory.mktemp("coderag-data")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A writable copy of the multi-language fixture repository."""
    return copy_fixture_repo(tmp_path / "repo")
