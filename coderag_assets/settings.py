"""One typed settings object, read from environment variables and validated early.

Every entry point (CLI, Dagster definitions, MCP server, tests) builds a :class:`Settings`
through :func:`load_settings`, so they all resolve the same data directory and index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from coderag_assets.embedding import DEFAULT_MODEL
from coderag_assets.model_cache import MODELS_DIR
from coderag_assets.rerank import DEFAULT_RERANKER

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DEFAULT_SHARD_COUNT = 16
SUPPORTED_SHARD_COUNTS = (1, 4, 16, 64, 256)
#: Chunks a shard should hold at most on average: a new index gets the smallest supported
#: shard count that keeps under it (`shard_count_for`), and `coderag index` suggests more
#: shards when an index outgrows its count. A one-file edit rebuilds its shard's files and
#: segment, so its cost grows with the shard: at 400k chunks, 16 shards (25k a shard) took
#: 6.9-8.2 s per edit, 64 shards (6k) 4.2-4.8 s. Every shard also costs a step and an open
#: segment: at 40k chunks 64 shards instead of 16 made a cold index 32 s → 44 s and a cold
#: search 0.67 s → 0.86 s (benchmarks/results/2026-12-02/summary.md, sessions 4 and 5).
CHUNKS_PER_SHARD_ADVISED = 16_384
#: Below 16 shards (1 and 4, for new small indexes only) a shard holds at most this many
#: chunks on average. Each shard is a Dagster step with its events, three Parquet files and a
#: search segment: a first index of requests (740 chunks) spent more on that per-shard
#: bookkeeping with 16 shards than on embedding (docs/indexing-speed.md), while a one-file
#: edit of a shard this small rebuilds it in a fraction of a second.
CHUNKS_PER_SMALL_SHARD = 2_048
SMALL_SHARD_COUNTS = (1, 4)
#: Where `Settings.shard_count` came from (`Settings.shards_from`).
SHARDS_SET = "set"  # CODERAG_SHARDS, or a Settings built with an explicit count
SHARDS_RECORDED = "index"  # the count the root's existing index was built with
SHARDS_UNSIZED = "default"  # no index yet: the first `coderag index`/`watch` sizes it
SHARDS_SIZED = "size"  # chosen from the tree's size for a new index (`shard_count_for`)
DEFAULT_MAX_FILE_BYTES = 1_000_000
EXECUTORS = ("auto", "in_process", "multiprocess", "celery")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable and the accepted values."""


def default_data_dir() -> Path:
    """`$CODERAG_DATA`, else the project's `data/` in a source checkout, else a user data dir."""
    env_value = os.environ.get("CODERAG_DATA")
    if env_value:
        return Path(env_value).expanduser().resolve()
    if (PROJECT_DIR / "pyproject.toml").is_file() and (PROJECT_DIR / "dagster.yaml").is_file():
        return PROJECT_DIR / "data"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "coderag"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not an integer") from exc


