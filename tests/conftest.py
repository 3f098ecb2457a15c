"""Shared fixtures: one data directory per test session (converted model + Dagster instance),
and fresh copies of the fixture repository per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The fixture repository is small enough for one shard (settings.shard_count_for); the tests
# of shard steps, failure locality and partition runs need several, so they run with 16
# unless a test sizes its index itself (monkeypatch.delenv("CODERAG_SHARDS")).
os.environ.setdefault("CODERAG_SHARDS", "16")

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


def copy_models(source: Path, destination: Path) -> Path:
    """A models directory at `destination` with `source`'s files hard-linked, not copied: a
    converted model and its compiled blobs are written once and never changed in place, and
    full copies cost the suite about 90 MB a blob (several per model). Falls back to copying
    where the two paths are on different file systems."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, destination, copy_function=link)
    return destination


def copy_served_repo(base: Path) -> Path:
    """The fixture repository under ``base/repo`` plus what a server must refuse to serve: a
    secret (``.env``) and a symlink (``escape.txt``) to a file outside the root."""
    root = copy_fixture_repo((base / "repo").resolve())
    (root / ".env").write_text("API_TOKEN=not-a-real-secret\n")
    (base / "private.txt").write_text("outside the root\n")
    (root / "escape.txt").symlink_to(base / "private.txt")
    return root


def index_root(data_dir: Path, root: Path) -> None:
    """Index ``root`` into ``data_dir`` with the real pipeline (Dagster run, real model)."""
    from coderag_assets.runs import get_instance, run_index
    from coderag_assets.settings import load_settings

    settings = load_settings(data_dir=data_dir, workers=2).with_root(root)
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory shared by the session, so the model is converted once."""
    return tmp_path_factory.mktemp("coderag-data")


def data_dir_sharing_model(data: Path, shared: Path) -> Path:
    """Make `data` a new data directory whose converted model is `shared`'s (a symlink), so a
    test can index into a separate directory without converting the model again."""
    data.mkdir()
    (shared / "models").mkdir(exist_ok=True)
    (data / "models").symlink_to(shared / "models")
    return data


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A writable copy of the multi-language fixture repository."""
    return copy_fixture_repo(tmp_path / "repo")
