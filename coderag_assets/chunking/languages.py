"""Language names and the mapping from file names to them."""

from __future__ import annotations

from pathlib import PurePosixPath

#: Languages chunked along their syntax tree (tree-sitter-language-pack grammar names).
SUPPORTED_AST_LANGUAGES: frozenset[str] = frozenset(
    {
        "python",
        "javascript",
        "typescript",
        "tsx",
        "go",
        "rust",
        "java",
        "c",
        "cpp",
        "ruby",
        "php",
        "kotlin",
        "swift",
        "scala",
        "bash",
        "lua",
    }
)

#: Languages chunked as text (line windows); any other or unknown language is treated the same.
TEXT_LANGUAGES: frozenset[str] = frozenset(
    {
        "markdown",
        "yaml",
        "toml",
        "sql",
        "html",
        "css",
        "json",
        "xml",
        "rst",
        "text",
        "dockerfile",
        "makefile",
        "ini",
    }
)

_LANGUAGE_BY_SUFFIX: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".sc": "scala",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "bash",
    ".lua": "lua",
    ".md": "markdown",
    ".markdown": "markdown",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".sql": "sql",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".json": "json",
    ".xml": "xml",
    ".rst": "rst",
    ".txt": "text",
    ".ini": "ini",
    ".cfg": "ini",
    ".mk": "makefile",
    ".dockerfile": "dockerfile",
}

_LANGUAGE_BY_FILENAME: dict[str, str] = {
    "dockerfile": "dockerfile",
    "containerfile": "dockerfile",
    "makefile": "makefile",
    "gnumakefile": "makefile",
    "rakefile": "ruby",
    "gemfile": "ruby",
}


def language_for_path(path: str) -> str | None:
    """Language name for a file path, from its file name or extension (case-insensitive).

    Returns ``None`` for files it does not recognise; the caller decides whether to skip them or
    chunk them as text. ``Dockerfile.dev``-style names count as Dockerfiles.
    """
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    by_name = _LANGUAGE_BY_FILENAME.get(name)
    if by_name is not None:
        return by_name
    if name.startswith("dockerfile."):
        return "dockerfile"
    dot = name.rfind(".")
    if dot < 0:
        return None
    return _LANGUAGE_BY_SUFFIX.get(name[dot:])
