"""Queries over a published index: vector, BM25, hybrid, filters, and the ranking on top.

Reads only the published DuckDB file (read-only connection). Everything a query touches is
loaded once per opened index version, so a warm process (MCP server) answers from memory:
vectors as a float32 matrix, BM25 as a sparse term matrix (built from the stored code-aware
tokens, lightly stemmed), and per-chunk symbol and path words.

Ranking (every mode): the mode's rankers (BM25, vector, or both for hybrid) are fused by
weighted reciprocal rank; BM25 counts a definition's name words extra; definitions whose name
or file name the query spells get a boost; module glue (code outside any definition), test
files and non-code files (docs, config) are demoted; consecutive chunks of one definition are
collapsed into the best-ranked one. The weights live in `RankingConfig`; `benchmarks/quality`
measures what each of them gains (docs/quality.md).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from scipy import sparse

from coderag_assets.chunking import TEXT_LANGUAGES
from coderag_assets.store import IndexNotFoundError, connect_index, read_meta
from coderag_assets.tokens import STOPWORDS, code_tokens, identifier_parts, query_terms, stem

Mode = Literal["hybrid", "vector", "bm25"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "bm25")
RRF_K = 60
FUSION_DEPTH = 100  # candidates taken from each ranker before fusion
BM25_K1 = 1.2
BM25_B = 0.75
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
_TEST_PATH_RE = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)/|(^|/)test_[^/]*$|_test\.[^/]+$|\.(test|spec)\.[^/]+$"
)
NON_CODE_LANGUAGES = TEXT_LANGUAGES | {"text"}
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class SearchError(ValueError):
    """A query cannot be answered as asked (bad mode, empty query...)."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    path: str
    start_line: int
    end_line: int
    score: float
    symbol: str
    kind: str
    language: str
    content: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """Weights of the ranking steps; the defaults are what the quality benchmark chose.

    Scores are on a 0..1 scale (fused reciprocal rank divided by its best possible value),
    then multiplied by the demotion factors and increased by the boosts.
    """

    rrf_k: int = 15
    vector_weight: float = 0.9
    bm25_weight: float = 1.0
    stem: bool = True  # light stemming + query stopwords in BM25
    bm25_name_tf: float = 2.0  # extra BM25 term count for each word of a definition's name
    symbol_boost: float = 0.1  # × share of the definition's name words the query contains
    path_boost: float = 0.1  # × share of the file name's words the query contains
    glue_factor: float = 0.3  # module glue (no enclosing definition) in code files
    test_factor: float = 0.3  # files under tests/, test_*.py, *.test.js, ...
    non_code_factor: float = 0.25  # docs and config: Markdown, reST, text, YAML, JSON, ...
    collapse: bool = True  # one result per run of consecutive chunks of one definition


DEFAULT_RANKING = RankingConfig()


def normalize_language(language: str) -> str:
    lowered = language.strip().lower()
    return LANGUAGE_ALIASES.get(lowered, lowered)


def path_matches(path: str, pattern: str) -> bool:
    """Glob on the repo-relative path (`*` crosses `/`); a pattern without wildcards is a prefix."""
    if not any(ch in pattern for ch in "*?["):
        prefix = pattern.strip("/")
        return path == prefix or path.startswith(prefix + "/")
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.lstrip("/"))


def is_test_path(path: str) -> bool:
    """True for test code: a `test`/`tests`/`__tests__`/`spec` directory, `test_*`, `*_test.*`,
    `*.test.*`, `*.spec.*`."""
    return _TEST_PATH_RE.search(path) is not None


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


def name_words(symbol: str) -> frozenset[str]:
    """Stemmed words of a definition's own name (the last part of `Class.method`)."""
    name = symbol.rsplit(".", 1)[-1]
    return frozenset(stem(part) for part in identifier_parts(name) if part not in STOPWORDS)


def file_words(path: str) -> frozenset[str]:
    """Stemmed words of a file name without its extension (`ranges/max-satisfying.js` →
    {max, satisfy}); `index`/`__init__`/`mod` files are named by their directory."""
    parts = path.split("/")
    stem_name = parts[-1].split(".", 1)[0]
    if stem_name in {"index", "__init__", "mod", "main", "lib"} and len(parts) > 1:
        stem_name = parts[-2]
    words = [w for piece in re.split(r"[-\s]+", stem_name) for w in identifier_parts(piece)]
    return frozenset(stem(w) for w in words if w not in STOPWORDS)


