"""The index's asset checks: the promotion gates (:mod:`coderag_assets.gates`) as Dagster
sees them.

The gates are checks of `search_index` that its own step evaluates on the **candidate**
version, before `CURRENT` flips: each run of the index asset records every gate's result
(the UI's Checks tab), and a failing blocking gate fails the step, naming the gate and why,
while the previous version stays live. `shard_consistency` compares a published index with
the shard files it was built from (what `coderag status` style checks and tests use).
"""

from collections import Counter

import dagster as dg
import duckdb

from coderag_assets.gates import GOLDEN_FILE, GOLDEN_GATE, GateOutcome
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.store import CHUNK_SCHEMA, CheckOutcome, IndexStore

GATE_DESCRIPTIONS = {
    "every_chunk_has_vector": "Every chunk of the candidate has a vector of the model's dimension.",
    "chunk_count_matches_shards": "Each candidate segment holds exactly its shard's chunk rows.",
    "no_orphan_chunks": "No candidate chunk belongs to a file missing from every manifest.",
    GOLDEN_GATE: f"Golden queries ({GOLDEN_FILE} in the repository, optional) reach their rank "
    "on the candidate; a regression against the live version blocks promotion.",
}
GATE_CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset="search_index", blocking=True, description=description)
    for name, description in GATE_DESCRIPTIONS.items()
]


def gate_result(outcome: GateOutcome) -> dg.AssetCheckResult:
    """One gate's outcome as the check result the UI shows; an overridden failure is a
    warning that says so, a misconfigured gate an error that says so."""
    detail = outcome.detail
    if outcome.skipped:
        detail = f"overridden for this run (--skip-gate {outcome.name}): {detail}"
    return dg.AssetCheckResult(
        asset_key="search_index",
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.WARN if outcome.skipped else dg.AssetCheckSeverity.ERROR,
        description=detail[:2000],
        metadata={
            "detail": detail[:2000],
            "state": "misconfigured"
            if outcome.misconfigured
            else ("overridden" if outcome.skipped else ("passed" if outcome.passed else "failed")),
            **{
                key: dg.MetadataValue.json(value) if isinstance(value, dict) else value
                for key, value in outcome.metadata.items()
            },
        },
    )


def blocking_message(blocked: list[GateOutcome], live_version: int | None) -> str:
    """The failure a run reports when gates block its candidate (CLI and UI)."""
    kept = f"version {live_version} stays live" if live_version else "nothing was published"
    parts = [
        f"{o.name} {'misconfigured' if o.misconfigured else 'failed'}: {o.detail}" for o in blocked
    ]
    return (
        f"promotion blocked by {len(blocked)} gate(s), {kept}: "
        + " | ".join(parts)
        + f". To publish anyway for one run: coderag index --skip-gate {blocked[0].name}"
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
