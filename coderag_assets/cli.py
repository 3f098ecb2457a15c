"""`coderag` command line: index, search, status, symbols, refs, serve, watch, ui.

Contract (scripts and agents depend on it): results go to stdout, errors to stderr with a
non-zero exit code (2 = bad input / nothing to search, 1 = the run failed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from coderag_assets.embedding import EmbeddingError
from coderag_assets.execution import ServiceUnavailableError
from coderag_assets.files import RootError, resolve_root
from coderag_assets.settings import Settings, SettingsError, load_settings, prepare_dagster_env
from coderag_assets.store import IndexNotFoundError, IndexStore, find_index

EXIT_USAGE = 2
EXIT_FAILED = 1
STAGE_LABELS = {"scan": "Scanning files", "chunk": "Chunking", "embed": "Embedding"}

out = Console()
err = Console(stderr=True)


class CliError(Exception):
    """Printed to stderr as `error: <message>` with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


# ------------------------------------------------------------------ helpers


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(
            data_dir=Path(args.data_dir).resolve() if getattr(args, "data_dir", None) else None,
            workers=getattr(args, "workers", None),
        )
    except SettingsError as exc:
        raise CliError(str(exc)) from exc


def _resolve_store(settings: Settings, root_arg: str | None) -> IndexStore:
    """The index for `--root`, else for the indexed tree containing the working directory."""
    if root_arg:
        root = _root(root_arg)
        store = IndexStore.for_root(settings.data_dir, root)
    else:
        found = find_index(settings.data_dir, Path.cwd())
        if found is None:
            raise CliError(
                f"no index covers {Path.cwd()}; run `coderag index PATH` first "
                f"(or pass --root; data directory: {settings.data_dir})"
            )
        store = found
    if not store.index_path.exists():
        raise CliError(f"{store.root} has not been indexed yet; run `coderag index {store.root}`")
    return store


def _root(path: str) -> Path:
    try:
        return resolve_root(path)
    except RootError as exc:
        raise CliError(str(exc)) from exc


