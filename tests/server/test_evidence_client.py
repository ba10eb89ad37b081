"""The reference tablet's evidence uploads over HTTP against the real app.

Requests go through :class:`Relay`, an httpx transport in front of the app that can act
before a chosen request (terminate the upload, expire it, deliver a chunk twice) or
answer in the app's place when the app cannot readily produce the case (a 423 on demand,
a 409 that is not an offset conflict, an expired access token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import sqlite_utils

from sync.client import HttpTransport, Tablet, TransportError
from sync.clock import FakeClock
from tests.conftest import login
from tests.server.test_evidence import INSP, blob_files, jpeg, on_app, services, sha, start

JOINT = "insp-joint-conj"  # planned; insp.zj1 (lead) and insp.js1
CHUNK = 64 * 1024
CREATE = "/api/v1/evidence/uploads"
PULL = "/api/v1/sync/pull"

Hook = Callable[[httpx.Request, bytes], Awaitable[httpx.Response | None]]


class Relay:
    """Forwards every request to the app through the test client, keeps a log of
    (method, path, status) and the pull requests' bodies, and runs
    ``hooks[(method, n)]`` before the n-th request of that method: a hook may act on
    the app, and answers in its place if it returns a response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log: list[tuple[str, str, int]] = []
        self.pulls: list[dict[str, Any]] = []
        self.hooks: dict[tuple[str, int], Hook] = {}

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for m, p, _ in self.log if m == method and path in (None, p))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.url.path == PULL:
            self.pulls.append(msgspec.json.decode(body))
        seen = sum(1 for m, _, _ in self.log if m == request.method)
        hook = self.hooks.get((request.method, seen + 1))
        answer = await hook(request, body) if hook else None
        if answer is None:
            answer = await self.forward(request, body)
        self.log.append((request.method, request.url.path, answer.status_code))
        return answer

    async def forward(self, request: httpx.Request, body: bytes) -> httpx.Response:
        skip = {"content-length", "transfer-encoding", "host"}
        r = await self.app.request(
            request.method,
            str(request.url),
            headers={k: v for k, v in request.headers.items() if k.lower() not in skip},
            content=body,
        )
        drop = {"content-length", "content-encoding", "transfer-encoding"}
        headers = {k: v for k, v in r.headers.items() if k.lower() not in drop}
        return httpx.Response(r.status_code, headers=headers, content=r.content)


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = msgspec.json.encode({"status": status, "code": code, "title": code, "detail": code})
    return httpx.Response(
        status,
        content=body,
        headers={"Content-Type": "application/problem+json", "Tus-Resumable": "1.0.0", **headers},
    )


class Setup:
    def __init__(self, demo: Any, tmp_path: Path, tokens: dict[str, Any]) -> None:
        self.relay = Relay(demo)
        self.sleeps: list[float] = []
        self.transport = HttpTransport(
            str(demo.base_url),
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            client=httpx.AsyncClient(transport=httpx.MockTransport(self.relay.handle)),
            chunk_size=CHUNK,
            sleep=self.sleep,
        )
        self.tablet = Tablet(
            tmp_path / "tablet.db",
            self.transport,
            device_id=tokens["device_id"],
            retries=2,
            sleep=self.sleep,
        )
        self.urls: list[str | None] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def upload(self, path: Path, data: bytes, url: str | None = None) -> None:
        """One file through the transport directly, in 64 KiB chunks."""
        await self.transport.upload(
            sha(data),
            path,
            metadata={"sha256": sha(data), "inspection_id": INSP, "filename": path.name},
            url=url,
            on_url=self.urls.append,
        )

    def stored(self, app: Any, data: bytes) -> bytes:
        return services(app).uploads.blobs.path(sha(data)).read_bytes()


@pytest.fixture
async def js1(demo, tmp_path) -> Setup:
    s = await login(demo, "insp.js1", device={"name": "li-tab"})
    return Setup(demo, tmp_path, s.tokens)


