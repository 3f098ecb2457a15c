"""In-process warm hybrid search latency on one existing index, for an A/B of two code trees.

    cd /tmp && PYTHONPATH=TREE .venv/bin/python TREE/benchmarks/warm_search_ab.py \
        --data DATA_DIR --root INDEXED_ROOT [--rounds 5]

Opens the index of INDEXED_ROOT in DATA_DIR with the `coderag_assets` first on PYTHONPATH (run it
once per tree, alternating, on the same index — e.g. the K=135 index that `scale.py` leaves),
embeds the `scale.py` warm queries once, warms up, then times `IndexReader.search` in hybrid mode
(fusion and ranking included, query embedding excluded) and prints p50/p95 and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import WARM_QUERIES

import coderag_assets
from coderag_assets.query import QueryService
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    settings = load_settings(data_dir=args.data).with_root(args.root)
    service = QueryService(IndexStore.for_root(args.data, args.root), settings)
    embedder = service.embedder()
    queries = [(text, embedder.embed_query(text)) for text in WARM_QUERIES]
    for text, vector in queries[:5]:
        service.reader.search(text, mode="hybrid", limit=10, query_vector=vector)
    times_ms: list[float] = []
    for _ in range(args.rounds):
        for text, vector in queries:
            started = time.perf_counter()
            service.reader.search(text, mode="hybrid", limit=10, query_vector=vector)
            times_ms.append((time.perf_counter() - started) * 1000)
    times_ms.sort()
    print(
        f"{coderag_assets.__file__}: chunks {service.reader.size} n {len(times_ms)} "
        f"p50 {statistics.median(times_ms):.1f} ms p95 {times_ms[int(0.95 * len(times_ms))]:.1f} ms "
        f"load {os.getloadavg()[0]:.1f}"
    )
    service.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
