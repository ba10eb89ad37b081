"""The sync wire protocol: every message tablets and the server exchange. msgspec only.

Evolution rules (old tablets stay in the field for months):
- every message carries ``protocol``; the server answers any version it knows;
- new fields always get defaults; a field is never retyped or reused;
- unknown fields from newer clients are ignored (structs do not forbid them);
- push results are a tagged union on ``status``: a client that meets a status it does
  not know keeps the mutation pending and shows it, it does not drop it.

JSON is the default encoding; MessagePack is used when the client sends
``Content-Type: application/msgpack`` or asks with ``Accept: application/msgpack``.
``docs/sync-protocol.md`` has an example of every message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "MAX_BATCH",
    "MAX_PAGE",
    "PROTOCOL_VERSION",
    "Applied",
    "Change",
    "ConflictKept",
    "Conflicted",
    "Duplicate",
    "Merged",
    "Mutation",
    "PullRequest",
    "PullResponse",
    "PushRequest",
    "PushResponse",
    "RecordRef",
    "Rejected",
    "Result",
    "decode",
    "encode",
]

PROTOCOL_VERSION = 1
MAX_BATCH = 500
MAX_PAGE = 5000

MutationId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Mutation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One change a tablet made offline to one record.

    ``mid`` is made by the client and unique per device forever (device id + a counter
    that only grows, or a UUID): it is what makes a resend harmless. ``base_rev`` is the
    record revision the edit was made on (0 for a record the tablet created).
    ``fields`` holds only the fields that changed.
    """

    mid: MutationId
    kind: str
    """response, finding or signoff; an unknown kind is rejected on its own, so one
    mutation from a newer app never blocks the rest of the batch."""
    id: RecordId
    op: str = "upsert"
    """upsert or delete (an unknown op is rejected on its own, like an unknown kind)."""
    base_rev: Annotated[int, msgspec.Meta(ge=0)] = 0
    fields: dict[str, Any] = {}
    hlc: str
    device_time: datetime
    reason: str | None = None
    """Why a signed-off record is changed; required after sign-off."""


class PushRequest(msgspec.Struct, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    mutations: Annotated[list[Mutation], msgspec.Meta(max_length=MAX_BATCH)]
    app_version: str = ""


class ConflictKept(msgspec.Struct, kw_only=True):
    """A same-field conflict this mutation took part in."""

    conflict_id: str
    field: str
    winner: Any
    values: list[Any]
    flagged: bool


class Applied(msgspec.Struct, tag="applied", tag_field="status", kw_only=True):
    """Every changed field was applied; nobody else had changed them."""

    mid: str
    kind: str
    id: str
    rev: int


class Merged(msgspec.Struct, tag="merged", tag_field="status", kw_only=True):
    """Applied alongside concurrent changes to the same record, without conflict
    (different fields, equal values, or grow-only sets)."""

    mid: str
    kind: str
    id: str
    rev: int
    concurrent_fields: list[str]


class Conflicted(msgspec.Struct, tag="conflict", tag_field="status", kw_only=True):
    """At least one field was changed concurrently to another value. The record holds
    the winner by policy; every value is kept in the conflicts listed."""

    mid: str
    kind: str
    id: str
    rev: int
    conflicts: list[ConflictKept]


class Rejected(msgspec.Struct, tag="rejected", tag_field="status", kw_only=True):
    """Not applied: the record would break a rule. Kept in quarantine for audit."""

    mid: str
    kind: str
    id: str
    code: str
    field: str | None = None
    message: str
    quarantine_id: str


Result = Applied | Merged | Conflicted | Rejected


class Duplicate(msgspec.Struct, tag="duplicate", tag_field="status", kw_only=True):
    """This mid was seen before: nothing was applied again; here is what happened then."""

    mid: str
    original: Result


class PushResponse(msgspec.Struct, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    batch_id: str
    results: list[Applied | Merged | Conflicted | Rejected | Duplicate]
    server_time: datetime
    hlc: str
    """The server's clock: the tablet merges it into its own."""
    clock_skew_ms: int = 0
    skew_flagged: bool = False


class PullRequest(msgspec.Struct, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    cursor: str | None = None
    """Opaque: the ``cursor`` of the last page received; none for a first sync."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = 1000
    want_missing_evidence: bool = False
    """Ask for ``missing_evidence`` on the page that ends the pull. Finding it reads
    every finding and response of the caller's inspections, so a tablet asks only when
    it holds evidence files, once per sync."""


class RecordRef(msgspec.Struct, frozen=True, array_like=False):
    kind: str
    id: str


class Change(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A record as it is now (or its tombstone, ``deleted`` true and no data)."""

    kind: str
    id: str
    rev: int
    seq: int
    deleted: bool = False
    data: dict[str, Any] | None = None


class PullResponse(msgspec.Struct, kw_only=True):
    protocol: int = PROTOCOL_VERSION
    changes: list[Change]
    evict: list[RecordRef] = []
    """Records the tablet must delete locally: they left its scope."""
    cursor: str
    has_more: bool
    resync_required: bool = False
    """The cursor is older than the retained tombstones: drop local data (keep the
    outbox) and pull again from no cursor."""
    server_time: datetime
    hlc: str
    missing_evidence: dict[str, list[str]] | None = None
    """Only on the page that ends a pull (``has_more`` false) whose request asked
    (``want_missing_evidence``), else null: per inspection of the caller's scope that is
    not closed (only those with something missing), the sorted SHA-256s its live
    findings and responses name that no completed upload for that inspection has
    stored. A tablet uploads those it holds, for that inspection; ``{}`` means nothing
    is missing."""


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_decoders: dict[tuple[type[Any], bool], Any] = {}

MSGPACK = "application/msgpack"


def encode(message: msgspec.Struct, media_type: str = "application/json") -> bytes:
    """Encode a message as JSON, or MessagePack when asked."""
    if media_type == MSGPACK:
        return _msgpack_encoder.encode(message)
    return _json_encoder.encode(message)


def decode(data: bytes, kind: type[Any], media_type: str = "application/json") -> Any:
    """Decode and validate a message; raises ``msgspec.ValidationError`` / ``DecodeError``."""
    key = (kind, media_type == MSGPACK)
    decoder = _decoders.get(key)
    if decoder is None:
        decoder = msgspec.msgpack.Decoder(kind) if key[1] else msgspec.json.Decoder(kind)
        _decoders[key] = decoder
    return decoder.decode(data)
