"""The MCP server driven by the SDK's own client, over stdio and over streamable HTTP.

The fixture repository is indexed once for the module (real Dagster run, real model). Each
transport starts `coderag serve` as a subprocess, lists the tools, calls every one of them and
checks the returned content, the errors for bad arguments and every confinement case. The
HTTP server also has to answer concurrent clients and pick up a re-index without a restart.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from prometheus_client.parser import text_string_to_metric_families

from coderag_assets.cli import main as cli_main
from tests.conftest import copy_served_repo, index_root

PROJECT_DIR = Path(__file__).resolve().parent.parent
TOOLS = {
    "search",
    "find_symbol",
    "list_symbols",
    "find_references",
    "list_files",
    "get_file",
    "index_status",
}
SESSION_TIMEOUT_S = 120
SERVER_START_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def indexed_root(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The fixture repository plus a secret and an escaping symlink, indexed once."""
    root = copy_served_repo(tmp_path_factory.mktemp("mcp"))
    index_root(data_dir, root)
    return root


def server_command(data_dir: Path, root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "coderag_assets.cli",
        "--data-dir",
        str(data_dir),
        "serve",
        "--root",
        str(root),
        *extra,
    ]


def server_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}({arguments}) failed: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) should fail, got {result.structured_content}"
    return " ".join(getattr(block, "text", "") for block in result.content)


# ------------------------------------------------------------------------------ shared checks


async def exercise_every_tool(client: Client) -> None:
    listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == TOOLS
    for tool in listed.tools:
        assert tool.description and tool.output_schema, tool.name
        assert tool.input_schema["type"] == "object"
    search_schema = next(tool for tool in listed.tools if tool.name == "search").input_schema
    assert search_schema["required"] == ["query"]
    assert search_schema["properties"]["mode"]["enum"] == ["hybrid", "vector", "bm25"]
    assert search_schema["properties"]["query"]["description"]

    found = await call(
        client, "search", query="least recently used cache that evicts old entries", limit=5
    )
    hits = {(hit["path"], hit["symbol"]) for hit in found["results"]}
    assert ("pyutils/cache.py", "LRUCache") in hits
    lru = next(hit for hit in found["results"] if hit["symbol"] == "LRUCache")
    assert "class LRUCache" in lru["content"] and lru["start_line"] <= 6 <= lru["end_line"]
    assert found["truncated"] is False
    assert search_schema["properties"]["rerank"]["description"]
    reranked = await call(
        client,
        "search",
        query="least recently used cache that evicts old entries",
        limit=5,
        rerank=True,
    )
    assert (reranked["results"][0]["path"], reranked["results"][0]["symbol"]) == (
        "pyutils/cache.py",
        "LRUCache",
    )
    go_only = await call(
        client, "search", query="register route handler", mode="bm25", language="go"
    )
    assert go_only["results"] and {hit["path"] for hit in go_only["results"]} == {
        "server/router.go"
    }
    in_web = await call(client, "search", query="debounce", path="web/**", limit=3)
    assert {hit["path"] for hit in in_web["results"]} == {"web/src/debounce.ts"}

    lru_symbols = (await call(client, "find_symbol", name="LRUCache"))["symbols"]
    assert [(s["path"], s["line"], s["kind"]) for s in lru_symbols] == [
        ("pyutils/cache.py", 6, "class")
    ]
    assert "def get(self, key: str" in lru_symbols[0]["source"]
    handle = (await call(client, "find_symbol", name="Router.Handle"))["symbols"]
    assert [(s["path"], s["line"], s["parent"]) for s in handle] == [
        ("server/router.go", 22, "Router")
    ]
    assert handle[0]["source"].startswith(
        "func (r *Router) Handle(method, path string, h Handler) {"
    )
    fuzzy = await call(client, "find_symbol", name="celsToFahr", mode="fuzzy", max_source_lines=0)
    assert fuzzy["symbols"][0]["qualified_name"] == "TemperatureConverter.celsiusToFahrenheit"
    assert fuzzy["symbols"][0]["source"] is None
    methods = await call(
        client, "find_symbol", name="LRUCache.", mode="prefix", kind="method", limit=2
    )
    assert len(methods["symbols"]) == 2 and methods["truncated"] is True

    outline = await call(client, "list_symbols", path="server/router.go")
    assert [s["qualified_name"] for s in outline["symbols"]] == [
        "Handler",
        "Router",
        "NewRouter",
        "Router.Handle",
        "Router.ServeHTTP",
    ]
    assert outline["language"] == "go"

    refs = await call(client, "find_references", name="Handler")
    lines = {(r["path"], r["line"]): r for r in refs["references"]}
    assert lines[("server/router.go", 9)]["is_definition"] is True
    assert "routes map[string]Handler" in lines[("server/router.go", 13)]["text"]
    assert lines[("server/router.go", 22)]["enclosing"] == "Router.Handle"
    assert refs["total"] == len(refs["references"]) and refs["truncated"] is False
    get_refs = await call(client, "find_references", name="get")
    get_lines = {(r["path"], r["line"]) for r in get_refs["references"]}
    assert ("pyutils/cache.py", 15) in get_lines and ("web/src/debounce.ts", 23) in get_lines
    assert all("get" in r["text"] for r in get_refs["references"])
    limited = await call(client, "find_references", name="Handler", limit=1)
    assert len(limited["references"]) == 1 and limited["truncated"] is True
    assert lines[("server/router.go", 8)]["context"] == "comment"
    assert lines[("server/router.go", 13)]["context"] == "code"
    code_refs = await call(client, "find_references", name="Handler", code_only=True)
    assert code_refs["code_only"] is True and code_refs["total"] == refs["total"] - 1
    assert ("server/router.go", 8) not in {(r["path"], r["line"]) for r in code_refs["references"]}

    listing = await call(client, "list_files", glob="*.py")
    paths = [f["path"] for f in listing["files"]]
    assert paths == [
        "pyutils/__init__.py",
        "pyutils/cache.py",
        "pyutils/retry.py",
    ]  # build/ is ignored
    go_files = await call(client, "list_files", language="go")
    assert [(f["path"], f["symbols"]) for f in go_files["files"]] == [("server/router.go", 5)]
    everything = await call(client, "list_files")
    assert ".env" not in {f["path"] for f in everything["files"]}

    lines_21_24 = await call(
        client, "get_file", path="server/router.go", start_line=21, end_line=24
    )
    assert lines_21_24["content"].splitlines() == [
        "// Handle registers a handler for an HTTP method and URL path.",
        "func (r *Router) Handle(method, path string, h Handler) {",
        '\tr.routes[strings.ToUpper(method)+" "+path] = h',
        "}",
    ]
    assert (lines_21_24["start_line"], lines_21_24["end_line"], lines_21_24["total_lines"]) == (
        21,
        24,
        34,
    )
    assert lines_21_24["truncated"] is False
    capped = await call(client, "get_file", path="pyutils/cache.py", max_lines=5)
    assert (capped["end_line"], capped["truncated"]) == (5, True)

    status = await call(client, "index_status")
    assert status["chunks"] > 10 and status["symbols"] > 20 and status["skipped"].get("secret") == 1
    assert {"python", "go", "rust"} <= set(status["languages"])


