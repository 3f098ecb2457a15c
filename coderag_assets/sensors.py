"""Watch mode as a Dagster sensor: one run of the index job for what changed.

- `coderag_changes` stat-walks the indexed root (the ignore rules of indexing), fingerprints
  every shard (:mod:`coderag_assets.freshness`) and keeps the fingerprints in its cursor.
  Each tick that sees changes requests **one** run of the job `coderag_index` over the
  partition range covering the changed shards, with run config limiting the shard steps to
  exactly those shards (so a `git checkout` is one run and one publish); a root that was
  never indexed gets one run over every shard. The tick's walk of the requested shards is
  saved and named in the run config (:mod:`coderag_assets.scans`), so the run does not walk
  the tree again. A shard whose last run stopped half-way (killed process, torn Parquet
  file) is requested once more when no run is in flight.
  The executor follows `CODERAG_EXECUTOR` (auto: in-process, see `execution.choose_executor`).
- `index_matches_working_tree` is a non-blocking check comparing the working tree with the
  published index; the change sensor also records it when the index turns stale or fresh.

`coderag watch` evaluates the same change sensor in-process (:class:`watcher.Watcher`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from coderag_assets.execution import choose_executor, run_config
from coderag_assets.files import RootError
from coderag_assets.freshness import (
    FileChanges,
    LiveTree,
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
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.resources import CodeRagResource
from coderag_assets.scans import save_scan
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore
from coderag_assets.tags import (
    CHANGE_COUNTS_TAG,
    CHANGED_PATHS_TAG,
    CHANGES_TAG,
    EXECUTOR_TAG,
    INDEX_JOB_NAME,
    NEWEST_CHANGE_TAG,
    ROOT_TAG,
    RUN_KEYS_TAG,
    TRIGGER_TAG,
    clip_tag,
    range_tags,
    requested_changes,
    runs_in_flight,
    shards_of_requests,
)
from coderag_assets.tree_cache import TREE_CACHE_FILE

CHANGE_SENSOR_NAME = "coderag_changes"
FRESHNESS_CHECK_NAME = "index_matches_working_tree"
SENSOR_INTERVAL_S = 5  # the daemon's floor; `coderag watch` ticks faster in-process
CURSOR_VERSION = 1
TAG_PATHS = 5  # changed paths named in a run's tags
TAG_VALUE_CHARS = 200


@dataclass(frozen=True)
class Shards:
    """The shard keys of one shard count and the shard of a path."""

    count: int

    @property
    def keys(self) -> list[str]:
        return shard_keys(self.count)

    def of(self, path: str) -> str:
        return shard_of(path, self.count)


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
    return clip_tag(text, TAG_VALUE_CHARS)


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
    shards: Shards,
) -> list[dg.RunRequest]:
    indexed = manifest_files(store, changed)
    requests = []
    for shard in changed:
        current = snapshot.shard_files([shard])
        previous = {path: row for path, row in indexed.items() if shards.of(path) == shard}
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
    coderag: CodeRagResource,
    cursor_text: str | None,
    instance: dg.DagsterInstance | None,
    executor: str = "auto",
    live: LiveTree | None = None,
) -> dg.SensorResult:
    """One tick of the change sensor (also called by `coderag watch`); see the module doc.

    Requests at most one run: the job over the range covering every changed or unfinished
    shard, limited to those shards by run config, on `executor` (a `CODERAG_EXECUTOR` value).
    `live` (`coderag watch`, which receives file-system events) looks at the tree where
    events said it changed instead of stat-ing every file (:class:`freshness.LiveTree`).
    """
    shards = Shards(coderag.shard_count)
    if not coderag.root:
        return dg.SensorResult(
            skip_reason="no repository to watch: set CODERAG_ROOT (or use `coderag ui PATH`)",
            cursor=cursor_text,
        )
    root = Path(coderag.root).expanduser().resolve()  # the same key index_store() uses
    store = IndexStore.for_root(Path(coderag.data_dir), root)
    try:
        snapshot = snapshot_tree(
            root,
            shards.keys,
            shards.of,
            max_file_bytes=coderag.max_file_bytes,
            walk_cache=store.base / TREE_CACHE_FILE,  # list only the directories that changed
            live=live if live is not None and live.walker.root == str(root) else None,
        )
    except RootError as error:
        return dg.SensorResult(
            skip_reason=f"cannot watch {error}; the last published index stays searchable",
            cursor=cursor_text,
        )
    base_tags = {ROOT_TAG: str(root), TRIGGER_TAG: "sensor"}
    cursor = ChangeCursor.parse(cursor_text, root_key(root), shards.count)
    requests: list[dg.RunRequest] = []
    if cursor is None:
        cursor = ChangeCursor(root_key(root), shards.count)
        published = read_published(store)
        if published is None or published.meta.get("shard_count") != shards.count:
            request = _initial_request(snapshot, cursor, base_tags, shards)
            scan = _save_scan(store, snapshot, [request], shards, coderag)
            merged = merge_requests([request], shards.keys, executor, coderag, scan=scan)
            return dg.SensorResult(run_requests=[merged], cursor=cursor.serialize())
        cursor.fingerprints = published_fingerprints(published, shards.keys, shards.of)

    changed = [s for s in shards.keys if snapshot.fingerprints[s] != cursor.fingerprints.get(s)]
    if changed:
        cursor.seq += 1
        requests.extend(_requests_for_changes(store, snapshot, cursor, changed, base_tags, shards))
        cursor.fingerprints.update({s: snapshot.fingerprints[s] for s in changed})

    repairs = _repairs(store, snapshot, cursor, changed, instance, shards, str(root))
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

    events = _freshness_events(store, snapshot, cursor, changed, requests, shards)
    if not requests:
        return dg.SensorResult(
            skip_reason=f"no changes in {len(snapshot.files)} files ({snapshot.scan_seconds:.2f} s walk)",
            cursor=cursor.serialize(),
            asset_events=events,
        )
    scan = _save_scan(store, snapshot, requests, shards, coderag)
    merged = merge_requests(requests, shards.keys, executor, coderag, scan=scan)
    return dg.SensorResult(run_requests=[merged], cursor=cursor.serialize(), asset_events=events)


def _save_scan(
    store: IndexStore,
    snapshot: TreeSnapshot,
    requests: list[dg.RunRequest],
    shards: Shards,
    coderag: CodeRagResource,
) -> str | None:
    """Hand this tick's walk of the requested shards to the run (:mod:`coderag_assets.scans`)."""
    return save_scan(
        store,
        snapshot,
        shards_of_requests(requests, shards.keys),
        shard_count=shards.count,
        max_file_bytes=coderag.max_file_bytes,
    )


