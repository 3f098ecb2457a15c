"""Mining (query, positive, hard negatives) triples from documented code (plain functions).

A documented definition teaches the embedder what a person searching for it might type: the
**query** is the summary of its docstring (Python: the string literal opening the body) or of the
JSDoc/TSDoc block (``/** ... */``) right above it, cleaned of markup; the **positive** is the text
the index embeds for the definition (``Chunk.embedding_text``: symbol line and content) with that
docstring cut out, so the model has to match the words to the code and not to the comment.
**Hard negatives** are other definitions the model could confuse with it: siblings from the same
class or file, and the package's best BM25 matches for the query; every one of them is stripped of
its own docstring too, so "has a docstring" is no signal. Negatives never overlap the positive
(no enclosing class, no nested method, no other piece of the same definition, no definition of the
same name, no definition documented with the same summary).

Files are walked with the index's own walker (``coderag_assets.files``) and chunked with its own
chunker (``coderag_assets.chunking``), so the positives look exactly like what the index embeds.
"""

from __future__ import annotations

import html
import inspect
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from tree_sitter import Node

from coderag_assets.chunking import MAX_CHUNK_CHARS, Chunk, chunk_file, language_for_path
from coderag_assets.chunking.definitions import Definition, find_definitions
from coderag_assets.chunking.grammars import GRAMMARS
from coderag_assets.chunking.parsers import parser_for
from coderag_assets.files import SkippedFile, read_source, scan_tree

_Item = TypeVar("_Item")

#: Languages whose doc comments are mined (tree-sitter grammar names).
TRAINING_LANGUAGES: frozenset[str] = frozenset({"python", "javascript", "typescript", "tsx"})
#: Definition kinds that make triples and negatives.
TRAINING_KINDS: frozenset[str] = frozenset({"function", "method", "class"})

MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 40
#: A first sentence shorter than this many words takes the second sentence along.
SHORT_SENTENCE_WORDS = 8
#: A positive needs this many non-blank code lines once its docstring is gone.
MIN_POSITIVE_CODE_LINES = 2
NEGATIVES_PER_TRIPLE = 3
MAX_SIBLING_NEGATIVES = 2
#: BM25 neighbours looked at per query before the exclusion rules pick the negatives.
BM25_CANDIDATES = 24
DEFAULT_MAX_TRIPLES_PER_PACKAGE = 2500

#: Directories never mined: tests and benchmarks (their docstrings describe test cases), and
#: third-party code a package carries (its licence is not necessarily the package's).
SKIPPED_DIR_NAMES: frozenset[str] = frozenset(
    {
        "test", "tests", "testing", "testsuite", "__tests__", "__mocks__", "spec", "specs",
        "fixtures",
        "benchmark", "benchmarks", "bench", "asv_bench",
        "vendor", "vendored", "_vendor", "externals", "_externals", "third_party", "thirdparty",
        "node_modules", "bower_components",
    }
)  # fmt: skip
#: Declaration files repeat the docs of the code they describe and hold no code of their own.
SKIPPED_NAME_SUFFIXES: tuple[str, ...] = (".d.ts", ".d.mts", ".d.cts")
#: Test modules wherever they live (``t/unit/test_app.py``, ``src/util.spec.ts``).
TEST_FILE_NAME = re.compile(
    r"^(?:test_.*\.py|.*_test\.py|tests?\.py|conftest\.py|.*\.(?:test|spec)\.[cm]?[jt]sx?)$"
)
#: Build-output directories: mined after the sources, so a source copy of a documented
#: definition is the one that survives query deduplication.
BUILD_DIR_NAMES: frozenset[str] = frozenset(
    {"dist", "build", "cjs", "esm", "es", "es5", "es2015", "umd", "lib-cov", "bundles", "fesm2022"}
)


@dataclass(frozen=True, slots=True)
class DocComment:
    """A definition's documentation: its raw text (delimiters removed) and where it sits.

    Rows are 0-based file rows; columns are 0-based character offsets, the end exclusive.
    """

    raw: str
    style: str  # "docstring" (Python) or "jsdoc"
    start_row: int
    start_column: int
    end_row: int
    end_column: int


