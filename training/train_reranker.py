"""Train a cross-encoder reranker from all-MiniLM-L6-v2 on the mined triples, on CPU.

    python -m training.train_reranker --data training/.cache/data --run training/.cache/rerank \
        --steps 400
    python -m training.train_reranker --run training/.cache/rerank \
        --export coderag_assets/models/coderag-minilm-rerank

The encoder starts from all-MiniLM-L6-v2's weights with a fresh one-logit head
(``BertForSequenceClassification``). Each step takes ``batch_size`` triples and scores every
query against a group of its positive, its hard negatives (siblings and BM25 neighbours from the
same package) and one other triple's positive; a softmax cross-entropy over the group pushes the
positive to the top. That is the listwise form of the in-batch loss the bi-encoder trained with,
and it trains the reranker on exactly the confusion it has to settle at search time: a sibling
definition of the right file outranking the asked-for one.

Validation is the reranker's job at search time: the shipped bi-encoder ranks every validation
candidate for each query, the reranker re-scores its top ``RERANK_DEPTH``, and the run reports
MRR@10 and R@1 before and after. Checkpoints, resume and ``--stop-at-step`` work as in
``training.train``; ``--export`` writes fp16 safetensors plus ``training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.train import (
    ARGS_FILE,
    CHECKPOINT_FILE,
    LOG_FILE,
    MRR_CUTOFF,
    TRAINING_INFO_FILE,
    VALIDATION_FILE,
    Triple,
    add_run_arguments,
    batch_order,
    check_same_args,
    halve_weights,
    load_triples,
    optimizer_and_schedule,
    resume,
    save_checkpoint,
    validation_candidates,
    write_json,
)

BASE_MODEL = "all-MiniLM-L6-v2"
# The first stage whose top results the validation reranks: the shipped bi-encoder.
FIRST_STAGE_MODEL = "coderag-minilm-code"
RERANK_DEPTH = 20
# Validation queries (each scores RERANK_DEPTH pairs at the inference token limit).
VALIDATION_QUERIES = 200
INFERENCE_MAX_SEQ_TOKENS = 256


@dataclass(frozen=True)
class RerankArgs:
    """Everything that determines a run's result; a resumed run must use the same values."""

    data_dir: str
    steps: int = 400
    batch_size: int = 8
    hard_negatives: int = 3
    max_seq_tokens: int = 128
    learning_rate: float = 6e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    seed: int = 17
    # The encoder the reranker starts from: all-MiniLM-L6-v2, or the shipped code embedder
    # (the same architecture, already fine-tuned on these triples as a bi-encoder).
    init: str = BASE_MODEL


def step_groups(
    triples: Sequence[Triple], indices: Sequence[int], args: RerankArgs, step: int
) -> tuple[list[str], list[list[str]]]:
    """Each query of the step with its candidate group, the positive always first.

    A group is the positive, ``hard_negatives`` mined negatives (another triple's positive
    stands in where a triple has fewer) and one other triple's positive as an easy negative,
    so every group has the same size.
    """
    rng = random.Random(args.seed * 1_000_003 + step)
    queries: list[str] = []
    groups: list[list[str]] = []
    for position, index in enumerate(indices):
        triple = triples[index]
        negatives = [n for n in triple.negatives if n != triple.positive]
        rng.shuffle(negatives)
        others = [
            triples[indices[(position + offset) % len(indices)]].positive
            for offset in range(1, len(indices))
        ]
        others = [text for text in others if text != triple.positive]
        chosen = negatives[: args.hard_negatives]
        chosen += others[: args.hard_negatives + 1 - len(chosen)]
        queries.append(triple.query)
        groups.append([triple.positive, *chosen])
    return queries, groups


def load_base_reranker(init: str = BASE_MODEL) -> tuple[Any, Any]:
    """The encoder of ``init`` (a model name `resolve_model_path` knows) with a fresh
    one-logit head, and its tokenizer; offline."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from coderag_assets.embedding import resolve_model_path

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = resolve_model_path(init)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # "newly initialized: classifier" is the point
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, local_files_only=True, dtype="float32"
        )
    finally:
        transformers_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer


def pair_scores(
    model: Any,
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    max_seq_tokens: int,
) -> Any:
    """One logit per (query, document) pair; the document is cut to fit, never the query."""
    features = tokenizer(
        list(queries),
        list(documents),
        truncation="only_second",
        max_length=max_seq_tokens,
        padding=True,
        return_tensors="pt",
    )
    return model(**features).logits.squeeze(-1)


@dataclass(frozen=True)
class ValidationSet:
    """Validation queries with the first stage's top candidates for each."""

    triples: list[Triple]
    candidates: list[list[str]]


