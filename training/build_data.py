"""Build the embedder's training data: fetch, check, mine, dedupe, split, write.

    python -m training.build_data [--out training/.cache/data] [--max-per-package 2500]
                                  [--packages sympy,lodash,...]

For every pinned package (``training.packages.PACKAGES``): fetch it into ``--sources`` (reused on
later runs), reject it when its licence is not allowed or it is (or carries) an excluded package,
mine its triples (``training.pairs``), and drop triples whose query or positive an earlier package
already gave. Whole packages, about ``--validation-share`` of the triples and at least one per
language family, go to ``validation.parquet``; the rest to ``triples.parquet``. ``sources.json``
records every package: version, registry, licences, counts, split, and why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.quality.corpora import FetchError, fetch
from training.packages import (
    PACKAGES,
    PackageRejected,
    TrainingPackage,
    check_package,
    excluded_names,
)
from training.pairs import DEFAULT_MAX_TRIPLES_PER_PACKAGE, Triple, dedupe_across, mine_package

DEFAULT_OUT_DIR = Path("training/.cache/data")
DEFAULT_SOURCES_DIR = Path("training/.cache/sources")
DEFAULT_VALIDATION_SHARE = 0.02
TRIPLES_FILE = "triples.parquet"
VALIDATION_FILE = "validation.parquet"
SOURCES_FILE = "sources.json"
#: Skip reasons (a registry client's stderr can be long) are cut to this many characters.
MAX_REASON_CHARS = 240

_SCHEMA = {
    "query": pl.String,
    "positive": pl.String,
    "negatives": pl.List(pl.String),
    "package": pl.String,
    "registry": pl.String,
    "version": pl.String,
    "licence": pl.String,
    "language": pl.String,
    "path": pl.String,
    "symbol": pl.String,
}


@dataclass(slots=True)
class SourceRecord:
    """One package's line in ``sources.json``."""

    package: str
    version: str
    registry: str
    licence: str  # as detected from the package's metadata ("" when not fetched)
    licence_recorded: str
    triples: int = 0
    files: int = 0
    definitions: int = 0
    documented: int = 0
    language: str = ""
    split: str = ""
    skipped: str | None = None
    skipped_files: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class PackageTriples:
    package: TrainingPackage
    licence: str
    triples: list[Triple]

    @property
    def family(self) -> str:
        """``python`` or ``js`` (JavaScript and TypeScript), by the package's majority."""
        counts = Counter("python" if t.language == "python" else "js" for t in self.triples)
        return counts.most_common(1)[0][0] if counts else ""


def choose_validation(mined: Sequence[PackageTriples], share: float, seed: int) -> set[str]:
    """Names of whole packages holding about ``share`` of each language family's triples: a
    seeded shuffle of the family's packages is taken in order while the total stays within 1.5
    times the target. A family with two or more packages gives at least one (its smallest when
    none fitted) and keeps at least one for training."""
    chosen: set[str] = set()
    rng = random.Random(seed)
    for family in sorted({entry.family for entry in mined if entry.triples}):
        members = [entry for entry in mined if entry.family == family and entry.triples]
        if len(members) < 2:
            continue
        target = share * sum(len(entry.triples) for entry in members)
        rng.shuffle(members)
        taken: list[PackageTriples] = []
        for entry in members:
            if sum(len(e.triples) for e in taken) >= target or len(taken) == len(members) - 1:
                break
            if sum(len(e.triples) for e in taken) + len(entry.triples) <= 1.5 * target:
                taken.append(entry)
        if not taken:
            taken.append(min(members, key=lambda entry: len(entry.triples)))
        chosen.update(entry.package.name for entry in taken)
    return chosen


def _frame(entries: Sequence[PackageTriples]) -> pl.DataFrame:
    rows = [
        {
            "query": triple.query,
            "positive": triple.positive,
            "negatives": list(triple.negatives),
            "package": entry.package.name,
            "registry": entry.package.registry,
            "version": entry.package.version,
            "licence": entry.licence,
            "language": triple.language,
            "path": triple.path,
            "symbol": triple.symbol,
        }
        for entry in entries
        for triple in entry.triples
    ]
    return pl.DataFrame(rows, schema=_SCHEMA)


