"""End-to-end indexing throughput vs a bare `encode` of the same texts, measured in one run.

Downloads a pinned sdist with pip (PyPI), indexes it with `coderag index` in a fresh data
directory (only the converted model is reused), and embeds the very same chunk texts with
plain `Embedder.embed` calls on the same backend, and prints:

    files, chunks, wall seconds, chunks/s, peak RSS, ratio = end-to-end chunks/s / bare chunks/s

The bare encode brackets the index: half of the texts (every other one) are embedded just
before `coderag index` starts and the other half just after it ends, and the two halves'
seconds add up to the bare encode's. This machine's speed drifts by several per cent over
minutes (one process embedding the same slices back to back gets 160-182 texts/s); an
encode that runs only after the index takes whatever state the machine is in then, and the
ratio moved by ±4 % with it. Bracketed, a drift that is steady over the run weighs on both
sides alike. The texts are chunked here first, in this process (untimed), and checked
against the index's afterwards. `--after-only` embeds them all after the index instead.

Two processes still differ: the same texts embedded by fresh processes ran 163-183 texts/s
(session 8), so a ratio of two processes carries up to ±6 % that is neither's doing.
`--same-process` removes the process from it: the index runs in this process
(`coderag_assets.cli.main`, with the garbage-collection settings of the `coderag`
command), between the two bare halves, and embeds with the very model object the bare
encode uses. Its wall then leaves out the interpreter's start and exit and the model load,
which the run reuses; the load is timed here and a second ratio adds it back. The
machine's drift over minutes stays: in session 9's sitting one process's two halves still
differed by up to 8 %.

`--interleave S` removes the drift instead of weighing it on both sides. The index runs
in a child process of its own session, and the two take turns of about S seconds: the child
runs for a turn, is stopped (`SIGSTOP` to its process group, its chunking workers
included, and the stop is awaited), and the bare encode embeds windows of texts until its
own turn has lasted S seconds; then the child continues (`SIGCONT`) for as long as that
turn took. The index's wall is the sum of its turns, from the start to its exit, its
imports, Dagster's start and the model load included. So both sides see the machine's
speed of the same few minutes, turn by turn; what neither shares is the tail one side
runs alone after the other has finished, which is printed. The bare encode's texts are
cut at the batch boundaries of one `embed` call over all of them (`batch_windows`), so it
runs that call's very batches, which pad no more than the index's (it sorts within a shard).
Keep S short: a shard's speed swings by up to 12 % within 15 s here, and 20-s turns still
carried it (session 10: 3 s). `--check-interleave` puts a child that embeds the same texts
in the index's place, to show what the turns themselves cost (3-s turns on Django: 0.997,
the child's start and model load included).

Without `--interleave` the run's own split is printed too: the embed stage's seconds over the wall
(`embed / wall`). The stage is part of the wall, timed by the same process at the same
time, so a machine that slows down stretches both, and neither the process-to-process
spread nor the drift enters it. The embed stage runs at the bare encode's speed
(`benchmarks/embed_stage.py` alternates the two in one process), so this is what the
ratio would be on a machine whose speed holds still.

Usage: .venv/bin/python benchmarks/index_throughput.py [--package django==5.1.4] [--backend openvino]
       [--path DIR]   (index a local tree instead of a downloaded sdist)
       [--same-process | --interleave SECONDS [--check-interleave]]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from coderag_assets.embedding import Embedder, EmbedderSpec

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
CACHE = HERE / ".cache"
#: Texts per `embed` call of an interleaved bare encode, at least (whole batches): about
#: 0.4 s of Django's, so a turn ends close to its length.
WINDOW_TEXTS = 64


def fetch_sdist(requirement: str) -> Path:
    """pip-download the sdist once and unpack it under benchmarks/.cache/src/."""
    name = requirement.replace("==", "-")
    target = CACHE / "src" / name
    if target.is_dir():
        return next(p for p in target.iterdir() if p.is_dir())
    downloads = CACHE / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            requirement,
            "-d",
            str(downloads),
        ],
        check=True,
    )
    package = requirement.split("==")[0].lower().replace("-", "_")
    archive = next(
        p
        for p in downloads.iterdir()
        if p.name.lower().replace("-", "_").startswith(package)
        and p.name.endswith(".tar.gz")
        and requirement.split("==")[-1] in p.name
    )
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return next(p for p in target.iterdir() if p.is_dir())


class RssSampler(threading.Thread):
    """Samples the RSS of a process tree every `interval` seconds: its sum and its largest
    process.

    A sample walks every process's /proc entry (about 1.3 ms of CPU). Every 50 ms that is
    2.7 % of a core, and inference beside it ran 4.4 % slower (8 slices of Django's texts,
    rotated, session 7): OpenVINO's two threads wait for each other at every layer, so a third
    thread that wakes 20 times a second costs them more than its own CPU. The default samples
    once a second, so a peak shorter than that can be missed; `benchmarks/memory.py` measures
    peaks. (`getrusage(RUSAGE_CHILDREN).ru_maxrss` is no substitute: a child forked from this
    process counts this process's pages until it execs.) Clearing `sampling` holds it
    without a wake-up until it is set again (an interleaved run's bare turns)."""

    def __init__(self, pid: int, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.peak_total, self.peak_single, self.stop_flag = pid, 0, 0, False
        self.interval = interval
        self.sampling = threading.Event()
        self.sampling.set()

    def run(self) -> None:
        while not self.stop_flag:
            self.sampling.wait()
            try:
                parent = psutil.Process(self.pid)
                procs = [parent, *parent.children(recursive=True)]
                rss = [p.memory_info().rss for p in procs if p.is_running()]
                self.peak_total = max(self.peak_total, sum(rss))
                self.peak_single = max(self.peak_single, max(rss, default=0))
            except psutil.Error:
                pass
            time.sleep(self.interval)


def add_models_argument(parser: argparse.ArgumentParser) -> None:
    """`--models`: where the converted models are (converted there first if missing)."""
    parser.add_argument(
        "--models",
        type=Path,
        default=CACHE / "data" / "models",
        help="converted models (converted there first if missing)",
    )


def warm_embedder(models: Path) -> tuple[EmbedderSpec, Embedder]:
    """(spec, embedder) of the default model converted under `models`, loaded and warmed
    up with one text."""
    from coderag_assets.embedding import EmbedderSpec, load_embedder, prepare_model

    spec = EmbedderSpec(cache_dir=models.resolve())
    prepare_model(spec)
    embedder = load_embedder(spec)
    embedder.embed(["def warm(up): pass"])
    return spec, embedder


def chunk_texts(root: Path, data: Path) -> dict[str, str]:
    """The embedding text of each distinct chunk of `root`, by content hash, chunked as a cold
    index chunks it (16 shards, into a scratch store under `data`)."""
    from coderag_assets import indexing
    from coderag_assets.partitions import shard_keys, shard_of
    from coderag_assets.store import IndexStore

    store = IndexStore.for_root(data, root)
    store.register(16)
    keys = list(shard_keys(16))
    by_shard = indexing.scan_shards(
        root, keys, lambda path: shard_of(path, 16), max_file_bytes=1_000_000
    )
    for key in keys:
        indexing.prepare_shard(store, key, by_shard[key], run_id="bench", max_file_bytes=1_000_000)
    return index_texts(store)


def index_texts(store) -> dict[str, str]:
    """The embedding text of each distinct chunk in `store`'s chunk shards, by content hash."""
    import pyarrow.parquet as pq

    from coderag_assets.indexing import chunk_from_row

    texts: dict[str, str] = {}
    for path in sorted((store.base / "chunks").glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            texts.setdefault(row["content_hash"], chunk_from_row(row).embedding_text)
    return texts


def batch_windows(embedder: Embedder, texts: list[str], min_texts: int) -> list[list[int]]:
    """Positions in `texts` cut into windows of at least `min_texts` at the batch boundaries
    of one `embed` call over all of them (`Embedder.batch_plan`, untimed): `embed` of a
    window sorts it the same way and, its batches being cut greedily from the window's first
    text, runs exactly that call's batches for it."""
    if not hasattr(embedder, "batch_plan"):
        raise SystemExit(
            "--interleave needs Embedder.batch_plan: code from 2026-12-07 (session 10) on"
        )
    windows: list[list[int]] = []
    current: list[int] = []
    for rows in embedder.batch_plan(texts):
        current.extend(rows.tolist())
        if len(current) >= min_texts:
            windows.append(current)
            current = []
    return windows + [current] * bool(current)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _index_in_child(
    coderag: list[str], source: Path, env: dict[str, str]
) -> tuple[float, float, int, str, RssSampler]:
    """`coderag index` in a child process: (wall s, its CPU s, exit code, stdout, its RSS
    sampler)."""
    cpu_started = _children_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(
        [*coderag, "index", str(source), "--json", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = RssSampler(process.pid)
    sampler.start()
    stdout, _ = process.communicate()
    wall = time.perf_counter() - started
    sampler.stop_flag = True
    return wall, _children_cpu_seconds() - cpu_started, process.returncode, stdout, sampler


@dataclass
class Turns:
    """How an interleaved run went: the two sides' seconds and where they ran alone."""

    index_seconds: float = 0.0
    bare_seconds: float = 0.0
    turns: int = 0
    bare_alone: float = 0.0  # the bare encode's windows left when the index had exited
    index_alone: float = 0.0  # the index's running time once the bare encode had no texts


def _stop_group(pid: int) -> None:
    """Stop the process group `pid` leads and wait until each of its processes is stopped
    (a signal is delivered asynchronously; the bare encode must not start beside it)."""
    os.killpg(pid, signal.SIGSTOP)
    deadline = time.perf_counter() + 5.0
    while time.perf_counter() < deadline:
        try:
            leader = psutil.Process(pid)
            procs = [leader, *leader.children(recursive=True)]
            states = {proc.status() for proc in procs}
        except psutil.Error:
            return  # gone: nothing runs beside the bare encode
        if states <= {psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}:
            return
        time.sleep(0.001)
    raise RuntimeError(f"process group {pid} did not stop within 5 s: {states}")


def _interleaved(
    command: list[str],
    env: dict[str, str],
    turn: float,
    windows: list[list[str]],
    encode: Callable[[list[str]], float],
) -> tuple[float, float, int, str, RssSampler, Turns]:
    """`command` (`coderag index`) in a child process that takes turns with the bare encode
    of `windows` (`encode(window)` embeds one and returns its seconds): (the child's running
    wall s, its CPU s, exit code, stdout, its RSS sampler, the turns)."""
    cpu_started = _children_cpu_seconds()
    pending = list(reversed(windows))  # popped from the end: in order
    turns = Turns()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            text=True,
            start_new_session=True,  # its own process group: the stop reaches its workers
        )
        # Readable once the child has exited: a wait with a timeout that does not wake up
        # meanwhile (`Popen.wait(timeout)` polls up to 20 times a second; see RssSampler).
        exited = os.pidfd_open(process.pid)
        sampler = RssSampler(process.pid)
        sampler.start()
        index_turn = turn
        try:
            while True:
                started = time.perf_counter()
                if not pending:  # nothing left to take turns with: run to the end
                    process.wait()
                    turns.index_alone = time.perf_counter() - started
                    turns.index_seconds += turns.index_alone
                    break
                if select.select([exited], [], [], index_turn)[0]:
                    process.wait()
                    turns.index_seconds += time.perf_counter() - started
                    break
                _stop_group(process.pid)
                turns.index_seconds += time.perf_counter() - started
                sampler.sampling.clear()  # its RSS holds still meanwhile
                took = 0.0
                while pending and took < turn:
                    took += encode(pending.pop())
                turns.bare_seconds += took
                turns.turns += 1
                index_turn = max(turn, took)  # both sides' turns stay of one length
                sampler.sampling.set()
                os.killpg(process.pid, signal.SIGCONT)
        finally:
            os.close(exited)
            if process.poll() is None:  # an error here: never leave the child stopped
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)
                process.wait()
            sampler.stop_flag = True
            sampler.sampling.set()
        started = time.perf_counter()
        while pending:
            turns.bare_seconds += encode(pending.pop())
        turns.bare_alone = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    return (
        turns.index_seconds,
        _children_cpu_seconds() - cpu_started,
        process.returncode,
        stdout,
        sampler,
        turns,
    )


def _encode_in_child(texts_file: Path, spec: EmbedderSpec) -> None:
    """`--check-interleave`'s child: load the model and embed the texts of `texts_file` (a
    JSON list of windows) as the bare encode does, window by window."""
    from coderag_assets.embedding import load_embedder

    windows = json.loads(texts_file.read_text())
    embedder = load_embedder(spec)
    for window in windows:
        embedder.embed(window)
    print(json.dumps({"embedded": sum(map(len, windows))}))


def _index_here(source: Path, env: dict[str, str]) -> tuple[float, float, int, str, RssSampler]:
    """`coderag index` in this process (`cli.main`, with `cli.run`'s garbage-collection
    settings): (wall s, CPU s, exit code, stdout, an RSS sampler of this process)."""
    from coderag_assets import cli, embedding

    if "dagster" in sys.modules:  # its imports would be missing from the run's wall
        print("note: Dagster was imported before the run")
    os.environ.update(env)
    sampler = RssSampler(os.getpid())
    sampler.start()
    out = io.StringIO()
    thresholds = gc.get_threshold()
    started, cpu_started = time.perf_counter(), time.process_time()
    gc.freeze()
    gc.set_threshold(*cli.ONE_SHOT_GC_THRESHOLDS)
    try:
        with contextlib.redirect_stdout(out):
            code = cli.main(["index", str(source), "--json", "--quiet"])
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    sampler.stop_flag = True
    if len(embedding._loaded_embedders) > 1:  # the spec here differs from the run's
        print("note: the run loaded a model of its own")
    return wall, cpu, code, out.getvalue(), sampler


def _print_rows(rows: list[tuple[str, object]]) -> None:
    """`name  value` lines, the values in one column."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _print_check(
    wall: float, bare_seconds: float, texts: int, turns: Turns, code: int, stdout: str
) -> int:
    """`--check-interleave`'s report: the same texts embedded by a child taking turns with
    this process. The child's wall includes its start and model load."""
    if code != 0 or json.loads(stdout)["embedded"] != texts:
        print(f"the child failed: {stdout}")
        return 1
    rows = [
        ("texts", texts),
        ("child wall s (its start and model load included)", f"{wall:.1f}"),
        ("bare encode s (this process)", f"{bare_seconds:.1f}"),
        ("turns", turns.turns),
        (
            "run alone s (child / bare)",
            f"{turns.index_alone:.1f} / {turns.bare_alone:.1f}",
        ),
        ("ratio child / bare (texts/s)", f"{bare_seconds / wall:.3f}"),
    ]
    _print_rows(rows)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="django==5.1.4")
    parser.add_argument("--path", type=Path, help="index this local tree instead of --package")
    parser.add_argument("--backend", default=os.environ.get("CODERAG_BACKEND", "openvino"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=CACHE / "data",
        help="data directory (default benchmarks/.cache/data); its indexes/ are removed first",
    )
    parser.add_argument(
        "--after-only",
        action="store_true",
        help="embed all texts after the index (the way before the bracketing)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--same-process",
        action="store_true",
        help="run the index in this process, on the bare encode's loaded model",
    )
    modes.add_argument(
        "--interleave",
        type=float,
        metavar="SECONDS",
        help="the index (a child process) and the bare encode take turns of about this long",
    )
    parser.add_argument(
        "--check-interleave",
        action="store_true",
        help="with --interleave: the child embeds the same texts instead of indexing (the"
        " ratio then says what the turns themselves cost; 1 is none)",
    )
    parser.add_argument("--encode-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.interleave is not None and (args.interleave <= 0 or args.after_only):
        parser.error("--interleave takes a positive number of seconds and no --after-only")
    if args.check_interleave and not args.interleave:
        parser.error("--check-interleave needs --interleave")

    data_dir = args.data_dir.resolve()
    from coderag_assets import embedding
    from coderag_assets.embedding import EmbedderSpec
    from coderag_assets.execution import executor_threads
    from coderag_assets.settings import load_settings

    # The spec the in-process executor's shard steps embed with (every core, on their
    # streams), so that with --same-process `load_embedder` hands the run this very model.
    threads = executor_threads("in_process", args.workers)
    streams = getattr(load_settings(), "inference_streams", 1)  # as the run's steps
    spec = EmbedderSpec(
        backend=args.backend,
        cache_dir=data_dir / "models",
        threads=threads,
        **(
            {"streams": embedding.bulk_streams(threads, streams)}
            if hasattr(embedding, "bulk_streams")
            else {}
        ),
    )
    if args.encode_child:
        _encode_in_child(args.encode_child, spec)
        return 0
    source = args.path.resolve() if args.path else fetch_sdist(args.package)
    shutil.rmtree(data_dir / "indexes", ignore_errors=True)
    env = {
        **os.environ,
        "CODERAG_DATA": str(data_dir),
        "CODERAG_BACKEND": args.backend,
        "HF_HUB_OFFLINE": "1",
        "CODERAG_WORKERS": str(args.workers),
        "CODERAG_INFERENCE_STREAMS": str(streams),
    }
    coderag = [sys.executable, "-m", "coderag_assets.cli"]

    # Convert/prepare the model outside the timed run (a one-time cost, cached under data/models).
    subprocess.run(
        [*coderag, "index", "--dry-run", str(source)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from coderag_assets.embedding import load_embedder, prepare_model
    from coderag_assets.store import IndexStore

    prepare_model(spec)
    scratch = data_dir / "bench-chunks"
    shutil.rmtree(scratch, ignore_errors=True)
    expected = chunk_texts(source.resolve(), scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    hashes = sorted(expected)
    halves = [[], hashes] if args.after_only else [hashes[0::2], hashes[1::2]]
    load_started = time.perf_counter()
    embedder = load_embedder(spec)
    load_seconds = time.perf_counter() - load_started
    embedder.embed(["def warm(up): pass"])
    encode_seconds = encode_cpu = 0.0

    def bare_encode(part: list[str], release: bool = True) -> float:
        nonlocal encode_seconds, encode_cpu
        started, cpu_started = time.perf_counter(), time.process_time()
        embedder.embed([expected[digest] for digest in part])
        if release:
            embedder.release_memory()
        took = time.perf_counter() - started
        encode_seconds += took
        encode_cpu += time.process_time() - cpu_started
        return took

    turns = None
    load_before = os.getloadavg()[0]
    if args.interleave:
        halves = [[], []]
        before_seconds = after_seconds = 0.0
        positions = batch_windows(embedder, [expected[digest] for digest in hashes], WINDOW_TEXTS)
        windows = [[hashes[position] for position in window] for window in positions]
        command = [*coderag, "index", str(source), "--json", "--quiet"]
        if args.check_interleave:
            texts_file = data_dir / "bench-texts.json"
            texts_file.write_text(
                json.dumps([[expected[digest] for digest in window] for window in windows])
            )
            command = [
                sys.executable,
                __file__,
                "--encode-child",
                str(texts_file),
                "--backend",
                args.backend,
                "--data-dir",
                str(data_dir),
                "--workers",
                str(args.workers),
            ]
        wall, e2e_cpu, code, stdout, sampler, turns = _interleaved(
            command, env, args.interleave, windows, lambda w: bare_encode(w, release=False)
        )
        embedder.release_memory()
        if args.check_interleave:
            return _print_check(wall, encode_seconds, len(hashes), turns, code, stdout)
    else:
        before_seconds = bare_encode(halves[0])
        if args.same_process:
            wall, e2e_cpu, code, stdout, sampler = _index_here(source, env)
        else:
            wall, e2e_cpu, code, stdout, sampler = _index_in_child(coderag, source, env)
    if code != 0:
        print(stdout)
        return 1
    summary = json.loads(stdout)

    load_between = os.getloadavg()[0]
    if not args.interleave:
        after_seconds = bare_encode(halves[1])
    # The bare encode must have embedded exactly the texts the index did.
    indexed = index_texts(IndexStore.for_root(data_dir, source.resolve()))
    if set(indexed) != set(expected):
        print(
            f"the index's texts differ from the ones chunked here: {len(set(indexed) - set(expected))}"
            f" only in the index, {len(set(expected) - set(indexed))} only here"
        )
        return 1
    texts = expected

    chunks = summary["chunks"]
    e2e_rate = summary["embedded"] / wall
    bare_rate = len(texts) / encode_seconds
    rows = [
        ("package", str(args.path) if args.path else args.package),
        ("backend", args.backend),
        ("workers", args.workers),
        ("files indexed", summary["indexable_files"]),
        ("files skipped", sum(summary["skipped"].values())),
        ("chunks", chunks),
        ("unique texts embedded", summary["embedded"]),
        ("end-to-end wall s", f"{wall:.1f}"),
        ("end-to-end chunks/s", f"{e2e_rate:.1f}"),
        ("bare encode s", f"{encode_seconds:.1f}"),
        *(
            []
            if args.interleave
            else [
                (
                    "bare encode halves s (before / after the index)",
                    f"{before_seconds:.1f} / {after_seconds:.1f}"
                    + (
                        f" ({len(halves[0]) / before_seconds:.1f} / {len(halves[1]) / after_seconds:.1f} texts/s)"
                        if halves[0]
                        else ""
                    ),
                )
            ]
        ),
        *(
            [
                (
                    "turns (index / bare encode, about S s each)",
                    f"{turns.turns}, the bare encode's "
                    + f"{(turns.bare_seconds - turns.bare_alone) / turns.turns:.1f} s on average",
                ),
                (
                    "run alone s (index after the texts ran out / bare after the index)",
                    f"{turns.index_alone:.1f} / {turns.bare_alone:.1f}",
                ),
            ]
            if turns is not None and turns.turns
            else []
        ),
        ("bare encode chunks/s", f"{bare_rate:.1f}"),
        ("ratio e2e / bare", f"{e2e_rate / bare_rate:.3f}"),
        *(
            [
                ("model load s (reused by the run, not in its wall)", f"{load_seconds:.2f}"),
                (
                    "ratio with the model load added",
                    f"{summary['embedded'] / (wall + load_seconds) / bare_rate:.3f}",
                ),
            ]
            if args.same_process
            else []
        ),
        *(
            []  # the run's own timings count the stops
            if args.interleave
            else [
                (
                    "embed / wall (the run's own split)",
                    f"{summary['timings'].get('embed', 0.0) / wall:.3f}",
                )
            ]
        ),
        # CPU seconds (all threads; the e2e process and its children): steadier than wall
        # seconds when other work shares the cores
        ("end-to-end CPU s", f"{e2e_cpu:.1f}"),
        ("bare encode CPU s", f"{encode_cpu:.1f}"),
        ("CPU ratio bare / e2e", f"{encode_cpu * summary['embedded'] / len(texts) / e2e_cpu:.3f}"),
        (
            "index stages s (prepare / shard steps / embed; --interleave: with the stops)",
            " / ".join(
                f"{summary['timings'].get(name, 0.0):.1f}"
                for name in ("prepare_shards", "shard_steps", "embed")
            ),
        ),
        # other work on the machine takes CPU from whichever phase runs beside it
        (
            "load before / after the index / at the end",
            f"{load_before:.2f} / {load_between:.2f} / {os.getloadavg()[0]:.2f}",
        ),
        (
            "peak RSS, largest process MiB (sampled each second; --same-process: this one)",
            f"{sampler.peak_single / 2**20:.0f}",
        ),
        ("peak RSS, process tree MiB (sampled each second)", f"{sampler.peak_total / 2**20:.0f}"),
    ]
    _print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