def definition_runs(paths: list[str], symbols: list[str]) -> np.ndarray:
    """Run id per chunk (chunks in path/line order): consecutive chunks with the same path and
    symbol — the pieces of one split definition, or adjacent windows of one text — share it."""
    runs = np.zeros(len(paths), dtype=np.int64)
    for row in range(1, len(paths)):
        same = paths[row] == paths[row - 1] and symbols[row] == symbols[row - 1]
        runs[row] = runs[row - 1] if same else runs[row - 1] + 1
    return runs


class Bm25Matrix:
    """Okapi BM25 over the stored token streams, as a sparse (chunks × terms) weight matrix."""

    def __init__(
        self,
        rows: np.ndarray,
        tokens: list[str] | pa.Array,
        counts: np.ndarray,
        size: int,
        *,
        stemmed: bool,
    ):
        """One posting per (row, token, count); tokens sharing a stem share a term."""
        encoded = pa.array(tokens, pa.string()).dictionary_encode()
        vocabulary: dict[str, int] = {}
        term_of_token = np.fromiter(  # each distinct token → its (stemmed) term id
            (
                vocabulary.setdefault(stem(token) if stemmed else token, len(vocabulary))
                for token in encoded.dictionary.to_pylist()
            ),
            dtype=np.int64,
        )
        cols = term_of_token[encoded.indices.to_numpy(zero_copy_only=False)]
        term_counts = sparse.csr_matrix(
            (counts.astype(np.float32), (rows, cols)), shape=(size, max(len(vocabulary), 1))
        )  # duplicates (two tokens with one stem) are summed
        term_counts.sum_duplicates()
        doc_lengths = np.asarray(term_counts.sum(axis=1)).ravel()
        average = max(float(doc_lengths.mean()) if size else 1.0, 1.0)
        coo = term_counts.tocoo()
        norm = BM25_K1 * (1 - BM25_B + BM25_B * doc_lengths / average)
        weights = coo.data * (BM25_K1 + 1) / (coo.data + norm[coo.row])
        document_frequency = np.bincount(coo.col, minlength=term_counts.shape[1])
        self.idf = np.log1p((size - document_frequency + 0.5) / (document_frequency + 0.5)).astype(
            np.float32
        )
        self.matrix = sparse.csc_matrix(
            (weights.astype(np.float32), (coo.row, coo.col)), shape=term_counts.shape
        )
        self.vocabulary = vocabulary
        self.size = size

    def scores(self, terms: list[str]) -> np.ndarray | None:
        """BM25 score of every chunk for the query terms; None when no term is in the index."""
        columns = [self.vocabulary[t] for t in terms if t in self.vocabulary]
        if not columns:
            return None
        return np.asarray(self.matrix[:, columns] @ self.idf[columns]).ravel()