def first_stage_candidates(triples: Sequence[Triple]) -> ValidationSet:
    """The shipped bi-encoder's top ``RERANK_DEPTH`` among every validation candidate."""
    from sentence_transformers import SentenceTransformer

    from coderag_assets.embedding import resolve_model_path

    sample = list(triples[:VALIDATION_QUERIES])
    pool = validation_candidates(sample)
    encoder = SentenceTransformer(
        str(resolve_model_path(FIRST_STAGE_MODEL)), device="cpu", local_files_only=True
    )
    documents = encoder.encode(pool, batch_size=64, normalize_embeddings=True)
    queries = encoder.encode([t.query for t in sample], batch_size=64, normalize_embeddings=True)
    scores = np.asarray(queries) @ np.asarray(documents).T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :RERANK_DEPTH]
    return ValidationSet(sample, [[pool[i] for i in row] for row in top])


def ranking_metrics(ranked: Sequence[Sequence[str]], triples: Sequence[Triple]) -> dict[str, float]:
    """MRR@10 and R@1 of each triple's positive in its ranked list (absent counts as a miss)."""
    reciprocal, first = [], []
    for order, triple in zip(ranked, triples, strict=True):
        rank = order.index(triple.positive) + 1 if triple.positive in order else None
        reciprocal.append(1.0 / rank if rank is not None and rank <= MRR_CUTOFF else 0.0)
        first.append(rank == 1)
    return {"mrr@10": float(np.mean(reciprocal)), "r@1": float(np.mean(first))}


def validate(model: Any, tokenizer: Any, validation: ValidationSet) -> dict[str, Any]:
    """First-stage metrics and reranked metrics on the validation set."""
    import torch

    was_training = model.training
    model.eval()
    reranked = []
    with torch.no_grad():
        for triple, candidates in zip(validation.triples, validation.candidates, strict=True):
            scores = pair_scores(
                model,
                tokenizer,
                [triple.query] * len(candidates),
                candidates,
                INFERENCE_MAX_SEQ_TOKENS,
            ).numpy()
            order = np.argsort(-scores, kind="stable")
            reranked.append([candidates[i] for i in order])
    if was_training:
        model.train()
    return {
        "first_stage": ranking_metrics(validation.candidates, validation.triples),
        "reranked": ranking_metrics(reranked, validation.triples),
        "queries": len(validation.triples),
        "depth": RERANK_DEPTH,
    }


