"""Three-way, per-field merge of a tablet's edit into the server's record. Pure.

Every field of a synced record carries a *stamp*: the record revision at which it last
changed, the hybrid-logical-clock time of that change, and who made it. An edit says
which revision it was made on (``base_rev``) and carries only the fields it changed.

For each field the edit changes:

- the server's field has not changed since ``base_rev``: the edit applies;
- it has changed (a concurrent edit) but to the same value: nothing to do;
- it has changed to another value: the field's **policy** decides:
  - ``lww``: the later HLC wins (ties: the larger device id); the losing value is kept
    in a conflict for a person to see and, if they wish, restore;
  - ``never``: nothing is decided automatically (a finding's classification): the
    server value stays, the incoming one is kept beside it, and the conflict is flagged;
- ``union`` / ``union_by_id`` fields (evidence hashes, comments) never conflict: the
  result is the union.

Different fields changed on both sides therefore merge cleanly, and no value that was
ever sent is dropped: it is either current or kept in a conflict.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Edit",
    "FieldConflict",
    "KeptValue",
    "MergeResult",
    "Policy",
    "Stamp",
    "is_concurrent",
    "merge",
    "union",
    "union_by_id",
]

Policy = Literal["lww", "never", "union", "union_by_id"]


class Stamp(msgspec.Struct, frozen=True, array_like=True):
    """When and by whom a field last changed."""

    rev: int
    hlc: str
    by: str
    device: str = ""
    mid: str = ""
    device_time: str = ""
    """The device's clock when the change was made (empty for server-side changes and
    for stamps stored before this field existed)."""


class Edit(msgspec.Struct, frozen=True, kw_only=True):
    """One tablet's change to one record."""

    fields: dict[str, Any]
    base_rev: int
    hlc: str
    by: str
    device: str = ""
    mid: str = ""
    device_time: str = ""


class KeptValue(msgspec.Struct, frozen=True, kw_only=True):
    """A value taking part in a conflict, with where it came from."""

    value: Any
    by: str
    device: str
    hlc: str
    mid: str = ""
    device_time: str = ""


class FieldConflict(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    policy: Policy
    winner: Any
    """The value the record holds after the merge."""
    values: list[KeptValue]
    """Every competing value: the server's first, then the incoming one."""
    flagged: bool
    """True when no value was chosen automatically (policy ``never``)."""


class MergeResult(msgspec.Struct, kw_only=True):
    values: dict[str, Any]
    """Fields whose value changes, with their new value."""
    stamps: dict[str, Stamp]
    """New stamps of those fields."""
    conflicts: list[FieldConflict]
    concurrent: list[str]
    """Fields that had also changed on the server since the edit's base."""


def union(current: Any, incoming: Any) -> list[Any]:
    """Set union that keeps first-seen order (current first)."""
    out = list(current or [])
    for v in incoming or []:
        if v not in out:
            out.append(v)
    return out


def union_by_id(current: Any, incoming: Any) -> list[Any]:
    """Union of objects by their ``id``; the existing copy of an id is kept."""
    out = list(current or [])
    seen = {c.get("id") for c in out if isinstance(c, dict)}
    for v in incoming or []:
        if isinstance(v, dict) and v.get("id") not in seen:
            out.append(v)
            seen.add(v.get("id"))
    return out


def is_concurrent(stamp: Stamp | None, edit: Edit) -> bool:
    """Did the field change after the edit's base, by someone the editor had not seen?

    A device's own earlier change is never concurrent with its later one: a tablet's
    outbox is causally ordered, so its later edit was made knowing the earlier one.
    """
    if stamp is None or stamp.rev <= edit.base_rev:
        return False
    return not (edit.device and stamp.device == edit.device)


def _order(stamp: Stamp) -> tuple[str, str]:
    return (stamp.hlc, stamp.device)


def merge(
    values: dict[str, Any],
    stamps: dict[str, Stamp],
    edit: Edit,
    new_rev: int,
    policies: dict[str, Policy],
) -> MergeResult:
    """Merge ``edit`` into a record whose current field values and stamps are given.

    ``new_rev`` is the revision the record takes if anything changes. Deterministic:
    the same inputs give the same result, whatever order replicas saw them in.
    """
    out = MergeResult(values={}, stamps={}, conflicts=[], concurrent=[])
    incoming_stamp = Stamp(new_rev, edit.hlc, edit.by, edit.device, edit.mid, edit.device_time)
    for field, value in edit.fields.items():
        policy = policies.get(field, "lww")
        current = values.get(field)
        stamp = stamps.get(field)
        concurrent = is_concurrent(stamp, edit)
        if concurrent:
            out.concurrent.append(field)
        if policy in ("union", "union_by_id"):
            fn = union if policy == "union" else union_by_id
            merged = fn(current, value)
            if merged != (current or []):
                out.values[field] = merged
                out.stamps[field] = incoming_stamp
            continue
        if value == current:
            continue
        if not concurrent:
            out.values[field] = value
            out.stamps[field] = incoming_stamp
            continue
        assert stamp is not None
        server = KeptValue(
            value=current,
            by=stamp.by,
            device=stamp.device,
            hlc=stamp.hlc,
            mid=stamp.mid,
            device_time=stamp.device_time,
        )
        theirs = KeptValue(
            value=value,
            by=edit.by,
            device=edit.device,
            hlc=edit.hlc,
            mid=edit.mid,
            device_time=edit.device_time,
        )
        if policy == "never":
            out.conflicts.append(
                FieldConflict(
                    field=field,
                    policy=policy,
                    winner=current,
                    values=[server, theirs],
                    flagged=True,
                )
            )
            continue
        incoming_wins = _order(incoming_stamp) > _order(stamp)
        if incoming_wins:
            out.values[field] = value
            out.stamps[field] = incoming_stamp
        out.conflicts.append(
            FieldConflict(
                field=field,
                policy=policy,
                winner=value if incoming_wins else current,
                values=[server, theirs],
                flagged=False,
            )
        )
    return out
