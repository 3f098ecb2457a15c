"""The index job on Dagster's in-process and multiprocess executors: one step per shard either
way, and the same index (real model, real Dagster instance, fixture repository)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from coderag_assets.query import QueryService
from coderag_assets.runs import get_instance, run_index
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from coderag_assets.tags import EXECUTOR_TAG
from tests.conftest import copy_fixture_repo

QUERIES = [
    ("retry with exponential backoff", "hybrid"),
    ("multiply two matrices", "bm25"),
    ("debounce", "hybrid"),
]


def index_with(executor: str, root: Path, data: Path, shared_models: Path):
    """Index `root` into `data` on `executor`; (summary, instance, search results)."""
    data.mkdir(parents=True)
    if shared_models.is_dir():  # reuse the session's converted model
        shutil.copytree(shared_models, data / "models")
    settings = load_settings(data_dir=data, executor=executor, workers=2).with_root(root)
    instance = get_instance(settings)
    summary = run_index(settings, instance=instance)
    assert summary.success, summary.error
    service = QueryService(IndexStore.for_root(data, root), settings)
    try:
        results = {
            (query, mode): [
                (hit.path, hit.start_line, hit.end_line, round(hit.score, 4))
                for hit in service.search(query, mode=mode, limit=5)
            ]
            for query, mode in QUERIES
        }
    finally:
        service.close()
    return summary, instance, results


def shard_step_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return {
        r.dagster_event.pid
        for r in records
        if ".index_shard[" in (r.step_key or "") and r.dagster_event and r.dagster_event.pid
    }


def test_in_process_and_multiprocess_build_the_same_index(tmp_path: Path, data_dir: Path) -> None:
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    models = data_dir / "models"
    local, local_instance, local_results = index_with(
        "in_process", root, tmp_path / "in-process", models
    )
    spread, spread_instance, spread_results = index_with(
        "multiprocess", root, tmp_path / "multiprocess", models
    )
    assert spread_results == local_results
    assert all(local_results.values())
    assert (spread.chunks, spread.files) == (local.chunks, local.files)
    # One step per shard, run where the executor says.
    local_run = local_instance.get_run_by_id(local.run_id)
    spread_run = spread_instance.get_run_by_id(spread.run_id)
    assert (local_run.job_name, spread_run.job_name) == ("coderag_index", "coderag_index")
    assert (local_run.tags[EXECUTOR_TAG], spread_run.tags[EXECUTOR_TAG]) == (
        "in_process",
        "multiprocess",
    )
    assert shard_step_pids(local_instance, local.run_id) == {os.getpid()}
    spread_pids = shard_step_pids(spread_instance, spread.run_id)
    assert len(spread_pids) > 1 and os.getpid() not in spread_pids
