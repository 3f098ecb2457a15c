"""Fine-tune all-MiniLM-L6-v2 on mined (query, positive, hard negative) triples, on CPU.

    python -m training.train --data training/.cache/data --run training/.cache/run --steps 400
    python -m training.train --run training/.cache/run --export coderag_assets/models/<name>

Contrastive training with sentence-transformers' ``MultipleNegativesRankingLoss``: every query
is scored against every positive and hard negative in its batch, so each step sees
``batch_size - 1`` in-batch negatives plus one hard negative per triple (a sibling definition or
a BM25 neighbour from the same package, see ``training.pairs``).

The run is resumable: a checkpoint (weights, optimizer, scheduler, step) is written atomically
every ``--checkpoint-every`` steps, and the batch order is a pure function of the seed, so a
stopped run continues with exactly the batches it had not seen. ``--export`` writes the trained
model as a sentence-transformers directory with fp16 weights (half the size; loaded as fp32) and
a ``training.json`` with the run's arguments and validation numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

BASE_MODEL = "all-MiniLM-L6-v2"
CHECKPOINT_FILE = "checkpoint.pt"
ARGS_FILE = "args.json"
LOG_FILE = "log.jsonl"
VALIDATION_FILE = "validation.json"
TRAINING_INFO_FILE = "training.json"
# Validation candidates: every validation triple's positive and negatives, capped for speed.
MAX_VALIDATION_TRIPLES = 400
MRR_CUTOFF = 10
# The token limit the index embeds with (all-MiniLM-L6-v2's own); training may cut shorter.
INFERENCE_MAX_SEQ_TOKENS = 256


@dataclass(frozen=True)
class TrainArgs:
    """Everything that determines a run's result; a resumed run must use the same values."""

    data_dir: str
    steps: int = 400
    batch_size: int = 32
    max_seq_tokens: int = 128
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    scale: float = 20.0
    seed: int = 13
    hard_negatives: int = 1


@dataclass(frozen=True)
class Triple:
    query: str
    positive: str
    negatives: tuple[str, ...]


def load_triples(path: Path) -> list[Triple]:
    """The triples of a ``triples.parquet``/``validation.parquet`` written by build_data."""
    import polars as pl

    frame = pl.read_parquet(path, columns=["query", "positive", "negatives"])
    return [
        Triple(row["query"], row["positive"], tuple(row["negatives"] or ()))
        for row in frame.iter_rows(named=True)
    ]


def batch_order(count: int, args: Any) -> list[list[int]]:
    """The triple indices of every step's batch: epochs of seeded shuffles, cut into batches.

    A pure function of ``count`` and the arguments, so a resumed run sees the same batches.
    """
    rng = random.Random(args.seed)
    batches: list[list[int]] = []
    while len(batches) < args.steps:
        order = list(range(count))
        rng.shuffle(order)
        batches.extend(
            order[start : start + args.batch_size]
            for start in range(0, count - args.batch_size + 1, args.batch_size)
        )
    return batches[: args.steps]


def batch_columns(
    triples: Sequence[Triple], indices: Sequence[int], args: TrainArgs, step: int
) -> list[list[str]]:
    """Columns (queries, positives, negatives_1..k) for one step; negatives drawn per step.

    A triple without enough mined negatives borrows another triple's positive of the batch,
    which is an ordinary in-batch negative.
    """
    rng = random.Random(args.seed * 1_000_003 + step)
    columns: list[list[str]] = [[], []] + [[] for _ in range(args.hard_negatives)]
    for position, index in enumerate(indices):
        triple = triples[index]
        columns[0].append(triple.query)
        columns[1].append(triple.positive)
        negatives = list(triple.negatives)
        rng.shuffle(negatives)
        for k in range(args.hard_negatives):
            if k < len(negatives):
                columns[2 + k].append(negatives[k])
            else:
                other = indices[(position + 1 + k) % len(indices)]
                columns[2 + k].append(triples[other].positive)
    return columns


def validation_candidates(triples: Sequence[Triple]) -> list[str]:
    """Every positive and negative of ``triples``, each once, in a stable order."""
    return sorted({t.positive for t in triples} | {n for t in triples for n in t.negatives})


def retrieval_metrics(
    query_vectors: np.ndarray,
    candidate_vectors: np.ndarray,
    candidates: Sequence[str],
    triples: Sequence[Triple],
) -> dict[str, float]:
    """MRR@10 and Recall@1 of each triple's positive among ``candidates`` (row-aligned with
    ``candidate_vectors``), scoring by dot product of normalized vectors."""
    position = {text: i for i, text in enumerate(candidates)}
    scores = np.asarray(query_vectors) @ np.asarray(candidate_vectors).T
    reciprocal, first = [], []
    for row, triple in enumerate(triples):
        target = scores[row, position[triple.positive]]
        rank = 1 + int(np.sum(scores[row] > target))
        reciprocal.append(1.0 / rank if rank <= MRR_CUTOFF else 0.0)
        first.append(rank == 1)
    return {
        "mrr@10": float(np.mean(reciprocal)),
        "r@1": float(np.mean(first)),
        "queries": len(triples),
        "candidates": len(candidates),
    }


