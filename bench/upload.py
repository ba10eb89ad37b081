"""Evidence upload benchmark: 100 photos of 3 MB over tus, against the real server.

Starts ``python -m server.cli serve --demo`` on a fresh data directory and a free port
on 127.0.0.1 (SQLite ``synchronous=FULL``, the durable default, unless told otherwise),
logs in as ``insp.js1`` with a device, then:

1. sequential: one tablet uploads 100 distinct photos of ~3 MB each, one after the
   other, in chunks of 1 MiB, each chunk with an ``Upload-Checksum: sha256``;
2. parallel: ``--parallel`` tablets (default 4) upload 100 other photos at once.

Each photo is a real 8-megapixel JPEG (with EXIF capture time and GPS) of ~3 MB; the
100 variants differ by a comment segment, so every one has its own SHA-256 and the
server really stores, hashes, reads the EXIF of and thumbnails each of them. Prints
MB/s (of file bytes) and files/s for each phase, the p50/p95 of one chunk's round trip,
then checks that every file is stored once, byte for byte, and that a record naming one
makes it downloadable with ``Range``. Stops the server.

Usage (from the repository root)::

    .venv/bin/python bench/upload.py                 # 100 photos of 3 MB, 1 MiB chunks
    .venv/bin/python bench/upload.py --files 20      # a quick run

``docs/evidence.md`` has the figures of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from PIL import Image, ImageChops  # noqa: E402

from server.demo import DEMO_PASSWORD  # noqa: E402
from sync.protocol import Mutation, PushRequest  # noqa: E402

INSPECTION = "insp-ds-routine"
UPLOADS = "/api/v1/evidence/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
MB = 1_000_000


from bench.run import BenchError, Server  # noqa: E402  the same server start


def base_photo(target: int) -> bytes:
    """A real 8-megapixel JPEG of about ``target`` bytes, with EXIF time and GPS."""
    rng = random.Random(2026)
    w, h = 3264, 2448
    smooth = Image.frombytes("RGB", (w // 8, h // 8), rng.randbytes((w // 8) * (h // 8) * 3))
    smooth = smooth.resize((w, h), Image.Resampling.BICUBIC)
    grain = Image.frombytes("L", (w, h), rng.randbytes(w * h)).point(lambda v: v // 12)
    img = ImageChops.add(smooth, grain.convert("RGB"))
    exif = Image.Exif()
    exif[0x0110] = "bench tablet"
    exif.get_ifd(0x8769)[36867] = "2026:03:09 10:15:30"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (31.0, 18.0, 36.0), "E", (120.0, 35.0, 24.0)
    best = b""
    for quality in range(95, 40, -3):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, exif=exif)
        best = buf.getvalue()
        if len(best) <= target:
            break
    return best


def variant(base: bytes, n: int, target: int) -> bytes:
    """The base photo with a comment segment right after SOI: still a valid JPEG, its
    own hash, padded so the file is ``target`` bytes."""
    pad = max(0, target - len(base) - 4)
    text = f"inspectsync bench photo {n:05d} ".encode()
    body = (text * (pad // len(text) + 1))[: max(len(text), min(pad, 65533))]
    extra = pad - len(body)
    segments = [b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body]
    while extra > 4:  # more comment segments (each at most 65,535 bytes)
        part = min(extra - 4, 65533)
        segments.append(b"\xff\xfe" + (part + 2).to_bytes(2, "big") + b"#" * part)
        extra -= part + 4
    return base[:2] + b"".join(segments) + base[2:]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- the client ------------------------------------------------------------------------


async def login(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post(
        "/api/v1/auth/login",
        json={"username": "insp.js1", "password": DEMO_PASSWORD, "device": {"name": name}},
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def upload(
    http: httpx.AsyncClient, auth: dict[str, str], data: bytes, chunk: int, rtts: list[float]
) -> None:
    sha = hashlib.sha256(data).hexdigest()
    meta = ",".join(
        [
            f"sha256 {b64(sha)}",
            f"inspection_id {b64(INSPECTION)}",
            f"filename {b64('IMG_0001.JPG')}",
            f"captured_at {b64(datetime.now(UTC).isoformat())}",
        ]
    )
    r = await http.post(
        UPLOADS,
        headers={**TUS, **auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
    )
    if r.status_code != 201:
        raise BenchError(f"create: {r.status_code} {r.text}")
    url = r.headers["Location"]
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + chunk]
        digest = base64.b64encode(hashlib.sha256(piece).digest()).decode()
        t = time.perf_counter()
        r = await http.patch(
            url,
            content=piece,
            headers={
                **TUS,
                **auth,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": f"sha256 {digest}",
            },
        )
        rtts.append(time.perf_counter() - t)
        if r.status_code != 204:
            raise BenchError(f"chunk at {offset}: {r.status_code} {r.text}")
        offset = int(r.headers["Upload-Offset"])


async def phase(
    base: str, photos: list[bytes], tablets: int, chunk: int, rtts: list[float]
) -> float:
    """Upload ``photos`` with ``tablets`` clients at once; returns the seconds taken."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in photos:
        queue.put_nowait(p)
    limits = httpx.Limits(max_connections=tablets)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        auths = [await login(http, f"bench-{n}") for n in range(tablets)]

        async def tablet(auth: dict[str, str]) -> None:
            while not queue.empty():
                await upload(http, auth, queue.get_nowait(), chunk, rtts)

        start = time.perf_counter()
        await asyncio.gather(*(tablet(a) for a in auths))
        return time.perf_counter() - start


