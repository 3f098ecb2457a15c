"""Symbol navigation over a real published index (real chunker, real DuckDB build and
publish), built from a small repository without the embedding model: vectors are zeros, which
navigation never reads. Covers symbol lookup in every mode, outlines, identifier-boundary
references, file listing, and the confinement of `get_file`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from coderag_assets import navigation as nav
from coderag_assets import segments
from coderag_assets.chunking import chunk_file, language_for_path
from coderag_assets.chunking.contexts import occurrence_contexts
from coderag_assets.cli import main as cli_main
from coderag_assets.files import name_skip_reason
from coderag_assets.indexing import OccurrenceBatch, chunk_row, symbol_row
from coderag_assets.store import (
    CHUNK_SCHEMA,
    MANIFEST_SCHEMA,
    SYMBOL_SCHEMA,
    IndexStore,
    connect_index,
    vectors_table,
)

VECTOR_DIM = 4

SOURCES = {
    "netrc.py": '''\
"""Credentials lookup."""


def get_netrc_auth(url):
    target = url  # contains the letters, is another name
    return get(target)


def get(key):
    """A plain function."""
    return key


class Fetcher:
    def get(self, key):
        return get(key) or self.getter(key)

    def getter(self, key):
        return None
''',
    "server/router.go": """\
package server

// Router dispatches requests.
type Router struct {
\troutes map[string]Handler
}

// Handle registers a handler.
func (r *Router) Handle(method, path string, h Handler) {
\tr.routes[method+" "+path] = h
}

// Handler answers one request.
type Handler func()
""",
    "web/cache.ts": """\
export class LRUCache<V> {
  private items = new Map<string, V>();

  get(key: string): V | undefined {
    const value = this.items.get(key);
    return value;
  }
}

