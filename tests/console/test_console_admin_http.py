"""The admin pages over HTTP (the app in-process): users, devices, reference data and the
audit trail; admins only, every form with its token, the API's rules and refusals shown
at the form. The browser journey is in test_console_admin_browser.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.demo import DEMO_PASSWORD
from sync.client import DeviceRevoked
from tests.conftest import BOTH_BACKENDS, login
from tests.console.test_console_http import csrf_of, sign_in, tablet
from tests.sync.test_audit import _Raw

backend = BOTH_BACKENDS  # every test on SQLite and on PostgreSQL

PAGES = [
    "/console/admin/users",
    "/console/admin/users/u-sup-js",
    "/console/admin/devices",
    "/console/admin/reference",
    "/console/admin/reference?kind=chain",
    "/console/admin/reference/site/site-taizhou-fill",
    "/console/admin/audit",
]


async def _admin(client, lang: str = "en") -> str:
    """Signed in as the demo admin; the CSRF token of the session."""
    r = await sign_in(client, "admin", lang=lang)
    assert r.status_code == 303, r.text
    return csrf_of((await client.get("/console/admin/users")).text)


async def _sign_in_as(client, username: str, password: str):
    client.cookies.clear()
    page = await client.get("/")
    return await client.post(
        "/console/login",
        data={"_csrf": csrf_of(page.text), "username": username, "password": password},
        follow_redirects=False,
    )


async def _post(client, url: str, data: dict):
    """A form post, its answer as sent (a 303 is not followed)."""
    return await client.post(url, data=data, follow_redirects=False)


def _option(html: str, name: str) -> str:
    """The value of the option shown as ``name`` (forms choose records by name)."""
    m = re.search(r'<option value="([^"]+)"[^>]*>' + re.escape(name) + "<", html)
    assert m, name
    return m.group(1)


async def test_admin_pages_are_for_admins_only(demo):
    # signed out: the sign-in page (then back to the page)
    for url in PAGES:
        r = await demo.get(url, follow_redirects=False)
        assert r.status_code in (302, 303) and r.headers["location"].startswith(
            "/?next=%2Fconsole%2F"
        )
    r = await demo.get("/console/admin/users")
    assert r.status_code == 200 and 'name="password"' in r.text
    # a supervisor: the forbidden page, and a form does nothing
    await sign_in(demo, "sup.js", lang="en")
    token = csrf_of((await demo.get("/console/queue")).text)
    for url in PAGES:
        r = await demo.get(url)
        assert r.status_code == 403 and "You may not do this." in r.text, url
        assert "System Administrator" not in r.text
    r = await _post(
        demo, "/console/admin/users/u-sup-zj", data={"_csrf": token, "action": "disable"}
    )
    assert r.status_code == 403
    admin = await login(demo, "admin")
    assert (await admin.get("/api/v1/users/u-sup-zj")).json()["disabled"] is False
    # the admin sees them, in both languages
    await _admin(demo, lang="zh")
    for url in PAGES:
        r = await demo.get(url)
        assert r.status_code == 200, url
    assert (await demo.get("/console/admin/users/nobody")).status_code == 404
    token = csrf_of((await demo.get("/console/admin/users")).text)
    r = await _post(demo, "/console/admin/users/nobody", {"_csrf": token, "action": "enable"})
    assert r.status_code == 404
    zh = (await demo.get("/console/admin/devices")).text
    assert "设备" in zh and 'lang="zh-CN"' in zh


async def test_every_admin_form_needs_its_token(demo):
    await _admin(demo)
    posts = {
        "/console/admin/users": {
            "username": "sup.new",
            "display_name": "New",
            "role": "supervisor",
            "authority_id": "js-mpa",
            "password": DEMO_PASSWORD,
        },
        "/console/admin/users/u-sup-js": {"action": "disable"},
        "/console/admin/devices/x/revoke": {},
        "/console/admin/reference/organisation": {"name": "Forged Ltd", "kind": "mah"},
        "/console/admin/reference/authority/nmpa": {"name": "Forged", "level": "national"},
        "/console/admin/audit/verify": {},
    }
    for url, form in posts.items():
        r = await _post(demo, url, form)
        assert r.status_code == 403, url
        assert "This form has expired or did not come from this console." in r.text, url
    admin = await login(demo, "admin")
    users = {u["username"]: u for u in (await admin.get("/api/v1/users")).json()}
    assert "sup.new" not in users and users["sup.js"]["disabled"] is False
    orgs = (await admin.get("/api/v1/organisations")).json()["items"]
    assert all(o["data"]["name"] != "Forged Ltd" for o in orgs)


async def test_create_a_user_who_then_signs_in(demo):
    token = await _admin(demo)
    page = (await demo.get("/console/admin/users")).text
    assert "Supervisor Chen (Jiangsu)" in page and "Jiangsu" in page
    form = {
        "_csrf": token,
        "username": "Bad Name",
        "display_name": "Supervisor Qian (Jiangsu)",
        "role": "supervisor",
        "authority_id": "js-mpa",
        "password": "a-new-password-1",
    }
    r = await _post(demo, "/console/admin/users", data=form)
    assert r.status_code == 422 and "Username: 2 to 64 characters" in r.text
    assert 'class="at-fault">Username' in r.text and "a-new-password-1" not in r.text
    assert 'value="Supervisor Qian (Jiangsu)"' in r.text  # what was typed stays
    r = await _post(demo, "/console/admin/users", data={**form, "username": "sup.js"})
    assert r.status_code == 409 and "This username is taken." in r.text
    r = await _post(demo, "/console/admin/users", data={**form, "password": "short"})
    assert r.status_code == 422 and "at least 8 characters" in r.text

    r = await _post(demo, "/console/admin/users", data={**form, "username": "sup.qian"})
    assert r.status_code == 303
    page = (await demo.get(r.headers["location"])).text
    assert "User Supervisor Qian (Jiangsu) created" in page and 'data-user="sup.qian"' in page
    # audited as the admin's
    trail = (await demo.get("/console/admin/audit", params={"kind": "user"})).text
    assert "Supervisor Qian (Jiangsu)" in trail and "System Administrator" in trail
    # the new user signs in
    r = await _sign_in_as(demo, "sup.qian", "a-new-password-1")
    assert r.status_code == 303 and r.headers["location"] == "/console/queue"
    assert "Supervisor Qian (Jiangsu)" in (await demo.get("/console/queue")).text


async def test_disable_ends_the_session_enable_password_and_role(demo):
    await sign_in(demo, "sup.js")
    sup_cookie = demo.cookies.get("inspectsync_session")
    token = await _admin(demo)
    admin_cookie = demo.cookies.get("inspectsync_session")
    r = await _post(
        demo, "/console/admin/users/u-sup-js", data={"_csrf": token, "action": "disable"}
    )
    assert r.status_code == 303
    page = (await demo.get(r.headers["location"])).text
    assert "The account is disabled." in page and "Enable the account" in page
    # the supervisor's open session is refused on their next request
    demo.cookies.set("inspectsync_session", sup_cookie)
    r = await demo.get("/console/queue", follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/?next=")
    assert (await _sign_in_as(demo, "sup.js", DEMO_PASSWORD)).status_code == 401

    demo.cookies.clear()
    demo.cookies.set("inspectsync_session", admin_cookie)
    url = "/console/admin/users/u-sup-js"
    assert (await _post(demo, url, data={"_csrf": token, "action": "enable"})).status_code == 303
    r = await _post(demo, url, data={"_csrf": token, "action": "password", "password": "x"})
    assert r.status_code == 422 and "at least 8 characters" in r.text
    r = await _post(
        demo, url, data={"_csrf": token, "action": "password", "password": "another-pass-22"}
    )
    assert r.status_code == 303
    r = await _post(
        demo,
        url,
        data={"_csrf": token, "action": "access", "role": "admin", "authority_id": "nmpa"},
    )
    assert r.status_code == 303
    page = (await demo.get(url)).text
    assert 'data-testid="role">Administrator' in page
    trail = (await demo.get("/console/admin/audit", params={"record": "u-sup-js"})).text
    assert "Disabled: from No to Yes" in trail and "Role: from Supervisor to Administrator" in trail
    # the new password and role hold
    assert (await _sign_in_as(demo, "sup.js", DEMO_PASSWORD)).status_code == 401
    assert (await _sign_in_as(demo, "sup.js", "another-pass-22")).status_code == 303
    assert (await demo.get("/console/admin/users")).status_code == 200


async def test_an_admin_cannot_lock_themselves_out(demo):
    token = await _admin(demo)
    url = "/console/admin/users/u-admin"
    r = await _post(demo, url, data={"_csrf": token, "action": "disable"})
    assert r.status_code == 422
    assert "You cannot disable your own account: another administrator must." in r.text
    r = await _post(
        demo,
        url,
        data={"_csrf": token, "action": "access", "role": "supervisor", "authority_id": "nmpa"},
    )
    assert r.status_code == 422 and "You cannot take away your own administrator role" in r.text
    assert 'data-form="access"' in r.text.split("You cannot take away")[0]  # shown at its form
    admin = await login(demo, "admin")
    me = (await admin.get("/api/v1/users/u-admin")).json()
    assert (me["role"], me["disabled"]) == ("admin", False)


async def test_device_list_and_revocation(demo, tmp_path: Path):
    li = await tablet(demo, tmp_path, "insp.js1", "Li's tablet")
    token = await _admin(demo)
    page = (await demo.get("/console/admin/devices")).text
    row = page.split('data-device="')[1]
    assert "Li&#39;s tablet" in row and "Inspector Li (Jiangsu)" in row
    assert "Last pull" in row and "Revoke" in row
    device_id = row.split('"')[0]
    r = await _post(demo, f"/console/admin/devices/{device_id}/revoke", data={"_csrf": token})
    assert r.status_code == 303
    page = (await demo.get(r.headers["location"])).text
    assert "Li&#39;s tablet of Inspector Li (Jiangsu) is revoked" in page
    assert 'data-testid="revoked"' in page
    with pytest.raises(DeviceRevoked):
        await li.sync()
    r = await _post(demo, "/console/admin/devices/no-such-device/revoke", data={"_csrf": token})
    assert r.status_code == 404
    trail = (await demo.get("/console/admin/audit", params={"kind": "device"})).text
    assert "revoked it" in trail and "Li&#39;s tablet" in trail


async def test_audit_trail_filters_and_verify(demo, settings):
    token = await _admin(demo)
    page = (await demo.get("/console/admin/audit", params={"kind": "site"})).text
    assert "Taihu Taizhou fill-finish plant</strong></a>" in page
    assert "Inspection: <strong>" not in page
    r = await _post(demo, "/console/admin/audit/verify", data={"_csrf": token})
    assert r.status_code == 200
    assert 'data-ok="true"' in r.text and "The trail is intact" in r.text
    # someone with direct access to the database drops the guard and rewrites who did
    # something
    db = _Raw(settings)
    db.drop_guard("update")
    db.run("UPDATE history SET user_id = 'someone-else' WHERE id = 3")
    db.close()
    r = await _post(demo, "/console/admin/audit/verify", data={"_csrf": token})
    assert 'data-ok="false"' in r.text
    assert "does NOT verify" in r.text and "the first that does not match is event 3" in r.text


async def test_reference_data_by_name(demo):
    token = await _admin(demo)
    page = (await demo.get("/console/admin/reference", params={"kind": "site"})).text
    org = _option(page, "Taihu Sterile Manufacturing Co., Ltd.")
    form = {
        "_csrf": token,
        "name": "Wuxi packaging hall",
        "organisation_id": org,
        "province": "Jiangsu",
        "licence_number": "JS-2026-0042",
        "address": "1 Test Road, Wuxi",
    }
    r = await _post(demo, "/console/admin/reference/site", data={**form, "province": ""})
    assert r.status_code == 422 and "Province" in r.text
    r = await _post(demo, "/console/admin/reference/site", data=form)
    assert r.status_code == 303
    page = (await demo.get(r.headers["location"])).text
    assert "Wuxi packaging hall saved." in page and "JS-2026-0042" in page
    site = re.search(r'data-record="([^"]+)"><td[^>]*><a [^>]*>Wuxi packaging hall<', page)[1]
    edit = (await demo.get(f"/console/admin/reference/site/{site}")).text
    rev = re.search(r'name="rev" value="(\d+)"', edit)[1]
    r = await _post(
        demo,
        f"/console/admin/reference/site/{site}",
        data={**form, "name": "Wuxi packaging hall 2", "rev": rev},
    )
    assert r.status_code == 303
    r = await _post(demo, f"/console/admin/reference/site/{site}", data={**form, "rev": rev})
    assert r.status_code == 412 and "Someone changed this record meanwhile" in r.text
    assert 'value="Wuxi packaging hall 2"' in r.text  # the record as it is now, its new rev
    assert f'name="rev" value="{int(rev) + 1}"' in r.text
    # a chain: its product and its links' sites by name; a link at no site is refused
    chains = (await demo.get("/console/admin/reference", params={"kind": "chain"})).text
    assert "ZV-101" in chains and "link(s)" in chains
    product = _option(chains, "Zelatuzumab vedotin (ZV-101), anti-HER2 ADC")
    chain = {
        "_csrf": token,
        "name": "Short chain",
        "product_id": product,
        "link-0-id": "",
        "link-0-stage_type": "formulation_filling",
        "link-0-site_id": site,
        "link-0-hands_over": "filled vials",
        "link-1-id": "",
        "link-1-stage_type": "formulation_filling",
        "link-1-site_id": "",
        "link-1-hands_over": "",
    }
    r = await _post(
        demo, "/console/admin/reference/chain", data={**chain, "link-0-site_id": "nowhere"}
    )
    assert r.status_code == 422 and "no site" in r.text
    r = await _post(demo, "/console/admin/reference/chain", data=chain)
    assert r.status_code == 303, r.text
    page = (await demo.get(r.headers["location"])).text
    assert "Short chain saved." in page
    admin = await login(demo, "admin")
    made = [
        c
        for c in (await admin.get("/api/v1/chains")).json()["items"]
        if c["data"]["name"] == "Short chain"
    ]
    assert [x["site_id"] for x in made[0]["data"]["links"]] == [site]
    assert (await demo.get("/console/admin/reference/nothing/x")).status_code == 404
    # the trail says it in words: references by name, a chain's links as stage at site
    trail = (await demo.get("/console/admin/audit", params={"kind": "site", "record": site})).text
    assert "Organisation: set to Taihu Sterile Manufacturing Co., Ltd." in trail
    assert "Name: from Wuxi packaging hall to Wuxi packaging hall 2" in trail
    trail = (await demo.get("/console/admin/audit", params={"kind": "chain"})).text
    assert "Formulation and aseptic filling at Wuxi packaging hall 2" in trail
    assert "Zelatuzumab vedotin (ZV-101)" in trail


async def test_audit_trail_by_user_and_day(demo):
    """The API filters by kind, record and inspection; the page also by who and by the
    days events were received (in the reader's zone), reading on through the trail."""
    token = await _admin(demo)
    for user in ("u-sup-js", "u-sup-zj"):
        r = await _post(demo, f"/console/admin/users/{user}", {"_csrf": token, "action": "disable"})
        assert r.status_code == 303
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    page = (await demo.get("/console/admin/audit", params={"user": "u-admin"})).text
    events = re.findall(r'data-event="(\d+)"', page)
    assert len(events) == 2 and "Supervisor Wang (Zhejiang)" in page
    assert "The system" not in page.split("<tbody>")[1]  # only the admin's events
    assert "selected>System Administrator</option>" in page
    page = (
        await demo.get(
            "/console/admin/audit",
            params={"user": "u-admin", "from": today.isoformat(), "to": today.isoformat()},
        )
    ).text
    assert len(re.findall(r'data-event="(\d+)"', page)) == 2
    later = (today + timedelta(days=1)).isoformat()
    page = (await demo.get("/console/admin/audit", params={"from": later})).text
    assert "No event matches these filters." in page
    # paging goes on from the last event read: the second page has the other one
    page = (
        await demo.get("/console/admin/audit", params={"user": "u-admin", "after": events[0]})
    ).text
    assert re.findall(r'data-event="(\d+)"', page) == [events[1]]
