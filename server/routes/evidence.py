"""Evidence files over HTTP: tus 1.0.0 resumable uploads, and downloads with Range/ETag.

Uploads (``/api/v1/evidence/uploads``) follow tus 1.0.0 core with the creation,
checksum, termination and expiration extensions; ``docs/evidence.md`` says exactly what
is supported. This module only translates headers to values and back: the rules live
in :class:`sync.uploads.Uploads`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from litestar import (
    Controller,
    HttpMethod,
    Request,
    Response,
    delete,
    get,
    head,
    patch,
    post,
    route,
)
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from litestar.types import Message, Scope

from server.deps import AuthedRequest, UploadsDep
from server.guards import ANY_ROLE
from server.routes._openapi import (
    TUS_RESUMABLE,
    header,
    link,
    operation,
    problems,
    request_header,
)
from sync.errors import EvidenceLost, NotFound
from sync.evidence import BlobStore
from sync.models import Upload
from sync.uploads import CHECKSUM_ALGORITHMS, Checksum, EvidenceMeta, Uploads

__all__ = ["UPLOADS_PATH", "EvidenceController", "tus_resumable_header"]


TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
UPLOADS_PATH = "/api/v1/evidence/uploads"
_MAX_METADATA = 4096
_SUFFIX = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "application/pdf": ".pdf",
    "video/mp4": ".mp4",
}
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)
_DIGITS = re.compile(r"^\d{1,19}$")
_SKIP_COMPRESSION = {"skip_compression": True}


async def tus_resumable_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: ``Tus-Resumable`` on every response under the uploads path,
    problem details and 401s included (tus requires it on every response but OPTIONS's,
    where it is harmless)."""
    if message["type"] == "http.response.start" and scope["path"].startswith(UPLOADS_PATH):
        MutableScopeHeaders.from_message(message)["Tus-Resumable"] = TUS_VERSION


def _bad(detail: str, field: str) -> HTTPException:
    return HTTPException(
        status_code=400, detail=detail, extra={"code": "validation_failed", "field": field}
    )


def _check_tus(request: Request[Any, Any, Any]) -> None:
    value = request.headers.get("Tus-Resumable")
    if value != TUS_VERSION:
        raise HTTPException(
            status_code=412,
            detail=f"this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"
            f" (got {value!r})",
            headers={"Tus-Version": TUS_VERSION},
            extra={"code": "tus_version_unsupported", "field": "Tus-Resumable"},
        )


def _int_header(request: Request[Any, Any, Any], name: str) -> int:
    value = request.headers.get(name)
    if value is None or not _DIGITS.match(value.strip()):
        raise _bad(f"{name} must be a non-negative integer", name)
    return int(value)


def parse_metadata(header: str) -> dict[str, str]:
    """tus ``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (a key
    alone means an empty value). Values are UTF-8."""
    if len(header) > _MAX_METADATA:
        raise _bad(f"Upload-Metadata is longer than {_MAX_METADATA} characters", "Upload-Metadata")
    found: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key.isascii() or not key.isprintable() or key in found:
            raise _bad(f"bad or repeated key {key!r}", "Upload-Metadata")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(
                f"the value of {key!r} is not base64 of UTF-8 text", f"Upload-Metadata.{key}"
            ) from None
    return found


def encode_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _checksum(header: str | None) -> Checksum | None:
    """tus ``Upload-Checksum: <algorithm> <base64 digest>``."""
    if header is None:
        return None
    algorithm, _, digest = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise _bad(
            f"checksum algorithm {algorithm!r} is not supported"
            f" (Tus-Checksum-Algorithm: {','.join(CHECKSUM_ALGORITHMS)})",
            "Upload-Checksum",
        )
    try:
        raw = base64.b64decode(digest.strip(), validate=True)
    except binascii.Error:
        raise _bad("the checksum is not base64", "Upload-Checksum") from None
    return Checksum(algorithm, raw)


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _progress_headers(up: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(up.offset)}
    if up.completed_at is None:
        headers["Upload-Expires"] = _http_date(up.expires_at)
    return headers


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _byte_range(request: Request[Any, Any, Any], size: int, etag: str) -> tuple[int, int] | None:
    """The one byte range asked for, as [start, end), or None to send the whole file
    (no Range, a stale If-Range, several ranges or a syntax we ignore, as RFC 9110
    allows). Raises 416 for a range that starts past the end."""
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size
    start = int(first)
    end = max(size, start + 1) if last == "" else int(last) + 1
    if end <= start:  # last before first: not a valid range, ignored
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(
        status_code=416,
        detail=f"the file has {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
        extra={"code": "range_not_satisfiable", "field": "Range"},
    )


