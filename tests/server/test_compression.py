"""The gzip middleware: what is compressed, what is not, and that it round-trips."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

from litestar import get
from litestar.response import Stream
from litestar.testing import create_test_client

from server.compression import GzipMiddleware

BIG = "inspection " * 500  # 5.5 KB


@get("/big", media_type="text/plain")
async def big() -> str:
    return BIG


@get("/small", media_type="text/plain")
async def small() -> str:
    return "ok"


@get("/raw", media_type="text/plain", opt={"skip_compression": True})
async def raw() -> str:
    return BIG


@get("/stream", media_type="text/plain")
async def stream() -> Stream:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(5):
            yield f"part {n}: {BIG}".encode()

    return Stream(parts())


def _client():  # type: ignore[no-untyped-def]
    return create_test_client([big, small, raw, stream], middleware=[GzipMiddleware])


def _raw_get(client, path: str, accept: str | None = "gzip"):  # type: ignore[no-untyped-def]
    headers = {"Accept-Encoding": accept or "identity"}
    # stream=True keeps httpx from decoding, so the wire bytes are checked
    with client.stream("GET", path, headers=headers) as r:
        return r, b"".join(r.iter_raw())


def test_large_answers_are_gzipped_with_their_length():
    with _client() as client:
        r, body = _raw_get(client, "/big")
        assert r.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in r.headers["vary"]
        assert int(r.headers["content-length"]) == len(body) < len(BIG)
        assert gzip.decompress(body).decode() == BIG


def test_small_skipped_and_unasked_answers_are_sent_as_they_are():
    with _client() as client:
        for path, accept in (("/small", "gzip"), ("/raw", "gzip"), ("/big", None)):
            r, body = _raw_get(client, path, accept)
            assert "content-encoding" not in r.headers, path
            assert body.decode() in ("ok", BIG)


def test_streamed_answers_are_gzipped_as_one_stream():
    with _client() as client:
        r, body = _raw_get(client, "/stream")
        assert r.headers["content-encoding"] == "gzip"
        assert "content-length" not in r.headers
        expected = "".join(f"part {n}: {BIG}" for n in range(5))
        assert gzip.decompress(body).decode() == expected
