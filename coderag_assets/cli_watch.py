"""CLI command `coderag watch` (filled in by issue #3)."""

from __future__ import annotations

import argparse


def add_watch_commands(commands: argparse._SubParsersAction) -> None:  # noqa: SLF001
    """Register `watch` on the `coderag` parser."""
