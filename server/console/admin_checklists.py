"""The admin's checklist pages: templates and versions, drafts edited in a form,
validation at the field, publish and retire, diffs, import and export
(docs/console.md).

Every change goes through :class:`sync.authoring.Authoring`, the service behind
``/api/v1/checklists``: the same checks, the same audit events (by the signed-in
admin), the same rule that only a draft changes. The form itself is
:mod:`server.console._checklist_form`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath
from litestar.response import Redirect, Template

from checklists.loader import ChecklistError, decode_template, dump_template
from checklists.schema import ANSWER_TYPES, StageType
from server.console._checklist_form import (
    apply_step,
    content_from_form,
    document_options,
    field_of,
    number_text,
    step_focus,
)
from server.console._web import admin_only, page, presenter, status_of
from server.console.present import Presenter
from sync.audit import SYSTEM
from sync.errors import DomainError, InvalidInput, NotFound, RevisionMismatch
from sync.models import Principal, StoredRecord

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["checklist_pages"]

BASE = "/console/admin/checklists"
_REQUIRES = ("note", "photo", "note_or_photo", "note_and_photo")
_SEVERITIES = ("critical", "major", "other")

# the loader's and msgspec's words for the commonest problems -> a message key
_PROBLEMS = [
    (re.compile(r"^missing (en|zh) text$"), "ck_err_missing_lang"),
    (re.compile(r"^min .* is greater than max"), "ck_err_min_max"),
    (re.compile(r"^text needs at least one of en or zh"), "ck_err_text_empty"),
    (re.compile(r"^every item cites at least one source"), "ck_err_no_reference"),
    (re.compile(r"^unknown document"), "ck_err_unknown_document"),
    (re.compile(r"^section must not be empty"), "ck_err_empty"),
    (re.compile(r"^a section needs at least one item"), "ck_err_no_items"),
    (re.compile(r"^a template needs at least one section"), "ck_err_no_sections"),
    (re.compile(r"^a (single|multi)_choice item needs >= 2 options"), "ck_err_two_options"),
    (re.compile(r"^options are not allowed"), "ck_err_no_options_here"),
    (re.compile(r"^(unit|min|max) is only allowed on number items"), "ck_err_number_only"),
    (re.compile(r"^duplicate (item|section) key"), "ck_err_duplicate_key"),
    (re.compile(r"^Expected `float \| null`"), "ck_err_not_number"),
    (re.compile(r"^Expected `str` matching regex"), "ck_err_key_pattern"),
    (re.compile(r"^a publication needs a changelog"), "ck_err_changelog"),
    (re.compile(r"^a repeatable section needs repeat_label"), "ck_err_repeat_label"),
    (re.compile(r"^repeat_label needs repeatable"), "ck_err_repeat_label"),
]


def _problem(p: Presenter, exc: DomainError, content: dict[str, Any] | None) -> dict[str, str]:
    """A refusal as the form shows it: the field at fault and a message in the page's
    language (the service's own words when there is no better one)."""
    message = exc.message
    for rx, key in _PROBLEMS:
        if rx.search(message):
            message = p.t(key, detail=exc.message)
            break
    if exc.field in ("changelog", "effective_date"):
        field = exc.field
    else:
        field = field_of(exc.field, content or {}, exc.message) if content is not None else ""
    return {
        "field": field,
        "message": message,
        "where": _where(p, field, content or {}),
        "original": exc.message,
    }


_FIELD = re.compile(
    r"^(?:s(?P<s>\d+)(?:_i(?P<i>\d+))?(?:_(?P<ro>[ro])(?P<n>\d+))?_?)?(?P<rest>.*)$"
)
_LABELS = {
    "document": "ck_ref_document",
    "section": "ck_ref_section",
    "value": "ck_opt_value",
    "label_zh": "ck_opt_label_zh",
    "label_en": "ck_opt_label_en",
    "refs": "ck_references",
    "opts": "ck_options",
    "items": "ck_f_items",
    "content": "ck_whole_template",
}


def _where(p: Presenter, field: str, content: dict[str, Any]) -> str:
    """A form field in words: ``Section title › item_key › Minimum``."""
    m = _FIELD.match(field)
    if not m or not field:
        return ""
    parts = []
    sections = content.get("sections") or []
    if m["s"] is not None and int(m["s"]) < len(sections):
        section = sections[int(m["s"])]
        parts.append(_title(section.get("title"), p.t.lang) or str(section.get("key", "")))
        items = section.get("items") or []
        if m["i"] is not None and int(m["i"]) < len(items):
            parts.append(str(items[int(m["i"])].get("key", "")))
    if m["ro"]:
        parts.append(p.t("ck_ref_n" if m["ro"] == "r" else "ck_opt_n", n=int(m["n"]) + 1))
    rest = m["rest"]
    if rest:
        key = _LABELS.get(rest, f"ck_{rest}")
        parts.append(p.t(key) if key in p.t.catalogue else rest)
    return " › ".join(x for x in parts if x)


def _title(t: dict[str, Any] | None, lang: str) -> str:
    if not t:
        return ""
    first, second = ("zh", "en") if lang == "zh" else ("en", "zh")
    return str(t.get(first) or t.get(second) or "")


def _show(p: Presenter, field: str, v: Any) -> str:
    """A content value in a diff, in words: texts as ``zh / en``, references, options,
    evidence and show-if rules, answer types and severities as the version page says
    them."""
    empty = p.t("empty_value")
    if v is None:
        return empty
    if isinstance(v, dict) and set(v) <= {"en", "zh"}:
        return " / ".join(x for x in (v.get("zh", ""), v.get("en", "")) if x) or empty
    if field == "references" and isinstance(v, list):
        return "; ".join(f"{x.get('document')}, {x.get('section')}" for x in v) or empty
    if field == "options" and isinstance(v, list):
        return "; ".join(f"{x.get('value')} ({_show(p, '', x.get('label'))})" for x in v) or empty
    if field == "evidence" and isinstance(v, dict):
        return p.t(
            "ck_evidence_rule",
            require=p.t(f"ck_require_{v.get('require')}"),
            answers=", ".join(v.get("when_answer_in") or []),
        )
    if field == "show_if" and isinstance(v, dict):
        return p.t(
            "ck_show_if_rule", item=v.get("item"), answers=", ".join(v.get("answer_in") or [])
        )
    if field == "answer" and isinstance(v, str):
        return p.t(f"ck_answer_{v}")
    if field == "severity_hint" and isinstance(v, str):
        return p.class_name(v)
    if field == "position" and isinstance(v, int):
        return str(v + 1)
    if isinstance(v, float):
        return number_text(v)
    return p.value(v)


def checklist_pages(services: Services, reads: ConsoleReads) -> list[Any]:
    """The route handlers of the checklist pages (guarded by ``admin_only``)."""
    authoring = services.authoring

    def me(request: Request[Any, Any, Any]) -> Principal:
        user = request.user
        assert isinstance(user, Principal)  # admin_only saw to it
        return user

    def version_row(v: StoredRecord, names: dict[str, str], p: Presenter) -> dict[str, Any]:
        d = v.data
        names = {**names, SYSTEM.user_id: p.t("ck_by_system")}
        return {
            "id": v.id,
            "version": d["version"],
            "status": d["status"],
            "status_label": p.t(f"ck_status_{d['status']}"),
            "created_by": names.get(d.get("created_by") or "", d.get("created_by") or ""),
            "created_at": p.when(v.created_at),
            "published_by": names.get(d.get("published_by") or "", d.get("published_by") or ""),
            "published_at": p.when(d.get("published_at")),
            "effective_date": d.get("effective_date") or "",
            "retired_at": p.when(d.get("retired_at")),
            "changelog": d.get("changelog", ""),
        }

    # --- the list ---------------------------------------------------------------------

    async def list_page(
        request: Request[Any, Any, Any], status: int = 200, error: dict[str, str] | None = None
    ) -> Template:
        p = presenter(request)
        lang = p.t.lang
        rows = []
        for tpl in sorted(await authoring.list_templates(me(request)), key=lambda r: r.id):
            versions = await authoring.list_versions(me(request), tpl.id)
            current = await authoring.current_version(_stage(tpl))
            draft = next((v.id for v in versions if v.data["status"] == "draft"), None)
            rows.append(
                {
                    "key": tpl.id,
                    "title": (tpl.data["title_zh"] if lang == "zh" else tpl.data["title_en"])
                    or tpl.data["title_en"],
                    "stage_type": tpl.data["stage_type"],
                    "versions": len(versions),
                    "current": current.id if current else "",
                    "current_version": current.data["version"] if current else None,
                    "draft": draft,
                }
            )
        done = request.query_params.get("done", "")
        return page(
            request,
            "admin_checklists.html",
            p,
            status=status,
            templates=rows,
            error=error,
            done=p.t(f"ck_done_{done}") if done in _DONE else "",
        )

    @get(BASE, include_in_schema=False, guards=[admin_only])
    async def checklists(request: Request[Any, Any, Any]) -> Template:
        return await list_page(request)

    # --- one template: its versions, a new draft, a diff ----------------------------

    async def template_page(
        request: Request[Any, Any, Any], key: str, status: int = 200, error: str = ""
    ) -> Template:
        p = presenter(request)
        tpl = await authoring.get_template(me(request), key)
        versions = await authoring.list_versions(me(request), key)
        names = await reads.user_names()
        rows = [version_row(v, names, p) for v in reversed(versions)]
        draft = next((r for r in rows if r["status"] == "draft"), None)
        current = await authoring.current_version(_stage(tpl))
        return page(
            request,
            "admin_checklist.html",
            p,
            status=status,
            key=key,
            title=_title({"en": tpl.data["title_en"], "zh": tpl.data["title_zh"]}, p.t.lang),
            stage_type=tpl.data["stage_type"],
            versions=rows,
            draft=draft,
            current=current.id if current else "",
            error=error,
        )

    @get(f"{BASE}/{{key:str}}", include_in_schema=False, guards=[admin_only])
    async def template(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        return await template_page(request, key)

    @post(f"{BASE}/{{key:str}}/drafts", include_in_schema=False, guards=[admin_only])
    async def new_draft(request: Request[Any, Any, Any], key: FromPath[str]) -> Any:
        """A new draft: a copy of the chosen version (the latest if none is chosen)."""
        form = await request.form()
        source = str(form.get("from", ""))
        try:
            if source:
                rec = await authoring.get_version(me(request), source)
                if rec.data["template_key"] != key:
                    raise NotFound(f"no checklist version {source!r}")
                latest = (await authoring.list_versions(me(request), key))[-1]
                if rec.id == latest.id:
                    draft = await authoring.create_draft(me(request), key)
                else:
                    draft = await authoring.create_draft(
                        me(request), key, content=rec.data["content"]
                    )
            else:
                draft = await authoring.create_draft(me(request), key)
        except NotFound:
            raise
        except DomainError as exc:
            return await template_page(request, key, status_of(exc), exc.message)
        return Redirect(f"{BASE}/versions/{quote(draft.id)}/edit", status_code=303)

    @get(f"{BASE}/{{key:str}}/diff", include_in_schema=False, guards=[admin_only])
    async def diff(request: Request[Any, Any, Any], key: FromPath[str]) -> Template:
        p = presenter(request)
        lang = p.t.lang
        versions = await authoring.list_versions(me(request), key)
        ids = [v.id for v in versions]
        params = request.query_params
        default_to = ids[-1] if ids else ""
        default_from = ids[-2] if len(ids) > 1 else default_to
        old_id = params.get("from") or default_from
        new_id = params.get("to") or default_to
        if old_id not in ids or new_id not in ids:
            raise NotFound("no such version of this template")
        old = next(v for v in versions if v.id == old_id)
        new = next(v for v in versions if v.id == new_id)
        d = await authoring.diff(me(request), old_id, new_id)
        old_items = {i["key"]: (s, i) for s in old.data["content"]["sections"] for i in s["items"]}
        new_items = {i["key"]: (s, i) for s in new.data["content"]["sections"] for i in s["items"]}
        secs = {
            s["key"]: s
            for v in (old, new)
            for s in v.data["content"]["sections"]  # the newer title wins
        }

        def item(k: str, where: dict[str, Any]) -> dict[str, Any]:
            s, i = where[k]
            return {
                "key": k,
                "prompt": _title(i["prompt"], lang),
                "section": _title(s["title"], lang),
            }

        def changes(c: dict[str, Any]) -> list[dict[str, str]]:
            return [
                {"field": p.t(f"ck_f_{f}"), "old": _show(p, f, ch.old), "new": _show(p, f, ch.new)}
                for f, ch in c.items()
            ]

        return page(
            request,
            "admin_checklist_diff.html",
            p,
            key=key,
            versions=[
                (v.id, v.data["version"], p.t(f"ck_status_{v.data['status']}")) for v in versions
            ],
            old=old_id,
            new=new_id,
            old_version=old.data["version"],
            new_version=new.data["version"],
            empty=d.empty,
            template_changed=changes(d.template_changed),
            sections_added=[_title(secs[k]["title"], lang) or k for k in d.sections_added],
            sections_removed=[_title(secs[k]["title"], lang) or k for k in d.sections_removed],
            sections_changed=[
                {"key": k, "title": _title(secs[k]["title"], lang), "changes": changes(c)}
                for k, c in d.sections_changed.items()
            ],
            items_added=[item(k, new_items) for k in d.items_added],
            items_removed=[item(k, old_items) for k in d.items_removed],
            items_changed=[
                {**item(k, new_items), "changes": changes(c)} for k, c in d.items_changed.items()
            ],
        )

    # --- one version: its content, publish, retire, export ----------------------------

    async def version_page(
        request: Request[Any, Any, Any], vid: str, status: int = 200, error: str = ""
    ) -> Template:
        p = presenter(request)
        rec = await authoring.get_version(me(request), vid)
        names = await reads.user_names()
        problems = []
        if rec.data["status"] == "draft":
            content = rec.data["content"]
            problems = [
                _problem(p, x, content) for x in await authoring.validate_version(me(request), vid)
            ]
        versions = await authoring.list_versions(me(request), rec.data["template_key"])
        earlier = [v.id for v in versions if v.data["version"] < rec.data["version"]]
        done = request.query_params.get("done", "")
        return page(
            request,
            "admin_checklist_version.html",
            p,
            status=status,
            v=version_row(rec, names, p),
            key=rec.data["template_key"],
            content=rec.data["content"],
            sections=_sections_view(rec.data["content"], p),
            problems=problems,
            previous=earlier[-1] if earlier else "",
            open_draft=next((x.id for x in versions if x.data["status"] == "draft"), ""),
            error=error,
            done=p.t(f"ck_done_{done}") if done in _DONE else "",
            today=services.clock.now().date().isoformat(),
        )

    @get(f"{BASE}/versions/{{vid:str}}", include_in_schema=False, guards=[admin_only])
    async def version(request: Request[Any, Any, Any], vid: FromPath[str]) -> Template:
        return await version_page(request, vid)

    @post(f"{BASE}/versions/{{vid:str}}/retire", include_in_schema=False, guards=[admin_only])
    async def retire(request: Request[Any, Any, Any], vid: FromPath[str]) -> Any:
        try:
            await authoring.retire(me(request), vid)
        except NotFound:
            raise
        except DomainError as exc:
            return await version_page(request, vid, status_of(exc), exc.message)
        return Redirect(f"{BASE}/versions/{quote(vid)}?done=retired", status_code=303)

    @get(f"{BASE}/versions/{{vid:str}}/export.yaml", include_in_schema=False, guards=[admin_only])
    async def export_yaml(request: Request[Any, Any, Any], vid: FromPath[str]) -> Response[bytes]:
        rec = await authoring.get_version(me(request), vid)
        return Response(
            dump_template(authoring.content(rec)).encode(),
            media_type="application/yaml; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_file(rec.id)}.yaml"'},
        )

    @get(f"{BASE}/versions/{{vid:str}}/export.json", include_in_schema=False, guards=[admin_only])
    async def export_json(request: Request[Any, Any, Any], vid: FromPath[str]) -> Response[bytes]:
        rec = await authoring.get_version(me(request), vid)
        body = msgspec.json.format(msgspec.json.encode(authoring.content(rec)), indent=2)
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{_file(rec.id)}.json"'},
        )

    # --- the draft editor -------------------------------------------------------------

    async def editor(
        request: Request[Any, Any, Any],
        rec: StoredRecord,
        content: dict[str, Any],
        *,
        status: int = 200,
        problems: list[dict[str, str]] | None = None,
        error: str = "",
        unsaved: bool = False,
        rev: int | None = None,
        changelog: str = "",
        focus: str | None = None,
    ) -> Template:
        p = presenter(request)
        if problems is None:
            problems = [
                _problem(p, x, content)
                for x in await authoring.validate_version(me(request), rec.id)
            ]
        at = {x["field"]: x["message"] for x in problems}
        open_items = {m[0] for f in at if (m := re.match(r"s\d+_i\d+", f))}
        if focus:
            open_items.add(focus)
        saved = request.query_params.get("saved") == "1" and not unsaved and not error
        return page(
            request,
            "admin_checklist_edit.html",
            p,
            status=status,
            vid=rec.id,
            key=rec.data["template_key"],
            version=rec.data["version"],
            rev=rev if rev is not None else rec.rev,
            content=content,
            problems=problems,
            at=at,
            open_items=open_items,
            error=error,
            unsaved=unsaved,
            saved=saved,
            changelog=changelog,
            answer_types=[(a, p.t(f"ck_answer_{a}")) for a in ANSWER_TYPES],
            severities=[(s, p.class_name(s)) for s in _SEVERITIES],
            requires=[(r, p.t(f"ck_require_{r}")) for r in _REQUIRES],
            documents=document_options(p.t.lang),
            num=number_text,
            today=services.clock.now().date().isoformat(),
        )

    async def draft_of(request: Request[Any, Any, Any], vid: str) -> StoredRecord | None:
        rec = await authoring.get_version(me(request), vid)
        return rec if rec.data["status"] == "draft" else None

    @get(f"{BASE}/versions/{{vid:str}}/edit", include_in_schema=False, guards=[admin_only])
    async def edit(request: Request[Any, Any, Any], vid: FromPath[str]) -> Any:
        rec = await draft_of(request, vid)
        if rec is None:  # only a draft is edited: the version's own page says so
            return Redirect(f"{BASE}/versions/{quote(vid)}", status_code=303)
        return await editor(request, rec, rec.data["content"])

    @post(f"{BASE}/versions/{{vid:str}}/edit", include_in_schema=False, guards=[admin_only])
    async def save(request: Request[Any, Any, Any], vid: FromPath[str]) -> Any:
        p = presenter(request)
        rec = await draft_of(request, vid)
        if rec is None:
            return await version_page(request, vid, 409, p.t("ck_not_a_draft"))
        form = await request.form()
        rev_raw = str(form.get("rev", ""))
        rev = int(rev_raw) if rev_raw.isdigit() else None
        content = content_from_form(
            form, rec.data["template_key"], rec.data["content"]["stage_type"]
        )
        step = str(form.get("step", "save"))
        if step != "save":
            stepped = apply_step(content, step)
            after = stepped if stepped is not None else content
            return await editor(
                request,
                rec,
                after,
                problems=[],
                unsaved=True,
                rev=rev,
                focus=step_focus(step, after) if stepped is not None else None,
            )
        try:
            await authoring.update_draft(me(request), vid, content, expect_rev=rev)
        except NotFound:
            raise
        except RevisionMismatch:
            return await editor(
                request,
                rec,
                content,
                status=409,
                problems=[],
                error=p.t("ck_changed_since"),
                unsaved=True,
                rev=rev,
            )
        except DomainError as exc:
            problem = _problem(p, exc, content)
            return await editor(
                request,
                rec,
                content,
                status=status_of(exc),
                problems=[problem],
                unsaved=True,
                rev=rev,
            )
        return Redirect(f"{BASE}/versions/{quote(vid)}/edit?saved=1", status_code=303)

    @post(f"{BASE}/versions/{{vid:str}}/publish", include_in_schema=False, guards=[admin_only])
    async def publish(request: Request[Any, Any, Any], vid: FromPath[str]) -> Any:
        p = presenter(request)
        rec = await draft_of(request, vid)
        if rec is None:
            return await version_page(request, vid, 409, p.t("ck_not_a_draft"))
        form = await request.form()
        changelog = str(form.get("changelog", "")).strip()
        raw_date = str(form.get("effective_date", "")).strip()
        try:
            effective = date.fromisoformat(raw_date) if raw_date else None
        except ValueError:
            problem = {
                "field": "effective_date",
                "message": p.t("ck_err_date"),
                "where": p.t("ck_effective_date"),
            }
            return await editor(
                request,
                rec,
                rec.data["content"],
                status=422,
                problems=[problem],
                changelog=changelog,
            )
        try:
            await authoring.publish(
                me(request),
                vid,
                changelog=changelog,
                effective_date=effective,
                expect_rev=rec.rev,
            )
        except NotFound:
            raise
        except InvalidInput as exc:
            problem = _problem(p, exc, rec.data["content"])
            return await editor(
                request,
                rec,
                rec.data["content"],
                status=422,
                problems=[problem],
                changelog=changelog,
            )
        except DomainError as exc:
            return await version_page(request, vid, status_of(exc), exc.message)
        return Redirect(f"{BASE}/versions/{quote(vid)}?done=published", status_code=303)

    # --- import -------------------------------------------------------------------------

    @post(f"{BASE}/import", include_in_schema=False, guards=[admin_only])
    async def import_file(request: Request[Any, Any, Any]) -> Any:
        p = presenter(request)
        form = await request.form()
        upload = form.get("file")
        publish_it = form.get("publish") == "on"
        changelog = str(form.get("changelog", "")).strip()
        if not isinstance(upload, UploadFile):
            return await list_page(
                request, 422, {"field": "file", "message": p.t("ck_err_no_file")}
            )
        raw = await upload.read()
        if not raw:
            return await list_page(
                request, 422, {"field": "file", "message": p.t("ck_err_no_file")}
            )
        try:
            parsed = decode_template(raw, upload.filename or "")
        except ChecklistError as exc:
            return await list_page(request, 422, {"field": "file", "message": str(exc)})
        before: dict[str, int] = {}
        try:
            if any(t.id == parsed.key for t in await authoring.list_templates(me(request))):
                before = {
                    v.id: v.rev for v in await authoring.list_versions(me(request), parsed.key)
                }
            rec = await authoring.import_template(
                me(request), parsed, publish=publish_it, changelog=changelog
            )
        except DomainError as exc:
            where = f"{exc.field}: " if exc.field else ""
            return await list_page(
                request, status_of(exc), {"field": "file", "message": where + exc.message}
            )
        done = "unchanged" if before.get(rec.id) == rec.rev else "imported"
        return Redirect(f"{BASE}/versions/{quote(rec.id)}?done={done}", status_code=303)

    return [
        checklists,
        template,
        new_draft,
        diff,
        version,
        retire,
        export_yaml,
        export_json,
        edit,
        save,
        publish,
        import_file,
    ]


_DONE = ("published", "retired", "imported", "unchanged")


def _stage(tpl: StoredRecord) -> StageType:
    return StageType(tpl.data["stage_type"])


def _file(vid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", vid)[:80] or "checklist"


def _sections_view(content: dict[str, Any], p: Presenter) -> list[dict[str, Any]]:
    """A version's content for reading: both languages of every text side by side,
    answer types, limits and evidence rules in words."""
    out = []
    for s in content.get("sections", []):
        items = []
        for i in s.get("items", []):
            limits = ""
            if i.get("min") is not None or i.get("max") is not None:
                limits = p.t(
                    "ck_limits",
                    min=number_text(i.get("min")) or "–",
                    max=number_text(i.get("max")) or "–",
                )
            ev = i.get("evidence")
            items.append(
                {
                    "key": i["key"],
                    "prompt": i.get("prompt", {}),
                    "guidance": i.get("guidance") or {},
                    "answer": p.t(f"ck_answer_{i.get('answer')}"),
                    "options": i.get("options") or [],
                    "limits": limits,
                    "unit": i.get("unit") or "",
                    "required": i.get("required", True),
                    "severity": p.class_name(i.get("severity_hint", "other")),
                    "severity_key": i.get("severity_hint", "other"),
                    "evidence": p.t(
                        "ck_evidence_rule",
                        require=p.t(f"ck_require_{ev['require']}"),
                        answers=", ".join(ev["when_answer_in"]),
                    )
                    if ev
                    else "",
                    "show_if": p.t(
                        "ck_show_if_rule",
                        item=i["show_if"]["item"],
                        answers=", ".join(i["show_if"]["answer_in"]),
                    )
                    if i.get("show_if")
                    else "",
                    "references": i.get("references", []),
                }
            )
        out.append(
            {
                "key": s["key"],
                "title": s.get("title", {}),
                "description": s.get("description") or {},
                "repeatable": s.get("repeatable", False),
                "repeat_label": s.get("repeat_label") or {},
                "items": items,
            }
        )
    return out