def big_photo(tmp_path: Path, seed: int) -> tuple[Path, bytes]:
    """A JPEG of about 270 KB, so it goes in several 64 KiB chunks."""
    data = jpeg(seed, (640, 480))
    assert len(data) > 3 * CHUNK
    path = tmp_path / f"IMG_{seed}.jpg"
    path.write_bytes(data)
    return path, data


def path_of(setup: Setup) -> Path:
    """The test's directory, where the tablet's files live."""
    return setup.tablet.evidence_dir.parent


def finding(tablet: Tablet, fid: str, inspection: str, hashes: list[str]) -> None:
    fields = {"inspection_id": inspection, "title": "photo", "evidence_hashes": hashes}
    tablet.edit("finding", fid, fields)


# --- missing_evidence ---------------------------------------------------------------------


async def test_the_tablet_learns_what_is_missing_and_uploads_what_it_holds(demo, app, js1):
    tablet = js1.tablet
    path, data = big_photo(path_of(js1), 1)
    h = tablet.attach(path, INSP)
    finding(tablet, "f-early", INSP, [h])
    await tablet.push()  # the finding syncs before its photo
    await tablet.pull()
    assert tablet.missing_on_server() == {INSP: [h]}
    assert tablet.status()["evidence_missing_on_server"] == 1
    assert await tablet.upload_evidence() == 1
    await tablet.pull()
    assert tablet.missing_on_server() == {}
    assert js1.stored(app, data) == data

    # the same photo named in another inspection: the server says it misses it there
    # (a record opens a file only where it was uploaded); the tablet holds it, so the
    # next sync sends it for that inspection too
    await start(demo, JOINT)
    finding(tablet, "f-joint", JOINT, [h])
    unknown = sha(b"a photo on another tablet")
    finding(tablet, "f-other", INSP, [unknown])
    counts = await tablet.sync()
    assert counts["uploaded"] == 1
    assert [(r["inspection_id"], r["state"]) for r in tablet.evidence()] == [
        (INSP, "uploaded"),
        (JOINT, "uploaded"),
    ]
    assert js1.relay.count("POST", CREATE) == 2  # an upload for each inspection
    await tablet.sync()
    # what it does not hold stays missing and is not queued
    assert tablet.missing_on_server() == {INSP: [unknown]}
    assert len(tablet.evidence()) == 2
    assert [p.name for p in blob_files(app)] == [h]  # stored once
    zj1 = await login(demo, "insp.zj1")  # on the joint inspection only
    assert (await zj1.get(f"/api/v1/evidence/{h}")).content == data


async def test_a_file_the_server_lost_is_uploaded_again(demo, app, js1):
    """The server says an inspection misses a file the tablet already uploaded (e.g.
    after a restore from an older backup): it goes back in the queue."""
    tablet = js1.tablet
    path, _ = big_photo(path_of(js1), 2)
    h = tablet.attach(path, INSP)
    finding(tablet, "f-lost", INSP, [h])
    await tablet.sync()  # records, then the file
    await tablet.pull()
    assert tablet.evidence("uploaded") and tablet.missing_on_server() == {}
    store = services(app).store

    def forget(tx: Any) -> None:  # the database restored from before the upload
        tx.db.execute("DELETE FROM evidence_refs WHERE sha256 = ?", (h,))
        tx.db.execute("DELETE FROM evidence WHERE sha256 = ?", (h,))

    await on_app(demo, store.write_batch, forget)
    await tablet.sync()  # the pull that ends it lists the file; the upload after it
    assert [r["state"] for r in tablet.evidence()] == ["uploaded"]  # sent again
    assert js1.relay.count("POST", CREATE) == 2
    assert tablet.missing_on_server() == {}  # what it uploaded is off the list it keeps
    await tablet.pull()
    assert tablet.missing_on_server() == {}  # and the server agrees


