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

A long-lived reader scans a compact copy instead (`SCAN_CODES_FILE`, written beside
`vectors.npy`): each vector as int8 codes times one float32 scale (a quarter of the bytes the
exact scan keeps resident), with a bound on each approximate score's error (the residual's
norm). `approximate_scores` gives scores and bounds; the reader then rescores exactly, from
`vectors.npy` read by position, every row the bounds cannot rule out of the top it needs
(`exact_scores`), so the top rows and their scores are the exact scan's. A segment without
the copy (written before it existed) is scanned exactly.

Approximate search was measured and not kept: an HNSW graph per segment (usearch, float16,
memory-mapped) reached recall@10 0.99 on real vectors, but at a million vectors in 64 segments
a cold query mapped 2.3 GB (each graph's visited nodes span most of its file), warm queries
were 45 ms against 75 ms exact, and building the graphs cost 172 s plus ~2 s per rebuilt
segment (benchmarks/results/2026-12-02/summary.md, session 4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.npy"
SCAN_CODES_FILE = "vectors_i8.npy"  # n × dim int8: the scan copy's codes
SCAN_SCALES_FILE = "vectors_i8_scales.npy"  # n × 2 float32: each vector's scale, error bound
STREAM_BLOCK_ROWS = 16384  # rows read at once by `streamed_scores` (24 MiB at 384 dims)
SCAN_BLOCK_ROWS = 512  # int8 rows widened to float32 at once (768 KiB at 384 dims: in cache)
CODE_LEVELS = 127  # codes are -127..127
# Added to every error bound: float32 rounding of the approximate and of the exact dot
# product (at most ~3e-5 for unit vectors of 384 dims) is far below it.
BOUND_FLOAT_SLACK = 1e-4


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


def scan_copy_enabled() -> bool:
    """Whether long-lived readers scan the int8 copy: yes unless CODERAG_EXACT_VECTORS is set
    (1/true/yes/on), which makes them scan `vectors.npy` exactly, as one-shot readers do."""
    value = os.environ.get("CODERAG_EXACT_VECTORS", "").strip().lower()
    return value not in ("1", "true", "yes", "on")


def quantize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, scales): each row of `matrix` as int8 codes (-127..127) times its scale
    (`scales[:, 0]`), and `scales[:, 1]` the L2 norm of what that leaves out, so that for any
    query q, |q·row − scale·(q·codes)| ≤ |q| · bound."""
    matrix = np.asarray(matrix, dtype=np.float32)
    peak = np.abs(matrix).max(axis=1) if matrix.size else np.zeros(len(matrix), np.float32)
    scale = np.where(peak > 0, peak / CODE_LEVELS, 1.0).astype(np.float32)
    codes = np.clip(np.rint(matrix / scale[:, None]), -CODE_LEVELS, CODE_LEVELS).astype(np.int8)
    residual = matrix - codes.astype(np.float32) * scale[:, None]
    bound = np.linalg.norm(residual.astype(np.float64), axis=1)
    return codes, np.stack([scale, bound.astype(np.float32)], axis=1)


def save_scan_copy(directory: Path, matrix: np.ndarray) -> tuple[str, str]:
    """Write the int8 scan copy of `matrix` (see `quantize`) into `directory`; the names."""
    codes, scales = quantize(matrix)
    np.save(directory / SCAN_CODES_FILE, codes)
    np.save(directory / SCAN_SCALES_FILE, scales)
    return SCAN_CODES_FILE, SCAN_SCALES_FILE


@dataclass(frozen=True)
class SegmentVectors:
    """A segment's distinct vectors: `matrix` (n × dim float32, memory-mapped from `path`,
    whose data starts `offset` bytes in); with the scan copy loaded, `codes` (n × dim int8,
    mapped) and `scales` (n × 2 float32: scale and error bound, in memory)."""

    matrix: np.ndarray
    path: Path | None = None
    offset: int = 0
    codes: np.ndarray | None = None
    scales: np.ndarray | None = None

    @classmethod
    def load(cls, directory: Path, *, dim: int, scan_copy: bool = False) -> SegmentVectors:
        """Memory-map `vectors.npy` (an empty matrix of width `dim` when it has no rows) and,
        with `scan_copy`, the int8 scan copy when the segment has one. Raises ValueError when
        a file is not the matrix it should be."""
        path = directory / VECTORS_FILE
        matrix = np.load(path, mmap_mode="r")
        if matrix.shape[0] == 0:
            return cls(np.zeros((0, dim), dtype=np.float32))
        if matrix.dtype != np.float32 or not matrix.flags.c_contiguous:
            raise ValueError(f"{path} is not a C-ordered float32 matrix")
        codes = scales = None
        if scan_copy and (directory / SCAN_CODES_FILE).exists():
            codes = np.load(directory / SCAN_CODES_FILE, mmap_mode="r")
            scales = np.load(directory / SCAN_SCALES_FILE)
            if codes.dtype != np.int8 or codes.shape != matrix.shape:
                raise ValueError(f"{directory / SCAN_CODES_FILE} does not match {path}")
            if scales.dtype != np.float32 or scales.shape != (len(matrix), 2):
                raise ValueError(f"{directory / SCAN_SCALES_FILE} does not match {path}")
        return cls(matrix, path, int(matrix.offset), codes, scales)

    @property
    def approximate(self) -> bool:
        """Whether `approximate_scores` scans the int8 copy (else the exact matrix)."""
        return self.codes is not None

    def approximate_scores(
        self, query: np.ndarray, buffer: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, bounds) of every vector: the true cosine lies within score ± bound. From
        the int8 copy, widened `SCAN_BLOCK_ROWS` rows at a time into `buffer`; without it,
        the exact scores and zero bounds."""
        if self.codes is None or self.scales is None:
            scores = self.scores(query)
            return scores, np.zeros(len(scores), dtype=np.float32)
        if buffer is None or buffer.shape[1] != self.dim:
            buffer = np.empty((SCAN_BLOCK_ROWS, self.dim), dtype=np.float32)
        scores = np.empty(self.count, dtype=np.float32)
        for start in range(0, self.count, len(buffer)):
            rows = min(len(buffer), self.count - start)
            np.copyto(buffer[:rows], self.codes[start : start + rows])
            np.matmul(buffer[:rows], query, out=scores[start : start + rows])
        scores *= self.scales[:, 0]
        query_norm = float(np.linalg.norm(query))
        bounds = self.scales[:, 1] * np.float32(query_norm) + np.float32(BOUND_FLOAT_SLACK)
        return scores, bounds

    def exact_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Exact cosine of the vectors at `rows` (ascending distinct indices), read by position
        from `vectors.npy` rather than through the map, so only those rows are read. Summed in
        float64 and rounded to float32 (the float32 scan can differ from it in the last bit,
        depending on where in a block a row lies). Raises
        OSError when the file is shorter than recorded."""
        if self.path is None or not len(rows):
            return np.asarray(self.matrix[rows] @ query, dtype=np.float32)
        row_bytes = self.dim * 4
        gathered = np.empty((len(rows), self.dim), dtype=np.float32)
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            for position, row in enumerate(rows.tolist()):
                data = os.pread(descriptor, row_bytes, self.offset + row * row_bytes)
                if len(data) != row_bytes:
                    raise OSError(f"{self.path} ended before vector {row}")
                gathered[position] = np.frombuffer(data, dtype=np.float32)
        finally:
            os.close(descriptor)
        # in float64, rounded once: a vector's score does not depend on where it was read
        return (gathered.astype(np.float64) @ query.astype(np.float64)).astype(np.float32)

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
