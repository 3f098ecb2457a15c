"""The ranking steps applied to fused candidates: plain, typed functions on candidate lists.

`search.IndexReader` fuses its rankers (BM25, vector) by weighted reciprocal rank, turns every
fused row into a `Candidate` (score on a 0..1 scale plus what the steps read: path, symbol,
definition run, the stored per-chunk features) and calls `rank_candidates`, which applies, in
order:

1. **demotions** — module glue, test files, docs/config, and noise paths (`examples/`,
   `docs_src/`, `compat/`, `legacy/`, `benches/`, `.d.ts` typings) multiply the score by their
   factor; glue inside a re-export hub (`mod.rs`, `index.ts`, `__init__.py`) has a factor of its
   own, so a hub can still be the answer;
2. **name and path boosts** — the share of a definition's name words the query contains, and the
   **path prior**: the share of the query's keywords (longer than 2 characters, not stopwords)
   that prefix-match (`prefix_match`) a word of the file's stem or of its parent directory's name,
   weighted by the top score (off by default);
3. **exact definitions** — for an identifier query (`parse_query`: a bare name such as
   `APIRouter`, `a::b`, `pkg.Func`, or 2–6 plain words that spell a defined name, "scroll to
   offset" → `scrollToOffset`: `spelled_names`) the rows defining exactly that name (found by
   `search` in the symbol postings) gain a multiple of the top score and are added when no
   ranker retrieved them;
4. **collapse** — one result per run of consecutive chunks of one definition;
5. **file-level evidence** — every file ranked as one document (BM25 over its summed term
   counts, the mean cosine of its chunks, fused by reciprocal rank); the best candidate of
   each file gains `× top ×` its file's fused score (`file_score`, filled by `search`);
6. **file pooling** — each file's candidate scores are summed; the best chunk of every file gains
   `pool_weight × top score × (its file's sum ÷ the largest file sum)`: central files that many
   chunks point at rise (by default for architecture questions only);
7. **repeat demotion** — every further chunk of an already-chosen file is multiplied by
   `file_repeat_factor` per repeat, and deeper candidates refill the freed places.

Every weight is a field of `RankingConfig`; `benchmarks/quality` measures what each gains
(docs/quality.md). Nothing here reads an index: `search` does, and the tests drive these
functions with hand-built candidate lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from coderag_assets.tokens import STOPWORDS, identifier_parts

QueryKind = Literal["plain", "identifier", "architecture"]

#: A bare name: `APIRouter`, `get_netrc_auth`, `a::b`, `pkg.Func`, `Router#handle`, `$el`,
#: optionally followed by `()`. Only these characters, no spaces.
_IDENTIFIER_QUERY_RE = re.compile(
    r"^[A-Za-z_$][A-Za-z0-9_$]*(?:(?:::|\.|#|->)[A-Za-z_$][A-Za-z0-9_$]*)*(?:\(\))?$"
)
_NAME_SEPARATOR_RE = re.compile(r"::|#|->|\.")
#: Questions about where a concern lives ("which module ...", "where is ... wired").
_ARCHITECTURE_RE = re.compile(
    r"^\s*(?:which|what|where)\b.*\b(?:file|files|module|modules|package|part|parts|layer|"
    r"code|place|component|components|wired|defined|declared|live|lives|dispatched|"
    r"implemented|implements|handled|registered)\b|^\s*where\s+(?:is|are|do|does)\b",
    re.IGNORECASE,
)
_KEYWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PATH_WORD_SPLIT_RE = re.compile(r"[-.\s]+")
MIN_KEYWORD_CHARS = 3  # keywords are longer than 2 characters
MIN_PREFIX_CHARS = 3  # two words match when they share at least this long a prefix ...
PREFIX_SLACK_CHARS = 2  # ... and at most this many characters of the shorter one differ
#: File names that say nothing by themselves: a file so named is named by its directory.
HUB_STEMS = frozenset({"mod", "index", "__init__", "lib", "main"})
_NOISE_PATH_RE = re.compile(
    r"(^|/)(_?examples?|docs_src|compat|legacy|benches|benchmarks?)/|\.d\.[cm]?ts$"
)
MAX_INJECTED_DEFINITIONS = 20  # definitions of one name an identifier query may add
MIN_SPELLED_WORDS, MAX_SPELLED_WORDS = 2, 6  # words of a query that spells a name
_SPELLED_WORD_RE = re.compile(r"^[a-z][a-z0-9]*$|^[0-9][a-z0-9]*$")


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """Weights of the ranking steps; the defaults are what the quality benchmark chose on its
    dev split (docs/quality.md, "What each step gained").

    Scores are on a 0..1 scale (fused reciprocal rank divided by its best possible value),
    then multiplied by the demotion factors and increased by the boosts. Boosts named
    "× top" are multiples of the best candidate's score at that point, so they decide the order
    among close candidates whatever the fusion's scale.
    """

    rrf_k: int = 15
    vector_weight: float = 0.9
    bm25_weight: float = 1.0
    stem: bool = True  # light stemming + query stopwords in BM25
    # Extra BM25 term count for each word of a definition's name (a name field weighted 1 + this)
    # and × share of the definition's name words the query contains. 4.0 / 0.05 (was 2.0 / 0.1)
    # gained +0.009 dev def MRR@10 [+0.000, +0.022]: a lighter name-word boost no longer lifts
    # short names (`cookie`) over longer ones that say more (`clearCookie`), and the name
    # field in BM25 carries that evidence instead (docs/quality.md, "Definition level").
    bm25_name_tf: float = 4.0
    # Okapi BM25 of the chunk ranker: term-frequency saturation k1 and length normalisation b
    # (the file-level BM25 keeps the textbook 1.2 / 0.75). A sweep on dev (b 0.3–1.0 × k1
    # 0.8–3.0, docs/quality.md "Fourth pass") found a plateau around these values, no gain.
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    symbol_boost: float = 0.05
    path_boost: float = 0.1  # × share of the file name's (stemmed) words the query contains
    glue_factor: float = 0.3  # module glue (no enclosing definition) in code files
    # Module glue for architecture questions: a module whose top level is the answer ("which
    # module holds the regular expressions ...") is mostly glue, so it is not demoted there
    # (1.0; dev architecture file nDCG@10 0.865 → 0.892, docs/quality.md "Third pass").
    architecture_glue_factor: float = 1.0
    test_factor: float = 0.3  # files under tests/, test_*.py, *.test.js, ...
    non_code_factor: float = 0.25  # docs and config: Markdown, reST, text, YAML, JSON, ...
    collapse: bool = True  # one result per run of consecutive chunks of one definition
    # × per better-ranked result from the same file (1.0: off), so one file cannot fill the
    # top 10; deeper candidates refill the places.
    file_repeat_factor: float = 0.8
    # Noise paths (examples/, docs_src/, compat/, legacy/, benches/, .d.ts): × this.
    noise_factor: float = 0.3
    # Glue chunks of re-export hubs (mod.rs, index.ts, __init__.py, ...) get this factor instead
    # of `glue_factor`: the hub is often the answer to "where is X exported".
    hub_glue_factor: float = 1.0
    # Path prior: × top × share of the query keywords prefix-matching the file stem or its
    # parent directory's name (0: off; 0.1 gained +0.002 dev def MRR@10, inside the noise).
    path_prior: float = 0.0
    # File pooling: the best chunk of each file gains × top × (file sum ÷ largest file sum).
    # Off for plain and identifier queries: 0.3 gained +0.004 dev def MRR@10 and +0.010 dev
    # file nDCG@10, both inside the noise (docs/quality.md, "The ranking stack").
    pool_weight: float = 0.0
    # Pooling counts only candidates whose score is at least this share of the top score, so
    # a long tail of weak chunks cannot make a big file look central.
    pool_floor: float = 0.5
    # Pooling weight for architecture questions ("which module ...", "where is X wired"): dev
    # architecture file nDCG@10 0.777 → 0.843.
    architecture_pool_weight: float = 1.0
    # File-level evidence (multi-granularity): every file is also ranked as one document —
    # BM25 over the file's summed term counts (a question's words spread over several of its
    # definitions still meet there) and the mean vector cosine of its chunks — and the two file
    # rankings are fused by reciprocal rank (k = `file_rrf_k`, the chunk rankers' weights).
    # The best candidate of each file gains × top × the file's fused score (0..1), for
    # architecture questions and for the other queries by their own weight (0: off, and the
    # file ranking is not computed). 0.15 for plain queries: dev file nDCG@10 +0.008
    # [+0.001, +0.019], def MRR@10 ±0; architecture questions lost with it on dev (their
    # file pooling already does that job), so 0 there.
    file_weight: float = 0.15
    architecture_file_weight: float = 0.0
    file_rrf_k: int = 5
    file_depth: int = 30  # files each file ranking contributes (the rest score 0)
    # Identifier queries (a bare name that the index defines): the vector ranker's weight is
    # multiplied by this, and each exact definition of the name gains × top (more when the
    # file stem matches the name), added when no ranker retrieved it.
    identifier_vector_factor: float = 1.0
    # A query of 2–6 plain words that spell a definition's name ("scroll to offset" →
    # `scrollToOffset`, "split off" → `split_off`) is an identifier query for that name when
    # the index defines it (`spelled_names`); False: such queries rank as plain text. Dev:
    # "split off" 3 → 1 beside `split_to`, no plain or architecture query moves
    # (docs/quality.md, "Fourth pass").
    spelled_identifiers: bool = True
    exact_definition_boost: float = 3.0
    exact_definition_stem_boost: float = 4.5
    # Reranking (only when a rescorer is passed to `IndexReader.search`, e.g. `--rerank`): the
    # first ``rerank_depth`` results are re-scored by the cross-encoder, and their final order
    # fuses the first-stage rank with the reranker's rank by reciprocal rank (k = rerank_k,
    # the reranker's rank weighted ``rerank_weight``).
    rerank_depth: int = 20
    rerank_k: int = 15
    rerank_weight: float = 0.5


DEFAULT_RANKING = RankingConfig()
#: The ranking before issue 19's steps (no noise paths, hub glue demoted like any glue, no path
#: prior, no file pooling, no identifier mode, the old name weights): the "before" of
#: docs/quality.md.
PREVIOUS_RANKING = RankingConfig(
    architecture_glue_factor=0.3,
    file_weight=0.0,
    bm25_name_tf=2.0,
    symbol_boost=0.1,
    noise_factor=1.0,
    hub_glue_factor=0.3,
    path_prior=0.0,
    pool_weight=0.0,
    pool_floor=0.0,
    architecture_pool_weight=0.0,
    identifier_vector_factor=1.0,
    exact_definition_boost=0.0,
    exact_definition_stem_boost=0.0,
    spelled_identifiers=False,
)


@dataclass(slots=True)
class Candidate:
    """One chunk being ranked: its index row, current score and what the steps read."""

    row: int
    score: float
    path: str
    symbol: str = ""  # filled for exact definitions only (no step reads it)
    run: int = -1  # definition run (consecutive chunks of one definition share it)
    is_glue: bool = False
    is_test: bool = False
    is_non_code: bool = False
    name_words: frozenset[str] = field(default_factory=frozenset)  # stemmed, see features
    file_words: frozenset[str] = field(default_factory=frozenset)  # stemmed, see features
    file_score: float = 0.0  # the file's file-level evidence, 0..1 (0: none computed)


@dataclass(frozen=True, slots=True)
class QueryInfo:
    """What the ranking knows about a query: its kind, its BM25 terms (stemmed like the
    stored name and file words), its path keywords and, for an identifier query, the name."""

    kind: QueryKind
    terms: frozenset[str]
    keywords: tuple[str, ...]
    identifier: str | None = None  # the bare name (`a::b` → `a.b`)


def identifier_of(query: str) -> str | None:
    """The name a bare-identifier query asks for (`a::b`, `Router#handle` → `a.b`,
    `Router.handle`; a trailing `()` dropped), None when the query is not one name."""
    text = query.strip()
    if not text or len(text) > 200 or not _IDENTIFIER_QUERY_RE.match(text):
        return None
    text = text.removesuffix("()")
    return ".".join(part for part in _NAME_SEPARATOR_RE.split(text) if part)


def spelled_names(query: str) -> tuple[str, ...]:
    """The names a query of 2–6 plain words (letters and digits only) may spell: the words run
    together (`scrolltooffset`, how the index stores `scrollToOffset`) and joined by
    underscores (`split_off`); empty for any other query. `search` keeps a name only when the
    index defines it."""
    words = query.lower().split()
    if not MIN_SPELLED_WORDS <= len(words) <= MAX_SPELLED_WORDS:
        return ()
    if not all(_SPELLED_WORD_RE.match(word) for word in words):
        return ()
    return ("".join(words), "_".join(words))


def query_keywords(query: str) -> tuple[str, ...]:
    """Distinct lowercased words of the query longer than 2 characters, not stopwords
    (identifiers split into their words), in order: what the path prior matches."""
    words: list[str] = []
    for match in _KEYWORD_RE.finditer(query):
        for word in identifier_parts(match.group(0)) or [match.group(0).lower()]:
            if len(word) >= MIN_KEYWORD_CHARS and word not in STOPWORDS and word not in words:
                words.append(word)
    return tuple(words)


def parse_query(
    query: str,
    terms: Iterable[str],
    *,
    has_definition: bool = False,
    identifier: str | None = None,
) -> QueryInfo:
    """Classify `query`: `identifier` when it is a bare name (or `identifier` is given: a name
    the query spells, `spelled_names`) and `has_definition` (the index defines that name —
    otherwise it ranks as plain text), `architecture` for "which module / where is ..."
    questions, else `plain`."""
    identifier = identifier or identifier_of(query)
    if identifier is not None and has_definition:
        kind: QueryKind = "identifier"
    elif _ARCHITECTURE_RE.search(query):
        kind = "architecture"
    else:
        kind = "plain"
    return QueryInfo(kind, frozenset(terms), query_keywords(query), identifier)


def prefix_match(word: str, other: str) -> bool:
    """True when the two words share a prefix of at least `MIN_PREFIX_CHARS` characters that
    leaves at most `PREFIX_SLACK_CHARS` of the shorter word unmatched: `logging`/`logger`,
    `route`/`router`, `config`/`configure` match; `content`/`configure` do not."""
    shorter = min(len(word), len(other))
    if shorter < MIN_PREFIX_CHARS:
        return word == other
    common = 0
    for left, right in zip(word, other, strict=False):
        if left != right:
            break
        common += 1
    return common >= max(MIN_PREFIX_CHARS, shorter - PREFIX_SLACK_CHARS)


def path_words(path: str) -> tuple[str, ...]:
    """Lowercased words of a file's stem and of its parent directory's name
    (`src/logging/handlers.py` → handlers, logging); a hub stem (`mod`, `index`, ...) adds
    nothing of its own."""
    parts = path.split("/")
    stem_name = parts[-1].split(".", 1)[0]
    names = [] if stem_name in HUB_STEMS else [stem_name]
    if len(parts) > 1:
        names.append(parts[-2])
    words: list[str] = []
    for name in names:
        for piece in _PATH_WORD_SPLIT_RE.split(name):
            for word in identifier_parts(piece):
                if word not in words:
                    words.append(word)
    return tuple(words)


def is_hub_path(path: str) -> bool:
    """True for re-export hubs: `mod.rs`, `index.ts`/`.js`, `__init__.py`, `lib.rs`, ..."""
    return path.rsplit("/", 1)[-1].split(".", 1)[0] in HUB_STEMS


def is_noise_path(path: str) -> bool:
    """True for code that is rarely the answer: examples, docs sources, compatibility and
    legacy shims, benchmarks, TypeScript declaration files."""
    return _NOISE_PATH_RE.search(path) is not None


def path_prior_share(path: str, keywords: Sequence[str]) -> float:
    """Share of `keywords` that prefix-match a word of the file's stem or parent directory."""
    if not keywords:
        return 0.0
    words = path_words(path)
    if not words:
        return 0.0
    matched = sum(1 for keyword in keywords if any(prefix_match(keyword, w) for w in words))
    return matched / len(keywords)