def _serve(
    request: Request[Any, Any, Any],
    blobs: BlobStore,
    key: str,
    size: int,
    media_type: str,
    etag: str,
    name: str,
) -> Response[Any]:
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # the content never changes, but access can: revalidate (a cheap 304) each time
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": f'inline; filename="{name}"',
    }
    match = request.headers.get("If-None-Match")
    if match is not None and _etag_matches(match, etag):
        return Response(content=b"", status_code=304, headers=headers)
    span = _byte_range(request, size, etag)
    if span is None:
        body: AsyncIterator[bytes] = blobs.read_range(key)
        return Stream(
            body,
            status_code=200,
            media_type=media_type,
            headers={**headers, "Content-Length": str(size)},
        )
    start, end = span
    return Stream(
        blobs.read_range(key, start, end),
        status_code=206,
        media_type=media_type,
        headers={
            **headers,
            "Content-Length": str(end - start),
            "Content-Range": f"bytes {start}-{end - 1}/{size}",
        },
    )


def _discovery(uploads: Uploads) -> Response[None]:
    return Response(
        content=None,
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(uploads.limits.max_file_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            "Allow": "OPTIONS, POST",
        },
    )


_TUS = {"Tus-Resumable": header("The tus version: 1.0.0")}
_OFFSET = header("Bytes the server holds, durably", integer=True)
_EXPIRES = header("When an unfinished upload is dropped (HTTP date)", required=False)
_FILE_TYPES = tuple(_SUFFIX)
_FILE = {
    "ETag": header("The SHA-256, quoted"),
    "Accept-Ranges": header("bytes"),
    "Cache-Control": header("private, no-cache"),
}
_RANGE_ANSWERS = {
    206: ResponseSpec(None, description="The one byte range asked for (`Range`)"),
    304: ResponseSpec(None, description="`If-None-Match` matches: the file is unchanged"),
}


_COUNT = Schema(type=OpenAPIType.INTEGER, minimum=0)
_CHUNK = RequestBody(
    required=True,
    description="The bytes from `Upload-Offset` on",
    content={
        "application/offset+octet-stream": OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        )
    },
)
_READ_HEADERS = [
    request_header("Range", "One byte range, `bytes=a-b` (206)", required=False),
    request_header("If-Range", "The ETag the Range is for", required=False),
    request_header("If-None-Match", "ETags you hold (304 if one matches)", required=False),
]
_UPLOAD_ID = "$response.header.Location#regex:/uploads/([^/]+)$"
_UPLOAD_LINKS = {
    name: link(operation_id, upload_id=_UPLOAD_ID)
    for name, operation_id in {
        "UploadStatus": "ApiV1EvidenceUploadsUploadIdUploadStatus",
        "UploadChunk": "ApiV1EvidenceUploadsUploadIdUploadChunk",
        "TerminateUpload": "ApiV1EvidenceUploadsUploadIdTerminateUpload",
    }.items()
}


def _no_body(description: str) -> ResponseSpec:
    return ResponseSpec(None, description=description)


