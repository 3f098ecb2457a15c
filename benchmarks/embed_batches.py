"""How `Embedder.embed` cuts texts into batches, and what each way costs, on one model load.

A cold index embeds each shard's texts on its own (a few thousand texts), so the benchmark
embeds the repository's distinct chunk texts in slices of about a shard's size (every
`--slices`-th text, so each slice has the whole length mix) and, for each slice, runs every
batching in turn, rotating which goes first. The machine's speed drifts by several per cent
over a minute here; rotating within each slice spreads that drift over all of them, where
one long run per batching would hand it to whichever ran during it. Prints each batching's
seconds, texts per second and ratio to the first, the padded tokens each feeds the model,
and the lowest cosine of its vectors to the first's.

Batchings (name: texts per batch, length rounded up to):
    fixed32/pad32   32 texts, 32 tokens (the way before the token budget)
    budget/pad32    about `BATCH_TOKENS` padded tokens a batch, 32 tokens
    budget/pad8     about `BATCH_TOKENS` padded tokens a batch, 8 tokens (the default now)

`--grid` first prints OpenVINO's microseconds per token for batch sizes at fixed lengths.

    .venv/bin/python benchmarks/embed_batches.py --package django==5.1.4
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import add_models_argument, chunk_texts, fetch_sdist, warm_embedder

BATCHINGS = {  # name: (texts per batch or None for the token budget, pad multiple)
    "fixed32/pad32": (32, 32),
    "budget/pad32": (None, 32),
    "budget/pad16": (None, 16),
    "budget/pad8": (None, 8),
}
GRID = {8: (32, 256), 32: (32, 64), 128: (8, 16, 32), 256: (4, 8, 32)}


def print_grid(embedder) -> None:
    runtime = embedder._runtime
    rng = np.random.default_rng(0)
    for length, sizes in GRID.items():
        cells = []
        for size in sizes:
            ids = rng.integers(1000, 20000, (size, length)).astype(np.int64)
            inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            inputs["token_type_ids"] = np.zeros_like(ids)
            inputs = {name: inputs[name] for name in runtime._manifest.input_names}
            runtime._forward(inputs)
            repeats = max(3, 40_000 // (size * length))
            started = time.perf_counter()
            for _ in range(repeats):
                runtime._forward(inputs)
            seconds = (time.perf_counter() - started) / repeats
            cells.append(f"{size:>3} texts {seconds / (size * length) * 1e6:5.1f} us")
        print(f"  {length:>3} tokens: " + " | ".join(cells), flush=True)


def padded_tokens(embedder, texts: list[str], size: int | None, multiple: int) -> int:
    from coderag_assets import embedding
    from coderag_assets.model_cache import padded_length

    _, lengths = embedder._runtime.prepare(texts)
    ordered = np.sort(np.asarray(lengths))[::-1]
    if size is None:
        bounds = embedding.token_budget_batches(
            ordered, embedding.BATCH_TOKENS, embedding.MAX_BATCH_TEXTS, multiple
        )
    else:
        bounds = embedding.fixed_size_batches(len(ordered), size)
    return sum(
        (end - start) * padded_length(int(ordered[start]), multiple) for start, end in bounds
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="django==5.1.4")
    parser.add_argument("--path", type=Path, help="a local tree instead of --package")
    parser.add_argument("--slices", type=int, default=16, help="slices of the texts (16: shards)")
    parser.add_argument("--every", type=int, default=1, help="take every n-th distinct text")
    parser.add_argument("--grid", action="store_true")
    parser.add_argument(
        "--only", help="comma-separated batchings to run (default: all), the first is the baseline"
    )
    parser.add_argument(
        "--release",
        choices=("trim", "model", "none"),
        default="trim",
        help="after each slice, as an indexing step after each shard: hand back the model's "
        "buffers and the C heap's free memory (trim), the model's buffers only, or nothing",
    )
    add_models_argument(parser)
    args = parser.parse_args()

    from coderag_assets import embedding
    from coderag_assets.store import release_unused_memory

    root = args.path.resolve() if args.path else fetch_sdist(args.package)
    data = Path(tempfile.mkdtemp(prefix="embed-batches-"))
    try:
        texts = list(chunk_texts(root, data).values())[:: args.every]
        spec, embedder = warm_embedder(args.models)
        print(f"{root}: {len(texts)} distinct texts, {args.slices} slices, {spec.model_id}")
        if args.grid:
            print_grid(embedder)
        seconds = dict.fromkeys(BATCHINGS, 0.0)
        vectors = {name: np.zeros((len(texts), embedder.dim), np.float32) for name in BATCHINGS}
        unknown = set(args.only.split(",") if args.only else []) - set(BATCHINGS)
        if unknown:
            parser.error(f"unknown batchings {sorted(unknown)}; choose from {list(BATCHINGS)}")
        names = args.only.split(",") if args.only else list(BATCHINGS)
        for index in range(args.slices):
            rows = np.arange(index, len(texts), args.slices)
            part = [texts[row] for row in rows]
            shift = index % len(names)
            cells = []
            for name in names[shift:] + names[:shift]:
                size, multiple = BATCHINGS[name]
                embedding.BATCH_PAD_MULTIPLE = multiple
                started = time.perf_counter()
                vectors[name][rows] = embedder.embed(part, batch_size=size)
                if args.release != "none":
                    embedder.release_memory()
                if args.release == "trim":
                    release_unused_memory()
                took = time.perf_counter() - started
                seconds[name] += took
                cells.append(f"{name} {took:.2f}")
            print(f"  slice {index:>2} ({len(part)} texts): " + ", ".join(cells), flush=True)
        first = names[0]
        for name in names:
            size, multiple = BATCHINGS[name]
            cosine = float(np.min(np.sum(vectors[name] * vectors[first], axis=1)))
            padded = sum(
                padded_tokens(
                    embedder, [texts[r] for r in range(i, len(texts), args.slices)], size, multiple
                )
                for i in range(args.slices)
            )
            print(
                f"{name:<14} {seconds[name]:8.2f} s  {len(texts) / seconds[name]:7.1f} texts/s  "
                f"ratio {seconds[name] / seconds[first]:.4f}  padded tokens {padded:,}  "
                f"min cosine to {first} {cosine:.6f}"
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
