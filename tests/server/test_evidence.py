"""Evidence uploads (tus 1.0.0) and downloads, end to end over HTTP on the demo world.

insp-ds-routine is in progress with insp.js1 (lead) and insp.js2; insp.zj2 is a
Zhejiang inspector on another inspection only; insp-joint-conj (planned) has insp.zj1
and insp.js1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from server.cli import main
from sync.clock import FakeClock
from sync.errors import ChecksumMismatch
from sync.models import Principal, Role
from sync.uploads import Checksum, UploadLimits
from tests.conftest import login
from tests.server.test_sync_http import push_body

INSP = "insp-ds-routine"
OTHER = "insp-conj-forcause"  # planned; insp.zj2 (lead), Zhejiang
UPLOADS = "/api/v1/evidence/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


# --- files ---------------------------------------------------------------------------


def jpeg(seed: int, size: tuple[int, int] = (400, 300), *, exif: bool = False) -> bytes:
    """A real JPEG of noise (so every seed differs), optionally with capture time and
    GPS position in its EXIF."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x0110] = "TabCam 7"
        tags.get_ifd(0x8769)[36867] = "2026:03:09 10:15:30"
        gps = tags.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", (31.0, 18.0, 36.0), "E", (120.0, 35.0, 24.0)
        img.save(buf, "JPEG", quality=90, exif=tags)
    else:
        img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(seed: int) -> bytes:
    rng = random.Random(seed)
    img = Image.frombytes("RGBA", (500, 200), rng.randbytes(500 * 200 * 4))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata(data: bytes, inspection: str = INSP, **extra: str) -> str:
    values = {"sha256": sha(data), "inspection_id": inspection, **extra}
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


def checksum(chunk: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()}"


async def create(s, data: bytes, *, meta: str | None = None, length: int | None = None):
    return await s.post(
        UPLOADS,
        headers={
            **TUS,
            "Upload-Length": str(len(data) if length is None else length),
            "Upload-Metadata": meta if meta is not None else metadata(data),
        },
    )


async def send(s, url: str, offset: int, chunk: bytes, **headers: str):
    return await s.patch(
        url, content=chunk, headers={**CHUNK, "Upload-Offset": str(offset), **headers}
    )


async def upload(s, data: bytes, *, chunk: int = 64 * 1024, inspection: str = INSP) -> str:
    """Upload a whole file in checksummed chunks; returns its hash."""
    r = await create(s, data, meta=metadata(data, inspection))
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + chunk]
        r = await send(s, url, offset, piece, **{"Upload-Checksum": checksum(piece)})
        assert r.status_code == 204, r.text
        offset = int(r.headers["Upload-Offset"])
    return sha(data)


async def reference(s, mid: str, fid: str, hashes: list[str]) -> None:
    """A finding of insp-ds-routine that names these files (records sync first)."""
    body = msgspec.json.encode(push_body(mid, fid, title="photo", evidence_hashes=hashes))
    r = await s.post(
        "/api/v1/sync/push", content=body, headers={"content-type": "application/json"}
    )
    assert r.json()["results"][0]["status"] == "applied", r.text


def services(app):
    return app.state.services


async def on_app(client, fn: Callable[..., Awaitable], *args, **kw):
    """Run ``fn`` on the app's event loop (the test client's portal thread): the store's
    lock and connections belong to that loop, not to the test's."""
    return await asyncio.to_thread(client.blocking_portal.call, partial(fn, *args, **kw))


def blob_files(app) -> list[Path]:
    root = services(app).uploads.blobs.root
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- protocol basics ---------------------------------------------------------------


async def test_options_announces_what_is_supported_without_a_token(demo):
    r = await demo.options(UPLOADS)
    assert r.status_code == 204
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert r.headers["Tus-Version"] == "1.0.0"
    assert r.headers["Tus-Extension"] == "creation,checksum,termination,expiration"
    assert r.headers["Tus-Max-Size"] == "50000000"
    assert r.headers["Tus-Checksum-Algorithm"] == "sha256,sha1,md5"


