"""Ranking pieces (query words, stemming, BM25, boosts, demotions, collapsing) and one
end-to-end ranking check on the fixture repository."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from coderag_assets.query import QueryService
from coderag_assets.runs import get_instance, run_index
from coderag_assets.search import (
    DEFAULT_RANKING,
    IndexReader,
    RankingConfig,
    definition_runs,
    file_words,
    is_test_path,
    name_words,
    rrf_fuse,
)
from coderag_assets.segments import bm25_group_scores, bm25_norms, bm25_scores, build_postings
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from coderag_assets.tokens import query_terms, stem
from tests.conftest import copy_fixture_repo


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("evicts", "evict"),
        ("evicted", "evict"),
        ("evicting", "evict"),
        ("entries", "entry"),
        ("caches", "cach"),
        ("cache", "cach"),
        ("matches", "match"),
        ("handler", "handl"),
        ("handle", "handl"),
        ("parsers", "pars"),
        ("user", "user"),
        ("status", "status"),
        ("class", "class"),
        ("get", "get"),
        ("utf8", "utf8"),
    ],
)
def test_stem_meets_inflections(word, stemmed) -> None:
    assert stem(word) == stemmed


def test_query_terms_drop_stopwords_and_keep_identifiers_whole() -> None:
    assert query_terms("how is the cache evicted") == ["cach", "evict"]
    terms = query_terms("where is get_netrc_auth called")
    assert "get_netrc_auth" in terms and {"get", "netrc", "auth"} <= set(terms)


def test_query_terms_unstemmed_keep_everything() -> None:
    assert query_terms("the caches", stemmed=False) == ["the", "caches"]


def test_name_and_file_words() -> None:
    assert name_words("LRUCache.evict_oldest") == {"evict", "oldest"}
    assert name_words("maxSatisfying") == {"max", "satisfy"}
    assert file_words("ranges/max-satisfying.js") == {"max", "satisfy"}
    assert file_words("tenacity/__init__.py") == {"tenacity"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/test_cache.py", True),
        ("pkg/tests/helpers.py", True),
        ("src/cache_test.go", True),
        ("web/src/debounce.test.ts", True),
        ("src/__tests__/a.js", True),
        ("src/testing_utils_x.py", False),
        ("pyutils/cache.py", False),
        ("src/contest/latest.py", False),
    ],
)
def test_is_test_path(path, expected) -> None:
    assert is_test_path(path) is expected


def test_bm25_prefers_rarer_terms_and_shorter_documents() -> None:
    documents = [
        "cache evict oldest entry cache",
        "cache " + "filler " * 50,
        "retry backoff sleep",
    ]
    postings = build_postings(documents, ["", "", ""], stemmed=True)
    norms = bm25_norms(postings.body_len, postings.name_len, 2.0)
    scores = bm25_scores([(0, postings)], norms, ["cach", "evict"], name_tf=2.0)
    assert scores is not None and scores[0] > scores[1] > 0 and scores[2] == 0
    assert bm25_scores([(0, postings)], norms, ["nothing"], name_tf=2.0) is None


def test_bm25_k1_and_b_follow_the_okapi_formula() -> None:
    # Hand-computed Okapi BM25 for "cache" over three documents of 2, 6 and 1 tokens
    # (average 3): idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)); score = idf · tf (k1 + 1) /
    # (tf + k1 (1 - b + b · len / avg)).
    documents = ["cache cache", "cache a b c d e", "retry"]
    postings = build_postings(documents, ["", "", ""], stemmed=True)
    idf = np.log1p(1.5 / 2.5)

    def okapi(tf: float, length: float, k1: float, b: float) -> float:
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / 3))

    for k1, b in [(1.2, 0.75), (2.0, 0.9), (0.8, 0.0)]:
        norms = bm25_norms(postings.body_len, postings.name_len, 4.0, k1=k1, b=b)
        scores = bm25_scores([(0, postings)], norms, ["cach"], name_tf=4.0, k1=k1)
        assert scores is not None
        assert scores[0] == pytest.approx(okapi(2, 2, k1, b), rel=1e-5)
        assert scores[1] == pytest.approx(okapi(1, 6, k1, b), rel=1e-5)
        assert scores[2] == 0
    # the defaults are the textbook values the index always used
    assert (DEFAULT_RANKING.bm25_k1, DEFAULT_RANKING.bm25_b) == (1.2, 0.75)
    default = bm25_scores(
        [(0, postings)], bm25_norms(postings.body_len, postings.name_len, 4.0), ["cach"],
        name_tf=4.0,
    )  # fmt: skip
    explicit = bm25_scores(
        [(0, postings)],
        bm25_norms(postings.body_len, postings.name_len, 4.0, k1=1.2, b=0.75),
        ["cach"],
        name_tf=4.0,
        k1=1.2,
    )
    assert default is not None and explicit is not None
    assert np.array_equal(default, explicit)


def test_bm25_default_name_weight_puts_the_named_definition_first() -> None:
    # A definition named `cookie` against a body that says "cookie" three times: the default
    # name field weight (1 + `bm25_name_tf` per name word) ranks the named one first; the
    # previous weight (2.0) did not.
    documents = ["cookie name value cookie options cookie header", "expire the value now", "x"]
    postings = build_postings(documents, ["", "cookie", ""], stemmed=True)
    terms = query_terms("set a cookie")

    def scores(name_tf: float):  # type: ignore[no-untyped-def]
        norms = bm25_norms(postings.body_len, postings.name_len, name_tf)
        return bm25_scores([(0, postings)], norms, terms, name_tf=name_tf)

    named_first = scores(DEFAULT_RANKING.bm25_name_tf)
    assert named_first is not None and named_first[1] > named_first[0] > 0
    body_first = scores(2.0)
    assert body_first is not None and body_first[0] > body_first[1] > 0


def test_file_bm25_scores_each_file_as_one_document() -> None:
    # Two chunks of app.js and one of other.js, scored per file, equal BM25 over the two
    # files' concatenated texts (N, document frequency and lengths count files).
    chunks = ["settings template engine", "mount sub app start server", "settings settings"]
    files = np.array([0, 0, 1])
    postings = build_postings(chunks, ["", "", ""], stemmed=True)
    norms = bm25_norms(
        np.bincount(files, weights=postings.body_len),
        np.bincount(files, weights=postings.name_len),
        4.0,
    )
    terms = query_terms("settings template engines, mounting sub-apps, starting the server")
    grouped = bm25_group_scores([(0, postings)], files, norms, terms, name_tf=4.0)
    whole = build_postings([chunks[0] + " " + chunks[1], chunks[2]], ["", ""], stemmed=True)
    expected = bm25_scores(
        [(0, whole)], bm25_norms(whole.body_len, whole.name_len, 4.0), terms, name_tf=4.0
    )
    assert grouped is not None and expected is not None
    assert grouped == pytest.approx(expected)
    assert grouped[0] > grouped[1] > 0
    # "settings" and "server" are only in different chunks: at chunk level the short chunks of
    # b.js and c.js that repeat one word come first, at file level a.js, which has both
    spread = ["settings engine", "start server", "settings settings",
              "server server"]  # fmt: skip
    spread_files = np.array([0, 0, 1, 2])
    spread_postings = build_postings(spread, ["", "", "", ""], stemmed=True)
    both = query_terms("settings server")
    chunk_scores = bm25_scores(
        [(0, spread_postings)],
        bm25_norms(spread_postings.body_len, spread_postings.name_len, 4.0),
        both,
        name_tf=4.0,
    )
    spread_norms = bm25_norms(
        np.bincount(spread_files, weights=spread_postings.body_len),
        np.bincount(spread_files, weights=spread_postings.name_len),
        4.0,
    )
    file_scores = bm25_group_scores(
        [(0, spread_postings)], spread_files, spread_norms, both, name_tf=4.0
    )
    assert chunk_scores is not None and file_scores is not None
    assert min(chunk_scores[2], chunk_scores[3]) > max(chunk_scores[0], chunk_scores[1])
    assert file_scores[0] > max(file_scores[1], file_scores[2])
    # rows outside the mask count nowhere; no term anywhere → None
    masked = bm25_group_scores(
        [(0, postings)], files, norms, terms, name_tf=4.0, row_mask=np.array([False, False, True])
    )
    assert masked is not None and masked[0] == 0 and masked[1] > 0
    assert bm25_group_scores([(0, postings)], files, norms, ["nothing"], name_tf=4.0) is None


def test_postings_built_in_batches_equal_one_batch() -> None:
    documents = [
        "cache evict oldest entry cache",
        "",
        "retry backoff sleep retry",
        "parse header value parse",
        "cache header",
    ]
    symbols = ["LRUCache.evict", "", "retry_with_backoff", "", "HeaderCache"]
    whole = build_postings(documents, symbols, stemmed=True, batch_rows=100)
    for batch_rows in (1, 2, 3):
        batched = build_postings(documents, symbols, stemmed=True, batch_rows=batch_rows)
        for name in ("terms", "offsets", "rows", "tf", "name_tf", "body_len", "name_len"):
            assert np.array_equal(getattr(batched, name), getattr(whole, name)), name
    assert whole.lookup("cach") is not None and whole.lookup("evict") is not None


def test_weighted_rrf_favours_the_heavier_ranker() -> None:
    fused = rrf_fuse([[1, 2], [2, 1]], k=10, weights=[2.0, 1.0])
    assert [row for row, _ in fused] == [1, 2]
    assert fused[0][1] == pytest.approx(2 / 11 + 1 / 12)


# ---------------------------------------------------------------- ranking on a real index


@pytest.fixture(scope="module")
def fixture_index(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    root = tmp_path_factory.mktemp("search") / "repo"
    copy_fixture_repo(root)
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root.resolve())
    summary = run_index(settings, instance=get_instance(settings))
    assert summary.success, summary.error
    service = QueryService(IndexStore.for_root(data_dir, root.resolve()), settings)
    yield service
    service.close()


#: No boosts, no demotions, no collapsing: what each test switches on one at a time.
BARE = RankingConfig(
    bm25_name_tf=0.0,
    symbol_boost=0.0,
    path_boost=0.0,
    glue_factor=1.0,
    test_factor=1.0,
    non_code_factor=1.0,
    collapse=False,
)


def _row(reader: IndexReader, path: str, symbol: str) -> int:
    return next(
        row
        for row in range(reader.size)
        if reader.paths[row] == path and reader.symbols[row] == symbol
    )


def test_symbol_boost_lifts_the_named_definition(fixture_index) -> None:
    reader = fixture_index.reader
    lru = _row(reader, "pyutils/cache.py", "LRUCache")
    retry = _row(reader, "pyutils/retry.py", "retry_with_backoff")
    terms = query_terms("retry with backoff")
    reader.set_ranking(BARE)
    plain = reader.rank([[(lru, 2.0), (retry, 1.0)]], [1.0], terms)
    assert plain[0][0] == lru
    reader.set_ranking(replace(BARE, symbol_boost=0.5))
    boosted = reader.rank([[(lru, 2.0), (retry, 1.0)]], [1.0], terms)
    assert boosted[0][0] == retry


def test_glue_and_tests_are_demoted(fixture_index) -> None:
    reader = fixture_index.reader
    glue = next(row for row in range(reader.size) if reader.is_glue[row])
    definition = _row(reader, "pyutils/cache.py", "LRUCache")
    terms = query_terms("anything")
    reader.set_ranking(replace(BARE, glue_factor=0.5))
    assert reader.rank([[(glue, 2.0), (definition, 1.0)]], [1.0], terms)[0][0] == definition
    reader.is_test[definition] = True
    try:
        reader.set_ranking(replace(BARE, test_factor=0.5))
        assert reader.rank([[(definition, 2.0), (glue, 1.0)]], [1.0], terms)[0][0] == glue
    finally:
        reader.is_test[definition] = False


def test_definition_runs_group_consecutive_chunks_of_one_definition() -> None:
    paths = ["a.py", "a.py", "a.py", "a.py", "b.py"]
    symbols = ["Big", "Big", "Other", "Big", "Big"]
    assert definition_runs(paths, symbols).tolist() == [0, 0, 1, 2, 3]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_definition_outranks_module_docstring(fixture_index, mode) -> None:
    fixture_index.reader.set_ranking(_default())
    results = fixture_index.search(
        "least recently used cache that evicts old entries", mode=mode, limit=5
    )
    top = results[0]
    assert (top.path, top.symbol) == ("pyutils/cache.py", "LRUCache"), [
        (r.path, r.symbol) for r in results
    ]
    assert top.end_line - top.start_line + 1 <= 60


def test_exact_symbol_query_finds_it_first(fixture_index) -> None:
    fixture_index.reader.set_ranking(_default())
    top = fixture_index.search("retry_with_backoff", mode="hybrid", limit=3)[0]
    assert (top.path, top.symbol) == ("pyutils/retry.py", "retry_with_backoff")


def test_rerank_fuses_the_rescorer_rank_into_the_head_only(fixture_index) -> None:
    """A plumbing test with a scripted rescorer (the real cross-encoder: test_rerank.py)."""
    reader = fixture_index.reader
    reader.set_ranking(
        replace(BARE, rerank_depth=3, rerank_k=1, rerank_weight=4.0, file_repeat_factor=1.0)
    )
    rows = list(range(5))
    ranked = [(row, 1.0 - 0.1 * row) for row in rows]
    seen: list[tuple[str, list[str]]] = []

    def rescorer(query: str, texts) -> np.ndarray:
        seen.append((query, list(texts)))
        return np.array([0.0, 0.0, 9.0])  # the third result is the reranker's best

    reranked = reader.rerank("the query", ranked, rescorer)
    assert [row for row, _ in reranked] == [2, 0, 1, 3, 4]
    assert seen == [("the query", [reader.rerank_text(row) for row in rows[:3]])]
    head_floor = min(score for _, score in reranked[:3])
    assert all(score <= head_floor for _, score in reranked[3:])
    assert [score for _, score in reranked] == sorted((s for _, s in reranked), reverse=True)


def test_rerank_with_an_agreeing_rescorer_keeps_the_order(fixture_index) -> None:
    reader = fixture_index.reader
    reader.set_ranking(replace(BARE, rerank_depth=4, file_repeat_factor=1.0))
    ranked = [(row, 1.0 - 0.1 * row) for row in range(6)]
    reranked = reader.rerank("q", ranked, lambda query, texts: -np.arange(len(texts), dtype=float))
    assert [row for row, _ in reranked] == list(range(6))


def test_rerank_text_is_what_the_embedder_reads(fixture_index) -> None:
    reader = fixture_index.reader
    row = _row(reader, "pyutils/cache.py", "LRUCache")
    text = reader.rerank_text(row)
    assert text.startswith("LRUCache\n") and "class LRUCache" in text


def _default() -> RankingConfig:
    return DEFAULT_RANKING


def test_the_search_side_imports_no_indexing_libraries() -> None:
    """A cold `coderag search` pays for every import: polars (35 MB, 80 ms) and the torch
    stack belong to indexing and training only."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom coderag_assets.query import QueryService\n"
        "print(sorted({'polars', 'torch', 'transformers', 'dagster'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- identifier queries


