"""Embedding backends: faithful to torch fp32, normalized, ordered, cached, torch-free at runtime.

Uses the real default model (the shipped coderag-minilm-code) and the packaged all-MiniLM-L6-v2
weights; converts once per session into a temporary cache directory. Nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from coderag_assets import embedding, model_cache
from coderag_assets.embedding import (
    CODE_MODEL,
    DEFAULT_MODEL,
    MINILM_MODEL,
    EmbedderSpec,
    EmbeddingError,
    load_embedder,
    prepare_model,
)

DIM = 384

CODE_SNIPPETS = [
    "def read_lines(path):\n    with open(path) as handle:\n        return handle.read().splitlines()",
    (
        "def count_words(text):\n    counts = {}\n    for word in text.split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n    return counts"
    ),
    (
        "async function fetchJson(url) {\n  const response = await fetch(url);\n"
        "  if (!response.ok) throw new Error(response.statusText);\n  return response.json();\n}"
    ),
    (
        "func Reverse(s string) string {\n\trunes := []rune(s)\n"
        "\tfor i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {\n"
        "\t\trunes[i], runes[j] = runes[j], runes[i]\n\t}\n\treturn string(runes)\n}"
    ),
    "fn factorial(n: u64) -> u64 {\n    (1..=n).product()\n}",
    (
        "SELECT customer_id, SUM(amount) AS total\nFROM orders\nGROUP BY customer_id\n"
        "ORDER BY total DESC\nLIMIT 10;"
    ),
    (
        "class Stack:\n    def __init__(self):\n        self._items = []\n\n"
        "    def push(self, item):\n        self._items.append(item)\n\n"
        "    def pop(self):\n        return self._items.pop()"
    ),
    (
        "def send_email(smtp_host, sender, recipient, subject, body):\n"
        "    message = EmailMessage()\n    message['From'] = sender\n    message['To'] = recipient\n"
        "    message['Subject'] = subject\n    message.set_content(body)\n"
        "    with smtplib.SMTP(smtp_host) as server:\n        server.send_message(message)"
    ),
    (
        "def binary_search(items, target):\n    low, high = 0, len(items) - 1\n"
        "    while low <= high:\n        middle = (low + high) // 2\n"
        "        if items[middle] == target:\n            return middle\n"
        "        if items[middle] < target:\n            low = middle + 1\n"
        "        else:\n            high = middle - 1\n    return -1"
    ),
    (
        "def hash_password(password: str, salt: bytes) -> bytes:\n"
        "    return hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 600_000)"
    ),
    (
        "public static int fibonacci(int n) {\n    if (n < 2) return n;\n"
        "    return fibonacci(n - 1) + fibonacci(n - 2);\n}"
    ),
    (
        "def parse_config(path):\n    parser = configparser.ConfigParser()\n"
        "    parser.read(path)\n    return {section: dict(parser[section]) for section in parser.sections()}"
    ),
    (
        "const debounce = (fn, ms) => {\n  let timer;\n"
        "  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };\n};"
    ),
    (
        "def resize_image(source, target, width, height):\n    image = Image.open(source)\n"
        "    image.thumbnail((width, height))\n    image.save(target)"
    ),
    '#!/bin/bash\nfor file in *.log; do\n  gzip "$file"\ndone',
    (
        "def retry(times):\n    def decorator(function):\n        def wrapper(*args, **kwargs):\n"
        "            for attempt in range(times):\n                try:\n"
        "                    return function(*args, **kwargs)\n                except Exception:\n"
        "                    if attempt == times - 1:\n                        raise\n"
        "        return wrapper\n    return decorator"
    ),
    (
        "def matrix_multiply(a, b):\n    return [[sum(x * y for x, y in zip(row, column))"
        " for column in zip(*b)] for row in a]"
    ),
    (
        "@app.route('/users/<int:user_id>')\ndef get_user(user_id):\n"
        "    user = db.session.get(User, user_id)\n    return jsonify(user.to_dict())"
    ),
    (
        "def download_file(url, destination):\n    response = requests.get(url, stream=True)\n"
        "    with open(destination, 'wb') as handle:\n"
        "        for block in response.iter_content(8192):\n            handle.write(block)"
    ),
    (
        "def is_palindrome(word):\n    cleaned = ''.join(c.lower() for c in word if c.isalnum())\n"
        "    return cleaned == cleaned[::-1]"
    ),
]

# (plain-language query, index of the snippet it describes)
QUERIES = [
    ("send an email message through an SMTP server", 7),
    ("find an element in a sorted list", 8),
    ("compress log files", 14),
    ("retry a function call when it raises an exception", 15),
    ("derive a key from a password with a salt", 9),
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def torch_vectors() -> tuple[np.ndarray, np.ndarray]:
    embedder = load_embedder(EmbedderSpec(backend="torch"))
    return embedder.embed(CODE_SNIPPETS), embedder.embed([query for query, _ in QUERIES])


@pytest.fixture(scope="session")
def openvino_spec(cache_dir: Path) -> EmbedderSpec:
    spec = EmbedderSpec(backend="openvino", cache_dir=cache_dir)
    prepare_model(spec)
    return spec


def _assert_faithful(
    spec: EmbedderSpec, torch_vectors: tuple[np.ndarray, np.ndarray], min_cosine: float
) -> None:
    embedder = load_embedder(spec)
    snippet_vectors = embedder.embed(CODE_SNIPPETS, batch_size=8)
    query_vectors = embedder.embed([query for query, _ in QUERIES])
    reference_snippets, reference_queries = torch_vectors
    cosines = np.sum(snippet_vectors * reference_snippets, axis=1)
    assert cosines.min() >= min_cosine, cosines
    nearest = np.argmax(query_vectors @ snippet_vectors.T, axis=1)
    reference_nearest = np.argmax(reference_queries @ reference_snippets.T, axis=1)
    assert nearest.tolist() == reference_nearest.tolist()
    assert nearest.tolist() == [target for _, target in QUERIES]


def test_openvino_agrees_with_torch_fp32(
    openvino_spec: EmbedderSpec, torch_vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    _assert_faithful(openvino_spec, torch_vectors, min_cosine=0.999)


def test_onnx_agrees_with_torch_fp32(
    cache_dir: Path, torch_vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    pytest.importorskip("onnxruntime")
    _assert_faithful(EmbedderSpec(backend="onnx", cache_dir=cache_dir), torch_vectors, 0.9999)


@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_vectors_are_normalized_and_keep_input_order(
    backend: str, openvino_spec: EmbedderSpec
) -> None:
    embedder = load_embedder(EmbedderSpec(backend=backend, cache_dir=openvino_spec.cache_dir))
    texts = [
        "x",
        CODE_SNIPPETS[7] * 3,
        "def f(): pass",
        CODE_SNIPPETS[15],
        "",
        CODE_SNIPPETS[2],
        "SELECT 1",
    ]
    done_counts: list[int] = []
    vectors = embedder.embed(texts, batch_size=3, on_progress=done_counts.append)
    assert vectors.shape == (len(texts), DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sum(done_counts) == len(texts) and len(done_counts) == 3
    for text, vector in zip(texts, vectors):
        single = embedder.embed_query(text)
        assert single.shape == (DIM,) and single.dtype == np.float32
        assert float(single @ vector) > 0.999


@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_released_memory_is_allocated_again_with_the_same_vectors(
    backend: str, openvino_spec: EmbedderSpec
) -> None:
    embedder = load_embedder(EmbedderSpec(backend=backend, cache_dir=openvino_spec.cache_dir))
    texts = [CODE_SNIPPETS[1], CODE_SNIPPETS[4] * 4, "def f(): pass"]
    before = embedder.embed(texts, batch_size=2)
    embedder.release_memory()
    after = embedder.embed(texts, batch_size=2)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert float(embedder.embed_query(texts[0]) @ before[0]) > 0.999


def test_token_arrays_are_padded_to_a_few_lengths() -> None:
    from tokenizers import Encoding, Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tokenizer = Tokenizer(WordLevel({"[PAD]": 0, "a": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()

    def encodings(*lengths: int) -> list[Encoding]:
        return tokenizer.encode_batch([" ".join(["a"] * n) for n in lengths])

    step = model_cache.PAD_MULTIPLE_TOKENS
    arrays = model_cache.padded_token_arrays(encodings(3, 5), pad_token_id=0)
    assert arrays["input_ids"].shape == (2, step)
    assert arrays["attention_mask"].sum(axis=1).tolist() == [3, 5]
    assert (arrays["input_ids"][0, 3:] == 0).all()
    # every length in one rounding step gives the same shape
    shapes = {
        model_cache.padded_token_arrays(encodings(n), 0)["input_ids"].shape
        for n in range(step + 1, 2 * step + 1)
    }
    assert shapes == {(1, 2 * step)}
    # never longer than the token limit, never shorter than the longest encoding
    assert model_cache.padded_token_arrays(encodings(step + 1), 0, limit=step + 3)[
        "input_ids"
    ].shape == (1, step + 3)
    assert model_cache.padded_token_arrays(encodings(7), 0, limit=4)["input_ids"].shape == (1, 7)


def test_padding_leaves_the_vectors_as_they_were(
    openvino_spec: EmbedderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = load_embedder(openvino_spec)
    texts = [*CODE_SNIPPETS, *(query for query, _ in QUERIES)]
    queries = np.stack([embedder.embed_query(text) for text in texts])  # padded to 32
    batched = embedder.embed(texts)  # batches by token budget, padded to 8
    monkeypatch.setattr(embedding, "BATCH_PAD_MULTIPLE", 1)
    unpadded = embedder.embed(texts, batch_size=1)  # each text at its own length
    assert np.sum(queries * unpadded, axis=1).min() >= 0.9999
    assert np.sum(batched * unpadded, axis=1).min() >= 0.9999


def test_batches_hold_about_a_token_budget() -> None:
    lengths = np.array([300, 256, 256, 100, 60, 9, 8, 8, 3, 1, 1])
    bounds = embedding.token_budget_batches(lengths, budget=512, max_texts=4, pad_multiple=8)
    # 300 tokens (304 padded) fit the budget once: alone; 2 x 256; 4 x 104 (4 texts at most)
    assert bounds == [(0, 1), (1, 3), (3, 7), (7, 11)]
    assert embedding.token_budget_batches(lengths[:0], 512, 4) == []


def test_embed_batches_short_texts_together_and_long_ones_apart(
    openvino_spec: EmbedderSpec,
) -> None:
    embedder = load_embedder(openvino_spec)
    short, long = "x = 1", "total = total + value\n" * 200  # truncated at 256 tokens
    done: list[int] = []
    embedder.embed([short] * 300, on_progress=done.append)
    assert done == [256, 44]  # 2,048 tokens a batch, at most 256 texts
    assert [rows.size for rows in embedder.batch_plan([short] * 300)] == done
    done.clear()
    embedder.embed([long] * 20, on_progress=done.append)
    assert done == [8, 8, 4]  # 8 x 256 tokens
    done.clear()
    embedder.embed([short] * 10, batch_size=3, on_progress=done.append)
    assert done == [3, 3, 3, 1]


def test_two_streams_give_the_vectors_of_one_in_input_order(
    openvino_spec: EmbedderSpec,
) -> None:
    one = load_embedder(replace(openvino_spec, threads=2))
    two = load_embedder(replace(openvino_spec, threads=2, streams=2))
    assert two is not one and two.model_id == one.model_id  # the same vectors: one cache key
    texts = [CODE_SNIPPETS[index % len(CODE_SNIPPETS)] * (1 + index % 5) for index in range(60)]
    texts += ["x = 1"] * 300  # batches of many short texts as well
    done: list[int] = []
    expected = one.embed(texts)
    vectors = two.embed(texts, on_progress=done.append)
    assert len(done) > 2 and sum(done) == len(texts)  # batch by batch, as they finished
    plan = two.batch_plan(texts)  # the streams share the token budget: smaller batches
    assert sorted(done) == sorted(rows.size for rows in plan)
    assert len(plan) > len(one.batch_plan(texts))
    # Each text's own vector: the streams share the token budget, so batches hold other
    # texts (and padding) than on one stream, which moves bf16 results in the 4th decimal.
    assert np.sum(vectors * expected, axis=1).min() > 0.9999
    two.release_memory()
    assert np.sum(two.embed(texts[:7]) * expected[:7], axis=1).min() > 0.9999
    assert float(two.embed_query(texts[3]) @ expected[3]) > 0.9999  # one request, one stream


def test_a_failed_batch_on_streams_raises_and_the_embedder_still_works(
    openvino_spec: EmbedderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = load_embedder(replace(openvino_spec, threads=2, streams=2))
    runtime = embedder._runtime
    texts = [CODE_SNIPPETS[index % len(CODE_SNIPPETS)] for index in range(40)]
    expected = embedder.embed(texts)
    real_vectors = runtime._vectors
    calls = 0

    def fail_the_third(token_vectors: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("pooling broke")
        return real_vectors(token_vectors, attention_mask)

    monkeypatch.setattr(runtime, "_vectors", fail_the_third)
    with pytest.raises(EmbeddingError, match="inference failed: pooling broke"):
        embedder.embed(texts, batch_size=4)
    monkeypatch.undo()
    np.testing.assert_allclose(embedder.embed(texts), expected, atol=1e-6)


def test_streams_are_checked_and_bulk_streams_fit_the_threads() -> None:
    with pytest.raises(EmbeddingError, match="streams must be between 1 and the threads"):
        EmbedderSpec(threads=1, streams=2)
    with pytest.raises(EmbeddingError, match="streams must be between 1"):
        EmbedderSpec(streams=0)
    assert embedding.bulk_streams(1, requested=2) == 1
    assert embedding.bulk_streams(2, requested=2) == embedding.bulk_streams(16, requested=2) == 2
    assert embedding.bulk_streams(4, requested=1) == 1
    assert EmbedderSpec(threads=4, streams=2).model_id == EmbedderSpec(threads=1).model_id


def test_empty_input_gives_empty_matrix(openvino_spec: EmbedderSpec) -> None:
    vectors = load_embedder(openvino_spec).embed([])
    assert vectors.shape == (0, DIM) and vectors.dtype == np.float32


def test_text_beyond_the_token_limit_is_truncated(openvino_spec: EmbedderSpec) -> None:
    embedder = load_embedder(openvino_spec)
    long_text = "def handler(event):\n" + "    total = total + value\n" * 400
    vectors = embedder.embed([long_text, long_text + "\n# tail the model never sees"])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_load_embedder_loads_once_per_spec(openvino_spec: EmbedderSpec) -> None:
    first = load_embedder(openvino_spec)
    same_spec = EmbedderSpec(backend="openvino", cache_dir=openvino_spec.cache_dir)
    assert load_embedder(same_spec) is first
    one_thread = EmbedderSpec(backend="openvino", cache_dir=openvino_spec.cache_dir, threads=1)
    assert load_embedder(one_thread) is not first


def test_model_id_names_model_backend_precision_and_token_limit(tmp_path: Path) -> None:
    minilm = EmbedderSpec(model=MINILM_MODEL)
    assert minilm.model_id == "all-MiniLM-L6-v2:openvino:auto:256"
    assert replace(minilm, backend="torch").model_id == "all-MiniLM-L6-v2:torch:fp32:256"
    assert replace(minilm, max_seq_tokens=128).model_id == "all-MiniLM-L6-v2:openvino:auto:128"
    hub_name = EmbedderSpec(model="sentence-transformers/all-MiniLM-L6-v2")
    packaged_path = EmbedderSpec(model=str(embedding._packaged_model_dir()))
    assert hub_name.model_id == packaged_path.model_id == minilm.model_id


def test_prepare_model_is_idempotent(openvino_spec: EmbedderSpec) -> None:
    assert openvino_spec.cache_dir is not None
    (converted_dir,) = openvino_spec.cache_dir.glob(f"{DEFAULT_MODEL}-openvino-*")
    model_file = converted_dir / embedding.OPENVINO_MODEL_FILE
    modified_ns = model_file.stat().st_mtime_ns
    started = time.perf_counter()
    prepare_model(openvino_spec)
    assert time.perf_counter() - started < 1.0
    assert model_file.stat().st_mtime_ns == modified_ns
    leftovers = [path.name for path in openvino_spec.cache_dir.iterdir() if ".tmp-" in path.name]
    assert leftovers == []


def test_concurrent_prepare_converts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions: list[str] = []

    def slow_fake_convert(backend: str, source: object, work_dir: Path) -> None:
        conversions.append(backend)
        time.sleep(0.3)
        manifest = {
            "format_version": embedding.CONVERTED_FORMAT_VERSION,
            "backend": "openvino",
            "source_path": "x",
            "input_names": ["input_ids", "attention_mask"],
            "pooling_mode": "mean",
            "normalize": True,
            "lowercase_input": False,
            "max_seq_length": 256,
            "dim": DIM,
            "pad_token_id": 0,
        }
        (work_dir / embedding.MANIFEST_FILE).write_text(json.dumps(manifest))

    monkeypatch.setattr(embedding, "_convert", slow_fake_convert)
    monkeypatch.setattr(model_cache, "CONVERT_IN_CHILD", False)  # a fake can't be pickled
    spec = EmbedderSpec(backend="openvino", cache_dir=tmp_path)
    workers = [threading.Thread(target=prepare_model, args=(spec,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert conversions == ["openvino"]
    assert [path.name for path in tmp_path.iterdir() if not path.name.startswith(".")] != []


def test_failed_conversion_raises_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_convert(backend: str, source: object, work_dir: Path) -> None:
        (work_dir / "partial.bin").write_bytes(b"half")
        raise RuntimeError("tracing exploded")

    monkeypatch.setattr(embedding, "_convert", broken_convert)
    monkeypatch.setattr(model_cache, "CONVERT_IN_CHILD", False)
    with pytest.raises(EmbeddingError, match="tracing exploded"):
        prepare_model(EmbedderSpec(backend="openvino", cache_dir=tmp_path))
    assert [path for path in tmp_path.iterdir() if path.is_dir()] == []


def test_conversion_in_a_child_process_leaves_torch_out_and_gives_the_same_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh process converts the model (in a child it starts), loads it offline and embeds
    without ever importing torch; its vectors are those of a model converted in-process."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from pathlib import Path
        from coderag_assets.embedding import EmbedderSpec, load_embedder, prepare_model
        spec = EmbedderSpec(backend="openvino", cache_dir=Path({str(tmp_path / "child")!r}))
        prepare_model(spec)
        heavy = sorted({{"torch", "transformers", "sentence_transformers"}} & set(sys.modules))
        assert not heavy, heavy
        vectors = load_embedder(spec).embed({CODE_SNIPPETS!r})
        np.save({str(tmp_path / "child.npy")!r}, vectors)
        print("ok")
        """
    )
    run_offline_script(script, timeout_s=300)
    monkeypatch.setattr(model_cache, "CONVERT_IN_CHILD", False)
    in_process = EmbedderSpec(backend="openvino", cache_dir=tmp_path / "in-process")
    prepare_model(in_process)
    expected = load_embedder(in_process).embed(CODE_SNIPPETS)
    np.testing.assert_allclose(np.load(tmp_path / "child.npy"), expected, atol=1e-5)


