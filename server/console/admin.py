"""The admin's pages for people and places: users, devices and their sync state,
reference data, the audit trail and its verification (docs/console.md).

Every page is for admins only (``admin_only``: a supervisor gets the forbidden page).
The forms call the services the API calls (``Accounts`` for users and devices,
``Registry`` for reference data, the store's audit reads and verification), so the
same rules hold and are audited the same way; a refusal is shown at its form, in the
page's language where the console knows it, else with the service's own words.
"""

from __future__ import annotations

import asyncio
import re
import typing
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from checklists.schema import StageType
from server.console._web import admin_only, page, presenter, status_of
from server.console.present import Presenter
from server.routes.reference import PLURALS
from server.schemas import UserIn, UserPatch
from sync.audit import Actor, read_anchors
from sync.errors import AlreadyExists, DomainError, NotFound
from sync.fielddata import FIELD_KINDS
from sync.models import KIND_TYPES, Principal, Role, StoredRecord

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["REFERENCE_FIELDS", "admin_pages"]

ROLES = tuple(r.value for r in Role)
AUDIT_PAGE = 50
REFERENCE_PAGE = 100
AUDIT_KINDS = (*KIND_TYPES, *FIELD_KINDS, "user", "device", "evidence")

REFERENCE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "authority": (("name", "text"), ("name_zh", "text"), ("level", "choice"), ("province", "text")),
    "organisation": (("name", "text"), ("kind", "choice"), ("country", "text")),
    "site": (
        ("name", "text"),
        ("organisation_id", "organisation"),
        ("province", "text"),
        ("licence_number", "text"),
        ("address", "text"),
        ("country", "text"),
    ),
    "product": (("name", "text"), ("category", "choice"), ("mah_id", "organisation")),
    "chain": (("name", "text"), ("product_id", "product")),
}
"""The form of each reference kind: its fields in order, each a text, a choice (the
struct's ``Literal`` values) or a reference to a record of the named kind (by name)."""

_LINK_FIELDS = ("id", "stage_type", "site_id", "hands_over")
_BLANK_LINKS = 2
_AT = re.compile(r"at `\$\.([A-Za-z_]+(?:\[\d+\])?(?:\.[A-Za-z_]+)?)`")
_MISSING = re.compile(r"missing required field `([A-Za-z_]+)`")


def _choices(kind: str, field: str) -> tuple[str, ...]:
    """The values a ``Literal`` field of a reference kind takes."""
    hint = typing.get_type_hints(KIND_TYPES[kind])[field]
    return tuple(str(v) for v in typing.get_args(hint))


def _err_field(exc: msgspec.ValidationError) -> str:
    """The field a msgspec error names (``links[0].site_id`` style), else ""."""
    text = str(exc)
    at, missing = _AT.search(text), _MISSING.search(text)
    path = at.group(1) if at else ""
    if missing:
        return f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


def _record_name(rec: StoredRecord | None, lang: str) -> str:
    if rec is None:
        return ""
    d = rec.data
    if lang == "zh" and d.get("name_zh"):
        return str(d["name_zh"])
    for key in ("name", "title", "title_en" if lang == "en" else "title_zh", "title_en"):
        if d.get(key):
            return str(d[key])
    return ""