async def test_the_tablet_asks_once_per_sync_and_only_when_it_holds_files(js1):
    """The missing list costs the server a read of the scope's field data: a tablet
    with no files never asks; one with files asks on the pull that ends the sync."""
    tablet = js1.tablet
    await tablet.sync()
    assert js1.relay.pulls and not any(p["want_missing_evidence"] for p in js1.relay.pulls)
    path, _ = big_photo(path_of(js1), 9)
    finding(tablet, "f-1", INSP, [tablet.attach(path, INSP)])
    js1.relay.pulls.clear()
    await tablet.sync()  # pull, push, pull: the second asks
    assert [p["want_missing_evidence"] for p in js1.relay.pulls] == [False, True]
    js1.relay.pulls.clear()
    await tablet.sync()  # nothing to push: the only pull asks
    assert [p["want_missing_evidence"] for p in js1.relay.pulls] == [True]


# --- tus answers ----------------------------------------------------------------------------


async def test_a_chunk_that_arrived_twice_gives_409_and_the_tablet_resumes_from_head(
    demo, app, js1
):
    """The answer to a chunk was lost but the chunk arrived (here: delivered twice):
    the server answers 409 offset_mismatch, the tablet asks HEAD and goes on."""
    path, data = big_photo(path_of(js1), 3)

    async def deliver_twice(request: httpx.Request, body: bytes) -> None:
        await js1.relay.forward(request, body)

    js1.relay.hooks[("PATCH", 2)] = deliver_twice
    await js1.upload(path, data)
    statuses = [(m, s) for m, _, s in js1.relay.log]
    assert ("PATCH", 409) in statuses
    after = statuses[statuses.index(("PATCH", 409)) + 1]
    assert after == ("HEAD", 200)
    assert js1.relay.count("POST", CREATE) == 1  # the same upload, resumed
    assert js1.stored(app, data) == data


async def test_a_409_that_is_not_an_offset_conflict_is_not_resumed(demo, app, js1):
    path, _ = big_photo(path_of(js1), 4)

    async def conflict(request: httpx.Request, body: bytes) -> httpx.Response:
        return problem(409, "already_exists")

    js1.relay.hooks[("PATCH", 2)] = conflict
    tablet = js1.tablet
    tablet.attach(path, INSP)
    assert await tablet.upload_evidence() == 0
    [row] = tablet.evidence()
    assert row["state"] == "refused" and "409 already_exists" in row["detail"]
    assert js1.relay.count("HEAD") == 0  # no blind resume


async def test_a_locked_upload_is_retried_after_retry_after_with_backoff(demo, app, js1):
    path, data = big_photo(path_of(js1), 5)

    async def locked(request: httpx.Request, body: bytes) -> httpx.Response:
        return problem(423, "upload_locked", **{"Retry-After": "5"})

    async def locked_no_hint(request: httpx.Request, body: bytes) -> httpx.Response:
        return problem(423, "upload_locked")

    js1.relay.hooks[("PATCH", 2)] = locked
    js1.relay.hooks[("PATCH", 3)] = locked_no_hint
    js1.relay.hooks[("PATCH", 4)] = locked
    tablet = js1.tablet
    tablet.attach(path, INSP)
    assert await tablet.upload_evidence() == 1
    assert [r["state"] for r in tablet.evidence()] == ["uploaded"]
    # Retry-After at least; without one, the backoff (doubling) decides
    assert js1.sleeps == [5.0, 2.0, 5.0]
    assert js1.relay.count("POST", CREATE) == 1 and js1.relay.count("HEAD") == 3
    assert js1.stored(app, data) == data


async def test_an_upload_locked_for_good_stays_pending_for_the_next_sync(demo, js1):
    path, _ = big_photo(path_of(js1), 6)

    async def locked(request: httpx.Request, body: bytes) -> httpx.Response:
        return problem(423, "upload_locked", **{"Retry-After": "1"})

    for n in range(2, 200):
        js1.relay.hooks[("PATCH", n)] = locked
    tablet = js1.tablet
    tablet.attach(path, INSP)
    with pytest.raises(TransportError):
        await tablet.upload_evidence()
    [row] = tablet.evidence()
    assert row["state"] == "pending" and row["upload_url"]  # resumed next time
    js1.relay.hooks.clear()
    assert await tablet.upload_evidence() == 1
    assert js1.relay.count("POST", CREATE) == 1  # the same upload went on


