"""Chunk boundaries, sizes and identities over real tree-sitter parses and real fixtures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from coderag_assets.chunking import (
    CHUNKER_VERSION,
    HARD_MAX_CHUNK_CHARS,
    MAX_CHUNK_CHARS,
    SUPPORTED_AST_LANGUAGES,
    Chunk,
    chunk_file,
    language_for_path,
)

FIXTURES = Path(__file__).parent / "fixtures" / "chunking"
FIXTURE_FILES = sorted(path.name for path in FIXTURES.iterdir() if path.is_file())


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def chunks_of(name: str, text: str | None = None) -> list[Chunk]:
    if text is None:
        text = fixture_text(name)
    return chunk_file(name, text, language_for_path(name)).chunks


def spans(chunks: list[Chunk]) -> list[tuple[int, int, str, str]]:
    return [(c.start_line, c.end_line, c.symbol, c.kind) for c in chunks]


def assert_covers_exactly(text: str, chunks: list[Chunk]) -> None:
    """Chunks are in order, do not overlap, hold exactly their lines, and cover every non-blank
    line; pieces of one overlong line must concatenate to that line."""
    lines = text.split("\n")
    covered: set[int] = set()
    previous_end = 0
    index = 0
    while index < len(chunks):
        chunk = chunks[index]
        assert chunk.content.strip(), chunk
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines), chunk
        assert chunk.start_line > previous_end, (chunk, previous_end)
        expected = "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        if chunk.content != expected:  # slices of one overlong line
            assert chunk.start_line == chunk.end_line, chunk
            row = chunk.start_line
            parts = []
            while index < len(chunks) and chunks[index].start_line == row:
                assert chunks[index].end_line == row
                parts.append(chunks[index].content)
                index += 1
            assert "".join(parts).strip() == expected.strip()
            index -= 1
        covered.update(range(chunk.start_line, chunk.end_line + 1))
        previous_end = chunk.end_line
        index += 1
    missing = [n for n, line in enumerate(lines, start=1) if line.strip() and n not in covered]
    assert not missing, f"lines not in any chunk: {missing}"


def big_function_source(statements: int = 120) -> str:
    body = [
        f"    if x > {i}:\n        x = x - {i}  # a comment that makes the line wider"
        for i in range(statements)
    ]
    return 'def huge(x):\n    """Huge."""\n' + "\n".join(body) + "\n    return x\n"


def minified_source(functions: int = 3000) -> str:
    return ";".join(f"function f{i}(a,b){{return a*{i}+b}}" for i in range(functions))


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_chunks_cover_every_line_once_in_order(name: str) -> None:
    text = fixture_text(name)
    chunks = chunks_of(name, text)
    assert chunks
    assert_covers_exactly(text, chunks)
    for chunk in chunks:
        assert chunk.path == name
        assert chunk.language == language_for_path(name)
        assert len(chunk.content) <= MAX_CHUNK_CHARS


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("huge.py", big_function_source()),
        ("min.js", minified_source()),
        ("crlf.py", "import os\r\n\r\ndef f():\r\n    return os.sep\r\n"),
        ("tabs.go", "package main\n\n\n\t\n\nfunc main() {\n}\n\n\n"),
        ("only_comments.rs", "// one\n// two\n\n/* three */\n"),
    ],
)
def test_generated_sources_are_covered(name: str, text: str) -> None:
    assert_covers_exactly(text, chunks_of(name, text))


@pytest.mark.parametrize("language", sorted(SUPPORTED_AST_LANGUAGES))
def test_every_ast_language_survives_garbage(language: str) -> None:
    text = '}{ )( <<< >>> "unterminated\n\tdef class fn func struct {{{\n' * 20
    result = chunk_file("garbage.txt", text, language)
    assert_covers_exactly(text, result.chunks)


@pytest.mark.parametrize("name", [n for n in FIXTURE_FILES if n.startswith("sample.")])
def test_big_files_in_every_language_stay_within_the_size_limit(name: str) -> None:
    text = fixture_text(name) * 12  # repeated definitions: big modules and, in braces, big blocks
    result = chunk_file(name, text, language_for_path(name))
    assert_covers_exactly(text, result.chunks)
    assert all(len(c.content) <= MAX_CHUNK_CHARS for c in result.chunks)
    assert len(result.chunks) >= 6


def test_empty_and_whitespace_only_text_give_no_chunks() -> None:
    for language in ("python", "markdown", None):
        result = chunk_file("empty", "  \n\t\n", language)
        assert (result.chunks, result.symbols, result.parse_errors) == ([], [], 0)


# ----------------------------------------------------------------------------- definitions


def test_python_sample_chunks_follow_definitions() -> None:
    chunks = chunks_of("sample.py")
    assert spans(chunks) == [
        (1, 9, "", "block"),  # docstring, imports, constants
        (12, 17, "Header", "class"),  # the decorator belongs to the class
        (20, 35, "Parser", "class"),  # a class that fits stays whole
        (38, 45, "parse_all", "function"),
    ]
    assert chunks[1].content.startswith("@dataclasses.dataclass\nclass Header:")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sample.go", [(12, 30, "Shape", "interface"), (32, 39, "TotalArea", "function")]),
        ("sample.rs", [(23, 36, "Stack", "impl")]),
        ("sample.ts", [(16, 31, "Repository", "class"), (33, 41, "isArchived", "function")]),
        ("sample.c", [(17, 28, "grow", "function"), (30, 37, "buffer_append", "function")]),
        ("sample.kt", [(13, 23, "MemoryStore", "class"), (25, 31, "Registry", "object")]),
        ("sample.scala", [(9, 23, "LruCache", "class"), (25, 29, "LruCache", "object")]),
        ("sample.swift", [(14, 24, "Client", "class")]),
        ("sample.php", [(14, 27, "User", "class"), (29, 40, "Greets", "trait")]),
    ],
)
def test_definition_chunks_in_other_languages(
    name: str, expected: list[tuple[int, int, str, str]]
) -> None:
    found = spans(chunks_of(name))
    for span in expected:
        assert span in found


def test_doc_comments_attach_to_the_definition_below() -> None:
    text = (
        'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"strings"\n\t"path/filepath"\n)\n\n'
        "// Unrelated note, separated by a blank line.\n\n"
        "// Compute adds things up.\n"
        "// It has a two-line doc comment.\n"
        "func Compute(values []int) int {\n"
        + "".join(f"\ttotal{i} := values[{i}] * {i} + len(values) - {i}\n" for i in range(8))
        + "\treturn 0\n}\n"
    )
    chunks = chunks_of("doc.go", text)
    assert [c.symbol for c in chunks] == ["", "Compute"]
    assert chunks[0].content.endswith("// Unrelated note, separated by a blank line.")
    assert chunks[1].start_line == 12
    assert chunks[1].content.startswith("// Compute adds things up.")


def test_jsdoc_block_attaches_across_one_blank_row_but_line_comments_do_not() -> None:
    body = "".join(f"  var step{i} = url.length * {i} + status - {i};\n" for i in range(8))
    text = (
        "'use strict';\n\n"
        + "".join(f"var module{i} = require('some-module-{i}');\n" for i in range(5))
        + "\n/**\n * Redirect to the given url.\n *\n * @public\n */\n\n"
        f"res.redirect = function redirect(url) {{\n{body}  return url;\n}};\n\n"
        "// a section note\n\n"
        f"function location(url) {{\n{body}  return url;\n}}\n"
    )
    chunks = chunks_of("response.js", text)
    redirect = next(c for c in chunks if c.symbol == "res.redirect")
    assert redirect.start_line == 9
    assert redirect.content.startswith("/**\n * Redirect to the given url.")
    location = next(c for c in chunks if c.symbol == "location")
    assert not location.content.startswith("// a section note")


@pytest.mark.parametrize(
    "comment",
    [
        "/************************************************************\n * Helpers\n */",  # banner
        "/**/",
        "/**< documents the member above */",
        "/**\n * Two blank rows below.\n */\n",
    ],
)
def test_other_blocks_do_not_join_a_definition_across_a_blank_row(comment: str) -> None:
    body = "".join(f"  var step{i} = value.length * {i} - {i};\n" for i in range(8))
    glue = "".join(f"var module{i} = require('some-module-{i}');\n" for i in range(5))
    text = f"{glue}\n{comment}\n\nfunction helper(value) {{\n{body}  return value;\n}}\n"
    chunks = chunks_of("helpers.js", text)
    helper = next(c for c in chunks if c.symbol == "helper")
    assert helper.content.startswith("function helper(value)")


def test_license_block_does_not_join_the_first_definition_across_a_blank_row() -> None:
    body = "".join(f"  var step{i} = value.length * {i} - {i};\n" for i in range(8))
    header = (
        "/**\n * Copyright (c) 2024 The Example Authors.\n"
        " * Released under the MIT license; see the LICENSE file for the full terms.\n */\n"
    )
    text = f"'use strict';\n{header}\nfunction first(value) {{\n{body}  return value;\n}}\n"
    chunks = chunks_of("first.js", text)
    first = next(c for c in chunks if c.symbol == "first")
    assert first.start_line == 7 and "Copyright" not in first.content


# ----------------------------------------------------------------------------- splitting


def test_large_class_splits_into_header_and_methods() -> None:
    text = fixture_text("large_class.py")
    assert len(text) > MAX_CHUNK_CHARS
    chunks = chunks_of("large_class.py", text)
    assert spans(chunks) == [
        (1, 15, "TokenBucket", "class"),
        (17, 26, "TokenBucket.__init__", "method"),
        (28, 32, "TokenBucket._refill", "method"),
        (34, 43, "TokenBucket.try_acquire", "method"),
        (45, 59, "TokenBucket.acquire", "method"),
        (61, 68, "TokenBucket.available", "method"),  # small methods packed: available + __repr__
        (71, 72, "shared_bucket", "function"),
    ]
    header = chunks[0].content
    assert "class TokenBucket:" in header
    assert "Thread-safe token bucket." in header
    assert "DEFAULT_CAPACITY = 20" in header
    assert "def " not in header
    assert "def __repr__" in chunks[5].content
    assert all(len(chunk.content) <= MAX_CHUNK_CHARS for chunk in chunks)


def test_nested_class_split_recurses() -> None:
    methods = "".join(
        f"        def m{i}(self):\n"
        + "".join(f"            v{j} = self.value * {j} + {i}  # filler\n" for j in range(6))
        + "            return v0\n\n"
        for i in range(8)
    )
    text = "class Outer:\n    class Inner:\n        kind = 1\n\n" + methods
    chunks = chunks_of("nested.py", text)
    assert [c.symbol for c in chunks] == [f"Outer.Inner.m{i}" for i in range(8)]
    # Class lines too small to stand alone lead the first method's chunk.
    assert chunks[0].content.startswith("class Outer:\n    class Inner:\n        kind = 1")
    assert_covers_exactly(text, chunks)


def test_huge_function_is_cut_at_statement_boundaries() -> None:
    text = big_function_source()
    chunks = chunks_of("huge.py", text)
    assert len(chunks) > 3
    assert {(c.symbol, c.kind) for c in chunks} == {("huge", "function")}
    assert chunks[0].content.startswith("def huge(x):")
    for chunk in chunks:
        assert len(chunk.content) <= MAX_CHUNK_CHARS
    for chunk in chunks[1:]:
        assert chunk.content.startswith(("    if x > ", "    return x"))  # never inside an if
    assert_covers_exactly(text, chunks)


def test_minified_line_is_hard_split() -> None:
    text = minified_source()
    assert len(text) > 10 * HARD_MAX_CHUNK_CHARS
    result = chunk_file("app.min.js", text, "javascript")
    assert len(result.chunks) > 10
    assert all(len(c.content) <= MAX_CHUNK_CHARS for c in result.chunks)
    assert all(c.start_line == c.end_line == 1 for c in result.chunks)
    assert "".join(c.content for c in result.chunks) == text
    assert len(result.symbols) == 3000


def test_long_line_in_text_file_is_hard_split() -> None:
    text = "header\n" + "x" * (3 * HARD_MAX_CHUNK_CHARS) + "\nfooter\n"
    chunks = chunk_file("blob.json", text, "json").chunks
    assert all(len(c.content) <= HARD_MAX_CHUNK_CHARS for c in chunks)
    assert_covers_exactly(text, chunks)


# ----------------------------------------------------------------------------- packing


def test_small_definitions_are_packed_and_large_ones_are_not() -> None:
    one_liners = "".join(f"def get_{i}(obj):\n    return obj.field_{i}\n\n\n" for i in range(12))
    large = (
        "def large(x):\n"
        + "".join(f"    x = x * {i} + {i}  # step {i} of the computation\n" for i in range(10))
        + "    return x\n"
    )
    text = "import os\nimport sys\n\nLIMIT = 10\n\n\n" + one_liners + "\n" + large
    chunks = chunks_of("getters.py", text)
    assert len(chunks) < 5
    packed = next(c for c in chunks if c.symbol == "get_0")
    assert packed.kind == "function"
    assert "def get_11(obj):" in packed.content
    assert spans(chunks)[-1][2:] == ("large", "function")
    assert_covers_exactly(text, chunks)


def test_module_glue_is_merged_into_one_block() -> None:
    imports = "".join(f"import package_{i}\n" for i in range(20))
    constants = "".join(f"SETTING_{i} = 'value-{i}'\n" for i in range(20))
    body = "def main():\n" + "".join(
        f"    package_{i}.run(SETTING_{i}, verbose=True)\n" for i in range(8)
    )
    text = imports + "\n" + constants + "\n\n" + body
    chunks = chunks_of("glue.py", text)
    assert spans(chunks) == [(1, 41, "", "block"), (44, 52, "main", "function")]


def test_tiny_trailing_glue_joins_the_previous_chunk() -> None:
    text = fixture_text("sample.js")
    chunks = chunks_of("sample.js", text)
    assert spans(chunks)[-1] == (26, 36, "drain", "function")
    assert chunks[-1].content.endswith(
        "module.exports = { TaskQueue, drain, delay, DEFAULT_TIMEOUT };"
    )


# ----------------------------------------------------------------------------- errors


def test_syntax_errors_are_counted_and_chunking_continues() -> None:
    text = fixture_text("broken.py")
    result = chunk_file("broken.py", text, "python")
    assert result.parse_errors > 0
    assert (1, 5, "normalize", "function") in spans(result.chunks)
    assert (15, 19, "Report", "class") in spans(result.chunks)
    assert_covers_exactly(text, result.chunks)


def test_clean_files_report_no_parse_errors() -> None:
    for name in FIXTURE_FILES:
        if name != "broken.py":
            assert chunk_file(name, fixture_text(name), language_for_path(name)).parse_errors == 0


# ----------------------------------------------------------------------------- text fallback


def test_markdown_small_sections_pack_under_the_first_heading() -> None:
    chunks = chunks_of("README.md")
    assert spans(chunks) == [(1, 20, "Sample project", "section")]


def test_markdown_sections_use_their_headings() -> None:
    paragraph = "Some prose about this part of the guide, long enough to matter for chunking.\n"
    text = (
        "# Guide\n\n"
        + paragraph * 6
        + "\n## Install\n\n```sh\n# a shell comment, not a heading\npip install sample\n```\n\n"
        + paragraph * 6
        + "\n## Reference\n\n"
        + paragraph * 40
    )
    chunks = chunks_of("GUIDE.md", text)
    assert [c.symbol for c in chunks[:2]] == ["Guide", "Install"]
    assert "# a shell comment" in chunks[1].content
    assert {c.symbol for c in chunks[2:]} == {"Reference"}
    assert len(chunks) > 3  # the long Reference section is windowed
    assert {c.kind for c in chunks} == {"section"}
    assert all(len(c.content) <= MAX_CHUNK_CHARS for c in chunks)
    assert_covers_exactly(text, chunks)


def test_yaml_is_windowed_at_blank_lines() -> None:
    assert spans(chunks_of("config.yaml")) == [(1, 12, "", "text")]
    text = "".join(f"key_{i}:\n  value: {i}\n  note: entry number {i}\n\n" for i in range(60))
    chunks = chunks_of("long.yaml", text)
    assert len(chunks) > 2
    lines = text.split("\n")
    for chunk in chunks:
        assert (chunk.symbol, chunk.kind) == ("", "text")
        assert chunk.end_line - chunk.start_line + 1 <= 60
        assert lines[chunk.start_line - 1].startswith("key_")  # windows start at a record
    assert_covers_exactly(text, chunks)


def test_unknown_language_is_chunked_as_text() -> None:
    result = chunk_file("notes.xyz", "first\nsecond\n", None)
    assert spans(result.chunks) == [(1, 2, "", "text")]
    assert result.chunks[0].language == "text"


# ----------------------------------------------------------------------------- identity


def test_ids_and_hashes_are_stable_and_path_free() -> None:
    text = fixture_text("sample.py")
    first = chunk_file("pkg/sample.py", text, "python").chunks
    again = chunk_file("pkg/sample.py", text, "python").chunks
    moved = chunk_file("other/renamed.py", text, "python").chunks
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    assert all(len(c.chunk_id) == 24 for c in first)
    assert [c.content_hash for c in first] == [c.content_hash for c in moved]
    assert [c.chunk_id for c in first] != [c.chunk_id for c in moved]
    for chunk in first:
        assert "pkg/sample.py" not in chunk.embedding_text
        assert chunk.content_hash == hashlib.sha256(chunk.embedding_text.encode()).hexdigest()


def test_embedding_text_starts_with_the_symbol() -> None:
    chunks = chunks_of("sample.py")
    parser = next(c for c in chunks if c.symbol == "Parser")
    assert parser.embedding_text == "Parser\n" + parser.content
    glue = next(c for c in chunks if c.symbol == "")
    assert glue.embedding_text == glue.content


def test_chunker_version_is_set() -> None:
    assert CHUNKER_VERSION


# ----------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("pkg/module.py", "python"),
        ("stubs/x.pyi", "python"),
        ("web/app.js", "javascript"),
        ("web/app.mjs", "javascript"),
        ("web/app.cjs", "javascript"),
        ("web/App.jsx", "javascript"),
        ("web/app.ts", "typescript"),
        ("web/app.mts", "typescript"),
        ("web/app.cts", "typescript"),
        ("web/App.tsx", "tsx"),
        ("main.go", "go"),
        ("src/lib.rs", "rust"),
        ("Main.java", "java"),
        ("buf.c", "c"),
        ("buf.h", "c"),
        ("geo.cc", "cpp"),
        ("geo.cpp", "cpp"),
        ("geo.cxx", "cpp"),
        ("geo.hpp", "cpp"),
        ("geo.hh", "cpp"),
        ("store.rb", "ruby"),
        ("index.php", "php"),
        ("Notes.kt", "kotlin"),
        ("build.gradle.kts", "kotlin"),
        ("Client.swift", "swift"),
        ("Cache.scala", "scala"),
        ("build.sc", "scala"),
        ("deploy.sh", "bash"),
        ("env.bash", "bash"),
        ("rc.zsh", "bash"),
        ("init.lua", "lua"),
        ("README.md", "markdown"),
        ("docs/guide.markdown", "markdown"),
        ("ci.yml", "yaml"),
        ("ci.yaml", "yaml"),
        ("pyproject.toml", "toml"),
        ("schema.sql", "sql"),
        ("index.html", "html"),
        ("index.htm", "html"),
        ("site.css", "css"),
        ("data.json", "json"),
        ("pom.xml", "xml"),
        ("docs/index.rst", "rst"),
        ("notes.txt", "text"),
        ("setup.cfg", "ini"),
        ("tox.ini", "ini"),
        ("Dockerfile", "dockerfile"),
        ("docker/Dockerfile.dev", "dockerfile"),
        ("Makefile", "makefile"),
        ("MODULE.PY", "python"),
        ("image.png", None),
        ("LICENSE", None),
        (".gitignore", None),
    ],
)
def test_language_for_path(path: str, language: str | None) -> None:
    assert language_for_path(path) == language


def test_every_language_for_path_result_is_chunkable() -> None:
    for path in ("a.py", "a.md", "a.yaml", "Dockerfile", "a.txt"):
        language = language_for_path(path)
        assert chunk_file(path, "x = 1\n", language).chunks
