"""Supervisor review end to end over HTTP, with reference tablets (sync/client.py) on the
same app: findings go out offline, come back returned, are fixed offline, accepted and
the inspection closed; conflicts are resolved and converge; reclassification and
signatures keep what they must; role and object checks on every review route."""

from __future__ import annotations

from pathlib import Path

from server.demo import DEMO_PASSWORD
from sync.client import HttpTransport, Tablet
from tests.conftest import Session, login

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 + insp.js2; in progress
ITEM = "l2-cellbank:cb_history"


async def tablet(demo, tmp_path: Path, username: str, name: str) -> tuple[Tablet, Session]:
    s = await login(demo, username, device={"name": name})
    transport = HttpTransport(
        "http://testserver.local",
        access_token=s.tokens["access_token"],
        refresh_token=s.tokens["refresh_token"],
        client=demo,
    )
    t = Tablet(tmp_path / f"{name}.db", transport, device_id=s.tokens["device_id"])
    await t.sync()
    return t, s


async def decide(sup: Session, fid: str, **body) -> object:
    return await sup.post(
        f"/api/v1/review/findings/{fid}/decisions", json={"password": DEMO_PASSWORD, **body}
    )


async def move(s: Session, to: str) -> object:
    return await s.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})


async def test_returned_finding_is_fixed_offline_then_accepted_and_the_inspection_closed(
    demo, tmp_path
):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit(
        "finding",
        "f-ln2",
        {
            "inspection_id": INSP,
            "title": "LN2 alarm not tested",
            "classification": "major",
            "linked_items": [ITEM],
            "status": "submitted",
        },
    )
    li.edit(
        "finding",
        "f-log",
        {"inspection_id": INSP, "title": "Logbook gaps", "classification": "other"},
    )
    await li.sync()
    sup = await login(demo, "sup.js")

    queue = (await sup.get("/api/v1/review/queue", params={"inspection_id": INSP})).json()
    assert [r["id"] for r in queue["items"]] == ["f-ln2", "f-log"]  # major before other
    row = queue["items"][0]
    assert row["stage_types"] == ["cell_bank"] and row["site_id"] == "site-suzhou-ds"
    assert row["raised_by"] and row["status"] == "submitted"
    only = await sup.get("/api/v1/review/queue", params={"classification": "other"})
    assert [r["id"] for r in only.json()["items"]] == ["f-log"]
    stage = await sup.get("/api/v1/review/queue", params={"stage_type": "cell_bank"})
    assert {r["id"] for r in stage.json()["items"]} == {"f-ln2", "f-log"}  # f-log: whole scope
    assert (await sup.get("/api/v1/review/queue", params={"limit": 0})).status_code == 400

    r = await decide(sup, "f-ln2", decision="return", reason="evidence thin")
    assert r.status_code == 422 and r.json()["field"] == "comment"
    r = await decide(
        sup, "f-ln2", decision="return", reason="evidence thin", comment="Cite the alarm log"
    )
    assert r.status_code == 200 and r.json()["status"] == "returned"

    await li.sync()  # the comment and the status reach the tablet
    f = li.view("finding", "f-ln2")
    assert f["status"] == "returned"
    assert f["comments"][-1]["text"] == "Cite the alarm log"
    li.edit(
        "finding",
        "f-ln2",
        {"objective_evidence": "Alarm log 2026-03: no test entries", "status": "submitted"},
    )
    await li.sync()
    assert li.status()["pending"] == 0

    r = await move(sup, "fieldwork_done")
    assert r.status_code == 200
    r = await move(sup, "under_review")
    assert r.status_code == 200
    r = await move(sup, "closed")
    assert r.status_code == 409
    assert sorted(r.json()["undecided_findings"]) == ["f-ln2", "f-log"]
    for fid in ("f-ln2", "f-log"):
        r = await decide(sup, fid, decision="accept", reason="meets PI 040 wording")
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = await move(sup, "closed")
    assert r.status_code == 200, r.text

    await li.sync()
    assert li.view("finding", "f-ln2")["status"] == "accepted"
    li.edit("finding", "f-log", {"title": "too late"}, reason="after closing")
    await li.sync()
    assert li.results("rejected")[-1]["detail"]["code"] == "inspection_closed"

    history = (await sup.get("/api/v1/audit/history/finding/f-ln2")).json()
    ops = [h["op"] for h in history]
    assert ops == ["create", "review:return", "update", "review:accept"]
    assert history[1]["reason"] == "evidence thin" and history[1]["role"] == "supervisor"


