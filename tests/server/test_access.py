"""Authorization on every endpoint: no token -> 401, wrong role -> 403, someone else's
object -> 404 (existence is not revealed)."""

from __future__ import annotations

import re

import pytest

from server.console import CONSOLE_EXCLUDE
from server.demo import DEMO_PASSWORD
from server.webapp import APP_EXCLUDE
from tests.conftest import login

PUBLIC = {
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/healthz",
    "/readyz",
}
OWN_CHECK = {"/metrics"}  # the metrics token or a local client: tests/server/test_metrics.py


def _routes(app):
    """The API's routes. The console's pages (``/``, ``/console/...``) take a session
    cookie, not a token: tests/console/test_console_http.py checks each of them. The
    tablet app's files (``/app``) are public: the app signs in through the API."""
    for route in app.routes:
        if route.path.startswith("/schema") or route.path in PUBLIC | OWN_CHECK:
            continue
        if any(re.match(p, route.path) for p in (*CONSOLE_EXCLUDE, *APP_EXCLUDE)):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                yield method, route.path


def _fill(path: str) -> str:
    return re.sub(
        r"\{(\w+):(\w+)\}", lambda m: "1" if m.group(2) == "int" else f"x-{m.group(1)}", path
    )


async def test_every_route_needs_a_token(demo, app):
    routes = list(_routes(app))
    assert len(routes) > 30
    for method, path in routes:
        r = await demo.request(method, _fill(path), json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["code"] in {"not_authenticated", "token_invalid"}


# (method, path, body, roles that may call it). Every route outside PUBLIC is listed;
# the test below checks the list is complete.
ROLE_TABLE = [
    ("GET", "/api/v1/users", None, {"admin"}),
    (
        "POST",
        "/api/v1/users",
        {
            "username": "new.user",
            "display_name": "N",
            "role": "inspector",
            "authority_id": "js-mpa",
            "password": "long-enough-pw",
        },
        {"admin"},
    ),
    ("GET", "/api/v1/users/u-insp-js1", None, {"admin"}),
    ("PATCH", "/api/v1/users/u-insp-js1", {"disabled": False}, {"admin"}),
    ("GET", "/api/v1/devices", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/devices/x/revoke", None, {"admin"}),
    ("GET", "/api/v1/auth/me", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/authorities", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/authorities", {"data": {"name": "X", "level": "national"}}, {"admin"}),
    ("GET", "/api/v1/authorities/js-mpa", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/authorities/js-mpa", {"name": "X", "level": "provincial"}, {"admin"}),
    ("GET", "/api/v1/organisations", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/organisations", {"data": {"name": "X", "kind": "mah"}}, {"admin"}),
    ("GET", "/api/v1/organisations/org-huaxin", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/organisations/org-huaxin", {"name": "X", "kind": "mah"}, {"admin"}),
    ("GET", "/api/v1/sites", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/sites", {"data": {}}, {"admin"}),
    ("GET", "/api/v1/sites/site-suzhou-ds", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/sites/site-suzhou-ds", {}, {"admin"}),
    ("GET", "/api/v1/products", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/products", {"data": {}}, {"admin"}),
    ("GET", "/api/v1/products/prod-zv101", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/products/prod-zv101", {}, {"admin"}),
    ("GET", "/api/v1/chains", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/chains", {"data": {}}, {"admin"}),
    ("GET", "/api/v1/chains/chain-zv101", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/chains/chain-zv101", {}, {"admin"}),
    ("GET", "/api/v1/inspections", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/inspections", {"data": {}}, {"admin", "supervisor"}),
    ("GET", "/api/v1/inspections/insp-ds-routine", None, {"admin", "supervisor", "inspector"}),
    ("PUT", "/api/v1/inspections/insp-ds-routine", {}, {"admin", "supervisor"}),
    (
        "POST",
        "/api/v1/inspections/insp-ds-routine/transitions",
        {"to": "fieldwork_done"},
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/assignments",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "POST",
        "/api/v1/inspections/insp-ds-routine/assignments",
        {"user_id": "u-insp-js1"},
        {"admin", "supervisor"},
    ),
    ("DELETE", "/api/v1/inspections/insp-ds-routine/assignments/x", None, {"admin", "supervisor"}),
    ("GET", "/api/v1/checklists/templates", None, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/checklists/templates", {}, {"admin"}),
    ("GET", "/api/v1/checklists/templates/cell_bank", None, {"admin", "supervisor", "inspector"}),
    (
        "GET",
        "/api/v1/checklists/templates/cell_bank/versions",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    ("POST", "/api/v1/checklists/templates/cell_bank/versions", {}, {"admin"}),
    ("GET", "/api/v1/checklists/stages", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/checklists/versions/cell_bank-v1", None, {"admin", "supervisor", "inspector"}),
    (
        "GET",
        "/api/v1/checklists/versions/cell_bank-v1/localized",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    ("PUT", "/api/v1/checklists/versions/cell_bank-v1", {"content": {}}, {"admin"}),
    ("POST", "/api/v1/checklists/versions/cell_bank-v1/validate", None, {"admin"}),
    ("POST", "/api/v1/checklists/versions/cell_bank-v1/publish", {"changelog": "x"}, {"admin"}),
    ("POST", "/api/v1/checklists/versions/cell_bank-v1/retire", None, {"admin"}),
    (
        "GET",
        "/api/v1/checklists/versions/cell_bank-v1/export",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/checklists/diff?from=cell_bank-v1&to=cell_bank-v1",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    ("POST", "/api/v1/checklists/import", None, {"admin"}),
    ("POST", "/api/v1/sync/pull", {}, {"admin", "supervisor", "inspector"}),
    ("POST", "/api/v1/sync/push", {"mutations": []}, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/sync/conflicts", None, {"admin", "supervisor", "inspector"}),
    (
        "POST",
        "/api/v1/sync/conflicts/cf_x/resolve",
        {"value": 1, "reason": "r"},
        {"admin", "supervisor"},
    ),
    ("GET", "/api/v1/sync/quarantine", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/sync/devices", None, {"admin"}),
    ("GET", "/api/v1/sync/events", None, set()),  # a stream: checked in test_sync_http
    ("GET", "/api/v1/sync/history/finding/f-x", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/review/queue", None, {"admin", "supervisor"}),
    # decisions: supervisors of the lead authority only (an admin gets 403 from the engine)
    (
        "POST",
        "/api/v1/review/findings/f-x/decisions",
        {"decision": "accept", "reason": "r", "password": DEMO_PASSWORD},
        {"supervisor"},
    ),
    (
        "GET",
        "/api/v1/review/inspections/insp-ds-routine/signatures",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/review/inspections/insp-ds-routine/conclusion",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    # the conclusion: supervisors of the lead authority only (an admin: 403 from the engine)
    (
        "PUT",
        "/api/v1/review/inspections/insp-ds-routine/conclusion",
        {"conclusion": "meets", "reason": "r", "password": DEMO_PASSWORD},
        {"supervisor"},
    ),
    # rectifications: any role reads its scope's; writes need the lead authority's
    # supervisor or the inspection's inspector (an admin: 403 from the engine, tested in
    # test_rectification; here the finding does not exist: 404 for all)
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/rectifications",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    ("GET", "/api/v1/rectifications/overdue", None, {"admin", "supervisor", "inspector"}),
    (
        "PUT",
        "/api/v1/rectifications/f-x/response",
        {
            "root_cause": "r",
            "actions": "a",
            "completion_date": "2027-01-01",
            "submitted_by": "s",
        },
        {"admin", "supervisor", "inspector"},
    ),
    (
        "POST",
        "/api/v1/rectifications/f-x/assessments",
        {"outcome": "accepted", "comment": "c"},
        {"admin", "supervisor", "inspector"},
    ),
    ("GET", "/api/v1/audit/history/finding/f-x", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/audit/versions/finding/f-x/1", None, {"admin", "supervisor", "inspector"}),
    ("GET", "/api/v1/audit/events", None, {"admin"}),
    ("GET", "/api/v1/audit/verify", None, {"admin"}),
    # evidence: anyone may upload to (and read from) the inspections they can see; the
    # tus routes answer 412 here (no Tus-Resumable), past the role check
    ("POST", "/api/v1/evidence/uploads", None, {"admin", "supervisor", "inspector"}),
    ("PATCH", "/api/v1/evidence/uploads/x", None, {"admin", "supervisor", "inspector"}),
    ("DELETE", "/api/v1/evidence/uploads/x", None, {"admin", "supervisor", "inspector"}),
    (
        "GET",
        "/api/v1/evidence/missing?inspection_id=insp-ds-routine",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    ("GET", f"/api/v1/evidence/{'0' * 64}", None, {"admin", "supervisor", "inspector"}),
    ("GET", f"/api/v1/evidence/{'0' * 64}/meta", None, {"admin", "supervisor", "inspector"}),
    ("GET", f"/api/v1/evidence/{'0' * 64}/thumbnail", None, {"admin", "supervisor", "inspector"}),
    # read models: the chain view is for staff; exports and the report follow the scope
    ("GET", "/api/v1/products/prod-zv101/chain-findings", None, {"admin", "supervisor"}),
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/export.csv",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/export.json",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/report.html",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    (
        "GET",
        "/api/v1/inspections/insp-ds-routine/report.pdf",
        None,
        {"admin", "supervisor", "inspector"},
    ),
    # the other documents: an unknown inspection (404 after the guard, no rendering)
    *(
        ("GET", f"/api/v1/inspections/insp-none/{name}", None, {"admin", "supervisor", "inspector"})
        for name in (
            "deficiencies.html",
            "deficiencies.pdf",
            "rectifications.html",
            "rectifications.pdf",
        )
    ),
    ("GET", "/api/v1/products/prod-none/dossier.pdf", None, {"admin", "supervisor"}),
    ("GET", "/api/v1/reports/public-key", None, {"admin", "supervisor", "inspector"}),
]

USERS = {"admin": "admin", "supervisor": "sup.js", "inspector": "insp.js1"}


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+:\w+\\\}", "[^/]+", re.escape(path)) + "$")


def test_the_role_table_covers_every_route(app):
    listed = {(m, p.split("?")[0]) for m, p, _, _ in ROLE_TABLE}
    missing = [
        (method, path)
        for method, path in _routes(app)
        if not any(m == method and _pattern(path).match(p) for m, p in listed)
    ]
    assert not missing, f"add these routes to ROLE_TABLE: {missing}"


@pytest.mark.parametrize("role", ["admin", "supervisor", "inspector"])
async def test_wrong_role_is_403_and_right_role_is_not(demo, role):
    s = await login(demo, USERS[role])
    for method, path, body, roles in ROLE_TABLE:
        if not roles:
            continue
        kw = {"json": body} if body is not None else {}
        r = await s.request(method, path, **kw)
        if role in roles:
            assert r.status_code not in (401, 403), (role, method, path, r.text)
        else:
            assert r.status_code == 403, (role, method, path, r.status_code, r.text)
            assert r.json()["code"] == "forbidden"


async def test_inspector_cannot_see_other_provinces_inspections(demo):
    zj = await login(demo, "insp.zj2")  # Zhejiang, only on the for-cause inspection
    listing = (await zj.get("/api/v1/inspections")).json()
    assert [i["id"] for i in listing["items"]] == ["insp-conj-forcause"]
    for iid in ("insp-ds-routine", "insp-fill-pai", "insp-joint-conj"):
        for path in (f"/api/v1/inspections/{iid}", f"/api/v1/inspections/{iid}/assignments"):
            r = await zj.get(path)
            assert r.status_code == 404, path
            assert r.json()["code"] == "not_found"
        r = await zj.post(f"/api/v1/inspections/{iid}/transitions", json={"to": "in_progress"})
        assert r.status_code == 404
    # reference data reachable only through own inspections
    assert (await zj.get("/api/v1/sites/site-suzhou-ds")).status_code == 404
    assert (await zj.get("/api/v1/sites/site-hangzhou-adc")).status_code == 200
    sites = (await zj.get("/api/v1/sites")).json()
    assert [s["id"] for s in sites["items"]] == ["site-hangzhou-adc"]
    assert (await zj.get("/api/v1/organisations/org-taihu")).status_code == 404
    assert (await zj.get("/api/v1/products/prod-zv101")).status_code == 200


async def test_joint_inspection_is_visible_to_both_authorities_and_its_team(demo):
    js1 = await login(demo, "insp.js1")  # Jiangsu inspector on the Zhejiang-led joint one
    ids = {i["id"] for i in (await js1.get("/api/v1/inspections")).json()["items"]}
    assert ids == {"insp-joint-conj", "insp-ds-routine"}
    js2 = await login(demo, "insp.js2")
    assert (await js2.get("/api/v1/inspections/insp-joint-conj")).status_code == 404

    sup_js = await login(demo, "sup.js")
    ids = {i["id"] for i in (await sup_js.get("/api/v1/inspections")).json()["items"]}
    assert ids == {"insp-joint-conj", "insp-ds-routine", "insp-fill-pai"}
    sup_zj = await login(demo, "sup.zj")
    ids = {i["id"] for i in (await sup_zj.get("/api/v1/inspections")).json()["items"]}
    assert ids == {"insp-joint-conj", "insp-conj-forcause"}
    assert (await sup_zj.get("/api/v1/inspections/insp-fill-pai")).status_code == 404


async def test_supervisor_plans_only_for_own_authority(demo):
    sup_zj = await login(demo, "sup.zj")
    body = {
        "data": {
            "title": "t",
            "site_id": "site-suzhou-ds",
            "chain_id": "chain-zv101",
            "link_ids": ["l2-cellbank"],
            "type": "routine",
            "lead_authority_id": "js-mpa",
            "planned_start": "2027-01-10",
            "planned_end": "2027-01-12",
        }
    }
    r = await sup_zj.post("/api/v1/inspections", json=body)
    assert r.status_code == 403
    body["data"]["lead_authority_id"] = "zj-mpa"
    r = await sup_zj.post("/api/v1/inspections", json=body)
    assert r.status_code == 201, r.text
    # a supervisor of another authority cannot touch its team
    sup_js = await login(demo, "sup.js")
    iid = r.json()["id"]
    r = await sup_js.post(f"/api/v1/inspections/{iid}/assignments", json={"user_id": "u-insp-js1"})
    assert r.status_code == 404
