"""The documents' rules as properties, without a server: the deficiency numbering, text
from data always escaped, each document in one language only, and the manifest naming
every evidence file once with whether the server holds it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.documents import KINDS, DocumentInput, EvidenceView, deficiency_numbers, render
from sync.manifest import build, canonical
from sync.models import StoredRecord
from sync.report_labels import LABELS
from sync.reports import AuthorityRef, Dossier, severity_rank

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
CLASSES = st.sampled_from(["critical", "major", "other", None])
STATUSES = st.sampled_from(["draft", "submitted", "accepted", "withdrawn", "merged", "returned"])


def finding(n: int, cls: str | None, status: str, title: str, hashes: list[str]) -> StoredRecord:
    data = {"title": title, "status": status, "evidence_hashes": hashes}
    if cls:
        data["classification"] = cls
    return StoredRecord(
        kind="finding", id=f"f{n}", data=data, rev=1, seq=n, created_at=NOW, updated_at=NOW
    )


def dossier(findings: list[StoredRecord]) -> Dossier:
    findings = sorted(findings, key=lambda r: (severity_rank(r.data), r.id))
    lead = AuthorityRef(id="js-mpa", name="Jiangsu MPA", name_zh="江苏省药品监督管理局")
    return Dossier(
        generated_at=NOW,
        generated_by="sup.js",
        inspection_id="insp-1",
        inspection={"title": "Routine", "type": "routine", "status": "closed"},
        site={"id": "site-1", "name": "Site"},
        organisation={"id": "org"},
        chain={"id": "chain"},
        product={"id": "prod"},
        links=[],
        lead_authority=lead,
        participating_authorities=[],
        team=[],
        findings=findings,
        responses=[],
        signoffs=[],
        people={},
        raised_by={},
        authorities={"js-mpa": lead},
        cursor=7,
    )


@given(st.lists(st.tuples(CLASSES, STATUSES), max_size=30))
def test_numbers_run_per_classification_and_skip_what_is_not_counted(rows):
    found = [finding(n, cls, status, "t", []) for n, (cls, status) in enumerate(rows)]
    numbers = deficiency_numbers(found)
    counted = [r for r in found if r.data["status"] not in ("withdrawn", "merged")]
    assert set(numbers) == {r.id for r in counted}
    for letter, cls in (("C", "critical"), ("M", "major"), ("O", "other"), ("U", None)):
        mine = [numbers[r.id] for r in counted if r.data.get("classification") == cls]
        assert mine == [f"{letter}{k}" for k in range(1, len(mine) + 1)]


SHA = st.text("0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(CLASSES, st.text(max_size=40), st.lists(SHA, max_size=3)), max_size=6),
    st.sampled_from(["zh", "en"]),
    st.dictionaries(SHA, st.sampled_from(["stored", "missing", "lost"]), max_size=4),
)
def test_every_document_escapes_data_and_speaks_one_language(rows, lang, held):
    evil = [f"<b>{title}</b><script>x</script>" for _, title, _ in rows]
    found = [
        finding(n, cls, "accepted", evil[n], hashes) for n, (cls, _, hashes) in enumerate(rows)
    ]
    evidence = {h: EvidenceView(sha256=h, state=s) for h, s in held.items()}  # type: ignore[arg-type]
    data = DocumentInput(
        dossier=dossier(found), signatures=[], conclusion=None, rectifications=[], evidence={}
    )
    data.evidence = evidence
    manifest = build(
        "deficiencies", lang, [data], generated_at=NOW, generated_by="sup.js", key_sha256="k"
    )
    named = sorted({h for _, _, hashes in rows for h in hashes})
    assert [x["sha256"] for x in manifest["evidence"]] == named
    for x in manifest["evidence"]:
        assert x["state"] == held.get(x["sha256"], "missing")
    assert canonical(manifest) == canonical(dict(reversed(list(manifest.items()))))
    other = "en" if lang == "zh" else "zh"
    # words only the other language's catalogue has (longer than a few letters)
    foreign = {
        v for k, v in LABELS[other].items() if v != LABELS[lang][k] and len(v) > 12 and "{" not in v
    }
    for kind in KINDS:
        html = render(kind, data, lang, manifest)  # type: ignore[arg-type]
        assert "<script>" not in html and "<b>" not in html
        for words in foreign:
            assert words not in html, (kind, lang, words)
