"""The inspection report: one self-contained HTML document that prints cleanly.

Built with the standard library only (``html.escape`` on every value that comes from
data; no template engine, no external asset: the CSS is inline, there are no images,
fonts or scripts). The structure is the usual one of a GMP inspection report:

1. header: site, address, licence, organisation, product, activities (the chain links
   covered, with their stage types), dates, inspection type, team with roles, lead and
   participating authorities;
2. scope: the links covered and the checklist version each pins;
3. areas inspected: per link, the sections of its pinned checklist and how many items
   were answered;
4. findings by area: the link and section of a finding's first linked item, or
   "general";
5. the classified deficiency list: critical, then major, then other (PIC/S and NMPA
   labels both), withdrawn and merged findings listed apart;
6. summary: counts per classification, the review status of the findings, open
   conflicts, sign-offs;
7. the inspection conclusion (NMPA's scale), its suggestion, override and reason.

The print CSS (A4, page breaks between parts, no break inside a deficiency) serves both
the browser's "Print to PDF" and the server's PDF (``server/pdf.py``, WeasyPrint).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any

from sync.fielddata import (
    CLASSIFICATION_LABELS,
    answers_by_link,
    parse_response_id,
    required_items,
)
from sync.models import StoredRecord
from sync.reports import (
    CLASSES,
    NOT_COUNTED,
    CoveredLink,
    Dossier,
    count_findings,
    find_item,
    finding_area,
)

__all__ = ["render_report"]

_TYPE_NAMES = {
    "pre_approval": "Pre-approval inspection",
    "routine": "Routine GMP inspection",
    "for_cause": "For-cause inspection",
    "joint_cross_province": "Joint cross-province inspection",
    "follow_up": "Follow-up inspection",
}
_CLASS_HEADINGS = {
    "critical": ("Critical deficiencies", "C"),
    "major": ("Major deficiencies", "M"),
    "other": ("Other deficiencies", "O"),
    None: ("Not yet classified", "U"),
}

_CSS = """
:root { --ink: #1a1a1a; --muted: #5b5b5b; --rule: #c8c8c8; --crit: #8b0000;
  --major: #8a4b00; --other: #2f4f4f; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei",
  "Helvetica Neue", Arial, sans-serif; color: var(--ink); font-size: 10.5pt;
  line-height: 1.45; margin: 0 auto; max-width: 60rem; padding: 1.5rem; }
h1 { font-size: 17pt; margin: 0 0 .2rem; }
h2 { font-size: 13pt; border-bottom: 2px solid var(--ink); padding-bottom: .15rem;
  margin: 1.6rem 0 .6rem; }
h3 { font-size: 11.5pt; margin: 1rem 0 .4rem; }
h4 { font-size: 10.5pt; margin: .8rem 0 .3rem; }
.zh { color: var(--muted); font-weight: normal; }
.muted { color: var(--muted); }
.ref { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
th, td { border: 1px solid var(--rule); padding: .25rem .4rem; text-align: left;
  vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
table.facts th { width: 13rem; }
td.num, th.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; border: 1px solid currentColor; border-radius: 3px;
  padding: 0 .3rem; font-size: 8.5pt; font-weight: 600; white-space: nowrap; }
.critical { color: var(--crit); } .major { color: var(--major); }
.other { color: var(--other); } .unclassified { color: var(--muted); }
.deficiency { border: 1px solid var(--rule); border-left: 4px solid var(--rule);
  padding: .4rem .7rem; margin: .5rem 0; }
.deficiency.critical { border-left-color: var(--crit); }
.deficiency.major { border-left-color: var(--major); }
.deficiency.other { border-left-color: var(--other); }
.deficiency h4 { margin-top: 0; color: var(--ink); }
.deficiency dl { margin: .2rem 0; display: grid; grid-template-columns: 11rem 1fr;
  gap: .1rem .6rem; color: var(--ink); }
.deficiency dt { font-weight: 600; }
.deficiency dd { margin: 0; white-space: pre-wrap; }
.cover { border-bottom: 3px double var(--ink); margin-bottom: 1rem; padding-bottom: .5rem; }
footer { margin-top: 2rem; border-top: 1px solid var(--rule); padding-top: .4rem;
  font-size: 8.5pt; color: var(--muted); }
@page { size: A4; margin: 16mm 14mm 18mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; }
  h3, h4 { break-after: avoid; }
  section.part { break-before: page; }
  section.part.first { break-before: auto; }
  .deficiency, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  th { background: #f2f2f2 !important; -webkit-print-color-adjust: exact;
    print-color-adjust: exact; }
}
"""


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values; None is empty."""
    if value is None:
        return ""
    return escape(str(value), quote=True)


