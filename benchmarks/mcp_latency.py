"""Latency of the MCP server as agents see it, through the SDK's own client.

Indexes a copy of the installed `mcp` SDK sources (site-packages `mcp` + `mcp_types`; real,
quick, offline) into benchmarks/.cache/mcp-data (the converted model is cached there), starts
`coderag serve --http` on 127.0.0.1 and measures, client side, per call:

1. warm `search` (hybrid) over 200 queries (identifiers and plain-language questions), on
   HTTP and on stdio, p50/p95/p99/max;
2. `find_symbol` (exact, fuzzy) and `find_references` over 200/50/50 names;
3. 50 concurrent clients (one MCP session each) calling a tool mix (search 50 %,
   find_symbol 30 %, find_references 10 %, get_file 10 %) for 60 s against the HTTP server:
   calls, throughput, errors, p50/p99/max. The loop is bounded (deadline + hard timeout) and
   stops by itself.

All traffic stays on 127.0.0.1. The clients run in one process on the same cores as the
server, so the concurrent numbers include client-side CPU.

Usage: .venv/bin/python benchmarks/mcp_latency.py [--clients 50] [--seconds 60] [--queries 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
CACHE = HERE / ".cache"
HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 120
SEED = 7

QUESTIONS = [
    "how does the client negotiate the protocol version",
    "validate tool arguments against the input schema",
    "streamable http session manager idle timeout",
    "send a progress notification to the client",
    "read a resource by uri template",
    "register a prompt with arguments",
    "handle json rpc errors from the server",
    "dns rebinding protection allowed hosts",
    "oauth token verification",
    "spawn a server process over stdio",
    "cache tool list results with ttl",
    "elicitation request from server to client",
    "convert a function signature into a pydantic model",
    "cancel an in-flight request",
    "serialize structured content of a tool result",
    "middleware that wraps every inbound message",
    "server sent events endpoint",
    "log a message at warning level to the client",
    "what happens when a session is terminated",
    "parse the mcp session id header",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[rank]


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [value * 1000 for value in latencies_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def line(label: str, stats: dict[str, float]) -> str:
    return (
        f"{label:<34} n={stats['n']:<5} p50 {stats['p50_ms']:>7.2f} ms  p95 {stats['p95_ms']:>7.2f} ms  "
        f"p99 {stats['p99_ms']:>7.2f} ms  max {stats['max_ms']:>7.2f} ms"
    )


# ------------------------------------------------------------------------------ setup


def copy_sources() -> Path:
    """A fresh copy of the installed SDK sources (site-packages is never indexed in place)."""
    import mcp
    import mcp_types

    root = CACHE / "src" / "mcp-sdk"
    shutil.rmtree(root, ignore_errors=True)
    for package in (mcp, mcp_types):
        source = Path(package.__file__).parent
        shutil.copytree(
            source, root / source.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return root.resolve()


def index(data_dir: Path, root: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "coderag_assets.cli",
        "--data-dir",
        str(data_dir),
        "index",
        str(root),
    ]
    started = time.perf_counter()
    completed = subprocess.run(
        [*command, "--json", "--quiet"],
        check=True,
        capture_output=True,
        text=True,
        env=server_env(),
    )
    result = json.loads(completed.stdout)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def server_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_http_server(data_dir: Path, root: Path, port: int, log_path: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "coderag_assets.cli", "--data-dir", str(data_dir),
        "serve", "--http", "--host", HOST, "--port", str(port), "--root", str(root),
    ]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(),
        )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}): {log_path.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start within {SERVER_START_TIMEOUT_S} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def workload(data_dir: Path, root: Path, count: int) -> tuple[list[str], list[str], list[str]]:
    """(search queries, symbol names, file paths) drawn from the index itself."""
    from coderag_assets.store import IndexStore, connect_index

    con = connect_index(IndexStore.for_root(data_dir, root).index_path)
    try:
        names = [
            row[0]
            for row in con.execute("SELECT DISTINCT name FROM symbols ORDER BY name").fetchall()
        ]
        paths = [
            row[0]
            for row in con.execute("SELECT path FROM files WHERE skip_reason IS NULL").fetchall()
        ]
    finally:
        con.close()
    rng = random.Random(SEED)
    identifiers = rng.sample(names, min(len(names), count - count // 2))
    queries = [*identifiers, *(QUESTIONS * (count // len(QUESTIONS) + 1))[: count // 2]]
    rng.shuffle(queries)
    return queries[:count], rng.sample(names, min(len(names), count)), paths


# ------------------------------------------------------------------------------ measurements


async def timed(client: Client, tool: str, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise RuntimeError(f"{tool}({arguments}): {result.content}")
    return elapsed


async def sequential(
    server: Any, queries: list[str], names: list[str]
) -> dict[str, dict[str, float]]:
    rng = random.Random(SEED)
    results: dict[str, dict[str, float]] = {}
    async with Client(server) as client:
        for query in QUESTIONS[:5]:  # warm the connection and caches
            await timed(client, "search", {"query": query})
        results["search hybrid"] = summary(
            [await timed(client, "search", {"query": q}) for q in queries]
        )
        results["search bm25"] = summary(
            [await timed(client, "search", {"query": q, "mode": "bm25"}) for q in queries]
        )
        results["find_symbol exact"] = summary(
            [await timed(client, "find_symbol", {"name": n}) for n in names]
        )
        fuzzy_names = [_typo(name, rng) for name in names[:50]]
        results["find_symbol fuzzy"] = summary(
            [await timed(client, "find_symbol", {"name": n, "mode": "fuzzy"}) for n in fuzzy_names]
        )
        results["find_references"] = summary(
            [await timed(client, "find_references", {"name": n}) for n in names[:50]]
        )
    return results


def _cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and its threads."""
    times = process.cpu_times()
    return times.user + times.system