def validation_mrr(model: Any, triples: Sequence[Triple], batch_size: int = 64) -> dict[str, float]:
    """`retrieval_metrics` of ``model`` on the (capped) validation triples: each query competes
    with its own hard negatives and everybody else's code."""
    import torch

    sample = list(triples[:MAX_VALIDATION_TRIPLES])
    candidates = validation_candidates(sample)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        documents = model.encode(candidates, batch_size=batch_size, normalize_embeddings=True)
        queries = model.encode(
            [t.query for t in sample], batch_size=batch_size, normalize_embeddings=True
        )
    if was_training:
        model.train()
    return retrieval_metrics(queries, documents, candidates, sample)


def load_base_model(max_seq_tokens: int) -> Any:
    """all-MiniLM-L6-v2 from the packaged weights, on CPU; never downloads."""
    from sentence_transformers import SentenceTransformer

    from coderag_assets.embedding import EmbedderSpec, resolve_model_path

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = resolve_model_path(EmbedderSpec(model=BASE_MODEL).model)
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_tokens
    return model


def _save_model(model: Any, destination: Path) -> None:
    """Save with the base model's inference token limit (training may use a shorter one)."""
    partial = destination.with_name(destination.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    training_limit = model.max_seq_length
    model.max_seq_length = INFERENCE_MAX_SEQ_TOKENS
    try:
        model.save(str(partial))
    finally:
        model.max_seq_length = training_limit
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(partial, destination)


def train(
    args: TrainArgs,
    run_dir: Path,
    checkpoint_every: int,
    threads: int,
    stop_at_step: int | None = None,
) -> Path:
    """Train (or resume) the run in ``run_dir``; returns the directory of the final model.

    ``stop_at_step`` ends the run early (the learning rate then has not decayed to zero): the
    model at that step is validated and saved as the final one; a later call without it resumes.
    """
    import torch
    from sentence_transformers import losses

    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_same_args(run_dir, args)
    data_dir = Path(args.data_dir)
    triples = load_triples(data_dir / "triples.parquet")
    validation = load_triples(data_dir / "validation.parquet")
    batches = batch_order(len(triples), args)
    print(
        f"{len(triples)} training triples, {len(validation)} validation; {args.steps} steps of "
        f"{args.batch_size} (~{args.steps * args.batch_size / len(triples):.2f} epochs)",
        file=sys.stderr,
    )

    model = load_base_model(args.max_seq_tokens)
    loss = losses.MultipleNegativesRankingLoss(model, scale=args.scale)
    optimizer, scheduler = optimizer_and_schedule(model, args)
    step = resume(run_dir / CHECKPOINT_FILE, model, optimizer, scheduler, args.steps)
    checkpoint = run_dir / CHECKPOINT_FILE
    validation_path = run_dir / VALIDATION_FILE
    results = json.loads(validation_path.read_text()) if validation_path.is_file() else {}
    if "base" not in results:
        results["base"] = validation_mrr(model, validation)
        write_json(validation_path, results)
        print(f"validation before training: {results['base']}", file=sys.stderr)

    model.train()
    started = time.perf_counter()
    first_step = step
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
        last_step = min(args.steps, stop_at_step or args.steps)
        while step < last_step:
            columns = batch_columns(triples, batches[step], args, step)
            preprocess = getattr(model, "preprocess", None) or model.tokenize
            features = [preprocess(column) for column in columns]
            value = loss(features, None)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            loss_value = value.item()
            elapsed = time.perf_counter() - started
            per_step = elapsed / (step - first_step)
            log.write(json.dumps({"step": step, "loss": loss_value, "s": per_step}) + "\n")
            log.flush()
            if step % 10 == 0 or step == args.steps:
                print(
                    f"step {step}/{args.steps} loss {loss_value:.4f} "
                    f"{per_step:.1f} s/step, ~{(args.steps - step) * per_step / 60:.0f} min left",
                    file=sys.stderr,
                    flush=True,
                )
            if step % checkpoint_every == 0 or step == last_step:
                save_checkpoint(checkpoint, model, optimizer, scheduler, step)

    final_dir = run_dir / "final"
    if "trained" not in results or results.get("trained_step") != step:
        results["trained"] = validation_mrr(model, validation)
        results["trained_step"] = step
        write_json(validation_path, results)
    print(f"validation after training: {results['trained']}", file=sys.stderr)
    _save_model(model, final_dir)
    return final_dir


def export(run_dir: Path, destination: Path, name: str) -> None:
    """Write the run's final model to ``destination`` with fp16 weights and training.json."""
    final_dir = run_dir / "final"
    if not (final_dir / "config.json").is_file():
        raise SystemExit(f"{final_dir} holds no trained model; train first")
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(final_dir, destination)
    halve_weights(destination / "model.safetensors")
    # sentence-transformers writes a generic card; the shipped card is written by hand (README).
    (destination / "README.md").unlink(missing_ok=True)
    args = json.loads((run_dir / ARGS_FILE).read_text())
    validation = json.loads((run_dir / VALIDATION_FILE).read_text())
    data_dir = Path(args["data_dir"])
    sources_path = data_dir / "sources.json"
    info = {
        "name": name,
        "base_model": BASE_MODEL,
        "arguments": args,
        "validation": validation,
        "data_sources": json.loads(sources_path.read_text()) if sources_path.is_file() else None,
    }
    write_json(destination / TRAINING_INFO_FILE, info)
    size_mb = sum(p.stat().st_size for p in destination.rglob("*") if p.is_file()) / 2**20
    print(f"exported {destination} ({size_mb:.1f} MiB)", file=sys.stderr)


def optimizer_and_schedule(model: Any, args: Any) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and LayerNorm) with a linear warm-up, then a linear
    decay to zero at ``args.steps``."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    named = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for n, p in named if not no_decay_parameter(n)],
                "weight_decay": args.weight_decay,
            },
            {"params": [p for n, p in named if no_decay_parameter(n)], "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(args.warmup_fraction * args.steps), args.steps
    )
    return optimizer, scheduler


