"""The instance storage (coderag_assets/instance_storage.py): Dagster's SQLite files, event
writes over kept connections, readable by Dagster's stock storage and by other processes."""

import os
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.sql import check_alembic_revision, get_alembic_config

from coderag_assets import instance_storage
from coderag_assets.instance_storage import CodeRagSqliteStorage, PooledSqliteEventLogStorage
from coderag_assets.settings import load_settings, prepare_dagster_env

LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c"])


@dg.asset(partitions_def=LETTERS)
def letters(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info(f"partition {context.partition_key}")
    return dg.MaterializeResult(metadata={"letter": context.partition_key})


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.delenv("CODERAG_INSTANCE_YAML", raising=False)
    monkeypatch.setenv("CODERAG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data"))
    prepare_dagster_env(load_settings(data_dir=tmp_path / "data"))
    with dg.DagsterInstance.from_config(str(tmp_path / "data")) as instance:
        yield instance


def stock_instance(data_dir, home) -> dg.DagsterInstance:
    """An instance on the same files through Dagster's own SQLite storage."""
    home.mkdir()
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {data_dir}\n")
    return dg.DagsterInstance.from_config(str(home))


def test_the_project_instance_uses_the_kept_connection_event_log(instance, tmp_path) -> None:
    assert instance.get_ref().storage_data.class_name == CodeRagSqliteStorage.__name__
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    result = dg.materialize([letters], partition_key="a", instance=instance)
    assert result.success
    # Dagster's own layout: the run's database and the cross-run index under history/runs/
    runs_dir = tmp_path / "data" / "history" / "runs"
    assert (runs_dir / f"{result.run_id}.db").is_file()
    assert (runs_dir / "index.db").is_file()
    # new runs' databases are copies of one made once per Dagster schema revision
    (template,) = runs_dir.glob(f"{instance_storage.RUN_TEMPLATE_PREFIX}*.sqlite")
    head = instance.event_log_storage.alembic_version()[1]
    assert template.name.endswith(f"{head}.sqlite")
    second = dg.materialize([letters], partition_key="b", instance=instance)
    with stock_instance(tmp_path / "data", tmp_path / "stock") as stock:
        config = get_alembic_config(sqlite_event_log.__file__)
        with stock.event_log_storage.run_connection(second.run_id) as conn:
            assert check_alembic_revision(config, conn) == (head, head)
        assert [e.message for e in stock.all_logs(second.run_id) if "partition" in e.message]


def test_what_it_writes_dagster_stock_storage_and_another_process_read(instance, tmp_path) -> None:
    for key in ("a", "b", "c", "a"):
        assert dg.materialize([letters], partition_key=key, instance=instance).success
    data_dir = tmp_path / "data"
    with stock_instance(data_dir, tmp_path / "stock") as stock:
        assert isinstance(stock.event_log_storage, SqliteEventLogStorage)
        assert not isinstance(stock.event_log_storage, PooledSqliteEventLogStorage)
        assert stock.get_materialized_partitions(dg.AssetKey("letters")) == {"a", "b", "c"}
        records = stock.fetch_materializations(dg.AssetKey("letters"), limit=10).records
        assert [r.partition_key for r in records] == ["a", "c", "b", "a"]
        run = stock.get_runs(limit=1)[0]
        logged = [e.user_message for e in stock.all_logs(run.run_id)]
        assert any("partition a" in message for message in logged)
    # A second process writes to the same databases while this one keeps its connections open.
    script = textwrap.dedent(
        f"""
        import dagster as dg
        from tests.test_instance_storage import letters
        with dg.DagsterInstance.from_config({str(data_dir)!r}) as other:
            assert dg.materialize([letters], partition_key="b", instance=other).success
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert dg.materialize([letters], partition_key="c", instance=instance).success
    records = instance.fetch_materializations(dg.AssetKey("letters"), limit=10).records
    assert [r.partition_key for r in records][:3] == ["c", "b", "a"]


def test_only_a_few_databases_stay_open(instance, monkeypatch) -> None:
    monkeypatch.setattr(instance_storage, "OPEN_EVENT_DATABASES", 2)
    storage = instance.event_log_storage
    run_ids = []
    for key in ("a", "b", "c"):
        result = dg.materialize([letters], partition_key=key, instance=instance)
        run_ids.append(result.run_id)
        assert len(storage._engines) <= 2
    assert run_ids[-1] in storage._engines
    assert run_ids[0] not in storage._engines
    # a closed database opens again when asked
    assert any("partition a" in (e.user_message or "") for e in instance.all_logs(run_ids[0]))
    instance.dispose()
    assert not storage._engines


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_watcher_of_the_run_sees_each_event_while_the_writer_keeps_its_connection(
    instance, tmp_path
) -> None:
    """The UI's live run page watches the run's database file through another instance: each
    event must reach it as it is written, not when the writing process closes its connection."""
    run = instance.create_run_for_job(
        job_def=dg.define_asset_job("letters_job").resolve(
            asset_graph=dg.Definitions(assets=[letters]).get_repository_def().asset_graph
        )
    )
    instance.report_engine_event("first", run)
    seen: list[str] = []
    with dg.DagsterInstance.from_config(str(tmp_path / "data")) as viewer:
        viewer.event_log_storage.watch(
            run.run_id, None, lambda entry, _cursor: seen.append(entry.message)
        )
        try:
            for message in ("second", "third"):
                instance.report_engine_event(message, run)
                assert wait_for(lambda m=message: m in seen), f"{message!r} not seen: {seen}"
        finally:
            viewer.event_log_storage.end_watch(run.run_id, seen.append)


def test_a_forked_child_opens_its_own_connections(instance) -> None:
    assert dg.materialize([letters], partition_key="a", instance=instance).success
    storage = instance.event_log_storage
    assert storage._engines
    pid = os.fork()
    if pid == 0:  # the child: no inherited engines, and it can write with its own
        code = 1
        try:
            if not storage._engines:
                result = dg.materialize([letters], partition_key="b", instance=instance)
                code = 0 if result.success else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage._engines  # the parent keeps its own
    assert instance.get_materialized_partitions(dg.AssetKey("letters")) >= {"a", "b"}
