"""The documents a provincial inspection office files, each in one language (zh by
default, or en) from the same data and one catalogue of words (``sync/report_labels.py``):

- ``report``: the on-site inspection report (现场检查报告): details, basis (the pinned
  checklist versions and the documents their items cite), scope (chain links and their
  sites), team, dates, summary, conclusion;
- ``deficiencies``: the deficiency list (缺陷项目表): numbered in order of severity, both
  classification labels (NMPA and PIC/S), the checklist item and the source it breaks,
  the evidence as thumbnails with their SHA-256 in the notes;
- ``rectifications``: the rectification status table (整改情况表): per accepted finding
  the company's response, the deadline, its state (overdue included) and assessment.

Every document may end with the signature and manifest page (:func:`manifest_page`):
every signature with the account's own name, meaning, device and server times, content
hash and whether it still matches the records, and the manifest the server signs.

Pure: the caller reads the data (``Reports.dossier``, ``Review.signatures``,
``Conclusions.view``, ``Rectifications.of_inspection``) and the evidence files, and
hands them in as a :class:`DocumentInput`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sync._report_html import EvidenceNotes, EvidenceView, badge, e, facts, frame, table, when
from sync.fielddata import answers_by_link, required_items
from sync.models import StoredRecord
from sync.report_labels import Labels, Lang
from sync.reports import CLASSES, NOT_COUNTED, AuthorityRef, Dossier, count_findings, find_item

__all__ = [
    "KINDS",
    "DocumentInput",
    "EvidenceView",
    "Kind",
    "body_of",
    "deficiency_numbers",
    "manifest_page",
    "render",
    "render_chain",
    "title_of",
]

Kind = Literal["report", "deficiencies", "rectifications"]
KINDS: tuple[Kind, ...] = ("report", "deficiencies", "rectifications")
_GONE = {"missing": "ev_missing", "lost": "ev_lost"}
_LETTER = {"critical": "C", "major": "M", "other": "O", None: "U"}


class DocumentInput(msgspec.Struct, kw_only=True):
    """What the documents of one inspection are made from."""

    dossier: Dossier
    signatures: list[dict[str, Any]]
    """``Review.signatures``: each with ``matches`` (still matches the records)."""
    conclusion: dict[str, Any] | None
    """``Conclusions.view``."""
    rectifications: list[dict[str, Any]]
    """``Rectifications.of_inspection``."""
    evidence: dict[str, EvidenceView]
    """Every evidence file the documents name, by SHA-256."""


def _cls(data: dict[str, Any]) -> str | None:
    cls = data.get("classification")
    return cls if cls in CLASSES else None


def _text(t: Labels, text: Any) -> str:
    """A checklist Text in the document's language, else the other one."""
    zh, en = getattr(text, "zh", ""), getattr(text, "en", "")
    return (zh or en) if t.lang == "zh" else (en or zh)


def deficiency_numbers(findings: list[StoredRecord]) -> dict[str, str]:
    """Numbers per classification in the list's order: C1, C2, M1, O1 ... (findings
    withdrawn or merged get none)."""
    seen: dict[str | None, int] = {}
    out: dict[str, str] = {}
    for rec in findings:
        if rec.data.get("status") in NOT_COUNTED:
            continue
        cls = _cls(rec.data)
        seen[cls] = seen.get(cls, 0) + 1
        out[rec.id] = f"{_LETTER[cls]}{seen[cls]}"
    return out


def title_of(kind: Kind, t: Labels) -> str:
    return t(f"doc_{kind}")


def _heading(kind: Kind, d: Dossier, t: Labels, anchor: str = "") -> str:
    ident = f' id="{e(anchor)}"' if anchor else ""
    site = d.site.get("name") or d.site.get("id")
    return (
        f"<h1{ident}>{e(title_of(kind, t))}</h1>"
        f'<p class="subtitle">{e(d.inspection.get("title") or d.inspection_id)} · {e(site)}'
        f' · <span class="ref">{e(d.inspection_id)}</span></p>'
    )


def _person(d: Dossier, user_id: Any, fallback: Any = None) -> str:
    """The account's own name (a typed name only when the account is unknown)."""
    if isinstance(user_id, str) and user_id in d.people:
        return e(d.people[user_id].name)
    return e(fallback if fallback else user_id)


# --- the on-site inspection report -------------------------------------------------