async def test_two_tablets_conflict_is_resolved_and_both_converge(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    zhao, _ = await tablet(demo, tmp_path, "insp.js2", "zhao")
    li.edit("finding", "f-1", {"inspection_id": INSP, "title": "Seal", "classification": "major"})
    await li.sync()
    await zhao.sync()
    li.edit("finding", "f-1", {"classification": "critical"})
    zhao.edit("finding", "f-1", {"classification": "other"})
    await li.sync()
    await zhao.sync()
    sup = await login(demo, "sup.js")
    queue = await sup.get("/api/v1/review/queue", params={"has_open_conflict": "true"})
    assert [r["id"] for r in queue.json()["items"]] == ["f-1"]
    r = await decide(sup, "f-1", decision="accept", reason="ok")
    assert r.status_code == 409  # conflicts first
    conflict = (await sup.get("/api/v1/sync/conflicts")).json()[0]
    values = {v["value"]: v for v in conflict["data"]["values"]}
    assert set(values) == {"critical", "other"}
    for v in values.values():  # who, which device, when on the device, for each value
        assert v["by"] and v["device"] and v["device_time"] and v["hlc"]
    r = await sup.post(
        f"/api/v1/sync/conflicts/{conflict['id']}/resolve",
        json={"value": "critical", "reason": "sterility breach"},
    )
    assert r.status_code == 200
    await li.sync()
    await zhao.sync()
    assert li.view("finding", "f-1") == zhao.view("finding", "f-1")
    assert li.view("finding", "f-1")["classification"] == "critical"
    assert li.view("finding", "f-1")["open_conflicts"] == []


async def test_reclassification_keeps_both_values_and_merge_points_to_the_survivor(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit(
        "finding", "f-a", {"inspection_id": INSP, "title": "Gowning", "classification": "major"}
    )
    li.edit("finding", "f-b", {"inspection_id": INSP, "title": "Gowning (2)"})
    await li.sync()
    sup = await login(demo, "sup.js")
    r = await decide(
        sup, "f-a", decision="reclassify", reason="patient risk", classification="critical"
    )
    assert r.status_code == 200
    body = r.json()
    assert body["classification"] == "critical" and body["original_classification"] == "major"
    r = await decide(sup, "f-a", decision="reclassify", reason="again", classification="critical")
    assert r.status_code == 422 and r.json()["field"] == "classification"
    history = (await sup.get("/api/v1/audit/history/finding/f-a")).json()
    change = history[-1]
    assert change["op"] == "review:reclassify"
    assert '"classification":"major"' in change["old"]
    assert '"classification":"critical"' in change["new"]
    before = (await sup.get("/api/v1/audit/versions/finding/f-a/1")).json()
    assert before["classification"] == "major"

    r = await decide(sup, "f-b", decision="merge", reason="same observation", into="f-b")
    assert r.status_code == 422 and r.json()["field"] == "into"
    r = await decide(sup, "f-b", decision="merge", reason="same observation", into="f-a")
    assert r.status_code == 200 and r.json()["merged_into"] == "f-a"
    await li.sync()
    assert li.view("finding", "f-a")["merged_from"] == ["f-b"]
    assert li.view("finding", "f-b")["status"] == "merged"  # kept, pointing to f-a
    r = await decide(sup, "f-b", decision="accept", reason="x")
    assert r.status_code == 409


async def test_a_signature_stops_matching_when_the_signed_content_changes(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    rid = f"{INSP}~l2-cellbank~cb_history~0"
    li.edit("response", rid, {"value": "yes"})
    li.edit(
        "finding",
        "f-s",
        {
            "inspection_id": INSP,
            "title": "Vial labels",
            "classification": "other",
            "linked_items": [ITEM],
        },
    )
    await li.sync()
    li.edit(
        "signoff",
        "s-1",
        {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": "Li Wei",
            "meaning": "authored",
            "signed_at": "2026-11-29T10:00:00+08:00",
            "incomplete_reason": "the other items are for the follow-up visit",
        },
    )
    await li.sync()
    sup = await login(demo, "sup.js")
    url = f"/api/v1/review/inspections/{INSP}/signatures"
    (sig,) = (await sup.get(url)).json()
    assert sig["signer_name"] == "Inspector Li (Jiangsu)" and sig["meaning"] == "authored"
    assert sig["matches"] is True and len(sig["content_hash"]) == 64

    answer = {"value": "no", "note": "second freezer"}
    li.edit("response", rid, answer)  # signed: a change needs a reason
    await li.sync()
    assert li.results("rejected")[-1]["detail"]["code"] == "reason_required"
    li.edit("response", rid, answer, reason="second freezer found on the walk-through")
    await li.sync()
    (sig,) = (await sup.get(url)).json()
    assert sig["matches"] is False and sig["current_hash"] != sig["content_hash"]
    old = (await sup.get(f"/api/v1/audit/versions/response/{rid}/1")).json()
    assert old["value"] == "yes"  # the signed version stays readable

    r = await decide(sup, "f-s", decision="accept", reason="clear")
    assert r.status_code == 200
    decision = next(s for s in (await sup.get(url)).json() if s["kind"] == "decision")
    assert decision["matches"] is True and decision["meaning"] == "approved"
    assert decision["signer_name"] == "Supervisor Chen (Jiangsu)"


async def test_review_routes_check_role_and_object(demo, tmp_path):
    li, inspector = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit("finding", "f-r", {"inspection_id": INSP, "title": "x"})
    await li.sync()
    assert (await inspector.get("/api/v1/review/queue")).status_code == 403
    r = await decide(inspector, "f-r", decision="accept", reason="self-approval")
    assert r.status_code == 403
    zhejiang = await login(demo, "sup.zj")  # another province: cannot see Jiangsu's
    assert (await zhejiang.get("/api/v1/review/queue")).json()["total"] == 0
    assert (await decide(zhejiang, "f-r", decision="accept", reason="x")).status_code == 404
    assert (await zhejiang.get("/api/v1/audit/history/finding/f-r")).status_code == 404
    url = f"/api/v1/review/inspections/{INSP}/signatures"
    assert (await zhejiang.get(url)).status_code == 404
    admin = await login(demo, "admin")
    assert (await decide(admin, "f-r", decision="accept", reason="x")).status_code == 403
    r = await decide(await login(demo, "sup.js"), "f-r", decision="approve", reason="x")
    assert r.status_code == 400 and "decision" in r.json()["field"]
    assert (await inspector.get("/api/v1/audit/events")).status_code == 403
    assert (await inspector.get("/api/v1/audit/history/user/x")).status_code == 404
    events = (await admin.get("/api/v1/audit/events", params={"limit": 5})).json()
    assert len(events["events"]) == 5 and events["next_after_id"] == events["events"][-1]["id"]
    found = (await admin.get("/api/v1/audit/verify")).json()
    # the server wrote the head down at start-up, and the check covers it
    assert found["ok"] is True and found["anchors_checked"] == 1 and found["last_id"] > 5


async def test_joint_inspection_both_authorities_see_it_the_lead_decides(demo, tmp_path):
    zhou, _ = await tablet(demo, tmp_path, "insp.zj1", "zhou")  # joint: Zhejiang leads
    joint = "insp-joint-conj"
    sup_zj, sup_js = await login(demo, "sup.zj"), await login(demo, "sup.js")
    r = await sup_zj.post(f"/api/v1/inspections/{joint}/transitions", json={"to": "in_progress"})
    assert r.status_code == 200
    await zhou.sync()
    sha = "ab" * 32  # a photo recorded offline, not uploaded yet
    zhou.edit(
        "finding",
        "f-j",
        {
            "inspection_id": joint,
            "title": "DAR drift",
            "classification": "major",
            "evidence_hashes": [sha],
        },
    )
    await zhou.sync()
    for sup in (sup_zj, sup_js):
        rows = (await sup.get("/api/v1/review/queue", params={"has_missing_evidence": 1})).json()
        assert [(r["id"], r["missing_evidence"]) for r in rows["items"]] == [("f-j", [sha])]
        assert rows["items"][0]["lead_authority_id"] == "zj-mpa"
    r = await decide(sup_js, "f-j", decision="accept", reason="x")
    assert r.status_code == 403  # the participating authority sees, the lead decides
    r = await decide(sup_zj, "f-j", decision="accept", reason="photo to follow")
    assert r.status_code == 200
    none = await sup_zj.get("/api/v1/review/queue", params={"has_missing_evidence": "false"})
    assert none.json()["total"] == 0


def test_no_route_changes_or_removes_audit_events(app):
    for route in app.routes:
        if route.path.startswith("/api/v1/audit"):
            methods = {m for h in route.route_handlers for m in h.http_methods}
            assert methods <= {"GET", "HEAD", "OPTIONS"}, (route.path, methods)


async def test_an_inspector_cannot_accept_their_own_finding_from_the_tablet(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit("finding", "f-self", {"inspection_id": INSP, "title": "Mislabelled vial"})
    await li.sync()
    li.edit("finding", "f-self", {"status": "accepted"})
    await li.sync()
    rejected = li.results("rejected")[-1]["detail"]
    assert (rejected["code"], rejected["field"]) == ("invalid_choice", "status")
    sup = await login(demo, "sup.js")
    row = (await sup.get("/api/v1/review/queue")).json()["items"][0]
    assert (row["id"], row["status"]) == ("f-self", "draft")


async def test_bad_review_input_is_a_4xx_problem_naming_the_field(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit("finding", "f-bad", {"inspection_id": INSP, "title": "x", "classification": "other"})
    await li.sync()
    sup = await login(demo, "sup.js")
    url = "/api/v1/review/findings/f-bad/decisions"
    cases = [
        ({"reason": "no decision"}, "decision"),
        ({"decision": "accept"}, "reason"),
        ({"decision": "accept", "reason": 5}, "reason"),
        ({"decision": "accept", "reason": "x", "colour": "red"}, "colour"),
        ({"decision": "reclassify", "reason": "x", "classification": "severe"}, "classification"),
        ({"decision": "accept", "reason": "   "}, "reason"),
        ({"decision": "merge", "reason": "x"}, "into"),
        ({"decision": "accept", "reason": "x", "expect_rev": "one"}, "expect_rev"),
    ]
    for body, field in cases:
        r = await sup.post(url, json={"password": DEMO_PASSWORD, **body})
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        problem = r.json()
        assert field in (problem.get("field") or ""), (body, problem)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await sup.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = await sup.post(
        url,
        json={"decision": "accept", "reason": "x", "expect_rev": 99, "password": DEMO_PASSWORD},
    )
    assert r.status_code == 412 and r.json()["current_rev"] == 1
    for params in ({"limit": "many"}, {"sort": "colour"}, {"date_from": "yesterday"}):
        r = await sup.get("/api/v1/review/queue", params=params)
        assert r.status_code == 400, (params, r.text)
    admin = await login(demo, "admin")
    assert (await admin.get("/api/v1/audit/events", params={"after_id": "x"})).status_code == 400
    assert (await sup.get("/api/v1/audit/versions/finding/f-bad/99")).status_code == 404
    # nothing accepted was lost on the way
    assert li.view("finding", "f-bad")["status"] == "draft"
    queue = (await sup.get("/api/v1/review/queue")).json()
    assert [(r["id"], r["status"]) for r in queue["items"]] == [("f-bad", "draft")]


async def test_a_decision_is_signed_only_with_the_password_typed_again(demo, tmp_path):
    li, _ = await tablet(demo, tmp_path, "insp.js1", "li")
    li.edit("finding", "f-pw", {"inspection_id": INSP, "title": "x", "classification": "other"})
    await li.sync()
    sup = await login(demo, "sup.js")
    url = "/api/v1/review/findings/f-pw/decisions"
    body = {"decision": "return", "reason": "thin", "comment": "more"}
    r = await sup.post(url, json=body)
    assert r.status_code == 400 and r.json()["field"] == "password"
    r = await sup.post(url, json={**body, "password": "not-mine-at-all"})
    assert r.status_code == 403 and r.json()["code"] == "reauthentication_failed"
    history = (await sup.get("/api/v1/audit/history/finding/f-pw")).json()
    assert [e["op"] for e in history] == ["create"]  # nothing was decided
    r = await sup.post(url, json={**body, "password": DEMO_PASSWORD})
    assert r.status_code == 200
    signature = r.json()["decisions"][-1]["signature"]
    assert signature["authenticated_by"] == "password"
    assert signature["signer_name"] == "Supervisor Chen (Jiangsu)"  # the account's name
    # the signatures API says the server checked the password at signing
    sigs = (await sup.get(f"/api/v1/review/inspections/{INSP}/signatures")).json()
    (listed,) = [s for s in sigs if s["kind"] == "decision" and s["finding_id"] == "f-pw"]
    assert listed["reauth_method"] == "password"
    assert listed["reauthenticated_at"] == signature["signed_at"]
