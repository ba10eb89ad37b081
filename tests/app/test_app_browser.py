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
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from server.demo import DEMO_PASSWORD
from tests.console.conftest import ARGS, CHROMIUM, DESKTOP, TABLET, external_requests, shoot
from tests.console.conftest import Tablet as CliTablet
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao); in progress
LINK = "l2-cellbank"
WAIT = 20_000  # ms: the longest any step may take
LI_NAME = "Inspector Li (Jiangsu)"  # insp.js1's display name: what its signatures print


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


def held(page: Any, store: str) -> int:
    """How many rows a store of the app's IndexedDB holds (``files``: photos' bytes)."""
    return int(
        page.evaluate(
            """(store) => new Promise((ok) => {
                const r = indexedDB.open('inspectsync');
                r.onsuccess = () => {
                    const q = r.result.transaction(store).objectStore(store).count();
                    q.onsuccess = () => ok(q.result);
                };
            })""",
            store,
        )
    )


def answer_choice(page: Any, key: str, value: str, repeat: int = 0) -> None:
    item(page, key, repeat).locator(f'input[value="{value}"]').check()


def answer_field(page: Any, key: str, text: str, repeat: int = 0) -> None:
    field = item(page, key, repeat).locator(f'[name="{key}~{repeat}"]')
    field.fill(text)
    field.dispatch_event("change")


def test_offline_inspection_then_sync(
    browser: Any, server: str, api: Callable[[str], Api], tmp_path: Path
) -> None:
    """An inspector logs in, goes offline, answers items and records a finding with a
    photo, closes the browser and opens the app again with no network and sees them,
    comes back online: the server has every answer and the photo (its SHA-256 matches)."""

    def launch(offline: bool) -> Any:
        """The tablet's browser, on its own profile on disk (kept across launches)."""
        return browser.browser_type.launch_persistent_context(
            str(tmp_path / "tablet-profile"),
            executable_path=str(CHROMIUM),
            args=ARGS,
            viewport=TABLET,
            locale="en-GB",
            timezone_id="Asia/Shanghai",
            offline=offline,
        )

    ctx = launch(offline=False)
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
    expect_text(item(page, "cb_history"), "not synced yet")

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
    ctx.close()

    # the browser closed and opened again with no network: the shell from the service
    # worker, the data from IndexedDB
    ctx = launch(offline=True)
    page = open_app(ctx, server, f"/app/#/i/{INSP}/l/{LINK}")
    outside_again = external_requests(page, server)
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
    assert outside == [] and outside_again == []

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


def sync_now(page: Any) -> None:
    """Sync, and wait until that sync (not an earlier one) has ended."""
    before = int(page.get_attribute("#bar", "data-syncs") or 0)
    page.click("#sync-now")
    page.wait_for_function(
        "(n) => Number(document.getElementById('bar').dataset.syncs) > n"
        " && document.getElementById('bar').dataset.syncing === 'false'",
        arg=before,
    )
    synced(page)


def expect_text(locator: Any, text: str) -> None:
    """Wait (bounded) until the element shows ``text``."""
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=WAIT)


def finding_page(page: Any, server: str, fid: str) -> None:
    page.goto(f"{server}/app/#/i/{INSP}/f/{fid}")
    page.wait_for_selector('input[name="title"]')


