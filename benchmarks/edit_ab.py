"""One-file edit → `coderag index`, two code versions alternated on one index.

Builds (or reuses) the K-copy monorepo of `benchmarks/scale.py` (a pinned sdist copied K
times), indexes it once with the code of `--build-with`, then alternates one-file edits
between the code checkouts named by `--code` (each a directory holding `coderag_assets/`,
e.g. a `git worktree` of an older commit), so both versions pay the same machine state and
the same index size. Each edit appends one function to the same file and runs

    PYTHONPATH=<code> python -m coderag_assets.cli --data-dir <data> index <root> --json -q

and checks that the new function is found. Prints every wall time and CPU time (user + sys
of the `coderag index` process), the median of each per code version and the ratio to the
first one, plus the load average at start and end: under shared load wall ratios are noise,
CPU seconds much less so.

Edits run back to back, so every run finds the page cache warm from the one before.
`--idle S` waits S seconds before each edit instead: what a person who pauses between edits
gets on a machine that reclaims idle page cache (this VM pages out file pages left alone
for 60 s; an edit at Django ×10 took 3.7-3.9 s after 90 s against 3.1-3.2 s back to back).

    .venv/bin/python benchmarks/edit_ab.py --copies 540 --code /work/wt-base --code . --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_throughput import CACHE, fetch_sdist
from scale import build_monorepo, edit_target, env


def coderag(code: Path, *arguments: str) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one `coderag` command run with the package at `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "coderag_assets.cli", *arguments],
        env={**env(), "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{code}: coderag {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return wall, cpu, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="requests==2.32.3")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--code", type=Path, action="append", required=True,
                        help="a checkout holding coderag_assets/ (repeat; the first is the baseline)")  # fmt: skip
    parser.add_argument("--build-with", type=Path, default=None,
                        help="checkout that builds the index (default: the last --code)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="edits per code version")
    parser.add_argument("--warmup", type=int, default=1,
                        help="uncounted edits per code version first (a version's first run on an "
                        "index another version wrote may redo work)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=CACHE / "edit_ab")
    parser.add_argument("--reuse", action="store_true", help="keep an existing tree and index")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="seconds to wait before each edit (0: back to back)")  # fmt: skip
    args = parser.parse_args()
    codes = [path.resolve() for path in args.code]
    root = args.work / f"mono-{args.copies}"
    data = args.work / "data"
    if not (args.reuse and root.exists() and (data / "indexes").exists()):
        build_monorepo(fetch_sdist(args.package), root, args.copies)
        wall, _, stdout = coderag(args.build_with or codes[-1], "--data-dir", str(data), "index",
                               str(root), "--json", "-q")  # fmt: skip
        print(f"cold index: {json.loads(stdout)['chunks']} chunks in {wall:.1f} s", flush=True)
    target = edit_target(root)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    walls: dict[Path, list[float]] = {code: [] for code in codes}
    cpus: dict[Path, list[float]] = {code: [] for code in codes}
    for number in range(args.warmup + args.rounds):
        for code in codes:
            time.sleep(args.idle)
            marker = f"edit_ab_marker_{int(time.time() * 1000)}_{number}"
            with target.open("a") as handle:
                handle.write(f"\n\ndef {marker}(items):\n    return [i for i in items if i]\n")
            wall, cpu, _ = coderag(
                code, "--data-dir", str(data), "index", str(root), "--json", "-q"
            )
            _, _, found = coderag(code, "--data-dir", str(data), "search", marker, "--mode", "bm25",
                               "--root", str(root), "--json")  # fmt: skip
            hit = any(marker in row["content"] for row in json.loads(found))
            counted = number >= args.warmup
            if counted:
                walls[code].append(wall)
                cpus[code].append(cpu)
            label = f"round {number - args.warmup + 1}" if counted else "warm-up"
            print(f"{label} {code}: {wall:.2f} s, CPU {cpu:.2f} s (found: {hit})", flush=True)
            if not hit:
                raise SystemExit(f"{code}: the edit was not found after its update")
    print(f"load average at end: {os.getloadavg()}")
    if not args.rounds:
        return 0
    base = statistics.median(walls[codes[0]])
    base_cpu = statistics.median(cpus[codes[0]])
    for code in codes:
        median, median_cpu = statistics.median(walls[code]), statistics.median(cpus[code])
        print(f"{code}: median {median:.2f} s over {len(walls[code])} edits, "
              f"{median / base:.2f}x the first, all {[round(w, 2) for w in walls[code]]}; "
              f"CPU median {median_cpu:.2f} s, {median_cpu / base_cpu:.2f}x the first, "
              f"all {[round(c, 2) for c in cpus[code]]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
