"""Run the asset graph through Dagster for one root: the code path of `coderag index`.

One run materializes every shard (a partition range, `BackfillPolicy.single_run()`), then
the index and its checks, on the embedded local instance under the data directory. The UI,
the sensor and the schedule launch the same assets.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from coderag_assets.progress import ProgressReporter, use_reporter
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class IndexSummary:
    root: Path
    index_path: Path
    success: bool
    run_id: str
    seconds: float
    files: int = 0
    indexable_files: int = 0
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "index_path": str(self.index_path),
            "success": self.success,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "indexable_files": self.indexable_files,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": self.skipped,
            "error": self.error,
        }


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The local instance of `settings.data_dir` (created once per process, before workers)."""
    from coderag_assets.cli import prepare_dagster_env

    prepare_dagster_env(settings)
    return dg.DagsterInstance.get()


def run_index(
    settings: Settings,
    *,
    reporter: ProgressReporter | None = None,
    full: bool = False,
    instance: dg.DagsterInstance | None = None,
) -> IndexSummary:
    """Materialize all shards of `settings.root` and publish the index; never raises for run failures."""
    from coderag_assets.assets import SHARDS
    from coderag_assets.checks import INDEX_CHECKS
    from coderag_assets.definitions import ASSETS
    from coderag_assets.resources import CodeRagResource

    assert settings.root is not None, "run_index needs settings.root"
    instance = instance or get_instance(settings)
    keys = SHARDS.get_partition_keys()
    run_config: dict = {**QUIET_RUN_CONFIG}
    if full:
        run_config["ops"] = {"file_manifest": {"config": {"verify_hashes": True}}}
    started = time.perf_counter()
    store = IndexStore.for_root(settings.data_dir, settings.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with use_reporter(reporter) if reporter else nullcontext():
            result = dg.materialize(
                [*ASSETS, *INDEX_CHECKS],
                instance=instance,
                resources={"coderag": CodeRagResource.from_settings(settings)},
                run_config=run_config,
                tags={
                    RANGE_START_TAG: keys[0],
                    RANGE_END_TAG: keys[-1],
                    "coderag/root": str(settings.root),
                },
                raise_on_error=False,
            )
    summary = IndexSummary(
        root=settings.root,
        index_path=store.index_path,
        success=result.success,
        run_id=result.run_id,
        seconds=time.perf_counter() - started,
    )
    metadata = _metadata_by_asset(result)
    manifest = metadata.get("file_manifest", {})
    summary.files = int(manifest.get("files", 0))
    summary.indexable_files = int(manifest.get("indexable_files", 0))
    summary.skipped = dict(
        Counter(manifest.get("skipped_by_reason", {}))
        + Counter(metadata.get("code_chunks", {}).get("skipped_by_reason", {}))
    )
    summary.chunks = int(
        metadata.get("search_index", {}).get(
            "chunks", metadata.get("code_chunks", {}).get("chunks", 0)
        )
    )
    summary.embedded = int(metadata.get("chunk_embeddings", {}).get("embedded", 0))
    summary.reused = int(metadata.get("chunk_embeddings", {}).get("reused", 0))
    if not result.success:
        summary.error = _failure_message(result)
    return summary


def _metadata_by_asset(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, object]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        key = materialization.asset_key.to_user_string()
        if key in values:
            continue  # a range run records the same metadata once per partition
        values[key] = {name: entry.value for name, entry in materialization.metadata.items()}
    return values


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "dagster" in (error.cls_name or "").lower():
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
    return "run failed"
