"""The shipped cross-encoder reranker: loads offline, both backends agree, it ranks sensibly, and
bad specs fail clearly. How its scores are fused into a search: test_search.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from coderag_assets.embedding import SHIPPED_MODELS_DIR
from coderag_assets.rerank import (
    DEFAULT_RERANKER,
    RerankError,
    RerankerSpec,
    load_reranker,
    prepare_reranker,
    resolve_reranker_path,
)
from coderag_assets.settings import SettingsError, load_settings

LRU = (
    "LRUCache\nclass LRUCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n"
    "        self.entries = OrderedDict()\n\n    def get(self, key):\n"
    "        self.entries.move_to_end(key)\n        return self.entries[key]\n\n"
    "    def put(self, key, value):\n        self.entries[key] = value\n"
    "        if len(self.entries) > self.capacity:\n            self.entries.popitem(last=False)"
)
RETRY = (
    "retry_with_backoff\ndef retry_with_backoff(call, attempts=5, base=0.1):\n"
    "    for attempt in range(attempts):\n        try:\n            return call()\n"
    "        except OSError:\n            time.sleep(base * 2 ** attempt)\n    return call()"
)
SLUGIFY = (
    "slugify\ndef slugify(text):\n    text = re.sub(r'[^a-z0-9]+', '-', text.lower())\n"
    "    return text.strip('-')"
)


@pytest.fixture(scope="module")
def openvino_reranker(tmp_path_factory: pytest.TempPathFactory):
    return load_reranker(RerankerSpec(cache_dir=tmp_path_factory.mktemp("rerank-models")))


def test_the_shipped_reranker_is_small_and_loads_offline(openvino_reranker) -> None:
    directory = SHIPPED_MODELS_DIR / DEFAULT_RERANKER
    size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    assert size <= 50 * 2**20
    assert (directory / "README.md").is_file()  # the model card
    assert openvino_reranker.model_id == f"{DEFAULT_RERANKER}:openvino:256"


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("least recently used cache that evicts the oldest entry", LRU),
        ("retry a failing call with exponential backoff", RETRY),
        ("turn a title into a url-safe slug", SLUGIFY),
    ],
)
def test_the_reranker_puts_the_matching_code_first(openvino_reranker, query, best) -> None:
    candidates = [LRU, RETRY, SLUGIFY]
    scores = openvino_reranker.score(query, candidates)
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert candidates[int(np.argmax(scores))] == best, scores


def test_openvino_scores_match_torch(openvino_reranker) -> None:
    torch_reranker = load_reranker(RerankerSpec(backend="torch"))
    query = "least recently used cache that evicts the oldest entry"
    candidates = [LRU, RETRY, SLUGIFY, "x = 1"]
    reference = torch_reranker.score(query, candidates)
    converted = openvino_reranker.score(query, candidates)
    # OpenVINO may run bf16 on CPUs that have it; the order and the scale must hold.
    assert np.argsort(-converted).tolist() == np.argsort(-reference).tolist()
    np.testing.assert_allclose(converted, reference, atol=0.15 * float(np.ptp(reference)))


def test_long_candidates_are_cut_not_refused(openvino_reranker) -> None:
    scores = openvino_reranker.score("cache", [LRU * 200, "", RETRY])
    assert np.isfinite(scores).all()
    assert openvino_reranker.score("cache", []).shape == (0,)


def test_a_second_prepare_converts_nothing(tmp_path: Path) -> None:
    spec = RerankerSpec(cache_dir=tmp_path)
    prepare_reranker(spec)
    (converted,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    stamp = (converted / "model.xml").stat().st_mtime_ns
    prepare_reranker(spec)
    assert (converted / "model.xml").stat().st_mtime_ns == stamp


def test_bad_specs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(RerankError, match="never downloads"):
        resolve_reranker_path("cross-encoder/ms-marco-MiniLM-L-6-v2")
    with pytest.raises(RerankError, match="backend"):
        RerankerSpec(backend="onnx")
    with pytest.raises(RerankError, match="cache_dir"):
        load_reranker(RerankerSpec(model=str(SHIPPED_MODELS_DIR / DEFAULT_RERANKER)))


def test_rerank_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERAG_RERANK", "yes")
    assert load_settings().rerank is True
    monkeypatch.setenv("CODERAG_RERANK", "0")
    assert load_settings().rerank is False
    monkeypatch.setenv("CODERAG_RERANK", "sometimes")
    with pytest.raises(SettingsError, match="CODERAG_RERANK"):
        load_settings()