def test_two_tablets_conflict_and_a_supervisor_resolves_it(
    browser: Any, server: str, api: Callable[[str], Api]
) -> None:
    """Two tablets edit the same finding offline: the conflict shows on both with both
    values, and the supervisor's resolution reaches both."""
    li_ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    zhao_ctx = browser.new_context(viewport=TABLET, locale="zh-CN", timezone_id="Asia/Shanghai")
    li = log_in(li_ctx, server, "insp.js1")
    zhao = log_in(zhao_ctx, server, "insp.js2")
    li.goto(f"{server}/app/#/i/{INSP}/f/new")
    li.fill('input[name="title"]', "Door interlock bypassed")
    li.check('input[name="classification"][value="major"]')
    li.click("#save-finding")
    li.wait_for_url(re.compile(r"/f/f_[0-9a-f]{16}$"))
    fid = li.url.rsplit("/", 1)[1]
    synced(li)
    sync_now(zhao)
    finding_page(zhao, server, fid)
    assert zhao.locator('input[name="title"]').input_value() == "Door interlock bypassed"

    li_ctx.set_offline(True)
    zhao_ctx.set_offline(True)
    li.fill('input[name="title"]', "Door interlock bypassed twice")
    li.check('input[name="classification"][value="critical"]')
    li.click("#save-finding")
    zhao.fill('input[name="title"]', "Interlock of door D2 bypassed")
    zhao.check('input[name="classification"][value="other"]')
    zhao.click("#save-finding")
    li.wait_for_selector("text=not synced yet")
    li_ctx.set_offline(False)
    synced(li)
    zhao_ctx.set_offline(False)
    synced(zhao)
    sync_now(li)

    for page in (li, zhao):
        finding_page(page, server, fid)
        box = page.locator('.conflict.open[data-field="classification"]')
        box.wait_for()
        text = box.inner_text()
        # both values, each with both labels, and who made them
        assert "Critical" in text or "关键" in text, text
        assert "General defect" in text or "一般缺陷" in text, text
        assert page.locator('.conflict.open[data-field="title"]').count() == 1
        # disputed, never shown as one of its values
        assert page.locator("fieldset.classification .badge.cls-disputed").count() == 1
        assert page.locator('input[name="classification"]:checked').count() == 0
        assert "Now shown" not in text and "当前显示" not in text
    li_box = li.locator('.conflict.open[data-field="classification"]').inner_text()
    assert "you, on this tablet" in li_box and "Inspector Zhao (Jiangsu)" in li_box
    assert "a supervisor chooses" in li_box
    zhao_box = zhao.locator('.conflict.open[data-field="classification"]').inner_text()
    assert "您，在本平板上" in zhao_box and "由主管选择" in zhao_box
    assert "Inspector Li (Jiangsu)" in zhao_box  # names, not ids
    shoot(li, "app-conflict")
    shoot(zhao, "app-conflict-zh")

    sup = api("sup.js")
    conflicts = sup.get("/api/v1/sync/conflicts", params={"inspection_id": INSP}).json()
    cid = next(
        c["id"]
        for c in conflicts
        if c["data"]["record_id"] == fid and c["data"]["field"] == "classification"
    )
    sup.post(
        f"/api/v1/sync/conflicts/{cid}/resolve",
        {"value": "major", "reason": "Bypass seen once; no product impact shown"},
    )
    for page in (li, zhao):
        sync_now(page)
        finding_page(page, server, fid)
        resolved = page.locator('.conflict.resolved[data-field="classification"]')
        resolved.wait_for()
        assert "Bypass seen once" in resolved.inner_text()
        assert page.locator('input[name="classification"][value="major"]').is_checked()
    li_ctx.close()
    zhao_ctx.close()


def test_an_invalid_answer_comes_back_rejected_with_its_reason(browser: Any, server: str) -> None:
    ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js1")
    page.goto(f"{server}/app/#/i/{INSP}/l/{LINK}")
    answer_field(page, "cb_storage_temp", "-160")
    expect_text(item(page, "cb_storage_temp"), "not synced yet")
    synced(page)
    ctx.set_offline(True)
    answer_field(page, "cb_storage_temp", "-100")  # above the maximum -135 °C
    expect_text(item(page, "cb_storage_temp"), "Outside the allowed range")
    expect_text(item(page, "cb_storage_temp"), "not synced yet")
    ctx.set_offline(False)
    synced(page)
    page.goto(f"{server}/app/#/i/{INSP}")
    page.goto(f"{server}/app/#/i/{INSP}/l/{LINK}")
    box = item(page, "cb_storage_temp").locator(".rejected")
    box.wait_for()
    text = box.inner_text()
    assert "You entered -100 °C" in text
    assert "outside the limits" in text
    assert "above the maximum -135" in text  # the server's own words
    assert "What the server holds now: -160 °C" in text
    # the local view fell back to what the server holds
    assert item(page, "cb_storage_temp").locator("input").input_value() == "-160"
    shoot(page, "app-rejected")
    # the bar leads to everything that needs the inspector, and on to where it happened
    page.click("#attention")
    card = page.locator(".attention-list a.rejected")
    expect_text(card, "above the maximum -135")
    expect_text(card, "Temperature shown by the independent probe")  # the item, by its prompt
    shoot(page, "app-attention")
    card.click()
    page.wait_for_url(re.compile(r"/l/l2-cellbank/(@|%40)cb_storage_temp-0$"))
    box = item(page, "cb_storage_temp").locator(".rejected")
    box.wait_for()
    box.locator("button").click()
    from playwright.sync_api import expect

    expect(item(page, "cb_storage_temp").locator(".rejected")).to_have_count(0)
    ctx.close()


