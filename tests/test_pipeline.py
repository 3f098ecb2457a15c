"""End to end through Dagster: index the fixture repository with the real model, real
tree-sitter and real DuckDB, then search it in all three modes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coderag_assets.cli import main as cli_main
from coderag_assets.embedding import DEFAULT_MODEL
from coderag_assets.query import QueryService, index_status
from coderag_assets.runs import get_instance, run_index
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore, connect_index


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """The fixture repository plus bad inputs, indexed once for the module."""

    from tests.conftest import copy_fixture_repo

    root = tmp_path_factory.mktemp("indexed") / "repo"
    copy_fixture_repo(root)
    add_bad_inputs(root)
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root.resolve())
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    store = IndexStore.for_root(data_dir, root.resolve())
    service = QueryService(store, settings)
    yield settings, summary, store, service
    service.close()


def add_bad_inputs(root: Path) -> None:
    (root / "assets").mkdir()
    (root / "assets" / "logo.bin").write_bytes(b"\x89PNG\x00\x00\x01binary")
    (root / "nul_in_text.py").write_bytes(b"def ok():\n    return 1\n\x00\x00\x00")
    (root / "latin1_garbage.txt").write_bytes(bytes(range(128, 256)) * 20)
    (root / ".env").write_text("API_TOKEN=not-a-real-secret\n")
    (root / "server.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"
    )
    with open(root / "huge.py", "wb") as huge:  # 50 MB (sparse) > the 1 MB limit
        huge.truncate(50 * 2**20)
    (root / "broken.py").write_text(
        "def broken(:\n    return )\n\ndef fine_after_error():\n    return 42\n"
    )
    (root / "empty.py").write_text("")
    (root / "loop").symlink_to(root / "loop")
    os.symlink("/etc/hostname", root / "outside_link.txt")


def test_index_summary_counts_and_skips(indexed) -> None:
    _, summary, _, _ = indexed
    assert summary.chunks > 15
    assert summary.embedded > 0
    skipped = summary.skipped
    assert skipped.get("secret", 0) >= 2  # .env and server.pem
    assert skipped.get("too_large", 0) >= 1
    assert skipped.get("binary", 0) >= 2  # logo.bin, nul_in_text.py
    assert skipped.get("invalid_utf8", 0) >= 1


@pytest.mark.parametrize(
    ("query", "expected_path", "expected_symbol"),
    [
        ("least recently used cache that evicts old entries", "pyutils/cache.py", "LRUCache"),
        (
            "call a function again with exponential backoff when it fails",
            "pyutils/retry.py",
            "retry_with_backoff",
        ),
        (
            "register an HTTP route handler for a method and path",
            "server/router.go",
            "Router.Handle",
        ),
        ("wait until the user stops typing before calling", "web/src/debounce.ts", "debounce"),
        ("multiply two matrices", "engine/src/matrix.rs", "Matrix.multiply"),
        (
            "convert celsius to fahrenheit",
            "src/main/java/demo/TemperatureConverter.java",
            "TemperatureConverter.celsiusToFahrenheit",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_plain_language_query_finds_definition_first(
    indexed, mode, query, expected_path, expected_symbol
) -> None:
    _, _, _, service = indexed
    if mode == "bm25" and expected_symbol == "debounce":
        pytest.skip("no shared words between this paraphrase and the code: BM25 cannot find it")
    results = service.search(query, mode=mode, limit=5)
    assert results, f"no results for {query!r}"
    top = results[0]
    assert top.path == expected_path, [(r.path, r.symbol) for r in results]
    line = definition_line(service, expected_path, expected_symbol)
    assert top.start_line <= line <= top.end_line, (top.symbol, top.start_line, top.end_line, line)


def definition_line(service: QueryService, path: str, qualified_name: str) -> int:
    row = service.reader.con.execute(
        "SELECT line FROM symbols WHERE path = ? AND qualified_name = ?", [path, qualified_name]
    ).fetchone()
    assert row, f"{qualified_name} not among the symbols of {path}"
    return int(row[0])


def test_results_carry_lines_and_content(indexed) -> None:
    _, _, store, service = indexed
    result = service.search("LRUCache put evicts", mode="bm25", limit=3)[0]
    lines = (store.root / result.path).read_text().splitlines()
    assert result.start_line >= 1 and result.end_line >= result.start_line
    assert "\n".join(lines[result.start_line - 1 : result.end_line]) == result.content
    assert result.language == "python"


def test_filters_by_language_and_path(indexed) -> None:
    _, _, _, service = indexed
    go_only = service.search("register handler", mode="hybrid", limit=10, language="go")
    assert go_only and {r.language for r in go_only} == {"go"}
    under_web = service.search("function", mode="bm25", limit=10, path_glob="web/**")
    assert under_web and all(r.path.startswith("web/") for r in under_web)


def test_ignored_and_skipped_files_are_not_searchable(indexed) -> None:
    _, _, store, _service = indexed
    con = connect_index(store.index_path)
    try:
        paths = {p for (p,) in con.execute("SELECT DISTINCT path FROM chunks").fetchall()}
        skipped = dict(
            con.execute(
                "SELECT path, skip_reason FROM files WHERE skip_reason IS NOT NULL"
            ).fetchall()
        )
    finally:
        con.close()
    assert "build/generated.py" not in paths and "server.log" not in paths  # .gitignore
    assert ".env" not in paths and "huge.py" not in paths
    assert skipped[".env"] == "secret" and skipped["huge.py"] == "too_large"
    assert "broken.py" in paths  # syntax errors are chunked, not dropped


def test_provenance_recorded(indexed) -> None:
    _, summary, store, _ = indexed
    con = connect_index(store.index_path)
    try:
        rows = con.execute(
            "SELECT DISTINCT model_id, chunker_version, chunk_run_id FROM chunks"
        ).fetchall()
    finally:
        con.close()
    assert rows and all(model and chunker and run for model, chunker, run in rows)
    assert {run for _, _, run in rows} == {summary.run_id}


def test_reindex_unchanged_embeds_nothing(indexed) -> None:
    settings, _, store, _service = indexed
    again = run_index(settings, instance=get_instance(settings))
    assert again.success, again.error
    assert again.embedded == 0
    assert again.reused > 0
    assert index_status(store)["chunks"] == again.chunks


def test_status_reports_model_counts_and_skips(indexed) -> None:
    _, summary, store, _ = indexed
    status = index_status(store)
    assert status["root"] == str(store.root)
    assert status["chunks"] == summary.chunks
    assert str(status["model_id"]).startswith(f"{DEFAULT_MODEL}:")
    assert status["skipped"]["secret"] >= 2


def test_cli_search_json_contract(indexed, capsys) -> None:
    settings, _, store, _ = indexed
    code = cli_main(
        [
            "--data-dir",
            str(settings.data_dir),
            "search",
            "matrix product",
            "--root",
            str(store.root),
            "--json",
            "--limit",
            "3",
        ]
    )
    assert code == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3
    assert set(results[0]) == {
        "path",
        "start_line",
        "end_line",
        "score",
        "symbol",
        "kind",
        "language",
        "content",
    }
    assert results[0]["path"] == "engine/src/matrix.rs"


def test_cli_search_rerank(indexed, capsys) -> None:
    settings, _, store, _ = indexed
    arguments = ["--data-dir", str(settings.data_dir), "search", "multiply two matrices"]
    arguments += ["--root", str(store.root), "--json", "--limit", "5", "--rerank"]
    assert cli_main(arguments) == 0
    results = json.loads(capsys.readouterr().out)
    assert results[0]["path"] == "engine/src/matrix.rs"
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_cli_search_without_index_is_a_clear_error(tmp_path, data_dir, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli_main(["--data-dir", str(data_dir), "search", "anything"])
    assert code == 2
    assert "no index covers" in capsys.readouterr().err


@pytest.mark.parametrize("bad_path", ["does/not/exist", "pyproject.toml"])
def test_cli_index_bad_root_is_a_clear_error(bad_path, data_dir, capsys) -> None:
    code = cli_main(["--data-dir", str(data_dir), "index", bad_path])
    assert code == 2
    assert "error:" in capsys.readouterr().err


def test_status_lists_a_bounded_sample_of_skipped_files(indexed) -> None:
    store = indexed[2]
    full = index_status(store, with_freshness=False, skipped_sample=None)
    total = sum(full["skipped"].values())
    assert total >= 2 and len(full["skipped_files"]) == total
    assert not full["skipped_files_truncated"]
    sample = index_status(store, with_freshness=False, skipped_sample=1)
    assert sample["skipped_files"] == full["skipped_files"][:1]
    assert sample["skipped_files_truncated"]
    assert sample["skipped"] == full["skipped"]  # the counts still cover every file


def test_runs_are_the_job_and_each_partition_records_its_own_shard(indexed) -> None:
    import dagster as dg

    from coderag_assets.partitions import shard_keys
    from coderag_assets.store import MANIFEST_SCHEMA

    settings, summary, store, _ = indexed
    instance = get_instance(settings)
    assert instance.get_run_by_id(summary.run_id).job_name == "coderag_index"
    # This run's own materializations (other tests index other roots into the same instance).
    by_partition = {
        record.dagster_event.partition: record.asset_materialization.metadata
        for record in instance.all_logs(
            summary.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        if record.asset_materialization.asset_key == dg.AssetKey("file_manifest")
    }
    seen_counts = set()
    for shard in shard_keys(settings.shard_count):
        assert shard in by_partition, f"shard {shard} has no materialization"
        files = store.read_shard("manifest", shard, MANIFEST_SCHEMA).num_rows
        assert by_partition[shard]["files"].value == files, shard  # this shard's, not the run's
        seen_counts.add(files)
    assert len(seen_counts) > 1  # shards differ, so the per-shard numbers are not one total
    bm25_metadata = next(
        record.asset_materialization.metadata
        for record in instance.all_logs(
            summary.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        if record.asset_materialization.asset_key == dg.AssetKey("bm25_index")
    )
    assert bm25_metadata["documents"].value == summary.chunks
    assert bm25_metadata["postings_bytes"].value > 0


def test_switching_model_re_embeds_and_switching_back_reuses(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors are keyed by content hash *and* model id; the index records the model. Every
    switch goes through an early publish (keywords first), which must not trip over the
    other model's vectors still in the shards."""
    from dataclasses import replace

    from coderag_assets import assets
    from coderag_assets.embedding import CODE_MODEL, MINILM_MODEL
    from tests.conftest import copy_fixture_repo, data_dir_sharing_model

    monkeypatch.setattr(assets, "EARLY_PUBLISH_MIN_VECTORS", 1)  # the fixture is small

    root = copy_fixture_repo(tmp_path / "repo").resolve()
    # its own vector cache; converted models are shared
    private_data = data_dir_sharing_model(tmp_path / "data", data_dir)
    base = load_settings(data_dir=private_data, workers=2).with_root(root)
    instance = get_instance(base)
    store = IndexStore.for_root(private_data, root)

    def index_with(model: str):
        summary = run_index(replace(base, model=model), instance=instance)
        assert summary.success, summary.error
        return summary, index_status(store)["model_id"]

    first, first_model = index_with(MINILM_MODEL)
    switched, switched_model = index_with(CODE_MODEL)
    back, back_model = index_with(MINILM_MODEL)
    assert first_model.startswith(f"{MINILM_MODEL}:") and back_model == first_model
    assert switched_model.startswith(f"{CODE_MODEL}:")
    assert first.embedded == first.chunks > 0
    assert switched.embedded == switched.chunks == first.chunks  # nothing reused across models
    assert back.embedded == 0 and back.reused == back.chunks  # switching back reuses
