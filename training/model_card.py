"""Write the model card (README.md) of an exported model from its training.json.

    python -m training.model_card coderag_assets/models/coderag-minilm-code \
        --evaluation training/evaluation.md
    python -m training.model_card coderag_assets/models/coderag-minilm-rerank \
        --evaluation training/evaluation-reranker.md

Both the embedder (``training.train``) and the cross-encoder reranker
(``training.train_reranker``) get a card; training.json's ``kind`` tells them apart.

The card lists every package the triples came from (version, registry, licence, triples, or why
it was left out), the exact commands and arguments of the run, the trainer's own validation
numbers, and the search-quality results given in ``--evaluation`` (Markdown, written from the
benchmark's output).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .train import TRAINING_INFO_FILE

LANGUAGE_NAMES = {"python": "Python", "js": "JavaScript/TypeScript"}


def render(model_dir: Path, evaluation: str) -> str:
    info = json.loads((model_dir / TRAINING_INFO_FILE).read_text(encoding="utf-8"))
    sources: list[dict[str, Any]] = info["data_sources"] or []
    used = [s for s in sources if not s.get("skipped")]
    left_out = [s for s in sources if s.get("skipped")]
    train_triples = sum(s["triples"] for s in used if s.get("split") == "train")
    validation_triples = sum(s["triples"] for s in used if s.get("split") != "train")
    by_language: dict[str, int] = {}
    for source in used:
        by_language[source["language"]] = by_language.get(source["language"], 0) + source["triples"]
    reranker = info.get("kind") == "cross-encoder reranker"
    intro = _RERANKER_INTRO if reranker else _EMBEDDER_INTRO
    lines = [f"# {info['name']}", "", intro.format(base=info["base_model"], name=info["name"]), ""]
    lines += [
        "## Training data",
        "",
        (
            f"{train_triples:,} training and {validation_triples:,} validation triples "
            f"({', '.join(f'{LANGUAGE_NAMES.get(lang, lang)} {count:,}' for lang, count in sorted(by_language.items()))}), "
            "built by `python -m training.build_data` from the packages below with CodeRAG's own "
            "file walker and chunker. The query is the first sentence or two of a definition's "
            "docstring or JSDoc, cleaned of markup; the positive is the text the index embeds for "
            "that definition with the docstring removed; up to three hard negatives per triple. "
            "Validation packages are held out whole."
        ),
        "",
        (
            "Never in the data: `requests`, `click`, `rich` (kept for an independent check), the "
            "search-quality benchmark's corpora and any package carrying a copy of one of them."
        ),
        "",
        "| package | version | registry | licence | split | triples |",
        "|---|---|---|---|---|---:|",
    ]
    for source in used:
        lines.append(
            f"| {source['package']} | {source['version']} | {source['registry']} "
            f"| {source['licence']} | {source['split']} | {source['triples']:,} |"
        )
    if left_out:
        lines += ["", "Fetched but left out:", ""]
        lines += [f"- {s['package']} {s['version']}: {s['skipped']}" for s in left_out]
    lines += _reranker_training(info) if reranker else _embedder_training(info)
    lines += [
        "## Evaluation",
        "",
        evaluation.strip(),
        "",
        "## Licence",
        "",
        (
            f"Apache-2.0, as `{info['base_model']}`. The training data are only used to train; "
            "no source text is shipped with the weights."
        ),
        "",
    ]
    return "\n".join(lines)


_EMBEDDER_INTRO = (
    "A sentence-transformers model for code search: `{base}` (same architecture: 6 layers, "
    "384 dimensions, mean pooling, 256 tokens) fine-tuned on (docstring summary → code without "
    "its docstring) pairs mined from permissively licensed PyPI and npm packages, with sibling "
    "definitions and BM25 neighbours as hard negatives. It is CodeRAG's embedding model; it "
    "loads offline by name (`CODERAG_MODEL={name}`). Weights are stored as fp16 safetensors and "
    "load as fp32."
)
_RERANKER_INTRO = (
    "A cross-encoder reranker for code search: `{base}`'s encoder (6 layers, 384 hidden) with "
    "a one-logit head, trained on the same (docstring summary → code without its docstring) "
    "triples as CodeRAG's embedder. It reads a query and one candidate chunk together and "
    "scores their relevance; CodeRAG uses it to re-score the top results of a search "
    "(`coderag search --rerank`, MCP `search(rerank=true)`, `CODERAG_RERANK=1`). Weights are "
    "stored as fp16 safetensors and load as fp32."
)


# How every card's training commands start: install, then build the triples.
_TRAINING_PREAMBLE = (
    "",
    "## Training",
    "",
    "```bash",
    ".venv/bin/pip install -e '.[training]'",
    "python -m training.build_data --out training/.cache/data",
)


def _embedder_training(info: dict[str, Any]) -> list[str]:
    args, validation = info["arguments"], info["validation"]
    return [
        *_TRAINING_PREAMBLE,
        (
            "python -m training.train --data training/.cache/data --run training/.cache/run "
            f"--steps {args['steps']} --batch-size {args['batch_size']} "
            f"--max-seq-tokens {args['max_seq_tokens']} --learning-rate {args['learning_rate']} "
            f"--hard-negatives {args['hard_negatives']} --seed {args['seed']}"
        ),
        (
            f"python -m training.train --run training/.cache/run --export "
            f"coderag_assets/models/{info['name']}"
        ),
        "```",
        "",
        (
            "Loss: sentence-transformers' `MultipleNegativesRankingLoss` (scale "
            f"{args['scale']}): each query against every positive and hard negative of its batch. "
            f"AdamW, learning rate {args['learning_rate']} with {args['warmup_fraction']:.0%} "
            f"linear warm-up then linear decay, weight decay {args['weight_decay']}, gradient "
            f"clipping at 1.0; {args['steps']} steps of {args['batch_size']} triples with "
            f"{args['hard_negatives']} hard negative each, texts cut at {args['max_seq_tokens']} "
            "tokens while training (the model embeds up to 256). CPU only (2 cores); resumable "
            "from checkpoints."
        ),
        "",
        (
            "Trainer's validation (each validation query against every validation positive and "
            "negative):"
        ),
        "",
        "| | MRR@10 | R@1 |",
        "|---|---:|---:|",
        (
            f"| {info['base_model']} | {validation['base']['mrr@10']:.3f} "
            f"| {validation['base']['r@1']:.3f} |"
        ),
        (
            f"| {info['name']} | {validation['trained']['mrr@10']:.3f} "
            f"| {validation['trained']['r@1']:.3f} |"
        ),
        "",
    ]


def _reranker_training(info: dict[str, Any]) -> list[str]:
    args, validation = info["arguments"], info["validation"]
    first, trained = validation["first_stage"], validation["trained"]["reranked"]
    depth = validation["trained"]["depth"]
    return [
        *_TRAINING_PREAMBLE,
        (
            "python -m training.train_reranker --data training/.cache/data "
            f"--run training/.cache/rerank --steps {args['steps']} "
            f"--batch-size {args['batch_size']} --hard-negatives {args['hard_negatives']} "
            f"--max-seq-tokens {args['max_seq_tokens']} --learning-rate {args['learning_rate']} "
            f"--seed {args['seed']} --init {args.get('init', 'all-MiniLM-L6-v2')}"
        ),
        (
            "python -m training.train_reranker --run training/.cache/rerank --export "
            f"coderag_assets/models/{info['name']}"
        ),
        "```",
        "",
        (
            f"Each step scores {args['batch_size']} queries against a group of their positive, "
            f"{args['hard_negatives']} hard negatives and one other query's positive; loss: "
            "softmax cross-entropy over the group (the positive must come first). AdamW, "
            f"learning rate {args['learning_rate']} with {args['warmup_fraction']:.0%} linear "
            f"warm-up then linear decay, weight decay {args['weight_decay']}, gradient clipping "
            f"at 1.0; {args['steps']} steps, pairs cut at {args['max_seq_tokens']} tokens while "
            "training (256 when reranking). CPU only (2 cores); resumable from checkpoints."
        ),
        "",
        (
            f"Trainer's validation: for each of {validation['trained']['queries']} validation "
            f"queries the shipped embedder ranks every validation candidate, and the reranker "
            f"re-orders its top {depth}:"
        ),
        "",
        "| | MRR@10 | R@1 |",
        "|---|---:|---:|",
        f"| embedder alone | {first['mrr@10']:.3f} | {first['r@1']:.3f} |",
        f"| {info['name']}'s order of those 20 | {trained['mrr@10']:.3f} | {trained['r@1']:.3f} |",
        "",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--evaluation", type=Path, required=True, help="Markdown results")
    options = parser.parse_args(argv)
    card = render(options.model_dir, options.evaluation.read_text(encoding="utf-8"))
    (options.model_dir / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main()
