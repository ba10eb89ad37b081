"""tus uploads for the console's rectification forms, at ``/console/uploads``.

The console has sessions, not bearer tokens, so its page cannot use the API's tus
endpoints (``/api/v1/evidence/uploads``). These are the same tus 1.0.0 core (creation,
offset, chunks with an optional checksum) over the same rules
(:class:`sync.uploads.Uploads`: scope, type by the bytes, size and quota, the SHA-256
announced and checked), answered for the signed-in session. Every request carries the
session's CSRF token in ``X-CSRF-Token`` (``check_csrf``). Only rectification evidence
comes this way: ``purpose`` is always ``rectification``. A refusal is JSON
``{"detail", "field"}`` in the page's language, for the page's script to show.

The page loads the tus client the tablet app uses, ``/app/vendor/tus.js`` (bundled from
``tus-js-client`` by ``make install``; served by this server, never a CDN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request, Response, head, patch, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from server.console._web import presenter, signed_in
from server.console._web import status_of as _status
from server.problems import localised

# the API's tus header parsing, shared so that both speak the same dialect
from server.routes.evidence import (
    TUS_VERSION,
    _check_tus,
    _checksum,
    _http_date,
    _int_header,
    _progress_headers,
    parse_metadata,
)
from sync.errors import DomainError

if TYPE_CHECKING:
    from server.app import Services

__all__ = ["CONSOLE_UPLOADS", "upload_pages"]

CONSOLE_UPLOADS = "/console/uploads"
_TUS = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}


def upload_pages(services: Services) -> list[HTTPRouteHandler]:
    """The console's tus handlers (creation, offset, chunk)."""

    def refused(request: Request[Any, Any, Any], exc: DomainError | HTTPException) -> Response[Any]:
        lang = presenter(request).t.lang
        if isinstance(exc, DomainError):
            status, field = _status(exc), exc.field
            detail = exc.message
            if lang == "zh":
                detail = localised(exc.code, "zh", {"field": field, **exc.extra})[1] or detail
        else:
            status, field, detail = exc.status_code, (exc.extra or {}).get("field"), exc.detail
        return Response(
            content={"detail": detail, "field": field}, status_code=status, headers=_TUS
        )

    @post(CONSOLE_UPLOADS, include_in_schema=False, guards=[signed_in], status_code=201)
    async def create(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            _check_tus(request)
            length = _int_header(request, "Upload-Length")
            metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
            metadata["purpose"] = "rectification"
            up = await services.uploads.create(request.user, length, metadata)
        except (DomainError, HTTPException) as exc:
            return refused(request, exc)
        return Response(
            content=None,
            status_code=201,
            headers={
                **_TUS,
                "Location": f"{CONSOLE_UPLOADS}/{up.id}",
                "Upload-Offset": "0",
                "Upload-Expires": _http_date(up.expires_at),
            },
        )

    @head(f"{CONSOLE_UPLOADS}/{{upload_id:str}}", include_in_schema=False, guards=[signed_in])
    async def status(request: Request[Any, Any, Any], upload_id: FromPath[str]) -> Response[None]:
        try:
            _check_tus(request)
            up = await services.uploads.status(request.user, upload_id)
        except (DomainError, HTTPException) as exc:
            return Response(content=None, status_code=refused(request, exc).status_code)
        return Response(
            content=None,
            status_code=200,
            headers={**_TUS, **_progress_headers(up), "Upload-Length": str(up.length)},
        )

    @patch(
        f"{CONSOLE_UPLOADS}/{{upload_id:str}}",
        include_in_schema=False,
        guards=[signed_in],
        status_code=200,  # 204 on success, set on the response (a refusal has a body)
        # bounded by the upload's own length, streamed to disk (as the API's)
        request_max_body_size=None,
    )
    async def chunk(request: Request[Any, Any, Any], upload_id: FromPath[str]) -> Response[Any]:
        try:
            _check_tus(request)
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/offset+octet-stream":
                raise HTTPException(
                    status_code=415,
                    detail="a chunk is sent as Content-Type: application/offset+octet-stream",
                    extra={"field": "Content-Type"},
                )
            offset = _int_header(request, "Upload-Offset")
            declared = (
                _int_header(request, "Content-Length")
                if "Content-Length" in request.headers
                else None
            )
            up = await services.uploads.append(
                request.user,
                upload_id,
                offset,
                request.stream(),
                checksum=_checksum(request.headers.get("Upload-Checksum")),
                declared_length=declared,
            )
        except (DomainError, HTTPException) as exc:
            return refused(request, exc)
        return Response(content=None, status_code=204, headers={**_TUS, **_progress_headers(up)})

    return [create, status, chunk]
