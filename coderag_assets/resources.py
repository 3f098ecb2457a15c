"""The one Dagster resource: which root is indexed, where data lives, which model embeds."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg

from coderag_assets.embedding import DEFAULT_MODEL, EmbedderSpec, bulk_streams
from coderag_assets.files import resolve_root
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore


class CodeRagResource(dg.ConfigurableResource):
    """Typed settings of one index; built from :class:`Settings` by the CLI and definitions."""

    root: str = ""
    data_dir: str
    model: str = DEFAULT_MODEL
    backend: str = "openvino"
    shard_count: int = 16
    workers: int = 1
    """Shard steps expected to run at once (the multiprocess executor's max_concurrent)."""
    inference_threads: int = 0
    """Inference threads per shard step; 0 = the cores left to each of `workers` steps."""
    inference_streams: int = 1
    """Batches a shard step runs at once, each on its share of the threads (at most them)."""
    max_file_bytes: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> CodeRagResource:
        return cls(
            root=str(settings.root or ""),
            data_dir=str(settings.data_dir),
            model=settings.model,
            backend=settings.backend,
            shard_count=settings.shard_count,
            workers=settings.workers,
            inference_threads=settings.inference_threads,
            inference_streams=settings.inference_streams,
            max_file_bytes=settings.max_file_bytes,
        )

    def index_store(self) -> IndexStore:
        if not self.root:
            raise dg.Failure(
                "No repository to index: set CODERAG_ROOT (or run `coderag index PATH`)."
            )
        return IndexStore.for_root(Path(self.data_dir), resolve_root(self.root))

    def as_run_config(self) -> dict[str, object]:
        """This resource as run config (`resources.coderag.config`): a run carries its root and
        settings to every process that executes its steps, Celery workers on other machines
        included, instead of relying on their environment."""
        return {"config": {name: getattr(self, name) for name in type(self).model_fields}}

    def step_inference_threads(self) -> int:
        """Threads one shard step embeds with, so that steps × threads ≤ cores."""
        if self.inference_threads > 0:
            return self.inference_threads
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def embedder_spec(self) -> EmbedderSpec:
        return EmbedderSpec(
            model=self.model, backend=self.backend, cache_dir=Path(self.data_dir) / "models"
        )

    def step_embedder_spec(self, threads: int | None = None) -> EmbedderSpec:
        """What a shard step embeds with: `threads` (default :meth:`step_inference_threads`)
        on `inference_streams` streams, as many as fit in them (`bulk_streams`)."""
        threads = threads or self.step_inference_threads()
        streams = bulk_streams(threads, self.inference_streams)
        return replace(self.embedder_spec(), threads=threads, streams=streams)
