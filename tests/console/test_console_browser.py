"""The console in a real Chromium (Debian's, driven by Playwright) against the real server
process, as a supervisor would use it, with two inspectors' tablets (the tablet CLI,
``inspectsync tablet``) syncing with the same server.

The browser, the server process and the helpers are in ``conftest.py``. Screenshots of
each main page, at 1280x800 and at a 10-inch tablet's 800x1280, go to ``screenshots/``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import DESKTOP, SHOTS, Tablet, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao)


@pytest.fixture(scope="module")
def world(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two inspectors' tablets with a finding and its photo, edited by both offline:
    a classification conflict and a title conflict, made by real pushes."""
    tmp = tmp_path_factory.mktemp("tablets")
    li = Tablet(server, tmp / "li", "insp.js1")
    zhao = Tablet(server, tmp / "zhao", "insp.js2")
    li.sync()
    li.run("answer", INSP, "l2-cellbank", "cb_history", "yes", "--note", "file CB-17 seen")
    li.run("answer", INSP, "l2-cellbank", "cb_characterisation", "maybe")  # rejected: quarantined
    fid = li.run(
        "finding",
        "add",
        INSP,
        "--title",
        "LN2 level alarm not tested",
        "--classification",
        "major",
        "--item",
        "l2-cellbank:cb_history",
        "--evidence",
        "No test record of the LN2 low-level alarm in 2026.",
    ).split()[-1]
    from PIL import Image, ImageDraw

    photo = tmp / "ln2.jpg"
    img = Image.new("RGB", (640, 480), (90, 120, 160))
    ImageDraw.Draw(img).rectangle((200, 120, 440, 360), fill=(230, 230, 240))
    img.save(photo)
    li.run("finding", "edit", fid, "--photo", str(photo))
    assert "uploaded 1" in li.sync()
    zhao.sync()
    zhao.run(
        "finding", "add", INSP, "--title", "Logbook gaps in cold room", "--classification", "other"
    )
    # both edit the same finding offline, differently
    li.run("finding", "edit", fid, "--title", "LN2 alarm never tested", "--classification=critical")
    zhao.run(
        "finding", "edit", fid, "--title", "LN2 alarm untested since 2024", "--classification=other"
    )
    li.sync()
    zhao.sync()
    li.sync()
    assert "classification" in li.run("conflicts")
    return {"li": li, "zhao": zhao, "fid": fid, "base": server}


def test_supervisor_reviews_resolves_and_returns(browser, world):
    base, fid = world["base"], world["fid"]
    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, base)
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "登录控制台"
    shoot(page, "login-zh")
    sign_in(page, base, "sup.js")

    # the queue: critical first; the disputed classification shown as disputed
    row = page.locator(f'tr[data-finding="{fid}"]')
    assert "分级有争议" in row.inner_text()
    assert "关键缺陷" not in row.inner_text() and "其他缺陷" not in row.inner_text()
    assert page.get_by_test_id("count-disputed").inner_text().endswith("1")
    shoot(page, "queue-zh")

    # a tablet pushes: the open queue shows it by itself (the page asks every 10 s)
    zhao = world["zhao"]
    zhao.run("finding", "add", INSP, "--title", "Freezer door seal worn")
    zhao.sync()
    page.wait_for_selector("text=Freezer door seal worn", timeout=60_000)

    # filters: open conflict only, then one inspector's findings
    page.select_option('select[name="open_conflict"]', "true")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"open_conflict=true"))
    assert page.locator("tbody tr").count() == 1
    page.goto(base + "/console/queue")
    page.select_option('select[name="inspector"]', label="Inspector Zhao (Jiangsu)")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"inspector="))
    titles = page.locator("tbody tr td:nth-child(2) a").all_inner_texts()
    assert sorted(titles) == ["Freezer door seal worn", "Logbook gaps in cold room"]

    # English from here on (the switch in the header)
    page.click("a.lang")
    page.wait_for_load_state()
    assert "Review queue" in page.locator("h1").inner_text()
    page.goto(base + "/console/queue")
    shoot(page, "queue-en")

    # the finding: its photo as a thumbnail, opening full size
    page.click(f'tr[data-finding="{fid}"] a')
    page.wait_for_url(re.compile(rf"/console/findings/{fid}$"))
    assert "Disputed" in page.get_by_test_id("classification").inner_text()
    assert "Is the history of the cell line documented" in page.content()
    assert "file CB-17 seen" in page.content()  # the linked item's answer and note
    thumb = page.locator(".evidence img").first
    thumb.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", thumb.element_handle())
    with ctx.expect_page() as opened:
        page.click(".evidence a")
    full = opened.value
    full.wait_for_load_state()
    assert full.evaluate("document.images.length && document.images[0].naturalWidth") == 640
    full.close()
    assert "Inspector Li (Jiangsu)" in page.locator("ol.history").inner_text()
    shoot(page, "finding-disputed")

    # the conflicts, side by side; keep "critical" for the classification and a merged
    # title, each with a reason
    page.click("text=Resolve its conflicts")
    page.wait_for_url(re.compile(r"/console/conflicts"))
    shoot(page, "conflicts")
    cls = page.locator('section.conflict[data-field="classification"]')
    assert cls.locator("label.side").count() == 2
    text = cls.inner_text()
    assert "Inspector Li (Jiangsu)" in text and "Inspector Zhao (Jiangsu)" in text
    cls.locator("label.side", has_text="Critical").locator("input").check()
    cls.locator('input[name="reason"]').fill("No alarm test at all: risk to product")
    cls.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=1"))
    title = page.locator('section.conflict[data-field="title"]')
    title.locator('textarea[name="merged"]').fill("LN2 low-level alarm never tested")
    title.locator('input[name="reason"]').fill("Both inspectors' wording, merged")
    title.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=1"))
    assert "No open conflict." in page.content()

    # return the finding with a comment; the decision is signed
    page.goto(f"{base}/console/findings/{fid}")
    assert "Critical" in page.get_by_test_id("classification").inner_text()
    ret = page.locator('form[data-decision="return"]')
    ret.locator("textarea").fill("Attach the alarm test log for 2025 and 2026")
    ret.locator('input[name="reason"]').fill("Evidence thin")
    ret.locator('input[name="password"]').fill(DEMO_PASSWORD)
    ret.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=return"))
    assert page.get_by_test_id("status").inner_text() == "Returned to inspector"
    decisions = page.locator("#decisions").inner_text()
    assert "Signed by Supervisor Chen (Jiangsu) (reviewed)" in decisions
    shoot(page, "finding-returned")

    # its inspection: progress per link, the rejected answer, closing refused with why
    page.click("dl a[href^='/console/inspections/']")
    page.wait_for_url(re.compile(rf"/console/inspections/{INSP}$"))
    assert "1 of" in page.get_by_test_id("progress-l2-cellbank").inner_text()
    assert "cb_characterisation" in page.content()  # quarantined, with its reason
    shoot(page, "inspection")
    for _ in ("fieldwork_done", "under_review"):
        page.get_by_test_id("move").click()
        page.wait_for_url(re.compile(r"moved="))
    assert page.get_by_test_id("status").inner_text() == "Under review"
    page.get_by_test_id("move").click()  # close
    page.wait_for_load_state()
    error = page.get_by_test_id("error").inner_text()
    assert "decide every finding" in error and "LN2 low-level alarm never tested" in error
    shoot(page, "inspection-close-refused")

    # the product's chain: every link in order, the finding under its link
    page.click("dl a[href$='/chain']")
    page.wait_for_url(re.compile(r"/console/products/.+/chain$"))
    cell_bank = page.locator('li.link[data-position="2"]')
    assert "LN2 low-level alarm never tested" in cell_bank.inner_text()
    assert page.get_by_test_id("total-critical").inner_text().endswith("1")
    shoot(page, "chain")

    # the same finding in Chinese
    page.goto(f"{base}/console/findings/{fid}")
    page.click("a.lang")
    page.wait_for_url(re.compile(rf"/console/findings/{fid}$"))
    assert page.get_by_test_id("status").inner_text() == "已退回检查员"
    assert "关键缺陷" in page.get_by_test_id("classification").inner_text()
    assert "NMPA：严重缺陷" in page.get_by_test_id("classification").inner_text()
    shoot(page, "finding-zh")
    assert outside == [], outside  # nothing was fetched from anywhere else
    ctx.close()

    # the tablet's next pull has it all
    li = world["li"]
    li.sync()
    shown = li.run("finding", "show", fid)
    assert "returned" in shown and "Attach the alarm test log" in shown
    assert "LN2 low-level alarm never tested" in shown and "critical" in shown


