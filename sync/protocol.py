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

import base64
import contextlib
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec

from sync import _wire

__all__ = [
    "MAX_BATCH",
    "MAX_PAGE",
    "MAX_REV",
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
    "ReceivedPush",
    "RecordRef",
    "Rejected",
    "Result",
    "Unreadable",
    "decode",
    "decode_push",
    "encode",
]

PROTOCOL_VERSION = 1
MAX_BATCH = 500
MAX_PAGE = 5000
MAX_REV = 2**63 - 1
"""Revisions, sequence numbers and every other integer of the protocol fit in 64 bits."""

MutationId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Version = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


class Mutation(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One change a tablet made offline to one record.

    ``mid`` is made by the client and unique per device forever (device id + a counter
    that only grows, or a UUID): it is what makes a resend harmless. ``base_rev`` is the
    record revision the edit was made on (0 for a record the tablet created).
    ``fields`` holds only the fields that changed.
    """

    mid: MutationId
    kind: Annotated[str, msgspec.Meta(max_length=64)]
    """response, finding or signoff; an unknown kind is rejected on its own, so one
    mutation from a newer app never blocks the rest of the batch."""
    id: RecordId
    op: Annotated[str, msgspec.Meta(max_length=64)] = "upsert"
    """upsert or delete (an unknown op is rejected on its own, like an unknown kind)."""
    base_rev: Annotated[int, msgspec.Meta(ge=0, le=MAX_REV)] = 0
    """The record's revision the edit was made on: 0 for a record the tablet created,
    else one the record had (at most its current one: higher is ``bad_base_rev``)."""
    fields: dict[str, Any] = {}
    """Each field's value must be of the field's type (``sync.fielddata.FIELD_TYPES``);
    a value of another type or shape rejects this mutation alone."""
    hlc: Annotated[str, msgspec.Meta(max_length=128)]
    device_time: datetime
    reason: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    """Why a signed-off record is changed; required after sign-off."""


class PushRequest(msgspec.Struct, kw_only=True):
    protocol: Version = PROTOCOL_VERSION
    mutations: Annotated[list[Mutation], msgspec.Meta(max_length=MAX_BATCH)]
    app_version: Annotated[str, msgspec.Meta(max_length=200)] = ""


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
    protocol: Version = PROTOCOL_VERSION
    cursor: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
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


# --- what the server reads of a push -------------------------------------------------


class Unreadable(msgspec.Struct, frozen=True, kw_only=True):
    """A mutation of a push that did not decode as a :class:`Mutation` although its
    ``mid`` could be read: it is rejected on its own (and quarantined), the rest of the
    batch is applied. Never sent: the tablet gets a :class:`Rejected`."""

    mid: str
    kind: str
    id: str
    inspection_id: str | None = None
    """``fields.inspection_id`` if it could be read: where the rejection is shown."""
    code: str
    """``wrong_type``, ``bad_base_rev`` or ``too_deep``."""
    field: str | None
    message: str
    raw: str
    """The mutation as it was sent: JSON text, or ``msgpack:`` and base64."""


class ReceivedPush(msgspec.Struct, kw_only=True):
    """A push as the server decoded it: each mutation read, or unreadable."""

    protocol: int = PROTOCOL_VERSION
    mutations: list[Mutation | Unreadable]
    app_version: str = ""


class _Envelope(msgspec.Struct, kw_only=True):
    protocol: Version = PROTOCOL_VERSION
    mutations: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_BATCH)]
    app_version: Annotated[str, msgspec.Meta(max_length=200)] = ""


class _Head(msgspec.Struct):
    """What a mutation that did not decode must have to be answered on its own."""

    mid: MutationId


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")


def _where(exc: msgspec.ValidationError) -> str | None:
    """The path msgspec names in its error, from the mutation's top level."""
    text = str(exc)
    m = _AT.search(text)
    path = m["path"] if m else ""
    named = _NAMED.search(text)
    if named and ("missing required" in text or "unknown field" in text):
        path = f"{path}.{named['name']}" if path else named["name"]
    return path or None


def _text(raw: bytes, msgpack: bool) -> str:
    if msgpack:
        return "msgpack:" + base64.b64encode(raw).decode()
    return raw.decode("utf-8", "replace")


def _codec(msgpack: bool) -> Any:
    return msgspec.msgpack if msgpack else msgspec.json


def _unreadable(
    raw: bytes, msgpack: bool, *, code: str, field: str | None, message: str
) -> Unreadable:
    """The :class:`Unreadable` of a mutation that did not decode, or the error that
    refuses the whole push if not even its ``mid`` can be read."""
    codec = _codec(msgpack)
    mid: str | None = None
    try:
        mid = codec.decode(raw, type=_Head).mid
    except RecursionError:
        # the mid is at the top of the mutation: read it alone
        with contextlib.suppress(ValueError, msgspec.MsgspecError, RecursionError):
            for key, (start, end) in _wire.children(raw, msgpack):
                if key is not None and codec.decode(raw[key[0] : key[1]]) == "mid":
                    mid = codec.decode(raw[start:end], type=MutationId)
    except msgspec.MsgspecError:
        mid = None
    if mid is None:
        raise msgspec.ValidationError(
            "a mutation is answered by its mid: it needs one, text of 1 to 128"
            " characters - at `$.mid`"
        )
    loose = _loose(raw, msgpack)
    kind, rid, iid = loose.get("kind"), loose.get("id"), loose.get("inspection_id")
    return Unreadable(
        mid=mid,
        kind=kind if isinstance(kind, str) else "",
        id=rid if isinstance(rid, str) else "",
        inspection_id=iid if isinstance(iid, str) else None,
        code=code,
        field=field,
        message=message,
        raw=_text(raw, msgpack),
    )


def _loose(raw: bytes, msgpack: bool, names: tuple[str, ...] = ("kind", "id")) -> dict[str, Any]:
    """The mutation's shallow values (``kind``, ``id``, ``fields.inspection_id``),
    whatever else it holds."""
    codec = _codec(msgpack)
    out: dict[str, Any] = {}
    with contextlib.suppress(ValueError, msgspec.MsgspecError, RecursionError):
        for key, (start, end) in _wire.children(raw, msgpack):
            if key is None:
                continue
            name = codec.decode(raw[key[0] : key[1]])
            if name in names:
                out[name] = codec.decode(raw[start:end])
            elif name == "fields" and names != ("inspection_id",):
                out.update(_loose(raw[start:end], msgpack, ("inspection_id",)))
    return out


def _deep_part(raw: bytes, msgpack: bool) -> str | None:
    """Which part of a mutation is too deep to decode: a top-level key, or
    ``fields.<name>``."""
    codec = _codec(msgpack)
    try:
        for key, (start, end) in _wire.children(raw, msgpack):
            if key is None:
                continue
            name = codec.decode(raw[key[0] : key[1]])
            value = raw[start:end]
            try:
                codec.decode(value)
            except RecursionError:
                if name == "fields":
                    inner = _deep_part(value, msgpack)
                    return f"fields.{inner}" if inner else "fields"
                return str(name)
    except (ValueError, msgspec.MsgspecError, RecursionError):
        return None
    return None


def _mutation(raw: bytes, msgpack: bool, decoder: Any) -> Mutation | Unreadable:
    try:
        mutation: Mutation = decoder.decode(raw)
        return mutation
    except RecursionError:
        part = _deep_part(raw, msgpack)
        return _unreadable(
            raw,
            msgpack,
            code="too_deep",
            field=part,
            message=f"{part or 'a value'} is nested deeper than the server decodes"
            " (see docs/sync-protocol.md, limits)",
        )
    except msgspec.ValidationError as exc:
        field = _where(exc)
        if field == "base_rev":
            code = "bad_base_rev"
        elif "missing required field" in str(exc):
            code = "required"
        else:
            code = "wrong_type"
        return _unreadable(raw, msgpack, code=code, field=field, message=str(exc))


def decode_push(data: bytes, media_type: str = "application/json") -> ReceivedPush:
    """Decode a push so that each mutation gets its own verdict: one that does not
    decode as a :class:`Mutation` (a value of the wrong type, a ``base_rev`` out of
    range, a value nested too deep to decode) becomes an :class:`Unreadable` when its
    ``mid`` can be read. Raises ``msgspec.ValidationError`` / ``DecodeError`` only when
    the envelope itself is not a push, or a mutation has no readable ``mid``."""
    msgpack = media_type == MSGPACK
    codec = _codec(msgpack)
    key = (_Envelope, msgpack)
    envelope_decoder = _decoders.get(key)
    if envelope_decoder is None:
        envelope_decoder = _decoders[key] = codec.Decoder(_Envelope)
    try:
        envelope: _Envelope = envelope_decoder.decode(data)
        raws = [bytes(r) for r in envelope.mutations]
    except RecursionError:
        envelope, raws = _outline(data, msgpack)
    decoder = _decoders.get((Mutation, msgpack))
    if decoder is None:
        decoder = _decoders[(Mutation, msgpack)] = codec.Decoder(Mutation)
    mutations: list[Mutation | Unreadable] = []
    for n, raw in enumerate(raws):
        try:
            mutations.append(_mutation(raw, msgpack, decoder))
        except msgspec.ValidationError as exc:
            text, _, at = str(exc).partition(" - at `$")
            raise msgspec.ValidationError(f"{text} - at `$.mutations[{n}]{at}") from None
    return ReceivedPush(
        protocol=envelope.protocol, mutations=mutations, app_version=envelope.app_version
    )


def _outline(data: bytes, msgpack: bool) -> tuple[_Envelope, list[bytes]]:
    """The slow path of :func:`decode_push`: something in the body is nested too deep
    to decode. Split it with the iterative walkers; anything deep outside a mutation
    (an unknown top-level field) is ignored like any unknown field."""
    codec = _codec(msgpack)
    try:
        parts: dict[str, bytes] = {}
        for key, (start, end) in _wire.children(data, msgpack):
            if key is not None:
                name = codec.decode(data[key[0] : key[1]])
                if isinstance(name, str):
                    parts[name] = data[start:end]
        if "mutations" not in parts:
            raise msgspec.ValidationError("Object missing required field `mutations`")
        raws = [
            parts["mutations"][a:b] for _, (a, b) in _wire.children(parts["mutations"], msgpack)
        ]
        shell = {k: codec.decode(v) for k, v in parts.items() if k in ("protocol", "app_version")}
        shell["mutations"] = []
        envelope = msgspec.convert(shell, _Envelope)
    except ValueError as exc:
        raise msgspec.DecodeError(f"the body cannot be read: {exc}") from None
    except RecursionError:
        raise msgspec.ValidationError("the body is nested too deep to decode") from None
    if len(raws) > MAX_BATCH:
        raise msgspec.ValidationError(
            f"Expected `array` of length <= {MAX_BATCH} - at `$.mutations`"
        )
    return envelope, raws