async def exercise_refusals(client: Client) -> None:
    refusals = {
        "../README.md": "outside_root: ",
        "pyutils/../../x.py": "outside_root: ",
        "/etc/passwd": "outside_root: ",
        "pyutils/cache.py\0.txt": "invalid_path: ",
        "escape.txt": "outside_root: ",
        ".env": "secret: ",
        "build/generated.py": "not_indexed: ",
        "no/such/file.py": "not_indexed: ",
    }
    for path, code in refusals.items():
        message = await call_error(client, "get_file", path=path)
        assert code in message, (path, message)
        if "\0" not in path:
            assert "private" not in message and "API_TOKEN" not in message
    assert "secret: " in await call_error(client, "list_symbols", path=".env")
    assert "outside_root: " in await call_error(client, "list_files", glob="../*")
    assert "outside_root: " in await call_error(client, "search", query="cache", path="/etc/*")

    assert "limit" in await call_error(client, "search", query="cache", limit=0)
    assert "mode" in await call_error(client, "search", query="cache", mode="semantic")
    assert "query" in await call_error(client, "search")
    assert "bad_argument: unknown symbol kind" in await call_error(
        client, "find_symbol", name="x", kind="func"
    )
    assert "mode" in await call_error(client, "find_symbol", name="x", mode="regex")
    assert "bad_argument: " in await call_error(client, "find_references", name="two words")
    assert "past the end" in await call_error(
        client, "get_file", path="server/router.go", start_line=999
    )
    assert "start_line" in await call_error(
        client, "get_file", path="server/router.go", start_line=0
    )


