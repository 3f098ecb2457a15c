"""Promotion gates: what a candidate index version must pass before `CURRENT` names it.

Plain module (no Dagster): the index asset (:mod:`coderag_assets.assets`) evaluates the gates
on the candidate and records each as an asset check (:mod:`coderag_assets.checks`).

- The integrity gates (`every_chunk_has_vector`, `chunk_count_matches_shards`,
  `no_orphan_chunks`) are the segment validation of :func:`segments.validate_segments`.
- `golden_queries`, the evaluation gate: an optional `.coderag/golden.jsonl` in the indexed
  repository, one JSON object a line::

      {"query": "parse a config file", "path": "src/config.py", "symbol": "load_config", "rank": 3}

  `query`, `path` (relative to the root) and `rank` (the result position the expected chunk
  must reach, 1 = first) are required; `symbol` (the chunk's symbol, qualified or its last
  part) and `mode` (hybrid, vector or bm25; default hybrid) are optional. Blank lines and
  lines starting with `#` are ignored. Each query is run against the candidate and against
  the live version; a query the live version answers within its rank and the candidate does
  not is a **regression**, and any regression blocks the promotion. Queries that miss on
  both are reported, not blocking (nothing regressed). A file that cannot be read as that
  format (bad JSON, a missing or mistyped field, a path or symbol not in the candidate) makes
  the gate **misconfigured**, which blocks too: fix the file, or skip the gate for one run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GOLDEN_FILE = Path(".coderag") / "golden.jsonl"
GOLDEN_GATE = "golden_queries"
INTEGRITY_GATES = ("every_chunk_has_vector", "chunk_count_matches_shards", "no_orphan_chunks")
GATE_NAMES = (*INTEGRITY_GATES, GOLDEN_GATE)
GOLDEN_MODES = ("hybrid", "vector", "bm25")


class GoldenFileError(ValueError):
    """The golden file is not in the documented format; names the file and line."""


@dataclass(frozen=True)
class GoldenQuery:
    line: int
    query: str
    path: str
    rank: int
    symbol: str | None = None
    mode: str = "hybrid"

    def label(self) -> str:
        target = f"{self.path}:{self.symbol}" if self.symbol else self.path
        return f"line {self.line} {self.query!r} -> {target} (rank <= {self.rank})"


@dataclass(frozen=True)
class GateOutcome:
    """One gate on one candidate. `passed` False with `skipped` means the run's override let
    the candidate through anyway; `misconfigured` means the gate could not be evaluated."""

    name: str
    passed: bool
    detail: str
    metadata: dict[str, object] = field(default_factory=dict)
    skipped: bool = False
    misconfigured: bool = False

    @property
    def blocks(self) -> bool:
        return not self.passed and not self.skipped


def read_golden(path: Path) -> list[GoldenQuery]:
    """The queries of the golden file at `path`; raises GoldenFileError naming the line."""
    queries = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GoldenFileError(f"{path}: cannot read it ({error})") from error
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise GoldenFileError(f"{where}: not valid JSON ({error})") from error
        if not isinstance(entry, dict):
            raise GoldenFileError(f"{where}: expected a JSON object, got {type(entry).__name__}")
        missing = [name for name in ("query", "path", "rank") if name not in entry]
        if missing:
            raise GoldenFileError(f"{where}: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(entry) - {"query", "path", "rank", "symbol", "mode"})
        if unknown:
            raise GoldenFileError(f"{where}: unknown field(s) {', '.join(unknown)}")
        query, rel_path, rank = entry["query"], entry["path"], entry["rank"]
        symbol, mode = entry.get("symbol"), entry.get("mode", "hybrid")
        if not isinstance(query, str) or not query.strip():
            raise GoldenFileError(f"{where}: `query` must be a non-empty string")
        if not isinstance(rel_path, str) or not rel_path.strip():
            raise GoldenFileError(f"{where}: `path` must be a non-empty string")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise GoldenFileError(f"{where}: `rank` must be an integer >= 1, got {rank!r}")
        if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
            raise GoldenFileError(f"{where}: `symbol` must be a non-empty string when given")
        if mode not in GOLDEN_MODES:
            raise GoldenFileError(f"{where}: `mode` must be one of {', '.join(GOLDEN_MODES)}")
        queries.append(GoldenQuery(number, query, rel_path.strip(), rank, symbol, mode))
    return queries


def symbol_matches(wanted: str, symbol: str) -> bool:
    """`wanted` names `symbol` (`Class.method`): the whole name or its last dotted part."""
    return symbol == wanted or symbol.rsplit(".", 1)[-1] == wanted


@dataclass(frozen=True)
class SearchHit:
    path: str
    symbol: str


Searcher = Callable[[GoldenQuery, int], Sequence[SearchHit]]
"""Runs one golden query on one version; returns its top `limit` hits, best first."""


def rank_of(query: GoldenQuery, hits: Sequence[SearchHit]) -> int | None:
    """1-based position of the first hit that is the expected chunk, or None."""
    for position, hit in enumerate(hits, start=1):
        if hit.path == query.path and (
            query.symbol is None or symbol_matches(query.symbol, hit.symbol)
        ):
            return position
    return None


def validate_targets(
    golden: Path, queries: Sequence[GoldenQuery], paths: set[str], symbols: dict[str, set[str]]
) -> None:
    """Raise GoldenFileError for a query whose path (or symbol in that path) the candidate lacks."""
    for query in queries:
        if query.path not in paths:
            raise GoldenFileError(
                f"{golden}:{query.line}: unknown path {query.path!r} (no chunk of it in the index)"
            )
        if query.symbol is not None and not any(
            symbol_matches(query.symbol, symbol) for symbol in symbols.get(query.path, ())
        ):
            raise GoldenFileError(
                f"{golden}:{query.line}: unknown symbol {query.symbol!r} in {query.path}"
            )


def golden_gate(
    root: Path,
    *,
    candidate: Searcher,
    candidate_targets: Callable[[], tuple[set[str], dict[str, set[str]]]],
    live: Searcher | None,
    skip: bool = False,
) -> GateOutcome | None:
    """Evaluate `root`'s golden file on the candidate (and the live version, when there is one).

    None when the root has no golden file. `candidate_targets` gives the candidate's paths
    and each path's symbols (for the misconfiguration check). `skip` records a failing
    outcome as overridden for this run instead of blocking.
    """
    golden = root / GOLDEN_FILE
    if not golden.is_file():
        return None
    try:
        queries = read_golden(golden)
        paths, symbols = candidate_targets()
        validate_targets(golden, queries, paths, symbols)
    except GoldenFileError as error:
        return GateOutcome(
            GOLDEN_GATE,
            False,
            f"misconfigured: {error}",
            {"golden_file": str(golden), "error": str(error)},
            skipped=skip,
            misconfigured=True,
        )
    regressions: list[str] = []
    misses: list[str] = []
    ranks: dict[str, object] = {}
    for query in queries:
        found = rank_of(query, candidate(query, query.rank))
        before = rank_of(query, live(query, query.rank)) if live is not None else None
        ranks[f"line {query.line}"] = {"candidate": found, "live": before, "needed": query.rank}
        if found is None:
            if before is not None:
                regressions.append(
                    f"{query.label()}: rank {before} live, not in the top {query.rank} now"
                )
            else:
                misses.append(query.label())
    met = len(queries) - len(regressions) - len(misses)
    detail = f"{met} of {len(queries)} golden queries reach their rank"
    if regressions:
        detail += f"; {len(regressions)} regressed: " + "; ".join(regressions)
    if misses:
        detail += f"; {len(misses)} miss on the live version too (not blocking): " + "; ".join(
            misses
        )
    metadata: dict[str, object] = {
        "golden_file": str(golden),
        "queries": len(queries),
        "met": met,
        "regressions": len(regressions),
        "missed_before_and_after": len(misses),
        "ranks": ranks,
    }
    return GateOutcome(
        GOLDEN_GATE, not regressions, detail, metadata, skipped=skip and bool(regressions)
    )


def unknown_gates(names: Sequence[str]) -> list[str]:
    return sorted(set(names) - set(GATE_NAMES))


def evaluate_candidate(store, candidate, spec, *, skip: Sequence[str] = ()) -> list[GateOutcome]:
    """Every gate on `candidate` (an :class:`indexing.Candidate` of `store`), in
    `GATE_NAMES` order; the golden gate only when the root has a golden file. Gates named in
    `skip` are evaluated and reported, but a failure does not block. The golden queries
    embed with `spec` (the model the candidate was built with)."""
    from coderag_assets.embedding import load_embedder
    from coderag_assets.search import IndexReader
    from coderag_assets.store import IndexNotFoundError

    skipped = set(skip)
    outcomes = [
        GateOutcome(
            check.name,
            check.passed,
            check.detail,
            skipped=check.name in skipped and not check.passed,
        )
        for check in candidate.checks
    ]
    root = Path(store.root)
    if not (root / GOLDEN_FILE).is_file():
        absent = f"no {GOLDEN_FILE} in the repository: no golden queries to run"
        return [*outcomes, GateOutcome(GOLDEN_GATE, True, absent, {"queries": 0})]
    readers: list[IndexReader] = []
    vectors: dict[str, object] = {}

    def searcher(reader: IndexReader) -> Searcher:
        def search(query: GoldenQuery, limit: int) -> list[SearchHit]:
            vector = None
            if query.mode != "bm25":
                if query.query not in vectors:
                    vectors[query.query] = load_embedder(spec).embed_query(query.query)
                vector = vectors[query.query]
            results = reader.search(
                query.query,
                mode=query.mode,
                limit=limit,
                query_vector=vector,  # type: ignore[arg-type]
            )
            return [SearchHit(result.path, result.symbol) for result in results]

        return search

    try:
        pinned = IndexReader(store.index_path, version=candidate.version(store))
        readers.append(pinned)
        live_search: Searcher | None = None
        try:
            live = IndexReader(store.index_path)
            readers.append(live)
            if live.meta.get("model_id") == spec.model_id:
                live_search = searcher(live)
        except IndexNotFoundError:
            pass  # a first index: nothing to regress from

        def targets() -> tuple[set[str], dict[str, set[str]]]:
            symbols: dict[str, set[str]] = {}
            for path, symbol in zip(pinned.paths, pinned.symbols, strict=True):
                symbols.setdefault(path, set()).add(symbol or "")
            return set(symbols), symbols

        outcome = golden_gate(
            root,
            candidate=searcher(pinned),
            candidate_targets=targets,
            live=live_search,
            skip=GOLDEN_GATE in skipped,
        )
    finally:
        for reader in readers:
            reader.close()
    if outcome is not None:
        outcomes.append(outcome)
    return outcomes
