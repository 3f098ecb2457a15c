"""The one Dagster resource: which root is indexed, where data lives, which model embeds."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from coderag_assets.embedding import EmbedderSpec
from coderag_assets.files import resolve_root
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore


class CodeRagResource(dg.ConfigurableResource):
    """Typed settings of one index; built from :class:`Settings` by the CLI and definitions."""

    root: str = ""
    data_dir: str
    model: str = "all-MiniLM-L6-v2"
    backend: str = "openvino"
    workers: int = 1
    max_file_bytes: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> CodeRagResource:
        return cls(
            root=str(settings.root or ""),
            data_dir=str(settings.data_dir),
            model=settings.model,
            backend=settings.backend,
            workers=settings.workers,
            max_file_bytes=settings.max_file_bytes,
        )

    def index_store(self) -> IndexStore:
        if not self.root:
            raise dg.Failure(
                "No repository to index: set CODERAG_ROOT (or run `coderag index PATH`)."
            )
        return IndexStore.for_root(Path(self.data_dir), resolve_root(self.root))

    def embedder_spec(self) -> EmbedderSpec:
        return EmbedderSpec(
            model=self.model, backend=self.backend, cache_dir=Path(self.data_dir) / "models"
        )