def _typo(name: str, rng: random.Random) -> str:
    if len(name) < 4:
        return name
    index = rng.randrange(1, len(name) - 1)
    return name[:index] + name[index + 1] + name[index] + name[index + 2 :]


async def concurrent(
    url: str, clients: int, seconds: float, queries: list[str], names: list[str], paths: list[str]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def one_client(index: int) -> None:
        rng = random.Random(SEED + index)
        try:
            async with Client(url) as client:
                while time.monotonic() < deadline:
                    draw = rng.random()
                    if draw < 0.5:
                        tool, arguments = "search", {"query": rng.choice(queries)}
                    elif draw < 0.8:
                        tool, arguments = "find_symbol", {"name": rng.choice(names)}
                    elif draw < 0.9:
                        tool, arguments = (
                            "find_references",
                            {"name": rng.choice(names), "limit": 50},
                        )
                    else:
                        tool, arguments = "get_file", {"path": rng.choice(paths), "max_lines": 200}
                    try:
                        latencies.append(await timed(client, tool, arguments))
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(f"{tool}: {exc!r}"[:300])
        except Exception as exc:  # noqa: BLE001 - a session that failed to start or broke
            errors.append(f"client {index} session: {exc!r}"[:300])

    started = time.perf_counter()
    with anyio.fail_after(seconds + 120):  # hard bound: the loop stops by itself
        async with anyio.create_task_group() as group:
            for index in range(clients):
                group.start_soon(one_client, index)
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "calls": len(latencies),
        "calls_per_s": round(len(latencies) / wall, 1),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        **summary(latencies),
    }


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    data_dir = (CACHE / "mcp-data").resolve()
    root = copy_sources()
    indexed = index(data_dir, root)
    print(
        f"indexed {root.name}: {indexed['files']} files, {indexed['chunks']} chunks, "
        f"{indexed['wall_s']} s wall (cpu cores: {os.cpu_count()})"
    )
    queries, names, paths = workload(data_dir, root, args.queries)

    report: dict[str, Any] = {"index": {k: indexed[k] for k in ("files", "chunks", "wall_s")}}
    port = free_port()
    log_path = CACHE / "mcp-server.log"
    started = time.perf_counter()
    server = start_http_server(data_dir, root, port, log_path)
    report["http_server_start_s"] = round(time.perf_counter() - started, 2)
    url = f"http://{HOST}:{port}/mcp"
    try:
        report["http"] = anyio.run(sequential, url, queries, names)
        server_process, client_process = psutil.Process(server.pid), psutil.Process()
        server_cpu, client_cpu = _cpu_s(server_process), _cpu_s(client_process)
        report["concurrent"] = anyio.run(
            concurrent, url, args.clients, args.seconds, queries, names, paths
        )
        calls = max(1, report["concurrent"]["calls"])
        server_cpu = (_cpu_s(server_process) - server_cpu) * 1000 / calls
        client_cpu = (_cpu_s(client_process) - client_cpu) * 1000 / calls
        report["concurrent"]["server_cpu_ms_per_call"] = round(server_cpu, 2)
        report["concurrent"]["client_cpu_ms_per_call"] = round(client_cpu, 2)
        report["load_average"] = [round(value, 2) for value in os.getloadavg()]
        report["server_rss_mb"] = round(psutil.Process(server.pid).memory_info().rss / 2**20)
    finally:
        stop(server)

    stdio = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "coderag_assets.cli",
            "--data-dir",
            str(data_dir),
            "serve",
            "--root",
            str(root),
        ],
        env=server_env(),
        cwd=str(PROJECT),
    )
    report["stdio"] = anyio.run(sequential, stdio, queries, names)

    print(
        f"HTTP server ready in {report['http_server_start_s']} s (model warm before the first call)"
    )
    for transport in ("http", "stdio"):
        for label, stats in report[transport].items():
            print(line(f"{transport:<5} {label}", stats))
    load = report["concurrent"]
    print(
        f"concurrent: {load['clients']} clients × {load['seconds']} s on {HOST}: {load['calls']} calls "
        f"({load['calls_per_s']}/s), errors {load['errors']}, p50 {load['p50_ms']} ms, "
        f"p99 {load['p99_ms']} ms, max {load['max_ms']} ms; server RSS {report['server_rss_mb']} MB"
    )
    print(
        f"  CPU per call: server {load['server_cpu_ms_per_call']} ms, "
        f"clients {load['client_cpu_ms_per_call']} ms (all on {os.cpu_count()} cores; "
        f"1-min load average at the end {report['load_average'][0]})"
    )
    for example in load["error_examples"]:
        print(f"  error: {example}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if load["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
