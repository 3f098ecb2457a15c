"""Mining training triples (training/pairs.py) and the package checks (training/packages.py).

Runs on fixture files only: ``tests/fixtures/training/geometry`` (a small "package" with
docstrings and JSDoc) and package trees made in ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.quality.corpora import ALL_CORPORA, Corpus
from training.packages import (
    PackageRejected,
    TrainingPackage,
    check_package,
    detect_licence,
    excluded_names,
    find_vendored,
    licence_allowed,
    normalized_name,
)
from training.pairs import (
    Triple,
    dedupe_across,
    file_definitions,
    make_query,
    make_triples,
    mine_definitions,
    mine_package,
)

GEOMETRY = Path(__file__).parent / "fixtures" / "training" / "geometry"


def _definitions(name: str) -> dict[str, object]:
    text = (GEOMETRY / name).read_text()
    language = "python" if name.endswith(".py") else "javascript"
    return {definition.symbol: definition for definition in file_definitions(name, text, language)}


def _geometry_triples() -> dict[str, Triple]:
    sources = [(name, (GEOMETRY / name).read_text()) for name in ("shapes.py", "vectors.js")]
    triples = make_triples(mine_definitions(sources), max_triples=100, seed=0)
    return {triple.symbol: triple for triple in triples}


# --------------------------------------------------------------------------- positives


def test_python_positive_drops_the_docstring_and_keeps_the_code() -> None:
    area = _definitions("shapes.py")["Circle.area"]
    assert area.text == "Circle.area\n    def area(self):\n        return math.pi * self.radius**2"
    polygon = _definitions("shapes.py")["polygon_area"]
    assert "shoelace" not in polygon.text and '"""' not in polygon.text
    assert polygon.text.startswith("polygon_area\ndef polygon_area(points):\n    total = 0.0")
    assert polygon.text.endswith("    return total / 2")


def test_class_positive_drops_only_its_own_docstring() -> None:
    circle = _definitions("shapes.py")["Circle"]
    assert "A circle in the plane" not in circle.text
    assert "class Circle:\n    def __init__(self, x, y, radius):" in circle.text
    # the methods' docstrings are part of the class's code, as the index embeds it
    assert "Tell whether the point" in circle.text


def test_jsdoc_is_cut_from_the_positive_whether_or_not_the_chunk_holds_it() -> None:
    definitions = _definitions("vectors.js")
    length = definitions["Vector.length"]
    assert length.text == (
        "Vector.length\n  length() {\n    return Math.sqrt(this.x * this.x + this.y * this.y);\n  }"
    )
    rotate = definitions["Vector.rotate"]
    assert "Rotates this vector" not in rotate.text and "/**" not in rotate.text
    assert rotate.text.startswith("Vector.rotate\n  rotate(angle) {")
    add = definitions["add"]
    assert "component by component" not in add.text and "@param" not in add.text
    assert "export function add(a, b) {\n  return { x: a.x + b.x, y: a.y + b.y };\n}" in add.text


# --------------------------------------------------------------------------- queries


def test_query_is_the_cleaned_summary() -> None:
    shapes = _definitions("shapes.py")
    assert shapes["Circle.area"].query == "Return the area enclosed by the circle, using math.pi"
    assert shapes["Circle.contains"].query == (
        "Tell whether the point (px, py) lies inside or on the circle"
    )
    assert shapes["polygon_area"].query == (
        "Compute the signed area of a simple polygon with the shoelace formula"
    )
    vectors = _definitions("vectors.js")
    assert vectors["add"].query == (
        "Adds two 2D vectors component by component and returns a new Vector"
    )
    assert vectors["Vector"].query == "A mutable 2D vector with x and y components"
    assert vectors["Vector.rotate"].query == (
        "Rotates this vector in place by angle radians counter-clockwise"
    )


