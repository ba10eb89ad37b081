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
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from checklists.i18n import pick_lang
from server.problem_text import DETAILS, TITLES
from sync.errors import DomainError

__all__ = ["CODES", "LocalisedProblem", "localised", "problem_details_plugin"]

log = logging.getLogger("inspectsync")

# code -> HTTP status
_STATUS: dict[str, int] = {
    "validation_failed": 400,
    "too_deep": 400,
    "not_authenticated": 401,
    "token_invalid": 401,
    "invalid_credentials": 401,
    "user_disabled": 401,
    "device_revoked": 401,
    "refresh_token_invalid": 401,
    "refresh_token_reused": 401,
    "refresh_token_revoked": 401,
    "refresh_token_expired": 401,
    "forbidden": 403,
    "reauthentication_failed": 403,
    "inspection_closed": 403,
    "not_found": 404,
    "evidence_lost": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "already_exists": 409,
    "offset_mismatch": 409,
    "invalid_transition": 409,
    "version_immutable": 409,
    "upload_expired": 410,
    "revision_mismatch": 412,
    "tus_version_unsupported": 412,
    "body_too_large": 413,
    "file_too_large": 413,
    "inspection_quota_exceeded": 413,
    "unsupported_media_type": 415,
    "unsupported_file_type": 415,
    "range_not_satisfiable": 416,
    "invalid_input": 422,
    "hash_mismatch": 422,
    "upload_locked": 423,
    "rate_limited": 429,
    "checksum_mismatch": 460,
    "internal_error": 500,
    "storage_error": 503,
    "overloaded": 503,
}

# code -> (HTTP status, English title); every title in both languages is in
# server/problem_text.py
CODES: dict[str, tuple[int, str]] = {
    code: (status, TITLES[code]["en"]) for code, status in _STATUS.items()
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


class _Blank(dict[str, Any]):
    """Format values: a placeholder the problem does not carry stays as it is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _candidates(code: str, field: str | None) -> list[str]:
    """Catalogue keys for a problem, most specific first: the field as given, without
    its list indexes, then each shorter prefix (``links[2].id`` -> ``links.id`` ->
    ``links``), then the code alone."""
    keys: list[str] = []
    if field:
        plain = re.sub(r"\[\d+\]", "", field)
        keys += [f"{code}@{field}", f"{code}@{plain}"]
        parts = re.split(r"[. ]", plain)
        keys += [f"{code}@{'.'.join(parts[:n])}" for n in range(len(parts) - 1, 0, -1)]
    return [*keys, code]


def localised(code: str, lang: str, values: dict[str, Any]) -> tuple[str, str]:
    """The title and the catalogue's detail of a problem in ``lang`` (``values``: the
    problem's members, ``field`` among them)."""
    titles = TITLES.get(code)
    title = titles[lang] if titles else code
    field = values.get("field")
    for key in _candidates(code, field if isinstance(field, str) else None):
        entry = DETAILS.get(key)
        if entry is not None:
            at = ""
            if field and "@" not in key:
                at = f"（字段：{field}）" if lang == "zh" else f" (field: {field})"
            return title, entry[lang].format_map(_Blank(values, at=at))
    return title, ""


# msgspec's messages of a validation error, in Chinese (the rest of a message that
# none of these fits is shown as it is, after a generic sentence)
_MSGSPEC_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Object missing required field `(?P<a>[^`]+)`$"), "缺少必填字段 {a}"),
    (re.compile(r"^Object contains unknown field `(?P<a>[^`]+)`$"), "含有未知字段 {a}"),
    (re.compile(r"^Expected `(?P<a>[^`]+)`, got `(?P<b>[^`]+)`$"), "应为 {a} 类型，实际为 {b}"),
    (re.compile(r"^Expected `(?P<a>[^`]+)` (?P<b>.+)$"), "应为满足 {b} 的 {a}"),
    (re.compile(r"^Invalid enum value (?P<a>.+)$"), "无效的取值 {a}"),
    (re.compile(r"^Invalid (?P<a>.+)$"), "无效的 {a}"),
]


def _message_zh(message: str) -> str:
    text = _AT.sub("", message).strip()
    for pattern, template in _MSGSPEC_ZH:
        m = pattern.match(text)
        if m:
            return template.format(**m.groupdict())
    return f"值不符合要求：{text}"


class LocalisedProblem(ProblemDetailsException):
    """A problem answered in the language the request asks for first (``Accept-Language``;
    English unless Chinese comes first). The code, status and members are the same in
    both; Chinese answers take their title and detail from the catalogue
    (``server/problem_text.py``) and keep the engine's English detail as ``detail_en``."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        lang = pick_lang(None, request.headers.get("accept-language"))
        response = super().to_response(request)
        body = response.content
        code = body.get("code")
        if lang == "zh" and isinstance(code, str):
            title, detail = localised(code, "zh", body)
            english = body.get("detail")
            body["title"] = title
            body["detail"] = detail or english
            if english and detail:
                body["detail_en"] = english
            errors = body.get("errors")
            if isinstance(errors, list):
                body["errors"] = [
                    {**e, "message": _message_zh(str(e.get("message", "")))}
                    if isinstance(e, dict)
                    else e
                    for e in errors
                ]
        response.headers["Content-Language"] = lang
        response.headers["Vary"] = "Accept-Language"
        return response


def _problem(
    code: str,
    detail: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemDetailsException:
    known_status, title = CODES.get(code, (status or 500, code))
    return LocalisedProblem(
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
    if isinstance(exc, LocalisedProblem):
        return exc
    if isinstance(exc, ProblemDetailsException):
        extra = exc.extra if isinstance(exc.extra, dict) else {}
        return _problem(
            str(extra.get("code") or _BY_STATUS.get(exc.status_code, "internal_error")),
            exc.detail,
            status=exc.status_code,
            headers=exc.headers,
            **{k: v for k, v in extra.items() if k != "code"},
        )
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
