"""The scheduled full rebuild: every shard, every file re-hashed, the index rebuilt.

Stat-based change detection (the sensor, `coderag index`) cannot see a rewrite that keeps a
file's size and mtime, or a permission-only change; the nightly rebuild re-reads and
re-hashes everything (`verify_hashes`) and publishes a fresh index. Vectors are still reused
by content hash, so a rebuild of an unchanged tree embeds nothing.

The cron expression comes from `CODERAG_REBUILD_CRON` (default: 03:00 every day), in the
time zone of `CODERAG_REBUILD_TIMEZONE` (default UTC).
"""

from __future__ import annotations

import os

import dagster as dg

from coderag_assets.assets import SHARDS, chunk_embeddings, code_chunks, file_manifest
from coderag_assets.resources import CodeRagResource
from coderag_assets.runner import RANGE_END_TAG, RANGE_START_TAG, ROOT_TAG, TRIGGER_TAG
from coderag_assets.settings import SettingsError

REBUILD_SCHEDULE_NAME = "coderag_full_rebuild"
DEFAULT_REBUILD_CRON = "0 3 * * *"
DEFAULT_REBUILD_TIMEZONE = "UTC"
REBUILD_TARGET = dg.AssetSelection.assets(
    file_manifest, code_chunks, chunk_embeddings, "search_index", "bm25_index"
)
REBUILD_RUN_CONFIG = {"ops": {"file_manifest": {"config": {"verify_hashes": True}}}}


def rebuild_cron() -> str:
    """`CODERAG_REBUILD_CRON`, or the default."""
    return os.environ.get("CODERAG_REBUILD_CRON", "").strip() or DEFAULT_REBUILD_CRON


def full_rebuild_request(root: str, run_key: str | None = None) -> dg.RunRequest:
    """One run over the whole shard range with re-hashing, then the index and its checks."""
    keys = SHARDS.get_partition_keys()
    return dg.RunRequest(
        run_key=run_key,
        run_config=REBUILD_RUN_CONFIG,
        tags={
            RANGE_START_TAG: keys[0],
            RANGE_END_TAG: keys[-1],
            ROOT_TAG: root,
            TRIGGER_TAG: "schedule",
        },
    )


def build_rebuild_schedule(
    cron: str | None = None, timezone: str | None = None
) -> dg.ScheduleDefinition:
    """The full-rebuild schedule for `cron` (default: :func:`rebuild_cron`).

    Raises SettingsError for a cron expression or time zone Dagster does not accept.
    """
    cron = cron or rebuild_cron()
    timezone = timezone or os.environ.get("CODERAG_REBUILD_TIMEZONE") or DEFAULT_REBUILD_TIMEZONE

    def coderag_full_rebuild(
        context: dg.ScheduleEvaluationContext, coderag: CodeRagResource
    ) -> dg.RunRequest | dg.SkipReason:
        if not coderag.root:
            return dg.SkipReason("no repository to rebuild: set CODERAG_ROOT")
        tick = context.scheduled_execution_time
        run_key = f"rebuild:{tick.isoformat()}" if tick else None
        return full_rebuild_request(coderag.root, run_key)

    try:
        return dg.schedule(
            name=REBUILD_SCHEDULE_NAME,
            cron_schedule=cron,
            execution_timezone=timezone,
            target=REBUILD_TARGET,
            description=(
                "Full rebuild: re-walks and re-hashes every file of every shard, rebuilds the "
                "index from scratch; vectors are reused by content hash."
            ),
        )(coderag_full_rebuild)
    except dg.DagsterInvalidDefinitionError as error:
        raise SettingsError(
            f"CODERAG_REBUILD_CRON={cron!r} / CODERAG_REBUILD_TIMEZONE={timezone!r}: {error}"
        ) from error


SCHEDULES: list = [build_rebuild_schedule()]
