"""The web page, its JSON API and the operators' endpoints, as one Starlette app that also
mounts the MCP endpoint — all answering from one :class:`~coderag_assets.backend.IndexBackend`.

Routes (GET):

``/``                      search page (``?q=&mode=&lang=&path=``: a permalink)
``/file/<path>``           file view (``?hl=10-20&q=`` marks a hit; ``#L10-L20`` in the browser)
``/def?name=``             jump to a definition (one match) or list the candidates
``/refs?name=``            where an identifier occurs
``/api/search``            the records ``coderag search --json`` prints
``/api/file``              the record of the MCP tool ``get_file`` (``?path=&start=&end=``)
``/api/symbols``           ``?path=``: ``coderag symbols list --json``; ``?name=``: ``symbols find``
``/api/refs``              ``coderag refs --json``
``/api/status``            ``coderag status --json`` (+ ``last_run``), from the status cache
``/healthz``               200 + version when an index is published and readable, else 503
``/metrics``               Prometheus text format
``/mcp``                   the MCP streamable-HTTP endpoint

Bad input never gets a 500: the API answers 400 (bad argument), 404 (a path that may not be
served: outside the root, a secret, not indexed, gone) or 503 (no index yet) with
``{"error": ..., "code": ...}``, and the page shows the same message. Every string a page
shows is escaped by Jinja2's autoescape or by :mod:`coderag_assets.web.highlight`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from coderag_assets import navigation
from coderag_assets.backend import (
    MAX_SEARCH_LIMIT,
    SEARCH_MODES,
    IndexBackend,
)
from coderag_assets.metrics import ServerMetrics, error_kind, observe
from coderag_assets.search import SearchError, SearchResult
from coderag_assets.store import IndexNotFoundError
from coderag_assets.web.auth import AccessMiddleware
from coderag_assets.web.highlight import (
    highlight_lines,
    identifiers,
    query_terms,
    stylesheet,
    tokenize,
)
from coderag_assets.web.status import StatusCache

HERE = Path(__file__).parent
DEFAULT_PAGE_LIMIT = 20
SNIPPET_LINES = 14
MAX_FILE_VIEW_LINES = navigation.MAX_SLICE_LINES
log = logging.getLogger(__name__)
T = TypeVar("T")

_templates = Jinja2Templates(directory=str(HERE / "templates"))


def _package_version() -> str:
    try:
        return metadata.version("coderag")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        return "dev"


VERSION = _package_version()


class BadRequest(ValueError):
    """A request parameter that cannot be used (not a number, a bad range...)."""


# ------------------------------------------------------------------------------ errors


def _status_and_code(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, navigation.PathRefusedError):
        return 404, exc.code
    if isinstance(exc, navigation.NavigationError | SearchError | BadRequest):
        return 400, "bad_argument"
    if isinstance(exc, IndexNotFoundError):
        return 503, "no_index"
    return 500, "internal"


def _message(exc: Exception) -> str:
    if isinstance(exc, navigation.PathRefusedError):
        return f"{exc.path}: {exc.reason}"
    return str(exc) or type(exc).__name__


ANSWERED_ERRORS = (
    navigation.NavigationError,
    SearchError,
    BadRequest,
    IndexNotFoundError,
    FileNotFoundError,
)


def _json_error(exc: Exception) -> JSONResponse:
    status, code = _status_and_code(exc)
    if isinstance(exc, FileNotFoundError):
        status, code = 404, "not_found"
    return JSONResponse({"error": _message(exc), "code": code}, status_code=status)


# ------------------------------------------------------------------------------ parameters


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number (got {raw[:40]!r})") from None


def _count_param(request: Request, name: str, default: int) -> int:
    value = _int_param(request, name, default)
    return default if value is None else value


def _text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    return raw


def _bool_param(request: Request, name: str) -> bool:
    return (request.query_params.get(name) or "").lower() in ("1", "true", "yes", "on")


def _optional_bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"{name} must be true or false (got {raw[:40]!r})")


def _line_range(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    match = re.fullmatch(r"(\d{1,9})(?:-(\d{1,9}))?", raw.strip())
    if match is None:
        return None
    first = int(match.group(1))
    last = int(match.group(2) or first)
    return (min(first, last), max(first, last))


def file_url(path: str, *, hl: tuple[int, int] | None = None, query: str = "") -> str:
    """The file view's URL for ``path`` (hit lines ``hl`` marked and scrolled to)."""
    url = "/file/" + quote(path)
    params = {}
    if hl:
        params["hl"] = f"{hl[0]}-{hl[1]}"
    if query:
        params["q"] = query
    if params:
        url += "?" + urlencode(params)
    if hl:
        url += f"#L{hl[0]}"
    return url


