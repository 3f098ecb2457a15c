"""Symbol extraction over real tree-sitter parses of one small fixture per language."""

from __future__ import annotations

from pathlib import Path

import pytest

from coderag_assets.chunking import SUPPORTED_AST_LANGUAGES, Symbol, chunk_file, language_for_path
from coderag_assets.chunking.grammars import GRAMMARS

FIXTURES = Path(__file__).parent / "fixtures" / "chunking"

# (qualified_name, kind, line of the name, end_line) for every symbol, in source order.
EXPECTED_SYMBOLS: dict[str, list[tuple[str, str, int, int]]] = {
    "sample.py": [
        ("MAX_HEADER_BYTES", "constant", 8, 8),
        ("_TOKEN", "constant", 9, 9),
        ("Header", "class", 13, 17),
        ("Parser", "class", 20, 35),
        ("Parser.__init__", "method", 23, 24),
        ("Parser.parse_header", "method", 26, 31),
        ("Parser.is_blank", "method", 34, 35),
        ("parse_all", "function", 38, 45),
        ("parse_all.keep", "function", 41, 42),
    ],
    "sample.js": [
        ("DEFAULT_TIMEOUT", "constant", 4, 4),
        ("TaskQueue", "class", 9, 24),
        ("TaskQueue.constructor", "method", 10, 14),
        ("TaskQueue.push", "method", 16, 19),
        ("TaskQueue.size", "method", 21, 23),
        ("drain", "function", 26, 32),
        ("delay", "function", 34, 34),
    ],
    "sample.ts": [
        ("Entity", "interface", 4, 7),
        ("EntityId", "type", 9, 9),
        ("Status", "enum", 11, 14),
        ("Repository", "class", 16, 31),
        ("Repository.constructor", "method", 19, 19),
        ("Repository.find", "method", 21, 26),
        ("Repository.save", "method", 28, 30),
        ("isArchived", "function", 33, 35),
        ("Internal", "module", 37, 41),
        ("Internal.helper", "function", 38, 40),
    ],
    "sample.tsx": [
        ("CounterProps", "interface", 3, 5),
        ("Counter", "function", 7, 14),
        ("Label", "function", 16, 16),
        ("Panel", "class", 18, 22),
        ("Panel.render", "method", 19, 21),
    ],
    "sample.go": [
        ("MaxSides", "constant", 10, 10),
        ("Shape", "interface", 13, 15),
        ("Circle", "struct", 18, 20),
        ("Circle.Area", "method", 23, 25),
        ("Circle.String", "method", 28, 30),
        ("TotalArea", "function", 33, 39),
    ],
    "sample.rs": [
        ("DEFAULT_CAPACITY", "constant", 5, 5),
        ("Stack", "struct", 9, 12),
        ("StackError", "enum", 14, 17),
        ("Container", "trait", 19, 21),
        ("Container.len", "method", 20, 20),
        ("Stack", "impl", 23, 36),
        ("Stack.new", "method", 25, 27),
        ("Stack.push", "method", 29, 35),
        ("Stack", "impl", 38, 42),
        ("Stack.len", "method", 39, 41),
        ("StackError", "impl", 44, 48),
        ("StackError.fmt", "method", 45, 47),
        ("helpers", "module", 50, 54),
        ("helpers.double", "function", 51, 53),
        ("drain_all", "function", 56, 58),
    ],
    "sample.java": [
        ("Account", "class", 9, 41),
        ("Account.MAX_BALANCE", "constant", 10, 10),
        ("Account.Account", "method", 16, 18),
        ("Account.deposit", "method", 21, 27),
        ("Account.getBalance", "method", 29, 31),
        ("Account.Listener", "interface", 33, 35),
        ("Account.Listener.onChange", "method", 34, 34),
        ("Account.Kind", "enum", 37, 40),
    ],
    "sample.c": [
        ("BUF_INITIAL", "constant", 5, 5),
        ("buffer", "struct", 7, 11),
        ("buffer_t", "type", 13, 13),
        ("mode", "enum", 15, 15),
        ("grow", "function", 17, 28),
        ("buffer_append", "function", 30, 37),
    ],
    "sample.cpp": [
        ("geo", "module", 4, 33),
        ("geo.Polygon", "class", 6, 22),
        ("geo.Polygon.Polygon", "method", 8, 8),
        ("geo.Polygon.perimeter", "method", 10, 16),
        ("geo.Polygon.name", "method", 24, 26),
        ("geo.Point", "struct", 28, 31),
        ("main", "function", 35, 38),
    ],
    "sample.rb": [
        ("Inventory", "module", 4, 23),
        ("Inventory.MAX_ITEMS", "constant", 5, 5),
        ("Inventory.Store", "class", 7, 22),
        ("Inventory.Store.initialize", "method", 10, 12),
        ("Inventory.Store.add", "method", 14, 17),
        ("Inventory.Store.load", "method", 19, 21),
        ("summarize", "function", 25, 27),
    ],
    "sample.php": [
        ("App\\Models", "module", 3, 3),
        ("DEFAULT_ROLE", "constant", 7, 7),
        ("HasName", "interface", 9, 12),
        ("HasName.name", "method", 11, 11),
        ("User", "class", 14, 27),
        ("User.__construct", "method", 18, 21),
        ("User.name", "method", 23, 26),
        ("Greets", "trait", 29, 35),
        ("Greets.greet", "method", 31, 34),
        ("make_user", "function", 37, 40),
    ],
    "sample.kt": [
        ("MAX_NOTES", "constant", 5, 5),
        ("Note", "class", 7, 7),
        ("NoteStore", "interface", 9, 11),
        ("NoteStore.all", "method", 10, 10),
        ("MemoryStore", "class", 13, 23),
        ("MemoryStore.add", "method", 16, 20),
        ("MemoryStore.all", "method", 22, 22),
        ("Registry", "object", 25, 27),
        ("Registry.default", "method", 26, 26),
        ("search", "function", 29, 31),
    ],
    "sample.swift": [
        ("Fetcher", "interface", 5, 7),
        ("Fetcher.fetch", "method", 6, 6),
        ("Request", "struct", 9, 12),
        ("Client", "class", 14, 24),
        ("Client.init", "method", 17, 19),
        ("Client.fetch", "method", 21, 23),
        ("Method", "enum", 26, 29),
        ("Request", "impl", 31, 35),
        ("Request.describe", "method", 32, 34),
        ("makeClient", "function", 37, 39),
    ],
    "sample.scala": [
        ("Cache", "trait", 5, 7),
        ("Cache.get", "method", 6, 6),
        ("LruCache", "class", 9, 23),
        ("LruCache.get", "method", 12, 17),
        ("LruCache.put", "method", 19, 22),
        ("LruCache", "object", 25, 27),
        ("LruCache.apply", "method", 26, 26),
        ("Entry", "class", 29, 29),
    ],
    "sample.sh": [
        ("log", "function", 7, 9),
        ("deploy", "function", 11, 15),
    ],
    "sample.lua": [
        ("Account.new", "function", 7, 12),
        ("Account.deposit", "method", 14, 19),
        ("format_money", "function", 21, 23),
        ("report", "function", 25, 27),
    ],
}


