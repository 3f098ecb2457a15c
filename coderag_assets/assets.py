"""The asset graph: file_manifest → code_chunks → chunk_embeddings → search_index + bm25_index.

The three shard assets are one partitioned graph (:func:`build_shard_assets`) so that a run
over many shards gets **one Dagster embedding step per shard**: `prepare_shards` lists the
shards' files (from the walk the planner already made, :mod:`coderag_assets.scans`, else by
walking the root once), writes every shard's manifest and chunks (about 1 % of the work, no
model), and when much is left to embed publishes early, so keywords, symbols and references
answer before the first vector is computed; it then fans the shards out as dynamic outputs.
`index_shard` embeds one shard and writes its search segment (the executor decides where:
in the run's process, one process per step, or a Celery worker), and `record_shards`
records each partition's own numbers. The unpartitioned index assets then publish the
complete version.

Assets stay thin: they read Dagster context, call the plain stage functions in
:mod:`coderag_assets.indexing`, and record metadata. Nothing here knows which executor runs it.
"""

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from coderag_assets import gates, indexing
from coderag_assets.checks import GATE_CHECK_SPECS, blocking_message, gate_result
from coderag_assets.launch import RootBusyError, claim_root
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.resources import CodeRagResource
from coderag_assets.store import IndexStore, IndexValidationError

INDEX_WRITER_POOL = "coderag_index_writer"
GROUP = "coderag"
SHARD_ASSET_NAMES = ("file_manifest", "code_chunks", "chunk_embeddings")
INDEX_ASSET_NAMES = ("search_index", "bm25_index")


class PrepareConfig(dg.Config):
    verify_hashes: bool = False
    """Re-read and re-hash every file instead of trusting unchanged size + mtime."""
    shards: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    """Only these shards of the run's range (empty: all of them). Lets one run cover a few
    non-adjacent changed shards without touching the ones between them."""
    scan: str = ""
    """Id of the planner's scan of these shards (:mod:`coderag_assets.scans`): `coderag
    index`, `coderag watch` and the change sensor walk the tree to plan the run and hand
    their stat rows over, so the run does not walk it again. Empty (UI launches, the rebuild
    schedule, full rebuilds) or unusable (gone, torn, too old): the step walks the root."""


EARLY_PUBLISH_MIN_VECTORS = 512  # fewer distinct texts than this to embed: no early publish


@contextmanager
def writing_root(context: dg.OpExecutionContext, store: IndexStore) -> Iterator[None]:
    """Hold the root for a writing step (:func:`launch.claim_root`): one writer per root
    whichever way the run was launched; a clear failure when a CLI update keeps it."""
    try:
        with claim_root(
            context.run.tags,
            store.base,
            str(store.root),
            add_tags=lambda tags: context.instance.add_run_tags(context.run_id, tags),
            log=context.log.info,
        ):
            yield
    except RootBusyError as error:
        raise dg.Failure(description=str(error)) from None


@dg.op(
    out=dg.DynamicOut(indexing.PreparedShard),
    description="List the shards' files (the planner's scan, else one walk of the root), write "
    "each shard's manifest and chunks (cheap: no model), "
    "publish early when much is left to embed, then hand each shard to its embedding step.",
)
def prepare_shards(context: dg.OpExecutionContext, config: PrepareConfig, coderag: CodeRagResource):
    store = coderag.index_store()
    with writing_root(context, store):
        prepared = _prepare(context, config, coderag, store)
    for item in prepared:
        yield dg.DynamicOutput(item, mapping_key=f"shard_{item.shard}")


