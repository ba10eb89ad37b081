"""Overload is shed, not queued (server/overload.py), against the real server process.

A request is held in flight without any timing: it is sent over a raw socket but for
the last byte of its body, so the server has admitted it and its handler waits for the
rest. With the bounds set to 1 or 2, the next request past a bound is answered at once
503 ``overloaded`` with ``Retry-After``; health checks and the event stream are not
refused; releasing the held requests answers them, and nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest

from server.demo import DEMO_PASSWORD
from server.overload import Gate, Overload
from sync.client import HttpTransport, Tablet
from sync.protocol import Mutation, PushRequest
from tests.server.test_process import start_server, stop

INSP = "insp-ds-routine"  # in progress in the demo world; insp.js1 and insp.js2 work on it
LIMITS = {
    "INSPECTSYNC_MAX_IN_FLIGHT": "2",
    "INSPECTSYNC_MAX_PUSHES_IN_FLIGHT": "1",
    "INSPECTSYNC_MAX_EVENT_STREAMS": "1",
    "INSPECTSYNC_OVERLOAD_RETRY_AFTER_SECONDS": "3",
}


def push_body(mid: str, fid: str) -> bytes:
    now = datetime.now(UTC)
    return msgspec.json.encode(
        PushRequest(
            mutations=[
                Mutation(
                    mid=mid,
                    kind="finding",
                    id=fid,
                    fields={"inspection_id": INSP, "title": f"finding {fid}"},
                    hlc=f"{int(now.timestamp() * 1000):015d}.00000.t",
                    device_time=now,
                )
            ]
        )
    )


class Held:
    """A request whose body lacks its last byte: admitted, and in flight until
    :meth:`release` sends that byte and reads the answer."""

    def __init__(self, base: str, path: str, body: bytes, token: str | None = None) -> None:
        url = httpx.URL(base)
        self.address = (url.host, url.port)
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {url.host}:{url.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.start = ("\r\n".join(head) + "\r\n\r\n").encode() + body[:-1]
        self.rest = body[-1:]
        self._open()

    def _open(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=10)
        self.sock.sendall(self.start)

    def again_if_answered(self) -> None:
        """Refused (a probe came first and held the slot): send it again."""
        if select.select([self.sock], [], [], 0)[0]:
            self.sock.close()
            self._open()

    def release(self) -> tuple[int, Any]:
        self.sock.sendall(self.rest)
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        self.sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return int(head.split()[1]), msgspec.json.decode(body)


def refused(send, limit: str, held: Held) -> httpx.Response:
    """``send()`` until it is refused for ``limit`` because ``held`` is in flight. The
    held request may reach the server after the probe (and be refused itself): then it
    is sent again. A bounded loop, no timing assertion."""
    for _ in range(200):
        held.again_if_answered()
        r = send()
        if r.status_code == 503:
            assert r.json()["limit"] == limit
            return r
        time.sleep(0.02)
    raise AssertionError(f"never refused for {limit}")


def login(http: httpx.Client, username: str, device: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "password": DEMO_PASSWORD}
    if device:
        body["device"] = {"name": device}
    r = http.post("/api/v1/auth/login", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def pulled_ids(http: httpx.Client, token: str) -> set[str]:
    ids: set[str] = set()
    cursor = None
    for _ in range(50):
        r = http.post(
            "/api/v1/sync/pull",
            json={"cursor": cursor},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        ids |= {c["id"] for c in page["changes"] if c["kind"] == "finding"}
        cursor = page["cursor"]
        if not page["has_more"]:
            return ids
    raise AssertionError("pull did not end")


@pytest.fixture
def hold():
    """``hold(base, path, body, token)``: a :class:`Held` request, its socket closed at
    the end of the test whatever happened."""
    made: list[Held] = []

    def make(*args: Any) -> Held:
        made.append(Held(*args))
        return made[-1]

    yield make
    for h in made:
        h.sock.close()


def test_past_the_bounds_requests_are_shed_and_nothing_accepted_is_lost(tmp_path, hold):
    proc, base = start_server(tmp_path, "--demo", env=LIMITS)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            js1 = login(http, "insp.js1")["access_token"]
            auth = {"Authorization": f"Bearer {js1}", "Content-Type": "application/json"}
            accepted: set[str] = set()

            # one push in flight: the next push is refused, a pull is not
            held_push = hold(base, "/api/v1/sync/push", push_body("held:1", "f-held"), js1)

            def probe_push() -> httpx.Response:
                r = http.post(
                    "/api/v1/sync/push", content=push_body("probe:1", "f-probe"), headers=auth
                )
                if r.status_code == 200:
                    accepted.add("f-probe")
                return r

            r = refused(probe_push, "pushes in flight", held_push)
            assert r.headers["Retry-After"] == "3"
            assert r.headers["Content-Type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["code"] == "overloaded"
            assert problem["status"] == 503
            assert problem["retry_after"] == 3
            assert problem["type"].endswith("/overloaded")
            assert http.post("/api/v1/sync/pull", json={}, headers=auth).status_code == 200

            # and a second request in flight: every other request is refused now
            held_pull = hold(base, "/api/v1/sync/pull", b'{"limit": 10}', js1)
            r = refused(
                lambda: http.get("/api/v1/inspections", headers=auth),
                "requests in flight",
                held_pull,
            )
            assert r.headers["Retry-After"] == "3"
            # a refused request is answered before its token is looked at
            assert http.get("/api/v1/inspections").status_code == 503

            # health checks are never refused; the event stream has a bound of its own
            assert http.get("/healthz").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            with http.stream("GET", "/api/v1/sync/events", headers=auth) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert next(lines) == "event: ready"
                second = http.get("/api/v1/sync/events", headers=auth)
                assert second.status_code == 503
                assert second.json()["limit"] == "event streams"
            assert http.get("/healthz").status_code == 200

            # the held requests are answered as usual once their bodies arrive
            status, answer = held_push.release()
            assert status == 200
            assert [r["status"] for r in answer["results"]] == ["applied"]
            accepted.add("f-held")
            status, page = held_pull.release()
            assert status == 200 and "cursor" in page

            # the refused push, sent again after Retry-After, lands (or was in already)
            r = probe_push()
            assert r.status_code == 200
            assert r.json()["results"][0]["status"] in ("applied", "duplicate")

            js2 = login(http, "insp.js2")["access_token"]
            assert accepted == {"f-held", "f-probe"}
            assert pulled_ids(http, js2) >= accepted
    finally:
        stop(proc)


def test_the_tablet_waits_retry_after_and_its_push_lands(tmp_path, hold):
    """The reference client meets a 503 on push, waits at least Retry-After (the
    injected sleep: while it "waits", the held push finishes) and pushes again."""
    proc, base = start_server(tmp_path, "--demo", env=LIMITS)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            tokens = login(http, "insp.js1", device="retry tablet")
            other = login(http, "insp.js2")["access_token"]
        held = hold(base, "/api/v1/sync/push", push_body("held:1", "f-held"), other)
        released: list[int] = []
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            if not released:
                released.append(held.release()[0])

        async def go() -> dict[str, int]:
            transport = HttpTransport(
                base,
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
            )
            tablet = Tablet(
                tmp_path / "tablet.db",
                transport,
                device_id=tokens["device_id"],
                retries=3,
                sleep=sleep,
                jitter=lambda: 0.25,
            )
            tablet.edit("finding", "f-retried", {"inspection_id": INSP, "title": "retried"})
            try:
                # the held push must be in flight before the tablet's push is sent
                for _ in range(200):
                    held.again_if_answered()
                    probe = httpx.post(
                        f"{base}/api/v1/sync/push",
                        content=push_body("probe:1", "f-probe-2"),
                        headers={
                            "Authorization": f"Bearer {other}",
                            "Content-Type": "application/json",
                        },
                        timeout=10,
                    )
                    if probe.status_code == 503:
                        break
                    time.sleep(0.02)
                else:
                    raise AssertionError("the held push was never in flight")
                return await tablet.sync()
            finally:
                await transport.close()
                tablet.db.close()

        counts = asyncio.run(go())
        assert released == [200]
        assert counts["pushed"] == 1 and counts["pending"] == 0
        assert slept and slept[0] == pytest.approx(3 * 1.25)  # Retry-After 3, jitter 0.25
        with httpx.Client(base_url=base, timeout=10) as http:
            js2 = login(http, "insp.js2")["access_token"]
            assert pulled_ids(http, js2) >= {"f-held", "f-retried"}
    finally:
        stop(proc)


def test_which_gates_a_request_passes():
    o = Overload(
        max_in_flight=2, max_pushes_in_flight=1, max_event_streams=1, retry_after_seconds=0
    )
    assert o.gates("GET", "/healthz") == ()
    assert o.gates("GET", "/readyz") == ()
    assert o.gates("GET", "/api/v1/sync/events") == (o.streams,)
    assert o.gates("POST", "/api/v1/sync/push") == (o.requests, o.pushes)
    assert o.gates("POST", "/api/v1/sync/pull") == (o.requests,)
    assert o.gates("GET", "/api/v1/inspections") == (o.requests,)
    assert o.retry_after == 1  # never 0: a client would come straight back


def test_a_gate_says_no_past_its_limit_and_counts():
    g = Gate("things", 2)
    assert g.enter() and g.enter()
    assert not g.enter()
    g.leave()
    assert g.enter()
    assert (g.busy, g.peak, g.refused) == (2, 2, 1)
    with pytest.raises(ValueError):
        Gate("nothing", 0)


async def test_a_refusal_is_one_answer_and_a_warning_at_most_every_ten_seconds(caplog):
    now = [100.0]
    o = Overload(
        max_in_flight=1,
        max_pushes_in_flight=1,
        max_event_streams=1,
        retry_after_seconds=2,
        clock=lambda: now[0],
    )
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    caplog.set_level("WARNING", logger="inspectsync")
    assert o.requests.enter()
    assert not o.requests.enter()
    await o.refuse(o.requests, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 503
    assert dict(sent[0]["headers"])[b"retry-after"] == b"2"
    problem = msgspec.json.decode(sent[1]["body"])
    assert problem["code"] == "overloaded" and problem["limit"] == "requests in flight"
    assert not caplog.records  # not yet ten seconds
    now[0] += 10
    await o.refuse(o.requests, send)
    assert len(caplog.records) == 1
    assert "refused 2 (requests in flight)" in caplog.records[0].getMessage()
    assert "in flight 1/1 requests" in caplog.records[0].getMessage()