async def test_no_token_is_401_with_tus_resumable(demo):
    data = jpeg(1)
    for method, url in [
        ("POST", UPLOADS),
        ("HEAD", f"{UPLOADS}/{'a' * 32}"),
        ("PATCH", f"{UPLOADS}/{'a' * 32}"),
        ("DELETE", f"{UPLOADS}/{'a' * 32}"),
        ("GET", f"/api/v1/evidence/{sha(data)}"),
        ("GET", f"/api/v1/evidence/{sha(data)}/meta"),
        ("GET", f"/api/v1/evidence/{sha(data)}/thumbnail"),
    ]:
        r = await demo.request(method, url, headers=TUS)
        assert r.status_code == 401, (method, url)
        if url.startswith(UPLOADS):
            assert r.headers["Tus-Resumable"] == "1.0.0"


async def test_wrong_tus_version_and_bad_headers(demo):
    s = await login(demo, "insp.js1")
    data = jpeg(2)
    r = await s.post(UPLOADS, headers={"Upload-Length": "10", "Upload-Metadata": metadata(data)})
    assert r.status_code == 412 and r.json()["code"] == "tus_version_unsupported"
    assert r.headers["Tus-Version"] == "1.0.0" and r.headers["Tus-Resumable"] == "1.0.0"
    r = await create(s, data, length=-1)
    assert r.status_code == 400 and r.json()["field"] == "Upload-Length"
    r = await create(s, data, meta=f"sha256 {b64(sha(data))},inspection_id !!!")
    assert r.status_code == 400 and r.json()["field"] == "Upload-Metadata.inspection_id"
    r = await create(s, data, meta=f"inspection_id {b64(INSP)}")
    assert r.status_code == 422 and r.json()["field"] == "Upload-Metadata.sha256"
    r = await create(s, data, meta=metadata(data, latitude="91", longitude="10"))
    assert r.status_code == 422 and r.json()["field"] == "Upload-Metadata.latitude"
    r = await create(s, data, meta=metadata(data, "insp-conj-forcause"))  # not on its team
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await create(s, data)
    url = r.headers["Location"]
    r = await s.patch(url, content=data, headers={**TUS, "Upload-Offset": "0"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = await send(s, url, 5, data)
    assert r.status_code == 409 and r.json()["code"] == "offset_mismatch"
    assert r.json()["offset"] == 0
    r = await send(s, url, 0, data[:10], **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status_code == 400 and r.json()["field"] == "Upload-Checksum"
    r = await send(s, url, 0, data + b"extra")
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
    r = await s.request("HEAD", url, headers=TUS)
    assert r.headers["Upload-Offset"] == "0"


# --- resuming, verifying -------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_an_upload_cut_at_random_points_resumes_and_completes(demo, app, seed):
    """Each PATCH is cut short at a random point (the connection dropped mid-chunk;
    the server keeps what arrived); the client asks HEAD for the offset and goes on."""
    rng = random.Random(seed)
    s = await login(demo, "insp.js1", device={"name": "tablet"})
    data = jpeg(100 + seed, (600, 400), exif=seed == 1)
    r = await create(s, data, meta=metadata(data, filename="IMG_0001.jpg"))
    assert r.status_code == 201
    assert r.headers["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in r.headers
    url = r.headers["Location"]
    cuts = 0
    while True:
        head = await s.request("HEAD", url, headers=TUS)
        assert head.status_code == 200
        assert head.headers["Cache-Control"] == "no-store"
        assert head.headers["Upload-Length"] == str(len(data))
        offset = int(head.headers["Upload-Offset"])
        if offset == len(data):
            break
        intended = data[offset : offset + rng.randint(1, 40_000)]
        arrived = intended[: rng.randint(1, len(intended))]  # the rest was lost
        cuts += arrived != intended
        r = await send(s, url, offset, arrived)
        assert r.status_code == 204, r.text
        assert int(r.headers["Upload-Offset"]) == offset + len(arrived)
    assert cuts > 0
    stored = services(app).uploads.blobs.path(sha(data))
    assert stored.read_bytes() == data
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha(data)
    assert "IMG_0001" not in str(stored)
    assert not any(services(app).uploads.area.root.iterdir())  # nothing left behind
    # the answer to the last chunk was lost: a retry sees the upload complete
    r = await send(s, url, len(data) - 10, data[-10:])
    assert r.status_code == 409 and r.json()["offset"] == len(data)
    r = await send(s, url, len(data), b"")
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))


async def test_a_connection_broken_mid_chunk_keeps_what_arrived_unless_checksummed(demo, app):
    s = await login(demo, "insp.js1")
    data = jpeg(7)
    url = (await create(s, data)).headers["Location"]
    upload_id = url.rsplit("/", 1)[1]
    uploads = services(app).uploads
    me = Principal(
        user_id="u-insp-js1", username="insp.js1", role=Role.INSPECTOR, authority_id="js-mpa"
    )

    async def broken(pieces: list[bytes]) -> AsyncIterator[bytes]:
        for p in pieces:
            yield p
        raise ConnectionResetError("the network went away")

    with pytest.raises(ConnectionResetError):
        await on_app(demo, uploads.append, me, upload_id, 0, broken([data[:1000], data[1000:3000]]))
    assert (await on_app(demo, uploads.status, me, upload_id)).offset == 3000  # no checksum: kept
    whole = data[3000:9000]
    with pytest.raises(ConnectionResetError):
        await on_app(
            demo,
            uploads.append,
            me,
            upload_id,
            3000,
            broken([whole[:2000]]),
            checksum=Checksum("sha256", hashlib.sha256(whole).digest()),
        )
    assert (
        await on_app(demo, uploads.status, me, upload_id)
    ).offset == 3000  # checksummed: dropped
    with pytest.raises(ChecksumMismatch):
        await on_app(
            demo,
            uploads.append,
            me,
            upload_id,
            3000,
            _once(whole[:10]),  # complete as sent, but not what the checksum is of
            checksum=Checksum("sha256", hashlib.sha256(whole).digest()),
        )
    r = await send(s, url, 3000, data[3000:])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert uploads.blobs.path(sha(data)).read_bytes() == data


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
async def test_a_corrupted_chunk_is_refused_with_460_and_the_offset_does_not_move(demo, algorithm):
    s = await login(demo, "insp.js1")
    data = jpeg(11)
    url = (await create(s, data)).headers["Location"]
    first = data[:5000]
    r = await send(s, url, 0, first, **{"Upload-Checksum": checksum(first, algorithm)})
    assert r.status_code == 204
    chunk = data[5000:10000]
    damaged = bytearray(chunk)
    damaged[1234] ^= 0x01
    r = await send(s, url, 5000, bytes(damaged), **{"Upload-Checksum": checksum(chunk, algorithm)})
    assert r.status_code == 460
    assert r.json()["code"] == "checksum_mismatch" and r.json()["offset"] == 5000
    assert r.headers["Tus-Resumable"] == "1.0.0"
    head = await s.request("HEAD", url, headers=TUS)
    assert head.headers["Upload-Offset"] == "5000"
    r = await send(
        s, url, 5000, data[5000:], **{"Upload-Checksum": checksum(data[5000:], algorithm)}
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))


async def test_a_whole_file_hash_mismatch_is_refused_and_the_upload_discarded(demo, app):
    s = await login(demo, "insp.js1")
    data, other = jpeg(21), jpeg(22)
    r = await create(s, data, meta=metadata(other))  # announces another file's hash
    url = r.headers["Location"]
    r = await send(s, url, 0, data)
    assert r.status_code == 422 and r.json()["code"] == "hash_mismatch"
    assert r.json()["expected"] == sha(other) and r.json()["actual"] == sha(data)
    assert (await s.request("HEAD", url, headers=TUS)).status_code == 404
    assert blob_files(app) == []
    assert not any(services(app).uploads.area.root.iterdir())


@pytest.mark.parametrize(
    "forged",
    [
        b"PK\x03\x04" + bytes(300),  # a ZIP
        b"\x7fELF\x02\x01\x01" + bytes(300),  # an executable
        b"Dear inspector, this is not a photo.\n" * 20,  # text
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>" * 5,
        b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00qt  " + bytes(300),  # QuickTime, not MP4
    ],
)
async def test_a_forged_type_is_refused_415_whatever_its_name(demo, app, forged):
    s = await login(demo, "insp.js1")
    r = await create(s, forged, meta=metadata(forged, filename="photo.jpg"))
    url = r.headers["Location"]
    r = await send(s, url, 0, forged[:100])  # refused as soon as the type shows
    assert r.status_code in (204, 415)
    if r.status_code == 204:
        r = await send(s, url, 100, forged[100:])
    assert r.status_code == 415 and r.json()["code"] == "unsupported_file_type"
    assert (await s.request("HEAD", url, headers=TUS)).status_code == 404
    assert blob_files(app) == []


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1miaf", "image/heif"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4"),
        (b"\x00\x00\x00\x1cftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    ],
)
async def test_pdf_heic_and_mp4_are_accepted_by_their_bytes(demo, app, head, media_type):
    s = await login(demo, "insp.js1")
    data = head + random.Random(len(head)).randbytes(2000)
    await upload(s, data)
    await reference(s, "m:1", "f-doc", [sha(data)])
    meta = (await s.get(f"/api/v1/evidence/{sha(data)}/meta")).json()
    assert meta["media_type"] == media_type and meta["thumbnail"] is False
    r = await s.get(f"/api/v1/evidence/{sha(data)}")
    assert r.headers["content-type"].startswith(media_type) and r.content == data
    assert (await s.get(f"/api/v1/evidence/{sha(data)}/thumbnail")).status_code == 404


