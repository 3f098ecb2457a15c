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