def build(
    packages: Sequence[TrainingPackage],
    *,
    out_dir: Path,
    sources_dir: Path,
    max_per_package: int,
    validation_share: float,
    seed: int,
    console: Console,
) -> list[SourceRecord]:
    """Fetch, check and mine ``packages`` and write the three output files into ``out_dir``."""
    excluded = excluded_names()
    console.print(f"excluded packages: {', '.join(entry.name for entry in excluded)}")
    records: list[SourceRecord] = []
    mined: list[PackageTriples] = []
    seen_queries: set[str] = set()
    seen_positives: set[str] = set()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("packages", total=len(packages))
        for package in packages:
            record = SourceRecord(
                package.name, package.version, package.registry, "", package.licence
            )
            records.append(record)
            progress.update(task, description=f"fetching {package.name}")
            try:
                root = fetch(package.corpus, sources_dir)
                record.licence = check_package(package, root, excluded)
            except (FetchError, PackageRejected) as error:
                reason = error.reason if isinstance(error, PackageRejected) else str(error)
                record.skipped = " ".join(reason.split())[:MAX_REASON_CHARS]
                progress.console.print(f"[yellow]skipped {package.name}[/]: {record.skipped}")
                progress.advance(task)
                continue
            progress.update(task, description=f"mining {package.name}")
            result = mine_package(
                root,
                source_dirs=package.source_dirs,
                skip_dirs=package.skip_dirs,
                max_triples=max_per_package,
                seed=zlib.crc32(f"{seed}:{package.name}".encode()),
            )
            triples = dedupe_across(result.triples, seen_queries, seen_positives)
            entry = PackageTriples(package, record.licence, triples)
            mined.append(entry)
            record.triples = len(triples)
            record.files = result.files
            record.definitions = result.definitions
            record.documented = result.documented
            record.language = entry.family
            record.skipped_files = dict(result.skipped_files)
            if not triples:
                record.skipped = "no documented definitions"
            progress.console.print(
                f"{package.name} {package.version}: {len(triples)} triples from {result.files} "
                f"files ({result.documented} documented of {result.definitions} definitions)"
            )
            progress.advance(task)

    validation = choose_validation(mined, validation_share, seed)
    for record in records:
        if record.skipped is None:
            record.split = "validation" if record.package in validation else "train"
    out_dir.mkdir(parents=True, exist_ok=True)
    train_frame = _frame([entry for entry in mined if entry.package.name not in validation])
    validation_frame = _frame([entry for entry in mined if entry.package.name in validation])
    train_frame.write_parquet(out_dir / TRIPLES_FILE)
    validation_frame.write_parquet(out_dir / VALIDATION_FILE)
    (out_dir / SOURCES_FILE).write_text(
        json.dumps([asdict(record) for record in records], indent=2) + "\n", "utf-8"
    )
    return records


def print_summary(records: Sequence[SourceRecord], console: Console, seconds: float) -> None:
    table = Table(title="training triples per package")
    for column in ("package", "version", "licence", "language", "split", "triples", "note"):
        table.add_column(column, justify="right" if column == "triples" else "left")
    by_language: Counter[str] = Counter()
    by_split: Counter[str] = Counter()
    for record in records:
        table.add_row(
            record.package,
            record.version,
            record.licence,
            record.language,
            record.split,
            str(record.triples),
            record.skipped or "",
        )
        by_language[record.language or "-"] += record.triples
        by_split[record.split or "-"] += record.triples
    console.print(table)
    total = sum(by_language.values())
    languages = ", ".join(f"{name}: {count}" for name, count in sorted(by_language.items()))
    splits = ", ".join(f"{name}: {count}" for name, count in sorted(by_split.items()))
    console.print(f"{total} triples ({languages}); split {splits}; {seconds:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES_DIR)
    parser.add_argument("--max-per-package", type=int, default=DEFAULT_MAX_TRIPLES_PER_PACKAGE)
    parser.add_argument("--packages", default="", help="comma-separated names (default: all)")
    parser.add_argument("--validation-share", type=float, default=DEFAULT_VALIDATION_SHARE)
    parser.add_argument("--seed", type=int, default=13)
    options = parser.parse_args(argv)
    console = Console(stderr=True)
    packages = list(PACKAGES)
    if options.packages:
        wanted = [name.strip() for name in options.packages.split(",") if name.strip()]
        known = {package.name: package for package in PACKAGES}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            console.print(f"[red]unknown packages[/]: {', '.join(unknown)}")
            return 2
        packages = [known[name] for name in wanted]
    started = time.monotonic()
    records = build(
        packages,
        out_dir=options.out,
        sources_dir=options.sources,
        max_per_package=options.max_per_package,
        validation_share=options.validation_share,
        seed=options.seed,
        console=console,
    )
    print_summary(records, console, time.monotonic() - started)
    console.print(f"wrote {options.out / TRIPLES_FILE}, {VALIDATION_FILE}, {SOURCES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