@dataclass(frozen=True, slots=True)
class MinedDefinition:
    """One definition of a file as training sees it.

    ``text`` is the embedding text (symbol line and content) with the definition's own doc
    comment removed; ``query`` the cleaned doc summary, ``None`` when the definition has no usable
    one. ``first_row``/``last_row`` (0-based) span the definition with its doc comment.
    """

    path: str
    language: str
    symbol: str
    parent: str
    kind: str
    first_row: int
    last_row: int
    text: str
    query: str | None

    def overlaps(self, other: MinedDefinition) -> bool:
        """Same file and intersecting rows: nested in, enclosing, or a piece of each other."""
        return (
            self.path == other.path
            and self.first_row <= other.last_row
            and other.first_row <= self.last_row
        )


@dataclass(frozen=True, slots=True)
class Triple:
    query: str
    positive: str
    negatives: tuple[str, ...]
    path: str
    symbol: str
    language: str


@dataclass(slots=True)
class PackageMining:
    """What mining one package tree produced: triples (capped) and counts for the report."""

    triples: list[Triple]
    files: int = 0
    definitions: int = 0
    documented: int = 0
    skipped_files: Counter[str] = field(default_factory=Counter)


# --------------------------------------------------------------------------- query cleaning

_SECTION_LINE = re.compile(
    r"^\s*(?:[:@]\w|>>>|\.\.\s|-{3,}|={3,}|~{3,}|#{1,6}\s|```|<pre>|"
    r"(?:args|arguments|parameters|params|returns?|yields?|raises|throws|examples?|notes?|"
    r"see also|attributes|keyword arguments|usage|warnings?|references|todo)\s*:?\s*$)",
    re.IGNORECASE,
)
_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*(?:->.*)?$")
_SIGNATURE_PREFIX = re.compile(r"^[\w.]+\([^)]*\)\s*(?:->\s*[\w.\[\], ]+)?\s*[:-]\s+")
_JSDOC_SUMMARY_TAG = re.compile(r"^@(?:description|desc|summary)\b\s*", re.IGNORECASE)
_INLINE_TAG = re.compile(
    r"\{@(?:link|linkcode|linkplain|code|see)\s+([^}|\s]+)(?:[|\s]+([^}]*))?\}"
)
_OTHER_INLINE_TAG = re.compile(r"\{@\w+\s*([^}]*)\}")
_REST_ROLE = re.compile(r":(?:[\w-]+:)*[\w-]+:`([^`]+)`")
_EPYTEXT = re.compile(r"\b[LCIBMUEX]\{([^{}]*)\}")
_DOUBLE_BACKTICKS = re.compile(r"``(.+?)``")
_REST_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]*>)?`__?")
_BACKTICKS = re.compile(r"`([^`]*)`")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_BOLD = re.compile(r"(\*\*|__)(\S(?:.*?\S)?)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S[^*]*?)\*(?![\w*])")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_URL = re.compile(r"\(?<?https?://\S+")
_JSDOC_TYPE_PATH = re.compile(
    r"import\([\"'][^\"']*[\"']\)\.|module:[\w/.@-]+[~#.]|module:[\w.@-]*/"
)
_LATEX = re.compile(r"\\[A-Za-z]{2,}|\$[^$]+\$")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")
_ABBREVIATION_END = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|resp|incl|no|ie|eg)\.|\b\w\.)$", re.IGNORECASE
)
_BOILERPLATE = re.compile(
    r"^\(?(?:constructor|create[sd]? (?:a )?new instance|initiali[sz]es? (?:a new|the) instance|"
    r"todo|fixme|xxx|hack|deprecated|see\b|alias (?:of|for)|an alias|initiali[sz]e self|"
    r"return repr|implement(?:s|ation of)? (?:self|the abstract|abstract)|same as\b|"
    r"overrid(?:e|es|den)\b|inherit|internal\b|for internal|private\b|this is (?:an? )?"
    r"(?:private|internal)|do not use|undocumented|not implemented|placeholder|docstring|"
    r"ditto|auto-?generated|generated by|copied from|backwards?[- ]compat|legacy\b|"
    r"(?:this )?(?:function|method) is deprecated|no-?op\b|dummy\b|only for internal)"
    r"|^\w+\s*:\s",  # a grammar rule ("expr : term | expr PLUS term")
    re.IGNORECASE,
)
_FORBIDDEN_WORDS = re.compile(
    r"copyright|licen[cs]ed?\b|all rights reserved|eslint|istanbul|jshint|tslint|@flow|"
    r"prettier-ignore|webpack:|sourceMappingURL",
    re.IGNORECASE,
)
_QUERY_WORD = re.compile(r"[A-Za-z][A-Za-z0-9']*")
_IDENTIFIER_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOPWORDS: frozenset[str] = frozenset(
    {
        "a", "an", "the", "of", "to", "in", "on", "for", "by", "with", "from", "at", "as", "and",
        "or", "is", "are", "be", "this", "that", "it", "its", "if", "into", "these", "those",
        "which", "when", "whether", "given", "new", "all", "any",
    }
)  # fmt: skip


