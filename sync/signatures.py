"""Electronic signatures bound to the content they sign (21 CFR Part 11 style).

A signature keeps the signer's printed name (the account's own name,
:func:`printed_name`, never text typed at signing), the time, its meaning (authored, reviewed,
approved) and the SHA-256 of the signed content. The content is a canonical encoding of
the records the signature covers, limited to the fields that say what was found and
answered (:data:`SIGNED_FIELDS`): a review status or a comment changing later does not
touch what an inspector signed, a changed answer or finding text does. Recomputing the
hash over the records as they are now tells whether the signature still matches.

Pure functions: the server uses them when it records a signature and when it shows one;
the reference tablet uses the same function to show what it is about to sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from sync.fielddata import parse_response_id
from sync.models import User

__all__ = [
    "MEANINGS",
    "REAUTH_METHODS",
    "SIGNED_FIELDS",
    "content_hash",
    "in_scope",
    "printed_name",
]

MEANINGS = ("authored", "reviewed", "approved")

REAUTH_METHODS = ("password", "device_password")
"""How a signer proved again who they are at the moment of signing (``reauth_method``):
``password``, typed again and checked by the server (decisions, the conclusion);
``device_password``, typed again on the tablet and checked there, offline, against the
verifier the tablet derived from the password at its last online login (a sign-off,
with ``reauthenticated_at`` by the tablet's clock). A sign-off from an older tablet has
neither: it shows as not re-authenticated. A method not listed here (a newer tablet's)
is kept and shown as sent."""

SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "response": ("value", "note", "evidence"),
    "finding": (
        "title",
        "objective_evidence",
        "linked_items",
        "references",
        "classification",
        "evidence_hashes",
    ),
}

_SETS = {"evidence", "linked_items", "references", "evidence_hashes"}  # order carries no meaning


def _canonical(field: str, value: Any) -> Any:
    if field in _SETS and isinstance(value, list):
        return sorted(value, key=lambda v: msgspec.json.encode(v, order="sorted"))
    return value


def printed_name(user: User | None, username: str) -> str:
    """The name a signature shows: the account's display name, else its username
    (``username``: the signer's, for an account no longer on record). Every signature
    (a tablet's sign-off, a decision, the conclusion) takes it from the account that
    signs, so it cannot be typed differently at the moment of signing."""
    if user is None:
        return username
    return user.display_name.strip() or user.username


def in_scope(scope: str, kind: str, record_id: str, data: Mapping[str, Any]) -> bool:
    """Whether a record is part of what a sign-off of ``scope`` covers: ``inspection``
    covers every response and finding; ``link:<id>`` the responses of that link and the
    findings linked to one of its items."""
    if kind not in SIGNED_FIELDS:
        return False
    if scope == "inspection":
        return True
    link = scope.removeprefix("link:")
    if kind == "response":
        key = parse_response_id(record_id)
        return key is not None and key.link_id == link
    return any(
        isinstance(ref, str) and ref.partition(":")[0] == link
        for ref in data.get("linked_items") or []
    )


def content_hash(records: Iterable[tuple[str, str, Mapping[str, Any]]]) -> str:
    """SHA-256 (hex) of the signed fields of ``(kind, id, data)`` records, independent of
    their order and of the order of set-like lists."""
    body = sorted(
        [
            kind,
            rid,
            {f: _canonical(f, data.get(f)) for f in SIGNED_FIELDS[kind] if data.get(f) is not None},
        ]
        for kind, rid, data in records
        if kind in SIGNED_FIELDS
    )
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()
