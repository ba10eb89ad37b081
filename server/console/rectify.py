"""The console's rectification (整改 / CAPA) forms, on the finding page.

Supervisors work only in the browser, so the console enters what the API takes
(``PUT /api/v1/rectifications/{id}/response``, ``POST .../assessments``) through the same
service, :class:`sync.rectification.Rectifications`: the company's response, entered by
staff for it (the company has no login), and the staff's assessment.

Evidence files reach the same evidence store as everywhere else, by SHA-256, with
``purpose=rectification`` (so a closed inspection still takes them):

- with the page's script, through tus (``/console/uploads``: the API's tus rules in
  :class:`sync.uploads.Uploads`, with the console's session and a CSRF header instead of
  a bearer token; the tus-js-client bundle the app uses, from ``/app/vendor/tus.js``);
  the form then carries the stored files' hashes (``evidence``);
- without script, as a plain file input posted with the form (multipart): each file is
  hashed here and stored through the same ``Uploads`` (create, then its bytes as one
  chunk), so the same checks apply (type by its bytes, size, quota, the hash).

A problem is shown at the field at fault, in the page's language: the service's field
(``root_cause``, ``completion_date``, ``evidence_hashes[n]``...) maps to the form's.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template

from server.console._web import presenter, signed_in
from server.console._web import status_of as _status
from server.console.present import Presenter
from server.problems import localised
from sync.errors import DomainError, NotFound
from sync.models import Principal, Role
from sync.rectification import ZONE, Assessment, Response, days_overdue, is_overdue

if TYPE_CHECKING:
    from server.app import Services

__all__ = ["RECT_FIELDS", "rectification_pages", "rectification_view"]

RECT_FIELDS = ("submitted_by", "root_cause", "actions", "completion_date", "files")
"""The response form's fields, in the order a problem is looked for."""

_CHUNK = 1 << 20

FindingPage = Callable[..., Awaitable[Template]]


def _said(exc: DomainError, lang: str) -> str:
    """The service's refusal in the page's language: its own words in English, the
    problem catalogue's in Chinese (as the other console forms)."""
    if lang == "zh":
        return localised(exc.code, "zh", {"field": exc.field, **exc.extra})[1] or exc.message
    return exc.message


def _form_field(field: str | None) -> str:
    """The form field a service's problem is about."""
    if not field:
        return "_form"
    if field.startswith(("evidence_hashes", "Upload-", "body", "Content-")):
        return "files"
    return field if field in (*RECT_FIELDS, "outcome", "comment") else "_form"


# --- what the page shows ----------------------------------------------------------


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


async def _files(services: Services, hashes: list[str], iid: str, fid: str) -> list[dict[str, Any]]:
    out = []
    for sha in hashes:
        ev = await services.store.get_evidence(sha)
        name = ""
        for ref in await services.store.evidence_refs(sha) if ev else []:
            if ref.inspection_id == iid and ref.filename_hint:
                name = ref.filename_hint
        url = f"/console/rectifications/{quote(fid)}/evidence/{sha}"
        out.append(
            {
                "sha256": sha,
                "name": name or (ev.filename_hint if ev else "") or sha[:12],
                "media_type": ev.media_type if ev else "",
                "size": _size(ev.size if ev else 0),
                "url": url,
                "thumbnail": f"{url}/thumbnail" if ev and ev.thumbnail else "",
                "lost": bool(ev and ev.lost_at is not None),
            }
        )
    return out