# ------------------------------------------------------------------------------ the app


class WebApp:
    """Request handlers over one backend; :meth:`routes` lists them."""

    def __init__(
        self, backend: IndexBackend, metrics: ServerMetrics, status_cache: StatusCache
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.status = status_cache

    # -------------------------------------------------------------- helpers

    def _page(
        self, request: Request, template: str, context: dict[str, object], status_code: int = 200
    ) -> Response:
        view = self.status.view
        return _templates.TemplateResponse(
            request,
            template,
            {
                "status": view.status,
                "status_reason": view.reason,
                "last_run": view.last_run,
                "modes": SEARCH_MODES,
                "version": VERSION,
                **context,
            },
            status_code=status_code,
        )

    def _error_page(self, request: Request, exc: Exception, **context: object) -> Response:
        status, code = _status_and_code(exc)
        if isinstance(exc, FileNotFoundError):
            status, code = 404, "not_found"
        return self._page(
            request,
            "error.html",
            {
                "message": _message(exc),
                "code": code,
                "title": "Not found" if status == 404 else "Error",
                **context,
            },
            status_code=status,
        )

    def _api(self, tool: str, mode: str, answer: Callable[[], T]) -> T | JSONResponse:
        try:
            with observe(self.metrics, tool, mode):
                return answer()
        except ANSWERED_ERRORS as exc:
            return _json_error(exc)

    def _search(
        self,
        query: str,
        mode: str,
        limit: int,
        language: str | None,
        path_glob: str | None,
        rerank: bool | None = None,
    ) -> list[SearchResult]:
        """The backend's ranked results; a glob that leaves the root is a bad argument here
        (400), not a refused file. ``rerank`` None = the server's CODERAG_RERANK setting."""
        try:
            results, _ = self.backend.search_results(
                query,
                mode,  # type: ignore[arg-type]
                limit,
                language,
                path_glob,
                rerank,
            )
        except navigation.PathRefusedError as exc:
            raise BadRequest(f"bad path glob {exc.path!r}: {exc.reason}") from None
        return results

    # -------------------------------------------------------------- pages

    def search_page(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        mode = request.query_params.get("mode") or "hybrid"
        language = _text_param(request, "lang")
        path_glob = _text_param(request, "path")
        context: dict[str, object] = {
            "query": query,
            "mode": mode,
            "lang": language or "",
            "path_glob": path_glob or "",
            "results": [],
            "error": None,
            "elapsed_ms": None,
            "languages": self._languages(),
        }
        if not query.strip() and not request.query_params.get("q"):
            return self._page(request, "search.html", context)
        started = time.perf_counter()
        try:
            with observe(self.metrics, "web", mode if mode in SEARCH_MODES else "unknown"):
                limit = _count_param(request, "limit", DEFAULT_PAGE_LIMIT)
                results = self._search(
                    query,
                    mode,
                    min(limit, MAX_SEARCH_LIMIT),
                    language,
                    path_glob,  # type: ignore[arg-type]
                )
                self.metrics.results.labels(tool="web").observe(len(results))
                context["results"] = self._result_views(results, query)
        except ANSWERED_ERRORS as exc:
            status, _ = _status_and_code(exc)
            context["error"] = _message(exc)
            return self._page(request, "search.html", context, status_code=status)
        context["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return self._page(request, "search.html", context)

    def _languages(self) -> list[str]:
        try:
            return self.backend.languages()
        except ANSWERED_ERRORS:
            return []

    def _result_views(self, results: list[SearchResult], query: str) -> list[dict[str, object]]:
        terms = query_terms(query)
        with self.backend.connection() as con:
            headers = navigation.enclosing_definitions(
                con, [(r.path, r.start_line, r.end_line) for r in results]
            )
        views = []
        for result, header in zip(results, headers, strict=True):
            lines = result.content.split("\n")
            shown = lines[:SNIPPET_LINES]
            views.append(
                {
                    "result": result,
                    "header": header,
                    "url": file_url(
                        result.path, hl=(result.start_line, result.end_line), query=query
                    ),
                    "header_url": file_url(result.path, hl=(header.line, header.line))
                    if header
                    else "",
                    "lines": list(
                        enumerate(
                            highlight_lines(
                                "\n".join(shown), result.path, result.language, terms=terms
                            ),
                            start=result.start_line,
                        )
                    ),
                    "more_lines": max(0, len(lines) - len(shown)),
                }
            )
        return views

    def file_page(self, request: Request) -> Response:
        path = request.path_params["path"]
        query = request.query_params.get("q", "")
        hit = _line_range(request.query_params.get("hl"))
        try:
            with observe(self.metrics, "web_file"):
                start = _int_param(request, "start", None)
                with self.backend.connection() as con:
                    file_slice = navigation.get_file(
                        con,
                        self.backend.root,
                        path,
                        start_line=start,
                        max_lines=MAX_FILE_VIEW_LINES,
                    )
                    outline = navigation.list_symbols(con, file_slice.path)
                # Lexing runs outside the index lock: a publish never waits for it.
                tokens = tokenize(file_slice.content, file_slice.path, file_slice.language)
                defined = identifiers(tokens) & self.backend.symbol_names()
        except ANSWERED_ERRORS as exc:
            return self._error_page(request, exc, path=path)
        outline_names = {symbol.name for symbol in outline.symbols}

        def link(name: str) -> str | None:
            if name not in defined:
                return None
            suffix = "&from=" + quote(file_slice.path) if name in outline_names else ""
            return f"/def?name={quote(name)}{suffix}"

        lines = highlight_lines(
            file_slice.content,
            file_slice.path,
            file_slice.language,
            terms=query_terms(query) if query else (),
            link_names=link,
            tokens=tokens,
        )
        return self._page(
            request,
            "file.html",
            {
                "file": file_slice,
                "lines": list(enumerate(lines, start=file_slice.start_line)),
                "outline": outline,
                "hit": hit,
                "query": query,
                "next_start": file_slice.end_line + 1 if file_slice.truncated else None,
                "title": file_slice.path,
            },
        )

    def definition_page(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        from_path = request.query_params.get("from")
        try:
            with observe(self.metrics, "web_def"), self.backend.connection() as con:
                matches = navigation.find_symbols(con, name, mode="exact", limit=50)
        except ANSWERED_ERRORS as exc:
            return self._error_page(request, exc)
        symbols = matches.symbols
        local = [symbol for symbol in symbols if symbol.path == from_path]
        chosen = local if len(local) == 1 else symbols
        if len(chosen) == 1:
            symbol = chosen[0]
            return RedirectResponse(
                file_url(symbol.path, hl=(symbol.line, symbol.end_line)), status_code=302
            )
        return self._page(
            request,
            "symbols.html",
            {
                "name": name,
                "matches": matches,
                "title": f"Definitions of {name}",
                "file_url": file_url,
            },
            status_code=200 if symbols else 404,
        )

    def references_page(self, request: Request) -> Response:
        name = request.query_params.get("name", "")
        code_only = _bool_param(request, "code_only")
        try:
            with observe(self.metrics, "web_refs"), self.backend.connection() as con:
                matches = navigation.find_references(
                    con, name, limit=navigation.MAX_REFERENCE_LIMIT, code_only=code_only
                )
        except ANSWERED_ERRORS as exc:
            return self._error_page(request, exc)
        return self._page(
            request,
            "refs.html",
            {
                "name": name,
                "matches": matches,
                "code_only": code_only,
                "title": f"References to {name}",
                "file_url": file_url,
            },
        )

    # -------------------------------------------------------------- API

    def api_search(self, request: Request) -> Response:
        mode = request.query_params.get("mode") or "hybrid"

        def answer() -> Response:
            limit = _count_param(request, "limit", 10)
            results = self._search(
                request.query_params.get("q", ""),
                mode,  # type: ignore[arg-type]
                limit,
                _text_param(request, "lang"),
                _text_param(request, "path"),
                _optional_bool_param(request, "rerank"),
            )
            self.metrics.results.labels(tool="api_search").observe(len(results))
            return JSONResponse([result.to_json() for result in results])

        return self._api("api_search", mode if mode in SEARCH_MODES else "unknown", answer)

    def api_file(self, request: Request) -> Response:
        def answer() -> Response:
            path = request.query_params.get("path", "")
            start = _int_param(request, "start", None)
            end = _int_param(request, "end", None)
            max_lines = _count_param(request, "max_lines", navigation.DEFAULT_SLICE_LINES)
            with self.backend.connection() as con:
                file_slice = navigation.get_file(
                    con,
                    self.backend.root,
                    path,
                    start_line=start,
                    end_line=end,
                    max_lines=max_lines,
                )
            return JSONResponse(file_slice.to_json())

        return self._api("api_file", "", answer)

    def api_symbols(self, request: Request) -> Response:
        def answer() -> Response:
            path = request.query_params.get("path")
            name = request.query_params.get("name")
            if (path is None) == (name is None):
                raise BadRequest("give either path= (a file's outline) or name= (definitions)")
            with self.backend.connection() as con:
                if path is not None:
                    return JSONResponse(navigation.list_symbols(con, path).to_json())
                mode = request.query_params.get("mode") or "exact"
                matches = navigation.find_symbols(
                    con,
                    name or "",
                    kind=_text_param(request, "kind"),
                    mode=mode,  # type: ignore[arg-type]
                    limit=_count_param(request, "limit", navigation.DEFAULT_SYMBOL_LIMIT),
                )
            return JSONResponse(matches.to_json())

        return self._api("api_symbols", "", answer)

    def api_refs(self, request: Request) -> Response:
        def answer() -> Response:
            with self.backend.connection() as con:
                matches = navigation.find_references(
                    con,
                    request.query_params.get("name", ""),
                    limit=_count_param(request, "limit", navigation.DEFAULT_REFERENCE_LIMIT),
                    path_glob=_text_param(request, "path"),
                    code_only=_bool_param(request, "code_only"),
                )
            return JSONResponse(matches.to_json())

        return self._api("api_refs", "", answer)

    def api_status(self, request: Request) -> Response:
        view = self.status.view
        if view.status is None:
            return JSONResponse(view.to_json(), status_code=503)
        return JSONResponse(view.to_json())

    # -------------------------------------------------------------- operators

    def healthz(self, request: Request) -> Response:
        """200 with the served version when an index is published and readable; else 503."""
        try:
            meta = self.backend.meta
            with self.backend.connection() as con:
                con.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except Exception as exc:  # noqa: BLE001  (any failure to read the index makes the server unhealthy)
            return JSONResponse(
                {"status": "unavailable", "reason": _message(exc), "code": error_kind(exc)},
                status_code=503,
            )
        return JSONResponse(
            {
                "status": "ok",
                "version": meta.get("version"),
                "published_at": meta.get("published_at"),
                "root": str(self.backend.root),
            }
        )

    def metrics_page(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def pygments_css(self, request: Request) -> Response:
        return Response(
            stylesheet(),
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.search_page, name="search"),
            Route("/file/{path:path}", self.file_page, name="file"),
            Route("/def", self.definition_page, name="definition"),
            Route("/refs", self.references_page, name="references"),
            Route("/api/search", self.api_search),
            Route("/api/file", self.api_file),
            Route("/api/symbols", self.api_symbols),
            Route("/api/refs", self.api_refs),
            Route("/api/status", self.api_status),
            Route("/healthz", self.healthz),
            Route("/metrics", self.metrics_page),
            Route("/static/pygments.css", self.pygments_css),
            Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        ]


def build_app(
    backend: IndexBackend,
    *,
    mcp_app: Starlette | None = None,
    mcp_lifespan: Callable[[], object] | None = None,
    metrics: ServerMetrics | None = None,
    status_cache: StatusCache | None = None,
    host: str = "127.0.0.1",
    token: str | None = None,
) -> Starlette:
    """The whole HTTP surface of `coderag serve --http`.

    ``mcp_app`` (the MCP SDK's streamable-HTTP app) is mounted at its own ``/mcp`` route and
    ``mcp_lifespan()`` (its session manager's ``run()``) runs for the app's lifetime. ``token``
    (required by the caller when ``host`` is not loopback) guards every route but
    ``/healthz`` and the static assets."""
    status_cache = status_cache or StatusCache(backend)
    metrics = metrics or ServerMetrics(lambda: status_cache.view.snapshot())
    web = WebApp(backend, metrics, status_cache)
    routes = web.routes()
    if mcp_app is not None:
        routes.append(Mount("/", app=mcp_app))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        status_cache.start()
        try:
            if mcp_lifespan is not None:
                async with mcp_lifespan():  # type: ignore[attr-defined]
                    yield
            else:
                yield
        finally:
            status_cache.stop()

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": "internal error (see the server log)", "code": "internal"},
                status_code=500,
            )
        return PlainTextResponse("internal error (see the server log)", status_code=500)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessMiddleware, host=host, token=token)],
        exception_handlers={500: server_error},
    )
    app.state.web = web
    return app
