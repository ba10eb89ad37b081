"""The field data tablets change: responses, findings, sign-offs. Rules and validation.

Pure functions over values: what fields each kind has, which merge policy each field
follows, and whether a record (as it would be after a mutation) is valid against the
checklist versions its inspection pins. A failed check returns a :class:`Reason` with a
stable ``code``, the ``field`` at fault and a message for the inspector.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any

import msgspec

from checklists.loader import answer_values
from checklists.schema import Item, Template
from sync.merge import Policy

__all__ = [
    "CLASSIFICATION_LABELS",
    "FIELD_KINDS",
    "FIELD_TYPES",
    "IGNORED_FIELDS",
    "MAX_REPEAT",
    "POLICIES",
    "Reason",
    "ResponseKey",
    "answers_by_link",
    "check_fields",
    "check_record_id",
    "parse_response_id",
    "required_items",
    "response_id",
    "unanswered_required",
    "validate",
]

FIELD_KINDS = ("response", "finding", "signoff")

# The fields a tablet may send per kind, with their merge policy.
POLICIES: dict[str, dict[str, Policy]] = {
    "response": {"value": "lww", "note": "lww", "evidence": "union"},
    "finding": {
        "inspection_id": "lww",
        "title": "lww",
        "objective_evidence": "lww",
        "linked_items": "union",
        "references": "union",
        "classification": "never",
        "status": "lww",
        "evidence_hashes": "union",
        "comments": "union_by_id",
    },
    "signoff": {
        "inspection_id": "lww",
        "scope": "lww",
        "meaning": "lww",
        "content_hash": "lww",
        "signed_at": "lww",
        "incomplete_reason": "lww",
        "reauthenticated_at": "lww",
        "reauth_method": "lww",
    },
}

# PIC/S classification and the NMPA's analogous three-level labels.
CLASSIFICATION_LABELS: dict[str, dict[str, str]] = {
    "critical": {"pics": "critical", "nmpa": "serious", "nmpa_zh": "严重缺陷"},
    "major": {"pics": "major", "nmpa": "major", "nmpa_zh": "主要缺陷"},
    "other": {"pics": "other", "nmpa": "general", "nmpa_zh": "一般缺陷"},
}

FINDING_STATUSES = ("draft", "submitted", "withdrawn", "returned", "accepted", "merged")
TABLET_STATUSES = ("draft", "submitted", "withdrawn")
"""The statuses an inspector sets; the others are supervisors' decisions (sync/review.py)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_TEXT = 20_000
_MAX_LIST = 1_000
MAX_REPEAT = 9_999
"""The highest repeat number of a repeatable section (repeats are 0, 1, 2, ...)."""

# --- the type of every field a tablet may send -------------------------------------
# A value is checked against its field's type before anything else looks at it, so
# every rule below (and the merge) meets only values of these shapes: text, numbers
# of bounded size, lists of text, lists of flat objects. Nothing nests deeper than
# two levels, whatever a tablet sends; a value of another shape is ``wrong_type`` with
# the path of the part at fault.
_Text = Annotated[str, msgspec.Meta(max_length=_MAX_TEXT)]
_Short = Annotated[str, msgspec.Meta(max_length=500)]
_Int = Annotated[int, msgspec.Meta(ge=-(2**53 - 1), le=2**53 - 1)]
"""Integers a JavaScript tablet holds exactly."""
_Float = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]
"""Finite numbers only: NaN and infinities (MessagePack can carry them) are refused."""
_Scalar = _Text | _Int | _Float | bool | None
_TextList = Annotated[list[_Short], msgspec.Meta(max_length=_MAX_LIST)]
_Flat = Annotated[dict[_Short, _Scalar], msgspec.Meta(max_length=50)]
_FlatList = Annotated[list[_Flat], msgspec.Meta(max_length=_MAX_LIST)]