async def test_a_chunk_larger_than_the_app_body_limit_streams_in(demo, app):
    s = await login(demo, "insp.js1")
    data = b"\xff\xd8\xff\xe0" + random.Random(5).randbytes(5_000_000)  # > 2 MB body limit
    assert len(data) > services(app).settings.max_body_bytes
    await upload(s, data, chunk=len(data))
    assert services(app).uploads.blobs.path(sha(data)).stat().st_size == len(data)


# --- who may read what ---------------------------------------------------------------


async def test_someone_elses_evidence_cannot_be_fetched(demo):
    js1 = await login(demo, "insp.js1", device={"name": "li"})
    data = jpeg(31)
    h = await upload(js1, data)
    # stored, but no record names it yet: not even its uploader may read it
    assert (await js1.get(f"/api/v1/evidence/{h}")).status_code == 404
    await reference(js1, "li:1", "f-photo", [h])
    for who in ("insp.js1", "insp.js2", "sup.js", "admin"):
        s = await login(demo, who)
        r = await s.get(f"/api/v1/evidence/{h}")
        assert r.status_code == 200 and r.content == data, who
        assert (await s.get(f"/api/v1/evidence/{h}/meta")).status_code == 200
        assert (await s.get(f"/api/v1/evidence/{h}/thumbnail")).status_code == 200
    for who in ("insp.zj2", "insp.zj1", "sup.zj"):
        s = await login(demo, who)
        for path in ("", "/meta", "/thumbnail"):
            r = await s.get(f"/api/v1/evidence/{h}{path}")
            assert r.status_code == 404 and r.json()["code"] == "not_found", (who, path)
    # the same answer as for a file that was never uploaded, or no hash at all
    zj = await login(demo, "insp.zj2")
    assert (await zj.get(f"/api/v1/evidence/{sha(b'never')}")).json()["code"] == "not_found"
    assert (await zj.get("/api/v1/evidence/not-a-hash")).status_code == 404
    # nor can anyone touch another user's upload, or upload to another's inspection
    url = (await create(js1, jpeg(32))).headers["Location"]
    js2 = await login(demo, "insp.js2")
    for s in (zj, js2):
        assert (await s.request("HEAD", url, headers=TUS)).status_code == 404
        assert (await send(s, url, 0, b"\xff\xd8\xff")).status_code == 404
        assert (await s.delete(url, headers=TUS)).status_code == 404
    r = await create(zj, data)
    assert r.status_code == 404 and r.json()["field"] == "Upload-Metadata.inspection_id"


