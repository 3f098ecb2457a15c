"""The shard assets' steps: an index that is still being embedded is already searchable, unless
so few distinct texts wait that the early publish would cost more than it gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coderag_assets import assets, indexing
from coderag_assets.query import QueryService, index_status
from coderag_assets.runs import get_instance, run_index
from coderag_assets.segments import build as segments_build
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from tests.conftest import copy_fixture_repo, data_dir_sharing_model


def test_keywords_answer_before_embedding_finishes(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    data = data_dir_sharing_model(tmp_path / "data", data_dir)
    settings = load_settings(data_dir=data, executor="in_process").with_root(root)
    store = IndexStore.for_root(data, root)
    monkeypatch.setattr(assets, "EARLY_PUBLISH_MIN_VECTORS", 1)  # the fixture is small
    seen_while_embedding: list[tuple[int, list[str]]] = []
    real_build_embeddings = indexing.build_embeddings

    def build_embeddings_after_looking(*args, **kwargs):
        if not seen_while_embedding:  # the first shard to embed: nothing has a vector yet
            status = index_status(store, with_freshness=False)
            service = QueryService(store, settings)
            try:
                hits = service.search("multiply two matrices", mode="bm25", limit=3)
            finally:
                service.close()
            seen_while_embedding.append((status["pending_vectors"], [h.path for h in hits]))
        return real_build_embeddings(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_embeddings", build_embeddings_after_looking)
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    pending, paths = seen_while_embedding[0]
    assert pending == summary.chunks  # published with every chunk waiting for its vector
    assert paths[0] == "engine/src/matrix.rs"  # ... and already found by keywords
    final = index_status(store, with_freshness=False)
    assert final["pending_vectors"] == 0 and final["version"] == summary.version


def test_copies_of_few_texts_skip_the_early_publish(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three copies of one repository: a third of the chunks are distinct texts. With the
    share set above that, the run does not write every segment twice: nothing is published
    before the first shard is embedded, and the one version published is complete."""
    root = tmp_path / "copies"
    root.mkdir()
    for copy in range(3):
        copy_fixture_repo(root / f"copy_{copy}")
    root = root.resolve()
    data = data_dir_sharing_model(tmp_path / "data", data_dir)
    settings = load_settings(data_dir=data, executor="in_process").with_root(root)
    store = IndexStore.for_root(data, root)
    monkeypatch.setattr(assets, "EARLY_PUBLISH_MIN_VECTORS", 1)
    monkeypatch.setattr(indexing, "EARLY_PUBLISH_MIN_VECTOR_SHARE", 0.5)
    live_while_embedding: list[int | None] = []
    real_build_embeddings = indexing.build_embeddings

    def build_embeddings_after_looking(*args, **kwargs):
        live_while_embedding.append(indexing.live_version(store))
        return real_build_embeddings(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_embeddings", build_embeddings_after_looking)
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    assert live_while_embedding and set(live_while_embedding) == {None}
    assert summary.embedded * 3 <= summary.chunks  # each text embedded once for 3 copies
    final = index_status(store, with_freshness=False)
    assert final["pending_vectors"] == 0 and final["version"] == summary.version

    # Control: the same tree with the default share (1 in 20) is published early.
    monkeypatch.setattr(indexing, "EARLY_PUBLISH_MIN_VECTOR_SHARE", 0.05)
    shutil.rmtree(store.base)
    live_while_embedding.clear()
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    assert live_while_embedding[0] is not None


def test_the_early_publish_segments_are_written_while_workers_chunk(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With chunking workers, the run's own process writes each prepared shard's early
    segment as the shard comes back (`indexing.EarlySegments`); the early publish then finds
    every one current and writes none, and keywords answer before embedding as without
    workers."""
    root = copy_fixture_repo(tmp_path / "repo").resolve()
    data = data_dir_sharing_model(tmp_path / "data", data_dir)
    settings = load_settings(data_dir=data, executor="in_process", workers=2).with_root(root)
    store = IndexStore.for_root(data, root)
    monkeypatch.setattr(assets, "EARLY_PUBLISH_MIN_VECTORS", 1)
    monkeypatch.setattr(indexing, "PARALLEL_PREPARE_MIN_FILES", 1)  # the fixture is small
    monkeypatch.setattr(indexing, "available_cores", lambda: 2)
    phase = ["prepare"]
    writes: list[tuple[str, str]] = []
    published: list[str] = []
    real_write_segment = segments_build.write_segment
    real_publish_index = indexing.publish_index
    real_build_embeddings = indexing.build_embeddings

    def recording_write_segment(store, shard, **kwargs):
        writes.append((phase[0], shard))
        return real_write_segment(store, shard, **kwargs)

    def publish_index(*args, **kwargs):
        phase[0] = "early publish" if kwargs.get("early") else "publish"
        published.append(phase[0])
        return real_publish_index(*args, **kwargs)

    def build_embeddings(*args, **kwargs):
        phase[0] = "shard steps"
        return real_build_embeddings(*args, **kwargs)

    monkeypatch.setattr(segments_build, "write_segment", recording_write_segment)
    monkeypatch.setattr(indexing.segments, "write_segment", recording_write_segment)
    monkeypatch.setattr(indexing, "publish_index", publish_index)
    monkeypatch.setattr(indexing, "build_embeddings", build_embeddings)
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    written_while_chunking = {shard for stage, shard in writes if stage == "prepare"}
    shards_with_chunks = {
        shard.name.removesuffix(".parquet") for shard in (store.base / "chunks").glob("*.parquet")
    }
    assert written_while_chunking == shards_with_chunks
    assert "early publish" in published  # ... and it published early
    assert not [s for stage, s in writes if stage == "early publish" and s in shards_with_chunks]
    final = index_status(store, with_freshness=False)
    assert final["pending_vectors"] == 0 and final["version"] == summary.version
