"""The audit trail: who changed what, when (device and server), why; hash-chained.

Every write of a record (from sync, review and admin work alike), and every change to a
user or device, appends one *audit event* in the same transaction as the change. The
storage backend writes them (``sync/storage/``), so no code path can change data
without leaving an event; this module holds what is backend-independent: who acts
(:class:`Actor`), the per-change context a caller adds (:class:`AuditContext`), the
field-level diff, and the hash chain.

The chain: each event stores ``prev_hash`` (the hash of the event before it, or
:data:`GENESIS` for the first) and ``hash`` = SHA-256 over ``prev_hash`` and every
column of the event (:data:`HASHED`). Editing any stored event changes its hash, which
no longer matches; deleting or inserting one breaks the next event's ``prev_hash``.
:func:`verify` walks the chain and reports the first event that does not match.
The chain alone cannot tell that the newest events were cut off the end, nor that the
whole chain was recomputed after a change: :class:`Anchor` lines (an event's id and
hash, written down outside the database by the server and by ``audit verify``) can.
``verify`` checks every anchor it is given against the chain (see ``docs/operations.md``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from sync.models import Principal, public_fields

__all__ = [
    "GENESIS",
    "HASHED",
    "SYSTEM",
    "Actor",
    "Anchor",
    "AuditContext",
    "Verification",
    "anchor_head",
    "anchors_path",
    "append_anchor",
    "diff",
    "event_hash",
    "read_anchors",
    "state_at",
    "verify",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

HASHED = (
    "seq",
    "kind",
    "record_id",
    "inspection_id",
    "rev",
    "op",
    "mid",
    "batch_id",
    "user_id",
    "role",
    "device_id",
    "hlc",
    "device_time",
    "received_at",
    "reason",
    "old",
    "new",
)
"""The columns of an event that its hash covers, in hashing order (all but ``id``,
``prev_hash`` and ``hash`` itself; ``prev_hash`` is hashed first)."""


class Actor(msgspec.Struct, frozen=True):
    """Who makes a change: a user in a role, from a device (or none: the web, the CLI)."""

    user_id: str
    role: str
    device_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.user_id, principal.role.value, principal.device_id)


SYSTEM = Actor("system", "system")
"""Changes made by the server itself or by an operator's command line."""


class AuditContext(msgspec.Struct, kw_only=True):
    """What a caller knows about a change beyond who makes it. The sync engine sets
    one per mutation (its id, batch, clock readings); a review decision its reason."""

    reason: str | None = None
    mid: str | None = None
    batch_id: str | None = None
    hlc: str | None = None
    device_time: str | None = None
    received_at: str | None = None
    """Server receipt time; the backend's clock when not given."""


