"""The one place that wires the Dagster objects together (`dagster dev -w workspace.yaml`).

Everything is built from one :class:`~coderag_assets.settings.Settings`: the shard
partitions (`CODERAG_SHARDS`), the job `coderag_index` and its executor (`CODERAG_EXECUTOR`),
the resource. `coderag index`, `coderag watch`, the change sensor, the rebuild schedule and a
UI backfill all run that job. :func:`index_job` is the reconstructable entry point: every
process that runs steps of the job (multiprocess children, Celery workers) rebuilds it from
the `CODERAG_*` environment the run was started with.
"""

from __future__ import annotations

import dagster as dg

from coderag_assets.assets import build_shard_assets, search_index
from coderag_assets.checks import INDEX_CHECKS
from coderag_assets.execution import celery_urls
from coderag_assets.partitions import shards_partitions
from coderag_assets.resources import CodeRagResource
from coderag_assets.schedules import build_rebuild_schedule
from coderag_assets.sensors import FRESHNESS_CHECKS, build_change_sensor
from coderag_assets.settings import Settings, SettingsError, load_settings
from coderag_assets.tags import INDEX_JOB_NAME


def executor_definition(settings: Settings) -> dg.ExecutorDefinition:
    """`multi_or_in_process_executor` (run config picks in-process or multiprocess), or the
    Celery executor for `CODERAG_EXECUTOR=celery` (needs the `cluster` extra)."""
    if settings.executor != "celery":
        return dg.multi_or_in_process_executor
    try:
        from dagster_celery import celery_executor
    except ImportError as error:
        raise SettingsError(
            "CODERAG_EXECUTOR=celery needs dagster-celery: pip install -e '.[cluster]'"
        ) from error
    broker, backend = celery_urls()
    return celery_executor.configured({"broker": broker, "backend": backend})


def build_definitions(settings: Settings) -> dg.Definitions:
    shards = shards_partitions(settings.shard_count)
    shard_assets = build_shard_assets(shards)
    index_job = dg.define_asset_job(
        INDEX_JOB_NAME,
        selection=dg.AssetSelection.assets(shard_assets, search_index).without_checks(),
        executor_def=executor_definition(settings),
        description=(
            "Index the repository: one step per shard (manifest → chunks → embeddings), then "
            "publish the search and BM25 index. Select shard partitions to update just those."
        ),
    )
    return dg.Definitions(
        assets=[shard_assets, search_index],
        asset_checks=[*INDEX_CHECKS, *FRESHNESS_CHECKS],
        jobs=[index_job],
        sensors=[build_change_sensor(settings)],
        schedules=[build_rebuild_schedule(executor=settings.executor)],
        resources={"coderag": CodeRagResource.from_settings(settings)},
    )


def index_job() -> dg.JobDefinition:
    """The `coderag_index` job as configured by this process's `CODERAG_*` environment."""
    return build_definitions(load_settings()).resolve_job_def(INDEX_JOB_NAME)


defs = build_definitions(load_settings())
