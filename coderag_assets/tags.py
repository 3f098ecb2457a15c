"""Names shared by everything that starts or reads index runs: the job, its run tags, and
what a list of run requests asks for.

Sensors, the schedule, the CLI runner and `coderag watch` import this module (and nothing of
each other), so the run helpers never form an import cycle through `definitions.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from coderag_assets.execution import prepare_config

INDEX_JOB_NAME = "coderag_index"

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
ROOT_TAG = "coderag/root"
TRIGGER_TAG = "coderag/trigger"  # index | watch | sensor | schedule
EXECUTOR_TAG = "coderag/executor"  # in_process | multiprocess | celery
CHANGES_TAG = "coderag/changes"  # "2 modified, 1 added"
CHANGE_COUNTS_TAG = "coderag/change_counts"  # "added,modified,deleted"
CHANGED_PATHS_TAG = "coderag/changed_paths"
NEWEST_CHANGE_TAG = "coderag/newest_change_ns"
RUN_KEYS_TAG = "coderag/run_keys"
TAG_VALUE_CHARS = 1000

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def clip_tag(text: str, limit: int = TAG_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shard_span(shards: Sequence[str], keys: Sequence[str]) -> tuple[str, str]:
    """First and last key (in partition order) of the range covering `shards`."""
    positions = sorted(keys.index(shard) for shard in shards)
    return keys[positions[0]], keys[positions[-1]]


def range_tags(shards: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """The partition-range tags of one run over the range covering `shards`."""
    first, last = shard_span(shards, keys)
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def shards_of_requests(requests: Sequence[dg.RunRequest], keys: Sequence[str]) -> list[str]:
    """Every shard a list of sensor/schedule run requests asks for (keys or key ranges)."""
    wanted: set[str] = set()
    for request in requests:
        if request.partition_key is not None:
            wanted.add(request.partition_key)
        key_range = request.partition_key_range
        if key_range is None and RANGE_START_TAG in request.tags:
            key_range = dg.PartitionKeyRange(
                request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
            )
        listed = prepare_config(request.run_config).get("shards")
        if listed:  # the run is limited to these shards of its range
            wanted.update(listed)
        elif key_range is not None:
            wanted.update(keys[keys.index(key_range.start) : keys.index(key_range.end) + 1])
    return sorted(wanted, key=keys.index)


@dataclass(frozen=True)
class RequestedChanges:
    """The file changes a list of sensor requests describes in their tags, added up."""

    added: int = 0
    modified: int = 0
    deleted: int = 0
    paths: tuple[str, ...] = ()
    newest_change_ns: int = 0

    @property
    def files(self) -> int:
        return self.added + self.modified + self.deleted

    def describe(self) -> str:
        from coderag_assets.freshness import describe_counts

        return describe_counts(self.modified, self.added, self.deleted)


def requested_changes(requests: Sequence[dg.RunRequest]) -> RequestedChanges:
    counts = [0, 0, 0]
    paths: list[str] = []
    newest = 0
    for request in requests:
        values = (request.tags.get(CHANGE_COUNTS_TAG) or "0,0,0").split(",")
        for position, value in enumerate(values[:3]):
            counts[position] += int(value) if value.isdigit() else 0
        paths.extend((request.tags.get(CHANGED_PATHS_TAG) or "").split())
        newest_tag = request.tags.get(NEWEST_CHANGE_TAG) or "0"
        newest = max(newest, int(newest_tag) if newest_tag.isdigit() else 0)
    return RequestedChanges(counts[0], counts[1], counts[2], tuple(paths), newest)


def runs_in_flight(instance: dg.DagsterInstance, root: str | None = None) -> bool:
    """True while a run (of `root`, when given) is queued, starting or running."""
    tags = {ROOT_TAG: root} if root else None
    return instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags=tags)) > 0
