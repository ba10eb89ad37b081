"""Tell online tablets to pull: an in-process publish/subscribe of changed inspections.

The engine publishes the inspections a committed push touched; each subscriber (one
per open event stream) gets the ids and decides, with its own principal's scope,
whether to wake its tablet. Nothing here carries record data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

__all__ = ["Notifier"]


class Notifier:
    def __init__(self, queue_size: int = 100) -> None:
        self._subscribers: set[asyncio.Queue[frozenset[str]]] = set()
        self._size = queue_size

    def subscribe(self) -> asyncio.Queue[frozenset[str]]:
        q: asyncio.Queue[frozenset[str]] = asyncio.Queue(self._size)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[frozenset[str]]) -> None:
        self._subscribers.discard(q)

    def publish(self, inspection_ids: Iterable[str]) -> None:
        ids = frozenset(inspection_ids)
        if not ids:
            return
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader pulls anyway
                q.put_nowait(ids)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
