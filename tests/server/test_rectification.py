"""Rectification (整改 / CAPA) over HTTP: deadlines by classification from the lead
authority, the company's response entered by staff with evidence uploaded after the
inspection closed, assessments, the overdue list as the clock moves, scope."""

from __future__ import annotations

from datetime import date, timedelta

from tests.conftest import login
from tests.server.test_conclusion import INSP, accept_all, push_findings
from tests.server.test_evidence import create, jpeg, metadata, send, sha

CHINA = timedelta(hours=8)


async def upload_for_rectification(s, data: bytes) -> str:
    r = await create(s, data, meta=metadata(data, INSP, purpose="rectification"))
    assert r.status_code == 201, r.text
    r = await send(s, r.headers["Location"], 0, data)
    assert r.status_code == 204, r.text
    return sha(data)


async def test_rectification_from_response_to_acceptance_and_the_overdue_list(demo, moving_clock):
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    admin = await login(demo, "admin")
    zj = await login(demo, "sup.zj")
    # Jiangsu gives majors 20 days (others: the default, 60)
    r = await admin.get("/api/v1/authorities/js-mpa")
    body = {**r.json()["data"], "rectification_days": {"major": 20}}
    r = await admin.put(
        "/api/v1/authorities/js-mpa", json=body, headers={"If-Match": str(r.json()["rev"])}
    )
    assert r.status_code == 200, r.text

    await push_findings(li, {"f-a": "major", "f-b": "other"})
    for to in ("fieldwork_done", "under_review"):
        r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
        assert r.status_code == 200
    await accept_all(sup, ["f-a", "f-b"])
    accepted_day = (moving_clock.now() + CHINA).date()
    r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": "closed"})
    assert r.status_code == 200

    url = f"/api/v1/inspections/{INSP}/rectifications"
    rows = {x["finding_id"]: x for x in (await sup.get(url)).json()}
    assert rows["f-a"]["deadline"] == (accepted_day + timedelta(days=20)).isoformat()
    assert rows["f-b"]["deadline"] == (accepted_day + timedelta(days=60)).isoformat()
    assert rows["f-a"]["labels"]["nmpa_zh"] == "主要缺陷"
    assert {x["status"] for x in rows.values()} == {"awaiting_response"}
    assert not any(x["overdue"] for x in rows.values())

    # the company's photo, after closing: only as rectification evidence
    photo = jpeg(7)
    r = await create(li, photo)
    assert r.status_code == 403 and r.json()["code"] == "inspection_closed"
    photo_sha = await upload_for_rectification(li, photo)

    response = {
        "root_cause": "Alarm test not in the preventive maintenance plan",
        "actions": "Added monthly alarm test; trained operators",
        "completion_date": (accepted_day + timedelta(days=14)).isoformat(),
        "submitted_by": "Wang Fang, QA head, Huaxin",
        "evidence_hashes": ["0" * 64],
    }
    r = await sup.put("/api/v1/rectifications/f-a/response", json=response)
    assert r.status_code == 422 and r.json()["field"] == "evidence_hashes[0]"
    r = await sup.put("/api/v1/rectifications/f-a/response", json={**response, "actions": " "})
    assert r.status_code == 422 and r.json()["field"] == "actions"
    # who may not: the admin (not of the lead authority's staff), another province
    r = await admin.put("/api/v1/rectifications/f-a/response", json=response)
    assert r.status_code == 403
    assert (await zj.put("/api/v1/rectifications/f-a/response", json=response)).status_code == 404
    assert (await zj.get(url)).status_code == 404
    r = await sup.put(
        "/api/v1/rectifications/f-a/response", json={**response, "evidence_hashes": [photo_sha]}
    )
    assert r.status_code == 200, r.text
    row = r.json()
    assert row["status"] == "responded" and row["rev"] == 1
    assert row["response"]["entered_by_name"] == "Supervisor Chen (Jiangsu)"
    assert row["response"]["evidence_hashes"] == [photo_sha]

    # 21 days later: the major one is overdue (its 20 days ended), the other not
    moving_clock.advance(days=21)
    overdue = (await sup.get("/api/v1/rectifications/overdue")).json()
    assert [x["finding_id"] for x in overdue] == ["f-a"]
    assert overdue[0]["days_overdue"] >= 1 and overdue[0]["site_name"]
    assert overdue[0]["inspection_title"]
    assert (await zj.get("/api/v1/rectifications/overdue")).json() == []

    r = await li.post(
        "/api/v1/rectifications/f-a/assessments",
        json={"outcome": "more_needed", "comment": "No record of the first monthly test"},
    )
    assert r.status_code == 200 and r.json()["status"] == "more_needed"
    assert r.json()["overdue"] is True
    r = await sup.put(
        "/api/v1/rectifications/f-a/response",
        json={**response, "evidence_hashes": [photo_sha], "expect_rev": 0},
    )
    assert r.status_code == 412
    r = await sup.put(
        "/api/v1/rectifications/f-a/response",
        json={
            **response,
            "actions": "Monthly test done",
            "evidence_hashes": [photo_sha],
            "expect_rev": 2,
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "responded"
    r = await sup.post(
        "/api/v1/rectifications/f-a/assessments",
        json={"outcome": "accepted", "comment": "Test record seen"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "accepted" and r.json()["overdue"] is False
    assert (await sup.get("/api/v1/rectifications/overdue")).json() == []
    r = await sup.post(
        "/api/v1/rectifications/f-a/assessments", json={"outcome": "accepted", "comment": "x"}
    )
    assert r.status_code == 422

    # 40 more days: the general finding, never answered, is overdue now
    moving_clock.advance(days=40)
    overdue = (await sup.get("/api/v1/rectifications/overdue")).json()
    assert [(x["finding_id"], x["status"]) for x in overdue] == [("f-b", "awaiting_response")]

    history = (await sup.get("/api/v1/audit/history/rectification/f-a")).json()
    assert [e["op"] for e in history] == [
        "rectification:respond",
        "rectification:more_needed",
        "rectification:respond",
        "rectification:accepted",
    ]
    assert history[1]["reason"] == "No record of the first monthly test"

    # a finding not accepted has no rectification to enter
    r = await sup.put("/api/v1/rectifications/no-such/response", json=response)
    assert r.status_code == 404
    assert date.fromisoformat(rows["f-a"]["deadline"]) > accepted_day