def merge_requests(
    requests: list[dg.RunRequest],
    keys: list[str],
    executor: str,
    coderag: CodeRagResource,
    *,
    scan: str | None = None,
) -> dg.RunRequest:
    """One run of the index job for everything `requests` ask for (per-shard requests of one
    tick): the range covering their shards, limited to exactly those shards, the change tags
    added up, and the executor chosen for that many shards. `scan` names the tick's walk of
    those shards, which the run reads instead of walking the tree again."""
    wanted = shards_of_requests(requests, keys)
    changes = requested_changes(requests)
    repairs = [
        r.tags[CHANGES_TAG] for r in requests if r.tags.get(CHANGES_TAG, "").startswith("repair")
    ]
    reason = ", ".join([changes.describe()] * bool(changes.files) + repairs) or "no file changes"
    workers = coderag.workers
    chosen = choose_executor(executor)
    tags = {key: value for key, value in requests[0].tags.items() if key in (ROOT_TAG, TRIGGER_TAG)}
    tags.update(
        {
            **range_tags(wanted, keys),
            EXECUTOR_TAG: chosen,
            CHANGES_TAG: clip_tag(reason),
            CHANGE_COUNTS_TAG: f"{changes.added},{changes.modified},{changes.deleted}",
            CHANGED_PATHS_TAG: clip_tag(" ".join(changes.paths[:TAG_PATHS]), TAG_VALUE_CHARS),
            NEWEST_CHANGE_TAG: str(changes.newest_change_ns),
            RUN_KEYS_TAG: clip_tag(",".join(r.run_key or "" for r in requests)),
        }
    )
    everything = len(wanted) == len(keys)
    return dg.RunRequest(
        run_key=requests[0].run_key
        if len(requests) == 1
        else ",".join(r.run_key or "" for r in requests),
        job_name=INDEX_JOB_NAME,
        run_config=run_config(
            chosen,
            workers=workers,
            shards=None if everything else wanted,
            scan=scan,
            resource=coderag.as_run_config(),
        ),
        tags=tags,
    )