def _docstring_lines(raw: str) -> list[str]:
    return inspect.cleandoc(raw.expandtabs()).splitlines()


def _jsdoc_lines(raw: str) -> list[str]:
    lines = []
    for line in raw.splitlines():
        stripped = line.strip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            stripped = stripped.removeprefix(" ")
        lines.append(stripped.rstrip())
    return lines


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return [paragraph for paragraph in paragraphs if paragraph]


def summary_text(raw: str, style: str) -> str:
    """The descriptive opening of a doc comment, before any section, field or tag; ``""`` when
    it has none. ``style`` is ``"docstring"`` or ``"jsdoc"`` (a ``@description``/``@summary``
    tag is used when the block has no untagged description)."""
    if style == "docstring":
        lines = _until_section(_docstring_lines(raw))
    else:
        lines = _jsdoc_description(_jsdoc_lines(raw))
    for paragraph in _paragraphs(lines)[:2]:
        if _SIGNATURE_LINE.match(paragraph[0]) and len(paragraph) == 1:
            continue  # "name(args) -> type" lines opening C-extension style docstrings
        return " ".join(paragraph)
    return ""


def _until_section(lines: Sequence[str]) -> list[str]:
    kept: list[str] = []
    for line in lines:
        if _SECTION_LINE.match(line):
            break
        kept.append(line)
    return kept


def _jsdoc_description(lines: list[str]) -> list[str]:
    """The untagged text opening a JSDoc block, else the text of its ``@description`` tag."""
    description = _until_section(lines)
    if any(line.strip() for line in description):
        return description
    for index, line in enumerate(lines):
        if _JSDOC_SUMMARY_TAG.match(line.strip()):
            return [_JSDOC_SUMMARY_TAG.sub("", line.strip()), *_until_section(lines[index + 1 :])]
    return []


def _role_target(match: re.Match[str]) -> str:
    target = match.group(1).strip()
    label = re.match(r"(.+?)\s*<[^>]*>$", target)
    if label:
        return label.group(1)
    target = target.lstrip("!")
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target


