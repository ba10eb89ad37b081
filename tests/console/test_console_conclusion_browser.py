"""The inspection conclusion in a real Chromium against the real server process: a
tablet (the tablet CLI) sends findings, the supervisor accepts them on their pages,
reads the suggested conclusion on the inspection page and concludes otherwise, with a
reason. Screenshots at 1280x800 and 800x1280, zh and en."""

from __future__ import annotations

import re

import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import DESKTOP, Tablet, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao)


def test_supervisor_reads_the_suggestion_and_concludes(browser, server, tmp_path):
    li = Tablet(server, tmp_path / "li", "insp.js1")
    li.sync()
    titles = {
        "Cell bank inventory not reconciled": "major",
        "LN2 alarm test overdue": "major",
        "Logbook entry unsigned": "other",
    }
    ids = [
        li.run("finding", "add", INSP, "--title", title, "--classification", cls).split()[-1]
        for title, cls in titles.items()
    ]
    li.sync()

    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, server)
    sign_in(page, server, "sup.js")
    page.goto(f"{server}/console/inspections/{INSP}")
    card = page.get_by_test_id("conclusion")
    assert "检查结论在“现场检查完成”或“审核中”阶段确定。" in card.inner_text()
    for _ in ("fieldwork_done", "under_review"):
        page.get_by_test_id("move").click()
        page.wait_for_url(re.compile(r"moved="))
    assert "确定结论前，请先对每项缺陷作出决定" in card.inner_text()

    for fid in ids:  # accept each on its page, with a reason
        page.goto(f"{server}/console/findings/{fid}")
        form = page.locator('form[data-decision="accept"]')
        form.locator('input[name="reason"]').fill("核实无误")
        form.locator('input[name="password"]').fill(DEMO_PASSWORD)
        form.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"done=accept"))

    page.goto(f"{server}/console/inspections/{INSP}")
    suggested = page.get_by_test_id("conclusion-suggested")
    assert "建议结论：基本符合要求" in suggested.inner_text()
    assert "主要缺陷 2 项" in suggested.inner_text()
    assert "有多项主要缺陷" in page.get_by_test_id("conclusion-caution").inner_text()
    assert page.locator('input[name="conclusion"][value="basically_meets"]').is_checked()
    page.locator("#conclusion").scroll_into_view_if_needed()
    shoot(page, "conclusion-form-zh")

    # the two majors are related (one system): does not meet, with the reason
    page.locator('input[name="conclusion"][value="does_not_meet"]').check()
    page.locator('.conclusion-form textarea[name="reason"]').fill(
        "两项主要缺陷均涉及细胞库管理，表明该系统不能有效运行"
    )
    page.locator('.conclusion-form input[name="password"]').fill(DEMO_PASSWORD)
    page.get_by_test_id("conclude").click()
    page.wait_for_url(re.compile(r"concluded=1"))
    assert page.get_by_text("结论已确定。").is_visible()
    assert page.get_by_test_id("conclusion-set").inner_text() == "不符合要求"
    text = card.inner_text()
    assert "未采纳建议结论（“基本符合要求”）" in text and "细胞库管理" in text
    assert "Supervisor Chen (Jiangsu) 签署" in text
    shoot(page, "conclusion-set-zh")

    page.click("a.lang")
    page.wait_for_load_state()
    page.goto(f"{server}/console/inspections/{INSP}")
    assert page.get_by_test_id("conclusion-set").inner_text() == "Does not meet requirements"
    assert "Overrides the suggestion" in card.inner_text()
    shoot(page, "conclusion-set-en")
    assert outside == [], outside
    ctx.close()
