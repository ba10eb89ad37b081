"""What each console page shows, gathered from the engine's services.

Every read goes through a service that applies the principal's scope
(:class:`sync.review.Review`, :class:`sync.engine.SyncEngine`,
:class:`sync.reports.Reports`, :class:`sync.uploads.Uploads`): what the API would answer
404 for, a page answers 404 for. The results are plain dicts and lists for the
templates; names replace ids here (users, devices, sites, products, stages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from server.console.present import Presenter
from sync.access import can_see_inspection
from sync.conclusion import CONCLUSIONS
from sync.errors import NotFound
from sync.fielddata import (
    CLASSIFICATION_LABELS,
    FINDING_STATUSES,
    answers_by_link,
    parse_response_id,
    required_items,
)
from sync.models import InspectionStatus, Principal, Role, StoredRecord
from sync.registry import TRANSITIONS
from sync.reports import Dossier, Reports, find_item
from sync.review import DECIDED, QueueQuery

if TYPE_CHECKING:
    from server.app import Services

__all__ = ["SORTS", "ConsoleReads"]

SORTS = ("severity", "-updated", "updated", "-raised", "raised", "site")
_REVIEWABLE = ("in_progress", "fieldwork_done", "under_review")


def _text(t: Any, lang: str) -> str:
    """A bilingual text (``{"en", "zh"}`` or a ``Text``) in ``lang``, else the other."""
    if t is None:
        return ""
    en = getattr(t, "en", None) if not isinstance(t, dict) else t.get("en")
    zh = getattr(t, "zh", None) if not isinstance(t, dict) else t.get("zh")
    first, second = (zh, en) if lang == "zh" else (en, zh)
    return str(first or second or "")


class ConsoleReads:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.reports = Reports(services.store, services.clock)

    # --- names -----------------------------------------------------------------

    async def user_names(self) -> dict[str, str]:
        return {u.id: u.display_name for u in await self.s.store.list_users()}

    async def device_names(self) -> dict[str, str]:
        return {d.id: d.name for d in await self.s.store.list_devices()}

    async def stage_titles(self, lang: str) -> dict[str, str]:
        """Stage type -> its template's title in ``lang``."""
        rows = await self.s.authoring.list_templates(_NOBODY)
        return {
            r.data["stage_type"]: (r.data["title_zh"] if lang == "zh" else r.data["title_en"])
            or r.data["title_en"]
            for r in rows
        }

    # --- the review queue --------------------------------------------------------

    async def queue(self, principal: Principal, q: QueueQuery, p: Presenter) -> dict[str, Any]:
        found = await self.s.review.queue(principal, q)
        users = await self.user_names()
        stages = await self.stage_titles(p.t.lang)
        inspections, _ = await self.s.registry.list_inspections(principal, [], limit=500, offset=0)
        inspectors = sorted(
            {u for i in inspections for u in i.data.get("team_user_ids", [])},
            key=lambda u: users.get(u, u),
        )
        sites, _ = await self.s.registry.list_reference(principal, "site", limit=500, offset=0)
        products, _ = await self.s.registry.list_reference(
            principal, "product", limit=500, offset=0
        )
        rows = []
        for it in found.rows:
            disputed = it["shown_classification"] == "disputed"
            badge = p.classification(it["classification"], disputed=disputed)
            rows.append(
                {
                    **it,
                    "badge": badge,
                    "original": (
                        p.class_name(it["original_classification"])
                        if it.get("original_classification")
                        else ""
                    ),
                    "raised_by_name": users.get(it["raised_by"] or "", it["raised_by"] or ""),
                    "raised": p.when(it["raised_at"]),
                    "updated": p.when(it["updated_at"]),
                    "stages": [stages.get(s, s) for s in it["stage_types"]],
                    "conflict_fields": [p.t(f"field_{f}") for f in it["open_conflicts"]],
                }
            )
        return {
            "rows": rows,
            "total": found.total,
            "stamp": f"{found.total}:{found.latest}",
            "counts": found.counts,
            "options": {
                "product": [(r.id, r.data["name"]) for r in products],
                "site": [(r.id, r.data["name"]) for r in sites],
                "stage": sorted(stages.items(), key=lambda kv: kv[1]),
                "classification": [
                    *((c, p.class_name(c)) for c in CLASSIFICATION_LABELS),
                    ("disputed", p.t("cls_disputed")),
                    ("none", p.t("cls_none")),
                ],
                "status": [(s, p.t(f"st_{s}")) for s in FINDING_STATUSES],
                "inspector": [(u, users.get(u, u)) for u in inspectors],
                "sort": [(s, p.t(f"sort_{s}")) for s in SORTS],
            },
        }

    async def queue_stamp(self, principal: Principal, q: QueueQuery) -> str:
        """Changes when the queue's findings (with these filters) change: their number
        and the newest change. The page compares it to tell that tablets pushed."""
        found = await self.s.review.queue(principal, msgspec.structs.replace(q, limit=1, offset=0))
        return f"{found.total}:{found.latest}"

    # --- one finding ------------------------------------------------------------

    async def finding(self, principal: Principal, finding_id: str, p: Presenter) -> dict[str, Any]:
        """Everything the finding page shows; NotFound outside the principal's scope."""
        raw = await self.s.store.get_record("finding", finding_id)
        if raw is None or not isinstance(raw.data.get("inspection_id"), str):
            raise NotFound(f"no finding {finding_id!r}")
        iid = raw.data["inspection_id"]
        dossier = await self.reports.dossier(principal, iid)  # the scope check
        rec = next((f for f in dossier.findings if f.id == finding_id), None)
        if rec is None:
            raise NotFound(f"no finding {finding_id!r}")
        lang = p.t.lang
        d = rec.data
        users = await self.user_names()
        devices = await self.device_names()
        open_fields = list(d.get("open_conflicts") or [])
        disputed = "classification" in open_fields

        # linked checklist items, with every repeat's answer
        answers: dict[tuple[str, str], list[StoredRecord]] = {}
        for r in dossier.responses:
            key = parse_response_id(r.id)
            if key is not None:
                answers.setdefault((key.link_id, key.item_key), []).append(r)
        items = []
        for ref in d.get("linked_items") or []:
            link_id, _, item_key = str(ref).partition(":")
            link = dossier.link(link_id)
            found = find_item(link.template if link else None, item_key)
            responses = sorted(answers.get((link_id, item_key), []), key=lambda r: r.id)
            item = found[1] if found else None
            options = {o.value: _text(o.label, lang) for o in (item.options or [])} if item else {}
            if item is not None and item.answer == "yes_no_na":
                options = {"yes": p.t("yes"), "no": p.t("no"), "na": p.t("na")}
            items.append(
                {
                    "ref": ref,
                    "stage": (link.stage_title_zh if lang == "zh" else link.stage_title_en)
                    if link
                    else link_id,
                    "section": _text(found[0].title, lang) if found else "",
                    "prompt": _text(item.prompt, lang) if item else p.t("item_unknown", key=ref),
                    "unit": (item.unit or "") if item else "",
                    "answers": [
                        {
                            "repeat": (parse_response_id(r.id) or _NOKEY).repeat,
                            "value": self._answer(r.data.get("value"), options, p),
                            "note": r.data.get("note") or "",
                        }
                        for r in responses
                        if "value" in r.data
                    ],
                }
            )

        # evidence: stored (with or without a thumbnail), lost, or not uploaded yet
        missing = set((await self.s.store.missing_evidence([iid])).get(iid, []))
        evidence = []
        for sha in d.get("evidence_hashes") or []:
            ev = await self.s.store.get_evidence(sha)
            state = "missing" if ev is None or sha in missing else "stored"
            if ev is not None and ev.lost_at is not None:
                state = "lost"
            evidence.append(
                {
                    "sha256": sha,
                    "state": state,
                    "thumbnail": bool(ev and ev.thumbnail and state == "stored"),
                    "media_type": ev.media_type if ev else "",
                    "captured": p.when(ev.captured_at or ev.exif_captured_at) if ev else "",
                    "name": (ev.filename_hint if ev else "") or sha[:12],
                }
            )

        # decisions, each with whether its signature still matches
        sigs = {
            s["id"]: s
            for s in await self.s.review.signatures(principal, iid)
            if s["kind"] == "decision"
        }
        decisions = []
        for dec in d.get("decisions") or []:
            sig = dec.get("signature") or {}
            decisions.append(
                {
                    "label": p.t(f"dec_{dec['decision']}"),
                    "by": dec.get("by_name") or users.get(dec.get("by", ""), ""),
                    "at": p.when(dec.get("at")),
                    "reason": dec.get("reason", ""),
                    "comment": dec.get("comment", ""),
                    "change": p.t(
                        "dec_reclassified",
                        old=p.class_name(dec.get("from")),
                        new=p.class_name(dec.get("to")),
                    )
                    if dec["decision"] == "reclassify"
                    else (p.t("dec_into", id=dec.get("into")) if dec.get("into") else ""),
                    "signature": p.t(
                        "signature",
                        name=sig.get("signer_name", ""),
                        meaning=p.t(f"meaning_{sig.get('meaning', 'reviewed')}"),
                        at=p.when(sig.get("signed_at")),
                    )
                    if sig
                    else "",
                    "matches": bool(sigs.get(dec["id"], {}).get("matches")),
                }
            )

        history = [
            self._event(e, users, devices, p, {iid: dossier.inspection.get("title", iid)})
            for e in await self.s.engine.history(principal, "finding", finding_id)
        ]
        conflicts = [
            c.id
            for c in await self.s.engine.list_conflicts(principal, inspection_id=iid)
            if c.data["record_id"] == finding_id
        ]
        insp = dossier.inspection
        raised = dossier.raised_by.get(finding_id)
        others = [
            (f.id, f.data.get("title", ""))
            for f in dossier.findings
            if f.id != finding_id and f.data.get("status") != "merged"
        ]
        return {
            "id": rec.id,
            "rev": rec.rev,
            "title": d.get("title", ""),
            "objective_evidence": d.get("objective_evidence", ""),
            "badge": p.classification(d.get("classification"), disputed=disputed),
            "original": p.class_name(d["original_classification"])
            if d.get("original_classification")
            else "",
            "status": d.get("status", "draft"),
            "status_label": p.t(f"st_{d.get('status', 'draft')}"),
            "references": [p.value(r) for r in d.get("references") or []],
            "merged_into": d.get("merged_into"),
            "merged_from": list(d.get("merged_from") or []),
            "open_fields": [p.t(f"field_{f}") for f in open_fields],
            "conflict_ids": conflicts,
            "comments": [
                {"by": c.get("by_name", ""), "at": p.when(c.get("at")), "text": c.get("text", "")}
                for c in d.get("comments") or []
            ],
            "raised_by": raised.name if raised else "",
            "raised_at": p.when(rec.created_at),
            "updated_at": p.when(rec.updated_at),
            "inspection": {
                "id": dossier.inspection_id,
                "title": insp.get("title", ""),
                "status": p.t(f"ist_{insp.get('status')}"),
            },
            "site": dossier.site.get("name", ""),
            "province": dossier.site.get("province", ""),
            "product": dossier.product.get("name", ""),
            "product_id": dossier.chain.get("product_id", ""),
            "linked": items,
            "evidence": evidence,
            "decisions": decisions,
            "history": history,
            "others": others,
            "is_lead": principal.role is Role.SUPERVISOR
            and insp.get("lead_authority_id") == principal.authority_id,
            "may_decide": principal.role is Role.SUPERVISOR
            and insp.get("lead_authority_id") == principal.authority_id
            and insp.get("status") in _REVIEWABLE,
            "classifications": [(c, p.class_name(c)) for c in CLASSIFICATION_LABELS],
        }

    @staticmethod
    def _answer(value: Any, options: dict[str, str], p: Presenter) -> str:
        if isinstance(value, str) and value in options:
            return options[value]
        if isinstance(value, list) and options:
            return "; ".join(options.get(str(v), str(v)) for v in value)
        return p.value(value)

    @staticmethod
    def _event(
        e: dict[str, Any],
        users: dict[str, str],
        devices: dict[str, str],
        p: Presenter,
        titles: dict[str, str],
    ) -> dict[str, Any]:
        """One audit event in plain words: who, which device, what, when (device and
        server), why."""
        old = _json(e.get("old"))
        new = _json(e.get("new"))
        changes = []
        for field in sorted(set(old) | set(new)):
            if field.startswith("_") or old.get(field) == new.get(field):
                continue
            label = p.t(f"field_{field}") if f"field_{field}" in p.t.catalogue else field
            if field == "inspection_id":  # set once, at creation: its title
                old = {**old, field: titles.get(old.get(field, ""), old.get(field))}
                new = {**new, field: titles.get(new.get(field, ""), new.get(field))}
            changes.append({"field": label, "text": _change(p, field, old, new)})
        op = str(e.get("op") or "")
        key = {"create": "h_created", "update": "h_updated", "delete": "h_deleted"}.get(
            op, f"h_{op}"
        )
        device = e.get("device_id")
        return {
            "who": users.get(e.get("user_id") or "", e.get("user_id") or ""),
            "role": e.get("role") or "",
            "what": p.t(key) if key in p.t.catalogue else p.t("h_other", op=op),
            "device": p.t("h_device", device=devices.get(device, device))
            if device
            else p.t("h_no_device"),
            "device_time": p.when(e.get("device_time")) if e.get("device_time") else "",
            "server_time": p.when(e.get("received_at")),
            "reason": e.get("reason") or "",
            "changes": changes,
        }

    # --- one inspection ---------------------------------------------------------

    async def finding_titles(self, ids: list[str]) -> dict[str, str]:
        """Titles of findings the caller has already been shown (an engine refusal)."""
        out = {}
        for fid in ids:
            rec = await self.s.store.get_record("finding", fid)
            if rec is not None:
                out[fid] = str(rec.data.get("title") or "")
        return out

    async def dossier(self, principal: Principal, inspection_id: str) -> Dossier:
        """The inspection's dossier (exports, report); NotFound outside the scope."""
        return await self.reports.dossier(principal, inspection_id)

    async def inspection(
        self, principal: Principal, inspection_id: str, p: Presenter
    ) -> dict[str, Any]:
        """Everything the inspection page shows; NotFound outside the principal's scope."""
        d = await self.reports.dossier(principal, inspection_id)
        lang = p.t.lang
        insp = d.inspection
        users = await self.user_names()
        devices = await self.device_names()
        status = InspectionStatus(insp["status"])
        step = TRANSITIONS.get(status)
        # the next step, if the role may take it (the registry checks the rest, e.g.
        # that only the lead authority reviews and closes, and says why not)
        next_status = step[0].value if step is not None and principal.role in step[1] else None
        # per covered link: required items answered (in any repeat), sign-offs
        answers = answers_by_link((r.id, r.data) for r in d.responses)
        signoffs: dict[str, list[dict[str, Any]]] = {}
        for s in d.signoffs:
            scope = str(s.data.get("scope") or "")
            signoffs.setdefault(scope.removeprefix("link:"), []).append(
                {
                    # the account's own name (a sign-off from before tablets stopped
                    # typing one may still carry the typed text)
                    "name": users.get(str(s.data.get("signed_by")))
                    or str(s.data.get("signer_name") or ""),
                    "at": p.when(s.data.get("signed_at")),
                    "unanswered": len(s.data.get("unanswered") or []),
                    "reason": str(s.data.get("incomplete_reason") or ""),
                    # how the signer proved who they are at signing (none from an
                    # older tablet): sync.signatures.REAUTH_METHODS
                    "reauth_method": str(s.data.get("reauth_method") or ""),
                    "reauth_at": p.when(s.data.get("reauthenticated_at")),
                }
            )
        links = []
        for link in d.links:
            template = link.template
            given = answers.get(link.link_id, {})
            required = required_items(template, given) if template else []
            links.append(
                {
                    "id": link.link_id,
                    "position": link.position,
                    "stage": link.stage_title_zh if lang == "zh" else link.stage_title_en,
                    "version": link.version_id or "",
                    "answered": sum(1 for k in required if given.get(k)),
                    "required": len(required),
                    "answered_all": len(given),
                    "signoffs": signoffs.get(link.link_id, []),
                }
            )
        findings = sorted(
            (
                {
                    "id": f.id,
                    "title": f.data.get("title", ""),
                    "badge": p.classification(
                        f.data.get("classification"),
                        disputed="classification" in (f.data.get("open_conflicts") or []),
                    ),
                    "status": p.t(f"st_{f.data.get('status', 'draft')}"),
                    "decided": f.data.get("status") in DECIDED,
                    "raised_by": getattr(d.raised_by.get(f.id), "name", ""),
                }
                for f in d.findings
            ),
            key=lambda f: (f["badge"]["key"] != "disputed", f["badge"]["key"], f["title"]),
        )
        quarantine = [
            {
                "kind": p.t(f"kind_{q['kind']}")
                if f"kind_{q['kind']}" in p.t.catalogue
                else q["kind"],
                "record_id": q["record_id"],
                "code": q["code"],
                "field": q.get("field") or "",
                "message": q["message"],
                "by": users.get(q["user_id"], q["user_id"]),
                "device": devices.get(q.get("device_id") or "", q.get("device_id") or ""),
                "at": p.when(q["received_at"]),
            }
            for q in await self.s.engine.quarantine(principal)
            if q.get("inspection_id") == inspection_id
        ]
        return {
            "id": inspection_id,
            "title": insp.get("title", ""),
            "type": p.t(f"type_{insp.get('type')}"),
            "status": status.value,
            "status_label": p.t(f"ist_{status.value}"),
            "next_status": next_status,
            "next_label": p.t(f"ist_{next_status}") if next_status else "",
            "planned": f"{insp.get('planned_start', '')} – {insp.get('planned_end', '')}",
            "site": d.site.get("name", ""),
            "province": d.site.get("province", ""),
            "address": d.site.get("address", ""),
            "licence": d.site.get("licence_number", ""),
            "organisation": d.organisation.get("name", ""),
            "product": d.product.get("name", ""),
            "chain": d.chain.get("name", ""),
            "product_id": d.chain.get("product_id", ""),
            "lead": _authority(d.lead_authority, lang),
            "participating": [_authority(a, lang) for a in d.participating_authorities],
            "team": [
                {"name": m.name, "role": p.t(f"team_{m.role}"), "authority": m.authority_name}
                for m in d.team
            ],
            "links": links,
            "findings": findings,
            "undecided": sum(1 for f in findings if not f["decided"]),
            "quarantine": quarantine,
            "conclusion": await self.conclusion(principal, inspection_id, p),
            "rectifications": [
                self._rectification(r, p)
                for r in await self.s.rectifications.of_inspection(principal, inspection_id)
            ],
        }

    def _rectification(self, r: dict[str, Any], p: Presenter) -> dict[str, Any]:
        """One rectification in words: deadline, status, overdue, response, assessments."""
        resp = r["response"]
        return {
            "finding_id": r["finding_id"],
            "url": f"/console/findings/{quote(r['finding_id'])}#rectification",
            "title": r["title"],
            "badge": p.classification(r["classification"]),
            "deadline": p.t("rect_deadline", date=r["deadline"]),
            "deadline_date": r["deadline"],
            "status": r["status"],
            "status_label": p.t(f"rect_st_{r['status']}"),
            "overdue": p.t("rect_overdue", n=r["days_overdue"]) if r["overdue"] else "",
            "days_overdue": p.t("rect_days", n=r["days_overdue"]),
            "response": {
                "heading": p.t(
                    "rect_response",
                    who=resp["submitted_by"],
                    name=resp["entered_by_name"],
                    at=p.when(resp["entered_at"]),
                ),
                "root_cause": p.t("rect_root_cause", text=resp["root_cause"]),
                "actions": p.t("rect_actions", text=resp["actions"]),
                "completion": p.t("rect_completion", date=resp["completion_date"]),
                "evidence": resp.get("evidence_hashes") or [],
            }
            if resp
            else None,
            "assessments": [
                p.t(
                    "rect_assessed",
                    outcome=p.t(f"rect_out_{a['outcome']}"),
                    name=a["by_name"],
                    at=p.when(a["at"]),
                    comment=a["comment"],
                )
                for a in r["assessments"]
            ],
            "inspection_id": r["inspection_id"],
            "inspection": r.get("inspection_title", ""),
            "site": r.get("site_name", ""),
        }

    async def overdue_rectifications(
        self, principal: Principal, p: Presenter
    ) -> list[dict[str, Any]]:
        """The overdue list page: every overdue rectification in scope, in words."""
        return [self._rectification(r, p) for r in await self.s.rectifications.overdue(principal)]

    async def conclusion(
        self, principal: Principal, inspection_id: str, p: Presenter
    ) -> dict[str, Any]:
        """The conclusion card: the rule's suggestion in words, the conclusion set (by
        whom, when, why, an override or not, still matching or not) and earlier ones."""
        v = await self.s.conclusions.view(principal, inspection_id)
        sug = v["suggestion"]

        def label(key: str) -> str:
            return p.t(f"concl_{key}")

        def shown(c: dict[str, Any]) -> dict[str, Any]:
            return {
                "key": c["conclusion"],
                "label": label(c["conclusion"]),
                "by": p.t("concl_set_by", name=c.get("set_by_name", ""), at=p.when(c["set_at"])),
                "reason": c.get("reason", ""),
                "override": p.t("concl_override", label=label(c["suggested"]))
                if c.get("override")
                else p.t("concl_follows"),
            }

        current = v["conclusion"]
        return {
            "suggested": sug["conclusion"],
            "suggested_label": p.t("concl_suggested", label=label(sug["conclusion"])),
            "counts": p.t("concl_counts", **sug["counts"]),
            "rule": p.t(f"concl_rule_{sug['rule']}"),
            "caution": p.t(f"concl_caution_{sug['caution']}") if sug["caution"] else "",
            "current": shown(current) if current else None,
            "history": [shown(h) for h in reversed(current["history"])] if current else [],
            "stale": v["matches"] is False,
            "rev": v["rev"],
            "blocked": p.t(f"concl_blocked_{v['blocked']}") if v["blocked"] else "",
            "choices": [(k, label(k)) for k in CONCLUSIONS],
        }

    # --- the chain view of a product --------------------------------------------

    async def chain(self, principal: Principal, product_id: str, p: Presenter) -> dict[str, Any]:
        """Every link of the product's chains in chain order, with site, province, the
        inspections covering it, its findings and counts by classification (a disputed
        one counted as disputed). Findings of inspections outside the principal's scope
        are listed (authorities share them) but not linked: their pages are 404."""
        view = await self.reports.chain_findings(principal, product_id)
        lang = p.t.lang
        chains: list[dict[str, Any]] = []
        totals = dict.fromkeys(_COUNTED, 0)
        for c in view.chains:
            links: list[dict[str, Any]] = []
            for lk in c.links:
                counts = {k: 0 for k in _COUNTED}
                rows = []
                for f in lk.findings:
                    badge = p.classification(
                        f.classification, disputed="classification" in f.open_conflicts
                    )
                    gone = f.status in ("withdrawn", "merged")
                    if not gone:
                        counts[badge["key"]] += 1
                        totals[badge["key"]] += 1
                    rows.append(
                        {
                            "id": f.id,
                            "title": f.title or f.id,
                            "badge": badge,
                            "status": p.t(f"st_{f.status}"),
                            "gone": gone,
                            "inspection": f.inspection_title,
                            "raised_by": f.raised_by.name if f.raised_by else "",
                            "linkable": can_see_inspection(
                                principal,
                                {"authority_ids": f.authority_ids, "team_user_ids": []},
                            ),
                        }
                    )
                links.append(
                    {
                        "position": lk.position,
                        "stage": lk.stage_title_zh if lang == "zh" else lk.stage_title_en,
                        "site": lk.site_name,
                        "province": lk.province,
                        "organisation": lk.organisation_name,
                        "hands_over": lk.hands_over,
                        "inspections": [
                            {
                                "id": i.id,
                                "title": i.title,
                                "status": p.t(f"ist_{i.status}"),
                                "lead": _authority(i.lead_authority, lang),
                                "joint": i.joint,
                                "linkable": can_see_inspection(
                                    principal,
                                    {
                                        "authority_ids": [
                                            i.lead_authority.id,
                                            *(a.id for a in i.participating_authorities),
                                        ],
                                        "team_user_ids": [],
                                    },
                                ),
                            }
                            for i in lk.inspections
                        ],
                        "findings": rows,
                        "counts": counts,
                    }
                )
            chains.append({"name": c.name, "links": links})
        return {
            "product_id": view.product_id,
            "product": view.product_name,
            "mah": view.mah_name,
            "chains": chains,
            "totals": totals,
        }

    # --- conflicts --------------------------------------------------------------

    async def conflicts(self, principal: Principal, p: Presenter) -> list[dict[str, Any]]:
        """Every open conflict the principal may see, each value side by side."""
        found = await self.s.engine.list_conflicts(principal)
        users = await self.user_names()
        devices = await self.device_names()
        out = []
        for c in found:
            d = c.data
            rec = await self.s.store.get_record(d["record_kind"], d["record_id"])
            insp = await self.s.store.get_record("inspection", d["inspection_id"])
            field = d["field"]
            title = (rec.data.get("title") if rec else None) or d["record_id"]
            out.append(
                {
                    "id": c.id,
                    "field": field,
                    "heading": p.t(
                        "conflict_on",
                        field=p.t(f"field_{field}"),
                        kind=p.t(f"kind_{d['record_kind']}"),
                        title=title,
                    ),
                    "record_kind": d["record_kind"],
                    "record_id": d["record_id"],
                    "inspection": insp.data.get("title", "") if insp else "",
                    "inspection_id": d["inspection_id"],
                    "flagged": d.get("flagged", False),
                    "shown": p.field_value(field, d.get("winner")),
                    "text_field": all(
                        isinstance(v.get("value"), str | None) for v in d.get("values", [])
                    ),
                    "kept": [
                        {
                            "n": n,
                            "text": p.field_value(field, v.get("value")),
                            "json": msgspec.json.encode(v.get("value")).decode(),
                            "by": users.get(v.get("by", ""), v.get("by", "")),
                            "device": devices.get(v.get("device", ""), v.get("device", "")),
                            "at": p.when(v.get("device_time")),
                        }
                        for n, v in enumerate(d.get("values", []))
                    ],
                    "opened": p.when(d.get("opened_at")),
                }
            )
        return out

    async def conflict_value(self, principal: Principal, conflict_id: str, n: int) -> Any:
        """The ``n``-th kept value of an open conflict the principal may see."""
        for c in await self.s.engine.list_conflicts(principal):
            if c.id == conflict_id:
                values = c.data.get("values", [])
                if 0 <= n < len(values):
                    return values[n].get("value")
        raise NotFound(f"no value {n} in conflict {conflict_id!r}")