def train(
    args: RerankArgs,
    run_dir: Path,
    checkpoint_every: int,
    threads: int,
    stop_at_step: int | None = None,
) -> Path:
    """Train (or resume) the reranker in ``run_dir``; returns the final model's directory."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_same_args(run_dir, args)
    data_dir = Path(args.data_dir)
    triples = load_triples(data_dir / "triples.parquet")
    validation = first_stage_candidates(load_triples(data_dir / "validation.parquet"))
    batches = batch_order(len(triples), args)
    group = args.hard_negatives + 2
    print(
        f"{len(triples)} training triples; {args.steps} steps of {args.batch_size} queries × "
        f"{group} candidates (~{args.steps * args.batch_size / len(triples):.2f} epochs); "
        f"validation: {len(validation.triples)} queries, top {RERANK_DEPTH} of the first stage",
        file=sys.stderr,
    )

    model, tokenizer = load_base_reranker(args.init)
    optimizer, scheduler = optimizer_and_schedule(model, args)
    step = resume(run_dir / CHECKPOINT_FILE, model, optimizer, scheduler, args.steps)
    checkpoint = run_dir / CHECKPOINT_FILE
    validation_path = run_dir / VALIDATION_FILE
    results = json.loads(validation_path.read_text()) if validation_path.is_file() else {}
    if "first_stage" not in results:
        results["first_stage"] = ranking_metrics(validation.candidates, validation.triples)
        write_json(validation_path, results)
    print(f"first stage alone: {results['first_stage']}", file=sys.stderr)

    model.train()
    loss_function = torch.nn.CrossEntropyLoss()
    started = time.perf_counter()
    first_step = step
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
        last_step = min(args.steps, stop_at_step or args.steps)
        while step < last_step:
            queries, groups = step_groups(triples, batches[step], args, step)
            logits = pair_scores(
                model,
                tokenizer,
                [query for query, candidates in zip(queries, groups) for _ in candidates],
                [text for candidates in groups for text in candidates],
                args.max_seq_tokens,
            ).view(len(groups), group)
            value = loss_function(logits, torch.zeros(len(groups), dtype=torch.long))
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            per_step = (time.perf_counter() - started) / (step - first_step)
            log.write(json.dumps({"step": step, "loss": value.item(), "s": per_step}) + "\n")
            log.flush()
            if step % 10 == 0 or step == args.steps:
                print(
                    f"step {step}/{args.steps} loss {value.item():.4f} {per_step:.1f} s/step, "
                    f"~{(args.steps - step) * per_step / 60:.0f} min left",
                    file=sys.stderr,
                    flush=True,
                )
            if step % checkpoint_every == 0 or step == last_step:
                save_checkpoint(checkpoint, model, optimizer, scheduler, step)

    if results.get("trained_step") != step:
        results["trained"] = validate(model, tokenizer, validation)
        results["trained_step"] = step
        write_json(validation_path, results)
    print(f"validation after training: {results['trained']}", file=sys.stderr)
    final_dir = run_dir / "final"
    partial = final_dir.with_name("final.partial")
    if partial.exists():
        shutil.rmtree(partial)
    model.save_pretrained(str(partial))
    tokenizer.model_max_length = INFERENCE_MAX_SEQ_TOKENS
    tokenizer.save_pretrained(str(partial))
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(partial, final_dir)
    return final_dir


def export(run_dir: Path, destination: Path, name: str) -> None:
    """Write the run's final reranker to ``destination`` with fp16 weights and training.json."""
    final_dir = run_dir / "final"
    if not (final_dir / "config.json").is_file():
        raise SystemExit(f"{final_dir} holds no trained reranker; train first")
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(final_dir, destination)
    halve_weights(destination / "model.safetensors")
    args = json.loads((run_dir / ARGS_FILE).read_text())
    sources_path = Path(args["data_dir"]) / "sources.json"
    info = {
        "name": name,
        "kind": "cross-encoder reranker",
        "base_model": args.get("init", BASE_MODEL),
        "arguments": args,
        "validation": json.loads((run_dir / VALIDATION_FILE).read_text()),
        "data_sources": json.loads(sources_path.read_text()) if sources_path.is_file() else None,
    }
    write_json(destination / TRAINING_INFO_FILE, info)
    size_mb = sum(p.stat().st_size for p in destination.rglob("*") if p.is_file()) / 2**20
    print(f"exported {destination} ({size_mb:.1f} MiB)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/.cache/data"))
    parser.add_argument("--run", type=Path, default=Path("training/.cache/rerank"))
    parser.add_argument("--steps", type=int, default=RerankArgs.steps)
    parser.add_argument("--batch-size", type=int, default=RerankArgs.batch_size)
    parser.add_argument("--hard-negatives", type=int, default=RerankArgs.hard_negatives)
    parser.add_argument("--max-seq-tokens", type=int, default=RerankArgs.max_seq_tokens)
    parser.add_argument("--learning-rate", type=float, default=RerankArgs.learning_rate)
    parser.add_argument("--seed", type=int, default=RerankArgs.seed)
    parser.add_argument(
        "--init", default=RerankArgs.init, help="encoder to start from (a model name or path)"
    )
    add_run_arguments(parser)
    options = parser.parse_args(argv)
    if options.export is not None:
        export(options.run, options.export, options.name or options.export.name)
        return
    args = RerankArgs(
        data_dir=str(options.data),
        steps=options.steps,
        batch_size=options.batch_size,
        hard_negatives=options.hard_negatives,
        max_seq_tokens=options.max_seq_tokens,
        learning_rate=options.learning_rate,
        seed=options.seed,
        init=options.init,
    )
    final_dir = train(
        args, options.run, options.checkpoint_every, options.threads, options.stop_at_step
    )
    print(f"trained reranker: {final_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
