"""Checklist authoring: templates and their immutable versions.

A version is a draft until published; from then on it is never changed in place (a
change is always a new version) and it can only be retired. Each stage type has one
template; the *current* version of a stage is the newest published, not retired
version whose effective date has come. An inspection pins that version when it
starts (see :mod:`sync.registry`), so a later publication never reaches it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from checklists.diff import TemplateDiff, diff_templates
from checklists.loader import ChecklistError, check_complete, template_from_obj
from checklists.schema import StageType, Template, Text
from sync.access import can_see_inspection, inspection_scope
from sync.audit import Actor
from sync.clock import Clock
from sync.errors import AlreadyExists, Forbidden, InvalidInput, NotFound, VersionImmutable
from sync.models import (
    ChecklistTemplateRecord,
    ChecklistVersionRecord,
    Filter,
    Principal,
    Role,
    StoredRecord,
)
from sync.storage import Store

__all__ = ["Authoring", "version_id"]

TEMPLATE = "checklist_template"
VERSION = "checklist_version"


def version_id(template_key: str, version: int) -> str:
    return f"{template_key}-v{version}"


def _require_admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin may author checklists")


def _invalid(exc: ChecklistError, prefix: str = "content") -> InvalidInput:
    return InvalidInput(exc.message, field=f"{prefix}.{exc.path}" if exc.path else prefix)


class Authoring:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # --- templates -------------------------------------------------------------

    async def create_template(
        self, principal: Principal, key: str, stage_type: StageType, title: Text
    ) -> StoredRecord:
        _require_admin(principal)
        existing = await self.store.list_records(
            TEMPLATE, [Filter("stage_type", "eq", stage_type.value)], limit=1
        )
        if existing:
            raise AlreadyExists(
                f"stage type {stage_type.value} already has template {existing[0].id!r}",
                field="stage_type",
            )
        body = ChecklistTemplateRecord(
            stage_type=stage_type,
            title_en=title.en,
            title_zh=title.zh,
            created_by=principal.user_id,
        )
        return await self.store.create_record(
            TEMPLATE, key, msgspec.to_builtins(body), actor=Actor.of(principal)
        )

    async def list_templates(self, principal: Principal) -> list[StoredRecord]:
        return await self.store.list_records(TEMPLATE)

    async def get_template(self, principal: Principal, key: str) -> StoredRecord:
        rec = await self.store.get_record(TEMPLATE, key)
        if rec is None:
            raise NotFound(f"no checklist template {key!r}")
        return rec

    # --- versions --------------------------------------------------------------

    async def list_versions(self, principal: Principal, key: str) -> list[StoredRecord]:
        await self.get_template(principal, key)
        versions = await self.store.list_records(
            VERSION, [Filter("template_key", "eq", key)], order_by="version"
        )
        return [v for v in versions if await self._may_read(principal, v)]

    async def _may_read(self, principal: Principal, rec: StoredRecord) -> bool:
        if principal.role is Role.ADMIN:
            return True
        if rec.data["status"] == "draft":
            return False
        if principal.role is Role.SUPERVISOR:
            return True
        pinned = await self.store.list_records("inspection", [*inspection_scope(principal)])
        return any(rec.id in i.data.get("pins", {}).values() for i in pinned)

    async def get_version(self, principal: Principal, vid: str) -> StoredRecord:
        rec = await self.store.get_record(VERSION, vid)
        if rec is None or not await self._may_read(principal, rec):
            raise NotFound(f"no checklist version {vid!r}")
        return rec

    async def get_version_for_inspection(
        self, principal: Principal, inspection: dict[str, Any], vid: str
    ) -> StoredRecord:
        """A pinned version, read through an inspection the principal can see."""
        if not can_see_inspection(principal, inspection) or vid not in inspection["pins"].values():
            raise NotFound(f"no checklist version {vid!r}")
        rec = await self.store.get_record(VERSION, vid)
        if rec is None:
            raise NotFound(f"no checklist version {vid!r}")
        return rec

    @staticmethod
    def content(rec: StoredRecord) -> Template:
        """The version's template; a draft that is not a valid template yet (an empty
        skeleton, say) is reported as invalid input naming the path, never a crash."""
        try:
            return template_from_obj(rec.data["content"])
        except ChecklistError as exc:
            raise _invalid(exc) from None

    async def _latest(self, key: str) -> StoredRecord | None:
        found = await self.store.list_records(
            VERSION, [Filter("template_key", "eq", key)], order_by="-version", limit=1
        )
        return found[0] if found else None

    async def create_draft(
        self,
        principal: Principal,
        key: str,
        *,
        content: dict[str, Any] | None = None,
        copy_latest: bool = True,
    ) -> StoredRecord:
        """A new draft: the given content, else a copy of the latest version, else an
        empty skeleton. There is at most one open draft per template."""
        _require_admin(principal)
        template = await self.get_template(principal, key)
        latest = await self._latest(key)
        if latest is not None and latest.data["status"] == "draft":
            raise AlreadyExists(
                f"template {key!r} already has draft {latest.id!r}", field="template_key"
            )
        if content is not None:
            body = self._check_content(content, key, template)
        elif copy_latest and latest is not None:
            body = latest.data["content"]
        else:
            body = {
                "key": key,
                "stage_type": template.data["stage_type"],
                "title": {"en": template.data["title_en"], "zh": template.data["title_zh"]},
                "sections": [],
            }
        number = (latest.data["version"] if latest else 0) + 1
        rec = ChecklistVersionRecord(
            template_key=key, version=number, content=body, created_by=principal.user_id
        )
        return await self.store.create_record(
            VERSION, version_id(key, number), msgspec.to_builtins(rec), actor=Actor.of(principal)
        )

    @staticmethod
    def _check_content(content: dict[str, Any], key: str, template: StoredRecord) -> dict[str, Any]:
        try:
            parsed = template_from_obj(content)
        except ChecklistError as exc:
            raise _invalid(exc) from None
        if parsed.key != key:
            raise InvalidInput(f"content is for template {parsed.key!r}", field="content.key")
        if parsed.stage_type.value != template.data["stage_type"]:
            raise InvalidInput(
                f"template {key!r} is for stage type {template.data['stage_type']}",
                field="content.stage_type",
            )
        body: dict[str, Any] = msgspec.to_builtins(parsed)
        return body

    async def update_draft(
        self,
        principal: Principal,
        vid: str,
        content: dict[str, Any],
        *,
        expect_rev: int | None = None,
    ) -> StoredRecord:
        """Replace a draft's content (add, change, remove, reorder sections and items)."""
        _require_admin(principal)
        rec = await self.get_version(principal, vid)
        self._require_draft(rec)
        template = await self.get_template(principal, rec.data["template_key"])
        data = {**rec.data, "content": self._check_content(content, template.id, template)}
        return await self.store.update_record(
            VERSION, vid, data, expect_rev=expect_rev, actor=Actor.of(principal)
        )

    @staticmethod
    def _require_draft(rec: StoredRecord) -> None:
        if rec.data["status"] != "draft":
            raise VersionImmutable(
                f"version {rec.id!r} is {rec.data['status']}; create a new version to change it"
            )

    async def validate_version(self, principal: Principal, vid: str) -> list[InvalidInput]:
        """Everything that would stop this version from being published."""
        rec = await self.get_version(principal, vid)
        try:
            template = template_from_obj(rec.data["content"])
            check_complete(template)
        except ChecklistError as exc:
            return [_invalid(exc)]
        return []

    async def publish(
        self,
        principal: Principal,
        vid: str,
        *,
        changelog: str,
        effective_date: date | None = None,
        expect_rev: int | None = None,
    ) -> StoredRecord:
        _require_admin(principal)
        rec = await self.get_version(principal, vid)
        self._require_draft(rec)
        if not changelog.strip():
            raise InvalidInput("a publication needs a changelog", field="changelog")
        problems = await self.validate_version(principal, vid)
        if problems:
            raise problems[0]
        now = self.clock.now()
        data = {
            **rec.data,
            "status": "published",
            "changelog": changelog,
            "published_by": principal.user_id,
            "published_at": now.isoformat(),
            "effective_date": (effective_date or now.date()).isoformat(),
        }
        return await self.store.update_record(
            VERSION, vid, data, expect_rev=expect_rev, actor=Actor.of(principal)
        )

    async def retire(self, principal: Principal, vid: str) -> StoredRecord:
        _require_admin(principal)
        rec = await self.get_version(principal, vid)
        if rec.data["status"] != "published":
            raise VersionImmutable(
                f"only a published version can be retired; {vid!r} is {rec.data['status']}"
            )
        data = {**rec.data, "status": "retired", "retired_at": self.clock.now().isoformat()}
        return await self.store.update_record(
            VERSION, vid, data, expect_rev=rec.rev, actor=Actor.of(principal)
        )

    async def diff(self, principal: Principal, old_vid: str, new_vid: str) -> TemplateDiff:
        old = await self.get_version(principal, old_vid)
        new = await self.get_version(principal, new_vid)
        return diff_templates(self.content(old), self.content(new))

    async def current_version(self, stage_type: StageType) -> StoredRecord | None:
        """The version a new inspection of this stage pins now."""
        templates = await self.store.list_records(
            TEMPLATE, [Filter("stage_type", "eq", stage_type.value)], limit=1
        )
        if not templates:
            return None
        today = self.clock.now().date().isoformat()
        found = await self.store.list_records(
            VERSION,
            [
                Filter("template_key", "eq", templates[0].id),
                Filter("status", "eq", "published"),
                Filter("effective_date", "lte", today),
            ],
            order_by="-version",
            limit=1,
        )
        return found[0] if found else None

    async def import_template(
        self, principal: Principal, template: Template, *, publish: bool, changelog: str = ""
    ) -> StoredRecord:
        """Load a template file: create the template if new, then a version holding the
        file's content, published if asked. Importing content identical to the latest
        published version creates nothing and returns that version."""
        _require_admin(principal)
        if await self.store.get_record(TEMPLATE, template.key) is None:
            await self.create_template(principal, template.key, template.stage_type, template.title)
        content = msgspec.to_builtins(template)
        latest = await self._latest(template.key)
        published = latest is not None and latest.data["status"] == "published"
        if published and latest is not None and latest.data["content"] == content:
            return latest
        if latest is not None and latest.data["status"] == "draft":
            draft = await self.update_draft(principal, latest.id, content)
        else:
            draft = await self.create_draft(principal, template.key, content=content)
        if not publish:
            return draft
        return await self.publish(
            principal, draft.id, changelog=changelog or "Imported from template file"
        )
