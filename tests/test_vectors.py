"""Segment vectors: distinct vectors per segment, the clustered (IVF) layout and its probing."""

from __future__ import annotations

import numpy as np
import pytest

from coderag_assets import vectors

DIM = 16


def clustered_vectors(count: int, groups: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around `groups` random directions (code embeddings cluster like this)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(groups, DIM))
    points = centers[rng.integers(0, groups, count)] + 0.3 * rng.normal(size=(count, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_distinct_maps_every_row_to_its_vector_once() -> None:
    sources, vector_of_row = vectors.distinct(np.array([5, -1, 2, 5, 2, 7]))
    assert sources.tolist() == [2, 5, 7]
    assert vector_of_row.tolist() == [1, -1, 0, 1, 0, 2]
    assert vector_of_row.dtype == np.int32


def test_small_segments_are_stored_as_they_are(tmp_path) -> None:
    matrix = clustered_vectors(50, 4)
    layout = vectors.layout(matrix, min_vectors=100)
    assert layout.centroids is None and layout.offsets is None
    assert np.array_equal(layout.matrix, matrix)
    assert vectors.save(tmp_path, layout) == [vectors.VECTORS_FILE]
    opened = vectors.SegmentVectors.load(tmp_path, clustered=False, dim=DIM)
    query = matrix[3]
    assert not opened.clustered
    assert np.allclose(opened.scores(query, 0.01), matrix @ query)


def test_clustered_layout_stores_each_vector_once_by_cluster(tmp_path) -> None:
    matrix = clustered_vectors(900, 12)
    layout = vectors.layout(matrix, min_vectors=100)
    assert layout.centroids is not None and layout.offsets is not None
    assert len(layout.centroids) == 30  # about √900
    assert sorted(layout.sources.tolist()) == list(range(900))
    assert np.array_equal(layout.matrix, matrix[layout.sources])
    assert layout.offsets[0] == 0 and layout.offsets[-1] == 900
    assert np.all(np.diff(layout.offsets) >= 0)
    # every vector lies in the cluster of its nearest centroid
    nearest = np.argmax(layout.matrix @ layout.centroids.T, axis=1)
    owner = np.searchsorted(layout.offsets, np.arange(900), side="right") - 1
    assert np.array_equal(nearest, owner)
    written = vectors.save(tmp_path, layout)
    assert written == [vectors.VECTORS_FILE, vectors.CENTROIDS_FILE, vectors.IVF_OFFSETS_FILE]


def test_clustering_is_deterministic(tmp_path) -> None:
    matrix = clustered_vectors(600, 8)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        vectors.save(tmp_path / name, vectors.layout(matrix, min_vectors=100))
    for name in (vectors.VECTORS_FILE, vectors.CENTROIDS_FILE, vectors.IVF_OFFSETS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.fixture
def opened(tmp_path) -> tuple[vectors.SegmentVectors, np.ndarray]:
    matrix = clustered_vectors(2000, 20, seed=3)
    layout = vectors.layout(matrix, min_vectors=100)
    vectors.save(tmp_path, layout)
    return vectors.SegmentVectors.load(tmp_path, clustered=True, dim=DIM), layout.matrix


def test_probing_scores_only_the_nearest_clusters(opened) -> None:
    segment, stored = opened
    query = clustered_vectors(1, 20, seed=3)[0]
    exact = stored @ query
    assert np.allclose(segment.scores(query, 1.0), exact)
    probed = segment.scores(query, 0.1)
    scored = np.isfinite(probed)
    clusters = len(segment.centroids)
    assert 0 < scored.sum() < len(stored)
    assert np.allclose(probed[scored], exact[scored])
    owners = set(np.searchsorted(segment.offsets, np.flatnonzero(scored), side="right") - 1)
    assert len(owners) <= int(np.ceil(clusters * 0.1))
    best_centroids = np.argsort(-(segment.centroids @ query))[: len(owners)]
    assert owners == set(best_centroids.tolist())


def test_probing_finds_the_exact_top_ten_on_clustered_data(opened) -> None:
    segment, stored = opened
    recalls = []
    for query in clustered_vectors(50, 20, seed=3):
        truth = set(np.argsort(-(stored @ query))[:10].tolist())
        found = segment.scores(query, vectors.DEFAULT_PROBE)
        recalls.append(len(truth & set(np.argsort(-found)[:10].tolist())) / 10)
    assert np.mean(recalls) >= 0.95


def test_empty_segment_has_no_vectors(tmp_path) -> None:
    vectors.save(tmp_path, vectors.layout(np.zeros((0, 0), dtype=np.float32)))
    opened = vectors.SegmentVectors.load(tmp_path, clustered=False, dim=DIM)
    assert opened.count == 0 and opened.dim == DIM
    assert opened.scores(np.ones(DIM, dtype=np.float32)).shape == (0,)