def _bool_env(name: str) -> bool:
    value = (os.environ.get(name) or "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} must be 1/true/yes/on or 0/false/no/off")


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline and the query side need to agree on.

    `root` is the repository being indexed (None until a command names one).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    root: Path | None = None
    shard_count: int = DEFAULT_SHARD_COUNT
    model: str = DEFAULT_MODEL
    backend: str = "openvino"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    executor: str = "auto"
    instance_yaml: Path | None = None
    inference_threads: int = 0  # per shard step; 0 = cores // workers
    inference_streams: int = 1  # batches a shard step runs at once (at most its threads)
    rerank: bool = False  # re-score the top results with the cross-encoder (`--rerank`)
    reranker: str = DEFAULT_RERANKER  # shipped name or a local model directory
    shards_from: str = SHARDS_SET  # where `shard_count` came from (SHARDS_* above)

    def __post_init__(self) -> None:
        if self.shard_count not in SUPPORTED_SHARD_COUNTS:
            raise SettingsError(
                f"CODERAG_SHARDS={self.shard_count} is not supported; use one of "
                f"{', '.join(map(str, SUPPORTED_SHARD_COUNTS))}"
            )
        from coderag_assets.embedding import BACKENDS

        if self.backend not in BACKENDS:
            raise SettingsError(
                f"CODERAG_BACKEND={self.backend!r} is not supported; use one of {', '.join(BACKENDS)}"
            )
        if self.workers < 1:
            raise SettingsError(f"CODERAG_WORKERS={self.workers} must be at least 1")
        if self.max_file_bytes < 1:
            raise SettingsError(f"CODERAG_MAX_FILE_BYTES={self.max_file_bytes} must be positive")
        if self.inference_threads < 0:
            raise SettingsError(
                f"CODERAG_INFERENCE_THREADS={self.inference_threads} must be 0 (auto) or more"
            )
        if self.inference_streams < 1:
            raise SettingsError(
                f"CODERAG_INFERENCE_STREAMS={self.inference_streams} must be at least 1"
            )
        if self.executor not in EXECUTORS:
            raise SettingsError(
                f"CODERAG_EXECUTOR={self.executor!r} is not supported; use one of "
                f"{', '.join(EXECUTORS)}"
            )
        if self.instance_yaml is not None and not Path(self.instance_yaml).is_file():
            raise SettingsError(
                f"CODERAG_INSTANCE_YAML={str(self.instance_yaml)!r} is not a file; name the "
                "Dagster instance configuration (a dagster.yaml) to use"
            )

    def with_root(self, root: Path) -> Settings:
        """These settings for `root`. Unless the shard count was set, it is the one `root`'s
        index was built with (none yet: the default, until the first update sizes it)."""
        settings = replace(self, root=root)
        if self.shards_from in (SHARDS_SET, SHARDS_SIZED):
            return settings
        recorded = recorded_shard_count(self.data_dir, root)
        if recorded not in SUPPORTED_SHARD_COUNTS:  # none, or not one this version builds
            return replace(settings, shard_count=DEFAULT_SHARD_COUNT, shards_from=SHARDS_UNSIZED)
        return replace(settings, shard_count=recorded, shards_from=SHARDS_RECORDED)

    @property
    def shards_unsized(self) -> bool:
        """True when the shard count is still to be chosen from the tree (a new index)."""
        return self.shards_from == SHARDS_UNSIZED

    def sized(self, estimated_chunks: int) -> Settings:
        """These settings with the shard count `shard_count_for` gives a tree of about
        `estimated_chunks` (only while `shards_unsized`: a set or recorded count stays)."""
        if not self.shards_unsized:
            return self
        return replace(
            self, shard_count=shard_count_for(estimated_chunks), shards_from=SHARDS_SIZED
        )

    @property
    def models_dir(self) -> Path:
        return self.data_dir / MODELS_DIR


