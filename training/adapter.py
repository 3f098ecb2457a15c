"""A query-side linear adapter on frozen all-MiniLM-L6-v2 vectors: the cheap alternative.

    python -m training.adapter --data training/.cache/data --out training/.cache/adapter

Chunk vectors stay exactly as indexed (nothing is re-embedded); only the query vector is mapped
through a learned matrix ``W`` (initialised to the identity) before the cosine search:
``q' = normalize(W q)``. Trained with the same contrastive objective as the fine-tune (in-batch
positives plus one hard negative per triple, scale 20) on vectors computed once with the
project's own embedder, so it takes minutes. ``W`` is written as ``query_adapter.npy``; the
quality runner applies it with ``--query-adapter``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coderag_assets.embedding import (
    MINILM_MODEL,
    Embedder,
    EmbedderSpec,
    load_embedder,
    prepare_model,
)

from .train import (
    MAX_VALIDATION_TRIPLES,
    Triple,
    load_triples,
    retrieval_metrics,
    validation_candidates,
)

ADAPTER_FILE = "query_adapter.npy"
SCALE = 20.0


def embed_triples(
    embedder: Embedder, triples: Sequence[Triple]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frozen vectors of the queries, positives and first hard negatives of ``triples``."""
    queries = embedder.embed([t.query for t in triples])
    positives = embedder.embed([t.positive for t in triples])
    negatives = embedder.embed([t.negatives[0] if t.negatives else t.positive for t in triples])
    return queries, positives, negatives


def train_adapter(
    queries: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    *,
    epochs: int = 20,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    identity_weight: float = 1e-2,
    seed: int = 13,
) -> np.ndarray:
    """The adapter matrix (dim × dim) minimising the contrastive loss plus ``‖W − I‖²``."""
    import torch

    torch.manual_seed(seed)
    dim = queries.shape[1]
    weight = torch.nn.Parameter(torch.eye(dim))
    optimizer = torch.optim.Adam([weight], lr=learning_rate)
    q_all, p_all, n_all = (
        torch.from_numpy(np.ascontiguousarray(a)) for a in (queries, positives, negatives)
    )
    identity = torch.eye(dim)
    for _ in range(epochs):
        order = torch.randperm(len(q_all))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            mapped = torch.nn.functional.normalize(q_all[index] @ weight.T, dim=1)
            candidates = torch.cat([p_all[index], n_all[index]])
            logits = SCALE * mapped @ candidates.T
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(index)))
            loss = loss + identity_weight * ((weight - identity) ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach().numpy().astype(np.float32)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("training/.cache/data"))
    parser.add_argument("--out", type=Path, default=Path("training/.cache/adapter"))
    parser.add_argument("--max-triples", type=int, default=8000)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/models"))
    options = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(13)
    triples = load_triples(options.data / "triples.parquet")
    chosen = rng.choice(len(triples), size=min(options.max_triples, len(triples)), replace=False)
    sample = [triples[i] for i in sorted(chosen)]
    validation = load_triples(options.data / "validation.parquet")[:MAX_VALIDATION_TRIPLES]
    # The adapter works on the vectors the index already holds: MiniLM's, whatever the default.
    spec = EmbedderSpec(model=MINILM_MODEL, cache_dir=options.cache_dir)
    prepare_model(spec)
    embedder = load_embedder(spec)
    queries, positives, negatives = embed_triples(embedder, sample)
    candidates = validation_candidates(validation)
    documents = embedder.embed(candidates)
    v_queries = embedder.embed([t.query for t in validation])
    print(f"embedded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    adapter = train_adapter(queries, positives, negatives)
    mapped = v_queries @ adapter.T
    mapped /= np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)
    frozen = retrieval_metrics(v_queries, documents, candidates, validation)
    adapted = retrieval_metrics(mapped, documents, candidates, validation)
    result = {
        "train_triples": len(sample),
        "validation_triples": len(validation),
        "validation_mrr@10_frozen": frozen["mrr@10"],
        "validation_mrr@10_adapter": adapted["mrr@10"],
        "seconds": time.perf_counter() - started,
    }
    options.out.mkdir(parents=True, exist_ok=True)
    np.save(options.out / ADAPTER_FILE, adapter)
    (options.out / "adapter.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
