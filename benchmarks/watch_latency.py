"""Write → searchable latency of `coderag watch` on a copy of a real repository.

Copies a real source tree (default: the installed `dagster` package, ~800 files), indexes it
once with `coderag index`, starts `coderag watch --json` on it, then makes 20 edits one after
another (modify, create, delete, rename, and one 200-file burst). For each edit it measures

- write → published: from the write until a new `index.duckdb` holding the change is
  published (polled with `stat` every 20 ms; the watcher's own JSON line gives the breakdown);
- write → `coderag search` returns it: the published time plus one `coderag search --json`
  process (a cold CLI start) that finds the new content (or no longer finds deleted content);

and prints p50/p90 plus the median breakdown: tick wait (write → the watcher's tick), the
sensor tick (stat walk + fingerprints), Dagster run overhead (run creation, step and event
bookkeeping), manifest, chunking, embedding (model already warm in the watcher; its one-time
load is reported at start-up), index build + publish, post-publish checks.

    .venv/bin/python benchmarks/watch_latency.py [--source DIR] [--work DIR] [--edits 20]

The work directory (default `benchmarks/.cache/watch/`) keeps the copy and the data directory
between runs, so a second run skips the first full index.

`--in-place ROOT --data-dir D` measures on an already indexed tree instead of a copy (a big
shared tree, e.g. Django ×10, where a copy and its first index cost minutes and gigabytes):
afterwards the appended functions are cut off again, the created files removed and the tree
re-indexed, so the tree and its index are as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_WORK = PROJECT_DIR / "benchmarks" / ".cache" / "watch"
CODERAG = [str(Path(sys.executable).parent / "coderag")]
POLL_S = 0.02
EDIT_TIMEOUT_S = 180.0
BURST_FILES = 200
SETTLE_BETWEEN_EDITS_S = 1.0


@dataclass
class EditResult:
    kind: str
    description: str
    files: int
    write_to_published: float | None = None
    write_to_search: float | None = None
    search_cli_seconds: float | None = None
    updates: list[dict] = field(default_factory=list)
    written_at: float = 0.0

    def breakdown_rows(self) -> list[dict]:
        """The watcher's updates with `tick_wait` measured from this benchmark's write time."""
        rows = []
        for update in self.updates:
            rows.append({**update, "tick_wait": update["detected_at"] - self.written_at})
        return rows


def default_source() -> Path:
    import dagster

    return Path(dagster.__file__).resolve().parent


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def coderag(data: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [*CODERAG, "--data-dir", str(data), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class WatchProcess:
    """`coderag watch --json` as a child process; its JSON lines are collected with arrival times."""

    def __init__(self, data: Path, root: Path):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [*CODERAG, "--data-dir", str(data), "watch", str(root), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.updates: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.messages: list[tuple[float, str]] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.updates.put((time.time(), json.loads(line)))
            except ValueError:
                self.messages.append((time.time(), line.rstrip()))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.messages.append((time.time(), line.rstrip()))

    def wait_for_message(self, text: str, timeout: float) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for _, message in self.messages:
                if text in message:
                    return message
            if self.process.poll() is not None:
                raise RuntimeError("watch exited:\n" + "\n".join(m for _, m in self.messages))
            time.sleep(0.05)
        raise TimeoutError(f"no {text!r} from coderag watch")

    def drain(self) -> list[dict]:
        drained = []
        while True:
            try:
                drained.append(self.updates.get_nowait()[1])
            except queue.Empty:
                return drained

    def stop(self) -> float:
        """SIGTERM, then seconds until the process exited."""
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.perf_counter() - started


def index_stamp(index_path: Path) -> tuple[int, int] | None:
    try:
        stat = index_path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def searched(data: Path, root: Path, token: str) -> tuple[list[dict], float]:
    started = time.perf_counter()
    result = coderag(
        data,
        "search",
        token,
        "--json",
        "--mode",
        "bm25",
        "--limit",
        "5",
        "--root",
        str(root),
        timeout=120,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return [], seconds
    return json.loads(result.stdout), seconds


def wait_until_searchable(
    data: Path, root: Path, index_path: Path, written_at: float, stamp_before, check
) -> tuple[float | None, float | None, float | None]:
    """(write→published, write→search ok, search CLI seconds) once `check(results)` holds."""
    stamp = stamp_before
    deadline = written_at + EDIT_TIMEOUT_S
    while time.time() < deadline:
        current = index_stamp(index_path)
        if current != stamp:
            published = time.time()
            stamp = current
            results, cli_seconds = searched(data, root, check.token)
            if check(results):
                return published - written_at, time.time() - written_at, cli_seconds
        time.sleep(POLL_S)
    return None, None, None


class Check:
    """What a search for `token` must show after an edit."""

    def __init__(self, token: str, path: str | None, present: bool = True):
        self.token, self.path, self.present = token, path, present

    def __call__(self, results: list[dict]) -> bool:
        paths = [r["path"] for r in results if self.token in r["content"]]
        if self.present:
            return self.path in paths
        return self.path not in [r["path"] for r in results]


def function_source(token: str) -> str:
    return (
        f"\n\ndef {token}(records, limit=10):\n"
        f'    """Benchmark marker {token}: keep the first records under a limit."""\n'
        "    kept = []\n"
        "    for record in records:\n"
        "        if len(kept) >= limit:\n"
        "            break\n"
        "        kept.append(record)\n"
        "    return kept\n"
    )


def plan_edits(
    root: Path, count: int, restore: InPlaceRestore | None = None
) -> list[tuple[str, callable]]:
    """`count` edits: mostly single files (modify/create/delete/rename) and one 200-file burst.
    `restore` (in-place runs) remembers each modified file's size first."""
    python_files = sorted(p for p in root.rglob("*.py") if p.stat().st_size > 2000)
    step = max(1, len(python_files) // 12)
    targets = python_files[::step]
    created: list[Path] = []
    edits: list[tuple[str, callable]] = []

    def token() -> str:
        return f"bench_{uuid.uuid4().hex[:10]}"

    def modify(path: Path):
        def run():
            name = token()
            if restore is not None:
                restore.remember(path)
            with path.open("a") as handle:
                handle.write(function_source(name))
            return (
                f"append a function to {path.relative_to(root)}",
                1,
                Check(name, str(path.relative_to(root))),
            )

        return run

    def create(index: int):
        def run():
            name = token()
            path = root / "bench_created" / f"module_{index}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f'"""Created by the benchmark."""{function_source(name)}')
            created.append(path)
            return f"create {path.relative_to(root)}", 1, Check(name, str(path.relative_to(root)))

        return run

    def delete():
        def run():
            path = created.pop(0)
            name = path.read_text().split("def ", 1)[1].split("(", 1)[0]
            path.unlink()
            return (
                f"delete {path.relative_to(root)}",
                1,
                Check(name, str(path.relative_to(root)), present=False),
            )

        return run

    def rename():
        def run():
            path = created.pop(0)
            name = path.read_text().split("def ", 1)[1].split("(", 1)[0]
            target = path.with_name(f"renamed_{path.name}")
            path.rename(target)
            return f"rename {path.relative_to(root)}", 2, Check(name, str(target.relative_to(root)))

        return run

    def burst():
        def run():
            directory = root / "bench_burst"
            directory.mkdir(exist_ok=True)
            last = ""
            for i in range(BURST_FILES):
                last = token()
                (directory / f"generated_{i:03}.py").write_text(
                    f'"""Burst file {i}."""{function_source(last)}'
                )
            path = directory / f"generated_{BURST_FILES - 1:03}.py"
            return (
                f"burst: create {BURST_FILES} files",
                BURST_FILES,
                Check(last, str(path.relative_to(root))),
            )

        return run

    pattern = [
        "modify",
        "create",
        "modify",
        "create",
        "rename",
        "modify",
        "create",
        "delete",
        "modify",
        "create",
        "burst",
        "modify",
        "rename",
        "create",
        "delete",
        "modify",
        "create",
        "modify",
        "rename",
        "modify",
    ]
    modify_no = create_no = 0
    for kind in pattern[:count]:
        if kind == "modify":
            edits.append((kind, modify(targets[modify_no % len(targets)])))
            modify_no += 1
        elif kind == "create":
            edits.append((kind, create(create_no)))
            create_no += 1
        elif kind == "delete":
            edits.append((kind, delete()))
        elif kind == "rename":
            edits.append((kind, rename()))
        else:
            edits.append((kind, burst()))
    return edits


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


BREAKDOWN = [
    ("tick wait (write → tick)", lambda u: u.get("tick_wait")),
    ("sensor tick", lambda u: u["timings"].get("sensor_tick")),
    ("run overhead", lambda u: u["timings"].get("run_overhead")),
    ("manifest", lambda u: u["timings"].get("file_manifest")),
    ("chunk", lambda u: u["timings"].get("code_chunks")),
    ("embed step", lambda u: u["timings"].get("chunk_embeddings")),
    ("  of it embedding", lambda u: u["timings"].get("embed")),
    # one step per shard (manifest + chunks + embeddings + segment), summed over shards
    ("scan step", lambda u: u["timings"].get("scan_shards")),
    ("shard steps", lambda u: u["timings"].get("shard_steps")),
    ("record step", lambda u: u["timings"].get("record_shards")),
    ("index step", lambda u: u["timings"].get("search_index")),
    ("  of it build+publish", lambda u: u["timings"].get("index_publish")),
    ("run total", lambda u: u["timings"].get("run")),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=None, help="tree to copy (default: the dagster package)"
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--fresh", action="store_true", help="start from a new copy and data dir")
    parser.add_argument("--in-place", type=Path, help="edit this indexed tree, not a copy")
    parser.add_argument("--data-dir", type=Path, help="with --in-place: the tree's data directory")
    args = parser.parse_args()
    if args.in_place:
        if args.data_dir is None or args.source or args.fresh:
            parser.error("--in-place takes --data-dir, and no --source or --fresh")
        root, data = args.in_place.resolve(), args.data_dir.resolve()
        if (root / "bench_created").exists() or (root / "bench_burst").exists():
            parser.error(f"{root} holds an earlier run's bench_created/ or bench_burst/")
        files = sum(1 for p in root.rglob("*") if p.is_file())
        print(f"in place: {root} ({files} files); data {data}")
        restore = InPlaceRestore(root)
        try:
            return measure(root, data, args.edits, restore)
        finally:
            restore.undo()
            result = coderag(data, "index", str(root), "--json", "-q")
            print(f"restored the tree and re-indexed it (exit code {result.returncode})")
    source = (args.source or default_source()).resolve()
    work = args.work.resolve()
    root, data = work / "repo", work / "data"
    if args.fresh and work.exists():
        shutil.rmtree(work)
    if root.exists():
        shutil.rmtree(root)  # earlier edits are undone by a fresh copy (data stays: vectors reused)
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(source, root)
    files = sum(1 for p in root.rglob("*") if p.is_file())
    print(f"source {source} → {root} ({files} files); data {data}")
    return measure(root, data, args.edits, None)


class InPlaceRestore:
    """Undoes the edits of `plan_edits` on a tree measured in place: each edited file is cut
    back to its size before the first edit, created directories are removed."""

    def __init__(self, root: Path):
        self.root = root
        self.sizes: dict[Path, int] = {}

    def remember(self, path: Path) -> None:
        self.sizes.setdefault(path, path.stat().st_size)

    def undo(self) -> None:
        for path, size in self.sizes.items():
            with path.open("r+b") as handle:
                handle.truncate(size)
        for name in ("bench_created", "bench_burst"):
            shutil.rmtree(self.root / name, ignore_errors=True)


def measure(root: Path, data: Path, edit_count: int, restore: InPlaceRestore | None) -> int:
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    started = time.perf_counter()
    result = coderag(data, "index", str(root), "--json", "-q")
    if result.returncode != 0:
        print(result.stderr)
        return 1
    summary = json.loads(result.stdout)
    print(
        f"coderag index: {summary['files']} files, {summary['chunks']} chunks, "
        f"{summary['embedded']} embedded, {time.perf_counter() - started:.1f} s"
    )
    index_path = Path(summary["index_path"])

    watch = WatchProcess(data, root)
    ready = watch.wait_for_message("embedding model ready", timeout=120)
    print(f"coderag watch: {ready.strip()}")
    time.sleep(2.0)  # first tick: nothing to do
    watch.drain()

    results: list[EditResult] = []
    for number, (kind, edit) in enumerate(plan_edits(root, edit_count, restore), start=1):
        stamp = index_stamp(index_path)
        written_at = time.time()
        description, file_count, check = edit()
        published, searchable, cli_seconds = wait_until_searchable(
            data, root, index_path, written_at, stamp, check
        )
        time.sleep(SETTLE_BETWEEN_EDITS_S)
        outcome = EditResult(
            kind,
            description,
            file_count,
            published,
            searchable,
            cli_seconds,
            watch.drain(),
            written_at,
        )
        results.append(outcome)
        shown = (
            "TIMEOUT"
            if searchable is None
            else f"published {published:5.2f} s, search ok {searchable:5.2f} s"
        )
        print(f"{number:2}. {kind:7} {shown}  ({len(outcome.updates)} update(s))  {description}")
    stop_seconds = watch.stop()

    single = [r for r in results if r.kind != "burst" and r.write_to_search is not None]
    print()
    print(f"single-file edits: {len(single)} of {sum(r.kind != 'burst' for r in results)} measured")
    for label, attribute in (
        ("write → published", "write_to_published"),
        ("write → coderag search", "write_to_search"),
        ("  of it: coderag search CLI", "search_cli_seconds"),
    ):
        values = [getattr(r, attribute) for r in single]
        print(
            f"  {label:28} p50 {percentile(values, 0.5):5.2f} s   p90 {percentile(values, 0.9):5.2f} s"
        )
    for r in results:
        if r.kind == "burst" and r.write_to_search is not None:
            print(
                f"burst of {BURST_FILES} files: published {r.write_to_published:.2f} s, "
                f"search ok {r.write_to_search:.2f} s, {len(r.updates)} update(s)"
            )
    print()
    print("breakdown (median over single-file updates, seconds):")
    updates = [u for r in single for u in r.breakdown_rows()]
    for label, getter in BREAKDOWN:
        values = [v for v in (getter(u) for u in updates) if isinstance(v, int | float)]
        if values:
            print(f"  {label:26} {statistics.median(values):6.2f}   (max {max(values):.2f})")
    bursts = [u for r in results if r.kind == "burst" for u in r.breakdown_rows()]
    if bursts:
        print("burst updates:")
        for u in bursts:
            t = u["timings"]
            print(
                f"  {u['files_changed']} files, shards {len(u['shards'])}, embedded {u['embedded']}, "
                f"run {t.get('run', 0):.1f} s (embed step {t.get('chunk_embeddings', 0):.1f}, "
                f"index step {t.get('search_index', 0):.1f}), tick wait {u['tick_wait']:.2f} s"
            )
    print(f"model load: once at watch start ({ready.split('in')[-1].strip()}); 0 per update (warm)")
    print(f"stop: SIGTERM → exit in {stop_seconds:.2f} s (exit code {watch.process.returncode})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
