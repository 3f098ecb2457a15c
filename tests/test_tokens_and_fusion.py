from __future__ import annotations

import pytest

from coderag_assets.partitions import shard_keys, shard_of
from coderag_assets.search import path_matches, rrf_fuse
from coderag_assets.tokens import bm25_text, code_tokens, identifier_parts


@pytest.mark.parametrize(
    ("identifier", "parts"),
    [
        ("get_netrc_auth", ["get", "netrc", "auth"]),
        ("parseHTTPHeader", ["parse", "http", "header"]),
        ("XMLHttpRequest2", ["xml", "http", "request", "2"]),
        ("__init__", ["init"]),
        ("snake_Case_mixedUp", ["snake", "case", "mixed", "up"]),
    ],
)
def test_identifier_parts(identifier, parts) -> None:
    assert identifier_parts(identifier) == parts


def test_code_tokens_keep_whole_identifier_and_parts() -> None:
    tokens = code_tokens("def get_netrc_auth(url): return parseHeader(url)")
    assert "get_netrc_auth" in tokens and {"get", "netrc", "auth"} <= set(tokens)
    assert "parseheader" in tokens and {"parse", "header"} <= set(tokens)
    # a single-word identifier is not duplicated
    assert tokens.count("url") == 2  # two occurrences in the text, one token each


def test_bm25_text_drops_punctuation_and_giant_tokens() -> None:
    assert bm25_text("a.b(c) + 'x'") == "a b c x"
    assert bm25_text("y" * 200) == ""


def test_shards_are_stable_and_cover_keys() -> None:
    keys = shard_keys(16)
    assert keys == [f"{i:x}" for i in range(16)]
    assert shard_keys(256)[:3] == ["00", "01", "02"] and len(shard_keys(64)) == 64
    paths = [f"src/module_{i}.py" for i in range(2000)]
    counts = {key: 0 for key in keys}
    for path in paths:
        counts[shard_of(path, 16)] += 1
    assert shard_of("src/a.py", 16) == shard_of("src/a.py", 16)
    assert min(counts.values()) > 2000 / 16 * 0.6  # roughly balanced


def test_rrf_rewards_agreement_between_rankers() -> None:
    fused = rrf_fuse([[1, 2, 3], [3, 1, 4]])
    assert [row for row, _ in fused][:2] == [1, 3]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert {row for row, _ in fused} == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("web/src/app.ts", "web/**", True),
        ("web/src/app.ts", "*.ts", True),
        ("web/src/app.ts", "web", True),
        ("webby/app.ts", "web", False),
        ("server/router.go", "*.py", False),
    ],
)
def test_path_glob(path, pattern, expected) -> None:
    assert path_matches(path, pattern) is expected


def test_code_tokens_equal_an_uncached_split_of_every_identifier() -> None:
    """`code_tokens` caches each identifier's tokens; the stream is what splitting every
    identifier afresh gives, in order, long and underscore-only identifiers included."""
    from coderag_assets.tokens import IDENTIFIER_RE, MAX_TOKEN_CHARS, identifier_parts

    def uncached(text: str) -> list[str]:
        tokens: list[str] = []
        for word in IDENTIFIER_RE.findall(text):
            if len(word) > MAX_TOKEN_CHARS:
                continue
            tokens.append(word.lower().strip("_") or word.lower())
            parts = identifier_parts(word)
            if len(parts) > 1:
                tokens.extend(parts)
        return tokens

    text = (
        "def get_netrc_auth(url): return parseHTTPHeader2(url) + __init__ + _ + 42\n"
        + "x" * (MAX_TOKEN_CHARS + 1)
        + " HTTPSConnectionPool get_netrc_auth again"
    )
    for _ in range(2):  # the second pass is answered from the cache
        assert code_tokens(text) == uncached(text)
    assert code_tokens(text)[:5] == ["def", "get_netrc_auth", "get", "netrc", "auth"]
