"""`coderag` command line: index, search, status, symbols, refs, serve, watch, ui, prune.

Contract (scripts and agents depend on it): results go to stdout, errors to stderr with a
non-zero exit code (2 = bad input / nothing to search, 1 = the run failed). One module per
command family; what they share lives in :mod:`coderag_assets.cli.common`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from coderag_assets.cli.agents import add_agent_commands
from coderag_assets.cli.common import EXIT_FAILED, EXIT_USAGE, CliError, err
from coderag_assets.cli.housekeeping import add_housekeeping_commands
from coderag_assets.cli.index import cmd_index
from coderag_assets.cli.search import cmd_search, cmd_status
from coderag_assets.cli.ui import cmd_ui
from coderag_assets.cli.watch import add_watch_commands
from coderag_assets.embedding import EmbeddingError
from coderag_assets.execution import ServiceUnavailableError, UpdateBlockedError
from coderag_assets.settings import SettingsError
from coderag_assets.store import IndexNotFoundError, duckdb_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderag", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", help="data directory (default: $CODERAG_DATA or the project's data/)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index or update a repository")
    index.add_argument("path", nargs="?", help="repository root (default: current directory)")
    index.add_argument("--dry-run", action="store_true", help="print the scope; embed nothing")
    index.add_argument("--full", action="store_true", help="re-hash every file (full rebuild)")
    index.add_argument(
        "--workers", type=int, help="shard steps at once (default: CPU count; $CODERAG_WORKERS)"
    )
    index.add_argument(
        "--executor",
        choices=["auto", "in_process", "multiprocess", "celery"],
        help="Dagster executor for the shard steps (default: $CODERAG_EXECUTOR or auto = "
        "in-process, the fastest on one machine)",
    )
    index.add_argument(
        "--skip-gate",
        action="append",
        default=[],
        metavar="NAME",
        help="evaluate and report this promotion gate but do not let it block this run "
        "(repeatable; e.g. golden_queries)",
    )
    index.add_argument("--json", action="store_true", help="print the summary as JSON")
    index.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    index.set_defaults(func=cmd_index)

    search = commands.add_parser("search", help="search the index")
    search.add_argument("query")
    search.add_argument("--mode", choices=["hybrid", "vector", "bm25"], default="hybrid")
    search.add_argument("--limit", "-n", type=int, default=10)
    search.add_argument("--lang", help="only this language (python, go, ts, ...)")
    search.add_argument("--path", help="only paths matching this glob (e.g. 'src/**/*.py')")
    search.add_argument("--json", action="store_true", help="print results as JSON")
    search.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="re-score the top results with the cross-encoder (default: CODERAG_RERANK, off)",
    )
    search.add_argument("--root", help="indexed root to search (default: found from the cwd)")
    search.add_argument("--snippet-lines", type=int, default=6, help=argparse.SUPPRESS)
    search.set_defaults(func=cmd_search)

    status = commands.add_parser("status", help="what is indexed, when, counts, skips")
    status.add_argument("--root", help="indexed root (default: found from the cwd)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--verbose", "-v", action="store_true", help="list every skipped file")
    status.add_argument(
        "--all",
        action="store_true",
        help="every index in the data directory: root (still there?), version, chunks, size, "
        "last publish",
    )
    status.set_defaults(func=cmd_status)

    ui = commands.add_parser("ui", help="start the Dagster UI (dagster dev) for a repository")
    ui.add_argument("path", nargs="?", help="repository root (default: current directory)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(func=cmd_ui)

    add_agent_commands(commands)
    add_housekeeping_commands(commands)
    add_watch_commands(commands)
    return parser


#: Commands that keep running (and allocating) until stopped: they keep Python's default
#: garbage collection.
LONG_RUNNING_COMMANDS = frozenset({"watch", "serve", "ui"})
#: Collection thresholds of a one-shot command: far fewer generation-0 collections, each of
#: which also walks the young objects of Dagster's and DuckDB's imports.
ONE_SHOT_GC_THRESHOLDS = (50_000, 50, 1000)


def run() -> NoReturn:
    """The `coderag` process: `main` with garbage collection tuned for a short-lived process.

    Objects that exist when a command starts (its modules) are frozen out of collection;
    one-shot commands collect less often; and the heap is frozen again before the process
    exits, so the interpreter does not sweep it on the way out. A one-file `coderag index` at
    400k chunks took 4.8-5.7 s without this and 3.9-4.4 s with it (alternating runs); the exit's
    final collection alone took 0.55 s (benchmarks/results/2026-12-02/edit_ab_gc_session5.txt).
    """
    args = build_parser().parse_args()
    gc.freeze()
    if args.command not in LONG_RUNNING_COMMANDS:
        gc.set_threshold(*ONE_SHOT_GC_THRESHOLDS)
    code = dispatch(args)
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run one `coderag` command in this process (as tests and embedding programs do)."""
    return dispatch(build_parser().parse_args(argv))


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; the exit code (errors are printed, never raised)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore", module="dagster")
    if getattr(args, "limit", 1) is not None and getattr(args, "limit", 1) < 1:
        err.print("error: --limit must be at least 1")
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        # A full file system surfaces from anywhere (the Dagster instance's SQLite storage,
        # DuckDB, a Parquet write) as many different errors: one line names it.
        full_disk = _full_disk_line(exc, args)
        code = EXIT_FAILED if full_disk is not None else _exit_code_for(exc)
        if code is None:
            raise
        print(f"error: {full_disk or exc}", file=sys.stderr)
        return code


#: Errors printed as one `error:` line with exit code 2 (bad input, nothing to search).
USAGE_ERRORS = (IndexNotFoundError, SettingsError, ValueError)  # ValueError: SearchError...
#: Errors printed as one `error:` line with exit code 1 (the command failed); DuckDB's too
#: (`duckdb_errors`: only once DuckDB is loaded, so importing the CLI does not load it — a
#: spawned chunking worker of the `coderag` script imports this package).
FAILURES = (EmbeddingError, OSError, ServiceUnavailableError, UpdateBlockedError)


def _exit_code_for(exc: Exception) -> int | None:
    """The exit code of an error printed as one line; None for an unexpected one (raised)."""
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, USAGE_ERRORS):
        return EXIT_USAGE
    if isinstance(exc, (*FAILURES, *duckdb_errors())):
        return EXIT_FAILED
    return None


def _full_disk_line(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line naming the full file system behind `exc`, or None when space is not the cause."""
    from coderag_assets.disk_space import find_full_disk
    from coderag_assets.inventory import prunable_bytes
    from coderag_assets.settings import default_data_dir

    if isinstance(exc, CliError):
        return None
    data_dir = Path(args.data_dir).resolve() if getattr(args, "data_dir", None) else None
    data_dir = data_dir or default_data_dir()
    full = find_full_disk(exc, instance_dir=data_dir)
    if full is None:
        return None
    return full.message(
        data_dir,
        live_version=_live_version(args, data_dir),
        prunable_bytes=prunable_bytes(data_dir),
    )


def _live_version(args: argparse.Namespace, data_dir: Path) -> int | None:
    """The published version of the index the command was about (None: none, or unknown)."""
    from coderag_assets.segments import current_version
    from coderag_assets.store import find_index

    start = getattr(args, "path", None) or getattr(args, "root", None) or "."
    store = find_index(data_dir, Path(start).expanduser())
    return current_version(store.base) if store is not None else None
