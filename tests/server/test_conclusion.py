"""The inspection conclusion over HTTP: suggested from the accepted findings, set by a
supervisor of the lead authority with a reason, an override kept as one, signed,
audited, and refused to everyone else and at the wrong moment."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from server.demo import DEMO_PASSWORD
from sync.protocol import Mutation, PushRequest
from tests.conftest import Session, login

PW = DEMO_PASSWORD

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 + insp.js2; in progress
URL = f"/api/v1/review/inspections/{INSP}/conclusion"


async def push_findings(s: Session, findings: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = PushRequest(
        mutations=[
            Mutation(
                mid=f"c:{n}",
                kind="finding",
                id=fid,
                fields={
                    "inspection_id": INSP,
                    "title": f"Finding {fid}",
                    "classification": cls,
                    "status": "submitted",
                },
                hlc=f"{int(now.timestamp() * 1000):015d}.{n:05d}.t",
                device_time=now,
            )
            for n, (fid, cls) in enumerate(findings.items())
        ]
    )
    r = await s.post(
        "/api/v1/sync/push",
        content=msgspec.json.encode(body),
        headers={"content-type": "application/json"},
    )
    assert [x["status"] for x in r.json()["results"]] == ["applied"] * len(findings)


async def accept_all(sup: Session, ids) -> None:
    for fid in ids:
        r = await sup.post(
            f"/api/v1/review/findings/{fid}/decisions",
            json={"decision": "accept", "reason": "as written", "password": PW},
        )
        assert r.status_code == 200, r.text


async def test_conclusion_suggested_overridden_with_a_reason_kept_and_audited(demo):
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    await push_findings(li, {"f-a": "major", "f-b": "other"})

    view = (await sup.get(URL)).json()
    assert view["conclusion"] is None and view["rev"] == 0
    assert view["blocked"] == "status"  # still in progress
    r = await sup.put(URL, json={"password": PW, "conclusion": "meets", "reason": "early"})
    assert r.status_code == 409 and r.json()["field"] == "conclusion"

    for to in ("fieldwork_done", "under_review"):
        r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
        assert r.status_code == 200
    assert (await sup.get(URL)).json()["blocked"] == "undecided"
    r = await sup.put(URL, json={"password": PW, "conclusion": "meets", "reason": "early"})
    assert r.status_code == 409
    await accept_all(sup, ["f-a", "f-b"])

    view = (await sup.get(URL)).json()
    assert view["blocked"] is None
    assert view["suggestion"] == {
        "conclusion": "basically_meets",
        "counts": {"critical": 0, "major": 1, "other": 1},
        "rule": "major",
        "caution": None,
    }
    # who may not: the inspector (role), the other province's supervisor (not in scope)
    assert (await li.get(URL)).json()["blocked"] == "role"
    r = await li.put(URL, json={"password": PW, "conclusion": "meets", "reason": "x"})
    assert r.status_code == 403
    zj = await login(demo, "sup.zj")
    assert (await zj.get(URL)).status_code == 404
    assert (
        await zj.put(URL, json={"password": PW, "conclusion": "meets", "reason": "x"})
    ).status_code == 404
    r = await sup.put(URL, json={"password": PW, "conclusion": "meets", "reason": "  "})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await sup.put(URL, json={"password": PW, "conclusion": "fine", "reason": "x"})
    assert r.status_code == 400 and r.json()["field"] == "conclusion"

    # signing needs the signer's own password, typed again: none, or another's, is refused
    r = await sup.put(URL, json={"conclusion": "meets", "reason": "major closed on site"})
    assert r.status_code == 400 and r.json()["field"] == "password"
    r = await sup.put(
        URL, json={"password": "not-my-password", "conclusion": "meets", "reason": "x"}
    )
    assert r.status_code == 403 and r.json()["code"] == "reauthentication_failed"
    assert r.json()["field"] == "password"
    assert (await sup.get(URL)).json()["conclusion"] is None  # nothing was signed

    # the override: meets, against the suggested basically meets
    r = await sup.put(
        URL,
        json={
            "password": PW,
            "conclusion": "meets",
            "reason": "major closed on site",
            "expect_rev": 0,
        },
    )
    assert r.status_code == 200, r.text
    set_ = r.json()
    assert set_["rev"] == 1 and set_["conclusion"] == "meets"
    assert set_["suggested"] == "basically_meets" and set_["override"] is True
    assert set_["set_by_name"] == "Supervisor Chen (Jiangsu)"
    assert set_["signature"]["signer_name"] == "Supervisor Chen (Jiangsu)"  # the account's
    assert set_["signature"]["authenticated_by"] == "password"
    assert set_["findings"] == ["f-a", "f-b"] and set_["history"] == []
    # changed again: the first setting is kept in history; a stale rev is refused
    r = await sup.put(
        URL, json={"password": PW, "conclusion": "basically_meets", "reason": "x", "expect_rev": 0}
    )
    assert r.status_code == 412
    r = await sup.put(
        URL,
        json={
            "password": PW,
            "conclusion": "basically_meets",
            "reason": "on reflection",
            "expect_rev": 1,
        },
    )
    assert r.status_code == 200 and r.json()["override"] is False
    assert [h["conclusion"] for h in r.json()["history"]] == ["meets"]
    assert r.json()["history"][0]["reason"] == "major closed on site"

    audit = (await sup.get(f"/api/v1/audit/history/conclusion/{INSP}")).json()
    assert [e["op"] for e in audit] == ["conclude", "conclude"]
    assert [e["reason"] for e in audit] == ["major closed on site", "on reflection"]
    assert audit[0]["role"] == "supervisor"

    # a decision after it: the signature no longer matches, the suggestion follows
    assert (await sup.get(URL)).json()["matches"] is True
    sigs = (await sup.get(f"/api/v1/review/inspections/{INSP}/signatures")).json()
    [signed] = [x for x in sigs if x["kind"] == "conclusion"]
    assert signed["matches"] is True and signed["conclusion"] == "basically_meets"
    assert signed["reauth_method"] == "password"  # checked by the server at signing
    r = await sup.post(
        "/api/v1/review/findings/f-b/decisions",
        json={
            "decision": "reclassify",
            "classification": "critical",
            "reason": "data",
            "password": PW,
        },
    )
    assert r.status_code == 200
    await accept_all(sup, ["f-b"])
    view = (await sup.get(URL)).json()
    assert view["matches"] is False
    sigs = (await sup.get(f"/api/v1/review/inspections/{INSP}/signatures")).json()
    assert [x["matches"] for x in sigs if x["kind"] == "conclusion"] == [False]
    assert view["suggestion"]["conclusion"] == "does_not_meet"

    # closed: frozen
    r = await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": "closed"})
    assert r.status_code == 200, r.text
    r = await sup.put(URL, json={"password": PW, "conclusion": "does_not_meet", "reason": "x"})
    assert r.status_code == 409
    assert (await sup.get(URL)).json()["conclusion"]["conclusion"] == "basically_meets"
