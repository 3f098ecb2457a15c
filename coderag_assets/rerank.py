"""Re-scoring the top results with a cross-encoder, free of Dagster.

A cross-encoder reads the query and one candidate together and returns one relevance logit:
slower than comparing vectors (one transformer pass per candidate), so it only re-scores the
first ``RankingConfig.rerank_depth`` results the fused ranking found (see
`search.IndexReader.search`). The shipped reranker, ``coderag-minilm-rerank``, is
all-MiniLM-L6-v2's encoder trained by ``training.train_reranker`` on the same mined code triples
as the embedder; any local ``BertForSequenceClassification``-style directory with one logit
works too. Nothing is downloaded.

Backends, as for the embedder: ``"openvino"`` (default; converted once into ``cache_dir``, and
loading it needs no torch) and ``"torch"`` (the reference).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coderag_assets.embedding import SHIPPED_MODELS_DIR
from coderag_assets.model_cache import (
    ModelError,
    compile_openvino,
    convert_once,
    converted_dir,
    export_openvino,
    import_backend_package,
    padded_token_arrays,
    traceable,
    weights_fingerprint,
)

DEFAULT_RERANKER = "coderag-minilm-rerank"
RERANK_BACKENDS = ("openvino", "torch")
DEFAULT_MAX_SEQ_TOKENS = 256
# Candidates are cut to this many characters before tokenizing: more than 256 tokens of code,
# and tokenizing a 50 kB chunk only to truncate it would cost more than the model.
MAX_TEXT_CHARS = 2_000
CONVERTED_FORMAT_VERSION = 1
MANIFEST_FILE = "reranker.json"
TOKENIZER_FILE = "tokenizer.json"
OPENVINO_MODEL_FILE = "model.xml"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class RerankError(ModelError):
    """The reranker cannot be found, converted or loaded; the message says why."""


@dataclass(frozen=True)
class RerankerSpec:
    """Which reranker to load and how; hashable, cheap (nothing is loaded).

    Attributes:
        model: a name shipped under `SHIPPED_MODELS_DIR` (`DEFAULT_RERANKER`) or a directory
            holding a sequence-classification model with one logit.
        backend: one of `RERANK_BACKENDS`.
        cache_dir: where the converted model lives (required by ``openvino``).
        threads: inference threads; None means every core available.
        max_seq_tokens: token limit of query + candidate (the candidate is cut, not the query).
    """

    model: str = DEFAULT_RERANKER
    backend: str = "openvino"
    cache_dir: Path | None = None
    threads: int | None = None
    max_seq_tokens: int = DEFAULT_MAX_SEQ_TOKENS

    def __post_init__(self) -> None:
        if self.backend not in RERANK_BACKENDS:
            raise RerankError(
                f"unknown reranker backend {self.backend!r}; choose one of "
                f"{', '.join(RERANK_BACKENDS)}"
            )
        if self.max_seq_tokens < 8:
            raise RerankError(f"max_seq_tokens must be >= 8, got {self.max_seq_tokens}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @property
    def model_id(self) -> str:
        """``name:backend:max_tokens``, e.g. ``coderag-minilm-rerank:openvino:256``."""
        return f"{resolve_reranker_path(self.model).name}:{self.backend}:{self.max_seq_tokens}"


def resolve_reranker_path(model: str) -> Path:
    """The directory holding ``model``'s weights (shipped name or local directory).

    Raises:
        RerankError: neither a shipped reranker nor a model directory.
    """
    shipped = SHIPPED_MODELS_DIR / model
    if "/" not in model and model not in (".", "..") and (shipped / "config.json").is_file():
        return shipped
    local = Path(model).expanduser()
    if (local / "config.json").is_file():
        return local.resolve()
    raise RerankError(
        f"reranker {model!r} is neither shipped with CodeRAG ({DEFAULT_RERANKER!r} is) nor a "
        "directory holding a model; CodeRAG never downloads models"
    )


class Reranker:
    """A loaded cross-encoder; get one with `load_reranker`. Thread-safe (one pass at a time)."""

    def __init__(self, spec: RerankerSpec, runtime: Any) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        self._runtime = runtime
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Reranker({self.model_id!r})"

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance logit per text (higher is better), float32, in the order of ``texts``;
        all texts go through the model as one batch."""
        if not texts:
            return np.empty(0, dtype=np.float32)
        cut = [text[:MAX_TEXT_CHARS] for text in texts]
        with self._lock:
            return np.asarray(self._runtime.score(query, cut), dtype=np.float32)


_loaded: dict[RerankerSpec, Reranker] = {}
_load_lock = threading.Lock()


def load_reranker(spec: RerankerSpec) -> Reranker:
    """The process-wide `Reranker` for ``spec``, converting it first if needed.

    Raises:
        RerankError: unknown model, missing backend package, conversion or load failure.
    """
    with _load_lock:
        reranker = _loaded.get(spec)
        if reranker is None:
            reranker = Reranker(spec, _load_runtime(spec))
            _loaded[spec] = reranker
        return reranker


