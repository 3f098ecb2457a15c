"""The index job on Dagster's in-process and multiprocess executors: one step per shard either
way, and the same index (real model, real Dagster instance, fixture repository)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from coderag_assets.query import QueryService
from coderag_assets.runs import get_instance, run_index
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from coderag_assets.tags import EXECUTOR_TAG
from tests.conftest import copy_fixture_repo, copy_models

QUERIES = [
    ("retry with exponential backoff", "hybrid"),
    ("multiply two matrices", "bm25"),
    ("debounce", "hybrid"),
]


def index_with(executor: str, root: Path, data: Path, shared_models: Path):
    """Index `root` into `data` on `executor`; (summary, instance, search results)."""
    data.mkdir(parents=True)
    if shared_models.is_dir():  # reuse the session's converted model
        copy_models(shared_models, data / "models")
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


def test_shard_steps_embed_on_the_streams_asked_for_with_the_model_the_watcher_warms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from coderag_assets.embedding import bulk_streams
    from coderag_assets.execution import executor_threads
    from coderag_assets.resources import CodeRagResource
    from coderag_assets.settings import SettingsError, settings_env

    assert load_settings().inference_streams == 1  # one stream unless asked
    monkeypatch.setenv("CODERAG_INFERENCE_STREAMS", "2")
    settings = load_settings(data_dir=tmp_path / "data", workers=2).with_root(tmp_path)
    assert settings_env(settings)["CODERAG_INFERENCE_STREAMS"] == "2"  # step processes agree
    cores = os.cpu_count() or 1
    # What run_shards hands an in-process run's steps, and what `coderag watch` loads first.
    in_process = replace(settings, inference_threads=executor_threads("in_process", 2))
    step = CodeRagResource.from_settings(in_process).step_embedder_spec()
    warmed = CodeRagResource.from_settings(settings).step_embedder_spec(threads=cores)
    assert step == warmed and step.threads == cores and step.streams == min(2, cores)
    # A multiprocess step gets its share of the cores and as many streams as fit in it.
    spread = replace(settings, inference_threads=executor_threads("multiprocess", 2))
    spec = CodeRagResource.from_settings(spread).step_embedder_spec()
    assert spec.threads == max(1, cores // 2)
    assert spec.streams == bulk_streams(spec.threads, 2) == min(2, spec.threads)
    monkeypatch.setenv("CODERAG_INFERENCE_STREAMS", "0")
    with pytest.raises(SettingsError, match="CODERAG_INFERENCE_STREAMS=0 must be at least 1"):
        load_settings()
