"""The scale-out path on loopback (scripts/cluster.sh, docs/scale-out.md).

A private PostgreSQL cluster and Redis on free ports, two dagster-celery workers, a Dagster
instance on Postgres (deploy/cluster/dagster.yaml), and the fixture repository indexed through
`CODERAG_EXECUTOR=celery`: the search results must equal a local in-process index of the same
tree, and the runs must be in the Postgres-backed instance under the job `coderag_index`.

Needs root (PostgreSQL administration through `pg_ctlcluster`/`pg_createcluster` and `runuser`),
the Debian packages `postgresql` and `redis-server` (.ci/run installs them), and the `cluster`
extra (dagster-postgres, dagster-celery[redis], psycopg2-binary). Skipped otherwise, with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import copy_fixture_repo, copy_models

PROJECT = Path(__file__).resolve().parents[1]
CLUSTER_SH = PROJECT / "scripts" / "cluster.sh"
VENV_BIN = Path(sys.executable).parent
JOB_NAME = "coderag_index"
QUERIES = [
    ("retry with backoff", "bm25"),
    ("retry with backoff", "hybrid"),
    ("cache eviction", "hybrid"),
    ("parse the router path", "hybrid"),
    ("slugify", "bm25"),
]


def _missing_requirements() -> str | None:
    for tool in ("pg_ctlcluster", "pg_createcluster", "redis-server", "redis-cli", "runuser"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (Debian packages postgresql and redis-server; .ci/run installs them)"
    if os.geteuid() != 0:
        return "PostgreSQL administration (pg_createcluster, runuser -u postgres) needs root"
    for module in ("dagster_celery", "dagster_postgres", "psycopg2", "redis"):
        if importlib.util.find_spec(module) is None:
            return f"the cluster extra is not installed (no {module}): pip install -e '.[cluster]'"
    if _postgres_version() is None:
        return "no PostgreSQL server version under /usr/lib/postgresql"
    return None


def _postgres_version() -> str | None:
    versions = sorted(
        (
            p.name
            for p in Path("/usr/lib/postgresql").glob("*")
            if (p / "bin" / "postgres").exists()
        ),
        key=lambda name: int(name) if name.isdigit() else 0,
    )
    return versions[-1] if versions else None


_REASON = _missing_requirements()
requires_cluster = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def test_executor_and_instance_settings_are_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coderag_assets.settings import SettingsError, load_settings, prepare_dagster_env

    monkeypatch.setenv("CODERAG_EXECUTOR", "dask")
    with pytest.raises(
        SettingsError, match="CODERAG_EXECUTOR='dask'.*in_process, multiprocess, celery"
    ):
        load_settings(data_dir=tmp_path / "data")
    monkeypatch.setenv("CODERAG_EXECUTOR", "Celery")
    assert load_settings(data_dir=tmp_path / "data").executor == "celery"

    monkeypatch.setenv("CODERAG_INSTANCE_YAML", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match="CODERAG_INSTANCE_YAML=.*missing.yaml.*is not a file"):
        load_settings(data_dir=tmp_path / "data")

    # The named instance config is what lands in DAGSTER_HOME (the data directory).
    cluster_yaml = PROJECT / "deploy" / "cluster" / "dagster.yaml"
    monkeypatch.setenv("CODERAG_INSTANCE_YAML", str(cluster_yaml))
    monkeypatch.setenv("CODERAG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data"))
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.instance_yaml == cluster_yaml
    prepare_dagster_env(settings)
    assert (tmp_path / "data" / "dagster.yaml").read_text() == cluster_yaml.read_text()
    assert "scheme: postgresql+psycopg2" in cluster_yaml.read_text()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    env: dict[str, str]
    dir: Path
    data: Path
    pg_port: int
    redis_port: int

    def sh(self, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(CLUSTER_SH), *args],
            env={**self.env, **env},
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
        )

    def pg_connect(self):
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user=self.env["CODERAG_PG_USER"],
            password=self.env["CODERAG_PG_PASSWORD"],
            dbname=self.env["CODERAG_PG_DB"],
            connect_timeout=5,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    base = tmp_path_factory.mktemp("cluster")
    pg_port, redis_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CODERAG_", "DAGSTER_"))
    }
    env.update(
        CODERAG_VENV=str(VENV_BIN.parent),
        CODERAG_CLUSTER_DIR=str(base / "cluster"),
        CODERAG_DATA=str(base / "data"),
        CODERAG_PG_CLUSTER=f"{_postgres_version()}/coderag_test_{pg_port}",
        CODERAG_PG_PORT=str(pg_port),
        CODERAG_PG_USER="dagster",
        CODERAG_PG_PASSWORD="dagster",
        CODERAG_PG_DB="coderag",
        CODERAG_REDIS_PORT=str(redis_port),
        CODERAG_CLUSTER_WORKERS="2",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    handle = Cluster(env, base / "cluster", base / "data", pg_port, redis_port)
    started = time.monotonic()
    up = handle.sh("up")
    if up.returncode != 0:
        handle.sh("destroy", timeout=120)
        pytest.fail(f"cluster.sh up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    print(f"cluster up in {time.monotonic() - started:.1f}s")
    try:
        yield handle
    finally:
        down = handle.sh("destroy", timeout=120)
        assert down.returncode == 0, f"cluster.sh destroy failed:\n{down.stdout}\n{down.stderr}"


@requires_cluster
def test_loopback_services_answer(cluster: Cluster) -> None:
    status = cluster.sh("status", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "2 answering" in status.stdout

    # The instance in DAGSTER_HOME is the Postgres one, and its schema exists.
    assert "postgres:" in (cluster.data / "dagster.yaml").read_text()
    with contextlib.closing(cluster.pg_connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'")
        assert cursor.fetchone()[0] == 1

    import redis
    from celery import Celery

    assert redis.Redis(host="127.0.0.1", port=cluster.redis_port).ping()
    app = Celery(
        broker=cluster.env.get("CODERAG_CELERY_BROKER")
        or f"redis://127.0.0.1:{cluster.redis_port}/0"
    )
    replies = app.control.ping(timeout=2.0)
    names = sorted(name.split("@")[0] for reply in replies for name in reply)
    assert names == ["w1", "w2"], replies

    # Every service listens on loopback only.
    import psutil

    listening = [
        conn.laddr
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
        and conn.laddr.port in (cluster.pg_port, cluster.redis_port)
    ]
    assert {address.port for address in listening} == {cluster.pg_port, cluster.redis_port}
    assert {address.ip for address in listening} == {"127.0.0.1"}, listening


@requires_cluster
def test_index_names_the_unreachable_service(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.sh(
        "index",
        str(tmp_path),
        timeout=60,
        CODERAG_REDIS_PORT=str(_free_port()),
        CODERAG_PG_CLUSTER=f"{_postgres_version()}/coderag_absent_{cluster.pg_port}",
        CODERAG_PG_PORT=str(_free_port()),
    )
    assert result.returncode == 2
    assert "Redis (Celery broker" in result.stderr and "is not reachable" in result.stderr
    assert "PostgreSQL (Dagster instance storage) is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def _search(env: dict[str, str], root: Path, query: str, mode: str) -> list[dict]:
    result = subprocess.run(
        [str(VENV_BIN / "coderag"), "search", query, "--mode", mode, "--json", "--root", str(root)],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@requires_cluster
def test_celery_index_equals_local_index(cluster: Cluster, tmp_path: Path, data_dir: Path) -> None:
    repo = copy_fixture_repo(tmp_path / "repo")

    # Local reference: the same tree indexed in-process into its own data directory. The
    # converted model is reused from the session's data directory when another test made it.
    local_data = tmp_path / "local-data"
    local_data.mkdir()
    if (data_dir / "models").is_dir():
        copy_models(data_dir / "models", local_data / "models")
    local_env = {key: value for key, value in cluster.env.items() if not key.startswith("CODERAG_")}
    local_env.update(CODERAG_DATA=str(local_data), CODERAG_EXECUTOR="in_process")
    started = time.monotonic()
    local = subprocess.run(
        [str(VENV_BIN / "coderag"), "index", str(repo), "--quiet", "--json"],
        env=local_env,
        capture_output=True,
        check=False,
        text=True,
        timeout=240,
    )
    assert local.returncode == 0, local.stderr
    print(f"local in_process index: {time.monotonic() - started:.1f}s")

    # Every worker needs the same model files under CODERAG_DATA/models (docs/scale-out.md).
    if (local_data / "models").is_dir() and not (cluster.data / "models").exists():
        copy_models(local_data / "models", cluster.data / "models")
    started = time.monotonic()
    remote = cluster.sh("index", str(repo), "--quiet", "--json", timeout=300)
    assert remote.returncode == 0, remote.stdout + remote.stderr
    print(f"celery index (2 workers): {time.monotonic() - started:.1f}s")
    assert json.loads(remote.stdout)["chunks"] == json.loads(local.stdout)["chunks"]

    cluster_env = {**cluster.env, "CODERAG_DATA": str(cluster.data)}
    for query, mode in QUERIES:
        expected = _search(local_env, repo, query, mode)
        actual = _search(cluster_env, repo, query, mode)
        assert expected, (query, mode)
        keys = ("path", "start_line", "end_line", "symbol", "kind", "language", "content")
        assert [[hit[k] for k in keys] for hit in actual] == [
            [hit[k] for k in keys] for hit in expected
        ], (query, mode)
        assert [hit["score"] for hit in actual] == pytest.approx(
            [hit["score"] for hit in expected], abs=1e-4
        ), (query, mode)

    # The runs are in the Postgres-backed instance, under the job name from definitions.py.
    with contextlib.closing(cluster.pg_connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pipeline_name, status FROM runs")
        runs = cursor.fetchall()
    assert runs and all(name == JOB_NAME for name, _ in runs), runs
    assert ("coderag_index", "SUCCESS") in runs, runs

    # The shard steps ran inside the Celery workers, and both workers took some.
    for worker in ("w1", "w2"):
        log = (cluster.dir / f"{worker}.log").read_text()
        assert "execute_plan" in log and "succeeded" in log, f"{worker} ran no step:\n{log[-2000:]}"
