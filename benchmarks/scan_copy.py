"""The int8 scan copy against the exact vector scan, on a real index: same results? how fast?
how much of the vector files stays resident?

Opens one index twice in one process: a long-lived reader that scans each segment's int8
copy and rescores the candidates exactly (the default), and one with CODERAG_EXACT_VECTORS=1
(the float32 scan). For `--queries` real queries (the warm-server queries of
`benchmarks/scale.py` plus definition names of the index) it embeds the query once and
compares, per mode (vector, hybrid), the top `--limit` results (path, lines) and their
scores; then it times the vector scoring step of each reader (CPU ms per query, median) and
reads from /proc/self/smaps how much of each vector file the process holds.

    PYTHONPATH=<tree> .venv/bin/python benchmarks/scan_copy.py --data-dir D --root R

Run from a neutral directory (`python -m` would import the working directory's code). The
index must have been built by code that writes scan copies.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from memory import smaps_by_kind, symbol_names
from scale import WARM_QUERIES

COPY_DIR = re.compile(r"^copy_\d+/")


def result_key(result) -> tuple[str, int, int, float]:
    """A result as compared: in a K-copy tree (`benchmarks/scale.py`) every chunk has K
    identical copies that tie, and which copy wins a tie is arbitrary (the float32 scan's
    last bit depends on where a row lies), so the copy directory is left out."""
    return (
        COPY_DIR.sub("", result.path),
        result.start_line,
        result.end_line,
        round(result.score, 4),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from coderag_assets.query import QueryService
    from coderag_assets.search import IndexReader
    from coderag_assets.settings import load_settings
    from coderag_assets.store import IndexStore

    data_dir, root = args.data_dir.resolve(), args.root.resolve()
    store = IndexStore.for_root(data_dir, root)
    settings = load_settings(data_dir=data_dir).with_root(root)
    service = QueryService(store, settings)
    scanned = service.reader
    if not any(segment.vectors.approximate for segment in scanned.segments):
        raise SystemExit("this index has no int8 scan copies (built before them?)")
    os.environ["CODERAG_EXACT_VECTORS"] = "1"
    exact = IndexReader(store.index_path)
    del os.environ["CODERAG_EXACT_VECTORS"]
    exact.set_ranking(scanned.ranking)
    embedder = service.embedder()
    names = symbol_names(data_dir, root, max(0, args.queries - len(WARM_QUERIES)))
    queries = (WARM_QUERIES + names)[: args.queries]
    print(f"{scanned.size} chunks, {len(scanned.segments)} segments, {len(queries)} queries")

    same = {"vector": 0, "hybrid": 0}
    same_scores = {"vector": 0, "hybrid": 0}
    worst = {"vector": 0.0, "hybrid": 0.0}
    differing: list[dict[str, object]] = []
    vectors_of = {text: embedder.embed_query(text) for text in queries}
    for text in queries:
        for mode in ("vector", "hybrid"):
            left = scanned.search(text, mode=mode, query_vector=vectors_of[text], limit=args.limit)
            right = exact.search(text, mode=mode, query_vector=vectors_of[text], limit=args.limit)
            keys = [result_key(r)[:3] for r in left]
            if keys == [result_key(r)[:3] for r in right]:
                same[mode] += 1
                gap = max((abs(a.score - b.score) for a, b in zip(left, right)), default=0.0)
                worst[mode] = max(worst[mode], gap)
                same_scores[mode] += gap <= 1e-6
            else:
                differing.append({"query": text, "mode": mode})

    def cpu_ms(reader: IndexReader, top: int | None) -> float:
        times = []
        for text in queries:
            started = time.process_time()
            reader.vector_scores(vectors_of[text], None, exact_top=top)
            times.append((time.process_time() - started) * 1000)
        return statistics.median(times)

    depth = 100  # search.FUSION_DEPTH
    timing = {
        "exact_scan_cpu_ms": round(cpu_ms(exact, None), 2),
        "int8_scan_cpu_ms": round(cpu_ms(scanned, depth), 2),
        "exact_scan_cpu_ms_again": round(cpu_ms(exact, None), 2),
        "int8_scan_cpu_ms_again": round(cpu_ms(scanned, depth), 2),
    }
    resident = {
        kind: round(kib / 1024, 1)
        for kind, kib in smaps_by_kind(os.getpid()).items()
        if kind.startswith("index:vectors")
    }
    row = {
        "chunks": scanned.size,
        "queries": len(queries),
        "identical_top": same,
        "identical_top_and_scores_1e-6": same_scores,
        "max_score_gap_when_identical": worst,
        "differing": differing[:20],
        **timing,
        "resident_mib_both_readers": resident,
    }
    print(json.dumps(row, indent=1))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))
    service.close()
    exact.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