FIELD_TYPES: dict[str, dict[str, Any]] = {
    "response": {
        # text (choices, dates, captions), a number, or a list of choices
        "value": _Text | _Int | _Float | _TextList | None,
        "note": _Text | None,
        "evidence": _TextList,
    },
    "finding": {
        "inspection_id": _Short,
        "title": _Text | None,  # its length and presence are rules: ``validate``
        "objective_evidence": _Text | None,
        "linked_items": _TextList,
        "references": _FlatList,
        "classification": _Short | None,
        "status": _Short,
        "evidence_hashes": _TextList,
        "comments": _FlatList,
    },
    "signoff": {
        "inspection_id": _Short,
        "scope": _Short,
        "signer_name": _Short,  # IGNORED_FIELDS: typed by older tablets, not kept
        "meaning": _Short,
        "content_hash": _Short,
        "signed_at": _Short,
        "incomplete_reason": _Text | None,
        # how the signer was re-authenticated at signing, on the tablet (the password
        # checked against the verifier kept at login: ``device_password``) and when, by
        # the tablet's clock; absent from older tablets' sign-offs
        # (``sync.signatures.REAUTH_METHODS``)
        "reauthenticated_at": _Short | None,
        "reauth_method": _Short | None,
    },
}
"""The shape of each field a tablet may send, per kind: the keys of ``POLICIES`` and
of ``IGNORED_FIELDS``. ``docs/sync-protocol.md`` (section 5.4) lists them."""

IGNORED_FIELDS: dict[str, frozenset[str]] = {"signoff": frozenset({"signer_name"})}
"""Fields older tablets still send that the server no longer takes from a tablet: a
value is checked against its type (``FIELD_TYPES``: never retyped, so an old tablet's
push is not refused), then dropped before the merge. A sign-off's printed name is the
signing account's own name, which the server writes (``sync.signatures.printed_name``);
what a tablet typed is kept nowhere."""


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """Why a mutation was rejected."""

    code: str
    field: str | None = None
    message: str


class ResponseKey(msgspec.Struct, frozen=True):
    inspection_id: str
    link_id: str
    item_key: str
    repeat: int


def response_id(inspection_id: str, link_id: str, item_key: str, repeat: int = 0) -> str:
    """The id of the answer to one item (in one repeat): the same on every tablet, so
    two inspectors answering the same item edit the same record."""
    return f"{inspection_id}~{link_id}~{item_key}~{repeat}"


_REPEAT = re.compile(r"(?:0|[1-9][0-9]{0,3})")


def parse_response_id(rid: str) -> ResponseKey | None:
    """The parts of a response id, or None if ``rid`` is not one. Only the one spelling
    :func:`response_id` makes is one: the repeat in ASCII digits without leading zeros
    (``01`` or a digit of another script would name the same answer twice)."""
    parts = rid.split("~")
    if len(parts) != 4 or not _REPEAT.fullmatch(parts[3]) or not all(parts[:3]):
        return None
    return ResponseKey(parts[0], parts[1], parts[2], int(parts[3]))


def check_record_id(kind: str, rid: str) -> Reason | None:
    """Refuse a record id that is not in its one canonical spelling: text in Unicode
    NFC (two normal forms of one text would be two records), no control characters or
    white space at either end, and for a response the spelling ``response_id`` makes."""
    if not rid.isprintable() or rid != rid.strip():
        return _fail(
            "bad_id", "id", "an id has no control characters, no line breaks, no outer spaces"
        )
    if not rid.isascii() and not unicodedata.is_normalized("NFC", rid):
        return _fail("bad_id", "id", "an id must be in Unicode normal form NFC")
    if kind == "response" and parse_response_id(rid) is None:
        return _fail(
            "bad_id",
            "id",
            "a response id is inspection~link~item~repeat, the repeat in ASCII digits"
            f" without leading zeros (0 to {MAX_REPEAT})",
        )
    return None


_SHAPES: dict[str, type[msgspec.Struct]] = {
    kind: msgspec.defstruct(
        f"{kind}_fields", [(name, t, msgspec.UNSET) for name, t in types.items()], kw_only=True
    )
    for kind, types in FIELD_TYPES.items()
}
"""Per kind, one struct of every field (each optional): a mutation's fields are checked
against their types in one call."""


def _check_types(kind: str, fields: dict[str, Any]) -> Reason | None:
    try:
        msgspec.convert(fields, _SHAPES[kind], strict=True)
    except msgspec.ValidationError as exc:
        text, _, at = str(exc).partition(" - at `$.")
        where = at.rstrip("`").replace("[...]", "") or "fields"
        return _fail("wrong_type", where, f"{where}: {text[0].lower()}{text[1:]}")
    return None


def _fail(code: str, field: str | None, message: str) -> Reason:
    return Reason(code=code, field=field, message=message)


def _find_item(template: Template, key: str) -> tuple[Any, Item] | None:
    for section in template.sections:
        for item in section.items:
            if item.key == key:
                return section, item
    return None