def test_a_conversion_failing_in_the_child_raises_its_error_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "broken-model"
    source = embedding.resolve_model_path(DEFAULT_MODEL)
    for path in source.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".txt"):
            (weights / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (weights / path.relative_to(source)).write_bytes(path.read_bytes())
    (weights / "model.safetensors").write_bytes(b"not a safetensors file")
    cache = tmp_path / "models"
    with pytest.raises(EmbeddingError, match="cannot load model"):
        prepare_model(EmbedderSpec(model=str(weights), backend="openvino", cache_dir=cache))
    assert [path.name for path in cache.iterdir() if path.is_dir()] == []


def test_a_conversion_child_that_dies_without_an_answer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with status 1"):
        model_cache.run_conversion(sys.exit, tmp_path)  # the child exits, printing the path


def test_prepared_openvino_runtime_does_not_import_torch(openvino_spec: EmbedderSpec) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from coderag_assets.embedding import EmbedderSpec, load_embedder
        spec = EmbedderSpec(backend="openvino", cache_dir=Path({str(openvino_spec.cache_dir)!r}))
        vectors = load_embedder(spec).embed(["def add(a, b): return a + b", "hello"])
        assert vectors.shape == (2, {DIM}), vectors.shape
        heavy = sorted({{"torch", "transformers", "sentence_transformers"}} & set(sys.modules))
        assert not heavy, heavy
        print("ok")
        """
    )
    run_offline_script(script, timeout_s=120)


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingError, match="unknown embedding backend 'tensorflow'"):
        EmbedderSpec(backend="tensorflow")


def test_model_not_available_offline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="not in the local Hugging Face cache"):
        load_embedder(EmbedderSpec(model="no-such-org/no-such-model", backend="torch"))
    with pytest.raises(EmbeddingError, match="not a directory"):
        _ = EmbedderSpec(model=str(tmp_path / "missing-model")).model_id
    with pytest.raises(EmbeddingError, match="config.json"):
        prepare_model(EmbedderSpec(model=str(tmp_path), cache_dir=tmp_path))


def test_converted_backend_needs_a_cache_dir() -> None:
    with pytest.raises(EmbeddingError, match="needs EmbedderSpec.cache_dir"):
        prepare_model(EmbedderSpec(backend="openvino"))


def test_missing_onnxruntime_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(EmbeddingError, match="pip install onnxruntime"):
        load_embedder(EmbedderSpec(backend="onnx", cache_dir=tmp_path))


def test_shipped_code_model_loads_offline_under_its_own_id(cache_dir: Path) -> None:
    shipped_dir = embedding.SHIPPED_MODELS_DIR / CODE_MODEL
    size_mib = sum(path.stat().st_size for path in shipped_dir.rglob("*") if path.is_file()) / 2**20
    assert size_mib <= 50, f"{shipped_dir} holds {size_mib:.1f} MiB"
    assert "Training data" in (shipped_dir / "README.md").read_text(encoding="utf-8")

    spec = EmbedderSpec(model=CODE_MODEL, backend="openvino", cache_dir=cache_dir)
    assert spec.model_id == f"{CODE_MODEL}:openvino:auto:256"
    prepare_model(spec)
    vectors = load_embedder(spec).embed(CODE_SNIPPETS)
    assert vectors.shape == (len(CODE_SNIPPETS), DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    # Trained weights, not a copy of MiniLM: same architecture, different vectors.
    minilm_spec = EmbedderSpec(model=MINILM_MODEL, backend="openvino", cache_dir=cache_dir)
    prepare_model(minilm_spec)
    minilm_vectors = load_embedder(minilm_spec).embed(CODE_SNIPPETS)
    assert np.sum(vectors * minilm_vectors, axis=1).mean() < 0.99


def run_offline_script(script: str, *, timeout_s: float) -> None:
    """Run `script` in a fresh interpreter from the project root, offline; it must print ok."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len_tokens", "cls", "max", "lasttoken"])
def test_pooling_equals_a_row_by_row_reference(mode: str) -> None:
    """Sentence vectors from right-padded token vectors: padding never counts."""
    rng = np.random.default_rng(3)
    lengths = [5, 1, 3, 8]
    token_vectors = rng.normal(size=(len(lengths), 8, 6)).astype(np.float32)
    mask = np.array([[1] * n + [0] * (8 - n) for n in lengths], dtype=np.int64)
    expected = []
    for row, n in enumerate(lengths):
        real = token_vectors[row, :n].astype(np.float64)
        expected.append(
            {
                "mean": real.mean(axis=0),
                "mean_sqrt_len_tokens": real.sum(axis=0) / np.sqrt(n),
                "cls": real[0],
                "max": real.max(axis=0),
                "lasttoken": real[n - 1],
            }[mode]
        )
    pooled = embedding._pool(token_vectors, mask, mode)
    assert pooled.shape == (len(lengths), 6)
    np.testing.assert_allclose(pooled, np.array(expected), rtol=1e-5, atol=1e-6)
