"""Detect and plan one update of an index: what `coderag index` does before it needs Dagster.

One pass: look at the tree (:func:`look_at_tree`: the walk reusing the previous one's
unchanged directories, grouped into shards) → compare it with the published index
(:func:`coderag_assets.freshness.plan_update`) → a :class:`PlannedUpdate`. An update that
finds nothing to do ends here, with an up-to-date :class:`IndexSummary`, and never imports
Dagster or opens its instance (≈ 1 s of imports and storage set-up saved on every no-op
`coderag index`); one that has shards to run hands the plan to
:func:`coderag_assets.runs.run_index`, which takes the lock and runs them.

No Dagster here (``tests/test_imports.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coderag_assets.partitions import shard_keys
from coderag_assets.settings import Settings
from coderag_assets.store import IndexNotFoundError, IndexStore, duckdb_errors

if TYPE_CHECKING:
    from coderag_assets.freshness import TreeSnapshot, UpdatePlan


@dataclass
class IndexSummary:
    """What one update did. Totals (files, chunks, skipped) describe the published index;
    `embedded`/`reused` describe this update; `shards` are the shards it ran."""

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
    up_to_date: bool = False
    version: int | None = None
    shards: list[str] = field(default_factory=list)
    shard_count: int = 0  # the index's shards (chosen from the tree's size for a new index)
    reason: str = ""
    changes: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    detection: dict[str, object] = field(default_factory=dict)  # how changes were found
    out_of_space: bool = False  # the run failed because a file system is full (see `error`)
    gates: dict[str, dict[str, object]] = field(default_factory=dict)  # check -> passed, detail

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
            "up_to_date": self.up_to_date,
            "version": self.version,
            "shards": self.shards,
            "shard_count": self.shard_count,
            "reason": self.reason,
            "changes": self.changes,
            "detection": self.detection,
            "timings": {name: round(value, 3) for name, value in self.timings.items()},
            "out_of_space": self.out_of_space,
            "gates": self.gates,
        }


@dataclass
class PlannedUpdate:
    """One update, detected and planned: the tree as it is now, the shards to run and why.

    `plan` is None for a full rebuild (every shard, every file re-hashed: nothing to plan).
    `settings` carry the index's shard count (sized from the tree for a new index).
    """

    settings: Settings
    store: IndexStore
    snapshot: TreeSnapshot
    keys: list[str]
    plan: UpdatePlan | None
    model_id: str
    started: float  # time.perf_counter() when the update began
    detection: dict[str, object] = field(default_factory=dict)

    @property
    def up_to_date(self) -> bool:
        return self.plan is not None and self.plan.up_to_date

    def up_to_date_summary(self) -> IndexSummary:
        """The summary of an update that had nothing to do: totals of the published index."""
        assert self.settings.root is not None and self.plan is not None
        summary = IndexSummary(
            root=self.settings.root,
            index_path=self.store.index_path,
            success=True,
            run_id="",
            seconds=0.0,
            up_to_date=True,
            shard_count=len(self.keys),
            reason=self.plan.reason,
            detection=self.detection,
        )
        fill_from_index(summary, self.store)
        summary.reused = stored_vectors(self.store)
        summary.seconds = time.perf_counter() - self.started
        return summary


def unusable_root_summary(settings: Settings, error: Exception) -> IndexSummary:
    """The summary of an update that could not look at its root (`error`: a RootError)."""
    assert settings.root is not None
    return IndexSummary(
        root=settings.root,
        index_path=IndexStore.for_root(settings.data_dir, settings.root).index_path,
        success=False,
        run_id="",
        seconds=0.0,
        error=str(error),
    )


def plan_index_update(settings: Settings, *, full: bool = False) -> PlannedUpdate:
    """Look at `settings.root` and decide which shards an update must run.

    `full` plans nothing (every shard runs and re-hashes its files). Raises RootError when
    the root is unusable.
    """
    from coderag_assets.chunking import CHUNKER_VERSION
    from coderag_assets.embedding import EmbedderSpec, EmbeddingError
    from coderag_assets.freshness import plan_update
    from coderag_assets.partitions import shard_of

    assert settings.root is not None, "plan_index_update needs settings.root"
    started = time.perf_counter()
    settings = settings.with_root(settings.root)  # the recorded shard count, if indexed since
    store = IndexStore.for_root(settings.data_dir, settings.root)
    settings, snapshot = look_at_tree(settings, store)  # 1. what the tree holds now
    keys = shard_keys(settings.shard_count)
    detection = snapshot.detection.to_json() if snapshot.detection else {}
    try:
        spec = EmbedderSpec(settings.model, backend=settings.backend, cache_dir=settings.models_dir)
        model_id = spec.model_id
    except EmbeddingError:
        model_id = ""  # unknown model: plan everything, the run reports the error clearly
    plan = None
    if not full:  # 2. which shards differ from the published index
        plan = plan_update(
            store,
            snapshot,
            keys,
            lambda path: shard_of(path, len(keys)),
            model_id=model_id,
            chunker_version=CHUNKER_VERSION,
        )
    return PlannedUpdate(settings, store, snapshot, keys, plan, model_id, started, detection)


def look_at_tree(settings: Settings, store: IndexStore) -> tuple[Settings, TreeSnapshot]:
    """One stat-only look at `settings.root`, reusing the directories of the previous look
    that did not change (:mod:`coderag_assets.tree_cache`), grouped into the index's
    shards; a new index gets the shard count its size calls for (the settings returned).
    Raises RootError when the root is unusable."""
    from coderag_assets.freshness import snapshot_tree
    from coderag_assets.partitions import shard_of
    from coderag_assets.scope import estimate_chunks
    from coderag_assets.tree_cache import TREE_CACHE_FILE

    assert settings.root is not None, "look_at_tree needs settings.root"
    count = settings.shard_count
    snapshot = snapshot_tree(
        settings.root,
        shard_keys(count),
        lambda path: shard_of(path, count),
        max_file_bytes=settings.max_file_bytes,
        walk_cache=store.base / TREE_CACHE_FILE,
    )
    if settings.shards_unsized:  # a new index: as many shards as its size calls for
        settings = settings.sized(
            estimate_chunks(
                (path, size)
                for path, (size, _) in snapshot.files.items()
                if path not in snapshot.skip_reasons
            )
        )
        if settings.shard_count != count:
            count = settings.shard_count
            snapshot = snapshot.regrouped(shard_keys(count), lambda path: shard_of(path, count))
    return settings, snapshot


def fill_from_index(summary: IndexSummary, store: IndexStore) -> None:
    """Totals of the published index (an incremental run's metadata covers only its shards):
    from its manifest (O(shards)), or by SQL over it when its segments predate skip counts."""
    from coderag_assets.freshness import open_published
    from coderag_assets.segments import read_current
    from coderag_assets.store import read_meta

    try:
        meta = read_current(store.base).meta
    except IndexNotFoundError:
        meta = {}
    totals = meta.get("totals")
    if isinstance(totals, dict) and isinstance(totals.get("skipped"), dict):
        skipped = {str(reason): int(count) for reason, count in totals["skipped"].items()}
        summary.files, summary.chunks = int(totals["files"]), int(totals["chunks"])
        summary.indexable_files = summary.files - sum(skipped.values())
        summary.skipped = skipped
        summary.version = int(meta["version"])
        return
    try:
        with open_published(store) as con:
            files, indexable = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE skip_reason IS NULL) FROM files"
            ).fetchone()
            summary.files, summary.indexable_files = int(files), int(indexable)
            summary.chunks = int(con.execute("SELECT count(*) FROM chunks").fetchone()[0])
            rows = con.execute(
                "SELECT skip_reason, count(*) FROM files WHERE skip_reason IS NOT NULL GROUP BY 1"
            ).fetchall()
            summary.skipped = {reason: int(count) for reason, count in sorted(rows)}
            version = read_meta(con).get("version")
    except (IndexNotFoundError, *duckdb_errors()):
        return  # a damaged live version: the plan repairs it, the summary stays as the run left it
    summary.version = int(version) if isinstance(version, int | float) else summary.version


def stored_vectors(store: IndexStore) -> int:
    """The vectors the published index holds, shard by shard: what an update that re-ran
    every shard would report as `reused` (a text in two shards counts in each, as a run's
    per-shard counts do). The sum of the segments' `distinct_vectors`, read from their
    records (one small file per shard) instead of a DISTINCT over every chunk (≈ 0.4 s at
    389k chunks); when a record cannot be read, the index's distinct texts by SQL."""
    from coderag_assets.segments import SegmentInfo, read_current

    try:
        current = read_current(store.base)
        return sum(
            SegmentInfo.load(shard, store.base / directory).distinct_vectors
            for shard, directory in current.segments.items()
        )
    except IndexNotFoundError:  # SegmentError included
        from coderag_assets.freshness import open_published

        with open_published(store) as con:
            query = "SELECT count(DISTINCT content_hash) FROM chunks"  # across shards: a floor
            return int(con.execute(query).fetchone()[0])