async def start(demo, inspection: str) -> None:
    admin = await login(demo, "admin")
    r = await admin.post(
        f"/api/v1/inspections/{inspection}/transitions", json={"to": "in_progress"}
    )
    assert r.status_code == 200, r.text


async def test_knowing_a_hash_does_not_open_the_file_from_another_inspection(demo, app):
    """insp.zj2 learns the SHA-256 of a photo stored for insp-ds-routine and names it
    in a finding of their own inspection: that grants nothing. The file is theirs to
    read only once they send its bytes for their inspection."""
    js1 = await login(demo, "insp.js1")
    data = jpeg(35)
    h = await upload(js1, data)
    await reference(js1, "li:1", "f-photo", [h])
    await start(demo, OTHER)
    zj2 = await login(demo, "insp.zj2", device={"name": "xu"})
    body = push_body("xu:1", "f-borrowed", inspection_id=OTHER, title="x", evidence_hashes=[h])
    r = await zj2.post(
        "/api/v1/sync/push",
        content=msgspec.json.encode(body),
        headers={"content-type": "application/json"},
    )
    assert r.json()["results"][0]["status"] == "applied", r.text
    for who in ("insp.zj2", "sup.zj"):  # both see insp-conj-forcause, not insp-ds-routine
        s = await login(demo, who)
        for path in ("", "/meta", "/thumbnail"):
            r = await s.get(f"/api/v1/evidence/{h}{path}")
            assert r.status_code == 404 and r.json()["code"] == "not_found", (who, path)
    # to them the file is missing, exactly like one never uploaded: nothing is revealed
    r = await zj2.get("/api/v1/evidence/missing", params={"inspection_id": OTHER})
    assert r.json()["missing"] == [h]
    pull = await zj2.post("/api/v1/sync/pull", json={"want_missing_evidence": True})
    assert pull.json()["missing_evidence"] == {OTHER: [h]}
    # those who see insp-ds-routine still read it, through the record there
    for who in ("insp.js1", "admin"):
        r = await (await login(demo, who)).get(f"/api/v1/evidence/{h}")
        assert r.status_code == 200 and r.content == data, who

    # holding the bytes is what counts: zj2 uploads them for their inspection
    await upload(zj2, data, inspection=OTHER)
    r = await zj2.get(f"/api/v1/evidence/{h}")
    assert r.status_code == 200 and r.content == data
    meta = (await zj2.get(f"/api/v1/evidence/{h}/meta")).json()
    assert [u["inspection_id"] for u in meta["uploads"]] == [OTHER]
    assert meta["records"] == [{"kind": "finding", "id": "f-borrowed", "inspection_id": OTHER}]
    r = await zj2.post("/api/v1/sync/pull", json={"want_missing_evidence": True})
    assert r.json()["missing_evidence"] == {}
    assert [p.name for p in blob_files(app)] == [h]  # still stored once


