"""The package's import graph: one-way data flow, no cycles, plain modules free of Dagster.

Reads the source with `ast` (nothing is imported), so a cycle fails here even when Python
would happen to resolve it at run time. Lazy imports inside functions count too: a cycle
hidden behind one (the CLI runner importing `definitions`, whose sensors import the runner)
is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "coderag_assets"
PACKAGE = "coderag_assets"
# Modules that hold no Dagster objects: the stages, the store and the query side.
PLAIN_MODULES = (
    "chunking",
    "embedding",
    "execution",
    "features",
    "files",
    "indexing",
    "navigation",
    "progress",
    "query",
    "scope",
    "search",
    "segments",
    "settings",
    "store",
    "tokens",
    "updates",
)


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports, lazily (inside functions) or not;
    `if TYPE_CHECKING:` blocks do not run and do not count."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {
            target for target in imports_of(path) if target in modules and target != name
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finds_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_package() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("plain", PLAIN_MODULES)
def test_plain_modules_do_not_import_dagster(plain: str) -> None:
    paths = [PACKAGE_DIR / f"{plain}.py", *(PACKAGE_DIR / plain).rglob("*.py")]
    paths = [path for path in paths if path.is_file()]
    if not paths:
        pytest.skip(f"{plain} is not a module of the package")
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # lazy imports count too: these must never need Dagster
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.split(".")[0] == "dagster" for name in names), (
                f"{path.relative_to(PACKAGE_DIR.parent)} imports dagster"
            )


def test_only_definitions_wires_the_job() -> None:
    """`definitions.py` is the one place that builds Definitions and jobs."""
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        text = path.read_text()
        if path.name != "definitions.py" and (
            "dg.Definitions(" in text or "define_asset_job(" in text
        ):
            offenders.append(path.name)
    assert offenders == []


def test_the_command_line_loads_no_query_side_module_until_a_command_needs_it() -> None:
    """`coderag index` builds the whole parser (every subcommand's options) but never
    searches: the parser must not pull in `search`, navigation's modules or pydantic's
    records (≈ 0.3 s of imports on every one-file update). Checked in a fresh interpreter."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from coderag_assets.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'coderag_assets.search' "
        "or m.startswith('coderag_assets.navigation.') or m in ('pydantic', 'duckdb', "
        "'dagster', 'torch')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    # nor DuckDB, Dagster or torch: the `coderag` script's spawned chunking workers import
    # this package (the script is their main module), each paying for what it loads
    assert loaded == "['coderag_assets.navigation.errors', 'coderag_assets.navigation.limits']"


def test_navigation_still_exports_every_name_it_lists() -> None:
    """The package's names load on first use; each one it lists must resolve."""
    from coderag_assets import navigation

    assert sorted(navigation.__all__) == sorted(navigation._HOME)  # one list, kept in step
    for name in navigation.__all__:
        assert getattr(navigation, name) is not None, name