def _dates(d: Dossier, t: Labels) -> str:
    insp = d.inspection
    parts = [t("dates_planned", start=insp.get("planned_start"), end=insp.get("planned_end"))]
    if insp.get("started_at"):
        parts.append(t("dates_started", at=when(insp.get("started_at"))))
    if insp.get("closed_at"):
        parts.append(t("dates_closed", at=when(insp.get("closed_at"))))
    return e(t("sep").join(parts))


def _details(d: Dossier, t: Labels) -> str:
    insp = d.inspection
    kind = str(insp.get("type"))
    status = str(insp.get("status"))
    joiner = "、" if t.lang == "zh" else ", "

    def authority(a: AuthorityRef) -> str:
        return (a.name_zh or a.name) if t.lang == "zh" else a.name

    rows = [
        (t("f_inspection"), e(insp.get("title") or d.inspection_id)),
        (t("f_reference"), f'<span class="ref">{e(d.inspection_id)}</span>'),
        (t("f_type"), e(t.get(f"type_{kind}", kind))),
        (t("f_status"), e(t.get(f"st_{status}", status))),
        (t("f_dates"), _dates(d, t)),
        (t("f_organisation"), e(d.organisation.get("name") or d.organisation.get("id"))),
        (t("f_site"), e(d.site.get("name") or d.site.get("id"))),
        (t("f_address"), e(d.site.get("address"))),
        (t("f_province"), e(d.site.get("province"))),
        (t("f_licence"), e(d.site.get("licence_number"))),
        (t("f_product"), e(d.product.get("name") or d.product.get("id"))),
        (t("f_chain"), e(d.chain.get("name") or d.chain.get("id"))),
        (t("f_lead_authority"), e(authority(d.lead_authority))),
        (
            t("f_participating"),
            e(joiner.join(authority(a) for a in d.participating_authorities)) or e(t("f_none")),
        ),
    ]
    return f"<h2>{e(t('s_details'))}</h2>{facts(rows)}"


def _basis(d: Dossier, t: Labels) -> str:
    pinned = [lk for lk in d.links if lk.version_id]
    if not pinned:
        return f'<h2>{e(t("s_basis"))}</h2><p class="muted">{e(t("basis_none"))}</p>'
    versions = "".join(
        f"<li>{e(_text(t, lk.template.title) if lk.template else lk.stage_type)} "
        f'<span class="ref">{e(lk.version_id)}</span></li>'
        for lk in pinned
    )
    documents = sorted(
        {
            ref.document
            for lk in pinned
            if lk.template is not None
            for section in lk.template.sections
            for item in section.items
            for ref in item.references
        }
    )
    cited = "".join(f"<li>{e(doc)}</li>" for doc in documents)
    return (
        f"<h2>{e(t('s_basis'))}</h2><p>{e(t('basis_intro'))}</p>"
        f"<h3>{e(t('basis_versions'))}</h3><ul>{versions}</ul>"
        f"<h3>{e(t('basis_documents'))}</h3><ul>{cited}</ul>"
    )


def _progress(d: Dossier) -> dict[str, tuple[int, int]]:
    answers = answers_by_link((r.id, r.data) for r in d.responses)
    out = {}
    for lk in d.links:
        if lk.template is None:
            continue
        given = answers.get(lk.link_id, {})
        required = required_items(lk.template, given)
        out[lk.link_id] = (sum(1 for k in required if given.get(k)), len(required))
    return out


def _scope(d: Dossier, t: Labels) -> str:
    progress = _progress(d)
    site = e(d.site.get("name") or d.site.get("id"))
    rows = []
    for lk in d.links:
        stage = lk.stage_title_zh if t.lang == "zh" and lk.stage_title_zh else lk.stage_title_en
        done, required = progress.get(lk.link_id, (0, 0))
        rows.append(
            (
                str(lk.position),
                e(stage),
                site,
                f'<span class="ref">{e(lk.version_id)}</span>'
                if lk.version_id
                else f'<span class="muted">{e(t("not_pinned"))}</span>',
                e(lk.hands_over),
                f"{done} / {required}" if lk.link_id in progress else "—",
            )
        )
    head = [
        t("h_position"),
        t("h_stage"),
        t("h_site"),
        t("h_version"),
        t("h_hands_over"),
        t("h_answered"),
    ]
    return f"<h2>{e(t('s_scope'))}</h2>" + table(head, rows, num=frozenset({0, 5}))


