"""Peak memory of `coderag index` and of a warm `coderag serve --http`, per stage and per mapping.

Two measurements, each run with every code tree given by `--code` (PYTHONPATH=<tree>),
alternated round by round so a baseline is measured in the same sitting:

- `index`: a cold `coderag index ROOT` into a fresh data directory. With `--models-from`
  the converted model is copied in first, so no conversion or compile is measured; that
  only works when those models were converted by a code tree at the same path (a model's
  directory name includes its weights' path, so another checkout converts again, and the
  row says "CONVERTED THE MODEL"). Without it every run converts, as the first index on a
  new data directory does. The RSS of the process tree is
  sampled every 20 ms and each sample is attributed to a stage by the run's own Dagster step
  events (read from the run's event-log database): `before_run` (imports, walk, plan),
  `prepare_shards`, `index_shard` (all shard steps), `record_shards`, `search_index`
  (publish), `after_run`. Prints the peak RSS of the `coderag` process and of the tree per
  stage (and, at the tree's peak, the process's and its largest child's share), VmHWM
  (the kernel's own peak) of the process, and the tree's peak PSS (shared pages split
  between the processes that map them; see `TreeSampler`).
- `serve`: `coderag serve --http` on an existing index, `--queries` warm hybrid searches
  through the MCP SDK client, then `/proc/PID/smaps` of the server grouped by what is
  mapped: anonymous memory (heap: Python objects, NumPy arrays, the compiled model's
  buffers), each kind of index file (`vectors.npy`, postings, `reader.arrow` ... : clean
  file pages the kernel can drop and re-read), the compiled model blob, shared libraries.
  Prints RSS, VmHWM, anon vs file, p50/p95 of the searches, and open + first query.
- `files`: the bytes per chunk of each kind of segment file of a published index (what a
  reader maps), to extrapolate to other sizes.

    .venv/bin/python benchmarks/memory.py serve --data-dir D --root R --code . --code ../base
    .venv/bin/python benchmarks/memory.py index --root R --models-from D/models --code .
    .venv/bin/python benchmarks/memory.py files --data-dir D --root R

`--json out.json` writes every row.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mcp_latency import HOST, free_port, stop, summary, timed
from scale import WARM_QUERIES

SAMPLE_INTERVAL_S = 0.02
SERVER_START_TIMEOUT_S = 300
MIB = 1024 * 1024
SEGMENT_FILE = re.compile(r"/segments/[0-9a-f]+/[0-9a-f]+/([^/]+)$")


# ------------------------------------------------------------------------------ helpers


def code_env(code: Path, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "CODERAG_DATA": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def coderag(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "coderag_assets.cli", "--data-dir", str(data_dir), *args]


# `python -m` puts the working directory first on sys.path: every command runs from here, so
# PYTHONPATH decides which code tree is measured.
NEUTRAL_CWD = tempfile.gettempdir()


def code_file(code: Path) -> str:
    """The `coderag_assets/__init__.py` a command run for `code` imports."""
    probe = subprocess.run(
        [sys.executable, "-c", "import coderag_assets; print(coderag_assets.__file__)"],
        env={**os.environ, "PYTHONPATH": str(code)},
        cwd=NEUTRAL_CWD,
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of `pid` in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0])
    return values


def mapping_kind(name: str) -> str:
    """What a mapping of /proc/PID/smaps holds, by its path."""
    if not name or name.startswith(("[heap]", "[anon")):
        return "anonymous"
    if name.startswith("["):
        return "other"
    match = SEGMENT_FILE.search(name)
    if match:
        return "index:" + match.group(1)
    if "/models/" in name:
        return "model files"
    if ".so" in name.rsplit("/", 1)[-1]:
        return "shared libraries"
    if name.endswith((".duckdb", ".wal")):
        return "index:duckdb"
    return "other files"


def smaps_by_kind(pid: int) -> dict[str, int]:
    """RSS in KiB per `mapping_kind` of every mapping of `pid`."""
    totals: collections.Counter[str] = collections.Counter()
    kind = "other"
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=6)
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", first[0]):
                kind = mapping_kind(first[5].strip() if len(first) > 5 else "")
            elif first[0] == "Rss:":
                totals[kind] += int(first[1])
    return dict(totals)


def rollup_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Anonymous", "Private_Clean", "Private_Dirty", "Shared_Clean"):
                values[key] = int(rest.split()[0])
    return values


class TreeSampler(threading.Thread):
    """Samples (time, RSS of the root process, RSS of the process tree, RSS of its largest
    child) every 20 ms, and the peak PSS of the tree (`tree_pss_peak`).

    The tree's RSS counts every page once per process that maps it: shared libraries in each
    chunking worker, and a parent's pages in a child forked before it calls exec (the model
    conversion's child starts ~25 such children: RSS sums of 2-2.5 GB for ~1.1 GB of memory).
    PSS splits a shared page between its processes: the memory the tree really holds.

    A child counts from its second sample on: a process forked to run another program
    (`subprocess`, ctypes' `find_library` running ldconfig, multiprocessing's spawn) shows
    its parent's whole RSS, shared copy-on-write, for the few ms before it execs. Counted,
    such a fork doubled the tree's peak (3.7 GB for a 1.5 GB process)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int, int]] = []
        self.hwm_kib = 0
        self.stopping = False
        self.previous_children: set[int] = set()
        self.tree_pss_peak = 0

    def run(self) -> None:
        while not self.stopping:
            try:
                parent = psutil.Process(self.pid)
                own = parent.memory_info().rss
                tree = own
                tree_pss = _pss(parent)
                largest_child = 0
                seen = set()
                for child in parent.children(recursive=True):
                    seen.add(child.pid)
                    if child.pid not in self.previous_children:
                        continue
                    try:
                        child_rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    tree += child_rss
                    tree_pss += _pss(child)
                    largest_child = max(largest_child, child_rss)
                self.tree_pss_peak = max(self.tree_pss_peak, tree_pss)
                self.previous_children = seen
                self.hwm_kib = max(self.hwm_kib, status_kib(self.pid).get("VmHWM", 0))
                self.samples.append((time.time(), own, tree, largest_child))
            except (psutil.Error, OSError):
                pass
            time.sleep(SAMPLE_INTERVAL_S)


