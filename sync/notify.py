"""Tell online tablets to pull: a publish/subscribe of changed inspections.

The engine publishes the inspections a committed push touched; each subscriber (one
per open event stream) gets the ids and decides, with its own principal's scope,
whether to wake its tablet. Nothing here carries record data.

Within one process that is all. With several server instances over one database,
``forward`` sends what this instance publishes to the others (PostgreSQL
``LISTEN``/``NOTIFY``, :mod:`sync.storage.postgres_notify`), which ``deliver`` it to
their own subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, queue_size: int = 100) -> None:
        self._subscribers: set[asyncio.Queue[frozenset[str]]] = set()
        self._size = queue_size
        self.forward: Callable[[frozenset[str]], None] | None = None
        """Where this instance's publications also go (other instances), if anywhere."""

    def subscribe(self) -> asyncio.Queue[frozenset[str]]:
        q: asyncio.Queue[frozenset[str]] = asyncio.Queue(self._size)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[frozenset[str]]) -> None:
        self._subscribers.discard(q)

    def publish(self, inspection_ids: Iterable[str]) -> None:
        """Changes committed here: wake this instance's subscribers and tell the others."""
        ids = frozenset(inspection_ids)
        if not ids:
            return
        self._fan_out(ids)
        if self.forward is not None:
            self.forward(ids)

    def deliver(self, inspection_ids: Iterable[str]) -> None:
        """Changes committed by another instance: wake this instance's subscribers."""
        ids = frozenset(inspection_ids)
        if ids:
            self._fan_out(ids)

    def _fan_out(self, ids: frozenset[str]) -> None:
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader pulls anyway
                q.put_nowait(ids)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
