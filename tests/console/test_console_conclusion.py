"""The inspection page's conclusion card over HTTP: the rule's suggestion in words, the
form for the lead authority's supervisor, an override shown as one, refusals at the
form, zh and en, scope like the API."""

from __future__ import annotations

from server.demo import DEMO_PASSWORD
from tests.conftest import login
from tests.console.test_console_http import csrf_of, sign_in
from tests.server.test_conclusion import INSP, accept_all, push_findings

PAGE = f"/console/inspections/{INSP}"


async def ready_for_conclusion(demo) -> None:
    """Findings from a tablet, the inspection under review, every finding accepted."""
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    await push_findings(li, {"f-a": "major", "f-b": "major", "f-c": "other"})
    for to in ("fieldwork_done", "under_review"):
        r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
        assert r.status_code == 200
    await accept_all(sup, ["f-a", "f-b", "f-c"])


async def test_the_page_suggests_and_the_supervisor_concludes_with_a_reason(demo):
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    page = await demo.get(PAGE)
    assert "检查结论" in page.text and "尚未作出结论。" in page.text
    # still in progress: the card says why there is no form
    assert "检查结论在“现场检查完成”或“审核中”阶段确定。" in page.text
    assert 'action="/console/inspections/insp-ds-routine/conclusion"' not in page.text

    await ready_for_conclusion(demo)
    page = await demo.get(PAGE)
    assert "根据已接受的缺陷，建议结论：基本符合要求" in page.text
    assert "主要缺陷 2 项" in page.text and "其他缺陷（PIC/S；NMPA：一般缺陷）1 项" in page.text
    assert "有多项主要缺陷" in page.text  # the caution: are they related?
    assert 'value="basically_meets" checked' in page.text  # the suggestion preselected
    token = csrf_of(page.text)
    url = f"{PAGE}/conclusion"

    r = await demo.post(
        url, data={"_csrf": token, "password": DEMO_PASSWORD, "conclusion": "meets", "reason": " "}
    )
    assert r.status_code == 422 and "请填写理由。" in r.text
    r = await demo.post(
        url, data={"_csrf": token, "password": DEMO_PASSWORD, "conclusion": "fine", "reason": "x"}
    )
    assert r.status_code == 422 and "请选择结论。" in r.text
    r = await demo.post(url, data={"_csrf": token, "conclusion": "meets", "reason": "x"})
    assert r.status_code == 422 and "签署须再次输入您的密码。" in r.text
    r = await demo.post(
        url, data={"_csrf": token, "conclusion": "meets", "reason": "x", "password": "guess-1234"}
    )
    assert r.status_code == 403 and "密码不正确：签署须输入签署人本人的密码。" in r.text
    assert "guess-1234" not in r.text  # never shown again
    assert "尚未作出结论。" in r.text  # nothing signed
    r = await demo.post(url, data={"conclusion": "meets", "reason": "x", "password": DEMO_PASSWORD})
    assert r.status_code == 403  # no CSRF token
    r = await demo.post(
        url,
        data={
            "_csrf": token,
            "password": DEMO_PASSWORD,
            "conclusion": "does_not_meet",
            "reason": "相关主要缺陷",
            "rev": "0",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("concluded=1#conclusion")
    page = await demo.get(PAGE + "?concluded=1")
    assert "结论已确定。" in page.text
    assert "不符合要求" in page.text and "未采纳建议结论（“基本符合要求”）。" in page.text
    assert "相关主要缺陷" in page.text and "Supervisor Chen (Jiangsu) 签署" in page.text
    assert "修改结论" in page.text  # may change it until closing
    # a stale form (rev 0 again) is refused at the form, in Chinese
    r = await demo.post(
        url,
        data={
            "_csrf": token,
            "password": DEMO_PASSWORD,
            "conclusion": "meets",
            "reason": "x",
            "rev": "0",
        },
    )
    assert r.status_code == 412 and "请重新读取后再试" in r.text

    # English, the same card
    demo.headers["Accept-Language"] = "en"
    await demo.get("/console/lang", params={"to": "en", "next": "/"})
    page = await demo.get(PAGE)
    assert "Suggested from the accepted findings: Basically meets requirements" in page.text
    assert "Does not meet requirements" in page.text
    assert "Overrides the suggestion (“Basically meets requirements”)." in page.text


async def test_other_authority_gets_404_and_its_form_is_refused(demo):
    await ready_for_conclusion(demo)
    assert (await sign_in(demo, "sup.zj", lang="en")).status_code == 303
    assert (await demo.get(PAGE)).status_code == 404
    home = await demo.get("/console/queue")
    r = await demo.post(
        f"{PAGE}/conclusion",
        data={
            "_csrf": csrf_of(home.text),
            "conclusion": "meets",
            "reason": "x",
            "password": DEMO_PASSWORD,
        },
    )
    assert r.status_code == 404
    # and the admin sees the card without a form
    assert (await sign_in(demo, "admin", lang="en")).status_code == 303
    page = await demo.get(PAGE)
    assert "Only a supervisor of the lead authority sets the conclusion." in page.text