def _pss(process: psutil.Process) -> int:
    """Proportional set size in bytes (0 when the process is gone or unreadable)."""
    try:
        return int(process.memory_full_info().pss)
    except (psutil.Error, AttributeError):
        return 0


def step_windows(data_dir: Path, run_id: str) -> list[tuple[str, float, float]]:
    """(stage, start, end) of every step of the run, from its event-log database."""
    database = data_dir / "history" / "runs" / f"{run_id}.db"
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT dagster_event_type, step_key, timestamp FROM event_logs "
            "WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE') "
            "ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    starts: dict[str, float] = {}
    windows = []
    for event_type, step_key, stamp in rows:
        seconds = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.UTC).timestamp()
        if event_type == "STEP_START":
            starts[step_key] = seconds
        elif step_key in starts:
            windows.append((step_key.split(".")[-1], starts.pop(step_key), seconds))
    return windows


def stage_name(step: str) -> str:
    """`index_shard[shard_2a]` → `index_shard`."""
    return step.split("[")[0]


def stage_of(moment: float, windows: list[tuple[str, float, float]]) -> str:
    for stage, start, end in windows:
        if start <= moment <= end:
            return stage
    if windows and moment < windows[0][1]:
        return "before_run"
    if windows and moment > max(end for _, _, end in windows):
        return "after_run"
    return "between_steps"


