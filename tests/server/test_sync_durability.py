"""Acknowledged writes survive: a SIGKILLed server, and 50 tablets pushing at once.

Both start the real server process and talk to it over a socket, on SQLite and on
PostgreSQL (the ``server_db`` fixture).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from server.demo import DEMO_PASSWORD
from sync.audit import verify
from sync.protocol import Mutation, PullRequest, PullResponse, PushRequest, PushResponse
from tests.pg import ServerDB
from tests.server.test_process import start_server, stop

INSP = "insp-ds-routine"


def login(http: httpx.Client, username: str, device: str) -> dict[str, str]:
    r = http.post(
        "/api/v1/auth/login",
        json={"username": username, "password": DEMO_PASSWORD, "device": {"name": device}},
    )
    assert r.status_code == 200, r.text
    return {
        "Authorization": f"Bearer {r.json()['access_token']}",
        "X-Device": r.json()["device_id"],
    }


def batch(device: str, start: int, size: int) -> PushRequest:
    now = datetime.now(UTC)
    wall = int(now.timestamp() * 1000)
    return PushRequest(
        mutations=[
            Mutation(
                mid=f"{device}:{n}",
                kind="finding",
                id=f"{device}-f{n}",
                fields={"inspection_id": INSP, "title": f"finding {n} of {device}"},
                hlc=f"{wall:015d}.{n % 99999:05d}.{device}",
                device_time=now,
            )
            for n in range(start, start + size)
        ]
    )


def pull_all(http: httpx.Client, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    cursor, out = None, {}
    for _ in range(1000):
        r = http.post(
            "/api/v1/sync/pull",
            content=msgspec.json.encode(PullRequest(cursor=cursor, limit=1000)),
            headers={**auth, "content-type": "application/json"},
        )
        page = msgspec.json.decode(r.content, type=PullResponse)
        out.update(
            {
                c.id: {"rev": c.rev, **(c.data or {})}
                for c in page.changes
                if c.kind == "finding" and not c.deleted
            }
        )
        cursor = page.cursor
        if not page.has_more:
            return out
    raise AssertionError("pull did not finish")


def history_count(db: ServerDB) -> dict[str, int]:
    rows = db.rows("SELECT mid, COUNT(*) AS n FROM history WHERE kind = 'finding' GROUP BY mid")
    return {r["mid"]: r["n"] for r in rows}


def push_until_killed(
    proc: subprocess.Popen, base: str, auth: dict[str, str], dev: str, kill_after: int
) -> tuple[list[PushRequest], list[PushRequest]]:
    """One tablet streams pushes of ten to the server at ``base``; once ``kill_after``
    were acknowledged the server is SIGKILLed (no shutdown, no flush). Returns the
    pushes acknowledged and every push sent."""
    acked: list[PushRequest] = []
    sent: list[PushRequest] = []
    stop_flag = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=base, timeout=10) as h:
            for k in range(400):  # bounded
                if stop_flag.is_set():
                    return
                req = batch(dev, k * 10, 10)
                sent.append(req)
                try:
                    r = h.post(
                        "/api/v1/sync/push",
                        content=msgspec.json.encode(req),
                        headers={**auth, "content-type": "application/json"},
                    )
                except httpx.TransportError:
                    return  # the server died under us
                if r.status_code != 200:
                    return
                answer = msgspec.json.decode(r.content, type=PushResponse)
                assert all(x.__struct_config__.tag == "applied" for x in answer.results)
                acked.append(req)

    try:
        worker = threading.Thread(target=stream)
        worker.start()
        deadline = time.monotonic() + 30
        while len(acked) < kill_after and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        stop_flag.set()
        worker.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    return acked, sent


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path, server_db):
    proc, base = start_server(tmp_path, "--demo", env=server_db.env)
    with httpx.Client(base_url=base, timeout=10) as http:
        auth = login(http, "insp.js1", "crash-tab")
    dev = auth.pop("X-Device")
    acked, sent = push_until_killed(proc, base, auth, dev, 25)
    assert len(acked) >= 25

    proc, base = start_server(tmp_path, "--demo", env=server_db.env)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            reader = login(http, "insp.js2", "reader-tab")
            reader.pop("X-Device")
            held = pull_all(http, reader)
            for req in acked:
                for m in req.mutations:
                    assert held[m.id]["title"] == m.fields["title"]
                    assert held[m.id]["rev"] == 1
            # the tablet resends everything it sent (it never saw some answers)
            for req in sent:
                r = http.post(
                    "/api/v1/sync/push",
                    content=msgspec.json.encode(req),
                    headers={**auth, "content-type": "application/json"},
                )
                answer = msgspec.json.decode(r.content, type=PushResponse)
                tags = [x.__struct_config__.tag for x in answer.results]
                if req in acked:
                    assert set(tags) == {"duplicate"}
                else:
                    assert set(tags) <= {"duplicate", "applied"}
    finally:
        stop(proc)
    counts = history_count(server_db)
    assert counts and max(counts.values()) == 1  # nothing applied twice
    assert len(counts) == sum(len(r.mutations) for r in sent)
    assert_audit_chain_intact(server_db)  # the kill broke no link


def push_fleet(bases: list[str], n: int = 50) -> tuple[list[int], list[Mutation]]:
    """``n`` tablets (of two inspectors) push three batches of ten at once, tablet ``i``
    through ``bases[i % len(bases)]`` (instances behind a load balancer). Returns every
    answer's status and the mutations acknowledged."""
    statuses: list[int] = []
    acked: list[Mutation] = []
    with httpx.Client(base_url=bases[0], timeout=30) as http:
        tablets = [login(http, "insp.js1" if i % 2 else "insp.js2", f"fleet-{i}") for i in range(n)]

    async def tablet(auth: dict[str, str], client: httpx.AsyncClient) -> None:
        dev = auth["X-Device"]
        headers = {"Authorization": auth["Authorization"], "content-type": "application/json"}
        for k in range(3):
            req = batch(dev, k * 10, 10)
            r = await client.post(
                "/api/v1/sync/push", content=msgspec.json.encode(req), headers=headers
            )
            statuses.append(r.status_code)
            if r.status_code == 200:
                answer = msgspec.json.decode(r.content, type=PushResponse)
                assert {x.__struct_config__.tag for x in answer.results} == {"applied"}
                acked.extend(req.mutations)

    async def fleet() -> None:
        limits = httpx.Limits(max_connections=60)
        clients = [httpx.AsyncClient(base_url=b, timeout=60, limits=limits) for b in bases]
        try:
            await asyncio.gather(
                *(tablet(t, clients[i % len(clients)]) for i, t in enumerate(tablets))
            )
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    asyncio.run(fleet())
    return statuses, acked


