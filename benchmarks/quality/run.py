"""Retrieval quality benchmark: CodeRAG's bm25/vector/hybrid search against windowed baselines.

    .venv/bin/python -m benchmarks.quality.run [--latency] [--work DIR] [--show-misses]
    .venv/bin/python -m benchmarks.quality.run --dev-only --set KEY=VALUE --results dev.json

Fetches the pinned corpora (``corpora.py``), checks the ground truth (``ground_truth.py``),
indexes each corpus with the real pipeline into one data directory (vectors are cached by
content hash, so re-runs after ranking-only changes embed nothing), builds the 60/20 line-window
baselines in memory (``baseline.py``) and prints Recall@1/5/10 and MRR@10 at file level and at
definition level (a result counts when its path matches and its lines overlap the answer's),
file-level NDCG@10 (binary relevance, each file counted the first time it appears), the median
span of the returned results in lines and the mean number of distinct files in the top 10
(result diversity), for all queries and by split, query style and language. ``--latency`` also
indexes enough copies of the original dev corpora to reach about 20k chunks and reports warm
hybrid query latency. ``--rerank`` re-scores the top results of every search with the shipped
cross-encoder (``coderag_assets.rerank``); ``--rerank-sweep`` measures a grid of the reranking
weights (choose on the dev rows only). ``--dev-only`` searches the dev queries only and writes
their per-query ranks, so two weight settings can be compared on dev with ``compare.py`` while
the held-out queries stay unseen.
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from coderag_assets.query import QueryService
from coderag_assets.ranking import PREVIOUS_RANKING
from coderag_assets.runs import get_instance, run_index
from coderag_assets.search import DEFAULT_RANKING, MODES, RankingConfig, Rescorer
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore

from .baseline import WindowIndex
from .corpora import ALL_CORPORA, HELDOUT_CORPORA, LATENCY_CORPORA, fetch
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


@dataclass(frozen=True, slots=True)
class QueryScore:
    """How one system's top results did on one query."""

    file_rank: int | None  # rank of the first result in an answer's file
    def_rank: int | None  # rank of the first result overlapping an answer's lines
    spans: tuple[int, ...]  # line span of every returned result
    distinct_files: int  # different files among the returned results
    file_ndcg: float  # NDCG@10 over files, binary relevance, each file counted once


def score(hits: list[Hit], answers: list[Answer]) -> QueryScore:
    return QueryScore(
        file_rank=_first_rank(hits, answers, definition=False),
        def_rank=_first_rank(hits, answers, definition=True),
        spans=tuple(hit.end_line - hit.start_line + 1 for hit in hits),
        distinct_files=len({hit.path for hit in hits}),
        file_ndcg=file_ndcg(hits, answers),
    )


def file_ndcg(hits: list[Hit], answers: list[Answer], cutoff: int = 10) -> float:
    """NDCG@cutoff at file level: a result is relevant when its file holds an answer, and each
    file counts only the first time it appears (later chunks of it gain nothing). The ideal
    ranking puts every answer file first."""
    relevant = {answer.path for answer in answers}
    seen: set[str] = set()
    gain = 0.0
    for rank, hit in enumerate(hits[:cutoff], start=1):
        if hit.path in relevant and hit.path not in seen:
            gain += 1 / math.log2(rank + 1)
        seen.add(hit.path)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), cutoff) + 1))
    return gain / ideal


