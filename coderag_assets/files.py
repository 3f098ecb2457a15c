"""Walking a source tree: ignore rules, path- and content-level skip reasons, reading text.

Two stages, so that the watch sensor can stay cheap:

* :func:`scan_tree` is stat-only. It lists every candidate file under a root as a
  :class:`FileStat` (repo-relative posix path, size, mtime) and marks the skips that are
  known from the name or the stat alone (secrets, binary extensions, lock files, minified
  names, too large, empty, bad symlinks). It never opens a file other than ignore files.
* :func:`read_source` opens one file, reads its bytes once and applies the content-level
  checks (binary, UTF-8, empty, generated, minified). Every skip is a :class:`SkippedFile`
  with a reason from the ``SKIP_*`` constants and a human-readable detail.

What is never listed (not a skip, simply absent): anything inside VCS metadata directories
(:data:`VCS_DIR_NAMES`), well-known junk directories (:data:`DEFAULT_IGNORED_DIRS`), Python
or conda environments found below the root (:data:`ENVIRONMENT_MARKERS`), paths excluded by
``.gitignore`` / ``.coderagignore`` files at any level or by ``.git/info/exclude``, special
files (fifos, sockets, devices), symlinks to directories, and names that are not valid UTF-8.

This module is plain Python: no Dagster, no other CodeRAG module.
"""

from __future__ import annotations

import bisect
import errno
import fnmatch
import hashlib
import os
import posixpath
import re
import stat
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

__all__ = [
    "BINARY_CONTROL_BYTE_SHARE",
    "BINARY_EXTENSIONS",
    "BINARY_SNIFF_BYTES",
    "DEFAULT_IGNORED_DIRS",
    "ENVIRONMENT_MARKERS",
    "GENERATED_FILE_NAMES",
    "GENERATED_MARKERS",
    "GENERATED_MARKER_LINES",
    "IGNORE_FILE_NAMES",
    "INVALID_UTF8_MAX_SHARE",
    "MAX_FILE_BYTES",
    "MINIFIED_AVG_LINE_CHARS",
    "MINIFIED_AVG_MIN_BYTES",
    "MINIFIED_MAX_LINE_CHARS",
    "MINIFIED_NAME_SUFFIXES",
    "PROSE_EXTENSIONS",
    "SECRET_FILE_EXCEPTIONS",
    "SECRET_FILE_PATTERNS",
    "SKIP_BINARY",
    "SKIP_BROKEN_SYMLINK",
    "SKIP_EMPTY",
    "SKIP_GENERATED",
    "SKIP_INVALID_UTF8",
    "SKIP_MINIFIED",
    "SKIP_SECRET",
    "SKIP_SYMLINK",
    "SKIP_TOO_LARGE",
    "SKIP_UNREADABLE",
    "SKIP_VANISHED",
    "VCS_DIR_NAMES",
    "DirListing",
    "FileStat",
    "IgnoreRules",
    "RootError",
    "SkippedFile",
    "SourceFile",
    "TreeWalk",
    "file_sha256",
    "name_skip_reason",
    "read_source",
    "resolve_root",
    "scan_tree",
    "walk_tree",
]

# --------------------------------------------------------------------------------------
# Limits and constants
# --------------------------------------------------------------------------------------

MAX_FILE_BYTES = 1_000_000
"""Default size limit: larger files are skipped as ``too_large`` without being read."""

BINARY_SNIFF_BYTES = 8192
"""How many leading bytes are inspected for NUL and control bytes."""

BINARY_CONTROL_BYTE_SHARE = 0.10
"""A sniffed prefix with more than this share of control bytes is ``binary``."""

INVALID_UTF8_MAX_SHARE = 0.01
"""Up to this share of undecodable bytes is tolerated (replaced with U+FFFD)."""

MINIFIED_MAX_LINE_CHARS = 5_000
"""Any line longer than this marks the file ``minified``."""

MINIFIED_AVG_LINE_CHARS = 300
"""An average line length above this marks a file of at least
:data:`MINIFIED_AVG_MIN_BYTES` ``minified`` (prose files are exempt, see
:data:`PROSE_EXTENSIONS`)."""

MINIFIED_AVG_MIN_BYTES = 2_048
"""Files smaller than this are never judged by their average line length."""

GENERATED_MARKER_LINES = 5
"""How many leading lines are searched for :data:`GENERATED_MARKERS`."""

# Skip reasons: shown to users (``coderag status``, the manifest). Values are stable.
SKIP_TOO_LARGE = "too_large"
SKIP_BINARY = "binary"
SKIP_MINIFIED = "minified"
SKIP_GENERATED = "generated"
SKIP_SECRET = "secret"
SKIP_UNREADABLE = "unreadable"
SKIP_INVALID_UTF8 = "invalid_utf8"
SKIP_SYMLINK = "symlink_outside_root"
SKIP_BROKEN_SYMLINK = "broken_symlink"
SKIP_VANISHED = "vanished"
SKIP_EMPTY = "empty"

VCS_DIR_NAMES: frozenset[str] = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj"})
"""Never descended into and never listed, whether directory or file (a ``.git`` file marks
a worktree or submodule)."""

DEFAULT_IGNORED_DIRS: frozenset[str] = frozenset(
    {
        "node_modules",
        "__pycache__",
        ".venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".ipynb_checkpoints",
        ".eggs",
        ".direnv",
    }
)
"""Directory names skipped at any depth even without an ignore file: caches and installed
dependencies that are virtually never wanted in a code index. ``dist``, ``build``,
``target`` and ``venv`` are deliberately absent: they can hold real source (CPython has
``Lib/venv/``), so they are skipped only when an ignore file says so -- or, for
environments under any name, by :data:`ENVIRONMENT_MARKERS`."""

ENVIRONMENT_MARKERS: frozenset[str] = frozenset({"pyvenv.cfg", "conda-meta"})
"""A directory *below the root* that directly contains one of these entries is a Python
virtual environment or conda environment and is skipped whole (``venv/``, ``env/``, ...).
The root itself is never skipped this way."""

IGNORE_FILE_NAMES: tuple[str, ...] = (".gitignore", ".coderagignore")
"""Ignore files read at every directory level, in this order (later rules win, so a
``.coderagignore`` can re-include what a ``.gitignore`` in the same directory excludes)."""

SECRET_FILE_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".pypirc",
    ".netrc",
    "_netrc",
    "credentials*.json",
    "*.keystore",
    "*.jks",
    "secrets.y*ml",
)
"""Case-insensitive glob patterns on the file *name*: such files are listed with skip reason
``secret`` and never read."""

