"""The admin's pages for people and places: users, devices and their sync state,
reference data, the audit trail and its verification (docs/console.md).

Every page is for admins only (``admin_only``: a supervisor gets the forbidden page).
Each page handler gathers its context with one call into
:class:`server.console.admin_reads.AdminReads`; each form handler checks the form with
the API's own msgspec struct and calls the service the API calls (``Accounts`` for
users and devices, ``Registry`` for reference data, the store's audit verification),
so the same rules hold and are audited the same way. A refusal is shown at its form, in
the page's language where the console knows it, else in the service's own words.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from server.console._web import admin_only, page, presenter, status_of
from server.console.admin_reads import AUDIT_FILTERS, LINK_FIELDS, AdminReads, record_name
from server.routes.reference import PLURALS
from server.schemas import UserIn, UserPatch
from sync.audit import Actor, read_anchors
from sync.errors import AlreadyExists, DomainError, NotFound
from sync.models import KIND_TYPES, Principal

if TYPE_CHECKING:
    from server.app import Services
    from server.console.reads import ConsoleReads

__all__ = ["admin_pages"]

_USER_ACTIONS = ("access", "disable", "enable", "password")
_AT = re.compile(r"at `\$\.([A-Za-z_]+(?:\[\d+\])?(?:\.[A-Za-z_]+)?)`")
_MISSING = re.compile(r"missing required field `([A-Za-z_]+)`")


def admin_pages(services: Services, reads: ConsoleReads) -> list[Any]:
    """The route handlers of the admin pages (guarded by ``admin_only``)."""
    guards = [admin_only]
    admin = AdminReads(services, reads)

    # --- users -------------------------------------------------------------------

    async def users_page(
        request: Request[Any, Any, Any],
        status: int = 200,
        error: str = "",
        error_at: str = "",
        form: dict[str, str] | None = None,
    ) -> Template:
        p = presenter(request)
        created = request.query_params.get("created", "")
        return page(
            request,
            "admin_users.html",
            p,
            status=status,
            **await admin.users(p),
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
        """Create a user, as ``POST /api/v1/users`` (its ``UserIn`` checks the form)."""
        form = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        t = presenter(request).t
        fields = ("username", "display_name", "role", "authority_id")
        body = {k: form.get(k, "").strip() for k in fields} | {"password": form.get("password")}
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
        done = request.query_params.get("done", "")
        return page(
            request,
            "admin_user.html",
            p,
            status=status,
            **await admin.user(request.user, user_id, p),
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
        disable, enable, password; one audited change, as ``PATCH /api/v1/users/{id}``."""
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
            # the service's rules: not oneself (else the last active admin)
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
        rows = await admin.devices(p)
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
        n = max(1, int(params["page"])) if params.get("page", "").isdigit() else 1
        saved = params.get("saved", "")
        return page(
            request,
            "admin_reference.html",
            p,
            status=status,
            kind=kind,
            **await admin.reference_list(request.user, kind, n, p),
            form=await admin.reference_form(kind, p, values or {}, links or []),
            error=error,
            error_at=error_at,
            done=p.t("adm_saved", name=saved) if saved else "",
        )

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
        typed: tuple[dict[str, str], list[dict[str, str]]] | None = None,
    ) -> Template:
        """A record's form: as stored, or (``typed``) as the admin sent it, with the
        revision the form was opened at."""
        p = presenter(request)
        head, values, links = await admin.record(request.user, kind, record_id, p)
        if typed is not None:
            values, links = typed
            head = {**head, "rev": values.get("rev", "")}
        return page(
            request,
            "admin_record.html",
            p,
            status=status,
            kind=kind,
            kind_name=p.t(f"rk_{kind}"),
            rec=head,
            form=await admin.reference_form(kind, p, values, links),
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

    async def save_reference(
        request: Request[Any, Any, Any], kind: str, record_id: str | None
    ) -> Any:
        """Create or replace a record through the ``Registry``, as the API: the kind's
        struct checks the form, the registry the references; ``rev`` is the If-Match."""
        form = {k: str(v) for k, v in (await request.form()).items() if k != "_csrf"}
        t = presenter(request).t
        body, links = _body(kind, form)

        async def again(status: int, error: str, at: str) -> Template:
            if record_id is None:
                return await reference_page(request, kind, status, error, at, form, links)
            return await record_page(request, kind, record_id, status, error, at, (form, links))

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
                return await record_page(
                    request, kind, str(record_id), 412, t("adm_changed_meanwhile")
                )
            return await again(status_of(exc), exc.message, exc.field or "")
        name = record_name(rec, t.lang) or rec.id
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

    async def audit_page(
        request: Request[Any, Any, Any], verification: dict[str, Any] | None = None
    ) -> Template:
        p = presenter(request)
        params = request.query_params
        chosen = {k: params[k] for k in AUDIT_FILTERS if params.get(k)}
        after = int(params["after"]) if params.get("after", "").isdigit() else 0
        return page(
            request,
            "admin_audit.html",
            p,
            **await admin.audit(request.user, chosen, after, p),
            chosen=chosen,
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
        found = await services.store.verify_audit(anchors)
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
        verify_again,
    ]


def _kind(value: str) -> str:
    if value not in PLURALS:
        raise NotFound(f"no reference kind {value!r}")
    return value


def _err_field(exc: msgspec.ValidationError) -> str:
    """The field a msgspec error names (``links[0].site_id`` style), else ""."""
    text = str(exc)
    at, missing = _AT.search(text), _MISSING.search(text)
    path = at.group(1) if at else ""
    if missing:
        return f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


def _body(kind: str, form: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A reference record's body from its form: empty fields left out (their defaults,
    or missing if required), a chain's links from its rows (a row left empty is no
    link; a link without a key gets one from its position). Also the rows as typed."""
    body: dict[str, Any] = {}
    for f in msgspec.structs.fields(KIND_TYPES[kind]):
        value = form.get(f.name, "").strip()
        if value and f.name != "links":
            body[f.name] = value
    links: list[dict[str, str]] = []
    if kind == "chain":
        n = 0
        while f"link-{n}-site_id" in form:
            row = {k: form.get(f"link-{n}-{k}", "").strip() for k in LINK_FIELDS}
            n += 1
            if any(row[k] for k in ("id", "site_id", "hands_over")):
                links.append(row)
        body["links"] = [
            {k: v for k, v in {**x, "id": x["id"] or f"link-{i + 1}"}.items() if v}
            for i, x in enumerate(links)
        ]
    return body, links


def _no_secret(form: dict[str, str]) -> dict[str, str]:
    """The form shown again: never with the password typed."""
    return {k: v for k, v in form.items() if k != "password"}


def _label(t: Any, field: str) -> str:
    base = field.rsplit(".", 1)[-1]
    return t(f"rf_{base}") if f"rf_{base}" in t.catalogue else field
