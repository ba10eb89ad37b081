"""What every storage backend does the same way, written once above them.

A backend only reads and writes rows; how a record is split into what clients see and
the engine's bookkeeping, which inspection it belongs to, what its audit event holds,
how the hash chain links events, and how a row becomes a domain value are decided here
(see ``docs/architecture.md``, "The storage package").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from sync.audit import GENESIS, Actor, AuditContext, event_hash
from sync.models import (
    Device,
    EvidenceFile,
    EvidenceRef,
    RefreshToken,
    Role,
    StoredRecord,
    Upload,
    User,
    is_bookkeeping,
)

__all__ = [
    "FIELD",
    "Chain",
    "Prefixed",
    "audit_values",
    "device_from_row",
    "dt",
    "evidence_file_from_row",
    "evidence_ref_from_row",
    "join_data",
    "now_text",
    "record_from_row",
    "scope_of",
    "split_data",
    "token_from_row",
    "ts",
    "upload_from_row",
    "user_from_row",
    "user_view",
    "utc",
    "write_op",
]

FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A data field or column name that may be written into SQL (filters, order, updates)."""


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def scope_of(kind: str, record_id: str, data: Mapping[str, Any] | None) -> str | None:
    """The inspection a record belongs to (its change-feed scope key), or None."""
    if kind == "inspection":
        return record_id
    value = (data or {}).get("inspection_id")
    return value if isinstance(value, str) else None


def split_data(data: Mapping[str, Any]) -> tuple[str, str]:
    """A record's data as stored: (public JSON, bookkeeping JSON). Bookkeeping fields
    (``_stamps``, ``_conflict_ids``, ... : names starting with ``_``) live in the ``meta``
    column, so that ``data`` holds exactly what clients see and a pull page splices it
    as it is (``feed_json``)."""
    public: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for k, v in data.items():
        (meta if is_bookkeeping(k) else public)[k] = v
    return _encode(public).decode(), _encode(meta).decode() if meta else "{}"


def join_data(data: str, meta: str) -> dict[str, Any]:
    """The inverse of :func:`split_data`: the whole record data, bookkeeping included."""
    out = _decode(data)
    if meta != "{}":
        out.update(_decode(meta))
    return out


def now_text() -> str:
    """The server's clock as stored (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat()


def ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def utc(value: datetime | None) -> str | None:
    """A timestamp as text that sorts as time does (UTC, always with microseconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def write_op(old_deleted: bool, deleted: bool) -> str:
    """What a write did: ``old_deleted`` is true when there was no live record."""
    if deleted:
        return "delete"
    return "create" if old_deleted else "update"


_json_text = msgspec.json.Encoder()


def audit_values(
    actor: Actor,
    ctx: AuditContext,
    *,
    seq: int,
    kind: str,
    record_id: str,
    inspection_id: str | None,
    rev: int,
    op: str,
    old: dict[str, Any],
    new: dict[str, Any],
    now: str,
) -> list[Any]:
    """One audit event's values, in :data:`sync.audit.HASHED` order."""
    return [
        seq,
        kind,
        record_id,
        inspection_id,
        rev,
        op,
        ctx.mid,
        ctx.batch_id,
        actor.user_id,
        actor.role,
        actor.device_id,
        ctx.hlc,
        ctx.device_time,
        ctx.received_at or now,
        ctx.reason,
        _json_text.encode(old).decode(),
        _json_text.encode(new).decode(),
    ]


class Chain:
    """The audit chain's head inside one write transaction: each event appended links
    to the one before it. ``head`` is the newest stored hash (None: not read yet)."""

    __slots__ = ("head",)

    def __init__(self, head: str | None = None) -> None:
        self.head = head

    def start(self, stored_head: str | None) -> None:
        """Begin at the newest stored event's hash (or the genesis if there is none)."""
        self.head = stored_head if stored_head is not None else GENESIS

    def link(self, values: list[Any]) -> tuple[Any, ...]:
        """The row to insert for an event: its values, ``prev_hash`` and ``hash``."""
        assert self.head is not None, "Chain.start first"
        digest = event_hash(self.head, values)
        row = (*values, self.head, digest)
        self.head = digest
        return row


class Prefixed:
    """Columns ``prefix + name`` of a row, read as ``name``."""

    __slots__ = ("prefix", "row")

    def __init__(self, row: Row, prefix: str) -> None:
        self.row = row
        self.prefix = prefix

    def __getitem__(self, name: str, /) -> Any:
        return self.row[self.prefix + name]


def user_from_row(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        authority_id=row["authority_id"],
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def user_view(user: User) -> dict[str, Any]:
    """What the audit event of a new user shows (never the password hash)."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "authority_id": user.authority_id,
        "disabled": user.disabled,
    }


def device_from_row(row: Row) -> Device:
    return Device(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        platform=row["platform"],
        app_version=row["app_version"],
        registered_at=datetime.fromisoformat(row["registered_at"]),
        revoked_at=dt(row["revoked_at"]),
        last_seen_at=dt(row["last_seen_at"]),
    )


def token_from_row(row: Row) -> RefreshToken:
    return RefreshToken(
        token_hash=row["token_hash"],
        family_id=row["family_id"],
        user_id=row["user_id"],
        device_id=row["device_id"],
        issued_at=datetime.fromisoformat(row["issued_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        used_at=dt(row["used_at"]),
        revoked_at=dt(row["revoked_at"]),
    )


def upload_from_row(row: Row) -> Upload:
    return Upload(
        id=row["id"],
        sha256=row["sha256"],
        length=row["length"],
        offset=row["offset"],
        media_type=row["media_type"],
        inspection_id=row["inspection_id"],
        user_id=row["user_id"],
        device_id=row["device_id"],
        metadata=msgspec.json.decode(row["metadata"] or "{}", type=dict[str, str]),
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        completed_at=dt(row["completed_at"]),
    )


def evidence_file_from_row(row: Row) -> EvidenceFile:
    lost = row["lost_at"]
    return EvidenceFile(
        sha256=row["sha256"],
        size=row["size"],
        media_type=row["media_type"],
        inspection_id=row["inspection_id"],
        uploaded_by=row["uploaded_by"],
        device_id=row["device_id"],
        captured_at=row["captured_at"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        exif_captured_at=row["exif_captured_at"],
        exif_latitude=row["exif_latitude"],
        exif_longitude=row["exif_longitude"],
        filename_hint=row["filename_hint"] or "",
        created_at=datetime.fromisoformat(row["created_at"]),
        thumbnail=bool(row["thumbnail"]),
        lost_at=datetime.fromisoformat(lost) if lost else None,
    )


def evidence_ref_from_row(row: Row) -> EvidenceRef:
    return EvidenceRef(
        sha256=row["sha256"],
        inspection_id=row["inspection_id"],
        uploaded_by=row["uploaded_by"],
        device_id=row["device_id"],
        captured_at=row["captured_at"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        filename_hint=row["filename_hint"] or "",
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def record_from_row(row: Row) -> StoredRecord:
    return StoredRecord(
        kind=row["kind"],
        id=row["id"],
        data=join_data(row["data"], row["meta"]),
        rev=row["rev"],
        seq=row["seq"],
        deleted=bool(row["deleted"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )
