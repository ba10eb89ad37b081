"""The rectification forms in a real Chromium: a supervisor finds the overdue
rectification in the list, enters the company's response with a file (uploaded through
tus by the page's script, announced by its SHA-256), assesses it "more needed", then
"accepted": the status shown changes each time, the file is linked with its SHA-256,
and the overdue list no longer lists it. The server runs in the test's thread so that
its clock can move weeks ahead (the fixture of test_console_rectification_browser.py).
Screenshots at 1280x800 and 800x1280, zh and en."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image

from tests.console.conftest import DESKTOP, external_requests, shoot, sign_in
from tests.console.test_console_rectification_browser import (  # noqa: F401
    accepted_findings,
    moved,
)

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"


def test_a_supervisor_enters_the_response_with_a_file_and_assesses_it(
    browser,
    moved,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    base, clock = moved
    for client in accepted_findings(base):
        client.close()
    clock.advance(days=33)  # the major's 30 days are over

    picture = tmp_path / "报警测试记录.png"
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (40, 120, 200)).save(out, "PNG")
    picture.write_bytes(out.getvalue())
    sha = hashlib.sha256(picture.read_bytes()).hexdigest()

    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, base)
    uploads: list[str] = []
    page.on(
        "request",
        lambda r: uploads.append(f"{r.method} {r.url}") if "/console/uploads" in r.url else None,
    )
    sign_in(page, base, "sup.js")

    # from the overdue list to the finding's form
    page.goto(base + "/console/rectifications")
    row = page.locator('tr[data-finding="f-ln2"]')
    assert "3 天" in row.inner_text()
    shoot(page, "rect-overdue-zh")
    row.get_by_test_id("rect-enter").click()
    page.wait_for_url(re.compile(r"/console/findings/f-ln2#rectification$"))
    rect = page.get_by_test_id("rect")
    assert page.get_by_test_id("rect-status").inner_text() == "待企业回复"
    assert "逾期 3 天" in page.get_by_test_id("rect-deadline").inner_text()
    rect.scroll_into_view_if_needed()
    shoot(page, "rect-form-zh")

    # the company's response, with a picture, through tus
    form = page.get_by_test_id("rect-response-form")
    form.locator('input[name="submitted_by"]').fill("王芳，质量保证部经理")
    form.locator('textarea[name="root_cause"]').fill("液氮低液位报警未纳入预防性维护计划")
    form.locator('textarea[name="actions"]').fill("每月测试报警并记录；已培训操作人员")
    form.locator('input[name="completion_date"]').fill("2030-01-31")
    form.locator('input[type="file"]').set_input_files(str(picture))
    form.get_by_test_id("rect-respond").click()
    page.wait_for_url(re.compile(r"\?rect=responded#rectification$"))
    assert page.get_by_test_id("rect-status").inner_text() == "回复待评估"
    assert any(u.startswith("POST ") for u in uploads), uploads  # tus creation
    assert any(u.startswith("PATCH ") for u in uploads), uploads  # and its bytes
    item = page.locator(f'li[data-sha256="{sha}"]').first
    assert sha in item.inner_text() and "报警测试记录.png" in item.inner_text()
    got = page.request.get(base + item.locator("a").last.get_attribute("href"))
    assert got.status == 200 and got.body() == picture.read_bytes()
    assert item.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-responded-zh")

    # more needed, then accepted: the status follows
    assess = page.get_by_test_id("rect-assess-form")
    assess.locator('input[value="more_needed"]').check()
    assess.locator('textarea[name="comment"]').fill("未见首次月度测试记录")
    assess.get_by_test_id("rect-assess").click()
    page.wait_for_url(re.compile(r"\?rect=assessed#rectification$"))
    assert page.get_by_test_id("rect-status").inner_text() == "需企业补充整改"
    assert "未见首次月度测试记录" in page.get_by_test_id("rect-history").inner_text()
    assess = page.get_by_test_id("rect-assess-form")
    assess.locator('input[value="accepted"]').check()
    assess.locator('textarea[name="comment"]').fill("首次测试记录已补充，整改完成")
    assess.get_by_test_id("rect-assess").click()
    page.wait_for_url(re.compile(r"\?rect=assessed#rectification$"))
    assert page.get_by_test_id("rect-status").inner_text() == "整改已接受"
    assert page.get_by_test_id("rect-response-form").count() == 0
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-accepted-zh")

    # the overdue list no longer lists it; the inspection page counts it accepted
    page.goto(base + "/console/rectifications")
    assert page.locator('tr[data-finding="f-ln2"]').count() == 0
    assert page.get_by_test_id("overdue-none").is_visible()
    page.goto(base + f"/console/inspections/{INSP}#rectification")
    counts = page.get_by_test_id("rect-counts")
    assert counts.locator('[data-status="accepted"]').get_attribute("data-n") == "1"
    assert counts.locator('[data-status="awaiting_response"]').get_attribute("data-n") == "1"
    page.get_by_test_id("rectification").scroll_into_view_if_needed()
    shoot(page, "rect-inspection-card-zh")

    # the same pages in English
    page.click("a.lang")
    page.wait_for_load_state()
    page.goto(base + "/console/findings/f-ln2#rectification")
    assert page.get_by_test_id("rect-status").inner_text() == "Rectification accepted"
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-accepted-en")
    page.goto(base + "/console/findings/f-log#rectification")
    assert "Awaiting the company" in page.get_by_test_id("rect-status").inner_text()
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-form-en")
    # what the server says when the browser's own checks are bypassed (an old browser, a
    # script): a date that is no date, an empty field, each at its field
    form = page.get_by_test_id("rect-response-form")
    form.evaluate(
        "f => { f.noValidate = true; f.querySelector('[name=completion_date]').type = 'text'; }"
    )
    form.locator('input[name="submitted_by"]').fill("Zhang Wei, QA")
    form.locator('textarea[name="root_cause"]').fill("Logbook review not in the SOP")
    form.locator('input[name="completion_date"]').fill("31/01/2030")
    form.get_by_test_id("rect-respond").click()
    page.wait_for_load_state()
    assert page.locator("#resp-err-completion_date").inner_text() == "Give a date as YYYY-MM-DD."
    assert page.locator("#resp-err-actions").inner_text() == "Fill this in."
    assert (
        page.locator('textarea[name="root_cause"]').input_value() == "Logbook review not in the SOP"
    )
    # the date as typed, to be corrected
    assert page.locator('input[name="completion_date"]').input_value() == "31/01/2030"
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-errors-en")
    assert outside == [], outside
    ctx.close()


def test_without_script_the_files_go_with_the_form(browser, moved, tmp_path):  # noqa: F811
    """Script off: Chromium posts the file input as multipart and the server stores it
    in the same evidence store, by its SHA-256 (runs after the test above: f-log is
    still awaiting the company's response)."""
    base, _ = moved
    pdf = tmp_path / "training-record.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    sha = hashlib.sha256(pdf.read_bytes()).hexdigest()
    ctx = browser.new_context(viewport=DESKTOP, locale="en-GB", java_script_enabled=False)
    page = ctx.new_page()
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/uploads" in r.url else None)
    sign_in(page, base, "sup.js")
    page.goto(base + "/console/findings/f-log#rectification")
    form = page.get_by_test_id("rect-response-form")
    form.locator('input[name="submitted_by"]').fill("Zhang Wei, QA manager")
    form.locator('textarea[name="root_cause"]').fill("Logbook review not in the SOP")
    form.locator('textarea[name="actions"]').fill("SOP revised; staff trained")
    form.locator('input[name="completion_date"]').fill("2030-03-31")
    form.locator('input[type="file"]').set_input_files(str(pdf))
    form.get_by_test_id("rect-respond").click()
    page.wait_for_url(re.compile(r"\?rect=responded#rectification$"))
    assert uploads == []  # no tus: the file went with the form
    assert page.get_by_test_id("rect-status").inner_text() == "Response to assess"
    item = page.locator(f'li[data-sha256="{sha}"]').first
    assert "training-record.pdf" in item.inner_text() and "application/pdf" in item.inner_text()
    assert f"application/pdf · {pdf.stat().st_size} B" in item.inner_text()
    got = page.request.get(base + item.locator("a").last.get_attribute("href"))
    assert got.body() == pdf.read_bytes()
    page.get_by_test_id("rect").scroll_into_view_if_needed()
    shoot(page, "rect-noscript-en")
    ctx.close()
