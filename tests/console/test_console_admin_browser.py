"""The admin pages in a real Chromium (Debian's, driven by Playwright) against the real
server process: an admin revokes a tablet that signed in and synced with the tablet CLI,
and its next sync is refused; creates a user who then signs in; edits reference data;
verifies the audit trail. The browser, the server process and the helpers are in
``conftest.py``; screenshots of each page at 1280x800 and 800x1280 go to ``screenshots/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import DESKTOP, Tablet, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow


class NamedTablet(Tablet):
    """A tablet registered under a name of its own; ``attempt`` runs the CLI whatever
    its outcome (a refused sync exits non-zero)."""

    def __init__(self, base: str, state: Path, username: str, name: str) -> None:
        self.state = state
        self.env = {**os.environ, "INSPECTSYNC_PASSWORD": DEMO_PASSWORD}
        self.run("login", "--server", base, "--username", username, "--device-name", name)

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "tablet", "--state", str(self.state), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


def test_admin_revokes_a_tablet_and_its_next_sync_is_refused(browser, server, tmp_path):
    li = NamedTablet(server, tmp_path / "li", "insp.js1", "Li tablet 07")
    li.sync()
    li.run("answer", "insp-ds-routine", "l2-cellbank", "cb_history", "yes")
    li.sync()  # a push: its clock skew is measured
    zhou = NamedTablet(server, tmp_path / "zhou", "insp.zj1", "Zhou tablet 02")
    zhou.sync()

    ctx = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    outside = external_requests(page, server)
    sign_in(page, server, "admin")
    page.click("header nav a[href='/console/admin/devices']")
    page.wait_for_url(re.compile(r"/console/admin/devices$"))
    row = page.locator("tr", has_text="Li tablet 07")
    text = row.inner_text()
    assert "Inspector Li (Jiangsu)" in text and "Last pull" in text and "Last push" in text
    assert re.search(r"[+-]\d+\.\d s", text), text  # the clock skew
    shoot(page, "admin-devices")

    # one click (and the browser's confirmation) revokes it
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url(re.compile(r"revoked="))
    assert asked == [
        "Revoke Li tablet 07 of Inspector Li (Jiangsu)? The tablet will not sync again."
    ]
    notice = page.get_by_test_id("done").inner_text()
    assert (
        notice
        == "Li tablet 07 of Inspector Li (Jiangsu) is revoked: its next sync will be refused."
    )
    assert "Revoked" in page.locator("tr", has_text="Li tablet 07").inner_text()
    assert page.locator("tr", has_text="Zhou tablet 02").get_by_role("button").count() == 1
    shoot(page, "admin-devices-revoked")

    # the tablet's next sync is refused, saying why; the other tablet syncs on
    refused = li.attempt("sync")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "this device was revoked by the server" in refused.stderr
    zhou.sync()

    # the trail shows who revoked it, and verifies
    page.click("header nav a[href='/console/admin/audit']")
    page.wait_for_url(re.compile(r"/console/admin/audit"))
    page.select_option('select[name="kind"]', "device")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"kind=device"))
    revoked = page.locator("tr", has_text="revoked it")
    assert "Li tablet 07" in revoked.inner_text() and "System Administrator" in revoked.inner_text()
    page.get_by_test_id("verify").click()
    page.wait_for_url(re.compile(r"/console/admin/audit/verify$"))
    result = page.get_by_test_id("verification")
    assert result.get_attribute("data-ok") == "true"
    assert result.inner_text().startswith("The trail is intact:")
    shoot(page, "admin-audit-verified")
    assert outside == [], outside
    ctx.close()


def test_admin_creates_a_user_who_signs_in(browser, server):
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    sign_in(page, server, "admin")
    page.click("header nav a[href='/console/admin/users']")
    page.wait_for_url(re.compile(r"/console/admin/users$"))
    assert "Supervisor Chen (Jiangsu)" in page.get_by_test_id("users").inner_text()
    shoot(page, "admin-users")
    form = page.locator("form[action='/console/admin/users']")
    form.locator("input[name=username]").fill("sup.qian")
    form.locator("input[name=display_name]").fill("Supervisor Qian (Jiangsu)")
    form.locator("select[name=role]").select_option(label="Supervisor")
    form.locator("select[name=authority_id]").select_option(
        label="Jiangsu Medical Products Administration"
    )
    form.locator("input[name=password]").fill("qian-password-2026")
    form.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"created="))
    assert "User Supervisor Qian (Jiangsu) created" in page.locator("p.notice").inner_text()
    new_row = page.locator('tr[data-user="sup.qian"]').inner_text()
    assert "Supervisor" in new_row and "Jiangsu Medical Products Administration" in new_row

    # their page, and a refusal at its form: the admin cannot disable themselves
    page.locator('tr[data-user="sup.qian"] a').click()
    page.wait_for_url(re.compile(r"/console/admin/users/"))
    shoot(page, "admin-user")
    page.goto(server + "/console/admin/users/u-admin")
    page.locator('form[data-form="disable"] button').click()
    page.wait_for_load_state()
    error = page.locator('form[data-form="disable"]').get_by_test_id("error").inner_text()
    assert error == "You cannot disable your own account: another administrator must."
    shoot(page, "admin-user-refused")

    # the new supervisor signs in; an admin page is not theirs
    other = browser.new_context(viewport=DESKTOP, locale="en-US")
    p2 = other.new_page()
    p2.goto(server + "/")
    p2.fill('input[name="username"]', "sup.qian")
    p2.fill('input[name="password"]', "qian-password-2026")
    p2.click('button[type="submit"]')
    p2.wait_for_url(re.compile(r"/console/queue"))
    assert "Supervisor Qian (Jiangsu)" in p2.locator("header").inner_text()
    assert p2.locator("header nav a[href='/console/admin/users']").count() == 0
    r = p2.goto(server + "/console/admin/users")
    assert r is not None and r.status == 403 and "You may not do this." in p2.content()
    other.close()
    ctx.close()


def test_reference_data_and_the_pages_in_chinese(browser, server):
    ctx = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="Asia/Shanghai")
    page = ctx.new_page()
    sign_in(page, server, "admin")
    page.click("header nav a[href='/console/admin/reference']")
    page.wait_for_url(re.compile(r"/console/admin/reference"))
    shoot(page, "admin-reference-authorities")
    page.click("nav.tabs >> text=Sites")
    page.wait_for_url(re.compile(r"kind=site"))
    form = page.locator("#new form")
    form.locator("input[name=name]").fill("Wuxi packaging hall")
    form.locator("select[name=organisation_id]").select_option(
        label="Taihu Sterile Manufacturing Co., Ltd."
    )
    form.locator("input[name=licence_number]").fill("JS-2026-0042")
    form.locator("input[name=address]").fill("1 Test Road, Wuxi")
    form.get_by_role("button", name="Create").click()  # no province: refused at its field
    page.wait_for_load_state()
    assert "Province" in page.get_by_test_id("error").inner_text()
    assert page.locator("label.at-fault input[name=province]").count() == 1
    page.locator("#new input[name=province]").fill("Jiangsu")
    page.locator("#new").get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"saved="))
    assert (
        "Taihu Sterile Manufacturing Co., Ltd." in page.locator("tr", has_text="Wuxi").inner_text()
    )
    shoot(page, "admin-reference-sites")

    # a chain: its links by stage and site name
    page.click("nav.tabs >> text=Chains")
    page.wait_for_url(re.compile(r"kind=chain"))
    page.locator("tr", has_text="ZV-101").get_by_role("link").click()
    page.wait_for_url(re.compile(r"/console/admin/reference/chain/"))
    assert page.locator("ol.link-rows > li").count() == 12  # ten links and two empty rows
    shoot(page, "admin-reference-chain")

    # Chinese
    page.click("a.lang")
    page.wait_for_load_state()
    assert "环节" in page.content()
    page.goto(server + "/console/admin/audit")
    assert page.locator("h1").inner_text().startswith("审计追踪")
    shoot(page, "admin-audit-zh")
    page.goto(server + "/console/admin/devices")
    shoot(page, "admin-devices-zh")
    ctx.close()