# ---------------------------------------------------------------- the steps


def _top_score(candidates: Sequence[Candidate]) -> float:
    return max((c.score for c in candidates), default=0.0)


def sort_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """Best first; ties by row (deterministic)."""
    candidates.sort(key=lambda c: (-c.score, c.row))
    return candidates


def demote(candidates: list[Candidate], config: RankingConfig, kind: QueryKind = "plain") -> None:
    """Multiply glue, test, docs/config and noise-path candidates by their factors (in place);
    an architecture question demotes glue by `architecture_glue_factor`."""
    glue_factor = config.architecture_glue_factor if kind == "architecture" else config.glue_factor
    for candidate in candidates:
        if candidate.is_glue:
            hub = is_hub_path(candidate.path)
            candidate.score *= config.hub_glue_factor if hub else glue_factor
        if candidate.is_test:
            candidate.score *= config.test_factor
        if candidate.is_non_code:
            candidate.score *= config.non_code_factor
        if config.noise_factor != 1.0 and is_noise_path(candidate.path):
            candidate.score *= config.noise_factor


def boost_names(candidates: list[Candidate], query: QueryInfo, config: RankingConfig) -> None:
    """Add the definition-name and file-name word boosts (in place)."""
    for candidate in candidates:
        if config.symbol_boost and candidate.name_words:
            shared = len(candidate.name_words & query.terms)
            candidate.score += config.symbol_boost * shared / len(candidate.name_words)
        if config.path_boost and candidate.file_words:
            shared = len(candidate.file_words & query.terms)
            candidate.score += config.path_boost * shared / len(candidate.file_words)