def admin_pages(services: Services, reads: ConsoleReads) -> list[Any]:
    """The route handlers of the admin pages (guarded by ``admin_only``)."""
    guards = [admin_only]
    store = services.store

    async def authority_names(lang: str) -> dict[str, str]:
        rows = await store.list_records("authority", [], limit=10_000, offset=0)
        return {r.id: _record_name(r, lang) for r in rows}

    # --- users -------------------------------------------------------------------

    async def last_seen(p: Presenter) -> dict[str, str]:
        """User id -> the last time one of their tablets was heard from (sign-in,
        pull or push): what the server knows of a user's last activity."""
        latest: dict[str, str] = {}
        for d in await store.list_devices():
            if d.last_seen_at is not None:
                latest[d.user_id] = max(latest.get(d.user_id, ""), d.last_seen_at.isoformat())
        for s in await services.engine.device_states():
            for key in ("last_pull_at", "last_push_at"):
                if s.get(key):
                    latest[s["user_id"]] = max(latest.get(s["user_id"], ""), s[key])
        return {u: p.when(at) for u, at in latest.items()}

    async def users_page(
        request: Request[Any, Any, Any],
        status: int = 200,
        error: str = "",
        error_at: str = "",
        form: dict[str, str] | None = None,
    ) -> Template:
        p = presenter(request)
        authorities = await authority_names(p.t.lang)
        seen = await last_seen(p)
        rows = [
            {
                "id": u.id,
                "username": u.username,
                "display_name": u.display_name,
                "role": p.t(f"role_{u.role.value}"),
                "authority": authorities.get(u.authority_id, u.authority_id),
                "disabled": u.disabled,
                "last_seen": seen.get(u.id, ""),
            }
            for u in await store.list_users()
        ]
        created = request.query_params.get("created", "")
        return page(
            request,
            "admin_users.html",
            p,
            status=status,
            users=rows,
            roles=[(r, p.t(f"role_{r}")) for r in ROLES],
            authorities=sorted(authorities.items(), key=lambda kv: kv[1]),
            error=error,
            error_at=error_at,
            form=form or {},
            done=p.t("adm_user_created", name=created) if created else "",
        )

    @get("/console/admin/users", include_in_schema=False, guards=guards)
    async def users(request: Request[Any, Any, Any]) -> Template:
        return await users_page(request)

    @post("/console/admin/users", include_in_schema=False, guards=guards, status_code=303)
    async def add_user(request: Request[Any, Any, Any]) -> Any:
        form = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        t = presenter(request).t
        fields = ("username", "display_name", "role", "authority_id", "password")
        body = {k: form.get(k, "").strip() for k in fields}
        body["password"] = form.get("password", "")
        try:
            data = msgspec.convert(body, UserIn)
            user = await services.accounts.add_user(
                actor=Actor.of(request.user),
                username=data.username,
                display_name=data.display_name,
                role=data.role,
                authority_id=data.authority_id,
                password=data.password,
            )
        except msgspec.ValidationError as exc:
            at = _err_field(exc)
            return await users_page(request, 422, t(f"adm_bad_{at}"), at, _no_secret(form))
        except AlreadyExists:
            return await users_page(request, 409, t("adm_username_taken"), "username", form)
        except DomainError as exc:
            return await users_page(
                request, status_of(exc), exc.message, exc.field or "", _no_secret(form)
            )
        return Redirect(
            "/console/admin/users?" + urlencode({"created": user.display_name}), status_code=303
        )

    async def user_page(
        request: Request[Any, Any, Any],
        user_id: str,
        status: int = 200,
        error: str = "",
        error_at: str = "",
    ) -> Template:
        p = presenter(request)
        user = await services.accounts.find(user_id)
        authorities = await authority_names(p.t.lang)
        devices = [d for d in await store.list_devices(user.id)]
        done = request.query_params.get("done", "")
        return page(
            request,
            "admin_user.html",
            p,
            status=status,
            u={
                "id": user.id,
                "username": user.username,
                "display_name": user.display_name,
                "role": user.role.value,
                "role_name": p.t(f"role_{user.role.value}"),
                "authority_id": user.authority_id,
                "authority": authorities.get(user.authority_id, user.authority_id),
                "disabled": user.disabled,
                "created": p.when(user.created_at),
                "last_seen": (await last_seen(p)).get(user.id, ""),
                "is_me": isinstance(request.user, Principal) and request.user.user_id == user.id,
            },
            devices=[
                {"name": d.name, "revoked": d.revoked_at is not None, "id": d.id} for d in devices
            ],
            roles=[(r, p.t(f"role_{r}")) for r in ROLES],
            authorities=sorted(authorities.items(), key=lambda kv: kv[1]),
            error=error,
            error_at=error_at,
            done=p.t(f"adm_done_{done}") if done in _USER_ACTIONS else "",
        )

    @get("/console/admin/users/{user_id:str}", include_in_schema=False, guards=guards)
    async def user(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Template:
        return await user_page(request, user_id)

    @post(
        "/console/admin/users/{user_id:str}",
        include_in_schema=False,
        guards=guards,
        status_code=303,
    )
    async def change_user(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Any:
        """One of the user page's forms (``action``): access (role and authority),
        disable, enable, password; one audited change through ``Accounts``."""
        form = await request.form()
        action = str(form.get("action", ""))
        t = presenter(request).t
        target = await services.accounts.find(user_id)
        patch: dict[str, Any] = {}
        if action == "access":
            patch = {
                "role": str(form.get("role", "")),
                "authority_id": str(form.get("authority_id", "")),
            }
        elif action in ("disable", "enable"):
            patch = {"disabled": action == "disable"}
        elif action == "password":
            patch = {"password": str(form.get("password", ""))}
        else:
            return await user_page(request, user_id, 422, t("err_title"))
        try:
            change = msgspec.convert(patch, UserPatch)
            await services.accounts.update_user(
                target.id,
                password=change.password,
                disabled=change.disabled,
                role=change.role,
                authority_id=change.authority_id,
                actor=Actor.of(request.user),
            )
        except msgspec.ValidationError as exc:
            return await user_page(request, user_id, 422, t(f"adm_bad_{_err_field(exc)}"), action)
        except NotFound:
            raise
        except DomainError as exc:
            me = isinstance(request.user, Principal) and request.user.user_id == target.id
            key = {
                ("disabled", True): "adm_no_self_disable",
                ("role", True): "adm_no_self_demote",
                ("disabled", False): "adm_last_admin",
                ("role", False): "adm_last_admin",
            }.get((exc.field or "", me))
            return await user_page(
                request, user_id, status_of(exc), t(key) if key else exc.message, action
            )
        return Redirect(f"/console/admin/users/{quote(target.id)}?done={action}", status_code=303)

    # --- devices -----------------------------------------------------------------

    @get("/console/admin/devices", include_in_schema=False, guards=guards)
    async def devices(request: Request[Any, Any, Any]) -> Template:
        p = presenter(request)
        names = await reads.user_names()
        states = {s["device_id"]: s for s in await services.engine.device_states()}
        rows = []
        for d in await store.list_devices():
            s = states.get(d.id, {})
            skew = s.get("clock_skew_ms")
            rows.append(
                {
                    "id": d.id,
                    "name": d.name,
                    "user": names.get(d.user_id, d.user_id),
                    "user_id": d.user_id,
                    "platform": d.platform,
                    "app_version": s.get("app_version") or d.app_version,
                    "registered": p.when(d.registered_at),
                    "last_seen": p.when(d.last_seen_at),
                    "last_pull": p.when(s.get("last_pull_at")),
                    "last_push": p.when(s.get("last_push_at")),
                    "skew": p.t("adm_skew_s", s=f"{skew / 1000:+.1f}")
                    if skew is not None and s.get("last_push_at")
                    else "",
                    "skew_flagged": bool(s.get("skew_flagged")),
                    "revoked": p.when(d.revoked_at) if d.revoked_at else "",
                }
            )
        rows.sort(key=lambda r: (bool(r["revoked"]), r["user"], r["name"]))
        revoked = request.query_params.get("revoked", "")
        gone = next((r for r in rows if r["id"] == revoked), None)
        return page(
            request,
            "admin_devices.html",
            p,
            devices=rows,
            done=p.t("adm_revoked", device=gone["name"], user=gone["user"]) if gone else "",
        )

    @post(
        "/console/admin/devices/{device_id:str}/revoke",
        include_in_schema=False,
        guards=guards,
        status_code=303,
    )
    async def revoke(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Any:
        """Revoke a tablet: from now on every request with its tokens is refused
        (401 ``device_revoked``), as with ``POST /api/v1/devices/{id}/revoke``."""
        await services.accounts.revoke_device(device_id, Actor.of(request.user))
        return Redirect(
            "/console/admin/devices?" + urlencode({"revoked": device_id}), status_code=303
        )

    # --- reference data ------------------------------------------------------------

    async def names_of(kind: str, lang: str) -> list[tuple[str, str]]:
        rows = await store.list_records(kind, [], limit=10_000, offset=0)
        return sorted(((r.id, _record_name(r, lang) or r.id) for r in rows), key=lambda kv: kv[1])

    async def reference_form(
        kind: str, p: Presenter, values: dict[str, str], links: list[dict[str, str]]
    ) -> dict[str, Any]:
        """What the form of a record of ``kind`` shows: each field with its label,
        input, options (names, not ids) and value."""
        fields = []
        for name, how in REFERENCE_FIELDS[kind]:
            options: list[tuple[str, str]] = []
            if how == "choice":
                options = [(v, p.t(f"rv_{v}")) for v in _choices(kind, name)]
            elif how != "text":
                options = await names_of(how, p.t.lang)
            fields.append(
                {
                    "name": name,
                    "label": p.t(f"rf_{name}"),
                    "how": how,
                    "options": options,
                    "value": values.get(name, ""),
                }
            )
        out: dict[str, Any] = {"fields": fields}
        if kind == "chain":
            stages = await reads.stage_titles(p.t.lang)
            out["stages"] = [(s.value, stages.get(s.value, s.value)) for s in StageType]
            out["sites"] = await names_of("site", p.t.lang)
            out["links"] = [*links, *({} for _ in range(_BLANK_LINKS))]
        return out

    def _summary(kind: str, rec: StoredRecord, p: Presenter, names: dict[str, str]) -> str:
        d = rec.data
        parts: list[str] = []
        if kind == "authority":
            parts = [p.t(f"rv_{d['level']}"), d.get("province") or ""]
        elif kind == "organisation":
            parts = [p.t(f"rv_{d['kind']}"), d.get("country", "")]
        elif kind == "site":
            parts = [names.get(d["organisation_id"], ""), d["province"], d["licence_number"]]
        elif kind == "product":
            parts = [p.t(f"rv_{d['category']}"), names.get(d["mah_id"], "")]
        elif kind == "chain":
            parts = [names.get(d["product_id"], ""), p.t("adm_links_n", n=len(d["links"]))]
        return " · ".join(x for x in parts if x)

    async def reference_page(
        request: Request[Any, Any, Any],
        kind: str,
        status: int = 200,
        error: str = "",
        error_at: str = "",
        values: dict[str, str] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> Template:
        p = presenter(request)
        params = request.query_params
        n = int(params["page"]) if params.get("page", "").isdigit() else 1
        n = max(1, n)
        records, total = await services.registry.list_reference(
            request.user, kind, limit=REFERENCE_PAGE, offset=(n - 1) * REFERENCE_PAGE
        )
        names: dict[str, str] = {}
        for other in ("organisation", "product"):
            names |= dict(await names_of(other, p.t.lang))
        saved = params.get("saved", "")
        return page(
            request,
            "admin_reference.html",
            p,
            status=status,
            kind=kind,
            kinds=[(k, p.t(f"rks_{k}")) for k in PLURALS],
            rows=[
                {
                    "id": r.id,
                    "name": _record_name(r, p.t.lang) or r.id,
                    "summary": _summary(kind, r, p, names),
                }
                for r in records
            ],
            total=total,
            prev_url=f"?kind={kind}&page={n - 1}" if n > 1 else None,
            next_url=f"?kind={kind}&page={n + 1}" if n * REFERENCE_PAGE < total else None,
            form=await reference_form(kind, p, values or {}, links or []),
            error=error,
            error_at=error_at,
            done=p.t("adm_saved", name=saved) if saved else "",
        )

    def _kind(value: str) -> str:
        if value not in PLURALS:
            raise NotFound(f"no reference kind {value!r}")
        return value

    @get("/console/admin/reference", include_in_schema=False, guards=guards)
    async def reference(request: Request[Any, Any, Any]) -> Template:
        kind = request.query_params.get("kind", "authority")
        return await reference_page(request, kind if kind in PLURALS else "authority")

    async def record_page(
        request: Request[Any, Any, Any],
        kind: str,
        record_id: str,
        status: int = 200,
        error: str = "",
        error_at: str = "",
        values: dict[str, str] | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> Template:
        p = presenter(request)
        rec = await services.registry.get_reference(request.user, kind, record_id)
        if values is None:
            values = {k: "" if v is None else str(v) for k, v in rec.data.items() if k != "links"}
            links = [
                {k: str(x.get(k) or "") for k in _LINK_FIELDS} for x in rec.data.get("links", [])
            ]
        return page(
            request,
            "admin_record.html",
            p,
            status=status,
            kind=kind,
            kind_name=p.t(f"rk_{kind}"),
            rec={
                "id": rec.id,
                "rev": values.get("_rev") or str(rec.rev),
                "name": _record_name(rec, p.t.lang) or rec.id,
            },
            form=await reference_form(kind, p, values, links or []),
            error=error,
            error_at=error_at,
        )

    @get(
        "/console/admin/reference/{kind:str}/{record_id:str}",
        include_in_schema=False,
        guards=guards,
    )
    async def record(
        request: Request[Any, Any, Any], kind: FromPath[str], record_id: FromPath[str]
    ) -> Template:
        return await record_page(request, _kind(kind), record_id)

    def _body(kind: str, form: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The record's body from the form: empty optional fields left out (their
        defaults), a chain's links from its rows (a row left empty is no link)."""
        hints = msgspec.structs.fields(KIND_TYPES[kind])
        body: dict[str, Any] = {}
        for f in hints:
            if f.name == "links":
                continue
            value = form.get(f.name, "").strip()
            if value:
                body[f.name] = value
        links: list[dict[str, str]] = []
        if kind == "chain":
            n = 0
            while f"link-{n}-site_id" in form:
                row = {k: form.get(f"link-{n}-{k}", "").strip() for k in _LINK_FIELDS}
                n += 1
                if any(row[k] for k in ("id", "site_id", "hands_over")):
                    links.append(row)
            body["links"] = [
                {k: v for k, v in {**x, "id": x["id"] or f"link-{i + 1}"}.items() if v}
                for i, x in enumerate(links)
            ]
        return body, links

    async def save_reference(
        request: Request[Any, Any, Any], kind: str, record_id: str | None
    ) -> Any:
        form = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        t = presenter(request).t
        body, links = _body(kind, form)

        async def again(status: int, error: str, at: str) -> Template:
            if record_id is None:
                return await reference_page(request, kind, status, error, at, form, links)
            return await record_page(
                request,
                kind,
                record_id,
                status,
                error,
                at,
                {**form, "_rev": form.get("rev", "")},
                links,
            )

        try:
            data = msgspec.convert(body, KIND_TYPES[kind])
            if record_id is None:
                rec = await services.registry.create_reference(request.user, kind, None, data)
            else:
                rev = form.get("rev", "")
                rec = await services.registry.replace_reference(
                    request.user, kind, record_id, data, int(rev) if rev.isdigit() else None
                )
        except msgspec.ValidationError as exc:
            at = _err_field(exc)
            return await again(422, t("adm_bad_value", field=_label(t, at)), at)
        except NotFound:
            raise
        except DomainError as exc:
            if exc.code == "revision_mismatch":
                return await again(412, t("adm_changed_meanwhile"), "")
            return await again(status_of(exc), exc.message, exc.field or "")
        name = _record_name(rec, t.lang) or rec.id
        return Redirect(
            "/console/admin/reference?" + urlencode({"kind": kind, "saved": name}),
            status_code=303,
        )

    @post(
        "/console/admin/reference/{kind:str}",
        include_in_schema=False,
        guards=guards,
        status_code=303,
    )
    async def create_record(request: Request[Any, Any, Any], kind: FromPath[str]) -> Any:
        return await save_reference(request, _kind(kind), None)

    @post(
        "/console/admin/reference/{kind:str}/{record_id:str}",
        include_in_schema=False,
        guards=guards,
        status_code=303,
    )
    async def replace_record(
        request: Request[Any, Any, Any], kind: FromPath[str], record_id: FromPath[str]
    ) -> Any:
        return await save_reference(request, _kind(kind), record_id)

    # --- the audit trail -----------------------------------------------------------

    async def audit_rows(
        chosen: dict[str, str], after: int, p: Presenter
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of events after ``after``: those the store filters (kind, record,
        inspection, as the API), and of those, when a user or dates are chosen, the ones
        by that user and received on those days (in the reader's zone), read on in
        batches of at most ``_SCAN`` events. Returns the rows, the id to go on from,
        and whether there may be more."""
        where = {
            "kind": chosen.get("kind"),
            "record_id": chosen.get("record"),
            "inspection_id": chosen.get("inspection"),
        }
        who = chosen.get("user")
        start, end = _day(chosen.get("from"), p), _day(chosen.get("to"), p, 1)
        if not (who or start or end):
            rows = await store.audit_events(**where, after_id=after, limit=AUDIT_PAGE)
            return rows, rows[-1]["id"] if rows else after, len(rows) == AUDIT_PAGE
        rows = []
        cursor, read = after, 0
        while read < _SCAN:
            batch = await store.audit_events(**where, after_id=cursor, limit=_BATCH)
            for e in batch:
                cursor, read = e["id"], read + 1
                at = _received(e)
                if (
                    (not who or e.get("user_id") == who)
                    and (start is None or (at is not None and at >= start))
                    and (end is None or (at is not None and at < end))
                ):
                    rows.append(e)
                    if len(rows) == AUDIT_PAGE:
                        return rows, cursor, True
            if len(batch) < _BATCH:
                return rows, cursor, False
        return rows, cursor, True

    async def audit_page(
        request: Request[Any, Any, Any], verification: dict[str, Any] | None = None
    ) -> Template:
        p = presenter(request)
        params = request.query_params
        chosen = {k: params[k] for k in _AUDIT_FILTERS if params.get(k)}
        after = int(params["after"]) if params.get("after", "").isdigit() else 0
        rows, cursor, more = await audit_rows(chosen, after, p)
        users = {**await reads.user_names(), "system": p.t("adm_system")}
        devices = await reads.device_names()
        names: dict[str, str] = dict(users)
        for kind in PLURALS:
            names |= dict(await names_of(kind, p.t.lang))
        stages = await reads.stage_titles(p.t.lang)
        refs = sorted(
            {
                (e["kind"], e["record_id"])
                for e in rows
                if e["kind"] in KIND_TYPES or e["kind"] in FIELD_KINDS
            }
        )
        inspections, _ = await services.registry.list_inspections(
            request.user, [], limit=10_000, offset=0
        )
        titles = {i.id: str(i.data.get("title") or i.id) for i in inspections}
        found = await store.read_batch(lambda tx: tx.get_records(refs)) if refs else {}
        events = []
        for e in rows:
            kind, rid = e["kind"], e["record_id"]
            entity = (
                users.get(rid)
                if kind == "user"
                else devices.get(rid)
                if kind == "device"
                else _record_name(found.get((kind, rid)), p.t.lang)
            ) or rid
            events.append(
                {
                    "id": e["id"],
                    "kind": p.t(f"ak_{kind}") if f"ak_{kind}" in p.t.catalogue else kind,
                    "entity": entity,
                    "history_url": "/console/admin/audit?"
                    + urlencode({"kind": e["kind"], "record": e["record_id"]}),
                    "inspection": titles.get(e.get("inspection_id") or "", ""),
                    **reads._event(_plain(e, p, names, stages), users, devices, p, titles),
                }
            )
            for change in events[-1]["changes"]:  # a checklist's whole content is no line
                if len(change["text"]) > _LONG:
                    change["text"] = change["text"][:_LONG] + "…"
        head = await store.audit_head()

        def url(**extra: str) -> str:
            return "/console/admin/audit?" + urlencode({**chosen, **extra})

        return page(
            request,
            "admin_audit.html",
            p,
            events=events,
            chosen=chosen,
            kinds=[(k, p.t(f"ak_{k}")) for k in AUDIT_KINDS],
            inspections=sorted(titles.items(), key=lambda kv: kv[1]),
            first_url=url() if after else None,
            next_url=url(after=str(cursor)) if more else None,
            searched_to=cursor if more and len(rows) < AUDIT_PAGE else None,
            users=sorted(users.items(), key=lambda kv: kv[1]),
            newest_url=(
                url(after=str(max(0, head[0] - AUDIT_PAGE)))
                if head and not chosen and head[0] > after + AUDIT_PAGE
                else None
            ),
            total=head[0] if head else 0,
            v=verification,
        )

    @get("/console/admin/audit", include_in_schema=False, guards=guards)
    async def audit(request: Request[Any, Any, Any]) -> Template:
        return await audit_page(request)

    @post("/console/admin/audit/verify", include_in_schema=False, guards=guards, status_code=200)
    async def verify(request: Request[Any, Any, Any]) -> Template:
        """The same check as ``inspectsync audit verify`` and ``GET /api/v1/audit/verify``:
        the whole hash chain, and the anchors written down beside the database."""
        p = presenter(request)
        anchors = await asyncio.to_thread(read_anchors, services.settings.anchors_file)
        found = await store.verify_audit(anchors)
        return await audit_page(
            request,
            {
                "ok": found.ok,
                "text": p.t(
                    "adm_verify_ok" if found.ok else "adm_verify_bad",
                    checked=found.checked,
                    anchors=found.anchors_checked,
                    of=len(anchors),
                    last=found.last_id,
                    bad=found.first_bad_id or "",
                ),
                "problem": found.problem or "",
                "head": found.head,
            },
        )

    @get("/console/admin/audit/verify", include_in_schema=False, guards=guards)
    async def verify_again(request: Request[Any, Any, Any]) -> Redirect:
        """The result's address asked for again (the language switch, a reload):
        back to the trail; verifying is the button."""
        return Redirect("/console/admin/audit")

    return [
        verify_again,
        users,
        add_user,
        user,
        change_user,
        devices,
        revoke,
        reference,
        record,
        create_record,
        replace_record,
        audit,
        verify,
    ]


_AUDIT_FILTERS = ("kind", "record", "inspection", "user", "from", "to")
_BATCH = 1000
_SCAN = 20_000
"""Events read for one page of a user or date filter (the API filters neither)."""
_REF_FIELDS = ("authority_id", "organisation_id", "mah_id", "product_id", "site_id")
_LONG = 300
"""Characters of a change shown in the trail (the API's history of the record has all)."""
_USER_ACTIONS = ("access", "disable", "enable", "password")


def _plain(
    e: dict[str, Any], p: Presenter, names: dict[str, str], stages: dict[str, str]
) -> dict[str, Any]:
    """An audit event with its values in words: who created, published or raised
    something by name; for users, devices and reference records also roles, levels,
    kinds and categories by their words, referenced records by name (authority,
    organisation, holder, product, site), a chain's links as stage at site, times in
    the reader's zone."""
    everything = e.get("kind") in ("user", "device", *PLURALS)

    def words(text: Any) -> Any:
        try:
            values = msgspec.json.decode(text) if isinstance(text, str) and text else None
        except msgspec.DecodeError:
            return text
        if not isinstance(values, dict):
            return text
        for key, value in values.items():
            if not isinstance(value, str):
                continue
            if key.endswith("_by"):  # who created, published, raised it
                values[key] = names.get(value, value)
            elif key.endswith("_at"):
                values[key] = p.when(value)
            elif not everything:
                continue
            elif key == "role" and value in ROLES:
                values[key] = p.t(f"role_{value}")
            elif key in _REF_FIELDS:
                values[key] = names.get(value, value)
            elif key in ("level", "kind", "category") and f"rv_{value}" in p.t.catalogue:
                values[key] = p.t(f"rv_{value}")
        if everything and isinstance(values.get("links"), list):
            values["links"] = [
                p.t(
                    "adm_link_at",
                    stage=stages.get(str(x.get("stage_type")), str(x.get("stage_type"))),
                    site=names.get(str(x.get("site_id")), str(x.get("site_id"))),
                )
                for x in values["links"]
                if isinstance(x, dict)
            ]
        return values

    return {**e, "old": words(e.get("old")), "new": words(e.get("new"))}


def _day(value: str | None, p: Presenter, plus: int = 0) -> datetime | None:
    """The start of that day (``plus`` days later) in the reader's zone, or None."""
    try:
        d = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    if d is None:
        return None
    return datetime.combine(d + timedelta(days=plus), time(), tzinfo=p.tz)


def _received(e: dict[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(e.get("received_at") or ""))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _no_secret(form: dict[str, str]) -> dict[str, str]:
    """The form shown again: never with the password typed."""
    return {k: v for k, v in form.items() if k != "password"}


def _label(t: Any, field: str) -> str:
    base = field.rsplit(".", 1)[-1]
    return t(f"rf_{base}") if f"rf_{base}" in t.catalogue else field
