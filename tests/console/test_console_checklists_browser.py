"""The admin's checklist pages in a real Chromium against the real server process: an
admin opens a draft, makes an item invalid and sees the problem at that field, fixes
it, publishes with a changelog, and an inspection started afterwards pins the new
version. Screenshots of the list, a version, the editor with a problem and the diff at
1280x800 and 800x1280 (``shoot``). The browser and server fixtures are in conftest.py.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import DESKTOP, SHOTS, TABLET, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow

BASE = "/console/admin/checklists"
PLANNED = "insp-fill-pai"  # planned; covers l7-fill, l8-lyo (lyophilisation), l9-pack


def api(base: str, path: str, username: str = "sup.js") -> Any:
    """The API, as a client with a bearer token would read it."""
    body = json.dumps({"username": username, "password": DEMO_PASSWORD}).encode()
    req = urllib.request.Request(
        base + "/api/v1/auth/login", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.load(r)["access_token"]
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_admin_fixes_a_draft_publishes_and_a_new_inspection_pins_it(browser, server):
    base = server
    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, base)
    sign_in(page, base, "admin")

    # the list, from the header's link
    page.click(f'header a[href="{BASE}"]')
    page.wait_for_url(re.compile(f"{BASE}$"))
    assert page.locator("tr[data-template]").count() == 13
    row = page.locator('tr[data-template="lyophilisation"]')
    assert "冻干" in row.inner_text() and "第 1 版" in row.inner_text()
    shoot(page, "checklists-list-zh")

    # the template, its version 1 in both languages
    row.locator("a").first.click()
    page.wait_for_url(re.compile(f"{BASE}/lyophilisation$"))
    assert "生效中" in page.locator('tr[data-version="lyophilisation-v1"]').inner_text()
    shoot(page, "checklist-template-zh")
    page.click('tr[data-version="lyophilisation-v1"] a')
    page.wait_for_url(re.compile(f"{BASE}/versions/lyophilisation-v1$"))
    item = page.locator('li[data-item="ly_residual_moisture"]')
    text = item.inner_text()
    assert "所审核批次的残留水分" in text and "Residual moisture of the batch reviewed" in text
    assert "0 至 3" in text and "% w/w" in text and "EU GMP Chapter 5" in text
    shoot(page, "checklist-version-zh")

    # English from here on; open a draft from version 1
    page.click("a.lang")
    page.wait_for_url(re.compile(f"{BASE}/versions/lyophilisation-v1$"))
    assert "Published" in page.get_by_test_id("status").inner_text()
    shoot(page, "checklist-version-en")
    page.get_by_test_id("new-draft").click()
    page.wait_for_url(re.compile(f"{BASE}/versions/lyophilisation-v2/edit$"))

    # make the item invalid: a minimum above its maximum
    details = page.locator('details[data-item="ly_residual_moisture"]')
    details.locator("summary").click()
    prefix = details.get_attribute("id")
    assert prefix
    page.fill(f"#{prefix}_min", "5")
    page.get_by_test_id("save").click()
    page.wait_for_load_state()
    problem = page.locator(f"#{prefix}_min-error")
    assert problem.inner_text() == "The minimum is greater than the maximum."
    assert page.locator(f"#{prefix}_min").get_attribute("aria-invalid") == "true"
    assert page.locator(f"#{prefix}_min").input_value() == "5"  # what was typed is kept
    assert (
        page.locator('details[data-item="ly_residual_moisture"]').get_attribute("open") is not None
    )
    # the summary at the top links to the field
    page.get_by_test_id("problems").locator(f'a[href="#{prefix}_min"]').click()
    shoot(page, "checklist-edit-error")
    for label, size in (("1280", DESKTOP), ("tablet", TABLET)):  # the field, as seen
        page.set_viewport_size(size)
        page.locator(f"#{prefix}").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"checklist-edit-error-field-{label}.png"))
    page.set_viewport_size(DESKTOP)

    # fixed: a tighter limit; saved, then published with a changelog
    page.fill(f"#{prefix}_min", "0")
    page.fill(f"#{prefix}_max", "2")
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"saved=1"))
    assert page.get_by_test_id("saved").is_visible()
    assert page.locator("[data-testid=field-error]").count() == 0
    page.fill("#changelog", "Residual moisture: limit tightened to 2 % w/w")
    page.get_by_test_id("publish").click()
    page.wait_for_url(re.compile(f"{BASE}/versions/lyophilisation-v2\\?done=published"))
    assert page.get_by_test_id("status").inner_text() == "Published"
    assert "limit tightened to 2 % w/w" in page.get_by_test_id("changelog").inner_text()

    # the diff of the two versions: the item's maximum, old and new
    page.click("text=Changes from the previous version")
    page.wait_for_url(re.compile(f"{BASE}/lyophilisation/diff"))
    changed = page.locator('.ck-changed[data-item="ly_residual_moisture"]')
    rows = changed.locator("tbody tr").all_inner_texts()
    assert any(r.split("\t") == ["Maximum", "3", "2"] for r in rows), rows
    shoot(page, "checklist-diff")
    assert outside == [], outside
    ctx.close()

    # a supervisor starts the planned inspection: it pins the new version
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = ctx.new_page()
    sign_in(page, base, "sup.js")
    page.goto(f"{base}/console/inspections/{PLANNED}")
    assert page.get_by_test_id("status").inner_text() == "Planned"
    page.get_by_test_id("move").click()
    page.wait_for_url(re.compile(r"moved=in_progress"))
    assert "lyophilisation-v2" in page.locator('tr[data-link="l8-lyo"]').inner_text()
    ctx.close()
    inspection = api(base, f"/api/v1/inspections/{PLANNED}")
    assert inspection["data"]["pins"]["l8-lyo"] == "lyophilisation-v2"
    assert inspection["data"]["pins"]["l7-fill"] == "formulation_filling-v1"


def test_the_editor_works_without_script(browser, server):
    """Plain form posts: a new draft, an item added and moved, saved, with no script."""
    ctx = browser.new_context(viewport=TABLET, locale="en-US", java_script_enabled=False)
    page = ctx.new_page()
    sign_in(page, server, "admin")
    page.goto(f"{server}{BASE}/cold_chain")
    page.get_by_test_id("new-draft").click()
    page.wait_for_url(re.compile(f"{BASE}/versions/cold_chain-v2/edit$"))
    section = page.locator("section.ck-section").first
    before = section.locator("details.ck-item").count()
    section.locator("button", has_text="Add an item").click()
    page.wait_for_load_state()
    assert "Changes not saved yet" in page.content()
    section = page.locator("section.ck-section").first
    new = section.locator("details.ck-item").nth(before)
    assert new.get_attribute("open") is not None  # a new item is shown open
    prefix = new.get_attribute("id")
    page.fill(f"#{prefix}_key", "cc_new_probe")
    page.fill(f"#{prefix}_prompt_zh", "新探头是否已校准？")
    page.fill(f"#{prefix}_prompt_en", "Is the new probe calibrated?")
    new.locator("button", has_text="Add a reference").click()
    page.wait_for_load_state()
    page.select_option(f"#{prefix}_r0_document", "EU GMP Annex 11")
    page.fill(f"#{prefix}_r0_section", "4 Validation")
    chosen = page.locator(f"#{prefix}_r0_document option:checked").inner_text()
    assert chosen == "EU GMP Annex 11 — Computerised systems"
    shoot(page, "checklist-edit-reference")  # long titles stay inside the window
    page.locator(f"#{prefix}").screenshot(path=str(SHOTS / "checklist-edit-reference-item.png"))
    page.locator(f"#{prefix}").locator("button", has_text="Move up").click()
    page.wait_for_load_state()
    moved = page.locator('details[data-item="cc_new_probe"]')
    assert moved.get_attribute("id") == f"s0_i{before - 1}"
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"saved=1"))
    assert page.get_by_test_id("saved").is_visible()
    assert page.locator('details[data-item="cc_new_probe"]').get_attribute("id") == (
        f"s0_i{before - 1}"
    )
    ctx.close()
