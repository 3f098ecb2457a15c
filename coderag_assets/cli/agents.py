"""CLI commands for agents: symbol navigation and the MCP server.

```
coderag symbols find NAME [--kind K] [--mode exact|prefix|contains|fuzzy] [--limit N] [--json] [--root PATH]
coderag symbols list FILE [--json] [--root PATH]
coderag refs NAME [--code-only] [--limit N] [--path GLOB] [--json] [--root PATH]
coderag serve [--http] [--host 127.0.0.1] [--port 8765] [--token T] [--root PATH]
coderag web [PATH] [--host 127.0.0.1] [--port 8765] [--token T] [--no-browser]
```

Same conventions as the rest of the CLI: the index of the tree containing the working
directory (or ``--root``), ``--json`` for machine-readable output, errors on stderr with exit
code 2. ``serve`` over stdio writes nothing but protocol messages to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from coderag_assets import navigation
from coderag_assets.store import IndexStore, connect_index

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from coderag_assets.settings import Settings

SNIPPET_CHARS = 160
DEFAULT_HTTP_HOST = "127.0.0.1"  # the same defaults as mcp_server (not imported: it loads the SDK)
DEFAULT_HTTP_PORT = 8765
TOKEN_ENV = "CODERAG_TOKEN"


def _store(args: argparse.Namespace) -> tuple[IndexStore, Settings]:
    from coderag_assets.cli.common import resolve_store, settings_from_args

    settings = settings_from_args(args)
    return resolve_store(settings, args.root), settings


@contextmanager
def _index_connection(args: argparse.Namespace) -> Iterator[tuple[IndexStore, DuckDBPyConnection]]:
    """The indexed root for `args` and a read-only connection to its index, closed after."""
    store, _ = _store(args)
    con = connect_index(store.index_path)
    try:
        yield store, con
    finally:
        con.close()


def _rel_to_root(root: Path, file_arg: str) -> str:
    """A FILE argument as a root-relative path: an existing path (absolute, or relative to
    the working directory) is made relative to the root; anything else is taken as already
    root-relative (and checked by the navigation functions)."""
    if "\0" in file_arg:
        return file_arg
    candidate = Path(file_arg).expanduser()
    if candidate.is_absolute() or (Path.cwd() / candidate).exists():
        absolute = Path(os.path.abspath(candidate))
        real_root = Path(os.path.realpath(root))
        for base in (root, real_root):
            if absolute == base or base in absolute.parents:
                return absolute.relative_to(base).as_posix()
        raise navigation.PathOutsideRootError(file_arg, f"not inside the indexed root {root}")
    return file_arg


# ------------------------------------------------------------------------------ commands


def cmd_symbols_find(args: argparse.Namespace) -> int:
    with _index_connection(args) as (_, con):
        matches = navigation.find_symbols(
            con, args.name, kind=args.kind, mode=args.mode, limit=args.limit
        )
    if args.json:
        print(json.dumps(matches.to_json(), indent=2))
        return 0
    if not matches.symbols:
        print(f"no symbol matches {args.name!r} ({args.mode})", file=sys.stderr)
        return 0
    for symbol in matches.symbols:
        score = f"  [{symbol.score:.2f}]" if symbol.score is not None else ""
        print(
            f"{symbol.path}:{symbol.line}:{symbol.column}  {symbol.kind:<9} {symbol.qualified_name}{score}"
        )
        print(f"    {symbol.signature[:SNIPPET_CHARS]}")
    if matches.truncated:
        print(f"(more matches; raise --limit above {args.limit})", file=sys.stderr)
    return 0


def cmd_symbols_list(args: argparse.Namespace) -> int:
    with _index_connection(args) as (store, con):
        outline = navigation.list_symbols(con, _rel_to_root(store.root, args.file))
    if args.json:
        print(json.dumps(outline.to_json(), indent=2))
        return 0
    if not outline.symbols:
        print(f"{outline.path}: no definitions ({outline.language})", file=sys.stderr)
        return 0
    for symbol in outline.symbols:
        indent = "  " * symbol.depth
        print(
            f"{symbol.line:>5}-{symbol.end_line:<5} {indent}{symbol.kind} {symbol.name}  {symbol.signature[:SNIPPET_CHARS]}"
        )
    if outline.truncated:
        print("(outline truncated)", file=sys.stderr)
    return 0


def cmd_refs(args: argparse.Namespace) -> int:
    with _index_connection(args) as (_, con):
        matches = navigation.find_references(
            con, args.name, limit=args.limit, path_glob=args.path, code_only=args.code_only
        )
    if args.json:
        print(json.dumps(matches.to_json(), indent=2))
        return 0
    if not matches.references:
        print(f"no occurrences of {matches.identifier!r}", file=sys.stderr)
        return 0
    for reference in matches.references:
        marker = "def " if reference.is_definition else "    "
        where = f"{reference.path}:{reference.line}:{reference.column}"
        if reference.context != "code":
            where += f" ({reference.context})"
        print(f"{marker}{where}: {reference.text.strip()[:SNIPPET_CHARS]}")
    if matches.truncated:
        print(
            f"({len(matches.references)} of {matches.total} occurrences shown; raise --limit)",
            file=sys.stderr,
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from coderag_assets.backend import unmap_large_allocations
    from coderag_assets.cli.common import CliError, resolve_store, settings_from_args
    from coderag_assets.web.server import ServerConfigError

    unmap_large_allocations()  # a long-lived process: freed per-query arrays go back
    web = getattr(args, "web_command", False)
    http = args.http or web
    settings = settings_from_args(args)
    # Over HTTP the server may start before the first index (the page and /healthz say so
    # and it picks the index up when it is published); stdio needs an index now.
    store = resolve_store(settings, args.root, require_index=not http)
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        if http:
            from coderag_assets.web.server import serve_http

            serve_http(
                store,
                settings,
                host=args.host,
                port=args.port,
                token=token,
                open_browser=web and not args.no_browser,
            )
        else:
            from coderag_assets.mcp_server import serve

            serve(store, settings)
    except ServerConfigError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0


# ------------------------------------------------------------------------------ parser


def _common(parser: argparse.ArgumentParser, json_output: bool = True) -> None:
    parser.add_argument("--root", help="indexed root (default: found from the cwd)")
    parser.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="data directory (as `coderag --data-dir`)"
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print results as JSON")


def add_agent_commands(commands: argparse._SubParsersAction) -> None:
    """Register `symbols`, `refs` and `serve` on the `coderag` parser."""
    symbols = commands.add_parser("symbols", help="find definitions or outline a file")
    symbol_commands = symbols.add_subparsers(dest="symbols_command", required=True)

    find = symbol_commands.add_parser("find", help="definitions by name")
    find.add_argument("name")
    find.add_argument("--kind", help="only this kind (function, method, class, struct, ...)")
    find.add_argument("--mode", choices=navigation.SYMBOL_MATCH_MODES, default="exact")
    find.add_argument("--limit", "-n", type=int, default=navigation.DEFAULT_SYMBOL_LIMIT)
    _common(find)
    find.set_defaults(func=cmd_symbols_find)

    outline = symbol_commands.add_parser("list", help="outline of one file in source order")
    outline.add_argument("file", help="path (relative to the root, or an existing path inside it)")
    _common(outline)
    outline.set_defaults(func=cmd_symbols_list)

    refs = commands.add_parser("refs", help="identifier-level occurrences of a name")
    refs.add_argument("name")
    refs.add_argument("--limit", "-n", type=int, default=navigation.DEFAULT_REFERENCE_LIMIT)
    refs.add_argument("--path", help="only paths matching this glob")
    refs.add_argument(
        "--code-only",
        action="store_true",
        help="leave out mentions in comments, strings and docstrings, and in files without a "
        "grammar (docs, config, SQL, HTML, ...)",
    )
    _common(refs)
    refs.set_defaults(func=cmd_refs)

    serve = commands.add_parser("serve", help="MCP server for coding agents (stdio, or --http)")
    serve.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    serve.add_argument(
        "--host", default=DEFAULT_HTTP_HOST, help="HTTP bind address (default: loopback)"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)
    serve.add_argument(
        "--token",
        help=f"require this token for the page, API and MCP (default ${TOKEN_ENV}; bound beyond "
        "loopback without one, a token is generated and printed)",
    )
    _common(serve, json_output=False)
    serve.set_defaults(func=cmd_serve, web_command=False, no_browser=True)

    web = commands.add_parser(
        "web", help="the search page (coderag serve --http) for PATH, opened in a browser"
    )
    web.add_argument("root", nargs="?", help="indexed root (default: found from the cwd)")
    web.add_argument("--host", default=DEFAULT_HTTP_HOST, help="bind address (default: loopback)")
    web.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)
    web.add_argument("--token", help=f"as for serve (default ${TOKEN_ENV})")
    web.add_argument("--no-browser", action="store_true", help="print the URL, open nothing")
    web.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="data directory (as `coderag --data-dir`)"
    )
    web.set_defaults(func=cmd_serve, web_command=True, http=True)