def test_fifty_tablets_pushing_at_once_lose_nothing(tmp_path, server_db):
    # all fifty reach the writer at once (group commit), none is shed: the overload
    # bounds (server/overload.py, tested in test_overload.py) are set above fifty
    limits = {"INSPECTSYNC_MAX_IN_FLIGHT": "64", "INSPECTSYNC_MAX_PUSHES_IN_FLIGHT": "64"}
    proc, base = start_server(tmp_path, "--demo", env={**limits, **server_db.env})
    try:
        statuses, acked = push_fleet([base])
        with httpx.Client(base_url=base, timeout=30) as http:
            reader = login(http, "insp.js1", "auditor")
            reader.pop("X-Device")
            held = pull_all(http, reader)
    finally:
        stop(proc)
    assert [s for s in statuses if s >= 500] == []
    assert len(acked) == 1500
    for m in acked:
        assert held[m.id]["title"] == m.fields["title"] and held[m.id]["rev"] == 1
    counts = history_count(server_db)
    assert len(counts) == 1500 and set(counts.values()) == {1}
    assert_audit_chain_intact(server_db)  # group commits kept one chain


def assert_audit_chain_intact(db: ServerDB) -> None:
    found = verify(db.rows("SELECT * FROM history ORDER BY id"))
    assert found.ok, found
