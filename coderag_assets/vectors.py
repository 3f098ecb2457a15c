"""The vectors of one segment: distinct vectors only, clustered into an IVF when many.

A segment stores each distinct vector once (`vectors.npy`); chunk rows point at theirs by
index (the `vector` column of the segment's reader file), so chunks sharing content — copies
of a vendored package, a monorepo of look-alike services — cost one vector and one dot product.

Segments with at least `IVF_MIN_VECTORS` distinct vectors are also clustered (an inverted-file
index, "IVF"): k-means (scikit-learn) splits the vectors into about √n clusters, the vectors are
stored cluster by cluster, and `ivf_centroids.npy` / `ivf_offsets.npy` say where each cluster
lies. A query scores the centroids and scans only the vectors of the best `probe` share of the
clusters, so a search reads a small, contiguous part of the memory-mapped matrix instead of all
of it — the matrix of a million chunks is 1.5 GB and a cold process must not page it all in.
The probe share trades recall for pages read; `benchmarks/ann.py` measures recall@10 against
the exact scan on real vectors, and the default (`DEFAULT_PROBE`) is chosen from it.
Smaller segments are scanned exactly: their whole matrix is a few MB.

Clustering is deterministic (fixed seed, one k-means initialisation), so a segment rebuilt from
the same inputs is byte-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.npy"
CENTROIDS_FILE = "ivf_centroids.npy"
IVF_OFFSETS_FILE = "ivf_offsets.npy"
IVF_MIN_VECTORS = 8192  # distinct vectors from which a segment is clustered
KMEANS_SAMPLE_PER_CLUSTER = 64  # k-means trains on at most this many vectors per cluster
KMEANS_MAX_ITER = 20
KMEANS_SEED = 0
DEFAULT_PROBE = 0.1  # share of a clustered segment's clusters scanned per query


@dataclass(frozen=True)
class VectorLayout:
    """How a segment's distinct vectors are stored: `matrix` row i is the vector of
    `sources[i]` (an index into the caller's vector list), clusters as in `SegmentVectors`."""

    matrix: np.ndarray
    sources: np.ndarray
    centroids: np.ndarray | None
    offsets: np.ndarray | None


def distinct(vector_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`sources`, `vector_of_row`): the distinct non-negative entries of `vector_rows`
    (indices into a vector table, -1 for a row without a vector) in ascending order, and for
    each row the position of its entry in `sources` (-1 where it has none)."""
    has = vector_rows >= 0
    sources, inverse = np.unique(vector_rows[has], return_inverse=True)
    vector_of_row = np.full(len(vector_rows), -1, dtype=np.int32)
    vector_of_row[has] = inverse.astype(np.int32)
    return sources, vector_of_row


def layout(matrix: np.ndarray, *, min_vectors: int | None = None) -> VectorLayout:
    """Store `matrix` (distinct, L2-normalised float32 vectors) as is when it has fewer than
    `min_vectors` (default `IVF_MIN_VECTORS`) rows, else cluster by cluster with centroids
    and offsets."""
    count = len(matrix)
    min_vectors = IVF_MIN_VECTORS if min_vectors is None else min_vectors
    identity = np.arange(count, dtype=np.int64)
    if count < max(min_vectors, 2):
        return VectorLayout(matrix, identity, None, None)
    from sklearn.cluster import KMeans  # only segments this large pay for the import

    clusters = max(2, round(math.sqrt(count)))
    sample_size = min(count, clusters * KMEANS_SAMPLE_PER_CLUSTER)
    sample = matrix[
        np.sort(np.random.default_rng(KMEANS_SEED).choice(count, sample_size, replace=False))
    ]
    kmeans = KMeans(
        n_clusters=clusters, n_init=1, max_iter=KMEANS_MAX_ITER, random_state=KMEANS_SEED
    ).fit(sample)
    centroids = kmeans.cluster_centers_.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    labels = np.argmax(matrix @ centroids.T, axis=1)  # nearest by cosine, as queries probe
    order = np.argsort(labels, kind="stable")
    offsets = np.zeros(clusters + 1, dtype=np.int64)
    np.cumsum(np.bincount(labels, minlength=clusters), out=offsets[1:])
    return VectorLayout(np.ascontiguousarray(matrix[order]), order, centroids, offsets)


def save(directory: Path, vector_layout: VectorLayout) -> list[str]:
    """Write the layout's files into `directory`; the names written."""
    np.save(directory / VECTORS_FILE, vector_layout.matrix)
    if vector_layout.centroids is None or vector_layout.offsets is None:
        return [VECTORS_FILE]
    np.save(directory / CENTROIDS_FILE, vector_layout.centroids)
    np.save(directory / IVF_OFFSETS_FILE, vector_layout.offsets)
    return [VECTORS_FILE, CENTROIDS_FILE, IVF_OFFSETS_FILE]


@dataclass(frozen=True)
class SegmentVectors:
    """A segment's distinct vectors, memory-mapped: `matrix` (n × dim float32) and, when
    clustered, `centroids` (clusters × dim) with `offsets` (clusters + 1): cluster c holds
    matrix rows offsets[c]:offsets[c+1]."""

    matrix: np.ndarray
    centroids: np.ndarray | None = None
    offsets: np.ndarray | None = None

    @classmethod
    def load(cls, directory: Path, *, clustered: bool, dim: int) -> SegmentVectors:
        """Memory-map the files `save` wrote (an empty matrix of width `dim` when none)."""
        matrix = np.load(directory / VECTORS_FILE, mmap_mode="r")
        if matrix.shape[0] == 0:
            matrix = np.zeros((0, dim), dtype=np.float32)
        if not clustered:
            return cls(matrix)
        return cls(
            matrix,
            np.load(directory / CENTROIDS_FILE, mmap_mode="r"),
            np.load(directory / IVF_OFFSETS_FILE),
        )

    @property
    def count(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def clustered(self) -> bool:
        return self.centroids is not None

    def scores(self, query: np.ndarray, probe: float = DEFAULT_PROBE) -> np.ndarray:
        """Cosine score of every distinct vector for `query` (float32, length `count`); with
        clusters and `probe` < 1, only the vectors of the best `probe` share of the clusters
        (at least one) are scored and the rest are -inf."""
        if not self.clustered or probe >= 1.0 or self.count == 0:
            return np.asarray(self.matrix @ query, dtype=np.float32)
        assert self.centroids is not None and self.offsets is not None
        clusters = len(self.centroids)
        probed = max(1, math.ceil(clusters * probe))
        nearest = np.argpartition(-(self.centroids @ query), probed - 1)[:probed]
        scores = np.full(self.count, -np.inf, dtype=np.float32)
        for cluster in np.sort(nearest):
            start, end = int(self.offsets[cluster]), int(self.offsets[cluster + 1])
            if end > start:
                scores[start:end] = self.matrix[start:end] @ query
        return scores
