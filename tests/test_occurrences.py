"""Identifier occurrences recorded by the chunker (`chunking.occurrences`): what reference
search looks names up in. Per language: which tokens are recorded, at which 1-based character
column, and whether each sits in code, a comment, a string or a text file; plus agreement with
the per-occurrence classifier (`contexts.occurrence_contexts`) on every chunking fixture."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coderag_assets.chunking import SUPPORTED_AST_LANGUAGES, chunk_file, language_for_path
from coderag_assets.chunking.contexts import occurrence_contexts

FIXTURES = Path(__file__).parent / "fixtures" / "chunking"


def occurrences_of(name: str, text: str, language: str) -> list[tuple[int, int, str]]:
    """(line, column, context) of every occurrence of `name` the chunker recorded."""
    chunked = chunk_file(f"sample.{language}", text, language)
    return [(line, column, ctx) for n, line, column, ctx in chunked.occurrences.rows() if n == name]


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        (
            "python",
            (
                'def get(x):\n    """Call get to read."""\n    # get is cached\n'
                '    s = f"{get(x)} get"\n    return get(x)\n'
            ),
            [
                (1, 5, "code"),
                (2, 13, "string"),
                (3, 7, "comment"),
                (4, 12, "code"),
                (4, 20, "string"),
                (5, 12, "code"),
            ],
        ),
        (
            "javascript",
            '// get a thing\nconst a = `${get(1)} get`;\nconst b = "get"; get(2);\n',
            [
                (1, 4, "comment"),
                (2, 14, "code"),
                (2, 22, "string"),
                (3, 12, "string"),
                (3, 18, "code"),
            ],
        ),
        (
            "typescript",
            "/** get docs */\nfunction get(k: string): string { return `${get}:get`; }\n",
            [(1, 5, "comment"), (2, 10, "code"), (2, 45, "code"), (2, 50, "string")],
        ),
        (
            "go",
            'package main\n// get it\nfunc get() string { return "get" }\n',
            [(2, 4, "comment"), (3, 6, "code"), (3, 29, "string")],
        ),
        (
            "rust",
            '/// get docs\nfn get() -> &\'static str { get(); "get" } // get\n',
            [
                (1, 5, "comment"),
                (2, 4, "code"),
                (2, 28, "code"),
                (2, 36, "string"),
                (2, 46, "comment"),
            ],
        ),
    ],
)
def test_occurrences_per_language_with_context(
    language: str, text: str, expected: list[tuple[int, int, str]]
) -> None:
    assert occurrences_of("get", text, language) == expected


def test_whole_words_only_and_numbers_are_not_identifiers() -> None:
    text = "def get_netrc_auth(target):\n    return get2(target, 4096, 0x1F)\n"
    names = [name for name, *_ in chunk_file("a.py", text, "python").occurrences.rows()]
    assert names == ["def", "get_netrc_auth", "target", "return", "get2", "target"]
    assert "get" not in names and "4096" not in names and "x1F" not in names


def test_columns_count_characters_not_bytes() -> None:
    text = 's = "é get"\nt = f"{get}é get"  # ü get\n'
    assert occurrences_of("get", text, "python") == [
        (1, 8, "string"),
        (2, 8, "code"),
        (2, 14, "string"),
        (2, 24, "comment"),
    ]


def test_text_files_record_every_word_as_text() -> None:
    chunked = chunk_file("docs/guide.md", "# Guide\n\nCall `get` to read a value.\n", "markdown")
    assert ("get", 3, 7, "text") in chunked.occurrences.rows()
    assert {context for *_, context in chunked.occurrences.rows()} == {"text"}
    assert chunk_file("empty.py", "  \n", "python").occurrences.rows() == []


def test_overlong_line_is_recorded_once_at_its_true_columns() -> None:
    entries = ", ".join(f'"entry_{i:04d}"' for i in range(600))
    line = f'const table = ["get", {entries}, get(2)];'
    chunked = chunk_file("t.js", f"{line}\n", "javascript")
    assert sum(c.start_line == c.end_line == 1 for c in chunked.chunks) > 2
    assert occurrences_of("get", f"{line}\n", "javascript") == [
        (1, line.index('"get"') + 2, "string"),
        (1, line.index("get(2)") + 1, "code"),
    ]


@pytest.mark.parametrize("path", sorted(FIXTURES.iterdir()), ids=lambda p: p.name)
def test_contexts_agree_with_the_per_occurrence_classifier(path: Path) -> None:
    """One sweep over the file gives each token the context a parse-and-walk-up of that token
    gives — except the TypeScript/PHP `string` type keyword, which the walk-up takes for a
    string literal (an anonymous node named "string") and the index rightly calls code."""
    language = language_for_path(path.name)
    text = path.read_text()
    rows = chunk_file(path.name, text, language).occurrences.rows()
    assert rows, path.name
    if language not in SUPPORTED_AST_LANGUAGES:
        assert {context for *_, context in rows} == {"text"}
        return
    expected = occurrence_contexts(
        text, language, [(line - 1, column - 1, len(name)) for name, line, column, _ in rows]
    )
    disagreements = [(row, old) for row, old in zip(rows, expected, strict=True) if row[3] != old]
    assert all(name == "string" for (name, *_), _ in disagreements), disagreements
    lines = text.split("\n")
    for name, line, column, _ in rows:  # positions point at the token, in characters
        assert lines[line - 1][column - 1 : column - 1 + len(name)] == name


def test_build_chunks_writes_occurrences_and_reuses_them_for_unchanged_files(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    from coderag_assets import segments
    from coderag_assets.indexing import build_chunks, build_manifest, scan_shards
    from coderag_assets.store import IndexStore

    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("def alpha():\n    return beta  # gamma\n")
    (root / "b.md").write_text("old words\n")
    store = IndexStore.for_root(tmp_path / "data", root)

    def run() -> tuple[int, int, set[tuple[str, str, str]]]:
        stats = scan_shards(root, ["0"], lambda _: "0", max_file_bytes=10_000)["0"]
        build_manifest(store, "0", stats, max_file_bytes=10_000)
        chunk_stats = build_chunks(store, "0", run_id="r", max_file_bytes=10_000)
        rows = store.read_shard("occurrences", "0", segments.OCCURRENCE_SCHEMA).to_pylist()
        found = {(row["path"], row["name"], row["context"]) for row in rows}
        return chunk_stats.files_chunked, chunk_stats.files_reused, found

    chunked, reused, found = run()
    assert (chunked, reused) == (2, 0)
    assert {
        ("a.py", "beta", "code"),
        ("a.py", "gamma", "comment"),
        ("b.md", "old", "text"),
    } <= found
    (root / "b.md").write_text("new words\n")
    chunked, reused, found = run()
    assert (chunked, reused) == (1, 1)
    assert ("a.py", "gamma", "comment") in found and ("b.md", "new", "text") in found
    assert ("b.md", "old", "text") not in found
    store.shard_file("occurrences", "0").unlink()  # a shard chunked before occurrences existed
    chunked, reused, found = run()
    assert (chunked, reused) == (2, 0) and ("a.py", "alpha", "code") in found

    info = segments.write_segment(store, "0", model_id="m", run_id="r")
    names = pq.read_table(info.path / segments.OCCURRENCES_FILE).column("name").to_pylist()
    assert names == sorted(names) and "alpha" in names
    segments.verify_segment(info)


def test_a_segment_takes_the_shards_occurrence_file_as_it_is_and_sorts_an_older_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk step writes occurrences in the segment's order and layout, so the segment's
    occurrences.parquet is the shard file's bytes (no second decode, sort and encode); a shard
    file from before that layout (sorted by path, unmarked) still gives the same rows."""
    import pyarrow.parquet as pq

    from coderag_assets import segments
    from coderag_assets.indexing import build_chunks, build_manifest, scan_shards
    from coderag_assets.store import IndexStore

    root = tmp_path / "repo"
    root.mkdir()
    (root / "b.py").write_text("def zeta(alpha):\n    return alpha.beta  # gamma\n")
    (root / "a.py").write_text("import b\n\ndef alpha():\n    return b.zeta(1)\n")
    (root / "c.md").write_text("alpha and omega\n")
    store = IndexStore.for_root(tmp_path / "data", root)
    stats = scan_shards(root, ["0"], lambda _: "0", max_file_bytes=10_000)["0"]
    build_manifest(store, "0", stats, max_file_bytes=10_000)
    build_chunks(store, "0", run_id="r", max_file_bytes=10_000)
    shard_file = store.shard_file("occurrences", "0")
    shard_bytes = shard_file.read_bytes()
    assert segments.in_occurrence_layout(shard_bytes)

    def no_sorting(*_: object) -> None:
        raise AssertionError("the segment build decoded and sorted the occurrences again")

    with monkeypatch.context() as patched:
        patched.setattr("coderag_assets.segments.build.sort_rows", no_sorting)
        current = segments.write_segment(store, "0", model_id="m", run_id="r")
    assert (current.path / segments.OCCURRENCES_FILE).read_bytes() == shard_bytes
    rows = pq.read_table(current.path / segments.OCCURRENCES_FILE)
    keys = [tuple(row[key] for key in segments.OCCURRENCE_ORDER) for row in rows.to_pylist()]
    assert keys == sorted(keys) and len(keys) > 10

    # The layout before: sorted by path, no marker, default row groups.
    older = rows.sort_by([("path", "ascending"), ("line", "ascending"), ("column", "ascending")])
    pq.write_table(older.replace_schema_metadata(None), shard_file, compression="zstd")
    assert not segments.in_occurrence_layout(shard_file.read_bytes())
    rebuilt = segments.write_segment(store, "0", model_id="m", run_id="r")
    assert rebuilt.segment_id != current.segment_id
    assert pq.read_table(rebuilt.path / segments.OCCURRENCES_FILE).equals(rows)
    segments.verify_segment(rebuilt)