async def check(server: Server, photos: list[bytes]) -> None:
    """Every photo stored once, byte for byte; one named by a finding downloads."""
    blobs = server.data_dir / "evidence" / "blobs"
    stored = {p.name: p for p in blobs.rglob("*") if p.is_file()}
    for data in photos:
        sha = hashlib.sha256(data).hexdigest()
        path = stored.get(sha)
        if path is None or path.stat().st_size != len(data):
            raise BenchError(f"{sha} is not stored whole")
    if len(stored) != len(photos):
        raise BenchError(f"{len(stored)} files stored for {len(photos)} photos")
    sample = random.Random(1).choice(photos)
    if stored[hashlib.sha256(sample).hexdigest()].read_bytes() != sample:
        raise BenchError("a stored file differs from the photo sent")
    sha = hashlib.sha256(sample).hexdigest()
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
        auth = await login(http, "checker")
        now = datetime.now(UTC)
        push = PushRequest(
            mutations=[
                Mutation(
                    mid="bench:1",
                    kind="finding",
                    id="f-bench",
                    fields={"inspection_id": INSPECTION, "title": "x", "evidence_hashes": [sha]},
                    hlc=f"{int(now.timestamp() * 1000):015d}.00000.bench",
                    device_time=now,
                )
            ]
        )
        r = await http.post(
            "/api/v1/sync/push",
            content=msgspec.json.encode(push),
            headers={**auth, "content-type": "application/json"},
        )
        r.raise_for_status()
        r = await http.get(f"/api/v1/evidence/{sha}", headers={**auth, "Range": "bytes=0-1023"})
        if r.status_code != 206 or r.content != sample[:1024]:
            raise BenchError(f"download: {r.status_code}")
        meta = (await http.get(f"/api/v1/evidence/{sha}/meta", headers=auth)).json()
        if not meta["thumbnail"] or meta["exif"]["latitude"] is None:
            raise BenchError(f"no thumbnail or EXIF: {meta}")


def line(name: str, files: int, size: int, seconds: float, rtts: list[float]) -> str:
    q = statistics.quantiles(rtts, n=100) if len(rtts) > 1 else [rtts[0]] * 99
    return (
        f"{name:<22} {files} files, {size / MB:7.1f} MB in {seconds:6.2f} s:"
        f" {size / MB / seconds:7.1f} MB/s, {files / seconds:6.1f} files/s;"
        f" chunk round trip p50 {q[49] * 1000:5.1f} ms, p95 {q[94] * 1000:5.1f} ms"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100, help="photos per phase (default 100)")
    p.add_argument("--size", type=int, default=3 * MB, help="bytes per photo (default 3 MB)")
    p.add_argument("--chunk", type=int, default=1 << 20, help="chunk size (default 1 MiB)")
    p.add_argument("--parallel", type=int, default=4, help="tablets in phase 2 (default 4)")
    p.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    args = p.parse_args()

    base = base_photo(args.size)
    sequential = [variant(base, n, args.size) for n in range(args.files)]
    parallel = [variant(base, 100_000 + n, args.size) for n in range(args.files)]
    size = sum(len(x) for x in sequential)
    data_dir = Path(tempfile.mkdtemp(prefix="inspectsync-upload-bench-"))
    server = Server(data_dir, args.synchronous)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()};"
        f" SQLite synchronous={args.synchronous}; data in {data_dir}"
    )
    print(
        f"{args.files} photos of {size / args.files / MB:.2f} MB (8 MP JPEG with EXIF)"
        f" per phase, chunks of {args.chunk / (1 << 20):g} MiB with sha256 checksums"
    )
    code = 0
    try:
        server.start()
        rtts: list[float] = []
        seconds = asyncio.run(phase(server.base, sequential, 1, args.chunk, rtts))
        print(line("sequential, 1 tablet", args.files, size, seconds, rtts))
        rtts = []
        size2 = sum(len(x) for x in parallel)
        seconds = asyncio.run(phase(server.base, parallel, args.parallel, args.chunk, rtts))
        print(line(f"{args.parallel} tablets at once", args.files, size2, seconds, rtts))
        asyncio.run(check(server, sequential + parallel))
        print("check: every photo stored once, byte for byte; Range download and EXIF ok")
        rss = server.peak_rss_mb()
        if rss is not None:
            print(f"server peak RSS {rss:.0f} MB")
    except BenchError as exc:
        print(f"FAILED: {exc}\n{server.log_tail()}", file=sys.stderr)
        code = 1
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
