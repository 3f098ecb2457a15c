"""The indexing step's embed stage against a bare encode of the same texts, in one process.

For each shard of a repository chunked as a cold index chunks it, two ways of embedding its
distinct texts run back to back, the order alternating from shard to shard:

    bare    `Embedder.embed` of the texts, then the release a step makes after its shard
    stage   `indexing.build_embeddings` of the shard in a scratch store holding only its
            chunk file (nothing cached): reading the texts, the length-sorted windows, the
            vector-cache writes, the shard's embeddings file and the release

Both use one loaded model. Prints each shard's seconds, the totals and the ratio
stage / bare. A ratio of 1 means the stage adds nothing measurable to inference, so the
cold index's distance from the bare encode rate is the work outside the stage
(`benchmarks/index_throughput.py` prints the stage's share of the run). Between processes
the same comparison carries the machine's drift and each process's own speed; here the
shard-to-shard swings (±10 % on 15 s) cancel in the sum.

    .venv/bin/python benchmarks/embed_stage.py --package django==5.1.4
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import add_models_argument, chunk_texts, fetch_sdist, warm_embedder


def _scratch_store(chunked, shard: str, directory: Path, root: Path):
    """A store under `directory` holding only `shard`'s chunk file, copied from `chunked`:
    nothing in it is embedded or cached yet."""
    from coderag_assets.store import IndexStore

    scratch = IndexStore.for_root(directory, root)
    scratch.register(16)
    scratch.shard_file("chunks", shard).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(chunked.shard_file("chunks", shard), scratch.shard_file("chunks", shard))
    return scratch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="django==5.1.4")
    parser.add_argument("--path", type=Path, help="a local tree instead of --package")
    add_models_argument(parser)
    args = parser.parse_args()

    import polars as pl

    from coderag_assets import indexing
    from coderag_assets.partitions import shard_keys
    from coderag_assets.store import IndexStore, release_unused_memory

    root = args.path.resolve() if args.path else fetch_sdist(args.package)
    work = Path(tempfile.mkdtemp(prefix="embed-stage-"))
    try:
        chunk_texts(root, work / "chunked")  # 16 shards' chunk files, as a cold index writes
        chunked = IndexStore.for_root(work / "chunked", root)
        spec, embedder = warm_embedder(args.models)
        print(f"{root}: 16 shards, {spec.model_id}")
        totals = {"bare": 0.0, "stage": 0.0}
        for index, shard in enumerate(shard_keys(16)):
            rows = pl.from_arrow(
                chunked.read_shard(
                    "chunks", shard, indexing.CHUNK_SCHEMA, columns=indexing.EMBED_COLUMNS
                )
            ).unique("content_hash", keep="first", maintain_order=True)
            texts = [
                indexing.chunk_from_row(row).embedding_text for row in rows.iter_rows(named=True)
            ]
            seconds: dict[str, float] = {}
            scratch = _scratch_store(chunked, shard, work / f"stage-{shard}", root)
            for way in ("bare", "stage") if index % 2 == 0 else ("stage", "bare"):
                started = time.perf_counter()
                if way == "bare":
                    embedder.embed(texts)
                    embedder.release_memory()
                    release_unused_memory()
                else:
                    stats = indexing.build_embeddings(scratch, shard, spec, run_id="embed-stage")
                    embedded = stats.embedded
                seconds[way] = time.perf_counter() - started
            shutil.rmtree(work / f"stage-{shard}")
            if embedded != len(texts):
                print(f"shard {shard}: the stage embedded {embedded}, not {len(texts)}")
                return 1
            for way in totals:
                totals[way] += seconds[way]
            print(
                f"  shard {shard} ({len(texts):>5} texts): bare {seconds['bare']:6.2f} s, "
                f"stage {seconds['stage']:6.2f} s ({seconds['stage'] / seconds['bare'] - 1:+.1%})",
                flush=True,
            )
        print(
            f"bare {totals['bare']:.1f} s, stage {totals['stage']:.1f} s, "
            f"ratio stage / bare {totals['stage'] / totals['bare']:.4f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