def apply_path_prior(
    candidates: list[Candidate], keywords: Sequence[str], weight: float, top: float
) -> None:
    """Add `weight × top × path_prior_share` to every candidate (in place)."""
    if not weight or not keywords:
        return
    shares: dict[str, float] = {}
    for candidate in candidates:
        share = shares.get(candidate.path)
        if share is None:
            share = shares[candidate.path] = path_prior_share(candidate.path, keywords)
        candidate.score += weight * top * share


def boost_exact_definitions(
    candidates: list[Candidate],
    definitions: Sequence[Candidate],
    identifier: str,
    config: RankingConfig,
    top: float,
) -> list[Candidate]:
    """Give every exact definition of `identifier` `exact_definition_boost × top` (the stem
    boost instead when the file's stem spells the name), adding the definitions no ranker
    retrieved; returns the candidate list (the given one, extended)."""
    if not config.exact_definition_boost or not definitions:
        return candidates
    by_row = {c.row: c for c in candidates}
    name = identifier.rsplit(".", 1)[-1].lower()
    for definition in definitions[:MAX_INJECTED_DEFINITIONS]:
        candidate = by_row.get(definition.row)
        if candidate is None:
            candidate = definition
            candidates.append(candidate)
            by_row[candidate.row] = candidate
        stem_name = candidate.path.rsplit("/", 1)[-1].split(".", 1)[0].lower()
        same_stem = stem_name.replace("_", "").replace("-", "") == name.replace("_", "")
        boost = config.exact_definition_stem_boost if same_stem else 0.0
        candidate.score += max(boost, config.exact_definition_boost) * top
    return candidates