def test_identifier_query_returns_its_definition_first_when_both_rankers_miss_it(
    fixture_index, monkeypatch
) -> None:
    """`parse_duration` is defined in pyutils/retry.py; both rankers are made to return only
    other chunks, and the exact definition still comes first (found in the symbol postings)."""
    reader = fixture_index.reader
    reader.set_ranking(_default())
    target = _row(reader, "pyutils/retry.py", "parse_duration")
    others = [(row, 1.0 / (1 + row)) for row in range(reader.size) if row != target][:20]
    monkeypatch.setattr(reader, "vector_ranking", lambda *args, **kwargs: list(others))
    monkeypatch.setattr(reader, "bm25_ranking", lambda *args, **kwargs: list(others))
    for mode in ("hybrid", "bm25", "vector"):
        results = fixture_index.search("parse_duration", mode=mode, limit=5)
        assert (results[0].path, results[0].symbol) == ("pyutils/retry.py", "parse_duration")
    # a name the index does not define ranks as plain text: same as without identifier mode
    missing = fixture_index.search("parse_durations_everywhere", mode="hybrid", limit=5)
    reader.set_ranking(
        replace(
            _default(),
            exact_definition_boost=0.0,
            exact_definition_stem_boost=0.0,
            identifier_vector_factor=1.0,
        )
    )
    plain = fixture_index.search("parse_durations_everywhere", mode="hybrid", limit=5)
    reader.set_ranking(_default())
    assert missing == plain
    assert target not in [row for row, _ in others]