def _team(d: Dossier, t: Labels) -> str:
    if not d.team:
        return f'<h2>{e(t("s_team"))}</h2><p class="muted">{e(t("no_team"))}</p>'
    rows = [
        (
            e(m.name),
            e(t("role_lead" if m.role == "lead" else "role_member")),
            e(
                (d.authorities[m.authority_id].name_zh or m.authority_name)
                if t.lang == "zh" and m.authority_id in d.authorities
                else m.authority_name or m.authority_id
            ),
        )
        for m in d.team
    ]
    return f"<h2>{e(t('s_team'))}</h2>" + table([t("h_name"), t("h_role"), t("h_authority")], rows)


def _summary(d: Dossier, t: Labels) -> str:
    counts = count_findings(r.data for r in d.findings)
    rows = [
        (
            f'<span class="{cls}">{e(t(f"cls_{cls}"))}</span>',
            e(t(f"pics_{cls}")),
            str(getattr(counts, cls)),
        )
        for cls in CLASSES
    ]
    if counts.unclassified:
        rows.append((e(t("summary_unclassified")), "", str(counts.unclassified)))
    rows.append(
        (f"<strong>{e(t('summary_total'))}</strong>", "", f"<strong>{counts.total}</strong>")
    )
    undecided = sum(
        1
        for r in d.findings
        if r.data.get("status", "draft") not in ("accepted", "merged", "withdrawn")
    )
    conflicts = sum(1 for r in d.findings if r.data.get("open_conflicts"))
    gaps = [
        t(
            "signoff_gaps",
            name=_person(d, so.data.get("signed_by"), so.data.get("signer_name")),
            n=len(so.data.get("unanswered") or []),
            reason=e(so.data.get("incomplete_reason")),
        )
        for so in d.signoffs
        if so.data.get("unanswered")
    ]
    numbers = deficiency_numbers(d.findings)
    listed = [
        (
            e(numbers[r.id]),
            e(r.data.get("title")),
            badge(t, _cls(r.data)),
            e(t.get(f"fs_{r.data.get('status', 'draft')}", str(r.data.get("status")))),
        )
        for r in d.findings
        if r.id in numbers
    ]
    deficiencies = (
        table(
            [t("h_no"), t("h_deficiency"), t("h_classification"), t("h_status")],
            listed,
            widths=(8, 56, 22, 14),
        )
        if listed
        else f'<p class="muted">{e(t("d_none"))}</p>'
    )
    return (
        f"<h2>{e(t('s_summary'))}</h2><h3>{e(t('summary_list'))}</h3>{deficiencies}"
        f"<h3>{e(t('summary_counts'))}</h3>"
        + table([t("h_nmpa"), t("h_pics"), t("summary_findings")], rows, num=frozenset({2}))
        + f"<p>{e(t('summary_review', undecided=undecided, conflicts=conflicts))}</p>"
        + "".join(f'<p class="major">{g}</p>' for g in gaps)
    )


def _conclusion(view: dict[str, Any] | None, t: Labels) -> str:
    head = f"<h2>{e(t('s_conclusion'))}</h2>"
    current = (view or {}).get("conclusion")
    if not current:
        return head + f'<p class="muted">{e(t("c_none"))}</p>'
    name = t.get(f"concl_{current['conclusion']}", str(current["conclusion"]))
    suggested = t.get(f"concl_{current.get('suggested')}", str(current.get("suggested") or ""))
    counts = {k: (current.get("counts") or {}).get(k, 0) for k in CLASSES}
    changed = view is not None and view.get("matches") is False
    rows = [
        (t("c_conclusion"), f'<strong class="conclusion">{e(name)}</strong>'),
        (t("c_suggested"), e(suggested + t("c_counts", **counts))),
        (t("c_override"), e(t("c_override_yes" if current.get("override") else "c_override_no"))),
        (t("c_reason"), e(current.get("reason"))),
        (
            t("c_signed"),
            f"{e(current.get('set_by_name'))}, {when(current.get('set_at'))}"
            + (f' <span class="changed">{e(t("c_changed"))}</span>' if changed else ""),
        ),
    ]
    return head + facts(rows)


def _report(data: DocumentInput, t: Labels, anchor: str) -> str:
    d = data.dossier
    return "".join(
        [
            _heading("report", d, t, anchor),
            _details(d, t),
            _basis(d, t),
            _scope(d, t),
            _team(d, t),
            _summary(d, t),
            _conclusion(data.conclusion, t),
        ]
    )


# --- the deficiency list -----------------------------------------------------------