def collapse_runs(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Keep the best-ranked candidate of each definition run (input best first); candidates
    without a run (`run` < 0) are all kept."""
    seen: set[int] = set()
    kept: list[Candidate] = []
    for candidate in candidates:
        if candidate.run >= 0:
            if candidate.run in seen:
                continue
            seen.add(candidate.run)
        kept.append(candidate)
    return kept


def pool_files(candidates: list[Candidate], weight: float, floor: float = 0.0) -> list[Candidate]:
    """File-level evidence: sum each file's candidate scores (those at least `floor` × top);
    the best candidate of every file gains `weight × top × file sum ÷ largest file sum`.
    Input best first; returns the list re-sorted."""
    if not weight or not candidates:
        return candidates
    top = _top_score(candidates)
    if top <= 0:
        return candidates
    sums: dict[str, float] = {}
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.score >= floor * top:
            sums[candidate.path] = sums.get(candidate.path, 0.0) + max(candidate.score, 0.0)
        if candidate.path not in best or candidate.score > best[candidate.path].score:
            best[candidate.path] = candidate
    largest = max(sums.values(), default=0.0)
    if largest <= 0:
        return candidates
    for path, file_sum in sums.items():
        best[path].score += weight * top * file_sum / largest
    return sort_candidates(candidates)


def boost_files(candidates: list[Candidate], weight: float) -> list[Candidate]:
    """File-level evidence: the best candidate of every file gains `weight × top ×` its
    `file_score` (the file ranked as one document, 0..1). Input best first; returns the list
    re-sorted. Only each file's best candidate moves, so the order inside a file is kept."""
    if not weight or not candidates:
        return candidates
    top = _top_score(candidates)
    if top <= 0:
        return candidates
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.path in seen:
            continue
        seen.add(candidate.path)
        candidate.score += weight * top * candidate.file_score
    return sort_candidates(candidates)


def file_weight_for(query: QueryInfo, config: RankingConfig) -> float:
    """The file-level evidence weight `query` gets (architecture questions have their own)."""
    return config.architecture_file_weight if query.kind == "architecture" else config.file_weight


def spread_files(candidates: list[Candidate], factor: float) -> list[Candidate]:
    """Repeat demotion with refill: walking the list best first, each candidate's score is
    multiplied by `factor` once per better-ranked candidate of its file; the list is then
    re-sorted, so deeper candidates of other files move into the freed places. The best
    candidate of every file keeps its score."""
    if factor == 1.0:
        return candidates
    repeats: dict[str, int] = {}
    for candidate in candidates:
        seen = repeats.get(candidate.path, 0)
        repeats[candidate.path] = seen + 1
        candidate.score *= factor**seen
    return sort_candidates(candidates)


def rank_candidates(
    candidates: list[Candidate],
    query: QueryInfo,
    config: RankingConfig,
    definitions: Sequence[Candidate] = (),
) -> list[Candidate]:
    """Apply every step (module docstring) to fused candidates; best first.

    `definitions` are candidates for the exact definitions of an identifier query (scores are
    ignored: each gets the boost), used only when `query.kind` is `identifier`."""
    demote(candidates, config, query.kind)
    boost_names(candidates, query, config)
    apply_path_prior(candidates, query.keywords, config.path_prior, _top_score(candidates))
    if query.kind == "identifier" and query.identifier and definitions:
        top = _top_score(candidates) or 1.0
        candidates = boost_exact_definitions(candidates, definitions, query.identifier, config, top)
    sort_candidates(candidates)
    if config.collapse:
        candidates = collapse_runs(candidates)
    candidates = boost_files(candidates, file_weight_for(query, config))
    pool_weight = (
        config.architecture_pool_weight if query.kind == "architecture" else config.pool_weight
    )
    candidates = pool_files(candidates, pool_weight, config.pool_floor)
    return spread_files(candidates, config.file_repeat_factor)