def _bi(en: str, zh: str) -> str:
    """A bilingual label: English, then Chinese in muted type."""
    return f'{_e(en)} <span class="zh">{_e(zh)}</span>' if zh else _e(en)


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], num: set[int] = set()) -> str:  # noqa: B006
    th = "".join(
        f'<th class="num">{h}</th>' if n in num else f"<th>{h}</th>" for n, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if n in num else f"<td>{c}</td>" for n, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _cls(data: dict[str, Any]) -> str | None:
    cls = data.get("classification")
    return cls if cls in CLASSIFICATION_LABELS else None


def _badge(cls: str | None) -> str:
    if cls is None:
        return '<span class="badge unclassified">unclassified</span>'
    labels = CLASSIFICATION_LABELS[cls]
    return (
        f'<span class="badge {cls}">{_e(labels["pics"])} · NMPA {_e(labels["nmpa"])} '
        f"{_e(labels['nmpa_zh'])}</span>"
    )


def _link_name(link: CoveredLink) -> str:
    return f"{link.position}. {_bi(link.stage_title_en, link.stage_title_zh)}"


def _numbering(findings: list[StoredRecord]) -> dict[str, str]:
    """Report numbers per classification: C1, C2, M1, O1 ... (active findings only)."""
    seen: dict[str | None, int] = {}
    out: dict[str, str] = {}
    for rec in findings:
        if rec.data.get("status") in NOT_COUNTED:
            continue
        cls = _cls(rec.data)
        seen[cls] = seen.get(cls, 0) + 1
        out[rec.id] = f"{_CLASS_HEADINGS[cls][1]}{seen[cls]}"
    return out


def _when(value: Any) -> str:
    """A stored time (ISO 8601 with an offset) as ``2026-11-29 10:00 UTC``; a date, a
    time without zone or other text as written."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return _e(value)
    if moment.tzinfo is None:
        return _e(value if not isinstance(value, datetime) else value.isoformat())
    return _e(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _authority_name(d: Dossier, authority_id: str | None) -> str:
    if not authority_id:
        return ""
    ref = d.authorities.get(authority_id)
    return _e(ref.name if ref else authority_id)


def _decision(d: Dossier, x: dict[str, Any]) -> str:
    text = f"{_e(x.get('decision'))}"
    if x.get("from") or x.get("to"):
        text += f" ({_e(x.get('from'))} → {_e(x.get('to'))})"
    text += f" by {_person(d, x.get('by'))}, {_when(x.get('at'))}"
    if x.get("reason"):
        text += f": {_e(x.get('reason'))}"
    if x.get("comment"):
        text += f' <span class="muted">— comment: {_e(x.get("comment"))}</span>'
    signature = x.get("signature")
    if isinstance(signature, dict) and signature.get("meaning"):
        text += f' <span class="muted">(signed: {_e(signature.get("meaning"))})</span>'
    return text


def _person(dossier: Dossier, user_id: Any) -> str:
    if not isinstance(user_id, str):
        return ""
    who = dossier.people.get(user_id)
    return _e(who.name if who else user_id)


def _header(d: Dossier) -> str:
    insp = d.inspection
    site, org, product = d.site, d.organisation, d.product
    activities = "<br>".join(
        _link_name(lk)
        + (
            f' <span class="muted">(hands over: {_e(lk.hands_over)})</span>'
            if lk.hands_over
            else ""
        )
        for lk in d.links
    )
    team = (
        "<br>".join(
            f"{_e(m.name)} — {'lead inspector' if m.role == 'lead' else 'team member'}"
            f' <span class="muted">({_e(m.authority_name or m.authority_id)})</span>'
            for m in d.team
        )
        or '<span class="muted">no inspector assigned</span>'
    )
    dates = f"planned {_e(insp.get('planned_start'))} to {_e(insp.get('planned_end'))}"
    if insp.get("started_at"):
        dates += f"; started {_when(insp.get('started_at'))}"
    if insp.get("closed_at"):
        dates += f"; closed {_when(insp.get('closed_at'))}"
    participating = ", ".join(_bi(a.name, a.name_zh) for a in d.participating_authorities)
    rows = [
        ("Site", _e(site.get("name") or site.get("id"))),
        ("Address", _e(site.get("address"))),
        ("Province", _e(site.get("province"))),
        ("Manufacturing licence", _e(site.get("licence_number"))),
        ("Organisation", _e(org.get("name") or org.get("id"))),
        ("Product", _e(product.get("name") or product.get("id"))),
        ("Production chain", _e(d.chain.get("name") or d.chain.get("id"))),
        ("Activities inspected", activities),
        ("Inspection type", _e(_TYPE_NAMES.get(str(insp.get("type")), insp.get("type")))),
        ("Dates", dates),
        ("Status", _e(insp.get("status"))),
        ("Lead authority", _bi(d.lead_authority.name, d.lead_authority.name_zh)),
        ("Participating authorities", participating or '<span class="muted">none</span>'),
        ("Inspection team", team),
        ("Reference", f'<span class="ref">{_e(d.inspection_id)}</span>'),
    ]
    return (
        '<header class="cover">'
        f'<p class="muted">GMP inspection report <span class="zh">药品GMP检查报告</span></p>'
        f"<h1>{_e(insp.get('title') or d.inspection_id)}</h1></header>"
        '<section class="part first"><h2>1. Inspection details '
        '<span class="zh">检查基本情况</span></h2>'
        f"{_facts(rows)}</section>"
    )


def _scope(d: Dossier) -> str:
    rows = [
        (
            str(lk.position),
            f'<span class="ref">{_e(lk.link_id)}</span>',
            _bi(lk.stage_title_en, lk.stage_title_zh),
            f'<span class="ref">{_e(lk.version_id)}</span>'
            if lk.version_id
            else '<span class="muted">not pinned (inspection not started)</span>',
            _e(lk.hands_over),
        )
        for lk in d.links
    ]
    table = _table(["#", "Link", "Stage", "Checklist version pinned", "Hands over"], rows, num={0})
    return (
        '<section class="part"><h2>2. Scope <span class="zh">检查范围</span></h2>'
        "<p>The chain links covered by this inspection, in chain order, and the checklist "
        "version each was inspected against (pinned when the inspection started; later "
        f"versions do not change it).</p>{table}</section>"
    )


def _answered(d: Dossier) -> dict[tuple[str, str], tuple[set[str], set[int]]]:
    """(link, item) answered -> (item keys, repeats) per (link, section)."""
    out: dict[tuple[str, str], tuple[set[str], set[int]]] = {}
    for rec in d.responses:
        key = parse_response_id(rec.id)
        if key is None or rec.data.get("value") is None:
            continue
        link = d.link(key.link_id)
        found = find_item(link.template, key.item_key) if link else None
        if found is None:
            continue
        items, repeats = out.setdefault((key.link_id, found[0].key), (set(), set()))
        items.add(key.item_key)
        repeats.add(key.repeat)
    return out


def _areas(d: Dossier) -> str:
    answered = _answered(d)
    answers = answers_by_link((r.id, r.data) for r in d.responses)
    parts = []
    for lk in d.links:
        parts.append(f"<h3>{_link_name(lk)}</h3>")
        if lk.template is None:
            parts.append('<p class="muted">No checklist pinned.</p>')
            continue
        given = answers.get(lk.link_id, {})
        required = required_items(lk.template, given)
        done = sum(1 for k in required if given.get(k))
        parts.append(
            f'<p class="progress"><strong>{done} of {len(required)}</strong> required items '
            f'answered <span class="zh">必答项已答 {done} / {len(required)}</span></p>'
        )
        for so in d.signoffs:
            gaps = so.data.get("unanswered") or []
            if so.data.get("scope") in ("inspection", f"link:{lk.link_id}") and gaps:
                parts.append(
                    f'<p class="major">Signed off by {_e(so.data.get("signer_name"))} with '
                    f"{len(gaps)} required items unanswered; reason: "
                    f"{_e(so.data.get('incomplete_reason'))}</p>"
                )
        rows = []
        for section in lk.template.sections:
            items, repeats = answered.get((lk.link_id, section.key), (set(), set()))
            rows.append(
                (
                    _bi(section.title.en, section.title.zh),
                    str(len(section.items)),
                    str(len(items)),
                    str(len(repeats)) if section.repeatable else "—",
                )
            )
        parts.append(_table(["Section", "Items", "Answered", "Repeats"], rows, num={1, 2, 3}))
    return (
        '<section class="part"><h2>3. Areas inspected <span class="zh">检查区域</span></h2>'
        "<p>Per link, the sections of the pinned checklist and how many of their items "
        "have an answer (in any repeat).</p>" + "".join(parts) + "</section>"
    )


def _findings_by_area(d: Dossier, numbers: dict[str, str]) -> str:
    groups: dict[tuple[str | None, str | None], list[StoredRecord]] = {}
    for rec in d.findings:
        groups.setdefault(finding_area(rec.data, d), []).append(rec)

    def rows(recs: list[StoredRecord]) -> str:
        return _table(
            ["No.", "Finding", "Classification", "Status"],
            (
                (
                    _e(numbers.get(r.id, "—")),
                    _e(r.data.get("title")),
                    _badge(_cls(r.data)),
                    _e(r.data.get("status", "draft")),
                )
                for r in recs
            ),
        )

    parts = []
    for lk in d.links:
        sections = [s for s in (lk.template.sections if lk.template else [])]
        keys = [(lk.link_id, s.key) for s in sections] + [(lk.link_id, None)]
        if not any(k in groups for k in keys):
            continue
        parts.append(f"<h3>{_link_name(lk)}</h3>")
        for s in sections:
            if (lk.link_id, s.key) in groups:
                parts.append(f"<h4>{_bi(s.title.en, s.title.zh)}</h4>")
                parts.append(rows(groups[(lk.link_id, s.key)]))
        if (lk.link_id, None) in groups:
            parts.append("<h4>Other items of this link</h4>")
            parts.append(rows(groups[(lk.link_id, None)]))
    if (None, None) in groups:
        parts.append('<h3>General <span class="zh">一般</span></h3>')
        parts.append(rows(groups[(None, None)]))
    body = "".join(parts) or '<p class="muted">No findings recorded.</p>'
    return (
        '<section class="part"><h2>4. Findings by area <span class="zh">按区域列出的缺陷'
        "</span></h2><p>A finding sits under the section of the first checklist item it is "
        "linked to; one linked to no item is general.</p>" + body + "</section>"
    )


def _item_text(d: Dossier, ref: str) -> str:
    link_id, _, item_key = ref.partition(":")
    link = d.link(link_id)
    found = find_item(link.template, item_key) if link else None
    code = f'<span class="ref">{_e(ref)}</span>'
    return f"{code} {_bi(found[1].prompt.en, found[1].prompt.zh)}" if found else code


def _deficiency(d: Dossier, rec: StoredRecord, number: str) -> str:
    data = rec.data
    cls = _cls(data)
    fields: list[tuple[str, str]] = [("Classification", _badge(cls))]
    original = data.get("original_classification")
    if original in CLASSIFICATION_LABELS and original != cls:
        fields.append(("Classified by the inspector as", _badge(original)))
    fields.append(("Status", _e(data.get("status", "draft"))))
    evidence = data.get("objective_evidence")
    if evidence:
        fields.append(("Objective evidence", _e(evidence)))
    linked = [r for r in data.get("linked_items") or [] if isinstance(r, str)]
    if linked:
        fields.append(("Checklist items", "<br>".join(_item_text(d, r) for r in linked)))
    refs = [r for r in data.get("references") or [] if isinstance(r, dict)]
    if refs:
        fields.append(
            (
                "References",
                "<br>".join(
                    _e(r.get("document"))
                    + (f", {_e(r.get('section'))}" if r.get("section") else "")
                    for r in refs
                ),
            )
        )
    hashes = [h for h in data.get("evidence_hashes") or [] if isinstance(h, str)]
    if hashes:
        fields.append(
            ("Evidence files", "<br>".join(f'<span class="ref">{_e(h)}</span>' for h in hashes))
        )
    merged_from = [m for m in data.get("merged_from") or [] if isinstance(m, str)]
    if merged_from:
        fields.append(
            ("Merged from", ", ".join(f'<span class="ref">{_e(m)}</span>' for m in merged_from))
        )
    who = d.raised_by.get(rec.id)
    if who is not None:
        fields.append(("Raised by", f"{_e(who.name)} ({_authority_name(d, who.authority_id)})"))
    decisions = [x for x in data.get("decisions") or [] if isinstance(x, dict)]
    if decisions:
        fields.append(
            (
                "Review",
                "<br>".join(_decision(d, x) for x in decisions),
            )
        )
    if data.get("open_conflicts"):
        fields.append(
            ("Open conflicts", _e(", ".join(str(f) for f in data.get("open_conflicts") or [])))
        )
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in fields)
    return (
        f'<article class="deficiency {cls or "unclassified"}">'
        f"<h4>{_e(number)}. {_e(data.get('title'))} "
        f'<span class="ref muted">{_e(rec.id)}</span></h4><dl>{dl}</dl></article>'
    )


def _deficiency_list(d: Dossier, numbers: dict[str, str]) -> str:
    active = [r for r in d.findings if r.data.get("status") not in NOT_COUNTED]
    parts = []
    for cls in (*CLASSES, None):
        recs = [r for r in active if _cls(r.data) == cls]
        if cls is None and not recs:
            continue
        heading = _CLASS_HEADINGS[cls][0]
        labels = CLASSIFICATION_LABELS.get(cls or "")
        sub = (
            f' <span class="zh">NMPA: {_e(labels["nmpa"])} {_e(labels["nmpa_zh"])}</span>'
            if labels
            else ""
        )
        parts.append(f'<h3 class="{cls or "unclassified"}">{_e(heading)}{sub}</h3>')
        if recs:
            parts.extend(_deficiency(d, r, numbers[r.id]) for r in recs)
        else:
            parts.append('<p class="muted">None.</p>')
    apart = [r for r in d.findings if r.data.get("status") in NOT_COUNTED]
    if apart:
        parts.append("<h3>Withdrawn and merged findings</h3>")
        parts.append(
            _table(
                ["Finding", "Status", "Merged into"],
                (
                    (
                        f'{_e(r.data.get("title"))} <span class="ref muted">{_e(r.id)}</span>',
                        _e(r.data.get("status")),
                        f'<span class="ref">{_e(r.data.get("merged_into"))}</span>',
                    )
                    for r in apart
                ),
            )
        )
    return (
        '<section class="part"><h2>5. Classified deficiency list '
        '<span class="zh">缺陷分级清单</span></h2><p>Classification follows PIC/S PI 040 '
        "(critical, major, other); the NMPA's analogous scale (serious, major, general) "
        "is shown beside it.</p>" + "".join(parts) + "</section>"
    )


def _signatures(d: Dossier, signatures: list[dict[str, Any]] | None) -> str:
    if signatures is None:
        rows = [
            (
                _e(s.data.get("signer_name")),
                _e(s.data.get("meaning")),
                _e(s.data.get("scope")),
                _when(s.data.get("signed_at")),
            )
            for s in d.signoffs
        ]
        if not rows:
            return '<p class="muted">No sign-off recorded.</p>'
        return "<h3>Sign-offs</h3>" + _table(["Signed by", "Meaning", "Scope", "Signed at"], rows)
    if not signatures:
        return '<p class="muted">No signature recorded.</p>'
    checked: list[tuple[str, ...]] = []
    for sig in signatures:
        if sig.get("kind") == "decision":
            what = f"{_e(sig.get('decision'))} of finding " + (
                f'<span class="ref">{_e(sig.get("finding_id"))}</span>'
            )
        else:
            what = f"sign-off of {_e(sig.get('scope'))}"
        ok = sig.get("matches")
        state = (
            "matches" if ok else '<strong class="critical">content changed since signing</strong>'
        )
        checked.append(
            (
                _e(sig.get("signer_name")),
                _e(sig.get("meaning")),
                what,
                _when(sig.get("signed_at")),
                state,
            )
        )
    return "<h3>Signatures</h3>" + _table(
        ["Signed by", "Meaning", "What", "Signed at", "Signed content"], checked
    )


def _summary(d: Dossier, signatures: list[dict[str, Any]] | None) -> str:
    counts = count_findings(r.data for r in d.findings)
    rows = []
    for cls in CLASSES:
        labels = CLASSIFICATION_LABELS[cls]
        rows.append(
            (
                f'<span class="{cls}">{_e(labels["pics"])}</span>',
                f"{_e(labels['nmpa'])} {_e(labels['nmpa_zh'])}",
                str(getattr(counts, cls)),
            )
        )
    if counts.unclassified:
        rows.append(("not classified", "", str(counts.unclassified)))
    rows.append(("<strong>Total</strong>", "", f"<strong>{counts.total}</strong>"))
    table = _table(["PIC/S", "NMPA", "Findings"], rows, num={2})
    statuses: dict[str, int] = {}
    for r in d.findings:
        status = str(r.data.get("status", "draft"))
        statuses[status] = statuses.get(status, 0) + 1
    order = ["draft", "submitted", "returned", "accepted", "merged", "withdrawn"]
    status_rows = [
        (_e(s), str(statuses[s]))
        for s in sorted(statuses, key=lambda s: (order.index(s) if s in order else 99, s))
    ]
    undecided = sum(n for s, n in statuses.items() if s not in ("accepted", "merged", "withdrawn"))
    conflicts = sum(1 for r in d.findings if r.data.get("open_conflicts"))
    review = (
        f"<p>Inspection status: <strong>{_e(d.inspection.get('status'))}</strong>. "
        f"Findings awaiting a review decision: <strong>{undecided}</strong>; with an open "
        f"conflict: <strong>{conflicts}</strong>.</p>"
    )
    status_table = (
        _table(["Finding status", "Findings"], status_rows, num={1}) if status_rows else ""
    )
    sign_table = _signatures(d, signatures)
    return (
        '<section class="part"><h2>6. Summary <span class="zh">检查结论摘要</span></h2>'
        f"<h3>Deficiencies by classification</h3>{table}"
        f"<h3>Review status</h3>{review}{status_table}{sign_table}</section>"
    )


_CONCLUSION_NAMES = {
    "meets": ("Meets requirements", "符合要求"),
    "basically_meets": ("Basically meets requirements", "基本符合要求"),
    "does_not_meet": ("Does not meet requirements", "不符合要求"),
}


def _conclusion(view: dict[str, Any] | None) -> str:
    """Part 7: the inspection conclusion (sync/conclusion.py), or that there is none."""
    head = (
        '<section class="part"><h2>7. Inspection conclusion <span class="zh">检查结论</span></h2>'
    )
    current = (view or {}).get("conclusion")
    if not current:
        return head + '<p class="muted">Not concluded yet. 尚未作出结论。</p></section>'
    en, zh = _CONCLUSION_NAMES.get(current["conclusion"], (current["conclusion"], ""))
    s_en, s_zh = _CONCLUSION_NAMES.get(current.get("suggested", ""), ("", ""))
    counts = current.get("counts") or {}
    rows = [
        ("Conclusion 结论", f'<strong class="conclusion">{_e(en)} {_e(zh)}</strong>'),
        (
            "Suggested by the rule 建议结论",
            f"{_e(s_en)} {_e(s_zh)} (accepted: {counts.get('critical', 0)} critical, "
            f"{counts.get('major', 0)} major, {counts.get('other', 0)} other)",
        ),
        (
            "Override 是否采纳建议",
            "yes: the supervisor concluded otherwise 未采纳建议结论"
            if current.get("override")
            else "no: as suggested 与建议结论一致",
        ),
        ("Reason 理由", _e(current.get("reason"))),
        (
            "Signed 签署",
            f"{_e(current.get('set_by_name'))}, {_when(current.get('set_at'))}"
            + (
                ""
                if view and view.get("matches") is not False
                else ' <strong class="critical">accepted findings changed since</strong>'
            ),
        ),
    ]
    return head + _facts(rows) + "</section>"


def render_report(
    dossier: Dossier,
    signatures: list[dict[str, Any]] | None = None,
    conclusion: dict[str, Any] | None = None,
) -> str:
    """The report of one inspection as a complete HTML document (UTF-8).

    ``signatures`` are the inspection's signatures as the review service checks them
    (sign-offs and review decisions, each with ``matches``: whether the signed content
    is unchanged); without them the sign-off records are listed unchecked.
    ``conclusion`` is the conclusion's view (``Conclusions.view``): part 7 shows it."""
    numbers = _numbering(dossier.findings)
    title = _e(dossier.inspection.get("title") or dossier.inspection_id)
    body = "".join(
        [
            _header(dossier),
            _scope(dossier),
            _areas(dossier),
            _findings_by_area(dossier, numbers),
            _deficiency_list(dossier, numbers),
            _summary(dossier, signatures),
            _conclusion(conclusion),
        ]
    )
    footer = (
        f"<footer>Generated by inspectsync at {_when(dossier.generated_at)} for "
        f"{_e(dossier.generated_by)}. Findings not yet accepted may still change.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Inspection report: {title}</title><style>{_CSS}</style></head>"
        f"<body>{body}{footer}</body></html>\n"
    )