def _items_and_sources(d: Dossier, data: dict[str, Any], t: Labels) -> tuple[str, str]:
    items: list[str] = []
    sources: list[str] = []
    for ref in data.get("linked_items") or []:
        if not isinstance(ref, str):
            continue
        link_id, _, item_key = ref.partition(":")
        link = d.link(link_id)
        found = find_item(link.template, item_key) if link else None
        if found is None:
            items.append(f'<span class="ref">{e(ref)}</span>')
            continue
        items.append(f'{e(_text(t, found[1].prompt))} <span class="ref">{e(ref)}</span>')
        sources += [f"{r.document}, {r.section}" for r in found[1].references]
    for r in data.get("references") or []:
        if isinstance(r, dict) and r.get("document"):
            sources.append(f"{r['document']}, {r.get('section') or ''}".rstrip(", "))
    unique = list(dict.fromkeys(sources))
    return (
        "<br>".join(items) or f'<span class="muted">{e(t("d_no_item"))}</span>',
        "<br>".join(e(s) for s in unique) or f'<span class="muted">{e(t("d_no_source"))}</span>',
    )


def _deficiencies(data: DocumentInput, t: Labels, anchor: str, notes: EvidenceNotes) -> str:
    d = data.dossier
    numbers = deficiency_numbers(d.findings)
    rows = []
    for rec in d.findings:
        if rec.id not in numbers:
            continue
        f = rec.data
        cls = _cls(f)
        item, source = _items_and_sources(d, f, t)
        text = f"<strong>{e(f.get('title'))}</strong>"
        if f.get("objective_evidence"):
            text += f"<br>{e(f.get('objective_evidence'))}"
        who = d.raised_by.get(rec.id)
        if who is not None:
            text += f'<br><span class="muted">{e(t("d_raised_by", name=who.name))}</span>'
        label = badge(t, cls)
        original = f.get("original_classification")
        if original in CLASSES and original != cls:
            label += (
                f'<br><span class="muted">{e(t("d_original", label=t(f"cls_{original}")))}</span>'
            )
        status = str(f.get("status", "draft"))
        state = e(t.get(f"fs_{status}", status))
        if f.get("open_conflicts"):
            state += f'<br><span class="changed">{e(t("d_conflict"))}</span>'
        rows.append(
            (
                e(numbers[rec.id]),
                text,
                label,
                item,
                source,
                notes.figures(f.get("evidence_hashes") or []),
                state,
            )
        )
    head = [
        t("h_no"),
        t("h_deficiency"),
        t("h_classification"),
        t("h_item"),
        t("h_source"),
        t("h_evidence"),
        t("h_status"),
    ]
    listed = (
        table(head, rows, widths=(6, 22, 15, 18, 16, 13, 10))
        if rows
        else f'<p class="muted">{e(t("d_none"))}</p>'
    )
    apart = [r for r in d.findings if r.data.get("status") in NOT_COUNTED]
    if apart:
        listed += f"<h3>{e(t('d_apart'))}</h3><ul>" + "".join(
            f"<li>{e(r.data.get('title'))} — "
            + (
                e(t("d_merged_into", id=r.data.get("merged_into")))
                if r.data.get("status") == "merged"
                else e(t("fs_withdrawn"))
            )
            + "</li>"
            for r in apart
        )
        listed += "</ul>"
    return _heading("deficiencies", d, t, anchor) + f"<p>{e(t('d_intro'))}</p>" + listed


# --- the rectification status table ------------------------------------------------


