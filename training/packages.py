"""The pinned registry packages the embedder's training triples are mined from, and the checks a
package must pass before it is mined.

Every package is permissively licensed (MIT, BSD, Apache-2.0, ISC) and rich in docstrings or
JSDoc. Sources are fetched with the quality benchmark's fetcher (``pip download`` of an sdist,
``npm pack`` of a tarball), then:

* the **licence filter** reads the licence from the package's own metadata (PKG-INFO
  ``License-Expression`` / classifiers / ``License``, package.json ``license``, else the licence
  file's text) and rejects anything outside ``ALLOWED_LICENCES`` or not detectable;
* the **exclusion rule** keeps out ``requests``, ``click`` and ``rich`` (held back for an
  independent check) and every quality-benchmark corpus (read from
  ``benchmarks.quality.corpora.ALL_CORPORA`` at run time), and rejects a package that carries
  any of them: a directory named like one at any depth, or a code file named like one
  (``_vendor/requests/``, ``node_modules/commander/``, a bundled ``semver.js``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from benchmarks.quality.corpora import ALL_CORPORA, Corpus

ALLOWED_LICENCES: frozenset[str] = frozenset(
    {"MIT", "BSD", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0", "ISC"}
)
#: Packages kept out of training whatever the benchmark corpora are (pip vendors two of them).
ALWAYS_EXCLUDED: tuple[str, ...] = ("requests", "click", "rich", "pip")

#: File extensions of code in each corpus language: a file or directory named like an excluded
#: package counts as a copy of it only when it is (or holds) code of that package's language.
CODE_EXTENSIONS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "python": (".py", ".pyi"),
    "javascript": (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"),
    "typescript": (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"),
    "go": (".go",),
    "rust": (".rs",),
}
_ANY_CODE_EXTENSIONS: tuple[str, ...] = tuple(
    sorted({ext for exts in CODE_EXTENSIONS_BY_LANGUAGE.values() for ext in exts})
)


@dataclass(frozen=True, slots=True)
class TrainingPackage:
    """A pinned package: the fetchable ``corpus`` (its ``license`` is the SPDX id recorded when
    it was pinned; the build checks it against the package's own metadata), the subdirectories
    worth mining (empty: the whole package) and subdirectories left out. Both are set where a
    package ships the same code several times (sources plus builds, ESM plus CommonJS)."""

    corpus: Corpus
    source_dirs: tuple[str, ...] = ()
    skip_dirs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.corpus.package

    @property
    def registry(self) -> str:
        return self.corpus.registry

    @property
    def version(self) -> str:
        return self.corpus.version

    @property
    def licence(self) -> str:
        return self.corpus.license


def _pypi(package: str, version: str, licence: str) -> TrainingPackage:
    return TrainingPackage(Corpus(package, "pypi", package, version, "python", licence))


def _npm(
    package: str,
    version: str,
    licence: str,
    source_dirs: tuple[str, ...] = (),
    skip_dirs: tuple[str, ...] = (),
) -> TrainingPackage:
    directory = package.lstrip("@").replace("/", "-")
    corpus = Corpus(directory, "npm", package, version, "javascript", licence)
    return TrainingPackage(corpus, source_dirs, skip_dirs)


PACKAGES: tuple[TrainingPackage, ...] = (
    # Python (sdists of pure-Python packages: pip prepares their metadata without compiling)
    _pypi("sympy", "1.14.0", "BSD-3-Clause"),
    _pypi("networkx", "3.6.1", "BSD-3-Clause"),
    _pypi("django", "5.2.19", "BSD-3-Clause"),
    _pypi("twisted", "26.10.0", "MIT"),
    _pypi("dask", "2026.8.0", "BSD-3-Clause"),
    _pypi("distributed", "2026.8.0", "BSD-3-Clause"),
    _pypi("xarray", "2026.9.0", "Apache-2.0"),
    _pypi("sphinx", "9.0.4", "BSD-2-Clause"),
    _pypi("tornado", "6.6.1", "Apache-2.0"),
    _pypi("nltk", "3.10.4", "Apache-2.0"),
    _pypi("pydantic", "2.14.4", "MIT"),
    _pypi("werkzeug", "3.1.9", "BSD-3-Clause"),
    _pypi("jinja2", "3.1.6", "BSD-3-Clause"),
    _pypi("flask", "3.1.3", "BSD-3-Clause"),
    _pypi("babel", "2.19.0", "BSD-3-Clause"),
    _pypi("boltons", "26.2.0", "BSD-3-Clause"),
    _pypi("toolz", "1.2.0", "BSD-3-Clause"),
    _pypi("more-itertools", "11.2.1", "MIT"),
    _pypi("attrs", "26.1.0", "MIT"),
    _pypi("httpx", "0.28.1", "BSD-3-Clause"),
    _pypi("ipython", "9.18.1", "BSD-3-Clause"),
    _pypi("celery", "5.7.0", "BSD-3-Clause"),
    _pypi("kombu", "5.7.0", "BSD-3-Clause"),
    _pypi("scrapy", "2.19.0", "BSD-3-Clause"),
    _pypi("sqlglot", "30.31.0", "MIT"),
    _pypi("pyparsing", "3.3.3", "MIT"),
    _pypi("prompt-toolkit", "3.0.53", "BSD-3-Clause"),
    _pypi("mpmath", "1.4.1", "BSD-3-Clause"),
    _pypi("pint", "0.25.3", "BSD-3-Clause"),
    _pypi("alembic", "1.20.1", "MIT"),
    _pypi("pyglet", "2.1.19", "BSD-3-Clause"),
    _pypi("trio", "0.35.0", "MIT OR Apache-2.0"),
    _pypi("anyio", "4.16.0", "MIT"),
    _pypi("jedi", "0.20.1", "MIT"),
    _pypi("arrow", "1.4.0", "Apache-2.0"),
    _pypi("openpyxl", "3.1.5", "MIT"),
    _pypi("fsspec", "2026.9.0", "BSD-3-Clause"),
    _pypi("urllib3", "2.8.0", "MIT"),
    _pypi("aiohttp", "3.14.5", "Apache-2.0 AND MIT"),
    # JavaScript / TypeScript (npm tarballs)
    _npm("ol", "10.11.0", "BSD-2-Clause"),
    _npm("three", "0.187.0", "MIT", ("src",)),
    _npm("phaser", "4.2.1", "MIT", ("src",)),
    _npm("@tensorflow/tfjs-core", "4.22.0", "Apache-2.0"),
    _npm("@cesium/engine", "26.3.0", "Apache-2.0", ("Source",)),
    _npm("lodash", "4.18.1", "MIT"),
    _npm("async", "3.2.6", "MIT"),
    _npm("mathjs", "15.2.0", "Apache-2.0", ("lib/esm",)),
    _npm("date-fns", "4.4.0", "MIT"),
    _npm("luxon", "3.7.2", "MIT", ("src",)),
    _npm("mongoose", "9.12.1", "MIT", ("lib",)),
    _npm("typeorm", "1.1.1", "MIT", skip_dirs=("browser",)),
    _npm("eslint", "10.15.0", "MIT"),
    # TypeScript sources (``src/`` next to the compiled output)
    _npm("effect", "4.1.0", "MIT", ("src",)),
    _npm("zod", "4.6.7", "MIT", ("src",)),
    _npm("pdf-lib", "1.17.1", "MIT", ("src",)),
    _npm("@grpc/grpc-js", "1.14.7", "Apache-2.0", ("src",)),
    _npm("langium", "4.4.0", "MIT", ("src",)),
    _npm("@tiptap/core", "3.35.0", "MIT", ("src",)),
    _npm("@lumino/widgets", "2.11.0", "BSD-3-Clause", ("src",)),
    _npm("@lumino/datagrid", "2.6.0", "BSD-3-Clause", ("src",)),
    _npm("@jupyterlab/services", "7.6.6", "BSD-3-Clause", ("src",)),
    _npm("@jupyterlab/notebook", "4.6.6", "BSD-3-Clause", ("src",)),
    _npm("rxjs", "7.8.2", "Apache-2.0", ("src",)),
    _npm("webpack", "5.113.0", "MIT"),
)


# --------------------------------------------------------------------------- exclusion


class PackageRejected(Exception):
    """A fetched package must not be mined; ``reason`` says why in words."""

    def __init__(self, package: str, reason: str) -> None:
        super().__init__(package, reason)
        self.package = package
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.package}: {self.reason}"


def normalized_name(name: str) -> str:
    """Registry name compared case- and separator-insensitively, npm scope dropped:
    ``@scope/More_Itertools`` -> ``more_itertools``."""
    return re.sub(r"[-_.]+", "_", name.rsplit("/", 1)[-1].lower())


@dataclass(frozen=True, slots=True)
class ExcludedName:
    """An excluded package: its normalized name and the extensions of its code."""

    name: str
    extensions: tuple[str, ...]


def excluded_names(corpora: tuple[Corpus, ...] | None = None) -> tuple[ExcludedName, ...]:
    """``ALWAYS_EXCLUDED`` and the benchmark corpora (``ALL_CORPORA`` as it is now, unless
    ``corpora`` is given), by package and by corpus name."""
    python = CODE_EXTENSIONS_BY_LANGUAGE["python"]
    names: dict[str, tuple[str, ...]] = {normalized_name(name): python for name in ALWAYS_EXCLUDED}
    for corpus in ALL_CORPORA if corpora is None else corpora:
        extensions = CODE_EXTENSIONS_BY_LANGUAGE.get(corpus.language, _ANY_CODE_EXTENSIONS)
        for name in (corpus.package, corpus.name):
            names.setdefault(normalized_name(name), extensions)
    return tuple(ExcludedName(name, extensions) for name, extensions in sorted(names.items()))


def check_not_excluded(package: TrainingPackage, excluded: tuple[ExcludedName, ...]) -> None:
    """Raise :class:`PackageRejected` when ``package`` itself is an excluded one."""
    if normalized_name(package.name) in {entry.name for entry in excluded}:
        raise PackageRejected(package.name, "excluded package (benchmark corpus or held out)")


def _code_stem(file_name: str, extensions: tuple[str, ...]) -> str | None:
    lowered = file_name.lower()
    for extension in sorted(extensions, key=len, reverse=True):
        if lowered.endswith(extension):
            stem = lowered[: -len(extension)]
            return stem.removesuffix(".min").removesuffix(".d")
    return None


def _holds_code(directory: Path, extensions: tuple[str, ...]) -> bool:
    for _, _, file_names in os.walk(directory):
        if any(name.lower().endswith(extensions) for name in file_names):
            return True
    return False


def find_vendored(root: Path, excluded: tuple[ExcludedName, ...]) -> str | None:
    """The first path under ``root`` that looks like a copy of an excluded package, or ``None``.

    Looks at every entry, ignored directories (``node_modules``, ``_vendor``) included: a
    directory named like an excluded package that holds code of that package's language, or such
    a code file named like it (``semver.js``, ``requests.py``). Returns the root-relative path
    and the package it looks like.
    """
    by_name = {entry.name: entry for entry in excluded}
    for directory, dir_names, file_names in os.walk(root):
        dir_names.sort()
        rel_dir = PurePosixPath(Path(directory).relative_to(root).as_posix())
        for dir_name in dir_names:
            match = by_name.get(normalized_name(dir_name))
            if match is not None and _holds_code(Path(directory, dir_name), match.extensions):
                return f"{(rel_dir / dir_name).as_posix()}/ (looks like {match.name})"
        for file_name in sorted(file_names):
            for entry in excluded:
                stem = _code_stem(file_name, entry.extensions)
                if stem is not None and normalized_name(stem) == entry.name:
                    return f"{(rel_dir / file_name).as_posix()} (looks like {entry.name})"
    return None


# --------------------------------------------------------------------------- licences

_LICENCE_ALIASES: dict[str, str] = {
    "mit": "MIT",
    "mit license": "MIT",
    "the mit license": "MIT",
    "mit licence": "MIT",
    "expat": "MIT",
    "bsd": "BSD",
    "bsd license": "BSD",
    "bsd licence": "BSD",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "revised bsd": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd 2-clause": "BSD-2-Clause",
    "2-clause bsd": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause",
    "apache-2.0": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "isc": "ISC",
    "isc license": "ISC",
    "isc license (iscl)": "ISC",
}
_LICENCE_FILE_NAMES: tuple[str, ...] = (
    "LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst", "LICENCE", "LICENCE.txt", "COPYING",
    "LICENSE-MIT", "LICENSE.MIT",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LicenceCheck:
    """What a package's metadata says: an SPDX id or expression (``None`` when nothing was
    recognised) and where it was read."""

    licence: str | None
    evidence: str

    @property
    def allowed(self) -> bool:
        return self.licence is not None and licence_allowed(self.licence)


def spdx_id(name: str) -> str:
    """A licence name as SPDX where it is a known alias of an allowed licence, else unchanged."""
    cleaned = name.strip().strip("()").strip()
    return _LICENCE_ALIASES.get(cleaned.lower(), cleaned)


def licence_allowed(expression: str) -> bool:
    """Whether an SPDX expression grants an allowed licence: one ``OR`` alternative whose
    ``AND`` parts are all in ``ALLOWED_LICENCES`` (``WITH`` exceptions are not allowed)."""
    flat = expression.replace("(", " ").replace(")", " ")
    for alternative in re.split(r"\s+OR\s+|\s*/\s*", flat):
        parts = [spdx_id(part) for part in re.split(r"\s+AND\s+", alternative) if part.strip()]
        if parts and " WITH " not in alternative and all(p in ALLOWED_LICENCES for p in parts):
            return True
    return False


def licence_from_text(text: str) -> str | None:
    """The licence a licence file's text grants, for the licences that matter here."""
    flat = re.sub(r"\s+", " ", text).lower()
    if "gnu general public license" in flat or "gnu lesser general public" in flat:
        return "GPL"
    if "mozilla public license" in flat:
        return "MPL-2.0"
    if "apache license" in flat and "version 2.0" in flat:
        return "Apache-2.0"
    if "permission is hereby granted, free of charge" in flat:
        return "MIT"
    if "permission to use, copy, modify, and/or distribute this software for any purpose" in flat:
        return "ISC"
    return _bsd_variant(flat)