def test_boilerplate_short_and_name_only_summaries_make_no_query() -> None:
    shapes = _definitions("shapes.py")
    assert shapes["Circle.scaled"].query is None  # "Deprecated: use ... instead."
    assert shapes["Circle.perimeter"].query is None  # one word
    assert shapes["get_bounding_box"].query is None  # "Get the bounding box." = the name
    assert shapes["Circle.__init__"].query is None  # no docstring at all
    assert make_query("See :class:`Parser` for the details of this.", "docstring", "f") is None
    assert make_query("Alias for :meth:`Foo.bar` kept for old callers.", "docstring", "f") is None


def test_query_markup_cleaning() -> None:
    raw = """
     * Sends the ``payload`` to :func:`~net.http.post` with {@link Retry|retries}
     * and <b>returns</b> the *parsed* reply. More details follow here.
     *
     * @param {string} payload The body.
     * @returns {Promise<object>}
    """
    assert make_query(raw, "jsdoc", "send") == (
        "Sends the payload to post with retries and returns the parsed reply"
    )
    docstring = "Split text into words.\n\n    :param text: the text\n    :returns: the words\n"
    assert make_query(docstring, "docstring", "tokenize") == "Split text into words"


# --------------------------------------------------------------------------- negatives


def test_siblings_are_negatives_and_the_positive_never_is() -> None:
    triples = _geometry_triples()
    shapes = _definitions("shapes.py")
    sibling_methods = {shapes[name].text for name in shapes if name.startswith("Circle.")}
    area = triples["Circle.area"]
    assert len(area.negatives) == 3
    assert len(sibling_methods & set(area.negatives)) >= 2  # same-class siblings first
    assert set(area.negatives) <= sibling_methods | {
        shapes["polygon_area"].text,
        shapes["get_bounding_box"].text,
    }
    for triple in triples.values():
        assert triple.positive not in triple.negatives
        assert all("A circle in the plane" not in negative for negative in triple.negatives)


def test_enclosing_and_nested_definitions_are_never_negatives() -> None:
    triples = _geometry_triples()
    circle_text = _definitions("shapes.py")["Circle"].text
    assert circle_text not in triples["Circle.area"].negatives
    method_texts = {
        definition.text
        for symbol, definition in _definitions("shapes.py").items()
        if symbol.startswith("Circle.")
    }
    assert not method_texts & set(triples["Circle"].negatives)
    vector_text = _definitions("vectors.js")["Vector"].text
    assert vector_text not in triples["Vector.length"].negatives


def test_duplicate_queries_and_positives_are_dropped_across_packages() -> None:
    first = Triple("Parse a date string", "parse\ndef parse(): ...", (), "a.py", "parse", "python")
    same_query = Triple("parse a DATE string", "other\ndef other(): ...", (), "b.py", "o", "python")
    same_positive = Triple("Read a date", "parse\ndef parse(): ...", (), "c.py", "p", "python")
    seen_queries: set[str] = set()
    seen_positives: set[str] = set()
    kept = dedupe_across([first], seen_queries, seen_positives)
    kept += dedupe_across([same_query, same_positive], seen_queries, seen_positives)
    assert kept == [first]


def test_mining_a_package_skips_test_directories(tmp_path: Path) -> None:
    mining = mine_package(GEOMETRY, max_triples=100)
    assert mining.files == 2  # shapes.py and vectors.js; tests/helpers.py is not mined
    assert {triple.path for triple in mining.triples} == {"shapes.py", "vectors.js"}
    capped = mine_package(GEOMETRY, max_triples=3)
    assert len(capped.triples) == 3


# --------------------------------------------------------------------------- package checks


