"""Resolve every benchmark answer to a line range in the pinned sources, or fail loudly.

An answer ``(path, qualified symbol)`` resolves through the chunker's own symbol extraction:
its range runs from the first to the last line of the definition (all same-named definitions
together, e.g. ``typing.overload`` stubs or a Rust type's struct and ``impl`` blocks), from the
name's line, or from the first doc-comment chunk when the chunker gave a long doc comment chunks
of its own (so a result holding only that documentation still counts). An empty
symbol is a file-level answer: its range is the whole file. Run as a script to check the ground
truth:
``python -m benchmarks.quality.ground_truth``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from coderag_assets.chunking import Chunk, chunk_file, language_for_path

from .corpora import ALL_CORPORA, fetch
from .heldout import HELDOUT_QUERIES
from .queries import FILE, QUERIES, Query

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
        text = file_path.read_text(encoding="utf-8")
        if symbol == FILE:
            answers.append(Answer(path, symbol, 1, max(1, len(text.splitlines()))))
            continue
        chunked = chunk_file(path, text, language_for_path(path))
        matches = [s for s in chunked.symbols if s.qualified_name == symbol]
        if not matches:
            raise GroundTruthError(f"{query.text!r}: no symbol {symbol} in {root.name}/{path}")
        start = min(_documented_start(s.line, symbol, chunked.chunks) for s in matches)
        answers.append(Answer(path, symbol, start, max(s.end_line for s in matches)))
    return answers


def _documented_start(name_line: int, symbol: str, chunks: list[Chunk]) -> int:
    """Where the answer starts: the definition's name line, or, when the chunker cut a long doc
    comment (Rust ``///``, Go ``//``, JSDoc) into chunks of its own labelled with the
    definition's symbol, the first of those chunks, so a result holding only the documentation
    still counts. Shorter doc comments share the name's chunk and leave the range as it was."""
    own = sorted((c for c in chunks if c.symbol == symbol), key=lambda c: c.start_line)
    containing = next((c for c in own if c.start_line <= name_line <= c.end_line), None)
    if containing is None:
        return name_line
    start, boundary = name_line, containing.start_line
    for chunk in reversed([c for c in own if c.end_line < containing.start_line]):
        if chunk.end_line + 2 < boundary:  # not adjacent: another definition's chunk
            break
        start = boundary = chunk.start_line
    return start


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
        spans = ", ".join(
            f"{a.path}:{a.start_line}-{a.end_line} {a.symbol or '(file)'}" for a in answers
        )
        print(f"[{query.corpus}] {query.text!r} -> {spans}")
    print(f"{len(resolved)} queries resolved", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
