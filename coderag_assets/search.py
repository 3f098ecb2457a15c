"""Queries over a published index: vector, BM25, hybrid, filters, and the ranking on top.

Reads only the published version that `CURRENT` names (see `segments`): per segment, the chunk
metadata and stored ranking features (in memory), the vectors and BM25 postings
(memory-mapped), and each returned result's `content` (read from its Parquet row group).
Opening runs no per-chunk Python loop and computes nothing that the segment writer stored, so a
cold `coderag search` costs imports plus a few file reads; a warm process (MCP server) answers
from memory.

Ranking (every mode): the mode's rankers (BM25, vector, or both for hybrid) are fused by
weighted reciprocal rank, BM25 counting a definition's name words extra; an identifier query
(a bare name the index defines, or plain words spelling one: "split off" → `split_off`) also
looks its exact definitions up in the definition-name postings
(`IndexReader.exact_definitions`). The fused rows become `ranking.Candidate`s and the steps of
`coderag_assets.ranking` order them (demotions, name and path boosts, exact
definitions, collapsing, file pooling, repeat demotion); with a rescorer (`--rerank`: the
cross-encoder of `rerank`), the first results are re-ordered by fusing their rank with the
rescorer's. The weights live in `RankingConfig`; `benchmarks/quality` measures what each of
them gains (docs/quality.md). BM25 statistics (N, document frequency,
average length) are global over the version's segments.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from coderag_assets import segments, vectors
from coderag_assets.features import (  # noqa: F401  (re-exported: the ranking's definitions)
    definition_runs,
    file_words,
    is_test_path,
    name_words,
)
from coderag_assets.ranking import (  # RankingConfig, DEFAULT_RANKING: re-exported
    DEFAULT_RANKING,
    MAX_INJECTED_DEFINITIONS,
    Candidate,
    QueryInfo,
    RankingConfig,
    file_weight_for,
    identifier_of,
    parse_query,
    rank_candidates,
    spelled_names,
    spread_files,
)
from coderag_assets.records import Record
from coderag_assets.tokens import code_tokens, query_terms, stem

Mode = Literal["hybrid", "vector", "bm25"]
# (query, candidate texts) → one relevance score per text, higher is better (`rerank.Reranker`).
Rescorer = Callable[[str, Sequence[str]], np.ndarray]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "bm25")
RRF_K = 60
FUSION_DEPTH = 100  # candidates taken from each ranker before fusion
ROW_SETS_CACHED = 65536  # word sets of ranked rows a long-lived reader keeps
LANGUAGE_ALIASES = {
    "py": "python",
    "js": "javascript",
    "ts": "typescript",
    "rs": "rust",
    "rb": "ruby",
    "sh": "bash",
    "shell": "bash",
    "c++": "cpp",
    "kt": "kotlin",
    "md": "markdown",
    "yml": "yaml",
}


class SearchError(ValueError):
    """A query cannot be answered as asked (bad mode, empty query...)."""


class SearchResult(Record):
    """One search hit: what `coderag search --json`, the MCP tool `search` and the web API's
    `/api/search` print. Lines are 1-based and inclusive; ``symbol``/``kind`` are "" for a
    chunk outside any definition."""

    path: str = Field(description="File path relative to the indexed root")
    start_line: int = Field(description="First line of the chunk (1-based)")
    end_line: int = Field(description="Last line of the chunk (inclusive)")
    score: float = Field(description="Ranking score (higher is better; scale depends on mode)")
    symbol: str = Field(description="Qualified name of the definition the chunk holds, or ''")
    kind: str = Field(description="Chunk kind: function, method, class, section, block, text...")
    language: str
    content: str = Field(description="Source text of lines start_line..end_line")

    @field_validator("symbol", "kind", "language", mode="before")
    @classmethod
    def _none_as_empty(cls, value: object) -> object:
        return "" if value is None else value


def normalize_language(language: str) -> str:
    lowered = language.strip().lower()
    return LANGUAGE_ALIASES.get(lowered, lowered)


def path_matches(path: str, pattern: str) -> bool:
    """Glob on the repo-relative path (`*` crosses `/`); a pattern without wildcards is a prefix."""
    if not any(ch in pattern for ch in "*?["):
        prefix = pattern.strip("/")
        return path == prefix or path.startswith(prefix + "/")
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.lstrip("/"))


def rrf_fuse(
    rankings: list[list[int]], k: int = RRF_K, weights: list[float] | None = None
) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of ranked row lists → (row, score) best first; ties by first appearance."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking):
            scores[row] = scores.get(row, 0.0) + weight / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: -item[1])


class _RowSets:
    """Per-row word sets of a stored list column (`name_words`, `file_words`), read and
    converted only for the rows ranked; the last `ROW_SETS_CACHED` rows are kept."""

    def __init__(self, reader: IndexReader, column: str):
        self._reader = reader
        self._column = column
        self._cache: dict[int, frozenset[str]] = {}

    def __getitem__(self, row: int) -> frozenset[str]:
        words = self._cache.get(row)
        if words is None:
            segment, local = self._reader._locate(row)
            words = frozenset(segment.rows.value(local, self._column) or ())  # type: ignore[arg-type]
            if len(self._cache) >= ROW_SETS_CACHED:
                self._cache.clear()
            self._cache[row] = words
        return words


@contextmanager
def _vector_file_errors(segment: segments.OpenSegment) -> Iterator[None]:
    """A read of the segment's vector files that fails (truncated, deleted) raises
    `SegmentError` naming the shard, which the index repairs by rebuilding it."""
    try:
        yield
    except OSError as error:
        raise segments.SegmentError(segment.info.shard, segment.info.path, str(error)) from error


def _kth_highest(values: np.ndarray, k: int) -> float:
    """The `k`-th highest of `values` (1 ≤ k ≤ len(values))."""
    return np.partition(values, len(values) - k)[len(values) - k]


class IndexReader:
    """A read-only view of one published index version (`index_path` names the index
    directory's `index.duckdb`; the version is the one its `CURRENT` names when opened).

    `refresh()` reopens when a newer version has been published (a stat of `CURRENT`), so a
    long-lived process always answers from the latest complete index. `ranking` holds the
    ranking weights (the benchmark swaps it to measure each step). `con` is a DuckDB
    connection showing this reader's version (`chunks`, `files`, `symbols`, `meta`), made on
    first use. The reader holds its version (`segments.VersionLease`) until `close()` or a
    refresh moves it on, so publishes do not reclaim the files it reads. Raises
    IndexNotFoundError (SegmentError for a damaged segment) when opening.

    `one_shot` suits a process that answers one query and exits (`coderag search`): it reads
    what the query needs instead of mapping the segments' files — vectors block by block
    (`vectors`), per-chunk values by record batch (`segments.ReaderRows`) — so the process
    holds what it uses rather than every page a mapping touched. Long-lived readers map them
    and answer warm queries from memory. Postings are always read by position.
    """

    def __init__(
        self,
        index_path: Path,
        ranking: RankingConfig = DEFAULT_RANKING,
        *,
        one_shot: bool = False,
        version: segments.IndexVersion | None = None,
    ):
        self.index_path = index_path
        self.pinned = version  # a candidate not yet published (the promotion gates read it)
        self.base = index_path.parent
        self.ranking = ranking
        self.one_shot = one_shot
        self._con = None
        self._stamp: tuple[int, int] | None = None
        self._lease: segments.VersionLease | None = None
        self._open()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.base / segments.CURRENT_FILE)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns)

    def _open(self) -> None:
        stamp = self._current_stamp()
        version = self.pinned or segments.read_current(self.base)
        segments.allow_open_files(len(version.segments))
        lease = segments.VersionLease(self.base, version.version)
        try:
            opened = [
                segments.open_segment(
                    self.base,
                    shard,
                    relative,
                    mapped=not self.one_shot,
                    scan_copy=not self.one_shot and vectors.scan_copy_enabled(),
                )
                for shard, relative in sorted(version.segments.items())
            ]
        except BaseException:
            lease.release()
            raise
        content_cache = segments.ContentCache()  # one bound for all segments' decoded text
        for segment in opened:
            segment.content_cache = content_cache
        stale_lease, self._lease = self._lease, lease
        if stale_lease is not None:
            stale_lease.release()
        self.version = version
        self.meta: dict[str, object] = dict(version.meta)
        self.segments = opened
        sizes = [segment.size for segment in opened]
        self.segment_starts = np.cumsum([0] + sizes)[:-1]
        self._size = int(sum(sizes))
        self._paths: list[str] | None = None
        self._symbols: list[str] | None = None

        def feature(name: str, dtype: type) -> np.ndarray:
            arrays = [segment.rows.features[name] for segment in opened]
            return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

        self.is_test = feature("is_test", bool)
        self.is_glue = feature("is_glue", bool)
        self.is_non_code = feature("is_non_code", bool)
        self.has_vector = feature("vector", np.int64) >= 0
        run_offsets = np.repeat(np.cumsum([0] + [s.info.runs for s in opened])[:-1], sizes)
        self.run_of = feature("run", np.int64) + run_offsets.astype(np.int64)
        self.name_words = _RowSets(self, "name_words")
        self.file_words = _RowSets(self, "file_words")
        self._norms: dict[tuple[float, float, float], np.ndarray] = {}  # (name_tf, k1, b)
        self._file_norms: dict[float, np.ndarray] = {}
        self._file_of: np.ndarray | None = None
        self._file_count = 0
        self._stamp = stamp

    # ----- per-chunk columns (materialized on first use)
    def column(self, name: str) -> pa.ChunkedArray:
        """Every chunk's value of reader column `name`, in row order (read whole)."""
        columns = [segment.rows.column(name) for segment in self.segments]
        if not columns:
            return pa.chunked_array([], pa.string())
        return pa.chunked_array([chunk for column in columns for chunk in column.chunks])

    @property
    def paths(self) -> list[str]:
        if self._paths is None:
            self._paths = self.column("path").to_pylist() if self._size else []
        return self._paths

    @property
    def symbols(self) -> list[str]:
        if self._symbols is None:
            self._symbols = self.column("symbol").to_pylist() if self._size else []
        return self._symbols

    @property
    def con(self):
        """DuckDB connection showing this reader's version (see `segments.connect_version`)."""
        if self._con is None:
            self._con = segments.connect_version(self.base, self.version)
        return self._con

    def refresh(self) -> bool:
        """Reopen if a newer version was published; True when it did. If the new version
        cannot be opened the error propagates and this reader keeps its version."""
        stamp = self._current_stamp()
        if self.pinned is not None or stamp is None or stamp == self._stamp:
            return False
        if segments.current_version(self.base) == self.version.version:
            self._stamp = stamp
            return False
        stale = self._con
        self._con = None
        try:
            self._open()
        except BaseException:
            self._con = stale
            raise
        if stale is not None:
            stale.close()
        return True

    def set_ranking(self, ranking: RankingConfig) -> None:
        """Use other ranking weights (unstemmed BM25 postings are built on first use)."""
        self.ranking = ranking

    def close(self) -> None:
        """Close the connection and let the version go (a later publish may reclaim it)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    @property
    def size(self) -> int:
        return self._size

    # ----- rankers
    def _mask(self, language: str | None, path_glob: str | None) -> np.ndarray | None:
        if not language and not path_glob:
            return None
        mask = np.ones(self.size, dtype=bool)
        if language and self.size:
            same = pc.equal(self.column("language"), normalize_language(language))
            mask &= same.fill_null(False).to_numpy(zero_copy_only=False)
        if path_glob:
            mask &= np.array([path_matches(p, path_glob) for p in self.paths], dtype=bool)
        return mask

    @staticmethod
    def _top(scores: np.ndarray, depth: int) -> list[tuple[int, float]]:
        depth = min(depth, len(scores))
        if depth <= 0:
            return []
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(row), float(scores[row])) for row in top if np.isfinite(scores[row])]

    def vector_scores(
        self, query_vector: np.ndarray, mask: np.ndarray | None, exact_top: int | None = None
    ) -> np.ndarray:
        """Cosine of every chunk to `query_vector` (-inf: no vector, or outside `mask`).

        With `exact_top`, segments that have an int8 scan copy (long-lived readers) are
        scanned approximately and every vector the error bounds cannot rule out of the
        `exact_top` best rows is rescored exactly (`_rescore_distinct`, or `_rescore_top`
        under a mask): the best `exact_top` rows and their scores are the exact scan's, the
        other rows' scores are within a few 1e-3."""
        query = query_vector.astype(np.float32)
        parts: list[tuple[int, segments.OpenSegment, np.ndarray, np.ndarray | None]] = []
        buffer = None
        for start, segment in zip(self.segment_starts, self.segments, strict=True):
            segment_vectors = segment.vectors
            if not segment.size or segment_vectors.dim != len(query):
                continue
            distinct_bounds = None
            if self.one_shot:
                if buffer is None:
                    buffer = np.empty((vectors.STREAM_BLOCK_ROWS, len(query)), np.float32)
                with _vector_file_errors(segment):
                    distinct_scores = segment_vectors.streamed_scores(query, buffer)
            elif exact_top is not None and segment_vectors.approximate:
                if buffer is None:
                    buffer = np.empty((vectors.SCAN_BLOCK_ROWS, len(query)), np.float32)
                distinct_scores, distinct_bounds = segment_vectors.approximate_scores(query, buffer)
            else:
                distinct_scores = segment_vectors.scores(query)
            parts.append((int(start), segment, distinct_scores, distinct_bounds))
        approximate = exact_top and any(part[3] is not None for part in parts)
        if approximate and mask is None:
            self._rescore_distinct(parts, query, exact_top)  # type: ignore[arg-type]
        scores = np.full(self.size, -np.inf, dtype=np.float32)
        bounds = np.zeros(self.size, dtype=np.float32) if approximate and mask is not None else None
        for start, segment, distinct_scores, distinct_bounds in parts:
            vector_of_row = segment.vector_of_row
            has_vector = vector_of_row >= 0
            scores[start : start + segment.size] = np.where(
                has_vector, distinct_scores[vector_of_row], -np.inf
            )
            if bounds is not None and distinct_bounds is not None:
                bounds[start : start + segment.size] = np.where(
                    has_vector, distinct_bounds[vector_of_row], 0.0
                )
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        if bounds is not None:
            self._rescore_top(scores, bounds, query, exact_top)  # type: ignore[arg-type]
        return scores

    @staticmethod
    def _rescore_distinct(
        parts: list[tuple[int, segments.OpenSegment, np.ndarray, np.ndarray | None]],
        query: np.ndarray,
        top: int,
    ) -> None:
        """Replace, in place, each segment's approximate score of every distinct vector that
        may score among the `top` best rows by its exact score. Every stored vector belongs
        to at least one row, so at least `top` rows score ≥ `floor` (the `top`-th highest
        lower bound over the distinct vectors); a vector whose upper bound is below it
        cannot be among them. Works on distinct vectors, not rows: an index of many copies
        has far fewer. (No mask: a masked-out row would count.)"""
        lowers = [scores if bounds is None else scores - bounds for _, _, scores, bounds in parts]
        lower = np.concatenate(lowers) if lowers else np.zeros(0, np.float32)
        top = min(top, len(lower))
        if not top:
            return
        floor = _kth_highest(lower, top)
        for _, segment, scores, bounds in parts:
            if bounds is None:
                continue
            wanted = np.flatnonzero(scores + bounds >= floor)
            if not len(wanted):
                continue
            with _vector_file_errors(segment):
                scores[wanted] = segment.vectors.exact_scores(wanted, query)

    def _rescore_top(
        self, scores: np.ndarray, bounds: np.ndarray, query: np.ndarray, top: int
    ) -> None:
        """Replace, in place, the approximate score of every row that may be among the `top`
        best by its exact score (under a mask: rows outside it are -inf here). At least `top`
        rows score ≥ `floor` (the `top`-th highest lower bound), so a row whose upper bound is
        below `floor` cannot be among them."""
        valid = np.isfinite(scores)
        count = int(valid.sum())
        if not count:
            return
        lower = np.where(valid, scores - bounds, -np.inf)
        floor = _kth_highest(lower, min(top, count))
        candidates = np.flatnonzero(valid & (bounds > 0) & (scores + bounds >= floor))
        owners = np.searchsorted(self.segment_starts, candidates, side="right") - 1
        for owner in np.unique(owners):
            segment = self.segments[owner]
            rows = candidates[owners == owner]
            distinct_rows = segment.vector_of_row[rows - self.segment_starts[owner]]
            wanted, position = np.unique(distinct_rows, return_inverse=True)
            with _vector_file_errors(segment):
                exact = segment.vectors.exact_scores(wanted, query)
            scores[rows] = exact[position]

    def vector_ranking(
        self, query_vector: np.ndarray, depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        if self.size == 0:
            return []
        return self._top(self.vector_scores(query_vector, mask, exact_top=depth), depth)

    def _bm25_parts(self) -> list[tuple[int, segments.Postings | segments.PostingsFile]]:
        return [
            (int(start), seg.postings if self.ranking.stem else seg.unstemmed_postings())
            for start, seg in zip(self.segment_starts, self.segments, strict=True)
        ]

    def term_frequencies(self, terms: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each term's global rows and weighted counts, gathered once for several scorings."""
        name_tf = float(self.ranking.bm25_name_tf)
        parts = self._bm25_parts()
        return {term: segments.term_frequencies(parts, term, name_tf=name_tf) for term in terms}

    def bm25_scores(
        self, terms: list[str], frequencies: segments.TermFrequencies | None = None
    ) -> np.ndarray | None:
        """BM25 score of every chunk (global statistics); None when no term is indexed.
        `frequencies`: the terms' `term_frequencies`, when already gathered."""
        ranking = self.ranking
        name_tf = float(ranking.bm25_name_tf)
        key = (name_tf, ranking.bm25_k1, ranking.bm25_b)
        norms = self._norms.get(key)
        if norms is None:
            norms = self._norms[key] = segments.bm25_norms(
                np.concatenate([seg.postings.body_len for seg in self.segments]),
                np.concatenate([seg.postings.name_len for seg in self.segments]),
                name_tf,
                k1=ranking.bm25_k1,
                b=ranking.bm25_b,
            )
        return segments.bm25_scores(
            self._bm25_parts(),
            norms,
            terms,
            name_tf=name_tf,
            frequencies=frequencies,
            k1=ranking.bm25_k1,
        )

    # ----- file level
    def file_ids(self) -> tuple[np.ndarray, int]:
        """Each row's file number and the number of files (read on first use: the paths)."""
        if self._file_of is None:
            parts: list[np.ndarray] = []
            count = 0
            for segment in self.segments:
                if not segment.size:
                    continue
                encoded = pc.dictionary_encode(segment.rows.column("path").combine_chunks())
                parts.append(
                    encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64) + count
                )
                count += len(encoded.dictionary)
            self._file_of = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            self._file_count = count
        return self._file_of, self._file_count

    def file_bm25_scores(
        self,
        terms: list[str],
        mask: np.ndarray | None,
        frequencies: segments.TermFrequencies | None = None,
    ) -> np.ndarray | None:
        """BM25 of every file as one document (`segments.bm25_group_scores`)."""
        file_of, count = self.file_ids()
        name_tf = float(self.ranking.bm25_name_tf)
        norms = self._file_norms.get(name_tf)
        if norms is None:
            body = np.concatenate([seg.postings.body_len for seg in self.segments])
            names = np.concatenate([seg.postings.name_len for seg in self.segments])
            norms = self._file_norms[name_tf] = segments.bm25_norms(
                np.bincount(file_of, weights=body, minlength=count),
                np.bincount(file_of, weights=names, minlength=count),
                name_tf,
            )
        return segments.bm25_group_scores(
            self._bm25_parts(),
            file_of,
            norms,
            terms,
            name_tf=name_tf,
            row_mask=mask,
            frequencies=frequencies,
        )

    def file_evidence(
        self,
        vector_scores: np.ndarray | None,
        terms: list[str] | None,
        mask: np.ndarray | None,
        weights: tuple[float, float],
        frequencies: segments.TermFrequencies | None = None,
    ) -> np.ndarray:
        """Every file's fused file-level score, 0..1: the files ranked by the mean cosine of
        their chunks (`vector_scores`, when given) and by file-level BM25 (`terms`, when
        given), fused by weighted reciprocal rank (k `file_rrf_k`, top `file_depth` files of
        each) and divided by the best possible."""
        file_of, count = self.file_ids()
        k, depth = self.ranking.file_rrf_k, self.ranking.file_depth
        file_rankings: list[list[int]] = []
        file_weights: list[float] = []
        if vector_scores is not None and count:
            valid = np.isfinite(vector_scores)
            sums = np.bincount(
                file_of, weights=np.where(valid, vector_scores, 0.0), minlength=count
            )
            counts = np.bincount(file_of, weights=valid, minlength=count)
            means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
            file_rankings.append([file for file, _ in self._top(means, depth)])
            file_weights.append(weights[0])
        if terms and count:
            scores = self.file_bm25_scores(terms, mask, frequencies)
            ranked = (
                [] if scores is None else self._top(np.where(scores > 0, scores, -np.inf), depth)
            )
            file_rankings.append([file for file, _ in ranked])
            file_weights.append(weights[1])
        fused = np.zeros(count, dtype=np.float64)
        for file, score in rrf_fuse(file_rankings, k, file_weights):
            fused[file] = score
        return fused / max(sum(file_weights) / (k + 1), 1e-9)

    def bm25_ranking(
        self,
        query: str | list[str],
        depth: int,
        mask: np.ndarray | None,
        frequencies: segments.TermFrequencies | None = None,
    ) -> list[tuple[int, float]]:
        """BM25 top `depth`; `query` is the text or its `query_terms`."""
        terms = query_terms(query, stemmed=self.ranking.stem) if isinstance(query, str) else query
        if not terms or self.size == 0:
            return []
        scores = self.bm25_scores(terms, frequencies)
        if scores is None:
            return []
        scores = np.where(scores > 0, scores, -np.inf)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return self._top(scores, depth)

    # ----- public
    def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        limit: int = 10,
        language: str | None = None,
        path_glob: str | None = None,
        query_vector: np.ndarray | None = None,
        rescorer: Rescorer | None = None,
    ) -> list[SearchResult]:
        """Top `limit` results. `query_vector` is required for vector and hybrid modes;
        ``rescorer`` (a cross-encoder) re-scores the first ``ranking.rerank_depth`` results."""
        if mode not in MODES:
            raise SearchError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not query.strip():
            raise SearchError("empty query")
        if limit < 1:
            raise SearchError("limit must be at least 1")
        ranking = self.ranking
        mask = self._mask(language, path_glob)
        depth = max(FUSION_DEPTH, limit)
        terms = query_terms(query, stemmed=ranking.stem)
        identifier = identifier_of(query)
        definitions = self.exact_definitions(identifier, mask) if identifier else []
        if identifier is None and ranking.spelled_identifiers:
            # "scroll to offset" → scrollToOffset, "split off" → split_off: every definition
            # either spelling names (a test class `ValidatesSchema` beside `validates_schema`
            # is kept as well: the ranking, which demotes tests, orders them)
            for name in spelled_names(query):
                found = [
                    row for row in self.exact_definitions(name, mask) if row not in definitions
                ]
                if found:
                    identifier = identifier or name
                    definitions.extend(found)
        query_info = parse_query(
            query, terms, has_definition=bool(definitions), identifier=identifier
        )
        rankings: list[list[tuple[int, float]]] = []
        weights: list[float] = []
        vector_scores: np.ndarray | None = None
        if mode in ("vector", "hybrid"):
            vector = self._need_vector(query_vector)
            vector_scores = self.vector_scores(vector, mask, exact_top=depth) if self.size else None
            rankings.append([] if vector_scores is None else self._top(vector_scores, depth))
            vector_weight = ranking.vector_weight
            if query_info.kind == "identifier":
                vector_weight *= ranking.identifier_vector_factor
            weights.append(vector_weight)
        with_files = bool(file_weight_for(query_info, ranking)) and self.size > 0
        with_bm25 = mode in ("bm25", "hybrid")
        # gathered once when both the chunk and the file BM25 read them
        frequencies = self.term_frequencies(terms) if with_files and with_bm25 else None
        if with_bm25:
            rankings.append(self.bm25_ranking(terms, depth, mask, frequencies))
            weights.append(ranking.bm25_weight)
        file_scores = None
        if with_files:
            file_scores = self.file_evidence(
                vector_scores,
                terms if with_bm25 else None,
                mask,
                (weights[0] if vector_scores is not None else 0.0, ranking.bm25_weight),
                frequencies,
            )
        ranked = self.rank(rankings, weights, terms, query_info, definitions, file_scores)
        if rescorer is not None:
            ranked = self.rerank(query, ranked, rescorer)
        return self._results(ranked[:limit])

    def rank(
        self,
        rankings: list[list[tuple[int, float]]],
        weights: list[float],
        terms: list[str],
        query_info: QueryInfo | None = None,
        definitions: Sequence[int] = (),
        file_scores: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Fuse the rankers' (row, score) lists and apply the ranking steps
        (`ranking.rank_candidates`) → (row, score) best first. `definitions` are the rows of
        an identifier query's exact definitions (`exact_definitions`); `file_scores` is every
        file's file-level evidence (`file_evidence`), None when not computed."""
        fused, best_possible = self._fuse(rankings, weights)
        if query_info is None:
            query_info = QueryInfo("plain", frozenset(terms), ())
        candidates = [self.candidate(row, score / best_possible) for row, score in fused.items()]
        if file_scores is not None:
            file_of, _ = self.file_ids()
            for candidate in candidates:
                candidate.file_score = float(file_scores[file_of[candidate.row]])
        ranked = rank_candidates(
            candidates,
            query_info,
            self.ranking,
            [self.candidate(row, 0.0, with_symbol=True) for row in definitions],
        )
        return [(candidate.row, candidate.score) for candidate in ranked]

    def candidate(self, row: int, score: float, *, with_symbol: bool = False) -> Candidate:
        """Row `row` as a ranking candidate with `score` (its symbol read only when asked:
        no ranking step needs it)."""
        segment, local = self._locate(row)
        symbol = str(segment.rows.value(local, "symbol") or "") if with_symbol else ""
        return Candidate(
            row=row,
            score=score,
            path=str(segment.rows.value(local, "path")),
            symbol=symbol,
            run=int(self.run_of[row]),
            is_glue=bool(self.is_glue[row]),
            is_test=bool(self.is_test[row]),
            is_non_code=bool(self.is_non_code[row]),
            name_words=self.name_words[row],
            file_words=self.file_words[row],
        )

    def exact_definitions(self, identifier: str, mask: np.ndarray | None) -> list[int]:
        """Rows of the chunks defining exactly `identifier` (`ranking.identifier_of`: `Func`,
        `Type.method`), found through the definition-name postings and checked against the
        chunk's symbol: first the exact spelling, else a case-insensitive one. A qualified
        name (`Type.method`) must match the end of the symbol; a bare one its last part.
        Empty when the index defines no such name."""
        name = identifier.rsplit(".", 1)[-1]
        tokens = code_tokens(name)
        if not tokens or self.size == 0:
            return []
        term = stem(tokens[0]) if self.ranking.stem else tokens[0]
        rows: list[int] = []
        for start, segment in zip(self.segment_starts, self.segments, strict=True):
            postings = segment.postings if self.ranking.stem else segment.unstemmed_postings()
            where = postings.lookup(term)
            if where is None:
                continue
            segment_rows, _, name_tf = postings.term_postings(where)
            rows.extend(int(start) + int(local) for local in segment_rows[name_tf > 0])
        if mask is not None:
            rows = [row for row in rows if mask[row]]
        wanted = identifier.lower()
        exact: list[int] = []
        folded: list[int] = []
        for row in rows:
            segment, local = self._locate(row)
            symbol = str(segment.rows.value(local, "symbol") or "")
            qualified = "." + symbol
            if qualified.endswith("." + identifier):
                exact.append(row)
            elif qualified.lower().endswith("." + wanted):
                folded.append(row)
            if len(exact) >= 4 * MAX_INJECTED_DEFINITIONS:
                break
        return exact or folded

    def rerank(
        self, query: str, ranked: list[tuple[int, float]], rescorer: Rescorer
    ) -> list[tuple[int, float]]:
        """Re-order the first ``rerank_depth`` of ``ranked`` by fusing their rank with the
        rescorer's rank; the file-repeat demotion applies again, and everything after the
        re-scored head keeps its order below it."""
        ranking = self.ranking
        head, tail = ranked[: ranking.rerank_depth], ranked[ranking.rerank_depth :]
        if len(head) < 2:
            return ranked
        scores = rescorer(query, [self.rerank_text(row) for row, _ in head])
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        rescored_rank = {head[int(position)][0]: rank for rank, position in enumerate(order)}
        k, weight = ranking.rerank_k, ranking.rerank_weight
        best = (1.0 + weight) / (k + 1)
        fused = [
            (row, (1.0 / (k + 1 + rank) + weight / (k + 1 + rescored_rank[row])) / best)
            for rank, (row, _) in enumerate(head)
        ]
        fused.sort(key=lambda item: (-item[1], item[0]))
        if ranking.file_repeat_factor != 1.0:
            spread = spread_files(
                [self.candidate(row, score) for row, score in fused], ranking.file_repeat_factor
            )
            fused = [(candidate.row, candidate.score) for candidate in spread]
        floor = fused[-1][1]
        return fused + [(row, min(score, floor)) for row, score in tail]

    def rerank_text(self, row: int) -> str:
        """What the reranker reads for a chunk: its symbol line and content, as embedded."""
        segment, local = self._locate(row)
        symbol = segment.rows.value(local, "symbol")
        content = segment.content(local)
        return f"{symbol}\n{content}" if symbol else content

    def _fuse(
        self, rankings: list[list[tuple[int, float]]], weights: list[float]
    ) -> tuple[dict[int, float], float]:
        """Fused score per candidate row and the best score possible (for 0..1 scaling)."""
        rows = [[row for row, _ in ranked] for ranked in rankings]
        fused = dict(rrf_fuse(rows, self.ranking.rrf_k, weights)) if rows else {}
        return fused, max(sum(weights) / (self.ranking.rrf_k + 1), 1e-9)

    @staticmethod
    def _need_vector(query_vector: np.ndarray | None) -> np.ndarray:
        if query_vector is None:
            raise SearchError("vector and hybrid modes need a query embedding")
        return query_vector

    def _locate(self, row: int) -> tuple[segments.OpenSegment, int]:
        index = int(np.searchsorted(self.segment_starts, row, side="right") - 1)
        return self.segments[index], row - int(self.segment_starts[index])

    def _results(self, ranked: list[tuple[int, float]]) -> list[SearchResult]:
        results = []
        for row, score in ranked:
            segment, local = self._locate(row)
            values = segment.rows.row(local)
            results.append(
                SearchResult(
                    path=values["path"],
                    start_line=values["start_line"],
                    end_line=values["end_line"],
                    score=round(score, 6),
                    symbol=values["symbol"],
                    kind=values["kind"],
                    language=str(values["language"]),
                    content=segment.content(local),
                )
            )
        return results
