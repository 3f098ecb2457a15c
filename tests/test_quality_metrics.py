"""The quality benchmark's metrics against hand-computed examples."""

from __future__ import annotations

import math

import pytest

from benchmarks.quality.ground_truth import Answer
from benchmarks.quality.run import Hit, file_ndcg, score, summarize


def test_file_ndcg_lets_extra_chunks_of_one_file_take_slots() -> None:
    answers = [Answer("a.py", "f", 1, 10), Answer("b.py", "g", 1, 10)]
    hits = [
        Hit("a.py", 1, 5),  # rank 1: relevant, new file → 1 / log2(2) = 1
        Hit("a.py", 20, 30),  # rank 2: a.py again → no gain, but it takes the slot
        Hit("c.py", 1, 5),  # rank 3: not relevant
        Hit("b.py", 1, 5),  # rank 4: relevant, new file → 1 / log2(5)
    ]
    dcg = 1.0 + 1 / math.log2(5)
    ideal = 1.0 + 1 / math.log2(3)  # both answer files at ranks 1 and 2
    assert file_ndcg(hits, answers) == pytest.approx(dcg / ideal)
    assert file_ndcg(hits, answers) == pytest.approx(0.8772, abs=1e-4)
    # without the repeated chunk b.py moves up to rank 3
    assert file_ndcg([hits[0], hits[2], hits[3]], answers) == pytest.approx(
        (1.0 + 1 / math.log2(4)) / ideal
    )
    assert file_ndcg([], answers) == 0.0
    assert file_ndcg(hits[:1] * 3, answers[:1]) == 1.0


def test_score_and_summary_of_one_query() -> None:
    answers = [Answer("a.py", "f", 10, 20)]
    hits = [Hit("b.py", 1, 5), Hit("a.py", 30, 40), Hit("a.py", 12, 14)]
    query_score = score(hits, answers)
    assert query_score.file_rank == 2 and query_score.def_rank == 3
    assert query_score.distinct_files == 2
    row = summarize([query_score])
    assert row["file_MRR@10"] == pytest.approx(0.5)
    assert row["def_MRR@10"] == pytest.approx(1 / 3)
    assert row["def_R@1"] == 0.0 and row["def_R@5"] == 1.0
    assert row["file_nDCG@10"] == pytest.approx(1 / math.log2(3))