async def rectification_view(
    services: Services, principal: Principal, f: dict[str, Any], p: Presenter
) -> dict[str, Any] | None:
    """The finding page's rectification section: None unless the finding is accepted;
    else its status, deadline, the company's responses and the assessments in the order
    they came, and what this person may enter."""
    if f["status"] != "accepted":
        return None
    iid, fid = f["inspection"]["id"], f["id"]
    rows = await services.rectifications.of_inspection(principal, iid)
    row = next((r for r in rows if r["finding_id"] == fid), None)
    if row is None:
        return None
    rec = await services.rectifications.record(principal, fid)
    data = rec.data if rec else {}
    responses = [*(data.get("earlier_responses") or []), row["response"]]
    responses = [r for r in responses if r]
    assessments = row["assessments"]
    history: list[dict[str, Any]] = []
    for k in range(len(assessments) + 1):
        for n, r in enumerate(responses):
            if int(r.get("after_assessments", 0)) == k:
                history.append(
                    {
                        "kind": "response",
                        "current": n == len(responses) - 1,
                        "head": p.t("rf_response_head", who=r["submitted_by"]),
                        "entered": p.t(
                            "rf_entered_by", name=r["entered_by_name"], at=p.when(r["entered_at"])
                        ),
                        "root_cause": r["root_cause"],
                        "actions": r["actions"],
                        "completion_date": r["completion_date"],
                        "files": await _files(services, r.get("evidence_hashes") or [], iid, fid),
                    }
                )
        if k < len(assessments):
            a = assessments[k]
            history.append(
                {
                    "kind": "assessment",
                    "outcome": a["outcome"],
                    "head": p.t(
                        "rf_assessment_head",
                        outcome=p.t(f"rect_out_{a['outcome']}"),
                        name=a["by_name"],
                        at=p.when(a["at"]),
                    ),
                    "comment": a["comment"],
                }
            )
    now = services.clock.now()
    due = date.fromisoformat(row["deadline"])
    if row["status"] == "accepted":
        timing = ""
    elif is_overdue(due, now):
        timing = p.t("rf_overdue", n=days_overdue(due, now))
    else:
        left = (due - now.astimezone(ZONE).date()).days
        timing = p.t("rf_on_time", n=left) if left else p.t("rf_due_today")
    current = row["response"] or {}
    return {
        "status": row["status"],
        "status_label": p.t(f"rect_st_{row['status']}"),
        "deadline": row["deadline"],
        "accepted_at": p.when(row["accepted_at"]),
        "overdue": bool(row["overdue"]),
        "timing": timing,
        "rev": row["rev"],
        "history": history,
        "current_files": await _files(services, current.get("evidence_hashes") or [], iid, fid),
        "has_response": bool(row["response"]),
        "open": row["status"] != "accepted",
        # as the service: the lead authority's supervisors (inspectors have no console)
        "may_enter": principal.role is Role.SUPERVISOR and f.get("is_lead", False),
        "inspection_id": iid,
        "max_mb": services.settings.evidence_max_file_bytes // 1_000_000,
    }


# --- storing a posted file ------------------------------------------------------------


async def _store_posted(
    services: Services, principal: Principal, inspection_id: str, file: UploadFile
) -> str:
    """Store one file of a plain form post through the same uploads as tus (the bytes
    hashed here first, as a tus client would announce them); its SHA-256."""
    hasher = hashlib.sha256()
    length = 0
    while piece := await file.read(_CHUNK):
        hasher.update(piece)
        length += len(piece)
    await file.seek(0)
    sha = hasher.hexdigest()
    up = await services.uploads.create(
        principal,
        length,
        {
            "sha256": sha,
            "inspection_id": inspection_id,
            "filename": (file.filename or "")[-255:],
            "purpose": "rectification",
        },
    )

    async def chunks() -> AsyncIterator[bytes]:
        while piece := await file.read(_CHUNK):
            yield piece

    await services.uploads.append(principal, up.id, 0, chunks(), declared_length=length)
    return sha


# --- the forms ------------------------------------------------------------------------


