"""CLI commands for agents: symbol navigation and the MCP server (filled in by issue #4)."""

from __future__ import annotations

import argparse


def add_agent_commands(commands: argparse._SubParsersAction) -> None:  # noqa: SLF001
    """Register `symbols`, `refs` and `serve` on the `coderag` parser."""