def _check_value(item: Item, value: Any) -> Reason | None:
    if value is None:
        return None
    kind = item.answer
    if kind in ("yes_no_na", "single_choice"):
        allowed = answer_values(item) or set()
        if not isinstance(value, str) or value not in allowed:
            return _fail(
                "invalid_choice", "value", f"answer must be one of {sorted(allowed)}, got {value!r}"
            )
    elif kind == "multi_choice":
        allowed = answer_values(item) or set()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _fail("wrong_type", "value", "answer must be a list of option values")
        bad = [v for v in value if v not in allowed]
        if bad:
            return _fail("invalid_choice", "value", f"{bad} are not options of this item")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _fail("wrong_type", "value", f"answer must be a number, got {value!r}")
        if item.min is not None and value < item.min:
            return _fail(
                "out_of_limits",
                "value",
                f"{value} {item.unit or ''} is below the minimum {item.min}".strip(),
            )
        if item.max is not None and value > item.max:
            return _fail(
                "out_of_limits",
                "value",
                f"{value} {item.unit or ''} is above the maximum {item.max}".strip(),
            )
    elif kind == "text":
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            return _fail("wrong_type", "value", "answer must be text of at most 20000 characters")
    elif kind == "date":
        valid = isinstance(value, str)
        if valid:
            try:
                date.fromisoformat(value)
            except ValueError:
                valid = False
        if not valid:
            return _fail("wrong_type", "value", f"answer must be a date YYYY-MM-DD, got {value!r}")
    elif kind == "photo" and not isinstance(value, str):
        return _fail("wrong_type", "value", "a photo answer is a caption; photos go in evidence")
    return None


def _validate_response(rid: str, data: dict[str, Any], pins: dict[str, Template]) -> Reason | None:
    key = parse_response_id(rid)
    if key is None:
        return _fail("bad_id", "id", "a response id is inspection~link~item~repeat")
    template = pins.get(key.link_id)
    if template is None:
        return _fail(
            "unknown_link", "id", f"link {key.link_id!r} is not covered by this inspection"
        )
    found = _find_item(template, key.item_key)
    if found is None:
        return _fail(
            "unknown_item",
            "id",
            f"item {key.item_key!r} is not in checklist {template.key} as pinned",
        )
    section, item = found
    if key.repeat and not section.repeatable:
        return _fail("not_repeatable", "id", f"section {section.key!r} does not repeat")
    value = data.get("value")
    problem = _check_value(item, value)
    if problem:
        return problem
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > _MAX_TEXT):
        return _fail("wrong_type", "note", "note must be text of at most 20000 characters")
    evidence = data.get("evidence") or []
    if not isinstance(evidence, list) or not all(
        isinstance(h, str) and _SHA256.match(h) for h in evidence
    ):
        return _fail("wrong_type", "evidence", "evidence is a list of SHA-256 hex digests")
    has_note = bool(isinstance(note, str) and note.strip())
    if item.answer == "photo" and value is not None and not evidence:
        return _fail("evidence_required", "evidence", "this item needs a photo")
    rule = item.evidence
    if rule is not None and value is not None:
        answers = value if isinstance(value, list) else [value]
        if any(str(a) in rule.when_answer_in for a in answers):
            need = rule.require
            ok = {
                "note": has_note,
                "photo": bool(evidence),
                "note_or_photo": has_note or bool(evidence),
                "note_and_photo": has_note and bool(evidence),
            }[need]
            if not ok:
                what = need.replace("_", " ")
                return _fail(
                    "evidence_required",
                    "note" if "note" in need else "evidence",
                    f"answer {value!r} needs a {what}",
                )
    return None


def _validate_finding(data: dict[str, Any], pins: dict[str, Template]) -> Reason | None:
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        return _fail("wrong_type", "title", "a title is text")
    if not isinstance(title, str) or not title.strip():
        return _fail("required", "title", "a finding needs a title")
    if len(title) > 500:
        return _fail("wrong_type", "title", "a title has at most 500 characters")
    cls = data.get("classification")
    if cls is not None and cls not in CLASSIFICATION_LABELS:
        return _fail(
            "invalid_choice",
            "classification",
            f"classification must be critical, major or other, got {cls!r}",
        )
    status = data.get("status", "draft")
    if status not in FINDING_STATUSES:
        return _fail("invalid_choice", "status", f"status must be one of {list(FINDING_STATUSES)}")
    text = data.get("objective_evidence", "")
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return _fail("wrong_type", "objective_evidence", "objective evidence is text")
    for n, ref in enumerate(data.get("linked_items") or []):
        link, _, item = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        template = pins.get(link)
        if template is None or _find_item(template, item) is None:
            return _fail(
                "unknown_item",
                f"linked_items[{n}]",
                f"{ref!r} is not link:item of a checklist this inspection pins",
            )
    for n, h in enumerate(data.get("evidence_hashes") or []):
        if not isinstance(h, str) or not _SHA256.match(h):
            return _fail("wrong_type", f"evidence_hashes[{n}]", "not a SHA-256 hex digest")
    for n, ref in enumerate(data.get("references") or []):
        if not isinstance(ref, dict) or not isinstance(ref.get("document"), str):
            return _fail("wrong_type", f"references[{n}]", "a reference is {document, section}")
    for n, c in enumerate(data.get("comments") or []):
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("id"), str)
            or not isinstance(c.get("text"), str)
        ):
            return _fail("wrong_type", f"comments[{n}]", "a comment is {id, text, ...}")
    return None


