"""The MCP server for coding agents: search and symbol navigation over one indexed root.

Built on the official `mcp` SDK (``mcp.server.MCPServer``, formerly FastMCP). Tools, all
read-only, each with a JSON-schema'd input and a structured (pydantic) output:

``search``          hybrid / vector / BM25 search, with language and path-glob filters
``find_symbol``     definitions by name (exact, prefix, contains, fuzzy) with their source
``list_symbols``    the outline of one file
``find_references`` identifier-level occurrences of a name
``list_files``      indexed files by glob and language
``get_file``        a line range of one indexed file (confined to the root)
``index_status``    what is indexed, when, by which model, counts, skips

Tools return the shared records as they are (:mod:`coderag_assets.navigation.records`,
:class:`~coderag_assets.backend.SearchOutput`, :class:`~coderag_assets.query.IndexStatus`).
One :class:`~coderag_assets.backend.IndexBackend` lives as long as the server: the query model
is loaded once (at start, so no call pays for it) and every call first checks whether a newer
index was published, so re-indexing is picked up without a restart. Results have size limits
and say when they were cut (``truncated``). Refused paths and bad arguments come back as tool
errors (``is_error``) whose text starts with a short code (``outside_root:``, ``secret:``,
``not_indexed:``, ``invalid_path:``, ``gone:``, ``bad_argument:``).

``coderag serve`` runs it over stdio (:func:`serve`); ``coderag serve --http`` mounts it at
``http://127.0.0.1:8765/mcp`` beside the web page, API, ``/healthz`` and ``/metrics``
(:func:`coderag_assets.web.server.serve_http`; loopback by default, a token beyond it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

import duckdb
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from coderag_assets import navigation
from coderag_assets.backend import MAX_SEARCH_LIMIT, IndexBackend, SearchOutput
from coderag_assets.metrics import ServerMetrics, observe
from coderag_assets.query import IndexStatus
from coderag_assets.search import SearchError
from coderag_assets.settings import Settings
from coderag_assets.store import IndexNotFoundError, IndexStore

SERVER_NAME = "coderag"
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8765
HTTP_PATH = "/mcp"

INSTRUCTIONS = """\
Code search and navigation over one indexed repository (read-only, offline).
Paths are relative to the indexed root; lines are 1-based and inclusive.
Start with `search` (natural language or identifiers) or `find_symbol` (a name you know);
`find_references` lists where an identifier is used; `list_symbols` outlines a file;
`get_file` reads lines of an indexed file. Results carry path, lines and content; when a
result says truncated=true, narrow the request (smaller range, glob, limit) to see the rest.
"""

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


# ------------------------------------------------------------------------------ outputs
# Records are defined once beside the code that produces them (coderag_assets.backend,
# coderag_assets.query, coderag_assets.navigation.records); tools return them as they are.


def _tool_error(exc: Exception) -> ToolError:
    if isinstance(exc, navigation.PathRefusedError):
        return ToolError(f"{exc.code}: {exc}")
    if isinstance(exc, IndexNotFoundError):
        return ToolError(f"no_index: {exc}")
    return ToolError(f"bad_argument: {exc}")


@contextmanager
def _as_tool_errors(metrics: ServerMetrics | None, tool: str, mode: str = "") -> Iterator[None]:
    try:
        with observe(metrics, tool, mode):  # counts the error by its own kind
            yield
    except (navigation.NavigationError, SearchError, IndexNotFoundError) as exc:
        raise _tool_error(exc) from exc


def _with_sources(
    con: duckdb.DuckDBPyConnection, symbols: list[navigation.SymbolInfo], source_lines: int
) -> list[navigation.SymbolInfo]:
    if source_lines <= 0:
        return symbols
    sources = navigation.definition_sources(con, symbols, source_lines)
    return [
        symbol.model_copy(update={"source": source, "source_truncated": truncated})
        for symbol, (source, truncated) in zip(symbols, sources, strict=True)
    ]


# ------------------------------------------------------------------------------ server


def build_server(backend: IndexBackend, metrics: ServerMetrics | None = None) -> MCPServer:
    """An MCPServer whose tools answer from ``backend`` (and count their calls in ``metrics``)."""
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def search(
        query: Annotated[
            str, Field(min_length=1, description="Natural-language question or identifiers")
        ],
        mode: Annotated[
            Literal["hybrid", "vector", "bm25"],
            Field(description="hybrid (default) fuses vector and BM25; bm25 for exact words"),
        ] = "hybrid",
        limit: Annotated[
            int, Field(ge=1, le=MAX_SEARCH_LIMIT, description="Number of results")
        ] = 10,
        language: Annotated[
            str | None, Field(description="Only this language (python, go, ts, ...)")
        ] = None,
        path: Annotated[
            str | None,
            Field(
                description="Only paths matching this glob (e.g. 'src/**/*.py'); no wildcard = prefix"
            ),
        ] = None,
        rerank: Annotated[
            bool | None,
            Field(
                description="Re-score the top results with the cross-encoder (slower, often "
                "more precise first result); default: the server's CODERAG_RERANK setting"
            ),
        ] = None,
    ) -> SearchOutput:
        """Search the indexed code: the best-matching chunks (functions, classes, sections)
        with path, lines and source text."""
        with _as_tool_errors(metrics, "search", mode):
            output = backend.search(query, mode, limit, language, path, rerank)
            if metrics is not None:
                metrics.results.labels(tool="search").observe(len(output.results))
            return output

    @server.tool(annotations=READ_ONLY)
    def find_symbol(
        name: Annotated[
            str, Field(min_length=1, description="Symbol name or qualified name (Router.Handle)")
        ],
        mode: Annotated[
            navigation.SymbolMatchMode,
            Field(
                description="exact (case-sensitive), prefix, contains, or fuzzy (typos, abbreviations)"
            ),
        ] = "exact",
        kind: Annotated[
            str | None, Field(description="Only this kind: function, method, class, struct...")
        ] = None,
        limit: Annotated[
            int, Field(ge=1, le=navigation.MAX_SYMBOL_LIMIT, description="Maximum definitions")
        ] = 20,
        max_source_lines: Annotated[
            int,
            Field(
                ge=0, le=400, description="Lines of each definition's source to include (0 = none)"
            ),
        ] = navigation.DEFAULT_DEFINITION_LINES,
    ) -> navigation.SymbolMatches:
        """Find definitions (functions, methods, classes, types, constants...) by name, with
        their location, signature and source."""
        with _as_tool_errors(metrics, "find_symbol", mode), backend.connection() as con:
            matches = navigation.find_symbols(con, name, kind=kind, mode=mode, limit=limit)
            symbols = _with_sources(con, matches.symbols, max_source_lines)
        return matches.model_copy(update={"symbols": symbols})

    @server.tool(annotations=READ_ONLY)
    def list_symbols(
        path: Annotated[
            str, Field(min_length=1, description="File path relative to the indexed root")
        ],
    ) -> navigation.FileOutline:
        """Outline of one file: its definitions in source order with nesting depth."""
        with _as_tool_errors(metrics, "list_symbols"), backend.connection() as con:
            return navigation.list_symbols(con, path)

    @server.tool(annotations=READ_ONLY)
    def find_references(
        name: Annotated[
            str,
            Field(
                min_length=1,
                description="Identifier, or qualified name (its last segment is searched)",
            ),
        ],
        limit: Annotated[
            int,
            Field(
                ge=1, le=navigation.MAX_REFERENCE_LIMIT, description="Maximum occurrences returned"
            ),
        ] = navigation.DEFAULT_REFERENCE_LIMIT,
        path: Annotated[str | None, Field(description="Only paths matching this glob")] = None,
        code_only: Annotated[
            bool,
            Field(
                description="Leave out mentions in comments, strings and docstrings, and in files "
                "without a grammar (docs, config, SQL, HTML, ...)"
            ),
        ] = False,
    ) -> navigation.ReferenceMatches:
        """Where an identifier occurs (whole identifiers only: `get` never matches `get_user`
        or `target`), with the line's text, whether it is the definition, and whether it sits
        in code, a comment or a string."""
        with _as_tool_errors(metrics, "find_references"), backend.connection() as con:
            return navigation.find_references(
                con, name, limit=limit, path_glob=path, code_only=code_only
            )

    @server.tool(annotations=READ_ONLY)
    def list_files(
        glob: Annotated[
            str | None,
            Field(description="Glob on the relative path ('**/*.go'); no wildcard = prefix"),
        ] = None,
        language: Annotated[str | None, Field(description="Only this language")] = None,
        limit: Annotated[
            int, Field(ge=1, le=navigation.MAX_FILE_LIMIT, description="Maximum files")
        ] = navigation.DEFAULT_FILE_LIMIT,
    ) -> navigation.FileListing:
        """Indexed files (path, language, size, chunk and symbol counts) in path order."""
        with _as_tool_errors(metrics, "list_files"), backend.connection() as con:
            return navigation.list_files(con, glob=glob, language=language, limit=limit)

    @server.tool(annotations=READ_ONLY)
    def get_file(
        path: Annotated[
            str, Field(min_length=1, description="File path relative to the indexed root")
        ],
        start_line: Annotated[
            int | None, Field(ge=1, description="First line (1-based); default 1")
        ] = None,
        end_line: Annotated[
            int | None, Field(ge=1, description="Last line (inclusive); default the end")
        ] = None,
        max_lines: Annotated[
            int, Field(ge=1, le=navigation.MAX_SLICE_LINES, description="Cap on returned lines")
        ] = navigation.DEFAULT_SLICE_LINES,
    ) -> navigation.FileSlice:
        """Read lines of an indexed file (confined to the indexed root; secrets, skipped and
        unindexed files are refused)."""
        with _as_tool_errors(metrics, "get_file"), backend.connection() as con:
            return navigation.get_file(
                con,
                backend.root,
                path,
                start_line=start_line,
                end_line=end_line,
                max_lines=max_lines,
            )

    @server.tool(annotations=READ_ONLY)
    def index_status() -> IndexStatus:
        """What is indexed: root, publish time, model, file/chunk/symbol counts, skips."""
        with _as_tool_errors(metrics, "index_status"):
            return backend.status()

    return server


def serve(store: IndexStore, settings: Settings) -> None:
    """Run the server over stdio until the client disconnects. (Over HTTP the web page, API,
    ``/healthz`` and ``/metrics`` share the process: :func:`coderag_assets.web.server.serve_http`.)"""
    backend = IndexBackend(store, settings)
    try:
        backend.warm_up()
        build_server(backend).run("stdio")
    finally:
        backend.close()