def symbols_of(file_name: str) -> list[Symbol]:
    text = (FIXTURES / file_name).read_text(encoding="utf-8")
    return chunk_file(file_name, text, language_for_path(file_name)).symbols


def by_qualified_name(symbols: list[Symbol]) -> dict[str, Symbol]:
    return {symbol.qualified_name: symbol for symbol in symbols}


def test_every_ast_language_has_a_grammar_and_a_fixture() -> None:
    assert set(GRAMMARS) == SUPPORTED_AST_LANGUAGES
    fixture_languages = {language_for_path(name) for name in EXPECTED_SYMBOLS}
    assert fixture_languages == SUPPORTED_AST_LANGUAGES


@pytest.mark.parametrize("file_name", sorted(EXPECTED_SYMBOLS))
def test_symbols_of_each_language(file_name: str) -> None:
    symbols = symbols_of(file_name)
    found = [(s.qualified_name, s.kind, s.line, s.end_line) for s in symbols]
    assert found == EXPECTED_SYMBOLS[file_name]
    language = language_for_path(file_name)
    for symbol in symbols:
        assert symbol.path == file_name
        assert symbol.language == language
        assert symbol.qualified_name.endswith(symbol.name)
        expected_parent = symbol.qualified_name[: -len(symbol.name)].rstrip(".")
        assert symbol.parent == expected_parent
        assert symbol.name in symbol.signature


