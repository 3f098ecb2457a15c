"""The vectors of one segment: each distinct vector once, scanned exactly.

A segment stores each distinct vector once (`vectors.npy`, float32, L2-normalised); chunk rows
point at theirs by index (the `vector` column of the segment's reader file), so chunks sharing
content — copies of a vendored package, a monorepo of look-alike services — cost one vector
and one dot product.

Search scores every vector (exact results, no recall to lose), in one of two ways:

- **mapped** (`scores`): a matrix product over the memory-mapped file. A long-lived process
  (MCP server, `coderag watch`) keeps the pages and answers in milliseconds.
- **streamed** (`streamed_scores`): the file is read `STREAM_BLOCK_ROWS` rows at a time into
  one reusable buffer. A one-shot `coderag search` reads every vector once either way, but
  mapped pages are charged to the process's RSS, while streamed reads keep the process at one
  block however large the index. (Even scattered reads of a mapped file leave most of it
  resident on this machine's kernel: reading 100 random rows of each of 64 15k-row matrices
  mapped 1.3 of their 1.5 GB.)

Approximate search was measured and not kept: an HNSW graph per segment (usearch, float16,
memory-mapped) reached recall@10 0.99 on real vectors, but at a million vectors in 64 segments
a cold query mapped 2.3 GB (each graph's visited nodes span most of its file), warm queries
were 45 ms against 75 ms exact, and building the graphs cost 172 s plus ~2 s per rebuilt
segment (benchmarks/results/2026-12-02/summary.md, session 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.npy"
STREAM_BLOCK_ROWS = 16384  # rows read at once by `streamed_scores` (24 MiB at 384 dims)


def distinct(vector_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`sources`, `vector_of_row`): the distinct non-negative entries of `vector_rows`
    (indices into a vector table, -1 for a row without a vector) in ascending order, and for
    each row the position of its entry in `sources` (-1 where it has none)."""
    has = vector_rows >= 0
    sources, inverse = np.unique(vector_rows[has], return_inverse=True)
    vector_of_row = np.full(len(vector_rows), -1, dtype=np.int32)
    vector_of_row[has] = inverse.astype(np.int32)
    return sources, vector_of_row


def save(directory: Path, matrix: np.ndarray) -> str:
    """Write `matrix` (distinct, L2-normalised float32 vectors) into `directory`; the name."""
    np.save(directory / VECTORS_FILE, np.ascontiguousarray(matrix, dtype=np.float32))
    return VECTORS_FILE


@dataclass(frozen=True)
class SegmentVectors:
    """A segment's distinct vectors: `matrix` (n × dim float32, memory-mapped from `path`,
    whose data starts `offset` bytes in)."""

    matrix: np.ndarray
    path: Path | None = None
    offset: int = 0

    @classmethod
    def load(cls, directory: Path, *, dim: int) -> SegmentVectors:
        """Memory-map `vectors.npy` (an empty matrix of width `dim` when it has no rows)."""
        path = directory / VECTORS_FILE
        matrix = np.load(path, mmap_mode="r")
        if matrix.shape[0] == 0:
            return cls(np.zeros((0, dim), dtype=np.float32))
        if matrix.dtype != np.float32 or not matrix.flags.c_contiguous:
            raise ValueError(f"{path} is not a C-ordered float32 matrix")
        return cls(matrix, path, int(matrix.offset))

    @property
    def count(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine score of every vector (float32, length `count`), over the mapped matrix."""
        return np.asarray(self.matrix @ query, dtype=np.float32)

    def streamed_scores(self, query: np.ndarray, buffer: np.ndarray | None = None) -> np.ndarray:
        """`scores`, reading the file block by block into `buffer` (STREAM_BLOCK_ROWS × dim
        float32, allocated when None) instead of mapping it. Raises OSError when the file
        is shorter than recorded."""
        if self.path is None or self.count == 0:
            return self.scores(query)
        if buffer is None or buffer.shape[1] != self.dim:
            buffer = np.empty((STREAM_BLOCK_ROWS, self.dim), dtype=np.float32)
        scores = np.empty(self.count, dtype=np.float32)
        row_bytes = self.dim * 4
        with open(self.path, "rb", buffering=0) as source:
            source.seek(self.offset)
            for start in range(0, self.count, len(buffer)):
                rows = min(len(buffer), self.count - start)
                view = memoryview(buffer[:rows]).cast("B")
                got = source.readinto(view)
                if got != rows * row_bytes:
                    raise OSError(f"{self.path} ended after {start + (got or 0) // row_bytes} rows")
                np.matmul(buffer[:rows], query, out=scores[start : start + rows])
        return scores