def test_a_revoked_tablet_is_logged_out_and_told_why(
    browser: Any, server: str, api: Callable[[str], Api]
) -> None:
    ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    page = open_app(ctx, server)
    page.fill('input[name="username"]', "insp.js2")
    page.fill('input[name="password"]', DEMO_PASSWORD)
    page.fill('input[name="device_name"]', "Tablet lost in Suzhou")
    page.click('button[type="submit"]')
    page.wait_for_selector(f'[data-inspection="{INSP}"]')
    synced(page)
    admin = api("admin")
    device = next(
        d for d in admin.get("/api/v1/devices").json() if d["name"] == "Tablet lost in Suzhou"
    )
    admin.post(f"/api/v1/devices/{device['id']}/revoke", {})
    page.click("#sync-now")
    notice = page.locator("#login-notice")
    notice.wait_for()
    assert "revoked by an administrator" in notice.inner_text()
    assert page.locator('input[name="password"]').is_visible()
    shoot(page, "app-revoked")
    # its data are gone from the tablet: reopening shows the sign-in, not the inspections
    page.reload()
    page.wait_for_selector('input[name="password"]')
    assert page.locator(f'[data-inspection="{INSP}"]').count() == 0
    assert held(page, "records") == 0
    ctx.close()


def noisy_photo(seed: int) -> bytes:
    """A JPEG of about 3 MB (noise does not compress): three tus chunks of 1 MiB."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (2000, 1400), rng.randbytes(2000 * 1400 * 3))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_photo_upload_cut_off_half_way_resumes_from_its_offset(
    browser: Any, server: str, api: Callable[[str], Api]
) -> None:
    ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js1")
    seen: list[tuple[str, str, str | None]] = []
    cut = {"on": True}

    def uploads(route: Any) -> None:
        r = route.request
        seen.append((r.method, r.url, r.headers.get("upload-offset")))
        if cut["on"] and r.method == "PATCH" and r.headers.get("upload-offset") != "0":
            # the connection drops after the first chunk, and the network is gone
            route.abort("connectionreset")
            ctx.set_offline(True)
        else:
            route.continue_()

    page.route("**/api/v1/evidence/uploads**", uploads)
    jpeg = noisy_photo(7)
    assert len(jpeg) > 2 * (1 << 20)
    page.goto(f"{server}/app/#/i/{INSP}/f/new")
    page.fill('input[name="title"]', "Tank LN-4 label unreadable")
    page.set_input_files(
        'input[name="photo"]',
        files=[{"name": "tank.jpg", "mimeType": "image/jpeg", "buffer": jpeg}],
    )
    page.wait_for_selector(".photo-box img[src]")
    page.click("#save-finding")
    page.wait_for_url(re.compile(r"/f/f_[0-9a-f]{16}$"))
    # the finding syncs; its photo stops after the first chunk and waits on the tablet
    page.wait_for_selector("#net.off")
    page.wait_for_function(
        "() => !/Syncing/.test(document.getElementById('sync-now').textContent)"
        " && /waiting to upload/.test(document.getElementById('uploads')?.textContent || '')"
    )
    created = [u for m, u, _ in seen if m == "POST"]
    assert len(created) == 1
    assert [o for m, _, o in seen if m == "PATCH"][:1] == ["0"]  # the first chunk went

    sha = hashlib.sha256(jpeg).hexdigest()
    sup = api("sup.js")
    assert sha in sup.get(f"/api/v1/evidence/missing?inspection_id={INSP}").text
    cut["on"] = False
    before = len(seen)
    ctx.set_offline(False)  # back online: the app syncs by itself
    synced(page)
    page.wait_for_selector('.photo-box li[data-state="uploaded"]')
    after = seen[before:]
    assert [m for m, _, _ in after if m == "POST"] == []  # no new upload: the same one resumed
    patches = [o for m, _, o in after if m == "PATCH"]
    assert patches and patches[0] == str(1 << 20), after  # from the server's offset
    held = sup.get(f"/api/v1/evidence/{sha}").content
    assert hashlib.sha256(held).hexdigest() == sha
    ctx.close()


def web_records(page: Any, inspection_id: str) -> dict[str, Any]:
    """The app's pulled copies of an inspection's responses and findings, by kind:id."""
    return page.evaluate(  # type: ignore[no-any-return]
        """(iid) => new Promise((ok) => {
            const r = indexedDB.open('inspectsync');
            r.onsuccess = () => {
                const q = r.result.transaction('records').objectStore('records').getAll();
                q.onsuccess = () => ok(Object.fromEntries(q.result
                    .filter((x) => x.data && ['response', 'finding'].includes(x.kind)
                        && (x.kind === 'response' ? x.id.startsWith(iid + '~')
                                                  : x.data.inspection_id === iid))
                    .map((x) => [x.kind + ':' + x.id, x.data])));
            };
        })""",
        inspection_id,
    )


def cli_records(state: Path, inspection_id: str) -> dict[str, Any]:
    """The same, from the Python reference tablet's local database."""
    from sync.client import Tablet as PyTablet

    t = PyTablet(state / "tablet.db", cast(Any, None), device_id="reader")
    try:
        out = {
            f"response:{rid}": d
            for rid, d in t.records("response").items()
            if rid.startswith(f"{inspection_id}~")
        }
        out |= {
            f"finding:{fid}": d
            for fid, d in t.records("finding").items()
            if d.get("inspection_id") == inspection_id
        }
        return out
    finally:
        t.db.close()


