"""Segment vectors: each distinct vector once, scanned mapped or streamed."""

from __future__ import annotations

import numpy as np
import pytest

from coderag_assets import vectors

DIM = 16


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(count, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_distinct_maps_every_row_to_its_vector_once() -> None:
    sources, vector_of_row = vectors.distinct(np.array([5, -1, 2, 5, 2, 7]))
    assert sources.tolist() == [2, 5, 7]
    assert vector_of_row.tolist() == [1, -1, 0, 1, 0, 2]
    assert vector_of_row.dtype == np.int32


@pytest.mark.parametrize("count", [1, 50, 3 * 7 + 2])
def test_streamed_scores_equal_the_mapped_scan(tmp_path, count) -> None:
    matrix = unit_vectors(count)
    assert vectors.save(tmp_path, matrix) == vectors.VECTORS_FILE
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM)
    assert opened.count == count and opened.dim == DIM
    query = unit_vectors(1, seed=9)[0]
    mapped = opened.scores(query)
    assert np.allclose(mapped, matrix @ query)
    small_blocks = np.empty((7, DIM), dtype=np.float32)  # several blocks and a partial one
    assert np.allclose(opened.streamed_scores(query, small_blocks), mapped)
    assert np.allclose(opened.streamed_scores(query), mapped)


def test_a_truncated_vector_file_is_an_error_when_streamed(tmp_path) -> None:
    vectors.save(tmp_path, unit_vectors(40))
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM)
    path = tmp_path / vectors.VECTORS_FILE
    path.write_bytes(path.read_bytes()[: opened.offset + 30 * DIM * 4])
    with pytest.raises(OSError, match="ended after 30 rows"):
        opened.streamed_scores(unit_vectors(1)[0])


def test_empty_segment_has_no_vectors(tmp_path) -> None:
    vectors.save(tmp_path, np.zeros((0, 0), dtype=np.float32))
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM)
    assert opened.count == 0 and opened.dim == DIM
    query = np.ones(DIM, dtype=np.float32)
    assert opened.scores(query).shape == opened.streamed_scores(query).shape == (0,)


def test_int8_scan_copy_scores_within_their_bounds(tmp_path) -> None:
    matrix = unit_vectors(300)
    vectors.save(tmp_path, matrix)
    assert vectors.save_scan_copy(tmp_path, matrix) == (
        vectors.SCAN_CODES_FILE,
        vectors.SCAN_SCALES_FILE,
    )
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM, scan_copy=True)
    assert opened.approximate and opened.codes.dtype == np.int8
    assert (tmp_path / vectors.SCAN_CODES_FILE).stat().st_size < matrix.nbytes / 3
    for seed in range(20):
        query = unit_vectors(1, seed=100 + seed)[0] * (0.5 + seed / 10)  # not only unit length
        exact = matrix @ query
        small_blocks = np.empty((7, DIM), dtype=np.float32)
        approximate, bounds = opened.approximate_scores(query, small_blocks)
        assert np.all(np.abs(approximate - exact) <= bounds)
        assert np.all(bounds < 0.05 * np.linalg.norm(query))  # tight enough to prune
        assert not np.array_equal(approximate, exact)  # it is the int8 copy that was scanned
        assert np.allclose(opened.approximate_scores(query)[0], approximate, atol=1e-6)


def test_exact_scores_read_only_the_asked_rows(tmp_path) -> None:
    matrix = unit_vectors(64)
    vectors.save(tmp_path, matrix)
    vectors.save_scan_copy(tmp_path, matrix)
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM, scan_copy=True)
    query = unit_vectors(1, seed=3)[0]
    rows = np.array([0, 5, 6, 63])
    assert np.allclose(opened.exact_scores(rows, query), matrix[rows] @ query, atol=1e-6)
    path = tmp_path / vectors.VECTORS_FILE
    path.write_bytes(path.read_bytes()[: opened.offset + 10 * DIM * 4])
    with pytest.raises(OSError, match="ended before vector 63"):
        opened.exact_scores(rows, query)


def test_without_a_scan_copy_the_scan_is_exact(tmp_path) -> None:
    matrix = unit_vectors(20)
    vectors.save(tmp_path, matrix)  # a segment written before scan copies existed
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM, scan_copy=True)
    query = unit_vectors(1, seed=4)[0]
    scores, bounds = opened.approximate_scores(query)
    assert not opened.approximate
    assert np.array_equal(scores, opened.scores(query)) and not bounds.any()


def test_a_scan_copy_of_another_matrix_is_refused(tmp_path) -> None:
    vectors.save(tmp_path, unit_vectors(20))
    vectors.save_scan_copy(tmp_path, unit_vectors(21))
    with pytest.raises(ValueError, match="does not match"):
        vectors.SegmentVectors.load(tmp_path, dim=DIM, scan_copy=True)
    assert not vectors.SegmentVectors.load(tmp_path, dim=DIM).approximate  # not asked: not read


def test_empty_segment_scan_copy(tmp_path) -> None:
    vectors.save(tmp_path, np.zeros((0, 0), dtype=np.float32))
    vectors.save_scan_copy(tmp_path, np.zeros((0, 0), dtype=np.float32))
    opened = vectors.SegmentVectors.load(tmp_path, dim=DIM, scan_copy=True)
    assert opened.count == 0
