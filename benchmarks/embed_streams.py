"""One inference stream against several, alternated in one process on one machine state.

With `CODERAG_INFERENCE_STREAMS=N` an indexing step embeds with `EmbedderSpec.streams =
bulk_streams(threads, N)`: OpenVINO runs that many batches at once, each on its share of the
threads, where one stream runs each batch on every thread and the threads meet at every
layer. This embeds a repository's
distinct chunk texts in slices of about a shard's size (every `--slices`-th text, so each
slice has the whole length mix), each slice with both specs in turn, alternating which goes
first: the machine's speed drifts by several per cent over a minute here, and alternating
within each slice spreads that drift over both. Prints each spec's seconds, texts per
second and CPU seconds, their ratio, and the lowest cosine between the two specs' vectors
(the same model and precision: they must agree). Memory is `index_throughput.py`'s and
`memory.py`'s to measure: both models are loaded here.

    .venv/bin/python benchmarks/embed_streams.py --package django==5.1.4 [--threads 2] [--streams 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import add_models_argument, chunk_texts, fetch_sdist


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="django==5.1.4")
    parser.add_argument("--path", type=Path, help="embed this local tree's chunks instead")
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--streams", type=int, default=2, help="the streams to compare with one")
    add_models_argument(parser)
    args = parser.parse_args()

    from coderag_assets.embedding import EmbedderSpec, bulk_streams, load_embedder, prepare_model

    root = (args.path or fetch_sdist(args.package)).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="embed-streams-"))
    try:
        texts = list(chunk_texts(root, scratch).values())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one = EmbedderSpec(cache_dir=args.models.resolve(), threads=args.threads)
    bulk = EmbedderSpec(
        cache_dir=args.models.resolve(), threads=args.threads, streams=bulk_streams(args.threads, args.streams)
    )
    if bulk.streams == 1:
        print(f"{args.threads} thread(s) hold one stream: nothing to compare")
        return 1
    prepare_model(one)
    specs = {f"streams={spec.streams}": spec for spec in (one, bulk)}
    embedders = {name: load_embedder(spec) for name, spec in specs.items()}
    for embedder in embedders.values():
        embedder.embed(texts[:64])
        embedder.release_memory()
    print(f"{root}: {len(texts)} texts in {args.slices} slices, {args.threads} threads")
    seconds = dict.fromkeys(specs, 0.0)
    cpu = dict.fromkeys(specs, 0.0)
    lowest_cosine = 1.0
    for number in range(args.slices):
        part = texts[number :: args.slices]
        names = list(specs) if number % 2 == 0 else list(reversed(specs))
        vectors, took = {}, {}
        for name in names:
            started, cpu_started = time.perf_counter(), time.process_time()
            vectors[name] = embedders[name].embed(part)
            embedders[name].release_memory()  # as an indexing step does after its shard
            took[name] = time.perf_counter() - started
            seconds[name] += took[name]
            cpu[name] += time.process_time() - cpu_started
        first, second = vectors.values()
        lowest_cosine = min(lowest_cosine, float(np.min(np.sum(first * second, axis=1))))
        print(
            f"  slice {number + 1}: "
            + ", ".join(f"{name} {len(part) / took[name]:.1f}" for name in names)
            + " texts/s",
            flush=True,
        )
    baseline = next(iter(specs))
    for name in specs:
        print(
            f"{name}: {seconds[name]:.1f} s, {len(texts) / seconds[name]:.1f} texts/s, "
            f"CPU {cpu[name]:.1f} s, {seconds[baseline] / seconds[name]:.3f}x the texts/s of "
            f"{baseline}"
        )
    print(f"lowest cosine between the two specs' vectors: {lowest_cosine:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
