"""Paired comparison of two quality runs (e.g. two embedding models) on the same queries.

    python -m benchmarks.quality.compare A/results.json B/results.json [--mode hybrid]

Each run's ``results.json`` (written by ``benchmarks.quality.run``) holds every query's first
relevant rank per mode. For each split the script prints both systems' definition-level MRR@10
and R@1, the difference B − A, and a 95 % confidence interval of that difference from a paired
bootstrap over queries (10,000 resamples, fixed seed), the same for file-level nDCG@10, plus how
many queries got better or worse (by definition MRR).
An interval that excludes 0 is a difference the query sample supports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESAMPLES = 10_000
SEED = 13


def reciprocal_ranks(per_query: dict[str, dict], keys: list[str], mode: str) -> np.ndarray:
    ranks = [per_query[key][mode]["def_rank"] for key in keys]
    return np.array([1.0 / r if r is not None and r <= 10 else 0.0 for r in ranks])


def first_hits(per_query: dict[str, dict], keys: list[str], mode: str) -> np.ndarray:
    return np.array([float(per_query[key][mode]["def_rank"] == 1) for key in keys])


def file_ndcgs(per_query: dict[str, dict], keys: list[str], mode: str) -> np.ndarray:
    return np.array([float(per_query[key][mode].get("file_ndcg", 0.0)) for key in keys])


def paired_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of b − a and its 95 % paired-bootstrap interval."""
    difference = b - a
    rng = np.random.default_rng(SEED)
    samples = rng.integers(0, len(difference), size=(RESAMPLES, len(difference)))
    means = difference[samples].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def compare(a_path: Path, b_path: Path, mode: str) -> str:
    a_queries = json.loads(a_path.read_text())["per_query"]
    b_queries = json.loads(b_path.read_text())["per_query"]
    shared = sorted(set(a_queries) & set(b_queries))
    if len(shared) != len(a_queries) or len(shared) != len(b_queries):
        print(
            f"warning: comparing the {len(shared)} queries both runs have "
            f"({len(a_queries)} in A, {len(b_queries)} in B)",
            file=sys.stderr,
        )
    groups: dict[str, list[str]] = {"all": shared}
    for key in shared:
        info = a_queries[key]
        for group in (info["split"], info.get("language"), info.get("style")):
            if group:
                groups.setdefault(group, []).append(key)
    lines = [
        (
            f"| queries ({mode}) | n | A def MRR@10 | B def MRR@10 | Δ MRR@10 [95 % CI] "
            "| A def R@1 | B def R@1 | Δ R@1 [95 % CI] | A file nDCG@10 | B file nDCG@10 "
            "| Δ file nDCG@10 [95 % CI] | better / worse |"
        ),
        "|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|",
    ]
    order = ["all", "dev", "held-out", "plain", "identifier", "architecture"]
    ranked = sorted(groups, key=lambda g: (order.index(g) if g in order else len(order), g))
    for group in ranked:
        keys = groups[group]
        a_rr, b_rr = (
            reciprocal_ranks(a_queries, keys, mode),
            reciprocal_ranks(b_queries, keys, mode),
        )
        a_r1, b_r1 = first_hits(a_queries, keys, mode), first_hits(b_queries, keys, mode)
        mrr = paired_interval(a_rr, b_rr)
        r1 = paired_interval(a_r1, b_r1)
        a_nd, b_nd = file_ndcgs(a_queries, keys, mode), file_ndcgs(b_queries, keys, mode)
        nd = paired_interval(a_nd, b_nd)
        better, worse = int(np.sum(b_rr > a_rr)), int(np.sum(b_rr < a_rr))
        lines.append(
            f"| {group} | {len(keys)} | {a_rr.mean():.3f} | {b_rr.mean():.3f} "
            f"| {mrr[0]:+.3f} [{mrr[1]:+.3f}, {mrr[2]:+.3f}] | {a_r1.mean():.3f} "
            f"| {b_r1.mean():.3f} | {r1[0]:+.3f} [{r1[1]:+.3f}, {r1[2]:+.3f}] "
            f"| {a_nd.mean():.3f} | {b_nd.mean():.3f} | {nd[0]:+.3f} [{nd[1]:+.3f}, {nd[2]:+.3f}] "
            f"| {better} / {worse} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="results.json of the reference run")
    parser.add_argument("b", type=Path, help="results.json of the candidate run")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "vector", "bm25"))
    args = parser.parse_args(argv)
    print(compare(args.a, args.b, args.mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