# ------------------------------------------------------------------------------ index


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_index(
    code: Path, root: Path, models_from: Path | None, work: Path, keep_in: Path | None = None
) -> dict[str, object]:
    """A cold index into a fresh data directory; with `keep_in`, into that one, kept after."""
    if keep_in is None:
        data_dir = work / f"data-{hashlib.sha256(str(code).encode()).hexdigest()[:8]}"
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        data_dir = keep_in
        if (data_dir / "indexes").exists():
            raise SystemExit(f"--keep-in {data_dir} already holds an index: not a cold run")
    data_dir.mkdir(parents=True, exist_ok=True)
    if models_from is not None and not (data_dir / "models").exists():
        shutil.copytree(models_from, data_dir / "models")
    models_before = model_dirs(data_dir)
    cpu_before = children_cpu_s()
    started = time.time()
    process = subprocess.Popen(
        coderag(data_dir, "index", str(root), "--json", "--quiet"),
        env=code_env(code, data_dir),
        cwd=NEUTRAL_CWD,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = TreeSampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.stopping = True
    sampler.join()
    wall = time.time() - started
    cpu = children_cpu_s() - cpu_before
    if process.returncode != 0:
        raise RuntimeError(f"coderag index failed ({process.returncode}): {stderr[-2000:]}")
    result = json.loads(stdout)
    windows = step_windows(data_dir, result["run_id"])
    per_stage: dict[str, list[int]] = {}
    per_step: dict[str, int] = {}
    for moment, own, tree, largest_child in sampler.samples:
        step = stage_of(moment, windows)
        # peak process, peak tree, and at the tree's peak: the process and its largest child
        stage = per_stage.setdefault(stage_name(step), [0, 0, 0, 0])
        stage[0] = max(stage[0], own)
        if tree > stage[1]:
            stage[1:] = [tree, own, largest_child]
        per_step[step] = max(per_step.get(step, 0), own)
    top_steps = sorted(per_step.items(), key=lambda item: -item[1])[:3]
    row: dict[str, object] = {
        "code": str(code),
        "chunks": result["chunks"],
        "embedded": result["embedded"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_after": round(os.getloadavg()[0], 2),
        "peak_process_mib": round(max((s[1] for s in sampler.samples), default=0) / MIB),
        "peak_tree_mib": round(max((s[2] for s in sampler.samples), default=0) / MIB),
        "peak_tree_pss_mib": round(sampler.tree_pss_peak / MIB),
        "vmhwm_mib": round(sampler.hwm_kib / 1024),
        # a run that had to convert the model (no --models-from, or one converted for
        # another weights path: the directory name includes it) peaks higher
        "converted_model": model_dirs(data_dir) != models_before,
        "stages": {
            stage: {
                "process_mib": round(own / MIB),
                "tree_mib": round(tree / MIB),
                "at_tree_peak_process_mib": round(own_then / MIB),
                "at_tree_peak_largest_child_mib": round(child_then / MIB),
            }
            for stage, (own, tree, own_then, child_then) in per_stage.items()
        },
        "top_steps_mib": {step: round(own / MIB) for step, own in top_steps},
    }
    if keep_in is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return row


def model_dirs(data_dir: Path) -> list[str]:
    models = data_dir / "models"
    return sorted(path.name for path in models.iterdir()) if models.is_dir() else []


def print_index(row: dict[str, object]) -> None:
    print(
        f"  {row['code']}: {row['chunks']} chunks ({row['embedded']} embedded), "
        f"{row['wall_s']} s wall, {row['cpu_s']} CPU s (process tree); peak process {row['peak_process_mib']} MiB "
        f"(VmHWM {row['vmhwm_mib']}), tree {row['peak_tree_mib']} MiB "
        f"(PSS {row['peak_tree_pss_mib']} MiB)"
        + ("; CONVERTED THE MODEL in this run" if row["converted_model"] else "")
    )
    for stage, peaks in row["stages"].items():  # type: ignore[union-attr]
        print(
            f"      {stage:16s} process {peaks['process_mib']:6d}  tree {peaks['tree_mib']:6d} MiB"
            f"  (at the tree's peak: process {peaks['at_tree_peak_process_mib']}, largest "
            f"child {peaks['at_tree_peak_largest_child_mib']})"
        )
    steps = ", ".join(f"{step} {mib}" for step, mib in row["top_steps_mib"].items())  # type: ignore[union-attr]
    print(f"      highest steps (process MiB): {steps}")


# ------------------------------------------------------------------------------ serve


def start_server(code: Path, data_dir: Path, root: Path, port: int, log: Path) -> subprocess.Popen:
    import socket

    with open(log, "w") as log_file:
        process = subprocess.Popen(
            coderag(data_dir, "serve", "--http", "--host", HOST, "--port", str(port),
                    "--root", str(root)),
            env=code_env(code, data_dir), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=NEUTRAL_CWD,
        )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}): {log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not start within {SERVER_START_TIMEOUT_S} s")


def symbol_names(data_dir: Path, root: Path, count: int) -> list[str]:
    """`count` distinct definition names of the index (a fixed sample), as queries."""
    import random

    import duckdb

    sys.path.insert(0, str(HERE.parent))
    from coderag_assets.store import IndexStore

    index = IndexStore.for_root(data_dir, root).index_path
    with duckdb.connect(str(index), read_only=True) as connection:
        names = [
            row[0]
            for row in connection.execute("SELECT DISTINCT name FROM symbols ORDER BY 1").fetchall()
        ]
    return random.Random(7).sample(names, min(count, len(names)))


def measure_serve(
    code: Path, data_dir: Path, root: Path, queries: int, work: Path, names: list[str]
) -> dict[str, object]:
    port = free_port()
    started = time.perf_counter()
    server = start_server(code, data_dir, root, port, work / "server.log")
    listening = time.perf_counter() - started

    async def run() -> tuple[float, list[float]]:
        from mcp import Client

        async with Client(f"http://{HOST}:{port}/mcp") as client:
            first = await timed(client, "search", {"query": WARM_QUERIES[0]})
            for query in WARM_QUERIES[:5]:
                await timed(client, "search", {"query": query})
            picked = (WARM_QUERIES * (queries // len(WARM_QUERIES) + 1))[:queries]
            return first, [
                await timed(client, "search", {"query": q, "mode": "hybrid"}) for q in picked
            ]

    async def distinct() -> None:
        from mcp import Client

        async with Client(f"http://{HOST}:{port}/mcp") as client:
            for name in names:
                await timed(client, "search", {"query": name, "mode": "hybrid"})

    try:
        first, latencies = anyio.run(run)
        kinds = smaps_by_kind(server.pid)
        rollup = rollup_kib(server.pid)
        status = status_kib(server.pid)
        if names:  # many different queries: what the caches grow to
            anyio.run(distinct)
            after = status_kib(server.pid)
    finally:
        stop(server)
    stats = summary(latencies)
    index_kib = sum(v for k, v in kinds.items() if k.startswith("index:"))
    return {
        "code": str(code),
        "listening_s": round(listening, 2),
        "first_query_s": round(first, 3),
        "p50_ms": stats["p50_ms"],
        "p95_ms": stats["p95_ms"],
        "rss_mib": round(status["VmRSS"] / 1024),
        "vmhwm_mib": round(status["VmHWM"] / 1024),
        "anonymous_mib": round(rollup["Anonymous"] / 1024),
        "file_mib": round(status["RssFile"] / 1024),
        "index_files_mib": round(index_kib / 1024),
        "by_mapping_mib": {k: round(v / 1024, 1) for k, v in sorted(kinds.items())},
        "distinct_queries": len(names),
        "after_distinct_rss_mib": round(after["VmRSS"] / 1024) if names else None,
        "after_distinct_anonymous_mib": round(after["RssAnon"] / 1024) if names else None,
    }


def print_serve(row: dict[str, object]) -> None:
    print(
        f"  {row['code']}: RSS {row['rss_mib']} MiB (VmHWM {row['vmhwm_mib']}): anonymous "
        f"{row['anonymous_mib']}, file-backed {row['file_mib']} (index files "
        f"{row['index_files_mib']}); hybrid p50 {row['p50_ms']} ms p95 {row['p95_ms']} ms; "
        f"listening {row['listening_s']} s, first query {row['first_query_s']} s"
    )
    if row["distinct_queries"]:
        print(
            f"      after {row['distinct_queries']} more queries (distinct names): RSS "
            f"{row['after_distinct_rss_mib']} MiB, anonymous {row['after_distinct_anonymous_mib']}"
        )
    for kind, mib in sorted(row["by_mapping_mib"].items(), key=lambda kv: -kv[1]):  # type: ignore[union-attr]
        if mib >= 0.5:
            print(f"      {kind:28s} {mib:8.1f} MiB")


# ------------------------------------------------------------------------------ files


def segment_file_sizes(data_dir: Path, root: Path) -> dict[str, object]:
    """Bytes per chunk of each kind of segment file in the published version."""
    sys.path.insert(0, str(HERE.parent))
    from coderag_assets import segments
    from coderag_assets.store import IndexStore

    base = IndexStore.for_root(data_dir, root).base
    version = segments.read_current(base)
    sizes: collections.Counter[str] = collections.Counter()
    chunks = distinct = 0
    for relative in version.segments.values():
        directory = base / relative
        info = json.loads((directory / "segment.json").read_text())
        chunks += int(info["chunks"])
        distinct += int(info.get("distinct_vectors", 0))
        for path in directory.iterdir():
            sizes[path.name] += path.stat().st_size
    return {
        "chunks": chunks,
        "distinct_vectors": distinct,
        "bytes": dict(sizes),
        "bytes_per_chunk": {name: round(size / max(chunks, 1), 1) for name, size in sizes.items()},
    }


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("index", "serve", "files"))
    parser.add_argument("--root", type=Path, required=True, help="the indexed tree")
    parser.add_argument("--data-dir", type=Path, help="serve/files: the data directory")
    parser.add_argument(
        "--models-from",
        type=Path,
        help="index: a data directory's models/, converted by the same code tree path (the "
        "model's directory name includes the weights' path); without it each run converts",
    )
    parser.add_argument("--code", type=Path, action="append", help="code trees (default .)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--names", type=int, default=0, help="serve: then this many distinct-name queries"
    )
    parser.add_argument(
        "--keep-in",
        type=Path,
        help="index: index into this data directory (no index yet) and keep it (one code tree)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.keep_in and (len(args.code or []) > 1 or args.rounds > 1):
        parser.error("--keep-in measures one cold index: one --code, one round")
    root = args.root.resolve()
    codes = [code.resolve() for code in (args.code or [HERE.parent])]
    print(f"load average {os.getloadavg()}", flush=True)
    for code in codes:
        imported = code_file(code)
        if not imported.startswith(str(code) + os.sep):
            raise SystemExit(f"--code {code} imports {imported}: not that tree")
        print(f"code {code}: {imported}")

    if args.what == "files":
        sizes = segment_file_sizes(args.data_dir.resolve(), root)
        print(json.dumps(sizes, indent=1))
        return 0

    if args.what == "serve":
        for code in codes:  # each code tree converts and compiles its model once: not measured
            subprocess.run(
                coderag(args.data_dir.resolve(), "search", "warm up", "--root", str(root)),
                env=code_env(code, args.data_dir.resolve()),
                cwd=NEUTRAL_CWD,
                capture_output=True,
                check=True,
            )
    names = symbol_names(args.data_dir.resolve(), root, args.names) if args.names else []
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="coderag-memory-") as temporary:
        work = Path(temporary)
        for number in range(args.rounds):
            for code in codes:
                if args.what == "index":
                    row = measure_index(
                        code,
                        root,
                        args.models_from.resolve() if args.models_from else None,
                        work,
                        args.keep_in.resolve() if args.keep_in else None,
                    )
                    print_index(row)
                else:
                    row = measure_serve(
                        code, args.data_dir.resolve(), root, args.queries, work, names
                    )
                    print_serve(row)
                row["round"] = number
                rows.append(row)
                sys.stdout.flush()
    if len(codes) > 1 and args.rounds > 1:
        key = "peak_process_mib" if args.what == "index" else "rss_mib"
        for code in codes:
            values = [r[key] for r in rows if r["code"] == str(code)]
            print(f"  median {key} {code}: {statistics.median(values)}")  # type: ignore[type-var]
    print(f"load average {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