class RichReporter:
    """Progress bars for pipeline stages (:mod:`coderag_assets.progress`)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        label = STAGE_LABELS.get(stage, stage)
        if stage in self.tasks:
            self.progress.update(self.tasks[stage], total=total, completed=0)
        else:
            self.tasks[stage] = self.progress.add_task(label, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self.tasks:
            self.progress.advance(self.tasks[stage], amount)

    def finish(self, stage: str) -> None:
        if stage in self.tasks:
            task = self.progress.tasks[self.tasks[stage]]
            self.progress.update(self.tasks[stage], completed=task.total or 0)


# ------------------------------------------------------------------ index


def cmd_index(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = _root(args.path or ".")
    if args.dry_run:
        return _dry_run(settings, root)
    from coderag_assets.runs import run_index

    progress = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=args.quiet or not err.is_terminal and os.environ.get("CI") == "true",
        transient=False,
    )
    with progress:
        summary = run_index(
            settings.with_root(root), reporter=RichReporter(progress), full=args.full
        )
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        _print_summary(summary)
    if not summary.success:
        err.print(f"[red]error:[/red] indexing failed: {summary.error}")
        err.print("The last published index (if any) is unchanged and still searchable.")
        return EXIT_FAILED
    return 0


def _print_summary(summary) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("root", str(summary.root))
    if summary.up_to_date:
        table.add_row(
            "status", f"up to date ({summary.reason})" if summary.reason else "up to date"
        )
    table.add_row("files", f"{summary.files} ({summary.indexable_files} indexed)")
    table.add_row("chunks", str(summary.chunks))
    table.add_row("embedded", str(summary.embedded))
    table.add_row("reused", str(summary.reused))
    skipped = ", ".join(f"{reason} {count}" for reason, count in summary.skipped.items()) or "none"
    table.add_row("skipped", skipped)
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("index", str(summary.index_path))
    out.print(table)


def _dry_run(settings: Settings, root: Path) -> int:
    from coderag_assets.scope import estimate_scope

    scope = estimate_scope(root, max_file_bytes=settings.max_file_bytes)
    languages = Table(title=f"Scope of {root} (dry run, nothing embedded)")
    for column in ("language", "files", "bytes", "est. chunks"):
        languages.add_column(column, justify="right" if column != "language" else "left")
    for language, (files, size, chunks) in scope.by_language.items():
        languages.add_row(language, str(files), f"{size:,}", str(chunks))
    out.print(languages)
    out.print(
        f"[bold]{scope.files}[/bold] files to index, {scope.bytes:,} bytes, "
        f"≈{scope.estimated_chunks} chunks"
    )
    dirs = Table(title="Largest directories")
    dirs.add_column("directory")
    dirs.add_column("bytes", justify="right")
    for directory, size in scope.largest_dirs:
        dirs.add_row(directory, f"{size:,}")
    out.print(dirs)
    if scope.skipped:
        skipped = Table(title="Skipped")
        skipped.add_column("reason")
        skipped.add_column("files", justify="right")
        skipped.add_column("examples")
        for reason, paths in scope.skipped.items():
            skipped.add_row(reason, str(len(paths)), ", ".join(paths[:3]))
        out.print(skipped)
    return 0


# ------------------------------------------------------------------ search


def cmd_search(args: argparse.Namespace) -> int:
    from coderag_assets.query import QueryService

    settings = _settings(args)
    store = _resolve_store(settings, args.root)
    service = QueryService(store, settings)
    try:
        results = service.search(
            args.query, mode=args.mode, limit=args.limit, language=args.lang, path_glob=args.path
        )
    finally:
        service.close()
    if args.json:
        print(json.dumps([result.to_json() for result in results], indent=2))
        return 0
    if not results:
        err.print("no results")
        return 0
    for result in results:
        symbol = f"  [bold]{result.symbol}[/bold]" if result.symbol else ""
        out.print(
            f"[cyan]{result.path}[/cyan]:{result.start_line}-{result.end_line}{symbol}"
            f"  [dim]{result.kind} · {result.language} · score {result.score:.4f}[/dim]"
        )
        snippet = result.content.splitlines()[: args.snippet_lines]
        for number, line in enumerate(snippet, start=result.start_line):
            out.print(Text.assemble((f"  {number:>5}  ", "dim"), line[:160]), soft_wrap=True)
        out.print()
    return 0


# ------------------------------------------------------------------ status


def cmd_status(args: argparse.Namespace) -> int:
    from coderag_assets.query import index_status

    settings = _settings(args)
    store = _resolve_store(settings, args.root)
    status = index_status(store)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    table = Table(show_header=False, box=None, pad_edge=False)
    published = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["published_at"]))
    rows = [
        ("root", status["root"]),
        ("index", status["index_path"]),
        ("published", f"{published} ({_age(status['age_seconds'])} ago)"),
        ("model", status["model_id"]),
        ("chunker", status["chunker_version"]),
        ("files", f"{status['files']} ({status['indexed_files']} indexed)"),
        ("chunks", str(status["chunks"])),
        ("symbols", str(status["symbols"])),
        ("languages", ", ".join(f"{k} {v}" for k, v in status["languages"].items())),
        ("skipped", ", ".join(f"{k} {v}" for k, v in status["skipped"].items()) or "none"),
        ("run", status["run_id"]),
        ("freshness", status["freshness"]["summary"]),  # type: ignore[index]
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)
    if args.verbose and status["skipped_files"]:
        skips = Table(title="Skipped files")
        for column in ("path", "reason", "detail"):
            skips.add_column(column)
        for item in status["skipped_files"]:
            skips.add_row(item["path"], item["skip_reason"], item["skip_detail"] or "")
        out.print(skips)
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# ------------------------------------------------------------------ ui


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` over workspace.yaml with this project's instance and data directory."""
    import subprocess

    settings = _settings(args)
    root = _root(args.path or ".")
    prepare_dagster_env(settings)
    env = {**os.environ, "CODERAG_ROOT": str(root)}
    workspace = Path(os.environ["DAGSTER_HOME"]) / "workspace.yaml"
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(workspace),
        "-p",
        str(args.port),
        "-h",
        args.host,
    ]
    err.print(f"Dagster UI on http://{args.host}:{args.port} for {root} (Ctrl-C stops it)")
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


# ------------------------------------------------------------------ main


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
    index.add_argument("--workers", type=int, help="embedding processes (default: CPU count)")
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
    search.add_argument("--root", help="indexed root to search (default: found from the cwd)")
    search.add_argument("--snippet-lines", type=int, default=6, help=argparse.SUPPRESS)
    search.set_defaults(func=cmd_search)

    status = commands.add_parser("status", help="what is indexed, when, counts, skips")
    status.add_argument("--root", help="indexed root (default: found from the cwd)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--verbose", "-v", action="store_true", help="list every skipped file")
    status.set_defaults(func=cmd_status)

    ui = commands.add_parser("ui", help="start the Dagster UI (dagster dev) for a repository")
    ui.add_argument("path", nargs="?", help="repository root (default: current directory)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(func=cmd_ui)

    from coderag_assets.cli_agents import add_agent_commands
    from coderag_assets.cli_watch import add_watch_commands

    add_agent_commands(commands)
    add_watch_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore", module="dagster")
    args = build_parser().parse_args(argv)
    if getattr(args, "limit", 1) is not None and getattr(args, "limit", 1) < 1:
        err.print("error: --limit must be at least 1")
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (IndexNotFoundError, SettingsError, ValueError) as exc:
        # ValueError covers SearchError, NavigationError and path refusals: bad input.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (EmbeddingError, duckdb.Error, OSError, ServiceUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    # Re-import so `python -m coderag_assets.cli` uses the same module (and CliError class)
    # as the command modules that import `coderag_assets.cli`.
    from coderag_assets.cli import main as package_main

    sys.exit(package_main())
