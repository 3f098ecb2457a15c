"""The serving backend: one root's latest published index, shared by the MCP tools and the web
page/API of one `coderag serve` process.

:class:`IndexBackend` holds a warm :class:`~coderag_assets.query.QueryService` and answers
searches, navigation calls and status from the latest published index; every call first
checks whether a newer index was published and swaps to it (waiting for running calls), so
re-indexing is picked up without a restart and a request during a publish is answered from
the last published version. :class:`ReadWriteLock` is the lock that swap uses.

Records: search answers are :class:`SearchOutput` (a list of
:class:`~coderag_assets.search.SearchResult` plus what the caller needs to know about them);
status is :class:`~coderag_assets.query.IndexStatus`; navigation answers are the records of
:mod:`coderag_assets.navigation.records`. Nothing here copies their fields.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from pydantic import Field

from coderag_assets import navigation
from coderag_assets.query import IndexStatus, QueryService, index_status_record
from coderag_assets.records import Record
from coderag_assets.search import IndexReader, Mode, SearchError, SearchResult, normalize_language
from coderag_assets.settings import Settings
from coderag_assets.store import IndexNotFoundError, IndexStore, index_cursor

MAX_SEARCH_LIMIT = 50
MAX_QUERY_CHARS = 2_000
MAX_HIT_CONTENT_CHARS = 4_000
MAX_STATUS_SKIPPED_FILES = 50
SEARCH_MODES: tuple[Mode, ...] = ("hybrid", "vector", "bm25")


class SearchHit(SearchResult):
    """A search result as the MCP tool returns it: content cut to a size agents can take."""

    content_truncated: bool = Field(
        default=False, description=f"content cut to {MAX_HIT_CONTENT_CHARS} characters"
    )


class SearchOutput(Record):
    query: str
    mode: str
    results: list[SearchHit]
    truncated: bool = Field(description="True when any result's content was cut")
    index_age_seconds: float = Field(
        description="Seconds since the searched index was published (index_status tells what "
        "changed since)"
    )

    @classmethod
    def of(
        cls, query: str, mode: str, results: list[SearchResult], published_at: float
    ) -> SearchOutput:
        hits = [
            SearchHit(
                **{**result.model_dump(), "content": result.content[:MAX_HIT_CONTENT_CHARS]},
                content_truncated=len(result.content) > MAX_HIT_CONTENT_CHARS,
            )
            for result in results
        ]
        return cls(
            query=query,
            mode=mode,
            results=hits,
            truncated=any(hit.content_truncated for hit in hits),
            index_age_seconds=round(time.time() - published_at, 1),
        )


class ReadWriteLock:
    """Many readers at once, or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._condition:
            while self._writing or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


def check_search_arguments(
    query: str, mode: str, limit: int, language: str | None, path: str | None
) -> None:
    """Raise SearchError / NavigationError for arguments no search should run with."""
    if not query.strip():
        raise SearchError("empty query: type some words or an identifier")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"query longer than {MAX_QUERY_CHARS} characters ({len(query)})")
    if "\0" in query:
        raise SearchError("NUL byte in query")
    if mode not in SEARCH_MODES:
        raise SearchError(f"unknown mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_SEARCH_LIMIT} (got {limit})")
    if path:
        navigation.check_glob(path)


