"""The sync endpoints over HTTP: encodings, compression, errors, notifications; on
SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import msgspec

from server.demo import DEMO_PASSWORD
from sync.protocol import Mutation, PullRequest, PullResponse, PushRequest, PushResponse
from tests.conftest import BOTH_BACKENDS, login
from tests.server.test_process import start_server, stop

INSP = "insp-ds-routine"

backend = BOTH_BACKENDS


def push_body(mid: str, fid: str, **fields) -> PushRequest:
    now = datetime.now(UTC)
    return PushRequest(
        mutations=[
            Mutation(
                mid=mid,
                kind="finding",
                id=fid,
                fields={"inspection_id": INSP, **fields},
                hlc=f"{int(now.timestamp() * 1000):015d}.00000.t",
                device_time=now,
            )
        ]
    )


async def test_json_and_msgpack_answer_alike(demo):
    s = await login(demo, "insp.js1", device={"name": "t"})
    r = await s.post(
        "/api/v1/sync/push",
        content=msgspec.json.encode(push_body("t:1", "f-json", title="JSON")),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["results"][0]["status"] == "applied"
    r = await s.post(
        "/api/v1/sync/push",
        content=msgspec.msgpack.encode(push_body("t:2", "f-mp", title="MessagePack")),
        headers={"content-type": "application/msgpack", "accept": "application/msgpack"},
    )
    assert r.headers["content-type"].startswith("application/msgpack")
    answer = msgspec.msgpack.decode(r.content, type=PushResponse)
    assert answer.results[0].__struct_config__.tag == "applied"
    r = await s.post(
        "/api/v1/sync/pull",
        content=msgspec.msgpack.encode(PullRequest()),
        headers={
            "content-type": "application/msgpack",
            "accept": "application/msgpack, application/json",
        },
    )
    page = msgspec.msgpack.decode(r.content, type=PullResponse)
    titles = {c.data["title"] for c in page.changes if c.kind == "finding"}
    assert titles == {"JSON", "MessagePack"}
    # an old tablet's unknown fields are tolerated, a new kind is rejected on its own
    body = json.loads(msgspec.json.encode(push_body("t:3", "f-new", title="x")))
    body["client_build"] = "2027.1"
    body["mutations"][0]["priority"] = "high"
    body["mutations"].append({**body["mutations"][0], "mid": "t:4", "kind": "photo_note"})
    r = await s.post("/api/v1/sync/push", json=body)
    assert [x["status"] for x in r.json()["results"]] == ["applied", "rejected"]
    assert r.json()["results"][1]["code"] == "unknown_kind"


async def test_bad_sync_bodies_are_400_with_the_field(demo):
    s = await login(demo, "insp.js1")
    r = await s.post(
        "/api/v1/sync/push", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_failed"
    # a mutation that does not decode but has a mid is rejected on its own, field named
    r = await s.post("/api/v1/sync/push", json={"mutations": [{"mid": "x", "kind": "finding"}]})
    assert r.status_code == 200
    assert {k: r.json()["results"][0][k] for k in ("status", "code", "field")} == {
        "status": "rejected",
        "code": "required",
        "field": "id",  # the missing one
    }
    r = await s.post(
        "/api/v1/sync/push",
        json={
            "mutations": [
                {"mid": "y", "kind": "finding", "id": "f", "hlc": "h", "device_time": "yesterday"}
            ]
        },
    )
    assert r.json()["results"][0]["code"] == "wrong_type"
    assert r.json()["results"][0]["field"] == "device_time"
    # one with no mid cannot be answered on its own: the push is refused, nothing applied
    r = await s.post("/api/v1/sync/push", json={"mutations": [{"kind": "finding", "id": "f"}]})
    assert r.status_code == 400 and r.json()["field"] == "mutations[0].mid"
    r = await s.post("/api/v1/sync/pull", json={"limit": 0})
    assert r.status_code == 400 and r.json()["field"] == "limit"
    r = await s.post("/api/v1/sync/pull", json={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["field"] == "cursor"
    r = await s.post("/api/v1/sync/pull", content=b"")
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = await s.post("/api/v1/sync/push", json={"mutations": [{}] * 501})
    assert r.status_code == 400


async def test_pull_is_gzipped_when_asked(demo):
    s = await login(demo, "insp.js1")
    r = await s.post("/api/v1/sync/pull", json={}, headers={"accept-encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert r.json()["changes"]  # httpx inflates it


async def test_conflicts_listing_and_resolution_over_http(demo):
    a = await login(demo, "insp.js1", device={"name": "a"})
    b = await login(demo, "insp.js2", device={"name": "b"})
    await a.post(
        "/api/v1/sync/push",
        json=json.loads(
            msgspec.json.encode(push_body("a:1", "f-c", title="one", classification="major"))
        ),
    )
    body = json.loads(msgspec.json.encode(push_body("b:1", "f-c", classification="critical")))
    del body["mutations"][0]["fields"]["inspection_id"]
    r = await b.post("/api/v1/sync/push", json=body)
    assert r.json()["results"][0]["status"] == "conflict"
    sup = await login(demo, "sup.js")
    conflicts = (await sup.get("/api/v1/sync/conflicts")).json()
    assert len(conflicts) == 1 and conflicts[0]["data"]["flagged"] is True
    cid = conflicts[0]["id"]
    r = await sup.post(
        f"/api/v1/sync/conflicts/{cid}/resolve", json={"value": "severe", "reason": "typo"}
    )
    assert r.status_code == 422  # not a classification
    r = await sup.post(
        f"/api/v1/sync/conflicts/{cid}/resolve",
        json={"value": "critical", "reason": "agreed on site"},
    )
    assert r.status_code == 200 and r.json()["data"]["status"] == "resolved"
    r = await sup.post(
        f"/api/v1/sync/conflicts/{cid}/resolve", json={"value": "major", "reason": "again"}
    )
    assert r.status_code == 409
    other = await login(demo, "sup.zj")  # the other province cannot see it
    assert (await other.get("/api/v1/sync/conflicts")).json() == []
    r = await other.post(
        f"/api/v1/sync/conflicts/{cid}/resolve", json={"value": "other", "reason": "x"}
    )
    assert r.status_code == 404
    hist = (await a.get("/api/v1/sync/history/finding/f-c")).json()
    assert [h["op"] for h in hist] == ["create", "conflict", "resolve"]
    zj = await login(demo, "insp.zj2")
    assert (await zj.get("/api/v1/sync/history/finding/f-c")).status_code == 404
    admin = await login(demo, "admin")
    devices = (await admin.get("/api/v1/sync/devices")).json()
    assert {d["device_id"] for d in devices} >= {a.tokens["device_id"], b.tokens["device_id"]}


def test_online_tablets_are_told_to_pull(tmp_path, server_db):
    proc, base = start_server(tmp_path, "--demo", env=server_db.env)
    events: list[tuple[str, str]] = []
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def token(user: str) -> str:
                r = http.post(
                    "/api/v1/auth/login", json={"username": user, "password": DEMO_PASSWORD}
                )
                return r.json()["access_token"]

            listener, other, writer = token("insp.js2"), token("insp.zj2"), token("insp.js1")
            ready = {n: threading.Event() for n in ("js2", "zj2")}

            def listen(name: str, tok: str) -> None:
                with (
                    httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=4)) as c,
                    c.stream(
                        "GET", "/api/v1/sync/events", headers={"Authorization": f"Bearer {tok}"}
                    ) as r,
                ):
                    event = ""
                    try:
                        for line in r.iter_lines():
                            if line.startswith("event:"):
                                event = line.split(":", 1)[1].strip()
                                if event == "ready":
                                    ready[name].set()
                            elif line.startswith("data:") and event == "pull":
                                events.append((name, line.split(":", 1)[1].strip()))
                                return
                    except httpx.ReadTimeout:
                        return

            threads = [
                threading.Thread(target=listen, args=("js2", listener)),
                threading.Thread(target=listen, args=("zj2", other)),
            ]
            for t in threads:
                t.start()
            for e in ready.values():
                assert e.wait(10)
            r = http.post(
                "/api/v1/sync/push",
                content=msgspec.json.encode(push_body("w:1", "f-n", title="ping")),
                headers={"Authorization": f"Bearer {writer}", "content-type": "application/json"},
            )
            assert r.status_code == 200
            deadline = time.monotonic() + 10
            for t in threads:
                t.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        stop(proc)
    assert events == [("js2", '["insp-ds-routine"]')]  # not the other province's tablet
