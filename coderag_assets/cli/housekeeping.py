"""`coderag status --all` (every index in the data directory) and `coderag prune` (remove the
indexes whose roots are gone, or named ones)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from coderag_assets.cli.common import EXIT_FAILED, err, out, settings_from_args
from coderag_assets.disk_space import data_dir_usage, human_bytes
from coderag_assets.inventory import IndexEntry, list_indexes, prune_indexes
from coderag_assets.settings import Settings


def add_housekeeping_commands(commands: argparse._SubParsersAction) -> None:
    prune = commands.add_parser(
        "prune",
        help="remove the indexes of roots that no longer exist (or of the roots named)",
        description="Remove the indexes whose roots no longer exist (`coderag status --all` "
        "lists them). Name roots to remove their indexes even if the roots exist. An index "
        "being updated or read is left alone. The indexes that stay get the garbage "
        "collection a publish runs (old versions, leftovers of killed writers).",
    )
    prune.add_argument(
        "roots", nargs="*", help="remove the indexes of these roots (default: of missing roots)"
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed")
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(func=cmd_prune)


def cmd_status_all(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    entries = list_indexes(settings.data_dir)
    if args.json:
        usage = dict(data_dir_usage(settings.data_dir))
        payload = {
            "data_dir": str(settings.data_dir),
            "indexes": [entry.to_json() for entry in entries],
            "data_dir_bytes": usage,
        }
        print(json.dumps(payload, indent=2))
        return 0
    table = Table(title=f"Indexes in {settings.data_dir}", title_justify="left")
    longest_root = max((len(str(entry.root or entry.base.name)) for entry in entries), default=4)
    table.add_column("root", overflow="fold", min_width=min(longest_root, 48))
    for column in ("exists", "version", "chunks", "size", "last publish"):
        table.add_column(column, justify="right" if column in ("chunks", "size") else "left")
    for entry in entries:
        table.add_row(
            escape(str(entry.root) if entry.root is not None else f"? ({entry.base.name})"),
            "yes" if entry.root_exists else "[red]no[/red]",
            str(entry.version) if entry.version is not None else "-",
            str(entry.chunks) if entry.chunks is not None else "-",
            human_bytes(entry.disk_bytes),
            _when(entry.published_at),
        )
    out.print(table)
    usage = data_dir_usage(settings.data_dir)
    if usage:
        listed = ", ".join(f"{name} {human_bytes(size)}" for name, size in usage)
        out.print(f"data directory: {listed}")
    orphaned = [entry for entry in entries if entry.orphaned]
    if orphaned:
        size = human_bytes(sum(entry.disk_bytes for entry in orphaned))
        out.print(
            f"{len(orphaned)} index(es) of roots that no longer exist hold {size}: "
            "`coderag prune` removes them (`--dry-run` to list)"
        )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    roots = [Path(root) for root in args.roots]
    result = prune_indexes(
        settings.data_dir,
        roots=roots,
        dry_run=args.dry_run,
        in_use=_active_runs(settings) if not args.dry_run else None,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": result.dry_run,
                    "removed": [entry.to_json() for entry in result.removed],
                    "refused": {str(base): why for base, why in result.refused.items()},
                    "reclaimed_bytes": result.reclaimed_bytes,
                    "freed_bytes": result.freed_bytes,
                },
                indent=2,
            )
        )
    else:
        verb = "would remove" if result.dry_run else "removed"
        for entry in result.removed:
            out.print(f"{verb} {escape(_describe(entry))}", soft_wrap=True)
        if not result.removed and not result.refused:
            out.print(
                "nothing to prune: every index's root exists" if not roots else "nothing to prune"
            )
        elif result.removed:
            freed = human_bytes(result.freed_bytes)
            out.print(f"{'would free' if result.dry_run else 'freed'} {freed}")
        if result.reclaimed_bytes:
            reclaimed = human_bytes(result.reclaimed_bytes)
            out.print(f"reclaimed {reclaimed} of old versions and leftovers in the other indexes")
    for base, why in result.refused.items():
        err.print(f"[red]error:[/red] kept {escape(str(base))}: {escape(why)}", soft_wrap=True)
    return EXIT_FAILED if result.refused else 0


def _describe(entry: IndexEntry) -> str:
    root = str(entry.root) if entry.root is not None else "unknown root"
    state = "" if entry.root_exists else ", root gone"
    return f"{root} ({human_bytes(entry.disk_bytes)}{state}; {entry.base})"


def _when(published_at: float | None) -> str:
    if published_at is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(published_at))


def _active_runs(settings: Settings) -> Callable[[IndexEntry], str | None]:
    """`in_use` for `prune_indexes`: a Dagster run of the index's root still queued or running
    (the UI, the sensor or the schedule launched it) keeps the index. When the instance cannot
    be read (its disk is full: what `prune` is often run for) the locks alone decide."""
    instance = None

    def in_use(entry: IndexEntry) -> str | None:
        nonlocal instance
        import dagster as dg

        from coderag_assets.runs import get_instance
        from coderag_assets.tags import ACTIVE_RUN_STATUSES, ROOT_TAG

        if entry.root is None:
            return None
        filters = dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={ROOT_TAG: str(entry.root)})
        try:
            instance = instance or get_instance(settings)
            runs = instance.get_runs(filters, limit=1)
        except Exception:  # noqa: BLE001 - an unreadable instance must not block freeing space
            return None
        if runs:
            return f"Dagster run {runs[0].run_id} of this root is {runs[0].status.value.lower()}"
        return None

    return in_use
