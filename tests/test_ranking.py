"""The ranking steps of `coderag_assets.ranking` on small hand-built candidate lists."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coderag_assets.features import name_words
from coderag_assets.ranking import (
    DEFAULT_RANKING,
    Candidate,
    QueryInfo,
    RankingConfig,
    apply_path_prior,
    boost_exact_definitions,
    boost_files,
    boost_names,
    collapse_runs,
    demote,
    file_weight_for,
    identifier_of,
    is_hub_path,
    is_noise_path,
    parse_query,
    path_prior_share,
    path_words,
    pool_files,
    prefix_match,
    query_keywords,
    rank_candidates,
    sort_candidates,
    spelled_names,
    spread_files,
)

#: Every step off: what each test switches on one at a time.
OFF = RankingConfig(
    symbol_boost=0.0,
    path_boost=0.0,
    glue_factor=1.0,
    hub_glue_factor=1.0,
    test_factor=1.0,
    non_code_factor=1.0,
    noise_factor=1.0,
    collapse=False,
    file_repeat_factor=1.0,
    path_prior=0.0,
    pool_weight=0.0,
    architecture_pool_weight=0.0,
    exact_definition_boost=0.0,
    exact_definition_stem_boost=0.0,
    file_weight=0.0,
)


def _c(row: int, score: float, path: str, symbol: str = "", run: int = -1, **flags) -> Candidate:
    return Candidate(row=row, score=score, path=path, symbol=symbol, run=run, **flags)


def _rows(candidates: list[Candidate]) -> list[int]:
    return [c.row for c in candidates]


# ---------------------------------------------------------------- file pooling


def test_pooling_lifts_the_file_many_candidates_point_at() -> None:
    candidates = [
        _c(0, 1.00, "lone.py"),
        _c(1, 0.90, "central.py"),
        _c(2, 0.80, "central.py"),
        _c(3, 0.70, "central.py"),
    ]
    pooled = pool_files(candidates, weight=0.2)
    # central.py sums 2.4 (the largest): its best chunk gains 0.2 × 1.0 × 1 = 0.2 → 1.10;
    # lone.py gains 0.2 × 1.0 × 1.0 / 2.4 ≈ 0.083 → 1.083.
    assert _rows(pooled) == [1, 0, 2, 3]
    assert pooled[0].score == pytest.approx(1.10)
    assert pooled[1].score == pytest.approx(1.0 + 0.2 / 2.4)
    # only the best chunk of a file gains: the order inside a file is kept
    assert [c.score for c in pooled[2:]] == pytest.approx([0.80, 0.70])


def test_pooling_off_and_floor() -> None:
    candidates = [_c(0, 1.0, "a.py"), _c(1, 0.9, "b.py"), _c(2, 0.1, "b.py")]
    assert _rows(pool_files(list(candidates), weight=0.0)) == [0, 1, 2]
    # with a floor of 0.5 × top the 0.1 chunk does not count: b.py sums 0.9 < a.py's 1.0
    floored = pool_files([replace(c) for c in candidates], weight=0.5, floor=0.5)
    assert _rows(floored) == [0, 1, 2]
    assert floored[0].score == pytest.approx(1.5)
    assert floored[1].score == pytest.approx(0.9 + 0.5 * 0.9)


# ---------------------------------------------------------------- path prior


@pytest.mark.parametrize(
    ("word", "other", "expected"),
    [
        ("logging", "logger", True),  # a family the light stemmer splits (log / logg)
        ("logger", "logging", True),
        ("route", "router", True),
        ("config", "configure", True),
        ("middleware", "middle", True),
        ("sign", "signer", True),
        ("content", "configure", False),  # only "con" in common
        ("regular", "regexp", False),
        ("ab", "abc", False),  # shorter than 3 characters: exact only
        ("io", "io", True),
    ],
)
def test_prefix_match(word: str, other: str, expected: bool) -> None:
    assert prefix_match(word, other) is expected


def test_path_words_are_the_stem_and_the_parent_directory() -> None:
    assert path_words("src/logging/handlers.py") == ("handlers", "logging")
    assert path_words("ranges/max-satisfying.js") == ("max", "satisfying", "ranges")
    assert path_words("src/buf/mod.rs") == ("buf",)  # a hub is named by its directory
    assert path_words("compose.ts") == ("compose",)


def test_query_keywords_drop_short_words_and_stopwords() -> None:
    assert query_keywords("where is the Logger set up for a DB") == ("logger", "set")
    assert query_keywords("parseHTTPHeader of it") == ("parse", "http", "header")


def test_path_prior_prefix_matches_stem_and_parent() -> None:
    keywords = query_keywords("which module configures the logger")
    assert keywords == ("module", "configures", "logger")
    assert path_prior_share("app/logging/config.py", keywords) == pytest.approx(2 / 3)
    assert path_prior_share("app/content.py", keywords) == 0.0
    candidates = [_c(0, 1.0, "app/content.py"), _c(1, 0.8, "app/logging/config.py")]
    apply_path_prior(candidates, keywords, weight=0.6, top=1.0)
    assert candidates[0].score == pytest.approx(1.0)
    assert candidates[1].score == pytest.approx(0.8 + 0.6 * 2 / 3)


# ---------------------------------------------------------------- identifier queries


@pytest.mark.parametrize(
    ("query", "identifier"),
    [
        ("APIRouter", "APIRouter"),
        ("  get_netrc_auth ", "get_netrc_auth"),
        ("a::b", "a.b"),
        ("pkg.Func", "pkg.Func"),
        ("Router#handle", "Router.handle"),
        ("compareBuild()", "compareBuild"),
        ("parse options loose flag", None),
        ("retry?", None),
        ("", None),
        ("...", None),
        ("文字列", None),
    ],
)
def test_identifier_of(query: str, identifier: str | None) -> None:
    assert identifier_of(query) == identifier


def test_query_kind_needs_a_definition_for_identifier_mode() -> None:
    assert parse_query("Mux", ["mux"], has_definition=True).kind == "identifier"
    assert parse_query("Mux", ["mux"], has_definition=False).kind == "plain"
    assert parse_query("which file lays out the help screen", []).kind == "architecture"
    assert parse_query("where is the router wired to the app", []).kind == "architecture"
    assert parse_query("send the browser to a different URL", []).kind == "plain"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("scroll to offset", ("scrolltooffset", "scroll_to_offset")),
        ("Split Off", ("splitoff", "split_off")),
        ("new 2q params", ("new2qparams", "new_2q_params")),
        ("format rfc3339 millis", ("formatrfc3339millis", "format_rfc3339_millis")),
        ("retry", ()),  # one word: `identifier_of` handles it
        ("a b c d e f g", ()),  # more than six words: a sentence, not a name
        ("what is a cookie?", ()),  # punctuation
        ("get_value of x", ()),  # already an identifier inside
        ("parse 文字列", ()),
        ("", ()),
    ],
)
def test_spelled_names(query: str, names: tuple[str, ...]) -> None:
    assert spelled_names(query) == names


def test_a_spelled_name_makes_an_identifier_query_only_when_defined() -> None:
    spelled = parse_query(
        "split off", ["split", "off"], has_definition=True, identifier="split_off"
    )
    assert (spelled.kind, spelled.identifier) == ("identifier", "split_off")
    assert parse_query("split off", ["split", "off"], has_definition=False).kind == "plain"


def test_a_spelled_name_ranks_its_definition_over_a_sibling() -> None:
    # "split off": the sibling `split_to` leads the fused list; the spelled name's definition
    # (found by `search` through the name postings) is boosted like an exact identifier's
    config = replace(OFF, exact_definition_boost=3.0, exact_definition_stem_boost=4.5)
    ranked = [
        _c(0, 1.0, "src/bytes.rs", "Bytes.split_to"),
        _c(1, 0.8, "src/bytes.rs", "Bytes.split_off"),
    ]
    query = parse_query("split off", ["split", "off"], has_definition=True, identifier="split_off")
    definition = _c(1, 0.0, "src/bytes.rs", "Bytes.split_off")
    assert _rows(rank_candidates(ranked, query, config, [definition]))[0] == 1
    plain = parse_query("split off", ["split", "off"])
    ranked = [
        _c(0, 1.0, "src/bytes.rs", "Bytes.split_to"),
        _c(1, 0.8, "src/bytes.rs", "Bytes.split_off"),
    ]
    assert _rows(rank_candidates(ranked, plain, config, [definition]))[0] == 0


def test_exact_definition_is_injected_and_first() -> None:
    config = replace(OFF, exact_definition_boost=3.0, exact_definition_stem_boost=4.5)
    ranked = [_c(0, 1.0, "docs/usage.py", "example"), _c(1, 0.9, "mux.go", "Router.Handle")]
    definition = _c(7, 0.0, "route.go", "Router.Match")  # no ranker retrieved it
    query = parse_query("Router.Match", ["router.match"], has_definition=True)
    result = rank_candidates(ranked, query, config, [definition])
    assert _rows(result)[0] == 7
    assert result[0].score == pytest.approx(3.0 * 1.0)


def test_exact_definition_in_a_file_named_after_it_gets_the_stem_boost() -> None:
    config = replace(OFF, exact_definition_boost=3.0, exact_definition_stem_boost=4.5)
    candidates = [_c(0, 1.0, "a.py")]
    definitions = [_c(1, 0.0, "lib/mux.go", "Mux"), _c(2, 0.0, "other.go", "Mux")]
    boosted = boost_exact_definitions(candidates, definitions, "Mux", config, top=1.0)
    scores = {c.row: c.score for c in boosted}
    assert scores == pytest.approx({0: 1.0, 1: 4.5, 2: 3.0})


def test_identifier_without_definitions_ranks_as_plain() -> None:
    config = replace(OFF, exact_definition_boost=3.0)
    ranked = [_c(0, 1.0, "a.py"), _c(1, 0.5, "b.py")]
    query = parse_query("NoSuchName", ["nosuchname"], has_definition=False)
    assert _rows(rank_candidates(ranked, query, config, [])) == [0, 1]


# ---------------------------------------------------------------- repeat demotion and refill


def test_repeat_demotion_refills_from_deeper_candidates() -> None:
    candidates = [
        _c(0, 1.00, "big.py"),
        _c(1, 0.95, "big.py"),
        _c(2, 0.90, "big.py"),
        _c(3, 0.60, "other.py"),
    ]
    spread = spread_files(candidates, factor=0.5)
    # big.py: 1.0, 0.95 × 0.5 = 0.475, 0.9 × 0.25 = 0.225; other.py keeps 0.6 and moves up
    assert _rows(spread) == [0, 3, 1, 2]
    assert [c.score for c in spread] == pytest.approx([1.0, 0.6, 0.475, 0.225])
    assert _rows(spread_files([_c(0, 1.0, "a"), _c(1, 0.9, "a")], factor=1.0)) == [0, 1]


def test_collapse_keeps_the_best_chunk_of_each_run() -> None:
    candidates = [_c(1, 0.9, "a.py", run=0), _c(2, 0.8, "a.py", run=1), _c(0, 0.7, "a.py", run=0)]
    candidates.append(_c(3, 0.6, "b.py", run=2))
    assert _rows(collapse_runs(candidates)) == [1, 2, 3]


# ---------------------------------------------------------------- noise paths and hubs


@pytest.mark.parametrize(
    ("path", "noise"),
    [
        ("examples/basic.go", True),
        ("_examples/todo/main.go", True),
        ("docs_src/tutorial/app.py", True),
        ("src/compat/py2.py", True),
        ("lib/legacy/old.js", True),
        ("benches/buf.rs", True),
        ("typings/index.d.ts", True),
        ("src/index.ts", False),
        ("src/example_helpers.py", False),
        ("src/compatibility.py", False),
    ],
)
def test_is_noise_path(path: str, noise: bool) -> None:
    assert is_noise_path(path) is noise


def test_noise_paths_are_demoted_but_hub_glue_is_not() -> None:
    config = replace(OFF, noise_factor=0.3, glue_factor=0.3, hub_glue_factor=1.0)
    candidates = [
        _c(0, 1.0, "examples/demo.py"),
        _c(1, 1.0, "src/buf/mod.rs", is_glue=True),  # re-exports: may be the answer
        _c(2, 1.0, "src/buf/chain.rs", is_glue=True),
        _c(3, 1.0, "typings/index.d.ts"),
        _c(4, 1.0, "src/lib.py", is_test=False),
    ]
    demote(candidates, config)
    assert [c.score for c in candidates] == pytest.approx([0.3, 1.0, 0.3, 0.3, 1.0])
    assert is_hub_path("src/__init__.py") and is_hub_path("src/index.ts")
    assert not is_hub_path("src/indexer.ts")


def test_default_steps_keep_the_right_definition_first_inside_its_file() -> None:
    """Pooling and repeat demotion lift a file without reordering its own candidates."""
    candidates = [
        _c(0, 1.00, "right.py", "wanted", run=0),
        _c(1, 0.98, "right.py", "sibling", run=1),
        _c(2, 0.99, "other.py", "lone", run=2),
        _c(3, 0.50, "right.py", "third", run=3),
    ]
    query = QueryInfo("plain", frozenset({"want"}), ("wanted",))
    ranked = rank_candidates(candidates, query, DEFAULT_RANKING)
    assert _rows(ranked)[0] == 0
    right = [c.row for c in ranked if c.path == "right.py"]
    assert right == [0, 1, 3]


# ---------------------------------------------------------------- definition names


def test_name_word_boost_does_not_lift_a_short_name_over_a_longer_one_ranked_first() -> None:
    # "remove a cookie from the client": `res.cookie`'s one name word is all in the query,
    # `res.clearCookie`'s two are half in it; the rankers put clearCookie first.
    query = parse_query("remove a cookie from the client", ["remov", "cooki", "client"])

    def ranked(config: RankingConfig) -> list[int]:
        candidates = [
            _c(1, 0.79, "lib/response.js", name_words=name_words("res.clearCookie")),
            _c(2, 0.75, "lib/response.js", name_words=name_words("res.cookie")),
        ]
        boost_names(candidates, query, config)
        return _rows(sort_candidates(candidates))

    assert ranked(DEFAULT_RANKING) == [1, 2]
    assert ranked(replace(DEFAULT_RANKING, symbol_boost=0.1)) == [2, 1]  # the old weight


# ---------------------------------------------------------------- file-level evidence


def test_file_evidence_lifts_the_best_candidate_of_the_file_ranked_as_a_whole() -> None:
    candidates = [
        _c(0, 1.00, "helpers.py", file_score=0.2),
        _c(1, 0.90, "central.py", file_score=1.0),
        _c(2, 0.85, "central.py", file_score=1.0),
        _c(3, 0.50, "other.py"),
    ]
    boosted = boost_files(candidates, weight=0.3)
    # central.py's best chunk gains 0.3 × 1.0 × 1.0 → 1.20; helpers.py's 0.3 × 0.2 → 1.06
    assert _rows(boosted) == [1, 0, 2, 3]
    assert boosted[0].score == pytest.approx(1.20)
    assert boosted[1].score == pytest.approx(1.06)
    # only each file's best candidate moves: the order inside a file is kept
    assert boosted[2].score == pytest.approx(0.85)
    assert boosted[3].score == pytest.approx(0.50)


def test_file_evidence_off_and_by_query_kind() -> None:
    def candidates() -> list[Candidate]:
        return [_c(0, 1.0, "a.py", file_score=0.0), _c(1, 0.9, "b.py", file_score=1.0)]

    assert _rows(boost_files(candidates(), weight=0.0)) == [0, 1]
    config = replace(OFF, file_weight=0.0, architecture_file_weight=0.5)
    plain = QueryInfo("plain", frozenset(), ())
    architecture = QueryInfo("architecture", frozenset(), ())
    assert file_weight_for(plain, config) == 0.0
    assert file_weight_for(architecture, config) == 0.5
    assert _rows(rank_candidates(candidates(), plain, config)) == [0, 1]
    assert _rows(rank_candidates(candidates(), architecture, config)) == [1, 0]


def test_architecture_questions_keep_module_glue() -> None:
    def candidates() -> list[Candidate]:
        return [_c(0, 1.0, "internal/re.js", is_glue=True), _c(1, 0.5, "classes/range.js")]

    config = replace(OFF, glue_factor=0.3, architecture_glue_factor=1.0)
    plain = candidates()
    demote(plain, config)
    assert [c.score for c in plain] == pytest.approx([0.3, 0.5])
    architecture = candidates()
    demote(architecture, config, "architecture")
    assert [c.score for c in architecture] == pytest.approx([1.0, 0.5])
    query = QueryInfo("architecture", frozenset(), ())
    assert _rows(rank_candidates(candidates(), query, config)) == [0, 1]
    assert _rows(rank_candidates(candidates(), replace(query, kind="plain"), config)) == [1, 0]