def _prepare(
    context: dg.OpExecutionContext,
    config: PrepareConfig,
    coderag: CodeRagResource,
    store: IndexStore,
) -> list[indexing.PreparedShard]:
    store.register(coderag.shard_count)
    shards = list(context.partition_keys)
    if config.shards:
        unknown = sorted(set(config.shards) - set(shards))
        if unknown:
            raise dg.Failure(f"shards {unknown} are outside this run's partitions {shards}")
        shards = [shard for shard in shards if shard in set(config.shards)]
    by_shard, source = indexing.shard_file_stats(
        store,
        shards,
        lambda path: shard_of(path, coderag.shard_count),
        shard_count=coderag.shard_count,
        max_file_bytes=coderag.max_file_bytes,
        scan_id=config.scan,
    )
    context.log.info(source)
    spec = coderag.embedder_spec()
    # With a golden file the first version a run publishes is one its gates passed.
    gated = (store.root / gates.GOLDEN_FILE).is_file()
    early_segments = (
        None
        if gated
        else indexing.EarlySegments(
            store, spec.model_id, context.run_id, min_vectors=EARLY_PUBLISH_MIN_VECTORS
        )
    )
    prepared = indexing.prepare_shards(
        store,
        shards,
        by_shard,
        run_id=context.run_id,
        max_file_bytes=coderag.max_file_bytes,
        verify_hashes=config.verify_hashes,
        model_id=spec.model_id,
        workers=coderag.workers,
        early_segments=early_segments,
    )
    pending = sum(item.pending_vectors for item in prepared)
    chunks = sum(item.chunks.chunks for item in prepared)
    context.log.info(
        f"{sum(item.manifest.files for item in prepared)} files, "
        f"{chunks} chunks in {len(shards)} shards; {pending} chunks need a vector"
    )
    if pending < EARLY_PUBLISH_MIN_VECTORS or gated:
        return prepared
    distinct = indexing.distinct_pending_vectors(  # shards the workers returned are counted
        store, shards, spec.model_id, known=early_segments.digests if early_segments else None
    )
    if not indexing.early_publish_pays(distinct, chunks, min_vectors=EARLY_PUBLISH_MIN_VECTORS):
        context.log.info(
            f"no early publish: {distinct} distinct texts to embed for {chunks} chunks "
            "(the vectors come sooner than a second segment pass would finish)"
        )
        return prepared
    early = indexing.publish_index(
        store, shard_keys(coderag.shard_count), spec, run_id=context.run_id, early=True
    )
    while_chunking = len(early_segments.written) if early_segments else 0
    context.log.info(
        f"published version {early.version} early: searchable by keywords, symbols and "
        f"references now; {pending} chunks wait for their vectors ({distinct} distinct texts); "
        f"{while_chunking} of its segments were written while shards were being chunked"
    )
    return prepared


@dg.op(description="Embeddings → search segment of one shard.")
def index_shard(
    context: dg.OpExecutionContext, prepared: indexing.PreparedShard, coderag: CodeRagResource
) -> indexing.ShardStats:
    spec = coderag.step_embedder_spec()
    store = coderag.index_store()
    with writing_root(context, store):
        stats = indexing.embed_shard(store, prepared, spec, run_id=context.run_id)
    # Each shard records its own partitions as it finishes: when a sibling shard fails, the
    # finished ones stay materialized (with their numbers) and only the failed one is failed.
    for asset_name, metadata in shard_metadata(stats).items():
        context.log_event(
            dg.AssetMaterialization(asset_name, partition=prepared.shard, metadata=metadata)
        )
    context.log.info(
        f"shard {prepared.shard}: {stats.chunks.chunks} chunks, {stats.embeddings.embedded} "
        f"embedded, {stats.embeddings.reused} reused in {stats.seconds:.2f} s"
    )
    return stats


def shard_metadata(stats: indexing.ShardStats) -> dict[str, dict[str, object]]:
    """Each shard asset's metadata for one shard's partition (what the UI shows per shard)."""
    manifest, chunks, embeddings = stats.manifest, stats.chunks, stats.embeddings
    return {
        "file_manifest": {
            "files": manifest.files,
            "indexable_files": manifest.indexable,
            "files_hashed": manifest.hashed,
            "indexable_bytes": manifest.bytes,
            "skipped": sum(manifest.skipped.values()),
            "skipped_by_reason": dg.MetadataValue.json(dict(sorted(manifest.skipped.items()))),
        },
        "code_chunks": {
            "chunks": chunks.chunks,
            "symbols": chunks.symbols,
            "files_chunked": chunks.files_chunked,
            "files_reused": chunks.files_reused,
            "files_with_parse_errors": chunks.parse_error_files,
            "skipped_by_reason": dg.MetadataValue.json(dict(sorted(chunks.skipped.items()))),
            "seconds": round(chunks.seconds, 3),
        },
        "chunk_embeddings": {
            "model_id": embeddings.model_id,
            "segment": stats.segment_id,
            "chunks": embeddings.chunks,
            "unique_content_hashes": embeddings.unique_hashes,
            "embedded": embeddings.embedded,
            "reused": embeddings.reused,
            "seconds": round(embeddings.seconds, 3),
            "embedded_per_second": round(embeddings.embedded / embeddings.seconds, 1)
            if embeddings.seconds and embeddings.embedded
            else 0.0,
        },
    }


@dg.op(
    out={name: dg.Out(dg.Nothing) for name in SHARD_ASSET_NAMES},
    description="Record every shard's own numbers on its partitions.",
)
def record_shards(context: dg.AssetExecutionContext, results: list[indexing.ShardStats]):
    for stats in results:
        for asset_name, metadata in shard_metadata(stats).items():
            context.add_asset_metadata(metadata, asset_key=asset_name, partition_key=stats.shard)
    skipped: Counter[str] = Counter()
    for stats in results:
        skipped.update(stats.manifest.skipped)
        skipped.update(stats.chunks.skipped)
    context.log.info(
        f"{len(results)} shards: {sum(s.chunks.chunks for s in results)} chunks, "
        f"{sum(s.embeddings.embedded for s in results)} embedded, skipped {dict(skipped)}"
    )
    return tuple(None for _ in SHARD_ASSET_NAMES)


