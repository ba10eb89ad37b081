"""Request and response bodies of the JSON API (the sync wire lives in sync/protocol.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar.params import QueryParameter

from checklists.schema import StageType, Text
from server.auth import DeviceIn
from sync.models import (
    KIND_TYPES,
    Device,
    InspectionStatus,
    Role,
    StoredRecord,
    User,
)

__all__ = [
    "AssignmentIn",
    "DeviceOut",
    "DraftIn",
    "FieldError",
    "InspectionExport",
    "LoginIn",
    "MeOut",
    "ProblemOut",
    "PublishIn",
    "RefreshIn",
    "TemplateIn",
    "TransitionIn",
    "UserIn",
    "UserOut",
    "UserPatch",
    "envelope",
    "page",
    "to_envelope",
]

Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size (1-500)")]
Offset = Annotated[
    int, QueryParameter(ge=0, le=1_000_000_000, description="Items to skip (0-1,000,000,000)")
]
AfterId = Annotated[
    int, QueryParameter(ge=0, le=2**63 - 1, description="Continue after this event id")
]


class FieldError(msgspec.Struct, kw_only=True):
    field: str
    message: str
    source: str
    """body, query, path, header or cookie"""


class ProblemOut(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem detail, served as ``application/problem+json``. Branch on
    ``code`` (stable; the table in docs/api.md); ``field`` names the input at fault,
    ``errors`` lists each one of a 400; some codes add members (``current_rev``,
    ``current_status``, ``retry_after``, ...)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    errors: list[FieldError] | None = None


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    device: DeviceIn | None = None


class RefreshIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class MeOut(msgspec.Struct, kw_only=True):
    user_id: str
    username: str
    display_name: str
    role: Role
    authority_id: str
    device_id: str | None


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    role: Role
    authority_id: str
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
    id: Id | None = None


class UserPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields given change (one audited change); the others stay. The last active
    admin cannot be disabled or given another role (422 ``invalid_input``)."""

    disabled: bool | None = None
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=1024)] | None = None
    role: Role | None = None
    authority_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None


class UserOut(msgspec.Struct, kw_only=True):
    id: str
    username: str
    display_name: str
    role: Role
    authority_id: str
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            authority_id=user.authority_id,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class DeviceOut(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    name: str
    platform: str
    app_version: str
    registered_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None

    @classmethod
    def of(cls, d: Device) -> DeviceOut:
        return cls(**msgspec.structs.asdict(d))


class InspectionExport(msgspec.Struct, kw_only=True):
    """The document ``GET .../export.json`` serves (``sync.exports.export_json``)."""

    format: str
    generated_at: datetime
    generated_by: str
    inspection: dict[str, Any]
    findings: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    signoffs: list[dict[str, Any]]


class TransitionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: InspectionStatus


class AssignmentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: str
    role: Literal["lead", "member"] = "member"
    sections: list[str] | None = None


class TemplateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    stage_type: StageType
    title: Text


class DraftIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a draft: from ``content`` if given, else a copy of the latest version
    (``copy_latest``), else an empty skeleton."""

    copy_latest: bool = True
    content: dict[str, Any] | None = None


class ContentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    content: dict[str, Any]


class PublishIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    changelog: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    effective_date: date | None = None


_envelopes: dict[str, type[msgspec.Struct]] = {}
_pages: dict[str, type[msgspec.Struct]] = {}


def envelope(kind: str) -> type[msgspec.Struct]:
    """The response type of one record: ``{id, rev, updated_at, data}``."""
    if kind not in _envelopes:
        name = "".join(p.title() for p in kind.split("_"))
        _envelopes[kind] = msgspec.defstruct(
            f"{name}Out",
            [("id", str), ("rev", int), ("updated_at", datetime), ("data", KIND_TYPES[kind])],
            kw_only=True,
        )
    return _envelopes[kind]


def page(kind: str) -> type[msgspec.Struct]:
    """The response type of a listing: ``{items, total, limit, offset}``."""
    if kind not in _pages:
        name = "".join(p.title() for p in kind.split("_"))
        _pages[kind] = msgspec.defstruct(
            f"{name}Page",
            [("items", list[envelope(kind)]), ("total", int), ("limit", int), ("offset", int)],  # type: ignore[valid-type]
            kw_only=True,
        )
    return _pages[kind]


def to_envelope(rec: StoredRecord) -> Any:
    body = msgspec.convert(rec.data, KIND_TYPES[rec.kind])
    return envelope(rec.kind)(id=rec.id, rev=rec.rev, updated_at=rec.updated_at, data=body)


def to_page(kind: str, items: list[StoredRecord], total: int, limit: int, offset: int) -> Any:
    return page(kind)(
        items=[to_envelope(r) for r in items], total=total, limit=limit, offset=offset
    )
