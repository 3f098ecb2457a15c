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


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory shared by the session, so the model is converted once."""
    return tmp_path_factory.mktemp("coderag-data")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A writable copy of the multi-language fixture repository."""
    destination = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, destination, symlinks=True)
    return destination
