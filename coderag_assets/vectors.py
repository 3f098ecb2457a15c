"""The vectors of one segment: distinct vectors only, with an HNSW graph when there are many.

A segment stores each distinct vector once (`vectors.npy`, float32, L2-normalised); chunk rows
point at theirs by index (the `vector` column of the segment's reader file), so chunks sharing
content — copies of a vendored package, a monorepo of look-alike services — cost one vector
and one dot product.

Segments with at least `ANN_MIN_VECTORS` distinct vectors also get an approximate
nearest-neighbour index (`vectors.usearch`: an HNSW graph built by `usearch`, float16 copies of
the vectors, keys = rows of `vectors.npy`). Readers memory-map it, so a query visits a few
hundred graph nodes instead of paging in the whole matrix — the matrix of a million chunks is
1.5 GB and a cold process must not read it all. The candidates the graph returns are
re-scored with the float32 rows of `vectors.npy` (a few pages), so scores equal the exact
scan's for every vector found. Recall@10 against the exact scan is measured by
`benchmarks/ann.py` on real vectors; `DEFAULT_EXPANSION` is chosen from it. Smaller segments
are scanned exactly: their whole matrix is at most a few MB.

Building the graph is multi-threaded and not byte-reproducible; a segment's id is a digest of
its inputs, so a rebuilt twin is interchangeable (the first one renamed in wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.npy"
ANN_FILE = "vectors.usearch"
ANN_MIN_VECTORS = 2048  # distinct vectors from which a segment gets an HNSW graph
ANN_CONNECTIVITY = 16  # graph edges per node (usearch's default)
ANN_EXPANSION_ADD = 128  # candidate list while building
DEFAULT_EXPANSION = 64  # candidate list while searching (`RankingConfig.vector_expansion`)
ANN_BUILD_THREADS = 0  # 0: every core


def distinct(vector_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`sources`, `vector_of_row`): the distinct non-negative entries of `vector_rows`
    (indices into a vector table, -1 for a row without a vector) in ascending order, and for
    each row the position of its entry in `sources` (-1 where it has none)."""
    has = vector_rows >= 0
    sources, inverse = np.unique(vector_rows[has], return_inverse=True)
    vector_of_row = np.full(len(vector_rows), -1, dtype=np.int32)
    vector_of_row[has] = inverse.astype(np.int32)
    return sources, vector_of_row


def save(directory: Path, matrix: np.ndarray, *, min_vectors: int | None = None) -> list[str]:
    """Write `matrix` (distinct, L2-normalised float32 vectors) into `directory`, plus an HNSW
    graph when it has at least `min_vectors` (default `ANN_MIN_VECTORS`) rows; the names
    written."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    np.save(directory / VECTORS_FILE, matrix)
    min_vectors = ANN_MIN_VECTORS if min_vectors is None else min_vectors
    if len(matrix) < max(min_vectors, 1):
        return [VECTORS_FILE]
    from usearch.index import Index  # only segments this large pay for the import

    graph = Index(
        ndim=matrix.shape[1],
        metric="ip",  # unit vectors: inner product = cosine
        dtype="f16",
        connectivity=ANN_CONNECTIVITY,
        expansion_add=ANN_EXPANSION_ADD,
    )
    graph.add(np.arange(len(matrix), dtype=np.uint64), matrix, threads=ANN_BUILD_THREADS)
    graph.save(str(directory / ANN_FILE))
    return [VECTORS_FILE, ANN_FILE]


@dataclass(frozen=True)
class SegmentVectors:
    """A segment's distinct vectors, memory-mapped: `matrix` (n × dim float32) and, for large
    segments, `graph` (a usearch HNSW index viewed from its file, keys = matrix rows)."""

    matrix: np.ndarray
    graph: object | None = None

    @classmethod
    def load(cls, directory: Path, *, with_graph: bool, dim: int) -> SegmentVectors:
        """Memory-map the files `save` wrote (an empty matrix of width `dim` when none)."""
        matrix = np.load(directory / VECTORS_FILE, mmap_mode="r")
        if matrix.shape[0] == 0:
            matrix = np.zeros((0, dim), dtype=np.float32)
        if not with_graph:
            return cls(matrix)
        from usearch.index import Index

        graph = Index.restore(str(directory / ANN_FILE), view=True)
        if graph is None or len(graph) != matrix.shape[0]:
            raise ValueError(f"{ANN_FILE} does not match {VECTORS_FILE}")
        return cls(matrix, graph)

    @property
    def count(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def scores(self, query: np.ndarray, depth: int, expansion: int = DEFAULT_EXPANSION):
        """Cosine score of distinct vectors for `query` (float32, length `count`). With a graph
        and `expansion` > 0 only the `depth` best found by the graph (searching with a
        candidate list of max(`expansion`, `depth`)) are scored, exactly; the rest are -inf.
        Otherwise every vector is scored."""
        if self.graph is None or expansion <= 0 or depth >= self.count:
            return np.asarray(self.matrix @ query, dtype=np.float32)
        graph = self.graph
        graph.expansion_search = max(expansion, depth)  # type: ignore[attr-defined]
        found = graph.search(query, depth, threads=1)  # type: ignore[attr-defined]
        rows = np.sort(np.asarray(found.keys[: len(found)], dtype=np.int64))
        scores = np.full(self.count, -np.inf, dtype=np.float32)
        scores[rows] = self.matrix[rows] @ query
        return scores