SECRET_FILE_EXCEPTIONS: tuple[str, ...] = (
    ".env.example",
    ".env.sample",
    ".env.template",
    ".env.dist",
    "*.pub",
)
"""Names that match :data:`SECRET_FILE_PATTERNS` but are templates or public keys."""

BINARY_EXTENSIONS: frozenset[str] = frozenset(
    {
        # images
        "png", "jpg", "jpeg", "gif", "bmp", "ico", "icns", "tif", "tiff", "webp", "psd",
        "heic", "avif", "xcf",
        # audio / video
        "mp3", "wav", "ogg", "oga", "flac", "m4a", "aac", "mp4", "m4v", "mov", "avi", "mkv",
        "webm", "wmv",
        # archives and packages
        "zip", "tar", "gz", "tgz", "bz2", "xz", "zst", "lz4", "7z", "rar", "whl", "egg",
        "jar", "war", "ear", "apk", "aar", "deb", "rpm", "dmg", "iso", "msi", "nupkg",
        # compiled code and objects
        "so", "dylib", "dll", "exe", "o", "a", "lib", "obj", "pyc", "pyo", "pyd", "class",
        "wasm", "beam", "elc",
        # fonts
        "woff", "woff2", "ttf", "otf", "eot",
        # documents
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp",
        # databases, data and model files
        "sqlite", "sqlite3", "db", "duckdb", "parquet", "feather", "arrow", "avro", "orc",
        "npy", "npz", "pkl", "pickle", "h5", "hdf5", "onnx", "safetensors", "ckpt", "tflite",
        "lockb",
    }
)  # fmt: skip
"""Lower-case extensions (without the dot) classified ``binary`` from the name alone.
Ambiguous ones are left to the content check (``.pt``/``.pth`` are PyTorch weights but also
Zope templates and Python path files; ``.svg`` is XML text)."""

MINIFIED_NAME_SUFFIXES: tuple[str, ...] = (".min.js", ".min.mjs", ".min.css", ".map")
"""Lower-case name suffixes classified ``minified`` from the name alone."""

GENERATED_FILE_NAMES: frozenset[str] = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lock",
        "poetry.lock",
        "Pipfile.lock",
        "pdm.lock",
        "uv.lock",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
        "mix.lock",
        "pubspec.lock",
        "Podfile.lock",
        "Package.resolved",
        "packages.lock.json",
    }
)
"""Exact file names of dependency lock files, classified ``generated`` from the name."""

GENERATED_MARKERS: tuple[str, ...] = (
    "@generated",
    "DO NOT EDIT",
    "Code generated by",
    "<auto-generated",
)
"""Case-sensitive markers; one in the first :data:`GENERATED_MARKER_LINES` lines makes a
file ``generated``."""

PROSE_EXTENSIONS: frozenset[str] = frozenset({"md", "markdown", "rst", "txt", "adoc", "org"})
"""Prose often keeps a paragraph per line: exempt from the average-line-length rule (the
longest-line rule still applies)."""

_UTF8_BOM = b"\xef\xbb\xbf"
_READ_CHUNK_BYTES = 1 << 20
# Bytes that may appear in text: printable ASCII, everything >= 0x80 (UTF-8 sequences),
# and the usual whitespace/escape controls (\b \t \n \v \f \r ESC).
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\b\t\n\v\f\r\x1b"
_SURROGATE_ESCAPE_RE = re.compile("[\udc80-\udcff]")


def _compile_name_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


_SECRET_RE = _compile_name_globs(SECRET_FILE_PATTERNS)
_SECRET_EXCEPTION_RE = _compile_name_globs(SECRET_FILE_EXCEPTIONS)


# --------------------------------------------------------------------------------------
# Data types and errors
# --------------------------------------------------------------------------------------


class RootError(Exception):
    """The root to index is unusable: it does not exist, is not a directory, or cannot be
    listed. Fatal for a whole scan; ``str()`` names the path and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SkippedFile(Exception):
    """One file is not indexed. ``reason`` is one of the ``SKIP_*`` constants, ``detail``
    says why in words (e.g. ``reason="binary"``, ``detail="NUL byte at offset 12"``).

    Picklable, so it can cross process-pool boundaries.
    """

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        super().__init__(path, reason, detail)
        self.path = path
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        suffix = f": {self.detail}" if self.detail else ""
        return f"{self.path}: skipped ({self.reason}){suffix}"


@dataclass(frozen=True, slots=True)
class FileStat:
    """One candidate file found by :func:`scan_tree`.

    ``path`` is repo-relative posix. ``size`` and ``mtime_ns`` come from the file (for a
    symlink inside the root: from its target; for a bad symlink or unreadable directory:
    from the link or directory itself). ``skip_reason`` is set when the name or stat alone
    decides the file is not indexed, else ``None`` (the content may still be skipped by
    :func:`read_source`).
    """

    path: str
    size: int
    mtime_ns: int
    skip_reason: str | None


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A readable text file: ``text`` is decoded UTF-8 with any BOM stripped (line endings
    untouched); ``sha256`` is the hex digest of the raw bytes on disk, BOM included."""

    path: str
    text: str
    sha256: str


# --------------------------------------------------------------------------------------
# Ignore rules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _IgnoreLayer:
    """Compiled rules of one directory's ignore files.

    ``prefix`` is the directory as ``"a/b/"`` (``""`` for the root). ``prefilter`` is one
    regex that matches whenever any pattern of ``spec`` could match, so the common "no
    rule applies" answer costs one C-level search instead of one Python call per pattern;
    ``None`` when the patterns could not be combined.
    """

    prefix: str
    spec: pathspec.GitIgnoreSpec
    prefilter: re.Pattern[str] | None


_NAMED_GROUP_RE = re.compile(r"\(\?P<\w+>")


