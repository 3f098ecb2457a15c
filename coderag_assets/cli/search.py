"""`coderag search` and `coderag status`: answer from the published index."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from coderag_assets.cli.common import (
    err,
    out,
    resolve_store,
    settings_from_args,
)

if TYPE_CHECKING:
    from coderag_assets.navigation import DefinitionHeader
    from coderag_assets.search import SearchResult
    from coderag_assets.store import IndexStore


def cmd_search(args: argparse.Namespace) -> int:
    from coderag_assets.query import QueryService

    settings = settings_from_args(args)
    store = resolve_store(settings, args.root)
    service = QueryService(store, settings, one_shot=True)
    try:
        results = service.search(
            args.query, mode=args.mode, limit=args.limit, language=args.lang, path_glob=args.path
        )
        pending = int(service.reader.meta.get("pending_vectors") or 0)  # type: ignore[call-overload]
    finally:
        service.close()
    if pending and args.mode != "bm25":
        err.print(
            f"note: the index is still being built; {pending} chunks are searchable by keywords "
            "only until their vectors are ready (`coderag status`)"
        )
    if args.json:
        print(json.dumps([result.to_json() for result in results], indent=2))
        return 0
    if not results:
        err.print("no results")
        return 0
    headers = _definition_headers(store, results)
    for result, header in zip(results, headers, strict=True):
        symbol = f"  [bold]{escape(result.symbol)}[/bold]" if result.symbol else ""
        out.print(
            f"[cyan]{escape(result.path)}[/cyan]:{result.start_line}-{result.end_line}{symbol}"
            f"  [dim]{result.kind} · {result.language} · score {result.score:.4f}[/dim]"
        )
        if header is not None:
            # A hit inside a long definition: show where it starts, then the gap.
            out.print(
                Text.assemble((f"  {header.line:>5}  ", "dim"), (header.signature[:160], "bold")),
                soft_wrap=True,
            )
            out.print(Text("         ⋮", style="dim"))
        snippet = result.content.splitlines()[: args.snippet_lines]
        for number, line in enumerate(snippet, start=result.start_line):
            out.print(Text.assemble((f"  {number:>5}  ", "dim"), line[:160]), soft_wrap=True)
        out.print()
    return 0


def _definition_headers(
    store: IndexStore, results: list[SearchResult]
) -> list[DefinitionHeader | None]:
    """The enclosing definition's header line for hits that start inside one (None if the
    index cannot say: the results are still printed)."""
    from coderag_assets.navigation import enclosing_definitions
    from coderag_assets.store import connect_index

    try:
        con = connect_index(store.index_path)
    except Exception:  # noqa: BLE001  (headers are a nicety; the results still print)
        return [None] * len(results)
    try:
        return enclosing_definitions(con, [(r.path, r.start_line, r.end_line) for r in results])
    finally:
        con.close()


# ------------------------------------------------------------------ status


def cmd_status(args: argparse.Namespace) -> int:
    from coderag_assets.query import SKIPPED_SAMPLE_FILES, index_status

    if args.all:
        from coderag_assets.cli.housekeeping import cmd_status_all

        return cmd_status_all(args)
    settings = settings_from_args(args)
    store = resolve_store(settings, args.root)
    status = index_status(store, skipped_sample=None if args.verbose else SKIPPED_SAMPLE_FILES)
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
        (
            "chunks",
            str(status["chunks"])
            + (
                f" ({status['pending_vectors']} waiting for their vectors)"
                if status["pending_vectors"]
                else ""
            ),
        ),
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