async def test_metadata_shows_exif_tablet_place_who_and_which_record(demo):
    s = await login(demo, "insp.js1", device={"name": "li-tab"})
    data = jpeg(41, (1200, 900), exif=True)
    r = await create(
        s,
        data,
        meta=metadata(
            data,
            filename="../../etc/passwd",
            captured_at="2026-03-09T02:15:31+00:00",
            latitude="31.3101",
            longitude="120.5901",
        ),
    )
    url = r.headers["Location"]
    head = await s.request("HEAD", url, headers=TUS)
    assert "filename" in head.headers["Upload-Metadata"]
    r = await send(s, url, 0, data)
    assert r.status_code == 204
    await reference(s, "li:1", "f-ln2", [sha(data)])
    meta = (await s.get(f"/api/v1/evidence/{sha(data)}/meta")).json()
    assert meta["sha256"] == sha(data) and meta["size"] == len(data)
    assert meta["media_type"] == "image/jpeg" and meta["thumbnail"] is True
    assert meta["exif"] == {
        "captured_at": "2026-03-09T10:15:30",
        "latitude": 31.31,
        "longitude": 120.59,
    }
    [up] = meta["uploads"]
    assert up["inspection_id"] == INSP and up["uploaded_by"] == "u-insp-js1"
    assert up["device_id"] == s.tokens["device_id"]
    assert up["captured_at"] == "2026-03-09T02:15:31+00:00"
    assert (up["latitude"], up["longitude"]) == (31.3101, 120.5901)
    assert up["filename"] == "../../etc/passwd"  # kept as text, never used as a path
    assert meta["records"] == [{"kind": "finding", "id": "f-ln2", "inspection_id": INSP}]
    r = await s.get(f"/api/v1/evidence/{sha(data)}/thumbnail")
    assert r.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.format == "JPEG" and max(thumb.size) == 320 and thumb.size == (320, 240)


