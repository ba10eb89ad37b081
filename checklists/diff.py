"""Differences between two versions of a template, by stable item key."""

from __future__ import annotations

from typing import Any

import msgspec

from checklists.schema import Template

__all__ = ["FieldChange", "TemplateDiff", "diff_templates"]


class FieldChange(msgspec.Struct, frozen=True):
    old: Any
    new: Any


class TemplateDiff(msgspec.Struct):
    """Items added, removed and changed (field by field); sections likewise."""

    items_added: list[str]
    items_removed: list[str]
    items_changed: dict[str, dict[str, FieldChange]]
    sections_added: list[str]
    sections_removed: list[str]
    sections_changed: dict[str, dict[str, FieldChange]]
    template_changed: dict[str, FieldChange]

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.items_added,
                self.items_removed,
                self.items_changed,
                self.sections_added,
                self.sections_removed,
                self.sections_changed,
                self.template_changed,
            )
        )


def _fields(obj: msgspec.Struct, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f: msgspec.to_builtins(getattr(obj, f)) for f in obj.__struct_fields__ if f not in skip}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, FieldChange]:
    return {
        k: FieldChange(old.get(k), new.get(k))
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    }


def diff_templates(old: Template, new: Template) -> TemplateDiff:
    """What changed from ``old`` to ``new``. An item that moved section or position shows
    as a change of its ``section`` or ``position`` field."""
    old_items = {
        i.key: {**_fields(i), "section": s.key, "position": n}
        for n, (s, i) in enumerate(old.items())
    }
    new_items = {
        i.key: {**_fields(i), "section": s.key, "position": n}
        for n, (s, i) in enumerate(new.items())
    }
    old_secs = {
        s.key: {**_fields(s, ("items",)), "position": n} for n, s in enumerate(old.sections)
    }
    new_secs = {
        s.key: {**_fields(s, ("items",)), "position": n} for n, s in enumerate(new.sections)
    }
    items_changed = {
        k: c
        for k in old_items.keys() & new_items.keys()
        if (c := _changes(old_items[k], new_items[k]))
    }
    sections_changed = {
        k: c for k in old_secs.keys() & new_secs.keys() if (c := _changes(old_secs[k], new_secs[k]))
    }
    return TemplateDiff(
        items_added=[k for k in new_items if k not in old_items],
        items_removed=[k for k in old_items if k not in new_items],
        items_changed=dict(sorted(items_changed.items())),
        sections_added=[k for k in new_secs if k not in old_secs],
        sections_removed=[k for k in old_secs if k not in new_secs],
        sections_changed=dict(sorted(sections_changed.items())),
        template_changed=_changes(_fields(old, ("sections",)), _fields(new, ("sections",))),
    )
