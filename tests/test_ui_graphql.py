"""The Dagster UI drives the index: every launch path publishes, re-executes and gates the same
way. Through Dagster's real GraphQL API (`dagster-graphql`'s client) against `coderag ui`
(webserver + daemon, the real instance) on a copy of the fixture repository.

The runs are ordered (one module-scoped UI, one root): the CLI index, re-execution of a CLI
run, a golden-query regression and a misconfigured golden file blocking promotion (then
re-executed from failure once fixed), a failed shard, a partition backfill and "Materialize
all" publishing through the daemon, and finally SIGTERM stopping the whole `dagster dev` tree.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderag_assets import indexing
from coderag_assets.gates import GOLDEN_FILE
from coderag_assets.partitions import shard_of
from coderag_assets.query import QueryService, index_status
from coderag_assets.runs import get_instance, run_index
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from tests.conftest import copy_fixture_repo

UI_START_S = 180
RUN_WAIT_S = 240
BACKFILL_WAIT_S = 300  # the backfill daemon ticks every 30 s, the automation sensor every 5 s


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Ui:
    def __init__(self, root: Path, data_dir: Path, process: subprocess.Popen, port: int):
        from dagster_graphql import DagsterGraphQLClient

        self.root, self.data_dir, self.process, self.port = root, data_dir, process, port
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
        self.settings = load_settings(data_dir=data_dir, workers=1).with_root(root)
        self.store = IndexStore.for_root(data_dir, root)

    def query(self, text: str, **variables) -> dict:
        return self.client._execute(text, variables)

    def run_status(self, run_id: str) -> str:
        result = self.query(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
        )
        return result["runOrError"]["status"]

    def wait_run(self, run_id: str, limit_s: float = RUN_WAIT_S) -> str:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {limit_s} s")

    def reexecute(self, run_id: str, strategy: str) -> str:
        result = self.query(
            """mutation($p: String!, $s: ReexecutionStrategy!) {
              launchPipelineReexecution(reexecutionParams: {parentRunId: $p, strategy: $s}) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message }
              }
            }""",
            p=run_id,
            s=strategy,
        )["launchPipelineReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def job_run_ids(self) -> list[str]:
        result = self.query(
            """query($sel: PipelineSelector!) {
              pipelineOrError(params: $sel) { ... on Pipeline { runs(limit: 50) { runId } } }
            }""",
            sel={
                "repositoryLocationName": "coderag",
                "repositoryName": "__repository__",
                "pipelineName": "coderag_index",
            },
        )
        return [run["runId"] for run in result["pipelineOrError"]["runs"]]

    def check_executions(self, check: str) -> list[dict]:
        result = self.query(
            """query($key: AssetKeyInput!, $name: String!) {
              assetCheckExecutions(assetKey: $key, checkName: $name, limit: 5) {
                runId status evaluation { success description }
              }
            }""",
            key={"path": ["search_index"]},
            name=check,
        )
        return result["assetCheckExecutions"]

    def asset_job_runs(self) -> list[str]:
        result = self.query(
            """{ runsOrError(filter: {pipelineName: "__ASSET_JOB"}) {
                ... on Runs { results { runId } } } }"""
        )
        return [run["runId"] for run in result["runsOrError"]["results"]]

    def version(self) -> int | None:
        return index_status(self.store)["version"]

    def bm25_paths(self, text: str) -> list[str]:
        service = QueryService(self.store, self.settings)
        try:
            return [result.path for result in service.search(text, mode="bm25")]
        finally:
            service.close()

    def wait_version_after(self, version: int | None, limit_s: float = BACKFILL_WAIT_S) -> int:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            current = self.version()
            if current is not None and current != version:
                return current
            time.sleep(2)
        raise AssertionError(f"no version after {version} within {limit_s} s")

    def backfill(self, asset_keys: list[str], partitions: list[str] | None) -> str:
        params: dict = {"assetSelection": [{"path": [key]} for key in asset_keys]}
        if partitions is None:
            params["allPartitions"] = True
        else:
            params["partitionNames"] = partitions
        result = self.query(
            """mutation($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message }
              }
            }""",
            params=params,
        )["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]


def _cli_index(ui: Ui, **options):
    return run_index(ui.settings, instance=get_instance(ui.settings), **options)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    root = copy_fixture_repo(tmp_path_factory.mktemp("ui") / "repo").resolve()
    settings = load_settings(data_dir=data_dir, workers=1).with_root(root)
    first = run_index(settings, instance=get_instance(settings))
    assert first.success, first.error
    port = _free_port()
    env = {**os.environ, "CODERAG_DATA": str(data_dir), "CODERAG_EXECUTOR": "in_process"}
    log = (tmp_path_factory.mktemp("ui-log") / "ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "coderag_assets.cli", "ui", str(root), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    handle = Ui(root, data_dir, process, port)
    deadline = time.monotonic() + UI_START_S
    while True:
        try:
            handle.query("{ version }")
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(1)
    handle.first_run_id = first.run_id
    handle.log_path = Path(log.name)
    yield handle
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    log.close()


def test_ui_starts_without_misleading_warnings(ui: Ui) -> None:
    text = ui.log_path.read_text()
    assert "SupersessionWarning" not in text
    assert "Found a dagster instance configuration value" not in text


def test_a_cli_run_is_on_the_job_page_and_re_executes(ui: Ui) -> None:
    assert ui.first_run_id in ui.job_run_ids()
    child = ui.reexecute(ui.first_run_id, "ALL_STEPS")
    assert ui.wait_run(child) == "SUCCESS"
    assert child in ui.job_run_ids()
    # The re-executed run published again, with every gate evaluated on its candidate.
    assert index_status(ui.store)["version"] is not None
    executions = ui.check_executions("every_chunk_has_vector")
    assert executions[0]["runId"] == child and executions[0]["status"] == "SUCCEEDED"


def test_a_golden_regression_keeps_the_old_version_and_is_reported(ui: Ui) -> None:
    golden = ui.root / GOLDEN_FILE
    golden.parent.mkdir(exist_ok=True)
    golden.write_text(
        json.dumps(
            {
                "query": "sleeping exponentially longer between failures",
                "path": "pyutils/retry.py",
                "symbol": "retry_with_backoff",
                "rank": 1,
                "mode": "bm25",
            }
        )
        + "\n"
    )
    passing = _cli_index(ui, full=True)
    assert passing.success, passing.error
    assert passing.gates["golden_queries"]["passed"] is True
    live = ui.version()
    retry = ui.root / "pyutils" / "retry.py"
    original = retry.read_text()
    body = original[original.index("def retry_with_backoff") : original.index("def parse_duration")]
    retry.write_text(
        original.replace(body, "def retry_with_backoff(operation):\n    return operation()\n\n\n")
    )
    blocked = _cli_index(ui)
    assert not blocked.success
    assert "golden_queries" in blocked.error and "regressed" in blocked.error
    assert f"version {live} stays live" in blocked.error
    assert ui.version() == live
    assert blocked.gates["golden_queries"]["state"] == "failed"
    executions = ui.check_executions("golden_queries")
    assert executions[0]["runId"] == blocked.run_id
    assert executions[0]["evaluation"]["success"] is False
    assert "regressed" in executions[0]["evaluation"]["description"]
    # Overridden for one run: published, and the gate's failure is still recorded.
    overridden = _cli_index(ui, skip_gates=["golden_queries"])
    assert overridden.success, overridden.error
    assert overridden.gates["golden_queries"]["state"] == "overridden"
    assert ui.version() != live
    retry.write_text(original)
    golden.unlink()
    assert _cli_index(ui).success


def test_a_misconfigured_golden_file_blocks_then_re_executes_from_failure(ui: Ui) -> None:
    golden = ui.root / GOLDEN_FILE
    golden.parent.mkdir(exist_ok=True)
    golden.write_text(
        '{"query": "lru cache", "path": "pyutils/cache.py", "rank": 2}\n'
        '{"query": "slug", "path": "lib/missing.rb", "rank": 1}\n'
    )
    (ui.root / "pyutils" / "extra.py").write_text("def from_failure_marker():\n    return 7\n")
    live = ui.version()
    failed = _cli_index(ui)
    assert not failed.success
    assert "golden_queries misconfigured" in failed.error
    assert f"{golden}:2: unknown path 'lib/missing.rb'" in failed.error
    assert ui.version() == live
    assert ui.run_status(failed.run_id) == "FAILURE"
    golden.write_text('{"query": "lru cache", "path": "pyutils/cache.py", "rank": 5}\n')
    child = ui.reexecute(failed.run_id, "FROM_FAILURE")
    assert ui.wait_run(child) == "SUCCESS"
    assert child in ui.job_run_ids()
    assert ui.version() != live
    assert "pyutils/extra.py" in ui.bm25_paths("from_failure_marker")
    golden.unlink()


def test_a_failed_shard_leaves_the_finished_shards_materialized(ui: Ui, monkeypatch) -> None:
    import dagster as dg

    edits = {"pyutils/retry.py": "tag_a", "engine/src/matrix.rs": "tag_b", "lib/slugify.rb": "c"}
    shards = {shard_of(path, ui.settings.shard_count) for path in edits}
    assert len(shards) >= 2, "the fixture paths must fall in different shards"
    for path in edits:
        with (ui.root / path).open("a") as handle:
            handle.write("\n")
    failing = shard_of("pyutils/retry.py", ui.settings.shard_count)
    real = indexing.embed_shard

    def embed_or_fail(store, prepared, spec, *, run_id):
        if prepared.shard == failing:
            raise RuntimeError(f"simulated failure in shard {failing}")
        return real(store, prepared, spec, run_id=run_id)

    monkeypatch.setattr(indexing, "embed_shard", embed_or_fail)
    live = ui.version()
    summary = _cli_index(ui)
    assert not summary.success and f"simulated failure in shard {failing}" in summary.error
    assert ui.version() == live
    instance = get_instance(ui.settings)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("chunk_embeddings")), limit=100
    ).records
    in_run = {r.partition_key for r in records if r.run_id == summary.run_id}
    assert shards <= set(summary.shards)
    assert in_run == set(summary.shards) - {failing}
    one = next(r for r in records if r.run_id == summary.run_id)
    assert "embedded" in one.asset_materialization.metadata
    statuses = ui.query(
        """{ assetNodeOrError(assetKey: {path: ["chunk_embeddings"]}) {
          ... on AssetNode { assetPartitionStatuses {
            ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }"""
    )["assetNodeOrError"]["assetPartitionStatuses"]
    assert failing in statuses["failedPartitions"]
    assert not (shards - {failing}) & set(statuses["failedPartitions"])
    monkeypatch.undo()
    again = _cli_index(ui)
    assert again.success, again.error
    assert again.shards == [failing]  # the finished shards only need the publish
    assert ui.version() != live


def test_a_partition_backfill_publishes_a_version_search_serves(ui: Ui) -> None:
    path = "pyutils/cache.py"
    with (ui.root / path).open("a") as handle:
        handle.write("\n\ndef backfilled_marker_function():\n    return 'backfill'\n")
    shard = shard_of(path, ui.settings.shard_count)
    # Runs that published themselves (CLI, re-executions) gave the automation nothing to do.
    assert ui.asset_job_runs() == []
    live = ui.version()
    ui.backfill(["file_manifest", "code_chunks", "chunk_embeddings"], [shard])
    ui.wait_version_after(live)
    assert path in ui.bm25_paths("backfilled_marker_function")


def test_materialize_all_publishes_a_version_search_serves(ui: Ui) -> None:
    path = "lib/slugify.rb"
    with (ui.root / path).open("a") as handle:
        handle.write("\n# materialize_all_marker\n")
    live = ui.version()
    ui.backfill(
        ["file_manifest", "code_chunks", "chunk_embeddings", "search_index", "bm25_index"], None
    )
    ui.wait_version_after(live)
    deadline = time.monotonic() + BACKFILL_WAIT_S
    while path not in ui.bm25_paths("materialize_all_marker"):
        assert time.monotonic() < deadline, "the edit never became searchable"
        time.sleep(2)


def test_sigterm_stops_the_whole_dagster_dev_tree(ui: Ui) -> None:
    ui.process.send_signal(signal.SIGTERM)
    ui.process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ui.port)) != 0:
                break
        assert time.monotonic() < deadline, "the webserver still serves after SIGTERM"
        time.sleep(0.5)