def _validate_signoff(data: dict[str, Any], pins: dict[str, Template]) -> Reason | None:
    scope = data.get("scope")
    if scope != "inspection" and not (
        isinstance(scope, str) and scope.startswith("link:") and scope[5:] in pins
    ):
        return _fail("invalid_choice", "scope", "scope is 'inspection' or 'link:<link id>'")
    if data.get("meaning") not in ("authored", "reviewed", "approved"):
        return _fail("invalid_choice", "meaning", "meaning is authored, reviewed or approved")
    missing = data.get("unanswered") or []
    reason = data.get("incomplete_reason")
    if missing and not (isinstance(reason, str) and reason.strip()):
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        return _fail(
            "unanswered_required",
            "incomplete_reason",
            f"{len(missing)} required item(s) unanswered ({shown}): to sign anyway, confirm"
            " with a reason",
        )
    return None


def answers_by_link(
    responses: Iterable[tuple[str, dict[str, Any]]],
) -> dict[str, dict[str, list[Any]]]:
    """Answers given, from ``(response id, data)`` pairs: link -> item key -> the
    values of its repeats that have one (a response with no value is no answer)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for rid, data in responses:
        key = parse_response_id(rid)
        if key is not None and data.get("value") is not None:
            out.setdefault(key.link_id, {}).setdefault(key.item_key, []).append(data["value"])
    return out


def required_items(template: Template, answers: dict[str, list[Any]]) -> list[str]:
    """Keys of the items that must be answered, in checklist order: every required
    item, except one shown only for some answers of an earlier item (``show_if``) when
    no repeat of that item has one of them."""
    out = []
    for _, item in template.items():
        if not item.required:
            continue
        cond = item.show_if
        if cond is not None and not any(
            str(v) in cond.answer_in for v in answers.get(cond.item, ())
        ):
            continue
        out.append(item.key)
    return out


def unanswered_required(
    pins: dict[str, Template], scope: str, answers: dict[str, dict[str, list[Any]]]
) -> list[str]:
    """``link:item`` of each required item of ``scope`` (``inspection`` or
    ``link:<id>``) that has no answer in any repeat: what a sign-off of that scope
    leaves unanswered."""
    links = sorted(pins) if scope == "inspection" else [scope.removeprefix("link:")]
    out = []
    for link in links:
        template = pins.get(link)
        if template is None:
            continue
        given = answers.get(link, {})
        out += [f"{link}:{k}" for k in required_items(template, given) if not given.get(k)]
    return out


def check_fields(kind: str, fields: dict[str, Any]) -> Reason | None:
    """Refuse fields a tablet may not send for this kind, and values not of their
    field's type (``FIELD_TYPES``, which includes the ``IGNORED_FIELDS``)."""
    allowed = FIELD_TYPES.get(kind)
    if allowed is None:
        return _fail("unknown_kind", "kind", f"tablets cannot change {kind!r} records")
    unknown = sorted(k for k in fields if k not in allowed)
    if unknown:
        return _fail("unknown_field", unknown[0], f"{kind} has no field {unknown[0]!r}")
    problem = _check_types(kind, fields)
    if problem is not None:
        return problem
    if kind == "finding" and "status" in fields and fields["status"] not in TABLET_STATUSES:
        return _fail(
            "invalid_choice",
            "status",
            f"a tablet sets status to one of {list(TABLET_STATUSES)}; returned, accepted and"
            " merged are supervisors' decisions",
        )
    return None


def validate(
    kind: str, record_id: str, data: dict[str, Any], pins: dict[str, Template]
) -> Reason | None:
    """Check a record as it would be after the mutation; None if it is valid."""
    if kind == "response":
        return _validate_response(record_id, data, pins)
    if kind == "finding":
        return _validate_finding(data, pins)
    return _validate_signoff(data, pins)
