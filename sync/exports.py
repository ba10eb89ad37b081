"""Exports of one inspection: its findings and its responses as CSV, and the whole of it
(header, findings, responses, sign-offs) as one JSON document.

Pure functions over a :class:`~sync.reports.Dossier`. The CSV is meant to be opened in
a spreadsheet, so it is made safe for one:

- UTF-8 with a byte-order mark, so that Excel reads the Chinese text as UTF-8;
- formula injection is defused: a text cell that starts with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return gets a leading ``'`` (OWASP's advice), so the spreadsheet
  shows it as text instead of running it. Numbers that are numbers in the data (a
  temperature of -70) are written as they are: a number is never a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from sync.fielddata import CLASSIFICATION_LABELS, parse_response_id
from sync.reports import Dossier, find_item, finding_area, last_by, public

__all__ = [
    "EXPORT_FORMAT",
    "FINDING_COLUMNS",
    "RESPONSE_COLUMNS",
    "csv_cell",
    "export_json",
    "findings_csv",
    "responses_csv",
    "to_csv",
]

EXPORT_FORMAT = "inspectsync.inspection-export/1"
"""The ``format`` of the JSON export; the number goes up if a field changes meaning."""

BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

FINDING_COLUMNS = (
    "finding_id",
    "inspection_id",
    "title",
    "classification",
    "pics_label",
    "nmpa_label",
    "nmpa_label_zh",
    "original_classification",
    "status",
    "merged_into",
    "merged_from",
    "area_link",
    "area_section",
    "linked_items",
    "references",
    "objective_evidence",
    "evidence_hashes",
    "comments",
    "last_decision",
    "last_decision_by",
    "last_decision_at",
    "last_decision_reason",
    "open_conflicts",
    "raised_by",
    "raised_by_authority",
    "created_at",
    "updated_at",
)

RESPONSE_COLUMNS = (
    "response_id",
    "inspection_id",
    "link_id",
    "stage_type",
    "checklist_version",
    "section_key",
    "section_title_en",
    "section_title_zh",
    "item_key",
    "prompt_en",
    "prompt_zh",
    "repeat",
    "value",
    "unit",
    "note",
    "evidence",
    "answered_by",
    "updated_at",
)


def csv_cell(value: Any) -> str | int | float:
    """One cell: None is empty, numbers stay numbers, lists are joined with ``; ``,
    other values are text, defused if a spreadsheet would read them as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple):
        text = "; ".join("" if v is None else str(v) for v in value)
    elif isinstance(value, dict):
        text = msgspec.json.encode(value).decode()
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A CSV document (BOM first, CRLF line ends) of ``rows`` in ``columns`` order."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _ref_text(ref: Any) -> str:
    if isinstance(ref, dict):
        doc = ref.get("document", "")
        section = ref.get("section", "")
        return f"{doc}, {section}" if section else str(doc)
    return str(ref)


def _last_decision(data: dict[str, Any]) -> dict[str, Any]:
    decisions = [d for d in data.get("decisions") or [] if isinstance(d, dict)]
    return decisions[-1] if decisions else {}


def finding_rows(dossier: Dossier) -> list[dict[str, Any]]:
    rows = []
    for rec in dossier.findings:
        data = rec.data
        cls = data.get("classification")
        labels = CLASSIFICATION_LABELS.get(cls, {}) if isinstance(cls, str) else {}
        link_id, section = finding_area(data, dossier)
        decision = _last_decision(data)
        who = dossier.raised_by.get(rec.id)
        by = decision.get("by")
        rows.append(
            {
                "finding_id": rec.id,
                "inspection_id": dossier.inspection_id,
                "title": data.get("title"),
                "classification": cls,
                "pics_label": labels.get("pics"),
                "nmpa_label": labels.get("nmpa"),
                "nmpa_label_zh": labels.get("nmpa_zh"),
                "original_classification": data.get("original_classification"),
                "status": data.get("status", "draft"),
                "merged_into": data.get("merged_into"),
                "merged_from": data.get("merged_from") or [],
                "area_link": link_id or "general",
                "area_section": section,
                "linked_items": data.get("linked_items") or [],
                "references": [_ref_text(r) for r in data.get("references") or []],
                "objective_evidence": data.get("objective_evidence"),
                "evidence_hashes": data.get("evidence_hashes") or [],
                "comments": len(data.get("comments") or []),
                "last_decision": decision.get("decision"),
                "last_decision_by": dossier.people[by].name
                if isinstance(by, str) and by in dossier.people
                else by,
                "last_decision_at": decision.get("at"),
                "last_decision_reason": decision.get("reason"),
                "open_conflicts": data.get("open_conflicts") or [],
                "raised_by": who.name if who else None,
                "raised_by_authority": who.authority_id if who else None,
                "created_at": rec.created_at.isoformat(),
                "updated_at": rec.updated_at.isoformat(),
            }
        )
    return rows


