"""`coderag ui`: the Dagster UI on the same instance and index as the CLI."""

from __future__ import annotations

import argparse
import os
import signal
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
        # `dagster dev` is what Dagster 1.13 itself ships (`dg dev` needs dagster-dg-cli); its
        # "superseded" notice is not something a CodeRAG user can act on.
        "-W",
        "ignore:Function `dev_command` is superseded",
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
    # In DAGSTER_HOME, where its dagster.yaml is the one used (from elsewhere `dagster dev`
    # warns about any dagster.yaml in the working directory), in its own process group so
    # that stopping `coderag ui` stops the webserver, the daemon and the code server too.
    process = subprocess.Popen(
        command, env=env, cwd=os.environ["DAGSTER_HOME"], start_new_session=True
    )
    return supervise(process)


STOP_GRACE_S = 15.0


def supervise(process) -> int:
    """Wait for `process` (the leader of its own process group); SIGTERM or SIGINT to this
    process is forwarded to the whole group, which gets `STOP_GRACE_S` to exit before
    SIGKILL. Returns the exit status (128 + signal for a forwarded stop)."""
    import subprocess

    received: list[int] = []

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        _signal_group(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if received:
                    try:
                        code = process.wait(timeout=STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        _signal_group(process.pid, signal.SIGKILL)
                        code = process.wait()
                    break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Children that outlived their leader (a code server, a run worker) go with it.
    _signal_group(process.pid, signal.SIGKILL)
    return 128 + received[0] if received else code


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------ main