def rectification_pages(services: Services, finding_page: FindingPage) -> list[HTTPRouteHandler]:
    """The response and assessment forms and the files of responses;
    ``finding_page(request, finding_id, status, **context)`` shows the finding page
    again with the problems at their fields."""
    max_body = services.settings.evidence_max_file_bytes * 4 + 1_000_000

    async def inspection_of(principal: Principal, finding_id: str) -> str:
        rec = await services.store.get_record("finding", finding_id)
        if rec is None:
            raise NotFound(f"no finding {finding_id!r}")
        await services.rectifications.of_inspection(principal, rec.data["inspection_id"])
        return str(rec.data["inspection_id"])

    def done(finding_id: str, what: str) -> Redirect:
        return Redirect(
            f"/console/findings/{quote(finding_id)}?rect={what}#rectification", status_code=303
        )

    @post(
        "/console/findings/{finding_id:str}/rectification/response",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
        request_max_body_size=max_body,
    )
    async def respond(request: Request[Any, Any, Any], finding_id: FromPath[str]) -> Any:
        t = presenter(request).t
        form = await request.form()
        values = {k: str(form.get(k, "")).strip() for k in RECT_FIELDS if k != "files"}
        keep = [str(h) for h in form.getall("keep")] if "keep" in form else []
        carried = [str(h) for h in form.getall("evidence")] if "evidence" in form else []
        files = [
            f
            for f in (form.getall("files") if "files" in form else [])
            if isinstance(f, UploadFile) and f.filename
        ]
        errors: dict[str, str] = {}
        for k in ("submitted_by", "root_cause", "actions", "completion_date"):
            if not values[k]:
                errors[k] = t("rf_err_required")
        if values["completion_date"] and "completion_date" not in errors:
            try:
                date.fromisoformat(values["completion_date"])
            except ValueError:
                errors["completion_date"] = t("rf_err_date")
        iid = await inspection_of(request.user, finding_id)

        async def again(status: int) -> Template:
            shown = {**values, "evidence": list(dict.fromkeys(carried)), "keep": keep}
            return await finding_page(
                request, finding_id, status, rect_errors=errors, rect_form=shown
            )

        if errors:
            return await again(422)
        for file in files:
            try:
                carried.append(await _store_posted(services, request.user, iid, file))
            except NotFound:
                raise
            except DomainError as exc:
                errors["files"] = t("rf_err_file", name=file.filename, problem=_said(exc, t.lang))
                return await again(_status(exc))
        try:
            body = msgspec.convert(
                {
                    **{k: values[k] for k in ("submitted_by", "root_cause", "actions")},
                    "completion_date": values["completion_date"],
                    "evidence_hashes": list(dict.fromkeys([*keep, *carried])),
                    "expect_rev": int(str(form.get("rev")))
                    if str(form.get("rev", "")).isdigit()
                    else None,
                },
                Response,
            )
        except msgspec.ValidationError as exc:
            # msgspec names the path (``... - at `$.submitted_by```): too long, or no date
            at = str(exc).rpartition("$.")[2].split("[")[0].rstrip("`")
            errors[_form_field(at)] = t("rf_err_invalid")
            return await again(422)
        try:
            await services.rectifications.respond(request.user, finding_id, body)
        except NotFound:
            raise
        except DomainError as exc:
            if exc.code == "revision_mismatch":
                errors["_form"] = t("rf_err_changed")
            else:
                errors[_form_field(exc.field)] = _said(exc, t.lang)
            return await again(_status(exc))
        return done(finding_id, "responded")

    @post(
        "/console/findings/{finding_id:str}/rectification/assessments",
        include_in_schema=False,
        guards=[signed_in],
        status_code=303,
    )
    async def assess(request: Request[Any, Any, Any], finding_id: FromPath[str]) -> Any:
        t = presenter(request).t
        form = await request.form()
        values = {k: str(form.get(k, "")).strip() for k in ("outcome", "comment")}
        errors: dict[str, str] = {}
        if values["outcome"] not in ("accepted", "more_needed"):
            errors["outcome"] = t("rf_err_outcome")
        if not values["comment"]:
            errors["comment"] = t("rf_err_required")
        iid = await inspection_of(request.user, finding_id)

        async def again(status: int) -> Template:
            return await finding_page(
                request, finding_id, status, assess_errors=errors, assess_form=values
            )

        if errors:
            return await again(422)
        rev = str(form.get("rev", ""))
        body = Assessment(
            outcome=values["outcome"],  # type: ignore[arg-type]
            comment=values["comment"],
            expect_rev=int(rev) if rev.isdigit() else None,
        )
        try:
            await services.rectifications.assess(request.user, finding_id, body)
        except NotFound:
            raise
        except DomainError as exc:
            if exc.code == "revision_mismatch":
                errors["_form"] = t("rf_err_changed")
            elif exc.code == "invalid_input" and exc.field == "outcome":
                # two refusals share the field: say which, from where it stands now
                rows = await services.rectifications.of_inspection(request.user, iid)
                now = next((r["status"] for r in rows if r["finding_id"] == finding_id), "")
                errors["outcome"] = t(
                    "rf_closed" if now == "accepted" else "rf_no_response_to_assess"
                )
            else:
                errors[_form_field(exc.field)] = _said(exc, t.lang)
            return await again(_status(exc))
        return done(finding_id, "assessed")

    async def _file(
        request: Request[Any, Any, Any], finding_id: str, sha: str, thumb: bool
    ) -> Stream:
        ev = await services.rectifications.evidence_file(request.user, finding_id, sha)
        blobs = services.uploads.thumbnails if thumb else services.uploads.blobs
        size = None
        if ev.lost_at is None and (ev.thumbnail or not thumb):
            size = await blobs.size(ev.sha256)
        if size is None:
            raise NotFound(f"evidence {sha} is not available")
        return Stream(
            blobs.read_range(ev.sha256),
            media_type="image/jpeg" if thumb else ev.media_type,
            headers={
                "Content-Length": str(size),
                "Cache-Control": "private, no-cache",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                "media-src 'self'; sandbox",
                "ETag": f'"{ev.sha256}{".thumb" if thumb else ""}"',
            },
        )

    @get(
        "/console/rectifications/{finding_id:str}/evidence/{sha256:str}",
        include_in_schema=False,
        guards=[signed_in],
        opt={"skip_compression": True},
    )
    async def evidence(
        request: Request[Any, Any, Any], finding_id: FromPath[str], sha256: FromPath[str]
    ) -> Stream:
        return await _file(request, finding_id, sha256, thumb=False)

    @get(
        "/console/rectifications/{finding_id:str}/evidence/{sha256:str}/thumbnail",
        include_in_schema=False,
        guards=[signed_in],
        opt={"skip_compression": True},
    )
    async def thumbnail(
        request: Request[Any, Any, Any], finding_id: FromPath[str], sha256: FromPath[str]
    ) -> Stream:
        return await _file(request, finding_id, sha256, thumb=True)

    return [respond, assess, evidence, thumbnail]
