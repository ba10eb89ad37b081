"""The console's routes: thin views over :mod:`server.console.reads` and the services.

Each page handler gathers its context (one call into ``ConsoleReads``) and hands it to
one template; each form handler calls one service method (``Review.decide``,
``SyncEngine.resolve_conflict``) and redirects (post/redirect/get), or shows the page
again with the service's refusal at the form.

Sessions: the ``ConsoleAuth`` middleware of this router turns the session cookie into
the same :class:`Principal` the API's JWT middleware makes (``request.user``), or None.
CSRF: every POST carries ``_csrf``; ``check_csrf`` (before every handler) compares it
with the session's token, or, for the sign-in form, with the sign-in cookie.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import MediaType, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.middleware import MiddlewareProtocol
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template
from litestar.types import ASGIApp, Receive, Scope, Send

from server.auth import AuthError, RateLimited
from server.console._web import (
    HEADERS as _HEADERS,
)
from server.console._web import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    PAGE_SIZE,
    ConsoleAuth,
    LoginRequired,
    check_csrf,
    signed_in,
)
from server.console._web import cookie as _cookie
from server.console._web import lang_of as _lang_of
from server.console._web import local_path as _local
from server.console._web import login_page as _login_page
from server.console._web import page as _page
from server.console._web import presenter as _presenter
from server.console._web import secure as _secure
from server.console._web import status_of as _status
from server.console.admin import admin_pages
from server.console.admin_checklists import checklist_pages
from server.console.messages import CATALOGUES
from server.console.present import zone
from server.console.reads import SORTS, ConsoleReads
from server.console.rectify import rectification_pages, rectification_view
from server.console.sessions import SESSION_COOKIE, ConsoleSessions
from server.console.uploads import upload_pages
from server.documents import REPORT_CSP
from server.problems import localised
from sync.conclusion import ConclusionIn
from sync.documents import KINDS, Kind
from sync.errors import DomainError, NotFound
from sync.exports import export_json, findings_csv, responses_csv
from sync.models import InspectionStatus, Principal, Role
from sync.report_labels import LANGS, Lang
from sync.review import Decision, QueueQuery

if TYPE_CHECKING:
    from server.app import Services

__all__ = ["CONSOLE_EXCLUDE", "console_router"]

CONSOLE_EXCLUDE = ["^/$", "^/console(/|$)"]
"""Paths the API's bearer-token middleware leaves to the console's own sessions."""

# --- sign-in, sign-out, language -------------------------------------------------


def console_router(services: Services) -> Router:
    """The console's routes, its session middleware, CSRF check and error pages."""
    sessions = ConsoleSessions(
        Path(services.settings.data_dir) / "console-sessions", services.clock
    )
    reads = ConsoleReads(services)

    class SessionMiddleware(MiddlewareProtocol):
        """Turns the session cookie into ``scope["user"]`` (a Principal, or None) and
        ``scope["auth"]`` (a :class:`ConsoleAuth`, or None). The user is read on every
        request: a disabled user's session ends on their next request. (A class made
        here: Litestar copies a router's middleware arguments, and the services hold
        locks.)"""

        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scope["user"] = None
            scope["auth"] = None
            if scope["type"] == ScopeType.HTTP:
                token = ASGIConnection[Any, Any, Any, Any](scope).cookies.get(SESSION_COOKIE)
                record = await sessions.get(token)
                if token and record is not None:
                    user, _ = await services.store.auth_state(record.user_id, None)
                    if user is None or user.disabled or user.role is Role.INSPECTOR:
                        await sessions.end(token)
                    else:
                        scope["user"] = Principal(
                            user_id=user.id,
                            username=user.username,
                            role=user.role,
                            authority_id=user.authority_id,
                        )
                        scope["auth"] = ConsoleAuth(token, record, user.display_name)
            await self.app(scope, receive, send)

    @get("/", include_in_schema=False)
    async def home(request: Request[Any, Any, Any]) -> Any:
        """The sign-in page, or the queue for someone signed in."""
        if isinstance(request.user, Principal):
            return Redirect("/console/queue")
        signed_out = request.query_params.get("signed_out") == "1"
        return _login_page(request, _presenter(request).t("signed_out") if signed_out else "")

    @post("/console/login", include_in_schema=False, status_code=303)
    async def login(request: Request[Any, Any, Any]) -> Any:
        form = await request.form()
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        next_ = _local(str(form.get("next", "")))
        t = _presenter(request).t
        client = request.client.host if request.client else ""
        try:
            pair = await services.auth.login(username, password, None, client)
        except RateLimited as exc:
            return _login_page(request, t("login_rate_limited", seconds=exc.retry_after), 429)
        except AuthError as exc:
            key = (
                "login_user_disabled"
                if exc.code == "user_disabled"
                else "login_invalid_credentials"
            )
            return _login_page(request, t(key), 401, next_)
        if pair.role is Role.INSPECTOR:
            await services.auth.logout(pair.refresh_token)
            return _login_page(request, t("login_inspector"), 403)
        tz, _ = zone(str(form.get("tz", "")))
        token, _record = await sessions.create(
            pair.user_id, tz=tz, refresh_token=pair.refresh_token
        )
        return Redirect(
            next_,
            status_code=303,
            cookies=[
                _cookie(request, SESSION_COOKIE, token, max_age=8 * 3600),
                Cookie(key=LOGIN_CSRF_COOKIE, value="", path="/", max_age=0, expires=0),
            ],
        )

    @post("/console/logout", include_in_schema=False, status_code=303, guards=[signed_in])
    async def logout(request: Request[Any, Any, Any]) -> Any:
        auth = request.auth
        assert isinstance(auth, ConsoleAuth)
        await sessions.end(auth.token)
        if auth.session.refresh_family_token:
            with contextlib.suppress(NotFound):  # an expired login has nothing to revoke
                await services.auth.logout(auth.session.refresh_family_token)
        return Redirect(
            "/?signed_out=1",
            status_code=303,
            cookies=[Cookie(key=SESSION_COOKIE, value="", path="/", max_age=0, expires=0)],
        )

    @get("/console/lang", include_in_schema=False)
    async def set_lang(request: Request[Any, Any, Any]) -> Any:
        to = request.query_params.get("to", "zh")
        lang = to if to in CATALOGUES else "zh"
        return Redirect(
            _local(request.query_params.get("next"), "/"),
            cookies=[
                Cookie(
                    key=LANG_COOKIE,
                    value=lang,
                    path="/",
                    max_age=365 * 86400,
                    samesite="lax",
                    secure=_secure(request),
                )
            ],
        )

    # --- the review queue -----------------------------------------------------------

    @get("/console/queue", include_in_schema=False, guards=[signed_in])
    async def queue(request: Request[Any, Any, Any]) -> Template:
        p = _presenter(request)
        params = request.query_params
        chosen = {k: v for k, v in params.items() if v}
        q, page = _queue_query(chosen)
        found = await reads.queue(request.user, q, p)
        first = q.offset + 1 if found["total"] else 0
        last = min(q.offset + q.limit, found["total"])

        def page_url(n: int) -> str:
            return "/console/queue?" + urlencode({**chosen, "page": str(n)})

        return _page(
            request,
            "queue.html",
            p,
            **found,
            stamp_url="/console/queue/stamp?" + urlencode(chosen),
            chosen=chosen,
            first=first,
            last=last,
            prev_url=page_url(page - 1) if page > 1 else None,
            next_url=page_url(page + 1) if last < found["total"] else None,
        )

    @get("/console/queue/stamp", include_in_schema=False, guards=[signed_in])
    async def queue_stamp(request: Request[Any, Any, Any]) -> dict[str, str]:
        """For the queue page's script: a value that changes when its findings do."""
        q, _ = _queue_query({k: v for k, v in request.query_params.items() if v})
        return {"stamp": await reads.queue_stamp(request.user, q)}

    # --- one finding ---------------------------------------------------------------

    async def finding_page(
        request: Request[Any, Any, Any],
        finding_id: str,
        status: int = 200,
        error: str = "",
        form: dict[str, str] | None = None,
        **rect: Any,
    ) -> Template:
        p = _presenter(request)
        f = await reads.finding(request.user, finding_id, p)
        done = request.query_params.get("done")
        said = p.t("decided", decision=p.t(f"dec_{done}")) if done in _DECISIONS else ""
        rect_done = request.query_params.get("rect")
        if rect_done in ("responded", "assessed"):
            said = p.t(f"rf_done_{rect_done}")
        return _page(
            request,
            "finding.html",
            p,
            status=status,
            f=f,
            error=error,
            form=form or {},
            done=said,
            rect=await rectification_view(services, request.user, f, p),
            rect_errors=rect.get("rect_errors") or {},
            rect_form=rect.get("rect_form") or {},
            assess_errors=rect.get("assess_errors") or {},
            assess_form=rect.get("assess_form") or {},
        )

    @get("/console/findings/{finding_id:str}", include_in_schema=False, guards=[signed_in])
    async def finding(request: Request[Any, Any, Any], finding_id: FromPath[str]) -> Template:
        return await finding_page(request, finding_id)

    @post(
        "/console/findings/{finding_id:str}/decisions",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
    )
    async def decide(request: Request[Any, Any, Any], finding_id: FromPath[str]) -> Any:
        raw = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        form = {k: v for k, v in raw.items() if k != "password"}  # never shown back
        kind = form.get("decision", "")
        t = _presenter(request).t
        if not form.get("reason", "").strip():
            return await finding_page(request, finding_id, 422, t("err_reason"), form)
        if not raw.get("password"):
            return await finding_page(request, finding_id, 422, t("concl_err_password"), form)
        try:
            decision = msgspec.convert(
                {
                    "decision": kind,
                    "reason": form["reason"],
                    "comment": form.get("comment") or None,
                    "classification": form.get("classification") or None,
                    "into": form.get("into") or None,
                    "expect_rev": int(form["rev"]) if form.get("rev", "").isdigit() else None,
                },
                Decision,
            )
            client = request.client.host if request.client else "unknown"
            await services.auth.reauthenticate(request.user, raw["password"], client)
            await services.review.decide(
                request.user, finding_id, decision, authenticated_by="password"
            )
        except msgspec.ValidationError as exc:
            return await finding_page(request, finding_id, 422, str(exc), form)
        except NotFound:
            raise
        except DomainError as exc:
            said = exc.message
            if t.lang == "zh":  # the problem catalogue's words in Chinese
                said = localised(exc.code, "zh", {"field": exc.field, **exc.extra})[1]
            return await finding_page(request, finding_id, _status(exc), said, form)
        return Redirect(f"/console/findings/{quote(finding_id)}?done={kind}", status_code=303)

    # --- one inspection ------------------------------------------------------------

    async def inspection_page(
        request: Request[Any, Any, Any],
        inspection_id: str,
        status: int = 200,
        error: str = "",
        blocking: dict[str, Any] | None = None,
        concl_error: str = "",
        concl_form: dict[str, str] | None = None,
    ) -> Template:
        p = _presenter(request)
        found = await reads.inspection(request.user, inspection_id, p)
        moved = request.query_params.get("moved")
        done = p.t("insp_moved", status=p.t(f"ist_{moved}")) if moved in _STATUSES else ""
        if request.query_params.get("concluded"):
            done = p.t("concl_done")
        return _page(
            request,
            "inspection.html",
            p,
            status=status,
            i=found,
            error=error,
            blocking=blocking or {},
            concl_error=concl_error,
            concl_form=concl_form or {},
            done=done,
        )

    @get("/console/inspections/{inspection_id:str}", include_in_schema=False, guards=[signed_in])
    async def inspection(request: Request[Any, Any, Any], inspection_id: FromPath[str]) -> Template:
        return await inspection_page(request, inspection_id)

    @post(
        "/console/inspections/{inspection_id:str}/transitions",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
    )
    async def transition(request: Request[Any, Any, Any], inspection_id: FromPath[str]) -> Any:
        form = await request.form()
        to = str(form.get("to", ""))
        t = _presenter(request).t
        try:
            await services.registry.transition(request.user, inspection_id, InspectionStatus(to))
        except ValueError:
            return await inspection_page(request, inspection_id, 422, t("err_title"))
        except NotFound:
            raise
        except DomainError as exc:
            undecided = exc.extra.get("undecided_findings") or []
            conflicts = exc.extra.get("open_conflicts") or []
            if undecided or conflicts:
                titles = await reads.finding_titles(undecided)
                blocking = {
                    "findings": [(f, titles.get(f, "")) for f in undecided],
                    "conflicts": conflicts,
                }
                return await inspection_page(
                    request, inspection_id, _status(exc), t("insp_close_blocked"), blocking
                )
            return await inspection_page(request, inspection_id, _status(exc), exc.message)
        return Redirect(f"/console/inspections/{quote(inspection_id)}?moved={to}", status_code=303)

    @post(
        "/console/inspections/{inspection_id:str}/conclusion",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
    )
    async def conclude(request: Request[Any, Any, Any], inspection_id: FromPath[str]) -> Any:
        raw = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        t = _presenter(request).t
        # the password is never shown again in the form
        form = {k: v for k, v in raw.items() if k != "password"}

        async def again(status: int, message: str) -> Template:
            return await inspection_page(
                request, inspection_id, status, concl_error=message, concl_form=form
            )

        if not form.get("reason", "").strip():
            return await again(422, t("err_reason"))
        try:
            body = msgspec.convert(
                {
                    "conclusion": form.get("conclusion", ""),
                    "reason": form["reason"],
                    "expect_rev": int(form["rev"]) if form.get("rev", "").isdigit() else None,
                },
                ConclusionIn,
            )
            if not raw.get("password"):
                return await again(422, t("concl_err_password"))
            client = request.client.host if request.client else "unknown"
            await services.auth.reauthenticate(request.user, raw["password"], client)
            await services.conclusions.set(
                request.user, inspection_id, body, authenticated_by="password"
            )
        except msgspec.ValidationError:
            return await again(422, t("concl_err_choose"))
        except NotFound:
            raise
        except DomainError as exc:
            # the engine's own words in English, the problem catalogue's in Chinese
            said = exc.message
            if t.lang == "zh":
                said = localised(exc.code, "zh", {"field": exc.field, **exc.extra})[1]
            return await again(_status(exc), said)
        return Redirect(
            f"/console/inspections/{quote(inspection_id)}?concluded=1#conclusion", status_code=303
        )

    @get("/console/rectifications", include_in_schema=False, guards=[signed_in])
    async def rectifications(request: Request[Any, Any, Any]) -> Template:
        p = _presenter(request)
        rows = await reads.overdue_rectifications(request.user, p)
        return _page(request, "rectifications.html", p, rows=rows)

    @get(
        "/console/inspections/{inspection_id:str}/export.csv",
        include_in_schema=False,
        guards=[signed_in],
    )
    async def export_csv(
        request: Request[Any, Any, Any], inspection_id: FromPath[str]
    ) -> Response[bytes]:
        dossier = await reads.dossier(request.user, inspection_id)
        what = "responses" if request.query_params.get("what") == "responses" else "findings"
        text = findings_csv(dossier) if what == "findings" else responses_csv(dossier)
        return Response(
            content=text.encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers=_attachment(inspection_id, f"{what}.csv"),
        )

    @get(
        "/console/inspections/{inspection_id:str}/export.json",
        include_in_schema=False,
        guards=[signed_in],
    )
    async def export_json_file(
        request: Request[Any, Any, Any], inspection_id: FromPath[str]
    ) -> Response[bytes]:
        dossier = await reads.dossier(request.user, inspection_id)
        return Response(
            content=export_json(dossier),
            media_type="application/json",
            headers=_attachment(inspection_id, "export.json"),
        )

    def _doc_lang(request: Request[Any, Any, Any]) -> Lang:
        """``?lang=`` if given (zh or en, else 400 at lang), else the console's."""
        asked = request.query_params.get("lang")
        if asked is None:
            return "en" if _lang_of(request) == "en" else "zh"
        if asked not in LANGS:
            raise HTTPException(status_code=400, detail="lang is zh or en", extra={"field": "lang"})
        return "en" if asked == "en" else "zh"

    @get(
        [f"/console/inspections/{{inspection_id:str}}/{kind}.html" for kind in KINDS],
        include_in_schema=False,
        guards=[signed_in],
    )
    async def document_html(
        request: Request[Any, Any, Any], inspection_id: FromPath[str]
    ) -> Response[str]:
        kind = _doc_kind(request.url.path)
        html = await services.documents.html(request.user, kind, inspection_id, _doc_lang(request))
        return Response(
            content=html, media_type=MediaType.HTML, headers={"Content-Security-Policy": REPORT_CSP}
        )

    @get(
        [f"/console/inspections/{{inspection_id:str}}/{kind}.pdf" for kind in KINDS],
        include_in_schema=False,
        guards=[signed_in],
    )
    async def document_pdf(
        request: Request[Any, Any, Any], inspection_id: FromPath[str]
    ) -> Response[bytes]:
        kind = _doc_kind(request.url.path)
        lang = _doc_lang(request)
        return Response(
            content=await services.documents.pdf(request.user, kind, inspection_id, lang),
            media_type="application/pdf",
            headers=_attachment(inspection_id, f"{kind}-{lang}.pdf"),
        )

    # --- the chain view ------------------------------------------------------------

    @get("/console/products/{product_id:str}/chain", include_in_schema=False, guards=[signed_in])
    async def chain(request: Request[Any, Any, Any], product_id: FromPath[str]) -> Template:
        p = _presenter(request)
        return _page(request, "chain.html", p, c=await reads.chain(request.user, product_id, p))

    @get(
        "/console/products/{product_id:str}/dossier.pdf",
        include_in_schema=False,
        guards=[signed_in],
    )
    async def chain_dossier_pdf(
        request: Request[Any, Any, Any], product_id: FromPath[str]
    ) -> Response[bytes]:
        """The API's chain dossier, to the console's session (supervisors and admins,
        as the chain view)."""
        lang = _doc_lang(request)
        return Response(
            content=await services.documents.chain_pdf(request.user, product_id, lang),
            media_type="application/pdf",
            headers=_attachment(product_id, f"dossier-{lang}.pdf"),
        )

    # --- conflicts -------------------------------------------------------------------

    async def conflicts_page(
        request: Request[Any, Any, Any], status: int = 200, error: str = "", at: str = ""
    ) -> Template:
        p = _presenter(request)
        found = await reads.conflicts(request.user, p)
        done = request.query_params.get("done") == "1"
        return _page(
            request,
            "conflicts.html",
            p,
            status=status,
            conflicts=found,
            error=error,
            error_at=at,
            done=p.t("resolved") if done else "",
        )

    @get("/console/conflicts", include_in_schema=False, guards=[signed_in])
    async def conflicts(request: Request[Any, Any, Any]) -> Template:
        return await conflicts_page(request)

    @post(
        "/console/conflicts/{conflict_id:str}/resolve",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
    )
    async def resolve(request: Request[Any, Any, Any], conflict_id: FromPath[str]) -> Any:
        form = await request.form()
        t = _presenter(request).t
        reason = str(form.get("reason", "")).strip()
        choice = str(form.get("choice", ""))
        merged = str(form.get("merged", "")).strip()
        if not reason:
            return await conflicts_page(request, 422, t("err_reason"), conflict_id)
        value: Any
        if merged:
            if form.get("merged_is_text") == "1":
                value = merged
            else:
                try:
                    value = json.loads(merged)
                except ValueError:
                    return await conflicts_page(request, 422, t("err_bad_json"), conflict_id)
        elif choice.isdigit():
            value = await reads.conflict_value(request.user, conflict_id, int(choice))
        else:
            return await conflicts_page(request, 422, t("err_value"), conflict_id)
        try:
            await services.engine.resolve_conflict(request.user, conflict_id, value, reason)
        except NotFound:
            raise
        except DomainError as exc:
            return await conflicts_page(request, _status(exc), exc.message, conflict_id)
        back = _local(str(form.get("back", "")), "/console/conflicts?done=1")
        return Redirect(back, status_code=303)

    # --- evidence, with the session's scope ------------------------------------------

    async def _evidence(request: Request[Any, Any, Any], sha256: str, thumb: bool) -> Stream:
        ev = await services.uploads.get(request.user, sha256)
        blobs = services.uploads.thumbnails if thumb else services.uploads.blobs
        size = None
        if ev.lost_at is None and (ev.thumbnail or not thumb):
            size = await blobs.size(ev.sha256)
        if size is None:
            raise NotFound(f"evidence {sha256} is not available")
        return Stream(
            blobs.read_range(ev.sha256),
            media_type="image/jpeg" if thumb else ev.media_type,
            headers={
                "Content-Length": str(size),
                "Cache-Control": "private, no-cache",
                "X-Content-Type-Options": "nosniff",
                # the browser shows the file in a document of its own: let it show
                # the file, nothing else
                "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                "media-src 'self'; sandbox",
                "ETag": f'"{ev.sha256}{".thumb" if thumb else ""}"',
            },
        )

    @get(
        "/console/evidence/{sha256:str}",
        include_in_schema=False,
        guards=[signed_in],
        opt={"skip_compression": True},
    )
    async def evidence(request: Request[Any, Any, Any], sha256: FromPath[str]) -> Stream:
        return await _evidence(request, sha256, thumb=False)

    @get(
        "/console/evidence/{sha256:str}/thumbnail",
        include_in_schema=False,
        guards=[signed_in],
        opt={"skip_compression": True},
    )
    async def thumbnail(request: Request[Any, Any, Any], sha256: FromPath[str]) -> Stream:
        return await _evidence(request, sha256, thumb=True)

    # --- errors as pages -------------------------------------------------------------

    def on_login_required(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
        if request.method == "GET":
            return Redirect("/?" + urlencode({"next": request.url.path}))
        return _login_page(request, _presenter(request).t("session_ended"), 401)

    def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        p = _presenter(request)
        if isinstance(exc, NotFound) or (isinstance(exc, HTTPException) and exc.status_code == 404):
            status, key = 404, "err_not_found"
        elif isinstance(exc, PermissionDeniedException) and exc.detail == "csrf":
            status, key = 403, "err_csrf"
        elif isinstance(exc, HTTPException):
            status, key = (
                exc.status_code,
                "err_forbidden" if exc.status_code == 403 else "err_title",
            )
        elif isinstance(exc, DomainError):
            status, key = _status(exc), "err_forbidden"
        else:
            raise exc
        return _page(request, "error.html", p, status=status, message=p.t(key))

    return Router(
        path="/",
        route_handlers=[
            home,
            login,
            logout,
            set_lang,
            queue,
            queue_stamp,
            finding,
            decide,
            inspection,
            transition,
            conclude,
            rectifications,
            export_csv,
            export_json_file,
            document_html,
            document_pdf,
            chain,
            chain_dossier_pdf,
            conflicts,
            resolve,
            evidence,
            thumbnail,
            *rectification_pages(services, finding_page),
            *upload_pages(services),
            *checklist_pages(services, reads),
            *admin_pages(services, reads),
        ],
        middleware=[SessionMiddleware],
        before_request=check_csrf,
        response_headers=_HEADERS,
        exception_handlers={
            LoginRequired: on_login_required,
            DomainError: on_error,
            HTTPException: on_error,
        },
        include_in_schema=False,
    )


_DECISIONS = ("accept", "return", "reclassify", "merge")
_STATUSES = tuple(s.value for s in InspectionStatus)


def _doc_kind(path: str) -> Kind:
    """The document a path names (``.../deficiencies.pdf`` -> ``deficiencies``)."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return next(kind for kind in KINDS if kind == stem)


def _attachment(inspection_id: str, suffix: str) -> dict[str, str]:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", inspection_id)[:80] or "inspection"
    return {"Content-Disposition": f'attachment; filename="{stem}-{suffix}"'}


def _queue_query(params: dict[str, str]) -> tuple[QueueQuery, int]:
    """The queue's filters from the form's query string; a value that does not parse
    is ignored, as if not chosen."""

    def flag(name: str) -> bool | None:
        return {"true": True, "false": False}.get(params.get(name, ""))

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(params[name]) if name in params else None
        except ValueError:
            return None

    page = int(params["page"]) if params.get("page", "").isdigit() else 1
    page = max(1, min(page, 10_000))
    sort = params.get("sort", "severity")
    q = QueueQuery(
        product_id=params.get("product"),
        inspection_id=params.get("inspection"),
        site_id=params.get("site"),
        stage_type=params.get("stage"),
        classification=params.get("classification"),
        status=params.get("status"),
        inspector=params.get("inspector"),
        date_from=day("date_from"),
        date_to=day("date_to"),
        has_open_conflict=flag("open_conflict"),
        has_missing_evidence=flag("missing_evidence"),
        sort=sort if sort in SORTS else "severity",  # type: ignore[arg-type]
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return q, page