def _reference_rows(text: str) -> list[tuple[str, int, int]]:
    """Occurrence tokens the plain way: each line's word runs, numbers dropped."""
    rows = []
    for row, line in enumerate(text.split("\n"), start=1):
        for match in re.finditer(r"\w+", line):
            if not match.group()[0].isdigit():
                rows.append((match.group(), row, match.start() + 1))
    return rows


@pytest.mark.parametrize(
    "text",
    [
        "def get(url):\n    return 42 + x9 + _9 + 9x\n",
        "naïve = café + ünï_côdé(ß)\r\n# ２番 ٣x x٣ ²abc ①y ₃z\n\n  𝔘nicode = '\ud800lone'\n",
        "tab\tsep\x0bvert\x0cfeed  é\n" * 3,
        "x",
        "!!!\n\n",
    ],
)
def test_occurrence_tokens_are_the_word_runs_of_each_line(text: str) -> None:
    """Tokens are found over the whole text in NumPy; they are the `\\w+` runs of each
    line that do not start with a digit (`str.isdigit`: superscripts, other scripts'
    digits), at 1-based lines and character columns, in files with and without a grammar."""
    for path, language in (("a.py", "python"), ("notes.txt", None)):
        rows = chunk_file(path, text, language).occurrences.rows()
        assert [(name, line, column) for name, line, column, _ in rows] == _reference_rows(text)