def _bsd_variant(flat: str) -> str | None:
    """``BSD-3-Clause`` or ``BSD-2-Clause`` when lower-cased ``flat`` text holds BSD terms."""
    if "redistribution and use in source and binary forms" not in flat:
        return None
    if "neither the name" in flat or "endorse or promote" in flat:
        return "BSD-3-Clause"
    return "BSD-2-Clause"


def _classifier_licence(classifier: str) -> str | None:
    parts = [part.strip() for part in classifier.split("::")]
    if len(parts) < 2 or parts[0] != "License":
        return None
    name = parts[-1]
    if name in ("OSI Approved", "Other/Proprietary License"):
        return None if name == "OSI Approved" else "Proprietary"
    return spdx_id(name)


def _licence_file_text(root: Path) -> tuple[str, str] | None:
    for name in _LICENCE_FILE_NAMES:
        path = root / name
        if path.is_file():
            return name, path.read_text("utf-8", "replace")
    return None


def detect_licence(root: Path, registry: str) -> LicenceCheck:
    """The licence an unpacked package declares.

    PyPI sdists: PKG-INFO ``License-Expression``, else its licence classifiers (all of them must
    be allowed for a dual-listed package to pass), else a short ``License`` field, else the
    licence file's text (also when ``License`` holds the whole text). npm tarballs:
    package.json ``license`` (or the old ``licenses`` list), else the licence file's text.
    """
    if registry == "pypi":
        pkg_info = root / "PKG-INFO"
        if pkg_info.is_file():
            metadata = HeaderParser().parsestr(pkg_info.read_text("utf-8", "replace"))
            expression = metadata.get("License-Expression")
            if expression:
                return LicenceCheck(expression.strip(), "PKG-INFO License-Expression")
            licences = [
                licence
                for classifier in metadata.get_all("Classifier") or []
                if (licence := _classifier_licence(classifier)) is not None
            ]
            if licences:
                unique = list(dict.fromkeys(licences))
                refined = _refine_generic(unique, root)
                return LicenceCheck(" AND ".join(refined), "PKG-INFO classifiers")
            field = (metadata.get("License") or "").strip()
            if field and "\n" not in field and len(field) <= 80:
                return LicenceCheck(spdx_id(field), "PKG-INFO License")
            if field:
                from_text = licence_from_text(field)
                if from_text is not None:
                    return LicenceCheck(from_text, "PKG-INFO License (full text)")
    else:
        manifest = root / "package.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text("utf-8", "replace"))
            declared = data.get("license")
            if isinstance(declared, dict):
                declared = declared.get("type")
            if not declared and isinstance(data.get("licenses"), list):
                types = [entry.get("type") for entry in data["licenses"] if isinstance(entry, dict)]
                declared = " OR ".join(t for t in types if t)
            if isinstance(declared, str) and declared.strip():
                return LicenceCheck(spdx_id(declared), "package.json license")
    licence_file = _licence_file_text(root)
    if licence_file is not None:
        name, text = licence_file
        return LicenceCheck(licence_from_text(text), name)
    return LicenceCheck(None, "no licence metadata or file")


def _refine_generic(licences: list[str], root: Path) -> list[str]:
    """A generic "BSD" classifier made precise by the licence file when it says which BSD."""
    if "BSD" not in licences:
        return licences
    licence_file = _licence_file_text(root)
    precise = _bsd_variant(re.sub(r"\s+", " ", licence_file[1]).lower()) if licence_file else None
    if precise is None:
        return licences
    return [precise if licence == "BSD" else licence for licence in licences]


def check_package(package: TrainingPackage, root: Path, excluded: tuple[ExcludedName, ...]) -> str:
    """The detected licence of an unpacked ``package``; raises :class:`PackageRejected` when the
    licence is not allowed or not found, or when the package carries an excluded package."""
    check_not_excluded(package, excluded)
    licence = detect_licence(root, package.registry)
    if not licence.allowed:
        raise PackageRejected(
            package.name,
            f"licence {licence.licence or 'unknown'} ({licence.evidence}) is not one of "
            f"{', '.join(sorted(ALLOWED_LICENCES))}",
        )
    vendored = find_vendored(root, excluded)
    if vendored is not None:
        raise PackageRejected(package.name, f"carries an excluded package: {vendored}")
    assert licence.licence is not None
    return licence.licence
