"""Exact vector search at a million distinct vectors: mapped against streamed scans.

Takes the distinct vectors of a real index (its shards' embeddings files) and a query embedded
with the index's model, grows them to `--vectors` distinct vectors (the real ones, then
perturbed copies: v + noise, renormalised, cosine ≈ 0.9 to their source, so the copies keep
the real vectors' structure), splits them into `--segments` segments' `vectors.npy` files
written with the index's own code (`vectors.save`), and measures:

- a cold process that opens every segment and scores one query, mapped (`scores`, the
  baseline) and streamed (`streamed_scores`, what `coderag search` does): wall time and peak
  RSS (VmHWM: mapped file pages count) — the files are in the page cache, as right after
  indexing;
- warm queries in one process (median of `--queries`), mapped and streamed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vector_scan.py --index data/indexes/<name> \\
        [--vectors 1000000] [--segments 64] [--queries 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from coderag_assets import vectors
from coderag_assets.embedding import EmbedderSpec, load_embedder

NOISE_COSINE = 0.9  # cosine between a perturbed copy and its real source vector
QUERY = "send a prepared request and follow redirects"


def real_vectors(index_dir: Path) -> tuple[np.ndarray, str]:
    """Distinct vectors of the index's embeddings files, and the model id."""
    matrices, seen, model = [], set(), ""
    for path in sorted((index_dir / "embeddings").glob("*.parquet")):
        table = pq.read_table(path, columns=["content_hash", "vector", "model_id"])
        if not table.num_rows:
            continue
        model = table.column("model_id")[0].as_py()
        keep = []
        for row, content_hash in enumerate(table.column("content_hash").to_pylist()):
            if content_hash not in seen:
                seen.add(content_hash)
                keep.append(row)
        column = table.column("vector").combine_chunks().take(keep)
        matrices.append(
            column.flatten().to_numpy().reshape(-1, column.type.list_size).astype(np.float32)
        )
    if not matrices:
        raise SystemExit(f"no embeddings under {index_dir}")
    return np.concatenate(matrices), model


def grown(real: np.ndarray, size: int) -> np.ndarray:
    """`size` distinct unit vectors: the real ones, then perturbed copies of them."""
    if size <= len(real):
        return real[:size]
    rng = np.random.default_rng(0)
    sources = real[rng.integers(0, len(real), size - len(real))]
    noise = rng.standard_normal(sources.shape).astype(np.float32)
    noise *= np.sqrt(1 / NOISE_COSINE**2 - 1) / np.sqrt(real.shape[1])
    copies = sources + noise
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.concatenate([real, copies.astype(np.float32)])


COLD = """
import json, sys, time
started = time.perf_counter()
import numpy as np
sys.path.insert(0, {project!r})
from pathlib import Path
from coderag_assets import vectors
parts = [vectors.SegmentVectors.load(Path(d), dim={dim}) for d in {dirs!r}]
query = np.array({query!r}, dtype=np.float32)
buffer = np.empty((vectors.STREAM_BLOCK_ROWS, {dim}), np.float32)
if {streamed!r}:
    scores = np.concatenate([p.streamed_scores(query, buffer) for p in parts])
else:
    scores = np.concatenate([p.scores(query) for p in parts])
top = np.argpartition(-scores, 9)[:10]
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({{"wall_s": time.perf_counter() - started, "rss_mib": hwm,
                   "top": sorted(int(t) for t in top)}}))
"""


def cold(dirs: list[str], dim: int, query: np.ndarray, streamed: bool) -> dict:
    program = COLD.format(
        project=str(PROJECT), dim=dim, dirs=dirs, query=query.tolist(), streamed=streamed
    )
    done = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an index directory")
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=64)
    parser.add_argument("--queries", type=int, default=20, help="warm queries")
    parser.add_argument("--repeats", type=int, default=3, help="cold processes per way")
    args = parser.parse_args()

    real, model = real_vectors(args.index)
    embedder = load_embedder(
        EmbedderSpec(model=model.split(":")[0], cache_dir=args.index.parent.parent / "models")
    )
    query = embedder.embed_query(QUERY).astype(np.float32)
    matrix = grown(real, args.vectors)
    work = Path(tempfile.mkdtemp(prefix="coderag-vector-scan-"))
    dirs = []
    try:
        for number, rows in enumerate(np.array_split(np.arange(len(matrix)), args.segments)):
            directory = work / f"seg{number:03}"
            directory.mkdir()
            vectors.save(directory, matrix[rows])
            dirs.append(str(directory))
        dim = matrix.shape[1]
        print(f"{len(matrix):,} distinct vectors ({len(real):,} real, from {args.index.name}; "
              f"{model}) in {args.segments} segments, {matrix.nbytes / 2**20:,.0f} MiB")  # fmt: skip
        del matrix
        results: dict[str, list[dict]] = {"mapped": [], "streamed": []}
        for _ in range(args.repeats):  # alternate, so both see the same machine
            for way, runs in results.items():
                runs.append(cold(dirs, dim, query, way == "streamed"))
        if results["mapped"][0]["top"] != results["streamed"][0]["top"]:
            raise SystemExit("streamed and mapped scans disagree on the top 10")
        summary = {}
        for way, runs in results.items():
            wall = statistics.median(run["wall_s"] for run in runs)
            rss = statistics.median(run["rss_mib"] for run in runs)
            summary[way] = {"cold_wall_s": wall, "cold_rss_mib": rss}
            print(f"cold process, {way:8}: {wall:.2f} s, peak RSS {rss:,.0f} MiB")
        parts = [vectors.SegmentVectors.load(Path(d), dim=dim) for d in dirs]
        buffer = np.empty((vectors.STREAM_BLOCK_ROWS, dim), np.float32)
        for way in results:
            times = []
            for _ in range(args.queries):
                started = time.perf_counter()
                for part in parts:
                    if way == "streamed":
                        part.streamed_scores(query, buffer)
                    else:
                        part.scores(query)
                times.append((time.perf_counter() - started) * 1000)
            summary[way]["warm_p50_ms"] = statistics.median(times)
            print(f"warm query, {way:8}: p50 {statistics.median(times):.1f} ms")
        m, s = summary["mapped"], summary["streamed"]
        print(f"streamed / mapped: cold wall {s['cold_wall_s'] / m['cold_wall_s']:.2f}x, "
              f"cold RSS {s['cold_rss_mib'] / m['cold_rss_mib']:.2f}x, "
              f"warm p50 {s['warm_p50_ms'] / m['warm_p50_ms']:.2f}x")  # fmt: skip
        print(json.dumps({"vectors": args.vectors, "segments": args.segments, **summary}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