export const déjà = 1;
export const get2 = déjà + 1;
""",
    "docs/guide.md": "# Guide\n\nCall `get` to read a value.\n",
}
SKIPPED = {".env": "secret", "logo.png": "binary"}


def _manifest_row(root: Path, rel: str, language: str | None, skip_reason: str | None) -> dict:
    stat = (root / rel).lstat()
    return {
        "path": rel,
        "shard": hashlib.sha256(rel.encode()).hexdigest()[0],
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": None if skip_reason else hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        "language": language,
        "skip_reason": skip_reason,
        "skip_detail": None,
    }


def build_test_index(
    data_dir: Path,
    root: Path,
    sources: dict[str, str] | None = None,
    *,
    with_occurrences: bool = True,
) -> IndexStore:
    """Chunk `sources` (default SOURCES, plus the skipped files) with the real chunker and
    publish them as segments. The files must exist under `root`. Without `with_occurrences`
    the index looks like one built before occurrences were recorded (no `occurrences` view)."""
    manifest, chunk_rows, symbol_rows, occurrence_tables = [], [], [], []
    for rel, text in (sources or SOURCES).items():
        language = language_for_path(rel)
        chunked = chunk_file(rel, text, language)
        manifest.append(_manifest_row(root, rel, language, None))
        file_sha = manifest[-1]["sha256"]
        chunk_rows.extend(chunk_row(chunk, file_sha, "test-run") for chunk in chunked.chunks)
        symbol_rows.extend(symbol_row(symbol) for symbol in chunked.symbols)
        if with_occurrences:
            batch = OccurrenceBatch()
            batch.add(rel, language, chunked.occurrences)
            table = batch.encoded_table().cast(segments.OCCURRENCE_SCHEMA)
            occurrence_tables.append((rel, table))
    if sources is None:
        for rel, reason in SKIPPED.items():
            manifest.append(_manifest_row(root, rel, None, reason))
        manifest.append(_manifest_row(root, "outside_link.txt", "text", "symlink_outside_root"))
    store = IndexStore.for_root(data_dir, root)
    shard_of_path = {row["path"]: row["shard"] for row in manifest}
    infos = {}
    for shard in sorted(set(shard_of_path.values())):
        shard_chunks = [r for r in chunk_rows if shard_of_path[r["path"]] == shard]
        hashes = sorted({row["content_hash"] for row in shard_chunks})
        store.write_shard(
            "manifest",
            shard,
            pa.Table.from_pylist([r for r in manifest if r["shard"] == shard], MANIFEST_SCHEMA),
        )
        store.write_shard("chunks", shard, pa.Table.from_pylist(shard_chunks, CHUNK_SCHEMA))
        store.write_shard(
            "symbols",
            shard,
            pa.Table.from_pylist(
                [r for r in symbol_rows if shard_of_path[r["path"]] == shard], SYMBOL_SCHEMA
            ),
        )
        if with_occurrences:
            shard_occurrences = [t for rel, t in occurrence_tables if shard_of_path[rel] == shard]
            store.write_shard(
                "occurrences",
                shard,
                pa.concat_tables([segments.OCCURRENCE_SCHEMA.empty_table(), *shard_occurrences]),
            )
        vectors = np.zeros((len(hashes), VECTOR_DIM), dtype=np.float32)
        store.write_shard("embeddings", shard, vectors_table(hashes, vectors, "test-model", "r"))
        infos[shard] = segments.write_segment(store, shard, model_id="test-model", run_id="r")
    segments.publish(
        store,
        infos,
        segments.PublishMeta(
            root=str(root),
            model_id="test-model",
            model="test-model",
            backend="none",
            dim=VECTOR_DIM,
            chunker_version="test",
            shard_count=16,
            run_id="test-run",
        ),
    )
    return store


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    """(connection, root, data_dir) of a published index of SOURCES plus skipped files."""
    base = tmp_path_factory.mktemp("navigation")
    root = (base / "repo").resolve()
    for rel, text in SOURCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".env").write_text("API_TOKEN=not-a-real-secret\n")
    (root / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    (base / "outside.txt").write_text("outside the root\n")
    (root / "outside_link.txt").symlink_to(base / "outside.txt")
    (root / "notes.txt").write_text("on disk, never indexed\n")
    data_dir = base / "data"
    store = build_test_index(data_dir, root)
    con = connect_index(store.index_path)
    yield con, root, data_dir
    con.close()


def qualified(matches: nav.SymbolMatches) -> list[str]:
    return [symbol.qualified_name for symbol in matches.symbols]


# ------------------------------------------------------------------------------ find_symbols


def test_exact_matches_name_or_qualified_name_case_sensitively(index) -> None:
    con, _, _ = index
    assert sorted(qualified(nav.find_symbols(con, "get"))) == ["Fetcher.get", "LRUCache.get", "get"]
    handle = nav.find_symbols(con, "Router.Handle").symbols
    assert [(s.path, s.line, s.column, s.kind, s.parent) for s in handle] == [
        ("server/router.go", 9, 18, "method", "Router")
    ]
    assert handle[0].signature.startswith("func (r *Router) Handle(")
    assert nav.find_symbols(con, "GET").symbols == []
    assert nav.find_symbols(con, "get_netrc").symbols == []


def test_kind_filter_and_unknown_kind(index) -> None:
    con, _, _ = index
    assert qualified(nav.find_symbols(con, "get", kind="function")) == ["get"]
    assert sorted(qualified(nav.find_symbols(con, "get", kind="METHOD"))) == [
        "Fetcher.get",
        "LRUCache.get",
    ]
    with pytest.raises(nav.NavigationError, match="unknown symbol kind 'func'.*function"):
        nav.find_symbols(con, "get", kind="func")


def test_prefix_and_contains_are_case_insensitive_and_rank_exact_names_first(index) -> None:
    con, _, _ = index
    prefix = qualified(nav.find_symbols(con, "get", mode="prefix"))
    assert prefix[0] == "get"  # the exact, unqualified name first
    assert set(prefix) == {"get", "get_netrc_auth", "Fetcher.get", "Fetcher.getter", "LRUCache.get"}
    assert qualified(nav.find_symbols(con, "FETCH", mode="prefix"))[0] == "Fetcher"
    assert qualified(nav.find_symbols(con, "NETRC", mode="contains")) == ["get_netrc_auth"]
    assert "Router.Handle" in qualified(nav.find_symbols(con, "r.hand", mode="contains"))


def test_fuzzy_tolerates_typos_separators_and_abbreviations(index) -> None:
    con, _, _ = index
    for query, expected in [
        ("getnetrcauth", "get_netrc_auth"),
        ("get netrc auth", "get_netrc_auth"),
        ("Fetchr", "Fetcher"),
        ("lrucahce", "LRUCache"),
        ("RoutHandl", "Router.Handle"),
    ]:
        matches = nav.find_symbols(con, query, mode="fuzzy")
        assert matches.symbols, query
        assert matches.symbols[0].qualified_name == expected, (query, qualified(matches))
        scores = [s.score for s in matches.symbols]
        assert all(score is not None and 0 < score <= 1 for score in scores)
        assert scores == sorted(scores, reverse=True)
    assert nav.find_symbols(con, "zzqx", mode="fuzzy").symbols == []


def test_fuzzy_score_orders_plausible_matches() -> None:
    assert nav.fuzzy_score("LRUCache", "lrucache") == 1.0
    assert nav.fuzzy_score("lru", "LRUCache") > nav.fuzzy_score("lru", "get_netrc_auth")
    assert nav.fuzzy_score("celsToFahr", "celsiusToFahrenheit") >= nav.FUZZY_MIN_SCORE
    assert nav.fuzzy_score("xyz", "LRUCache") < nav.FUZZY_MIN_SCORE


def test_limit_sets_truncated_and_bad_arguments_raise(index) -> None:
    con, _, _ = index
    matches = nav.find_symbols(con, "get", limit=1)
    assert len(matches.symbols) == 1 and matches.truncated
    assert not nav.find_symbols(con, "get", limit=10).truncated
    with pytest.raises(nav.NavigationError, match="empty name"):
        nav.find_symbols(con, "  ")
    with pytest.raises(nav.NavigationError, match="unknown mode"):
        nav.find_symbols(con, "get", mode="regex")  # type: ignore[arg-type]
    with pytest.raises(nav.NavigationError, match="limit"):
        nav.find_symbols(con, "get", limit=0)


# ------------------------------------------------------------------------------ list_symbols


def test_outline_in_source_order_with_depth(index) -> None:
    con, _, _ = index
    outline = nav.list_symbols(con, "./netrc.py")
    assert outline.path == "netrc.py" and outline.language == "python" and not outline.truncated
    assert [(s.qualified_name, s.kind, s.line, s.depth) for s in outline.symbols] == [
        ("get_netrc_auth", "function", 4, 0),
        ("get", "function", 9, 0),
        ("Fetcher", "class", 14, 0),
        ("Fetcher.get", "method", 15, 1),
        ("Fetcher.getter", "method", 18, 1),
    ]
    assert nav.list_symbols(con, "docs/guide.md").symbols == []


def test_outline_refuses_unsafe_secret_and_unknown_paths(index) -> None:
    con, _, _ = index
    with pytest.raises(nav.PathOutsideRootError):
        nav.list_symbols(con, "../netrc.py")
    with pytest.raises(nav.SecretFileError):
        nav.list_symbols(con, ".env")
    with pytest.raises(nav.FileNotIndexedError, match="not in the index"):
        nav.list_symbols(con, "missing.py")
    with pytest.raises(nav.FileNotIndexedError, match="binary"):
        nav.list_symbols(con, "logo.png")


# ------------------------------------------------------------------------------ references


def test_references_match_whole_identifiers_only(index) -> None:
    con, _, _ = index
    refs = nav.find_references(con, "get")
    found = {(r.path, r.line, r.column) for r in refs.references}
    assert found == {
        ("netrc.py", 6, 12),  # return get(target)
        ("netrc.py", 9, 5),  # def get(key):
        ("netrc.py", 15, 9),  # def get(self, key):
        ("netrc.py", 16, 16),  # return get(key) or self.getter(key)
        ("web/cache.ts", 4, 3),  # get(key: string)
        ("web/cache.ts", 5, 30),  # this.items.get(key)
        ("docs/guide.md", 3, 7),  # Call `get` to read
    }
    texts = " ".join(r.text for r in refs.references)
    assert "get_netrc_auth(url)" not in texts  # the definition line of get_netrc_auth
    assert "target = url" not in texts  # `target` contains "get" but is another identifier
    assert all("get2" not in r.text for r in refs.references)
    assert refs.total == 7 and not refs.truncated


def test_references_mark_definitions_and_enclosing_scope(index) -> None:
    con, _, _ = index
    refs = nav.find_references(con, "get")
    definitions = [(r.path, r.line) for r in refs.references if r.is_definition]
    assert definitions == [("netrc.py", 9), ("netrc.py", 15), ("web/cache.ts", 4)]
    assert refs.references[: len(definitions)] == [r for r in refs.references if r.is_definition]
    by_line = {(r.path, r.line): r for r in refs.references}
    assert by_line[("netrc.py", 6)].enclosing == "get_netrc_auth"
    assert by_line[("netrc.py", 16)].enclosing == "Fetcher.get"
    assert by_line[("netrc.py", 15)].enclosing == "Fetcher"  # a definition belongs to its parent
    assert by_line[("netrc.py", 16)].text == "        return get(key) or self.getter(key)"


def test_qualified_reference_marks_only_that_definition(index) -> None:
    con, _, _ = index
    refs = nav.find_references(con, "Fetcher.get")
    assert refs.identifier == "get"
    assert [(s.path, s.line) for s in refs.definitions] == [("netrc.py", 15)]
    assert [(r.path, r.line) for r in refs.references if r.is_definition] == [("netrc.py", 15)]
    handle = nav.find_references(con, "Router.Handle")
    assert [(r.line, r.is_definition) for r in handle.references] == [(9, True), (8, False)]


def test_reference_boundaries_with_unicode_and_type_names(index) -> None:
    con, _, _ = index
    deja = nav.find_references(con, "déjà")
    assert [(r.path, r.line) for r in deja.references] == [
        ("web/cache.ts", 10),
        ("web/cache.ts", 11),
    ]
    handler = nav.find_references(con, "Handler")
    assert {r.line for r in handler.references} == {5, 9, 13, 14}  # not inside `Handle`
    assert [r.line for r in handler.references if r.is_definition] == [14]


def test_reference_limit_glob_and_bad_names(index) -> None:
    con, _, _ = index
    limited = nav.find_references(con, "get", limit=2)
    assert len(limited.references) == 2 and limited.truncated and limited.total == 7
    assert all(r.is_definition for r in limited.references)
    only_ts = nav.find_references(con, "get", path_glob="web/**")
    assert {r.path for r in only_ts.references} == {"web/cache.ts"}
    for bad in ["", "two words", "a\0b"]:
        with pytest.raises(nav.NavigationError):
            nav.find_references(con, bad)
    with pytest.raises(nav.PathOutsideRootError):
        nav.find_references(con, "get", path_glob="../**")


def test_references_say_whether_they_sit_in_code_comments_or_docs(index) -> None:
    con, _, _ = index
    handler = nav.find_references(con, "Handler")
    assert {r.line: r.context for r in handler.references} == {
        5: "code",  # routes map[string]Handler
        9: "code",  # h Handler
        13: "comment",  # // Handler answers one request.
        14: "code",  # type Handler func()
    }
    get = nav.find_references(con, "get")
    assert {(r.path, r.context) for r in get.references if r.path.endswith(".md")} == {
        ("docs/guide.md", "text")
    }
    assert {r.context for r in get.references if not r.path.endswith(".md")} == {"code"}


def test_code_only_references_leave_out_comments_and_docs(index) -> None:
    con, _, _ = index
    handler = nav.find_references(con, "Handler", code_only=True)
    assert [r.line for r in handler.references] == [14, 5, 9]  # the definition first
    assert handler.total == 3 and handler.code_only and not handler.truncated
    handle = nav.find_references(con, "Handle", code_only=True)
    assert [(r.line, r.is_definition) for r in handle.references] == [(9, True)]
    get = nav.find_references(con, "get", code_only=True)
    assert "docs/guide.md" not in {r.path for r in get.references} and get.total == 6
    limited = nav.find_references(con, "get", code_only=True, limit=1)
    assert limited.total == 6 and limited.truncated and len(limited.references) == 1


def test_references_on_an_overlong_line_get_the_whole_line(tmp_path: Path) -> None:
    entries = ", ".join(f'"entry_{i:04d}"' for i in range(600))  # ~9,000 characters
    line = f'const table = ["get", {entries}, get(2)];'
    text = f"function get(n) {{\n  return n;\n}}\n{line}\n"
    root = tmp_path / "repo"
    root.mkdir()
    (root / "table.js").write_text(text)
    chunks = chunk_file("table.js", text, "javascript").chunks
    assert sum(c.start_line == c.end_line == 4 for c in chunks) > 2  # the line is cut in pieces
    con = connect_index(build_test_index(tmp_path / "data", root, {"table.js": text}).index_path)
    try:
        refs = nav.find_references(con, "get")
        code_only = nav.find_references(con, "get", code_only=True)
    finally:
        con.close()
    on_line = [(r.column, r.context) for r in refs.references if r.line == 4]
    assert on_line == [(line.index('"get"') + 2, "string"), (line.index("get(2)") + 1, "code")]
    assert [(r.line, r.column) for r in code_only.references] == [
        (1, 10),
        (4, line.index("get(2)") + 1),
    ]


def test_references_are_read_from_the_occurrence_index(index) -> None:
    con, _, _ = index
    rows = con.execute(
        'SELECT path, line, "column", context FROM occurrences WHERE name = ? '
        'ORDER BY path, line, "column"',
        ["Handler"],
    ).fetchall()
    refs = nav.find_references(con, "Handler")
    assert sorted((r.path, r.line, r.column, r.context) for r in refs.references) == rows
    # Numbers are not identifiers: the index leaves them out, so refs finds none, although the
    # chunk texts hold `1` twice (the scan of older indexes would report both).
    assert nav.find_references(con, "1").total == 0
    assert nav._scan_references(con, "1").total == 2


def _reference_answers(con, names: list[str]) -> list[dict]:
    return [
        nav.find_references(con, name, code_only=code_only, limit=limit).to_json()
        for name in names
        for code_only in (False, True)
        for limit in (1, 100)
    ]


def test_index_without_occurrences_is_answered_by_the_scan_with_the_same_results(
    index, tmp_path: Path
) -> None:
    con, root, _ = index
    names = ["get", "Handler", "Router.Handle", "Fetcher.get", "déjà", "target", "absent"]
    old = connect_index(
        build_test_index(tmp_path / "old", root, dict(SOURCES), with_occurrences=False).index_path
    )
    try:
        assert not old.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'occurrences'"
        ).fetchone()[0]
        assert _reference_answers(old, names) == _reference_answers(con, names)
    finally:
        old.close()


def test_names_with_non_word_characters_around_a_word(tmp_path: Path) -> None:
    sources = {
        "a.php": '<?php\n$get = 1;\necho "{$get} get $get";\nfunction get() {}\n',
        "m.rs": "macro_rules! get { () => {} }\nfn main() { get!(); get(); } // get!\n",
        "x.css": ".a-b { color: red }\n.a { }\n",
    }
    root = tmp_path / "repo"
    root.mkdir()
    for rel, text in sources.items():
        (root / rel).write_text(text)
    con = connect_index(build_test_index(tmp_path / "data", root, sources).index_path)
    try:
        dollar = nav.find_references(con, "$get")
        assert [(r.path, r.line, r.column) for r in dollar.references] == [
            ("a.php", 2, 1),
            ("a.php", 3, 8),
            ("a.php", 3, 18),
        ]
        bang = nav.find_references(con, "get!")
        assert [(r.line, r.column, r.context) for r in bang.references] == [
            (2, 13, "code"),
            (2, 33, "comment"),
        ]
        for name in ["$get", "get!", "get", "a-b"]:  # a-b: two words, answered by the scan
            for code_only in (False, True):
                indexed = nav.find_references(con, name, code_only=code_only)
                scanned = nav._scan_references(con, name, code_only=code_only)
                assert indexed.to_json() == scanned.to_json(), name
        assert nav.find_references(con, "a-b").total == 1
    finally:
        con.close()


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        (
            "python",
            (
                'def get(x):\n    """Call get to read."""\n    # get is cached\n'
                '    s = f"{get(x)} get"\n    return get(x)\n'
            ),
            ["code", "string", "comment", "code", "string", "code"],
        ),
        (
            "javascript",
            '// get a thing\nconst a = `${get(1)} get`;\nconst b = "get"; get(2);\n',
            ["comment", "code", "string", "string", "code"],
        ),
        ("go", 'package main\n// get it\nfunc get() string { return "get" }\n', None),
        ("markdown", "Call get here.\n", ["text"]),
        # columns are characters, the parser's are bytes: non-ASCII text before the occurrence
        (
            "python",
            's = "é get"\nt = f"{get}é get"  # ü get\n',
            ["string", "code", "string", "comment"],
        ),
        ("python", 's = "éééééé"; get()\n', ["code"]),  # bytes would land inside the string
        # interpolation without a wrapper node (PHP) and the Kotlin/Swift forms
        ("php", '<?php\n$s = "{$get} $get get";\n', ["code", "code", "string"]),
        ("kotlin", 'val s = "$get ${get} get"\n', ["code", "code", "string"]),
        ("swift", 'let s = "\\(get) get"\n', ["code", "string"]),
    ],
)
def test_occurrence_contexts_per_language(
    language: str, text: str, expected: list[str] | None
) -> None:
    occurrences = [
        (row, match.start(), 3)
        for row, line in enumerate(text.split("\n"))
        for match in nav.identifier_pattern("get").finditer(line)
    ]
    contexts = occurrence_contexts(text, language, occurrences)
    assert contexts == (expected or ["comment", "code", "string"])


def test_definition_source_rebuilds_lines_from_chunks(index) -> None:
    con, _, _ = index
    [fetcher_get] = nav.find_symbols(con, "Fetcher.get").symbols
    source, truncated = nav.definition_source(con, fetcher_get)
    assert (
        source == "    def get(self, key):\n        return get(key) or self.getter(key)"
        and not truncated
    )
    [fetcher] = nav.find_symbols(con, "Fetcher").symbols
    source, truncated = nav.definition_source(con, fetcher, max_lines=2)
    assert source.splitlines() == ["class Fetcher:", "    def get(self, key):"] and truncated
    assert nav.indexed_lines(con, "netrc.py", 7, 9) == ["", "", "def get(key):"]  # blank lines kept


# ------------------------------------------------------------------------------ files


def test_list_files_by_glob_and_language(index) -> None:
    con, _, _ = index
    listing = nav.list_files(con)
    assert [f.path for f in listing.files] == [
        "docs/guide.md",
        "netrc.py",
        "server/router.go",
        "web/cache.ts",
    ]
    assert listing.total == 4 and not listing.truncated  # skipped files are not listed
    netrc = next(f for f in listing.files if f.path == "netrc.py")
    assert netrc.language == "python" and netrc.symbols == 5 and netrc.chunks >= 1
    assert [f.path for f in nav.list_files(con, glob="*.go").files] == ["server/router.go"]
    assert [f.path for f in nav.list_files(con, glob="web").files] == ["web/cache.ts"]
    assert [f.path for f in nav.list_files(con, language="ts").files] == ["web/cache.ts"]
    limited = nav.list_files(con, limit=1)
    assert len(limited.files) == 1 and limited.truncated and limited.total == 4
    for bad in ["../*", "/etc/*"]:
        with pytest.raises(nav.PathOutsideRootError):
            nav.list_files(con, glob=bad)


def test_get_file_slices_and_limits(index) -> None:
    con, root, _ = index
    whole = nav.get_file(con, root, "server/router.go")
    assert whole.total_lines == 14 and (whole.start_line, whole.end_line) == (1, 14)
    assert whole.content == SOURCES["server/router.go"].rstrip("\n") and not whole.truncated
    assert not whole.changed_since_index and whole.language == "go"
    part = nav.get_file(con, root, "server/router.go", start_line=8, end_line=11)
    assert (
        part.content.splitlines()[1].startswith("func (r *Router) Handle(") and not part.truncated
    )
    capped = nav.get_file(con, root, "netrc.py", start_line=2, max_lines=3)
    assert (capped.start_line, capped.end_line, capped.truncated) == (2, 4, True)
    clamped = nav.get_file(con, root, "netrc.py", start_line=18, end_line=500)
    assert clamped.end_line == clamped.total_lines == 19 and not clamped.truncated
    with pytest.raises(nav.NavigationError, match="past the end"):
        nav.get_file(con, root, "netrc.py", start_line=20)
    with pytest.raises(nav.NavigationError, match="before start_line"):
        nav.get_file(con, root, "netrc.py", start_line=5, end_line=4)
    with pytest.raises(nav.NavigationError, match="at least 1"):
        nav.get_file(con, root, "netrc.py", start_line=0)


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("../outside.txt", nav.PathOutsideRootError, r"'\.\.'"),
        ("web/../../outside.txt", nav.PathOutsideRootError, r"'\.\.'"),
        ("/etc/passwd", nav.PathOutsideRootError, "absolute"),
        ("~/.bashrc", nav.PathOutsideRootError, "home"),
        ("netrc.py\0.txt", nav.InvalidPathError, "NUL"),
        ("", nav.InvalidPathError, "empty"),
        ("outside_link.txt", nav.PathOutsideRootError, "symlink"),
        (".env", nav.SecretFileError, "secret"),
        ("notes.txt", nav.FileNotIndexedError, "not in the index"),
        ("logo.png", nav.FileNotIndexedError, "binary"),
        ("web", nav.FileNotIndexedError, "not in the index"),
    ],
)
def test_get_file_confinement(index, path: str, error: type[Exception], message: str) -> None:
    con, root, _ = index
    with pytest.raises(error, match=message):
        nav.get_file(con, root, path)


def test_get_file_refuses_symlinks_made_after_indexing(index, tmp_path: Path) -> None:
    con, root, _ = index
    (tmp_path / "secret.py").write_text("print('outside')\n")
    escape = root / "late_escape.py"
    to_secret = root / "late_alias.cfg"
    escape.symlink_to(tmp_path / "secret.py")
    to_secret.symlink_to(root / ".env")
    try:
        with pytest.raises(nav.PathOutsideRootError, match="outside"):
            nav.get_file(con, root, "late_escape.py")
        with pytest.raises(nav.SecretFileError):
            nav.get_file(con, root, "late_alias.cfg")
        assert name_skip_reason("late_alias.cfg") is None  # refused for its target's name
    finally:
        escape.unlink()
        to_secret.unlink()


def test_get_file_reports_changes_since_indexing(index) -> None:
    con, root, _ = index
    target = root / "docs" / "guide.md"
    original = target.read_text()
    stat = target.stat()
    try:
        target.write_text(original + "More text.\n")
        changed = nav.get_file(con, root, "docs/guide.md")
        assert changed.changed_since_index and changed.content.endswith("More text.")
    finally:
        target.write_text(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# ------------------------------------------------------------------------------ CLI


def _cli_json(capsys: pytest.CaptureFixture[str], data_dir: Path, root: Path, *argv: str) -> dict:
    code = cli_main(["--data-dir", str(data_dir), *argv, "--root", str(root), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_cli_symbols_and_refs(index, capsys: pytest.CaptureFixture[str]) -> None:
    _, root, data_dir = index
    found = _cli_json(
        capsys, data_dir, root, "symbols", "find", "Fetchr", "--mode", "fuzzy", "--limit", "2"
    )
    assert found["symbols"][0]["qualified_name"] == "Fetcher" and found["mode"] == "fuzzy"
    outline = _cli_json(capsys, data_dir, root, "symbols", "list", "netrc.py")
    assert [s["name"] for s in outline["symbols"]] == [
        "get_netrc_auth",
        "get",
        "Fetcher",
        "get",
        "getter",
    ]
    refs = _cli_json(capsys, data_dir, root, "refs", "get")
    assert refs["total"] == 7 and refs["references"][0]["is_definition"]

    code = cli_main(
        ["--data-dir", str(data_dir), "symbols", "list", "../x.py", "--root", str(root)]
    )
    assert code == 2 and "would leave the indexed root" in capsys.readouterr().err
    code = cli_main(["--data-dir", str(data_dir), "refs", "get", "--root", str(root)])
    text = capsys.readouterr().out
    assert code == 0 and "def netrc.py:9:5: def get(key):" in text


def test_cli_symbols_list_accepts_paths_relative_to_the_working_directory(
    index, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root, data_dir = index
    monkeypatch.chdir(root / "web")
    outline = _cli_json(capsys, data_dir, root, "symbols", "list", "cache.ts")
    assert outline["path"] == "web/cache.ts"
    assert [s["qualified_name"] for s in outline["symbols"]][:2] == ["LRUCache", "LRUCache.get"]


def test_enclosing_definitions_name_the_header_above_a_hit(index) -> None:
    con, _, _ = index
    headers = nav.enclosing_definitions(
        con,
        [
            ("netrc.py", 16, 16),  # inside Fetcher.get, below its def line
            ("netrc.py", 15, 19),  # the methods: inside class Fetcher
            ("netrc.py", 4, 6),  # starts at its definition's own line: nothing to add
            ("netrc.py", 1, 1),  # module docstring: outside every definition
        ],
    )
    assert [(h.qualified_name, h.line, h.signature) if h else None for h in headers] == [
        ("Fetcher.get", 15, "def get(self, key):"),
        ("Fetcher", 14, "class Fetcher:"),
        None,
        None,
    ]
    assert nav.enclosing_definitions(con, []) == []
