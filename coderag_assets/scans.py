"""The planner's walk of the tree, handed to the run it plans: one walk per update.

`coderag index`, the change sensor and `coderag watch` stat-walk the root to decide which
shards to run (:func:`coderag_assets.freshness.snapshot_tree`); the run's `prepare_shards`
step needs the same stat rows to write those shards' manifests. Rather than walk a second
time, the planner saves the rows of the shards it is about to run with :func:`save_scan` to
``<index dir>/scans/<scan id>.parquet`` and names the scan in the run config; the step reads
them back with :func:`load_scan`.

The handoff changes when the tree is looked at, not what is indexed: the rows are exactly what
:func:`~coderag_assets.files.scan_tree` listed (path, size, mtime_ns, stat-level skip reason,
in its order), so a manifest built from a scan equals one built from a walk made at the same
moment. A file edited between plan and run is picked up by the next update, like a file edited
just after a walk.

A scan is only an optimization, so every doubt falls back to walking: :func:`load_scan`
raises :class:`ScanUnusableError` (with the reason, for the run's log) when the file is
missing, unreadable or torn, made for another root, shard count or size limit, missing one of
the run's shards, or older than :data:`SCAN_MAX_AGE_S` (a run that waited that long behind
another update is better served by a fresh look at the tree). Scan files are not removed when
read, so a re-executed run can use its scan too; each :func:`save_scan` removes the files
older than :data:`SCAN_KEEP_S` instead.

Plain module (no Dagster).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from coderag_assets.files import FileStat
from coderag_assets.freshness import TreeSnapshot
from coderag_assets.store import IndexStore, write_bytes_atomic

SCAN_DIR_NAME = "scans"
SCAN_FORMAT_VERSION = 1
SCAN_MAX_AGE_S = 600.0  # an older scan is not used: the step walks the tree itself
SCAN_KEEP_S = 3600.0  # scan files (and stray temporary files) older than this are removed
SCAN_META_KEY = b"coderag_scan"
SCAN_ID_PATTERN = re.compile(r"\d{13}-[0-9a-f]{12}")  # `<epoch ms>-<random hex>`
SCAN_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("skip_reason", pa.string()),
    ]
)


class ScanUnusableError(Exception):
    """A named scan cannot stand in for a walk; ``str()`` says why (the step logs it)."""


def scan_dir(store: IndexStore) -> Path:
    return store.base / SCAN_DIR_NAME


def scan_path(store: IndexStore, scan_id: str) -> Path:
    return scan_dir(store) / f"{scan_id}.parquet"


def save_scan(
    store: IndexStore,
    snapshot: TreeSnapshot,
    shards: Sequence[str],
    *,
    shard_count: int,
    max_file_bytes: int,
) -> str | None:
    """Write the snapshot's rows of `shards` as a new scan file; returns its id.

    Written atomically (temporary file, then rename), so a reader sees all of it or nothing.
    Removes scan files older than :data:`SCAN_KEEP_S` first. Returns None, without raising,
    when the file cannot be written (full disk, read-only data directory): the run walks.
    """
    scan_id = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:12]}"
    wanted = sorted(set(shards))
    rows = [(shard, stat) for shard in wanted for stat in snapshot.file_stats(shard)]
    table = pa.table(
        {
            "path": [stat.path for _, stat in rows],
            "shard": [shard for shard, _ in rows],
            "size": [stat.size for _, stat in rows],
            "mtime_ns": [stat.mtime_ns for _, stat in rows],
            "skip_reason": [stat.skip_reason for _, stat in rows],
        },
        schema=SCAN_SCHEMA,
    )
    description = {
        "version": SCAN_FORMAT_VERSION,
        "root": str(store.root),
        "shard_count": shard_count,
        "max_file_bytes": max_file_bytes,
        "shards": wanted,
        "scanned_at": snapshot.scanned_at,
    }
    table = table.replace_schema_metadata({SCAN_META_KEY: json.dumps(description).encode()})
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    try:
        scan_dir(store).mkdir(parents=True, exist_ok=True)
        remove_old_scans(store)
        write_bytes_atomic(scan_path(store, scan_id), buffer.getvalue().to_pybytes())
    except OSError:
        return None
    return scan_id


def remove_old_scans(store: IndexStore, *, keep_s: float = SCAN_KEEP_S) -> list[Path]:
    """Remove scan files (and temporary files a killed writer left) last written more than
    `keep_s` ago; returns the removed paths. Files that vanish meanwhile are skipped."""
    removed: list[Path] = []
    cutoff = time.time() - keep_s
    directory = scan_dir(store)
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def load_scan(
    store: IndexStore,
    scan_id: str,
    shards: Sequence[str],
    *,
    shard_count: int,
    max_file_bytes: int,
    max_age_s: float = SCAN_MAX_AGE_S,
    now: Callable[[], float] = time.time,
) -> dict[str, list[FileStat]]:
    """The stat rows of each of `shards` (every key present, rows sorted by path as
    :func:`~coderag_assets.files.scan_tree` lists them) from scan `scan_id` of `store`.

    Raises ScanUnusableError naming the reason when the scan cannot stand in for a walk made
    now for this root, shard count and size limit (see the module doc).
    """
    if not SCAN_ID_PATTERN.fullmatch(scan_id):
        raise ScanUnusableError(f"scan id {scan_id!r} is not one the planner makes")
    path = scan_path(store, scan_id)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ScanUnusableError(f"scan {scan_id} is gone ({path})") from None
    except (OSError, pa.ArrowException) as error:
        raise ScanUnusableError(f"scan {scan_id} is unreadable ({error})") from None
    if not table.schema.equals(SCAN_SCHEMA, check_metadata=False):
        raise ScanUnusableError(f"scan {scan_id} has unexpected columns {table.schema.names}")
    description = _description(table, scan_id)
    expected = {
        "version": SCAN_FORMAT_VERSION,
        "root": str(store.root),
        "shard_count": shard_count,
        "max_file_bytes": max_file_bytes,
    }
    for key, value in expected.items():
        if description.get(key) != value:
            raise ScanUnusableError(
                f"scan {scan_id} was made with {key}={description.get(key)!r}, not {value!r}"
            )
    covered = description.get("shards")
    missing = sorted(set(shards) - set(covered if isinstance(covered, list) else []))
    if missing:
        raise ScanUnusableError(f"scan {scan_id} does not cover shards {missing}")
    scanned_at = description.get("scanned_at")
    if not isinstance(scanned_at, int | float):
        raise ScanUnusableError(f"scan {scan_id} does not say when it was made")
    age_s = now() - scanned_at
    if age_s > max_age_s:
        raise ScanUnusableError(f"scan {scan_id} is {age_s:.0f} s old (limit {max_age_s:.0f} s)")
    by_shard: dict[str, list[FileStat]] = {shard: [] for shard in shards}
    columns = [table.column(name).to_pylist() for name in SCAN_SCHEMA.names]
    for path_name, shard, size, mtime_ns, skip_reason in zip(*columns, strict=True):
        rows = by_shard.get(shard)
        if rows is not None:
            rows.append(FileStat(path_name, size, mtime_ns, skip_reason))
    return by_shard


def _description(table: pa.Table, scan_id: str) -> dict[str, object]:
    raw = (table.schema.metadata or {}).get(SCAN_META_KEY)
    try:
        description = json.loads(raw) if raw else None
    except ValueError:
        description = None
    if not isinstance(description, dict):
        raise ScanUnusableError(f"scan {scan_id} has no readable description")
    return description
