"""The query side shared by the CLI and the MCP server: a searcher with a warm query embedder."""

from __future__ import annotations

import time

from pydantic import Field

from coderag_assets.embedding import Embedder, EmbedderSpec, load_embedder
from coderag_assets.freshness import index_freshness
from coderag_assets.records import Record
from coderag_assets.rerank import Reranker, RerankerSpec, load_reranker
from coderag_assets.search import IndexReader, Mode, SearchResult
from coderag_assets.settings import Settings
from coderag_assets.store import IndexStore, connect_index, read_meta


class QueryService:
    """Answers searches from the latest published index of one root.

    The query embedder is loaded lazily (BM25-only queries never load it) with the model
    and backend recorded in the index, so queries and chunks are embedded the same way. The
    reranker is loaded on the first search that asks for it (``rerank``, default
    ``settings.rerank``). `one_shot` (a CLI search that answers once and exits) reads what the
    query needs instead of mapping the index files (`IndexReader`'s `one_shot`).
    """

    def __init__(self, store: IndexStore, settings: Settings, *, one_shot: bool = False):
        self.store = store
        self.settings = settings
        self.reader = IndexReader(store.index_path, one_shot=one_shot)
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None

    def embedder(self) -> Embedder:
        meta = self.reader.meta
        spec = EmbedderSpec(
            model=str(meta["model"]),
            backend=str(meta["backend"]),
            cache_dir=self.settings.models_dir,
        )
        if self._embedder is None or self._embedder.model_id != spec.model_id:
            self._embedder = load_embedder(spec)
        return self._embedder

    def reranker(self) -> Reranker:
        if self._reranker is None:
            # The reranker runs on OpenVINO unless the user chose torch (it has no ONNX export).
            backend = "torch" if self.settings.backend == "torch" else "openvino"
            spec = RerankerSpec(
                model=self.settings.reranker, backend=backend, cache_dir=self.settings.models_dir
            )
            self._reranker = load_reranker(spec)
        return self._reranker

    def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        limit: int = 10,
        language: str | None = None,
        path_glob: str | None = None,
        rerank: bool | None = None,
    ) -> list[SearchResult]:
        self.reader.refresh()
        query_vector = self.embedder().embed_query(query) if mode != "bm25" else None
        use_reranker = self.settings.rerank if rerank is None else rerank
        return self.reader.search(
            query,
            mode=mode,
            limit=limit,
            language=language,
            path_glob=path_glob,
            query_vector=query_vector,
            rescorer=self.reranker().score if use_reranker else None,
        )

    def close(self) -> None:
        self.reader.close()


SKIPPED_SAMPLE_FILES = 20


class IndexStatus(Record):
    """What is indexed, from where, when, by which model, counts, skips, freshness: what
    `coderag status --json`, the MCP tool `index_status` and the web API's status print."""

    root: str
    index_path: str
    version: int
    published_at: float = Field(description="Unix time the index was published")
    age_seconds: float
    run_id: str | None
    model_id: str
    dim: int
    chunker_version: str
    shard_count: int
    files: int
    indexed_files: int
    chunks: int
    pending_vectors: int = Field(
        0,
        description="Chunks published before their vectors were computed (an index still being "
        "built): keyword, symbol and reference search cover them, vector search does not yet",
    )
    symbols: int
    languages: dict[str, int]
    skipped: dict[str, int] = Field(description="Skipped files by reason")
    skipped_files: list[dict[str, str | None]]
    skipped_files_truncated: bool
    freshness: dict[str, object] | None = Field(
        description="Files added/modified/deleted in the working tree since this index was "
        "published (None when not computed)"
    )


def index_status(
    store: IndexStore,
    *,
    with_freshness: bool = True,
    skipped_sample: int | None = SKIPPED_SAMPLE_FILES,
) -> dict[str, object]:
    """:func:`index_status_record` as JSON-ready data."""
    return index_status_record(
        store, with_freshness=with_freshness, skipped_sample=skipped_sample
    ).to_json()


def index_status_record(
    store: IndexStore,
    *,
    with_freshness: bool = True,
    skipped_sample: int | None = SKIPPED_SAMPLE_FILES,
) -> IndexStatus:
    """What is indexed, from where, when, by which model, counts, skips and (unless
    `with_freshness` is False) how far the working tree has moved on since (JSON-ready).

    `skipped_files` lists at most `skipped_sample` skipped files (None: all of them); the
    counts per reason in `skipped` always cover every file. File, chunk and symbol counts are
    the totals the version's manifest recorded (counted over the views for an index published
    before manifests had them), so no chunk or symbol file is opened."""
    con = connect_index(store.index_path)
    try:
        meta = read_meta(con)
        totals = meta.get("totals")
        if not isinstance(totals, dict):
            totals = {
                "files": con.execute("SELECT count(*) FROM files").fetchone()[0],
                "chunks": con.execute("SELECT count(*) FROM chunks").fetchone()[0],
                "symbols": con.execute("SELECT count(*) FROM symbols").fetchone()[0],
            }
        languages = dict(
            con.execute(
                "SELECT coalesce(language, 'text'), count(*) FROM files WHERE skip_reason IS NULL "
                "GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        )
        skipped = dict(
            con.execute(
                "SELECT skip_reason, count(*) FROM files WHERE skip_reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        )
        limit = "" if skipped_sample is None else f" LIMIT {int(skipped_sample)}"
        skipped_files = [
            {"path": path, "skip_reason": reason, "skip_detail": detail}
            for path, reason, detail in con.execute(
                "SELECT path, skip_reason, skip_detail FROM files WHERE skip_reason IS NOT NULL "
                f"ORDER BY path{limit}"
            ).fetchall()
        ]
    finally:
        con.close()
    published_at = float(meta["published_at"])  # type: ignore[arg-type]
    return IndexStatus.model_validate(
        {
            "root": meta["root"],
            "index_path": str(store.index_path),
            "version": meta["version"],
            "published_at": published_at,
            "age_seconds": max(0.0, time.time() - published_at),
            "run_id": meta["run_id"],
            "model_id": meta["model_id"],
            "dim": meta["dim"],
            "chunker_version": meta["chunker_version"],
            "shard_count": meta["shard_count"],
            "files": int(totals["files"]),
            "indexed_files": sum(languages.values()),
            "chunks": int(totals["chunks"]),
            "pending_vectors": int(meta.get("pending_vectors") or 0),  # type: ignore[call-overload]
            "symbols": int(totals["symbols"]),
            "languages": languages,
            "skipped": skipped,
            "skipped_files": skipped_files,
            "skipped_files_truncated": len(skipped_files) < sum(skipped.values()),
            "freshness": index_freshness(store).to_json() if with_freshness else None,
        }
    )
