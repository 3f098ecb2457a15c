"""Speed of the web page and JSON API of `coderag serve --http` on a ~40k-chunk index.

Builds a monorepo of K copies of one real sdist (default: requests 2.32.3 × 54 ≈ 40k chunks,
the way benchmarks/scale.py does; identical copies are embedded once thanks to content-hash
reuse, so building it costs about a minute instead of the ~10 CPU-minutes of Django), indexes
it into benchmarks/.cache/web-data, starts `coderag serve --http` on 127.0.0.1 and measures,
client side:

1. in-process hybrid search (an IndexBackend in this process, on the same index): p50 — the
   baseline the API's overhead is measured against, same queries, same run;
2. `/api/search` (hybrid) one request at a time: p50/p95, and overhead = API p50 − baseline p50;
3. page load: `/?q=…` HTML plus its three assets (style.css, pygments.css, app.js), sequential
   like a browser with a cold cache: p50/p95; and the file view of a large file;
4. 20 concurrent clients (threads, one keep-alive connection each) on `/api/search` for 60 s,
   bounded by a deadline: requests, throughput, errors, p50/p95/p99;
5. `/metrics` after the load: p50/max over 50 scrapes.

All traffic stays on loopback. Clients run on the same 2 cores as the server, so the
concurrent numbers include client CPU. Wrap timing runs in `flock /tmp/coderag-bench.lock`.

Usage: .venv/bin/python benchmarks/web_latency.py [--copies 54] [--clients 20] [--seconds 60]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from index_throughput import CACHE, fetch_sdist
from mcp_latency import HOST, free_port, stop, summary
from scale import WARM_QUERIES, build_monorepo

CODERAG = [sys.executable, "-m", "coderag_assets.cli"]
SERVER_START_TIMEOUT_S = 300
ASSETS = ("/static/style.css", "/static/pygments.css", "/static/app.js")
SEED = 11


def server_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def index(data: Path, root: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [*CODERAG, "--data-dir", str(data), "index", str(root), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=server_env(),
    )
    summary_json = json.loads(done.stdout)
    summary_json["wall_s"] = round(time.perf_counter() - started, 1)
    return summary_json


def start_server(data: Path, root: Path, port: int, log_path: Path) -> subprocess.Popen:
    command = [*CODERAG, "--data-dir", str(data), "serve", "--http", "--host", HOST,
               "--port", str(port), "--root", str(root)]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=server_env(),
        )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    url = f"http://{HOST}:{port}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"server did not answer within {SERVER_START_TIMEOUT_S} s")


def in_process_baseline(data: Path, root: Path, queries: list[str]) -> dict[str, float]:
    from coderag_assets.backend import IndexBackend
    from coderag_assets.settings import load_settings
    from coderag_assets.store import IndexStore

    settings = load_settings(data_dir=data).with_root(root)
    backend = IndexBackend(IndexStore.for_root(data, root), settings)
    try:
        backend.warm_up()
        for query in queries[:5]:
            backend.search_results(query, "hybrid", 10, None, None)
        latencies = []
        for query in queries:
            started = time.perf_counter()
            backend.search_results(query, "hybrid", 10, None, None)
            latencies.append(time.perf_counter() - started)
    finally:
        backend.close()
    return summary(latencies)


def sequential_api(url: str, queries: list[str]) -> dict[str, float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for query in queries[:5]:
            client.get("/api/search", params={"q": query, "mode": "hybrid"}).raise_for_status()
        for query in queries:
            started = time.perf_counter()
            client.get("/api/search", params={"q": query, "mode": "hybrid"}).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return summary(latencies)


def page_loads(url: str, queries: list[str], file_path: str) -> dict[str, dict[str, float]]:
    pages, files = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        for query in queries:
            started = time.perf_counter()
            client.get("/", params={"q": query}).raise_for_status()
            for asset in ASSETS:
                client.get(asset).raise_for_status()
            pages.append(time.perf_counter() - started)
        for _ in range(20):
            started = time.perf_counter()
            client.get("/file/" + file_path).raise_for_status()
            files.append(time.perf_counter() - started)
    return {"page_load": summary(pages), "file_view": summary(files)}


def concurrent_api(url: str, queries: list[str], clients: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def client_loop(number: int) -> None:
        rng = random.Random(SEED + number)
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() < deadline:
                query = rng.choice(queries)
                started = time.perf_counter()
                try:
                    response = client.get("/api/search", params={"q": query, "mode": "hybrid"})
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies[number].append(time.perf_counter() - started)

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    wall = time.perf_counter() - started
    flat = [value for per_client in latencies for value in per_client]
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(flat),
        "throughput_rps": round(len(flat) / wall, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        **summary(flat),
    }


def metrics_scrapes(url: str) -> dict[str, float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(50):
            started = time.perf_counter()
            client.get("/metrics").raise_for_status()
            latencies.append(time.perf_counter() - started)
    return summary(latencies)


def largest_file(root: Path) -> str:
    files = sorted(root.rglob("*.py"), key=lambda path: path.stat().st_size)
    return files[-1].relative_to(root).as_posix()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="requests==2.32.3")
    parser.add_argument("--copies", type=int, default=54)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    source = fetch_sdist(args.package)
    work = CACHE / "web"
    data = CACHE / "web-data"
    root = (work / f"mono-{args.copies}").resolve()
    if not (root / f"copy_{args.copies - 1:02}").is_dir():
        build_monorepo(source, root, args.copies)
    indexed = index(data, root)
    print(f"index: {indexed['chunks']} chunks, {indexed['wall_s']} s", flush=True)
    queries = list(WARM_QUERIES) * 3
    random.Random(SEED).shuffle(queries)

    baseline = in_process_baseline(data, root, queries)
    print(f"in-process hybrid search  p50 {baseline['p50_ms']} ms", flush=True)
    port = free_port()
    log_path = work / "server.log"
    process = start_server(data, root, port, log_path)
    url = f"http://{HOST}:{port}"
    try:
        api = sequential_api(url, queries)
        pages = page_loads(url, queries[:30], largest_file(root))
        load = concurrent_api(url, queries, args.clients, args.seconds)
        scrapes = metrics_scrapes(url)
    finally:
        stop(process)
    result = {
        "package": args.package,
        "copies": args.copies,
        "chunks": indexed["chunks"],
        "load_average": os.getloadavg(),
        "in_process_search": baseline,
        "api_search": api,
        "api_overhead_p50_ms": round(api["p50_ms"] - baseline["p50_ms"], 2),
        **pages,
        "concurrent_api_search": load,
        "metrics": scrapes,
    }
    print(f"/api/search sequential     p50 {api['p50_ms']} ms  p95 {api['p95_ms']} ms  "
          f"(overhead over in-process p50: {result['api_overhead_p50_ms']} ms)")  # fmt: skip
    print(f"page load (HTML + 3 assets) p50 {pages['page_load']['p50_ms']} ms  "
          f"p95 {pages['page_load']['p95_ms']} ms")  # fmt: skip
    print(f"file view ({largest_file(root)}) p50 {pages['file_view']['p50_ms']} ms")
    print(f"{load['clients']} clients × {load['seconds']} s: {load['requests']} requests, "
          f"{load['throughput_rps']} req/s, {load['errors']} errors, p50 {load['p50_ms']} ms, "
          f"p95 {load['p95_ms']} ms, p99 {load['p99_ms']} ms")  # fmt: skip
    print(f"/metrics p50 {scrapes['p50_ms']} ms  max {scrapes['max_ms']} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"mean load average during the run: {statistics.fmean(os.getloadavg()):.2f}")
    return 0 if load["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