def response_rows(dossier: Dossier) -> list[dict[str, Any]]:
    rows = []
    for rec in dossier.responses:
        key = parse_response_id(rec.id)
        link = dossier.link(key.link_id) if key else None
        found = find_item(link.template, key.item_key) if key and link else None
        section, item = found if found else (None, None)
        by = last_by(rec, "value")
        value = rec.data.get("value")
        rows.append(
            {
                "response_id": rec.id,
                "inspection_id": dossier.inspection_id,
                "link_id": key.link_id if key else None,
                "stage_type": link.stage_type if link else None,
                "checklist_version": link.version_id if link else None,
                "section_key": section.key if section else None,
                "section_title_en": section.title.en if section else None,
                "section_title_zh": section.title.zh if section else None,
                "item_key": key.item_key if key else None,
                "prompt_en": item.prompt.en if item else None,
                "prompt_zh": item.prompt.zh if item else None,
                "repeat": key.repeat if key else None,
                "value": value,
                "unit": item.unit if item else None,
                "note": rec.data.get("note"),
                "evidence": rec.data.get("evidence") or [],
                "answered_by": dossier.people[by].name if by and by in dossier.people else by,
                "updated_at": rec.updated_at.isoformat(),
            }
        )
    return rows


def findings_csv(dossier: Dossier) -> str:
    """The inspection's findings, one row each, most severe first."""
    return to_csv(FINDING_COLUMNS, finding_rows(dossier))


def responses_csv(dossier: Dossier) -> str:
    """The inspection's answers, one row per item and repeat, in checklist order."""
    return to_csv(RESPONSE_COLUMNS, response_rows(dossier))


def _header(dossier: Dossier) -> dict[str, Any]:
    return {
        "id": dossier.inspection_id,
        **dossier.inspection,
        "site": dossier.site,
        "organisation": dossier.organisation,
        "product": dossier.product,
        "chain": {"id": dossier.chain.get("id"), "name": dossier.chain.get("name")},
        "links": [
            {
                "position": lk.position,
                "id": lk.link_id,
                "stage_type": lk.stage_type,
                "stage_title": {"en": lk.stage_title_en, "zh": lk.stage_title_zh},
                "hands_over": lk.hands_over,
                "checklist_version": lk.version_id,
            }
            for lk in dossier.links
        ],
        "lead_authority": dossier.lead_authority,
        "participating_authorities": dossier.participating_authorities,
        "team": dossier.team,
    }


def export_json(dossier: Dossier) -> bytes:
    """One JSON document: the inspection header (site, organisation, product, links
    with pinned checklist versions, authorities, team), every finding, response and
    sign-off with its id, revision and times. Engine bookkeeping is left out."""
    findings = []
    for rec, row in zip(dossier.findings, finding_rows(dossier), strict=True):
        who = dossier.raised_by.get(rec.id)
        findings.append(
            {
                "id": rec.id,
                "rev": rec.rev,
                "created_at": rec.created_at,
                "updated_at": rec.updated_at,
                "raised_by": who,
                "area": {"link_id": row["area_link"], "section_key": row["area_section"]},
                "labels": CLASSIFICATION_LABELS.get(row["classification"] or "", None),
                **public(rec),
            }
        )
    responses = []
    for rec, row in zip(dossier.responses, response_rows(dossier), strict=True):
        responses.append(
            {
                "id": rec.id,
                "rev": rec.rev,
                "updated_at": rec.updated_at,
                "link_id": row["link_id"],
                "section_key": row["section_key"],
                "item_key": row["item_key"],
                "repeat": row["repeat"],
                "answered_by": row["answered_by"],
                **public(rec),
            }
        )
    signoffs = [
        {"id": r.id, "rev": r.rev, "updated_at": r.updated_at, **public(r)}
        for r in dossier.signoffs
    ]
    doc = {
        "format": EXPORT_FORMAT,
        "generated_at": dossier.generated_at,
        "generated_by": dossier.generated_by,
        "inspection": _header(dossier),
        "findings": findings,
        "responses": responses,
        "signoffs": signoffs,
    }
    return msgspec.json.encode(doc)