async def test_png_gets_a_thumbnail_too(demo):
    s = await login(demo, "insp.js2")
    data = png(3)
    h = await upload(s, data)
    await reference(s, "z:1", "f-png", [h])
    r = await s.get(f"/api/v1/evidence/{h}/thumbnail")
    assert Image.open(io.BytesIO(r.content)).size == (320, 128)
    assert (await s.get(f"/api/v1/evidence/{h}/meta")).json()["exif"]["captured_at"] is None


# --- dedup, missing ---------------------------------------------------------------------


async def test_the_same_photo_uploaded_twice_is_stored_once(demo, app):
    js1 = await login(demo, "insp.js1")
    js2 = await login(demo, "insp.js2")
    data = jpeg(51)
    await upload(js1, data)
    await upload(js2, data)  # another inspector, same photo
    await upload(js1, data, inspection="insp-joint-conj")  # another inspection
    assert [p.name for p in blob_files(app)] == [sha(data)]
    thumbs = [p for p in services(app).uploads.thumbnails.root.rglob("*") if p.is_file()]
    assert len(thumbs) == 1
    await reference(js1, "li:1", "f-dup", [sha(data)])
    meta = (await js1.get(f"/api/v1/evidence/{sha(data)}/meta")).json()
    assert sorted(u["inspection_id"] for u in meta["uploads"]) == [
        "insp-ds-routine",
        "insp-joint-conj",
    ]
    meta = (await js2.get(f"/api/v1/evidence/{sha(data)}/meta")).json()
    assert [u["inspection_id"] for u in meta["uploads"]] == [INSP]  # not the joint one
    admin = await login(demo, "admin")  # each upload is in the audit trail, once stored
    events = (await admin.get("/api/v1/audit/events", params={"kind": "evidence"})).json()
    assert [(e["op"], e["user_id"], e["inspection_id"]) for e in events["events"]] == [
        ("upload", js1.tokens["user_id"], INSP),
        ("upload:dedup", js2.tokens["user_id"], INSP),
        ("upload:dedup", js1.tokens["user_id"], "insp-joint-conj"),
    ]
    history = await admin.get(f"/api/v1/audit/history/evidence/{sha(data)}")
    assert [e["op"] for e in history.json()] == ["upload", "upload:dedup", "upload:dedup"]
    assert (await js1.get(f"/api/v1/audit/history/evidence/{sha(data)}")).status_code == 404


async def test_a_finding_synced_before_its_photo_then_the_missing_list_empties(demo, app):
    s = await login(demo, "insp.js1")
    a, b = jpeg(61), jpeg(62)
    await reference(s, "li:1", "f-early", [sha(a), sha(b)])
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json() == {"inspection_id": INSP, "missing": sorted([sha(a), sha(b)])}
    await upload(s, a)
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == [sha(b)]
    await upload(s, b)
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == []
    assert await on_app(demo, services(app).store.missing_evidence, [INSP]) == {}
    zj = await login(demo, "insp.zj2")
    r = await zj.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.status_code == 404


# --- downloads -----------------------------------------------------------------------------


