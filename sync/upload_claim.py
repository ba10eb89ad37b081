"""The claim a request holds on an upload while it writes a chunk, across processes.

Two ``PATCH`` requests for one upload may arrive at once: on one server process (a
tablet that gave up on a slow chunk and sent it again) or on two instances behind a load
balancer. Each must check ``Upload-Offset``, append its bytes and record the new offset
alone, or both would read the same offset and write the same byte range. The in-process
lock in :mod:`sync.uploads` orders requests of one process; :class:`UploadClaim` orders
them across processes through the database every instance shares
(:meth:`~sync.storage.Store.claim_upload`): a row-level claim with an end, not a lock
held on a connection, so a chunk streaming slowly from a tablet ties up no database
connection, and a claim left by a process that died runs out by itself.

A holder renews its claim while bytes keep coming (every third of the claim's length);
its writes to the store are fenced by its holder id, so a holder that stalled past its
claim's end and was taken over records nothing (UploadLocked).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from sync.clock import Clock
from sync.errors import UploadLocked
from sync.models import Upload
from sync.storage import Store

__all__ = ["UploadClaim"]

_FIRST_POLL = 0.02
_MAX_POLL = 0.5
_RETRY_AFTER = 5
"""The ``Retry-After`` of a 423 at most: the other request is likely done by then."""


class UploadClaim:
    """One request's claim on one upload: :meth:`take`, :meth:`renew` while writing,
    :meth:`release` (or let the store release it with the last write)."""

    def __init__(self, store: Store, clock: Clock, upload_id: str, ttl: float) -> None:
        self.store = store
        self.clock = clock
        self.upload_id = upload_id
        self.ttl = ttl
        self.holder = uuid.uuid4().hex
        self.held = False
        self._renewed = 0.0  # time.monotonic() of the last grant

    async def _grant(self, *, renewing: bool = False) -> Upload:
        now = self.clock.now()
        up = await self.store.claim_upload(
            self.upload_id,
            self.holder,
            now=now,
            until=now + timedelta(seconds=self.ttl),
            renewing=renewing,
        )
        self.held, self._renewed = True, time.monotonic()
        return up

    async def take(self, deadline: float) -> Upload:
        """Claim the upload, waiting (polling the store) until ``deadline``
        (``time.monotonic()``) while another request holds it; then UploadLocked. Returns
        the upload as it is under the claim. NotFound for an unknown id."""
        pause = _FIRST_POLL
        while True:
            try:
                return await self._grant()
            except UploadLocked as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    # the claim's end, if sooner (a claim left by a process that died)
                    ends = int(exc.extra.get("retry_after", _RETRY_AFTER))
                    raise UploadLocked(
                        "another request is still sending a chunk of this upload",
                        retry_after=max(1, min(ends, _RETRY_AFTER)),
                    ) from None
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, _MAX_POLL)

    async def renew(self) -> None:
        """Extend the claim if a third of its length has passed since it was granted;
        UploadLocked if it was lost meanwhile (ran out and another request took it)."""
        if time.monotonic() - self._renewed >= self.ttl / 3:
            try:
                await self._grant(renewing=True)
            except UploadLocked:
                self.held = False
                raise UploadLocked(
                    "the claim on this upload ran out while the chunk was sent and another"
                    " request took it over; this chunk was not recorded",
                    retry_after=1,
                ) from None

    async def release(self) -> None:
        """End the claim, unless the last write ended it already (``held`` False)."""
        if self.held:
            self.held = False
            await self.store.release_upload(self.upload_id, self.holder)
