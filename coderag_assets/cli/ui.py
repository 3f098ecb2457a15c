"""`coderag ui`: the Dagster UI on the same instance and index as the CLI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from coderag_assets.cli.common import (
    err,
    root_path,
    settings_from_args,
)
from coderag_assets.settings import prepare_dagster_env


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` over workspace.yaml with this project's instance and data directory."""
    import subprocess

    settings = settings_from_args(args)
    root = root_path(args.path or ".")
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
