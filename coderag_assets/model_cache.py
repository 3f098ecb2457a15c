"""Converted-model cache shared by the embedder and the reranker, free of Dagster and torch.

A model is converted once (torch → OpenVINO IR or ONNX) into a directory under the data
directory's ``models/``, named by the model, the backend and a fingerprint of the source
weights, so changed weights convert again. `convert_once` makes that safe across processes: a
file lock, a temporary directory renamed into place only when complete, so no process ever
loads a half-written model. `compile_openvino` loads an IR the way every CodeRAG process does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

OPENVINO_COMPILED_CACHE_DIR = "compiled"
PAD_MULTIPLE_TOKENS = 32  # input lengths are rounded up to this (see padded_token_arrays)
_INSTALL_HINTS = {"openvino": "pip install openvino", "onnxruntime": "pip install onnxruntime"}


class ModelError(Exception):
    """A model cannot be found offline, converted, or loaded; the message says why and what to
    do. The embedder and the reranker raise their own subclasses."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# Files of a model directory that do not change what a conversion produces: regenerating the
# model card must not convert the model again.
NOT_CONVERTED = frozenset({"README.md", "training.json"})


def weights_fingerprint(path: Path, format_version: int) -> str:
    """12 hex digits over the weights directory's location and its files' names, sizes and
    mtimes (hidden files and `NOT_CONVERTED` aside), and the converter's format version."""
    digest = hashlib.sha256(f"v{format_version}\0{path}".encode())
    for file_path in sorted(path.rglob("*")):
        if (
            file_path.is_file()
            and not file_path.name.startswith(".")
            and file_path.name not in NOT_CONVERTED
        ):
            stat = file_path.stat()
            relative = file_path.relative_to(path).as_posix()
            digest.update(f"\0{relative}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def converted_dir(cache_dir: Path, name: str, backend: str, fingerprint: str) -> Path:
    """Where the conversion of model ``name`` for ``backend`` lives under ``cache_dir``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return cache_dir / f"{slug}-{backend}-{fingerprint}"


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock held for the duration of the block."""
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


MODELS_DIR = "models"  # the converted-model cache under the data directory
WORK_DIR_MARK = ".tmp-"  # `.<model>.tmp-<random>`: a conversion's work directory


def _conversion_lock(target: Path) -> Path:
    """The lock a conversion of `target` holds until its work directory is renamed to `target`
    or removed."""
    return target.parent / f".{target.name}.lock"


def remove_abandoned_conversions(models_dir: Path) -> list[Path]:
    """Remove the work directories of conversions whose process was killed (a converted model
    is 100-300 MB); returns them. A work directory whose model's conversion lock is held
    belongs to a running conversion and stays."""
    removed: list[Path] = []
    for work_dir in sorted(models_dir.rglob(f".*{WORK_DIR_MARK}*")) if models_dir.is_dir() else []:
        if not work_dir.is_dir():
            continue
        target = work_dir.with_name(work_dir.name[1:].split(WORK_DIR_MARK, 1)[0])
        with open(_conversion_lock(target), "a+b") as lock_file:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being converted right now
            try:
                shutil.rmtree(work_dir, ignore_errors=True)
                removed.append(work_dir)
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
    return removed


@contextlib.contextmanager
def quiet_conversion() -> Iterator[None]:
    """Silence tracing warnings (about attention-mask branches that cannot differ for encoders)
    and transformers' informational log lines while a model is converted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from transformers.utils import logging as transformers_logging
        except ImportError:
            yield
            return
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        try:
            yield
        finally:
            transformers_logging.set_verbosity(verbosity)


def convert_once(
    target: Path,
    is_complete: Callable[[Path], bool],
    convert: Callable[[Path], None],
    *,
    what: str,
    error: type[ModelError],
) -> None:
    """Run ``convert(work_dir)`` unless ``target`` is already complete, and move the result to
    ``target`` atomically; concurrent callers (threads or processes) convert only once.

    Raises:
        ``error``: the cache directory cannot be created, or the conversion failed (``what``
        names the model and backend in the message).
    """
    if is_complete(target):
        return
    cache_dir = target.parent
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise error(f"cannot create model cache directory {cache_dir}: {failure}") from failure
    with file_lock(_conversion_lock(target)):
        if is_complete(target):
            return  # another process converted it while we waited
        if target.exists():
            shutil.rmtree(target)  # stale or unreadable; convert again
        work_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}{WORK_DIR_MARK}", dir=cache_dir))
        try:
            work_dir.chmod(0o755)  # mkdtemp makes it private; the cache is shared
            run_conversion(convert, work_dir)
            os.replace(work_dir, target)
        except ModelError:
            raise
        except Exception as failure:
            raise error(
                f"converting {what} failed: {type(failure).__name__}: {failure}. "
                "The 'torch' backend may still work."
            ) from failure
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)


#: Whether `run_conversion` converts in a child process (tests with a fake, unpicklable
#: converter turn it off).
CONVERT_IN_CHILD = True
_CHILD_MAIN = "from coderag_assets.model_cache import _conversion_child; _conversion_child()"


def run_conversion(convert: Callable[[Path], None], work_dir: Path) -> None:
    """``convert(work_dir)``, quietly (`quiet_conversion`), in a child Python process that
    exits when it is done, so that what a conversion costs stays out of this process: torch,
    transformers and the traced model, ~1 GB while converting, of which a process that
    converted keeps most until it exits (docs/memory.md). ``convert`` must be picklable (a
    module-level function or a `functools.partial` of one); the exception it raises is raised
    here. A plain subprocess rather than `multiprocessing`: it imports nothing of the caller's
    main module (a script without a ``__main__`` guard) and may start in a daemonic process.

    Raises:
        RuntimeError: the child died without an answer (killed, out of memory); the message
        holds the end of its stderr.
    """
    if not CONVERT_IN_CHILD:
        _convert_quietly(convert, work_dir)
        return
    package_parent = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_MAIN],
        input=pickle.dumps((convert, work_dir)),
        capture_output=True,
        env={**os.environ, "PYTHONPATH": python_path},
        check=False,
    )
    if child.returncode == 0:
        return
    if not child.stdout:  # no answer: the child died (killed, out of memory, bad interpreter)
        stderr = child.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(
            f"the conversion process exited with status {child.returncode}: {stderr}"
        )
    raise pickle.loads(child.stdout)


def _conversion_child() -> None:
    """The child side of `run_conversion`: (convert, work_dir) from stdin; on failure the
    exception, pickled, on stdout (its type and message when it cannot be pickled and
    unpickled); whatever the conversion itself prints goes to stderr."""
    convert, work_dir = pickle.load(sys.stdin.buffer)
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        _convert_quietly(convert, work_dir)
    except Exception as failure:  # noqa: BLE001  (every failure goes back to the parent)
        answer = pickle.dumps(RuntimeError(f"{type(failure).__name__}: {failure}"))
        with contextlib.suppress(pickle.PicklingError, TypeError, AttributeError):
            candidate = pickle.dumps(failure)
            pickle.loads(candidate)  # an exception whose __init__ cannot take its args back
            answer = candidate
        with os.fdopen(answer_fd, "wb") as answer_stream:
            answer_stream.write(answer)
        raise SystemExit(1) from None


def _convert_quietly(convert: Callable[[Path], None], work_dir: Path) -> None:
    with quiet_conversion():
        convert(work_dir)


def import_backend_package(package: str, error: type[ModelError]) -> Any:
    """``openvino`` or ``onnxruntime``, or ``error`` saying how to install it."""
    backend = "onnx" if package == "onnxruntime" else package
    try:
        return __import__(package)
    except ImportError as failure:
        raise error(f"backend {backend!r} needs {package}: {_INSTALL_HINTS[package]}") from failure


def export_openvino(network: Any, example_inputs: dict[str, Any], destination: Path) -> None:
    """Trace ``network`` (a torch module taking 2-D token tensors) into an OpenVINO IR that
    accepts any batch size and sequence length."""
    import openvino

    converted = openvino.convert_model(network, example_input=example_inputs)
    for model_input in converted.inputs:
        model_input.get_node().set_partial_shape(openvino.PartialShape([-1, -1]))
    converted.validate_nodes_and_infer_types()
    # compress_to_fp16=False keeps fp32 weights on disk; the CPU picks its precision at compile.
    openvino.save_model(converted, str(destination), compress_to_fp16=False)


def traceable(model: Any, output: str) -> Any:
    """A torch module calling the Hugging Face ``model`` with its token tensors as positional
    arguments (what tracing for OpenVINO/ONNX needs) and returning its ``output`` field
    (``last_hidden_state`` for an embedder, ``logits`` for a reranker). Needs torch."""
    import torch

    class Traceable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            return getattr(self.model(**features, return_dict=True), output)

    return Traceable().eval()


def padded_length(length: int, multiple: int) -> int:
    """``length`` rounded up to a multiple of ``multiple``."""
    return -(-length // multiple) * multiple


def padded_token_arrays(
    encodings: Sequence[Any],
    pad_token_id: int,
    *,
    limit: int | None = None,
    multiple: int = PAD_MULTIPLE_TOKENS,
) -> dict[str, np.ndarray]:
    """``input_ids`` (right-padded with ``pad_token_id``), ``attention_mask`` and
    ``token_type_ids`` (batch, length) int64 arrays of `tokenizers` encodings, where length is
    the longest encoding rounded up to ``multiple`` (at most `limit`, never less than the
    longest).

    Rounding keeps the input shapes few: OpenVINO's CPU plugin keeps intermediate buffers for
    every input shape it has run until `release_memory`, so one shape per token count grew a
    warm server by ~70 MiB over 200 queries of different lengths (~5 MiB rounded) and an
    indexing step's peak by ~55 MiB per 2,500 chunks; it also runs faster. The padding is
    masked: vectors agree with unpadded ones to cosine ≥ 0.99999, as batching already does.
    Batches of many texts pass a smaller ``multiple`` (see `embedding.BATCH_PAD_MULTIPLE`)."""
    longest = max(len(encoding.ids) for encoding in encodings)
    length = padded_length(longest, multiple)
    if limit is not None:
        length = max(longest, min(length, limit))
    input_ids = np.full((len(encodings), length), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(encodings), length), dtype=np.int64)
    token_type_ids = np.zeros((len(encodings), length), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        size = len(encoding.ids)
        input_ids[row, :size] = encoding.ids
        attention_mask[row, :size] = 1
        token_type_ids[row, :size] = encoding.type_ids
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def compile_openvino(model_file: Path, threads: int | None) -> Any:
    """An infer request for the IR ``model_file`` on CPU, at OpenVINO's default precision:
    one stream, every one of `threads` on each request (the lowest latency for one query)."""
    return compile_openvino_model(model_file, threads).create_infer_request()


def compile_openvino_model(model_file: Path, threads: int | None, streams: int = 1) -> Any:
    """The IR ``model_file`` compiled for CPU at OpenVINO's default precision, on `threads`
    threads (None: every core) split among `streams` streams: with several, as many infer
    requests run at once, each on its stream's share of the threads.

    The compiled network is cached next to the IR when that directory is writable (one blob
    per configuration): a cold start (every `coderag search`) then loads it instead of
    compiling, measured 0.4-0.5 s → 0.12-0.17 s.
    """
    import openvino

    core = openvino.Core()
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads or available_cores(),
        # OpenVINO pins its threads to cores by default; several worker processes would then
        # pile onto the same cores.
        "ENABLE_CPU_PINNING": False,
        "PERFORMANCE_HINT": "LATENCY",
    }
    if streams > 1:
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams})
    directory = model_file.parent
    if os.access(directory, os.W_OK):
        core.set_property({"CACHE_DIR": str(directory / OPENVINO_COMPILED_CACHE_DIR)})
    return core.compile_model(str(model_file), "CPU", config)
