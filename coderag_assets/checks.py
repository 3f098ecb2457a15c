"""Asset checks on the published index: the same invariants the build enforces before publishing.

`expected` chunk counts come from the shard Parquet files, independently of the index file.
"""

import dagster as dg

from coderag_assets.assets import SHARDS
from coderag_assets.resources import CodeRagResource
from coderag_assets.store import (
    CHUNK_SCHEMA,
    CheckOutcome,
    connect_index,
    read_meta,
    validate_index,
)


def _outcome(coderag: CodeRagResource, name: str) -> dg.AssetCheckResult:
    store = coderag.index_store()
    expected = store.read_all_shards("chunks", SHARDS.get_partition_keys(), CHUNK_SCHEMA).num_rows
    con = connect_index(store.index_path)
    try:
        dim = int(read_meta(con)["dim"])
        outcomes: dict[str, CheckOutcome] = {o.name: o for o in validate_index(con, expected, dim)}
    finally:
        con.close()
    outcome = outcomes[name]
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"detail": outcome.detail, "expected_chunks": expected},
    )


@dg.asset_check(
    asset="search_index",
    blocking=True,
    description="Every chunk has a vector of the model's dimension.",
)
def every_chunk_has_vector(coderag: CodeRagResource) -> dg.AssetCheckResult:
    return _outcome(coderag, "every_chunk_has_vector")


@dg.asset_check(
    asset="search_index",
    blocking=True,
    description="Index chunk count equals the sum of the shards.",
)
def chunk_count_matches_shards(coderag: CodeRagResource) -> dg.AssetCheckResult:
    return _outcome(coderag, "chunk_count_matches_shards")


@dg.asset_check(
    asset="search_index",
    blocking=True,
    description="No chunk belongs to a file missing from every manifest.",
)
def no_orphan_chunks(coderag: CodeRagResource) -> dg.AssetCheckResult:
    return _outcome(coderag, "no_orphan_chunks")


INDEX_CHECKS = [every_chunk_has_vector, chunk_count_matches_shards, no_orphan_chunks]
