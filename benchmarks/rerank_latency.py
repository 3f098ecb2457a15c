"""What the cross-encoder reranker costs a search: cold `coderag search` and warm in-process.

Searches an index the quality benchmark already built (``benchmarks.quality.run``; by default
its marshmallow corpus, ~2k chunks, and its 20k-chunk latency index when present) with the
benchmark's own queries, in hybrid mode, without and with ``--rerank``, alternating the two so
that load drifts hit both:

1. cold: a fresh `coderag search --json` process per query (``--repeats`` each), wall and peak
   RSS of the process, median;
2. warm: one `QueryService` answering every query of the corpus, p50/p95 per search.

The reranker re-scores ``RankingConfig.rerank_depth`` results per query; its converted model is
prepared once before timing (a first `--rerank` search on a new data directory converts it, as
the first search converts the embedder).

    .venv/bin/python benchmarks/rerank_latency.py [--corpus marshmallow] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scale import CODERAG, measured

from benchmarks.quality.corpora import ALL_CORPORA, fetch
from benchmarks.quality.ground_truth import ALL_QUERIES
from benchmarks.quality.run import default_work_dir


def cold(data: Path, root: Path, queries: list[str], rerank: bool) -> tuple[float, float]:
    walls, peaks = [], []
    for query in queries:
        command = [*CODERAG, "--data-dir", str(data), "search", query, "--root", str(root),
                   "--json", "--limit", "10", "--rerank" if rerank else "--no-rerank"]  # fmt: skip
        wall, rss, _, stdout = measured(command)
        if not json.loads(stdout):
            raise RuntimeError(f"no results for {query!r}")
        walls.append(wall)
        peaks.append(rss)
    return statistics.median(walls), statistics.median(peaks)


def warm(data: Path, root: Path, queries: list[str]) -> dict[str, dict[str, float]]:
    from coderag_assets.query import QueryService
    from coderag_assets.settings import load_settings
    from coderag_assets.store import IndexStore

    settings = load_settings(data_dir=data).with_root(root)
    service = QueryService(IndexStore.for_root(data, root), settings)
    timings: dict[bool, list[float]] = {False: [], True: []}
    try:
        for rerank in (False, True):  # warm-up: load both models
            service.search(queries[0], rerank=rerank)
        for query in queries:
            for rerank in (False, True):
                started = time.perf_counter()
                service.search(query, rerank=rerank)
                timings[rerank].append(1000 * (time.perf_counter() - started))
        chunks = service.reader.size
    finally:
        service.close()
    result = {}
    for rerank, values in timings.items():
        ordered = sorted(values)
        result["rerank" if rerank else "plain"] = {
            "p50_ms": statistics.median(ordered),
            "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
            "chunks": chunks,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=default_work_dir())
    parser.add_argument("--corpus", default="marshmallow")
    parser.add_argument("--repeats", type=int, default=5, help="cold searches per variant")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()
    data = args.work / "data"
    corpus = next((c for c in ALL_CORPORA if c.name == args.corpus), None)
    if corpus is None:
        raise SystemExit(f"unknown corpus {args.corpus!r}")
    root = fetch(corpus, args.work / "sources")
    queries = [q.text for q in ALL_QUERIES if q.corpus == corpus.name]
    if not (data / "indexes").exists():
        raise SystemExit(f"{data} holds no index; run `python -m benchmarks.quality.run` first")
    print(f"corpus {corpus.spec}: {len(queries)} queries", flush=True)
    cold(data, root, queries[:1], rerank=True)  # converts the reranker once, untimed

    results: dict[str, object] = {"corpus": corpus.spec}
    plain_runs, rerank_runs = [], []
    for index in range(args.repeats):
        query = queries[index % len(queries)]
        plain_runs.append(cold(data, root, [query], rerank=False))
        rerank_runs.append(cold(data, root, [query], rerank=True))
    for name, runs in (("plain", plain_runs), ("rerank", rerank_runs)):
        results[f"cold_{name}_s"] = statistics.median(w for w, _ in runs)
        results[f"cold_{name}_rss_mib"] = statistics.median(r for _, r in runs)
    results["warm"] = warm(data, root, queries)
    latency_root = args.work / "latency-root"
    if latency_root.is_dir():
        results["warm_latency_index"] = warm(data, latency_root, queries)

    cold_delta = 1000 * (results["cold_rerank_s"] - results["cold_plain_s"])  # type: ignore[operator]
    print(
        f"cold `coderag search` (median of {args.repeats}): plain {results['cold_plain_s']:.2f} s "
        f"/ {results['cold_plain_rss_mib']:.0f} MiB, --rerank {results['cold_rerank_s']:.2f} s / "
        f"{results['cold_rerank_rss_mib']:.0f} MiB: {cold_delta:+.0f} ms (budget +300 ms)"
    )
    for key in ("warm", "warm_latency_index"):
        if key in results:
            numbers = results[key]  # type: ignore[index]
            plain, rerank = numbers["plain"], numbers["rerank"]
            print(
                f"{key} ({plain['chunks']} chunks): plain p50 {plain['p50_ms']:.1f} ms "
                f"(p95 {plain['p95_ms']:.1f}), rerank p50 {rerank['p50_ms']:.1f} ms "
                f"(p95 {rerank['p95_ms']:.1f}); ratio {rerank['p50_ms'] / plain['p50_ms']:.1f}× "
                "(budget: rerank p50 ≤ 100 ms)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