def _combined_prefilter(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    regexes = [p.regex for p in spec.patterns if p.include is not None and p.regex is not None]
    if not regexes or len({rx.flags for rx in regexes}) != 1:
        return None
    if any(not isinstance(rx.pattern, str) or "(?P=" in rx.pattern for rx in regexes):
        return None
    alternatives = (_NAMED_GROUP_RE.sub("(?:", str(rx.pattern)) for rx in regexes)
    try:
        return re.compile("|".join(f"(?:{alt})" for alt in alternatives), regexes[0].flags)
    except re.error:
        return None


def _read_ignore_lines(file_path: str) -> list[str]:
    """Lines of one ignore file; a missing or unreadable file contributes nothing."""
    try:
        with open(file_path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return raw.decode("utf-8", errors="replace").splitlines()


def _is_valid_ignore_line(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except (ValueError, re.error):
        return False
    return True


def _compile_ignore_lines(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    """Compile gitignore lines; invalid lines are dropped (git ignores them too). Returns
    ``None`` when no line is an actual pattern."""
    if not lines:
        return None
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, re.error):  # pathspec's pattern errors are ValueErrors
        spec = pathspec.GitIgnoreSpec.from_lines(filter(_is_valid_ignore_line, lines))
    return spec if any(p.include is not None for p in spec.patterns) else None


def _layers_match(layers: tuple[_IgnoreLayer, ...], rel_path: str, is_dir: bool) -> bool:
    """Whether the deepest ignore layer with an opinion on ``rel_path`` excludes it.

    Deeper ignore files override shallower ones; within one file the last matching rule
    wins (pathspec implements that). ``rel_path`` must lie below every layer's prefix.
    """
    for layer in reversed(layers):
        local_path = rel_path[len(layer.prefix) :]
        if is_dir:
            local_path += "/"
        if layer.prefilter is not None and layer.prefilter.search(local_path) is None:
            continue
        include = layer.spec.check_file(local_path, separators=()).include
        if include is not None:
            return include
    return False


class IgnoreRules:
    """Gitignore semantics for one root, built lazily from the files on disk.

    Sources, lowest precedence first: ``.git/info/exclude`` at the root; then per directory
    from the root down, ``.gitignore`` then ``.coderagignore`` (same syntax). Patterns are
    relative to the directory of their file; negation (``!``), directory-only patterns
    (``foo/``) and anchoring (``/foo``) follow git. A global ``core.excludesFile`` is not
    read (results must not depend on the user's machine). As in git, a path inside an
    excluded directory cannot be re-included.

    On top of ignore files, :meth:`is_ignored` also excludes :data:`VCS_DIR_NAMES`,
    :data:`DEFAULT_IGNORED_DIRS` and environment directories (:data:`ENVIRONMENT_MARKERS`).
    Ignore files are read once per directory and cached for the life of the object: build
    a new one to see edits.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root_str = os.fspath(self.root)
        self._layers_by_dir: dict[str, tuple[_IgnoreLayer, ...]] = {}

    def _layers_for_dir(
        self, dir_rel: str, names: Collection[str] | None = None
    ) -> tuple[_IgnoreLayer, ...]:
        """Ignore layers in force for entries of ``dir_rel`` (``""`` = root). ``names`` are
        the directory's entry names when already known (saves failed opens)."""
        cached = self._layers_by_dir.get(dir_rel)
        if cached is not None:
            return cached
        if dir_rel:
            parent_layers = self._layers_for_dir(posixpath.dirname(dir_rel))
            dir_abs = os.path.join(self._root_str, dir_rel)
            prefix = dir_rel + "/"
        else:
            parent_layers = ()
            dir_abs = self._root_str
            prefix = ""
        lines: list[str] = []
        if not dir_rel:
            lines += _read_ignore_lines(os.path.join(dir_abs, ".git", "info", "exclude"))
        for ignore_name in IGNORE_FILE_NAMES:
            if names is None or ignore_name in names:
                lines += _read_ignore_lines(os.path.join(dir_abs, ignore_name))
        spec = _compile_ignore_lines(lines)
        if spec is None:
            layers = parent_layers
        else:
            layers = (*parent_layers, _IgnoreLayer(prefix, spec, _combined_prefilter(spec)))
        self._layers_by_dir[dir_rel] = layers
        return layers

    def is_ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether ``rel_path`` (repo-relative posix) is excluded from indexing.

        True when the path or any of its ancestor directories is a VCS directory, a default
        ignored directory, an environment directory, or excluded by ignore files. ``is_dir``
        says whether the path itself is a directory (directory-only patterns need it).
        Raises ``ValueError`` for an absolute path or one that leaves the root.
        """
        parts = _split_rel_path(rel_path)
        for index, part in enumerate(parts):
            part_is_dir = is_dir or index < len(parts) - 1
            part_rel = "/".join(parts[: index + 1])
            if part in VCS_DIR_NAMES:
                return True
            if part_is_dir and (
                part in DEFAULT_IGNORED_DIRS
                or self._is_environment_dir(os.path.join(self._root_str, part_rel))
            ):
                return True
            layers = self._layers_for_dir("/".join(parts[:index]))
            if _layers_match(layers, part_rel, part_is_dir):
                return True
        return False

    @staticmethod
    def _is_environment_dir(dir_abs: str) -> bool:
        return any(os.path.lexists(os.path.join(dir_abs, m)) for m in ENVIRONMENT_MARKERS)


# --------------------------------------------------------------------------------------
# Name-level classification
# --------------------------------------------------------------------------------------


def _extension(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return ext.lower() if dot else ""


def name_skip_reason(name: str) -> str | None:
    """Skip reason decided by a file name alone, else ``None``.

    Precedence: ``secret`` (:data:`SECRET_FILE_PATTERNS` minus
    :data:`SECRET_FILE_EXCEPTIONS`), ``binary`` (:data:`BINARY_EXTENSIONS`), ``generated``
    (:data:`GENERATED_FILE_NAMES`), ``minified`` (:data:`MINIFIED_NAME_SUFFIXES`).
    ``name`` is a base name, not a path.
    """
    lower = name.lower()
    if _SECRET_RE.match(lower) and not _SECRET_EXCEPTION_RE.match(lower):
        return SKIP_SECRET
    if _extension(lower) in BINARY_EXTENSIONS:
        return SKIP_BINARY
    if name in GENERATED_FILE_NAMES:
        return SKIP_GENERATED
    if lower.endswith(MINIFIED_NAME_SUFFIXES):
        return SKIP_MINIFIED
    return None


# --------------------------------------------------------------------------------------
# Root and path helpers
# --------------------------------------------------------------------------------------


def resolve_root(path: str | Path) -> Path:
    """Absolute, symlink-resolved root directory (``~`` expanded).

    Raises :class:`RootError` when the path does not exist, is not a directory, or cannot
    be listed.
    """
    shown = os.fspath(path)
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise RootError(shown, "does not exist") from None
    except RuntimeError:
        raise RootError(shown, "symlink loop") from None
    except OSError as exc:
        raise RootError(shown, exc.strerror or str(exc)) from None
    if not resolved.is_dir():
        raise RootError(shown, "is not a directory")
    try:
        with os.scandir(resolved):
            pass
    except PermissionError:
        raise RootError(shown, "permission denied (cannot list the directory)") from None
    except OSError as exc:
        raise RootError(shown, exc.strerror or str(exc)) from None
    return resolved


def _split_rel_path(rel_path: str) -> list[str]:
    """Components of a repo-relative posix path; rejects paths that leave the root."""
    if rel_path.startswith("/"):
        raise ValueError(f"{rel_path!r}: expected a repo-relative path, got an absolute one")
    parts = [p for p in rel_path.split("/") if p not in ("", ".")]
    if not parts:
        raise ValueError(f"{rel_path!r}: empty relative path")
    if ".." in parts:
        raise ValueError(f"{rel_path!r}: relative path leaves the root")
    return parts


def _is_within(real_path: str, real_root: str) -> bool:
    return real_path == real_root or real_path.startswith(real_root.rstrip("/") + "/")


def _is_utf8_name(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (surrogate escapes)
        return False
    return True


# --------------------------------------------------------------------------------------
# scan_tree
# --------------------------------------------------------------------------------------


def _stat_skip_reason(name: str, size: int, max_file_bytes: int) -> str | None:
    reason = name_skip_reason(name)
    if reason is not None:
        return reason
    if size > max_file_bytes:
        return SKIP_TOO_LARGE
    if size == 0:
        return SKIP_EMPTY
    return None


def _symlink_stat(
    entry: os.DirEntry[str], rel_path: str, real_root: str, max_file_bytes: int
) -> FileStat | None:
    """FileStat for a symlink entry, or ``None`` when it is not listed (a link to a
    directory or special file, or a link that vanished)."""
    try:
        link_stat = entry.stat(follow_symlinks=False)
    except OSError:
        return None  # the link itself vanished
    try:
        target_stat = os.stat(entry.path)
    except FileNotFoundError:
        return FileStat(rel_path, 0, link_stat.st_mtime_ns, SKIP_BROKEN_SYMLINK)
    except OSError as exc:
        reason = SKIP_BROKEN_SYMLINK if exc.errno == errno.ELOOP else SKIP_UNREADABLE
        return FileStat(rel_path, 0, link_stat.st_mtime_ns, reason)
    if not stat.S_ISREG(target_stat.st_mode):
        return None  # directory symlinks are never followed; special files are not listed
    real_target = os.path.realpath(entry.path)
    if not _is_within(real_target, real_root):
        return FileStat(rel_path, 0, link_stat.st_mtime_ns, SKIP_SYMLINK)
    target_rel = os.path.relpath(real_target, real_root)
    if any(part in VCS_DIR_NAMES for part in target_rel.split(os.sep)):
        return None  # never expose VCS metadata through a link
    reason = name_skip_reason(entry.name) or name_skip_reason(os.path.basename(real_target))
    if reason is None:
        reason = _stat_skip_reason(entry.name, target_stat.st_size, max_file_bytes)
    return FileStat(rel_path, target_stat.st_size, target_stat.st_mtime_ns, reason)


def scan_tree(root: Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> list[FileStat]:
    """Stat-only walk of ``root``: every candidate file, sorted by path.

    Lists regular files and symlinks to regular files, minus everything :class:`IgnoreRules`
    excludes (ignored directories are pruned, never entered). Opens nothing but ignore
    files. Path-level skips (``FileStat.skip_reason``), by precedence: ``broken_symlink`` /
    ``symlink_outside_root`` / ``unreadable`` for bad symlinks, then :func:`name_skip_reason`
    (``secret``, ``binary``, ``generated``, ``minified``), then ``too_large``
    (size > ``max_file_bytes``), then ``empty`` (size 0).

    Symlinks: a link to a regular file inside the root is listed under the link's own path
    with the target's size and mtime; a link resolving outside the root is
    ``symlink_outside_root``; a dangling or looping link is ``broken_symlink``. Links to
    directories are never followed (no loops, no duplicates) and not listed.

    Robustness: an entry that vanishes during the walk is dropped; a directory below the
    root that cannot be listed is reported as one ``FileStat`` with the directory's path and
    skip reason ``unreadable`` (its contents are unknown). Names that are not valid UTF-8
    are dropped. Raises :class:`RootError` if the root itself is unusable.
    """
    return walk_tree(root, max_file_bytes=max_file_bytes).files


#: A directory whose mtime is this close to (or after) the start of the walk that listed it
#: is listed again next time: a change within the same timestamp tick would keep its mtime.
RACY_DIR_MTIME_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class DirListing:
    """What :func:`walk_tree` kept of one directory it listed: enough to skip listing it
    again while its mtime stands (entries are created, removed and renamed only by changing
    their directory's mtime). ``files`` are the names of the regular files it listed,
    ``dirs`` the subdirectories it entered, ``ignore_files`` the ``(name, size, mtime_ns)``
    of the ignore files present. ``reusable`` is False for a directory that must be listed
    every time (it holds symlinks, whose targets change behind its back, or is unreadable).
    """

    mtime_ns: int
    files: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    ignore_files: tuple[tuple[str, int, int], ...] = ()
    reusable: bool = True
    name_skips: tuple[str | None, ...] = ()  # name_skip_reason of each of `files`


@dataclass(frozen=True)
class WalkDelta:
    """How an event-driven walk differs from the walk it patched (`based_on`: that walk's
    `started_ns`): `removed` are the paths whose previous rows it dropped, `rows` the rows it
    made again (a path in both was looked at again; only `rows` say what it is now)."""

    based_on: int
    removed: frozenset[str]
    rows: tuple[FileStat, ...]


@dataclass(frozen=True)
class TreeWalk:
    """One walk of a root: the rows :func:`scan_tree` returns, plus what the next walk of
    the same root needs to skip unchanged directories (:func:`walk_tree`'s `previous`)."""

    root: str
    files: list[FileStat]
    listings: dict[str, DirListing]
    exclude_file: tuple[int, int] | None  # (size, mtime_ns) of .git/info/exclude, if any
    started_ns: int
    listed_dirs: int = 0
    reused_dirs: int = 0
    relisted_reason: str = ""  # why a previous walk could not be used at all ("" = it was)
    untouched_dirs: int = 0  # of reused_dirs, taken as they were (no event named them)
    # Directories the next event-driven walk must look at even if no event names them (see
    # `_trusted`); None: not worked out yet (computed from `listings` when needed).
    volatile_dirs: frozenset[str] | None = None
    delta: WalkDelta | None = None  # set by an event-driven walk: what it changed


class _IgnoreRulesChanged(Exception):
    """An ignore file changed since the previous walk: every directory is listed again."""


def _ignore_file_stats(dir_abs: str, names: Collection[str]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for name in IGNORE_FILE_NAMES:
        if name in names:
            try:
                info = os.stat(os.path.join(dir_abs, name))
                found.append((name, info.st_size, info.st_mtime_ns))
            except OSError:
                found.append((name, -1, -1))
    return tuple(found)


def _exclude_file_stat(real_root: str) -> tuple[int, int] | None:
    try:
        info = os.stat(os.path.join(real_root, ".git", "info", "exclude"))
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)


def walk_tree(
    root: Path,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    previous: TreeWalk | None = None,
    changed_dirs: Collection[str] | None = None,
) -> TreeWalk:
    """:func:`scan_tree`'s walk, which can skip listing the directories `previous` (a walk
    of the same root) listed and that have not changed since.

    `changed_dirs` (relative paths; ``""`` is the root) is for a caller that receives
    file-system events: the directories that events named since `previous` was taken
    (the parent of every created, modified, deleted or moved path). A directory outside it
    that `previous` listed, that is reusable and that was not modified within
    :data:`RACY_DIR_MTIME_NS` of `previous`'s start is then taken from `previous` as it
    was, rows included, without a single ``stat``; the others are walked as usual. So
    `previous` must hold its rows (a walk made in this process, not one loaded from disk),
    and the caller must have started collecting events before `previous` began.

    A reused directory costs one ``lstat`` of it and of each of its files instead of a
    listing, the ignore-rule matching of every entry and the name checks; its rows are the
    same as a fresh listing's (sizes, mtimes and size-based skips come from the new stats).
    Every directory is listed again, and ``relisted_reason`` says why, when `previous` was
    made for another root, or when an ignore file (``.gitignore``, ``.coderagignore``,
    ``.git/info/exclude``) was added, removed or changed since: the rules decide what is
    listed below it. Raises :class:`RootError` if the root is unusable.
    """
    root_path = resolve_root(root)
    real_root = os.fspath(root_path)
    started_ns = time.time_ns()
    exclude_file = _exclude_file_stat(real_root)
    reason = ""
    if previous is not None:
        if previous.root != real_root:
            reason, previous = f"the previous walk was of {previous.root}", None
        elif previous.exclude_file != exclude_file:
            reason, previous = ".git/info/exclude changed", None
    try:
        return _walk(
            real_root, max_file_bytes, previous, started_ns, exclude_file, reason, changed_dirs
        )
    except _IgnoreRulesChanged as change:
        return _walk(real_root, max_file_bytes, None, started_ns, exclude_file, str(change))


def _walk(
    real_root: str,
    max_file_bytes: int,
    previous: TreeWalk | None,
    started_ns: int,
    exclude_file: tuple[int, int] | None,
    relisted_reason: str,
    changed_dirs: Collection[str] | None = None,
) -> TreeWalk:
    if changed_dirs is not None and previous is not None and previous.files:
        return _walk_changed(real_root, max_file_bytes, previous, started_ns, changed_dirs)
    rules = IgnoreRules(Path(real_root))
    found: list[FileStat] = []
    listings: dict[str, DirListing] = {}
    old = previous.listings if previous is not None else {}
    racy_after_ns = previous.started_ns - RACY_DIR_MTIME_NS if previous is not None else 0
    pending: list[tuple[str, str]] = [(real_root, "")]  # (absolute dir, rel dir)
    listed = reused = 0

    while pending:
        dir_abs, dir_rel = pending.pop()
        visit = _visit_dir(
            real_root, dir_abs, dir_rel, old.get(dir_rel), racy_after_ns, rules, max_file_bytes
        )
        if visit is None:
            continue  # vanished during the walk
        found.extend(visit.rows)
        listings[dir_rel] = visit.listing
        prefix = dir_rel + "/" if dir_rel else ""
        pending.extend((os.path.join(dir_abs, name), prefix + name) for name in visit.listing.dirs)
        if visit.listed:
            listed += 1
        else:
            reused += 1

    found.sort(key=lambda file_stat: file_stat.path)
    return TreeWalk(
        root=real_root,
        files=found,
        listings=listings,
        exclude_file=exclude_file,
        started_ns=started_ns,
        listed_dirs=listed,
        reused_dirs=reused,
        relisted_reason=relisted_reason,
    )


def _walk_changed(
    real_root: str,
    max_file_bytes: int,
    previous: TreeWalk,
    started_ns: int,
    changed_dirs: Collection[str],
) -> TreeWalk:
    """:func:`walk_tree` for a caller that receives file-system events: `previous` (a walk
    of the same root made in this process, rows included) patched where it may have changed.

    Looked at, parents before children, as a full walk would: the directories events named,
    the ones `previous` could not trust (holding symlinks, unreadable, or modified within
    :data:`RACY_DIR_MTIME_NS` of its start), and every directory new since. Everything else
    — with its rows, and its subdirectories' — is taken from `previous` without a ``stat``.
    The cost follows what changed, not the tree: no pass over every directory, and one over
    the rows (a C-level filter and a nearly sorted sort) to splice the changes in.
    """
    rules = IgnoreRules(Path(real_root))
    old = previous.listings
    racy_after_ns = previous.started_ns - RACY_DIR_MTIME_NS
    volatile = previous.volatile_dirs
    if volatile is None:
        volatile = {d for d, listing in old.items() if not _trusted(listing, racy_after_ns)}
    to_visit = sorted(
        ({d for d in changed_dirs if d in old} | volatile), key=lambda d: (d.count("/"), d)
    )
    listings = dict(old)
    dropped_rows: set[str] = set()  # paths whose previous row is replaced or gone
    removed_prefixes: list[str] = []  # subtrees that are gone ("dir/")
    new_rows: list[FileStat] = []
    listed = reused = 0
    queue: list[str] = list(reversed(to_visit))  # popped from the end: shallowest first
    seen: set[str] = set()
    found_dirs: set[str] = set()  # directories new since `previous` (no listing there yet)

    while queue:
        dir_rel = queue.pop()
        if dir_rel in seen or any(dir_rel.startswith(prefix) for prefix in removed_prefixes):
            continue
        seen.add(dir_rel)
        if dir_rel not in listings and dir_rel not in found_dirs:
            continue  # not reached from the root (its parent no longer lists it)
        prior = old.get(dir_rel)
        prefix = dir_rel + "/" if dir_rel else ""
        dir_abs = os.path.join(real_root, dir_rel) if dir_rel else real_root
        visit = _visit_dir(real_root, dir_abs, dir_rel, prior, racy_after_ns, rules, max_file_bytes)
        dropped_rows.update(_direct_row_paths(previous.files, dir_rel))
        if visit is None:  # vanished: the parent's listing (an event named it) drops it
            _remove_subtree(listings, dir_rel, removed_prefixes)
            continue
        listings[dir_rel] = visit.listing
        new_rows.extend(visit.rows)
        if visit.listed:
            listed += 1
        else:
            reused += 1
        now = set(visit.listing.dirs)
        before = set(prior.dirs) if prior is not None else set()
        for gone in sorted(before - now):
            _remove_subtree(listings, prefix + gone, removed_prefixes)
        # New subdirectories are walked whole (they have no listing to reuse); named ones
        # that stayed are already queued.
        added_dirs = [prefix + name for name in sorted(now - before, reverse=True)]
        found_dirs.update(added_dirs)
        queue.extend(added_dirs)

    new_racy_after_ns = started_ns - RACY_DIR_MTIME_NS
    still_volatile = frozenset(
        d for d in seen if d in listings and not _trusted(listings[d], new_racy_after_ns)
    )  # a directory nobody looked at was trusted and stays so (the threshold only grows)
    prefixes = tuple(removed_prefixes)
    if prefixes:
        dropped_rows.update(row.path for row in previous.files if row.path.startswith(prefixes))
    found = [row for row in previous.files if row.path not in dropped_rows]
    found.extend(new_rows)
    found.sort(key=lambda file_stat: file_stat.path)
    return TreeWalk(
        root=real_root,
        files=found,
        listings=listings,
        exclude_file=previous.exclude_file,
        started_ns=started_ns,
        listed_dirs=listed,
        reused_dirs=len(listings) - listed,
        untouched_dirs=len(listings) - listed - reused,
        volatile_dirs=still_volatile,
        delta=WalkDelta(previous.started_ns, frozenset(dropped_rows), tuple(new_rows)),
    )


def _direct_row_paths(rows: Sequence[FileStat], dir_rel: str) -> list[str]:
    """The paths of `rows` (sorted by path) that `dir_rel`'s own look produced: its files and
    symlinks, and the row naming `dir_rel` itself when it was unreadable."""
    prefix = dir_rel + "/" if dir_rel else ""
    found = [dir_rel] if dir_rel else []
    start = bisect.bisect_left(rows, prefix, key=lambda row: row.path)
    for index in range(start, len(rows)):
        path = rows[index].path
        if not path.startswith(prefix):
            break
        if "/" not in path[len(prefix) :]:
            found.append(path)
    return found


def _trusted(listing: DirListing, racy_after_ns: int) -> bool:
    """Whether a walk may take `listing` as it was when no event named its directory."""
    return listing.reusable and listing.mtime_ns < racy_after_ns


def _remove_subtree(
    listings: dict[str, DirListing], dir_rel: str, removed_prefixes: list[str]
) -> None:
    """Forget `dir_rel`'s listing and every listing below it (their rows go by
    `removed_prefixes`)."""
    prefix = dir_rel + "/"
    removed_prefixes.append(prefix)
    for key in [key for key in listings if key.startswith(prefix)]:
        del listings[key]
    listings.pop(dir_rel, None)


@dataclass
class _Visit:
    """One directory looked at: its rows (direct files), its listing, and whether it was
    listed (`listed`) or only its files stat'ed again (a reused listing)."""

    rows: list[FileStat]
    listing: DirListing
    listed: bool


def _visit_dir(
    real_root: str,
    dir_abs: str,
    dir_rel: str,
    prior: DirListing | None,
    racy_after_ns: int,
    rules: IgnoreRules,
    max_file_bytes: int,
) -> _Visit | None:
    """Look at one directory: reuse `prior` (its files stat'ed again) when its mtime stands
    and is not racy, else list it. None when it vanished. Raises RootError for the root, and
    _IgnoreRulesChanged when its ignore files differ from `prior`'s."""
    try:
        dir_mtime_ns = os.lstat(dir_abs).st_mtime_ns
    except FileNotFoundError:
        if not dir_rel:
            raise RootError(real_root, "vanished during the scan") from None
        return None
    except OSError:
        dir_mtime_ns = -1
    if prior is not None and prior.mtime_ns == dir_mtime_ns and _trusted(prior, racy_after_ns):
        rows = _reuse_listing(dir_abs, dir_rel, prior, max_file_bytes)
        if rows is not None:
            if _ignore_file_stats(dir_abs, [n for n, _, _ in prior.ignore_files]) != (
                prior.ignore_files
            ):
                raise _IgnoreRulesChanged(f"an ignore file in {dir_rel or '.'} changed")
            return _Visit(rows, prior, listed=False)
    try:
        with os.scandir(dir_abs) as iterator:
            entries = list(iterator)
    except (FileNotFoundError, NotADirectoryError):
        if not dir_rel:
            raise RootError(real_root, "vanished during the scan") from None
        return None  # vanished during the walk
    except OSError as exc:
        if not dir_rel:
            raise RootError(real_root, exc.strerror or str(exc)) from None
        if dir_mtime_ns < 0:
            return None
        return _Visit(
            [FileStat(dir_rel, 0, dir_mtime_ns, SKIP_UNREADABLE)],
            DirListing(dir_mtime_ns, reusable=False),
            listed=True,
        )

    names = {entry.name for entry in entries}
    ignore_files = _ignore_file_stats(dir_abs, names)
    if prior is not None and ignore_files != prior.ignore_files:
        raise _IgnoreRulesChanged(f"ignore files in {dir_rel or '.'} changed")
    if dir_rel and not ENVIRONMENT_MARKERS.isdisjoint(names):
        # a virtualenv / conda environment below the root
        return _Visit([], DirListing(dir_mtime_ns, ignore_files=ignore_files), listed=True)
    layers = rules._layers_for_dir(dir_rel, names)
    prefix = dir_rel + "/" if dir_rel else ""
    rows: list[FileStat] = []
    file_names: list[str] = []
    name_skips: list[str | None] = []
    dir_names: list[str] = []
    reusable = dir_mtime_ns >= 0

    for entry in entries:
        name = entry.name
        if name in VCS_DIR_NAMES or not _is_utf8_name(name):
            continue
        rel_path = prefix + name
        try:
            is_symlink = entry.is_symlink()
            is_dir = not is_symlink and entry.is_dir(follow_symlinks=False)
        except OSError:
            reusable = False
            continue
        if is_dir:
            if name in DEFAULT_IGNORED_DIRS:
                continue
            if layers and _layers_match(layers, rel_path, True):
                continue
            dir_names.append(name)
            continue
        if layers and _layers_match(layers, rel_path, False):
            continue
        if is_symlink:
            reusable = False  # its target may change while this directory does not
            file_stat = _symlink_stat(entry, rel_path, real_root, max_file_bytes)
            if file_stat is not None:
                rows.append(file_stat)
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # fifo, socket, device
            entry_stat = entry.stat(follow_symlinks=False)
        except OSError:
            reusable = False
            continue  # vanished
        name_skip = name_skip_reason(name)
        size = entry_stat.st_size
        reason = name_skip or (
            SKIP_TOO_LARGE if size > max_file_bytes else SKIP_EMPTY if size == 0 else None
        )
        rows.append(FileStat(rel_path, size, entry_stat.st_mtime_ns, reason))
        file_names.append(name)
        name_skips.append(name_skip)
    listing = DirListing(
        dir_mtime_ns,
        tuple(file_names),
        tuple(dir_names),
        ignore_files,
        reusable,
        tuple(name_skips),
    )
    return _Visit(rows, listing, listed=True)


def _reuse_listing(
    dir_abs: str, dir_rel: str, prior: DirListing, max_file_bytes: int
) -> list[FileStat] | None:
    """The rows of an unchanged directory's files from fresh stats (``fstatat`` relative to
    the directory: one path component per call), or None when one of them is no longer a
    regular file or the directory cannot be opened (it is then listed again)."""
    if not prior.files:
        return []  # only subdirectories (a third of Django's): nothing to stat here
    prefix = dir_rel + "/" if dir_rel else ""
    rows = []
    try:
        dir_fd = os.open(dir_abs, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        for name, name_skip in zip(prior.files, prior.name_skips, strict=True):
            try:
                info = os.lstat(name, dir_fd=dir_fd)
            except OSError:
                return None
            if not stat.S_ISREG(info.st_mode):
                return None
            size = info.st_size
            reason = name_skip or (
                SKIP_TOO_LARGE if size > max_file_bytes else SKIP_EMPTY if size == 0 else None
            )
            rows.append(FileStat(prefix + name, size, info.st_mtime_ns, reason))
    finally:
        os.close(dir_fd)
    return rows


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------


def _resolve_inside_root(
    root: Path, rel_path: str, resolver: RealPaths | None = None
) -> tuple[str, str, str]:
    """Normalize ``rel_path`` and resolve it (with `resolver`'s resolved directories, if
    given). Returns (rel, full path, real path). Raises ``SkippedFile(symlink_outside_root)``
    when it resolves outside the root and ``ValueError`` for a rel path that is absolute or
    leaves the root."""
    parts = _split_rel_path(rel_path)
    rel = "/".join(parts)
    resolver = resolver or RealPaths(root)
    full_path = os.path.join(resolver.real_root, *parts)
    real_path = resolver.real_path(full_path)
    if not _is_within(real_path, resolver.real_root):
        raise SkippedFile(rel, SKIP_SYMLINK, f"resolves to {real_path}, outside the root")
    return rel, full_path, real_path


class RealPaths:
    """`os.path.realpath` of files under one root, for one pass over many of its files: each
    directory is resolved once (a file's real path is its directory's plus its name unless
    the file is itself a symlink), instead of an `lstat` of every component per file.

    A directory replaced by a symlink while the pass runs keeps the real path it had when
    first resolved; a pass is one stage of one shard (seconds), and a new pass resolves again.
    """

    def __init__(self, root: Path) -> None:
        self.real_root = os.path.realpath(root)
        self._directories: dict[str, str] = {}

    def real_path(self, full_path: str) -> str:
        directory, _, name = full_path.rpartition("/")
        real_directory = self._directories.get(directory)
        if real_directory is None:
            real_directory = self._directories[directory] = os.path.realpath(directory)
        path = os.path.join(real_directory, name)
        return os.path.realpath(path) if os.path.islink(path) else path


#: How much file text (characters) a `SourceReader` keeps from one stage for the next.
KEEP_SOURCE_CHARS = 64 * 2**20


class SourceReader:
    """Reads one tree's files for one pass over a shard (its manifest, then its chunks):
    :func:`read_source` with :class:`RealPaths`, and the files a stage read with ``keep``
    handed to the next stage's read of the same path instead of being read again (up to
    `KEEP_SOURCE_CHARS` characters held; beyond that they are read twice)."""

    def __init__(self, root: Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._real_paths = RealPaths(root)
        self._kept: dict[str, SourceFile] = {}
        self._kept_chars = 0

    def read(self, rel_path: str, *, keep: bool = False) -> SourceFile:
        """`read_source` of `rel_path`, or the file an earlier ``keep`` read kept (once)."""
        kept = self._kept.pop(rel_path, None)
        if kept is not None:
            self._kept_chars -= len(kept.text)
            return kept
        source = _read_source(self.root, rel_path, self.max_file_bytes, self._real_paths)
        if keep and self._kept_chars + len(source.text) <= KEEP_SOURCE_CHARS:
            self._kept[rel_path] = source
            self._kept_chars += len(source.text)
        return source


def _open_regular_file(rel: str, full_path: str) -> int:
    """Open read-only without blocking on fifos; return the fd of a regular file. Raises
    :class:`SkippedFile` with ``vanished``, ``broken_symlink`` or ``unreadable`` (also for
    non-regular files)."""
    try:
        fd = os.open(full_path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.lexists(full_path):
            raise SkippedFile(rel, SKIP_BROKEN_SYMLINK, "symlink target is missing") from None
        raise SkippedFile(rel, SKIP_VANISHED, "no longer exists") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SkippedFile(rel, SKIP_BROKEN_SYMLINK, "symlink loop") from None
        raise SkippedFile(rel, SKIP_UNREADABLE, exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise SkippedFile(rel, SKIP_UNREADABLE, exc.strerror or str(exc)) from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SkippedFile(rel, SKIP_UNREADABLE, "not a regular file")
    return fd


def _binary_detail(raw: bytes) -> str | None:
    sniff = raw[:BINARY_SNIFF_BYTES]
    nul_offset = sniff.find(b"\0")
    if nul_offset >= 0:
        return f"NUL byte at offset {nul_offset}"
    if sniff:
        control_count = len(sniff.translate(None, _TEXT_BYTES))
        if control_count / len(sniff) > BINARY_CONTROL_BYTE_SHARE:
            return f"{control_count} of the first {len(sniff)} bytes are control bytes"
    return None


def _decode_utf8(rel: str, body: bytes) -> str:
    """Strict UTF-8, or lenient when at most :data:`INVALID_UTF8_MAX_SHARE` of the bytes
    are undecodable; otherwise raises ``SkippedFile(invalid_utf8)``."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    escaped = body.decode("utf-8", errors="surrogateescape")
    bad_count = len(_SURROGATE_ESCAPE_RE.findall(escaped))
    share = bad_count / len(body)
    if share > INVALID_UTF8_MAX_SHARE:
        raise SkippedFile(
            rel,
            SKIP_INVALID_UTF8,
            f"{bad_count} of {len(body)} bytes are not valid UTF-8 ({share:.1%}); "
            f"first at offset {first_bad}",
        )
    return body.decode("utf-8", errors="replace")


def _generated_detail(text: str) -> str | None:
    head_lines = text.split("\n", GENERATED_MARKER_LINES)[:GENERATED_MARKER_LINES]
    for line_no, line in enumerate(head_lines, start=1):
        for marker in GENERATED_MARKERS:
            if marker in line:
                return f"marker {marker!r} in line {line_no}"
    return None


def _minified_detail(name: str, text: str, byte_count: int) -> str | None:
    lines = text.split("\n")
    longest = max(map(len, lines))
    if longest > MINIFIED_MAX_LINE_CHARS:
        return f"a line of {longest:,} characters (limit {MINIFIED_MAX_LINE_CHARS:,})"
    if byte_count >= MINIFIED_AVG_MIN_BYTES and _extension(name) not in PROSE_EXTENSIONS:
        average = len(text) / len(lines)
        if average > MINIFIED_AVG_LINE_CHARS:
            return f"average line length {average:.0f} characters over {len(lines)} lines"
    return None


def read_source(root: Path, rel_path: str, *, max_file_bytes: int = MAX_FILE_BYTES) -> SourceFile:
    """Read one file (bytes read once) and return it as text, or raise :class:`SkippedFile`.

    Checks, in order: the path must resolve inside ``root`` (``symlink_outside_root``);
    the name of the path and of a symlink's target (:func:`name_skip_reason`: ``secret``
    files are never opened); open errors
    (``vanished``, ``broken_symlink``, ``unreadable`` -- also for non-regular files);
    ``too_large`` (actual byte count > ``max_file_bytes``); ``binary`` (a NUL byte or more
    than :data:`BINARY_CONTROL_BYTE_SHARE` control bytes in the first
    :data:`BINARY_SNIFF_BYTES`); UTF-8 (BOM stripped; up to :data:`INVALID_UTF8_MAX_SHARE`
    undecodable bytes become U+FFFD, more is ``invalid_utf8``); ``empty`` (nothing but
    whitespace); ``generated`` (a :data:`GENERATED_MARKERS` entry in the first lines);
    ``minified`` (a line over :data:`MINIFIED_MAX_LINE_CHARS`, or an average line over
    :data:`MINIFIED_AVG_LINE_CHARS` in a non-prose file of at least
    :data:`MINIFIED_AVG_MIN_BYTES`).

    ``rel_path`` is repo-relative posix; ``ValueError`` if it is absolute or leaves the root.
    A pass over many files reads them with a :class:`SourceReader`.
    """
    return _read_source(root, rel_path, max_file_bytes, None)


def _read_source(
    root: Path, rel_path: str, max_file_bytes: int, resolver: RealPaths | None
) -> SourceFile:
    rel, full_path, real_path = _resolve_inside_root(root, rel_path, resolver)
    name = rel.rpartition("/")[2]
    for checked_name in dict.fromkeys((name, os.path.basename(real_path))):
        name_reason = name_skip_reason(checked_name)
        if name_reason is not None:
            raise SkippedFile(rel, name_reason, f"file name {checked_name!r}")
    fd = _open_regular_file(rel, full_path)
    with open(fd, "rb", closefd=True) as fh:
        try:
            size_on_disk = os.fstat(fd).st_size
            if size_on_disk > max_file_bytes:
                raise SkippedFile(
                    rel, SKIP_TOO_LARGE, f"{size_on_disk:,} bytes (limit {max_file_bytes:,})"
                )
            raw = fh.read(max_file_bytes + 1)
        except OSError as exc:
            raise SkippedFile(rel, SKIP_UNREADABLE, exc.strerror or str(exc)) from None
    if len(raw) > max_file_bytes:
        raise SkippedFile(rel, SKIP_TOO_LARGE, f"more than {max_file_bytes:,} bytes")

    binary_detail = _binary_detail(raw)
    if binary_detail is not None:
        raise SkippedFile(rel, SKIP_BINARY, binary_detail)
    body = raw.removeprefix(_UTF8_BOM)
    text = _decode_utf8(rel, body) if body else ""
    if not text.strip():
        raise SkippedFile(rel, SKIP_EMPTY, "no content" if not text else "only whitespace")
    generated_detail = _generated_detail(text)
    if generated_detail is not None:
        raise SkippedFile(rel, SKIP_GENERATED, generated_detail)
    minified_detail = _minified_detail(name, text, len(raw))
    if minified_detail is not None:
        raise SkippedFile(rel, SKIP_MINIFIED, minified_detail)
    return SourceFile(path=rel, text=text, sha256=hashlib.sha256(raw).hexdigest())


def file_sha256(root: Path, rel_path: str) -> str:
    """Hex sha256 of the raw bytes of ``root/rel_path`` (streamed, no size limit, no
    content checks). Raises :class:`SkippedFile` with ``vanished``, ``unreadable``,
    ``broken_symlink`` or ``symlink_outside_root``; ``ValueError`` for a bad rel path.
    Callers should not hash files already skipped as ``secret``.
    """
    rel, full_path, _real_path = _resolve_inside_root(root, rel_path)
    fd = _open_regular_file(rel, full_path)
    digest = hashlib.sha256()
    with open(fd, "rb", closefd=True) as fh:
        try:
            while chunk := fh.read(_READ_CHUNK_BYTES):
                digest.update(chunk)
        except OSError as exc:
            raise SkippedFile(rel, SKIP_UNREADABLE, exc.strerror or str(exc)) from None
    return digest.hexdigest()
