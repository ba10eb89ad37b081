"""The inspection report as PDF, rendered by the server (WeasyPrint): its text, read
back with pypdf, holds the deficiency list in order and the conclusion, Chinese
included (the CJK font is embedded)."""

from __future__ import annotations

import io
import time

from pypdf import PdfReader

from tests.conftest import login
from tests.console.test_console_http import sign_in
from tests.server.test_conclusion import INSP, PW, URL, accept_all, push_findings

TITLES = {  # pushed in this order; the list orders them critical, major, other
    "f-o": ("other", "Logbook entries unsigned in the cold room"),
    "f-m": ("major", "LN2 alarm never tested"),
    "f-c": ("critical", "Batch records rewritten after QA review"),
}


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


async def concluded(demo) -> None:
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    await push_findings(li, {fid: cls for fid, (cls, _) in TITLES.items()})
    for fid, (_, title) in TITLES.items():  # their titles
        r = await li.post(
            "/api/v1/sync/push",
            json={
                "mutations": [
                    {
                        "mid": f"t:{fid}",
                        "kind": "finding",
                        "id": fid,
                        "fields": {"title": title},
                        "base_rev": 1,
                        "hlc": f"{int(time.time() * 1000) + 5:015d}.00000.t",
                        "device_time": "2026-12-06T10:00:00+08:00",
                    }
                ]
            },
        )
        assert r.json()["results"][0]["status"] in ("applied", "merged"), r.text
    for to in ("fieldwork_done", "under_review"):
        assert (
            await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
        ).status_code == 200
    await accept_all(sup, list(TITLES))
    r = await sup.put(
        URL, json={"password": PW, "conclusion": "does_not_meet", "reason": "数据完整性问题"}
    )
    assert r.status_code == 200, r.text


async def test_the_report_pdf_lists_the_deficiencies_in_order_and_the_conclusion(demo):
    await concluded(demo)
    sup = await login(demo, "sup.js")
    started = time.perf_counter()
    r = await sup.get(f"/api/v1/inspections/{INSP}/report.pdf")
    took = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"%PDF-")
    text = text_of(r.content)
    listed = text.index("Classified deficiency list")
    positions = [
        text.index(TITLES[fid][1], listed) for fid in ("f-c", "f-m", "f-o")
    ]  # critical, then major, then other
    assert positions == sorted(positions), positions
    assert "缺陷分级清单" in text  # Chinese, from the embedded CJK font
    at = text.index("Inspection conclusion")
    assert "Does not meet requirements" in text[at:] and "不符合要求" in text[at:]
    assert "数据完整性问题" in text[at:] and "Supervisor Chen (Jiangsu)" in text[at:]
    assert took < 30
    # another province's supervisor: 404, as the HTML report
    zj = await login(demo, "sup.zj")
    assert (await zj.get(f"/api/v1/inspections/{INSP}/report.pdf")).status_code == 404


async def test_the_console_offers_the_same_pdf(demo):
    await concluded(demo)
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    page = await demo.get(f"/console/inspections/{INSP}")
    assert f"/console/inspections/{INSP}/report.pdf" in page.text and "报告（PDF）" in page.text
    r = await demo.get(f"/console/inspections/{INSP}/report.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert "不符合要求" in text_of(r.content)
