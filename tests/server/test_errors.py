"""Bad input gets a specific 4xx problem detail naming the field, never a 500."""

from __future__ import annotations

from tests.conftest import login


async def test_malformed_and_mistyped_bodies_are_4xx_with_the_field(demo):
    admin = await login(demo, "admin")
    r = await admin.post(
        "/api/v1/sites", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "validation_failed"

    site = {
        "organisation_id": "org-huaxin",
        "name": "S",
        "province": "Jiangsu",
        "licence_number": "L1",
        "address": "A",
    }
    r = await admin.post("/api/v1/sites", json={"data": {**site, "province": 7}})
    assert r.status_code == 400
    assert r.json()["field"] == "data.province"

    r = await admin.post("/api/v1/organisations", json={"data": {"name": "X", "kind": "pharmacy"}})
    assert r.status_code == 400
    assert r.json()["field"] == "data.kind"

    r = await admin.post("/api/v1/sites", json={"data": {**site, "colour": "red"}})
    assert r.status_code == 400
    assert "colour" in r.json()["detail"]

    r = await admin.post("/api/v1/sites", json={"data": {**site, "organisation_id": "ghost"}})
    assert r.status_code == 422
    assert r.json() | {} == r.json() and r.json()["field"] == "organisation_id"

    r = await admin.post("/api/v1/sites", json={"id": "site-suzhou-ds", "data": site})
    assert r.status_code == 409 and r.json()["code"] == "already_exists"

    r = await admin.post("/api/v1/sites", json={"id": "s-new", "data": site})
    assert r.status_code == 201


async def test_oversized_body_is_413(demo):
    admin = await login(demo, "admin")
    r = await admin.post(
        "/api/v1/organisations",
        content=b"x" * 2_100_000,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "body_too_large"


async def test_unknown_route_and_method(demo):
    admin = await login(demo, "admin")
    r = await admin.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await admin.delete("/api/v1/authorities")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


async def test_health_and_openapi(demo):
    assert (await demo.get("/healthz")).json() == {"status": "ok"}
    ready = (await demo.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["schema_version"] >= 1
    spec = (await demo.get("/schema/openapi.json")).json()
    assert "/api/v1/inspections/{inspection_id}/transitions" in spec["paths"]
    assert "BearerToken" in spec["components"]["securitySchemes"]


async def test_numbers_past_what_the_database_holds_are_4xx_naming_the_field(demo):
    """Found by fuzzing the OpenAPI schema (schemathesis): integers beyond SQLite's
    64-bit range, in a query or inside a cursor, and OPTIONS on a guarded route, were
    500s."""
    import base64

    import msgspec

    admin = await login(demo, "admin")
    r = await admin.get("/api/v1/chains", params={"offset": str(10**25), "limit": "3"})
    assert r.status_code == 400 and r.json()["field"] == "offset"
    r = await admin.get("/api/v1/audit/events", params={"after_id": str(2**70)})
    assert r.status_code == 400 and r.json()["field"] == "after_id"
    r = await admin.request("OPTIONS", "/api/v1/users")
    assert r.status_code == 204 and "POST" in r.headers["allow"]

    li = await login(demo, "insp.js1", device={"name": "t"})
    for forged in ([2**64 - 1, "x", "", 0], [5, "x", "", 2**64 - 1]):
        cursor = base64.urlsafe_b64encode(msgspec.msgpack.encode(forged)).decode().rstrip("=")
        r = await li.post("/api/v1/sync/pull", json={"cursor": cursor})
        assert r.status_code == 422 and r.json()["field"] == "cursor", r.text


async def test_a_body_nested_too_deep_is_400_too_deep_on_every_json_route(demo):
    admin = await login(demo, "admin")
    sup = await login(demo, "sup.js")
    deep = b"[" * 5000 + b"]" * 5000
    for session, url, body in [
        (admin, "/api/v1/sites", b'{"data":' + deep + b"}"),
        (sup, "/api/v1/sync/conflicts/cf_x/resolve", b'{"value":' + deep + b',"reason":"r"}'),
        (sup, "/api/v1/review/findings/f_x/decisions", b'{"decision":' + deep + b"}"),
        (sup, "/api/v1/sync/pull", b'{"from_a_newer_app":' + deep + b"}"),
    ]:
        r = await session.post(url, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, (url, r.text)
        assert (r.json()["code"], r.json()["field"]) == ("too_deep", "body"), url


async def test_resolving_with_a_value_of_the_wrong_type_is_422_not_500(demo):
    from datetime import UTC, datetime

    def push(fid: str, mid: str, base: int, cls: str) -> dict:
        now = datetime.now(UTC)
        return {
            "mutations": [
                {
                    "mid": mid,
                    "kind": "finding",
                    "id": fid,
                    "base_rev": base,
                    "fields": {
                        "inspection_id": "insp-ds-routine",
                        "title": "T",
                        "classification": cls,
                    },
                    "hlc": f"{int(now.timestamp() * 1000):015d}.00000.{mid}",
                    "device_time": now.isoformat(),
                }
            ]
        }

    li = await login(demo, "insp.js1", device={"name": "a"})
    zhao = await login(demo, "insp.js2", device={"name": "b"})
    assert (
        await li.post("/api/v1/sync/push", json=push("f-c", "a:1", 0, "major"))
    ).status_code == 200
    r = await zhao.post("/api/v1/sync/push", json=push("f-c", "b:1", 0, "critical"))
    assert r.json()["results"][0]["status"] == "conflict"
    cid = next(
        c["conflict_id"]
        for c in r.json()["results"][0]["conflicts"]
        if c["field"] == "classification"
    )
    sup = await login(demo, "sup.js")
    for value in (["major"], {"a": 1}, 5):
        r = await sup.post(
            f"/api/v1/sync/conflicts/{cid}/resolve", json={"value": value, "reason": "r"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "value"
    r = await sup.post(
        f"/api/v1/sync/conflicts/{cid}/resolve", json={"value": "major", "reason": "r"}
    )
    assert r.status_code == 200