class EvidenceController(Controller):
    path = "/api/v1/evidence"
    tags = ["evidence"]

    # --- tus uploads -----------------------------------------------------------------

    # Its own OPTIONS handler (public, documented apart from POST) replaces Litestar's
    # default one for the path. Litestar builds a controller's routes in the order of
    # the handlers' names, and a path whose first handler has no OPTIONS gets the
    # default one: so this name sorts before ``create_upload`` (test_openapi.py checks).
    @route(
        "/uploads",
        http_method=[HttpMethod.OPTIONS],
        status_code=204,
        include_in_schema=True,
        responses={204: _no_body("tus discovery"), **problems()},
        operation_class=operation(
            public=True,
            headers={
                204: {
                    "Tus-Version": header("1.0.0"),
                    "Tus-Extension": header(TUS_EXTENSIONS),
                    "Tus-Max-Size": header("The largest file accepted, in bytes", integer=True),
                    "Tus-Checksum-Algorithm": header("The Upload-Checksum algorithms"),
                }
            },
        ),
    )
    async def announce_uploads(self, uploads: UploadsDep) -> Response[None]:
        """tus discovery (no token): the version, extensions, maximum size and checksum
        algorithms."""
        return _discovery(uploads)

    @post(
        "/uploads",
        guards=[ANY_ROLE],
        status_code=201,
        responses={
            201: _no_body("The upload is created: send its bytes to `Location`"),
            **problems(400, 401, 403, 404, 412, 413, 422),
        },
        operation_class=operation(
            headers={
                201: {
                    "Location": header("The upload's URL"),
                    "Upload-Offset": _OFFSET,
                    "Upload-Expires": header("When it is dropped unless finished (HTTP date)"),
                    **_TUS,
                }
            },
            links={201: _UPLOAD_LINKS},
            request_headers=[
                TUS_RESUMABLE,
                request_header("Upload-Length", "The file's size in bytes", schema=_COUNT),
                request_header(
                    "Upload-Metadata",
                    "Comma-separated `key base64(value)`: `sha256` and `inspection_id`"
                    " required; `filename`, `captured_at`, `latitude`, `longitude`",
                ),
            ],
        ),
    )
    async def create_upload(self, request: AuthedRequest, uploads: UploadsDep) -> Response[None]:
        """tus creation: ``Upload-Length`` and ``Upload-Metadata`` (``sha256`` and
        ``inspection_id`` required; ``filename``, ``captured_at``, ``latitude``,
        ``longitude``). Answers 201 with ``Location``."""
        _check_tus(request)
        if "Upload-Defer-Length" in request.headers:
            raise _bad("Upload-Defer-Length is not supported: send Upload-Length", "Upload-Length")
        length = _int_header(request, "Upload-Length")
        metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
        up = await uploads.create(request.user, length, metadata)
        return Response(
            content=None,
            status_code=201,
            headers={
                "Location": f"{UPLOADS_PATH}/{up.id}",
                "Upload-Offset": "0",
                "Upload-Expires": _http_date(up.expires_at),
            },
        )

    @head(
        "/uploads/{upload_id:str}",
        guards=[ANY_ROLE],
        responses={
            200: _no_body("Where the upload stands"),
            **problems(400, 401, 404, 410, 412),
        },
        operation_class=operation(
            headers={
                200: {
                    "Upload-Offset": _OFFSET,
                    "Upload-Length": header("The file's size in bytes", integer=True),
                    "Upload-Metadata": header("The metadata given at creation"),
                    "Upload-Expires": _EXPIRES,
                    "Cache-Control": header("no-store"),
                    **_TUS,
                }
            },
            request_headers=[TUS_RESUMABLE],
        ),
    )
    async def upload_status(
        self, upload_id: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> Response[None]:
        """tus core: the durable ``Upload-Offset`` to resume from, ``Upload-Length``."""
        _check_tus(request)
        up = await uploads.status(request.user, upload_id)
        headers = {
            **_progress_headers(up),
            "Upload-Length": str(up.length),
            "Upload-Metadata": encode_metadata(up.metadata),
            "Cache-Control": "no-store",
        }
        return Response(content=None, status_code=200, headers=headers)

    @patch(
        "/uploads/{upload_id:str}",
        guards=[ANY_ROLE],
        status_code=204,
        responses={
            204: _no_body("The chunk is stored"),
            **problems(400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 423, 460),
        },
        operation_class=operation(
            headers={204: {"Upload-Offset": _OFFSET, "Upload-Expires": _EXPIRES, **_TUS}},
            body=_CHUNK,
            request_headers=[
                TUS_RESUMABLE,
                request_header("Upload-Offset", "Where this chunk starts", schema=_COUNT),
                request_header(
                    "Upload-Checksum",
                    "`<algorithm> <base64 digest>` of this chunk (460 if it does not match)",
                    required=False,
                ),
            ],
        ),
        # A chunk is bounded by the upload's own length (<= the per-file limit), not by
        # the app's body limit; it is streamed to disk, never held whole in memory.
        request_max_body_size=None,
    )
    async def upload_chunk(
        self, upload_id: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> Response[None]:
        """tus core + checksum: append the body at ``Upload-Offset`` (which must be the
        server's: 409 otherwise); an ``Upload-Checksum`` that does not match is 460 and
        stores nothing. The last chunk verifies and stores the file."""
        _check_tus(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/offset+octet-stream":
            raise HTTPException(
                status_code=415,
                detail="a chunk is sent as Content-Type: application/offset+octet-stream",
                extra={"code": "unsupported_media_type", "field": "Content-Type"},
            )
        offset = _int_header(request, "Upload-Offset")
        checksum = _checksum(request.headers.get("Upload-Checksum"))
        declared = (
            _int_header(request, "Content-Length") if "Content-Length" in request.headers else None
        )
        up = await uploads.append(
            request.user,
            upload_id,
            offset,
            request.stream(),
            checksum=checksum,
            declared_length=declared,
        )
        return Response(content=None, status_code=204, headers=_progress_headers(up))

    @delete(
        "/uploads/{upload_id:str}",
        guards=[ANY_ROLE],
        status_code=204,
        responses=problems(400, 401, 404, 412, 423),
        operation_class=operation(headers={204: _TUS}, request_headers=[TUS_RESUMABLE]),
    )
    async def terminate_upload(
        self, upload_id: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> None:
        """tus termination: drop the upload and its bytes (a stored file stays); 423 if
        a chunk of it is still being written past the lock wait."""
        _check_tus(request)
        await uploads.terminate(request.user, upload_id)

    # --- reading ---------------------------------------------------------------------

    @get("/missing", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def missing(
        self, inspection_id: FromQuery[str], request: AuthedRequest, uploads: UploadsDep
    ) -> dict[str, Any]:
        """The hashes an inspection's findings and responses name that are not
        uploaded yet."""
        return {
            "inspection_id": inspection_id,
            "missing": await uploads.missing(request.user, inspection_id),
        }

    @get(
        "/{sha256:str}",
        guards=[ANY_ROLE],
        opt=_SKIP_COMPRESSION,
        response_description="The file",
        responses={**_RANGE_ANSWERS, **problems(400, 401, 404, 416)},
        operation_class=operation(
            media={200: _FILE_TYPES, 206: _FILE_TYPES},
            headers={200: _FILE, 206: {**_FILE, "Content-Range": header("bytes a-b/size")}},
            request_headers=_READ_HEADERS,
        ),
    )
    async def download(
        self, sha256: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> Response[Any]:
        """The file, if a record you can see names it (404 otherwise); ``Range`` (one
        range: 206), ``ETag`` (the SHA-256) and ``If-None-Match`` (304)."""
        ev = await uploads.get(request.user, sha256)
        size = None if ev.lost_at is not None else await uploads.blobs.size(ev.sha256)
        if size is None:
            if ev.lost_at is None:
                await uploads.mark_lost(ev, "missing (found on a download)")
            raise EvidenceLost(
                f"the bytes of evidence {ev.sha256} are lost; it is listed as missing"
                " until a tablet that holds it uploads it again",
                field="sha256",
            )
        name = ev.sha256 + _SUFFIX.get(ev.media_type, "")
        etag = f'"{ev.sha256}"'
        return _serve(request, uploads.blobs, ev.sha256, size, ev.media_type, etag, name)

    @get(
        "/{sha256:str}/thumbnail",
        guards=[ANY_ROLE],
        opt=_SKIP_COMPRESSION,
        response_description="A JPEG thumbnail",
        responses={**_RANGE_ANSWERS, **problems(400, 401, 404, 416)},
        operation_class=operation(
            media={200: ("image/jpeg",), 206: ("image/jpeg",)},
            headers={200: _FILE, 206: {**_FILE, "Content-Range": header("bytes a-b/size")}},
            request_headers=_READ_HEADERS,
        ),
    )
    async def thumbnail(
        self, sha256: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> Response[Any]:
        """A JPEG of at most 320 px (JPEG and PNG files only; 404 for others)."""
        ev = await uploads.get(request.user, sha256)
        size = await uploads.thumbnails.size(ev.sha256) if ev.thumbnail else None
        if size is None:
            raise NotFound(f"evidence {ev.sha256} has no thumbnail")
        return _serve(
            request,
            uploads.thumbnails,
            ev.sha256,
            size,
            "image/jpeg",
            f'"{ev.sha256}.thumb"',
            f"{ev.sha256}-thumb.jpg",
        )

    @get("/{sha256:str}/meta", guards=[ANY_ROLE], responses=problems(400, 401, 404))
    async def meta(
        self, sha256: FromPath[str], request: AuthedRequest, uploads: UploadsDep
    ) -> EvidenceMeta:
        """Size, type, EXIF time and place, thumbnail, and the uploads (who, device,
        tablet time and place) and records of inspections you can see."""
        result: EvidenceMeta = await uploads.meta(request.user, sha256)
        return result
