"""Published versions: `manifests/<version>.json` records and the `CURRENT` pointer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coderag_assets.segments.layout import CURRENT_FILE, MANIFESTS_DIR
from coderag_assets.store import (
    IndexNotFoundError,
)


@dataclass(frozen=True)
class IndexVersion:
    """One published version: `meta` (the keys of the `meta` table) and shard → segment dir
    (relative to the index directory)."""

    version: int
    meta: dict[str, object]
    segments: dict[str, str]

    @classmethod
    def load(cls, base: Path, version: int) -> IndexVersion:
        path = base / MANIFESTS_DIR / f"{version}.json"
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise IndexNotFoundError(f"cannot read index manifest {path}: {error}") from error
        return cls(int(payload["version"]), payload["meta"], payload["segments"])


def current_version(base: Path) -> int | None:
    """The version CURRENT names (None when nothing was published in this format)."""
    try:
        return int((base / CURRENT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def read_current(base: Path) -> IndexVersion:
    """The live version, resolved once; IndexNotFoundError when there is none."""
    version = current_version(base)
    if version is None:
        hint = " (built by an older CodeRAG)" if (base / "index.duckdb").exists() else ""
        raise IndexNotFoundError(f"no index at {base}{hint}; run `coderag index`")
    return IndexVersion.load(base, version)


def manifest_versions(base: Path) -> list[int]:
    versions = []
    for path in (base / MANIFESTS_DIR).glob("*.json"):
        try:
            versions.append(int(path.stem))
        except ValueError:
            continue
    return sorted(versions)