_COUNTED = ("critical", "major", "other", "none", "disputed")

_NOBODY = Principal(user_id="", username="", role=Role.SUPERVISOR, authority_id="")
"""Templates are readable by every role; the console lists their titles."""


class _NoKey:
    repeat = 0


_NOKEY = _NoKey()


def _authority(a: Any, lang: str) -> str:
    name_zh = getattr(a, "name_zh", "") or ""
    return str(name_zh if lang == "zh" and name_zh else a.name)


def _change(p: Presenter, field: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """One field's change in words: entries added to a list of entries (comments,
    decisions), else old -> new."""
    before, after = old.get(field), new.get(field)
    if isinstance(after, list) and after and all(isinstance(x, dict) for x in after):
        known = {x.get("id") for x in before or [] if isinstance(x, dict)}
        added = [x for x in after if x.get("id") not in known or x.get("id") is None]
        words = [str(x.get("text") or x.get("reason") or x.get("decision") or "") for x in added]
        return f"{p.t('h_added')}: " + p.t("list_sep").join(w for w in words if w)
    if field == "open_conflicts":
        before = [p.t(f"field_{f}") for f in before or []]
        after = [p.t(f"field_{f}") for f in after or []]
    shown = p.field_value(field, after)
    if field not in old:
        return f"{p.t('h_set')} {shown}"
    return p.t("h_from_to", old=p.field_value(field, before), new=shown)


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}
