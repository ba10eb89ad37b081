"""The console over HTTP (the app in-process): sessions, CSRF, languages, scope, the
review actions and /schema offline. The browser journeys are in test_console_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

from server.console.messages import CATALOGUES, negotiate
from server.demo import DEMO_PASSWORD
from sync.client import HttpTransport, Tablet
from tests.conftest import login

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 + insp.js2; in progress
CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "the page has no form with a CSRF token"
    return m.group(1)


async def sign_in(client, username: str, tz: str = "Asia/Shanghai", lang: str = "zh"):
    """Sign in through the form as a person would; the client keeps the cookies and
    asks for ``lang`` from then on."""
    client.cookies.clear()
    client.headers["Accept-Language"] = lang
    page = await client.get("/")
    r = await client.post(
        "/console/login",
        data={
            "_csrf": csrf_of(page.text),
            "username": username,
            "password": DEMO_PASSWORD,
            "tz": tz,
            "next": "",
        },
        follow_redirects=False,
    )
    return r


async def tablet(demo, tmp_path: Path, username: str, name: str) -> Tablet:
    s = await login(demo, username, device={"name": name})
    transport = HttpTransport(
        "http://testserver.local",
        access_token=s.tokens["access_token"],
        refresh_token=s.tokens["refresh_token"],
        client=demo,
    )
    t = Tablet(tmp_path / f"{name}.db", transport, device_id=s.tokens["device_id"])
    await t.sync()
    return t


def test_every_message_is_in_both_languages():
    en, zh = CATALOGUES["en"], CATALOGUES["zh"]
    assert set(en) == set(zh), sorted(set(en) ^ set(zh))
    assert all(v.strip() for v in [*en.values(), *zh.values()])


def test_accept_language_picks_the_language():
    assert negotiate("en-GB,en;q=0.9") == "en"
    assert negotiate("fr-FR, zh-CN;q=0.8, en;q=0.5") == "zh"
    assert negotiate("de") == "zh"  # neither: Chinese, the regulators' language
    assert negotiate(None) == "zh"
    assert negotiate("zh;q=0, en") == "en"


async def test_sign_in_page_in_the_language_asked_for(demo):
    zh = await demo.get("/")
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/html")
    assert "登录控制台" in zh.text and 'lang="zh-CN"' in zh.text
    en = await demo.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Sign in to the console" in en.text
    # the switch sets a cookie that wins over the header
    r = await demo.get("/console/lang", params={"to": "en", "next": "/"}, follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"] == "/"
    again = await demo.get("/", headers={"Accept-Language": "zh"})
    assert "Sign in to the console" in again.text
    # never a redirect to another host
    r = await demo.get("/console/lang", params={"to": "zh", "next": "//evil.example/"})
    assert r.headers.get("location", "/") == "/" or r.status_code == 200


async def test_session_cookie_flags_and_the_api_keeps_its_bearer_tokens(demo):
    r = await sign_in(demo, "sup.js")
    assert r.status_code == 303 and r.headers["location"] == "/console/queue"
    cookie = next(c for c in r.headers.get_list("set-cookie") if "inspectsync_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    queue = await demo.get("/console/queue")
    assert queue.status_code == 200 and "Supervisor Chen (Jiangsu)" in queue.text
    # the console's cookie is no credential for the API
    assert (await demo.get("/api/v1/inspections")).status_code == 401


PUBLIC_PAGES = {"/", "/console/login", "/console/lang"}


def _console_routes(app):
    from server.console import CONSOLE_EXCLUDE

    for route in app.routes:
        if not any(re.match(p, route.path) for p in CONSOLE_EXCLUDE):
            continue
        if route.path in PUBLIC_PAGES or route.path.startswith(
            ("/console/static/", "/console/vendor/")
        ):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method not in ("HEAD", "OPTIONS"):
                    yield method, re.sub(r"\{(\w+):\w+\}", r"x-\1", route.path)


async def test_every_console_page_needs_a_session(demo, app):
    """Without a session, every page sends to the sign-in page and every form is
    refused; a bearer token is no way in either."""
    routes = list(_console_routes(app))
    assert len(routes) >= 15
    admin = await login(demo, "admin")
    for method, path in routes:
        demo.cookies.clear()
        r = await demo.request(method, path, data={}, follow_redirects=False)
        if method == "GET":
            assert r.status_code in (302, 303), (method, path, r.status_code)
            assert r.headers["location"].startswith("/?next="), (method, path)
        else:
            assert r.status_code == 401 and "登录" in r.text, (method, path, r.status_code)
        r = await demo.request(method, path, headers=admin.headers, follow_redirects=False)
        assert r.status_code in (302, 303, 401), (method, path, "bearer", r.status_code)


async def test_over_https_the_cookie_is_secure(app, seeded_db):
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app, base_url="https://testserver.local") as c:
        r = await sign_in(c, "sup.js")
        cookie = next(x for x in r.headers.get_list("set-cookie") if "inspectsync_session=" in x)
        assert "Secure" in cookie


async def test_wrong_password_disabled_user_and_inspector_are_refused(demo):
    page = await demo.get("/", headers={"Accept-Language": "en"})
    form = {"_csrf": csrf_of(page.text), "username": "sup.js", "password": "nope", "next": ""}
    r = await demo.post("/console/login", data=form, headers={"Accept-Language": "en"})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    r = await sign_in(demo, "insp.js1", lang="en")
    assert r.status_code == 403 and "inspectors use the tablet app" in r.text

    # a disabled user's open session ends on the next request
    assert (await sign_in(demo, "sup.js")).status_code == 303
    admin = await login(demo, "admin")
    r = await admin.patch("/api/v1/users/sup.js", json={"disabled": True})
    assert r.status_code == 200, r.text
    r = await demo.get("/console/queue", follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/?next=")
    r = await sign_in(demo, "sup.js", lang="en")
    assert r.status_code == 401 and "This account is disabled." in r.text


async def test_a_form_without_its_token_is_refused(demo):
    # the sign-in form
    r = await demo.post(
        "/console/login", data={"username": "sup.js", "password": DEMO_PASSWORD, "next": ""}
    )
    assert r.status_code == 403
    # a signed-in form: another session's token does not do either
    await sign_in(demo, "sup.js")
    token = csrf_of((await demo.get("/console/conflicts")).text)
    r = await demo.post("/console/logout", data={})
    assert r.status_code == 403
    r = await demo.post("/console/logout", data={"_csrf": token[:-2] + "xx"})
    assert r.status_code == 403
    assert (await demo.get("/console/queue")).status_code == 200  # still signed in


async def test_logout_revokes_the_session(demo):
    await sign_in(demo, "sup.js")
    old = demo.cookies.get("inspectsync_session")
    token = csrf_of((await demo.get("/console/queue")).text)
    r = await demo.post("/console/logout", data={"_csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    demo.cookies.set("inspectsync_session", old)  # a copy of the cookie is worth nothing now
    r = await demo.get("/console/queue", follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"] == "/?next=%2Fconsole%2Fqueue"


async def test_review_from_the_console_scoped_like_the_api(demo, tmp_path):
    li = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit(
        "finding",
        "f-ln2",
        {
            "inspection_id": INSP,
            "title": "LN2 alarm not tested",
            "classification": "major",
            "linked_items": ["l2-cellbank:cb_history"],
            "status": "submitted",
            "evidence_hashes": ["ab" * 32],  # a photo the tablet has not uploaded yet
        },
    )
    await li.sync()

    # another province's supervisor: 404 for the page, the evidence, the actions
    await sign_in(demo, "sup.zj", lang="en")
    r = await demo.get("/console/findings/f-ln2")
    assert r.status_code == 404 and "Not found" in r.text
    assert "f-ln2" not in (await demo.get("/console/queue")).text
    token = csrf_of((await demo.get("/console/queue")).text)
    r = await demo.post(
        "/console/findings/f-ln2/decisions",
        data={"_csrf": token, "decision": "accept", "reason": "fine", "password": DEMO_PASSWORD},
    )
    assert r.status_code == 404
    for url in (
        f"/console/inspections/{INSP}",
        f"/console/inspections/{INSP}/export.csv",
        f"/console/inspections/{INSP}/export.json",
        f"/console/inspections/{INSP}/report.html",
    ):
        assert (await demo.get(url)).status_code == 404, url
    r = await demo.post(
        f"/console/inspections/{INSP}/transitions", data={"_csrf": token, "to": "fieldwork_done"}
    )
    assert r.status_code == 404

    # authorities share the chain view: listed, not linked (its page is not theirs)
    chain = await demo.get("/console/products/prod-zv101/chain")
    assert "LN2 alarm not tested" in chain.text
    assert '<a href="/console/findings/f-ln2">' not in chain.text

    await sign_in(demo, "sup.js", "Europe/Berlin", "en")
    stamp = (await demo.get("/console/queue/stamp")).json()["stamp"]
    assert stamp.startswith("1:")  # one finding; changes when tablets push
    queue = await demo.get("/console/queue", params={"classification": "major"})
    assert "LN2 alarm not tested" in queue.text and "NMPA: major defect" in queue.text
    assert "Inspector Li (Jiangsu)" in queue.text  # names, not ids
    page = await demo.get("/console/findings/f-ln2")
    assert page.status_code == 200 and "Inspector Li (Jiangsu)" in page.text
    assert "Times in Europe/Berlin" in page.text
    assert "Not uploaded yet" in page.text  # the missing photo, said so
    assert 'class="ev-missing"' in page.text and "/thumbnail" not in page.text
    assert "1 evidence file(s) missing" in queue.text
    token = csrf_of(page.text)
    # no reason: shown at the form, nothing decided
    r = await demo.post(
        "/console/findings/f-ln2/decisions",
        data={"_csrf": token, "decision": "return", "reason": "", "comment": "x"},
    )
    assert r.status_code == 422 and "Give a reason." in r.text
    # signing needs the password typed again: none, or a wrong one, decides nothing
    base = {"_csrf": token, "decision": "return", "reason": "thin", "comment": "x"}
    r = await demo.post("/console/findings/f-ln2/decisions", data=base)
    assert r.status_code == 422 and "Type your password again to sign." in r.text
    r = await demo.post(
        "/console/findings/f-ln2/decisions", data={**base, "password": "guess-5678"}
    )
    assert r.status_code == 403 and "not your password" in r.text
    assert "guess-5678" not in r.text
    r = await demo.post(
        "/console/findings/f-ln2/decisions",
        data={
            "_csrf": token,
            "decision": "return",
            "reason": "evidence thin",
            "comment": "Cite the alarm log",
            "password": DEMO_PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = await demo.get(r.headers["location"])
    assert "Returned to inspector" in page.text and "Cite the alarm log" in page.text
    assert "Signed by Supervisor Chen (Jiangsu) (reviewed)" in page.text
    await li.sync()
    assert li.view("finding", "f-ln2")["status"] == "returned"

    # the chain view: every link in chain order, the finding under its link
    chain = await demo.get("/console/products/prod-zv101/chain")
    assert chain.status_code == 200
    assert (
        chain.text.index("1. MAH")
        < chain.text.index("2. Cell bank")
        < chain.text.index("LN2 alarm not tested")
    )
    assert '<a href="/console/findings/f-ln2">' in chain.text

    # the inspection page: progress, findings, exports; closing refused with the reason
    page = await demo.get(f"/console/inspections/{INSP}")
    assert page.status_code == 200 and "Inspector Li (Jiangsu)" in page.text
    assert re.search(r"0 of \d+ required items answered", page.text)
    assert "LN2 alarm not tested" in page.text
    # a sign-off with required items unanswered shows how many, and the signer's reason;
    # an older tablet still sends a typed name
    li.edit(
        "signoff",
        "s-cb",
        {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": "Li Wei",
            "meaning": "authored",
            "signed_at": "2026-12-01T10:00:00+08:00",
            "incomplete_reason": "records held at the MAH",
        },
    )
    await li.sync()
    page = await demo.get(f"/console/inspections/{INSP}")
    # the sign-off shows the account's own name, not the name the tablet typed
    assert "✍ Inspector Li (Jiangsu) <span" in page.text and "Li Wei" not in page.text
    required = int(re.search(r"0 of (\d+) required items answered", page.text)[1])
    assert f"signed with {required} required items unanswered: records held at the MAH" in page.text
    csv = await demo.get(f"/console/inspections/{INSP}/export.csv")
    assert csv.status_code == 200 and "LN2 alarm not tested" in csv.content.decode("utf-8-sig")
    assert "attachment" in csv.headers["content-disposition"]
    report = await demo.get(f"/console/inspections/{INSP}/report.html")
    assert (
        report.status_code == 200
        and "default-src 'none'" in report.headers["content-security-policy"]
    )
    token = csrf_of(page.text)
    for to in ("fieldwork_done", "under_review"):
        r = await demo.post(
            f"/console/inspections/{INSP}/transitions",
            data={"_csrf": token, "to": to},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    r = await demo.post(
        f"/console/inspections/{INSP}/transitions", data={"_csrf": token, "to": "closed"}
    )
    assert r.status_code == 409
    assert "decide every finding" in r.text and "/console/findings/f-ln2" in r.text


async def test_schema_page_references_nothing_outside_the_server(demo):
    r = await demo.get("/schema")
    assert r.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", r.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in r.text.split("<body")[0] and "https://" not in r.text.split("<body")[0]
    for u in urls:
        assert (await demo.get(u)).status_code == 200, u
