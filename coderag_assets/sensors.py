"""Watch mode as Dagster sensors: shard runs for what changed, then one index rebuild.

- `coderag_changes` stat-walks the indexed root (the ignore rules of indexing), fingerprints
  every shard (:mod:`coderag_assets.freshness`) and keeps the fingerprints in its cursor.
  It requests a run of `file_manifest → code_chunks → chunk_embeddings` only for shards whose
  fingerprint changed, one `RunRequest(partition_key=shard)` each; a root that was never
  indexed gets one run over the whole shard range instead. A shard whose last run stopped
  half-way (killed process, torn Parquet file) is requested once more when no run is in
  flight.
- `coderag_index_automation` evaluates `AutomationCondition.eager()` on the index: it
  rebuilds once every shard run of a burst has finished, so a `git checkout` becomes a few
  shard runs and one index rebuild. The blocking checks on `search_index` stop a bad index.
- `index_matches_working_tree` is a non-blocking check comparing the working tree with the
  published index; the change sensor also records it when the index turns stale or fresh.

`coderag watch` evaluates the same change sensor in-process (:class:`runner.Watcher`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from coderag_assets.assets import SHARD_COUNT, SHARDS, chunk_embeddings, code_chunks, file_manifest
from coderag_assets.files import RootError
from coderag_assets.freshness import (
    FileChanges,
    TreeSnapshot,
    diff_files,
    incomplete_shards,
    index_freshness,
    manifest_files,
    published_fingerprints,
    quarantine_torn_files,
    read_published,
    snapshot_tree,
)
from coderag_assets.partitions import shard_of
from coderag_assets.resources import CodeRagResource
from coderag_assets.runner import (
    CHANGE_COUNTS_TAG,
    CHANGED_PATHS_TAG,
    CHANGES_TAG,
    NEWEST_CHANGE_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    ROOT_TAG,
    TRIGGER_TAG,
    fail_orphaned_runs,
    requested_changes,
    runs_in_flight,
)
from coderag_assets.store import IndexStore

CHANGE_SENSOR_NAME = "coderag_changes"
AUTOMATION_SENSOR_NAME = "coderag_index_automation"
FRESHNESS_CHECK_NAME = "index_matches_working_tree"
SENSOR_INTERVAL_S = 5  # the daemon's floor; `coderag watch` ticks faster in-process
CURSOR_VERSION = 1
TAG_PATHS = 5  # changed paths named in a run's tags
TAG_VALUE_CHARS = 200

SHARD_KEYS = SHARDS.get_partition_keys()
SHARD_ASSETS = [file_manifest, code_chunks, chunk_embeddings]
INDEX_SELECTION = dg.AssetSelection.assets("search_index", "bm25_index")


def shard_of_path(path: str) -> str:
    return shard_of(path, SHARD_COUNT)


# ------------------------------------------------------------------ cursor


def root_key(root: Path) -> str:
    return hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:10]


@dataclass
class ChangeCursor:
    """Sensor state: the fingerprint of every shard as last requested (or found indexed).

    `seq` counts ticks that requested runs; it is part of every run key, so a later change
    back to an earlier state (edit, then undo) is not mistaken for an old request, while a
    re-evaluation of the same tick (daemon restart) yields the same keys and is de-duplicated.
    `repaired` remembers shard → fingerprint already re-requested after an unfinished run
    (repairs happen once per state, never in a loop). `stale` is the last freshness verdict
    the sensor recorded.
    """

    root: str
    shard_count: int
    seq: int = 0
    fingerprints: dict[str, str] = field(default_factory=dict)
    repaired: dict[str, str] = field(default_factory=dict)
    stale: bool = False

    def serialize(self) -> str:
        payload = {
            "v": CURSOR_VERSION,
            "root": self.root,
            "n": self.shard_count,
            "seq": self.seq,
            "fp": self.fingerprints,
            "rp": self.repaired,
            "stale": int(self.stale),
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    @classmethod
    def parse(cls, text: str | None, root: str, shard_count: int) -> ChangeCursor | None:
        """The cursor if it belongs to this root and shard count, else None (start over)."""
        if not text:
            return None
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        if (
            not isinstance(payload, dict)
            or payload.get("v") != CURSOR_VERSION
            or payload.get("root") != root
            or payload.get("n") != shard_count
        ):
            return None
        return cls(
            root=root,
            shard_count=shard_count,
            seq=int(payload.get("seq", 0)),
            fingerprints=dict(payload.get("fp", {})),
            repaired=dict(payload.get("rp", {})),
            stale=bool(payload.get("stale", 0)),
        )


# ------------------------------------------------------------------ tags


def _clip(text: str) -> str:
    return text if len(text) <= TAG_VALUE_CHARS else text[: TAG_VALUE_CHARS - 1] + "…"


def changes_tags(changes: FileChanges, snapshot: TreeSnapshot) -> dict[str, str]:
    """Run tags describing what changed: readable in the UI, parsed back by `coderag watch`."""
    touched = [*changes.added, *changes.modified]
    newest = max((snapshot.files[p][1] for p in touched if p in snapshot.files), default=0)
    return {
        CHANGES_TAG: changes.describe(),
        CHANGE_COUNTS_TAG: f"{len(changes.added)},{len(changes.modified)},{len(changes.deleted)}",
        CHANGED_PATHS_TAG: _clip(" ".join(changes.paths[:TAG_PATHS])),
        NEWEST_CHANGE_TAG: str(newest),
    }


# ------------------------------------------------------------------ evaluation


def _requests_for_changes(
    store: IndexStore,
    snapshot: TreeSnapshot,
    cursor: ChangeCursor,
    changed: list[str],
    base_tags: dict[str, str],
) -> list[dg.RunRequest]:
    indexed = manifest_files(store, changed)
    requests = []
    for shard in changed:
        current = snapshot.shard_files([shard])
        previous = {path: row for path, row in indexed.items() if shard_of_path(path) == shard}
        tags = {**base_tags, **changes_tags(diff_files(current, previous), snapshot)}
        requests.append(
            dg.RunRequest(
                partition_key=shard,
                run_key=f"{shard}:{snapshot.fingerprints[shard]}:{cursor.seq}",
                tags=tags,
            )
        )
    return requests


def _freshness_evaluation(
    passed: bool, description: str, metadata: dict
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("search_index"),
        check_name=FRESHNESS_CHECK_NAME,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def evaluate_changes(
    coderag: CodeRagResource, cursor_text: str | None, instance: dg.DagsterInstance | None
) -> dg.SensorResult:
    """One tick of the change sensor (also called by `coderag watch`); see the module doc."""
    if not coderag.root:
        return dg.SensorResult(
            skip_reason="no repository to watch: set CODERAG_ROOT (or use `coderag ui PATH`)",
            cursor=cursor_text,
        )
    root = Path(coderag.root).expanduser().resolve()  # the same key index_store() uses
    store = IndexStore.for_root(Path(coderag.data_dir), root)
    try:
        snapshot = snapshot_tree(
            root, SHARD_KEYS, shard_of_path, max_file_bytes=coderag.max_file_bytes
        )
    except RootError as error:
        return dg.SensorResult(
            skip_reason=f"cannot watch {error}; the last published index stays searchable",
            cursor=cursor_text,
        )
    base_tags = {ROOT_TAG: str(root), TRIGGER_TAG: "sensor"}
    cursor = ChangeCursor.parse(cursor_text, root_key(root), SHARD_COUNT)
    requests: list[dg.RunRequest] = []
    if cursor is None:
        cursor = ChangeCursor(root_key(root), SHARD_COUNT)
        published = read_published(store)
        if published is None or published.meta.get("shard_count") != SHARD_COUNT:
            request = _initial_request(snapshot, cursor, base_tags)
            return dg.SensorResult(run_requests=[request], cursor=cursor.serialize())
        cursor.fingerprints = published_fingerprints(published, SHARD_KEYS, shard_of_path)

    changed = [s for s in SHARD_KEYS if snapshot.fingerprints[s] != cursor.fingerprints.get(s)]
    if changed:
        cursor.seq += 1
        requests.extend(_requests_for_changes(store, snapshot, cursor, changed, base_tags))
        cursor.fingerprints.update({s: snapshot.fingerprints[s] for s in changed})

    repairs = _repairs(store, snapshot, cursor, changed, instance)
    if repairs:
        if not changed:
            cursor.seq += 1
        for shard, reason in repairs.items():
            fp = snapshot.fingerprints[shard]
            cursor.repaired[shard] = fp
            requests.append(
                dg.RunRequest(
                    partition_key=shard,
                    run_key=f"{shard}:{fp}:{cursor.seq}:repair",
                    tags={**base_tags, CHANGES_TAG: _clip(f"repair: {reason}")},
                )
            )

    events = _freshness_events(store, snapshot, cursor, changed, requests)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"no changes in {len(snapshot.files)} files ({snapshot.scan_seconds:.2f} s walk)",
            cursor=cursor.serialize(),
            asset_events=events,
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor.serialize(), asset_events=events)


def _initial_request(
    snapshot: TreeSnapshot, cursor: ChangeCursor, base_tags: dict[str, str]
) -> dg.RunRequest:
    """Nothing indexed yet: one run over the whole shard range (the pool-parallel cold path)."""
    cursor.seq += 1
    cursor.fingerprints = dict(snapshot.fingerprints)
    changes = FileChanges(added=sorted(snapshot.files))
    return dg.RunRequest(
        run_key=f"all:{_combined(snapshot)}:{cursor.seq}",
        tags={
            **base_tags,
            RANGE_START_TAG: SHARD_KEYS[0],
            RANGE_END_TAG: SHARD_KEYS[-1],
            **changes_tags(changes, snapshot),
        },
    )


def _freshness_events(
    store: IndexStore,
    snapshot: TreeSnapshot,
    cursor: ChangeCursor,
    changed: list[str],
    requests: list[dg.RunRequest],
) -> list[dg.AssetCheckEvaluation]:
    """Record `index_matches_working_tree` when the index turns stale and when it is fresh again."""
    if changed and not cursor.stale:
        cursor.stale = True
        changes = requested_changes(requests).describe()
        return [
            _freshness_evaluation(
                False,
                f"working tree changed since the last index update ({changes}); update requested",
                {"changed_shards": len(changed), "changes": changes},
            )
        ]
    if not changed and cursor.stale and _index_matches(store, snapshot):
        cursor.stale = False
        return [_freshness_evaluation(True, "the published index matches the working tree", {})]
    return []


def _combined(snapshot: TreeSnapshot) -> str:
    text = ",".join(snapshot.fingerprints[s] for s in SHARD_KEYS)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _repairs(
    store: IndexStore,
    snapshot: TreeSnapshot,
    cursor: ChangeCursor,
    changed: list[str],
    instance: dg.DagsterInstance | None,
) -> dict[str, str]:
    """Unfinished or torn shards to run again (once per fingerprint, never while runs are in flight)."""
    if instance is not None:
        fail_orphaned_runs(instance)
        if runs_in_flight(instance):
            return {}
    candidates = [
        s
        for s in SHARD_KEYS
        if s not in changed and cursor.repaired.get(s) != snapshot.fingerprints[s]
    ]
    found = incomplete_shards(store, candidates)
    quarantine_torn_files(store, found)
    return found


def _index_matches(store: IndexStore, snapshot: TreeSnapshot) -> bool:
    published = read_published(store)
    if published is None:
        return False
    return published_fingerprints(published, SHARD_KEYS, shard_of_path) == snapshot.fingerprints


@dg.sensor(
    name=CHANGE_SENSOR_NAME,
    target=SHARD_ASSETS,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    description=(
        "Watch mode: stat-walks the indexed root and requests shard runs for created, modified, "
        "deleted and renamed files; the index follows via its automation sensor."
    ),
)
def coderag_changes(
    context: dg.SensorEvaluationContext, coderag: CodeRagResource
) -> dg.SensorResult:
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        instance = None
    return evaluate_changes(coderag, context.cursor, instance)


coderag_index_automation = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR_NAME,
    target=INDEX_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    description="Rebuilds the index (eager) once the shard runs of a change have all finished.",
)


# ------------------------------------------------------------------ freshness check


@dg.asset_check(
    asset="search_index",
    name=FRESHNESS_CHECK_NAME,
    blocking=False,
    description="Files added, modified or deleted in the working tree since the index was published.",
)
def index_matches_working_tree(coderag: CodeRagResource) -> dg.AssetCheckResult:
    store = IndexStore.for_root(Path(coderag.data_dir), Path(coderag.root).expanduser().resolve())
    freshness = index_freshness(store, max_file_bytes=coderag.max_file_bytes)
    details = freshness.to_json()
    return dg.AssetCheckResult(
        passed=freshness.up_to_date,
        severity=dg.AssetCheckSeverity.WARN,
        description=freshness.describe(),
        metadata={
            "changed_files": freshness.changes.count,
            "files_added": len(freshness.changes.added),
            "files_modified": len(freshness.changes.modified),
            "files_deleted": len(freshness.changes.deleted),
            "examples": dg.MetadataValue.json(
                {k: details[k] for k in ("added", "modified", "deleted")}
            ),
            "index_age_seconds": round(freshness.age_seconds or 0.0, 1),
        },
    )


FRESHNESS_CHECKS = [index_matches_working_tree]
SENSORS: list = [coderag_changes, coderag_index_automation]