def test_another_provinces_supervisor_gets_404_by_url(browser, world):
    base, fid = world["base"], world["fid"]
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = ctx.new_page()
    sign_in(page, base, "sup.zj")
    assert page.locator(f'tr[data-finding="{fid}"]').count() == 0
    r = page.goto(f"{base}/console/findings/{fid}")
    assert r.status == 404 and "Not found, or not yours to see." in page.content()
    shoot(page, "not-found")
    sha = re.search(r"[0-9a-f]{64}", json.dumps(world["li"].run("finding", "show", fid)))
    assert sha is not None
    assert page.goto(f"{base}/console/evidence/{sha.group(0)}").status == 404
    assert page.goto(f"{base}/console/evidence/{sha.group(0)}/thumbnail").status == 404
    for url in (f"/console/inspections/{INSP}", f"/console/inspections/{INSP}/report.html"):
        assert page.goto(base + url).status == 404, url
    ctx.close()


def test_a_form_without_its_token_is_refused_and_logout_revokes(browser, world):
    base, fid = world["base"], world["fid"]
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = ctx.new_page()
    sign_in(page, base, "sup.js")
    page.goto(f"{base}/console/findings/{fid}")
    form = page.locator('form[data-decision="accept"]')
    form.locator('input[name="_csrf"]').evaluate("(el) => el.remove()")
    form.locator('input[name="reason"]').fill("fine")
    form.locator('input[name="password"]').fill(DEMO_PASSWORD)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "This form has expired or did not come from this console." in page.content()
    page.goto(f"{base}/console/findings/{fid}")
    assert page.get_by_test_id("status").inner_text() == "Returned to inspector"  # unchanged

    cookie = next(c for c in ctx.cookies() if c["name"] == "inspectsync_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.click("header button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"signed_out=1"))
    assert "You are signed out." in page.content()
    page.goto(f"{base}/console/queue")
    assert page.url.startswith(f"{base}/?next=")  # back at the sign-in page
    assert page.locator("input[name=password]").count() == 1
    ctx.close()
    # a copy of the old cookie is worth nothing
    again = browser.new_context()
    again.add_cookies([{**cookie}])
    p2 = again.new_page()
    p2.goto(f"{base}/console/queue")
    assert p2.locator("input[name=password]").count() == 1
    again.close()


def test_schema_viewer_loads_nothing_from_outside(browser, server):
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    outside = external_requests(page, server)
    page.goto(server + "/schema")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "inspectsync" in page.locator(".swagger-ui .info .title").inner_text()
    page.screenshot(path=str(SHOTS / "schema-1280.png"))
    assert outside == [], outside
    ctx.close()