class IndexReader:
    """A read-only view of one published index version.

    `refresh()` reopens when a newer index has been published (cheap stat check), so a
    long-lived process always answers from the latest complete index. `ranking` holds the
    ranking weights (the benchmark swaps it to measure each step).
    """

    def __init__(self, index_path: Path, ranking: RankingConfig = DEFAULT_RANKING):
        self.index_path = index_path
        self.ranking = ranking
        self._stamp: tuple[int, int] | None = None
        self._open()

    def _open(self) -> None:
        try:
            stat = os.stat(self.index_path)
        except FileNotFoundError as exc:
            raise IndexNotFoundError(f"no index at {self.index_path}") from exc
        con = connect_index(self.index_path)
        self.con = con
        self.meta = read_meta(con)
        rows = con.execute(
            "SELECT chunk_id, path, language, start_line, end_line, symbol, kind, content, "
            "embedding FROM chunks ORDER BY path, start_line, chunk_id"
        ).to_arrow_table()
        self.chunk_ids: list[str] = rows.column("chunk_id").to_pylist()
        self.paths: list[str] = rows.column("path").to_pylist()
        self.languages = np.array(rows.column("language").to_pylist(), dtype=object)
        self.start_lines: list[int] = rows.column("start_line").to_pylist()
        self.end_lines: list[int] = rows.column("end_line").to_pylist()
        self.symbols: list[str] = rows.column("symbol").to_pylist()
        self.kinds: list[str] = rows.column("kind").to_pylist()
        self.contents = rows.column("content").combine_chunks()  # Arrow strings, read per result
        self.row_of = {chunk_id: row for row, chunk_id in enumerate(self.chunk_ids)}
        dim = int(self.meta["dim"])
        embeddings = rows.column("embedding").combine_chunks()
        if len(embeddings):
            self.matrix = (
                embeddings.flatten()
                .to_numpy(zero_copy_only=False)
                .reshape(-1, dim)
                .astype(np.float32)
            )
        else:
            self.matrix = np.zeros((0, dim), dtype=np.float32)
        self._load_ranking_features()
        self._stamp = (stat.st_ino, stat.st_mtime_ns)

    def _load_ranking_features(self) -> None:
        """BM25 matrix and per-chunk name/path words, computed once per index version."""
        postings = self.con.execute(
            """
            WITH numbered AS (
                SELECT row_number() OVER (ORDER BY path, start_line, chunk_id) - 1 AS row, bm25_text
                FROM chunks
            ), tokens AS (
                SELECT row, unnest(string_split(bm25_text, ' ')) AS token FROM numbered
            )
            SELECT row, token, count(*) AS n FROM tokens WHERE token <> '' GROUP BY row, token
            """
        ).to_arrow_table()
        rows = postings.column("row").to_numpy()
        tokens = postings.column("token").combine_chunks()
        counts = postings.column("n").to_numpy().astype(np.float32)
        if self.ranking.bm25_name_tf:  # field weight: the definition's name counts extra
            name_rows, name_tokens = [], []
            for row, symbol in enumerate(self.symbols):
                for token in code_tokens(symbol.rsplit(".", 1)[-1]):
                    name_rows.append(row)
                    name_tokens.append(token)
            rows = np.concatenate([rows, np.array(name_rows, dtype=rows.dtype)])
            tokens = pa.concat_arrays([tokens, pa.array(name_tokens, pa.string())])
            extra = np.full(len(name_tokens), self.ranking.bm25_name_tf, dtype=np.float32)
            counts = np.concatenate([counts, extra])
        self.bm25 = Bm25Matrix(rows, tokens, counts, self.size, stemmed=self.ranking.stem)
        name_words_of = {symbol: name_words(symbol) for symbol in set(self.symbols)}
        self.name_words = [name_words_of[symbol] for symbol in self.symbols]
        file_words_of = {path: file_words(path) for path in set(self.paths)}
        self.file_words = [file_words_of[path] for path in self.paths]
        self.is_test = np.array([is_test_path(p) for p in self.paths], dtype=bool)
        self.is_non_code = np.isin(self.languages, list(NON_CODE_LANGUAGES))
        self.is_glue = np.array(
            [
                not symbol and language not in NON_CODE_LANGUAGES
                for symbol, language in zip(self.symbols, self.languages, strict=True)
            ],
            dtype=bool,
        )
        self.run_of = definition_runs(self.paths, self.symbols)

    def refresh(self) -> bool:
        """Reopen if a newer index was published; True when it did."""
        try:
            stat = os.stat(self.index_path)
        except FileNotFoundError:
            return False
        if (stat.st_ino, stat.st_mtime_ns) == self._stamp:
            return False
        stale = self.con  # connect_index ATTACHes the current file, so both can be open
        self._open()
        stale.close()
        return True

    def set_ranking(self, ranking: RankingConfig) -> None:
        """Use other ranking weights (rebuilds the BM25 matrix when stemming changes)."""
        rebuild = (ranking.stem, ranking.bm25_name_tf) != (
            self.ranking.stem,
            self.ranking.bm25_name_tf,
        )
        self.ranking = ranking
        if rebuild:
            self._load_ranking_features()

    def close(self) -> None:
        self.con.close()

    @property
    def size(self) -> int:
        return len(self.chunk_ids)

    # ----- rankers
    def _mask(self, language: str | None, path_glob: str | None) -> np.ndarray | None:
        if not language and not path_glob:
            return None
        mask = np.ones(self.size, dtype=bool)
        if language:
            mask &= self.languages == normalize_language(language)
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

    def vector_ranking(
        self, query_vector: np.ndarray, depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        if self.size == 0:
            return []
        scores = self.matrix @ query_vector.astype(np.float32)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return self._top(scores, depth)

    def bm25_ranking(
        self, query: str | list[str], depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """BM25 top `depth`; `query` is the text or its `query_terms`."""
        terms = query_terms(query, stemmed=self.ranking.stem) if isinstance(query, str) else query
        if not terms or self.size == 0:
            return []
        scores = self.bm25.scores(terms)
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
    ) -> list[SearchResult]:
        """Top `limit` results. `query_vector` is required for vector and hybrid modes."""
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
        rankings: list[list[tuple[int, float]]] = []
        weights: list[float] = []
        if mode in ("vector", "hybrid"):
            vector = self._need_vector(query_vector)
            rankings.append(self.vector_ranking(vector, depth, mask))
            weights.append(ranking.vector_weight)
        if mode in ("bm25", "hybrid"):
            rankings.append(self.bm25_ranking(terms, depth, mask))
            weights.append(ranking.bm25_weight)
        ranked = self.rank(rankings, weights, terms)
        return self._results(ranked[:limit])

    def rank(
        self,
        rankings: list[list[tuple[int, float]]],
        weights: list[float],
        terms: list[str],
    ) -> list[tuple[int, float]]:
        """Fuse the rankers' (row, score) lists, apply boosts and demotions, collapse; best first."""
        ranking = self.ranking
        fused, best_possible = self._fuse(rankings, weights)
        query_words = set(terms)
        scored: list[tuple[int, float]] = []
        for row, fused_score in fused.items():
            score = fused_score / best_possible
            if self.is_glue[row]:
                score *= ranking.glue_factor
            if self.is_test[row]:
                score *= ranking.test_factor
            if self.is_non_code[row]:
                score *= ranking.non_code_factor
            if ranking.symbol_boost and self.name_words[row]:
                shared = len(self.name_words[row] & query_words)
                score += ranking.symbol_boost * shared / len(self.name_words[row])
            if ranking.path_boost and self.file_words[row]:
                shared = len(self.file_words[row] & query_words)
                score += ranking.path_boost * shared / len(self.file_words[row])
            scored.append((row, score))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return self._collapse(scored) if ranking.collapse else scored

    def _fuse(
        self, rankings: list[list[tuple[int, float]]], weights: list[float]
    ) -> tuple[dict[int, float], float]:
        """Fused score per candidate row and the best score possible (for 0..1 scaling)."""
        rows = [[row for row, _ in ranked] for ranked in rankings]
        fused = dict(rrf_fuse(rows, self.ranking.rrf_k, weights)) if rows else {}
        return fused, max(sum(weights) / (self.ranking.rrf_k + 1), 1e-9)

    def _collapse(self, scored: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Keep only the best-ranked chunk of each run of consecutive chunks of one definition
        (same file, same symbol, nothing else between them)."""
        seen: set[int] = set()
        kept: list[tuple[int, float]] = []
        for row, score in scored:
            run = self.run_of[row]
            if run not in seen:
                seen.add(run)
                kept.append((row, score))
        return kept

    @staticmethod
    def _need_vector(query_vector: np.ndarray | None) -> np.ndarray:
        if query_vector is None:
            raise SearchError("vector and hybrid modes need a query embedding")
        return query_vector

    def _results(self, ranked: list[tuple[int, float]]) -> list[SearchResult]:
        return [
            SearchResult(
                path=self.paths[row],
                start_line=self.start_lines[row],
                end_line=self.end_lines[row],
                score=round(score, 6),
                symbol=self.symbols[row],
                kind=self.kinds[row],
                language=str(self.languages[row]),
                content=self.contents[row].as_py(),
            )
            for row, score in ranked
        ]
