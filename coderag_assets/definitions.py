"""The one place that wires the Dagster objects together (`dagster dev -w workspace.yaml`).

Everything is built from one :class:`~coderag_assets.settings.Settings`: the shard
partitions (`CODERAG_SHARDS`), the job `coderag_index`, the executor (`CODERAG_EXECUTOR`; the
`Definitions`' default, so the UI's asset runs use it too), the resource. `coderag index`,
`coderag watch`, the change sensor and the rebuild schedule run the job; a UI
materialization or backfill of shard partitions is followed by one publish through the
`coderag_publish` automation sensor (eager condition on the index assets), so every launch
path ends in a published, gated version. :func:`index_job` is the reconstructable entry
point: every process that runs steps of the job (multiprocess children, Celery workers)
rebuilds it from the `CODERAG_*` environment the run was started with.
"""

from __future__ import annotations

import dagster as dg

from coderag_assets.assets import build_shard_assets, search_index
from coderag_assets.execution import celery_urls, choose_executor, run_config
from coderag_assets.partitions import shards_partitions
from coderag_assets.resources import CodeRagResource
from coderag_assets.schedules import build_rebuild_schedule
from coderag_assets.sensors import FRESHNESS_CHECKS, build_change_sensor
from coderag_assets.settings import Settings, SettingsError, load_settings
from coderag_assets.tags import INDEX_JOB_NAME, ROOT_TAG

PUBLISH_SENSOR_NAME = "coderag_publish"
PUBLISH_SENSOR_INTERVAL_S = 5


def executor_definition(settings: Settings) -> dg.ExecutorDefinition:
    """The executor of every run of these definitions, the job's and the UI's asset runs
    (Definitions' default executor): in-process or multiprocess as run config picks
    (`multi_or_in_process_executor`), defaulting to what `CODERAG_EXECUTOR` chooses, or the
    Celery executor for `CODERAG_EXECUTOR=celery` (needs the `cluster` extra)."""
    if settings.executor != "celery":
        base = dg.multi_or_in_process_executor
        chosen = run_config(choose_executor(settings.executor), workers=settings.workers)
        return dg.ExecutorDefinition(
            name=base.name,
            config_schema=dg.Field(
                base.config_schema.config_type, default_value=chosen["execution"]["config"]
            ),
            executor_creation_fn=base.executor_creation_fn,
            requirements=base.get_requirements,
            description=base.description,
        )
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
    executor = executor_definition(settings)
    index_assets = dg.AssetSelection.assets(shard_assets, search_index)
    index_job = dg.define_asset_job(
        INDEX_JOB_NAME,
        # The gates are checks of search_index evaluated in its step; the freshness check
        # (a walk of the tree) is the sensor's, not every run's.
        selection=index_assets - dg.AssetSelection.checks(*FRESHNESS_CHECKS),
        executor_def=executor,
        # Every run of the job carries its root from creation (launchpad, sensor, schedule,
        # re-execution): the run queue's per-root limit (dagster.yaml) applies before it starts.
        tags={ROOT_TAG: str(settings.root)} if settings.root else None,
        description=(
            "Index the repository: one step per shard (manifest → chunks → embeddings), then "
            "gate and publish the search and BM25 index. Select shard partitions to update "
            "just those."
        ),
    )
    publish_sensor = dg.AutomationConditionSensorDefinition(
        PUBLISH_SENSOR_NAME,
        target=dg.AssetSelection.assets("search_index", "bm25_index"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=PUBLISH_SENSOR_INTERVAL_S,
        description="Publishes the index after shard partitions were materialized by a run that "
        "did not publish (a partition backfill or Materialize from the UI).",
    )
    return dg.Definitions(
        assets=[shard_assets, search_index],
        asset_checks=[*FRESHNESS_CHECKS],
        jobs=[index_job],
        sensors=[build_change_sensor(settings), publish_sensor],
        schedules=[build_rebuild_schedule(executor=settings.executor)],
        resources={"coderag": CodeRagResource.from_settings(settings)},
        executor=executor,
    )


def index_job() -> dg.JobDefinition:
    """The `coderag_index` job as configured by this process's `CODERAG_*` environment."""
    return build_definitions(load_settings()).resolve_job_def(INDEX_JOB_NAME)


defs = build_definitions(load_settings())
