"""The pinned codebases the quality benchmark searches, fetched at benchmark time.

Sources come from the package registries through their ordinary clients (``pip download`` of
an sdist, ``npm pack`` of a tarball) into a cache directory and are never vendored into the
repository. A fetched corpus is reused on later runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str  # also the directory the sources are unpacked into
    registry: str  # "pypi" (sdist) or "npm"
    package: str
    version: str

    @property
    def spec(self) -> str:
        return (
            f"{self.package}=={self.version}"
            if self.registry == "pypi"
            else f"{self.package}@{self.version}"
        )


# The development corpora: their queries (queries.py) were used to choose the ranking weights.
CORPORA: tuple[Corpus, ...] = (
    Corpus("semver", "npm", "semver", "7.6.2"),
    Corpus("express", "npm", "express", "4.19.2"),
    Corpus("tenacity", "pypi", "tenacity", "8.5.0"),
    Corpus("marshmallow", "pypi", "marshmallow", "3.21.3"),
)

# Held-out corpora: their queries (heldout.py) were written before any result on them was seen
# and are never used to choose weights, so they show how much of the tuning carries over.
HELDOUT_CORPORA: tuple[Corpus, ...] = (
    Corpus("commander", "npm", "commander", "12.1.0"),
    Corpus("itsdangerous", "pypi", "itsdangerous", "2.2.0"),
)
ALL_CORPORA: tuple[Corpus, ...] = CORPORA + HELDOUT_CORPORA


class FetchError(RuntimeError):
    """A corpus could not be downloaded or unpacked."""


def fetch(corpus: Corpus, sources_dir: Path) -> Path:
    """The unpacked source tree of ``corpus`` under ``sources_dir`` (downloaded on first use)."""
    destination = sources_dir / f"{corpus.name}-{corpus.version}"
    if destination.is_dir():
        return destination
    sources_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sources_dir) as download_dir:
        if corpus.registry == "pypi":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                       "-q", "-d", download_dir, corpus.spec]  # fmt: skip
        else:
            command = ["npm", "pack", "--silent", "--pack-destination", download_dir, corpus.spec]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = sorted(Path(download_dir).glob("*.t*gz"))
        if done.returncode != 0 or len(archives) != 1:
            raise FetchError(f"fetching {corpus.spec} failed: {done.stderr.strip()[-500:]}")
        unpack_dir = Path(download_dir) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpack_dir, filter="data")
        (top,) = list(unpack_dir.iterdir())  # sdists and npm tarballs hold one top directory
        shutil.move(str(top), destination)
    return destination