def _initial_request(
    snapshot: TreeSnapshot, cursor: ChangeCursor, base_tags: dict[str, str], shards: Shards
) -> dg.RunRequest:
    """Nothing indexed yet: one run over the whole shard range (the parallel cold path)."""
    cursor.seq += 1
    cursor.fingerprints = dict(snapshot.fingerprints)
    changes = FileChanges(added=sorted(snapshot.files))
    return dg.RunRequest(
        run_key=f"all:{_combined(snapshot, shards)}:{cursor.seq}",
        tags={
            **base_tags,
            **range_tags(shards.keys, shards.keys),
            **changes_tags(changes, snapshot),
        },
    )


def _freshness_events(
    store: IndexStore,
    snapshot: TreeSnapshot,
    cursor: ChangeCursor,
    changed: list[str],
    requests: list[dg.RunRequest],
    shards: Shards,
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
    if not changed and cursor.stale and _index_matches(store, snapshot, shards):
        cursor.stale = False
        return [_freshness_evaluation(True, "the published index matches the working tree", {})]
    return []


def _combined(snapshot: TreeSnapshot, shards: Shards) -> str:
    text = ",".join(snapshot.fingerprints[s] for s in shards.keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _repairs(
    store: IndexStore,
    snapshot: TreeSnapshot,
    cursor: ChangeCursor,
    changed: list[str],
    instance: dg.DagsterInstance | None,
    shards: Shards,
    root: str,
) -> dict[str, str]:
    """Unfinished or torn shards to run again (once per fingerprint, never while runs are in flight)."""
    if instance is not None and runs_in_flight(instance, root):
        return {}
    candidates = [
        s
        for s in shards.keys
        if s not in changed and cursor.repaired.get(s) != snapshot.fingerprints[s]
    ]
    found = incomplete_shards(store, candidates)
    quarantine_torn_files(store, found)
    return found


def _index_matches(store: IndexStore, snapshot: TreeSnapshot, shards: Shards) -> bool:
    published = read_published(store)
    if published is None:
        return False
    return published_fingerprints(published, shards.keys, shards.of) == snapshot.fingerprints


def build_change_sensor(settings: Settings) -> dg.SensorDefinition:
    """The change sensor, off by default (switch it on in the UI's Automation page)."""

    @dg.sensor(
        name=CHANGE_SENSOR_NAME,
        job_name=INDEX_JOB_NAME,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Watch mode: stat-walks the indexed root and requests one index run for the shards "
            "whose files were created, modified, deleted or renamed."
        ),
    )
    def coderag_changes(
        context: dg.SensorEvaluationContext, coderag: CodeRagResource
    ) -> dg.SensorResult:
        try:
            instance = context.instance
        except dg.DagsterInvariantViolationError:
            instance = None
        return evaluate_changes(coderag, context.cursor, instance, settings.executor)

    return coderag_changes


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
