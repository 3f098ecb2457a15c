"""`coderag search` and `coderag status`: answer from the published index."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table
from rich.text import Text

from coderag_assets.cli.common import (
    err,
    out,
    resolve_store,
    settings_from_args,
)


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
    from coderag_assets.query import SKIPPED_SAMPLE_FILES, index_status

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
