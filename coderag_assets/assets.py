"""The asset graph: file_manifest → code_chunks → chunk_embeddings → search_index + bm25_index.

Assets stay thin: they read Dagster context, call the plain stage functions in
:mod:`coderag_assets.indexing`, and record metadata. Partitioned assets accept a single
shard or a range of shards in one run (`BackfillPolicy.single_run()`), which is how the CLI,
the schedule and UI backfills run; the embedding stage fans a range out to worker processes.
"""

from collections import Counter

import dagster as dg

from coderag_assets import indexing
from coderag_assets.partitions import shard_of, shards_partitions
from coderag_assets.resources import CodeRagResource
from coderag_assets.settings import load_settings

SHARD_COUNT = load_settings().shard_count
SHARDS = shards_partitions(SHARD_COUNT)
INDEX_WRITER_POOL = "coderag_index_writer"
GROUP = "coderag"


class ManifestConfig(dg.Config):
    verify_hashes: bool = False
    """Re-read and re-hash every file instead of trusting unchanged size + mtime."""


def _sum_counters(counters: list[Counter[str]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return dict(sorted(total.items()))


@dg.asset(
    partitions_def=SHARDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="Every file of the shard: path, size, mtime, sha256, language, skip reason.",
)
def file_manifest(
    context: dg.AssetExecutionContext, config: ManifestConfig, coderag: CodeRagResource
) -> dg.MaterializeResult:
    store = coderag.index_store()
    store.register(SHARD_COUNT)
    shards = context.partition_keys
    stats = indexing.build_manifests(
        store,
        shards,
        lambda path: shard_of(path, SHARD_COUNT),
        max_file_bytes=coderag.max_file_bytes,
        verify_hashes=config.verify_hashes,
    )
    values = list(stats.values())
    return dg.MaterializeResult(
        metadata={
            "root": str(store.root),
            "shards": len(shards),
            "files": sum(s.files for s in values),
            "indexable_files": sum(s.indexable for s in values),
            "files_hashed": sum(s.hashed for s in values),
            "indexable_bytes": sum(s.bytes for s in values),
            "skipped": sum(sum(s.skipped.values()) for s in values),
            "skipped_by_reason": dg.MetadataValue.json(_sum_counters([s.skipped for s in values])),
            "per_shard": dg.MetadataValue.json(
                {
                    k: {"files": s.files, "indexable": s.indexable, "hashed": s.hashed}
                    for k, s in stats.items()
                }
            ),
        }
    )


@dg.asset(
    partitions_def=SHARDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[file_manifest],
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="Tree-sitter AST chunks (line windows for other text) with qualified symbols.",
)
def code_chunks(
    context: dg.AssetExecutionContext, coderag: CodeRagResource
) -> dg.MaterializeResult:
    stats = indexing.build_chunks(
        coderag.index_store(),
        context.partition_keys,
        run_id=context.run_id,
        max_file_bytes=coderag.max_file_bytes,
    )
    values = list(stats.values())
    return dg.MaterializeResult(
        metadata={
            "chunks": sum(s.chunks for s in values),
            "symbols": sum(s.symbols for s in values),
            "files_chunked": sum(s.files_chunked for s in values),
            "files_reused": sum(s.files_reused for s in values),
            "files_with_parse_errors": sum(s.parse_error_files for s in values),
            "skipped_by_reason": dg.MetadataValue.json(_sum_counters([s.skipped for s in values])),
            "seconds": round(sum(s.seconds for s in values), 3),
            "per_shard": dg.MetadataValue.json(
                {
                    k: {"chunks": s.chunks, "files_chunked": s.files_chunked}
                    for k, s in stats.items()
                }
            ),
        }
    )


@dg.asset(
    partitions_def=SHARDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[code_chunks],
    group_name=GROUP,
    kinds={"python", "parquet"},
    description="One vector per chunk content hash; known hashes are reused, never recomputed.",
)
def chunk_embeddings(
    context: dg.AssetExecutionContext, coderag: CodeRagResource
) -> dg.MaterializeResult:
    spec = coderag.embedder_spec()
    stats = indexing.build_embeddings(
        coderag.index_store(),
        context.partition_keys,
        spec,
        run_id=context.run_id,
        workers=coderag.workers,
    )
    values = list(stats.values())
    embedded = sum(s.embedded for s in values)
    seconds = max((s.seconds for s in values), default=0.0)
    return dg.MaterializeResult(
        metadata={
            "model_id": spec.model_id,
            "chunks": sum(s.chunks for s in values),
            "unique_content_hashes": sum(s.unique_hashes for s in values),
            "embedded": embedded,
            "reused": sum(s.reused for s in values),
            "seconds": round(seconds, 3),
            "embedded_per_second": round(embedded / seconds, 1) if seconds and embedded else 0.0,
            "per_shard": dg.MetadataValue.json(
                {
                    k: {"chunks": s.chunks, "embedded": s.embedded, "reused": s.reused}
                    for k, s in stats.items()
                }
            ),
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "search_index",
            deps=[chunk_embeddings],
            group_name=GROUP,
            kinds={"duckdb"},
            description="Published DuckDB index: chunks, FLOAT[dim] vectors, symbols, files, provenance.",
            automation_condition=dg.AutomationCondition.eager(),
        ),
        dg.AssetSpec(
            "bm25_index",
            deps=[chunk_embeddings],
            group_name=GROUP,
            kinds={"duckdb"},
            description="BM25 full-text index (DuckDB FTS, code-aware tokens) inside the same file.",
            automation_condition=dg.AutomationCondition.eager(),
        ),
    ],
    pool=INDEX_WRITER_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def search_index(context: dg.AssetExecutionContext, coderag: CodeRagResource):
    """Build the index from every shard, validate it, publish it atomically (one writer)."""
    store = coderag.index_store()
    result = indexing.publish_index(
        store, SHARDS.get_partition_keys(), coderag.embedder_spec(), run_id=context.run_id
    )
    common = {"index_path": str(result.index_path), "version": result.version}
    yield dg.MaterializeResult(
        asset_key="search_index",
        metadata={
            **common,
            "chunks": result.chunks,
            "files": result.files,
            "symbols": result.symbols,
            "seconds": round(result.seconds, 3),
        },
    )
    yield dg.MaterializeResult(
        asset_key="bm25_index", metadata={**common, "documents": result.chunks}
    )
