"""The documents an office files, as HTML, in Chinese and in English from the same data:
the on-site inspection report, the deficiency list (numbered, both labels, the item and
the source it breaks, evidence as thumbnails with their SHA-256, missing evidence said
plainly) and the rectification status table (response, deadline, overdue, assessment);
the language validated; scope as every report route; the console's links."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from server.demo import DEMO_PASSWORD
from sync.report_labels import LABELS
from tests.conftest import Session, login
from tests.console.test_console_http import sign_in
from tests.server.test_conclusion import INSP, URL, accept_all
from tests.server.test_evidence import jpeg, sha, upload
from tests.server.test_rectification import upload_for_rectification

PHOTO = jpeg(31)
RECT_PHOTO = jpeg(32)
MISSING = "ab" * 32  # named by a finding, never uploaded

# pushed in this order; the list orders them critical, major, other
FINDINGS = {
    "f-o": ("other", "Logbook entries unsigned in the cold room", "l2-cellbank:cb_history"),
    "f-m": ("major", "LN2 alarm never tested", "l4-purif:hp_resin_lifetime"),
    "f-c": ("critical", "Batch records rewritten after QA review", None),
}
TITLES_IN_ORDER = [FINDINGS[f][1] for f in ("f-c", "f-m", "f-o")]
REASON = "数据完整性问题"


async def _push(s: Session, fid: str, n: int, **fields) -> None:
    r = await s.post(
        "/api/v1/sync/push",
        json={
            "mutations": [
                {
                    "mid": f"d:{fid}:{n}",
                    "kind": "finding",
                    "id": fid,
                    "fields": fields,
                    "base_rev": 0,
                    "hlc": f"{int(time.time() * 1000) + n:015d}.00000.d",
                    "device_time": datetime.now(UTC).isoformat(),
                }
            ]
        },
    )
    assert r.json()["results"][0]["status"] == "applied", r.text


async def filed(demo, clock=None) -> Session:
    """The demo inspection taken to the end: three findings (one with a photo and a
    file never uploaded), accepted, concluded (does not meet), closed; the major's
    rectification answered with a photo; with a clock, 65 days later (every deadline
    passed: the unanswered ones overdue). Returns the Jiangsu supervisor."""
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    for n, (fid, (cls, title, item)) in enumerate(FINDINGS.items()):
        fields = {
            "inspection_id": INSP,
            "title": title,
            "classification": cls,
            "status": "submitted",
            "objective_evidence": f"Seen on site: {title.lower()}",
        }
        if item:
            fields["linked_items"] = [item]
        if fid == "f-c":
            fields["evidence_hashes"] = [sha(PHOTO), MISSING]
            fields["references"] = [{"document": "China GMP (2010)", "section": "Article 159"}]
        await _push(li, fid, n, **fields)
    await upload(li, PHOTO)
    for to in ("fieldwork_done", "under_review"):
        r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
        assert r.status_code == 200, r.text
    await accept_all(sup, list(FINDINGS))
    r = await sup.put(
        URL, json={"password": DEMO_PASSWORD, "conclusion": "does_not_meet", "reason": REASON}
    )
    assert r.status_code == 200, r.text
    r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": "closed"})
    assert r.status_code == 200, r.text
    photo = await upload_for_rectification(li, RECT_PHOTO)
    r = await sup.put(
        "/api/v1/rectifications/f-m/response",
        json={
            "root_cause": "Alarm test missing from the maintenance plan",
            "actions": "Monthly alarm test added",
            "completion_date": "2027-01-15",
            "submitted_by": "Wang Fang, QA head",
            "evidence_hashes": [photo],
        },
    )
    assert r.status_code == 200, r.text
    r = await sup.post(
        "/api/v1/rectifications/f-m/assessments",
        json={"outcome": "more_needed", "comment": "No record of the first test"},
    )
    assert r.status_code == 200, r.text
    if clock is not None:
        clock.advance(days=65)
    return sup


def test_both_catalogues_have_the_same_words():
    assert set(LABELS["zh"]) == set(LABELS["en"])
    for lang in ("zh", "en"):
        assert all(v.strip() for v in LABELS[lang].values()), lang


def _section(html: str, start: str, end: str | None = None) -> str:
    at = html.index(start)
    return html[at : html.index(end, at)] if end else html[at:]


async def test_the_three_documents_in_chinese_and_english(demo, moving_clock):
    sup = await filed(demo, moving_clock)
    base = f"/api/v1/inspections/{INSP}"
    pages = {}
    for kind in ("report", "deficiencies", "rectifications"):
        for lang in ("zh", "en"):
            r = await sup.get(f"{base}/{kind}.html?lang={lang}")
            assert r.status_code == 200, r.text
            assert "img-src data:" in r.headers["content-security-policy"]
            pages[kind, lang] = r.text
        default = await sup.get(f"{base}/{kind}.html")
        assert default.text.split("<footer>")[0] == pages[kind, "zh"].split("<footer>")[0]

    for (kind, lang), html in pages.items():
        assert html.startswith("<!DOCTYPE html>")
        assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in html
        for external in ("<script", "<link", "@import", "url(", "http:", "https:"):
            assert external not in html, (kind, lang, external)
        assert not re.search(r'src="(?!data:image/jpeg;base64,)', html), (kind, lang)

    zh, en = pages["report", "zh"], pages["report", "en"]
    assert "<h1>现场检查报告</h1>" in zh and "<h1>On-site inspection report</h1>" in en
    for words in ("一、检查基本情况", "二、检查依据", "三、检查范围", "四、检查组", "六、检查结论"):
        assert words in zh and words not in en
    for words in ("1. Inspection details", "2. Basis", "3. Scope", "4. Inspection team"):
        assert words in en and words not in zh
    assert "常规 GMP 检查" in zh and "Routine GMP inspection" in en
    assert "JS20260011" in zh and "Huaxin Suzhou antibody plant" in zh
    assert "江苏省药品监督管理局" in zh and "Jiangsu Medical Products Administration" in en
    assert "Inspector Li (Jiangsu)" in zh and "组长" in zh and "lead inspector" in en
    assert "cell_bank-v" in zh and "EU GMP Annex 2" in zh  # the basis: versions, sources
    concl_zh = _section(zh, "六、检查结论")
    assert "不符合要求" in concl_zh and REASON in concl_zh and "Supervisor Chen" in concl_zh
    concl_en = _section(en, "6. Inspection conclusion")
    assert "Does not meet requirements" in concl_en and "不符合要求" not in concl_en
    summary = _section(en, "5. Summary", "6. Inspection")
    positions = [summary.index(t) for t in TITLES_IN_ORDER]
    assert positions == sorted(positions)

    # the deficiency list: numbered by severity, both labels, item, source, evidence
    zh, en = pages["deficiencies", "zh"], pages["deficiencies", "en"]
    assert "<h1>缺陷项目表</h1>" in zh and "<h1>Deficiency list</h1>" in en
    rows = re.findall(r"<tr><td>([CMO]\d)</td><td><strong>([^<]+)</strong>", en)
    assert rows == list(zip(["C1", "M1", "O1"], TITLES_IN_ORDER, strict=True))
    assert "NMPA 严重缺陷 · PIC/S 关键（critical）" in zh
    assert "NMPA serious · PIC/S critical" in en and "严重缺陷" not in en
    major = _section(en, "<td>M1</td>", "<td>O1</td>")
    assert "hp_resin_lifetime" in major and "ICH Q7" in major  # the item and its sources
    critical = _section(en, "<td>C1</td>", "<td>M1</td>")
    assert "China GMP (2010), Article 159" in critical  # the finding's own reference
    assert "no checklist item linked" in critical
    # evidence: the photo as a thumbnail, the file never received said plainly
    assert critical.count('<img src="data:image/jpeg;base64,') == 1
    assert "[2] missing: the server has not received this file" in critical
    assert "缺失：服务器尚未收到该文件" in zh
    notes = _section(en, "Evidence files, SHA-256")
    assert notes.index(sha(PHOTO)) < notes.index(MISSING)

    # the rectification status table
    zh, en = pages["rectifications", "zh"], pages["rectifications", "en"]
    assert "<h1>整改情况表</h1>" in zh and "<h1>Rectification status table</h1>" in en
    m1 = _section(en, "<td>M1</td>", "</tr>")
    assert "Alarm test missing from the maintenance plan" in m1 and "Wang Fang, QA head" in m1
    assert "more needed" in m1 and "No record of the first test" in m1
    assert re.search(r"overdue by \d+ days", m1)  # 30 days for a major, 65 gone
    assert '<img src="data:image/jpeg;base64,' in m1
    c1 = _section(en, "<td>C1</td>", "</tr>")
    assert "no response yet" in c1 and "overdue by" in c1
    assert "待回复" in zh and "需补充整改" in zh and "已逾期" in zh

    # the signature page: every signature, by the account's name, still matching
    page = _section(pages["report", "en"], "Electronic signatures", "Document manifest")
    assert page.count("Supervisor Chen (Jiangsu)") == 4  # three decisions, the conclusion
    assert page.count("<td>matches</td>") == 4
    manifest = _section(pages["report", "en"], "Document manifest")
    assert sha(PHOTO) in manifest and MISSING in manifest and sha(RECT_PHOTO) in manifest


@pytest.mark.parametrize("suffix", ["report.html", "deficiencies.pdf", "rectifications.html"])
async def test_the_language_is_checked(demo, suffix):
    sup = await login(demo, "sup.js")
    r = await sup.get(f"/api/v1/inspections/{INSP}/{suffix}?lang=fr")
    assert r.status_code == 400 and r.json()["field"] == "lang"
    if suffix.endswith(".html"):  # (the PDFs are rendered elsewhere: they are slow)
        r = await sup.get(f"/api/v1/inspections/{INSP}/{suffix}?lang=en")
        assert r.status_code == 200 and '<html lang="en">' in r.text


async def test_the_console_links_the_documents_in_its_language(demo):
    for lang in ("zh", "en"):
        assert (await sign_in(demo, "sup.js", lang=lang)).status_code == 303
        page = (await demo.get(f"/console/inspections/{INSP}")).text
        for kind in ("report", "deficiencies", "rectifications"):
            for fmt in ("html", "pdf"):
                assert f"/console/inspections/{INSP}/{kind}.{fmt}?lang={lang}" in page
        assert ("缺陷项目表" in page) == (lang == "zh")
        r = await demo.get(f"/console/inspections/{INSP}/rectifications.html")
        assert r.status_code == 200
        assert ("<h1>整改情况表</h1>" if lang == "zh" else "Rectification status table") in r.text
        r = await demo.get(f"/console/inspections/{INSP}/report.html?lang=xx")
        assert r.status_code == 400
