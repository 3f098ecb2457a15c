"""Resolve every benchmark answer to a line range in the pinned sources, or fail loudly.

An answer ``(path, qualified symbol)`` resolves through the chunker's own symbol extraction:
its range runs from the first to the last line of the definition (all same-named definitions
together, e.g. ``typing.overload`` stubs). Run as a script to check the ground truth:
``python -m benchmarks.quality.ground_truth``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from coderag_assets.chunking import chunk_file, language_for_path

from .corpora import ALL_CORPORA, fetch
from .heldout import HELDOUT_QUERIES
from .queries import QUERIES, Query

ALL_QUERIES: tuple[Query, ...] = QUERIES + HELDOUT_QUERIES


class GroundTruthError(RuntimeError):
    """An answer no longer resolves against the pinned sources."""


@dataclass(frozen=True, slots=True)
class Answer:
    path: str
    symbol: str
    start_line: int
    end_line: int


def resolve(query: Query, root: Path) -> list[Answer]:
    """The answers of ``query`` with line ranges; raises GroundTruthError when one is missing."""
    if not 1 <= len(query.answers) <= 3:
        raise GroundTruthError(f"{query.text!r}: needs one to three answers")
    answers: list[Answer] = []
    for path, symbol in query.answers:
        file_path = root / path
        if not file_path.is_file():
            raise GroundTruthError(f"{query.text!r}: {path} is not in {root.name}")
        chunked = chunk_file(path, file_path.read_text(encoding="utf-8"), language_for_path(path))
        matches = [s for s in chunked.symbols if s.qualified_name == symbol]
        if not matches:
            raise GroundTruthError(f"{query.text!r}: no symbol {symbol} in {root.name}/{path}")
        answers.append(
            Answer(path, symbol, min(s.line for s in matches), max(s.end_line for s in matches))
        )
    return answers


def resolve_all(sources_dir: Path) -> dict[Query, list[Answer]]:
    roots = {corpus.name: fetch(corpus, sources_dir) for corpus in ALL_CORPORA}
    unknown = {query.corpus for query in ALL_QUERIES} - roots.keys()
    if unknown:
        raise GroundTruthError(f"queries name unknown corpora: {sorted(unknown)}")
    return {query: resolve(query, roots[query.corpus]) for query in ALL_QUERIES}


def main() -> int:
    from .run import default_work_dir

    resolved = resolve_all(default_work_dir() / "sources")
    for query, answers in resolved.items():
        spans = ", ".join(f"{a.path}:{a.start_line}-{a.end_line} {a.symbol}" for a in answers)
        print(f"[{query.corpus}] {query.text!r} -> {spans}")
    print(f"{len(resolved)} queries resolved", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
