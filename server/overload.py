"""Overload is shed, not queued: bounds on the work the server takes on at once.

Under more requests than it can serve, a server that accepts them all answers every one
of them late (and holds every body, page and answer in memory meanwhile); tablets time
out and resend, which makes the queue longer. Past a bound, this server answers at once
``503`` with ``Retry-After`` and the problem code ``overloaded``, before any work (no
token check, no body read); the tablet waits and tries again (``sync/client.py``).

Every HTTP request falls in one class:

- *exempt*: ``/healthz`` and ``/readyz`` are never refused and never counted, so a
  load balancer sees a busy server as alive and ready, not as down;
- *stream*: the server-sent event stream (``GET /api/v1/sync/events``) lives for as
  long as the tablet is online and does no work while it waits; it is bounded on its
  own (``max_event_streams``) and never counts as, or waits for, a request in flight;
- *request*: everything else, at most ``max_in_flight`` at once (from the moment the
  request reaches the app to the end of its answer);
- a *push* (``POST /api/v1/sync/push``) is a request and also one of at most
  ``max_pushes_in_flight`` pushes at once: pushes wait for the one database writer
  (``SQLiteStore.write_batch`` commits the pushes waiting together), so this bounds the
  writer's queue, and with it how long an admitted push waits.

The counters are plain integers: the app runs on one event loop, and Litestar builds
one middleware instance per route, all sharing the app's :class:`Overload`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import msgspec
from litestar.config.app import AppConfig
from litestar.datastructures import Headers
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from checklists.i18n import LANGS, pick_lang
from server.problems import CODES, localised

__all__ = [
    "EXEMPT_PATHS",
    "PUSH_PATH",
    "STREAM_PATHS",
    "Gate",
    "Overload",
    "OverloadMiddleware",
]

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
STREAM_PATHS = frozenset({"/api/v1/sync/events"})
PUSH_PATH = "/api/v1/sync/push"
CODE = "overloaded"
LOG_EVERY_SECONDS = 10.0

log = logging.getLogger("inspectsync")


class Gate:
    """At most ``limit`` holders at once; :meth:`enter` says no instead of waiting."""

    __slots__ = ("busy", "limit", "name", "peak", "refused")

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"{name}: the limit must be at least 1, not {limit}")
        self.name = name
        self.limit = limit
        self.busy = 0
        self.peak = 0
        self.refused = 0

    def enter(self) -> bool:
        if self.busy >= self.limit:
            self.refused += 1
            return False
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        return True

    def leave(self) -> None:
        self.busy -= 1


class Overload:
    """The app's admission state: the gates, and the answer past them."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_pushes_in_flight: int,
        max_event_streams: int,
        retry_after_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = Gate("requests in flight", max_in_flight)
        self.pushes = Gate("pushes in flight", max_pushes_in_flight)
        self.streams = Gate("event streams", max_event_streams)
        self.retry_after = max(1, retry_after_seconds)
        self._clock = clock
        self._logged_at = clock()
        self._refused_since_log: Counter[str] = Counter()
        gates = (self.requests, self.pushes, self.streams)
        self._answers = {(g.name, lang): self._answer(g, lang) for g in gates for lang in LANGS}

    def gates(self, method: str, path: str) -> tuple[Gate, ...]:
        """The gates a request must pass, outermost first (none: exempt)."""
        if path in EXEMPT_PATHS:
            return ()
        if path in STREAM_PATHS and method == "GET":
            return (self.streams,)
        if path == PUSH_PATH and method == "POST":
            return (self.requests, self.pushes)
        return (self.requests,)

    def _answer(self, gate: Gate, lang: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The 503 of a gate, made once per language (the problem catalogue's title and
        detail in Chinese, the English detail kept as ``detail_en``, as every problem)."""
        status, title = CODES[CODE]
        detail = (
            f"the server is at its limit of {gate.limit} {gate.name};"
            f" try again in {self.retry_after} s"
        )
        problem: dict[str, object] = {
            "type": f"https://inspectsync.dev/problems/{CODE}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": CODE,
            "limit": gate.name,
            "retry_after": self.retry_after,
        }
        if lang == "zh":
            problem["title"], problem["detail"] = localised(CODE, lang, problem)
            problem["detail_en"] = detail
        body = msgspec.json.encode(problem)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-language", lang.encode()),
            (b"vary", b"Accept-Language"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after).encode()),
            (b"cache-control", b"no-store"),
        ]
        return headers, body

    async def refuse(self, gate: Gate, send: Send, lang: str = "en") -> None:
        """Answer 503 ``overloaded`` (the request's body is never read)."""
        self._note(gate)
        headers, body = self._answers[(gate.name, lang)]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _note(self, gate: Gate) -> None:
        """A warning at most every ``LOG_EVERY_SECONDS`` with what was refused since."""
        self._refused_since_log[gate.name] += 1
        now = self._clock()
        if now - self._logged_at < LOG_EVERY_SECONDS:
            return
        refused = ", ".join(f"{n} ({name})" for name, n in sorted(self._refused_since_log.items()))
        log.warning(
            "overloaded: refused %s in the last %.0f s; in flight %d/%d requests, %d/%d"
            " pushes, %d/%d event streams",
            refused,
            now - self._logged_at,
            self.requests.busy,
            self.requests.limit,
            self.pushes.busy,
            self.pushes.limit,
            self.streams.busy,
            self.streams.limit,
        )
        self._logged_at = now
        self._refused_since_log.clear()

    def install(self, app_config: AppConfig) -> AppConfig:
        """An ``on_app_init`` hook: the middleware goes first, before authentication
        (which JWTAuth's own hook puts first), so a refused request costs nothing."""
        app_config.middleware.insert(0, DefineMiddleware(OverloadMiddleware, overload=self))
        return app_config


class OverloadMiddleware:
    """Admits a request through its :class:`Overload` gates or answers 503."""

    def __init__(self, app: ASGIApp, overload: Overload) -> None:
        self.app = app
        self.overload = overload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gates = self.overload.gates(scope["method"], scope["path"])
        taken: list[Gate] = []
        try:
            for gate in gates:
                if not gate.enter():
                    accept = Headers.from_scope(scope).get("accept-language")
                    await self.overload.refuse(gate, send, pick_lang(None, accept))
                    return
                taken.append(gate)
            await self.app(scope, receive, send)
        finally:
            for gate in taken:
                gate.leave()