def test_a_query_spelling_a_name_returns_its_definition_first_when_both_rankers_miss_it(
    fixture_index, monkeypatch
) -> None:
    """ "parse duration" spells `parse_duration` and "lru cache" spells `LRUCache`: with both
    rankers made to miss them, the definitions still come first; with `spelled_identifiers`
    off, or for words that spell no defined name, the ranking is the plain one."""
    reader = fixture_index.reader
    reader.set_ranking(_default())
    targets = {
        "parse duration": ("pyutils/retry.py", "parse_duration"),
        "lru cache": ("pyutils/cache.py", "LRUCache"),
    }
    rows = {_row(reader, *target) for target in targets.values()}
    others = [(row, 1.0 / (1 + row)) for row in range(reader.size) if row not in rows][:20]
    monkeypatch.setattr(reader, "vector_ranking", lambda *args, **kwargs: list(others))
    monkeypatch.setattr(reader, "bm25_ranking", lambda *args, **kwargs: list(others))
    for query, target in targets.items():
        for mode in ("hybrid", "bm25", "vector"):
            results = fixture_index.search(query, mode=mode, limit=5)
            assert (results[0].path, results[0].symbol) == target
        reader.set_ranking(replace(_default(), spelled_identifiers=False))
        plain = fixture_index.search(query, mode="hybrid", limit=5)
        reader.set_ranking(_default())
        assert (plain[0].path, plain[0].symbol) != target
    undefined = fixture_index.search("parse everything", mode="hybrid", limit=5)
    reader.set_ranking(replace(_default(), spelled_identifiers=False))
    assert fixture_index.search("parse everything", mode="hybrid", limit=5) == undefined
    reader.set_ranking(_default())


