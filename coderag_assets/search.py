"""Queries over a published index: vector, BM25, hybrid (reciprocal-rank fusion), filters.

Reads only the published DuckDB file (read-only connection). Vectors are served from an
in-memory float32 matrix loaded once per opened index version, so a warm process (MCP
server) answers without scanning DuckDB; BM25 uses the DuckDB FTS index.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from coderag_assets.store import IndexNotFoundError, connect_index, read_meta
from coderag_assets.tokens import bm25_text

Mode = Literal["hybrid", "vector", "bm25"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "bm25")
RRF_K = 60
FUSION_DEPTH = 100  # candidates taken from each ranker before fusion
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


class IndexReader:
    """A read-only view of one published index version.

    `refresh()` reopens when a newer index has been published (cheap stat check), so a
    long-lived process always answers from the latest complete index.
    """

    def __init__(self, index_path: Path):
        self.index_path = index_path
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
            "SELECT chunk_id, path, language, start_line, end_line, symbol, kind, embedding "
            "FROM chunks ORDER BY path, start_line"
        ).to_arrow_table()
        self.chunk_ids: list[str] = rows.column("chunk_id").to_pylist()
        self.paths: list[str] = rows.column("path").to_pylist()
        self.languages = np.array(rows.column("language").to_pylist(), dtype=object)
        self.start_lines: list[int] = rows.column("start_line").to_pylist()
        self.end_lines: list[int] = rows.column("end_line").to_pylist()
        self.symbols: list[str] = rows.column("symbol").to_pylist()
        self.kinds: list[str] = rows.column("kind").to_pylist()
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
        self._stamp = (stat.st_ino, stat.st_mtime_ns)

    def refresh(self) -> bool:
        """Reopen if a newer index was published; True when it did."""
        try:
            stat = os.stat(self.index_path)
        except FileNotFoundError:
            return False
        if (stat.st_ino, stat.st_mtime_ns) == self._stamp:
            return False
        old = self.con
        self._open()
        old.close()
        return True

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

    def vector_ranking(
        self, query_vector: np.ndarray, depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        if self.size == 0:
            return []
        scores = self.matrix @ query_vector.astype(np.float32)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        depth = min(depth, self.size)
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(row), float(scores[row])) for row in top if np.isfinite(scores[row])]

    def bm25_ranking(
        self, query: str, depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        terms = bm25_text(query)
        if not terms or self.size == 0:
            return []
        hits = self.con.execute(
            "SELECT chunk_id, score FROM (SELECT chunk_id, fts_main_chunks.match_bm25(chunk_id, ?) AS score "
            "FROM chunks) WHERE score IS NOT NULL ORDER BY score DESC, chunk_id",
            [terms],
        ).fetchall()
        ranking: list[tuple[int, float]] = []
        for chunk_id, score in hits:
            row = self.row_of[chunk_id]
            if mask is None or mask[row]:
                ranking.append((row, float(score)))
                if len(ranking) >= depth:
                    break
        return ranking

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
        mask = self._mask(language, path_glob)
        depth = max(FUSION_DEPTH, limit)
        if mode == "bm25":
            ranked = self.bm25_ranking(query, limit, mask)
        elif mode == "vector":
            ranked = self.vector_ranking(self._need_vector(query_vector), limit, mask)
        else:
            vector_rows = [
                row for row, _ in self.vector_ranking(self._need_vector(query_vector), depth, mask)
            ]
            bm25_rows = [row for row, _ in self.bm25_ranking(query, depth, mask)]
            ranked = rrf_fuse([vector_rows, bm25_rows])[:limit]
        return self._results(ranked[:limit])

    @staticmethod
    def _need_vector(query_vector: np.ndarray | None) -> np.ndarray:
        if query_vector is None:
            raise SearchError("vector and hybrid modes need a query embedding")
        return query_vector

    def _results(self, ranked: list[tuple[int, float]]) -> list[SearchResult]:
        if not ranked:
            return []
        ids = [self.chunk_ids[row] for row, _ in ranked]
        contents = dict(
            self.con.execute(
                "SELECT chunk_id, content FROM chunks WHERE chunk_id IN (SELECT unnest(?))", [ids]
            ).fetchall()
        )
        return [
            SearchResult(
                path=self.paths[row],
                start_line=self.start_lines[row],
                end_line=self.end_lines[row],
                score=round(score, 6),
                symbol=self.symbols[row],
                kind=self.kinds[row],
                language=str(self.languages[row]),
                content=contents[self.chunk_ids[row]],
            )
            for row, score in ranked
        ]
