"""What every `coderag` command shares: consoles, exit codes, the error type, settings from
the command line, finding the index, progress bars."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from coderag_assets.files import RootError, resolve_root
from coderag_assets.settings import Settings, SettingsError, load_settings
from coderag_assets.store import IndexStore, find_index

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


def settings_from_args(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(
            data_dir=Path(args.data_dir).resolve() if getattr(args, "data_dir", None) else None,
            workers=getattr(args, "workers", None),
            executor=getattr(args, "executor", None),
            rerank=getattr(args, "rerank", None),
        )
    except SettingsError as exc:
        raise CliError(str(exc)) from exc


def resolve_store(
    settings: Settings, root_arg: str | None, *, require_index: bool = True
) -> IndexStore:
    """The index for `--root`, else for the indexed tree containing the working directory.
    With ``require_index`` False a `--root` not indexed yet is accepted (a server that waits
    for the first publish)."""
    if root_arg:
        root = root_path(root_arg)
        store = IndexStore.for_root(settings.data_dir, root)
    else:
        found = find_index(settings.data_dir, Path.cwd())
        if found is None:
            raise CliError(
                f"no index covers {Path.cwd()}; run `coderag index PATH` first "
                f"(or pass --root; data directory: {settings.data_dir})"
            )
        store = found
    if require_index and not store.index_path.exists():
        raise CliError(f"{store.root} has not been indexed yet; run `coderag index {store.root}`")
    return store


def root_path(path: str) -> Path:
    try:
        return resolve_root(path)
    except RootError as exc:
        raise CliError(str(exc)) from exc


class RichReporter:
    """Progress bars for pipeline stages (:mod:`coderag_assets.progress`).

    Stages run once per shard, so a stage started again adds to its bar's total: the bar
    counts the whole run (files scanned, chunks embedded), not the last shard."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        label = STAGE_LABELS.get(stage, stage)
        if stage in self.tasks:
            task = self.progress.tasks[self.tasks[stage]]
            self.progress.update(self.tasks[stage], total=(task.total or 0) + total)
        else:
            self.tasks[stage] = self.progress.add_task(label, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self.tasks:
            self.progress.advance(self.tasks[stage], amount)

    def finish(self, stage: str) -> None:
        if stage in self.tasks:  # the shard's part is done (skipped rows count as done)
            task = self.progress.tasks[self.tasks[stage]]
            self.progress.update(self.tasks[stage], completed=task.total or 0)
