"""`coderag ui`: the Dagster UI on the same instance and index as the CLI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from coderag_assets.cli.common import (
    CliError,
    err,
    root_path,
    settings_from_args,
)
from coderag_assets.settings import prepare_dagster_env


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` over workspace.yaml with this project's instance and data directory."""
    import subprocess

    from coderag_assets.files import RootError
    from coderag_assets.runs import sized_for_tree

    root = root_path(args.path or ".")
    try:  # the UI's partitions are the root's shards: recorded, or sized for a new index
        settings = sized_for_tree(settings_from_args(args).with_root(root))
    except RootError as error:
        raise CliError(str(error)) from error
    prepare_dagster_env(settings)
    env = {**os.environ, "CODERAG_ROOT": str(root), "CODERAG_SHARDS": str(settings.shard_count)}
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
