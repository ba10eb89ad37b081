"""What every console page shares: the session's view of the request, the page
helpers, CSRF, the response headers (see docs/console.md).

A console module adds pages by giving :func:`server.console.pages.console_router` a
function ``(services, reads) -> list of handlers``; its handlers use these helpers and
are guarded by :func:`signed_in` (or :func:`admin_only`), under the router's session
middleware, CSRF check and error pages.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, ResponseHeader
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Template

from server.console.messages import CATALOGUES, Messages, negotiate
from server.console.present import Presenter
from server.console.sessions import ConsoleSession
from server.problems import CODES
from sync.errors import DomainError
from sync.models import Principal, Role

__all__ = [
    "CSRF_HEADER",
    "HEADERS",
    "LANG_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "PAGE_SIZE",
    "ConsoleAuth",
    "LoginRequired",
    "admin_only",
    "check_csrf",
    "cookie",
    "lang_of",
    "local_path",
    "login_page",
    "page",
    "presenter",
    "secure",
    "signed_in",
    "status_of",
]

LANG_COOKIE = "inspectsync_lang"
LOGIN_CSRF_COOKIE = "inspectsync_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
PAGE_SIZE = 25

HEADERS = [
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(
        name="Content-Security-Policy",
        value="default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    ),
]


class LoginRequired(Exception):
    """No live session: the handler answers with the sign-in page."""


class ConsoleAuth(msgspec.Struct):
    """What the middleware found: the cookie's token and its session record."""

    token: str
    session: ConsoleSession
    display_name: str


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not isinstance(connection.user, Principal):
        raise LoginRequired


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """Before every handler: a POST must carry the token of its session (or of the
    sign-in form), else 403: a form as ``_csrf``, a script's request (the tus uploads of
    ``server/console/uploads.py``: POST and PATCH) as the ``X-CSRF-Token`` header."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent: Any = request.headers.get(CSRF_HEADER)
    if sent is None and request.method == "POST":
        sent = (await request.form()).get("_csrf")
    if request.url.path == "/console/login":
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    else:
        auth = request.auth
        if not isinstance(auth, ConsoleAuth):
            raise LoginRequired
        expected = auth.session.csrf
    if not (
        isinstance(sent, str) and expected and hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise PermissionDeniedException("csrf")


# --- page helpers ------------------------------------------------------------------


def lang_of(request: Request[Any, Any, Any]) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in CATALOGUES:
        return chosen
    return negotiate(request.headers.get("Accept-Language"))


def presenter(request: Request[Any, Any, Any]) -> Presenter:
    auth = request.auth
    tz = auth.session.tz if isinstance(auth, ConsoleAuth) else None
    return Presenter(Messages(lang_of(request)), tz)


def local_path(target: str | None, default: str = "/console/queue") -> str:
    """A path on this server to go to next (never another host)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def page(
    request: Request[Any, Any, Any],
    template: str,
    p: Presenter,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    auth = request.auth
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    other = "en" if p.t.lang == "zh" else "zh"
    return Template(
        template_name=template,
        media_type=MediaType.HTML,
        status_code=status,
        cookies=cookies or [],
        context={
            "t": p.t,
            "p": p,
            "lang": p.t.lang,
            "lang_url": "/console/lang?" + urlencode({"to": other, "next": here}),
            "user_name": auth.display_name if isinstance(auth, ConsoleAuth) else "",
            "is_admin": isinstance(request.user, Principal) and request.user.role is Role.ADMIN,
            "csrf": auth.session.csrf if isinstance(auth, ConsoleAuth) else "",
            "path": request.url.path,
            **context,
        },
    )


def secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def cookie(request: Request[Any, Any, Any], key: str, value: str, **kw: Any) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path="/",
        httponly=True,
        samesite=kw.pop("samesite", "lax"),
        secure=secure(request),
        **kw,
    )


def login_page(
    request: Request[Any, Any, Any], message: str = "", status: int = 200, next_: str = ""
) -> Template:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    p = presenter(request)
    return page(
        request,
        "login.html",
        p,
        status=status,
        cookies=[cookie(request, LOGIN_CSRF_COOKIE, token, samesite="strict")],
        login_csrf=token,
        message=message,
        next=local_path(next_ or request.query_params.get("next"), ""),
    )


def status_of(exc: DomainError) -> int:
    """The HTTP status the API gives this refusal (the problem-code table)."""
    return CODES.get(exc.code, (422, ""))[0]


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admin pages: signed in, and an admin (a supervisor gets the forbidden page)."""
    user = connection.user
    if not isinstance(user, Principal):
        raise LoginRequired
    if user.role is not Role.ADMIN:
        raise PermissionDeniedException("admin")
