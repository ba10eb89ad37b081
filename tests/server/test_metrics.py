"""/metrics: Prometheus text, counting pushes, pulls and requests by route, gauges read
from the store at each scrape; readable by a local client or with the metrics token."""

from __future__ import annotations

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import login
from tests.server.test_sync_http import push_body

LOCAL = ("127.0.0.1", 50000)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def local_client(app) -> httpx.AsyncClient:
    """A client that connects from 127.0.0.1 (the test client's address is not an IP)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=LOCAL), base_url="http://127.0.0.1"
    )


async def scrape(app) -> dict:
    async with local_client(app) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_counts_a_push_by_result_and_the_pull_and_the_route(demo, app):
    before = await scrape(app)
    s = await login(demo, "insp.js1", device={"name": "t"})
    body = msgspec.json.encode(push_body("m:1", "f-metrics", title="Counted"))
    for _ in range(2):  # the second is a retry: a duplicate
        r = await s.post(
            "/api/v1/sync/push", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 200
    r = await s.post("/api/v1/sync/pull", json={})
    sent = len(r.json()["changes"])
    after = await scrape(app)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("inspectsync_push_mutations_total", result="applied") == 1
    assert delta("inspectsync_push_mutations_total", result="duplicate") == 1
    assert delta("inspectsync_push_mutations_total", result="rejected") == 0
    assert delta("inspectsync_pull_records_total") == sent > 0
    route = {
        "app_name": "inspectsync",
        "method": "POST",
        "path": "/api/v1/sync/push",
        "status_code": "200",
    }
    assert delta("inspectsync_requests_total", **route) == 2
    assert delta("inspectsync_request_duration_seconds_count", **route) == 2


async def test_gauges_are_read_from_the_store_at_each_scrape(demo, app):
    s = await login(demo, "insp.js1", device={"name": "t"})
    first = await scrape(app)
    # a rejected mutation (an unknown kind) goes to quarantine; a finding naming a
    # photo never uploaded is missing evidence
    bad = msgspec.json.decode(msgspec.json.encode(push_body("g:1", "f-bad", title="x")))
    bad["mutations"][0]["kind"] = "photo_note"
    assert (await s.post("/api/v1/sync/push", json=bad)).json()["results"][0]["status"] == (
        "rejected"
    )
    photo = "ab" * 32
    body = msgspec.json.encode(push_body("g:2", "f-photo", title="y", evidence_hashes=[photo]))
    r = await s.post(
        "/api/v1/sync/push", content=body, headers={"content-type": "application/json"}
    )
    assert r.json()["results"][0]["status"] == "applied"
    second = await scrape(app)
    assert value(second, "inspectsync_quarantined_mutations") == (
        value(first, "inspectsync_quarantined_mutations") + 1
    )
    assert value(second, "inspectsync_missing_evidence_files") == (
        value(first, "inspectsync_missing_evidence_files") + 1
    )
    assert value(second, "inspectsync_inspections_missing_evidence") >= 1
    assert value(second, "inspectsync_writer_queue_depth") == 0
    # two pushes ran on the writer since the first scrape: its busy time moved on
    assert value(second, "inspectsync_writer_busy_seconds") > value(
        first, "inspectsync_writer_busy_seconds"
    )
    assert ("inspectsync_open_conflicts", ()) in second


async def test_metrics_is_refused_to_a_remote_client_without_a_token(demo):
    r = await demo.get("/metrics")  # the test client's address is not this machine's
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"


async def test_metrics_token_is_required_when_set(tmp_path):
    from litestar.testing import AsyncTestClient

    from server.app import create_app
    from server.settings import Settings
    from tests.conftest import FAST, SECRET

    token = "scrape-" + "x" * 30
    app = create_app(
        Settings(data_dir=str(tmp_path), jwt_secret=SECRET, metrics_token=token, **FAST)
    )
    async with AsyncTestClient(app=app) as c:
        r = await c.get("/metrics")
        assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
        r = await c.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["code"] == "token_invalid"
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert "inspectsync_open_conflicts 0.0" in r.text
        # even from this machine, the token is then required
        async with local_client(app) as local:
            assert (await local.get("/metrics")).status_code == 401
