"""Segment vectors: distinct vectors per segment, the HNSW graph of large segments."""

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


def test_small_segments_are_scanned_exactly(tmp_path) -> None:
    matrix = clustered_vectors(50, 4)
    assert vectors.save(tmp_path, matrix, min_vectors=100) == [vectors.VECTORS_FILE]
    opened = vectors.SegmentVectors.load(tmp_path, with_graph=False, dim=DIM)
    assert opened.graph is None and opened.count == 50
    query = matrix[3]
    assert np.allclose(opened.scores(query, 5), matrix @ query)


@pytest.fixture
def large(tmp_path) -> tuple[vectors.SegmentVectors, np.ndarray]:
    matrix = clustered_vectors(3000, 30, seed=3)
    written = vectors.save(tmp_path, matrix, min_vectors=100)
    assert written == [vectors.VECTORS_FILE, vectors.ANN_FILE]
    return vectors.SegmentVectors.load(tmp_path, with_graph=True, dim=DIM), matrix


def test_the_graph_returns_depth_candidates_scored_exactly(large) -> None:
    segment, matrix = large
    query = clustered_vectors(1, 30, seed=9)[0]
    exact = matrix @ query
    found = segment.scores(query, 20)
    scored = np.isfinite(found)
    assert scored.sum() == 20
    assert np.allclose(found[scored], exact[scored])  # float32 rows, not the graph's float16
    assert np.array_equal(segment.scores(query, 20, expansion=0), exact.astype(np.float32))


def test_the_graph_finds_the_exact_top_ten(large) -> None:
    segment, matrix = large
    recalls = []
    for query in clustered_vectors(50, 30, seed=9):
        truth = set(np.argsort(-(matrix @ query))[:10].tolist())
        found = segment.scores(query, 10)
        recalls.append(len(truth & set(np.argsort(-found)[:10].tolist())) / 10)
    assert np.mean(recalls) >= 0.95


def test_a_graph_that_does_not_match_its_vectors_is_an_error(tmp_path, large) -> None:
    matrix = clustered_vectors(200, 4)
    vectors.save(tmp_path, matrix, min_vectors=100)
    np.save(tmp_path / vectors.VECTORS_FILE, matrix[:150])
    with pytest.raises(ValueError, match="does not match"):
        vectors.SegmentVectors.load(tmp_path, with_graph=True, dim=DIM)


def test_empty_segment_has_no_vectors(tmp_path) -> None:
    assert vectors.save(tmp_path, np.zeros((0, 0), dtype=np.float32)) == [vectors.VECTORS_FILE]
    opened = vectors.SegmentVectors.load(tmp_path, with_graph=False, dim=DIM)
    assert opened.count == 0 and opened.dim == DIM
    assert opened.scores(np.ones(DIM, dtype=np.float32), 10).shape == (0,)
