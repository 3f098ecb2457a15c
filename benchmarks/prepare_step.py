"""The `prepare_shards` step of a cold index, two or more code versions alternated.

What the step does in a cold `coderag index`, without Dagster: walk the tree, read, hash,
parse and chunk every shard on `--workers` processes, then the early publish (every shard's
segment without vectors, published) when enough distinct texts wait for a vector. Each
round runs every code tree (a directory holding `coderag_assets/`, e.g. `git archive` of an
older commit) in a fresh process and a fresh data directory, so both pay the same machine
state. Prints each run's wall seconds (chunking, then with the early publish) and CPU
seconds (this process and its chunking workers), the median per code tree and its ratio to
the first tree's.

    .venv/bin/python benchmarks/prepare_step.py --package django==5.1.4 --code /tmp/base --code .

The converted model is not needed (nothing is embedded); only its id is.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import fetch_sdist

EARLY_PUBLISH_MIN_VECTORS = 512  # as coderag_assets.assets


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(root: Path, shard_count: int, workers: int, data: Path) -> dict[str, object]:
    """One cold prepare step of `root` into `data` with the `coderag_assets` on sys.path."""
    from coderag_assets import indexing
    from coderag_assets.embedding import EmbedderSpec
    from coderag_assets.partitions import shard_keys, shard_of
    from coderag_assets.store import IndexStore

    store = IndexStore.for_root(data, root)
    store.register(shard_count)
    keys = list(shard_keys(shard_count))
    spec = EmbedderSpec(cache_dir=data / "models")
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    by_shard = indexing.scan_shards(
        root, keys, lambda path: shard_of(path, shard_count), max_file_bytes=1_000_000
    )
    kwargs: dict[str, object] = {
        "run_id": "prepare-step",
        "max_file_bytes": 1_000_000,
        "model_id": spec.model_id,
        "workers": workers,
    }
    early = None
    if hasattr(indexing, "EarlySegments"):  # code from before it writes nothing meanwhile
        early = indexing.EarlySegments(
            store, spec.model_id, "prepare-step", min_vectors=EARLY_PUBLISH_MIN_VECTORS
        )
        kwargs["early_segments"] = early
    prepared = indexing.prepare_shards(store, keys, by_shard, **kwargs)
    chunked = time.perf_counter() - started
    chunks = sum(item.chunks.chunks for item in prepared)
    known = {"known": early.digests} if early else {}  # as coderag_assets.assets does
    distinct = indexing.distinct_pending_vectors(store, keys, spec.model_id, **known)
    published = indexing.early_publish_pays(distinct, chunks, min_vectors=EARLY_PUBLISH_MIN_VECTORS)
    if published:
        indexing.publish_index(store, keys, spec, run_id="prepare-step", early=True)
    return {
        "chunks": chunks,
        "chunk_s": round(chunked, 2),
        "step_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(_cpu_seconds() - cpu_started, 2),
        "early_publish": published,
        "segments_written_while_chunking": len(early.written) if early else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="django==5.1.4")
    parser.add_argument("--path", type=Path, help="prepare this local tree instead of --package")
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="a checkout holding coderag_assets/ (repeat; the first is the baseline)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child: one run, JSON out
    args = parser.parse_args()
    root = (args.path or fetch_sdist(args.package)).resolve()
    if not args.measure and not args.code:
        parser.error("name at least one --code")
    if args.measure:
        print(json.dumps(measure(root, args.shards, args.workers, Path(args.measure))))
        return 0
    print(f"{root}: {args.shards} shards, {args.workers} workers; load {os.getloadavg()}")
    runs: dict[Path, list[dict[str, object]]] = {code.resolve(): [] for code in args.code}
    for number in range(args.rounds):
        for code, rows in runs.items():
            data = Path(tempfile.mkdtemp(prefix="prepare-step-"))
            try:
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        str(data),
                        "--path",
                        str(root),
                        "--shards",
                        str(args.shards),
                        "--workers",
                        str(args.workers),
                    ],
                    env={**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"},
                    cwd=tempfile.gettempdir(),
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                shutil.rmtree(data, ignore_errors=True)
            if done.returncode != 0:
                raise SystemExit(f"{code}: {done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  round {number + 1} {code}: {row}", flush=True)
    baseline = next(iter(runs.values()))
    for code, rows in runs.items():
        line = []
        for key in ("chunk_s", "step_s", "cpu_s"):
            median = statistics.median(float(row[key]) for row in rows)  # type: ignore[arg-type]
            base = statistics.median(float(row[key]) for row in baseline)  # type: ignore[arg-type]
            line.append(f"{key} {median:.2f} ({median / base:.3f}x)")
        print(f"median {code}: " + ", ".join(line))
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