#: Allocations at least this large get their own mapping, returned to the system when freed
#: (glibc's M_MMAP_THRESHOLD, fixed). By default glibc raises the threshold after the first
#: large free (up to 32 MiB), so a warm server's per-query arrays of a few MB (a float per
#: chunk: 4 MB at 1M chunks) then come from the heap and stay there as fragments: measured
#: on the 1M-chunk index, 300 distinct queries left 446 MiB anonymous by default, 403 fixed.
LARGE_ALLOCATION_BYTES = 1 << 20
M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def unmap_large_allocations() -> bool:
    """Fix this process's malloc mmap threshold at `LARGE_ALLOCATION_BYTES` (for a long-lived
    server). False where the C library is not glibc or refuses it; nothing changes then."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION_BYTES))
    except (OSError, AttributeError):
        return False


class IndexBackend:
    """The server's state: one root's latest published index and a warm query embedder.

    Thread-safe (tools and web requests run in worker threads). Calls read the index under a
    shared lock, each navigation call on its own DuckDB cursor, so they run in parallel; the
    search reader's own connection is used by one search at a time. Every call first stats
    the index file; when a new index was published, the swap waits for running calls, closes
    the old connection and only then opens the new file (DuckDB hands out the already-open
    old database for a path while any connection to it lives).
    """

    def __init__(self, store: IndexStore, settings: Settings):
        self.store = store
        self.root = store.root
        self.settings = settings
        self._stamp = _index_stamp(store.index_path)
        # None until an index is published (a server may start before the first index).
        self._service = QueryService(store, settings) if self._stamp is not None else None
        self._index_lock = ReadWriteLock()
        self._search_lock = threading.Lock()
        self._warmed = False
        self._symbol_names: tuple[tuple[int, int] | None, frozenset[str]] | None = None
        self._languages: tuple[tuple[int, int] | None, list[str]] | None = None

    def languages(self) -> list[str]:
        """Languages of the indexed files (cached per published version)."""
        self._refresh()
        cached = self._languages
        if cached is not None and cached[0] == self._stamp:
            return cached[1]
        stamp = self._stamp
        with self.connection() as con:
            rows = con.execute(
                "SELECT DISTINCT coalesce(language, 'text') FROM files "
                "WHERE skip_reason IS NULL ORDER BY 1"
            ).fetchall()
        languages = [row[0] for row in rows]
        self._languages = (stamp, languages)
        return languages

    def symbol_names(self) -> frozenset[str]:
        """Names of every indexed definition (cached per published version): which
        identifiers of a file view link to a definition."""
        self._refresh()
        cached = self._symbol_names
        if cached is not None and cached[0] == self._stamp:
            return cached[1]
        stamp = self._stamp
        with self.connection() as con:
            names = frozenset(
                row[0] for row in con.execute("SELECT DISTINCT name FROM symbols").fetchall()
            )
        self._symbol_names = (stamp, names)
        return names

    def check_language(self, language: str | None) -> str | None:
        """The index's name for ``language`` (aliases such as ``py`` accepted), None for no
        filter; raises SearchError naming the index's languages for one it does not hold."""
        if language is None or not language.strip():
            return None
        wanted = normalize_language(language)
        known = self.languages()
        if wanted not in known:
            raise SearchError(
                f"unknown language {language!r}; languages in this index: {', '.join(known)}"
            )
        return wanted

    @property
    def service(self) -> QueryService:
        """The query service of the open index; raises IndexNotFoundError before the first
        publish."""
        service = self._service
        if service is None:
            raise IndexNotFoundError(
                f"{self.root} has not been indexed yet; run `coderag index {self.root}`"
            )
        return service

    def _refresh(self) -> None:
        """Swap to a newer published index, if any (call holding no lock)."""
        stamp = _index_stamp(self.store.index_path)
        if stamp is None or stamp == self._stamp:
            return  # unchanged, or gone: keep answering from the open index
        with self._index_lock.write():
            stamp = _index_stamp(self.store.index_path)
            if stamp is None or stamp == self._stamp:
                return
            if self._service is None:
                self._service = QueryService(self.store, self.settings)
            else:
                fresh = IndexReader(self.store.index_path)  # if this fails, the old one stays
                stale, self._service.reader = self._service.reader, fresh
                stale.close()
            self._stamp = stamp

    def warm_up(self) -> None:
        """Load the query model now, so the first search does not pay for it (nothing to
        load before the first publish)."""
        if self._service is None:
            return
        with self._search_lock:
            embedder = self.service.embedder()
        embedder.embed_query("warm up")
        self._warmed = True

    def warm_up_once(self) -> None:
        """:meth:`warm_up` the first time an index is open (a server started before the
        first publish warms up when it appears)."""
        if self._service is not None and not self._warmed:
            self.warm_up()
            self._warmed = True

    @property
    def meta(self) -> dict[str, object]:
        """The open index's meta (version, published_at, model, totals...)."""
        self._refresh()
        return self.service.reader.meta

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the latest index, valid for the block."""
        self._refresh()
        with self._index_lock.read():
            with self._search_lock:  # the connection is not used by two threads at once
                cursor = index_cursor(self.service.reader.con)
            try:
                yield cursor
            finally:
                cursor.close()

    def search_results(
        self,
        query: str,
        mode: Mode,
        limit: int,
        language: str | None,
        path: str | None,
        rerank: bool | None = None,
    ) -> tuple[list[SearchResult], float]:
        """The ranked results (what `coderag search --json` prints) and the searched index's
        publish time. Raises SearchError / NavigationError for bad arguments."""
        check_search_arguments(query, mode, limit, language, path)
        language = self.check_language(language)
        self._refresh()
        with self._index_lock.read():
            query_vector = None
            if mode != "bm25":
                with self._search_lock:
                    embedder = self.service.embedder()
                query_vector = embedder.embed_query(query)  # the embedder serializes its runs
            rescorer = None
            use_reranker = self.service.settings.rerank if rerank is None else rerank
            if use_reranker:
                with self._search_lock:
                    rescorer = self.service.reranker().score  # serializes its own runs
            with self._search_lock:
                results = self.service.reader.search(
                    query,
                    mode=mode,
                    limit=limit,
                    language=language,
                    path_glob=path,
                    query_vector=query_vector,
                    rescorer=rescorer,
                )
                published_at = float(self.service.reader.meta["published_at"])  # type: ignore[arg-type]
        return results, published_at

    def search(
        self,
        query: str,
        mode: Mode,
        limit: int,
        language: str | None,
        path: str | None,
        rerank: bool | None = None,
    ) -> SearchOutput:
        results, published_at = self.search_results(query, mode, limit, language, path, rerank)
        return SearchOutput.of(query, mode, results, published_at)

    def status(self, *, with_freshness: bool = True) -> IndexStatus:
        self._refresh()
        with self._index_lock.read():
            return index_status_record(
                self.store, with_freshness=with_freshness, skipped_sample=MAX_STATUS_SKIPPED_FILES
            )

    def close(self) -> None:
        if self._service is not None:
            self._service.close()


def _index_stamp(index_path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(index_path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns
