"""Change detection of one `coderag watch` tick: stat every file vs look where events point.

For a tree (`--tree DIR`, e.g. `benchmarks/scale.py`'s monorepo of K copies of requests), it
starts `coderag watch`'s own file-system observer, then alternates, `--repeats` times, after a
one-file edit each time:

- full: :func:`freshness.snapshot_tree` with the walk cache (what a tick did before: reuse
  the previous walk's listings, ``lstat`` every file, group and fingerprint every shard);
- events: the same call with a :class:`freshness.LiveTree` whose :class:`tree_cache.EventWalker`
  the observer feeds (only the directories events named are looked at, the rest comes from
  the previous walk in memory; only shards whose rows changed are fingerprinted again).

Both must give identical rows (checked every time). Prints min/median seconds and the ratio
events / full, measured in the same run. The index directory is a temporary one: nothing is
indexed.

    .venv/bin/python benchmarks/watch_detection.py --tree DIR [--repeats 7] [--shards 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coderag_assets.cli.watch import start_fs_events
from coderag_assets.freshness import LiveTree, snapshot_tree
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.tree_cache import TREE_CACHE_FILE, EventWalker

EDIT_NAME = "watch_detection_edit.py"  # a file of its own (trees of hard links share inodes)
SETTLE_S = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shards", type=int, default=64)
    args = parser.parse_args()
    root = args.tree.resolve()
    keys = shard_keys(args.shards)

    def shard(path: str) -> str:
        return shard_of(path, args.shards)

    edited = root / EDIT_NAME
    edited.write_text("def first():\n    return 1\n")
    walker = EventWalker(root, full_check_s=float("inf"))
    live = LiveTree(walker)
    events = {"count": 0, "last_at": time.monotonic()}

    def on_change(*paths: str) -> None:
        walker.note(*paths)
        events["count"] += 1
        events["last_at"] = time.monotonic()

    observer = start_fs_events(root, on_change)
    if observer is None:
        print("no file-system notifications here")
        return 1
    full_s: list[float] = []
    events_s: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as index_dir:
            cache = Path(index_dir) / TREE_CACHE_FILE
            first = snapshot_tree(root, keys, shard, walk_cache=cache, live=live)
            print(
                f"{root}: {len(first.files)} files, {args.shards} shards; "
                f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
            )
            time.sleep(2.5)  # out of the racy window of the first walk
            for number in range(args.repeats):
                seen = events["count"]
                with edited.open("a") as handle:
                    handle.write(f"\ndef edit_{number}():\n    return {number}\n")
                # As in `coderag watch`, the tick comes after the edit's event has arrived.
                while events["count"] == seen or time.monotonic() - events["last_at"] < SETTLE_S:
                    time.sleep(0.02)
                started = time.perf_counter()
                by_events = snapshot_tree(root, keys, shard, walk_cache=cache, live=live)
                events_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                full = snapshot_tree(root, keys, shard, walk_cache=cache)
                full_s.append(time.perf_counter() - started)
                if (by_events.files, by_events.paths_by_shard, by_events.fingerprints) != (
                    full.files,
                    full.paths_by_shard,
                    full.fingerprints,
                ):
                    print("MISMATCH: the event-driven walk differs from the full walk")
                    return 1
                assert by_events.detection is not None
                if by_events.detection.method != "events":
                    print(f"note: repeat {number} was a full walk ({by_events.detection.reason})")
    finally:
        observer.stop()
        edited.unlink(missing_ok=True)
    for label, values in (("full (stat every file)", full_s), ("events", events_s)):
        print(
            f"  {label:24} min {min(values) * 1000:7.1f} ms   "
            f"median {statistics.median(values) * 1000:7.1f} ms"
        )
    ratio = statistics.median(events_s) / statistics.median(full_s)
    print(f"  events / full (median)   {ratio:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
