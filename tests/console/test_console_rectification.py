"""The overdue rectifications page and the inspection page's rectification card, in
process with a clock the test moves: what is overdue, in words, zh and en, scoped."""

from __future__ import annotations

from tests.conftest import login
from tests.console.test_console_http import sign_in
from tests.server.test_conclusion import INSP, accept_all, push_findings


async def test_overdue_page_lists_what_is_late_and_the_card_says_where_each_stands(
    demo, moving_clock
):
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    await push_findings(li, {"f-a": "major", "f-b": "other"})
    for to in ("fieldwork_done", "under_review"):
        await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
    await accept_all(sup, ["f-a", "f-b"])
    r = await sup.put(
        "/api/v1/rectifications/f-a/response",
        json={
            "root_cause": "No alarm test in the plan",
            "actions": "Monthly test added",
            "completion_date": "2030-01-31",
            "submitted_by": "Wang Fang, QA",
        },
    )
    assert r.status_code == 200

    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    page = await demo.get("/console/rectifications")
    assert "整改逾期清单" in page.text and "没有逾期的整改。" in page.text
    card = (await demo.get(f"/console/inspections/{INSP}")).text
    assert "整改情况（CAPA）" in card
    assert "回复待评估" in card and "待企业回复" in card
    assert "根本原因：No alarm test in the plan" in card and "Wang Fang, QA 的回复" in card

    moving_clock.advance(days=31)  # the major's 30 days are over; the other's 60 are not
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303  # a new session
    page = await demo.get("/console/rectifications")
    assert 'data-finding="f-a"' in page.text and 'data-finding="f-b"' not in page.text
    assert "1 天" in page.text and "主要缺陷（PIC/S）" in page.text
    assert "NMPA：主要缺陷" in page.text and "回复待评估" in page.text
    card = (await demo.get(f"/console/inspections/{INSP}")).text
    assert "逾期 1 天" in card

    demo.headers["Accept-Language"] = "en"
    await demo.get("/console/lang", params={"to": "en", "next": "/"})
    page = await demo.get("/console/rectifications")
    assert "Overdue rectifications" in page.text and "1 day(s)" in page.text
    assert "Response to assess" in page.text

    # another province sees none of it
    assert (await sign_in(demo, "sup.zj", lang="en")).status_code == 303
    page = await demo.get("/console/rectifications")
    assert "No rectification is overdue." in page.text