def clean_markup(text: str) -> str:
    """``text`` without doc markup: inline tags, roles, backticks, emphasis, links, HTML, URLs,
    JSDoc module paths (``import("./x.js").Y`` -> ``Y``); whitespace collapsed."""
    text = html.unescape(text)
    text = _INLINE_TAG.sub(lambda m: (m.group(2) or m.group(1)).strip().replace("#", "."), text)
    text = _OTHER_INLINE_TAG.sub(r"\1", text)
    text = _REST_ROLE.sub(_role_target, text)
    text = _EPYTEXT.sub(lambda m: re.sub(r"\s*<[^>]*>$", "", m.group(1)), text)
    text = _DOUBLE_BACKTICKS.sub(r"\1", text)
    text = _REST_LINK.sub(r"\1", text)
    text = _BACKTICKS.sub(r"\1", text)
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _BOLD.sub(r"\2", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _URL.sub("", text)
    text = _JSDOC_TYPE_PATH.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _sentences(text: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()]
        if _ABBREVIATION_END.search(candidate):
            continue
        sentences.append(candidate)
        start = match.end()
    sentences.append(text[start:])
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def identifier_words(identifier: str) -> set[str]:
    """Lower-case words of an identifier: ``getUserById`` -> get, user, by, id."""
    return {part.lower() for part in _IDENTIFIER_PART.findall(identifier)}


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ies", "es", "s", "ed", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def make_query(raw: str, style: str, identifier: str) -> str | None:
    """The training query for a doc comment: the first sentence (two when the first is short) of
    its summary, cleaned of markup; ``None`` when the result is shorter than ``MIN_QUERY_WORDS``
    or longer than ``MAX_QUERY_WORDS`` words, boilerplate ("Constructor", "Deprecated",
    "See X", ...), not prose, or little more than the identifier's own words."""
    summary = clean_markup(summary_text(raw, style)).lstrip("\\ ")
    summary = _SIGNATURE_PREFIX.sub("", summary)  # "allow(module, ...): allow modules by name"
    sentences = _sentences(summary)
    if not sentences:
        return None
    query = sentences[0]
    if len(query.split()) < SHORT_SENTENCE_WORDS and len(sentences) > 1:
        longer = f"{query} {sentences[1]}"
        if len(longer.split()) <= MAX_QUERY_WORDS:
            query = longer
    query = query.rstrip(" .:;,-")
    words = query.split()
    if not MIN_QUERY_WORDS <= len(words) <= MAX_QUERY_WORDS:
        return None
    if _BOILERPLATE.match(query) or _FORBIDDEN_WORDS.search(query) or _LATEX.search(query):
        return None
    prose_words = _QUERY_WORD.findall(query)
    if len(prose_words) < 0.6 * len(words):
        return None  # formulas, code, tables
    letters = [char for char in query if char.isalpha()]
    if sum(not char.isascii() for char in letters) > 0.2 * len(letters):
        return None  # mostly not English
    name_stems = {_stem(word) for word in identifier_words(identifier)}
    content_stems = {
        _stem(word) for word in prose_words if word.lower() not in _STOPWORDS and len(word) > 1
    }
    if len(content_stems - name_stems) < 2:
        return None  # "Gets the user id." for getUserId
    return query


# --------------------------------------------------------------------------- doc comments


def _char_column(line: bytes, byte_column: int) -> int:
    return len(line[:byte_column].decode("utf-8", "replace"))


def _span(node: Node, encoded_lines: list[bytes]) -> tuple[int, int, int, int]:
    start_row, start_byte = node.start_point
    end_row, end_byte = node.end_point
    return (
        start_row,
        _char_column(encoded_lines[start_row], start_byte),
        end_row,
        _char_column(encoded_lines[end_row], end_byte),
    )


def _python_docstring(
    definition: Definition, source: bytes, lines: list[bytes]
) -> DocComment | None:
    """The string literal opening the body of a Python function or class."""
    body = definition.node.child_by_field_name("body")
    if body is None:
        return None
    first = next((child for child in body.named_children if child.type != "comment"), None)
    if first is not None and first.type == "expression_statement" and first.named_child_count == 1:
        literal = first.named_children[0]
    else:
        literal = first
    if literal is None or literal.type not in ("string", "concatenated_string"):
        return None
    parts = [literal] if literal.type == "string" else list(literal.named_children)
    raw_parts = []
    for part in parts:
        contents = [child for child in part.named_children if child.type == "string_content"]
        if any(child.type == "interpolation" for child in part.named_children):
            return None  # an f-string is no docstring
        raw_parts.append(
            "".join(source[c.start_byte : c.end_byte].decode("utf-8", "replace") for c in contents)
        )
    target = first if first is not None else literal
    return DocComment("".join(raw_parts), "docstring", *_span(target, lines))


_DOC_BLOCK_START = re.compile(r"/\*\*(?![*/<])")


def _jsdoc(definition: Definition, source: bytes, lines: list[bytes]) -> DocComment | None:
    """The ``/** ... */`` block directly above a JS/TS definition (one blank row allowed), not a
    banner (``/*****``), a member doc (``/**<``) or a licence header."""
    comment = definition.outer.prev_named_sibling
    if comment is None or comment.type != "comment":
        return None
    text = source[comment.start_byte : comment.end_byte].decode("utf-8", "replace")
    if not _DOC_BLOCK_START.match(text) or not text.endswith("*/"):
        return None
    gap = definition.outer.start_point[0] - comment.end_point[0]
    if gap > 2 or (gap == 2 and lines[comment.end_point[0] + 1].strip()):
        return None
    lowered = text.lower()
    if "@license" in lowered or "copyright" in lowered or "@preserve" in lowered:
        return None
    return DocComment(text[3:-2], "jsdoc", *_span(comment, lines))


# --------------------------------------------------------------------------- definitions


def _strip_doc(rows: list[str], first_row: int, doc: DocComment | None) -> list[str]:
    """``rows`` (file rows from ``first_row``) without the part of ``doc`` they hold. A doc alone
    on its rows takes the rows (and one blank row after it); a doc sharing a row with code is cut
    out of that row."""
    if doc is None:
        return rows
    last_row = first_row + len(rows) - 1
    if doc.end_row < first_row or doc.start_row > last_row:
        return rows
    start = max(doc.start_row, first_row) - first_row
    end = min(doc.end_row, last_row) - first_row
    prefix = rows[start][: doc.start_column] if doc.start_row >= first_row else ""
    suffix = rows[end][doc.end_column :] if doc.end_row <= last_row else ""
    if prefix.strip() or suffix.strip(" \t;"):
        joined = (prefix.rstrip() + " " + suffix.strip()).rstrip()
        return [*rows[:start], joined, *rows[end + 1 :]]
    after = end + 1
    if after < len(rows) and not rows[after].strip() and after + 1 < len(rows):
        after += 1
    return [*rows[:start], *rows[after:]]


def _trim_blank_edges(rows: list[str]) -> list[str]:
    first = next((i for i, row in enumerate(rows) if row.strip()), len(rows))
    last = next((i for i in range(len(rows) - 1, -1, -1) if rows[i].strip()), -1)
    return rows[first : last + 1]


def _head(rows: list[str], max_chars: int) -> list[str]:
    """The leading ``rows`` whose joined text fits in ``max_chars`` (at least one row)."""
    size = -1
    for index, row in enumerate(rows):
        size += len(row) + 1
        if size > max_chars:
            return _trim_blank_edges(rows[: max(index, 1)])
    return rows


def _chunk_at(chunks: Sequence[Chunk], line: int) -> Chunk | None:
    for chunk in chunks:
        if chunk.start_line <= line <= chunk.end_line:
            return chunk
    return None


def file_definitions(path: str, text: str, language: str) -> list[MinedDefinition]:
    """Every function, method and class of one file, docstring-stripped, with its query.

    The text of a definition is the embedding text of the chunk holding its name; when that
    chunk also holds definitions that are not nested in it (small definitions packed together,
    or a method inside an unsplit class) it is cut to the definition's own rows, under its
    qualified name. A definition bigger than a chunk (split by the chunker) gets its head: its
    rows with the doc removed, up to ``MAX_CHUNK_CHARS``, so a long docstring leaves room for
    the code after it. Definitions left with fewer than ``MIN_POSITIVE_CODE_LINES`` code lines
    (decorators do not count) are dropped.
    """
    if language not in TRAINING_LANGUAGES:
        return []
    chunked = chunk_file(path, text, language)
    source_lines = text.split("\n")
    encoded = text.encode("utf-8", "surrogatepass")
    encoded_lines = encoded.split(b"\n")
    parser, ts_language = parser_for(language)
    tree = parser.parse(encoded)
    definitions = find_definitions(tree, encoded, GRAMMARS[language], ts_language)
    units = [definition for definition in definitions if definition.is_chunk_unit]
    find_doc = _python_docstring if language == "python" else _jsdoc

    mined: list[MinedDefinition] = []
    for definition in units:
        if definition.kind not in TRAINING_KINDS:
            continue
        doc = find_doc(definition, encoded, encoded_lines)
        own_first = definition.start_row
        if doc is not None:
            own_first = min(own_first, doc.start_row)
        own_last = definition.end_row
        chunk = _chunk_at(chunked.chunks, definition.name_row + 1)
        if chunk is None:
            continue
        chunk_first, chunk_last = chunk.start_line - 1, chunk.end_line - 1
        if chunk_first == chunk_last and chunk.content != source_lines[chunk_first]:
            continue  # a slice of an overlong (minified) row
        foreign = any(
            other is not definition
            and chunk_first <= other.name_row <= chunk_last
            and (other.start_row < definition.start_row or other.end_row > definition.end_row)
            for other in units
        )
        whole_chunk = chunk.symbol == definition.qualified_name and not foreign
        first_row = chunk_first if whole_chunk else max(chunk_first, own_first)
        if chunk_last < own_last:
            last_row = own_last  # split: the definition's head, refilled where the doc was
        else:
            last_row = chunk_last if whole_chunk else own_last
        rows = _strip_doc(source_lines[first_row : last_row + 1], first_row, doc)
        rows = _head(_trim_blank_edges(rows), MAX_CHUNK_CHARS)
        code_lines = [row for row in rows if row.strip() and not row.lstrip().startswith("@")]
        if len(code_lines) < MIN_POSITIVE_CODE_LINES:
            continue
        query = make_query(doc.raw, doc.style, definition.name) if doc is not None else None
        mined.append(
            MinedDefinition(
                path=path,
                language=language,
                symbol=definition.qualified_name,
                parent=definition.parent,
                kind=definition.kind,
                first_row=own_first,
                last_row=own_last,
                text=f"{definition.qualified_name}\n" + "\n".join(rows),
                query=query,
            )
        )
    return mined


# --------------------------------------------------------------------------- negatives

_CODE_STOPWORDS: frozenset[str] = _STOPWORDS | frozenset(
    {
        "self", "cls", "this", "return", "def", "function", "const", "let", "var", "class",
        "new", "none", "null", "undefined", "true", "false", "if", "else", "elif", "for",
        "while", "import", "export", "from", "async", "await", "raise", "throw", "try", "except",
        "catch",
    }
)  # fmt: skip


def search_tokens(text: str) -> list[str]:
    """Lower-case word tokens for BM25, identifiers split (``parseHTTPDate`` -> parse, http,
    date), stopwords and one-letter tokens dropped."""
    return [
        token
        for token in (part.lower() for part in _IDENTIFIER_PART.findall(text))
        if len(token) > 1 and token not in _CODE_STOPWORDS
    ]


def _normalized(text: str) -> str:
    return _SPACES.sub("", text)


class NegativePicker:
    """Chooses hard negatives for the documented definitions of one package."""

    def __init__(self, definitions: Sequence[MinedDefinition], seed: int) -> None:
        import bm25s

        self._definitions = list(definitions)
        self._normalized = [_normalized(definition.text) for definition in self._definitions]
        self._by_path: dict[str, list[int]] = {}
        for index, definition in enumerate(self._definitions):
            self._by_path.setdefault(definition.path, []).append(index)
        self._rng = random.Random(seed)
        self._bm25 = bm25s.BM25()
        corpus_tokens = [
            search_tokens(definition.text) or ["_"] for definition in self._definitions
        ]
        self._bm25.index(corpus_tokens, show_progress=False)

    def _excluded(self, positive: MinedDefinition, positive_key: str, index: int) -> bool:
        candidate = self._definitions[index]
        if candidate is positive or candidate.overlaps(positive):
            return True
        if candidate.symbol.rsplit(".", 1)[-1] == positive.symbol.rsplit(".", 1)[-1]:
            return True  # overloads, accessor pairs, the same function in another build copy
        if positive.query is not None and candidate.query == positive.query:
            return True
        key = self._normalized[index]
        return key in positive_key or positive_key in key

    def pick(self, positives: Sequence[MinedDefinition]) -> list[tuple[str, ...]]:
        """Up to ``NEGATIVES_PER_TRIPLE`` negative texts for each of ``positives`` (in order):
        BM25 neighbours of the query first, then up to ``MAX_SIBLING_NEGATIVES`` siblings (same
        parent scope first, then the rest of the file), BM25 filling what siblings leave."""
        if not positives:
            return []
        k = min(BM25_CANDIDATES, len(self._definitions))
        query_tokens = [search_tokens(positive.query or "") or ["_"] for positive in positives]
        neighbours, scores = self._bm25.retrieve(query_tokens, k=k, show_progress=False)
        picked: list[tuple[str, ...]] = []
        for row, positive in enumerate(positives):
            positive_key = _normalized(positive.text)
            ranked = [
                int(index)
                for index, score in zip(neighbours[row], scores[row], strict=True)
                if score > 0 and not self._excluded(positive, positive_key, int(index))
            ]
            siblings = self._siblings(positive, positive_key)
            chosen = self._choose(ranked, siblings)
            picked.append(tuple(self._definitions[index].text for index in chosen))
        return picked

    def _choose(self, ranked: list[int], siblings: list[int]) -> list[int]:
        """The top BM25 neighbour, then siblings up to ``MAX_SIBLING_NEGATIVES``, then the rest
        of both lists, skipping a candidate whose name or text an earlier pick already has."""
        chosen: list[int] = []
        names: set[str] = set()
        keys: set[str] = set()
        bm25_first = ranked[:1]
        passes = (
            (bm25_first, 1),
            (siblings, len(bm25_first) + MAX_SIBLING_NEGATIVES),
            ([*ranked[1:], *siblings], NEGATIVES_PER_TRIPLE),
        )
        for candidates, limit in passes:
            for index in candidates:
                if len(chosen) >= limit:
                    break
                name = self._definitions[index].symbol.rsplit(".", 1)[-1]
                key = self._normalized[index]
                if name not in names and key not in keys:
                    chosen.append(index)
                    names.add(name)
                    keys.add(key)
        return chosen

    def _siblings(self, positive: MinedDefinition, positive_key: str) -> list[int]:
        same_file = [
            index
            for index in self._by_path.get(positive.path, ())
            if not self._excluded(positive, positive_key, index)
        ]
        same_parent = [i for i in same_file if self._definitions[i].parent == positive.parent]
        rest = [i for i in same_file if self._definitions[i].parent != positive.parent]
        self._rng.shuffle(same_parent)
        self._rng.shuffle(rest)
        return [*same_parent, *rest]


# --------------------------------------------------------------------------- packages


def is_mined_path(rel_path: str) -> bool:
    """Whether a package file is mined: a training language, not a declaration file or a test
    module, not under a test, benchmark or third-party directory."""
    parts = PurePosixPath(rel_path).parts
    if any(part.lower() in SKIPPED_DIR_NAMES for part in parts[:-1]):
        return False
    if rel_path.lower().endswith(SKIPPED_NAME_SUFFIXES) or TEST_FILE_NAME.match(parts[-1]):
        return False
    return language_for_path(rel_path) in TRAINING_LANGUAGES


def _mining_order(rel_path: str) -> tuple[int, int, str]:
    parts = PurePosixPath(rel_path).parts
    built = any(part.lower() in BUILD_DIR_NAMES for part in parts[:-1])
    typed = language_for_path(rel_path) in ("typescript", "tsx")
    return (int(built), int(not typed), rel_path)


def mine_definitions(
    sources: Iterable[tuple[str, str]],
) -> list[MinedDefinition]:
    """The definitions of ``(rel_path, text)`` files, in the order given."""
    mined: list[MinedDefinition] = []
    for rel_path, text in sources:
        language = language_for_path(rel_path)
        if language is not None:
            mined.extend(file_definitions(rel_path, text, language))
    return mined


def make_triples(
    definitions: Sequence[MinedDefinition], *, max_triples: int, seed: int
) -> list[Triple]:
    """Triples for the documented ``definitions`` of one package: the first definition of each
    query and of each positive text is kept, then at most ``max_triples`` of them are sampled
    (seeded), each with its hard negatives."""
    documented = _first_of_each(
        [d for d in definitions if d.query is not None],
        lambda d: (d.query or "", d.text),
        set(),
        set(),
    )
    if len(documented) > max_triples:
        chosen = set(random.Random(seed).sample(range(len(documented)), max_triples))
        documented = [definition for i, definition in enumerate(documented) if i in chosen]
    negatives = NegativePicker(definitions, seed).pick(documented) if documented else []
    return [
        Triple(
            query=definition.query or "",
            positive=definition.text,
            negatives=negative_texts,
            path=definition.path,
            symbol=definition.symbol,
            language=definition.language,
        )
        for definition, negative_texts in zip(documented, negatives, strict=True)
    ]


def mine_package(
    root: Path,
    *,
    source_dirs: Sequence[str] = (),
    skip_dirs: Sequence[str] = (),
    max_triples: int = DEFAULT_MAX_TRIPLES_PER_PACKAGE,
    seed: int = 0,
) -> PackageMining:
    """Walk one unpacked package with the index's walker and mine its triples.

    ``source_dirs`` limits mining to those subdirectories (all of ``root`` when empty);
    ``skip_dirs`` leaves subdirectories out. Files the walker skips are counted by reason in
    ``skipped_files``; paths ``is_mined_path`` rejects are not counted.
    """
    result = PackageMining(triples=[])
    prefixes = tuple(f"{directory.strip('/')}/" for directory in source_dirs)
    skipped_prefixes = tuple(f"{directory.strip('/')}/" for directory in skip_dirs)
    sources: list[tuple[str, str]] = []
    for file_stat in sorted(scan_tree(root), key=lambda stat: _mining_order(stat.path)):
        if prefixes and not file_stat.path.startswith(prefixes):
            continue
        if skipped_prefixes and file_stat.path.startswith(skipped_prefixes):
            continue
        if not is_mined_path(file_stat.path):
            continue
        if file_stat.skip_reason is not None:
            result.skipped_files[file_stat.skip_reason] += 1
            continue
        try:
            source = read_source(root, file_stat.path)
        except SkippedFile as skipped:
            result.skipped_files[skipped.reason] += 1
            continue
        sources.append((source.path, source.text))
    result.files = len(sources)
    definitions = mine_definitions(sources)
    result.definitions = len(definitions)
    result.documented = sum(1 for definition in definitions if definition.query is not None)
    result.triples = make_triples(definitions, max_triples=max_triples, seed=seed)
    return result


def dedupe_across(
    triples: Iterable[Triple], seen_queries: set[str], seen_positives: set[str]
) -> list[Triple]:
    """``triples`` minus those whose query (case-insensitive) or positive is in the seen sets;
    the sets are updated with what is kept (one pair of sets across all packages)."""
    return _first_of_each(triples, lambda t: (t.query, t.positive), seen_queries, seen_positives)


def _first_of_each(
    items: Iterable[_Item],
    query_and_positive: Callable[[_Item], tuple[str, str]],
    seen_queries: set[str],
    seen_positives: set[str],
) -> list[_Item]:
    """The items whose query (case-insensitive) and positive were not seen before, in order;
    the seen sets are updated with what is kept."""
    kept: list[_Item] = []
    for item in items:
        query, positive = query_and_positive(item)
        query_key = query.lower()
        if query_key in seen_queries or positive in seen_positives:
            continue
        seen_queries.add(query_key)
        seen_positives.add(positive)
        kept.append(item)
    return kept
