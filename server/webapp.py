"""The inspector's tablet app at ``/app`` (see docs/app.md).

The app is static files: its shell, script, styles and service worker in ``app/www``,
the JavaScript client library in ``app/lib`` and the npm packages bundled into
``app/www/vendor`` by the install step (``app/build.mjs``). It holds no session of its
own: the page logs in through the API (``POST /api/v1/auth/login`` with a device) and
every request for data carries the bearer token, so the API's checks are the app's
checks. The shell is excluded from the API's bearer-token middleware (``APP_EXCLUDE``):
a tablet must be able to load it before anyone has logged in, and with no network at all
(the service worker keeps a copy).

Every answer is ``Cache-Control: no-cache``: the browser (and the service worker)
revalidates each file with its ETag, so an updated app reaches the tablets on their next
load with the network, and an unchanged one costs a 304 (``_not_modified``: Litestar's
static files router sends the ETag but does not answer ``If-None-Match`` itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request
from litestar.datastructures import CacheControlHeader, Headers
from litestar.response import Redirect
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["APP_EXCLUDE", "APP_ROOT", "webapp_routes"]

APP_ROOT = Path(__file__).resolve().parents[1] / "app"
"""The checkout's ``app/`` directory (``make install`` builds its vendor bundles)."""

APP_EXCLUDE = ["^/app(/|$)"]
"""Paths the API's bearer-token middleware leaves alone: the app's static files."""

_NO_CACHE = CacheControlHeader(no_cache=True)


async def _directory(request: Request[Any, Any, Any]) -> Redirect | None:
    """``/app`` is ``/app/``: the service worker's scope is the directory, and a page
    outside it would not open offline."""
    if request.scope.get("raw_path", b"").split(b"?")[0] == b"/app":
        return Redirect(path="/app/")
    return None


_KEPT_ON_304 = {b"etag", b"cache-control", b"last-modified", b"vary", b"content-location"}


def _not_modified(app: ASGIApp) -> ASGIApp:
    """Answer 304 (no body) to a GET or HEAD whose ``If-None-Match`` names the ETag the
    file is served with (RFC 9110, 13.1.2; a weak comparison)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        wanted = Headers.from_scope(scope).get("if-none-match") if scope["type"] == "http" else None
        if not wanted or scope.get("method") not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        swallow = False

        async def send_checked(message: Message) -> None:
            nonlocal swallow
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = message.get("headers") or []
                etag = next((v.decode() for k, v in headers if k.lower() == b"etag"), None)
                if etag is not None and (etag.removeprefix("W/") in tags or "*" in tags):
                    swallow = True
                    kept = [(k, v) for k, v in headers if k.lower() in _KEPT_ON_304]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
            if not swallow:
                await send(message)

        await app(scope, receive, send_checked)

    return middleware


def webapp_routes(root: Path = APP_ROOT) -> list[Router]:
    """The app's routes: ``/app/`` (the shell and its files, ``index.html`` for the
    directory) and ``/app/lib/`` (the client library, served as it is in the checkout)."""
    return [
        create_static_files_router(
            path="/app/lib",
            directories=[root / "lib"],
            name="app-lib",
            cache_control=_NO_CACHE,
            middleware=[_not_modified],
            include_in_schema=False,
        ),
        create_static_files_router(
            path="/app",
            directories=[root / "www"],
            html_mode=True,
            name="app",
            before_request=_directory,
            cache_control=_NO_CACHE,
            middleware=[_not_modified],
            include_in_schema=False,
        ),
    ]
