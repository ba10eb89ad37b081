"""Change notifications across server instances, over PostgreSQL ``LISTEN``/``NOTIFY``.

Each instance's :class:`~sync.notify.Notifier` tells the tablets connected to it which
inspections changed. With several instances over one database, a push that lands on
instance B must also wake the tablets listening on instance A. :class:`PgRelay` does
that: what an instance publishes is also sent with ``pg_notify`` on :data:`CHANNEL`
(after the commit, so a tablet woken anywhere finds the change), and what the other
instances sent arrives on a ``LISTEN`` connection and is handed to the local notifier.

A notification is a hint to pull, never data: if the relay's connection drops it
reconnects (a tablet that missed a hint pulls on its next timer or reconnect anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable

import psycopg

from sync.notify import Notifier

__all__ = ["CHANNEL", "PgRelay"]

CHANNEL = "inspectsync_changes"
_MAX_PAYLOAD = 7000  # bytes; PostgreSQL's limit is 8000
_log = logging.getLogger("inspectsync.notify")


class PgRelay:
    """Relays one notifier's publications to every other instance and back."""

    def __init__(self, url: str, notifier: Notifier, *, retry_seconds: float = 1.0) -> None:
        self.url = url
        self.notifier = notifier
        self.instance = uuid.uuid4().hex
        self.retry_seconds = retry_seconds
        self._outbox: asyncio.Queue[list[str]] = asyncio.Queue(10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()

    async def start(self) -> None:
        """Begin listening and sending; returns once listening (or after a first
        failed attempt, which is logged and retried)."""
        self.notifier.forward = self._forward
        self._tasks = [
            asyncio.create_task(self._listen(), name="pg-relay-listen"),
            asyncio.create_task(self._send(), name="pg-relay-send"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), 10)

    async def stop(self) -> None:
        self.notifier.forward = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _forward(self, ids: frozenset[str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a hint lost: tablets pull anyway
            self._outbox.put_nowait(sorted(ids))

    def _payloads(self, ids: list[str]) -> Iterable[str]:
        """The ids as notifications under PostgreSQL's payload limit."""
        chunk: list[str] = []
        for i in ids:
            chunk.append(i)
            if len(json.dumps([self.instance, chunk])) > _MAX_PAYLOAD:
                chunk.pop()
                yield json.dumps([self.instance, chunk])
                chunk = [i]
        if chunk:
            yield json.dumps([self.instance, chunk])

    async def _send(self) -> None:
        while True:
            ids = await self._outbox.get()
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    while True:
                        for payload in self._payloads(ids):
                            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                        ids = await self._outbox.get()
            except psycopg.Error:
                _log.warning("cannot send change notifications; retrying", exc_info=True)
                await asyncio.sleep(self.retry_seconds)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for note in conn.notifies():
                        self._deliver(note.payload)
            except psycopg.Error:
                self.listening.clear()
                _log.warning("change notifications from other instances lost; reconnecting")
                await asyncio.sleep(self.retry_seconds)

    def _deliver(self, payload: str) -> None:
        try:
            sender, ids = json.loads(payload)
        except (ValueError, TypeError):
            return
        if sender != self.instance and isinstance(ids, list):
            self.notifier.deliver(str(i) for i in ids)