def _rectifications(data: DocumentInput, t: Labels, anchor: str, notes: EvidenceNotes) -> str:
    d = data.dossier
    numbers = deficiency_numbers(d.findings)
    titles = {r.id: r.data.get("title") for r in d.findings}
    rows = []
    order = {fid: n for n, fid in enumerate(numbers)}
    for row in sorted(data.rectifications, key=lambda r: order.get(r["finding_id"], 1 << 30)):
        fid = row["finding_id"]
        response = row.get("response")
        if response:
            answer = "<br>".join(
                [
                    e(t("r_root_cause", text=response.get("root_cause"))),
                    e(t("r_actions", text=response.get("actions"))),
                    e(t("r_completion", date=response.get("completion_date"))),
                    '<span class="muted">'
                    + e(
                        t(
                            "r_submitted_by",
                            name=response.get("submitted_by"),
                            entered_by=response.get("entered_by_name"),
                            at=when(response.get("entered_at")),
                        )
                    )
                    + "</span>",
                ]
            )
            answer += "<br>" + notes.figures(response.get("evidence_hashes") or [])
        else:
            answer = f'<span class="muted">{e(t("r_no_response"))}</span>'
        state = e(t.get(f"rs_{row['status']}", row["status"]))
        if row.get("overdue"):
            state += (
                f'<br><span class="overdue">{e(t("r_overdue", days=row["days_overdue"]))}</span>'
            )
        assessed = (
            "<br>".join(
                e(
                    t(
                        "r_assessment",
                        outcome=t.get(f"ro_{a.get('outcome')}", str(a.get("outcome"))),
                        comment=a.get("comment"),
                        name=a.get("by_name"),
                        at=when(a.get("at")),
                    )
                )
                for a in row.get("assessments") or []
            )
            or f'<span class="muted">{e(t("r_no_assessment"))}</span>'
        )
        rows.append(
            (
                e(numbers.get(fid, "—")),
                f"<strong>{e(titles.get(fid) or row.get('title'))}</strong><br>"
                + badge(t, row.get("classification")),
                answer,
                f'<span class="nowrap">{e(row.get("deadline"))}</span>',
                state,
                assessed,
            )
        )
    head = [
        t("h_no"),
        t("h_deficiency"),
        t("h_response"),
        t("h_due"),
        t("h_state"),
        t("h_assessment"),
    ]
    listed = (
        table(head, rows, widths=(6, 19, 33, 13, 12, 17))
        if rows
        else f'<p class="muted">{e(t("r_none"))}</p>'
    )
    return _heading("rectifications", d, t, anchor) + f"<p>{e(t('r_intro'))}</p>" + listed


# --- the signatures and the manifest -------------------------------------------------


def _what(sig: dict[str, Any], t: Labels) -> str:
    match sig.get("kind"):
        case "decision":
            return t("sig_decision", decision=sig.get("decision"), finding=sig.get("finding_id"))
        case "conclusion":
            c = str(sig.get("conclusion"))
            return t("sig_conclusion", conclusion=t.get(f"concl_{c}", c))
        case _:
            return t("sig_signoff", scope=sig.get("scope"))


def reauthentication(sig: dict[str, Any], t: Labels) -> str:
    """HTML: whether and how the signer proved again who they are at the moment of
    signing (``reauth_method``, ``sync.signatures.REAUTH_METHODS``): the password typed
    again on the tablet and checked there (a sign-off, at the tablet's time), or checked
    by the server (decisions, the conclusion); a signature without it said plainly."""
    method = sig.get("reauth_method")
    if not method:
        key = "reauth_none_signoff" if sig.get("kind") == "signoff" else "reauth_none"
        return f'<span class="changed">{e(t(key))}</span>'
    key = {"device_password": "reauth_device_password", "password": "reauth_password"}.get(
        str(method), "reauth_other"
    )
    # the label is escaped as a whole, then the time (escaped by ``when``) put in
    text = e(t(key, time="{time}", method="{method}"))
    return text.replace("{time}", when(sig.get("reauthenticated_at"))).replace(
        "{method}", e(method)
    )


def manifest_page(manifest: dict[str, Any], t: Labels, names: dict[str, str]) -> str:
    """The last page: every signature and the document's manifest, as the server signs
    it (``names``: user id -> the account's own name)."""
    sigs = manifest.get("signatures") or []
    rows = [
        (
            e(names.get(str(s.get("signed_by")), s.get("signer_name")))
            + f'<br><span class="muted">{reauthentication(s, t)}</span>',
            e(t.get(f"meaning_{s.get('meaning')}", str(s.get("meaning")))),
            e(_what(s, t)) + f'<br><span class="ref">{e(s.get("inspection_id"))}</span>',
            when(s.get("signed_at")),
            when(s.get("received_at")),
            f'<span class="ref">{e(s.get("content_hash"))}</span>',
            e(t("m_yes")) if s.get("matches") else f'<span class="changed">{e(t("m_no"))}</span>',
        )
        for s in sigs
    ]
    head = [
        t("h_signer"),
        t("h_meaning"),
        t("h_what"),
        t("h_signed_device"),
        t("h_received"),
        t("h_hash"),
        t("h_matches"),
    ]
    signatures = (
        table(head, rows, widths=(18, 10, 16, 12, 12, 22, 10))
        if rows
        else f'<p class="muted">{e(t("m_no_signatures"))}</p>'
    )
    kind = str(manifest.get("document"))
    facts_rows = [
        (t("m_document_kind"), e(t.get(f"doc_{kind}", kind))),
        (
            t("f_reference"),
            "<br>".join(
                f'<span class="ref">{e(i)}</span>' for i in manifest.get("inspection_ids") or []
            ),
        ),
        (t("m_language"), e(manifest.get("lang"))),
        (t("m_generated_at"), when(manifest.get("generated_at"))),
        (t("m_generated_by"), e(manifest.get("generated_by"))),
        (t("m_cursor"), e(manifest.get("cursor"))),
        (t("m_key"), f'<span class="ref">{e(manifest.get("key_sha256"))}</span>'),
    ]
    evidence = "".join(
        f'<li><span class="ref">{e(x.get("sha256"))}</span>'
        + (
            ""
            if x.get("state") == "stored"
            else f' <span class="ev-missing">{e(t(_GONE[str(x.get("state"))]))}</span>'
        )
        + "</li>"
        for x in manifest.get("evidence") or []
    )
    return (
        f'<section class="doc" id="manifest"><h1>{e(t("doc_manifest"))}</h1>'
        f"<p>{e(t('m_intro'))}</p><h2>{e(t('m_signatures'))}</h2>{signatures}"
        f"<h2>{e(t('m_document'))}</h2>{facts(facts_rows)}"
        f"<h3>{e(t('m_evidence'))}</h3>"
        + (
            f'<ol class="notes">{evidence}</ol>'
            if evidence
            else f'<p class="muted">{e(t("ev_none"))}</p>'
        )
        + "</section>"
    )