def _pypi_package(tmp_path: Path, name: str, pkg_info: str) -> tuple[TrainingPackage, Path]:
    root = tmp_path / name
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text('"""A package."""\n')
    (root / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{pkg_info}")
    package = TrainingPackage(Corpus(name, "pypi", name, "1.0", "python", "MIT"))
    return package, root


def _npm_package(tmp_path: Path, name: str, manifest: dict[str, object]) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": name, **manifest}))
    (root / "index.js").write_text("module.exports = {};\n")
    return root


def test_licence_filter_keeps_permissive_packages(tmp_path: Path) -> None:
    excluded = excluded_names()
    mit, root = _pypi_package(tmp_path, "okpkg", "License-Expression: MIT\n")
    assert check_package(mit, root, excluded) == "MIT"
    _, classified = _pypi_package(
        tmp_path, "bsdpkg", "Classifier: License :: OSI Approved :: BSD License\n"
    )
    assert detect_licence(classified, "pypi").licence == "BSD"
    npm_root = _npm_package(tmp_path, "okjs", {"license": "ISC"})
    assert detect_licence(npm_root, "npm").allowed
    assert licence_allowed("MIT OR Apache-2.0") and licence_allowed("(BSD-3-Clause)")
    assert not licence_allowed("MIT AND GPL-3.0-only")


def test_licence_filter_drops_a_non_permissive_package(tmp_path: Path) -> None:
    excluded = excluded_names()
    gpl, root = _pypi_package(
        tmp_path,
        "gplpkg",
        "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)\n",
    )
    with pytest.raises(PackageRejected, match="licence"):
        check_package(gpl, root, excluded)
    dual, dual_root = _pypi_package(
        tmp_path,
        "mixedpkg",
        "Classifier: License :: OSI Approved :: MIT License\n"
        "Classifier: License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)\n",
    )
    with pytest.raises(PackageRejected, match="licence"):
        check_package(dual, dual_root, excluded)
    npm_root = _npm_package(tmp_path, "gpljs", {"license": "GPL-3.0"})
    npm_package = TrainingPackage(Corpus("gpljs", "npm", "gpljs", "1.0", "javascript", "MIT"))
    with pytest.raises(PackageRejected, match="GPL-3.0"):
        check_package(npm_package, npm_root, excluded)
    bare, bare_root = _pypi_package(tmp_path, "nolicence", "")
    with pytest.raises(PackageRejected, match="unknown"):
        check_package(bare, bare_root, excluded)


def test_vendoring_check_drops_a_package_that_carries_an_excluded_one(tmp_path: Path) -> None:
    excluded = excluded_names()
    package, root = _pypi_package(tmp_path, "bundler", "License-Expression: MIT\n")
    vendored = root / "bundler" / "_vendor" / "requests"
    vendored.mkdir(parents=True)
    (vendored / "__init__.py").write_text("")
    with pytest.raises(PackageRejected, match=r"_vendor/requests/"):
        check_package(package, root, excluded)

    npm_root = _npm_package(tmp_path, "cli-kit", {"license": "MIT"})
    (npm_root / "node_modules" / "commander").mkdir(parents=True)
    (npm_root / "node_modules" / "commander" / "index.js").write_text("")
    assert "node_modules/commander/" in (find_vendored(npm_root, excluded) or "")

    bundled = _npm_package(tmp_path, "versions", {"license": "MIT"})
    (bundled / "lib").mkdir()
    (bundled / "lib" / "semver.js").write_text("module.exports = {};\n")
    assert find_vendored(bundled, excluded) == "lib/semver.js (looks like semver)"


def test_vendoring_check_ignores_names_without_code_of_that_language(tmp_path: Path) -> None:
    excluded = excluded_names()
    root = _npm_package(tmp_path, "docs-only", {"license": "MIT"})
    (root / "docs" / "rich").mkdir(parents=True)
    (root / "docs" / "rich" / "README.md").write_text("Rich text notes.\n")
    (root / "lib").mkdir()
    (root / "lib" / "requests.js").write_text("module.exports = {};\n")  # requests is Python
    assert find_vendored(root, excluded) is None


def test_excluded_names_follow_the_benchmark_corpora() -> None:
    names = {entry.name for entry in excluded_names()}
    assert {"requests", "click", "rich"} <= names
    assert {normalized_name(corpus.package) for corpus in ALL_CORPORA} <= names
    extra = Corpus("newcorpus", "npm", "@scope/new-corpus", "1.0.0", "javascript", "MIT")
    assert "new_corpus" in {entry.name for entry in excluded_names((extra,))}


def test_an_excluded_package_itself_is_rejected(tmp_path: Path) -> None:
    corpus = ALL_CORPORA[0]
    package = TrainingPackage(corpus)
    with pytest.raises(PackageRejected, match="excluded"):
        check_package(package, tmp_path, excluded_names())
