"""Vector-cache compaction at scale: wall time and peak RSS against the cache's size.

Fills a vector cache with ``--vectors`` random 384-dimensional vectors (compaction cost does
not depend on the values) spread over 64 files, as 64 publishes would leave them, plus a set of
"shard embeddings" files referencing half of them, then runs `VectorCache.compact`
in a fresh process and reports its wall time and peak RSS (``ru_maxrss``).

``--baseline-rev REV`` runs the same compaction with ``coderag_assets/store.py`` as it was at git
revision REV (a revision from before ``store`` became a package; before the DuckDB rewrite it took referenced hashes as a set, so they are passed
that way), in the same run, for a before/after ratio.

    .venv/bin/python benchmarks/vector_cache.py --vectors 400000 --baseline-rev d0dddc8
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
MODEL = "bench-model:openvino:auto:256"
FILES = 64
DIM = 384


def fill(work: Path, vectors: int) -> tuple[Path, list[Path]]:
    """A store with `vectors` cached vectors in FILES files; embeddings files for half."""
    from coderag_assets.store import IndexStore, vectors_table

    store = IndexStore(work / "index", work / "repo")
    rng = np.random.default_rng(7)
    per_file = vectors // FILES
    referenced_dir = work / "embeddings"
    referenced_dir.mkdir(parents=True)
    referenced = []
    for number in range(FILES):
        hashes = [f"{number:03d}-{row:08d}" for row in range(per_file)]
        matrix = rng.random((per_file, DIM), dtype=np.float32)
        store.vector_cache(MODEL).add("fill", vectors_table(hashes, matrix, MODEL, "fill"))
        path = referenced_dir / f"{number}.parquet"
        pq.write_table(pa.table({"content_hash": pa.array(hashes[::2], pa.string())}), path)
        referenced.append(path)
        time.sleep(0.002)  # distinct file names (ms)
    return work, referenced


def compact(work: Path, store_source: Path | None) -> None:
    """Child process: compact and print JSON (wall, peak RSS, kept, dropped)."""
    if store_source is not None:
        spec = importlib.util.spec_from_file_location("baseline_store", store_source)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["baseline_store"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        store_class = module.IndexStore
    else:
        from coderag_assets.store import IndexStore as store_class
    store = store_class(work / "index", work / "repo")
    referenced_files = sorted((work / "embeddings").glob("*.parquet"))
    if store_source is not None:  # the old contract: a set of hashes

        def referenced():
            return {
                h
                for path in referenced_files
                for h in pq.read_table(path)["content_hash"].to_pylist()
            }
    else:

        def referenced():
            return referenced_files

    started = time.perf_counter()
    later = time.time() + 30 * 86400
    if store_source is not None:  # a single-file store.py: the cache was IndexStore methods
        stats = store.compact_vector_cache(MODEL, referenced, force=True, now=later)
    else:
        stats = store.vector_cache(MODEL).compact(referenced, force=True, now=later)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"wall_s": wall, "peak_rss_mib": peak, "kept": stats.kept, "dropped": stats.dropped}
        )
    )


def run_child(work: Path, store_source: Path | None) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(work)]
    if store_source is not None:
        command += ["--store-source", str(store_source)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=PROJECT)
    if done.returncode:
        raise SystemExit(f"compaction failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=400_000)
    parser.add_argument("--baseline-rev", help="git revision whose store.py is the baseline")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store-source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        compact(args.child, args.store_source)
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="vector-cache-bench-"))
    try:
        rows = {}
        variants: list[tuple[str, Path | None]] = [("now", None)]
        if args.baseline_rev:
            source = scratch / "baseline_store.py"
            source.write_text(
                subprocess.run(
                    ["git", "show", f"{args.baseline_rev}:coderag_assets/store.py"],
                    capture_output=True, text=True, check=True, cwd=PROJECT,
                ).stdout
            )  # fmt: skip
            variants.insert(0, (f"baseline {args.baseline_rev}", source))
        for name, store_source in variants:
            work = scratch / name.replace(" ", "-")
            started = time.perf_counter()
            fill(work, args.vectors)
            fill_s = time.perf_counter() - started
            rows[name] = run_child(work, store_source)
            print(
                f"{name}: {args.vectors:,} vectors in {FILES} files (filled in {fill_s:.0f} s): "
                f"compaction {rows[name]['wall_s']:.1f} s, peak RSS {rows[name]['peak_rss_mib']:.0f} "
                f"MiB, kept {rows[name]['kept']:,}, dropped {rows[name]['dropped']:,}",
                flush=True,
            )
            shutil.rmtree(work)
        if len(rows) == 2:
            base, now = rows[variants[0][0]], rows["now"]
            print(
                f"ratio now/baseline: wall {now['wall_s'] / base['wall_s']:.2f}, "
                f"peak RSS {now['peak_rss_mib'] / base['peak_rss_mib']:.2f}"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