# --- whole documents ---------------------------------------------------------------


def body_of(kind: Kind, data: DocumentInput, t: Labels, anchor: str = "") -> str:
    """One document of one inspection, without the page frame, with its evidence
    notes."""
    notes = EvidenceNotes(t, data.evidence)
    match kind:
        case "report":
            body = _report(data, t, anchor)
        case "deficiencies":
            body = _deficiencies(data, t, anchor, notes)
        case "rectifications":
            body = _rectifications(data, t, anchor, notes)
    return body + notes.notes()


def _footer(t: Labels, data: DocumentInput) -> str:
    return e(t("footer", at=when(data.dossier.generated_at), user=data.dossier.generated_by))


def render(
    kind: Kind,
    data: DocumentInput,
    lang: Lang,
    manifest: dict[str, Any] | None = None,
) -> str:
    """One document of one inspection as a complete HTML page in ``lang``; with a
    ``manifest``, its signature and manifest page at the end."""
    t = Labels(lang)
    body = f'<section class="doc first">{body_of(kind, data, t)}</section>'
    if manifest is not None:
        body += manifest_page(manifest, t, {k: v.name for k, v in data.dossier.people.items()})
    title = (
        f"{title_of(kind, t)}: {data.dossier.inspection.get('title') or data.dossier.inspection_id}"
    )
    return frame(t, title, body, _footer(t, data))


def render_chain(
    product: dict[str, Any],
    inputs: list[DocumentInput],
    lang: Lang,
    manifest: dict[str, Any] | None = None,
) -> str:
    """A product's chain dossier: a contents page, then every inspection's report,
    deficiency list and rectification table, in the order given (chain order)."""
    t = Labels(lang)
    name = product.get("name") or product.get("id")
    toc = []
    parts = []
    for n, data in enumerate(inputs):
        d = data.dossier
        sub = []
        for kind in KINDS:
            anchor = f"i{n}-{kind}"
            sub.append(f'<li><a href="#{anchor}">{e(title_of(kind, t))}</a></li>')
            parts.append(f'<section class="doc">{body_of(kind, data, t, anchor)}</section>')
        site = d.site.get("name") or d.site.get("id")
        toc.append(
            f"<li>{e(d.inspection.get('title') or d.inspection_id)} · {e(site)} · "
            f"{e(d.inspection.get('planned_start'))}<ol>{''.join(sub)}</ol></li>"
        )
    contents = (
        f'<ol class="toc">{"".join(toc)}</ol>'
        if toc
        else f'<p class="muted">{e(t("x_no_inspections"))}</p>'
    )
    cover = (
        f'<section class="doc first"><h1>{e(t("doc_dossier"))}</h1>'
        f'<p class="subtitle">{e(name)}</p><p>{e(t("x_intro", product=name))}</p>'
        f"<h2>{e(t('contents'))}</h2>{contents}</section>"
    )
    body = cover + "".join(parts)
    if manifest is not None:
        people = {k: v.name for data in inputs for k, v in data.dossier.people.items()}
        body += manifest_page(manifest, t, people)
    generated = manifest.get("generated_at") if manifest else None
    footer = e(t("footer", at=when(generated), user=(manifest or {}).get("generated_by", "")))
    return frame(t, f"{t('doc_dossier')}: {name}", body, footer)