def summarize(scores: list[QueryScore]) -> dict[str, float]:
    """Mean metrics over ``scores`` (one per query)."""
    row: dict[str, float] = {}
    for level in ("file", "def"):
        ranks = [getattr(s, f"{level}_rank") for s in scores]
        for cutoff in CUTOFFS:
            row[f"{level}_R@{cutoff}"] = _mean([r is not None and r <= cutoff for r in ranks])
        row[f"{level}_MRR@10"] = _mean([1 / r if r is not None and r <= 10 else 0.0 for r in ranks])
    spans = [span for s in scores for span in s.spans]
    row["median_span"] = statistics.median(spans) if spans else 0.0
    row["file_nDCG@10"] = _mean([s.file_ndcg for s in scores])
    row["distinct_files@10"] = _mean([float(s.distinct_files) for s in scores])
    row["queries"] = float(len(scores))
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
    the AST chunks with unstemmed BM25 and no boosts; "previous default" is the ranking before
    issue 19 (``PREVIOUS_RANKING``)."""
    default, previous = DEFAULT_RANKING, PREVIOUS_RANKING
    config = replace(
        previous, rrf_k=60, vector_weight=1.0, stem=False, bm25_name_tf=0.0, symbol_boost=0.0,
        path_boost=0.0, glue_factor=1.0, architecture_glue_factor=1.0, hub_glue_factor=1.0,
        test_factor=1.0, non_code_factor=1.0, collapse=False, file_repeat_factor=1.0,
    )  # fmt: skip
    steps = [("plain RRF over AST chunks", config)]
    for label, changes in (
        ("+ stemming and query stopwords in BM25", {"stem": previous.stem}),
        ("+ definition name weighted ×3 in BM25", {"bm25_name_tf": previous.bm25_name_tf}),
        ("+ definition-name word boost", {"symbol_boost": previous.symbol_boost}),
        ("+ file-name word boost", {"path_boost": previous.path_boost}),
        (
            "+ module glue demoted",
            {"glue_factor": previous.glue_factor, "hub_glue_factor": previous.hub_glue_factor,
             "architecture_glue_factor": previous.architecture_glue_factor},
        ),
        ("+ test files demoted", {"test_factor": previous.test_factor}),
        ("+ docs and config demoted", {"non_code_factor": previous.non_code_factor}),
        ("+ collapse chunks of one definition", {"collapse": previous.collapse}),
        (
            "+ tuned fusion (RRF k, vector weight)",
            {"rrf_k": previous.rrf_k, "vector_weight": previous.vector_weight},
        ),
        (
            "+ one file cannot fill the top 10 (×0.8 per repeat) = previous default",
            {"file_repeat_factor": previous.file_repeat_factor},
        ),
        ("+ noise paths demoted (examples/, compat/, benches/, .d.ts …)",
         {"noise_factor": default.noise_factor}),
        ("+ re-export hubs' glue not demoted", {"hub_glue_factor": default.hub_glue_factor}),
        (
            "+ identifier mode: exact definitions injected",
            {
                "identifier_vector_factor": default.identifier_vector_factor,
                "exact_definition_boost": default.exact_definition_boost,
                "exact_definition_stem_boost": default.exact_definition_stem_boost,
            },
        ),
    ):  # fmt: skip
        config = replace(config, **changes)  # type: ignore[arg-type]
        steps.append((label, config))
    steps.append(
        (
            "+ file pooling for architecture questions = issue 19 default",
            replace(
                config,
                pool_floor=default.pool_floor,
                architecture_pool_weight=default.architecture_pool_weight,
            ),
        )
    )
    second_pass = replace(
        default,
        architecture_glue_factor=previous.architecture_glue_factor,
        file_weight=previous.file_weight,
        spelled_identifiers=previous.spelled_identifiers,
    )
    steps.append(("+ name field ×5 in BM25, name-word boost 0.05 = second-pass default",
                  second_pass))  # fmt: skip
    third_pass = replace(second_pass, architecture_glue_factor=default.architecture_glue_factor)
    steps.append(("+ architecture questions keep module glue (×1.0)", third_pass))
    steps.append(("+ file-level evidence for other queries (0.15) = third-pass default",
                  replace(third_pass, file_weight=default.file_weight)))  # fmt: skip
    steps.append(("+ queries spelling a defined name in words are identifier queries = default",
                  default))  # fmt: skip
    return steps


def not_kept_steps() -> list[tuple[str, RankingConfig]]:
    """Steps measured on top of the default and not kept (their dev gain was inside the
    noise); printed below the default in the ablation table."""
    pooled = replace(DEFAULT_RANKING, pool_weight=0.3)
    return [
        ("(not kept) + file pooling for every query (0.3)", pooled),
        ("(not kept) + path prior 0.1 (prefix match on stem and directory)",
         replace(pooled, path_prior=0.1)),
    ]  # fmt: skip


SPLITS = ("dev", "held-out")  # queries.py (weights tuned on them), heldout.py (never tuned on)
# plain: behaviour descriptions; identifier: partial or exact names; architecture: where a
# concern lives in the codebase (answers are often whole files).
STYLES = ("plain", "identifier", "architecture")
LANGUAGES = ("python", "javascript", "typescript", "go", "rust")
# The corpora of the first benchmark version: their 108 non-architecture queries are reported as
# one more subset so that numbers stay comparable with results measured before Go, Rust and
# TypeScript were added.
V1_CORPORA = frozenset(
    {"semver", "express", "tenacity", "marshmallow", "commander", "itsdangerous"}
)
V1_SUBSET = "first 108"
HELDOUT_SET = frozenset(HELDOUT_QUERIES)
LANGUAGE_OF_CORPUS = {corpus.name: corpus.language for corpus in ALL_CORPORA}
# mode → subset ("all", a split, a style, a language, V1_SUBSET) → metrics
Rows = dict[str, dict[str, dict[str, float]]]
# mode → query → score
QueryScores = dict[str, dict[Query, QueryScore]]


def split_of(query: Query) -> str:
    return "held-out" if query in HELDOUT_SET else "dev"


def style_of(query: Query) -> str:
    if query.style in ("plain", "architecture"):
        return query.style
    return "identifier"


def subsets_of(query: Query) -> list[str]:
    """The report subsets ``query`` belongs to."""
    names = ["all", split_of(query), style_of(query), LANGUAGE_OF_CORPUS[query.corpus]]
    names.append(f"{split_of(query)} {style_of(query)}")
    if query.corpus in V1_CORPORA and query.style != "architecture":
        names.append(V1_SUBSET)
    return names


def _rows(scores: QueryScores) -> Rows:
    """Metrics per mode for all queries and each subset."""
    rows: Rows = {}
    for mode, per_query in scores.items():
        members: dict[str, list[QueryScore]] = {}
        for query, query_score in per_query.items():
            for name in subsets_of(query):
                members.setdefault(name, []).append(query_score)
        rows[mode] = {name: summarize(group) for name, group in members.items()}
    return rows


def evaluate(
    work_dir: Path,
    show_misses: bool,
    configs: list[tuple[str, RankingConfig]],
    model: str | None = None,
    query_adapter: np.ndarray | None = None,
    rescorer: Rescorer | None = None,
    reranked_configs: frozenset[str] = frozenset(),
    modes: tuple[str, ...] = MODES,
    final_name: str | None = None,
    dev_only: bool = False,
) -> tuple[Rows, dict[str, Rows], dict]:
    """Baseline rows, CodeRAG rows per ranking config (name → mode → subset → metrics), and run
    info. ``model`` overrides the configured embedding model; ``query_adapter`` is a matrix
    applied to every query vector (``training.adapter``), the chunk vectors staying as indexed;
    the configs named in ``reranked_configs`` search with ``rescorer``; ``dev_only`` searches
    the dev queries only (held-out stays unseen while tuning)."""
    final_name = final_name or configs[-1][0]  # whose per-query ranks are recorded
    sources_dir = work_dir / "sources"
    ground_truth = resolve_all(sources_dir)
    settings = load_settings(data_dir=work_dir / "data", workers=2, model=model)
    instance = get_instance(settings)

    def fresh() -> QueryScores:
        return {mode: {} for mode in modes}

    baseline_scores = fresh()
    config_scores = {name: fresh() for name, _ in configs}
    all_queries = [q for q in ALL_QUERIES if not dev_only or split_of(q) == "dev"]
    query_counts: dict[str, int] = {}
    for query in all_queries:
        for name in subsets_of(query):
            query_counts[name] = query_counts.get(name, 0) + 1
    info: dict[str, object] = {"queries": query_counts, "corpora": {}}
    for corpus in ALL_CORPORA:
        queries = [q for q in all_queries if q.corpus == corpus.name]
        if not queries:
            continue
        root = fetch(corpus, sources_dir)
        service = index_corpus(settings, instance, root)
        embedder = service.embedder()
        files = indexed_files(service, root)
        windows = WindowIndex(files, embedder, work_dir / "baseline")
        info["corpora"][corpus.spec] = {  # type: ignore[index]
            "files": len(files),
            "chunks": service.reader.size,
            "windows": len(windows.windows),
        }
        vectors = {q: embedder.embed_query(q.text) for q in queries}
        if query_adapter is not None:
            vectors = {q: _adapt(query_adapter, vector) for q, vector in vectors.items()}
        info["model_id"] = embedder.model_id
        for query in queries:
            baseline = windows.rankings(query.text, vectors[query], RESULT_LIMIT)
            for mode in modes:
                window_hits = [
                    Hit(w.path, w.start_line, w.end_line)
                    for w in (windows.windows[row] for row in baseline[mode])
                ]
                baseline_scores[mode][query] = score(window_hits, ground_truth[query])
        for name, config in configs:
            service.reader.set_ranking(config)
            for query in queries:
                for mode in modes:
                    results = service.reader.search(
                        query.text,
                        mode=mode,
                        limit=RESULT_LIMIT,
                        query_vector=vectors[query],
                        rescorer=rescorer if name in reranked_configs else None,
                    )
                    hits = [Hit(r.path, r.start_line, r.end_line) for r in results]
                    config_scores[name][mode][query] = score(hits, ground_truth[query])
                    if (
                        show_misses
                        and mode == "hybrid"
                        and name == final_name
                        and split_of(query) == "dev"  # held-out misses stay unseen
                    ):
                        _show_miss(query, ground_truth[query], results)
        service.close()
    config_rows = {name: _rows(per_query) for name, per_query in config_scores.items()}
    info["per_query"] = per_query_record(config_scores[final_name])
    info["per_query_baseline"] = per_query_record(baseline_scores)
    return _rows(baseline_scores), config_rows, info


class MemoRescorer:
    """A rescorer that scores each (query, candidates) list once: configurations that differ
    only in how reranker scores are fused reuse them."""

    def __init__(self, rescorer: Rescorer) -> None:
        self._rescorer = rescorer
        self._scores: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, query: str, texts) -> np.ndarray:  # type: ignore[no-untyped-def]
        key = (query, tuple(texts))
        if key not in self._scores:
            started = time.perf_counter()
            self._scores[key] = self._rescorer(query, texts)
            self.seconds += time.perf_counter() - started
            self.calls += 1
        return self._scores[key]


def rerank_sweep() -> list[tuple[str, RankingConfig]]:
    """No reranking, then reranking with a grid of depth × RRF k × reranker weight."""
    configs = [("no reranking", DEFAULT_RANKING)]
    for depth in (10, 20):
        for k in (2, 5, 15):
            for weight in (0.5, 1.0, 2.0, 4.0):
                name = f"rerank depth {depth} k {k} weight {weight}"
                configs.append(
                    (
                        name,
                        replace(
                            DEFAULT_RANKING, rerank_depth=depth, rerank_k=k, rerank_weight=weight
                        ),
                    )
                )
    return configs


def sweep_table(config_rows: dict[str, Rows]) -> str:
    """Hybrid mode per reranking config: dev first (choose there), then held-out and all."""
    lines = [
        (
            "| config | dev def MRR@10 | dev def R@1 | held-out def MRR@10 | held-out def R@1 "
            "| all def MRR@10 | identifier def MRR@10 | distinct files@10 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in config_rows.items():
        hybrid = rows["hybrid"]
        lines.append(
            f"| {name} | {hybrid['dev']['def_MRR@10']:.3f} | {hybrid['dev']['def_R@1']:.3f} | "
            f"{hybrid['held-out']['def_MRR@10']:.3f} | {hybrid['held-out']['def_R@1']:.3f} | "
            f"{hybrid['all']['def_MRR@10']:.3f} | {hybrid['identifier']['def_MRR@10']:.3f} | "
            f"{hybrid['all']['distinct_files@10']:.2f} |"
        )
    return "\n".join(lines)


def _config_value(config: RankingConfig, key: str, text: str) -> object:
    current = getattr(config, key)  # AttributeError names an unknown weight
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes", "on")
    return type(current)(text)


def parse_settings(config: RankingConfig, settings: list[str]) -> RankingConfig:
    """``config`` with ``key=value`` settings applied (`--set`)."""
    for setting in settings:
        key, _, text = setting.partition("=")
        config = replace(config, **{key: _config_value(config, key, text)})
    return config


def weight_sweep(base: RankingConfig, axes: list[str]) -> list[tuple[str, RankingConfig]]:
    """Every combination of the ``key=v1,v2,...`` axes on top of ``base`` (`--sweep`)."""
    configs: list[tuple[list[str], RankingConfig]] = [([], base)]
    for axis in axes:
        key, _, texts = axis.partition("=")
        configs = [
            ([*names, f"{key}={text}"], replace(config, **{key: _config_value(config, key, text)}))
            for names, config in configs
            for text in texts.split(",")
        ]
    return [(" ".join(names) or "base", config) for names, config in configs]


DEV_SWEEP_SUBSETS = ("dev", "dev plain", "dev identifier", "dev architecture")


def dev_sweep_table(config_rows: dict[str, Rows]) -> str:
    """Hybrid mode per config on the dev split only (the held-out rows are not printed: weights
    are chosen here)."""
    header = ["config"]
    for subset in DEV_SWEEP_SUBSETS:
        header += [f"{subset} file nDCG@10", f"{subset} def MRR@10", f"{subset} def R@1"]
    header.append("dev distinct files@10")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, rows in config_rows.items():
        hybrid = rows["hybrid"]
        cells = []
        for subset in DEV_SWEEP_SUBSETS:
            row = hybrid[subset]
            cells += [
                f"{row['file_nDCG@10']:.3f}",
                f"{row['def_MRR@10']:.3f}",
                f"{row['def_R@1']:.3f}",
            ]
        cells.append(f"{hybrid['dev']['distinct_files@10']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _adapt(adapter: np.ndarray, vector: np.ndarray) -> np.ndarray:
    mapped = adapter @ vector
    return (mapped / max(float(np.linalg.norm(mapped)), 1e-12)).astype(np.float32)


def per_query_record(scores: QueryScores) -> dict[str, dict[str, object]]:
    """Every query's scores per mode, keyed ``"corpus: text"``, for paired comparisons of runs
    (``compare.py``)."""
    record: dict[str, dict[str, object]] = {}
    for mode, per_query in scores.items():
        for query, query_score in per_query.items():
            entry = record.setdefault(
                f"{query.corpus}: {query.text}",
                {
                    "corpus": query.corpus,
                    "split": split_of(query),
                    "language": LANGUAGE_OF_CORPUS[query.corpus],
                    "style": style_of(query),
                },
            )
            entry[mode] = asdict(query_score)
    return record


def _show_miss(query: Query, answers: list[Answer], results) -> None:  # type: ignore[no-untyped-def]
    rank = _first_rank(
        [Hit(r.path, r.start_line, r.end_line) for r in results], answers, definition=True
    )
    if rank == 1:
        return
    want = ", ".join(
        f"{a.path}:{a.start_line}-{a.end_line} {a.symbol or '(file)'}" for a in answers
    )
    got = "; ".join(f"{r.path}:{r.start_line}-{r.end_line} {r.symbol}" for r in results[:5])
    print(
        f"MISS rank={rank} [{query.corpus}, {split_of(query)}, {query.style}] {query.text!r}\n"
        f"   want {want}\n   got  {got}",
        file=sys.stderr,
    )


def measure_latency(work_dir: Path) -> dict[str, float]:
    """Warm hybrid latency on an index of copies of the original dev corpora grown to about 20k
    chunks (``LATENCY_CORPORA``, so the index is the same as before more corpora were added)."""
    sources_dir = work_dir / "sources"
    settings = load_settings(data_dir=work_dir / "data", workers=2)
    instance = get_instance(settings)
    per_copy = 0
    for corpus in LATENCY_CORPORA:
        root = fetch(corpus, sources_dir)
        service = QueryService(
            IndexStore.for_root(settings.data_dir, root), settings.with_root(root)
        )
        per_copy += service.reader.size
        service.close()
    copies = max(1, math.ceil(LATENCY_TARGET_CHUNKS / per_copy))
    latency_root = work_dir / "latency-root"
    for copy in range(copies):
        for corpus in LATENCY_CORPORA:
            destination = latency_root / f"copy{copy}" / corpus.name
            if not destination.exists():
                shutil.copytree(fetch(corpus, sources_dir), destination)
    service = index_corpus(settings, instance, latency_root)
    latency_corpora = {corpus.name for corpus in LATENCY_CORPORA}
    queries = [q.text for q in QUERIES if q.corpus in latency_corpora and q.style != "architecture"]
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


# The first nine columns are those of the first benchmark version; new ones go at the end.
COLUMNS = (
    "file_R@1", "file_R@5", "file_R@10", "file_MRR@10",
    "def_R@1", "def_R@5", "def_R@10", "def_MRR@10", "median_span",
    "file_nDCG@10", "distinct_files@10",
)  # fmt: skip
DIVERSITY_SUBSETS = ("all", "plain", "identifier", "architecture")


def _cell(column: str, value: float) -> str:
    if column == "median_span":
        return f"{value:.0f}"
    if column == "distinct_files@10":
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(rows: list[tuple[str, str, dict[str, float]]], second: str = "mode") -> str:
    lines = [
        f"| system | {second} | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for label, subset, row in rows:
        cells = [_cell(c, row[c]) for c in COLUMNS]
        lines.append(f"| {label} | {subset} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def corpus_table(info: dict) -> str:  # type: ignore[type-arg]
    """What each corpus contributed: files indexed, chunks, baseline windows, queries."""
    heldout_names = {corpus.name for corpus in HELDOUT_CORPORA}
    lines = [
        "| corpus | split | language | files indexed | chunks | 60/20 windows | queries |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for corpus in ALL_CORPORA:
        sizes = info["corpora"][corpus.spec]
        queries = sum(1 for q in ALL_QUERIES if q.corpus == corpus.name)
        split = "held-out" if corpus.name in heldout_names else "dev"
        lines.append(
            f"| `{corpus.spec}` | {split} | {corpus.language} | {sizes['files']} | "
            f"{sizes['chunks']} | {sizes['windows']} | {queries} |"
        )
    return "\n".join(lines)


def diversity_table(systems: list[tuple[str, Rows]]) -> str:
    """Mean number of distinct files among the top 10 results, per system and mode."""
    lines = [
        "| system | mode | " + " | ".join(DIVERSITY_SUBSETS) + " |",
        "|---|---|" + "---:|" * len(DIVERSITY_SUBSETS),
    ]
    for label, rows in systems:
        for mode in MODES:
            cells = [
                f"{rows[mode][subset]['distinct_files@10']:.2f}" if subset in rows[mode] else ""
                for subset in DIVERSITY_SUBSETS
            ]
            lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(config_rows: dict[str, Rows], base: Rows) -> str:
    """Hybrid mode, each step on top of the previous one: all queries, the dev split (where the
    weights were chosen) and the held-out split."""
    lines = [
        (
            "| hybrid ranking step | def MRR@10 | Δ vs previous | def R@1 | file nDCG@10 "
            "| median span | dev def MRR@10 | dev file nDCG@10 | held-out def MRR@10 "
            "| held-out def R@1 | held-out file nDCG@10 | held-out architecture file nDCG@10 "
            "| identifier def MRR@10 | distinct files@10 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cells(rows: dict[str, dict[str, float]]) -> str:
        row, dev, held_out = rows["all"], rows["dev"], rows["held-out"]
        return (
            f"{row['def_R@1']:.3f} | {row['file_nDCG@10']:.3f} | {row['median_span']:.0f} | "
            f"{dev['def_MRR@10']:.3f} | {dev['file_nDCG@10']:.3f} | "
            f"{held_out['def_MRR@10']:.3f} | {held_out['def_R@1']:.3f} | "
            f"{held_out['file_nDCG@10']:.3f} | "
            f"{rows['held-out architecture']['file_nDCG@10']:.3f} | "
            f"{rows['identifier']['def_MRR@10']:.3f} | {row['distinct_files@10']:.2f}"
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
    parser.add_argument(
        "--show-misses", action="store_true", help="dev hybrid queries not at rank 1"
    )
    parser.add_argument("--model", help="embedding model (default: CODERAG_MODEL or the default)")
    parser.add_argument(
        "--query-adapter", type=Path, help="a query_adapter.npy from training.adapter"
    )
    parser.add_argument("--results", type=Path, help="where to write results.json")
    parser.add_argument(
        "--rerank", action="store_true", help="re-score the top results with the cross-encoder"
    )
    parser.add_argument("--reranker", help="reranker model (default: the shipped one)")
    parser.add_argument(
        "--rerank-sweep", action="store_true", help="measure a grid of reranking weights"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a RankingConfig weight for this run (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--sweep", action="append", default=[], metavar="KEY=V1,V2",
        help="measure every combination of these weights (hybrid, dev rows only; repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--dev-only", action="store_true",
        help="search the dev queries only (for paired dev comparisons while tuning)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    base = parse_settings(DEFAULT_RANKING, args.set)
    if args.sweep:
        _, sweep_rows, _ = evaluate(
            args.work, False, weight_sweep(base, args.sweep), model=args.model,
            modes=("hybrid",), dev_only=True,
        )  # fmt: skip
        print(dev_sweep_table(sweep_rows))
        return 0
    configs = ablation_steps() if args.ablation else [("default", base)]
    final_name = configs[-1][0]
    if args.ablation:
        configs += not_kept_steps()
    adapter = np.load(args.query_adapter) if args.query_adapter else None
    rescorer, reranked = None, frozenset[str]()
    if args.rerank or args.rerank_sweep:
        from coderag_assets.rerank import DEFAULT_RERANKER, RerankerSpec, load_reranker

        spec = RerankerSpec(
            model=args.reranker or DEFAULT_RERANKER, cache_dir=args.work / "data" / "models"
        )
        rescorer = MemoRescorer(load_reranker(spec).score)
        if args.rerank_sweep:
            configs = rerank_sweep()
            final_name = configs[-1][0]
            reranked = frozenset(name for name, _ in configs[1:])
        else:
            reranked = frozenset({final_name})
    baseline_rows, config_rows, info = evaluate(
        args.work,
        args.show_misses,
        configs,
        model=args.model,
        query_adapter=adapter,
        rescorer=rescorer,
        reranked_configs=reranked,
        final_name=final_name,
        dev_only=args.dev_only,
    )
    if rescorer is not None:
        info["reranker"] = {
            "model_id": spec.model_id,
            "calls": rescorer.calls,
            "mean_ms": 1000 * rescorer.seconds / max(1, rescorer.calls),
        }
    final = config_rows[final_name]
    counts = info["queries"]
    results_path = args.results or args.work / "results.json"
    if args.dev_only:  # every subset here holds dev queries only
        subsets = ["dev", *(f"dev {style}" for style in STYLES), *LANGUAGES]
        print(markdown_table(
            [(final_name, f"{subset} ({counts[subset]})", final["hybrid"][subset])
             for subset in subsets if subset in final["hybrid"]],
            second="dev queries (hybrid)",
        ))  # fmt: skip
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps({"coderag": config_rows, **info}, indent=2))
        return 0
    print(corpus_table(info))
    print(
        f"\nAll {len(ALL_QUERIES)} queries ({len(QUERIES)} dev + {len(HELDOUT_QUERIES)} held-out):"
    )
    table_rows = [("60/20 windows", mode, baseline_rows[mode]["all"]) for mode in MODES]
    table_rows += [("CodeRAG", mode, final[mode]["all"]) for mode in MODES]
    print(markdown_table(table_rows))
    systems = (("60/20 windows", baseline_rows), ("CodeRAG", final))
    for title, subsets in (
        (
            (
                "Hybrid mode by query split (dev: the weights were chosen on them; held-out: "
                f"never), and the {V1_SUBSET} queries of the first benchmark version:"
            ),
            (*SPLITS, V1_SUBSET, "all"),
        ),
        ("Hybrid mode by query style:", STYLES),
        ("Hybrid mode by language:", LANGUAGES),
    ):
        print(f"\n{title}")
        group_rows = [
            (system, f"{subset} ({counts[subset]})", rows["hybrid"][subset])  # type: ignore[index]
            for system, rows in systems
            for subset in subsets
            if subset in rows["hybrid"]
        ]
        print(markdown_table(group_rows, second="queries"))
    print("\nResult diversity: mean number of distinct files in the top 10:")
    print(diversity_table(list(systems)))
    if args.ablation:
        print()
        print(ablation_table(config_rows, baseline_rows))
    if args.rerank_sweep:
        print()
        print(sweep_table(config_rows))
    if rescorer is not None:
        print(
            f"\nreranker {info['reranker']['model_id']}: {rescorer.calls} calls, "
            f"mean {info['reranker']['mean_ms']:.0f} ms per call (in this benchmark process)"
        )
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
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