def load_settings(**overrides: object) -> Settings:
    """Settings from `CODERAG_*` environment variables, then explicit overrides (CLI flags)."""
    values: dict[str, object] = {
        "shard_count": _int_env("CODERAG_SHARDS", DEFAULT_SHARD_COUNT),
        "shards_from": SHARDS_SET if os.environ.get("CODERAG_SHARDS") else SHARDS_UNSIZED,
        "model": os.environ.get("CODERAG_MODEL") or DEFAULT_MODEL,
        "backend": os.environ.get("CODERAG_BACKEND") or "openvino",
        "workers": _int_env("CODERAG_WORKERS", os.cpu_count() or 1),
        "max_file_bytes": _int_env("CODERAG_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
        "executor": (os.environ.get("CODERAG_EXECUTOR") or "auto").strip().lower(),
        "inference_threads": _int_env("CODERAG_INFERENCE_THREADS", 0),
        "inference_streams": _int_env("CODERAG_INFERENCE_STREAMS", 1),
        "rerank": _bool_env("CODERAG_RERANK"),
        "reranker": os.environ.get("CODERAG_RERANKER") or DEFAULT_RERANKER,
    }
    instance_env = os.environ.get("CODERAG_INSTANCE_YAML")
    if instance_env:
        values["instance_yaml"] = Path(instance_env).expanduser().resolve()
    root_env = os.environ.get("CODERAG_ROOT")
    if root_env:
        values["root"] = Path(root_env).expanduser().resolve()
    values.update({key: value for key, value in overrides.items() if value is not None})
    settings = Settings(**values)  # type: ignore[arg-type]
    return settings.with_root(settings.root) if settings.root is not None else settings


def recorded_shard_count(data_dir: Path, root: Path) -> int | None:
    """The shard count `root`'s index under `data_dir` was built with; None when it has no
    index (or an unreadable record, which the next update rewrites)."""
    from coderag_assets.store import IndexStore  # the store is not needed to read settings

    return IndexStore.for_root(data_dir, root).recorded_shard_count()


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the `CODERAG_*` variables :func:`load_settings` reads back.

    Dagster rebuilds the definitions in every process that runs a step (multiprocess,
    Celery): exporting these first makes all of them agree with the process that started
    the run.
    """
    env = {
        "CODERAG_DATA": str(settings.data_dir),
        "CODERAG_SHARDS": str(settings.shard_count),
        "CODERAG_MODEL": settings.model,
        "CODERAG_BACKEND": settings.backend,
        "CODERAG_WORKERS": str(settings.workers),
        "CODERAG_MAX_FILE_BYTES": str(settings.max_file_bytes),
        "CODERAG_EXECUTOR": settings.executor,
        "CODERAG_INFERENCE_THREADS": str(settings.inference_threads),
        "CODERAG_INFERENCE_STREAMS": str(settings.inference_streams),
        "CODERAG_RERANK": "1" if settings.rerank else "0",
        "CODERAG_RERANKER": settings.reranker,
    }
    if settings.root is not None:
        env["CODERAG_ROOT"] = str(settings.root)
    if settings.instance_yaml is not None:
        env["CODERAG_INSTANCE_YAML"] = str(settings.instance_yaml)
    return env


def prepare_dagster_env(settings: Settings) -> None:
    """Point every Dagster process at the same instance: DAGSTER_HOME = the data directory.

    The instance configuration is `settings.instance_yaml` (`CODERAG_INSTANCE_YAML`, e.g.
    `deploy/cluster/dagster.yaml` for Postgres) or else the project's top-level `dagster.yaml`,
    copied into the data directory because Dagster reads it only from DAGSTER_HOME, so run
    storage, compute logs and the index data all live under one directory.
    """
    home = settings.data_dir
    home.mkdir(parents=True, exist_ok=True)
    project_yaml = settings.instance_yaml or PROJECT_DIR / "dagster.yaml"
    instance_yaml = project_yaml.read_text() if project_yaml.is_file() else MINIMAL_INSTANCE_YAML
    _write_if_changed(home / "dagster.yaml", instance_yaml)
    _write_if_changed(home / "workspace.yaml", WORKSPACE_YAML)
    os.environ["CODERAG_DATA"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home)


MINIMAL_INSTANCE_YAML = """storage:
  custom:
    module: coderag_assets.instance_storage
    class: CodeRagSqliteStorage
    config:
      base_dir:
        env: CODERAG_DATA
concurrency:
  pools:
    granularity: op
    default_limit: 1
telemetry:
  enabled: false
"""
WORKSPACE_YAML = """load_from:
  - python_module:
      module_name: coderag_assets.definitions
      location_name: coderag
"""


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def shard_count_for(chunks: int) -> int:
    """The smallest supported shard count whose shards hold at most
    `CHUNKS_PER_SHARD_ADVISED` chunks on average for an index of `chunks`
    (`CHUNKS_PER_SMALL_SHARD` for the small counts 1 and 4; the largest count beyond that)."""
    return next(
        (count for count in SUPPORTED_SHARD_COUNTS if chunks <= count * _chunks_per_shard(count)),
        SUPPORTED_SHARD_COUNTS[-1],
    )


def _chunks_per_shard(shard_count: int) -> int:
    return CHUNKS_PER_SMALL_SHARD if shard_count in SMALL_SHARD_COUNTS else CHUNKS_PER_SHARD_ADVISED


def shard_count_advice(chunks: int, shard_count: int) -> str | None:
    """A one-line suggestion to use more shards when the index's shards hold more than
    `CHUNKS_PER_SHARD_ADVISED` chunks on average; None when they do not, or when no larger
    shard count is supported."""
    advised = shard_count_for(chunks)
    if advised <= shard_count:
        return None
    return (
        f"{chunks:,} chunks in {shard_count} shards ({chunks // shard_count:,} a shard): "
        f"CODERAG_SHARDS={advised} makes one-file updates faster and indexing lighter "
        "(changing it rebuilds the shard files once; vectors are reused)"
    )