@pytest.mark.parametrize("file_name", sorted(EXPECTED_SYMBOLS))
def test_symbol_column_points_at_the_name(file_name: str) -> None:
    lines = (FIXTURES / file_name).read_text(encoding="utf-8").split("\n")
    for symbol in symbols_of(file_name):
        line = lines[symbol.line - 1]
        if symbol.name in {"init"}:  # named after a keyword
            assert line[symbol.column - 1 :].startswith("init")
            continue
        assert line[symbol.column - 1 :].startswith(symbol.name), symbol


def test_python_symbol_fields() -> None:
    parse_header = by_qualified_name(symbols_of("sample.py"))["Parser.parse_header"]
    assert parse_header.name == "parse_header"
    assert parse_header.kind == "method"
    assert parse_header.parent == "Parser"
    assert (parse_header.line, parse_header.column, parse_header.end_line) == (26, 9, 31)
    assert parse_header.signature == "def parse_header(self, raw: bytes) -> Header:"


def test_decorated_python_class_is_located_at_its_name() -> None:
    header = by_qualified_name(symbols_of("sample.py"))["Header"]
    assert (header.line, header.column, header.end_line) == (13, 7, 17)
    assert header.signature == "class Header:"


def test_go_methods_are_qualified_by_their_receiver() -> None:
    symbols = by_qualified_name(symbols_of("sample.go"))
    area = symbols["Circle.Area"]
    assert (area.name, area.parent, area.kind) == ("Area", "Circle", "method")
    assert area.signature == "func (c *Circle) Area() float64 {"
    assert symbols["TotalArea"].parent == ""


def test_rust_impl_methods_are_qualified_by_the_type() -> None:
    symbols = symbols_of("sample.rs")
    impls = [s for s in symbols if s.kind == "impl"]
    assert [s.signature for s in impls] == [
        "impl<T> Stack<T> {",
        "impl<T> Container for Stack<T> {",
        "impl fmt::Display for StackError {",
    ]
    assert by_qualified_name(symbols)["Stack.push"].parent == "Stack"


def test_cpp_out_of_line_method_joins_its_class() -> None:
    name = by_qualified_name(symbols_of("sample.cpp"))["geo.Polygon.name"]
    assert (name.kind, name.parent, name.line) == ("method", "geo.Polygon", 24)


def test_column_counts_characters_not_bytes() -> None:
    text = "func (ç *Circle) Área() float64 {\n\treturn 1\n}\n"
    (symbol,) = chunk_file("u.go", text, "go").symbols
    assert symbol.qualified_name == "Circle.Área"
    assert symbol.column == text.index("Área") + 1 == 18


def test_javascript_assigned_functions() -> None:
    text = (
        "Foo.prototype.bar = function () { return 1; };\n"
        "exports.baz = () => 2;\n"
        "class A {\n  handler = () => 3;\n}\n"
    )
    found = [(s.qualified_name, s.kind) for s in chunk_file("a.js", text, "javascript").symbols]
    assert found == [
        ("Foo.bar", "function"),
        ("baz", "function"),
        ("A", "class"),
        ("A.handler", "method"),
    ]


def test_kotlin_kinds_from_keywords() -> None:
    text = (
        "enum class Color { RED, GREEN }\n"
        "class A {\n    companion object {\n        fun make() = A()\n    }\n}\n"
        "fun String.shout(): String = uppercase()\n"
    )
    found = [(s.qualified_name, s.kind) for s in chunk_file("a.kt", text, "kotlin").symbols]
    assert found == [
        ("Color", "enum"),
        ("A", "class"),
        ("A.Companion", "object"),
        ("A.Companion.make", "method"),
        ("String.shout", "function"),
    ]


def test_symbols_survive_syntax_errors() -> None:
    names = [s.qualified_name for s in symbols_of("broken.py")]
    assert "normalize" in names
    assert "Report.render" in names


def test_text_languages_have_no_symbols() -> None:
    text = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert chunk_file("README.md", text, "markdown").symbols == []
