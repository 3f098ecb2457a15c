"""`refs` latency on a bigger index: the occurrence index against the chunk-text scan.

Builds (once; reused with --reuse) an index of K copies of a source tree — by default the
installed `dagster` package — through the real shard stages (`build_manifest`, `build_chunks`,
`write_segment`, `publish`) with zero vectors instead of the model (refs never reads vectors),
then times `navigation.find_references` for a few names, plain and `code_only`, and prints
the median of several warm calls and the first (cold) call. When the index has an
`occurrences` view, the same names are also timed through the old chunk-text scan
(`navigation._scan_references`), so one run gives before and after on the same data.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/refs_latency.py [--copies 3] [--source DIR]
       [--data-dir DIR] [--reuse] [--names get,self,Definitions]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from coderag_assets import navigation, segments
from coderag_assets.indexing import build_chunks, build_manifest, scan_shards
from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.settings import DEFAULT_MAX_FILE_BYTES
from coderag_assets.store import (
    CHUNK_SCHEMA,
    IndexStore,
    connect_index,
    vectors_table,
)

SHARD_COUNT = 16
DEFAULT_NAMES = "get,self,Definitions,materialize,AssetKey,check,xyzzy_absent"
WARM_CALLS = 5


def default_source() -> Path:
    import dagster

    return Path(dagster.__file__).parent


def build(source: Path, copies: int, data_dir: Path) -> IndexStore:
    root = data_dir / "repo"
    if root.exists():
        shutil.rmtree(root)
    for copy in range(copies):
        shutil.copytree(
            source, root / f"copy{copy}", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    store = IndexStore.for_root(data_dir / "data", root.resolve())
    store.register(SHARD_COUNT)
    shards = shard_keys(SHARD_COUNT)
    started = time.perf_counter()
    stats = scan_shards(
        store.root,
        shards,
        lambda p: shard_of(p, SHARD_COUNT),
        max_file_bytes=DEFAULT_MAX_FILE_BYTES,
    )
    infos = {}
    chunk_seconds = 0.0
    for shard in shards:
        build_manifest(store, shard, stats[shard], max_file_bytes=DEFAULT_MAX_FILE_BYTES)
        chunk_stats = build_chunks(
            store, shard, run_id="bench", max_file_bytes=DEFAULT_MAX_FILE_BYTES
        )
        chunk_seconds += chunk_stats.seconds
        chunks = store.read_shard("chunks", shard, CHUNK_SCHEMA)
        hashes = sorted(set(chunks.column("content_hash").to_pylist()))
        vectors = np.zeros((len(hashes), 4), dtype=np.float32)
        store.write_shard("embeddings", shard, vectors_table(hashes, vectors, "bench", "bench"))
        infos[shard] = segments.write_segment(store, shard, model_id="bench", run_id="bench")
    meta = segments.PublishMeta(
        root=str(store.root),
        model_id="bench",
        model="bench",
        backend="none",
        dim=4,
        chunker_version="bench",
        shard_count=SHARD_COUNT,
        run_id="bench",
    )
    segments.publish(store, infos, meta)
    print(
        f"built in {time.perf_counter() - started:.1f} s (build_chunks {chunk_seconds:.1f} s)",
        flush=True,
    )
    return store


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep an index already built there")
    parser.add_argument("--names", default=DEFAULT_NAMES)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="coderag-refs-"))
    root = (data_dir / "repo").resolve()
    store = IndexStore.for_root(data_dir / "data", root)
    if not (args.reuse and store.index_path.exists()):
        store = build(args.source or default_source(), args.copies, data_dir)
    con = connect_index(store.index_path)
    chunks = con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    try:
        occurrences = con.execute("SELECT count(*) FROM occurrences").fetchone()[0]
    except duckdb.CatalogException:  # an index without the occurrences view
        occurrences = None
    sizes = {}
    for kind in ("chunks", "occurrences"):
        files = list(store.base.glob(f"segments/*/*/{kind}.parquet"))
        sizes[kind] = sum(f.stat().st_size for f in files) / 1e6
    print(
        f"index: {chunks} chunks, {occurrences} occurrences; segment Parquet MB: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items())
    )
    if occurrences:
        groups = [
            pq.ParquetFile(f).metadata.num_row_groups
            for f in store.base.glob("segments/*/*/occurrences.parquet")
        ]
        print(f"occurrence row groups: {sum(groups)}")
    paths = [("find_references", navigation.find_references)]
    if occurrences and hasattr(navigation, "_scan_references"):
        paths.append(("scan (old)", navigation._scan_references))
    print(
        f"{'name':<16}{'code_only':<11}{'path':<17}{'total':>7}{'cold ms':>10}{'warm p50 ms':>13}"
    )
    for name in args.names.split(","):
        for code_only in (False, True):
            for label, function in paths:
                call = partial(function, con, name, code_only=code_only)
                cold, result = timed(call)
                warm = [timed(call)[0] for _ in range(WARM_CALLS)]
                print(
                    f"{name:<16}{code_only!s:<11}{label:<17}{result.total:>7}"
                    f"{cold:>10.1f}{statistics.median(warm):>13.1f}",
                    flush=True,
                )
    con.close()
    print(f"data dir: {data_dir}")


if __name__ == "__main__":
    main()