# ------------------------------------------------------------------------------ stdio


def test_stdio_server_serves_every_tool(indexed_root: Path, data_dir: Path) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=server_command(data_dir, indexed_root)[1:],
        env=server_env(),
        cwd=str(PROJECT_DIR),
    )

    async def session() -> None:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with Client(parameters) as client:
                await exercise_every_tool(client)
                await exercise_refusals(client)

    anyio.run(session)


def test_serve_without_an_index_fails_clearly(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["--data-dir", str(data_dir), "serve", "--root", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "has not been indexed yet" in captured.err and captured.out == ""


# ------------------------------------------------------------------------------ HTTP


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(indexed_root: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`coderag serve --http` on a free loopback port; yields its URL; stopped at the end."""
    port = free_loopback_port()
    log_path = tmp_path_factory.mktemp("http-server") / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            server_command(data_dir, indexed_root, "--http", "--port", str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(),
            cwd=PROJECT_DIR,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until_listening(process, port, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def wait_until_listening(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"server did not listen within {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()}")


def test_http_server_serves_every_tool_and_concurrent_clients(http_server: str) -> None:
    async def one_client(index: int, failures: list[str]) -> None:
        try:
            async with Client(http_server) as client:
                found = await call(client, "find_symbol", name="NewRouter")
                assert found["symbols"][0]["path"] == "server/router.go"
                hits = await call(client, "search", query=f"matrix multiplication {index}", limit=3)
                assert hits["results"]
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            failures.append(f"client {index}: {exc!r}")

    async def session() -> None:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with Client(http_server) as client:
                await exercise_every_tool(client)
                await exercise_refusals(client)
            failures: list[str] = []
            async with anyio.create_task_group() as group:
                for index in range(8):
                    group.start_soon(one_client, index, failures)
            assert failures == []

    anyio.run(session)
    # The same process counts the tool calls for operators (docs/web.md).
    scrape = urllib.request.urlopen(http_server.removesuffix("/mcp") + "/metrics", timeout=30)
    samples: dict[tuple[str, str | None, str | None], float] = {}
    for family in text_string_to_metric_families(scrape.read().decode()):
        for sample in family.samples:  # summed over modes
            key = (sample.name, sample.labels.get("tool"), sample.labels.get("kind"))
            samples[key] = samples.get(key, 0.0) + sample.value
    assert samples[("coderag_queries_total", "search", None)] >= 9
    assert samples[("coderag_queries_total", "find_symbol", None)] >= 9
    assert samples[("coderag_errors_total", "get_file", "not_found")] >= 1


def test_http_server_picks_up_a_new_index_without_restart(
    http_server: str, indexed_root: Path, data_dir: Path
) -> None:
    retry_path = indexed_root / "pyutils" / "retry.py"
    original = retry_path.read_text()

    async def before_reindex() -> int:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with Client(http_server) as client:
                before = await call(client, "find_symbol", name="jittered_delay")
                assert before["symbols"] == []
                return (await call(client, "index_status"))["version"]

    async def after_reindex(version: int) -> None:
        with anyio.fail_after(SESSION_TIMEOUT_S):
            async with Client(http_server) as client:
                after = await call(client, "find_symbol", name="jittered_delay")
                assert [(s["path"], s["kind"]) for s in after["symbols"]] == [
                    ("pyutils/retry.py", "function")
                ]
                line = after["symbols"][0]["line"]
                fresh = await call(
                    client, "get_file", path="pyutils/retry.py", start_line=line, end_line=line
                )
                assert fresh["content"] == "def jittered_delay(attempt: int) -> float:"
                assert fresh["changed_since_index"] is False
                assert (await call(client, "index_status"))["version"] > version
                refs = await call(client, "find_references", name="jittered_delay")
                assert refs["total"] == 1 and refs["references"][0]["is_definition"]

    try:
        version = anyio.run(before_reindex)
        retry_path.write_text(
            original
            + "\n\ndef jittered_delay(attempt: int) -> float:\n    return 0.1 * 2 ** attempt\n"
        )
        index_root(data_dir, indexed_root)  # publishes a new index while the server keeps running
        anyio.run(after_reindex, version)
    finally:
        retry_path.write_text(original)
