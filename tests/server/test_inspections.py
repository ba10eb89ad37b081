"""Inspections: planning, status rules, pinning on start, team, listing."""

from __future__ import annotations

from tests.conftest import login

PLAN = {
    "title": "Routine: QC lab",
    "site_id": "site-suzhou-ds",
    "chain_id": "chain-zv101",
    "link_ids": ["l2-cellbank", "l3-upstream"],
    "type": "routine",
    "lead_authority_id": "js-mpa",
    "planned_start": "2027-02-01",
    "planned_end": "2027-02-03",
}


async def test_status_moves_one_step_at_a_time_and_only_forward(demo):
    sup = await login(demo, "sup.js")
    r = await sup.post("/api/v1/inspections", json={"data": PLAN})
    assert r.status_code == 201
    iid = r.json()["id"]
    assert r.json()["data"]["status"] == "planned"

    async def move(to: str):
        return await sup.post(f"/api/v1/inspections/{iid}/transitions", json={"to": to})

    for bad in ("fieldwork_done", "under_review", "closed", "planned"):
        r = await move(bad)
        assert r.status_code == 409, bad
        assert r.json()["code"] == "invalid_transition"
        assert r.json()["current_status"] == "planned"
    r = await move("in_progress")
    assert r.status_code == 200
    assert r.json()["data"]["pins"] == {
        "l2-cellbank": "cell_bank-v1",
        "l3-upstream": "upstream_culture-v1",
    }
    for step in ("fieldwork_done", "under_review", "closed"):
        assert (await move(step)).json()["data"]["status"] == step
    r = await move("in_progress")
    assert r.status_code == 409
    r = await move("bogus")
    assert r.status_code == 400
    assert r.json()["field"] == "to"


async def test_inspectors_cannot_review_or_close(demo):
    insp = await login(demo, "insp.js1")
    r = await insp.post(
        "/api/v1/inspections/insp-ds-routine/transitions", json={"to": "fieldwork_done"}
    )
    assert r.status_code == 200
    r = await insp.post(
        "/api/v1/inspections/insp-ds-routine/transitions", json={"to": "under_review"}
    )
    assert r.status_code == 403


async def test_plan_is_checked_against_the_chain(demo):
    admin = await login(demo, "admin")
    bad = {**PLAN, "link_ids": ["l6-conj"]}  # a link at another site
    r = await admin.post("/api/v1/inspections", json={"data": bad})
    assert r.status_code == 422
    assert r.json()["field"] == "link_ids[0]"
    r = await admin.post(
        "/api/v1/inspections", json={"data": {**PLAN, "planned_end": "2027-01-01"}}
    )
    assert r.json()["field"] == "planned_end"
    r = await admin.post("/api/v1/inspections", json={"data": {**PLAN, "site_id": "nope"}})
    assert r.json()["field"] == "site_id"


async def test_replanning_uses_if_match_and_stops_once_started(demo):
    admin = await login(demo, "admin")
    r = await admin.get("/api/v1/inspections/insp-fill-pai")
    rev = r.json()["rev"]
    plan = {**r.json()["data"], "planned_end": "2030-01-01"}
    r = await admin.put(
        "/api/v1/inspections/insp-fill-pai", json=plan, headers={"If-Match": str(rev - 1)}
    )
    assert r.status_code == 412
    assert r.json()["code"] == "revision_mismatch"
    r = await admin.put(
        "/api/v1/inspections/insp-fill-pai", json=plan, headers={"If-Match": str(rev)}
    )
    assert r.status_code == 200
    assert r.json()["data"]["planned_end"] == "2030-01-01"
    assert r.json()["data"]["team_user_ids"] == ["u-insp-js2"]  # team kept
    r = await admin.put(
        "/api/v1/inspections/insp-ds-routine",
        json=(await admin.get("/api/v1/inspections/insp-ds-routine")).json()["data"],
    )
    assert r.status_code == 409


async def test_team_changes_decide_who_sees_the_inspection(demo):
    sup = await login(demo, "sup.js")
    insp = await login(demo, "insp.js1")
    assert (await insp.get("/api/v1/inspections/insp-fill-pai")).status_code == 404
    r = await sup.post(
        "/api/v1/inspections/insp-fill-pai/assignments",
        json={"user_id": "u-insp-js1", "role": "member"},
    )
    assert r.status_code == 201
    aid = r.json()["id"]
    assert (await insp.get("/api/v1/inspections/insp-fill-pai")).status_code == 200
    r = await sup.post(
        "/api/v1/inspections/insp-fill-pai/assignments", json={"user_id": "u-insp-js1"}
    )
    assert r.status_code == 422  # already on the team
    r = await sup.post(
        "/api/v1/inspections/insp-fill-pai/assignments", json={"user_id": "u-insp-zj1"}
    )
    assert r.status_code == 422  # Zhejiang does not take part
    r = await sup.delete(f"/api/v1/inspections/insp-fill-pai/assignments/{aid}")
    assert r.status_code == 204
    assert (await insp.get("/api/v1/inspections/insp-fill-pai")).status_code == 404


async def test_listing_filters_and_pages(demo):
    admin = await login(demo, "admin")
    page = (await admin.get("/api/v1/inspections", params={"limit": 2})).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    rest = (await admin.get("/api/v1/inspections", params={"limit": 2, "offset": 2})).json()
    ids = [i["id"] for i in page["items"] + rest["items"]]
    assert len(set(ids)) == 4
    r = (await admin.get("/api/v1/inspections", params={"status": "in_progress"})).json()
    assert [i["id"] for i in r["items"]] == ["insp-ds-routine"]
    r = (
        await admin.get(
            "/api/v1/inspections", params={"site_id": "site-hangzhou-adc", "type": "for_cause"}
        )
    ).json()
    assert [i["id"] for i in r["items"]] == ["insp-conj-forcause"]
    r = await admin.get("/api/v1/inspections", params={"status": "paused"})
    assert r.status_code == 400 and r.json()["field"] == "status"
    r = await admin.get("/api/v1/inspections", params={"limit": 0})
    assert r.status_code == 400 and r.json()["field"] == "limit"
