"""`gates`: the golden file's format, its errors naming the line, and what blocks promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderag_assets.gates import (
    GOLDEN_FILE,
    GoldenFileError,
    GoldenQuery,
    SearchHit,
    golden_gate,
    read_golden,
)


def write_golden(root: Path, text: str) -> Path:
    path = root / GOLDEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["query"]', "expected a JSON object"),
        ('{"query": "q", "rank": 1}', "missing field(s) path"),
        ('{"query": "q", "path": "a.py"}', "missing field(s) rank"),
        ('{"query": "q", "path": "a.py", "rank": 0}', "`rank` must be an integer >= 1"),
        ('{"query": "", "path": "a.py", "rank": 1}', "`query` must be a non-empty string"),
        ('{"query": "q", "path": "a.py", "rank": 1, "mode": "fuzzy"}', "`mode` must be one of"),
        ('{"query": "q", "path": "a.py", "rank": 1, "limit": 3}', "unknown field(s) limit"),
    ],
)
def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path, line, message) -> None:
    path = write_golden(
        tmp_path, '# comment\n\n{"query": "ok", "path": "a.py", "rank": 2}\n' + line
    )
    with pytest.raises(GoldenFileError) as error:
        read_golden(path)
    assert f"{path}:4: " in str(error.value) and message in str(error.value)


def test_a_good_file_parses_with_defaults(tmp_path) -> None:
    path = write_golden(
        tmp_path,
        '{"query": "lru", "path": "c.py", "rank": 2}\n'
        '{"query": "x", "path": "d.py", "rank": 1, "symbol": "Cache.get", "mode": "bm25"}\n',
    )
    assert read_golden(path) == [
        GoldenQuery(1, "lru", "c.py", 2),
        GoldenQuery(2, "x", "d.py", 1, "Cache.get", "bm25"),
    ]


def _gate(
    root: Path,
    candidate: dict[str, list[SearchHit]],
    live: dict[str, list[SearchHit]] | None,
    **options,
):
    return golden_gate(
        root,
        candidate=lambda query, limit: candidate.get(query.query, [])[:limit],
        candidate_targets=lambda: ({"a.py", "b.py"}, {"a.py": {"mod.f"}, "b.py": {"g"}}),
        live=None if live is None else (lambda query, limit: live.get(query.query, [])[:limit]),
        **options,
    )


def test_no_golden_file_is_no_gate(tmp_path) -> None:
    assert _gate(tmp_path, {}, {}) is None


def test_a_regression_against_the_live_version_blocks(tmp_path) -> None:
    write_golden(tmp_path, '{"query": "f", "path": "a.py", "symbol": "f", "rank": 2}\n')
    hit, other = SearchHit("a.py", "mod.f"), SearchHit("b.py", "g")
    kept = _gate(tmp_path, {"f": [other, hit]}, {"f": [hit]})
    assert kept.passed and kept.metadata["met"] == 1
    lost = _gate(tmp_path, {"f": [other, other, hit]}, {"f": [hit]})
    assert (
        not lost.passed and lost.blocks and "regressed" in lost.detail and "line 1" in lost.detail
    )
    overridden = _gate(tmp_path, {"f": [other, other, hit]}, {"f": [hit]}, skip=True)
    assert not overridden.passed and overridden.skipped and not overridden.blocks


def test_a_query_missing_before_and_after_is_reported_not_blocking(tmp_path) -> None:
    write_golden(tmp_path, '{"query": "f", "path": "a.py", "rank": 1}\n')
    outcome = _gate(tmp_path, {"f": [SearchHit("b.py", "g")]}, {"f": []})
    assert outcome.passed and outcome.metadata["missed_before_and_after"] == 1
    assert "miss on the live version too" in outcome.detail


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"query": "f", "path": "gone.py", "rank": 1}', "unknown path 'gone.py'"),
        ('{"query": "f", "path": "a.py", "symbol": "nope", "rank": 1}', "unknown symbol 'nope'"),
    ],
)
def test_unknown_targets_make_the_gate_misconfigured(tmp_path, line, message) -> None:
    path = write_golden(tmp_path, line + "\n")
    outcome = _gate(tmp_path, {}, None)
    assert outcome.misconfigured and outcome.blocks
    assert f"{path}:1: {message}" in outcome.detail