def build_shard_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """file_manifest, code_chunks and chunk_embeddings over `partitions`, one step per shard."""

    @dg.graph_multi_asset(
        name="shard_assets",
        outs={
            "file_manifest": dg.AssetOut(
                group_name=GROUP,
                kinds={"python", "parquet"},
                description="Every file of the shard: path, size, mtime, sha256, language, "
                "skip reason.",
            ),
            "code_chunks": dg.AssetOut(
                group_name=GROUP,
                kinds={"python", "parquet"},
                description="Tree-sitter AST chunks (line windows for other text) with "
                "qualified symbols.",
            ),
            "chunk_embeddings": dg.AssetOut(
                group_name=GROUP,
                kinds={"python", "parquet"},
                description="One vector per chunk content hash; known hashes are reused, "
                "never recomputed.",
            ),
        },
        partitions_def=partitions,
        group_name=GROUP,  # the outs' own group_name is not applied to graph assets in 1.13
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
    )
    def shard_assets():
        results = prepare_shards().map(index_shard).collect()
        return record_shards(results)

    return shard_assets


class PromotionBlocked(Exception):
    """A blocking gate failed on the candidate: `outcomes` are every gate's results."""

    def __init__(self, outcomes: list[gates.GateOutcome]):
        super().__init__("promotion blocked")
        self.outcomes = outcomes


class PublishConfig(dg.Config):
    skip_gates: list[str] = []  # noqa: RUF012 - pydantic copies defaults
    """Gates (asset check names) evaluated and reported but not blocking for this run
    (`coderag index --skip-gate NAME`)."""


INDEX_AUTOMATION = dg.AutomationCondition.eager()
"""The index follows any materialization of shard partitions that did not publish itself (a
partition backfill or "Materialize" from the UI): one publish after the shards, once none is
in progress (the automation sensor in definitions.py evaluates it)."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "search_index",
            deps=list(SHARD_ASSET_NAMES),
            group_name=GROUP,
            kinds={"duckdb"},
            description="The published index version: every shard's segment (chunks, vectors, "
            "symbols, files, provenance) behind a DuckDB SQL surface; promoted only when its "
            "gates pass.",
            automation_condition=INDEX_AUTOMATION,
        ),
        dg.AssetSpec(
            "bm25_index",
            deps=list(SHARD_ASSET_NAMES),
            group_name=GROUP,
            kinds={"numpy"},
            description="BM25 of the published version: each segment's postings with N, "
            "document frequencies and average length summed over the segments.",
            automation_condition=INDEX_AUTOMATION,
        ),
    ],
    check_specs=GATE_CHECK_SPECS,
    pool=INDEX_WRITER_POOL,
    can_subset=False,
)
def search_index(
    context: dg.AssetExecutionContext, config: PublishConfig, coderag: CodeRagResource
):
    """Build the candidate version from what the shards wrote, run the gates on it, and
    publish it (atomic, one writer at a time) only when no blocking gate failed."""
    unknown = gates.unknown_gates(config.skip_gates)
    if unknown:
        raise dg.Failure(
            f"unknown gate(s) {', '.join(unknown)}; the gates are {', '.join(gates.GATE_NAMES)}"
        )
    store = coderag.index_store()
    spec = coderag.embedder_spec()
    started = time.perf_counter()
    with writing_root(context, store):
        candidate = indexing.prepare_candidate(
            store, shard_keys(coderag.shard_count), spec, run_id=context.run_id
        )
        outcomes = gates.evaluate_candidate(store, candidate, spec, skip=config.skip_gates)
        for outcome in outcomes:
            if outcome.skipped:
                context.log.warning(
                    f"gate {outcome.name} overridden for this run: {outcome.detail}"
                )
        try:
            if any(outcome.blocks for outcome in outcomes):
                raise PromotionBlocked(outcomes)
            try:
                result = indexing.publish_candidate(store, candidate, spec, started=started)
            except IndexValidationError as error:  # validated again under the writer lock
                outcomes = [gates.GateOutcome(o.name, o.passed, o.detail) for o in error.outcomes]
                raise PromotionBlocked(outcomes) from error
        except PromotionBlocked as stop:
            for outcome in stop.outcomes:
                yield gate_result(outcome)
            failing = [outcome for outcome in stop.outcomes if outcome.blocks]
            raise dg.Failure(
                description=blocking_message(failing, indexing.live_version(store)),
                metadata={"blocked_by": ", ".join(o.name for o in failing)},
            ) from None
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
        check_results=[gate_result(outcome) for outcome in outcomes],
    )
    yield dg.MaterializeResult(asset_key="bm25_index", metadata={**common, **result.bm25})
