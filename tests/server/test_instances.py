"""Several server instances over one PostgreSQL database, as behind a load balancer.

Real server processes (``inspectsync serve``) sharing a database and a data directory
(evidence, anchors): a push on one wakes tablets listening on the other within a second,
fifty tablets spread over both lose nothing and converge, an upload begun on one
completes on the other, failed logins through both count together, a device revoked through one
is refused by the other, a SIGKILLed instance loses nothing
it acknowledged while the other serves the resends, and instances starting together on
an empty database migrate and load the checklist library once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest

from checklists.loader import load_library
from server.demo import LIBRARY_DIR
from sync.protocol import PushRequest, PushResponse
from tests.conftest import SECRET
from tests.pg import ServerDB, fresh_database
from tests.server.test_evidence import CHUNK, TUS, UPLOADS, jpeg, metadata, sha
from tests.server.test_process import start_server, stop
from tests.server.test_sync_durability import (
    assert_audit_chain_intact,
    batch,
    login,
    pull_all,
    push_fleet,
    push_until_killed,
)
from tests.server.test_sync_http import push_body

# the fifty tablets reach the writers at once: the overload bounds are set above fifty
ENV = {
    "INSPECTSYNC_JWT_SECRET": SECRET,
    "INSPECTSYNC_MAX_IN_FLIGHT": "64",
    "INSPECTSYNC_MAX_PUSHES_IN_FLIGHT": "64",
}


def start_together(data_dir: Path, db: ServerDB, n: int, *extra: str) -> list[tuple]:
    """``n`` instances launched at the same moment (each waits until it is ready)."""
    with ThreadPoolExecutor(n) as pool:
        started = [
            pool.submit(start_server, data_dir, *extra, env={**ENV, **db.env}) for _ in range(n)
        ]
        return [s.result() for s in started]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, demo_pg_template: str
) -> Iterator[tuple[ServerDB, str, str]]:
    """Two instances A and B on a copy of the demo database: (database, A's URL, B's)."""
    data_dir = tmp_path_factory.mktemp("instances")
    with fresh_database(demo_pg_template) as url:
        db = ServerDB(data_dir, url)
        (a, base_a), (b, base_b) = start_together(data_dir, db, 2)
        try:
            yield db, base_a, base_b
        finally:
            stop(a)
            stop(b)


def push(http: httpx.Client, auth: dict[str, str], req: PushRequest) -> httpx.Response:
    return http.post(
        "/api/v1/sync/push",
        content=msgspec.json.encode(req),
        headers={**auth, "content-type": "application/json"},
    )


def test_a_push_on_one_instance_wakes_tablets_listening_on_the_other(pair):
    _, base_a, base_b = pair
    with httpx.Client(base_url=base_b, timeout=10) as on_b:
        writer = login(on_b, "insp.js1", "writer-tab")
        writer.pop("X-Device")
        listener = login(on_b, "insp.js2", "listener-tab")  # the token is good on A too
        listener.pop("X-Device")
        ready, heard = threading.Event(), []

        def listen() -> None:
            timeout = httpx.Timeout(10, read=5)
            with (
                httpx.Client(base_url=base_a, timeout=timeout) as on_a,
                on_a.stream("GET", "/api/v1/sync/events", headers=listener) as r,
            ):
                event = ""
                with contextlib.suppress(httpx.ReadTimeout):  # heard nothing: asserted below
                    for line in r.iter_lines():
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                            ready.set()
                        elif line.startswith("data:") and event == "pull":
                            heard.append((time.monotonic(), line.split(":", 1)[1].strip()))
                            return

        thread = threading.Thread(target=listen)
        thread.start()
        assert ready.wait(10)
        sent = time.monotonic()
        assert push(on_b, writer, batch("writer-tab", 0, 1)).status_code == 200
        thread.join(timeout=10)
    assert heard, "the tablet on instance A never heard of the push on instance B"
    at, ids = heard[0]
    assert ids == '["insp-ds-routine"]'
    assert at - sent < 1.0


def test_fifty_tablets_spread_over_two_instances_lose_nothing_and_converge(pair):
    db, base_a, base_b = pair
    statuses, acked = push_fleet([base_a, base_b])
    assert [s for s in statuses if s >= 500] == []
    assert len(acked) == 1500
    with (
        httpx.Client(base_url=base_a, timeout=30) as on_a,
        httpx.Client(base_url=base_b, timeout=30) as on_b,
    ):
        reader = login(on_a, "insp.js1", "auditor")
        reader.pop("X-Device")
        held_a, held_b = pull_all(on_a, reader), pull_all(on_b, reader)
    assert held_a == held_b  # either instance serves the same state
    for m in acked:
        assert held_a[m.id]["title"] == m.fields["title"] and held_a[m.id]["rev"] == 1
    mids = {m.mid for m in acked}
    counts = {
        r["mid"]: r["n"]
        for r in db.rows(
            "SELECT mid, COUNT(*) AS n FROM history WHERE kind = 'finding' GROUP BY mid"
        )
        if r["mid"] in mids
    }
    assert len(counts) == 1500 and set(counts.values()) == {1}  # none lost, none twice
    assert_audit_chain_intact(db)  # two writers, one chain


def test_an_upload_begun_on_one_instance_resumes_and_completes_on_the_other(pair):
    _, base_a, base_b = pair
    data = jpeg(5)
    with (
        httpx.Client(base_url=base_a, timeout=10) as on_a,
        httpx.Client(base_url=base_b, timeout=10) as on_b,
    ):
        auth = login(on_a, "insp.js1", "camera-tab")
        auth.pop("X-Device")
        r = on_a.post(
            UPLOADS,
            headers={**auth, **TUS, "Upload-Length": str(len(data))}
            | {"Upload-Metadata": metadata(data)},
        )
        assert r.status_code == 201, r.text
        path = httpx.URL(r.headers["Location"]).path
        half = len(data) // 2
        r = on_a.patch(path, content=data[:half], headers={**auth, **CHUNK, "Upload-Offset": "0"})
        assert r.status_code == 204
        # the connection broke; the balancer sends the tablet to the other instance
        head = on_b.head(path, headers={**auth, **TUS})
        assert head.headers["Upload-Offset"] == str(half)
        r = on_b.patch(
            path, content=data[half:], headers={**auth, **CHUNK, "Upload-Offset": str(half)}
        )
        assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
        named = push(
            on_a,
            auth,
            push_body("camera-tab:1", "f-photo", title="photo", evidence_hashes=[sha(data)]),
        )
        assert named.status_code == 200
        got = on_a.get(f"/api/v1/evidence/{sha(data)}", headers=auth)
    assert got.status_code == 200, (named.json(), got.text)
    assert got.content == data  # stored where both reach it


def test_failed_logins_through_both_instances_count_together(pair):
    _, base_a, base_b = pair
    wrong = {"username": "sup.js", "password": "not-the-password"}
    with (
        httpx.Client(base_url=base_a, timeout=10) as on_a,
        httpx.Client(base_url=base_b, timeout=10) as on_b,
    ):
        for i in range(5):  # the limit (5 in the window), spread over both instances
            r = (on_a, on_b)[i % 2].post("/api/v1/auth/login", json=wrong)
            assert r.status_code == 401
        refused = on_b.post("/api/v1/auth/login", json=wrong)
        also = on_a.post("/api/v1/auth/login", json=wrong)
    assert refused.status_code == 429 and also.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_a_device_revoked_through_one_instance_is_refused_by_the_other(pair):
    _, base_a, base_b = pair
    with (
        httpx.Client(base_url=base_a, timeout=10) as on_a,
        httpx.Client(base_url=base_b, timeout=10) as on_b,
    ):
        tablet = login(on_b, "insp.js1", "lost-tab")
        device = tablet.pop("X-Device")
        assert on_b.get("/api/v1/inspections", headers=tablet).status_code == 200
        admin = login(on_a, "admin", "admin-desk")
        admin.pop("X-Device")
        r = on_a.post(f"/api/v1/devices/{device}/revoke", headers=admin)
        assert r.status_code == 200, r.text
        refused = on_b.get("/api/v1/inspections", headers=tablet)
    assert refused.status_code == 401
    assert refused.json()["code"] == "device_revoked"


def test_an_instance_killed_mid_stream_loses_nothing_the_other_serves_the_resends(pair, tmp_path):
    db, _, base_b = pair
    proc, base_c = start_server(db.data_dir, env={**ENV, **db.env})  # a third instance
    with httpx.Client(base_url=base_c, timeout=10) as on_c:
        auth = login(on_c, "insp.js1", "failover-tab")
    dev = auth.pop("X-Device")
    acked, sent = push_until_killed(proc, base_c, auth, dev, 20)
    assert len(acked) >= 20
    # the load balancer sends the tablet to B, where it resends everything
    with httpx.Client(base_url=base_b, timeout=10) as on_b:
        for req in sent:
            r = push(on_b, auth, req)
            assert r.status_code == 200, r.text
            answer = msgspec.json.decode(r.content, type=PushResponse)
            tags = {x.__struct_config__.tag for x in answer.results}
            assert tags == {"duplicate"} if req in acked else tags <= {"duplicate", "applied"}
    rows = db.rows(  # the device id is a server-made token, safe to splice
        "SELECT mid, COUNT(*) AS n FROM history WHERE kind = 'finding'"
        f" AND mid LIKE '{dev}:%' GROUP BY mid"
    )
    counts = {r["mid"]: r["n"] for r in rows}
    assert set(counts.values()) == {1}  # nothing applied twice
    assert len(counts) == sum(len(r.mutations) for r in sent)  # nothing lost
    assert_audit_chain_intact(db)


def test_instances_starting_together_on_an_empty_database_migrate_once(tmp_path):
    with fresh_database() as url:
        db = ServerDB(tmp_path, url)
        procs = start_together(tmp_path, db, 2)
        for proc, base in procs:
            assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        for proc, _ in procs:
            stop(proc)
        versions = [r["version"] for r in db.rows("SELECT version FROM schema_migrations")]
        kinds = db.rows(
            "SELECT kind, COUNT(*) AS n FROM records WHERE kind LIKE 'checklist_%' GROUP BY kind"
        )
    assert sorted(versions) == list(range(1, len(versions) + 1))  # each once
    library = len(load_library(LIBRARY_DIR))
    assert {r["kind"]: r["n"] for r in kinds} == {
        "checklist_template": library,
        "checklist_version": library,
    }