def resume(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any, steps: int) -> int:
    """Load ``checkpoint`` into the model, optimizer and schedule if it exists; the step to
    continue from (0 for a new run)."""
    import torch

    if not checkpoint.is_file():
        return 0
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    step = int(state["step"])
    print(f"resuming at step {step}/{steps}", file=sys.stderr)
    return step


def halve_weights(weights: Path) -> None:
    """Rewrite a safetensors file with fp16 floats: half the size, loaded back as fp32."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    half = {
        key: value.to(torch.float16) if value.is_floating_point() else value
        for key, value in tensors.items()
    }
    save_file(half, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)


def no_decay_parameter(parameter_name: str) -> bool:
    return "bias" in parameter_name or "LayerNorm" in parameter_name


def check_same_args(run_dir: Path, args: Any) -> None:
    path = run_dir / ARGS_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != asdict(args):
            raise SystemExit(
                f"{run_dir} was started with other arguments ({saved}); "
                "resume with the same ones or use another --run directory"
            )
    else:
        write_json(path, asdict(args))


def save_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, step: int) -> None:
    import torch

    partial = path.with_suffix(".partial")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
        },
        partial,
    )
    os.replace(partial, path)


def write_json(path: Path, value: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every trainer shares: checkpoints, threads, early stop, export."""
    parser.add_argument("--checkpoint-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--stop-at-step", type=int, help="end the run at this step (resume later without it)"
    )
    parser.add_argument("--export", type=Path, help="write the trained model here and stop")
    parser.add_argument("--name", default=None, help="model name recorded by --export")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/.cache/data"))
    parser.add_argument("--run", type=Path, default=Path("training/.cache/run"))
    parser.add_argument("--steps", type=int, default=TrainArgs.steps)
    parser.add_argument("--batch-size", type=int, default=TrainArgs.batch_size)
    parser.add_argument("--max-seq-tokens", type=int, default=TrainArgs.max_seq_tokens)
    parser.add_argument("--learning-rate", type=float, default=TrainArgs.learning_rate)
    parser.add_argument("--hard-negatives", type=int, default=TrainArgs.hard_negatives)
    parser.add_argument("--seed", type=int, default=TrainArgs.seed)
    add_run_arguments(parser)
    options = parser.parse_args(argv)
    if options.export is not None:
        export(options.run, options.export, options.name or options.export.name)
        return
    args = TrainArgs(
        data_dir=str(options.data),
        steps=options.steps,
        batch_size=options.batch_size,
        max_seq_tokens=options.max_seq_tokens,
        learning_rate=options.learning_rate,
        seed=options.seed,
        hard_negatives=options.hard_negatives,
    )
    final_dir = train(
        args, options.run, options.checkpoint_every, options.threads, options.stop_at_step
    )
    print(f"trained model: {final_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
