"""Who may talk to `coderag serve --http`: a pure ASGI middleware in front of every route.

* Bound to loopback (the default), requests must name a loopback host in ``Host`` (a page on
  another site cannot reach the server through DNS rebinding); no token unless one is set.
* Bound anywhere else, a token is required for the page, the API, ``/metrics`` and MCP
  alike: ``Authorization: Bearer <token>``, ``X-CodeRAG-Token: <token>``, or the
  ``coderag_token`` cookie. Opening ``/?token=<token>`` once in a browser sets the cookie
  (HttpOnly, SameSite=Strict) and redirects to the same URL without it.
* ``/healthz`` and ``/static/`` stay open: a health check says nothing about the code.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "coderag_token"
TOKEN_HEADER = b"x-coderag-token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
OPEN_PATHS = ("/healthz", "/static/")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class AccessMiddleware:
    def __init__(self, app: ASGIApp, *, host: str, token: str | None) -> None:
        self.app = app
        self.loopback = is_loopback(host)
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        path: str = scope.get("path", "")
        if self.loopback:
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host and host not in LOOPBACK_HOSTS:
                await _deny(send, 421, f"host {host!r} is not this loopback server", path)
                return
        if self.token is None or path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        offered = self._offered(headers)
        if offered is not None and hmac.compare_digest(offered, self.token):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop("token", None)
        if (
            given is not None
            and hmac.compare_digest(given, self.token)
            and scope["method"] == "GET"
        ):
            location = path + ("?" + urlencode(query) if query else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode("latin-1", "replace")),
                        (
                            b"set-cookie",
                            f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode(),
                        ),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await _deny(
            send,
            401,
            "a token is required: open /?token=<token> or send "
            "'Authorization: Bearer <token>' (printed when the server started)",
            path,
        )

    def _offered(self, headers: dict[bytes, bytes]) -> str | None:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        if TOKEN_HEADER in headers:
            return headers[TOKEN_HEADER].decode("latin-1").strip()
        cookie_header = headers.get(b"cookie")
        if cookie_header:
            cookies = SimpleCookie()
            try:
                cookies.load(cookie_header.decode("latin-1"))
            except CookieError:
                return None
            if TOKEN_COOKIE in cookies:
                return cookies[TOKEN_COOKIE].value
        return None


async def _deny(send: Send, status: int, message: str, path: str) -> None:
    if path.startswith(("/api/", "/mcp", "/metrics")):
        body = json.dumps(
            {"error": message, "code": "unauthorized" if status == 401 else "bad_host"}
        ).encode()
        content_type = b"application/json"
    else:
        body = message.encode()
        content_type = b"text/plain; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