def prepare_reranker(spec: RerankerSpec) -> None:
    """Convert ``spec``'s model into ``cache_dir`` unless it is there already (idempotent,
    safe across processes; needs torch once)."""
    source = resolve_reranker_path(spec.model)
    if spec.backend == "torch":
        return
    convert_once(
        _converted_dir(spec, source),
        lambda directory: _read_manifest(directory) is not None,
        functools.partial(_convert, source),
        what=f"reranker {source.name!r} ({source}) for backend {spec.backend!r}",
        error=RerankError,
    )


def _converted_dir(spec: RerankerSpec, source: Path) -> Path:
    if spec.cache_dir is None:
        raise RerankError(
            f"backend {spec.backend!r} needs RerankerSpec.cache_dir (where the converted model "
            "is kept, e.g. data/models)"
        )
    fingerprint = weights_fingerprint(source, CONVERTED_FORMAT_VERSION)
    return converted_dir(spec.cache_dir, source.name, spec.backend, fingerprint)


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != (
        CONVERTED_FORMAT_VERSION
    ):
        return None
    return manifest


def _load_torch_model(source: Path) -> tuple[Any, Any]:
    """The model (fp32, eval mode) and its tokenizer, from local files only."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as error:
        raise RerankError(f"the torch reranker needs torch and transformers: {error}") from error
    with contextlib.suppress(ImportError, AttributeError):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bars on stderr
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(source), local_files_only=True, dtype=torch.float32
        ).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    except Exception as error:
        raise RerankError(
            f"cannot load reranker {source}: {type(error).__name__}: {error}"
        ) from error
    if model.config.num_labels != 1:
        raise RerankError(
            f"reranker {source} has {model.config.num_labels} labels; one relevance logit is needed"
        )
    return model, tokenizer


def _convert(source: Path, work_dir: Path) -> None:
    import torch

    model, tokenizer = _load_torch_model(source)
    input_names = [name for name in INPUT_NAMES if name in tokenizer.model_input_names]
    if "attention_mask" not in input_names:
        input_names.insert(1, "attention_mask")

    example = tokenizer(
        ["how are two numbers added", "read a file"],
        ["def add(a, b):\n    return a + b", "a longer candidate, so that the batch is padded"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        export_openvino(
            traceable(model, "logits"),
            {name: example[name] for name in input_names},
            work_dir / OPENVINO_MODEL_FILE,
        )
    tokenizer.backend_tokenizer.save(str(work_dir / TOKENIZER_FILE))
    manifest = {
        "format_version": CONVERTED_FORMAT_VERSION,
        "source_path": str(source),
        "input_names": input_names,
        "pad_token_id": int(tokenizer.pad_token_id or 0),
    }
    (work_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _load_runtime(spec: RerankerSpec) -> Any:
    source = resolve_reranker_path(spec.model)
    if spec.backend == "torch":
        return _TorchRuntime(source, spec)
    import_backend_package("openvino", RerankError)
    directory = _converted_dir(spec, source)
    manifest = _read_manifest(directory)
    if manifest is None:
        prepare_reranker(spec)
        manifest = _read_manifest(directory)
        if manifest is None:
            raise RerankError(f"converted reranker in {directory} is unreadable")
    try:
        return _OpenVinoRuntime(directory, manifest, spec)
    except Exception as error:
        raise RerankError(
            f"cannot load converted reranker {directory}: {type(error).__name__}: {error}. "
            "Delete that directory to convert it again."
        ) from error


class _TorchRuntime:
    def __init__(self, source: Path, spec: RerankerSpec) -> None:
        import torch

        from coderag_assets.model_cache import available_cores

        torch.set_num_threads(spec.threads or available_cores())
        self._model, self._tokenizer = _load_torch_model(source)
        self._max_tokens = spec.max_seq_tokens

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        import torch

        features = self._tokenizer(
            [query] * len(texts),
            list(texts),
            truncation="longest_first",
            max_length=self._max_tokens,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            return self._model(**features).logits[:, 0].numpy()


class _OpenVinoRuntime:
    def __init__(self, directory: Path, manifest: dict[str, Any], spec: RerankerSpec) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        # longest_first cuts the candidate (always the longer side here), never a short query.
        self._tokenizer.enable_truncation(spec.max_seq_tokens, strategy="longest_first")
        self._max_tokens = spec.max_seq_tokens
        self._input_names = tuple(manifest["input_names"])
        self._pad_id = int(manifest["pad_token_id"])
        self._request = compile_openvino(directory / OPENVINO_MODEL_FILE, spec.threads)

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([(query, text) for text in texts])
        arrays = padded_token_arrays(encodings, self._pad_id, limit=self._max_tokens)
        result = self._request.infer({name: arrays[name] for name in self._input_names})
        return np.asarray(result[0], dtype=np.float32)[:, 0]