def test_tokens_fall_back_to_the_regex_when_the_word_table_disagrees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the NumPy word-character test ever count runs differently from `\\w+` (a
    character they judge apart), the tokens come from the matches themselves."""
    from coderag_assets.chunking import occurrences

    text = "def get(url):\n    return url  # get it\n"
    expected = chunk_file("a.py", text, "python").occurrences.rows()
    monkeypatch.setattr(occurrences, "_is_word_character", lambda chars: chars == ord("d"))
    assert chunk_file("a.py", text, "python").occurrences.rows() == expected


def _nested_regions(rng, start: int, end: int, depth: int) -> list:
    """Random regions nested inside [start, end), as syntax nodes nest (siblings apart)."""
    regions = []
    position = start
    while depth and position < end - 1 and rng.random() < 0.7:
        a = rng.randrange(position, end - 1)
        b = rng.randrange(a + 1, min(end, a + 40) + 1)
        regions.append((a, b, rng.randrange(2), rng.choice(["comment", "string", "code"])))
        regions.extend(_nested_regions(rng, a, b, depth - 1))
        position = b
    return regions


@pytest.mark.parametrize("seed", range(40))
def test_sweep_gives_each_token_its_innermost_holding_region(seed: int) -> None:
    """`_sweep` (a parent pass over the regions, then a vectorized climb) against the
    definition: among the regions holding all of a token, the innermost, that is the last in
    (start, -end, rank) order; "code" when none holds it. Tokens straddle region edges too."""
    import random

    import numpy as np

    from coderag_assets.chunking.occurrences import _sweep

    rng = random.Random(seed)
    regions = sorted(_nested_regions(rng, 0, 300, 4), key=lambda r: (r[0], -r[1], r[2]))
    starts = np.array(sorted(rng.randrange(300) for _ in range(120)), np.int64)
    ends = starts + np.array([rng.randrange(1, 12) for _ in range(120)], np.int64)
    expected = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        holding = [r for r in regions if r[0] <= start and r[1] >= end]
        expected.append(holding[-1][3] if holding else "code")
    assert _sweep(regions, starts, ends) == expected
