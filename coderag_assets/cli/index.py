"""`coderag index`: run the index job for a repository, with progress and a summary."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coderag_assets.cli.common import (
    EXIT_FAILED,
    RichReporter,
    err,
    out,
    root_path,
    settings_from_args,
)
from coderag_assets.settings import Settings, shard_count_advice, shard_count_for
from coderag_assets.updates import IndexSummary, PlannedUpdate


def cmd_index(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    root = root_path(args.path or ".")
    if args.dry_run:
        return _dry_run(settings, root)
    from coderag_assets.files import RootError
    from coderag_assets.updates import plan_index_update, unusable_root_summary

    settings = settings.with_root(root)
    try:
        planned = plan_index_update(settings, full=args.full)
    except RootError as error:
        return _report(args, unusable_root_summary(settings, error))
    if planned.up_to_date:  # nothing to run: Dagster is never imported
        return _report(args, planned.up_to_date_summary())
    return _report(args, _run(args, planned))


def _run(args: argparse.Namespace, planned: PlannedUpdate) -> IndexSummary:
    """Run the planned update (:func:`coderag_assets.runs.run_index`) with progress bars."""
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
        return run_index(
            planned.settings,
            reporter=RichReporter(progress),
            full=args.full,
            skip_gates=args.skip_gate,
            planned=planned,
        )


def _report(args: argparse.Namespace, summary: IndexSummary) -> int:
    """Print the summary (a table, or JSON with --json); the exit code."""
    if summary.out_of_space:  # one line: which file system, what to free; the last version lives
        if args.json:
            print(json.dumps(summary.to_json(), indent=2))
        err.print(f"[red]error:[/red] {escape(summary.error)}", soft_wrap=True)
        return EXIT_FAILED
    advice = shard_count_advice(summary.chunks, summary.shard_count) if summary.success else None
    if args.json:
        payload = summary.to_json()
        if advice:
            payload["advice"] = advice
        print(json.dumps(payload, indent=2))
    elif summary.success:
        _print_summary(summary)
        _print_gates(summary)
        if advice:
            err.print(f"[yellow]hint:[/yellow] {escape(advice)}", soft_wrap=True)
    else:  # a failed run's numbers describe nothing published: no summary table
        _print_gates(summary)
    if not summary.success:
        # One line, printed as is (step keys such as `index_shard[shard_5]` are not markup).
        err.print(f"[red]error:[/red] indexing failed: {escape(summary.error)}", soft_wrap=True)
        err.print("The last published index (if any) is unchanged and still searchable.")
        return EXIT_FAILED
    return 0


def _print_gates(summary) -> None:
    """One line on stderr per promotion gate that did not simply pass (the summary table says
    how many passed)."""
    notable = {name: gate for name, gate in summary.gates.items() if gate["state"] != "passed"}
    colours = {"failed": "red", "misconfigured": "red", "overridden": "yellow"}
    for name, gate in notable.items():
        colour = colours.get(str(gate["state"]), "yellow")
        err.print(
            f"[{colour}]gate {escape(name)} {gate['state']}:[/{colour}] {escape(str(gate['detail']))}",
            soft_wrap=True,
        )


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
    if summary.shard_count:
        table.add_row("shards", str(summary.shard_count))
    skipped = ", ".join(f"{reason} {count}" for reason, count in summary.skipped.items()) or "none"
    table.add_row("skipped", skipped)
    table.add_row("seconds", f"{summary.seconds:.1f}")
    if summary.gates:
        passed = sum(1 for gate in summary.gates.values() if gate["state"] == "passed")
        table.add_row("gates", f"{passed} of {len(summary.gates)} passed")
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
        f"≈{scope.estimated_chunks} chunks (a new index of it gets "
        f"{shard_count_for(scope.estimated_chunks)} shards)"
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
