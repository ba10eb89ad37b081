"""The reference client under a busy server: 503 and 429 are retried after their
``Retry-After`` (at least), with jittered exponential backoff, a bounded number of times.

A fake transport (``httpx.MockTransport``) answers; the sleep is injected, so nothing
waits for real and every wait the client chose is read back exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sync.client import MAX_RETRY_AFTER, HttpTransport, Tablet, TransportError
from sync.protocol import PullResponse, encode

BASE = "http://sync.test"
PROBLEM = {"status": 503, "code": "overloaded", "title": "The server is at its limit"}


def page() -> bytes:
    return encode(
        PullResponse(
            changes=[], cursor="c1", has_more=False, server_time=datetime.now(UTC), hlc=""
        ),
        "application/json",
    )


class Server:
    """Answers each request with the next of ``answers`` (the last one repeats)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.paths: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def busy(status: int = 503, retry_after: str | None = "7") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json=PROBLEM | {"status": status}, headers=headers)


def ok() -> httpx.Response:
    return httpx.Response(200, content=page(), headers={"Content-Type": "application/json"})


def tablet(tmp_path, server: Server, *, retries: int = 5, refresh: str | None = None):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    transport = HttpTransport(
        BASE,
        access_token="a",
        refresh_token=refresh,
        client=httpx.AsyncClient(transport=httpx.MockTransport(server.handle)),
    )
    t = Tablet(
        tmp_path / "t.db",
        transport,
        device_id="dev_1",
        retries=retries,
        backoff=0.2,
        sleep=sleep,
        jitter=lambda: 0.5,
    )
    return t, slept


async def test_a_503_is_retried_after_its_retry_after_with_jitter(tmp_path):
    server = Server(busy(503, "7"), busy(503, "7"), ok())
    t, slept = tablet(tmp_path, server)
    assert await t.pull() == 0
    assert t.cursor == "c1"
    # never sooner than asked: Retry-After (longer than the backoff) times 1 + jitter
    assert slept == [7 * 1.5, 7 * 1.5]
    assert server.paths == ["/api/v1/sync/pull"] * 3


async def test_a_429_is_retried_too_and_an_http_date_is_read(tmp_path):
    when = datetime.now(UTC) + timedelta(seconds=40)
    server = Server(busy(429, format_datetime(when, usegmt=True)), ok())
    t, slept = tablet(tmp_path, server)
    await t.pull()
    assert len(slept) == 1
    # the date is whole seconds from now: between 38 and 40 seconds, times 1.5
    assert 38 * 1.5 <= slept[0] <= 40 * 1.5


async def test_without_retry_after_the_backoff_doubles(tmp_path):
    server = Server(busy(503, None), busy(502, None), busy(500, None), ok())
    t, slept = tablet(tmp_path, server)
    await t.pull()
    assert slept == pytest.approx([0.2 * 1.5, 0.4 * 1.5, 0.8 * 1.5])


async def test_a_short_retry_after_does_not_shorten_the_backoff(tmp_path):
    server = Server(busy(503, "0"), busy(503, "0"), ok())
    t, slept = tablet(tmp_path, server)
    await t.pull()
    assert slept == pytest.approx([0.2 * 1.5, 0.4 * 1.5])


async def test_attempts_are_bounded_and_the_outbox_is_kept(tmp_path):
    server = Server(busy(503, "2"))
    t, slept = tablet(tmp_path, server, retries=3)
    t.edit("finding", "f_1", {"inspection_id": "i", "title": "x"})
    with pytest.raises(TransportError) as caught:
        await t.push()
    assert caught.value.retry_after == 2
    assert "503 overloaded" in str(caught.value)
    assert len(server.paths) == 4  # the first attempt and three retries
    assert slept == [3.0, 3.0, 3.0]
    assert len(t.pending()) == 1


async def test_an_absurd_retry_after_is_capped(tmp_path):
    server = Server(busy(503, "86400000"), ok())
    t, slept = tablet(tmp_path, server)
    await t.pull()
    assert slept == [MAX_RETRY_AFTER * 1.5]


async def test_an_unreadable_retry_after_falls_back_to_the_backoff(tmp_path):
    server = Server(busy(503, "soon"), ok())
    t, slept = tablet(tmp_path, server)
    await t.pull()
    assert slept == pytest.approx([0.2 * 1.5])


async def test_a_busy_refresh_is_a_retry_not_a_lost_login(tmp_path):
    """The access token expired while the server sheds load: the refresh's 503 is
    retried like any other, and the request goes through once it is answered."""
    refreshed = httpx.Response(
        200, json={"access_token": "a2", "refresh_token": "r2", "expires_in": 900}
    )
    expired = httpx.Response(401, json={"status": 401, "code": "token_invalid"})
    server = Server(expired, busy(503, "5"), expired, refreshed, ok())
    t, slept = tablet(tmp_path, server, refresh="r1")
    await t.pull()
    assert server.paths == [
        "/api/v1/sync/pull",
        "/api/v1/auth/refresh",
        "/api/v1/sync/pull",
        "/api/v1/auth/refresh",
        "/api/v1/sync/pull",
    ]
    assert slept == [7.5]
    assert t.transport.access_token == "a2"