def diff(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The public fields (not ``_...`` bookkeeping) that differ, as (old values, new
    values); a field absent on one side is absent from that side's dict."""
    after = public_fields(new or {})
    if not old:  # a create: every public field is new
        return {}, after
    before = public_fields(old)
    changed = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    changed.sort()
    return (
        {k: before[k] for k in changed if k in before},
        {k: after[k] for k in changed if k in after},
    )


def event_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """SHA-256 (hex) of the previous hash and an event's :data:`HASHED` values."""
    return hashlib.sha256(msgspec.json.encode([prev_hash, *values])).hexdigest()


class Anchor(msgspec.Struct, frozen=True, kw_only=True):
    """The chain's head at some moment, written down outside the database: the id and
    hash of the newest event then, and when it was written."""

    id: int
    hash: str
    at: str


def anchors_path(database: str | Path) -> Path:
    """Where the anchors of a database are kept: ``audit-anchors.jsonl`` beside it."""
    return Path(database).with_name("audit-anchors.jsonl")


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors in a file (one JSON object a line), none if there is no file. Raises
    ValueError naming the line of one that cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out: list[Anchor] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(msgspec.json.decode(line, type=Anchor))
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}, line {n}: not an anchor ({exc})") from None
    return out


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Add an anchor to the file, durably (written and fsync'd before returning)."""
    with path.open("ab") as f:
        f.write(msgspec.json.encode(anchor) + b"\n")
        f.flush()
        os.fsync(f.fileno())


def anchor_head(path: Path, anchors: Sequence[Anchor], head: tuple[int, str], at: str) -> bool:
    """Write the chain's head (event id, hash) down as an anchor at ``at``, unless it is
    the last of ``anchors`` (the file's lines) already. Returns whether it wrote."""
    if anchors and anchors[-1].id == head[0]:
        return False
    append_anchor(path, Anchor(id=head[0], hash=head[1], at=at))
    return True


class Verification(msgspec.Struct, kw_only=True):
    """What :func:`verify` found."""

    ok: bool
    checked: int
    """Events read (up to and including the first bad one)."""
    head: str
    """The hash of the last good event (:data:`GENESIS` if none)."""
    last_id: int = 0
    """The id of the last good event (0 if none)."""
    anchors_checked: int = 0
    """Anchors whose event was reached and matched."""
    first_bad_id: int | None = None
    problem: str | None = None


def verify(events: Iterable[Mapping[str, Any]], anchors: Sequence[Anchor] = ()) -> Verification:
    """Walk events in ``id`` order; stop at the first whose ``prev_hash`` is not the hash
    of the event before it, whose ``hash`` does not match its contents, or whose hash is
    not the one an anchor wrote down for its id (the chain was recomputed after a
    change). At the end, an anchor naming an event past the last one means events were
    cut off the end."""
    anchored: dict[int, list[Anchor]] = {}
    for a in anchors:
        anchored.setdefault(a.id, []).append(a)
    prev = GENESIS
    checked = matched = last_id = 0
    for event in events:
        checked += 1
        problem = None
        expected = event_hash(prev, [event[c] for c in HASHED])
        if event["prev_hash"] != prev:
            problem = (
                "prev_hash does not match the event before it"
                " (an event was removed, inserted or reordered)"
            )
        elif event["hash"] != expected:
            problem = "hash does not match the event's contents (the event was changed)"
        else:
            for a in anchored.get(event["id"], ()):
                if a.hash != expected:
                    problem = (
                        f"its hash is not the one anchored at {a.at}: the trail was"
                        " rewritten and its hashes recomputed, at this event or before it"
                    )
                    break
                matched += 1
        if problem is not None:
            return Verification(
                ok=False,
                checked=checked,
                head=prev,
                last_id=last_id,
                anchors_checked=matched,
                first_bad_id=event["id"],
                problem=problem,
            )
        prev, last_id = expected, event["id"]
    beyond = max((a for a in anchors if a.id > last_id), key=lambda a: a.id, default=None)
    return Verification(
        ok=beyond is None,
        checked=checked,
        head=prev,
        last_id=last_id,
        anchors_checked=matched,
        problem=None
        if beyond is None
        else f"the trail ends at event {last_id} but the anchor of {beyond.at} names"
        f" event {beyond.id}: events were cut off the end",
    )


def state_at(events: Iterable[Mapping[str, Any]], rev: int) -> dict[str, Any] | None:
    """A record's public fields as they were at ``rev``, rebuilt from its audit events
    (oldest first; ``old``/``new`` as JSON text or dicts). None if it had no such rev
    or was deleted at it. Works because each event names every field that changed."""
    state: dict[str, Any] | None = None
    found = False
    for event in events:
        if event["rev"] > rev:
            break
        old, new = (
            msgspec.json.decode(v) if isinstance(v, str | bytes) else dict(v or {})
            for v in (event["old"], event["new"])
        )
        if event["op"] == "delete":
            state = None
        else:
            state = dict(state or {})
            for field in old.keys() - new.keys():
                state.pop(field, None)
            state.update(new)
        found = event["rev"] == rev
    return state if found else None