def test_the_python_tablet_and_the_web_app_converge(
    browser: Any, server: str, tmp_path: Path
) -> None:
    """The reference client (the tablet CLI) and the web app on one inspection: each
    sees what the other did, and after both synced they hold the same records."""
    cli = CliTablet(server, tmp_path / "cli", "insp.js2")
    cli.sync()
    cli.run("answer", INSP, "l3-upstream", "up_wcb_receipt", "yes", "--note", "WCB 12 receipt")
    fid = cli.run(
        "finding", "add", INSP, "--title", "Bioreactor log gaps", "--classification", "other"
    ).split()[-1]
    cli.sync()

    ctx = browser.new_context(viewport=TABLET, locale="en-GB", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js1")
    page.goto(f"{server}/app/#/i/{INSP}/l/l3-upstream")
    assert item(page, "up_wcb_receipt").locator('input[value="yes"]').is_checked()
    assert "WCB 12 receipt" in item(page, "up_wcb_receipt").locator("textarea").last.input_value()
    answer_choice(page, "up_aseptic_expansion", "yes")
    answer_field(page, "up_culture_days", "14")
    finding_page(page, server, fid)
    assert page.locator('input[name="classification"][value="other"]').is_checked()
    page.fill('textarea[name="objective_evidence"]', "Batch record BR-12, page 4: 6 h gap")
    page.click("#save-finding")
    synced(page)

    cli.sync()
    shown = cli.run("finding", "show", fid)
    assert "Batch record BR-12, page 4: 6 h gap" in shown
    assert (
        "yes"
        in cli.run("checklist", INSP, "--link", "l3-upstream")
        .split("up_aseptic_expansion")[1]
        .split("up_")[0]
    )
    sync_now(page)
    web = web_records(page, INSP)
    assert f"finding:{fid}" in web
    assert web == cli_records(tmp_path / "cli", INSP)
    ctx.close()


def test_storage_nearly_full_is_said_and_uploaded_photos_leave(browser: Any, server: str) -> None:
    """When the browser's quota is near (storage estimate), the photos the server holds
    leave the tablet (shown from the server since), those waiting stay, and the app says
    that storage is nearly full."""
    ctx = browser.new_context(viewport=TABLET, locale="zh-CN", timezone_id="Asia/Shanghai")
    ctx.add_init_script(
        "window.__full = false; const real = navigator.storage.estimate.bind(navigator.storage);"
        "navigator.storage.estimate = async () => window.__full"
        " ? {usage: 950 * 2 ** 20, quota: 1000 * 2 ** 20} : real();"
    )
    page = log_in(ctx, server, "insp.js1")
    page.goto(f"{server}/app/#/i/{INSP}/f/new")
    page.fill('input[name="title"]', "Label of tank LN-5 faded")
    page.set_input_files(
        'input[name="photo"]',
        files=[{"name": "t.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes((20, 90, 40))}],
    )
    page.click("#save-finding")
    page.wait_for_url(re.compile(r"/f/f_[0-9a-f]{16}$"))
    page.wait_for_selector('.photo-box li[data-state="uploaded"]')
    assert held(page, "files") == 1
    page.evaluate("window.__full = true")
    sync_now(page)
    notice = page.locator("#notice")
    expect_text(notice, "存储空间即将用尽")
    assert "950.0 MB" in notice.inner_text()
    assert held(page, "files") == 0  # the server holds it: its bytes left the tablet
    page.reload()
    page.wait_for_selector('.photo-box li[data-state="uploaded"] img[src^="blob:"]')
    shoot(page, "app-quota-zh")
    ctx.close()


def answer_somehow(page: Any, key: str, repeat: int) -> None:
    """A valid answer to an item, whatever its type."""
    block = item(page, key, repeat)
    block.wait_for()
    if block.locator('input[value="yes"]').count():
        block.locator('input[value="yes"]').check()
    elif block.locator("input[type=radio]").count():
        block.locator("input[type=radio]").first.check()
    elif block.locator("input[type=checkbox]").count():
        block.locator("input[type=checkbox]").first.check()
    elif block.locator("input[type=number]").count():
        limits = " ".join(block.locator(".limits").all_inner_texts())
        low = re.search(r"(-?\d+(?:\.\d+)?)", limits)
        answer_field(page, key, low.group(1) if low else "1", repeat)
    elif block.locator("input[type=date]").count():
        answer_field(page, key, "2026-12-01", repeat)
    else:
        answer_field(page, key, "Seen and in order", repeat)


def test_a_link_is_signed_off_when_answered_or_with_a_reason(
    browser: Any, server: str, api: Callable[[str], Api]
) -> None:
    """The sign-off page lists the missing required answers and signs with them missing
    only with a reason; once they are given, the signature binds the content the server
    holds (its hash matches). The printed name is the account's, shown, never typed."""
    ctx = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js1")
    link = "l5-viral"
    page.goto(f"{server}/app/#/i/{INSP}/l/{link}/sign")
    page.wait_for_selector("#missing")
    missing = page.locator("#missing li")
    assert missing.count() > 0
    # the name is the account's (from the login answer), as text: there is no input
    assert page.locator("#signer-name").inner_text() == LI_NAME
    assert page.locator(".signer").inner_text().startswith("Signed as")
    assert page.locator('[name="signer_name"]').count() == 0
    # the only inputs: the meaning, and the password typed again to sign
    assert page.locator(".signoff input:not([type=hidden]), .signoff select").count() == 2
    assert page.locator("#sign-password").get_attribute("type") == "password"
    # signing with answers missing needs a reason: without one nothing is signed
    assert page.locator("#sign").inner_text() == "Sign with answers missing"
    page.click("#sign")
    assert page.locator("#incomplete-reason:invalid").count() == 1
    assert page.url.endswith("/sign")
    shoot(page, "app-signoff-missing")
    for _ in range(4):  # an answer can show follow-up items (show_if)
        todo = [
            (str(li.get_attribute("data-item")), int(li.get_attribute("data-repeat") or 0))
            for li in page.locator("#missing li").all()
        ]
        if not todo:
            break
        page.goto(f"{server}/app/#/i/{INSP}/l/{link}")
        for key, repeat in todo:
            answer_somehow(page, key, repeat)
        page.goto(f"{server}/app/#/i/{INSP}/l/{link}/sign")
        page.wait_for_selector("#missing")
    page.goto(f"{server}/app/#/i/{INSP}/l/{link}/sign")
    page.wait_for_selector("#missing.ok")
    # signing works with no network: the password is checked on the tablet
    ctx.set_offline(True)
    # a wrong password signs nothing: said on the page, counted towards the lock
    page.fill("#sign-password", "not my password")
    page.click("#sign")
    page.wait_for_selector("#sign-error:not([hidden])")
    assert page.inner_text("#sign-error") == (
        "Wrong password: nothing was signed. 4 more wrong password(s) lock signing."
    )
    assert page.url.endswith("/sign") and page.input_value("#sign-password") == ""
    signoffs = page.evaluate(
        """() => new Promise((ok) => {
            const r = indexedDB.open('inspectsync');
            r.onsuccess = () => {
                const q = r.result.transaction('outbox').objectStore('outbox').getAll();
                q.onsuccess = () => ok(q.result.filter((x) => x.kind === 'signoff').length);
            };
        })"""
    )
    assert signoffs == 0  # no sign-off waits to be sent
    page.set_viewport_size(TABLET)
    shoot(page, "app-signoff-wrong-password-en")
    page.set_viewport_size(DESKTOP)
    page.fill("#sign-password", DEMO_PASSWORD)
    page.click("#sign")
    page.wait_for_url(re.compile(rf"/i/{INSP}$"))
    ctx.set_offline(False)
    synced(page)
    assert f"Signed by {LI_NAME}" in page.inner_text(f'[data-link="{link}"]')
    sigs = api("sup.js").get(f"/api/v1/review/inspections/{INSP}/signatures").json()
    mine = [s for s in sigs if s.get("scope") == f"link:{link}"]
    assert len(mine) == 1, sigs
    # the hash the tablet computed is the one the server bound, and still holds
    assert mine[0]["device_hash_matched"] is True
    assert mine[0]["matches"] is True
    assert mine[0]["signer_name"] == LI_NAME
    assert mine[0]["unanswered"] == [] and mine[0]["incomplete_reason"] is None
    # re-authenticated on the tablet at signing: the server shows it as such
    assert mine[0]["reauth_method"] == "device_password"
    assert mine[0]["reauthenticated_at"] <= mine[0]["received_at"]

    # another link signed with answers missing, confirmed with a reason
    other = "l4-purif"
    page.goto(f"{server}/app/#/i/{INSP}/l/{other}/sign")
    page.wait_for_selector("#missing li")
    page.fill("#incomplete-reason", "Column records held at the MAH; follow-up visit")
    page.fill("#sign-password", DEMO_PASSWORD)
    page.click("#sign")
    page.wait_for_url(re.compile(rf"/i/{INSP}$"))
    page.click("#sync-now")
    sup = api("sup.js")
    for _ in range(40):  # the push goes out in the background: at most 10 s
        sigs = sup.get(f"/api/v1/review/inspections/{INSP}/signatures").json()
        found = [s for s in sigs if s.get("scope") == f"link:{other}"]
        if found:
            break
        page.wait_for_timeout(250)
    (partial,) = found
    assert partial["incomplete_reason"] == "Column records held at the MAH; follow-up visit"
    assert partial["unanswered"] and all(u.startswith(f"{other}:") for u in partial["unanswered"])
    assert partial["signer_name"] == LI_NAME
    ctx.close()


def test_the_sign_off_page_in_chinese_shows_the_account_name(browser: Any, server: str) -> None:
    """In zh the sign-off page says who signs, with the account's name as text (no
    input), and the page still fits a tablet held upright."""
    ctx = browser.new_context(viewport=TABLET, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = log_in(ctx, server, "insp.js2")
    page.goto(f"{server}/app/#/i/{INSP}/l/l3-upstream/sign")
    page.wait_for_selector("#missing")
    signer = page.locator(".signer")
    assert signer.inner_text().startswith("签名人")
    assert "账户的姓名" in signer.inner_text()
    assert page.locator("#signer-name").inner_text() == "Inspector Zhao (Jiangsu)"
    assert page.locator('[name="signer_name"]').count() == 0
    assert page.inner_text("label:has(#sign-password)").startswith("请再次输入您的密码以签署")
    page.fill("#incomplete-reason", "其余项目在后续检查中完成")
    page.fill("#sign-password", "错误的密码")
    page.click("#sign")
    page.wait_for_selector("#sign-error:not([hidden])")
    assert page.inner_text("#sign-error") == "密码错误，未签署。再错 4 次将锁定签署。"
    shoot(page, "app-signoff-zh")
    ctx.close()