async def test_download_with_range_etag_and_304(demo):
    s = await login(demo, "insp.js1")
    data = jpeg(71, (640, 480))
    h = await upload(s, data)
    await reference(s, "li:1", "f-r", [h])
    url = f"/api/v1/evidence/{h}"
    r = await s.get(url, headers={"accept-encoding": "gzip"})
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == f'"{h}"' and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(len(data))
    assert "content-encoding" not in r.headers  # never gzipped: ranges are of the bytes
    assert r.headers["x-content-type-options"] == "nosniff"
    r = await s.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(data)}"
    r = await s.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = await s.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = await s.get(url, headers={"Range": f"bytes=10-{len(data) + 500}"})
    assert r.status_code == 206 and r.content == data[10:]
    r = await s.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.json()["code"] == "range_not_satisfiable"
    assert r.headers["content-range"] == f"bytes */{len(data)}"
    r = await s.get(url, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole file
    assert r.status_code == 200 and r.content == data
    r = await s.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == data
    r = await s.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{h}"'})
    assert r.status_code == 206 and r.content == data[:10]
    r = await s.get(url, headers={"If-None-Match": f'"{h}"'})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == f'"{h}"'
    r = await s.get(url, headers={"If-None-Match": '"other", W/"' + h + '"'})
    assert r.status_code == 304
    r = await s.get(url, headers={"If-None-Match": '"other"'})
    assert r.status_code == 200
    r = await s.get(f"{url}/thumbnail", headers={"Range": "bytes=0-1"})
    assert r.status_code == 206 and r.content == b"\xff\xd8"


# --- limits, expiry, termination ----------------------------------------------------------


async def test_per_file_and_per_inspection_limits(demo, app):
    s = await login(demo, "insp.js1")
    r = await create(s, b"x", length=50_000_001)
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
    assert r.json()["limit"] == 50_000_000
    services(app).uploads.limits = UploadLimits(
        max_file_bytes=100_000, max_inspection_bytes=120_000
    )
    data = jpeg(81, (200, 150))
    assert 20_000 < len(data) < 60_000
    await upload(s, data)
    # 120,000 - stored: room for one more of that size, open uploads count too
    first = await create(s, jpeg(82, (200, 150)), length=60_000)
    assert first.status_code == 201
    r = await create(s, jpeg(83), length=60_000)
    assert r.status_code == 413 and r.json()["code"] == "inspection_quota_exceeded"
    assert r.json()["limit"] == 120_000 and r.json()["used"] == len(data) + 60_000
    assert (await s.delete(first.headers["Location"], headers=TUS)).status_code == 204
    assert (await create(s, jpeg(83), length=60_000)).status_code == 201
    # the same file again does not count twice once stored
    await upload(s, data)
    r = await create(s, b"x", length=100_001)
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
    # another inspection has its own budget
    r = await create(s, data, meta=metadata(data, "insp-joint-conj"), length=60_000)
    assert r.status_code == 201


async def test_abandoned_uploads_expire_and_are_purged(demo, app):
    s = await login(demo, "insp.js1")
    data = jpeg(91)
    url = (await create(s, data)).headers["Location"]
    assert (await send(s, url, 0, data[:4000])).status_code == 204
    other = (await create(s, jpeg(92))).headers["Location"]
    uploads = services(app).uploads
    area = uploads.area.root
    assert len(list(area.iterdir())) == 2
    real = uploads.clock
    uploads.clock = FakeClock(datetime.now(UTC) + timedelta(hours=23))
    assert await on_app(demo, uploads.purge_expired) == 0
    # a chunk keeps the upload alive for another ttl
    assert (await send(s, url, 4000, data[4000:8000])).status_code == 204
    uploads.clock = FakeClock(datetime.now(UTC) + timedelta(hours=25))
    r = await s.request("HEAD", other, headers=TUS)
    assert r.status_code == 410
    r = await send(s, other, 0, b"\xff\xd8\xff")
    assert r.status_code == 410 and r.json()["code"] == "upload_expired"
    assert (await s.request("HEAD", url, headers=TUS)).status_code == 200  # still alive
    assert await on_app(demo, uploads.purge_expired) == 1
    assert (await s.request("HEAD", other, headers=TUS)).status_code == 404
    assert len(list(area.iterdir())) == 1
    uploads.clock = FakeClock(datetime.now(UTC) + timedelta(hours=60))
    assert await on_app(demo, uploads.purge_expired) == 1
    assert list(area.iterdir()) == []
    uploads.clock = real


async def test_termination_deletes_the_upload(demo, app):
    s = await login(demo, "insp.js1")
    data = jpeg(95)
    url = (await create(s, data)).headers["Location"]
    assert (await send(s, url, 0, data[:3000])).status_code == 204
    r = await s.delete(url, headers=TUS)
    assert r.status_code == 204 and r.headers["Tus-Resumable"] == "1.0.0"
    assert (await s.request("HEAD", url, headers=TUS)).status_code == 404
    assert (await s.delete(url, headers=TUS)).status_code == 404
    assert list(services(app).uploads.area.root.iterdir()) == []
    # a completed upload's file stays when its upload is terminated
    h = await upload(s, data)
    assert blob_files(app)[0].name == h


async def test_closed_inspections_take_no_more_evidence(demo, app):
    store = services(app).store
    insp = await on_app(demo, store.get_record, "inspection", INSP)
    await on_app(demo, store.update_record, "inspection", INSP, {**insp.data, "status": "closed"})
    s = await login(demo, "insp.js1")
    r = await create(s, jpeg(99))
    assert r.status_code == 403 and r.json()["code"] == "inspection_closed"


async def test_uploads_json_metadata_round_trip_unknown_keys(demo):
    s = await login(demo, "insp.js1")
    data = jpeg(98)
    r = await create(s, data, meta=metadata(data, app_build="2027.1") + ",flag")
    assert r.status_code == 201
    head = await s.request("HEAD", r.headers["Location"], headers=TUS)
    pairs = dict(p.partition(" ")[::2] for p in head.headers["Upload-Metadata"].split(","))
    assert base64.b64decode(pairs["app_build"]).decode() == "2027.1"
    assert pairs["flag"] == ""


async def test_a_file_lost_from_storage_is_404_until_uploaded_again(demo, app):
    s = await login(demo, "insp.js1")
    data = jpeg(97)
    h = await upload(s, data)
    await reference(s, "li:1", "f-lost", [h])
    path = services(app).uploads.blobs.path(h)
    path.unlink()  # e.g. a restore from an older evidence backup
    r = await s.get(f"/api/v1/evidence/{h}")
    assert r.status_code == 404 and r.json()["code"] == "evidence_lost"
    # the read marked it lost: listed as missing, so the tablet that has it sends it
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == [h]
    await upload(s, data)
    r = await s.get(f"/api/v1/evidence/{h}")
    assert r.status_code == 200 and r.content == data
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == []
    admin = await login(demo, "admin")
    history = (await admin.get(f"/api/v1/audit/history/evidence/{h}")).json()
    assert [e["op"] for e in history] == ["upload", "lost", "upload:restore"]


async def test_a_storage_check_finds_lost_and_wrong_bytes_and_uploads_heal_them(demo, app, capsys):
    """After a bad restore: one file gone, one with other bytes, one fine. The check
    (what ``inspectsync evidence check`` runs) marks two lost and sets the wrong bytes
    aside; they are listed as missing until uploaded; a file put back by hand is found."""
    s = await login(demo, "insp.js1")
    gone, wrong, fine = jpeg(91), jpeg(92), jpeg(93)
    hashes = [await upload(s, d) for d in (gone, wrong, fine)]
    await reference(s, "li:1", "f-restore", hashes)
    blobs = services(app).uploads.blobs
    blobs.path(hashes[0]).unlink()
    blobs.path(hashes[1]).chmod(0o644)
    blobs.path(hashes[1]).write_bytes(jpeg(94))  # same name, other content

    settings = services(app).settings
    code = await asyncio.to_thread(main, ["evidence", "check", "--data-dir", settings.data_dir])
    out = capsys.readouterr().out
    assert code == 1
    assert f"LOST {hashes[0]}: missing" in out and f"LOST {hashes[1]}: " in out
    assert "3 stored files checked (sizes and SHA-256): 2 lost (2 newly)" in out
    aside = list((blobs.root / "set-aside").iterdir())
    assert [p.name.split(".")[0] for p in aside] == [hashes[1]]
    assert aside[0].read_bytes() == jpeg(94)  # kept for whoever investigates

    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == sorted(hashes[:2])
    assert (await s.get(f"/api/v1/evidence/{hashes[1]}")).json()["code"] == "evidence_lost"
    assert (await s.get(f"/api/v1/evidence/{hashes[2]}")).content == fine

    await upload(s, wrong)  # the tablet sends the real bytes again
    assert (await s.get(f"/api/v1/evidence/{hashes[1]}")).content == wrong
    blobs.path(hashes[0]).parent.mkdir(parents=True, exist_ok=True)
    blobs.path(hashes[0]).write_bytes(gone)  # an operator puts the file back
    found = await on_app(demo, services(app).uploads.check_stored)
    assert (found.checked, found.lost, found.found, found.lost_now) == (3, 0, [hashes[0]], [])
    r = await s.get("/api/v1/evidence/missing", params={"inspection_id": INSP})
    assert r.json()["missing"] == []
    assert (await s.get(f"/api/v1/evidence/{hashes[0]}")).content == gone
