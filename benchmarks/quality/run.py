"""Retrieval quality benchmark: CodeRAG's bm25/vector/hybrid search against windowed baselines.

    .venv/bin/python -m benchmarks.quality.run [--latency] [--work DIR] [--show-misses]

Fetches the pinned corpora (``corpora.py``), checks the ground truth (``ground_truth.py``),
indexes each corpus with the real pipeline into one data directory (vectors are cached by
content hash, so re-runs after ranking-only changes embed nothing), builds the 60/20 line-window
baselines in memory (``baseline.py``) and prints Recall@1/5/10 and MRR@10 at file level and at
definition level (a result counts when its path matches and its lines overlap the answer's),
plus the median span of the returned results in lines. ``--latency`` also indexes enough copies
of the corpora to reach about 20k chunks and reports warm hybrid query latency.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from coderag_assets.query import QueryService
from coderag_assets.runs import get_instance, run_index
from coderag_assets.search import DEFAULT_RANKING, MODES, RankingConfig
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore

from .baseline import WindowIndex
from .corpora import ALL_CORPORA, CORPORA, fetch
from .ground_truth import ALL_QUERIES, Answer, resolve_all
from .heldout import HELDOUT_QUERIES
from .queries import QUERIES, Query

CUTOFFS = (1, 5, 10)
RESULT_LIMIT = 10
LATENCY_TARGET_CHUNKS = 20_000
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_work_dir() -> Path:
    return REPO_ROOT / "benchmarks" / ".cache" / "quality"


@dataclass(frozen=True, slots=True)
class Hit:
    path: str
    start_line: int
    end_line: int


@dataclass(slots=True)
class Scores:
    """Per-system accumulators over all queries."""

    file_ranks: list[int | None] = field(default_factory=list)
    def_ranks: list[int | None] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)

    def __add__(self, other: Scores) -> Scores:
        return Scores(
            self.file_ranks + other.file_ranks,
            self.def_ranks + other.def_ranks,
            self.spans + other.spans,
        )

    def add(self, hits: list[Hit], answers: list[Answer]) -> None:
        self.file_ranks.append(_first_rank(hits, answers, definition=False))
        self.def_ranks.append(_first_rank(hits, answers, definition=True))
        self.spans.extend(hit.end_line - hit.start_line + 1 for hit in hits)

    def summary(self) -> dict[str, float]:
        row: dict[str, float] = {}
        for level, ranks in (("file", self.file_ranks), ("def", self.def_ranks)):
            for cutoff in CUTOFFS:
                row[f"{level}_R@{cutoff}"] = _mean([r is not None and r <= cutoff for r in ranks])
            row[f"{level}_MRR@10"] = _mean(
                [1 / r if r is not None and r <= 10 else 0.0 for r in ranks]
            )
        row["median_span"] = statistics.median(self.spans) if self.spans else 0.0
        return row


def _mean(values: list[bool] | list[float]) -> float:
    return sum(float(v) for v in values) / len(values) if values else 0.0


def _first_rank(hits: list[Hit], answers: list[Answer], *, definition: bool) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        for answer in answers:
            if hit.path != answer.path:
                continue
            if not definition or (
                hit.start_line <= answer.end_line and answer.start_line <= hit.end_line
            ):
                return rank
    return None


def index_corpus(settings, instance, root: Path) -> QueryService:  # type: ignore[no-untyped-def]
    corpus_settings = settings.with_root(root)
    started = time.perf_counter()
    summary = run_index(corpus_settings, instance=instance)
    if not summary.success:
        raise SystemExit(f"indexing {root} failed: {summary.error}")
    print(
        f"indexed {root.name}: {summary.chunks} chunks, embedded {summary.embedded}, "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return QueryService(IndexStore.for_root(settings.data_dir, root), corpus_settings)


def indexed_files(service: QueryService, root: Path) -> dict[str, str]:
    paths = [
        row[0]
        for row in service.reader.con.execute(
            "SELECT path FROM files WHERE skip_reason IS NULL ORDER BY path"
        ).fetchall()
    ]
    return {path: (root / path).read_text(encoding="utf-8") for path in paths}


def ablation_steps() -> list[tuple[str, RankingConfig]]:
    """Cumulative ranking steps, each measured on top of the previous one; the last is the
    shipped default (``DEFAULT_RANKING``). The first row is plain RRF (k 60, equal weights) over
    the AST chunks with unstemmed BM25 and no boosts."""
    default = DEFAULT_RANKING
    config = RankingConfig(
        rrf_k=60, vector_weight=1.0, stem=False, bm25_name_tf=0.0, symbol_boost=0.0,
        path_boost=0.0, glue_factor=1.0, test_factor=1.0,
        non_code_factor=1.0, collapse=False,
    )  # fmt: skip
    steps = [("plain RRF over AST chunks", config)]
    for label, changes in (
        ("+ stemming and query stopwords in BM25", {"stem": default.stem}),
        ("+ definition name weighted ×3 in BM25", {"bm25_name_tf": default.bm25_name_tf}),
        ("+ definition-name word boost", {"symbol_boost": default.symbol_boost}),
        ("+ file-name word boost", {"path_boost": default.path_boost}),
        ("+ module glue demoted", {"glue_factor": default.glue_factor}),
        ("+ test files demoted", {"test_factor": default.test_factor}),
        ("+ docs and config demoted", {"non_code_factor": default.non_code_factor}),
        ("+ collapse chunks of one definition", {"collapse": default.collapse}),
    ):
        config = replace(config, **changes)  # type: ignore[arg-type]
        steps.append((label, config))
    steps.append(("+ tuned fusion (RRF k, vector weight) = default", default))
    return steps


SPLITS = ("dev", "held-out")  # queries.py (weights tuned on them), heldout.py (never tuned on)
STYLES = ("plain", "identifier")  # behaviour descriptions; partial or exact identifiers
GROUPS = tuple((split, style) for split in SPLITS for style in STYLES)
# mode → subset ("dev", "held-out", "plain", "identifier", "all") → metrics
Rows = dict[str, dict[str, dict[str, float]]]
HELDOUT_SET = frozenset(HELDOUT_QUERIES)


def split_of(query: Query) -> str:
    return "held-out" if query in HELDOUT_SET else "dev"


def group_of(query: Query) -> tuple[str, str]:
    return split_of(query), "plain" if query.style == "plain" else "identifier"


def _rows(per_group: dict[tuple[str, str], dict[str, Scores]]) -> Rows:
    """Metrics per mode for each split, each query style, and all queries."""
    subsets = {
        **{split: [g for g in GROUPS if g[0] == split] for split in SPLITS},
        **{style: [g for g in GROUPS if g[1] == style] for style in STYLES},
        "all": list(GROUPS),
    }
    return {
        mode: {
            name: sum((per_group[g][mode] for g in groups), Scores()).summary()
            for name, groups in subsets.items()
        }
        for mode in MODES
    }


def evaluate(
    work_dir: Path, show_misses: bool, configs: list[tuple[str, RankingConfig]]
) -> tuple[Rows, dict[str, Rows], dict]:
    """Baseline rows, CodeRAG rows per ranking config (name → mode → subset → metrics), and run
    info."""
    sources_dir = work_dir / "sources"
    ground_truth = resolve_all(sources_dir)
    settings = load_settings(data_dir=work_dir / "data", workers=2)
    instance = get_instance(settings)

    def fresh() -> dict[tuple[str, str], dict[str, Scores]]:
        return {group: {mode: Scores() for mode in MODES} for group in GROUPS}

    baseline_scores = fresh()
    config_scores = {name: fresh() for name, _ in configs}
    info: dict[str, object] = {
        "queries": {"dev": len(QUERIES), "held-out": len(HELDOUT_QUERIES)},
        "corpora": {},
    }
    for corpus in ALL_CORPORA:
        root = fetch(corpus, sources_dir)
        service = index_corpus(settings, instance, root)
        embedder = service.embedder()
        windows = WindowIndex(indexed_files(service, root), embedder, work_dir / "baseline")
        info["corpora"][corpus.spec] = {  # type: ignore[index]
            "chunks": service.reader.size,
            "windows": len(windows.windows),
        }
        queries = [q for q in ALL_QUERIES if q.corpus == corpus.name]
        vectors = {q: embedder.embed_query(q.text) for q in queries}
        for query in queries:
            baseline = windows.rankings(query.text, vectors[query], RESULT_LIMIT)
            for mode in MODES:
                window_hits = [
                    Hit(w.path, w.start_line, w.end_line)
                    for w in (windows.windows[row] for row in baseline[mode])
                ]
                baseline_scores[group_of(query)][mode].add(window_hits, ground_truth[query])
        for name, config in configs:
            service.reader.set_ranking(config)
            for query in queries:
                for mode in MODES:
                    results = service.reader.search(
                        query.text, mode=mode, limit=RESULT_LIMIT, query_vector=vectors[query]
                    )
                    hits = [Hit(r.path, r.start_line, r.end_line) for r in results]
                    config_scores[name][group_of(query)][mode].add(hits, ground_truth[query])
                    if show_misses and mode == "hybrid" and name == configs[-1][0]:
                        _show_miss(query, ground_truth[query], results)
        service.close()
    config_rows = {name: _rows(per_split) for name, per_split in config_scores.items()}
    return _rows(baseline_scores), config_rows, info


def _show_miss(query: Query, answers: list[Answer], results) -> None:  # type: ignore[no-untyped-def]
    rank = _first_rank(
        [Hit(r.path, r.start_line, r.end_line) for r in results], answers, definition=True
    )
    if rank == 1:
        return
    want = ", ".join(f"{a.path}:{a.start_line}-{a.end_line} {a.symbol}" for a in answers)
    got = "; ".join(f"{r.path}:{r.start_line}-{r.end_line} {r.symbol}" for r in results[:3])
    print(
        f"MISS rank={rank} [{query.corpus}, {split_of(query)}] {query.text!r}\n   want {want}\n   got  {got}",
        file=sys.stderr,
    )


def measure_latency(work_dir: Path) -> dict[str, float]:
    """Warm hybrid latency on an index of copies of the corpora grown to about 20k chunks."""
    sources_dir = work_dir / "sources"
    settings = load_settings(data_dir=work_dir / "data", workers=2)
    instance = get_instance(settings)
    per_copy = 0
    for corpus in CORPORA:
        root = fetch(corpus, sources_dir)
        service = QueryService(
            IndexStore.for_root(settings.data_dir, root), settings.with_root(root)
        )
        per_copy += service.reader.size
        service.close()
    copies = max(1, math.ceil(LATENCY_TARGET_CHUNKS / per_copy))
    latency_root = work_dir / "latency-root"
    for copy in range(copies):
        for corpus in CORPORA:
            destination = latency_root / f"copy{copy}" / corpus.name
            if not destination.exists():
                shutil.copytree(fetch(corpus, sources_dir), destination)
    service = index_corpus(settings, instance, latency_root)
    queries = [q.text for q in QUERIES]
    for text in queries[:5]:
        service.search(text, mode="hybrid", limit=RESULT_LIMIT)  # warm up
    end_to_end, search_only = [], []
    embedder = service.embedder()
    for text in queries:
        started = time.perf_counter()
        service.search(text, mode="hybrid", limit=RESULT_LIMIT)
        end_to_end.append((time.perf_counter() - started) * 1000)
        query_vector = embedder.embed_query(text)
        started = time.perf_counter()
        service.reader.search(text, mode="hybrid", limit=RESULT_LIMIT, query_vector=query_vector)
        search_only.append((time.perf_counter() - started) * 1000)
    size = service.reader.size
    service.close()
    return {
        "chunks": size,
        "p50_ms": statistics.median(end_to_end),
        "p95_ms": sorted(end_to_end)[int(0.95 * (len(end_to_end) - 1))],
        "p50_search_only_ms": statistics.median(search_only),
    }


COLUMNS = (
    "file_R@1", "file_R@5", "file_R@10", "file_MRR@10",
    "def_R@1", "def_R@5", "def_R@10", "def_MRR@10", "median_span",
)  # fmt: skip


def markdown_table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    lines = [
        "| system | mode | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for label, mode, row in rows:
        cells = [f"{row[c]:.0f}" if c == "median_span" else f"{row[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(config_rows: dict[str, Rows], base: Rows) -> str:
    """Hybrid mode, each step on top of the previous one: all queries, then the held-out ones."""
    lines = [
        (
            "| hybrid ranking step | def MRR@10 | Δ vs previous | def R@1 | def R@5 | file MRR@10 "
            "| median span | dev def MRR@10 | held-out def MRR@10 | held-out def R@1 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cells(rows: dict[str, dict[str, float]]) -> str:
        row, held_out = rows["all"], rows["held-out"]
        return (
            f"{row['def_R@1']:.3f} | {row['def_R@5']:.3f} | {row['file_MRR@10']:.3f} | "
            f"{row['median_span']:.0f} | {rows['dev']['def_MRR@10']:.3f} | "
            f"{held_out['def_MRR@10']:.3f} | {held_out['def_R@1']:.3f}"
        )

    hybrid = base["hybrid"]
    lines.append(
        f"| 60/20 windows, RRF (baseline) | {hybrid['all']['def_MRR@10']:.3f} | | {cells(hybrid)} |"
    )
    previous = None
    for name, rows in config_rows.items():
        row = rows["hybrid"]["all"]
        delta = "" if previous is None else f"{row['def_MRR@10'] - previous:+.3f}"
        lines.append(f"| {name} | {row['def_MRR@10']:.3f} | {delta} | {cells(rows['hybrid'])} |")
        previous = row["def_MRR@10"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=default_work_dir())
    parser.add_argument("--latency", action="store_true", help="also measure 20k-chunk latency")
    parser.add_argument("--ablation", action="store_true", help="measure each ranking step")
    parser.add_argument("--show-misses", action="store_true", help="hybrid queries not at rank 1")
    args = parser.parse_args(argv)
    configs = ablation_steps() if args.ablation else [("default", DEFAULT_RANKING)]
    baseline_rows, config_rows, info = evaluate(args.work, args.show_misses, configs)
    final = config_rows[configs[-1][0]]
    print(f"All {len(ALL_QUERIES)} queries ({len(QUERIES)} dev + {len(HELDOUT_QUERIES)} held-out):")
    table_rows = [("60/20 windows", mode, baseline_rows[mode]["all"]) for mode in MODES]
    table_rows += [("CodeRAG", mode, final[mode]["all"]) for mode in MODES]
    print(markdown_table(table_rows))
    print(
        "\nHybrid mode by query split (dev: the weights were chosen on them; held-out: never) "
        "and by query style:"
    )
    split_rows = [
        (system, f"hybrid, {subset}", rows["hybrid"][subset])
        for system, rows in (("60/20 windows", baseline_rows), ("CodeRAG", final))
        for subset in (*SPLITS, *STYLES, "all")
    ]
    print(markdown_table(split_rows))
    if args.ablation:
        print()
        print(ablation_table(config_rows, baseline_rows))
    for split in (*SPLITS, "all"):
        hybrid, base = final["hybrid"][split], baseline_rows["hybrid"][split]
        print(
            f"{split}: hybrid def MRR@10 {hybrid['def_MRR@10']:.3f} vs baseline "
            f"{base['def_MRR@10']:.3f} ({hybrid['def_MRR@10'] - base['def_MRR@10']:+.3f}); "
            f"def R@1 {hybrid['def_R@1']:.3f}; median span {hybrid['median_span']:.0f} lines"
        )
    if args.latency:
        latency = measure_latency(args.work)
        info["latency"] = latency
        print(
            f"warm hybrid latency on {latency['chunks']} chunks: p50 {latency['p50_ms']:.1f} ms "
            f"(p95 {latency['p95_ms']:.1f} ms; search without query embedding p50 "
            f"{latency['p50_search_only_ms']:.1f} ms)"
        )
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"baseline": baseline_rows, "coderag": config_rows, **info}
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