def test_exact_definitions_are_found_through_the_name_postings(fixture_index) -> None:
    reader = fixture_index.reader
    reader.set_ranking(_default())
    rows = reader.exact_definitions("LRUCache", None)
    assert {(reader.paths[r], reader.symbols[r]) for r in rows} == {
        ("pyutils/cache.py", "LRUCache")
    }
    assert reader.exact_definitions("lrucache", None) == rows  # case-insensitive fallback
    assert reader.exact_definitions("NoSuchThing", None) == []


@pytest.mark.parametrize(
    "query",
    [
        "the of and to",  # only stopwords
        "?!... --- ((()))",  # only punctuation
        "retry " * 1700,  # about 10 kB
        "キャッシュを削除する",  # another script
        "кэш с вытеснением",
        "a::",
        "::",
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_odd_queries_return_a_list(fixture_index, query: str, mode: str) -> None:
    fixture_index.reader.set_ranking(_default())
    results = fixture_index.search(query, mode=mode, limit=5)
    assert isinstance(results, list)
    assert len(results) <= 5


def test_empty_query_is_a_clear_error(fixture_index) -> None:
    from coderag_assets.search import SearchError

    with pytest.raises(SearchError, match="empty query"):
        fixture_index.search("   ", mode="hybrid")


def test_file_evidence_ranks_files_as_documents(fixture_index) -> None:
    reader = fixture_index.reader
    reader.set_ranking(_default())
    file_of, count = reader.file_ids()
    # one number per file: rows of one path share it, different paths do not
    by_path: dict[str, set[int]] = {}
    for row, path in enumerate(reader.paths):
        by_path.setdefault(path, set()).add(int(file_of[row]))
    assert all(len(ids) == 1 for ids in by_path.values())
    assert len({next(iter(ids)) for ids in by_path.values()}) == len(by_path) == count
    retry = next(iter(by_path["pyutils/retry.py"]))
    query = "retry with exponential backoff"
    vector = fixture_index.embedder().embed_query(query)
    terms = query_terms(query)
    scores = reader.file_evidence(reader.vector_scores(vector, None), terms, None, (0.9, 1.0))
    assert scores.shape == (count,) and scores.min() >= 0 and scores.max() <= 1.0 + 1e-9
    assert int(np.argmax(scores)) == retry
    # BM25 alone finds it too; with the file masked out (a --path filter) it gets nothing
    assert reader.file_evidence(None, terms, None, (0.0, 1.0))[retry] == pytest.approx(1.0)
    mask = np.array([path != "pyutils/retry.py" for path in reader.paths])
    assert reader.file_evidence(None, terms, mask, (0.0, 1.0))[retry] == 0


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_file_evidence_on_and_off_in_every_mode(fixture_index, mode) -> None:
    reader = fixture_index.reader
    for weight in (0.0, 0.15, 1.0):
        reader.set_ranking(replace(_default(), file_weight=weight))
        results = fixture_index.search("retry with exponential backoff", mode=mode, limit=5)
        assert results and results[0].path == "pyutils/retry.py"


def test_reader_bm25_follows_the_ranking_k1_and_b(fixture_index) -> None:
    # The reader's chunk BM25 uses the ranking's k1 and b: b = 0 ignores chunk length, so a
    # chunk's score depends on its term counts only; switching back gives the cached default.
    reader = fixture_index.reader
    terms = query_terms("retry with exponential backoff")
    reader.set_ranking(_default())
    default = reader.bm25_scores(terms)
    reader.set_ranking(replace(_default(), bm25_b=0.0, bm25_k1=2.0))
    flat = reader.bm25_scores(terms)
    assert default is not None and flat is not None
    assert not np.allclose(default, flat)
    postings = [(int(start), seg.postings) for start, seg in zip(reader.segment_starts, reader.segments, strict=True)]  # fmt: skip
    lengths = np.zeros(reader.size, dtype=np.float32)  # b = 0: every norm is k1
    expected = bm25_scores(
        postings, bm25_norms(lengths, lengths, 0.0, k1=2.0, b=0.0), terms,
        name_tf=DEFAULT_RANKING.bm25_name_tf, k1=2.0,
    )  # fmt: skip
    assert expected is not None and flat == pytest.approx(expected, rel=1e-5)
    reader.set_ranking(_default())
    again = reader.bm25_scores(terms)
    assert again is not None and np.array_equal(default, again)


def test_the_int8_scan_gives_the_exact_top_rows(fixture_index, monkeypatch) -> None:
    """A long-lived reader scans the int8 copy and rescores what may be in the top: the
    top rows and their scores are those of an exact scan, for real and random queries."""
    reader = fixture_index.reader
    reader.set_ranking(_default())
    assert not reader.one_shot
    assert all(segment.vectors.approximate for segment in reader.segments if segment.vectors.count)
    monkeypatch.setenv("CODERAG_EXACT_VECTORS", "1")
    exact_reader = IndexReader(reader.index_path)
    assert not any(segment.vectors.approximate for segment in exact_reader.segments)
    try:
        embedder = fixture_index.embedder()
        queries = [
            embedder.embed_query(text)
            for text in ("retry with exponential backoff", "parse a duration", "http client")
        ]
        dim = len(queries[0])
        randoms = np.random.default_rng(5).normal(size=(20, dim)).astype(np.float32)
        queries += list(randoms / np.linalg.norm(randoms, axis=1, keepdims=True))
        approximate_rows = 0
        for query in queries:
            for depth, language in ((1, None), (5, None), (20, None), (5, "python"), (3, "rust")):
                mask = reader._mask(language, None)  # under a mask rows are rescored instead
                fast = reader.vector_ranking(query, depth, mask)
                exact = exact_reader.vector_ranking(query, depth, mask)
                assert [row for row, _ in fast] == [row for row, _ in exact]
                # scores agree to float32 rounding (summed in another order)
                assert np.allclose([s for _, s in fast], [s for _, s in exact], atol=1e-6)
            everything = exact_reader.vector_scores(query, None)
            scanned = reader.vector_scores(query, None, exact_top=5)
            approximate_rows += int((scanned != everything).sum())
            assert np.allclose(scanned, everything, atol=0.02)
        assert approximate_rows  # rows outside the top kept the cheaper approximate scores
        exact_reader.set_ranking(_default())
        for text in ("retry with exponential backoff", "duration parsing", "HttpClient"):
            vector = embedder.embed_query(text)
            for mode in ("vector", "hybrid"):
                fast = reader.search(text, mode=mode, query_vector=vector, limit=10)
                exact = exact_reader.search(text, mode=mode, query_vector=vector, limit=10)
                assert fast and [(r.path, r.start_line) for r in fast] == [
                    (r.path, r.start_line) for r in exact
                ]
                assert np.allclose([r.score for r in fast], [r.score for r in exact], atol=1e-5)
    finally:
        exact_reader.close()
