"""Several server instances over one PostgreSQL database, as behind a load balancer.

Real server processes (``inspectsync serve``) sharing a database and a data directory
(evidence, anchors): a push on one wakes tablets listening on the other within a second,
fifty tablets spread over both lose nothing and converge, an upload begun on one
completes on the other, two chunks of one upload racing on both are written one after
the other (the tablet's is answered 409 and resumes), a claim on an upload left by a
dead instance runs out, failed logins through both count together, a device revoked through one
is refused by the other, a SIGKILLed instance loses nothing
it acknowledged while the other serves the resends, and instances starting together on
an empty database migrate and load the checklist library once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest

from checklists.loader import load_library
from server.demo import LIBRARY_DIR
from sync.client import HttpTransport
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


def create_upload(http: httpx.Client, auth: dict[str, str], data: bytes) -> str:
    r = http.post(
        UPLOADS,
        headers={**auth, **TUS, "Upload-Length": str(len(data))}
        | {"Upload-Metadata": metadata(data)},
    )
    assert r.status_code == 201, r.text
    return httpx.URL(r.headers["Location"]).path


def tablet_upload(
    base: str, auth: dict[str, str], data: bytes, path: Path, url: str
) -> tuple[list[tuple[str, int, dict]], list[float]]:
    """The reference tablet's tus client (what ``inspectsync tablet sync`` runs) resumes
    the upload at ``url`` through ``base``: the answers it met and the waits it made."""
    path.write_bytes(data)
    answers: list[tuple[str, int, dict]] = []
    slept: list[float] = []

    async def seen(r: httpx.Response) -> None:
        await r.aread()
        problem = (
            r.json() if r.headers.get("content-type", "").startswith("application/pro") else {}
        )
        answers.append((r.request.method, r.status_code, problem))

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    async def run() -> None:
        client = httpx.AsyncClient(timeout=60, event_hooks={"response": [seen]})
        token = auth["Authorization"].removeprefix("Bearer ")
        http = HttpTransport(base, access_token=token, client=client, sleep=sleep)
        try:
            meta = {"sha256": sha(data), "inspection_id": "insp-ds-routine"}
            await http.upload(sha(data), path, metadata=meta, url=base + url, on_url=print)
        finally:
            await http.close()

    asyncio.run(run())
    return answers, slept


def claimed(db: ServerDB, upload: str) -> bool:
    upload_id = upload.rsplit("/", 1)[1]
    rows = db.rows(f"SELECT claimed_by FROM uploads WHERE id = '{upload_id}'")
    return bool(rows and rows[0]["claimed_by"])


def test_two_chunks_of_one_upload_racing_on_two_instances_go_one_after_the_other(pair, tmp_path):
    """A chunk still streaming into instance A (a request the tablet gave up on) while
    the tablet resumes the same upload through instance B: B's chunk waits for A's
    claim, is then answered 409 with A's offset, and the tablet asks HEAD and sends the
    rest. Both chunks start at offset 0: were they not serialised, both would be taken
    at offset 0 and written over each other."""
    db, base_a, base_b = pair
    data = jpeg(11, (600, 400))
    half = len(data) // 2
    with httpx.Client(base_url=base_a, timeout=30) as on_a:
        auth = login(on_a, "insp.js1", "racing-tab")
        auth.pop("X-Device")
        url = create_upload(on_a, auth, data)
        answered: dict[str, httpx.Response | float] = {}

        def slowly() -> Iterator[bytes]:
            for at in range(0, half, 8192):
                yield data[at : min(at + 8192, half)]
                time.sleep(0.03)

        def rival() -> None:
            answered["a"] = on_a.patch(
                url, content=slowly(), headers={**auth, **CHUNK, "Upload-Offset": "0"}
            )
            answered["a_done"] = time.monotonic()

        thread = threading.Thread(target=rival)
        thread.start()
        deadline = time.monotonic() + 10
        while not claimed(db, url):  # A's request holds the upload
            assert time.monotonic() < deadline, "A's chunk never claimed the upload"
            time.sleep(0.02)
        answers, _ = tablet_upload(base_b, auth, data, tmp_path / "photo.jpg", url)
        b_done = time.monotonic()
        thread.join(timeout=30)
        got = on_a.get(f"/api/v1/evidence/{sha(data)}", headers=auth)
        head = on_a.head(url, headers={**auth, **TUS})
    a = answered["a"]
    assert isinstance(a, httpx.Response)
    assert a.status_code == 204 and a.headers["Upload-Offset"] == str(half)
    statuses = [(m, s) for m, s, _ in answers]
    # B's first chunk (offset 0, the whole file) waited for A's, then met A's offset
    assert statuses == [("HEAD", 200), ("PATCH", 409), ("HEAD", 200), ("PATCH", 204)]
    conflict = answers[1][2]
    assert conflict["code"] == "offset_mismatch" and conflict["offset"] == half
    assert answered["a_done"] <= b_done
    assert head.headers["Upload-Offset"] == str(len(data))
    assert got.status_code == 404  # stored, but no record names it yet: nobody may read it
    stored = db.data_dir / "evidence" / "blobs" / sha(data)[:2] / sha(data)[2:4] / sha(data)
    assert sha(stored.read_bytes()) == sha(data)  # whole, not a byte out of place
    [row] = db.rows(f"SELECT * FROM evidence WHERE sha256 = '{sha(data)}'")
    assert row["size"] == len(data)


def test_a_claim_left_by_a_dead_instance_runs_out_and_the_tablet_goes_on(pair, tmp_path):
    """An instance killed mid-chunk leaves its claim on the upload until the claim's end
    (here set 3 s ahead): a chunk through a live instance waits its lock wait (1 s
    here), is answered 423 with Retry-After no later than the claim's end, and the
    tablet waits, asks HEAD and completes the upload."""
    db, base_a, _ = pair
    proc, base_c = start_server(
        db.data_dir, env={**ENV, **db.env, "INSPECTSYNC_EVIDENCE_LOCK_WAIT_SECONDS": "1"}
    )
    try:
        data = jpeg(12)
        with httpx.Client(base_url=base_a, timeout=30) as on_a:
            auth = login(on_a, "insp.js1", "orphan-tab")
            auth.pop("X-Device")
            url = create_upload(on_a, auth, data)
        ends = (datetime.now(UTC) + timedelta(seconds=3)).isoformat(timespec="microseconds")
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(
                "UPDATE uploads SET claimed_by = 'killed-request', claimed_until = %s"
                " WHERE id = %s",
                (ends, url.rsplit("/", 1)[1]),
            )
        answers, slept = tablet_upload(base_c, auth, data, tmp_path / "photo.jpg", url)
    finally:
        stop(proc)
    statuses = [(m, s) for m, s, _ in answers]
    assert statuses[:3] == [("HEAD", 200), ("PATCH", 423), ("HEAD", 200)]
    assert statuses[-1] == ("PATCH", 204)
    assert answers[1][2]["code"] == "upload_locked"
    assert 1 <= slept[0] <= 3
    stored = db.data_dir / "evidence" / "blobs" / sha(data)[:2] / sha(data)[2:4] / sha(data)
    assert stored.read_bytes() == data


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