@pytest.mark.parametrize("how", ["terminated", "expired"])
async def test_an_upload_gone_mid_way_starts_again_from_zero(demo, app, js1, how):
    """A 404 (terminated, or purged) or 410 (expired) on PATCH: a new upload, the
    whole file again."""
    path, data = big_photo(path_of(js1), 7)
    uploads = services(app).uploads
    real = uploads.clock

    async def gone(request: httpx.Request, body: bytes) -> None:
        if how == "terminated":
            r = await js1.relay.forward(
                httpx.Request("DELETE", request.url, headers=dict(request.headers)), b""
            )
            assert r.status_code == 204
        else:
            uploads.clock = FakeClock(datetime.now(UTC) + timedelta(hours=25))

    js1.relay.hooks[("PATCH", 3)] = gone
    try:
        await js1.upload(path, data)
    finally:
        uploads.clock = real
    status = 404 if how == "terminated" else 410
    assert ("PATCH", status) in [(m, s) for m, _, s in js1.relay.log]
    assert js1.relay.count("POST", CREATE) == 2
    first, second = js1.urls[0], js1.urls[-1]
    assert first != second and None in js1.urls  # the old one forgotten, the new kept
    assert js1.stored(app, data) == data


async def test_an_access_token_that_expires_mid_upload_is_refreshed(demo, app, js1):
    """A series of uploads on a slow network outlives the access token: the tablet
    refreshes it and goes on with the same upload."""
    path, data = big_photo(path_of(js1), 11)
    old = js1.transport.access_token

    async def expired(request: httpx.Request, body: bytes) -> httpx.Response:
        return problem(401, "token_invalid")

    js1.relay.hooks[("PATCH", 2)] = expired
    await js1.upload(path, data)
    assert ("POST", "/api/v1/auth/refresh", 200) in js1.relay.log
    assert js1.transport.access_token != old
    assert js1.relay.count("POST", CREATE) == 1
    assert js1.stored(app, data) == data


async def test_a_remembered_upload_resumes_where_the_server_is(demo, app, js1):
    """A tablet restarted mid-upload sends only the rest."""
    path, data = big_photo(path_of(js1), 8)

    async def cut(request: httpx.Request, body: bytes) -> httpx.Response:
        raise httpx.ConnectError("network gone")

    js1.relay.hooks[("PATCH", 3)] = cut
    with pytest.raises(TransportError):
        await js1.upload(path, data)
    url = js1.urls[-1]
    assert url is not None
    js1.relay.log.clear()
    js1.relay.hooks.clear()
    await js1.upload(path, data, url=url)
    sent = [s for m, _, s in js1.relay.log if m == "PATCH"]
    assert js1.relay.log[0][:2] == ("HEAD", httpx.URL(url).path)
    assert len(sent) == -(-(len(data) - 2 * CHUNK) // CHUNK)  # only what was left
    assert js1.stored(app, data) == data


async def test_a_tablet_file_of_the_earlier_layout_keeps_its_pending_files(tmp_path, js1):
    """Earlier tablets kept one evidence row per file; opening their local file moves
    it to one row per file and inspection, pending uploads kept."""
    path, data = big_photo(tmp_path, 10)
    old = sqlite_utils.Database(tmp_path / "old.db")
    old["evidence"].insert(  # type: ignore[union-attr]
        {
            "sha256": sha(data),
            "path": str(path),
            "inspection_id": INSP,
            "size": len(data),
            "filename": path.name,
            "captured_at": "2026-03-09T10:15:30+08:00",
            "upload_url": None,
            "state": "pending",
            "detail": "",
        },
        pk="sha256",
    )
    old.close()
    tablet = Tablet(tmp_path / "old.db", js1.transport, device_id="dev_old")
    assert [(r["sha256"], r["state"]) for r in tablet.evidence()] == [(sha(data), "pending")]
    tablet.attach(path, JOINT)
    assert [r["inspection_id"] for r in tablet.evidence()] == [INSP, JOINT]
    assert await tablet.upload_evidence() == 2
    assert [r["state"] for r in tablet.evidence()] == ["uploaded", "uploaded"]
