"""The one place where errors become RFC 9457 problem details.

Every problem carries ``status``, ``title``, ``detail``, a stable machine ``code`` and,
where one part of the input is at fault, ``field`` (and ``errors`` for several).
``docs/api.md`` carries this table; a test checks the two agree.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from sync.errors import DomainError

__all__ = ["CODES", "problem_details_plugin"]

log = logging.getLogger("inspectsync")

# code -> (HTTP status, title)
CODES: dict[str, tuple[int, str]] = {
    "validation_failed": (400, "The request is malformed or a field has the wrong type"),
    "too_deep": (400, "The body is nested too deep to decode"),
    "not_authenticated": (401, "Authentication is required"),
    "token_invalid": (401, "The access token is invalid or expired"),
    "invalid_credentials": (401, "Wrong username or password"),
    "user_disabled": (401, "The account is disabled"),
    "device_revoked": (401, "The device has been revoked"),
    "refresh_token_invalid": (401, "Unknown refresh token"),
    "refresh_token_reused": (401, "Refresh token reused: the login is revoked"),
    "refresh_token_revoked": (401, "The refresh token has been revoked"),
    "refresh_token_expired": (401, "The refresh token has expired"),
    "forbidden": (403, "Your role may not do this"),
    "inspection_closed": (403, "The inspection is closed"),
    "not_found": (404, "Not found"),
    "evidence_lost": (404, "The file's bytes are lost until it is uploaded again"),
    "method_not_allowed": (405, "Method not allowed"),
    "not_acceptable": (406, "Not acceptable"),
    "already_exists": (409, "It exists already"),
    "offset_mismatch": (409, "The upload is at another offset"),
    "invalid_transition": (409, "That status change is not allowed now"),
    "version_immutable": (409, "A published version is never edited"),
    "upload_expired": (410, "The upload expired"),
    "revision_mismatch": (412, "The object changed since the revision you based this on"),
    "tus_version_unsupported": (412, "Send Tus-Resumable: 1.0.0"),
    "body_too_large": (413, "The request body is too large"),
    "file_too_large": (413, "The file is larger than the limit per file"),
    "inspection_quota_exceeded": (413, "The inspection's evidence would pass its limit"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "unsupported_file_type": (415, "The file is not an accepted type"),
    "range_not_satisfiable": (416, "The range is outside the file"),
    "invalid_input": (422, "The input breaks a rule"),
    "hash_mismatch": (422, "The file's SHA-256 is not the one announced"),
    "upload_locked": (423, "Another request is writing this upload"),
    "rate_limited": (429, "Too many attempts"),
    "checksum_mismatch": (460, "The chunk does not match its checksum"),
    "internal_error": (500, "Internal server error"),
    "storage_error": (503, "The database is not available"),
    "overloaded": (503, "The server is at its limit; try again after Retry-After"),
}

_BY_STATUS = {
    400: "validation_failed",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "already_exists",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemDetailsException:
    known_status, title = CODES.get(code, (status or 500, code))
    return ProblemDetailsException(
        detail=detail,
        status_code=status or known_status,
        title=title,
        type_=f"https://inspectsync.dev/problems/{code}",
        headers=headers,
        extra={"code": code, **{k: v for k, v in extra.items() if v is not None}},
    )


def _from_domain(exc: DomainError) -> ProblemDetailsException:
    headers = None
    retry_after = exc.extra.get("retry_after")
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return _problem(exc.code, exc.message, headers=headers, field=exc.field, **exc.extra)


def _from_http(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ProblemDetailsException):
        return exc
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    if isinstance(exc, ValidationException):
        cause = str(exc.__cause__) if isinstance(exc.__cause__, msgspec.ValidationError) else ""
        errors = [
            {
                "field": _field_of(e, cause),
                "message": e.get("message", ""),
                "source": e.get("source", "body"),
            }
            for e in (exc.extra if isinstance(exc.extra, list) else [])
        ]
        return _problem(
            "validation_failed",
            _validation_detail(exc.detail, errors),
            status=400,
            field=errors[0]["field"] if errors else None,
            errors=errors or None,
        )
    code = extra.get("code") or _BY_STATUS.get(exc.status_code, "internal_error")
    if exc.status_code == 401 and code == "not_authenticated" and "token" in exc.detail.lower():
        code = "token_invalid"
    rest = {k: v for k, v in extra.items() if k != "code"}
    return _problem(code, exc.detail, status=exc.status_code, headers=exc.headers, **rest)


_AT = re.compile(r" - at `\$\.(?P<path>[^`]+)`")
# msgspec names a missing or unknown field in the text, at the path of its object
_NAMED = re.compile(r"Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def _with_name(text: str, path: str | None) -> str | None:
    """``path`` extended by the field a missing/unknown-field error names, if any."""
    named = _NAMED.search(text)
    if named is None:
        return path
    return f"{path}.{named['name']}" if path else named["name"]


def _field_of(error: dict[str, Any], cause: str) -> str:
    """The full path of the field at fault. Litestar's ``key`` loses nested ``data.``
    parts, so prefer the path msgspec gave in the original error; body paths are
    given from the body's top level."""
    text = cause or error.get("message", "")
    m = _AT.search(text) or _AT.search(error.get("message", ""))
    body = error.get("source") in (None, "body")
    path: str | None = None
    if m:
        path = m["path"]
        path = path.removeprefix("data.") if body else path
        if path == "data":
            path = None
    found = _with_name(text, path) if body else path
    if found:
        return found
    return str(error.get("key") or error.get("source") or "body")


def _validation_detail(detail: str, errors: list[dict[str, str]]) -> str:
    if errors:
        first = errors[0]
        return f"{first['message']} (field: {first['field']})"
    return detail


def _from_msgspec(exc: msgspec.MsgspecError) -> ProblemDetailsException:
    """A body the handler decoded itself (the sync wire) did not fit its message type."""
    text = str(exc)
    m = _AT.search(text)
    field = _with_name(text, m["path"] if m else None)
    return _problem("validation_failed", text, status=400, field=field or "body")


def _from_recursion(exc: RecursionError) -> ProblemDetailsException:
    """A body nested deeper than the decoder can follow (msgspec decodes recursively):
    the client's fault, answered 400. Logged with its traceback all the same, in case
    the recursion was the server's own."""
    log.warning("a request hit the recursion limit (a body nested too deep?)", exc_info=exc)
    return _problem(
        "too_deep",
        "the body is nested deeper than the server decodes (about 1,000 levels)",
        field="body",
    )


def _from_unexpected(exc: Exception) -> ProblemDetailsException:
    log.exception("unhandled error", exc_info=exc)
    return _problem("internal_error", "An unexpected error occurred; it has been logged.")


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                DomainError: _from_domain,
                HTTPException: _from_http,
                msgspec.MsgspecError: _from_msgspec,
                RecursionError: _from_recursion,
                Exception: _from_unexpected,
            },
        )
    )
