"""gzip for answers of 1 KiB or more, when the client accepts it.

Litestar's compression middleware always compresses gzip through the standard
library's ``GzipFile`` (zlib); a 1.3 MB pull page takes about 7 ms at level 1 there.
ISA-L (the ``isal`` package) writes the same gzip format about three to four times
faster at the same ratio, so this middleware uses it, and falls back to zlib where
``isal`` is not installed. Route handlers with ``opt={"skip_compression": True}``
(evidence downloads: ranges are of the stored bytes) are never compressed.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

try:
    from isal import isal_zlib as _zlib

    LEVEL = 1  # ISA-L levels are 0-3; 1 compresses about as well as zlib's 1
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps it working
    import zlib as _zlib  # type: ignore[no-redef]

    LEVEL = 1

__all__ = ["MINIMUM_SIZE", "SKIP_OPT", "GzipMiddleware"]

MINIMUM_SIZE = 1024
SKIP_OPT = "skip_compression"
_GZIP_WBITS = 16 + 15  # a gzip header and trailer around the deflate stream


def _headers(message: Message, *, length: int | None) -> list[tuple[bytes, bytes]]:
    """The start message's headers with gzip's: Content-Encoding, Vary, and the new
    Content-Length (none for a streamed body)."""
    out: list[tuple[bytes, bytes]] = []
    vary = b""
    for name, value in message.get("headers", ()):
        lower = name.lower()
        if lower == b"content-length":
            continue
        if lower == b"vary":
            vary = value
            continue
        out.append((name, value))
    out.append((b"content-encoding", b"gzip"))
    out.append((b"vary", vary + b", Accept-Encoding" if vary else b"Accept-Encoding"))
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


class GzipMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._wanted(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        state: Any = None  # None: no body yet; False: passed through; else a compressor

        async def send_wrapper(message: Message) -> None:
            nonlocal start, state
            if message["type"] == "http.response.start":
                start = message
                return
            if state is None:  # the first message after the start decides
                begun, start = start, None
                if begun is None:
                    await send(message)
                    return
                body: bytes = message.get("body", b"")
                more = message.get("more_body", False)
                already = any(n.lower() == b"content-encoding" for n, _ in begun.get("headers", ()))
                if (
                    message["type"] != "http.response.body"
                    or already
                    or (not more and len(body) < MINIMUM_SIZE)
                ):
                    state = False
                    await send(begun)
                    await send(message)
                    return
                state = _zlib.compressobj(LEVEL, _zlib.DEFLATED, _GZIP_WBITS)
                if not more:
                    data = state.compress(body) + state.flush()
                    await send({**begun, "headers": _headers(begun, length=len(data))})
                    await send({**message, "body": data})
                    return
                await send({**begun, "headers": _headers(begun, length=None)})
            elif state is False or message["type"] != "http.response.body":
                await send(message)
                return
            more = message.get("more_body", False)
            data = state.compress(message.get("body", b""))
            data += state.flush(_zlib.Z_SYNC_FLUSH) if more else state.flush()
            await send({**message, "body": data})

        await self.app(scope, receive, send_wrapper)

    @staticmethod
    def _wanted(scope: Scope) -> bool:
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get(SKIP_OPT):
            return False
        for name, value in scope.get("headers", ()):
            if name == b"accept-encoding":
                return b"gzip" in value.lower()
        return False
