"""Dagster event-log writes: Dagster's stock SQLite storage vs the project's
(`coderag_assets.instance_storage`), alternated in one process.

Each variant gets its own fresh instance directory. One "run" is a job whose op reports
`--shards` partitions of three assets (what `record_shards` reports for a cold index) and
logs a line per shard, so a run stores about as many events as a cold index of a small
repository with that many shards. Prints the wall seconds per run, the events stored per run
and milliseconds per event, median over `--runs` runs per variant, and the ratio.

    .venv/bin/python benchmarks/event_log.py --shards 16 --runs 5
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

STOCK_YAML = "storage:\n  sqlite:\n    base_dir: {base}\ntelemetry:\n  enabled: false\n"
POOLED_YAML = (
    "storage:\n  custom:\n    module: coderag_assets.instance_storage\n"
    "    class: CodeRagSqliteStorage\n    config:\n      base_dir: {base}\n"
    "telemetry:\n  enabled: false\n"
)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ASSETS = ("file_manifest", "code_chunks", "chunk_embeddings")


def build_job(shards: int) -> dg.JobDefinition:
    @dg.op
    def report_shards(context: dg.OpExecutionContext) -> None:
        for number in range(shards):
            shard = f"{number:x}"
            context.log.info(f"shard {shard}: done")
            for asset_name in ASSETS:
                context.log_event(
                    dg.AssetMaterialization(asset_name, partition=shard, metadata={"n": number})
                )

    @dg.job
    def events_job() -> None:
        report_shards()

    return events_job


def one_run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> tuple[float, int]:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, run_config=QUIET)
    wall = time.perf_counter() - started
    assert result.success
    return wall, len(instance.all_logs(result.run_id))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    job = build_job(args.shards)
    walls: dict[str, list[float]] = {"stock": [], "coderag": []}
    events: dict[str, int] = {}
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        instances = {}
        for name, template in (("stock", STOCK_YAML), ("coderag", POOLED_YAML)):
            home = Path(tmp) / name
            home.mkdir()
            (home / "dagster.yaml").write_text(template.format(base=home))
            instances[name] = dg.DagsterInstance.from_config(str(home))
            one_run(instances[name], job)  # warm-up: creates the databases
        for _ in range(args.runs):
            for name, instance in instances.items():
                wall, count = one_run(instance, job)
                walls[name].append(wall)
                events[name] = count
        for instance in instances.values():
            instance.dispose()
    print(f"load average at end: {os.getloadavg()}")
    base = statistics.median(walls["stock"])
    for name, runs in walls.items():
        median = statistics.median(runs)
        print(
            f"{name:8} median {median:.3f} s per run, {events[name]} events, "
            f"{1000 * median / events[name]:.2f} ms per event, {median / base:.2f}x stock; "
            f"all {[round(w, 3) for w in runs]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
