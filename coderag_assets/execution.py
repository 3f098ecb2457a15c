"""Which Dagster executor runs the shard steps of one index run, as run configuration.

Plain module (no Dagster import): the CLI, `coderag watch`, the sensor and the schedule ask
it for the run config of the job `coderag_index`; the job itself (definitions.py) is built
with `multi_or_in_process_executor`, or with the Celery executor when `CODERAG_EXECUTOR=celery`.

- `in_process`: every step in the run's own process — no process start, the model stays
  warm (a one-file edit, `coderag watch`).
- `multiprocess`: one process per shard step, `workers` at once, started from a forkserver
  with the pipeline's modules preloaded; each step embeds with cores // workers threads.
- `celery`: steps go to Celery workers (several machines); see docs/scale-out.md.
- `auto` (default): `in_process` (measured fastest on one machine, see `choose_executor`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_CELERY_BACKEND = "redis://127.0.0.1:6379/1"
BROKER_TIMEOUT_S = 3.0


class ServiceUnavailableError(RuntimeError):
    """A service the configured executor or instance needs does not answer; names it."""


class UpdateBlockedError(RuntimeError):
    """Another run of the root kept running for longer than an update waits for it."""


def celery_urls() -> tuple[str, str]:
    """(broker, result backend) of the Celery executor: `CODERAG_CELERY_BROKER` / `_BACKEND`."""
    broker = os.environ.get("CODERAG_CELERY_BROKER") or DEFAULT_CELERY_BROKER
    return broker, os.environ.get("CODERAG_CELERY_BACKEND") or DEFAULT_CELERY_BACKEND


def check_broker(executor: str) -> None:
    """Raise ServiceUnavailableError unless the Celery broker answers (celery executor only),
    so a misconfigured cluster fails at start with the service's name, not mid-run."""
    if executor != "celery":
        return
    try:
        from kombu import Connection
    except ImportError as error:
        raise ServiceUnavailableError(
            "CODERAG_EXECUTOR=celery needs the cluster extra: pip install -e '.[cluster]'"
        ) from error
    broker, _ = celery_urls()
    try:
        with Connection(broker, connect_timeout=BROKER_TIMEOUT_S) as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
    except Exception as error:
        raise ServiceUnavailableError(
            f"Redis (the Celery broker at {broker}) is not reachable: {error}. Start it "
            "(scripts/cluster.sh up) or use another CODERAG_EXECUTOR."
        ) from error


PRELOAD_MODULES = ["coderag_assets.definitions", "coderag_assets.indexing"]


def choose_executor(configured: str) -> str:
    """The executor of a run when the setting is `configured`; `auto` is `in_process`.

    Measured on this machine kind (benchmarks/results/2026-12-02): a cold index of Django
    5.1.4 (38,881 chunks) took 321 s in one process with two inference threads (0.97 of a
    bare encode, 1.1 GB RSS) against 390 s with a process per shard step and one thread each
    (0.80, 2.0 GB): OpenVINO already uses every core from one process, and each step process
    pays a start and a model load. `multiprocess` stays available for machines where that is
    not so, and `celery` for several machines.
    """
    return "in_process" if configured == "auto" else configured


def executor_threads(executor: str, workers: int) -> int:
    """Inference threads per shard step under `executor` (steps × threads ≤ cores)."""
    cores = os.cpu_count() or 1
    if executor == "in_process":
        return cores
    return max(1, cores // max(1, min(workers, cores)))


def run_config(
    executor: str,
    *,
    workers: int,
    verify_hashes: bool = False,
    shards: list[str] | None = None,
    scan: str | None = None,
    resource: dict[str, object] | None = None,
    start_method: str = "forkserver",
    skip_gates: list[str] | None = None,
) -> dict:
    """Run config of one `coderag_index` run.

    `shards` limits the steps to those shards of the run's partition range (the others in
    the range are left as they are); `scan` names the planner's walk of those shards
    (:mod:`coderag_assets.scans`) so the run does not walk the tree again; `verify_hashes`
    re-reads every file; `resource` is the `coderag` resource's config (root, data
    directory, model...) the run carries with it; `start_method` is how the multiprocess
    executor starts step processes (`forkserver` with the pipeline preloaded, or `spawn`);
    `skip_gates` names promotion gates that report but do not block this run.
    """
    # The console logger stays quiet: a failed run reaches the user as one line from the CLI
    # (`runs.run_shards`), and the run's event log (the UI's run page) keeps every event,
    # tracebacks included.
    config: dict = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if resource is not None:
        config["resources"] = {"coderag": resource}
    if executor == "in_process":
        config["execution"] = {"config": {"in_process": {}}}
    elif executor == "multiprocess":
        config["execution"] = {
            "config": {
                "multiprocess": {
                    "max_concurrent": max(1, min(workers, os.cpu_count() or 1)),
                    "start_method": (
                        {"forkserver": {"preload_modules": PRELOAD_MODULES}}
                        if start_method == "forkserver"
                        else {"spawn": {}}
                    ),
                }
            }
        }
    prepare: dict = {}
    if verify_hashes:
        prepare["verify_hashes"] = True
    if shards:
        prepare["shards"] = list(shards)
    if scan:
        prepare["scan"] = scan
    if prepare:
        config["ops"] = {"shard_assets": {"ops": {"prepare_shards": {"config": prepare}}}}
    if skip_gates:
        config.setdefault("ops", {})["search_index"] = {"config": {"skip_gates": list(skip_gates)}}
    return config


def prepare_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `prepare_shards` op config inside a run config made by :func:`run_config` ({}
    when it sets none): `shards`, `scan` and `verify_hashes`."""
    return dict(
        config.get("ops", {})
        .get("shard_assets", {})
        .get("ops", {})
        .get("prepare_shards", {})
        .get("config", {})
    )
