"""How indexing and search scale with repository size: a monorepo of K copies of one real sdist.

For each K in `--copies` it builds `<work>/mono-K/copy_00 … copy_{K-1}` (K identical copies of
a pinned sdist, default requests 2.32.3; vectors are shared by content hash, so only one copy
is embedded) and measures, with the `coderag` found on PYTHONPATH (run it once per code tree):

- chunks, cold `coderag index` wall and peak RSS (process tree, and the largest process);
- one-file edits (`--edits`, a function appended to one file of copy_00 each time) →
  `coderag index` wall: the median, and the first (it also loads the model for the new chunk);
  each edit must be found by a bm25 search afterwards;
- cold `coderag search` wall and peak RSS, hybrid and bm25 (median of `--repeats`);
- warm hybrid search p50/p95 through the MCP server (`coderag serve --http`, the SDK client,
  helpers from benchmarks/mcp_latency.py);
- time to first search on a cold index: `coderag index` starts in the background and
  `coderag search --mode bm25` is polled until it returns results (seconds since the start).

Every cold index starts from an empty `indexes/` in the data directory (the converted model
under `models/` is kept, as in index_throughput.py).

    .venv/bin/python benchmarks/scale.py [--package requests==2.32.3] [--copies 1,10,25]
        [--json out.json] [--compare before.json]

`--compare` prints the rows of an earlier `--json` file next to this run's, with ratios
(this run / earlier). Run from outside the project directory when PYTHONPATH points at another
code tree (`python -m` puts the working directory first on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from index_throughput import CACHE, RssSampler, fetch_sdist
from mcp_latency import HOST, free_port, start_http_server, stop, summary, timed

CODERAG = [sys.executable, "-m", "coderag_assets.cli"]
QUERY = "retry a request after a redirect and keep the session cookies"
WARM_QUERIES = [
    "send a prepared request through a session",
    "how are redirects followed and limited",
    "merge environment proxy settings",
    "parse a content type header charset",
    "basic authentication header",
    "digest authentication challenge",
    "stream the response body in chunks",
    "raise an error for a bad http status code",
    "encode multipart form data files",
    "verify tls certificates with a ca bundle",
    "case insensitive dictionary of headers",
    "build a url from params",
    "cookie jar extraction from a response",
    "mount a transport adapter for a prefix",
    "connection pool size for the adapter",
    "timeout for connect and read",
    "get_netrc_auth",
    "resolve_redirects",
    "iter_content",
    "HTTPAdapter",
]
POLL_TIMEOUT_S = 1800


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def measured(command: list[str]) -> tuple[float, float, float, str]:
    """(wall s, peak RSS of the process tree MiB, of the largest process MiB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = RssSampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    sampler.stop_flag = True
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return wall, sampler.peak_total / 2**20, sampler.peak_single / 2**20, stdout


def build_monorepo(source: Path, root: Path, copies: int) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for number in range(copies):
        shutil.copytree(source, root / f"copy_{number:02}")


def edit_target(root: Path) -> Path:
    """A deterministic mid-sized Python file of copy_00."""
    files = sorted(p for p in (root / "copy_00").rglob("*.py") if p.stat().st_size > 2000)
    return files[len(files) // 2]


def cold_search(data: Path, root: Path, mode: str, repeats: int) -> tuple[float, float]:
    """(median wall s, median peak RSS MiB of the process tree) of `coderag search`."""
    runs = []
    for _ in range(repeats):
        wall, rss, _, stdout = measured(
            [*CODERAG, "--data-dir", str(data), "search", QUERY, "--mode", mode,
             "--root", str(root), "--json", "--limit", "10"]
        )  # fmt: skip
        if not json.loads(stdout):
            raise RuntimeError(f"{mode} search returned nothing")
        runs.append((wall, rss))
    return statistics.median(w for w, _ in runs), statistics.median(r for _, r in runs)


def warm_mcp(data: Path, root: Path, work: Path, queries: int) -> dict[str, float]:
    port = free_port()
    started = time.perf_counter()
    server = start_http_server(data, root, port, work / "mcp-server.log")
    server_start = time.perf_counter() - started

    async def run() -> list[float]:
        from mcp import Client

        async with Client(f"http://{HOST}:{port}/mcp") as client:
            for query in WARM_QUERIES[:5]:
                await timed(client, "search", {"query": query})
            picked = (WARM_QUERIES * (queries // len(WARM_QUERIES) + 1))[:queries]
            return [await timed(client, "search", {"query": q, "mode": "hybrid"}) for q in picked]

    try:
        stats = summary(anyio.run(run))
    finally:
        stop(server)
    return {"p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"], "server_start_s": server_start}


def time_to_first_search(data: Path, root: Path) -> tuple[float, float, int]:
    """(s until a bm25 search returns results, s until `coderag index` exits, polls)."""
    shutil.rmtree(data / "indexes", ignore_errors=True)
    started = time.perf_counter()
    indexer = subprocess.Popen(
        [*CODERAG, "--data-dir", str(data), "index", str(root), "--json", "-q"],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    first, polls = None, 0
    while time.perf_counter() - started < POLL_TIMEOUT_S:
        polls += 1
        result = subprocess.run(
            [*CODERAG, "--data-dir", str(data), "search", QUERY, "--mode", "bm25",
             "--root", str(root), "--json", "--limit", "3"],
            env=env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0 and json.loads(result.stdout or "[]"):
            first = time.perf_counter() - started
            break
        if indexer.poll() is not None and indexer.returncode != 0:
            raise RuntimeError("coderag index failed during the time-to-first-search run")
        time.sleep(0.2)
    indexer.wait()
    done = time.perf_counter() - started
    return (first if first is not None else float("nan")), done, polls


def measure(source: Path, work: Path, data: Path, copies: int, args) -> dict[str, float]:
    root = work / f"mono-{copies}"
    build_monorepo(source, root, copies)
    shutil.rmtree(data / "indexes", ignore_errors=True)
    row: dict[str, float] = {"copies": copies}

    wall, tree, single, stdout = measured(
        [*CODERAG, "--data-dir", str(data), "index", str(root), "--json", "-q"]
    )
    indexed = json.loads(stdout)
    row.update(chunks=indexed["chunks"], embedded=indexed["embedded"], index_s=wall,
               index_rss_tree_mb=tree, index_rss_max_mb=single)  # fmt: skip
    print(f"  K={copies}: cold index {wall:.1f} s, {indexed['chunks']} chunks", flush=True)

    row["shards"] = indexed.get("shard_count")
    target = edit_target(root)
    walls: list[float] = []
    for number in range(max(1, args.edits)):  # each appends one more function to the file
        marker = f"scale_marker_{int(time.time())}_{number}"
        with target.open("a") as handle:
            handle.write(f"\n\ndef {marker}(items):\n    return [item for item in items if item]\n")
        wall, _, _, stdout = measured(
            [*CODERAG, "--data-dir", str(data), "index", str(root), "--json", "-q"]
        )
        walls.append(wall)
        edited = json.loads(stdout)
        found = subprocess.run(
            [*CODERAG, "--data-dir", str(data), "search", marker, "--mode", "bm25", "--root", str(root), "--json"],
            env=env(), capture_output=True, text=True, check=True,
        )  # fmt: skip
        if not any(marker in r["content"] for r in json.loads(found.stdout)):
            raise RuntimeError(f"edit {number + 1}: {marker} is not found after `coderag index`")
    row["edit_index_s"] = statistics.median(walls)
    row["edit_index_first_s"] = walls[0]
    row["edit_index_walls_s"] = walls
    row["edit_embedded"] = edited["embedded"]
    row["edit_found"] = 1
    # Where the last edit's seconds went (plan, run, steps, publish...), as the run recorded them.
    row.update({f"edit_timing_{k}": v for k, v in (edited.get("timings") or {}).items()})
    print(
        f"  K={copies}: {len(walls)} edits → index "
        + ", ".join(f"{wall:.1f}" for wall in walls)
        + f" s (median {row['edit_index_s']:.1f} s; each found by search)",
        flush=True,
    )

    for mode in ("hybrid", "bm25"):
        wall, rss = cold_search(data, root, mode, args.repeats)
        row[f"search_{mode}_s"], row[f"search_{mode}_rss_mb"] = wall, rss
    print(
        f"  K={copies}: cold search hybrid {row['search_hybrid_s']:.2f} s, bm25 {row['search_bm25_s']:.2f} s",
        flush=True,
    )

    if args.warm_queries:
        warm = warm_mcp(data, root, work, args.warm_queries)
        row.update(warm_hybrid_p50_ms=warm["p50_ms"], warm_hybrid_p95_ms=warm["p95_ms"],
                   mcp_server_start_s=warm["server_start_s"])  # fmt: skip

    if not args.no_ttfs:
        first, done, polls = time_to_first_search(data, root)
        row.update(ttfs_bm25_s=first, ttfs_index_s=done, ttfs_polls=polls)
        print(
            f"  K={copies}: first bm25 result after {first:.1f} s (index done {done:.1f} s)",
            flush=True,
        )
    return row


COLUMNS = [
    ("chunks", "chunks", "{:.0f}"),
    ("embedded", "embedded (cold)", "{:.0f}"),
    ("index_s", "cold index s", "{:.1f}"),
    ("index_rss_tree_mb", "cold index RSS tree MiB", "{:.0f}"),
    ("index_rss_max_mb", "cold index RSS max proc MiB", "{:.0f}"),
    ("shards", "shards", "{:.0f}"),
    ("edit_index_s", "1-file edit → index s (median)", "{:.1f}"),
    ("edit_index_first_s", "  first edit s", "{:.1f}"),
    ("search_hybrid_s", "cold search hybrid s", "{:.2f}"),
    ("search_hybrid_rss_mb", "cold search hybrid RSS MiB", "{:.0f}"),
    ("search_bm25_s", "cold search bm25 s", "{:.2f}"),
    ("search_bm25_rss_mb", "cold search bm25 RSS MiB", "{:.0f}"),
    ("warm_hybrid_p50_ms", "warm hybrid p50 ms (MCP)", "{:.1f}"),
    ("warm_hybrid_p95_ms", "warm hybrid p95 ms (MCP)", "{:.1f}"),
    ("ttfs_bm25_s", "time to first bm25 search s", "{:.1f}"),
    ("ttfs_index_s", "  (index finished at s)", "{:.1f}"),
]


def fmt(pattern: str, value) -> str:
    return "—" if value is None else pattern.format(value)


def print_table(rows: list[dict], before: list[dict] | None) -> None:
    earlier = {row["copies"]: row for row in before or []}
    header = ["metric"]
    for row in rows:
        k = row["copies"]
        header += [f"K={k} before", f"K={k} after", "ratio"] if before else [f"K={k}"]
    lines = [header]
    for key, label, pattern in COLUMNS:
        cells = [label]
        for row in rows:
            now = row.get(key)
            if before:
                then = earlier.get(row["copies"], {}).get(key)
                ratio = f"{now / then:.2f}" if now is not None and then else "—"
                cells += [fmt(pattern, then), fmt(pattern, now), ratio]
            else:
                cells.append(fmt(pattern, now))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for number, cells in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )
        )
        if number == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="requests==2.32.3")
    parser.add_argument("--copies", default="1,10,25", help="comma-separated K values")
    parser.add_argument("--work", type=Path, default=CACHE / "scale")
    parser.add_argument("--data-dir", type=Path, default=None, help="default <work>/data")
    parser.add_argument("--repeats", type=int, default=3, help="cold searches per mode")
    parser.add_argument("--edits", type=int, default=3, help="one-file edits, one after another")
    parser.add_argument("--warm-queries", type=int, default=40, help="0 skips the MCP measurement")
    parser.add_argument("--no-ttfs", action="store_true", help="skip time to first search")
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    parser.add_argument(
        "--compare", type=Path, help="an earlier --json file to print next to this run"
    )
    args = parser.parse_args()

    source = fetch_sdist(args.package)
    work = args.work.resolve()
    data = (args.data_dir or work / "data").resolve()
    work.mkdir(parents=True, exist_ok=True)
    before = json.loads(args.compare.read_text()) if args.compare else None  # fail early
    os.chdir(work)  # `python -m` must not pick up a coderag_assets from the working directory
    probe = subprocess.run(
        [sys.executable, "-c", "import coderag_assets; print(coderag_assets.__file__)"],
        env=env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    print(f"code: {probe.stdout.strip()}")
    print(f"source: {source}; work: {work}; data: {data}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)

    # One untimed index of a one-file tree: converts/caches the model like a first-ever run would.
    warmup = work / "warmup"
    shutil.rmtree(warmup, ignore_errors=True)
    warmup.mkdir()
    (warmup / "hello.py").write_text("def hello():\n    return 'hello'\n")
    measured([*CODERAG, "--data-dir", str(data), "index", str(warmup), "--json", "-q"])

    rows = []
    for copies in [int(k) for k in args.copies.split(",")]:
        rows.append(measure(source, work, data, copies, args))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    print_table(rows, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
