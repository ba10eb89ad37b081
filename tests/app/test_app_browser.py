"""The tablet app (/app) in a real Chromium (Debian's, driven by Playwright) against the
real server process, as inspectors use it: offline, on two tablets, with a supervisor
(over the API) and the Python reference tablet on the same inspection.

Screenshots at 1280x800 and at a 10-inch tablet's 800x1280 go to ``screenshots/``.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import TABLET, external_requests, shoot
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao); in progress
LINK = "l2-cellbank"
WAIT = 20_000  # ms: the longest any step may take


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("app-server")
    proc, base = start_server(data, "--demo")
    try:
        yield base
    finally:
        stop(proc)


class Api:
    """A user of the API (a supervisor, an admin) with a bearer token."""

    def __init__(self, base: str, username: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        r = self.http.post(
            "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
        )
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **kw: Any) -> Any:
        r = self.http.get(path, **kw)
        r.raise_for_status()
        return r

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code < 300, r.text
        return r.json()


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[Callable[[str], Api]]:
    """``api(username)``: that user on the API; every client is closed at the end."""
    made: list[Api] = []

    def make(username: str) -> Api:
        made.append(Api(server, username))
        return made[-1]

    yield make
    for a in made:
        a.http.close()


def photo_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, colour)
    ImageDraw.Draw(img).ellipse((100, 100, 300, 300), fill=(240, 240, 240))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def open_app(context: Any, base: str, path: str = "/app/") -> Any:
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(base + path)
    return page


def log_in(context: Any, base: str, username: str) -> Any:
    page = open_app(context, base)
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', DEMO_PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector(f'[data-inspection="{INSP}"]')
    synced(page)
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    return page


def synced(page: Any) -> None:
    """Wait until nothing is pending and a sync has ended."""
    page.wait_for_function(
        """() => {
            const p = document.getElementById('pending');
            const b = document.getElementById('sync-now');
            const last = document.getElementById('last-sync');
            return p && !p.classList.contains('has') && b && !b.disabled
                && last && !/Never|尚未/.test(last.textContent);
        }"""
    )


def item(page: Any, key: str, repeat: int = 0) -> Any:
    return page.locator(f'article[data-item="{key}"][data-repeat="{repeat}"]')


def answer_choice(page: Any, key: str, value: str, repeat: int = 0) -> None:
    item(page, key, repeat).locator(f'input[value="{value}"]').check()


def answer_field(page: Any, key: str, text: str, repeat: int = 0) -> None:
    field = item(page, key, repeat).locator(f'[name="{key}~{repeat}"]')
    field.fill(text)
    field.dispatch_event("change")


def test_offline_inspection_then_sync(browser: Any, server: str, api: Callable[[str], Api]) -> None:
    """An inspector logs in, goes offline, answers items and records a finding with a
    photo, closes and reopens the app offline and sees them, comes back online: the
    server has every answer and the photo (its SHA-256 matches)."""
    ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js1")
    outside = external_requests(page, server)
    shoot(page, "app-inspections")

    ctx.set_offline(True)
    page.wait_for_selector("#net.off")
    page.click(f'[data-inspection="{INSP}"]')
    page.click(f'[data-link="{LINK}"] >> text=Checklist')
    page.wait_for_selector('article[data-item="cb_history"]')
    # number: unit and limits shown with the control
    temp = item(page, "cb_storage_temp")
    assert "°C" in temp.inner_text()
    assert "Allowed -196 to -135" in temp.inner_text()
    answer_choice(page, "cb_history", "yes")
    answer_field(page, "cb_storage_temp", "-150")
    answer_field(page, "cb_container_id", "Dewar LN-2")
    answer_field(page, "cb_last_withdrawal", "2026-11-30")
    answer_choice(page, "cb_split_storage", "yes")  # shows where the second portion is
    answer_choice(page, "cb_second_location", "other_building")
    note = item(page, "cb_history").locator('textarea[name^="note:"]')
    note.fill("Cell bank file CB-17 seen")
    note.dispatch_event("change")
    # a second tank: a repeat of the storage section
    page.click("text=Add another")
    answer_field(page, "cb_container_id", "Dewar LN-3", repeat=1)
    shoot(page, "app-checklist")
    assert "not synced yet" in item(page, "cb_history").inner_text()

    page.goto(f"{server}/app/#/i/{INSP}/f/new")
    page.fill('input[name="title"]', "LN2 alarm not tested")
    page.fill('textarea[name="objective_evidence"]', "No alarm test record for 2026.")
    page.check('input[name="classification"][value="major"]')
    jpeg = photo_bytes((90, 120, 160))
    page.set_input_files(
        'input[name="photo"]', files=[{"name": "ln2.jpg", "mimeType": "image/jpeg", "buffer": jpeg}]
    )
    page.wait_for_selector(".photo-box img[src]")
    page.select_option('select[name="link_item"]', f"{LINK}:cb_history")
    page.click("text=Link an item")
    page.click("#save-finding")
    page.wait_for_url(re.compile(r"/f/f_[0-9a-f]{16}$"))
    fid = page.url.rsplit("/", 1)[1]
    assert "PIC/S: Major" in page.inner_text("fieldset.classification")
    assert "NMPA: Major defect" in page.inner_text("fieldset.classification")
    shoot(page, "app-finding")
    assert re.search(r"\d+ change\(s\) not synced", page.inner_text("#pending"))
    page.close()

    # closed and reopened with no network: the shell from the service worker, the data
    # from IndexedDB
    page = open_app(ctx, server, f"/app/#/i/{INSP}/l/{LINK}")
    page.wait_for_selector('article[data-item="cb_history"]')
    assert page.locator("#net").inner_text() == "Offline"
    assert item(page, "cb_history").locator('input[value="yes"]').is_checked()
    assert item(page, "cb_storage_temp").locator("input").input_value() == "-150"
    assert (
        item(page, "cb_container_id", 1).locator('textarea[name="cb_container_id~1"]').input_value()
        == "Dewar LN-3"
    )
    page.goto(f"{server}/app/#/i/{INSP}")
    page.wait_for_selector(f'[data-finding="{fid}"]')
    assert "LN2 alarm not tested" in page.inner_text(f'[data-finding="{fid}"]')
    # and it still takes edits offline
    page.goto(f"{server}/app/#/i/{INSP}/l/{LINK}")
    answer_choice(page, "cb_nitrogen_supply", "yes")

    ctx.set_offline(False)
    page.wait_for_selector("#net.on")
    synced(page)
    page.goto(f"{server}/app/#/i/{INSP}/f/{fid}")
    page.wait_for_selector('.photo-box li[data-state="uploaded"]')
    assert outside == []

    sup = api("sup.js")
    dump = sup.get(f"/api/v1/inspections/{INSP}/export.json").json()
    answers = {(r["link_id"], r["item_key"], r["repeat"]): r for r in dump["responses"]}
    assert answers[(LINK, "cb_history", 0)]["value"] == "yes"
    assert answers[(LINK, "cb_history", 0)]["note"] == "Cell bank file CB-17 seen"
    assert answers[(LINK, "cb_storage_temp", 0)]["value"] == -150
    assert answers[(LINK, "cb_container_id", 0)]["value"] == "Dewar LN-2"
    assert answers[(LINK, "cb_container_id", 1)]["value"] == "Dewar LN-3"
    assert answers[(LINK, "cb_last_withdrawal", 0)]["value"] == "2026-11-30"
    assert answers[(LINK, "cb_nitrogen_supply", 0)]["value"] == "yes"
    assert answers[(LINK, "cb_second_location", 0)]["value"] == "other_building"
    finding = next(f for f in dump["findings"] if f["id"] == fid)
    assert finding["title"] == "LN2 alarm not tested"
    assert finding["classification"] == "major"
    assert finding["linked_items"] == [f"{LINK}:cb_history"]
    sha = hashlib.sha256(jpeg).hexdigest()
    assert finding["evidence_hashes"] == [sha]
    held = sup.get(f"/api/v1/evidence/{sha}").content
    assert hashlib.sha256(held).hexdigest() == sha
    ctx.close()
