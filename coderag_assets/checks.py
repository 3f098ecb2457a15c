"""Asset checks on the published index: the same invariants the build enforces before publishing.

Expected chunk counts come from the shard Parquet files, independently of the index file. The
index records which version of each chunk shard it was built from, so a shard rewritten since
(a shard run that finished after the build, whose update is still on its way) is reported as
pending instead of failing the comparison.
"""

from collections import Counter

import dagster as dg
import duckdb

from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.resources import CodeRagResource
from coderag_assets.store import (
    CHUNK_SCHEMA,
    CheckOutcome,
    IndexStore,
    connect_index,
    read_meta,
    validate_index,
)


def shard_consistency(
    store: IndexStore, con: duckdb.DuckDBPyConnection, meta: dict[str, object]
) -> tuple[CheckOutcome, dict[str, object]]:
    """Index chunks per shard against the shard files the index was built from.

    Shards whose file is still the one the build read must hold exactly the index's chunks of
    that shard; shards rewritten since are left out and listed as pending. Indexes without the
    record (older builds) are compared with all current shards.
    """
    recorded = meta.get("chunk_shard_files")
    if not isinstance(recorded, dict) or not recorded:
        keys = shard_keys(int(meta.get("shard_count") or 16))  # type: ignore[call-overload]
        expected = store.read_all_shards("chunks", keys, CHUNK_SCHEMA)
        total = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
        outcome = CheckOutcome(
            "chunk_count_matches_shards",
            total == expected.num_rows,
            f"index has {total} chunks, shards hold {expected.num_rows}",
        )
        return outcome, {"expected_chunks": expected.num_rows}
    shard_count = int(meta["shard_count"])  # type: ignore[arg-type]
    in_index: Counter[str] = Counter()
    for path, count in con.execute("SELECT path, count(*) FROM chunks GROUP BY path").fetchall():
        in_index[shard_of(path, shard_count)] += count
    expected = actual = 0
    pending: list[str] = []
    for shard in sorted(recorded):
        table, fingerprint = store.read_shard_pinned("chunks", shard, CHUNK_SCHEMA)
        if fingerprint != recorded[shard]:
            pending.append(shard)
            continue
        expected += table.num_rows
        actual += in_index[shard]
    checked = len(recorded) - len(pending)
    if checked:
        detail = f"index has {actual} chunks in the {checked} shards it was built from, "
        detail += f"shards hold {expected}"
    else:
        detail = "nothing to compare: every shard was rewritten since the build"
    if pending:
        detail += (
            f"; {len(pending)} shard(s) rewritten since the build ({', '.join(pending)}), "
            "left for the next index build"
        )
    outcome = CheckOutcome("chunk_count_matches_shards", expected == actual, detail)
    return outcome, {"expected_chunks": expected, "pending_shards": len(pending)}


def _outcome(coderag: CodeRagResource, name: str) -> dg.AssetCheckResult:
    store = coderag.index_store()
    con = connect_index(store.index_path)
    try:
        meta = read_meta(con)
        dim = int(meta["dim"])  # type: ignore[arg-type]
        if name == "chunk_count_matches_shards":
            outcome, metadata = shard_consistency(store, con, meta)
        else:
            total = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
            outcomes = {o.name: o for o in validate_index(con, total, dim)}
            outcome, metadata = outcomes[name], {}
    finally:
        con.close()
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"detail": outcome.detail, **metadata},
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
    description=(
        "Index chunk count equals that of the shards it was built from; shards rewritten since "
        "are listed as pending."
    ),
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
