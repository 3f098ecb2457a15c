"""Tests for coderag_assets.files: walking, ignore rules, skip reasons, reading text.

Every test builds its own tree under tmp_path.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from pathlib import Path

import pytest

from coderag_assets import files
from coderag_assets.files import (
    MAX_FILE_BYTES,
    SKIP_BINARY,
    SKIP_BROKEN_SYMLINK,
    SKIP_EMPTY,
    SKIP_GENERATED,
    SKIP_INVALID_UTF8,
    SKIP_MINIFIED,
    SKIP_SECRET,
    SKIP_SYMLINK,
    SKIP_TOO_LARGE,
    SKIP_UNREADABLE,
    SKIP_VANISHED,
    FileStat,
    IgnoreRules,
    RootError,
    SkippedFile,
    SourceFile,
    SourceReader,
    file_sha256,
    read_source,
    resolve_root,
    scan_tree,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_tree(root: Path, spec: dict[str, str | bytes]) -> None:
    """Create files from {relative path: content}; a path ending in "/" is an empty dir."""
    for rel_path, content in spec.items():
        target = root / rel_path
        if rel_path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def listed(root: Path, **kwargs: int) -> dict[str, str | None]:
    """{path: skip_reason} of everything scan_tree lists."""
    return {fs.path: fs.skip_reason for fs in scan_tree(root, **kwargs)}


def skip_of(root: Path, rel_path: str, **kwargs: int) -> SkippedFile:
    with pytest.raises(SkippedFile) as info:
        read_source(root, rel_path, **kwargs)
    return info.value


# ----------------------------------------------------------------------------- roots


def test_resolve_root_returns_absolute_resolved_dir(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    assert resolve_root(tmp_path / "link") == (tmp_path / "repo").resolve()
    assert resolve_root(str(tmp_path / "repo")).is_absolute()


def test_root_error_for_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RootError, match="does not exist") as info:
        resolve_root(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(RootError):
        scan_tree(missing)


def test_root_error_for_file_path(tmp_path: Path) -> None:
    a_file = tmp_path / "file.py"
    a_file.write_text("x = 1\n")
    with pytest.raises(RootError, match="is not a directory") as info:
        resolve_root(a_file)
    assert info.value.path == str(a_file)
    with pytest.raises(RootError):
        scan_tree(a_file)


def test_empty_directory_lists_nothing(tmp_path: Path) -> None:
    assert scan_tree(tmp_path) == []


# ----------------------------------------------------------------------------- scan basics


def test_scan_lists_sorted_posix_paths_with_stat(tmp_path: Path) -> None:
    make_tree(tmp_path, {"b.py": "b = 1\n", "a/z.py": "z = 1\n", "a/b/c.py": "c = 1\n"})
    result = scan_tree(tmp_path)
    assert [fs.path for fs in result] == ["a/b/c.py", "a/z.py", "b.py"]
    by_path = {fs.path: fs for fs in result}
    st = (tmp_path / "a/z.py").stat()
    assert by_path["a/z.py"] == FileStat("a/z.py", st.st_size, st.st_mtime_ns, None)


def test_git_and_other_vcs_dirs_are_never_listed(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            ".git/config": "[core]\n",
            ".git/objects/ab/cdef": b"\x78\x9c",
            ".hg/store": "x",
            ".svn/entries": "x",
            "sub/.git": "gitdir: ../.git/modules/sub\n",  # submodule/worktree marker file
            "sub/code.py": "x = 1\n",
        },
    )
    assert listed(tmp_path) == {"sub/code.py": None}


def test_default_junk_dirs_are_skipped_without_gitignore(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "node_modules/lib/index.js": "x",
            "pkg/__pycache__/mod.cpython-311.pyc": b"\0",
            ".venv/lib/site.py": "x",
            ".tox/py311/x.py": "x",
            ".mypy_cache/x.json": "{}",
            ".pytest_cache/v": "x",
            ".ruff_cache/x": "x",
            "myenv/pyvenv.cfg": "home = /usr\n",  # a virtualenv under any name
            "myenv/lib/site.py": "x",
            "conda/conda-meta/history": "x",
            "conda/lib/x.py": "x",
            # real source that only looks like junk is kept
            "dist/keep.py": "x = 1\n",
            "build/keep.py": "x = 1\n",
            "Lib/venv/__init__.py": "x = 1\n",
            "pkg/mod.py": "x = 1\n",
        },
    )
    assert set(listed(tmp_path)) == {
        "dist/keep.py",
        "build/keep.py",
        "Lib/venv/__init__.py",
        "pkg/mod.py",
    }


def test_root_that_is_a_virtualenv_is_still_scanned(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pyvenv.cfg": "home = /usr\n", "lib/site.py": "x = 1\n"})
    assert "lib/site.py" in listed(tmp_path)


def test_special_files_are_not_listed(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no fifos on this platform")
    make_tree(tmp_path, {"a.py": "x = 1\n"})
    os.mkfifo(tmp_path / "pipe")
    assert listed(tmp_path) == {"a.py": None}
    # reading one does not block
    assert skip_of(tmp_path, "pipe").reason == SKIP_UNREADABLE


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS rejects non-UTF-8 names")
def test_names_that_are_not_utf8_are_dropped(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.py": "x = 1\n"})
    with open(os.fsencode(tmp_path) + b"/bad\xff.py", "wb") as fh:
        fh.write(b"x = 1\n")
    assert listed(tmp_path) == {"ok.py": None}


# ----------------------------------------------------------------------------- ignore files


def test_nested_gitignore_negation_and_dir_only_patterns(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            ".gitignore": "*.log\n!important.log\nbuild/\n/top_only.txt\nout/*\n!out/keep.txt\n",
            "app.log": "x",
            "important.log": "x",
            "top_only.txt": "x",
            "build/gen.py": "x",  # dir-only pattern: directory excluded
            "src/build": "a file named build is kept",  # dir-only pattern: file not excluded
            "out/drop.txt": "x",
            "out/keep.txt": "x",
            "src/main.py": "x",
            "src/top_only.txt": "anchored pattern only applies at the root",
            "src/.gitignore": "*.tmp\n!keep.tmp\n!*.log\ngenerated/\n",
            "src/a.tmp": "x",
            "src/keep.tmp": "x",
            "src/debug.log": "re-included by the deeper .gitignore",
            "src/generated/x.py": "x",
            "src/inner/b.tmp": "x",  # nested rules apply to the whole subtree
            "other/c.tmp": "x",  # ...but not outside it
        },
    )
    assert set(listed(tmp_path)) == {
        ".gitignore",
        "important.log",
        "src/build",
        "out/keep.txt",
        "src/main.py",
        "src/top_only.txt",
        "src/.gitignore",
        "src/keep.tmp",
        "src/debug.log",
        "other/c.tmp",
    }


def test_nested_gitignore_paths_are_relative_to_their_directory(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "pkg/.gitignore": "/local.py\ndata/raw/\n",
            "pkg/local.py": "x",
            "pkg/sub/local.py": "x",
            "pkg/data/raw/a.csv": "x",
            "pkg/data/clean.csv": "x",
            "local.py": "x",
        },
    )
    assert set(listed(tmp_path)) == {
        "pkg/.gitignore",
        "pkg/sub/local.py",
        "pkg/data/clean.csv",
        "local.py",
    }


def test_files_inside_an_excluded_directory_cannot_be_reincluded(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {".gitignore": "vendor/\n!vendor/keep.py\n", "vendor/keep.py": "x", "a.py": "x"},
    )
    assert set(listed(tmp_path)) == {".gitignore", "a.py"}


def test_coderagignore_at_any_level(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            ".gitignore": "*.gen.py\n",
            ".coderagignore": "fixtures/\n!keep.gen.py\n",
            "fixtures/big.json": "{}",
            "a.gen.py": "x",
            "keep.gen.py": "re-included: .coderagignore rules come after .gitignore",
            "docs/.coderagignore": "*.txt\n",
            "docs/a.txt": "x",
            "docs/a.md": "x",
            "b.txt": "x",
        },
    )
    assert set(listed(tmp_path)) == {
        ".gitignore",
        ".coderagignore",
        "keep.gen.py",
        "docs/.coderagignore",
        "docs/a.md",
        "b.txt",
    }


def test_git_info_exclude_is_applied_with_lowest_precedence(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            ".git/info/exclude": "# comment\nscratch/\n*.bak\n",
            ".gitignore": "!wanted.bak\n",
            "scratch/notes.py": "x",
            "old.bak": "x",
            "wanted.bak": "x",
            "main.py": "x",
        },
    )
    assert set(listed(tmp_path)) == {".gitignore", "wanted.bak", "main.py"}


def test_malformed_ignore_lines_are_dropped_not_fatal(tmp_path: Path) -> None:
    make_tree(tmp_path, {".gitignore": "!\n\\\n*.log\n", "a.log": "x", "a.py": "x"})
    assert set(listed(tmp_path)) == {".gitignore", "a.py"}


def test_ignore_rules_is_ignored_api(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n",
            "src/.gitignore": "!debug.log\n",
            "env/pyvenv.cfg": "x",
        },
    )
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("build", is_dir=True)
    assert not rules.is_ignored("build", is_dir=False)
    assert rules.is_ignored("build/x/y.py", is_dir=False)  # inside an ignored directory
    assert rules.is_ignored("a.log", is_dir=False)
    assert not rules.is_ignored("src/debug.log", is_dir=False)
    assert rules.is_ignored("src/other.log", is_dir=False)
    assert rules.is_ignored(".git/config", is_dir=False)
    assert rules.is_ignored("node_modules/x/index.js", is_dir=False)
    assert rules.is_ignored("env/lib/site.py", is_dir=False)
    assert not rules.is_ignored("src/main.py", is_dir=False)
    with pytest.raises(ValueError):
        rules.is_ignored("../outside.py", is_dir=False)


# ----------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "name",
    [
        ".env",
        ".env.local",
        ".env.production",
        "server.pem",
        "tls.key",
        "cert.p12",
        "cert.pfx",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_rsa_work",
        ".npmrc",
        ".pypirc",
        ".netrc",
        "credentials.json",
        "credentials-prod.json",
        "release.keystore",
        "store.jks",
        "secrets.yaml",
        "secrets.yml",
        "SERVER.PEM",
    ],
)
def test_secret_files_are_listed_as_secret_and_never_read(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path, {f"conf/{name}": "TOKEN=hunter2\n"})
    assert listed(tmp_path) == {f"conf/{name}": SKIP_SECRET}
    assert skip_of(tmp_path, f"conf/{name}").reason == SKIP_SECRET


@pytest.mark.parametrize(
    "name", [".env.example", ".env.sample", ".env.template", "id_rsa.pub", "id_ed25519.pub"]
)
def test_secret_lookalikes_are_indexed(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path, {name: "API_TOKEN=changeme\n"})
    assert listed(tmp_path) == {name: None}
    assert read_source(tmp_path, name).text == "API_TOKEN=changeme\n"


# ----------------------------------------------------------------------------- size


def test_too_large_is_known_from_stat(tmp_path: Path) -> None:
    make_tree(tmp_path, {"big.py": "x" * 101, "small.py": "x" * 100})
    assert listed(tmp_path, max_file_bytes=100) == {"big.py": SKIP_TOO_LARGE, "small.py": None}
    assert skip_of(tmp_path, "big.py", max_file_bytes=100).reason == SKIP_TOO_LARGE
    assert read_source(tmp_path, "small.py", max_file_bytes=100).text == "x" * 100
    assert MAX_FILE_BYTES == 1_000_000


def test_file_that_grows_after_the_scan_is_too_large_on_read(tmp_path: Path) -> None:
    make_tree(tmp_path, {"grow.py": "x = 1\n"})
    assert listed(tmp_path, max_file_bytes=1000) == {"grow.py": None}
    (tmp_path / "grow.py").write_text("x = 1\n" * 500)
    assert skip_of(tmp_path, "grow.py", max_file_bytes=1000).reason == SKIP_TOO_LARGE


# ----------------------------------------------------------------------------- content checks


def test_binary_by_nul_byte(tmp_path: Path) -> None:
    make_tree(tmp_path, {"blob.py": b"abc" * 4 + b"\0" + b"def"})
    assert listed(tmp_path) == {"blob.py": None}  # extension gives no hint: content decides
    skipped = skip_of(tmp_path, "blob.py")
    assert skipped.reason == SKIP_BINARY
    assert skipped.detail == "NUL byte at offset 12"


def test_binary_by_control_bytes(tmp_path: Path) -> None:
    make_tree(tmp_path, {"weird.dat": bytes(range(1, 32)) * 20})
    assert skip_of(tmp_path, "weird.dat").reason == SKIP_BINARY


@pytest.mark.parametrize("name", ["logo.PNG", "lib.so", "mod.pyc", "app.jar", "font.woff2",
                                  "doc.pdf", "data.sqlite", "index.duckdb", "t.parquet"])  # fmt: skip
def test_binary_by_extension_in_scan(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path, {name: "not really binary"})
    assert listed(tmp_path) == {name: SKIP_BINARY}
    assert skip_of(tmp_path, name).reason == SKIP_BINARY


def test_mostly_invalid_utf8_is_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, {"latin1.txt": "café résumé naïve déjà vu ".encode("latin-1") * 10})
    skipped = skip_of(tmp_path, "latin1.txt")
    assert skipped.reason == SKIP_INVALID_UTF8
    assert "not valid UTF-8" in skipped.detail


def test_one_bad_byte_is_kept_with_replacement(tmp_path: Path) -> None:
    raw = b"# " + b"a" * 200 + b"\xff\nprint('ok')\n"
    make_tree(tmp_path, {"mostly_ok.py": raw})
    source = read_source(tmp_path, "mostly_ok.py")
    assert "\ufffd" in source.text
    assert source.text.endswith("print('ok')\n")
    assert source.sha256 == hashlib.sha256(raw).hexdigest()


def test_utf8_bom_is_stripped_but_hashed(tmp_path: Path) -> None:
    raw = b"\xef\xbb\xbfprint('hi')\n"
    make_tree(tmp_path, {"bom.py": raw})
    source = read_source(tmp_path, "bom.py")
    assert source == SourceFile("bom.py", "print('hi')\n", hashlib.sha256(raw).hexdigest())


def test_empty_and_whitespace_only_files(tmp_path: Path) -> None:
    make_tree(tmp_path, {"empty.py": b"", "blank.py": "  \n\t\n", "bom_only.py": b"\xef\xbb\xbf"})
    assert listed(tmp_path) == {"empty.py": SKIP_EMPTY, "blank.py": None, "bom_only.py": None}
    for name in ("empty.py", "blank.py", "bom_only.py"):
        assert skip_of(tmp_path, name).reason == SKIP_EMPTY


def test_minified_by_long_line(tmp_path: Path) -> None:
    make_tree(tmp_path, {"bundle.js": "var a=1;" * 700 + "\n"})  # 5,600 chars on one line
    skipped = skip_of(tmp_path, "bundle.js")
    assert skipped.reason == SKIP_MINIFIED
    assert "5,600" in skipped.detail


def test_minified_by_average_line_length(tmp_path: Path) -> None:
    dense = "\n".join("x" * 400 for _ in range(10))  # 4 KB, average 400 chars per line
    make_tree(tmp_path, {"dense.css": dense, "notes.md": dense, "short.js": "x" * 400})
    assert skip_of(tmp_path, "dense.css").reason == SKIP_MINIFIED
    assert read_source(tmp_path, "notes.md").text == dense  # prose is exempt from the average
    assert read_source(tmp_path, "short.js").text == "x" * 400  # too small to judge


@pytest.mark.parametrize("name", ["app.min.js", "style.min.css", "app.js.map"])
def test_minified_by_name(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path, {name: "var a = 1;\n"})
    assert listed(tmp_path) == {name: SKIP_MINIFIED}
    assert skip_of(tmp_path, name).reason == SKIP_MINIFIED


@pytest.mark.parametrize(
    "header",
    [
        "// Code generated by protoc-gen-go. DO NOT EDIT.\n",
        "# This file is @generated by a tool\n",
        "\n\n\n\n// <auto-generated />\n",
    ],
)
def test_generated_by_marker_in_first_lines(tmp_path: Path, header: str) -> None:
    make_tree(tmp_path, {"gen.go": header + "package main\n"})
    skipped = skip_of(tmp_path, "gen.go")
    assert skipped.reason == SKIP_GENERATED
    assert "marker" in skipped.detail


def test_generated_marker_after_line_five_is_ignored(tmp_path: Path) -> None:
    text = "a = 1\n" * 5 + "# DO NOT EDIT below\n"
    make_tree(tmp_path, {"hand.py": text})
    assert read_source(tmp_path, "hand.py").text == text


@pytest.mark.parametrize(
    "name", ["package-lock.json", "yarn.lock", "poetry.lock", "Cargo.lock", "uv.lock", "go.sum"]
)
def test_generated_lock_files(tmp_path: Path, name: str) -> None:
    make_tree(tmp_path, {f"sub/{name}": "{}\n"})
    assert listed(tmp_path) == {f"sub/{name}": SKIP_GENERATED}
    assert skip_of(tmp_path, f"sub/{name}").reason == SKIP_GENERATED


def test_read_source_returns_text_and_raw_hash(tmp_path: Path) -> None:
    raw = "def f():\r\n    return 'ü'\r\n".encode()
    make_tree(tmp_path, {"pkg/mod.py": raw})
    source = read_source(tmp_path, "pkg/mod.py")
    assert source.path == "pkg/mod.py"
    assert source.text == raw.decode()  # line endings untouched
    assert source.sha256 == hashlib.sha256(raw).hexdigest()
    assert file_sha256(tmp_path, "pkg/mod.py") == source.sha256
    assert read_source(tmp_path, "./pkg/mod.py").path == "pkg/mod.py"


@pytest.mark.parametrize("bad_path", ["../outside.py", "/etc/passwd", "a/../../x", ""])
def test_rel_paths_that_leave_the_root_are_rejected(tmp_path: Path, bad_path: str) -> None:
    with pytest.raises(ValueError):
        read_source(tmp_path, bad_path)
    with pytest.raises(ValueError):
        file_sha256(tmp_path, bad_path)


# ----------------------------------------------------------------------------- symlinks


def test_symlink_to_file_inside_root_is_listed_under_its_own_path(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/target.py": "x = 1\n"})
    (tmp_path / "alias.py").symlink_to(tmp_path / "real/target.py")
    target_stat = (tmp_path / "real/target.py").stat()
    by_path = {fs.path: fs for fs in scan_tree(tmp_path)}
    assert by_path["alias.py"] == FileStat(
        "alias.py", target_stat.st_size, target_stat.st_mtime_ns, None
    )
    assert read_source(tmp_path, "alias.py") == SourceFile(
        "alias.py", "x = 1\n", hashlib.sha256(b"x = 1\n").hexdigest()
    )


def test_symlink_pointing_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(tmp_path, {"outside/secret_sauce.py": "x = 1\n", "repo/a.py": "a = 1\n"})
    (root / "escape.py").symlink_to(tmp_path / "outside/secret_sauce.py")
    assert listed(root) == {"a.py": None, "escape.py": SKIP_SYMLINK}
    assert skip_of(root, "escape.py").reason == SKIP_SYMLINK
    with pytest.raises(SkippedFile) as info:
        file_sha256(root, "escape.py")
    assert info.value.reason == SKIP_SYMLINK


def test_dangling_and_looping_symlinks_are_broken(tmp_path: Path) -> None:
    (tmp_path / "dangling.py").symlink_to(tmp_path / "missing.py")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    assert listed(tmp_path) == {
        "dangling.py": SKIP_BROKEN_SYMLINK,
        "loop_a": SKIP_BROKEN_SYMLINK,
        "loop_b": SKIP_BROKEN_SYMLINK,
    }
    assert skip_of(tmp_path, "dangling.py").reason == SKIP_BROKEN_SYMLINK
    assert skip_of(tmp_path, "loop_a").reason == SKIP_BROKEN_SYMLINK


def test_directory_symlinks_are_not_followed_and_loops_do_not_hang(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pkg/mod.py": "x = 1\n"})
    (tmp_path / "pkg/again").symlink_to(tmp_path)  # loop back to the root
    (tmp_path / "pkg_alias").symlink_to(tmp_path / "pkg")
    assert listed(tmp_path) == {"pkg/mod.py": None}


def test_symlink_to_a_secret_file_is_secret(tmp_path: Path) -> None:
    make_tree(tmp_path, {".env": "TOKEN=x\n"})
    (tmp_path / "settings.txt").symlink_to(tmp_path / ".env")
    assert listed(tmp_path) == {".env": SKIP_SECRET, "settings.txt": SKIP_SECRET}
    assert skip_of(tmp_path, "settings.txt").reason == SKIP_SECRET


def test_symlink_into_git_metadata_is_not_listed(tmp_path: Path) -> None:
    make_tree(tmp_path, {".git/config": "[remote]\nurl = https://token@host/x\n"})
    (tmp_path / "config.txt").symlink_to(tmp_path / ".git/config")
    assert listed(tmp_path) == {}


def _read_outcome(read, rel_path: str) -> object:
    try:
        return read(rel_path)
    except SkippedFile as skipped:
        return (skipped.reason, skipped.detail)


def test_a_source_reader_reads_as_read_source_through_symlinked_directories(tmp_path: Path) -> None:
    """`SourceReader` resolves each directory once: files under a symlinked directory (inside
    or outside the root), file symlinks and plain files read exactly as `read_source` reads
    them, including which are outside the root."""
    root = tmp_path / "repo"
    make_tree(
        tmp_path,
        {
            "outside/lib/out.py": "o = 1\n",
            "repo/pkg/mod.py": "x = 1\n",
            "repo/pkg/sub/deep.py": "d = 1\n",
            "repo/real/target.py": "t = 1\n",
        },
    )
    (root / "pkg_alias").symlink_to(root / "pkg")
    (root / "out_alias").symlink_to(tmp_path / "outside/lib")
    (root / "pkg/file_alias.py").symlink_to(root / "real/target.py")
    (root / "pkg/escape.py").symlink_to(tmp_path / "outside/lib/out.py")
    paths = [
        "pkg/mod.py",
        "pkg_alias/mod.py",
        "pkg_alias/sub/deep.py",
        "out_alias/out.py",
        "pkg/file_alias.py",
        "pkg/escape.py",
        "pkg/sub/deep.py",
        "real/target.py",
    ]
    reader = SourceReader(root)
    outcomes = {path: _read_outcome(reader.read, path) for path in paths}
    assert outcomes == {path: _read_outcome(lambda p: read_source(root, p), path) for path in paths}
    assert outcomes["out_alias/out.py"][0] == SKIP_SYMLINK
    assert outcomes["pkg/escape.py"][0] == SKIP_SYMLINK
    assert outcomes["pkg_alias/mod.py"].text == "x = 1\n"


def test_a_source_reader_hands_a_kept_file_to_the_next_read_once(tmp_path: Path) -> None:
    """A file read with `keep` (the manifest's hash) is what the next read of the path gets
    (the chunk stage chunks the bytes the manifest hashed); the read after that reads the
    disk again."""
    make_tree(tmp_path, {"a.py": "a = 1\n"})
    reader = SourceReader(tmp_path)
    first = reader.read("a.py", keep=True)
    (tmp_path / "a.py").write_text("a = 2\n")
    assert reader.read("a.py") == first
    assert reader.read("a.py").text == "a = 2\n"
    reader.read("a.py")  # not kept: read again each time
    (tmp_path / "a.py").write_text("a = 3\n")
    assert reader.read("a.py").text == "a = 3\n"


# ----------------------------------------------------------------------------- races, errors


def test_file_vanishing_between_scan_and_read(tmp_path: Path) -> None:
    make_tree(tmp_path, {"gone.py": "x = 1\n"})
    assert [fs.path for fs in scan_tree(tmp_path)] == ["gone.py"]
    (tmp_path / "gone.py").unlink()
    assert skip_of(tmp_path, "gone.py").reason == SKIP_VANISHED
    with pytest.raises(SkippedFile) as info:
        file_sha256(tmp_path, "gone.py")
    assert info.value.reason == SKIP_VANISHED


def test_entries_vanishing_during_the_walk_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {"keep.py": "x", "doomed/a.py": "x"})
    real_scandir = os.scandir

    def scandir_then_delete(path: str) -> object:
        if os.fspath(path).endswith("doomed"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_scandir(path)

    monkeypatch.setattr(files.os, "scandir", scandir_then_delete)
    assert listed(tmp_path) == {"keep.py": None}


def test_unreadable_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, {"locked.py": "x = 1\n"})
    real_open = os.open

    def deny(path: str, flags: int, *args: int) -> int:
        if os.fspath(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", deny)
    skipped = skip_of(tmp_path, "locked.py")
    assert skipped.reason == SKIP_UNREADABLE
    assert "Permission denied" in skipped.detail
    with pytest.raises(SkippedFile) as info:
        file_sha256(tmp_path, "locked.py")
    assert info.value.reason == SKIP_UNREADABLE


@pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions")
def test_unreadable_file_chmod(tmp_path: Path) -> None:
    make_tree(tmp_path, {"locked.py": "x = 1\n"})
    (tmp_path / "locked.py").chmod(0)
    try:
        assert listed(tmp_path) == {"locked.py": None}  # stat works without read permission
        assert skip_of(tmp_path, "locked.py").reason == SKIP_UNREADABLE
    finally:
        (tmp_path / "locked.py").chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_unreadable_directory_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {"ok.py": "x", "private/a.py": "x"})
    real_scandir = os.scandir

    def deny(path: str) -> object:
        if os.fspath(path).endswith("private"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(files.os, "scandir", deny)
    assert listed(tmp_path) == {"ok.py": None, "private": SKIP_UNREADABLE}


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_unreadable_directory_chmod(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.py": "x", "private/a.py": "x"})
    (tmp_path / "private").chmod(0)
    try:
        assert listed(tmp_path) == {"ok.py": None, "private": SKIP_UNREADABLE}
    finally:
        (tmp_path / "private").chmod(stat.S_IRWXU)


def test_skipped_file_is_picklable_and_readable() -> None:
    skipped = SkippedFile("a/b.py", SKIP_BINARY, "NUL byte at offset 3")
    clone = pickle.loads(pickle.dumps(skipped))
    assert (clone.path, clone.reason, clone.detail) == ("a/b.py", "binary", "NUL byte at offset 3")
    assert str(clone) == "a/b.py: skipped (binary): NUL byte at offset 3"
    root_error = pickle.loads(pickle.dumps(RootError("/x", "does not exist")))
    assert str(root_error) == "/x: does not exist"


# ----------------------------------------------------------------------------- internals

PREFILTER_PATTERNS = [
    "*.log", "!keep.log", "build/", "/top", "a/**/b", "**/cache/", "out/*", "!out/x",
    "[Dd]ocs/", "\\#hash", "trailing\\ ", "x?y", "*.py[cod]", "!/root_only.log",
]  # fmt: skip
PREFILTER_PATHS = [
    "a.log", "d/keep.log", "build", "build/", "q/build/", "top", "d/top", "a/b", "a/x/y/b",
    "c/cache/", "cache", "out/z", "out/x", "docs/", "Docs/", "#hash", "trailing ", "xzy",
    "m.pyc", "m.py", "root_only.log", "d/root_only.log", "plain.txt", "deep/dir/",
]  # fmt: skip


@pytest.mark.parametrize("path", PREFILTER_PATHS)
def test_ignore_prefilter_agrees_with_pathspec(path: str) -> None:
    spec = files._compile_ignore_lines(PREFILTER_PATTERNS)
    assert spec is not None
    prefilter = files._combined_prefilter(spec)
    assert prefilter is not None
    with_prefilter = (files._IgnoreLayer("", spec, prefilter),)
    without = (files._IgnoreLayer("", spec, None),)
    is_dir = path.endswith("/")
    rel = path.rstrip("/")
    assert files._layers_match(with_prefilter, rel, is_dir) == files._layers_match(
        without, rel, is_dir
    )
